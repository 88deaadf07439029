"""TAP-Vid as tapnet runs it: every `protocols/tapvid_queries` case through the public functions and `rep4d parity`,
the named protocols (sampling and scoring always paired), safe pickle reading, chained whole-video tracking and
`rep4d evaluate --tapvid-protocol`."""

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from rep4d.parity import load_case_arrays, run_parity
from rep4d.training import tapvid
from rep4d.training.metrics import compute_tapvid_metrics

REPO = Path(__file__).resolve().parents[1]
CASES_ROOT = REPO / "tests" / "fixtures" / "protocols" / "tapvid_queries"
CASES = sorted(path for path in CASES_ROOT.iterdir() if (path / "case.json").is_file())


def load(case_dir):
    case = json.loads((case_dir / "case.json").read_text())
    return case, load_case_arrays(case_dir / "inputs.npz"), load_case_arrays(case_dir / "outputs.npz")


def write_pickle(path, data):
    with open(path, "wb") as handle:
        pickle.dump(data, handle)
    return path


def test_fixture_cases_present():
    assert {path.name for path in CASES} >= {"davis_loader_first", "davis_loader_strided", "direct_first",
                                             "direct_strided_stride3"}


@pytest.mark.parametrize("case_dir", CASES, ids=lambda path: path.name)
def test_tapvid_case_through_the_public_functions(case_dir, tmp_path):
    case, inputs, reference = load(case_dir)
    mode = case["query_mode"]
    if case["mode"] == "loader":
        path = write_pickle(tmp_path / "davis.pkl", {"video": {key: inputs[key] for key in tapvid.TAPVID_FIELDS}})
        examples = list(tapvid.create_davis_dataset(path, query_mode=mode, resolution=tuple(case["resolution"])))
        assert len(examples) == 1
        produced = dict(examples[0]["davis"])
        close = 1e-6
    else:
        args = (inputs["target_occluded"], inputs["target_points"], inputs["frames"])
        if mode == "first":
            produced = tapvid.sample_queries_first(*args)
        else:
            stride = case["query_stride"] if case["query_stride"] is not None else 5
            produced = tapvid.sample_queries_strided(*args, query_stride=stride)
        close = 0.0
    for prefix, trackwise in (("metrics", False), ("trackwise_metrics", True)):
        scores = compute_tapvid_metrics(produced["query_points"], produced["occluded"], produced["target_points"],
                                        inputs["pred_occluded"], inputs["pred_tracks"], mode,
                                        get_trackwise_metrics=trackwise)  # fmt: skip
        produced.update({f"{prefix}/{name}": value for name, value in scores.items()})
    assert set(reference) <= set(produced)
    for key, expected in reference.items():
        value = np.asarray(produced[key])
        assert value.shape == expected.shape, key
        if key in ("query_points", "occluded", "trackgroup"):
            np.testing.assert_array_equal(value, expected, err_msg=key)
        elif key in ("video", "target_points"):
            np.testing.assert_allclose(value, expected, rtol=0, atol=close, err_msg=key)
        else:
            np.testing.assert_allclose(value, expected, rtol=0, atol=1e-9, equal_nan=True, err_msg=key)


@pytest.mark.parametrize("case_dir", CASES, ids=lambda path: path.name)
def test_tapvid_case_through_rep4d_parity(case_dir):
    report = run_parity(case_dir)
    assert report.method == "tapvid_queries" and report.ok, report.to_json()
    assert report.not_compared == []
    assert set(report.results) == set(load_case_arrays(case_dir / "outputs.npz"))


def test_samplers_by_hand():
    occluded = np.array([[True, False, False, True, False, False],   # first visible at 1
                         [True, True, True, True, True, True],       # never visible
                         [False, True, True, True, True, False]])    # visible at 0 and 5
    points = np.arange(3 * 6 * 2, dtype=np.float32).reshape(3, 6, 2)
    frames = np.zeros((6, 2, 2, 3), np.float32)
    first = tapvid.sample_queries_first(occluded, points, frames)
    np.testing.assert_array_equal(first["query_points"][0], [[1, points[0, 1, 1], points[0, 1, 0]],
                                                             [0, points[2, 0, 1], points[2, 0, 0]]])
    assert first["target_points"].shape == (1, 2, 6, 2) and first["query_points"].dtype == np.float64
    strided = tapvid.sample_queries_strided(occluded, points, frames, query_stride=5)
    # frame 0: track 2; frame 5: tracks 0 and 2 (grouped by query frame, then track)
    np.testing.assert_array_equal(strided["trackgroup"][0], [2, 0, 2])
    np.testing.assert_array_equal(strided["query_points"][0, :, 0], [0, 5, 5])
    none = tapvid.sample_queries_first(np.ones((2, 4), bool), np.zeros((2, 4, 2)), frames[:4])
    assert none["query_points"].shape == (1, 0, 3)


