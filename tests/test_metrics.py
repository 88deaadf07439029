"""Readout metrics: TAP-Vid fixtures to 1e-9, hand-computed values, and the local evaluate modules."""

import json
import os
from pathlib import Path

os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import evaluate  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rep4d.training.metrics import (  # noqa: E402
    abs_rel,
    average_clips,
    box_iou,
    compute_tapvid_metrics,
    load_metric,
    mean_box_iou,
    metric_module_path,
    pose_epe,
    top1_accuracy,
)

REPO = Path(__file__).resolve().parents[1]
TAPVID_FIXTURES = REPO / "tests" / "fixtures" / "metrics" / "tapvid"
METRICS = REPO / "training" / "metric_modules"
TAPVID_CASES = sorted(path.name for path in TAPVID_FIXTURES.iterdir() if path.is_dir())


def load_case(name):
    folder = TAPVID_FIXTURES / name
    case = json.loads((folder / "case.json").read_text())
    with np.load(folder / "inputs.npz", allow_pickle=False) as data:
        inputs = {key: data[key] for key in data.files}
    with np.load(folder / "outputs.npz", allow_pickle=False) as data:
        outputs = {key: data[key] for key in data.files}
    return case, inputs, outputs


def test_fixture_cases_present():
    assert set(TAPVID_CASES) >= {"first_small", "strided_small"}


@pytest.mark.parametrize("name", TAPVID_CASES)
def test_tapvid_reproduces_every_fixture_value(name):
    case, inputs, outputs = load_case(name)
    per_video = compute_tapvid_metrics(**inputs, query_mode=case["query_mode"])
    per_track = compute_tapvid_metrics(**inputs, query_mode=case["query_mode"], get_trackwise_metrics=True)
    produced = {**per_video, **{f"trackwise_{key}": value for key, value in per_track.items()}}
    assert set(produced) == set(outputs)
    for key, expected in outputs.items():
        assert produced[key].shape == expected.shape, key
        np.testing.assert_allclose(produced[key], expected, rtol=0, atol=1e-9, equal_nan=True, err_msg=key)


@pytest.mark.parametrize("name", TAPVID_CASES)
def test_tapvid_evaluate_module_matches_fixture_means(name):
    case, inputs, outputs = load_case(name)
    metric = evaluate.load(str(METRICS / "tapvid"))
    result = metric.compute(**inputs, query_mode=case["query_mode"])
    for key in ("average_jaccard", "occlusion_accuracy", "average_pts_within_thresh", "jaccard_4", "pts_within_16"):
        assert abs(result[key] - outputs[key].mean()) < 1e-9, key
    trackwise = metric.compute(**inputs, query_mode=case["query_mode"], trackwise=True)
    assert abs(trackwise["average_jaccard"] - np.nanmean(outputs["trackwise_average_jaccard"])) < 1e-9


def test_tapvid_hand_computed():
    # One video, one point, 4 frames, queried at frame 1.
    query = np.array([[[1.0, 10.0, 10.0]]])
    gt_tracks = np.array([[[[10, 10], [10, 10], [10, 10], [10, 10]]]], dtype=np.float64)
    gt_occluded = np.array([[[False, False, False, True]]])
    # Frame 2 is 1.5 px off (within 2, not within 1); frame 3 is predicted visible but occluded in the ground truth.
    pred_tracks = np.array([[[[10, 10], [10, 10], [11.5, 10], [10, 10]]]], dtype=np.float64)
    pred_occluded = np.array([[[False, False, False, False]]])
    first = compute_tapvid_metrics(query, gt_occluded, gt_tracks, pred_occluded, pred_tracks, "first")
    # "first" evaluates frames 2 and 3 only: occlusion right on frame 2, wrong on frame 3.
    assert first["occlusion_accuracy"][0] == pytest.approx(0.5)
    assert first["pts_within_1"][0] == 0.0 and first["pts_within_2"][0] == 1.0
    # Jaccard at 1: TP 0 / (1 visible + 2 FP); at 2: TP 1 / (1 visible + 1 FP (occluded frame)).
    assert first["jaccard_1"][0] == 0.0 and first["jaccard_2"][0] == pytest.approx(0.5)
    assert first["average_jaccard"][0] == pytest.approx((0 + 0.5 * 4) / 5)
    strided = compute_tapvid_metrics(query, gt_occluded, gt_tracks, pred_occluded, pred_tracks, "strided")
    # "strided" adds frame 0 (correct and visible).
    assert strided["occlusion_accuracy"][0] == pytest.approx(2 / 3)
    assert strided["pts_within_1"][0] == pytest.approx(0.5)
    assert strided["jaccard_2"][0] == pytest.approx(2 / 3)


def test_tapvid_bad_inputs():
    _, inputs, _ = load_case("first_small")
    with pytest.raises(ValueError, match="query_mode"):
        compute_tapvid_metrics(**inputs, query_mode="last")
    with pytest.raises(ValueError, match="pred_tracks"):
        compute_tapvid_metrics(**{**inputs, "pred_tracks": inputs["pred_tracks"][:, :, :5]}, query_mode="first")


