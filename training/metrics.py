"""Evaluation metrics of the 4D readout tasks, in plain numpy (``rep4d.training.metrics``).

These functions hold the maths once; the local ``evaluate`` modules shipped in the package under
``rep4d/training/metric_modules/<name>/<name>.py`` (``load_metric(name)``, or ``evaluate.load`` of
``metric_module_path(name)``; offline, and after a non-editable ``pip install .``) call them, and ``compute_metrics`` callbacks of the Trainer can call them
directly.

- :func:`compute_tapvid_metrics`: TAP-Vid point tracking (average Jaccard, occlusion accuracy, points within
  1/2/4/8/16 px), per video or per track, ``first`` and ``strided`` query modes. Same definitions (and the same
  floating-point operations) as the TAP-Vid reference ``evaluation_datasets.compute_tapvid_metrics``.
- :func:`abs_rel`: mean absolute relative depth error over valid pixels.
- :func:`box_iou` / :func:`mean_box_iou`: box IoU, averaged over visible boxes of every frame but the first.
- :func:`pose_epe`: camera-pose end-point error on the 8 corners of a virtual cube moved by the pose (R, t).
- :func:`top1_accuracy`: classification accuracy (with optional multi-clip averaging by :func:`average_clips`).
- :func:`score_task`: a readout task's metrics and its trivial baseline from its NAMED outputs and targets (one
  scorer per task of the registry :mod:`rep4d.configuration.readout_tasks`, in :data:`TASK_SCORERS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rep4d.configuration.readout_tasks import READOUT_TASK_SPECS, check_boxes, get_readout_task

TAPVID_THRESHOLDS = (1, 2, 4, 8, 16)
TAPVID_QUERY_MODES = ("first", "strided")


def _as_array(name: str, value, ndim: int, dtype=None) -> np.ndarray:
    array = np.asarray(value, dtype=dtype)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    return array


def compute_tapvid_metrics(
    query_points,
    gt_occluded,
    gt_tracks,
    pred_occluded,
    pred_tracks,
    query_mode: str = "first",
    get_trackwise_metrics: bool = False,
) -> dict[str, np.ndarray]:
    """TAP-Vid metrics of predicted point tracks.

    Coordinates are pixels on a 256x256 raster (rescale predictions and ground truth before calling).

    Args:
        query_points: (B, N, 3) query points as (t, y, x); only t (rounded to the nearest frame) is used.
        gt_occluded: (B, N, T) bool, True where the ground-truth point is occluded.
        gt_tracks: (B, N, T, 2) ground-truth positions as (x, y).
        pred_occluded: (B, N, T) bool, True where the prediction says occluded.
        pred_tracks: (B, N, T, 2) predicted positions as (x, y).
        query_mode: ``first`` evaluates the frames after the query frame; ``strided`` every frame but the query.
        get_trackwise_metrics: if True the values are per track (B, N) instead of per video (B,).

    Returns:
        ``occlusion_accuracy``, ``pts_within_{d}`` and ``jaccard_{d}`` for d in 1, 2, 4, 8, 16,
        ``average_jaccard`` and ``average_pts_within_thresh``. A within-threshold prediction has squared distance
        strictly below d^2; Jaccard is TP / (visible GT points + false positives). Divisions by zero give NaN
        (e.g. a track without visible points, trackwise).
    """
    query_points = _as_array("query_points", query_points, 3)
    gt_occluded = _as_array("gt_occluded", gt_occluded, 3, bool)
    pred_occluded = _as_array("pred_occluded", pred_occluded, 3, bool)
    gt_tracks = _as_array("gt_tracks", gt_tracks, 4)
    pred_tracks = _as_array("pred_tracks", pred_tracks, 4)
    if query_mode not in TAPVID_QUERY_MODES:
        raise ValueError(f"query_mode must be one of {TAPVID_QUERY_MODES}, got {query_mode!r}")
    batch, points, frames = gt_occluded.shape
    expected = {
        "query_points": (batch, points, 3),
        "pred_occluded": (batch, points, frames),
        "gt_tracks": (batch, points, frames, 2),
        "pred_tracks": (batch, points, frames, 2),
    }
    for name, array in (
        ("query_points", query_points),
        ("pred_occluded", pred_occluded),
        ("gt_tracks", gt_tracks),
        ("pred_tracks", pred_tracks),
    ):
        if array.shape != expected[name]:
            raise ValueError(
                f"{name} must have shape {expected[name]} to match gt_occluded {gt_occluded.shape}, got {array.shape}"
            )

    with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 is NaN by definition (see Returns)
        return _tapvid_metrics(query_points, gt_occluded, gt_tracks, pred_occluded, pred_tracks, query_mode,
                               get_trackwise_metrics)


def _tapvid_metrics(query_points, gt_occluded, gt_tracks, pred_occluded, pred_tracks, query_mode,
                    get_trackwise_metrics) -> dict[str, np.ndarray]:
    """The computation of :func:`compute_tapvid_metrics` on validated arrays (tapnet's operations, in its order)."""
    frames = gt_occluded.shape[2]
    summing_axis = (2,) if get_trackwise_metrics else (1, 2)
    eye = np.eye(frames, dtype=np.int32)
    if query_mode == "first":
        query_frame_to_eval_frames = np.cumsum(eye, axis=1) - eye  # frames strictly after the query frame
    else:
        query_frame_to_eval_frames = 1 - eye  # every frame but the query frame
    query_frame = np.round(query_points[..., 0]).astype(np.int32)
    if query_frame.size and (query_frame.min() < 0 or query_frame.max() >= frames):
        raise ValueError(f"query frames must lie in [0, {frames - 1}], got [{query_frame.min()}, {query_frame.max()}]")
    evaluation_points = query_frame_to_eval_frames[query_frame] > 0

    metrics = {}
    metrics["occlusion_accuracy"] = np.sum(
        np.equal(pred_occluded, gt_occluded) & evaluation_points, axis=summing_axis
    ) / np.sum(evaluation_points, axis=summing_axis)

    visible = np.logical_not(gt_occluded)
    pred_visible = np.logical_not(pred_occluded)
    all_frac_within, all_jaccard = [], []
    for threshold in TAPVID_THRESHOLDS:
        within_dist = np.sum(np.square(pred_tracks - gt_tracks), axis=-1) < np.square(threshold)
        is_correct = np.logical_and(within_dist, visible)
        # Fraction of ground-truth-visible points within the threshold, whatever the predicted visibility.
        count_correct = np.sum(is_correct & evaluation_points, axis=summing_axis)
        count_visible_points = np.sum(visible & evaluation_points, axis=summing_axis)
        frac_correct = count_correct / count_visible_points
        metrics[f"pts_within_{threshold}"] = frac_correct
        all_frac_within.append(frac_correct)

        true_positives = np.sum(is_correct & pred_visible & evaluation_points, axis=summing_axis)
        # TP + FN is the number of visible ground-truth points; false positives are predicted-visible points that
        # are occluded in the ground truth or too far away.
        gt_positives = np.sum(visible & evaluation_points, axis=summing_axis)
        false_positives = ((~visible) & pred_visible) | ((~within_dist) & pred_visible)
        false_positives = np.sum(false_positives & evaluation_points, axis=summing_axis)
        jaccard = true_positives / (gt_positives + false_positives)
        metrics[f"jaccard_{threshold}"] = jaccard
        all_jaccard.append(jaccard)
    metrics["average_jaccard"] = np.mean(np.stack(all_jaccard, axis=1), axis=1)
    metrics["average_pts_within_thresh"] = np.mean(np.stack(all_frac_within, axis=1), axis=1)
    return metrics


def rescale_tracks(tracks, image_size, target_size=(256, 256)) -> np.ndarray:
    """(..., 2) (x, y) pixel coordinates of an (H, W) frame -> the same points on a ``target_size`` raster."""
    height, width = image_size
    target_height, target_width = target_size
    tracks = np.asarray(tracks, dtype=np.float64)
    return tracks * np.array([target_width / width, target_height / height])


def abs_rel(predictions, references, valid_mask=None) -> float:
    """Mean |pred - gt| / gt over valid pixels (default: finite ground truth > 0), pooled over all pixels."""
    predictions = np.asarray(predictions, dtype=np.float64)
    references = np.asarray(references, dtype=np.float64)
    if predictions.shape != references.shape:
        raise ValueError(f"depth predictions {predictions.shape} and references {references.shape} must match")
    valid = np.isfinite(references) & (references > 0)
    if valid_mask is not None:
        valid_mask = np.asarray(valid_mask, dtype=bool)
        if valid_mask.shape != references.shape:
            raise ValueError(f"valid_mask must have shape {references.shape}, got {valid_mask.shape}")
        valid &= valid_mask
    if not valid.any():
        raise ValueError("abs_rel needs at least one valid pixel (finite ground-truth depth > 0 inside the mask)")
    return float(np.mean(np.abs(predictions[valid] - references[valid]) / references[valid]))


def _boxes(name: str, boxes) -> np.ndarray:
    """(..., 4) float64 boxes (ymin, xmin, ymax, xmax), checked by the boxes task's rule (min <= max; predictions
    may leave [0, 1])."""
    return check_boxes(name, np.asarray(boxes, dtype=np.float64), normalised=False)


def box_iou(boxes_a, boxes_b) -> np.ndarray:
    """Elementwise IoU of (..., 4) boxes (ymin, xmin, ymax, xmax); two empty boxes have IoU 0."""
    a, b = _boxes("boxes_a", boxes_a), _boxes("boxes_b", boxes_b)
    if a.shape != b.shape:
        raise ValueError(f"box arrays must have the same shape, got {a.shape} and {b.shape}")
    inter_h = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_w = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    intersection = inter_h * inter_w
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


def mean_box_iou(predictions, references, visible=None) -> float:
    """Mean IoU of (B, O, T, 4) box tracks over visible boxes of frames 1..T-1 (frame 0 is the given query)."""
    predictions = _boxes("predictions", predictions)
    references = _boxes("references", references)
    if predictions.ndim != 4 or predictions.shape != references.shape:
        raise ValueError(
            f"box predictions and references must both be (B, O, T, 4), got {predictions.shape} and {references.shape}"
        )
    if predictions.shape[2] < 2:
        raise ValueError("mean box IoU excludes the first frame, so box tracks need at least 2 frames")
    iou = box_iou(predictions, references)[:, :, 1:]
    if visible is None:
        weights = np.ones_like(iou, dtype=bool)
    else:
        visible = np.asarray(visible, dtype=bool)
        if visible.shape != predictions.shape[:3]:
            raise ValueError(f"box visibility must have shape {predictions.shape[:3]} (B, O, T), got {visible.shape}")
        weights = visible[:, :, 1:]
    if not weights.any():
        raise ValueError("mean box IoU needs at least one visible box after the first frame")
    return float(iou[weights].mean())


def cube_corners(size: float = 1.0) -> np.ndarray:
    """The 8 corners (8, 3) of an axis-aligned cube of side ``size`` centred at the origin."""
    half = size / 2.0
    return np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)], dtype=np.float64)


