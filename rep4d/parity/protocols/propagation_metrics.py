"""Parity runner for the ``protocols/metrics`` fixture cases: DAVIS J&F, JHMDB PCK and VIP mIoU on given predictions.

A case (``case.json`` with ``"family": "metrics"`` and ``"metric"`` one of ``davis_jf``, ``jhmdb_pck``,
``vip_miou``) holds per-video ground truth and predictions under ``video{i}/gt``, ``video{i}/pred`` (and
``video{i}/pred_visible`` for JHMDB). They go through the public functions of
:mod:`rep4d.training.propagation_metrics`, the same ones ``rep4d benchmark propagation`` uses, and every output key of
the case is produced. Tolerance: 1e-9 absolute, ``nan`` / ``inf`` must match (fixture README, section 3).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rep4d.parity import ParityOutputs, Tolerance, load_case_arrays

METRICS = ("davis_jf", "jhmdb_pck", "vip_miou")
TOLERANCE = Tolerance(atol=1e-9)


def accepts_case(case: dict, case_dir: Path) -> bool:
    return case.get("family") == "metrics" and case.get("metric") in METRICS


def _video_count(case: dict, inputs: dict) -> int:
    count = case.get("num_videos")
    if count is None:
        count = len({key.split("/")[0] for key in inputs if key.startswith("video") and key.endswith("/gt")})
    for index in range(int(count)):
        for key in (f"video{index}/gt", f"video{index}/pred"):
            if key not in inputs:
                raise ValueError(f"the metrics case lacks the input {key!r}")
    return int(count)


def run_davis(inputs: dict, num_videos: int) -> dict:
    from rep4d.training.propagation_metrics import davis_summary, davis_video_scores

    arrays, scores = {}, []
    for index in range(num_videos):
        video = davis_video_scores(inputs[f"video{index}/gt"], inputs[f"video{index}/pred"])
        arrays[f"video{index}/J"], arrays[f"video{index}/F"] = video.J, video.F
        scores.append(video)
    summary = davis_summary(scores)
    arrays.update({key: np.asarray(value) for key, value in summary.items()})
    return arrays


def run_jhmdb(inputs: dict, num_videos: int) -> dict:
    from rep4d.training.propagation_metrics import jhmdb_pck

    result = jhmdb_pck(
        [inputs[f"video{index}/gt"] for index in range(num_videos)],
        [inputs[f"video{index}/pred"] for index in range(num_videos)],
        [inputs[f"video{index}/pred_visible"] for index in range(num_videos)],
    )
    arrays = {f"video{index}/human_boxes": boxes for index, boxes in enumerate(result["human_boxes"])}
    arrays.update({f"dist_joint{joint:02d}": dist for joint, dist in result["distances"].items()})
    arrays.update({key: result[key] for key in ("pck_thresholds", "pck", "pck_per_joint")})
    return arrays


def run_vip(inputs: dict, num_videos: int, classes) -> dict:
    from rep4d.training.propagation_metrics import vip_confusion

    per_frame = np.concatenate(
        [vip_confusion(inputs[f"video{index}/gt"], inputs[f"video{index}/pred"], len(classes))
         for index in range(num_videos)]
    )
    return vip_arrays(per_frame, classes)


def vip_arrays(per_frame: np.ndarray, classes) -> dict:
    """The VIP parity arrays of (F, K, K) per-frame confusion matrices: ``hist_per_frame``, their sum ``hist``,
    ``iou_per_class`` (K,) in the order of ``classes`` and ``mean_iou``."""
    from rep4d.training.propagation_metrics import compute_iou

    hist = np.zeros((len(classes), len(classes)))
    for frame_hist in per_frame:
        hist += frame_hist
    mean_iou, per_class = compute_iou(hist, classes)
    return {
        "hist_per_frame": per_frame,
        "hist": hist,
        "iou_per_class": np.array([per_class[name] for name in classes], dtype=np.float64),
        "mean_iou": np.asarray(mean_iou, dtype=np.float64),
    }


def run_case(case_dir: Path, case: dict) -> ParityOutputs:
    from rep4d.training.propagation_metrics import VIP_CLASSES

    inputs = load_case_arrays(Path(case_dir) / "inputs.npz")
    num_videos = _video_count(case, inputs)
    metric = case["metric"]
    if metric == "davis_jf":
        arrays = run_davis(inputs, num_videos)
    elif metric == "jhmdb_pck":
        arrays = run_jhmdb(inputs, num_videos)
    else:
        arrays = run_vip(inputs, num_videos, tuple(case.get("classes") or VIP_CLASSES))
    return ParityOutputs(arrays, default=TOLERANCE)


def load_case(case_dir) -> tuple[dict, dict]:
    """(case.json, inputs) of a metrics case directory (for tests and notebooks)."""
    case_dir = Path(case_dir)
    return json.loads((case_dir / "case.json").read_text()), load_case_arrays(case_dir / "inputs.npz")