def test_abs_rel_hand_computed_and_mask():
    predictions = np.array([[1.0, 3.0], [2.0, 5.0]])
    references = np.array([[2.0, 2.0], [0.0, 4.0]])  # the 0 is invalid depth
    assert abs_rel(predictions, references) == pytest.approx((0.5 + 0.5 + 0.25) / 3)
    mask = np.array([[True, False], [True, True]])
    assert abs_rel(predictions, references, mask) == pytest.approx((0.5 + 0.25) / 2)
    module = load_metric("abs_rel")
    assert module.compute(predictions=predictions, references=references)["abs_rel"] == pytest.approx(1.25 / 3)
    assert module.compute(predictions=predictions, references=references, valid_mask=mask)["abs_rel"] == pytest.approx(
        0.375
    )
    with pytest.raises(ValueError, match="valid pixel"):
        abs_rel(predictions, np.zeros_like(references))


def test_box_iou_hand_computed():
    assert box_iou([0, 0, 1, 1], [0, 0, 0.5, 1]) == pytest.approx(0.5)
    assert box_iou([0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]) == 0.0
    assert box_iou([0, 0, 0.4, 0.4], [0.2, 0.2, 0.6, 0.6]) == pytest.approx(0.04 / (0.16 + 0.16 - 0.04))
    references = np.array([[[[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]]], dtype=float)
    predictions = np.array([[[[0, 0, 0.1, 0.1], [0, 0, 0.5, 1], [0, 0, 1, 1]]]], dtype=float)
    # Frame 0 (the query box) is excluded: mean of 0.5 and 1.
    assert mean_box_iou(predictions, references) == pytest.approx(0.75)
    visible = np.array([[[True, True, False]]])
    assert mean_box_iou(predictions, references, visible) == pytest.approx(0.5)
    module = load_metric("box_iou")
    assert module.compute(predictions=predictions, references=references)["mean_iou"] == pytest.approx(0.75)
    assert module.compute(predictions=predictions, references=references, visible=visible)[
        "mean_iou"
    ] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ymin <= ymax"):
        box_iou([0.6, 0, 0.5, 1], [0, 0, 1, 1])


def rotation_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def test_pose_epe_hand_computed():
    identity = np.eye(3)[None]
    assert pose_epe(identity, identity) == 0.0
    # A 90 degree turn about z moves every corner (+-0.5, +-0.5, z) by sqrt(2 * 0.5) = 1.
    assert pose_epe(rotation_z(np.pi / 2)[None], identity) == pytest.approx(1.0)
    assert pose_epe(rotation_z(np.pi / 2)[None], identity, cube_size=2.0) == pytest.approx(2.0)
    # A pure translation error of (3, 4, 0) moves every corner by 5.
    assert pose_epe(identity, identity, np.array([[3.0, 4, 0]]), np.zeros((1, 3))) == pytest.approx(5.0)
    module = load_metric("pose_epe")
    result = module.compute(predictions=[rotation_z(np.pi / 2), np.eye(3)], references=[np.eye(3), np.eye(3)])
    assert result["pose_epe"] == pytest.approx(0.5)
    # (3, 4) pose matrices [R | t]: the translation error counts too.
    moved = np.concatenate([np.eye(3), [[3.0], [4.0], [0.0]]], axis=1)
    resting = np.concatenate([np.eye(3), np.zeros((3, 1))], axis=1)
    result = module.compute(predictions=[moved, resting], references=[resting, resting])
    assert result["pose_epe"] == pytest.approx(2.5)
    with pytest.raises(ValueError, match="3, 3"):
        pose_epe(np.eye(3), np.eye(3))


def test_top1_and_multi_clip_averaging():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert top1_accuracy(logits, [0, 0, 1, 1]) == pytest.approx(0.5)
    averaged = average_clips(logits, 2)
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(averaged, [softmax[:2].mean(0), softmax[2:].mean(0)])
    module = load_metric("top1")
    assert module.compute(predictions=logits, references=[0, 0, 1, 1])["top1_accuracy"] == pytest.approx(0.5)
    # Video 0: mean softmax favours class 0 (0.88+0.27 vs 0.12+0.73); video 1 favours class 1.
    assert module.compute(predictions=logits, references=[0, 0, 1, 1], num_clips=2)["top1_accuracy"] == 1.0
    with pytest.raises(ValueError, match="share their label"):
        module.compute(predictions=logits, references=[0, 1, 1, 1], num_clips=2)


def test_metric_modules_live_in_the_installed_package():
    import rep4d.training

    package_dir = Path(rep4d.training.__file__).resolve().parent
    for name in ("tapvid", "abs_rel", "box_iou", "pose_epe", "top1"):
        assert metric_module_path(name) == package_dir / "metric_modules" / name
        assert (metric_module_path(name) / f"{name}.py").is_file()
    with pytest.raises(ValueError, match="unknown rep4d metric 'accuracy'"):
        load_metric("accuracy")


def test_setup_ships_metric_modules_as_package_data():
    setup_source = (REPO / "setup.py").read_text()
    assert '"metric_modules/*/*.py"' in setup_source