def pose_epe(pred_rotation, gt_rotation, pred_translation=None, gt_translation=None, cube_size: float = 1.0) -> float:
    """Camera-pose end-point error: mean distance between the 8 corners of a virtual cube moved by each pose.

    Rotations are (B, 3, 3); optional translations (B, 3). Each corner c goes to R c + t; the error is the mean
    Euclidean distance between the predicted and ground-truth corners over corners and batch.
    """
    pred_rotation = np.asarray(pred_rotation, dtype=np.float64)
    gt_rotation = np.asarray(gt_rotation, dtype=np.float64)
    if pred_rotation.ndim != 3 or pred_rotation.shape[1:] != (3, 3) or pred_rotation.shape != gt_rotation.shape:
        raise ValueError(f"rotations must both be (B, 3, 3), got {pred_rotation.shape} and {gt_rotation.shape}")
    corners = cube_corners(cube_size)
    pred_points = np.einsum("bij,kj->bki", pred_rotation, corners)
    gt_points = np.einsum("bij,kj->bki", gt_rotation, corners)
    if (pred_translation is None) != (gt_translation is None):
        raise ValueError("pass both pred_translation and gt_translation, or neither")
    if pred_translation is not None:
        pred_translation = np.asarray(pred_translation, dtype=np.float64)
        gt_translation = np.asarray(gt_translation, dtype=np.float64)
        expected = (pred_rotation.shape[0], 3)
        if pred_translation.shape != expected or gt_translation.shape != expected:
            raise ValueError(
                f"translations must be {expected}, got {pred_translation.shape} and {gt_translation.shape}"
            )
        pred_points = pred_points + pred_translation[:, None]
        gt_points = gt_points + gt_translation[:, None]
    return float(np.linalg.norm(pred_points - gt_points, axis=-1).mean())


