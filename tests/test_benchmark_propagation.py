"""``rep4d benchmark propagation`` and :mod:`rep4d.training.propagation_benchmark`: the three benchmarks on tiny
generated datasets, resumable output, and the command end to end with ``model_zoo/rvm-tiny``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_propagation_datasets import make_davis, make_jhmdb, make_vip

from rep4d.training import propagation_benchmark
from rep4d.training.propagation_benchmark import default_settings, run_propagation_benchmark
from rep4d.training.propagation_datasets import DavisDataset
from rep4d.training.propagation_metrics import davis_summary, davis_video_scores

RVM_TINY = Path(__file__).resolve().parents[1] / "model_zoo" / "rvm-tiny"


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


def colour_features(frames: torch.Tensor) -> torch.Tensor:
    """A stand-in backbone: (T, 3, H, W) -> (T, H/8, W/8, 3) mean colour of each 8x8 patch (hue tracks objects)."""
    return F.avg_pool2d(frames, 8).permute(0, 2, 3, 1)


def test_defaults_are_the_notebooks():
    assert default_settings("davis").resolution == (480, 880) and default_settings("davis").topk == 7
    assert default_settings("jhmdb").resolution == (320, 320) and default_settings("jhmdb").topk == 7
    vip = default_settings("vip")
    assert vip.resolution == (448, 880) and vip.topk == 10
    assert (vip.n_context, vip.temperature, vip.radius, vip.restrict_neighborhood) == (20, 0.7, 20, True)
    assert default_settings("davis", resolution=(64, 112), topk=None).resolution == (64, 112)
    with pytest.raises(ValueError, match="davis, jhmdb, vip"):
        default_settings("kinetics")


def test_davis_benchmark_beats_copy_first_mask(tmp_path):
    root = make_davis(tmp_path / "DAVIS", num_frames=6)
    result = run_propagation_benchmark("davis", root, extractor=colour_features, output_dir=tmp_path / "out",
                                       settings=default_settings("davis", resolution=(64, 112)), progress=False)
    assert result.computed == ["bear", "camel"] and result.skipped == []
    dataset = DavisDataset(root)
    copy_first = davis_summary([
        davis_video_scores(sample.masks, np.repeat(sample.masks[:1], len(sample.masks), axis=0)) for sample in dataset
    ])["JF_mean"]
    empty = davis_summary([davis_video_scores(s.masks, np.zeros_like(s.masks)) for s in dataset])["JF_mean"]
    assert result.overall["JF_mean"] > copy_first + 0.1 > empty + 0.1
    assert 0 <= result.overall["J_mean"] <= 1 and 0 <= result.overall["F_mean"] <= 1
    assert result.overall["num_objects"] == 4 and result.overall["num_frames"] == 12
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["overall"]["JF_mean"] == pytest.approx(result.overall["JF_mean"])
    assert [row["video_id"] for row in report["videos"]] == ["bear", "camel"]
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "| bear |" in markdown and "JF_mean" in markdown


def test_vip_and_jhmdb_benchmarks(tmp_path):
    vip = run_propagation_benchmark("vip", make_vip(tmp_path / "VIP"), extractor=colour_features,
                                    output_dir=tmp_path / "vip", settings=default_settings("vip", resolution=(48, 80)),
                                    progress=False)
    assert 0.5 < vip.overall["mean_iou"] <= 1
    assert vip.overall["iou_per_class"]["hat"] is None  # in neither GT nor prediction: nan -> null, skipped
    assert vip.overall["iou_per_class"]["face"] > 0.3
    # the generated first frames have void (255) pixels: propagated void counts as background, not as a class
    assert all(row["predicted_void_pixels"] >= 0 for row in vip.rows)
    jhmdb = run_propagation_benchmark("jhmdb", make_jhmdb(tmp_path / "JHMDB"), extractor=colour_features,
                                      output_dir=tmp_path / "jhmdb",
                                      settings=default_settings("jhmdb", resolution=(48, 64)), progress=False)
    assert jhmdb.overall["num_videos"] == 2 and jhmdb.overall["num_frames"] == 8
    pcks = [jhmdb.overall[f"PCK@{t}"] for t in (0.1, 0.2, 0.3, 0.4, 0.5)]
    assert all(0 <= p <= 100 for p in pcks) and pcks == sorted(pcks)
    assert np.asarray(jhmdb.overall["pck_per_joint"]).shape == (5, 15)
    json.loads((tmp_path / "jhmdb" / "results.json").read_text())  # strict JSON
    # the table (aggregated from the per-video JSON files) equals the notebook's PCK over all predictions at once
    from rep4d.training.propagation_benchmark import propagate_sample
    from rep4d.training.propagation_datasets import JHMDBDataset
    from rep4d.training.propagation_metrics import jhmdb_pck

    samples = list(JHMDBDataset(tmp_path / "JHMDB"))
    predictions = [propagate_sample(colour_features, s, default_settings("jhmdb", resolution=(48, 64))) for s in samples]
    direct = jhmdb_pck([s.pose for s in samples], [p.coords for p in predictions], [p.visible for p in predictions])
    assert pcks == direct["pck"].tolist()


def test_resume_after_interruption(tmp_path):
    root = make_davis(tmp_path / "DAVIS", num_frames=4)
    settings = default_settings("davis", resolution=(64, 112))
    calls = []

    def counting(frames):
        calls.append(frames.shape[0])
        return colour_features(frames)

    def interrupt(video_id, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_propagation_benchmark("davis", root, extractor=counting, output_dir=tmp_path / "out", settings=settings,
                                  progress=False, on_video_done=interrupt)
    first = tmp_path / "out" / "videos" / "bear.json"
    assert first.exists() and not (tmp_path / "out" / "results.json").exists()
    assert not [p for p in (tmp_path / "out" / "videos").iterdir() if p.suffix != ".json"]  # no temp file left
    stamp = first.stat().st_mtime_ns
    resumed = run_propagation_benchmark("davis", root, extractor=counting, output_dir=tmp_path / "out",
                                        settings=settings, progress=False)
    assert resumed.skipped == ["bear"] and resumed.computed == ["camel"] and calls == [4, 4]
    assert first.stat().st_mtime_ns == stamp
    fresh = run_propagation_benchmark("davis", root, extractor=colour_features, output_dir=tmp_path / "fresh",
                                      settings=settings, progress=False)
    for key in ("JF_mean", "J_mean", "F_mean", "num_objects"):
        assert resumed.overall[key] == fresh.overall[key]
    with pytest.raises(ValueError, match="other settings.*topk"):
        run_propagation_benchmark("davis", root, extractor=colour_features, output_dir=tmp_path / "out",
                                  settings=default_settings("davis", resolution=(64, 112), topk=5), progress=False)


def test_command_end_to_end_with_rvm_tiny(tmp_path, capsys, monkeypatch):
    from rep4d.cli import main

    root = make_davis(tmp_path / "DAVIS", videos=("bear", "camel"), num_frames=4, height=64, width=112)
    output = tmp_path / "results"
    args = ["benchmark", "propagation", "--dataset", "davis", "--root", str(root), "--model", str(RVM_TINY),
            "--output", str(output), "--resolution", "48x88", "--device", "cpu", "--json", "--quiet"]
    assert main(args + ["--max-videos", "1"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["computed"] == ["bear"] and first["num_videos"] == 1
    stamp = (output / "videos" / "bear.json").stat().st_mtime_ns

    propagated = []
    original = propagation_benchmark.propagate_sample
    monkeypatch.setattr(propagation_benchmark, "propagate_sample",
                        lambda extractor, sample, *a, **k: propagated.append(sample.video_id) or original(
                            extractor, sample, *a, **k))
    assert main(args) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert propagated == ["camel"] and final["skipped"] == ["bear"] and final["computed"] == ["camel"]
    assert (output / "videos" / "bear.json").stat().st_mtime_ns == stamp
    assert final["num_videos"] == 2 and final["num_frames"] == 8
    for key in ("JF_mean", "J_mean", "F_mean"):
        assert 0.0 <= final[key] <= 1.0
    assert final["seconds_per_frame"] > 0
    report = json.loads((output / "results.json").read_text())
    assert report["header"]["resolution"] == [48, 88] and report["header"]["topk"] == 7
    assert report["overall"]["JF_mean"] == final["JF_mean"]
    assert "| camel |" in (output / "results.md").read_text()
    assert sorted(os.listdir(output)) == ["results.json", "results.md", "settings.json", "videos"]


def test_command_errors(tmp_path, capsys):
    from rep4d.cli import main

    root = make_davis(tmp_path / "DAVIS", num_frames=3)
    base = ["benchmark", "propagation", "--dataset", "davis", "--output", str(tmp_path / "out"), "--quiet"]
    assert main(base + ["--root", str(root), "--model", str(tmp_path / "no-model")]) == 2
    assert "cannot load the model" in capsys.readouterr().err
    assert main(base + ["--root", str(tmp_path / "nowhere"), "--model", str(RVM_TINY)]) == 2
    assert "DAVIS-2017 layout" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing is written before the model and the data are found


def tiny_transformers_backbone(folder: Path, kind: str) -> Path:
    """A randomly initialised transformers backbone saved as a model folder (no download)."""
    from transformers import Dinov2Config, Dinov2Model, VideoMAEConfig, VideoMAEModel

    torch.manual_seed(0)
    if kind == "dinov2":
        model = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64, patch_size=8, image_size=32))
    else:
        model = VideoMAEModel(VideoMAEConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=64, patch_size=8, image_size=64, num_frames=4,
                                             tubelet_size=2))
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("backbone", ["4ds-tiny-dist", "moog-tiny", "dinov2", "videomae"])
def test_command_runs_every_backbone_family(tmp_path, capsys, backbone):
    from rep4d.cli import main

    if backbone in ("dinov2", "videomae"):
        model = tiny_transformers_backbone(tmp_path / backbone, backbone)
    else:
        model = RVM_TINY.parent / backbone
    # transformers' VideoMAE has no position-embedding interpolation: run it at its trained (square) size
    resolution = "64x64" if backbone == "videomae" else "64x112"
    root = make_davis(tmp_path / "DAVIS", videos=("bear",), num_frames=4, height=64, width=112)
    status = main(["benchmark", "propagation", "--dataset", "davis", "--root", str(root), "--model", str(model),
                   "--output", str(tmp_path / "out"), "--resolution", resolution, "--device", "cpu", "--json",
                   "--quiet"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0, result
    assert result["num_videos"] == 1 and 0.0 <= result["JF_mean"] <= 1.0
