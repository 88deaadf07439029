"""Pictures of readout predictions against ground truth: MP4 videos and PNG frames (``rep4d finetune/evaluate
--save-pictures N``).

For each clip ``i`` :func:`save_readout_pictures` writes ``clip_<i>_<task>.mp4`` (every frame) and
``clip_<i>_<task>.png`` (the middle frame):

* points: left ground truth, right prediction; one colour per track, filled squares where the point is visible
  (predicted visible on the right), hollow where occluded;
* boxes: left ground truth, right prediction, one colour per object (invisible ground-truth boxes are not drawn);
* depth: RGB | ground-truth depth | predicted depth (turbo colour map over the ground truth's valid range, invalid
  pixels black);
* pose and classification: ``clip_<i>_<task>.json`` with the prediction and the truth (and a PNG of the first and
  last frames for pose).

Small frames are enlarged (nearest neighbour) to at least 256 pixels high so that the overlays stay readable. The
written pictures and videos are labelled (:func:`rep4d.visualization.labelled_picture`): a title with the clip and
frame, a caption over every panel ("input", "ground truth", "prediction"), a legend for the markers and a colour bar
for depth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rep4d.visualization import (
    colormap,
    distinct_colors,
    draw_box,
    draw_points,
    labelled_picture,
    write_png,
    write_video,
)

MIN_HEIGHT = 256


def _display_frames(pixel_values: torch.Tensor, mean=None, std=None) -> np.ndarray:
    """(T, C, H, W) model input -> float (T, H, W, 3) in [0, 1], undoing the dataset's normalisation."""
    video = pixel_values.detach().float().cpu()
    if std is not None:
        video = video * torch.tensor(std).view(1, 3, 1, 1)
    if mean is not None:
        video = video + torch.tensor(mean).view(1, 3, 1, 1)
    return video.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def _enlarge(frames: np.ndarray, factor: int) -> np.ndarray:
    return frames if factor == 1 else frames.repeat(factor, axis=-3).repeat(factor, axis=-2)


def _side_by_side(*panels: np.ndarray) -> np.ndarray:
    gap = np.ones((*panels[0].shape[:-2], 2, 3), dtype=np.float32)
    parts = []
    for index, panel in enumerate(panels):
        if index:
            parts.append(gap)
        parts.append(panel.astype(np.float32))
    return np.concatenate(parts, axis=-2)


def track_pictures(frames, tracks, occluded, pred_tracks, pred_occluded, factor: int = 1) -> np.ndarray:
    """(T, H, W, 3) frames, (N, T, 2) tracks/(N, T) occlusion for truth and prediction -> (T, H', 2W'+2, 3)."""
    frames = _enlarge(frames, factor)
    colors = distinct_colors(max(len(tracks), 1))
    radius = max(1, factor)
    truth, prediction = [], []
    for t, frame in enumerate(frames):
        truth.append(draw_points(frame, (tracks[:, t] * factor), colors, ~occluded[:, t], radius))
        prediction.append(draw_points(frame, (pred_tracks[:, t] * factor), colors, ~pred_occluded[:, t], radius))
    return _side_by_side(np.stack(truth), np.stack(prediction))