def softmax(logits, axis: int = -1) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def average_clips(logits, num_clips: int) -> np.ndarray:
    """Multi-clip test-time averaging: softmax each clip's logits, then average consecutive groups of clips.

    (B * num_clips, K) logits -> (B, K) probabilities; clips of one video must be consecutive.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] % num_clips:
        raise ValueError(f"logits must be (videos * {num_clips} clips, classes), got {logits.shape}")
    return softmax(logits).reshape(-1, num_clips, logits.shape[-1]).mean(axis=1)


def top1_accuracy(predictions, references) -> float:
    """Fraction of examples whose arg-max class equals the label; ``predictions`` are (B, K) scores or (B,) ids."""
    predictions = np.asarray(predictions)
    references = np.asarray(references).astype(np.int64)
    predicted = predictions.argmax(axis=-1) if predictions.ndim == 2 else predictions.astype(np.int64)
    if predicted.shape != references.shape:
        raise ValueError(f"{predicted.shape[0]} predictions for {references.shape} labels")
    return float(np.mean(predicted == references))


# ----------------------------------------------------------------------------------------------------------------
# Readout task scores: one scorer per task of the registry, reading outputs and targets by name
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ScoringOptions:
    """What a task scorer needs besides outputs and targets: the frame ``image_size`` (H, W) (points), the TAP-Vid
    ``tapvid_query_mode`` (points; None: inferred from the queries), the training depth mean (depth baseline;
    None: the evaluation clips' mean), ``num_test_clips`` (classification clips per video), ``num_labels``, and the
    task's ``metric_settings`` from the registry (pose: ``cube_size``)."""

    image_size: tuple[int, int] | None = None
    tapvid_query_mode: str | None = None
    train_depth_mean: float | None = None
    num_test_clips: int = 1
    num_labels: int | None = None
    metric_settings: dict = field(default_factory=dict)


def _score_depth(outputs: dict, labels: dict, options: ScoringOptions) -> dict[str, float]:
    predicted, depth = np.asarray(outputs["predicted_depth"], np.float64), np.asarray(labels["depth"], np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    mean = float(depth[valid].mean()) if options.train_depth_mean is None else float(options.train_depth_mean)
    return {
        "abs_rel": abs_rel(predicted, depth, valid),
        "baseline_abs_rel": abs_rel(np.full_like(depth, mean), depth, valid),
        "rmse": float(np.sqrt(np.mean((predicted[valid] - depth[valid]) ** 2))),
    }


def _score_points(outputs: dict, labels: dict, options: ScoringOptions) -> dict[str, float]:
    from rep4d.training.tapvid import infer_query_mode

    query, gt_tracks = np.asarray(labels["query_points"]), np.asarray(labels["tracks"])
    gt_occluded = np.asarray(labels["occluded"])
    pred_tracks, pred_occluded = np.asarray(outputs["tracks"]), np.asarray(outputs["occluded"]).astype(bool)
    paired = infer_query_mode(query, gt_occluded)
    query_mode = options.tapvid_query_mode
    if query_mode is None:
        query_mode = paired
    elif query_mode == "first" and paired != "first":
        raise ValueError("query_mode 'first' scores only frames after the query and needs queries at each "
                         "track's first visible frame; these queries are not, so use 'strided' (or None)")
    raster = dict(image_size=options.image_size)
    gt_raster = rescale_tracks(gt_tracks, **raster)
    scores = compute_tapvid_metrics(query, gt_occluded, gt_raster, pred_occluded,
                                    rescale_tracks(pred_tracks, **raster), query_mode=query_mode)
    start = np.broadcast_to(query[:, :, None, [2, 1]], gt_tracks.shape)
    baseline = compute_tapvid_metrics(query, gt_occluded, gt_raster, np.zeros_like(gt_occluded, dtype=bool),
                                      rescale_tracks(start, **raster), query_mode=query_mode)
    result = {}
    for key in ("average_jaccard", "average_pts_within_thresh", "occlusion_accuracy"):
        result[key] = float(np.nanmean(scores[key]))
        result[f"baseline_{key}"] = float(np.nanmean(baseline[key]))
    for threshold in TAPVID_THRESHOLDS:
        result[f"pts_within_{threshold}"] = float(np.nanmean(scores[f"pts_within_{threshold}"]))
    return result


def _score_boxes(outputs: dict, labels: dict, options: ScoringOptions) -> dict[str, float]:
    boxes, visible = np.asarray(labels["boxes"], np.float64), np.asarray(labels["box_visible"], bool)
    still = np.broadcast_to(boxes[:, :, :1], boxes.shape)
    return {
        "mean_iou": mean_box_iou(np.asarray(outputs["boxes"], np.float64), boxes, visible),
        "baseline_mean_iou": mean_box_iou(still, boxes, visible),
    }


def _score_pose(outputs: dict, labels: dict, options: ScoringOptions) -> dict[str, float]:
    """End-point error of the full pose (rotation and translation); the baseline is the identity pose."""
    rotation = np.asarray(labels["camera_rotation"], np.float64)
    translation = np.asarray(labels["camera_translation"], np.float64)
    cube_size = float(options.metric_settings.get("cube_size", 1.0))
    identity = np.broadcast_to(np.eye(3), rotation.shape)
    return {
        "pose_epe": pose_epe(outputs["rotation"], rotation, outputs["translation"], translation, cube_size=cube_size),
        "rotation_epe": pose_epe(outputs["rotation"], rotation, cube_size=cube_size),
        "baseline_pose_epe": pose_epe(identity, rotation, np.zeros_like(translation), translation,
                                      cube_size=cube_size),
    }


def _score_classification(outputs: dict, labels: dict, options: ScoringOptions) -> dict[str, float]:
    logits, targets = np.asarray(outputs["logits"], np.float64), np.asarray(labels["labels"]).astype(np.int64)
    clips = options.num_test_clips
    if clips > 1:
        scores, targets = average_clips(logits, clips), targets[::clips]
    else:
        scores = logits
    classes = options.num_labels or scores.shape[-1]
    return {
        "top1_accuracy": top1_accuracy(scores, targets),
        "baseline_chance_accuracy": 1.0 / classes,
        "baseline_majority_accuracy": float(np.bincount(targets, minlength=classes).max() / len(targets)),
    }


# The scorer of each task of the registry (a test checks the keys are the registry's tasks).
TASK_SCORERS = {
    "depth": _score_depth,
    "points": _score_points,
    "boxes": _score_boxes,
    "pose": _score_pose,
    "classification": _score_classification,
}


def score_task(task: str, outputs: dict, labels: dict, options: ScoringOptions | None = None) -> dict[str, float]:
    """Metrics and trivial baselines of readout ``task`` from its outputs and targets by name (numpy arrays; the
    registry's ``output_fields`` and ``label_names``). ``options.metric_settings`` defaults to the registry's."""
    spec = get_readout_task(task)
    options = options or ScoringOptions()
    if not options.metric_settings and spec.metric_settings:
        options = replace(options, metric_settings=dict(spec.metric_settings))
    missing = [name for name in spec.output_fields if name not in outputs] + [
        name for name in spec.label_names if name not in labels]
    if missing:
        raise ValueError(f"scoring the {task} readout needs the output/target field(s) {missing}")
    return TASK_SCORERS[task](outputs, labels, options)


def beats_baseline(task: str, scores: dict, prefix: str = "eval_") -> bool | None:
    """Whether the task's main metric beats its trivial baseline (the registry's ``baseline_metric``; chance for
    classification); None when either is missing from ``scores``."""
    spec = READOUT_TASK_SPECS[task]
    value, baseline = scores.get(prefix + spec.main_metric), scores.get(prefix + spec.baseline_metric)
    if value is None or baseline is None:
        return None
    return bool(value > baseline if spec.greater_is_better else value < baseline)


METRIC_MODULES_DIR = Path(__file__).resolve().parent / "metric_modules"
METRIC_NAMES = ("tapvid", "abs_rel", "box_iou", "pose_epe", "top1")


def metric_module_path(name: str) -> Path:
    """Folder of the local ``evaluate`` module ``name`` (inside the installed package)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown rep4d metric {name!r}; available: {', '.join(METRIC_NAMES)}")
    path = METRIC_MODULES_DIR / name
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(
            f"the metric module {path / f'{name}.py'} is missing from the installed package; reinstall rep4d "
            "(setup.py ships metric_modules/*/*.py as package_data)"
        )
    return path


def load_metric(name: str, **kwargs):
    """The ``evaluate`` module of a rep4d metric by name (``tapvid``, ``abs_rel``, ``box_iou``, ``pose_epe``,
    ``top1``), loaded by path so it works offline; ``kwargs`` go to ``evaluate.load``."""
    import evaluate

    return evaluate.load(str(metric_module_path(name)), **kwargs)


__all__ = [
    "METRIC_NAMES",
    "metric_module_path",
    "load_metric",
    "TAPVID_THRESHOLDS",
    "compute_tapvid_metrics",
    "rescale_tracks",
    "abs_rel",
    "box_iou",
    "mean_box_iou",
    "cube_corners",
    "pose_epe",
    "softmax",
    "average_clips",
    "top1_accuracy",
    "ScoringOptions",
    "TASK_SCORERS",
    "score_task",
    "beats_baseline",
]
