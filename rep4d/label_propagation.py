"""Training-free label propagation with video features, as in the RVM evaluation notebook.

A first-frame segmentation mask (or a set of keypoints) is carried through a video by feature affinity. Every frame's
patch features are L2-normalised; frame t is labelled from a context made of frame 0 with its ground-truth labels and
a FIFO queue of the ``n_context`` most recent (features, predicted labels) pairs (initialised with copies of frame 0).
Each query token takes the top-k most similar context tokens (dot product / temperature), restricted to a spatial
neighbourhood of ``radius`` grid cells in the queued frames, and averages their labels with softmax weights. This is
the protocol of DAVIS (masks), JHMDB (keypoints) and VIP (part masks) in ``rvm_evaluation_demo.ipynb``.

Typical use::

    from rep4d.label_propagation import propagate_mask
    result = propagate_mask(model, video_uint8, first_frame_mask, resolution=(480, 880))
    result.masks            # (T, H, W) label ids per frame at the video's resolution
    write_overlay("out.mp4", video_uint8, masks=result.masks)

or from the command line: ``rep4d propagate MODEL_DIR video.mp4 --mask first.png --output overlay.mp4``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


# Core algorithm ------------------------------------------------------------------------------------------------------


def neighbourhood_mask(grid: tuple[int, int], radius: float, device=None) -> torch.Tensor:
    """(h*w, h*w) boolean: True where two grid cells are closer than ``radius`` (Euclidean, in cells)."""
    height, width = grid
    rows, cols = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    cells = torch.stack([rows.flatten(), cols.flatten()], dim=-1).float()
    return torch.cdist(cells, cells) < radius


def propagate_labels(
    features: torch.Tensor,
    first_frame_labels: torch.Tensor,
    n_context: int = 20,
    temperature: float = 0.7,
    topk: int = 7,
    radius: float = 20,
    restrict_neighborhood: bool = True,
    normalize: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """Propagate soft labels through a video by feature affinity.

    Args:
        features: (T, h, w, D) per-frame patch features (CLS dropped).
        first_frame_labels: (h, w, K) soft labels of frame 0 on the same grid (one-hot masks, keypoint heatmaps...).
        n_context: length of the FIFO of recent predicted frames (20 in the notebook).
        temperature: affinity temperature (0.7).
        topk: neighbours per query token (7; 10 for VIP in the evaluation notebook).
        radius: neighbourhood radius in grid cells; queued context tokens at distance >= radius are excluded.
            The ground-truth frame-0 entry is never restricted.
        restrict_neighborhood: apply the radius (the notebook's PyTorch versions do; its JAX copy silently does not).
        normalize: L2-normalise every token first (the notebook always does).

    Returns:
        (T, h, w, K) propagated labels; frame 0 is itself predicted from the context, as in the notebook.
    """
    if features.ndim != 4:
        raise ValueError(f"features must be (frames, h, w, channels), got {tuple(features.shape)}")
    frames, height, width, _ = features.shape
    if first_frame_labels.ndim != 3 or tuple(first_frame_labels.shape[:2]) != (height, width):
        raise ValueError(
            f"first_frame_labels must be (h, w, K) = ({height}, {width}, K) like the features, "
            f"got {tuple(first_frame_labels.shape)}"
        )
    if n_context < 1 or topk < 1 or temperature <= 0:
        raise ValueError(f"need n_context >= 1, topk >= 1, temperature > 0; got {n_context}, {topk}, {temperature}")
    tokens = features.reshape(frames, height * width, -1).float()
    if normalize:
        tokens = F.normalize(tokens, dim=-1)
    first_labels = first_frame_labels.reshape(height * width, -1).to(tokens)
    num_tokens = height * width
    topk = min(topk, (n_context + 1) * num_tokens)
    blocked = None
    if restrict_neighborhood:
        blocked = ~neighbourhood_mask((height, width), radius, device=tokens.device)

    queue_features = [tokens[0]] * n_context
    queue_labels = [first_labels] * n_context
    predictions = []
    steps = range(frames)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="propagating", unit="frame")
    for t in steps:
        query = tokens[t]
        context_features = torch.stack([tokens[0], *queue_features])  # (1+n, N, D)
        context_labels = torch.cat([first_labels, *queue_labels])  # ((1+n)*N, K)
        affinity = torch.einsum("qd,cnd->qcn", query, context_features) / temperature  # (N, 1+n, N)
        if blocked is not None:
            affinity[:, 1:] = affinity[:, 1:].masked_fill(blocked[:, None, :], -1e10)
        affinity = affinity.reshape(num_tokens, -1)
        values, indices = affinity.topk(topk, dim=-1)
        weights = torch.softmax(values, dim=-1)
        prediction = torch.einsum("qk,qkc->qc", weights, context_labels[indices])
        predictions.append(prediction)
        queue_features = [*queue_features[1:], query]
        queue_labels = [*queue_labels[1:], prediction]
    return torch.stack(predictions).reshape(frames, height, width, -1)


# Label encodings -----------------------------------------------------------------------------------------------------


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-exact resize of an (H, W) integer array."""
    tensor = torch.from_numpy(np.ascontiguousarray(array)).float()[None, None]
    return F.interpolate(tensor, size=tuple(size), mode="nearest-exact")[0, 0].numpy().astype(array.dtype)


def mask_to_labels(mask: np.ndarray, grid: tuple[int, int], processing_size: tuple[int, int]):
    """(H, W) integer mask -> ((h, w, K) soft one-hot labels, label ids).

    As the notebook: nearest resize to the processing resolution, one-hot over the labels present (background
    included), then bilinear downsampling to the feature grid (``cv2.INTER_LINEAR``: no antialiasing).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"the first-frame mask must be (H, W) label ids, got shape {mask.shape}")
    resized = resize_nearest(mask.astype(np.int64), processing_size)
    label_ids = np.unique(resized)
    one_hot = torch.from_numpy(resized[..., None] == label_ids).float().permute(2, 0, 1)[None]
    labels = F.interpolate(one_hot, size=tuple(grid), mode="bilinear", align_corners=False, antialias=False)
    return labels[0].permute(1, 2, 0), label_ids


def labels_to_masks(labels: torch.Tensor, label_ids: np.ndarray, processing_size, output_size) -> np.ndarray:
    """(T, h, w, K) soft labels -> (T, H, W) label ids: bilinear upsampling, argmax, nearest-exact resize."""
    upsampled = F.interpolate(labels.permute(0, 3, 1, 2).float(), size=tuple(processing_size), mode="bilinear",
                              align_corners=False)
    indices = upsampled.argmax(dim=1).numpy()
    masks = np.asarray(label_ids)[indices]
    return np.stack([resize_nearest(mask, output_size) for mask in masks])


def keypoints_to_heatmaps(points_xy: np.ndarray, grid: tuple[int, int], image_size: tuple[int, int],
                          visible: np.ndarray | None = None, sigma: float = 0.5) -> torch.Tensor:
    """(J, 2) pixel keypoints (x, y) -> (h, w, J+1): a Gaussian (``sigma`` cells) per joint, then background.

    The background channel is 1 where no joint has heat (``1 - max`` over the joints, clipped at 0). Invisible
    joints get an all-zero map.
    """
    points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    visible = np.ones(len(points), bool) if visible is None else np.asarray(visible, bool)
    height, width = grid
    scale_y, scale_x = height / image_size[0], width / image_size[1]
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    maps = np.zeros((height, width, len(points) + 1), np.float32)
    for joint, ((x, y), seen) in enumerate(zip(points, visible)):
        if seen and x >= 0 and y >= 0:
            distance = (rows - y * scale_y) ** 2 + (cols - x * scale_x) ** 2
            maps[..., joint] = np.exp(-distance / (2 * sigma**2))
    maps[..., -1] = np.clip(1 - maps[..., :-1].max(axis=-1, initial=0), 0, 1)
    return torch.from_numpy(maps)


def heatmaps_to_keypoints(heatmaps: torch.Tensor, image_size: tuple[int, int], top: int = 5):
    """(T, h, w, J+1) propagated heat -> ((T, J, 2) pixel (x, y), (T, J) visible).

    Per joint, the ``top`` cells are averaged with their normalised scores, then scaled by ``image_size / grid``;
    a joint whose heat is all zero is invisible (coordinates -1), as in the notebook.
    """
    frames, height, width, channels = heatmaps.shape
    heat = heatmaps[..., : channels - 1].reshape(frames, height * width, -1).permute(0, 2, 1).float()  # (T, J, N)
    scores, cells = heat.topk(min(top, height * width), dim=-1)
    weights = scores / scores.sum(-1, keepdim=True).clamp_min(1e-12)
    rows, cols = (cells // width).float(), (cells % width).float()
    x = (weights * cols).sum(-1) * (image_size[1] / width)
    y = (weights * rows).sum(-1) * (image_size[0] / height)
    visible = heat.amax(-1) > 0
    points = torch.stack([x, y], dim=-1)
    points[~visible] = -1
    return points.numpy(), visible.numpy()


# Models and videos ---------------------------------------------------------------------------------------------------


def as_float_video(video) -> torch.Tensor:
    """(T, H, W, 3) uint8 or [0, 1] float -> (T, 3, H, W) float32 in [0, 1]."""
    video = torch.as_tensor(np.asarray(video))
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be (frames, height, width, 3), got {tuple(video.shape)}")
    video = video.float() / 255.0 if video.dtype == torch.uint8 else video.float()
    return video.permute(0, 3, 1, 2).contiguous()


def resize_video(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T, 3, H, W) -> (T, 3, h, w), antialiased bilinear (mediapy.resize_video's filter is a Lanczos-like AA)."""
    if tuple(video.shape[-2:]) == tuple(size):
        return video
    return F.interpolate(video, size=tuple(size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def rvm_feature_extractor(model, device=None, progress: bool = False) -> FeatureExtractor:
    """A feature extractor streaming frames (T, 3, H, W) through an :class:`RVMModel` -> (T, h, w, D) patches."""
    model = getattr(model, "rvm", model)  # an RVMForMaskedReconstruction works too
    device = device or next(model.parameters()).device

    @torch.no_grad()
    def extract(video: torch.Tensor) -> torch.Tensor:
        state, features = None, []
        steps = range(video.shape[0])
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="extracting features", unit="frame")
        for t in steps:
            output = model(video[t : t + 1].to(device), state=state)
            state = output.state
            features.append(model.patch_features(output.last_hidden_state, video.shape[-2:])[0, 0].float().cpu())
        return torch.stack(features)

    return extract


def _extractor(model_or_extractor) -> FeatureExtractor:
    if hasattr(model_or_extractor, "recurrent_core") or hasattr(model_or_extractor, "rvm"):
        return rvm_feature_extractor(model_or_extractor)
    if callable(model_or_extractor):
        return model_or_extractor
    raise TypeError("pass an RVM model or a callable mapping (T, 3, H, W) frames to (T, h, w, D) features")


@dataclass
class MaskPropagation:
    """Result of :func:`propagate_mask`: ``masks`` (T, H, W) label ids at the input resolution, ``labels``
    (T, h, w, K) soft labels on the feature grid and ``label_ids`` (K,) the id of each channel."""

    masks: np.ndarray
    labels: torch.Tensor
    label_ids: np.ndarray


@dataclass
class KeypointPropagation:
    """Result of :func:`propagate_keypoints`: ``points`` (T, J, 2) pixel (x, y), ``visible`` (T, J) and
    ``heatmaps`` (T, h, w, J+1) on the feature grid (last channel: background)."""

    points: np.ndarray
    visible: np.ndarray
    heatmaps: torch.Tensor


def propagate_mask(model_or_extractor, video, first_frame_mask: np.ndarray, resolution=None, **options) -> MaskPropagation:
    """Propagate a first-frame segmentation mask through ``video``.

    Args:
        model_or_extractor: an :class:`RVMModel` (features streamed frame by frame) or any callable mapping
            (T, 3, H, W) frames in [0, 1] to (T, h, w, D) patch features.
        video: (T, H, W, 3) uint8 or float in [0, 1].
        first_frame_mask: (H, W) integer label ids of frame 0 (0 is usually background).
        resolution: (height, width) processing resolution (e.g. 480x880 for DAVIS); default: the video's size.
        options: passed to :func:`propagate_labels` (``n_context``, ``temperature``, ``topk``, ``radius``, ...).
    """
    frames = as_float_video(video)
    original = tuple(frames.shape[-2:])
    if tuple(np.asarray(first_frame_mask).shape) != original:
        raise ValueError(f"first_frame_mask must have the video's frame size {original}, got {np.shape(first_frame_mask)}")
    resolution = tuple(resolution or original)
    features = _extractor(model_or_extractor)(resize_video(frames, resolution))
    labels, label_ids = mask_to_labels(first_frame_mask, tuple(features.shape[1:3]), resolution)
    propagated = propagate_labels(features, labels, **options)
    return MaskPropagation(labels_to_masks(propagated, label_ids, resolution, original), propagated, label_ids)


def propagate_keypoints(model_or_extractor, video, first_frame_points, visible=None, resolution=None,
                        **options) -> KeypointPropagation:
    """Propagate first-frame keypoints ((J, 2) pixel x, y) through ``video``; see :func:`propagate_mask`."""
    frames = as_float_video(video)
    original = tuple(frames.shape[-2:])
    resolution = tuple(resolution or original)
    features = _extractor(model_or_extractor)(resize_video(frames, resolution))
    heat = keypoints_to_heatmaps(first_frame_points, tuple(features.shape[1:3]), original, visible)
    propagated = propagate_labels(features, heat, **options)
    points, seen = heatmaps_to_keypoints(propagated, original)
    return KeypointPropagation(points, seen, propagated)


def write_overlay(path: str | os.PathLike, video, masks: np.ndarray | None = None, points: np.ndarray | None = None,
                  visible: np.ndarray | None = None, fps: float = 8.0, alpha: float = 0.5) -> Path:
    """Write the video with propagated masks (one colour per label id, 0 = background) and/or keypoints."""
    from rep4d.visualization import distinct_colors, draw_points, overlay_mask, write_video

    frames = as_float_video(video).permute(0, 2, 3, 1).numpy()
    out = []
    colors = distinct_colors(max(int(np.max(masks)) if masks is not None else 0, points.shape[1] if points is not None else 0, 1))
    for t, frame in enumerate(frames):
        if masks is not None:
            for label in np.unique(masks[t]):
                if label != 0:
                    frame = overlay_mask(frame, masks[t] == label, color=colors[(int(label) - 1) % len(colors)], alpha=alpha)
        if points is not None:
            frame = draw_points(frame, points[t], colors[: points.shape[1]],
                                visible=None if visible is None else visible[t], radius=3)
        out.append(frame)
    return write_video(path, np.stack(out), fps=fps)


__all__ = [
    "propagate_labels",
    "propagate_mask",
    "propagate_keypoints",
    "rvm_feature_extractor",
    "mask_to_labels",
    "labels_to_masks",
    "keypoints_to_heatmaps",
    "heatmaps_to_keypoints",
    "write_overlay",
    "MaskPropagation",
    "KeypointPropagation",
]
