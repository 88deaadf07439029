"""``rep4d demo`` (rep4d/demo.py, rep4d/commands/demo.py): labelled pictures, verdicts against trivial baselines,
the shipped real clip and its frame rate."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from PIL import Image

from rep4d.demo import DEMO_VIDEO, StepResult, grass_mask, real_clip, run_demo, synthetic_clip
from rep4d.visualization import MIN_PANEL_SIDE, labelled_picture, read_video_fps, upscale

SYNTHETIC_STEPS = {"moog_next_frame", "masked_reconstruction", "4ds_student_label_propagation",
                   "rvm_label_propagation", "rvm_reconstruction", "point_tracking"}
NO_TRUTH_ON_REAL = {"4ds_student_label_propagation", "rvm_label_propagation", "point_tracking"}
PANELS = {  # file stem (after the clip name) -> panels in its picture on the synthetic clip
    "moog_next_frame": 3, "moog_attention": 5, "4ds_reconstruction": 4, "4ds_student_label_propagation": 3,
    "rvm_label_propagation": 3, "rvm_reconstruction": 4, "point_tracks": 3,
}


def test_shipped_clip_is_a_small_attributed_real_video():
    assert DEMO_VIDEO.is_file() and DEMO_VIDEO.stat().st_size < 300_000
    attribution = (DEMO_VIDEO.parent / "ATTRIBUTION.md").read_text()
    assert "Blender Foundation" in attribution and "Creative Commons Attribution 3.0" in attribution
    clip = real_clip()
    assert clip.fps == read_video_fps(DEMO_VIDEO) == 25.0
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (24, 180, 320, 3)
    assert real_clip(num_frames=5).frames.shape[0] == 5
    mask = grass_mask(clip.frames[0])
    assert mask.shape == (180, 320) and 0.2 < mask.mean() < 0.9  # the grass, not everything and not nothing


def test_verdict_is_better_only_when_every_trivial_prediction_is_beaten():
    def result(value, baseline, lower=True, **others):
        return StepResult("s", "synthetic", "m", "metric", value, "baseline", baseline, lower, other_baselines=others)

    assert result(0.1, 0.2).verdict == "better" and result(0.3, 0.2).verdict == "worse"
    assert result(0.2, 0.2).verdict == "worse"  # a tie does not beat the baseline
    assert result(0.5, 0.2, lower=False).verdict == "better"
    # J&F above the copy baseline but not above the empty mask: not a win.
    worse = result(0.05, 0.02, lower=False, empty=0.06)
    assert worse.verdict == "worse" and "below baseline" in worse.headline
    assert result(None, None).verdict == "n/a" and "no ground truth" in result(None, None).headline


def test_labelled_picture_panels_are_at_least_256_pixels_and_captioned():
    panels = [np.zeros((32, 48, 3), np.float32), np.ones((32, 48, 3), np.float32)]
    image = labelled_picture(panels, ["input", "prediction"], title="t", legend=[("filled", (1.0, 0.0, 0.0), "x")],
                             colorbars=[dict(vmin=0.0, vmax=2.0, label="depth (m)")])
    assert image.dtype == np.uint8 and image.shape[0] > MIN_PANEL_SIDE and image.shape[1] > 2 * MIN_PANEL_SIDE
    # The first panel is pasted unchanged (nearest, integer factor 8): a 256 x 384 block of black pixels.
    assert upscale(panels[0]).shape[:2] == (256, 384)
    black = image.max(axis=2) == 0
    assert (black.sum(axis=0) >= 256).sum() == 384 and (black.sum(axis=1) >= 384).sum() == 256
    with pytest.raises(ValueError, match="one caption per panel"):
        labelled_picture(panels, ["input"])


def test_missing_zoo_folders_fall_back_to_the_recipes_configs_untrained(tmp_path):
    # The presets live in configuration/zoo_recipes.py: a missing folder gives its zoo model's architecture, random.
    from rep4d.configuration.zoo_recipes import DEMO_MODELS, demo_fallback_readout
    from rep4d.demo import load_demo_model

    model, text, from_zoo = load_demo_model("4ds_distilled", tmp_path)
    recipe = DEMO_MODELS["4ds_distilled"]
    assert type(model).__name__ == recipe.model_class and not from_zoo and not model.training
    assert {key: getattr(model.config, key) for key in recipe.config} == recipe.config  # the student's width
    assert text.startswith("RANDOMLY INITIALISED") and f"no model_zoo/{recipe.name}" in text
    assert load_demo_model("point_tracking", tmp_path) == (None, None, False)  # run_demo builds a random head
    assert demo_fallback_readout() == {"readout_num_params": 64, "readout_num_heads": 4}


def test_demo_help_names_the_preset_defaults(capsys):
    from rep4d.cli import main
    from rep4d.configuration.zoo_recipes import DEMO_NUM_FRAMES, DEMO_RESOLUTION
    from rep4d.visualization import DEFAULT_FPS

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"default: the demo preset, {DEMO_NUM_FRAMES})" in text
    assert f"default: the demo preset, {DEMO_RESOLUTION[0]}x{DEMO_RESOLUTION[1]})" in text
    assert f"(default {DEFAULT_FPS:g}:" in text


def test_synthetic_clip_rejects_bad_sizes():
    with pytest.raises(ValueError, match="at least 4 frames"):
        synthetic_clip(num_frames=2)
    with pytest.raises(ValueError, match="16x16"):
        synthetic_clip(resolution=(8, 8))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo") / "out"
    start = time.perf_counter()
    summary = run_demo(output, num_frames=4, resolution=(32, 32), video_frames=6, progress=False)
    return output, summary, time.perf_counter() - start


def test_demo_runs_every_step_on_both_clips_with_verdicts(demo):
    output, summary, seconds = demo
    assert seconds < 120, f"the tiny demo took {seconds:.0f} s"
    steps = {(step["clip"], step["step"]): step for step in summary["steps"]}
    assert {step for clip, step in steps if clip == "synthetic"} == SYNTHETIC_STEPS
    assert {step for clip, step in steps if clip == "real"} == SYNTHETIC_STEPS
    for (clip, name), step in steps.items():
        if clip == "real" and name in NO_TRUTH_ON_REAL:
            assert step["verdict"] == "n/a" and step["value"] is None
        else:
            assert step["verdict"] in ("better", "worse"), step
            assert np.isfinite(step["value"]) and np.isfinite(step["baseline_value"])
    # Label propagation: J&F in [0, 1], a visible non-empty mask track, the empty mask as a second baseline.
    for clip in ("synthetic", "real"):
        for name in ("4ds_student_label_propagation", "rvm_label_propagation"):
            assert steps[clip, name]["details"]["given_foreground"] > 0
    assert steps["real", "4ds_student_label_propagation"]["details"]["predicted_foreground"] > 0.01
    for name in ("4ds_student_label_propagation", "rvm_label_propagation"):
        step = steps["synthetic", name]
        assert 0.0 <= step["value"] <= 1.0 and "empty-mask J&F" in step["other_baselines"]
    assert "pixel accuracy" not in json.dumps(summary)
    saved = json.loads((output / "summary.json").read_text())
    assert saved["steps"] == summary["steps"]


def test_summary_markdown_shows_every_picture_and_verdict(demo):
    output, summary, _ = demo
    markdown = (output / "summary.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| synthetic") or line.startswith("| real")]
    assert len(rows) == len(summary["steps"])
    for row, step in zip(rows, summary["steps"]):
        assert re.search(r"\*\*(better|worse \(below baseline\)|n/a \(no ground truth\))\*\*", row), row
        assert ("below baseline" in row) == (step["verdict"] == "worse")
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert set(pictures) == {name for name in summary["files"] if name.endswith(".png")}
    for name in summary["files"]:
        assert (output / name).stat().st_size > 0, name
    assert not [path.name for path in output.iterdir() if path.name.startswith(".")]  # nothing partial left


def test_pictures_have_large_labelled_panels(demo):
    output, _, _ = demo
    for stem, panels in PANELS.items():
        width, height = Image.open(output / f"synthetic_{stem}.png").size
        assert height >= MIN_PANEL_SIDE + 40 and width >= panels * MIN_PANEL_SIDE, (stem, width, height)
        # Each picture starts with a title or caption line of dark text on white.
        top = np.asarray(Image.open(output / f"synthetic_{stem}.png").convert("L"))[:30]
        assert (top < 80).any() and (top == 255).mean() > 0.5, stem


def test_videos_keep_the_source_frame_rate(demo):
    output, summary, _ = demo
    videos = [name for name in summary["files"] if name.endswith(".mp4")]
    assert {name.split("_")[0] for name in videos} == {"synthetic", "real"}
    for name in videos:
        expected = 25.0 if name.startswith("real_") else 8.0
        assert read_video_fps(output / name) == pytest.approx(expected), name


def test_release_flag_uses_the_release_model_for_propagation(tmp_path, monkeypatch):
    from rep4d import releases
    from rep4d.model_zoo import ZOO_DIR
    from rep4d.modeling import FourDSModel

    calls = []

    def fake_from_release(name, **kwargs):
        calls.append(name)
        return FourDSModel.from_pretrained(ZOO_DIR / "4ds-tiny-dist").eval(), None

    monkeypatch.setattr(releases, "from_release", fake_from_release)
    summary = run_demo(tmp_path / "out", num_frames=4, resolution=(32, 32), release="4ds-b-dist-e", video=None,
                       progress=False)
    assert calls == ["4ds-b-dist-e"]
    step = next(step for step in summary["steps"] if step["step"] == "release_label_propagation")
    assert step["model"].startswith("release 4ds-b-dist-e") and step["verdict"] in ("better", "worse")
    assert "release 4ds-b-dist-e" in summary["note"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    from rep4d.cli import main

    assert main(["demo", "--output", str(tmp_path / "a"), "--num-frames", "3"]) == 2
    assert "--num-frames must be an even number >= 4" in capsys.readouterr().err
    assert main(["demo", "--output", str(tmp_path / "b"), "--video", str(tmp_path / "missing.mp4")]) == 2
    assert "no such video file" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_readout_pictures_are_labelled_with_a_depth_colour_bar():
    from rep4d.readout_pictures import depth_pictures, labelled_frames, track_pictures

    rng = np.random.default_rng(0)
    frames = rng.uniform(size=(2, 32, 32, 3)).astype(np.float32)
    depth = rng.uniform(4, 20, size=(2, 32, 32)).astype(np.float32)
    pictures = labelled_frames("depth", depth_pictures(frames, depth, depth + 1, factor=8), 0, depth)
    assert len(pictures) == 2 and pictures[0].shape[0] > 256 and pictures[0].shape[1] > 3 * 256
    tracks = rng.uniform(0, 32, size=(3, 2, 2)).astype(np.float32)
    occluded = np.zeros((3, 2), bool)
    pictures = labelled_frames("points", track_pictures(frames, tracks, occluded, tracks, occluded, 8), 1)
    assert pictures[1].shape[1] > 2 * 256 and pictures[1].dtype == np.uint8


def test_model_flag_needs_a_converted_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a converted 4DS folder"):
        run_demo(tmp_path / "out", num_frames=4, resolution=(32, 32), model_dir=tmp_path / "nothing", video=None,
                 progress=False)
    assert not (tmp_path / "out").exists()
