"""Label propagation against the official notebook's golden outputs (tests/fixtures/protocols/label_propagation).

Every case on disk runs through the public functions of rep4d.label_propagation at the fixture README's tolerances
(section 2), and through ``rep4d parity`` (the registered runner) with nothing left uncompared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rep4d.label_propagation import (
    decode_masks,
    decode_pose,
    encode_mask,
    encode_pose,
    normalize_features,
    propagate_labels,
    resize_nearest,
    resize_nearest_exact,
)
from rep4d.parity import load_case_arrays, run_parity

CASES = sorted(path.parent for path in (Path(__file__).parent / "fixtures/protocols/label_propagation").glob("*/case.json"))
MASK_TASKS = ("mask", "davis", "vip")


def load_case(case_dir: Path):
    case = json.loads((case_dir / "case.json").read_text())
    return case, load_case_arrays(case_dir / "inputs.npz"), load_case_arrays(case_dir / "outputs.npz")


def test_cases_are_present():
    assert len(CASES) >= 5, CASES


@pytest.mark.parametrize("case_dir", CASES, ids=[path.name for path in CASES])
def test_case_through_the_public_functions(case_dir):
    case, inputs, ref = load_case(case_dir)
    geometry = case["geometry"]
    ori_hw, processing_hw, grid_hw = (tuple(geometry[key]) for key in ("ori_hw", "processing_hw", "feature_hw"))
    hyper = case["hyperparameters"]
    features = torch.from_numpy(inputs["features"])
    if "features_normalized" in ref:
        np.testing.assert_allclose(normalize_features(features).numpy(), ref["features_normalized"], rtol=0, atol=1e-6)

    if case["task"] in MASK_TASKS:
        mask = inputs["first_frame_mask"]
        labels, label_map = encode_mask(mask, processing_hw, grid_hw)
        np.testing.assert_array_equal(label_map, ref["label_map"])
        assert label_map.dtype == ref["label_map"].dtype
        np.testing.assert_array_equal(resize_nearest(mask, processing_hw), ref["mask_processing"])
    else:
        pose = inputs["pose"] if "pose" in inputs else inputs["gt_pose"][0]
        labels = encode_pose(pose, ori_hw, grid_hw)
        assert labels.shape[-1] == pose.shape[0] + 1
    assert labels.dtype == torch.float32
    np.testing.assert_allclose(labels.numpy(), ref["labels_encoded"], rtol=0, atol=1e-6)

    propagated = propagate_labels(features, labels, **hyper)
    assert propagated.shape == ref["labels_propagated"].shape
    # A larger error than 1e-5 means a different top-k selection.
    np.testing.assert_allclose(propagated.numpy(), ref["labels_propagated"], rtol=0, atol=1e-5)

    if case["task"] in MASK_TASKS:
        masks, processing = decode_masks(propagated, label_map, processing_hw, ori_hw, return_processing=True)
        assert masks.dtype == np.int32 and masks.shape == ref["masks"].shape
        near_tie = ref["masks_processing_near_tie"]
        assert np.array_equal(processing[~near_tie], ref["masks_processing"][~near_tie])
        assert (masks != ref["masks"]).mean() <= 1e-4
        # The final resize alone is exact: OpenCV-4's INTER_NEAREST_EXACT of the official processing-size map.
        exact = np.stack([resize_nearest_exact(frame, ori_hw) for frame in ref["masks_processing"]])
        np.testing.assert_array_equal(exact, ref["masks"])
    else:
        coords, visible = decode_pose(propagated, ori_hw)
        assert coords.dtype == np.float32 and coords.shape == ref["coords"].shape
        np.testing.assert_array_equal(visible, ref["visible"].astype(bool))
        near_tie = ref["decode_near_tie"]
        np.testing.assert_allclose(coords[~near_tie], ref["coords"][~near_tie], rtol=0, atol=1e-3)
        # Decoding the official heatmaps: only exact top-k ties depend on the tie order.
        official = torch.from_numpy(ref["labels_propagated"])
        coords, _ = decode_pose(official, ori_hw)
        exact_tie = ref["decode_exact_tie"]
        np.testing.assert_allclose(coords[~exact_tie], ref["coords"][~exact_tie], rtol=0, atol=1e-3)


@pytest.mark.parametrize("case_dir", CASES, ids=[path.name for path in CASES])
def test_case_through_rep4d_parity(case_dir):
    report = run_parity(case_dir)
    assert report.method == "label_propagation"
    assert report.not_compared == [], report.not_compared
    failed = {key: result for key, result in report.results.items() if not result.ok}
    assert report.ok and not failed, failed
    case = json.loads((case_dir / "case.json").read_text())
    if case.get("mode") == "pipeline":  # the metric keys are produced too
        metric = {"davis": "JF_mean", "vip": "mean_iou", "jhmdb": "pck"}[case["task"]]
        assert metric in report.results


def test_parity_catches_a_wrong_neighbourhood(monkeypatch):
    """The runner is not a rubber stamp: the JAX copy's no-op restriction fails the restricted case."""
    import rep4d.label_propagation as lp

    case_dir = next(path for path in CASES if path.name == "mask_ctx4_radius4")
    original = lp.propagate_labels
    monkeypatch.setattr(lp, "propagate_labels",
                        lambda *args, **kwargs: original(*args, **{**kwargs, "restrict_neighborhood": False}))
    report = run_parity(case_dir)
    assert not report.ok
    assert not report.results["labels_propagated"].ok


def test_masked_and_fractional_tolerances():
    from rep4d.parity import Tolerance, compare

    reference = np.zeros((4, 5, 2))
    port = reference.copy()
    port[0, 0] = 1.0  # one joint off by 1 px
    flags = np.zeros((4, 5), bool)
    assert not compare(port, reference, Tolerance(atol=1e-3)).ok
    assert not compare(port, reference, Tolerance(atol=1e-3, unless="flags"), flags).ok
    flags[0, 0] = True  # the flag broadcasts over the trailing (x, y) axis
    assert compare(port, reference, Tolerance(atol=1e-3, unless="flags"), flags).ok
    masks = np.zeros((10, 100, 100), np.int32)
    changed = masks.copy()
    changed[0, 0, :10] = 1  # 1e-4 of the pixels
    assert compare(changed, masks, Tolerance(exact=True, max_mismatch_fraction=1e-4)).ok
    changed[0, 1, 0] = 1
    assert not compare(changed, masks, Tolerance(exact=True, max_mismatch_fraction=1e-4)).ok
    assert compare(masks, masks, Tolerance(exact=True)).ok
