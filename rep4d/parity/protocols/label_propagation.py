"""Parity runner for the ``protocols/label_propagation`` fixture cases: encode -> propagate -> decode (-> metric).

A case (``case.json`` with ``"family": "label_propagation"``) is either ``direct`` (the official functions called
with the case's hyper-parameters) or ``pipeline`` (``evaluate_davis`` / ``evaluate_jhmdb`` / ``evaluate_vip`` on one
sample). Its ``task`` is ``mask``/``davis``/``vip`` (segmentation) or ``pose``/``jhmdb`` (keypoints). Geometry
(``ori_hw``, ``processing_hw``, ``feature_hw``) and hyper-parameters are read from ``case.json``; every output goes
through the public functions of :mod:`rep4d.label_propagation` (and :mod:`rep4d.training.propagation_metrics` for the
pipeline metrics), with the tolerances of the fixture README, section 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rep4d.parity import ParityOutputs, Tolerance, load_case_arrays

MASK_TASKS = ("mask", "davis", "vip")
POSE_TASKS = ("pose", "jhmdb")

TOLERANCES = {
    "features_normalized": Tolerance(atol=1e-6),
    "labels_encoded": Tolerance(atol=1e-6),
    "label_map": Tolerance(exact=True),
    "mask_processing": Tolerance(exact=True),
    # A larger error than 1e-5 means a different top-k selection, i.e. a logic difference.
    "labels_propagated": Tolerance(atol=1e-5),
    # The argmax map is compared wherever the official soft labels are not on a near tie.
    "masks_processing": Tolerance(exact=True, unless="masks_processing_near_tie"),
    # After OpenCV-4's INTER_NEAREST_EXACT, at most 1e-4 of the pixels may differ.
    "masks": Tolerance(exact=True, max_mismatch_fraction=1e-4),
    # Keypoints: 1e-3 px wherever the official top-5 is not on a near tie; visibility exact.
    "coords": Tolerance(atol=1e-3, unless="decode_near_tie"),
    "visible": Tolerance(exact=True),
    # Tie flags are recomputed from the port's own soft labels: a flag sits at a threshold (1e-5 gap, or bitwise
    # equality), so a port within the labels_propagated tolerance may flip one; a small share of flips is allowed.
    "masks_processing_near_tie": Tolerance(exact=True, max_mismatch_fraction=1e-4),
    "decode_exact_tie": Tolerance(exact=True, max_mismatch_fraction=0.02),
    "decode_near_tie": Tolerance(exact=True, max_mismatch_fraction=0.02),
}
# Pipeline metrics: J/F/mIoU within 1e-4 (they need the OpenCV-4 final resize). JHMDB's PCK is exact only where all
# coords agree (README): on the same torch.topk over the same context layout they do.
METRIC_TOLERANCE = Tolerance(atol=1e-4)


def accepts_case(case: dict, case_dir: Path) -> bool:
    return case.get("family") == "label_propagation" and case.get("task") in MASK_TASKS + POSE_TASKS


def _geometry(case: dict) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    geometry = case.get("geometry") or {}
    try:
        return tuple(geometry["ori_hw"]), tuple(geometry["processing_hw"]), tuple(geometry["feature_hw"])
    except KeyError as missing:
        raise ValueError(f"case.json geometry lacks {missing} (expected ori_hw, processing_hw, feature_hw)") from None


def _hyperparameters(case: dict) -> dict:
    hyper = dict(case.get("hyperparameters") or {})
    allowed = {"n_context", "temperature", "topk", "radius", "restrict_neighborhood", "norm_mask"}
    unknown = set(hyper) - allowed
    if unknown:
        raise ValueError(f"unknown label-propagation hyper-parameters {sorted(unknown)} (known: {sorted(allowed)})")
    return hyper


def _davis_metrics(gt_masks: np.ndarray, masks: np.ndarray) -> dict:
    from rep4d.training.propagation_metrics import davis_summary, davis_video_scores

    scores = davis_video_scores(gt_masks, masks)
    summary = davis_summary([scores])
    arrays = {"J_per_object_frame": scores.J, "F_per_object_frame": scores.F}
    arrays.update({key: np.asarray(summary[key]) for key in ("J_mean", "F_mean", "JF_mean")})
    arrays.update({key: np.asarray(summary[key])[0] for key in ("JM", "FM", "FJM", "counters")})
    return arrays


def _vip_metrics(gt_masks: np.ndarray, masks: np.ndarray) -> dict:
    from rep4d.parity.protocols.propagation_metrics import vip_arrays
    from rep4d.training.propagation_metrics import VIP_CLASSES, vip_confusion

    return vip_arrays(vip_confusion(gt_masks, masks, len(VIP_CLASSES)), VIP_CLASSES)


def _jhmdb_metrics(gt_pose: np.ndarray, coords: np.ndarray, visible: np.ndarray) -> dict:
    from rep4d.training.propagation_metrics import jhmdb_pck

    result = jhmdb_pck([gt_pose], [coords], [visible])
    arrays = {"human_boxes": np.stack(result["human_boxes"])}
    arrays.update({f"dist_joint{joint:02d}": dist for joint, dist in result["distances"].items()})
    arrays.update({key: result[key] for key in ("pck_thresholds", "pck", "pck_per_joint")})
    return arrays


def _metrics_available() -> bool:
    try:
        import rep4d.training.propagation_metrics  # noqa: F401
    except ImportError:
        return False
    return True


def run_case(case_dir: Path, case: dict) -> ParityOutputs:
    import torch

    from rep4d.label_propagation import (
        decode_masks,
        decode_pose,
        encode_mask,
        encode_pose,
        mask_near_ties,
        normalize_features,
        pose_decode_ties,
        propagate_labels,
        resize_nearest,
    )

    ori_hw, processing_hw, grid_hw = _geometry(case)
    hyper = _hyperparameters(case)
    inputs = load_case_arrays(case_dir / "inputs.npz")
    if "features" not in inputs:
        raise ValueError(f"{case_dir}/inputs.npz lacks 'features' (T, h, w, C)")
    features = torch.from_numpy(inputs["features"])
    if tuple(features.shape[1:3]) != grid_hw:
        raise ValueError(f"features {tuple(features.shape)} do not match the case's feature_hw {grid_hw}")
    task = case["task"]
    pipeline = case.get("mode") == "pipeline"
    arrays: dict[str, np.ndarray] = {"features_normalized": normalize_features(features).numpy()}
    per_key = dict(TOLERANCES)

    if task in MASK_TASKS:
        mask = inputs.get("first_frame_mask")
        if mask is None:
            mask = inputs["gt_masks"][0]
        labels, label_map = encode_mask(mask, processing_hw, grid_hw)
        arrays.update(labels_encoded=labels.numpy(), label_map=label_map, mask_processing=resize_nearest(mask, processing_hw))
        propagated = propagate_labels(features, labels, **hyper)
        masks, masks_processing = decode_masks(propagated, label_map, processing_hw, ori_hw, return_processing=True)
        arrays.update(labels_propagated=propagated.numpy(), masks=masks, masks_processing=masks_processing,
                      masks_processing_near_tie=mask_near_ties(propagated, processing_hw))
        if pipeline and "gt_masks" in inputs and _metrics_available():
            if task == "davis":
                arrays.update(_davis_metrics(inputs["gt_masks"], masks))
            elif task == "vip":
                arrays.update(_vip_metrics(inputs["gt_masks"], masks))
                # Pixel counts move with the masks' allowed 1e-4 of differing pixels, per frame and in total.
                frame_pixels = ori_hw[0] * ori_hw[1]
                per_key["hist_per_frame"] = Tolerance(atol=1e-4 * frame_pixels)
                per_key["hist"] = Tolerance(atol=1e-4 * frame_pixels * len(masks))
    else:
        pose = inputs.get("pose")
        if pose is None:
            pose = inputs["gt_pose"][0]
        labels = encode_pose(pose, ori_hw, grid_hw)
        propagated = propagate_labels(features, labels, **hyper)
        coords, visible = decode_pose(propagated, ori_hw)
        exact_tie, near_tie = pose_decode_ties(propagated)
        arrays.update(labels_encoded=labels.numpy(), labels_propagated=propagated.numpy(), coords=coords,
                      visible=visible.astype(np.float64), decode_exact_tie=exact_tie, decode_near_tie=near_tie)
        if pipeline and "gt_pose" in inputs and _metrics_available():
            arrays.update(_jhmdb_metrics(inputs["gt_pose"], coords, visible.astype(np.float64)))
    return ParityOutputs(arrays, default=METRIC_TOLERANCE, per_key=per_key)
