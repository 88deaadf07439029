"""Pipelines: transformers' own video-classification with a rep4d readout, and the rep4d custom pipelines (video
depth, point and box tracking, grid features) on file paths, arrays and lists of frames, in the video's own
coordinates; the remote-code export serves them in a clean process without rep4d."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import pipeline

import rep4d  # noqa: F401
from rep4d.configuration import FourDSConfig, ReadoutConfig
from rep4d.modeling import (
    FourDSForDepthEstimation,
    FourDSModel,
    ReadoutForBoxTracking,
    ReadoutForPointTracking,
    ReadoutForVideoClassification,
)
from rep4d.pipelines import BOX_TRACKING_TASK, DEPTH_TASK, FEATURE_TASK, POINT_TRACKING_TASK, VideoGeometry
from rep4d.processing import FourDSVideoProcessor
from rep4d.remote_code import export_remote_code
from rep4d.visualization import write_video

from testing_utils import FIXTURES, run_isolated_python, tiny_moog_config

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, tubelet_size=[2, 8, 8],
            image_size=[32, 32], num_frames=4, readout_num_params=32, readout_num_heads=2)  # fmt: skip
HEAD = dict(readout_num_params=32, readout_num_heads=2, num_fourier_bands=4)


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    video = np.random.default_rng(0).integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, video, fps=12)
    return path


def tiny_processor(**kwargs):
    return FourDSVideoProcessor.for_config(FourDSConfig(**TINY), **kwargs)


def resize_bilinear(maps: torch.Tensor, size) -> torch.Tensor:
    return torch.nn.functional.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


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
    """A saved FourDSForDepthEstimation with its processor and exported remote code (pipelines included)."""
    folder = tmp_path_factory.mktemp("depth") / "repo"
    torch.manual_seed(0)
    FourDSForDepthEstimation(FourDSConfig(**TINY)).save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    written = export_remote_code(folder)
    assert "pipelines.py" in written
    assert set(json.loads((folder / "config.json").read_text())["custom_pipelines"]) == {DEPTH_TASK, FEATURE_TASK}
    return folder


def test_depth_pipeline_returns_depth_at_the_video_size(depth_folder, clip_path):
    model = FourDSForDepthEstimation.from_pretrained(depth_folder).eval()
    processor = FourDSVideoProcessor.from_pretrained(depth_folder)
    depth = pipeline(DEPTH_TASK, model=model, video_processor=processor)
    video = np.random.default_rng(1).integers(0, 256, (6, 40, 48, 3), dtype=np.uint8)
    from_array = depth(video)
    assert from_array["predicted_depth"].shape == (4, 40, 48) and from_array["depth"].shape == (4, 40, 48)
    assert from_array["depth"].dtype == np.uint8 and from_array["frames"][0].size == (48, 40)
    assert from_array["frame_indices"].tolist() == [0, 1, 2, 3] and from_array["fps"] is None
    with torch.inference_mode():
        pixel_values = processor(video, return_tensors="pt")["pixel_values"]
        on_input = model(pixel_values).predicted_depth[0]
    assert on_input.shape == (4, 32, 32)  # the processor resizes the whole frame (no crop) to 32x32
    torch.testing.assert_close(from_array["predicted_depth"], resize_bilinear(on_input, (40, 48)))
    from_list = depth(list(video))
    torch.testing.assert_close(from_list["predicted_depth"], from_array["predicted_depth"])
    channels_first = depth(torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(channels_first["predicted_depth"], from_array["predicted_depth"])
    from_file = depth(str(clip_path))
    assert from_file["predicted_depth"].shape == (4, 48, 64) and from_file["fps"] == pytest.approx(12)
    # The processor's frame selection is followed and reported: frames 2..5 of the video.
    later = pipeline(DEPTH_TASK, model=model, video_processor=FourDSVideoProcessor.from_pretrained(depth_folder,
                                                                                                 start_frame=2))
    from_frame_2 = later(video)
    assert from_frame_2["frame_indices"].tolist() == [2, 3, 4, 5]
    torch.testing.assert_close(from_frame_2["predicted_depth"], depth(video[2:])["predicted_depth"])
    with pytest.raises(ValueError, match="video array"):
        depth(np.zeros((4, 4), dtype=np.uint8))


def test_depth_pipeline_refuses_a_randomly_initialised_head(tmp_path):
    FourDSModel(FourDSConfig(**TINY)).save_pretrained(tmp_path)  # backbone weights only
    tiny_processor().save_pretrained(tmp_path)
    model = FourDSForDepthEstimation.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="randomly initialised"):
        pipeline(DEPTH_TASK, model=model, video_processor=tiny_processor())
    with pytest.raises(ValueError, match="randomly initialised"):
        pipeline(DEPTH_TASK, model=str(tmp_path))


def test_depth_pipeline_on_moog_depth_head():
    from rep4d.modeling import MooGForDepthEstimation
    from rep4d.processing import MooGVideoProcessor

    config = tiny_moog_config(num_frames=3)
    torch.manual_seed(0)
    model = MooGForDepthEstimation(config).eval()
    processor = MooGVideoProcessor.for_config(config)
    depth = pipeline(DEPTH_TASK, model=model, video_processor=processor)
    video = np.random.default_rng(3).integers(0, 256, (6, 20, 30, 3), dtype=np.uint8)
    out = depth(video)
    assert out["predicted_depth"].shape == (3, 20, 30) and out["frame_indices"].tolist() == [0, 1, 2]
    pixel_values = processor(video, return_tensors="pt")["pixel_values"]
    with torch.no_grad():  # the pipeline draws MooG's initial state from a generator seeded with 0
        on_input = model(pixel_values, generator=torch.Generator().manual_seed(0)).predicted_depth[0]
    torch.testing.assert_close(out["predicted_depth"], resize_bilinear(on_input, (20, 30)))
    torch.testing.assert_close(depth(video)["predicted_depth"], out["predicted_depth"])


def test_video_geometry_maps_between_video_and_model_input():
    geometry = VideoGeometry((48, 64), (32, 42), (0, 5), (32, 32), frame_indices=[3, 5, 7, 9])
    xy = torch.tensor([[10.0, 20.0], [64.0, 48.0], [0.0, 0.0]])
    on_input = geometry.to_input_xy(xy)
    torch.testing.assert_close(on_input[0], torch.tensor([10 * 42 / 64 - 5, 20 * 32 / 48]))
    torch.testing.assert_close(geometry.to_video_xy(on_input), xy)
    assert geometry.clip_times(torch.tensor([3.0, 9.0, 5.0])).tolist() == [0.0, 3.0, 1.0]
    with pytest.raises(ValueError, match=r"frame indices .* \[3, 5, 7, 9\]"):
        geometry.clip_times(torch.tensor([4.0]))
    # Maps go back to the video size; outside the centre crop there is no prediction.
    maps = geometry.to_video_image(torch.ones(4, 32, 32))
    assert maps.shape == (4, 48, 64)
    assert torch.isnan(maps[:, :, 0]).all() and torch.isnan(maps[:, :, -1]).all()
    assert (maps[:, :, 10:54] == 1).all()


def point_readout():
    config = ReadoutConfig(task="points", backbone_config=FourDSConfig(**TINY).to_dict(), num_frames=4, **HEAD)
    torch.manual_seed(0)
    return ReadoutForPointTracking(config).eval()


@pytest.mark.parametrize("crop", [False, True])
def test_point_tracking_pipeline_in_video_coordinates(clip_path, crop):
    model = point_readout()
    processor = tiny_processor(resize_mode="shorter_side_crop") if crop else tiny_processor()
    tracker = pipeline(POINT_TRACKING_TASK, model=model, video_processor=processor)
    queries = np.array([[0, 10.0, 24.0], [2, 40.0, 30.0], [3, 24.0, 32.0]])  # (t, y, x) pixels of the 48x64 video
    result = tracker(str(clip_path), query_points=queries)
    assert result["tracks"].shape == (3, 4, 2) and result["visible"].shape == (3, 4)
    assert result["visible"].dtype == torch.bool and torch.equal(result["visible"], ~result["occluded"])
    assert result["frame_indices"].tolist() == [0, 1, 2, 3]
    # The same model called by hand on the processor's frames, with the mapping done explicitly.
    placement = processor.output_geometry(48, 64)
    (rh, rw), (top, left) = placement["resized"], (placement["crop"] or (0, 0))[:2]
    assert ((rh, rw), (top, left)) == (((32, 42), (0, 5)) if crop else ((32, 32), (0, 0)))
    pixel_values = processor(str(clip_path), return_tensors="pt")["pixel_values"]
    on_input = torch.tensor([[t, y * rh / 48 - top, x * rw / 64 - left] for t, y, x in queries], dtype=torch.float32)
    with torch.no_grad():
        out = model(pixel_values=pixel_values, query_points=on_input[None])
    expected = (out.tracks[0] + torch.tensor([left, top])) * torch.tensor([64 / rw, 48 / rh])
    torch.testing.assert_close(result["tracks"], expected)
    torch.testing.assert_close(result["occluded"], out.occluded[0])
    with pytest.raises(ValueError, match="query_points"):
        tracker(str(clip_path))
    with pytest.raises(ValueError, match="frame indices"):
        tracker(str(clip_path), query_points=np.array([[5, 10.0, 10.0]]))
    if crop:  # x = 2 is left of the centre crop (video x in [7.6, 56.4])
        with pytest.raises(ValueError, match=r"outside the part of the video the model sees \(x in \[7.619, 56.38\]"):
            tracker(str(clip_path), query_points=np.array([[0, 10.0, 2.0]]))


def test_box_tracking_pipeline_in_video_pixels(clip_path):
    config = ReadoutConfig(task="boxes", backbone_config=FourDSConfig(**TINY).to_dict(), num_frames=4, **HEAD)
    torch.manual_seed(0)
    model = ReadoutForBoxTracking(config).eval()
    tracker = pipeline(BOX_TRACKING_TASK, model=model, video_processor=tiny_processor())
    boxes = np.array([[8.0, 6.0, 40.0, 30.0], [0.0, 0.0, 64.0, 48.0]])  # (x_min, y_min, x_max, y_max)
    result = tracker(str(clip_path), query_boxes=boxes)
    assert result["boxes"].shape == (2, 4, 4)
    pixel_values = tiny_processor()(str(clip_path), return_tensors="pt")["pixel_values"]
    normalised = torch.tensor(boxes[:, [1, 0, 3, 2]] / [48, 64, 48, 64], dtype=torch.float32)  # (y0, x0, y1, x1)
    with torch.no_grad():
        out = model(pixel_values=pixel_values, query_boxes=normalised[None]).boxes[0]
    torch.testing.assert_close(result["boxes"], out[..., [1, 0, 3, 2]] * torch.tensor([64, 48, 64, 48]))
    with pytest.raises(ValueError, match="x_min <= x_max"):
        tracker(str(clip_path), query_boxes=np.array([[30.0, 6.0, 8.0, 30.0]]))


@pytest.mark.slow
def test_moog_point_tracking_pipeline_via_remote_code(tmp_path):
    from rep4d.publishing import publish

    folder = tmp_path / "moog"
    publish([FIXTURES / "moog" / "tiny_points" / "backbone_params.npz",
             FIXTURES / "moog" / "tiny_points" / "point_head_params.npz"],
            repo_id="rep4d/moog-point-tracking", output_dir=folder)  # fmt: skip
    moog = pipeline(POINT_TRACKING_TASK, model=str(folder), trust_remote_code=True)
    assert type(moog.model).__name__ == "MooGForPointTracking"
    frames = [np.full((64, 96, 3), 40 * i, dtype=np.uint8) for i in range(6)]
    out = moog(frames, query_points=np.array([[0, 32.0, 48.0], [0, 10.0, 80.0]]))
    clip = moog.model.config.readout_num_frames
    assert out["tracks"].shape == (2, clip, 2) and out["visible"].shape == (2, clip)
    assert torch.all((out["tracks"] >= -96) & (out["tracks"] <= 192))
    with pytest.raises(ValueError, match="first frame"):
        moog(frames, query_points=np.array([[1, 10.0, 10.0]]))


def test_feature_extraction_pipeline_gives_grid_features(tmp_path):
    torch.manual_seed(0)
    model = FourDSModel(FourDSConfig(**TINY)).eval()
    features = pipeline(FEATURE_TASK, model=model, video_processor=tiny_processor())
    video = torch.rand(5, 3, 36, 36)  # a float tensor, channels first
    out = features(video)
    assert out["features"].shape == (4, 4, 4, 32) and out["grid_size"] == (4, 4)
    pixel_values = tiny_processor()(video.permute(0, 2, 3, 1).numpy(), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = model.get_video_features(pixel_values).features[0].reshape(4, 4, 4, 32)
    torch.testing.assert_close(out["features"], expected)

    # MooG: K latent tokens per frame, not on a grid; the same call, no model-specific code in the pipeline.
    from rep4d.modeling import MooGModel
    from rep4d.processing import MooGVideoProcessor

    config = tiny_moog_config(num_frames=3)
    moog = pipeline(FEATURE_TASK, model=MooGModel(config).eval(), video_processor=MooGVideoProcessor.for_config(config))
    latents = moog(np.zeros((5, 20, 24, 3), dtype=np.uint8))
    assert latents["features"].shape == (3, 6, 16) and latents["grid_size"] is None


@pytest.mark.slow
def test_feature_extraction_pipeline_on_rvm_and_moog_remote_code(tmp_path):
    from rep4d.publishing import RELEASES, publish

    folder = tmp_path / "rvm"
    publish(FIXTURES / "rvm" / "tiny_stream" / "params.npz", repo_id="rep4d/rvm-s", output_dir=folder,
            release=RELEASES["rvm-s"])  # fmt: skip
    rvm = pipeline(FEATURE_TASK, model=str(folder), trust_remote_code=True)
    out = rvm(np.zeros((3, 64, 64, 3), dtype=np.uint8))
    patch = rvm.model.config.patch_size
    assert out["features"].shape[:3] == (3, 256 // patch, 256 // patch)
    assert out["grid_size"] == (256 // patch, 256 // patch)


def test_pipelines_load_via_remote_code_in_a_clean_process(depth_folder, tmp_path):
    video = np.random.default_rng(2).integers(0, 256, (6, 40, 48, 3), dtype=np.uint8)
    np.save(tmp_path / "video.npy", video)
    points_folder = tmp_path / "points"  # a readout: its config holds the backbone's, registered by the export
    point_readout().save_pretrained(points_folder)
    tiny_processor().save_pretrained(points_folder)
    export_remote_code(points_folder, model_class=ReadoutForPointTracking)
    queries = np.array([[1, 20.0, 24.0]])
    code = f"""