# ----------------------------------------------------------------------------------------------------------------
# Protocols: the pairing rule and names
# ----------------------------------------------------------------------------------------------------------------


def test_protocols_pair_sampling_with_scoring():
    expected = {"tapvid-first": ("first", "first", None, 1), "tapvid-strided": ("strided", "strided", None, 1),
                "4ds-clip": ("first-frame", "first", 16, 4)}  # fmt: skip
    assert set(tapvid.TAPVID_PROTOCOLS) == set(expected)
    for name, (sampling, mode, frames, stride) in expected.items():
        protocol = tapvid.get_tapvid_protocol(name)
        assert (protocol.query_sampling, protocol.query_mode, protocol.num_frames, protocol.frame_stride) == (
            sampling, mode, frames, stride)
        assert protocol.resolution == (256, 256) and protocol.describe()["name"] == name
    assert tapvid.DEFAULT_TAPVID_PROTOCOL == "tapvid-first"
    # The scoring mode is derived, never given: a mismatched pair cannot be built.
    with pytest.raises(TypeError):
        tapvid.TapVidProtocol("mine", "first", query_mode="strided")
    with pytest.raises(ValueError, match="query_sampling must be one of"):
        tapvid.TapVidProtocol("mine", "strided-first")
    custom = tapvid.TapVidProtocol("mine", "first-frame", num_frames=8, frame_stride=2)
    assert custom.query_mode == "first"


def test_protocol_name_errors():
    for bad in ("tapvid", "first", "strided", "4DS-clip", ""):
        with pytest.raises(ValueError, match="unknown TAP-Vid protocol .*tapvid-first, tapvid-strided, 4ds-clip"):
            tapvid.get_tapvid_protocol(bad)


def test_cli_offers_exactly_the_protocols(capsys):
    from rep4d.cli import build_parser, main

    parser = build_parser()
    for command in ("evaluate", "finetune"):
        sub = parser._subparsers._group_actions[0].choices[command]
        option = next(action for action in sub._actions if "--tapvid-protocol" in action.option_strings)
        assert set(option.choices) == set(tapvid.TAPVID_PROTOCOLS) and option.default == "tapvid-first"
        assert not any("--query-mode" in action.option_strings for action in sub._actions)
    with pytest.raises(SystemExit) as error:
        main(["evaluate", "--model", "m", "--data", "d", "--tapvid-protocol", "tapvid-middle"])
    assert error.value.code == 2 and "tapvid-middle" in capsys.readouterr().err


def test_mismatched_explicit_scoring_is_refused():
    from rep4d.training.finetune import task_metrics

    occluded = np.zeros((1, 2, 4), bool)
    tracks = np.full((1, 2, 4, 2), 5.0)
    query = np.array([[[2.0, 5.0, 5.0], [0.0, 5.0, 5.0]]])  # track 0 is visible at frame 0 but queried at 2
    predictions = (tracks, occluded)  # the point output's fields in order: tracks, occluded, ...
    assert tapvid.infer_query_mode(query, occluded) == "strided"
    with pytest.raises(ValueError, match="first visible frame"):
        task_metrics("points", predictions, (query, tracks, occluded), (16, 16), tapvid_query_mode="first")
    scores = task_metrics("points", predictions, (query, tracks, occluded), (16, 16))
    assert scores["average_jaccard"] == 1.0
    query[0, 0, 0] = 0.0
    assert tapvid.infer_query_mode(query, occluded) == "first"


def moving_video(num_frames=70, num_tracks=5, seed=0):
    """A TAP-Vid entry whose points move linearly (normalised coordinates), with some occlusion."""
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, size=(num_frames, 24, 40, 3), dtype=np.uint8)
    start = rng.uniform(0.2, 0.5, size=(num_tracks, 1, 2))
    points = (start + 0.004 * np.arange(num_frames)[None, :, None]).astype(np.float32)
    occluded = np.zeros((num_tracks, num_frames), bool)
    occluded[1, :7] = True
    occluded[2, 30:40] = True
    occluded[3, 0] = True
    occluded[4] = True  # never visible
    return {"video": video, "points": points, "occluded": occluded}


