"""Training-free label propagation with video features, exactly as the RVM evaluation notebook does it.

A first-frame segmentation mask (or a set of keypoints) is carried through a video by feature affinity. This module
reproduces ``rvm_evaluation_demo.ipynb`` cell 16 (``mask2heatmap``, ``pose2heatmap``, ``draw_labelmap_np``,
``label_propagation``, ``process_segmentation``, ``process_pose``) without OpenCV: the three OpenCV resizes it uses are
re-implemented with OpenCV 4's index rules, so the outputs match the golden fixtures in
``tests/fixtures/protocols/label_propagation`` (DAVIS masks, JHMDB keypoints, VIP part masks).

The steps, each a public function:

1. :func:`encode_mask` / :func:`encode_pose`: first-frame labels on the feature grid, (h, w, K).
2. :func:`propagate_labels` (or the streaming :func:`iter_propagate_labels`): the context of frame t is frame 0 with
   its labels plus a FIFO of the ``n_context`` most recent (features, predicted labels) pairs, initialised with copies
   of frame 0. Each query token takes the top-k most similar context tokens (dot product of L2-normalised features /
   temperature; queued tokens farther than ``radius`` cells are excluded), and averages their labels with softmax
   weights. Frame 0 itself is propagated and queued.
3. :func:`decode_masks` / :func:`decode_pose`: label ids at the video's resolution, or keypoint pixels.

Typical use::

    from rep4d.label_propagation import propagate_mask, write_overlay
    result = propagate_mask(model, video_uint8, first_frame_mask, resolution=(480, 880))
    result.masks            # (T, H, W) label ids per frame at the video's resolution
    write_overlay("out.mp4", video_uint8, masks=result.masks, fps=24)

or from the command line: ``rep4d propagate MODEL_DIR video.mp4 --mask first.png --output overlay.mp4``.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]

# The DAVIS protocol's token grid (480x880 frames, patch 16): the default processing size aims at this many tokens.
DAVIS_GRID_TOKENS = 30 * 55


# OpenCV-4 resize rules (no OpenCV dependency) ------------------------------------------------------------------------


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index of every output index of ``cv2.resize(..., INTER_NEAREST)`` along one axis.

    ``min(floor(x * (1 / (dst / src))), src - 1)`` computed in float64, as OpenCV does.
    """
    scale = 1.0 / (dst / src)
    return np.minimum(np.floor(np.arange(dst, dtype=np.float64) * scale).astype(np.int64), src - 1)