import numpy as np
from transformers import pipeline
video = np.load({str(tmp_path / "video.npy")!r})
depth = pipeline("video-depth-estimation", model={str(depth_folder)!r}, trust_remote_code=True)
assert type(depth).__module__.startswith("transformers_modules"), type(depth).__module__
out = depth(list(video))
np.save({str(tmp_path / "remote_depth.npy")!r}, out["predicted_depth"].numpy())
print("depth video", out["depth"].shape, out["depth"].dtype)
features = pipeline("video-feature-extraction", model={str(depth_folder)!r}, trust_remote_code=True)
grid = features(video)
np.save({str(tmp_path / "remote_features.npy")!r}, grid["features"].numpy())
print("features", tuple(grid["features"].shape), grid["grid_size"])
tracker = pipeline("point-tracking", model={str(points_folder)!r}, trust_remote_code=True)
tracks = tracker(video, query_points={queries.tolist()!r})
np.save({str(tmp_path / "remote_tracks.npy")!r}, tracks["tracks"].numpy())
print("tracks", type(tracker.model).__name__, tuple(tracks["tracks"].shape))
"""
    result = run_isolated_python(code, cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "depth video (4, 40, 48) uint8" in result.stdout
    assert "features (4, 4, 4, 32) (4, 4)" in result.stdout
    local_depth = pipeline(DEPTH_TASK, model=FourDSForDepthEstimation.from_pretrained(depth_folder).eval(),
                           video_processor=FourDSVideoProcessor.from_pretrained(depth_folder))  # fmt: skip
    np.testing.assert_allclose(np.load(tmp_path / "remote_depth.npy"), local_depth(video)["predicted_depth"].numpy(),
                               atol=1e-6)  # fmt: skip
    local_features = pipeline(FEATURE_TASK, model=FourDSModel.from_pretrained(depth_folder).eval(),
                              video_processor=FourDSVideoProcessor.from_pretrained(depth_folder))  # fmt: skip
    np.testing.assert_allclose(np.load(tmp_path / "remote_features.npy"), local_features(video)["features"].numpy(),
                               atol=1e-6)  # fmt: skip
    assert "tracks ReadoutForPointTracking (1, 4, 2)" in result.stdout
    local_tracks = pipeline(POINT_TRACKING_TASK, model=point_readout(), video_processor=tiny_processor())
    np.testing.assert_allclose(np.load(tmp_path / "remote_tracks.npy"),
                               local_tracks(video, query_points=queries)["tracks"].numpy(), atol=1e-5)  # fmt: skip


@pytest.mark.slow
def test_demo_runs_end_to_end_offline(tmp_path):
    import json

    from rep4d.cli import main as cli_main

    out = tmp_path / "demo"
    assert cli_main(["demo", "--output", str(out), "--num-frames", "4", "--resolution", "32", "--zoo",
                     str(tmp_path / "no_zoo"), "--no-video", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"moog", "4ds", "4ds_distilled", "rvm", "point_tracking"}
    # No zoo folder: every step says it runs a random model (built from configs in code, not from test fixtures).
    assert sorted(summary["random_models"]) == sorted(summary["models"])
    assert all(text.startswith("RANDOMLY INITIALISED") for text in summary["models"].values()), summary["models"]
    assert "RANDOMLY INITIALISED" in summary["note"] and "RANDOMLY INITIALISED" in (out / "summary.md").read_text()
    for name in summary["files"]:
        assert (out / name).stat().st_size > 0, name
    assert {"synthetic_moog_attention.mp4", "synthetic_4ds_reconstruction.png", "synthetic_rvm_label_propagation.mp4",
            "synthetic_point_tracks.mp4"} <= set(summary["files"])
    jf = summary["results"]["synthetic/rvm_label_propagation"]
    assert jf["metric"] == "J&F" and 0.0 <= jf["value"] <= 1.0 and jf["verdict"] in ("better", "worse")