def test_protocol_examples():
    entry = moving_video()
    first, strided, clip = (tapvid.get_tapvid_protocol(name) for name in tapvid.TAPVID_PROTOCOLS)
    [example] = first.examples(**entry)
    assert example["video"].shape == (1, 70, 256, 256, 3) and -1 <= example["video"].min() < example["video"].max() <= 1
    np.testing.assert_array_equal(example["query_points"][0, :, 0], [0, 7, 0, 1])
    np.testing.assert_allclose(example["target_points"][0], entry["points"][:4] * 256)
    [example] = strided.examples(**entry)
    assert set(example["query_points"][0, :, 0]) <= set(range(0, 70, 5)) and "trackgroup" in example
    clips = clip.examples(**entry)  # 70 frames: frames 0, 4, ..., 68 -> one complete 16-frame clip
    assert len(clips) == 1 and clips[0]["frames"].tolist() == list(range(0, 64, 4))
    np.testing.assert_array_equal(clips[0]["query_points"][0, :, 0], 0)
    np.testing.assert_array_equal(clips[0]["trackgroup"][0], [0, 2])  # visible at the clip's first frame
    np.testing.assert_allclose(clips[0]["target_points"][0], entry["points"][[0, 2]][:, 0:64:4] * 256)
    assert clip.examples(**{**entry, "video": entry["video"][:60], "points": entry["points"][:, :60],
                            "occluded": entry["occluded"][:, :60]}) == []  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Pickles: safe reading and the three layouts
# ----------------------------------------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    entry = {**moving_video(num_frames=4), "video": _Payload(marker)}
    path = write_pickle(tmp_path / "evil.pkl", {"bear": entry})
    for read in (lambda: tapvid.read_tapvid_pickle(path), lambda: list(tapvid.create_davis_dataset(path)),
                 lambda: list(tapvid.create_kinetics_dataset(path))):  # fmt: skip
        with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle"):
            read()
    assert not marker.exists()
    with pytest.raises(FileNotFoundError):
        tapvid.read_tapvid_pickle(tmp_path / "missing.pkl")
    write_pickle(tmp_path / "fields.pkl", {"bear": {"video": np.zeros((2, 4, 4, 3), np.uint8)}})
    with pytest.raises(ValueError, match=r"lacks the TAP-Vid field\(s\) \['points', 'occluded'\]"):
        tapvid.read_tapvid_pickle(tmp_path / "fields.pkl")


def test_rgb_stacking_and_kinetics_layouts(tmp_path):
    from PIL import Image

    entries = [moving_video(num_frames=6, seed=seed) for seed in (1, 2)]
    write_pickle(tmp_path / "robotics.pkl", entries)
    robotics = [item["robotics"] for item in tapvid.create_rgb_stacking_dataset(tmp_path / "robotics.pkl", "first")]
    assert len(robotics) == 2
    encoded = []
    for entry in entries:
        frames = []
        for frame in entry["video"]:
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="PNG")
            frames.append(buffer.getvalue())
        encoded.append({**entry, "video": frames})
    shards = tmp_path / "kinetics"
    shards.mkdir()
    write_pickle(shards / "0000_of_0010.pkl", encoded)
    kinetics = [item["kinetics"] for item in tapvid.create_kinetics_dataset(shards, "first")]
    assert len(kinetics) == 2
    for ours, theirs, entry in zip(kinetics, robotics, entries):
        expected = tapvid.resize_video(entry["video"], (256, 256)).astype(np.float32) / 255.0 * 2.0 - 1.0
        np.testing.assert_array_equal(ours["video"][0], expected)
        np.testing.assert_array_equal(theirs["video"][0], expected)
        # Kinetics scales the points in place (float32), DAVIS / RGB-Stacking out of place (float64).
        assert ours["target_points"].dtype == np.float32 and theirs["target_points"].dtype == np.float64
        np.testing.assert_allclose(ours["target_points"], theirs["target_points"], rtol=1e-6)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="_of_0010.pkl"):
        list(tapvid.create_kinetics_dataset(tmp_path / "empty"))