def nearest_exact_indices(src: int, dst: int) -> np.ndarray:
    """Source index of every output index of OpenCV 4's ``INTER_NEAREST_EXACT`` along one axis.

    ``min((ifx * x + ifx // 2 - src % 2) >> 16, src - 1)`` with ``ifx = ((src << 16) + dst // 2) // dst`` (16-bit
    fixed point). OpenCV 5 and torch's ``nearest-exact`` round some size ratios differently.
    """
    ifx = ((src << 16) + dst // 2) // dst
    x = np.arange(dst, dtype=np.int64)
    return np.minimum((ifx * x + ifx // 2 - src % 2) >> 16, src - 1)


def _linear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left index, right index and float32 weight of the right tap for ``cv2.INTER_LINEAR`` along one axis."""
    scale = 1.0 / (dst / src)
    position = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    left = np.floor(position).astype(np.int64)
    weight = (position - left.astype(np.float32)).astype(np.float32)
    before = left < 0
    weight[before], left[before] = 0, 0
    after = left >= src - 1
    weight[after], left[after] = 0, src - 1
    right = np.minimum(left + 1, src - 1)
    return left, right, weight


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, ...) -> (height, width, ...) as ``cv2.resize(array, (width, height), interpolation=INTER_NEAREST)``."""
    rows = nearest_indices(array.shape[0], size[0])
    cols = nearest_indices(array.shape[1], size[1])
    return array[rows[:, None], cols[None, :]]


def resize_nearest_exact(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, ...) -> (height, width, ...) as OpenCV 4's ``cv2.resize(..., interpolation=INTER_NEAREST_EXACT)``."""
    rows = nearest_exact_indices(array.shape[0], size[0])
    cols = nearest_exact_indices(array.shape[1], size[1])
    return array[rows[:, None], cols[None, :]]


def resize_linear(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, K) float32 -> (height, width, K) float32 as ``cv2.resize(array, (width, height))`` (``INTER_LINEAR``).

    Half-pixel centres, clamped at the borders, no antialiasing (downsampling by 16 takes the mean of the two pixels
    at offsets 7 and 8 of each cell); horizontal pass first, then vertical, in float32 as OpenCV does.
    """
    array = np.asarray(array, dtype=np.float32)
    left, right, wx = _linear_taps(array.shape[1], size[1])
    top, bottom, wy = _linear_taps(array.shape[0], size[0])
    wx = wx.reshape((-1,) + (1,) * (array.ndim - 2))
    wy = wy.reshape((-1,) + (1,) * (array.ndim - 1))
    # Only the rows the vertical pass reads are resized horizontally.
    needed = np.unique(np.concatenate([top, bottom]))
    lookup = np.zeros(array.shape[0], np.int64)
    lookup[needed] = np.arange(len(needed))
    rows = array[needed]
    horizontal = rows[:, left] * (np.float32(1) - wx)[None] + rows[:, right] * wx[None]
    return horizontal[lookup[top]] * (np.float32(1) - wy) + horizontal[lookup[bottom]] * wy


# Label encodings ----------------------------------------------------------------------------------------------------


def _check_hw(name: str, value) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (height, width), got {value!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"{name} must be positive (height, width), got {value!r}")
    return height, width


def encode_mask(mask: np.ndarray, processing_hw, grid_hw) -> tuple[torch.Tensor, np.ndarray]:
    """First-frame label map -> soft one-hot labels on the feature grid (the notebook's ``mask2heatmap``).

    ``label_map = np.unique(mask)``; the mask is resized to the processing size with ``INTER_NEAREST``
    (:func:`resize_nearest`), one-hot encoded over ``label_map`` and resized to the grid with ``INTER_LINEAR``
    (:func:`resize_linear`: the mean of the 2x2 pixels at offsets 7/8 of each 16x16 cell, not the cell average).

    Args:
        mask: (ori_h, ori_w) integer label ids (uint8 as read from a DAVIS/VIP PNG; 0 is usually background).
        processing_hw: (height, width) the video is resized to before feature extraction (480x880 for DAVIS).
        grid_hw: (h, w) feature grid (``processing_hw // patch_size``).

    Returns:
        labels: (h, w, K) float32 tensor; channel k is label id ``label_map[k]``.
        label_map: (K,) label ids, in the mask's dtype (uint8 for uint8 masks).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer) and mask.dtype != bool:
        raise ValueError(f"the first-frame mask must be (H, W) integer label ids, got {mask.dtype} {mask.shape}")
    processing_hw, grid_hw = _check_hw("processing_hw", processing_hw), _check_hw("grid_hw", grid_hw)
    label_map = np.unique(mask)
    resized = resize_nearest(mask, processing_hw)
    one_hot = (resized[..., None] == label_map).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(resize_linear(one_hot, grid_hw))), label_map


def draw_gaussian(image: np.ndarray, point, sigma: float = 0.5) -> np.ndarray:
    """Stamp a truncated Gaussian at ``int()`` of ``point`` (x, y) into ``image`` in place (``draw_labelmap_np``).

    The patch is ``6 * sigma + 1`` cells wide (4x4 for sigma 0.5) with its peak at index ``size // 2``; ``int()``
    truncates towards zero, as the official code does, also for negative coordinates.
    """
    upper_left = [int(point[0] - 3 * sigma), int(point[1] - 3 * sigma)]
    bottom_right = [int(point[0] + 3 * sigma + 1), int(point[1] + 3 * sigma + 1)]
    if (upper_left[0] >= image.shape[1] or upper_left[1] >= image.shape[0] or bottom_right[0] < 0
            or bottom_right[1] < 0):
        return image
    size = 6 * sigma + 1
    x = np.arange(0, size, 1, float)
    y = x[:, np.newaxis]
    x0 = y0 = size // 2
    gaussian = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
    g_x = max(0, -upper_left[0]), min(bottom_right[0], image.shape[1]) - upper_left[0]
    g_y = max(0, -upper_left[1]), min(bottom_right[1], image.shape[0]) - upper_left[1]
    img_x = max(0, upper_left[0]), min(bottom_right[0], image.shape[1])
    img_y = max(0, upper_left[1]), min(bottom_right[1], image.shape[0])
    image[img_y[0] : img_y[1], img_x[0] : img_x[1]] = gaussian[g_y[0] : g_y[1], g_x[0] : g_x[1]]
    return image


def encode_pose(points_xy: np.ndarray, ori_hw, grid_hw, sigma: float = 0.5) -> torch.Tensor:
    """First-frame keypoints -> heatmaps on the feature grid (the notebook's ``pose2heatmap``).

    Joint j is scaled to the grid (``points * (w / ori_w, h / ori_h)``) and a 4x4 truncated Gaussian (sigma 0.5 cells)
    is stamped at ``int()`` of that coordinate (:func:`draw_gaussian`). Channel 0 is the background, FIRST: 1 where
    no joint has heat.

    Args:
        points_xy: (J, 2) float pixel coordinates (x, y) in the original frame.
        ori_hw: (height, width) of the original frame (the pixel space of ``points_xy``).
        grid_hw: (h, w) feature grid.

    Returns:
        (h, w, J+1) float32 tensor: channel 0 background, channel j+1 joint j.
    """
    points = np.asarray(points_xy)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points_xy must be (joints, 2) pixel (x, y), got shape {points.shape}")
    ori_h, ori_w = _check_hw("ori_hw", ori_hw)
    h, w = _check_hw("grid_hw", grid_hw)
    coords = points * np.array([w / ori_w, h / ori_h])
    heatmap = np.zeros((h, w, len(points) + 1), dtype=np.float32)
    for joint in range(len(points)):
        heatmap[..., joint + 1] = draw_gaussian(np.zeros((h, w)), coords[joint], sigma)
    heatmap[..., 0] = heatmap.sum(axis=-1) == 0
    return torch.from_numpy(heatmap)


# Propagation ---------------------------------------------------------------------------------------------------------


def normalize_features(features: torch.Tensor) -> torch.Tensor:
    """L2-normalise every token over the last axis (``F.normalize(feats, dim=-1)``, eps 1e-12), in float32."""
    return F.normalize(torch.as_tensor(features).float(), dim=-1)


def _largest_near_squared_distance(grid_hw, radius: float) -> int:
    """The largest squared grid distance d2 the notebook counts as near: ``float32(d2) ** 0.5 < radius`` in torch's
    float32, as its ``D`` is built (the near set is a prefix of the integers)."""
    h, w = grid_hw
    squared = torch.arange((h - 1) ** 2 + (w - 1) ** 2 + 1)
    near = torch.nonzero(squared.float() ** 0.5 < radius)
    return int(near.max()) if near.numel() else -1


def _far_cells(cells: torch.Tensor, grid_hw, largest_near: int) -> torch.Tensor:
    """(q, h*w) bool: True where a context cell is at grid distance >= radius from each query cell."""
    h, w = grid_hw
    rows, cols = cells // w, cells % w
    all_rows = torch.arange(h, device=cells.device).repeat_interleave(w)
    all_cols = torch.arange(w, device=cells.device).repeat(h)
    return (all_rows[None] - rows[:, None]) ** 2 + (all_cols[None] - cols[:, None]) ** 2 > largest_near


def default_chunk_size(num_tokens: int, n_context: int, budget_bytes: int = 16 << 20) -> int:
    """Query tokens per affinity chunk so that one chunk's (q, (n_context+1)*N) float32 affinity fits the budget."""
    return max(1, min(num_tokens, budget_bytes // (4 * (n_context + 1) * num_tokens)))


def iter_propagate_labels(
    features: torch.Tensor | Iterable[torch.Tensor],
    labels: torch.Tensor,
    n_context: int = 20,
    temperature: float = 0.7,
    topk: int = 7,
    radius: float = 20,
    restrict_neighborhood: bool = True,
    norm_mask: bool = False,
    chunk_size: int | None = None,
) -> Iterator[torch.Tensor]:
    """Streaming :func:`propagate_labels`: yields the (h, w, K) prediction of each frame as its features arrive.

    ``features`` is a (T, h, w, C) tensor or any iterable of per-frame (h, w, C) features (e.g. a generator fed by a
    recurrent model), raw or already normalised (they are L2-normalised here; normalising twice changes nothing
    beyond float rounding). Only the context queue is kept: peak memory is O((n_context+1)*h*w*(C+K)) for the context
    plus O(chunk_size * (n_context+1) * h*w) for one chunk of the affinity, independent of the number of frames.
    """
    labels = torch.as_tensor(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be (h, w, K) first-frame labels on the feature grid, got {tuple(labels.shape)}")
    if n_context < 1 or topk < 1 or temperature <= 0:
        raise ValueError(f"need n_context >= 1, topk >= 1 and temperature > 0; got {n_context}, {topk}, {temperature}")
    h, w, num_classes = labels.shape
    num_tokens = h * w
    if topk > (n_context + 1) * num_tokens:
        raise ValueError(f"topk={topk} exceeds the {(n_context + 1) * num_tokens} context tokens")
    chunk_size = chunk_size or default_chunk_size(num_tokens, n_context)
    largest_near = _largest_near_squared_distance((h, w), radius) if restrict_neighborhood else None
    far_cache: dict[int, torch.Tensor] = {}
    cache_far = num_tokens * num_tokens <= 64 << 20  # the (N, N) bool neighbourhood, kept if it is at most 64 MB
    heatmap = labels.float().reshape(num_tokens, num_classes)
    first = None
    queue: deque = deque(maxlen=n_context)
    for t, frame in enumerate(features):
        frame = torch.as_tensor(frame)
        if frame.ndim != 3 or tuple(frame.shape[:2]) != (h, w):
            raise ValueError(
                f"frame {t}: features must be (h, w, C) = ({h}, {w}, C) like the labels, got {tuple(frame.shape)}"
            )
        query = normalize_features(frame).reshape(num_tokens, -1)
        heatmap = heatmap.to(query.device)
        if first is None:
            first = query
            for _ in range(n_context):
                queue.append((first, heatmap))
        context_features = torch.stack([first] + [pair[0] for pair in queue])  # (n+1, N, C)
        context_labels = torch.cat([heatmap] + [pair[1] for pair in queue])  # ((n+1)*N, K)
        flat_context = context_features.reshape(-1, context_features.shape[-1])  # ((n+1)*N, C)
        prediction = torch.empty(num_tokens, num_classes, dtype=heatmap.dtype, device=query.device)
        for start in range(0, num_tokens, chunk_size):
            stop = min(start + chunk_size, num_tokens)
            affinity = torch.mm(query[start:stop], flat_context.T).div_(temperature)  # (q, (n+1)*N)
            if restrict_neighborhood:
                # The notebook adds -1e10 to far cells of the queued frames (never the frame-0 slot); in float32 an
                # affinity plus -1e10 is exactly -1e10 (|affinity| <= 1/temperature is far below half an ulp, 512).
                far = far_cache.get(start)
                if far is None:
                    far = _far_cells(torch.arange(start, stop, device=query.device), (h, w), largest_near)
                    if cache_far:
                        far_cache[start] = far
                affinity.view(stop - start, n_context + 1, num_tokens)[:, 1:].masked_fill_(far[:, None], -1e10)
            weights, ids = torch.topk(affinity, topk, dim=-1)
            weights = F.softmax(weights, dim=-1)
            prediction[start:stop] = torch.einsum("qlk,ql->qk", context_labels[ids], weights)
        if norm_mask:  # in place, so the queued prediction is normalised too, as in the notebook
            prediction -= prediction.min(-1)[0][..., None]
            prediction /= prediction.max(-1)[0][..., None]
        queue.append((query, prediction))
        yield prediction.reshape(h, w, num_classes)
    if first is None:
        raise ValueError("features hold no frame")


def propagate_labels(
    features: torch.Tensor | Iterable[torch.Tensor],
    labels: torch.Tensor,
    n_context: int = 20,
    temperature: float = 0.7,
    topk: int = 7,
    radius: float = 20,
    restrict_neighborhood: bool = True,
    progress: bool = False,
    norm_mask: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Propagate first-frame labels through a video by feature affinity (the notebook's ``label_propagation``).

    The queue semantics are the notebook's: a FIFO of ``n_context`` (features, labels) pairs initialised with copies
    of (frame 0, first labels); the context of frame t is ``[frame 0 with the first labels] + FIFO``. Affinity =
    dot product of L2-normalised features / ``temperature``; with ``restrict_neighborhood``, -1e10 is added to queued
    context cells at grid distance >= ``radius`` (never to the leading frame-0 slot). Then top-k over all
    (n_context+1)*h*w candidates, a softmax over the k values and the weighted sum of their labels. Frame 0 is
    propagated too, and every prediction (frame 0 included) is appended to the FIFO.

    Memory: the affinity is computed in chunks of ``chunk_size`` query tokens (default: a 16 MB block, faster than
    one large block), so peak memory is O(chunk_size * (n_context+1) * h*w) for the affinity, plus
    O((n_context+1) * h*w * (C+K)) for the context queue, O((h*w)^2) bytes for the neighbourhood (cached up to
    64 MB) and the (T, h, w, K) output: bounded by the context queue, not by the video (the streaming
    :func:`iter_propagate_labels` does not even keep the output). The result does not depend on ``chunk_size`` (up to
    the last bit of the matrix products' rounding).

    Args:
        features: (T, h, w, C) raw per-frame patch features (CLS dropped), or an iterable of (h, w, C) frames.
        labels: (h, w, K) first-frame labels on the same grid (:func:`encode_mask` / :func:`encode_pose`).
        n_context: FIFO length (20 in the notebook).
        temperature: affinity temperature (0.7).
        topk: context tokens per query (7; 10 for VIP). Keep ``topk <= n_context + 1``: beyond it the result depends
            on the top-k tie order (frame 0's tokens sit in the context with two label sets at equal affinity).
        radius: neighbourhood radius in grid cells (20).
        restrict_neighborhood: apply the radius (the notebook's PyTorch code does; its JAX copy silently does not,
            which equals ``restrict_neighborhood=False``).
        progress: show a tqdm bar over frames.
        norm_mask: min-max normalise every prediction over the classes (always False in the notebooks).
        chunk_size: query tokens per affinity chunk.

    Returns:
        (T, h, w, K) float32 propagated labels; frame 0 is itself predicted from the context.
    """
    if isinstance(features, torch.Tensor | np.ndarray):
        features = torch.as_tensor(features)
        if features.ndim != 4:
            raise ValueError(f"features must be (frames, h, w, channels), got {tuple(features.shape)}")
        labels = torch.as_tensor(labels)
        if labels.ndim != 3 or tuple(labels.shape[:2]) != tuple(features.shape[1:3]):
            raise ValueError(
                f"labels must be (h, w, K) = ({features.shape[1]}, {features.shape[2]}, K) like the features, "
                f"got {tuple(labels.shape)}"
            )
    steps = iter_propagate_labels(features, labels, n_context=n_context, temperature=temperature, topk=topk,
                                  radius=radius, restrict_neighborhood=restrict_neighborhood, norm_mask=norm_mask,
                                  chunk_size=chunk_size)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="propagating", unit="frame", total=len(features) if hasattr(features, "__len__") else None)
    return torch.stack(list(steps))


# Decoding ------------------------------------------------------------------------------------------------------------


def decode_mask_frame(prediction: torch.Tensor, label_map: np.ndarray, processing_hw, ori_hw):
    """One frame of :func:`decode_masks`: (h, w, K) -> ((ori_h, ori_w) int32, (height, width) int32)."""
    soft = np.asarray(torch.as_tensor(prediction).detach().float().cpu().numpy(), dtype=np.float32)
    upsampled = resize_linear(soft, processing_hw)
    processing = np.asarray(label_map, dtype=np.int32)[np.argmax(upsampled, axis=-1)]
    return resize_nearest_exact(processing, ori_hw), processing


def decode_masks(propagated, label_map: np.ndarray, processing_hw, ori_hw, return_processing: bool = False):
    """Propagated soft labels -> label ids at the original resolution (the notebook's ``process_segmentation``).

    Per frame: ``INTER_LINEAR`` upsampling to the processing size (:func:`resize_linear`), argmax over the classes,
    ``label_map`` lookup (int32), then OpenCV 4's ``INTER_NEAREST_EXACT`` resize to the original size
    (:func:`resize_nearest_exact`).

    Args:
        propagated: (T, h, w, K) soft labels (:func:`propagate_labels`).
        label_map: (K,) label id of each channel (:func:`encode_mask`).
        processing_hw: (height, width) processing size.
        ori_hw: (ori_h, ori_w) output size.
        return_processing: also return the (T, height, width) int32 maps before the final resize (what the
            notebook's visualisation shows, ``process_segmentation`` with ori = processing size).

    Returns:
        (T, ori_h, ori_w) int32 label ids, and the processing-size maps if ``return_processing``.
    """
    propagated = torch.as_tensor(propagated)
    if propagated.ndim != 4 or propagated.shape[-1] != len(label_map):
        raise ValueError(
            f"propagated must be (frames, h, w, K) with K = {len(label_map)} channels (one per label id), "
            f"got {tuple(propagated.shape)}"
        )
    processing_hw, ori_hw = _check_hw("processing_hw", processing_hw), _check_hw("ori_hw", ori_hw)
    pairs = [decode_mask_frame(frame, label_map, processing_hw, ori_hw) for frame in propagated]
    masks = np.stack([pair[0] for pair in pairs])
    if return_processing:
        return masks, np.stack([pair[1] for pair in pairs])
    return masks


def decode_pose(propagated, ori_hw, topk: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Propagated heatmaps -> keypoints (the notebook's ``process_pose``).

    Per joint channel (channel 0, the background, dropped): ``torch.topk`` over the h*w cells, weights = values / their
    sum, x = sum(weights * (i % w)) / w * ori_w, y = sum(weights * (i // w)) / h * ori_h (the cell corner, no +0.5).
    A joint whose channel sums to exactly 0 is invisible, with coordinates (-1, -1).

    Args:
        propagated: (T, h, w, J+1) heatmaps (:func:`propagate_labels` of :func:`encode_pose`).
        ori_hw: (ori_h, ori_w) original frame size.
        topk: cells averaged per joint (5).

    Returns:
        coords: (T, J, 2) float32 (x, y) pixels; visible: (T, J) bool.
    """
    propagated = torch.as_tensor(propagated)
    if propagated.ndim != 4 or propagated.shape[-1] < 2:
        raise ValueError(f"propagated must be (frames, h, w, J+1) heatmaps, got {tuple(propagated.shape)}")
    ori_h, ori_w = _check_hw("ori_hw", ori_hw)
    _, h, w, _ = propagated.shape
    if topk > h * w:
        raise ValueError(f"topk={topk} exceeds the {h * w} cells of the {h}x{w} grid")
    coords = []
    for frame in propagated.detach().float().cpu():
        pred = frame[..., 1:]
        flat = pred.flatten(0, 1)
        values, ids = torch.topk(flat, k=topk, dim=0)
        values /= values.sum(0)[None]
        xx, yy = ids % pred.shape[1], ids // pred.shape[1]
        coord = torch.stack([(xx * values).sum(0), (yy * values).sum(0)], dim=0)
        coord[0, :] = coord[0, :] / w * ori_w
        coord[1, :] = coord[1, :] / h * ori_h
        coord[:, flat.sum(0) == 0] = -1
        coords.append(coord.numpy().transpose(1, 0))
    coords = np.stack(coords).astype(np.float32)
    return coords, coords[..., 0] >= 0


def mask_near_ties(propagated, processing_hw, threshold: float = 1e-5) -> np.ndarray:
    """(T, height, width) bool: where the top-1 and top-2 upsampled soft labels are within ``threshold``.

    There the argmax of :func:`decode_masks` (and of the official code) depends on float rounding; the fixtures flag
    these pixels as ``masks_processing_near_tie``.
    """
    processing_hw = _check_hw("processing_hw", processing_hw)
    flags = []
    for frame in torch.as_tensor(propagated).detach().float().cpu():
        upsampled = resize_linear(frame.numpy(), processing_hw)
        if upsampled.shape[-1] < 2:
            flags.append(np.zeros(processing_hw, bool))
            continue
        top = np.partition(upsampled, -2, axis=-1)[..., -2:]
        flags.append(top[..., 1] - top[..., 0] <= threshold)
    return np.stack(flags)


def pose_decode_ties(propagated, topk: int = 5, rtol: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """((T, J) exact, (T, J) near) flags: the ``topk``-th and next largest values of a joint's channel are bitwise equal
    (exact) or within ``rtol`` relative (near), and positive: there :func:`decode_pose` depends on the top-k tie order
    (propagation copies Gaussian values exactly)."""
    heat = torch.as_tensor(propagated).detach().float().cpu()[..., 1:]
    frames, h, w, joints = heat.shape
    values = torch.topk(heat.reshape(frames, h * w, joints), k=topk + 1, dim=1).values  # (T, k+1, J)
    last, following = values[:, topk - 1], values[:, topk]
    positive = (last > 0) & (following > 0)
    exact = positive & (last == following)
    near = positive & ((last - following).abs() <= rtol * torch.maximum(last.abs(), following.abs()))
    return exact.numpy(), near.numpy()


# Processing size and memory ------------------------------------------------------------------------------------------


def default_resolution(ori_hw, patch_size: int, tokens: int = DAVIS_GRID_TOKENS) -> tuple[int, int]:
    """A processing size for a video of size ``ori_hw``: about ``tokens`` grid cells (the DAVIS protocol's 30x55),
    the video's aspect ratio, multiples of ``patch_size``, never larger than the video (rounded down to the patch)."""
    ori_h, ori_w = _check_hw("ori_hw", ori_hw)
    grid_h = max(1, round(math.sqrt(tokens * ori_h / ori_w)))
    grid_w = max(1, round(grid_h * ori_w / ori_h))
    grid_h = max(1, min(grid_h, ori_h // patch_size))
    grid_w = max(1, min(grid_w, ori_w // patch_size))
    return grid_h * patch_size, grid_w * patch_size


def estimate_memory_bytes(processing_hw, patch_size: int, hidden_size: int, num_heads: int, num_frames: int,
                          num_classes: int, n_context: int = 20, chunk_size: int | None = None,
                          frames_per_call: int = 8) -> int:
    """Rough upper estimate of the peak memory of :func:`propagate_mask` at a processing size (bytes), beyond the
    loaded libraries and weights.

    Counts the resized frames (uint8 and float32), the (T, N, C) features, the backbone's attention scores
    (``num_heads * N^2`` float32, three live copies, for the ``frames_per_call`` frames the feature extractor runs at
    once; 8 for ``dense_feature_extractor``) and activations (~16 ``N * C`` float32 tensors per frame), and the
    propagation (context queue, one affinity chunk). It is meant to refuse sizes that cannot fit, not to predict.
    """
    height, width = _check_hw("processing_hw", processing_hw)
    tokens = (height // patch_size) * (width // patch_size)
    frames = num_frames * height * width * 3 * (1 + 4)
    features = num_frames * tokens * hidden_size * 4
    backbone = min(frames_per_call, num_frames) * (3 * num_heads * tokens**2 * 4 + 16 * tokens * hidden_size * 4)
    chunk = chunk_size or default_chunk_size(tokens, n_context)
    propagation = (n_context + 1) * tokens * (hidden_size + num_classes) * 4 + 3 * chunk * (n_context + 1) * tokens * 4
    return int(frames + features + backbone + propagation)


def available_memory_bytes() -> int:
    """Memory this process may still use: the system's available memory (psutil), or 4 GiB if psutil is absent."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover
        return 4 << 30


def check_memory(processing_hw, patch_size: int, hidden_size: int, num_heads: int, num_frames: int,
                 num_classes: int, n_context: int = 20, limit_bytes: int | None = None) -> int:
    """Raise a one-line ValueError if :func:`estimate_memory_bytes` exceeds ``limit_bytes`` (default: available)."""
    needed = estimate_memory_bytes(processing_hw, patch_size, hidden_size, num_heads, num_frames, num_classes,
                                   n_context)
    limit = available_memory_bytes() if limit_bytes is None else limit_bytes
    if needed > limit:
        height, width = processing_hw
        raise ValueError(
            f"resolution {height}x{width} ({height // patch_size}x{width // patch_size} tokens of patch {patch_size}, "
            f"{num_frames} frames) needs about {needed / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB "
            f"available; use a smaller --resolution or --num-frames"
        )
    return needed


# Models and videos ---------------------------------------------------------------------------------------------------


def resize_frames(video: np.ndarray, size) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, height, width, 3) uint8, whole frame, ``PIL.Image.resize((W, H), LANCZOS)`` per frame
    (what ``mediapy.resize_video`` does in the notebooks; no crop)."""
    from PIL import Image

    height, width = _check_hw("size", size)
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"video must be (frames, height, width, 3) uint8, got {video.dtype} {video.shape}")
    if video.shape[1:3] == (height, width):
        return video
    return np.stack([np.asarray(Image.fromarray(frame).resize((width, height), Image.LANCZOS)) for frame in video])


def _as_uint8_video(video) -> np.ndarray:
    video = np.asarray(video.numpy() if isinstance(video, torch.Tensor) else video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be (frames, height, width, 3) uint8 or float in [0, 1], got {video.shape}")
    if video.dtype != np.uint8:
        video = np.clip(np.round(video.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return video


def to_model_input(frames_uint8: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float32 in [0, 1] (``u8 / 255``, the notebooks' formula)."""
    return torch.from_numpy(frames_uint8).permute(0, 3, 1, 2).float() / 255.0


def _extractor(model_or_extractor) -> FeatureExtractor:
    """A model -> ``dense_feature_extractor(model)``; a plain callable (T, 3, H, W) -> (T, h, w, C) is used as is."""
    if isinstance(model_or_extractor, torch.nn.Module):
        from rep4d.modeling.backbone_adapters import dense_feature_extractor

        return dense_feature_extractor(model_or_extractor)
    if callable(model_or_extractor):
        return model_or_extractor
    raise TypeError("pass a rep4d/transformers model or a callable mapping (T, 3, H, W) frames to (T, h, w, C)")


def _patch_size(model_or_extractor) -> int | None:
    """The spatial stride of a model's token grid (pixels per token), from its config: ``patch_size`` (ViTs, RVM),
    the spatial part of a 3-D ``tubelet_size`` (4DS) or the product of ``conv_strides`` (MooG's encoder)."""
    config = getattr(model_or_extractor, "config", None)
    patch = getattr(config, "patch_size", None)
    tubelet = getattr(config, "tubelet_size", None)
    strides = getattr(config, "conv_strides", None)
    if not patch and isinstance(tubelet, list | tuple) and len(tubelet) == 3:
        patch = tubelet[-1]
    if not patch and strides:
        patch = math.prod(int(stride) for stride in strides)
    if isinstance(patch, list | tuple):
        patch = patch[-1]
    return int(patch) if patch else None


def _resolution(model_or_extractor, ori_hw, resolution) -> tuple[int, int]:
    if resolution is not None:
        return _check_hw("resolution", resolution)
    patch = _patch_size(model_or_extractor)
    return default_resolution(ori_hw, patch) if patch else tuple(ori_hw)


def extract_features(model_or_extractor, frames_uint8: np.ndarray) -> torch.Tensor:
    """Processing-size uint8 frames (T, H, W, 3) -> (T, h, w, C) features, checked."""
    features = torch.as_tensor(_extractor(model_or_extractor)(to_model_input(frames_uint8)))
    if features.ndim != 4 or features.shape[0] != len(frames_uint8):
        raise ValueError(
            f"the feature extractor must return ({len(frames_uint8)}, h, w, C) grid features, got {tuple(features.shape)}"
        )
    return features.detach().float().cpu()


@dataclass
class MaskPropagation:
    """Result of :func:`propagate_mask`.

    Args:
        masks: (T, H, W) int32 label ids at the video's resolution.
        labels: (T, h, w, K) propagated soft labels on the feature grid.
        label_map: (K,) the label id of each channel.
        processing_hw: (height, width) the frames were resized to.
    """

    masks: np.ndarray
    labels: torch.Tensor
    label_map: np.ndarray
    processing_hw: tuple[int, int]

    @property
    def label_ids(self) -> np.ndarray:
        return self.label_map


@dataclass
class KeypointPropagation:
    """Result of :func:`propagate_keypoints`.

    Args:
        points: (T, J, 2) float32 pixel (x, y) in the video's frame (-1 where invisible).
        visible: (T, J) bool.
        heatmaps: (T, h, w, J+1) propagated heatmaps (channel 0: background).
        processing_hw: (height, width) the frames were resized to.
    """

    points: np.ndarray
    visible: np.ndarray
    heatmaps: torch.Tensor
    processing_hw: tuple[int, int]


def propagate_mask(model_or_extractor, video, first_frame_mask: np.ndarray, resolution=None,
                   **options) -> MaskPropagation:
    """Propagate a first-frame segmentation mask through ``video``, as the DAVIS/VIP evaluation does.

    Args:
        model_or_extractor: a model (features from ``rep4d.modeling.backbone_adapters.dense_feature_extractor``) or
            a callable mapping (T, 3, H, W) float frames in [0, 1] to (T, h, w, C) grid features.
        video: (T, H, W, 3) uint8 (or float in [0, 1], quantised to uint8 first).
        first_frame_mask: (H, W) integer label ids of frame 0 (0 is usually background).
        resolution: (height, width) processing size (480x880 for DAVIS); default: :func:`default_resolution` from
            the model's patch size (about the DAVIS protocol's 30x55 tokens), or the video's size for a callable.
        options: :func:`propagate_labels` options (``n_context``, ``temperature``, ``topk``, ``radius``, ...).
    """
    video = _as_uint8_video(video)
    ori_hw = tuple(video.shape[1:3])
    mask = np.asarray(first_frame_mask)
    if mask.shape != ori_hw:
        raise ValueError(f"first_frame_mask must be (H, W) = {ori_hw} like the video's frames, got {mask.shape}")
    processing_hw = _resolution(model_or_extractor, ori_hw, resolution)
    features = extract_features(model_or_extractor, resize_frames(video, processing_hw))
    labels, label_map = encode_mask(mask, processing_hw, tuple(features.shape[1:3]))
    propagated = propagate_labels(features, labels, **options)
    masks = decode_masks(propagated, label_map, processing_hw, ori_hw)
    return MaskPropagation(masks, propagated, label_map, processing_hw)


def propagate_keypoints(model_or_extractor, video, first_frame_points, resolution=None,
                        **options) -> KeypointPropagation:
    """Propagate first-frame keypoints ((J, 2) pixel x, y) through ``video``, as the JHMDB evaluation does.

    Encoding :func:`encode_pose`, decoding :func:`decode_pose`; other arguments as :func:`propagate_mask`.
    """
    video = _as_uint8_video(video)
    ori_hw = tuple(video.shape[1:3])
    processing_hw = _resolution(model_or_extractor, ori_hw, resolution)
    features = extract_features(model_or_extractor, resize_frames(video, processing_hw))
    heat = encode_pose(np.asarray(first_frame_points, dtype=np.float32), ori_hw, tuple(features.shape[1:3]))
    propagated = propagate_labels(features, heat, **options)
    points, visible = decode_pose(propagated, ori_hw)
    return KeypointPropagation(points, visible, propagated, processing_hw)


# Video files, streamed ----------------------------------------------------------------------------------------------


@dataclass
class VideoInfo:
    """Header of a video file: ``height``, ``width``, ``fps`` (the stream's average rate) and ``num_frames`` (the
    header's count, 0 when unknown)."""

    height: int
    width: int
    fps: float
    num_frames: int


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video file's header (size, frame rate, frame count) without decoding it."""
    import av

    if not os.path.isfile(str(path)):
        raise FileNotFoundError(f"video file {path} does not exist")
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 8.0
        return VideoInfo(stream.codec_context.height, stream.codec_context.width, fps, int(stream.frames or 0))


def iter_video_frames(path: str | os.PathLike, num_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decode a video file one (H, W, 3) uint8 RGB24 frame at a time (PyAV; what ``mediapy.read_video`` returns)."""
    import av

    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            if num_frames is not None and index >= num_frames:
                break
            yield frame.to_ndarray(format="rgb24")


@dataclass
class VideoPropagation:
    """Summary of :func:`propagate_video`.

    Args:
        num_frames: frames processed.
        ori_hw: the video's (height, width); processing_hw: the size frames were resized to; grid_hw: token grid.
        fps: frame rate of the written overlay (the source's unless overridden).
        output: the overlay video written (or None).
        label_map: (K,) label ids of a mask propagation (None for keypoints).
        masks: (T, H, W) label ids if ``keep_results`` (uint8 when the ids fit), else None.
        points / visible: (T, J, 2) pixel (x, y) and (T, J) bool of a keypoint propagation.
        foreground_fraction: (T,) share of non-zero pixels in each propagated mask.
    """

    num_frames: int
    ori_hw: tuple[int, int]
    processing_hw: tuple[int, int]
    grid_hw: tuple[int, int]
    fps: float
    output: Path | None = None
    label_map: np.ndarray | None = None
    masks: np.ndarray | None = None
    points: np.ndarray | None = None
    visible: np.ndarray | None = None
    foreground_fraction: np.ndarray | None = None


def _model_memory_shape(model) -> tuple[int, int, int]:
    """(patch size, channels, attention heads) from a model's config, for :func:`check_memory`."""
    config = getattr(model, "config", None)
    patch = _patch_size(model) or 16
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "state_size", 0) or 768)
    heads = int(getattr(config, "num_attention_heads", 0) or 12)
    return patch, hidden, heads


def propagate_video(model_or_extractor, video_path: str | os.PathLike, mask: np.ndarray | None = None,
                    points: np.ndarray | None = None, output: str | os.PathLike | None = None, resolution=None,
                    num_frames: int | None = None, fps: float | None = None, keep_results: bool = False,
                    progress: bool = False, memory_limit_bytes: int | None = None, **options) -> VideoPropagation:
    """Propagate a first-frame mask or keypoints through a video file, streaming, and write the overlay video.

    Memory stays flat in the video's length at its resolution: frames are decoded one at a time and only their
    processing-size copies (``T * height * width * 3`` bytes) and the (T, h, w, C) features are kept; the propagation
    keeps its context queue (:func:`iter_propagate_labels`), and every frame is decoded, overlaid and written as soon as
    its prediction exists (a second decoding pass). Before anything runs, :func:`check_memory` refuses a processing
    size whose estimate exceeds the available memory (``memory_limit_bytes``) with a one-line ValueError.

    Args:
        model_or_extractor: a model (``dense_feature_extractor``) or a callable (T, 3, H, W) -> (T, h, w, C).
        video_path: any file FFmpeg reads.
        mask: (H, W) first-frame label ids at the video's size; or ``points``: (J, 2) first-frame pixel (x, y).
        output: overlay video to write (.mp4/.webm), or None.
        resolution: processing (height, width); default :func:`default_resolution` (about 30x55 tokens).
        num_frames: only the first N frames.
        fps: overlay frame rate (default: the source's).
        keep_results: also return all masks at the video's resolution (T*H*W bytes).
        options: :func:`propagate_labels` options.
    """
    from tqdm.auto import tqdm

    if (mask is None) == (points is None):
        raise ValueError("give exactly one of a first-frame mask or first-frame keypoints")
    info = probe_video(video_path)
    ori_hw = (info.height, info.width)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != ori_hw:
            raise ValueError(f"the first-frame mask must have the video's frame size {ori_hw} (H, W), got {mask.shape}")
    processing_hw = _resolution(model_or_extractor, ori_hw, resolution)
    patch, hidden, heads = _model_memory_shape(model_or_extractor)
    expected_frames = min(info.num_frames or num_frames or 1, num_frames or info.num_frames or 1)
    num_classes = len(np.unique(mask)) if mask is not None else len(points) + 1
    check_memory(processing_hw, patch, hidden, heads, expected_frames, num_classes, options.get("n_context", 20),
                 limit_bytes=memory_limit_bytes)

    frames = [
        resize_frames(frame[None], processing_hw)[0]
        for frame in tqdm(iter_video_frames(video_path, num_frames), desc="reading", unit="frame",
                          total=expected_frames, disable=not progress)
    ]
    if not frames:
        raise ValueError(f"{video_path} holds no decodable frame")
    features = extract_features(model_or_extractor, np.stack(frames))
    del frames
    grid_hw = tuple(features.shape[1:3])
    if mask is not None:
        labels, label_map = encode_mask(mask, processing_hw, grid_hw)
    else:
        labels, label_map = encode_pose(np.asarray(points, dtype=np.float32), ori_hw, grid_hw), None
    fps = fps or info.fps
    predictions = iter_propagate_labels(features, labels, **options)
    writer = VideoWriter(output, fps=fps) if output is not None else None
    colors = None
    kept_masks, kept_points, kept_visible, foreground = [], [], [], []
    dtype = np.uint8 if label_map is not None and int(label_map.max(initial=0)) <= 255 else np.int32
    try:
        steps = zip(iter_video_frames(video_path, len(features)), predictions)
        for frame, prediction in tqdm(steps, desc="propagating", unit="frame", total=len(features),
                                      disable=not progress):
            if label_map is not None:
                frame_mask, _ = decode_mask_frame(prediction, label_map, processing_hw, ori_hw)
                foreground.append(float((frame_mask != 0).mean()))
                if keep_results:
                    kept_masks.append(frame_mask.astype(dtype))
                frame_points = frame_visible = None
            else:
                frame_mask = None
                coords, seen = decode_pose(prediction[None], ori_hw)
                frame_points, frame_visible = coords[0], seen[0]
                kept_points.append(frame_points)
                kept_visible.append(frame_visible)
            if writer is not None:
                if colors is None:
                    from rep4d.visualization import distinct_colors

                    count = int(label_map.max(initial=0)) if label_map is not None else len(points)
                    colors = distinct_colors(max(count, 1))
                writer.write(overlay_frame(frame, frame_mask, frame_points, frame_visible, colors))
    except BaseException:
        if writer is not None:
            writer.close(commit=False)
        raise
    written = writer.close() if writer is not None else None
    return VideoPropagation(
        num_frames=len(features), ori_hw=ori_hw, processing_hw=tuple(processing_hw), grid_hw=grid_hw, fps=fps,
        output=written, label_map=label_map, masks=np.stack(kept_masks) if kept_masks else None,
        points=np.stack(kept_points) if kept_points else None,
        visible=np.stack(kept_visible) if kept_visible else None,
        foreground_fraction=np.asarray(foreground) if foreground else None,
    )


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    """``np.savez_compressed`` written atomically (temporary file, then rename): nothing partial is left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


# Overlays ------------------------------------------------------------------------------------------------------------


def overlay_frame(frame: np.ndarray, mask: np.ndarray | None = None, points: np.ndarray | None = None,
                  visible: np.ndarray | None = None, colors: np.ndarray | None = None, alpha: float = 0.5) -> np.ndarray:
    """One (H, W, 3) uint8 frame with its mask (one colour per non-zero label id) and/or keypoints drawn on it."""
    from rep4d.visualization import distinct_colors, draw_points, overlay_mask

    image = frame.astype(np.float32) / 255.0
    if colors is None:
        count = max(int(mask.max()) if mask is not None and mask.size else 0, len(points) if points is not None else 0)
        colors = distinct_colors(max(count, 1))
    if mask is not None:
        for label in np.unique(mask):
            if label != 0:
                image = overlay_mask(image, mask == label, color=colors[(int(label) - 1) % len(colors)], alpha=alpha)
    if points is not None:
        image = draw_points(image, points, colors[: len(points)], visible=visible, radius=3)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


class VideoWriter:
    """Write uint8 (H, W, 3) frames one at a time to .mp4 (H.264) or .webm (VP9), atomically (temp file + rename).

    ``fps`` may be fractional (e.g. 30000/1001); odd frame sizes are padded by one pixel for yuv420p.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 8.0):
        from fractions import Fraction

        import av

        self.path = Path(path)
        suffix = self.path.suffix.lower()
        codec = {".mp4": "libx264", ".webm": "libvpx-vp9"}.get(suffix)
        if codec is None:
            raise ValueError(f"unsupported overlay format {suffix!r}; use .mp4 or .webm")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.container = av.open(str(self.temporary), mode="w")
        self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        self.stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self.stream.options = {"crf": "18"}
        self.started = False

    def write(self, frame: np.ndarray) -> None:
        import av

        height, width = frame.shape[:2]
        frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        if not self.started:
            self.stream.height, self.stream.width = frame.shape[:2]
            self.started = True
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            self.container.mux(packet)

    def close(self, commit: bool = True) -> Path:
        try:
            if commit and self.started:
                for packet in self.stream.encode():
                    self.container.mux(packet)
        finally:
            self.container.close()
        if commit and self.started:
            os.replace(self.temporary, self.path)
            return self.path
        self.temporary.unlink(missing_ok=True)
        if commit:
            raise ValueError("no frame to write")
        return self.path

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        self.close(commit=kind is None)


def write_overlay(path: str | os.PathLike, video, masks=None, points=None, visible=None, fps: float = 8.0,
                  alpha: float = 0.5) -> Path:
    """Write ``video`` with its propagated masks and/or keypoints drawn on it, one frame at a time.

    Args:
        path: .mp4 or .webm file (written atomically).
        video: (T, H, W, 3) uint8 frames or any iterable of them (e.g. a decoder generator, to keep memory flat).
        masks: (T, H, W) label ids or an iterable of (H, W) maps (0 = background, not drawn).
        points / visible: (T, J, 2) pixel (x, y) and (T, J) flags.
        fps: frame rate of the written video (pass the source's).
    """
    from rep4d.visualization import distinct_colors

    count = max(int(np.max(masks)) if isinstance(masks, np.ndarray) and masks.size else 0,
                np.shape(points)[1] if points is not None else 0, 16)
    colors = distinct_colors(count)
    mask_iter = iter(masks) if masks is not None else None
    with VideoWriter(path, fps=fps) as writer:
        for t, frame in enumerate(video):
            frame = _as_uint8_video(np.asarray(frame)[None])[0]
            mask = next(mask_iter) if mask_iter is not None else None
            writer.write(overlay_frame(frame, mask, None if points is None else points[t],
                                       None if visible is None else visible[t], colors, alpha))
    return Path(path)


__all__ = [
    "encode_mask",
    "encode_pose",
    "normalize_features",
    "propagate_labels",
    "iter_propagate_labels",
    "decode_masks",
    "decode_mask_frame",
    "decode_pose",
    "mask_near_ties",
    "pose_decode_ties",
    "resize_nearest",
    "resize_nearest_exact",
    "resize_linear",
    "default_resolution",
    "estimate_memory_bytes",
    "check_memory",
    "resize_frames",
    "propagate_mask",
    "propagate_keypoints",
    "propagate_video",
    "probe_video",
    "iter_video_frames",
    "VideoPropagation",
    "write_overlay",
    "save_npz",
    "VideoWriter",
    "MaskPropagation",
    "KeypointPropagation",
]
