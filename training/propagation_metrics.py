"""Metrics of the three label-propagation benchmarks, equal to the official RVM evaluation notebook.

``rep4d.training.propagation_metrics`` re-implements, in plain numpy (no OpenCV, no scikit-image), the metric cells of
``colabs/rvm_evaluation_demo.ipynb`` of google-deepmind/representations4d and the aggregation glue of its
``evaluate_davis`` / ``evaluate_jhmdb`` / ``evaluate_vip`` functions (cells 23-25):

- DAVIS-2017 J&F (cell 19, from davis2017-evaluation): :func:`db_eval_iou` (J, region Jaccard),
  :func:`db_eval_boundary` / :func:`f_measure` (F, boundary F-measure with ``bound_pix = ceil(0.008 * ||(H, W)||)``
  and a disk-shaped dilation), :func:`seg2bmap`; per video :func:`davis_video_scores` (frames 1..T-2, one row per
  object id 1..max GT id, the 10-slot ``JM/FM/FJM/counters`` of the notebook) and :func:`davis_summary`
  (``J_mean``, ``F_mean``, ``JF_mean`` = means over all objects of all videos).
- JHMDB PCK (cell 20, from UVC's ``eval_pck.py``): :func:`compute_human_boxes`, :func:`compute_distances`,
  :func:`compute_pck`, and :func:`jhmdb_pck` for PCK@0.1..0.5.
- VIP mIoU (cell 21): :func:`fast_hist`, :func:`compute_iou` with the notebook's 20 classes (:data:`VIP_CLASSES`).

The operations (and their floating-point dtypes) are those of the notebook, so the ``protocols/metrics`` fixtures are
reproduced to 1e-9 with the same ``nan`` / ``inf`` values. Two documented differences, both where the notebook crashes:
a predicted DAVIS id larger than the largest ground-truth id is treated as background (the notebook's
``np.eye(n_class + 1)[pred]`` raises IndexError), and more than :data:`DAVIS_MAX_OBJECTS` objects raise a ValueError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DAVIS_MAX_OBJECTS = 10
"""``n_max_class`` of ``evaluate_davis``: the number of per-object slots of ``JM/FM/FJM/counters``."""

DAVIS_BOUNDARY_THRESHOLD = 0.008
PCK_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
JHMDB_NUM_JOINTS = 15

VIP_CLASSES = (
    "background", "hat", "hair", "sun-glasses", "upper-clothes", "dress", "coat", "socks", "pants", "gloves",
    "scarf", "skirt", "torso-skin", "face", "right-arm", "left-arm", "right-leg", "left-leg", "right-shoe",
    "left-shoe",
)  # fmt: skip
"""The 20 VIP classes in the order of the notebook's ``compute_iou`` (class id = index)."""


# DAVIS: J (region) and F (boundary) ----------------------------------------------------------------------------------