def test_resize_video_is_pil_lanczos():
    from PIL import Image

    video = np.random.default_rng(0).integers(0, 256, size=(2, 9, 14, 3), dtype=np.uint8)
    resized = tapvid.resize_video(video, (5, 7))
    expected = np.asarray(Image.fromarray(video[1]).resize((7, 5), Image.Resampling.LANCZOS))
    assert resized.shape == (2, 5, 7, 3) and resized.dtype == np.uint8
    np.testing.assert_array_equal(resized[1], expected)
    with pytest.raises(ValueError, match="uint8"):
        tapvid.resize_video(video.astype(np.float32), (5, 7))


# ----------------------------------------------------------------------------------------------------------------
# Running trackers under a protocol
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_frames, window", [(23, 5), (3, 5), (9, 9), (10, 2)])
def test_chained_windows_follow_a_perfect_tracker(num_frames, window):
    velocity = np.array([1.5, -0.5])  # (x, y) pixels per frame
    calls = []

    def oracle(frames, queries):
        calls.append(len(frames))
        anchor = frames[np.round(queries[:, 0]).astype(int)]
        offset = (frames[None, :] - anchor[:, None])[..., None] * velocity
        return queries[:, None, [2, 1]] + offset, np.zeros((len(queries), len(frames)), bool)

    times = np.unique(np.clip([0, 1, 4, 8, num_frames // 2, num_frames - 1], 0, num_frames - 1))
    query = np.stack([times, 50.0 + 0.5 * times, 30.0 + 1.5 * times], axis=-1)  # on the line x = 30 + 1.5 t
    tracks, occluded = tapvid.chained_window_tracks(oracle, num_frames, window, query, backward=True)
    expected = np.stack([30.0 + 1.5 * np.arange(num_frames), 50.0 - 0.5 * np.arange(num_frames)], axis=-1)
    expected = expected + (0.5 + 0.5) * times[:, None, None] * np.array([0.0, 1.0])  # y intercept per query
    np.testing.assert_allclose(tracks, expected, atol=1e-9)
    assert not occluded.any() and set(calls) == {window}


def oracle_tracker(entry):
    """A tracker that knows the ground truth of a whole-video protocol example (raster 256x256)."""
    gt = entry["points"].astype(np.float64) * 256

    def track(video, query_points):
        rows = []
        for t, y, x in query_points:
            rows.append(int(np.argmin(np.abs(gt[:, int(t)] - [x, y]).sum(-1) + 1e9 * entry["occluded"][:, int(t)])))
        return gt[rows], entry["occluded"][rows]

    return track


@pytest.mark.parametrize("name", ["tapvid-first", "tapvid-strided"])
def test_evaluate_tracker_perfect_beats_baseline(name):
    entry = moving_video()
    result = tapvid.evaluate_tracker(name, [("moving", entry)], oracle_tracker(entry))
    assert result["protocol"]["name"] == name and result["query_mode"] == tapvid.get_tapvid_protocol(name).query_mode
    assert result["average_jaccard"] == 1.0 and result["occlusion_accuracy"] == 1.0
    assert result["baseline_average_jaccard"] < 0.5 and result["num_examples"] == 1
    stay = tapvid.evaluate_tracker(name, [("moving", entry)], tapvid.stay_at_query_tracker)
    assert stay["average_jaccard"] == result["baseline_average_jaccard"]
    with pytest.raises(ValueError, match="no video gave a TAP-Vid query"):
        tapvid.evaluate_tracker("4ds-clip", [("short", moving_video(num_frames=20))], tapvid.stay_at_query_tracker)


@pytest.fixture(scope="module")
def tiny_points_readout(tmp_path_factory):
    from rep4d.training.finetune import FinetuneConfig, build_readout

    config = FinetuneConfig(task="points", backbone="random:fourds-tiny", data="unused", output_dir="unused",
                            readout_num_params=16, readout_num_heads=2)  # fmt: skip
    model = build_readout(config, 4, [16, 16]).eval()
    folder = tmp_path_factory.mktemp("points_readout")
    model.save_pretrained(folder)
    return model, folder


def test_untrained_readout_tracker_stays_at_its_queries(tiny_points_readout):
    model, _ = tiny_points_readout
    entry = moving_video(num_frames=11)
    protocol = tapvid.get_tapvid_protocol("tapvid-strided")
    [example] = protocol.examples(**entry)
    queries = example["query_points"][0]
    tracks, occluded = tapvid.readout_tracker(model, protocol)(example["video"][0], queries)
    # The untrained head predicts zero offsets: each chained window re-queries the same point.
    assert tracks.shape == (len(queries), 11, 2) and occluded.shape == (len(queries), 11)
    np.testing.assert_allclose(tracks, np.broadcast_to(queries[:, None, [2, 1]], tracks.shape), atol=1e-3)


def test_readout_tracker_equals_the_readout_when_the_video_fits_one_window(tiny_points_readout):
    import copy

    import torch

    model = copy.deepcopy(tiny_points_readout[0])
    with torch.no_grad():
        torch.nn.init.normal_(model.readout.classifier.weight, std=0.5)  # non-trivial tracks
    entry = moving_video(num_frames=4)
    protocol = tapvid.TapVidProtocol("native-size", "strided", resolution=(16, 16), query_stride=2)
    [example] = protocol.examples(**entry)
    queries = example["query_points"][0]
    tracks, occluded = tapvid.readout_tracker(model, protocol)(example["video"][0], queries)
    pixels = torch.from_numpy((example["video"][0] + 1) / 2).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        direct = model(pixel_values=pixels, query_points=torch.from_numpy(queries).float()[None])
    assert np.abs(direct.tracks[0].numpy() - queries[:, None, [2, 1]]).max() > 0.5
    np.testing.assert_allclose(tracks, direct.tracks[0].numpy(), atol=1e-4)
    np.testing.assert_array_equal(occluded, direct.occluded[0].numpy())


def test_evaluate_command_names_its_protocol(tiny_points_readout, tmp_path, capsys):
    from rep4d.cli import main
    from rep4d.training.finetune import run_evaluate

    _, folder = tiny_points_readout
    path = write_pickle(tmp_path / "davis.pkl", {"a": moving_video(num_frames=9), "b": moving_video(9, seed=3)})
    for name in ("tapvid-strided", "tapvid-first"):
        report = tmp_path / f"{name}.json"
        status = main(["evaluate", "--model", str(folder), "--data", str(path), "--tapvid-protocol", name,
                       "--quiet", "--output", str(report)])  # fmt: skip
        assert status == 0
        captured = capsys.readouterr()
        result = json.loads(captured.out)
        assert result["tapvid_protocol"] == name and json.loads(report.read_text())["tapvid_protocol"] == name
        assert result["tapvid"]["query_mode"] == tapvid.get_tapvid_protocol(name).query_mode
        assert result["tapvid"]["num_videos"] == 2 and f"protocol {name}" in captured.err
        # untrained: exactly the stay-at-query baseline
        assert result["eval"]["eval_average_jaccard"] == pytest.approx(result["eval"]["eval_baseline_average_jaccard"])
    with pytest.raises(ValueError, match="4ds-clip TAP-Vid protocol evaluates 16-frame clips"):
        run_evaluate(str(folder), str(path), tapvid_protocol="4ds-clip", progress=False)
    with pytest.raises(ValueError, match="unknown TAP-Vid protocol"):
        run_evaluate(str(folder), str(path), tapvid_protocol="strided", progress=False)


def test_finetune_reports_its_protocol(tmp_path):
    from rep4d.training.finetune import FinetuneConfig, run_finetune

    config = FinetuneConfig(task="points", backbone="random:fourds-tiny", data="synthetic:6,num_points=4,num_frames=6",
                            output_dir=str(tmp_path / "run"), num_frames=4, image_size=[16, 16], max_steps=2,
                            eval_steps=2, batch_size=4, num_points=4, readout_num_params=16, readout_num_heads=2,
                            report_to="none", progress=False, tapvid_protocol="tapvid-strided")  # fmt: skip
    results = run_finetune(config)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert results["tapvid_protocol"] == saved["tapvid_protocol"] == "tapvid-strided"
    assert saved["tapvid"]["query_mode"] == "strided" and saved["tapvid"]["num_videos"] == 1
    assert 0.0 <= saved["tapvid"]["average_jaccard"] <= 1.0
    with pytest.raises(ValueError, match="unknown TAP-Vid protocol"):
        run_finetune(FinetuneConfig(**{**config.__dict__, "tapvid_protocol": "first", "output_dir": str(tmp_path)}))
