"""DAVIS J&F, JHMDB PCK and VIP mIoU (``rep4d.training.propagation_metrics``) against the official notebook's outputs
(``tests/fixtures/protocols/metrics``), their edge cases, and that no trivial prediction wins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rep4d.parity import run_parity
from rep4d.training.propagation_metrics import (
    VIP_CLASSES,
    binary_dilate,
    compute_iou,
    compute_pck,
    davis_summary,
    davis_video_scores,
    db_eval_boundary,
    db_eval_iou,
    disk,
    f_measure,
    fast_hist,
    jhmdb_pck,
    seg2bmap,
    vip_confusion,
)

METRICS_DIR = Path(__file__).parent / "fixtures" / "protocols" / "metrics"
METRIC_CASES = sorted(path for path in METRICS_DIR.iterdir() if (path / "case.json").is_file())


def test_metrics_cases_exist():
    assert {json.loads((case / "case.json").read_text())["metric"] for case in METRIC_CASES} == {
        "davis_jf", "jhmdb_pck", "vip_miou"}


@pytest.mark.parametrize("case_dir", METRIC_CASES, ids=[case.name for case in METRIC_CASES])
def test_metrics_fixture_parity(case_dir):
    report = run_parity(case_dir)
    assert report.method == "propagation_metrics"
    assert report.not_compared == []
    failing = {key: result.max_abs_error for key, result in report.results.items() if not result.ok}
    assert not failing, failing
    assert all(result.tolerance.atol <= 1e-9 for result in report.results.values())


def test_parity_command_json(capsys):
    from rep4d.cli import main

    status = main(["parity", *map(str, METRIC_CASES), "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert status == 0
    assert len(lines) == len(METRIC_CASES)
    for report in lines:
        assert report["not_compared"] == []
        assert all(entry["ok"] for entry in report["results"].values())


# Building blocks ------------------------------------------------------------------------------------------------------


def test_disk_matches_skimage_definition():
    # skimage.morphology.disk(2)
    expected = np.array([[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]], np.uint8)
    np.testing.assert_array_equal(disk(2), expected)
    assert disk(8.0).shape == (17, 17) and disk(8.0).dtype == np.uint8
    assert disk(8.0).sum() == 197


@pytest.mark.parametrize("radius", [1, 3, 8.0])
def test_binary_dilate_equals_scipy(radius):
    from scipy.ndimage import binary_dilation

    rng = np.random.default_rng(int(radius))
    mask = rng.random((37, 53)) > 0.97
    mask[0, 0] = mask[-1, -1] = mask[0, -1] = True  # borders
    footprint = disk(radius)
    expected = binary_dilation(mask, structure=footprint.astype(bool), border_value=0)
    np.testing.assert_array_equal(binary_dilate(mask, footprint), expected)


def test_seg2bmap_square():
    seg = np.zeros((6, 7), bool)
    seg[2:4, 2:5] = True
    # a 1-pixel contour, offset by half a pixel towards the origin (rows 1-3, columns 1-4)
    expected = np.zeros((6, 7), int)
    expected[1:4, 1:5] = 1
    expected[2, 2:4] = 0
    np.testing.assert_array_equal(seg2bmap(seg).astype(int), expected)
    assert not seg2bmap(np.zeros((4, 4), bool)).any()


def test_iou_and_boundary_conventions():
    empty = np.zeros((2, 20, 30), bool)
    assert db_eval_iou(empty, empty).tolist() == [1.0, 1.0]
    assert db_eval_boundary(empty, empty).tolist() == [1.0, 1.0]
    full = empty.copy()
    full[:, 5:15, 5:25] = True
    assert db_eval_iou(full, empty).tolist() == [0.0, 0.0]
    assert db_eval_boundary(full, empty).tolist() == [0.0, 0.0]
    assert f_measure(full[0], full[0]) == 1.0
    # a 1-pixel shift is within the boundary tolerance (F = 1) but costs J
    shifted = np.roll(full, 1, axis=2)
    assert db_eval_boundary(full, shifted).tolist() == [1.0, 1.0]
    assert 0.8 < db_eval_iou(full, shifted)[0] < 1.0


def test_davis_refuses_bad_input():
    gt = np.zeros((3, 8, 8), np.uint8)
    gt[:, 0, :] = np.arange(8) + 4  # 11 object ids
    with pytest.raises(ValueError, match="at most 10"):
        davis_video_scores(gt, gt.astype(np.int32))
    with pytest.raises(ValueError, match="same"):
        davis_video_scores(gt[:2], gt)
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        davis_video_scores(gt[0], gt[0])


def test_vip_refuses_out_of_range_prediction():
    with pytest.raises(ValueError, match="class ids"):
        fast_hist(np.zeros((2, 2), np.uint8), np.full((2, 2), 20), 20)
    with pytest.raises(ValueError, match=r"\(20, 20\)"):
        compute_iou(np.zeros((3, 3)))


def test_pck_nan_when_a_joint_is_never_visible():
    gt = np.zeros((3, 2, 2), np.float32)
    gt[:, 1] = 10
    visible = np.array([[1, 1], [1, 0], [1, 0]], np.float64)
    result = jhmdb_pck([gt], [gt + 1], [visible])
    assert np.isnan(result["pck"]).all()  # joint 1 has no distance: the official mean is nan
    assert result["pck_per_joint"][:, 0].tolist() == [0.0] * 5  # box 0 (one visible joint) -> inf, never correct
    assert np.isinf(result["distances"][0]).all()
    exact = jhmdb_pck([gt], [gt.copy()], [visible])  # zero error on a zero box: 0 / 0 = nan, not correct either
    assert np.isnan(exact["distances"][0]).all() and exact["pck_per_joint"][:, 0].tolist() == [0.0] * 5


# No trivial prediction wins ------------------------------------------------------------------------------------------


def moving_objects(num_frames=8, height=96, width=160):
    """(T, H, W) uint8 masks: object 1 a square moving right, object 2 a disc moving down."""
    masks = np.zeros((num_frames, height, width), np.uint8)
    rows, cols = np.mgrid[:height, :width]
    for t in range(num_frames):
        masks[t, 20:50, 10 + 8 * t : 40 + 8 * t] = 1
        masks[t][(rows - 20 - 6 * t) ** 2 + (cols - 120) ** 2 < 15**2] = 2
    return masks


def erode(masks, pixels=2):
    out = masks.copy()
    for shift in range(1, pixels + 1):
        for axis in (1, 2):
            for direction in (-1, 1):
                out[np.roll(masks, direction * shift, axis=axis) != masks] = 0
    return out


def davis_jf(gt, pred):
    return davis_summary([davis_video_scores(gt, pred)])["JF_mean"]


def test_davis_trivial_predictions_lose():
    gt = moving_objects()
    good = erode(gt)
    empty = np.zeros_like(gt, dtype=np.int32)
    copy_first = np.repeat(gt[:1], len(gt), axis=0).astype(np.int32)
    everything = np.ones_like(gt, dtype=np.int32)
    scores = {name: davis_jf(gt, pred) for name, pred in
              {"good": good, "empty": empty, "copy_first": copy_first, "everything": everything}.items()}
    assert scores["good"] > 0.8
    assert scores["empty"] == 0.0
    assert scores["good"] > scores["copy_first"] + 0.3
    assert scores["good"] > scores["everything"] + 0.5
    assert davis_jf(gt, gt.astype(np.int32)) == 1.0


def test_vip_trivial_predictions_lose():
    gt = moving_objects()
    gt[gt == 2] = 13  # face
    good = erode(gt)

    def miou(pred):
        return compute_iou(vip_confusion(gt, pred).sum(0))[0]

    assert miou(gt.astype(np.int32)) == 1.0
    assert miou(good) > 0.8
    assert miou(np.zeros_like(gt, dtype=np.int32)) < 0.5  # all background: background IoU < 1, objects 0
    assert miou(np.repeat(gt[:1], len(gt), axis=0)) < miou(good) - 0.2
    assert len(VIP_CLASSES) == 20


def test_pck_trivial_predictions_lose():
    rng = np.random.default_rng(0)
    frames, joints = 10, 15
    start = rng.uniform(60, 180, size=(joints, 2))
    motion = np.arange(frames)[:, None, None] * np.array([6.0, 3.0])
    gt = (start[None] + motion).astype(np.float32)
    visible = np.ones((frames, joints))
    good = jhmdb_pck([gt], [gt + rng.normal(0, 2, gt.shape).astype(np.float32)], [visible])["pck"]
    copy_first = jhmdb_pck([gt], [np.repeat(gt[:1], frames, axis=0)], [visible])["pck"]
    nothing = jhmdb_pck([gt], [np.full_like(gt, -1)], [np.zeros((frames, joints))])["pck"]
    assert good[0] > 90
    assert (good > copy_first).all() and copy_first[0] < 50
    assert not (nothing >= good).any()  # predicting nothing visible gives nan, never a score
    assert compute_pck({0: np.array([0.05, 0.15, np.inf]), 1: np.array([0.1])}, 0.1)[1].tolist() == [
        100.0 / 3, 100.0]
