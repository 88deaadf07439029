"""Pipelines: transformers' own video-classification with a rep4d readout, and the rep4d custom pipelines (video
depth, point tracking, grid features) on file paths, arrays and lists of frames, one loaded via remote code in a
clean process."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import pipeline

import rep4d  # noqa: F401
from rep4d.configuration import FourDSConfig, ReadoutConfig
from rep4d.modeling import (
    FourDSForDepthEstimation,
    FourDSModel,
    ReadoutForPointTracking,
    ReadoutForVideoClassification,
)
from rep4d.pipelines import DEPTH_TASK, FEATURE_TASK, POINT_TRACKING_TASK
from rep4d.processing import FourDSVideoProcessor
from rep4d.publishing import RELEASES, publish
from rep4d.visualization import write_video

from testing_utils import FIXTURES, run_isolated_python

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, tubelet_size=[2, 8, 8],
            image_size=[32, 32], num_frames=4)


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    video = np.random.default_rng(0).integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, video, fps=8)
    return path


def tiny_processor():
    return FourDSVideoProcessor.for_config(FourDSConfig(**TINY))


def test_video_classification_pipeline_with_a_rep4d_readout(clip_path):
    config = ReadoutConfig(task="classification", backbone_config=FourDSConfig(**TINY).to_dict(), num_frames=4,
                           readout_num_params=32, readout_num_heads=2,
                           id2label={0: "left", 1: "right", 2: "still"}, label2id={"left": 0, "right": 1, "still": 2})
    model = ReadoutForVideoClassification(config).eval()
    classifier = pipeline("video-classification", model=model, video_processor=tiny_processor())
    result = classifier(str(clip_path), top_k=2)
    assert len(result) == 2 and {r["label"] for r in result} <= {"left", "right", "still"}
    assert result[0]["score"] >= result[1]["score"] > 0


@pytest.fixture(scope="module")
def depth_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("depth") / "repo"
    publish(FIXTURES / "4ds" / "tiny_depth" / "params.npz", repo_id="rep4d/4ds-b-dist-e-scannet-depth",
            output_dir=folder)
    return folder


def test_depth_pipeline_accepts_path_array_and_frame_list(depth_folder, clip_path):
    model = FourDSForDepthEstimation.from_pretrained(depth_folder).eval()
    depth = pipeline(DEPTH_TASK, model=model, video_processor=FourDSVideoProcessor.from_pretrained(depth_folder))
    video = np.random.default_rng(1).integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    from_array = depth(video)
    assert from_array["predicted_depth"].shape == (4, 32, 32) and from_array["depth"].dtype == np.uint8
    assert len(from_array["frames"]) == 4 and from_array["frames"][0].size == (32, 32)
    from_list = depth(list(video))
    torch.testing.assert_close(from_list["predicted_depth"], from_array["predicted_depth"])
    assert depth(str(clip_path))["predicted_depth"].shape == (4, 32, 32)
    with torch.inference_mode():
        pixel_values = FourDSVideoProcessor.from_pretrained(depth_folder)(video, return_tensors="pt")["pixel_values"]
        torch.testing.assert_close(from_array["predicted_depth"], model(pixel_values).predicted_depth[0])
    with pytest.raises(ValueError, match="video array"):
        depth(np.zeros((4, 4), dtype=np.uint8))


def test_point_tracking_pipeline_with_rep4d_readout_and_moog(tmp_path, clip_path):
    config = ReadoutConfig(task="points", backbone_config=FourDSConfig(**TINY).to_dict(), num_frames=4,
                           readout_num_params=32, readout_num_heads=2)
    tracker = pipeline(POINT_TRACKING_TASK, model=ReadoutForPointTracking(config).eval(),
                       video_processor=tiny_processor())
    queries = np.array([[0, 10.0, 12.0], [2, 20.0, 5.0], [3, 16.0, 16.0]])
    result = tracker(str(clip_path), query_points=queries)
    assert result["tracks"].shape == (3, 4, 2) and result["visible"].shape == (3, 4)
    assert result["visible"].dtype == torch.bool
    with pytest.raises(ValueError, match="query_points"):
        tracker(str(clip_path))

    folder = tmp_path / "moog"
    publish([FIXTURES / "moog" / "tiny_points" / "backbone_params.npz",
             FIXTURES / "moog" / "tiny_points" / "point_head_params.npz"],
            repo_id="rep4d/moog-point-tracking", output_dir=folder)
    moog = pipeline(POINT_TRACKING_TASK, model=str(folder), trust_remote_code=True)
    assert type(moog.model).__name__ == "MooGForPointTracking"
    frames = [np.full((64, 64, 3), 40 * i, dtype=np.uint8) for i in range(6)]
    out = moog(frames, query_points=np.array([[0, 128.0, 128.0], [0, 30.0, 200.0]]))
    assert out["tracks"].shape == (2, 4, 2) and out["visible"].shape == (2, 4)
    assert torch.all((out["tracks"] >= -256) & (out["tracks"] <= 512))
    with pytest.raises(ValueError, match="frame 0"):
        moog(frames, query_points=np.array([[1, 10.0, 10.0]]))


def test_feature_extraction_pipeline_gives_grid_features(tmp_path):
    model = FourDSModel(FourDSConfig(**TINY)).eval()
    features = pipeline(FEATURE_TASK, model=model, video_processor=tiny_processor())
    video = torch.rand(5, 3, 36, 36)  # a float tensor, channels first
    assert features(video)["features"].shape == (4, 4, 4, 32)
    folder = tmp_path / "rvm"
    publish(FIXTURES / "rvm" / "tiny_stream" / "params.npz", repo_id="rep4d/rvm-s", output_dir=folder,
            release=RELEASES["rvm-s"])
    rvm = pipeline(FEATURE_TASK, model=str(folder), trust_remote_code=True)
    grid = rvm(np.zeros((3, 64, 64, 3), dtype=np.uint8))["features"]
    patch = rvm.model.config.patch_size
    assert grid.shape[:3] == (3, 256 // patch, 256 // patch)


def test_depth_pipeline_loads_via_remote_code_in_a_clean_process(depth_folder, tmp_path):
    video = np.random.default_rng(2).integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    np.save(tmp_path / "video.npy", video)
    code = f"""