def box_pictures(frames, boxes, visible, pred_boxes, factor: int = 1) -> np.ndarray:
    """(T, H, W, 3) frames, (O, T, 4) normalised boxes (+ (O, T) visibility) and predictions -> side by side."""
    frames = _enlarge(frames, factor)
    height, width = frames.shape[1:3]
    scale = np.array([height, width, height, width], dtype=np.float32)
    colors = distinct_colors(max(len(boxes), 1))
    truth, prediction = [], []
    for t, frame in enumerate(frames):
        left, right = frame, frame
        for obj in range(len(boxes)):
            if visible[obj, t]:
                left = draw_box(left, boxes[obj, t] * scale, colors[obj], thickness=max(1, factor // 2))
                right = draw_box(right, pred_boxes[obj, t] * scale, colors[obj], thickness=max(1, factor // 2))
        truth.append(left)
        prediction.append(right)
    return _side_by_side(np.stack(truth), np.stack(prediction))


def depth_range(depth) -> tuple[float, float]:
    """(min, max) of the valid (finite, > 0) ground-truth depth: the colour map's range."""
    valid = np.isfinite(depth) & (depth > 0)
    return (float(depth[valid].min()), float(depth[valid].max())) if valid.any() else (0.0, 1.0)


def depth_pictures(frames, depth, pred_depth, factor: int = 1) -> np.ndarray:
    """RGB | ground truth | prediction, colour-mapped over the ground truth's valid depth range."""
    valid = np.isfinite(depth) & (depth > 0)
    low, high = depth_range(depth)
    truth = np.where(valid[..., None], colormap(depth, low, high), 0.0)
    prediction = colormap(pred_depth, low, high)
    return _side_by_side(*(_enlarge(panel, factor) for panel in (frames, truth, prediction)))


POINT_LEGEND = [("patch", (0.6, 0.6, 0.6), "filled square: point visible"),
                ("hollow_square", (0.6, 0.6, 0.6), "hollow square: occluded (predicted occluded on the right)")]
TASK_TITLES = {"points": "Point tracking readout", "boxes": "Box tracking readout", "depth": "Depth readout"}


def split_panels(video: np.ndarray, count: int) -> list[np.ndarray]:
    """Undo :func:`_side_by_side`: (T, H, count*W + 2*(count-1), 3) -> ``count`` (T, H, W, 3) panels."""
    width = (video.shape[2] - 2 * (count - 1)) // count
    return [video[:, :, index * (width + 2): index * (width + 2) + width] for index in range(count)]


def labelled_frames(task: str, video: np.ndarray, clip_index: int, depth=None) -> list[np.ndarray]:
    """The side-by-side frames of :func:`track_pictures` / :func:`box_pictures` / :func:`depth_pictures` as labelled
    pictures (title, captions, legend, depth colour bar), one per frame."""
    title = f"{TASK_TITLES.get(task, task)}: clip {clip_index}"
    if task == "depth":
        low, high = depth_range(depth)
        panels = split_panels(video, 3)
        captions = ["input", "ground truth depth", "prediction"]
        extra = dict(colorbars=[dict(vmin=low, vmax=high, label="depth")],
                     notes=["turbo colour map over the ground truth's valid range; invalid pixels black"])
    else:
        panels = split_panels(video, 2)
        captions = ["ground truth", "prediction"]
        if task == "points":
            extra = dict(legend=POINT_LEGEND, notes=["one colour per track, the same in both panels"])
        else:
            extra = dict(notes=["one colour per object, the same in both panels; invisible ground-truth boxes are "
                                "not drawn"])
    return [labelled_picture([panel[t] for panel in panels], [f"{caption}: frame {t}" for caption in captions],
                             title=title, **extra) for t in range(len(video))]


def save_readout_pictures(model, dataset, folder, count: int, fps: float = 4.0) -> list[Path]:
    """Run ``model`` on the first ``count`` clips of a :class:`~rep4d.training.readout_data.ReadoutDataset` and write
    the pictures described in the module docstring into ``folder``; returns the written paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    task = model.config.task
    config = dataset.config
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    written = []
    try:
        for index in range(min(int(count), len(dataset))):
            example = dataset[index]
            frames = _display_frames(example["pixel_values"], config.pixel_mean, config.pixel_std)
            factor = max(1, int(np.ceil(MIN_HEIGHT / frames.shape[1])))
            inputs = {"pixel_values": example["pixel_values"][None].to(device)}
            if task == "points":
                inputs["query_points"] = example["query_points"][None].to(device)
            if task == "boxes":
                inputs["query_boxes"] = example["boxes"][None, :, 0].to(device)
            with torch.no_grad():
                outputs = model(**inputs)
            stem = folder / f"clip_{index:03d}_{task}"
            if task == "points":
                video = track_pictures(
                    frames, example["tracks"].numpy(), example["occluded"].numpy(),
                    outputs.tracks[0].float().cpu().numpy(), outputs.occluded[0].cpu().numpy(), factor,
                )
            elif task == "boxes":
                video = box_pictures(frames, example["boxes"].numpy(), example["box_visible"].numpy(),
                                     outputs.boxes[0].float().cpu().numpy(), factor)
            elif task == "depth":
                video = depth_pictures(frames, example["depth"].numpy(),
                                       outputs.predicted_depth[0].float().cpu().numpy(), factor)
            else:
                if task == "pose":
                    record = {"predicted_rotation": outputs.rotation[0].tolist(),
                              "predicted_translation": outputs.translation[0].tolist(),
                              "camera_rotation": example["camera_rotation"].tolist(),
                              "camera_translation": example["camera_translation"].tolist()}
                    written.append(write_png(stem.with_suffix(".png"),
                                             _side_by_side(_enlarge(frames[0], factor), _enlarge(frames[-1], factor))))
                else:
                    names = getattr(model.config, "id2label", None) or {}
                    predicted = int(outputs.logits[0].argmax())
                    label = int(example["labels"])
                    record = {"predicted": predicted, "predicted_name": names.get(predicted),
                              "label": label, "label_name": names.get(label),
                              "logits": outputs.logits[0].float().tolist()}
                stem.with_suffix(".json").write_text(json.dumps(record, indent=2))
                written.append(stem.with_suffix(".json"))
                continue
            pictures = labelled_frames(task, video, index,
                                       example["depth"].numpy() if task == "depth" else None)
            written.append(write_video(stem.with_suffix(".mp4"), np.stack(pictures), fps=fps))
            written.append(write_png(stem.with_suffix(".png"), pictures[len(pictures) // 2]))
    finally:
        model.train(was_training)
    return written


__all__ = ["save_readout_pictures", "track_pictures", "box_pictures", "depth_pictures", "labelled_frames"]