def db_eval_iou(annotation: np.ndarray, segmentation: np.ndarray, void_pixels: np.ndarray | None = None):
    """Region similarity J: intersection over union of two binary masks, (..., H, W) -> (...,).

    J is 1 where both masks are empty (the DAVIS convention). Void pixels, if given, are ignored.
    """
    annotation = np.asarray(annotation).astype(bool)
    segmentation = np.asarray(segmentation).astype(bool)
    if annotation.shape != segmentation.shape:
        raise ValueError(f"annotation {annotation.shape} and segmentation {segmentation.shape} shapes differ")
    keep = np.ones_like(annotation) if void_pixels is None else ~np.asarray(void_pixels).astype(bool)
    inters = np.sum((segmentation & annotation) & keep, axis=(-2, -1))
    union = np.sum((segmentation | annotation) & keep, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        j = inters / union
    if j.ndim == 0:
        return 1 if np.isclose(union, 0) else j
    j[np.isclose(union, 0)] = 1
    return j


def disk(radius: float) -> np.ndarray:
    """(2r+1, 2r+1) uint8 disk footprint, ``x**2 + y**2 <= r**2`` (``skimage.morphology.disk``)."""
    offsets = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(offsets, offsets)
    return np.array((x**2 + y**2) <= radius**2, dtype=np.uint8)


def binary_dilate(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Binary dilation of an (H, W) mask by a centred, symmetric footprint whose rows are contiguous runs.

    Equal to ``cv2.dilate(mask.astype(uint8), footprint)`` for 0/1 inputs (constant border that never wins). Each
    footprint row is a horizontal window-OR (a cumulative sum), OR-ed into the output at that row offset.
    """
    mask = np.asarray(mask).astype(bool)
    footprint = np.asarray(footprint).astype(bool)
    size_y, size_x = footprint.shape
    if size_y % 2 == 0 or size_x % 2 == 0:
        raise ValueError(f"the footprint must have odd sides, got {footprint.shape}")
    ry, rx = size_y // 2, size_x // 2
    height, width = mask.shape
    padded = np.zeros((height, width + 2 * rx), np.int32)
    padded[:, rx : rx + width] = mask
    cumulative = np.zeros((height, width + 2 * rx + 1), np.int32)
    np.cumsum(padded, axis=1, out=cumulative[:, 1:])
    out = np.zeros((height, width), bool)
    row_cache: dict[tuple[int, int], np.ndarray] = {}
    for dy in range(-ry, ry + 1):
        columns = np.flatnonzero(footprint[dy + ry]) - rx
        if columns.size == 0:
            continue
        lo, hi = int(columns[0]), int(columns[-1])
        if hi - lo + 1 != columns.size:
            raise ValueError("every footprint row must be one contiguous run")
        if (lo, hi) not in row_cache:
            # window [x + lo, x + hi] of the mask = padded columns [x + rx + lo, x + rx + hi]
            row_cache[lo, hi] = (
                cumulative[:, rx + hi + 1 : rx + hi + 1 + width] - cumulative[:, rx + lo : rx + lo + width]
            ) > 0
        rows = row_cache[lo, hi]
        # out[y] |= rows[y + dy]
        if dy >= 0:
            out[: height - dy] |= rows[dy:]
        else:
            out[-dy:] |= rows[: height + dy]
    return out


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """(H, W) segmentation -> (H, W) bool map of 1-pixel boundaries, offset by half a pixel towards the origin."""
    seg = np.asarray(seg).astype(bool)
    if seg.ndim != 2:
        raise ValueError(f"seg2bmap takes one (H, W) mask, got shape {seg.shape}")
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def f_measure(foreground_mask: np.ndarray, gt_mask: np.ndarray, void_pixels: np.ndarray | None = None,
              bound_th: float = DAVIS_BOUNDARY_THRESHOLD) -> float:
    """Boundary F-measure of one predicted (H, W) mask against the ground truth.

    Boundaries match within ``bound_pix`` pixels: ``bound_th`` itself if >= 1, else ``ceil(bound_th * ||(H, W)||)``.
    F = 1 if both boundaries are empty, 0 if exactly one is.
    """
    foreground_mask = np.asarray(foreground_mask).astype(bool)
    gt_mask = np.asarray(gt_mask).astype(bool)
    keep = np.ones_like(foreground_mask) if void_pixels is None else ~np.asarray(void_pixels).astype(bool)
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(foreground_mask.shape))
    fg_boundary = seg2bmap(foreground_mask & keep)
    gt_boundary = seg2bmap(gt_mask & keep)
    footprint = disk(bound_pix)
    fg_dil = binary_dilate(fg_boundary, footprint)
    gt_dil = binary_dilate(gt_boundary, footprint)
    n_fg = int(np.sum(fg_boundary))
    n_gt = int(np.sum(gt_boundary))
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = int(np.sum(fg_boundary & gt_dil)) / float(n_fg)
        recall = int(np.sum(gt_boundary & fg_dil)) / float(n_gt)
    if precision + recall == 0:
        return 0
    return 2 * precision * recall / (precision + recall)


def db_eval_boundary(annotation: np.ndarray, segmentation: np.ndarray, void_pixels: np.ndarray | None = None,
                     bound_th: float = DAVIS_BOUNDARY_THRESHOLD):
    """Boundary F of binary masks: (T, H, W) -> (T,) float64, or (H, W) -> float."""
    annotation, segmentation = np.asarray(annotation), np.asarray(segmentation)
    if annotation.shape != segmentation.shape:
        raise ValueError(f"annotation {annotation.shape} and segmentation {segmentation.shape} shapes differ")
    if annotation.ndim == 3:
        scores = np.zeros(annotation.shape[0])
        for t in range(annotation.shape[0]):
            void = None if void_pixels is None else void_pixels[t]
            scores[t] = f_measure(segmentation[t], annotation[t], void, bound_th=bound_th)
        return scores
    if annotation.ndim == 2:
        return f_measure(segmentation, annotation, void_pixels, bound_th=bound_th)
    raise ValueError(f"db_eval_boundary takes (H, W) or (T, H, W) masks, got {annotation.ndim} dimensions")


@dataclass
class DavisVideoScores:
    """J and F of one DAVIS video, as ``evaluate_davis`` computes them.

    ``J``, ``F``: (n_objects, T-2) per object id 1..n_objects and frame 1..T-2 (the first frame is given and the last
    is not evaluated). ``JM``, ``FM``, ``FJM``, ``counter``: (10,) per-object means in the notebook's fixed slots.
    """

    J: np.ndarray
    F: np.ndarray
    JM: np.ndarray
    FM: np.ndarray
    FJM: np.ndarray
    counter: np.ndarray

    @property
    def num_objects(self) -> int:
        return int(self.J.shape[0])


def _label_video(name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 3 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise ValueError(f"{name} must be (T, H, W) integer label ids, got shape {array.shape} dtype {array.dtype}")
    if array.size and int(array.min()) < 0:
        raise ValueError(f"{name} must hold non-negative label ids, got {int(array.min())}")
    return array


def davis_video_scores(gt_masks, pred_masks) -> DavisVideoScores:
    """Score one video: ``gt_masks`` and ``pred_masks`` (T, H, W) integer label ids (0 = background).

    The objects are the ids 1..max(gt_masks) of the whole video; J and F are computed on frames 1..T-2.
    """
    gt = _label_video("gt_masks", gt_masks)
    pred = _label_video("pred_masks", pred_masks)
    if gt.shape != pred.shape:
        raise ValueError(f"gt_masks {gt.shape} and pred_masks {pred.shape} must have the same (T, H, W) shape")
    n_class = int(gt.max()) if gt.size else 0
    if n_class > DAVIS_MAX_OBJECTS:
        raise ValueError(f"DAVIS scoring supports at most {DAVIS_MAX_OBJECTS} object ids, the ground truth has {n_class}")
    gt, pred = gt[1:-1], pred[1:-1]
    num_frames = gt.shape[0]
    j_res = np.zeros((n_class, num_frames))
    f_res = np.zeros((n_class, num_frames))
    for index in range(n_class):
        gt_object, pred_object = gt == index + 1, pred == index + 1
        j_res[index, :] = db_eval_iou(gt_object, pred_object)
        f_res[index, :] = db_eval_boundary(gt_object, pred_object)
    jm, fm, fjm = np.zeros(DAVIS_MAX_OBJECTS), np.zeros(DAVIS_MAX_OBJECTS), np.zeros(DAVIS_MAX_OBJECTS)
    with np.errstate(invalid="ignore"):
        for index in range(n_class):
            jm[index] = np.nanmean(j_res[index]) if num_frames else np.nan
            fm[index] = np.nanmean(f_res[index]) if num_frames else np.nan
            fjm[index] = (jm[index] + fm[index]) / 2.0
    counter = np.zeros(DAVIS_MAX_OBJECTS)
    counter[:n_class] = 1
    return DavisVideoScores(j_res, f_res, jm, fm, fjm, counter)


def davis_summary(videos: list[DavisVideoScores]) -> dict:
    """Aggregate videos as ``evaluate_davis``: J_mean, F_mean, JF_mean (means over all objects of all videos) and
    the stacked (V, 10) ``JM``, ``FM``, ``FJM``, ``counters``."""
    if not videos:
        raise ValueError("DAVIS summary needs at least one scored video")
    jm = np.array([video.JM for video in videos])
    fm = np.array([video.FM for video in videos])
    fjm = np.array([video.FJM for video in videos])
    counters = np.array([video.counter for video in videos])
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "JF_mean": (fjm * counters).sum() / counters.sum(),
            "J_mean": (jm * counters).sum() / counters.sum(),
            "F_mean": (fm * counters).sum() / counters.sum(),
            "JM": jm,
            "FM": fm,
            "FJM": fjm,
            "counters": counters,
        }


# JHMDB: PCK ----------------------------------------------------------------------------------------------------------


def compute_human_boxes(gts, jnt_visible_set) -> list[np.ndarray]:
    """Per video, (T,) box sizes: 0.6 x the diagonal of the box around the GT joints that are PREDICTED visible.

    ``gts``: per video (T, J, 2) float32 (x, y); ``jnt_visible_set``: per video (T, J) predicted visibility (1/0).
    A frame with no predicted-visible joint gets 0.
    """
    human_boxes = []
    for nowgt, jnt_visible in zip(gts, jnt_visible_set):
        now_boxes = np.zeros(nowgt.shape[0])
        for t in range(nowgt.shape[0]):
            visible_pts = nowgt[t, jnt_visible[t] == 1]
            if visible_pts.size:
                min_pt, max_pt = visible_pts.min(axis=0), visible_pts.max(axis=0)
                now_boxes[t] = 0.6 * np.linalg.norm(max_pt - min_pt)
        human_boxes.append(now_boxes)
    return human_boxes


def compute_distances(gts, preds, human_boxes, jnt_visible_set, num_joints: int = JHMDB_NUM_JOINTS) -> dict:
    """{joint: distances}: ||pred - gt|| / box for every predicted-visible joint of frames 1..T-1, videos in order.

    A zero box gives ``inf`` (or ``nan`` for a zero error), which never counts as correct.
    """
    dist_all = {joint: np.array([]) for joint in range(num_joints)}
    with np.errstate(invalid="ignore", divide="ignore"):
        for nowgt, predres, now_boxes, jnt_visible in zip(gts, preds, human_boxes, jnt_visible_set):
            for joint in range(nowgt.shape[1]):
                for t in range(1, nowgt.shape[0]):
                    if jnt_visible[t, joint]:
                        distance = np.linalg.norm(predres[t, joint] - nowgt[t, joint]) / now_boxes[t]
                        dist_all[joint] = np.append(dist_all[joint], distance)
    return dist_all


def compute_pck(dist_all: dict, threshold: float) -> tuple[float, np.ndarray]:
    """(PCK, per-joint PCK) in percent at ``threshold``: 100 * count(dist <= thr) / count per joint, then the mean
    over joints (``nan`` if some joint has no distance at all)."""
    pck_all = np.zeros(len(dist_all))
    with np.errstate(invalid="ignore", divide="ignore"):
        for joint, distances in dist_all.items():
            pck_all[joint] = 100.0 * np.sum(distances <= threshold) / len(distances)
    return np.mean(pck_all), pck_all


def _pose_video(name: str, value, dtype=np.float32) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 3 or array.shape[-1] != 2:
        raise ValueError(f"{name} must be (T, joints, 2) pixel (x, y) coordinates, got shape {array.shape}")
    return array.astype(dtype, copy=False)


def jhmdb_pck(gts, preds, pred_visible, thresholds=PCK_THRESHOLDS) -> dict:
    """PCK over a list of videos, as ``evaluate_jhmdb``.

    Args:
        gts: per video (T, J, 2) float32 ground-truth (x, y) pixels.
        preds: per video (T, J, 2) float32 predicted (x, y) pixels (-1 where invisible).
        pred_visible: per video (T, J) predicted visibility (1.0 / 0.0).

    Returns ``human_boxes`` (per video (T,)), ``distances`` ({joint: array}), ``pck_thresholds`` (5,),
    ``pck`` (5,) and ``pck_per_joint`` (5, J), in percent.
    """
    if not (len(gts) == len(preds) == len(pred_visible)):
        raise ValueError(f"need as many predictions as ground truths, got {len(gts)}, {len(preds)}, {len(pred_visible)}")
    gts = [_pose_video("gt pose", gt) for gt in gts]
    preds = [_pose_video("predicted pose", pred) for pred in preds]
    visible = [np.asarray(v) for v in pred_visible]
    num_joints = gts[0].shape[1] if gts else JHMDB_NUM_JOINTS
    for gt, pred, seen in zip(gts, preds, visible):
        if pred.shape != gt.shape or seen.shape != gt.shape[:2]:
            raise ValueError(f"prediction {pred.shape} / visibility {seen.shape} do not match the ground truth {gt.shape}")
        if gt.shape[1] != num_joints:
            raise ValueError(f"every video must have {num_joints} joints, got {gt.shape[1]}")
    boxes = compute_human_boxes(gts, visible)
    distances = compute_distances(gts, preds, boxes, visible, num_joints=num_joints)
    pck, per_joint = zip(*(compute_pck(distances, threshold) for threshold in thresholds))
    return {
        "human_boxes": boxes,
        "distances": distances,
        "pck_thresholds": np.asarray(thresholds, dtype=np.float64),
        "pck": np.asarray(pck, dtype=np.float64),
        "pck_per_joint": np.stack(per_joint),
    }


# VIP: mIoU -----------------------------------------------------------------------------------------------------------


def fast_hist(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """(n, n) int64 confusion matrix (rows ground truth ``a``, columns prediction ``b``); GT outside 0..n-1 (e.g. the
    void label 255) is ignored."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"ground truth {a.shape} and prediction {b.shape} shapes differ")
    k = (a >= 0) & (a < n)
    predicted = b[k].astype(np.int64)
    if predicted.size and (predicted.min() < 0 or predicted.max() >= n):
        raise ValueError(f"predicted labels must be class ids in 0..{n - 1}, got {predicted.min()}..{predicted.max()}")
    return np.bincount(n * a[k].astype(int) + predicted, minlength=n**2).reshape(n, n)


def compute_iou(hist: np.ndarray, classes=VIP_CLASSES) -> tuple[float, dict]:
    """(mean IoU, {class name: IoU}) from a confusion matrix: diag / (row + column - diag); ``nan`` for a class in
    neither the ground truth nor the prediction, skipped by the mean (``nanmean``)."""
    hist = np.asarray(hist)
    if hist.shape != (len(classes), len(classes)):
        raise ValueError(f"the confusion matrix must be ({len(classes)}, {len(classes)}), got {hist.shape}")
    correct = np.diag(hist)
    union = hist.sum(1) + hist.sum(0) - correct
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = correct / union
        mean = np.nanmean(iou) if np.isfinite(iou).any() else float("nan")
    return mean, {name: iou[index] for index, name in enumerate(classes)}


def vip_confusion(gt_masks, pred_masks, num_classes: int = len(VIP_CLASSES)) -> np.ndarray:
    """(T, n, n) int64 per-frame confusion matrices of one video ((T, H, W) label ids each)."""
    gt = _label_video("gt_masks", gt_masks) if np.asarray(gt_masks).dtype != bool else np.asarray(gt_masks)
    pred = _label_video("pred_masks", pred_masks)
    if gt.shape != pred.shape:
        raise ValueError(f"gt_masks {gt.shape} and pred_masks {pred.shape} must have the same (T, H, W) shape")
    return np.stack([fast_hist(gt[t], pred[t], num_classes) for t in range(gt.shape[0])])


def bound_pixels(height: int, width: int, bound_th: float = DAVIS_BOUNDARY_THRESHOLD) -> float:
    """The boundary tolerance in pixels of an (H, W) frame: ``ceil(bound_th * ||(H, W)||)``."""
    return float(bound_th if bound_th >= 1 else math.ceil(bound_th * float(np.linalg.norm((height, width)))))


def davis_jf(gt_masks, pred_masks) -> float:
    """J&F mean of one video (frames 1..T-2 scored, as ``evaluate_davis``): :func:`davis_summary` of one video."""
    return float(davis_summary([davis_video_scores(np.asarray(gt_masks).astype(np.int64),
                                                   np.asarray(pred_masks).astype(np.int64))])["JF_mean"])


__all__ = [
    "davis_jf",
    "DAVIS_MAX_OBJECTS",
    "PCK_THRESHOLDS",
    "VIP_CLASSES",
    "DavisVideoScores",
    "binary_dilate",
    "bound_pixels",
    "compute_distances",
    "compute_human_boxes",
    "compute_iou",
    "compute_pck",
    "davis_summary",
    "davis_video_scores",
    "db_eval_boundary",
    "db_eval_iou",
    "disk",
    "f_measure",
    "fast_hist",
    "jhmdb_pck",
    "seg2bmap",
    "vip_confusion",
]