import numpy as np
from transformers import pipeline
pipe = pipeline("video-depth-estimation", model={str(depth_folder)!r}, trust_remote_code=True)
assert type(pipe).__module__.startswith("transformers_modules"), type(pipe).__module__
video = np.load({str(tmp_path / "video.npy")!r})
out = pipe(list(video))
np.save({str(tmp_path / "remote_depth.npy")!r}, out["predicted_depth"].numpy())
print("depth video", out["depth"].shape, out["depth"].dtype)
"""
    result = run_isolated_python(code, cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "depth video (4, 32, 32) uint8" in result.stdout
    local = pipeline(DEPTH_TASK, model=FourDSForDepthEstimation.from_pretrained(depth_folder).eval(),
                     video_processor=FourDSVideoProcessor.from_pretrained(depth_folder))
    np.testing.assert_allclose(np.load(tmp_path / "remote_depth.npy"), local(video)["predicted_depth"].numpy(),
                               atol=1e-6)


@pytest.mark.slow
def test_demo_runs_end_to_end_offline(tmp_path):
    import json

    from rep4d.cli import main as cli_main

    out = tmp_path / "demo"
    assert cli_main(["demo", "--output", str(out), "--frames", "4", "--size", "32", "--zoo", str(tmp_path / "no_zoo"),
                     "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"moog", "4ds", "4ds_distilled", "rvm", "point_tracking"}
    # No zoo folder: every step says it runs a random model (built from configs in code, not from test fixtures).
    assert sorted(summary["random_models"]) == sorted(summary["models"])
    assert all(text.startswith("RANDOMLY INITIALISED") for text in summary["models"].values()), summary["models"]
    assert "RANDOMLY INITIALISED" in summary["note"] and "RANDOMLY INITIALISED" in (out / "summary.md").read_text()
    for name in summary["files"]:
        assert (out / name).stat().st_size > 0, name
    assert {"moog_attention.mp4", "fourds_reconstruction.png", "rvm_label_propagation.mp4", "point_tracks.mp4"} <= set(
        summary["files"])
    assert 0.0 <= summary["results"]["rvm_propagation_pixel_accuracy"] <= 1.0
