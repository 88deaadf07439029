"""Video processors: every input kind, frame selection, resize geometry, filter, refusals, save/reload, protocols."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoVideoProcessor

import rep4d  # noqa: F401
from rep4d.configuration import FourDSConfig
from rep4d.processing import FourDSVideoProcessor, MooGVideoProcessor, RVMVideoProcessor
from rep4d.processing.video_processing_base import Rep4dVideoProcessor, Rep4dVideosKwargs, read_video_pyav
from rep4d.processing.video_processing_fourds import FourDSVideoProcessorKwargs
from rep4d.processing.video_processing_moog import MooGVideoProcessorKwargs
from rep4d.processing.video_processing_rvm import RVMVideoProcessorKwargs
from rep4d.visualization import write_video


def gradient_video(frames=10, height=40, width=48) -> np.ndarray:
    """uint8 (T, H, W, 3) whose frame index is readable from the pixels (red channel = 12 * t)."""
    video = np.zeros((frames, height, width, 3), np.uint8)
    for t in range(frames):
        video[t, ..., 0] = 12 * t
        video[t, ..., 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        video[t, ..., 2] = 128
    return video


def frames_of(pixel_values: torch.Tensor) -> list[int]:
    """Frame indices read back from the red channel of (1, T, C, H, W) pixel values."""
    return [int(v) for v in torch.round(pixel_values[0, :, 0].mean((-1, -2)) * 255 / 12).tolist()]


@pytest.fixture
def processor():
    return FourDSVideoProcessor.for_size(32, 32, num_frames=4)


# ----------------------------------------------------------------------------------------------- frame selection


def test_default_sampling_is_the_first_consecutive_frames(processor):
    out = processor(gradient_video(), return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 4, 3, 32, 32) and out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert frames_of(out) == [0, 1, 2, 3]


def test_consecutive_sampling_from_a_start_frame_at_a_stride(processor):
    out = processor(gradient_video(), start_frame=3, frame_stride=2, num_frames=3, return_tensors="pt")
    assert frames_of(out["pixel_values"]) == [3, 5, 7]
    every = processor(gradient_video(), start_frame=3, frame_stride=2, num_frames=None, return_tensors="pt")
    assert frames_of(every["pixel_values"]) == [3, 5, 7, 9]
    with pytest.raises(ValueError, match="4 frames from frame 3 at stride 3 need at least 13"):
        processor(gradient_video(), start_frame=3, frame_stride=3, return_tensors="pt")
    with pytest.raises(ValueError, match="start_frame=10 is past the end of the video"):
        processor(gradient_video(), start_frame=10, return_tensors="pt")


def test_uniform_sampling_spreads_frames_over_the_video(processor):
    out = processor(gradient_video(), frame_sampling="uniform", return_tensors="pt", return_metadata=True)
    assert frames_of(out["pixel_values"]) == [0, 2, 5, 7]
    assert list(out["video_metadata"][0].frames_indices) == [0, 2, 5, 7]
    with pytest.raises(ValueError, match="fewer than num_frames=4"):
        processor(gradient_video(frames=3), frame_sampling="uniform", return_tensors="pt")


def test_center_sampling_takes_consecutive_centred_frames(processor):
    out = processor(gradient_video(), frame_sampling="center", frame_stride=2, return_tensors="pt",
                    return_metadata=True)
    assert list(out["video_metadata"][0].frames_indices) == [1, 3, 5, 7]
    with pytest.raises(ValueError, match="need at least 13"):
        processor(gradient_video(), frame_sampling="center", frame_stride=4, return_tensors="pt")


def test_no_sampling_keeps_every_frame(processor):
    out = processor(gradient_video(frames=6), do_sample_frames=False, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 6, 3, 32, 32)


def test_fps_sampling_keeps_transformers_semantics(processor):
    metadata = [{"total_num_frames": 8, "fps": 4, "duration": 2.0}]
    out = processor(gradient_video(frames=8), fps=3, video_metadata=metadata, return_tensors="pt")["pixel_values"]
    assert out.shape[1] == 6
    with pytest.raises(ValueError, match="mutually exclusive"):
        processor(gradient_video(frames=8), fps=3, num_frames=2, video_metadata=metadata, return_tensors="pt")


def test_too_short_videos_are_refused(processor):
    with pytest.raises(ValueError, match="the video has 3 frames; 4 frames from frame 0 at stride 1 need at least 4"):
        processor(gradient_video(frames=3), return_tensors="pt")


# ------------------------------------------------------------------------------------------------------- geometry


def wide_video(frames=2, height=272, width=640) -> np.ndarray:
    """A 640x272 (bikes.mp4-sized) video with a red left edge and a blue right edge, 8 px wide, grey elsewhere."""
    video = np.full((frames, height, width, 3), 128, np.uint8)
    video[:, :, :8] = (255, 0, 0)
    video[:, :, -8:] = (0, 0, 255)
    return video


def test_whole_frame_resize_keeps_the_whole_width_of_a_non_square_video():
    out = FourDSVideoProcessor(num_frames=2)(wide_video(), return_tensors="pt")["pixel_values"][0, 0]
    assert out.shape == (3, 224, 224)
    assert out[0, :, 0].min() > 0.9 and out[2, :, 0].max() < 0.1  # the red left edge survives
    assert out[2, :, -1].min() > 0.9 and out[0, :, -1].max() < 0.1  # and the blue right edge


def test_shorter_side_crop_keeps_the_centre_only():
    processor = FourDSVideoProcessor.from_protocol("4ds-eval", num_frames=2)
    out = processor(wide_video(), return_tensors="pt")["pixel_values"][0, 0]
    assert out.shape == (3, 224, 224)
    torch.testing.assert_close(out, torch.full_like(out, 128 / 255), atol=1 / 255, rtol=0)  # both edges cropped away
    geometry = processor.output_geometry(272, 640)
    assert geometry == {"resized": (224, 527), "crop": (0, 151, 224, 224), "output": (224, 224)}
    assert 224 / geometry["resized"][1] == pytest.approx(0.425, abs=1e-3)  # the 42.5 % of issue 12


def test_shorter_side_keeps_the_aspect_ratio():
    processor = FourDSVideoProcessor(num_frames=2, resize_mode="shorter_side", size=112)
    out = processor(wide_video(), return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 2, 3, 112, 263)
    assert processor.output_geometry(272, 640) == {"resized": (112, 263), "crop": None, "output": (112, 263)}
    ragged = [wide_video(), wide_video(height=320)]
    with pytest.raises(ValueError, match="different shapes .* cannot be stacked: use a fixed"):
        processor(ragged, return_tensors="pt")
    assert [tuple(v.shape) for v in processor(ragged)["pixel_values"]] == [(2, 3, 112, 263), (2, 3, 112, 224)]


def test_for_size_resizes_the_whole_frame_unless_asked_to_crop():
    davis = RVMVideoProcessor.for_size(480, 880, None)
    assert davis.resize_mode == "resize" and not davis.do_center_crop
    assert davis.output_geometry(480, 854) == {"resized": (480, 880), "crop": None, "output": (480, 880)}
    cropped = RVMVideoProcessor.for_size(48, 88, None, resize_mode="shorter_side_crop")
    assert cropped.do_center_crop and dict(cropped.size) == {"shortest_edge": 88}
    out = cropped(wide_video(frames=1, height=68, width=160), return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 1, 3, 48, 88)


def test_integer_size_means_the_shorter_side():
    """issue 13 bug 4: ``size=42`` is the shorter side (as VideoMAEVideoProcessor), not a 42x42 square."""
    processor = FourDSVideoProcessor(size=42, num_frames=2)
    assert dict(processor.size) == {"shortest_edge": 42} and processor.resize_mode == "shorter_side"
    assert processor(gradient_video(frames=2, height=60, width=80), return_tensors="pt")["pixel_values"].shape == (
        1, 2, 3, 42, 56)
    per_call = FourDSVideoProcessor(num_frames=2)(gradient_video(frames=2, height=60, width=80), size=30,
                                                  return_tensors="pt")["pixel_values"]
    assert per_call.shape == (1, 2, 3, 30, 40)
    loaded = FourDSVideoProcessor.from_dict({"size": {"shortest_edge": 20}, "crop_size": {"height": 18, "width": 18},
                                             "do_center_crop": True}, size=42, crop_size=84)
    assert loaded.size == {"shortest_edge": 42} and loaded.crop_size == {"height": 84, "width": 84}
    assert loaded.resize_mode == "shorter_side_crop"
    saved = FourDSVideoProcessor().to_dict()
    assert dict(FourDSVideoProcessor.from_dict(saved, size=42).size) == {"shortest_edge": 42}
    square = FourDSVideoProcessor(size=42, resize_mode="resize", num_frames=2)
    assert dict(square.size) == {"height": 42, "width": 42}


# --------------------------------------------------------------------------------------------------------- filter


def test_resize_is_pil_lanczos_on_uint8_frames_and_float_is_u8_over_255():
    video = np.random.default_rng(0).integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    out = RVMVideoProcessor.for_size(24, 40, None)(video, return_tensors="pt")["pixel_values"][0]
    expected = np.stack([np.asarray(Image.fromarray(frame).resize((40, 24), Image.LANCZOS)) for frame in video])
    expected = torch.from_numpy(expected.astype(np.float32) / np.float32(255)).permute(0, 3, 1, 2)
    assert torch.equal(out, expected)  # bit for bit, including the float32 division


def test_float_torch_and_pil_inputs_agree_with_uint8(processor):
    frames = gradient_video(frames=4)
    reference = processor(frames, return_tensors="pt")["pixel_values"]
    as_float = processor(torch.from_numpy(frames).float() / 255, return_tensors="pt")["pixel_values"]
    assert torch.equal(as_float, reference)  # float inputs are quantised to uint8 first: u8 / 255 is exact
    as_float64 = processor(frames.astype(np.float64) / 255, return_tensors="pt")["pixel_values"]
    assert torch.equal(as_float64, reference)
    channels_first = processor(torch.from_numpy(frames).permute(0, 3, 1, 2), return_tensors="pt")["pixel_values"]
    assert torch.equal(channels_first, reference)
    pil = processor([Image.fromarray(frame) for frame in frames], return_tensors="pt")["pixel_values"]
    assert torch.equal(pil, reference)
    wide_ints = processor(frames.astype(np.uint16), return_tensors="pt")["pixel_values"]
    assert torch.equal(wide_ints, reference)


def test_grayscale_and_opaque_rgba_inputs_become_rgb(processor):
    frames = gradient_video(frames=4)
    reference = processor(frames, return_tensors="pt")["pixel_values"]
    rgba = np.concatenate([frames, np.full(frames.shape[:-1] + (1,), 255, np.uint8)], axis=-1)
    assert torch.equal(processor(rgba, input_data_format="channels_last", return_tensors="pt")["pixel_values"],
                       reference)
    grey = frames[..., :1]
    out = processor(grey, return_tensors="pt")["pixel_values"]
    expected = processor(np.repeat(grey, 3, axis=-1), return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 4, 3, 32, 32) and torch.equal(out, expected)


def test_batches_and_lists_of_videos(processor):
    batch = np.stack([gradient_video(frames=6), gradient_video(frames=6)])
    assert processor(batch, return_tensors="pt")["pixel_values"].shape == (2, 4, 3, 32, 32)
    ragged = [gradient_video(frames=6), gradient_video(frames=9, height=64, width=36)]
    assert processor(ragged, return_tensors="pt")["pixel_values"].shape == (2, 4, 3, 32, 32)


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_video_files_are_decoded_with_pyav(tmp_path, processor, suffix):
    frames = gradient_video(frames=12)
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=12)
    decoded, metadata = read_video_pyav(str(path))
    assert decoded.shape == (12, 40, 48, 3) and metadata.total_num_frames == 12
    out = processor(str(path), frame_stride=3, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 4, 3, 32, 32)
    red = torch.round(out[0, :, 0, 8:-8, 8:-8].mean((-1, -2)) * 255 / 12).tolist()
    assert red == [0.0, 3.0, 6.0, 9.0]  # lossy codec, but frame identity survives
    both = processor([str(path), str(path)], return_tensors="pt")["pixel_values"]
    assert both.shape == (2, 4, 3, 32, 32)
    with pytest.raises(FileNotFoundError, match="video file not found"):
        processor(str(tmp_path / f"missing{suffix}"), return_tensors="pt")


@pytest.mark.parametrize(
    "video, message",
    [
        (np.full((4, 8, 8, 3), np.nan, np.float32), "NaN or infinite"),
        (np.full((4, 8, 8, 3), np.inf, np.float32), "NaN or infinite"),
        (np.full((4, 8, 8, 3), 200.0, np.float32), r"values in \[0, 1\]"),
        (np.full((4, 8, 8, 3), 300, np.int64), r"values in \[0, 255\], got dtype int64"),
        (np.full((4, 8, 8, 3), 4000, np.uint16), r"values in \[0, 255\], got dtype uint16"),
        (np.zeros((0, 8, 8, 3), np.uint8), "the video is empty"),
        (np.zeros((4, 8, 8, 3), np.complex64), "uint8 in \\[0, 255\\] or float in \\[0, 1\\]"),
    ],
)
def test_bad_values_are_refused(processor, video, message):
    with pytest.raises(ValueError, match=message):
        processor(video, do_sample_frames=False, return_tensors="pt")


@pytest.mark.parametrize(
    "video, message",
    [
        (np.zeros((5, 40, 60), np.uint8), r"3-D array is read as one \(height, width, channels\) frame, got shape "
                                          r"\(5, 40, 60\): pass a video as"),
        (np.zeros((2, 5, 40, 60, 3, 1), np.uint8), r"got an array of shape \(2, 5, 40, 60, 3, 1\)"),
        (np.zeros((40, 60), np.uint8), r"got an array of shape \(40, 60\)"),
    ],
)
def test_arrays_of_the_wrong_layout_are_refused_in_one_line(processor, video, message):
    with pytest.raises(ValueError, match=message) as error:
        processor(video, return_tensors="pt")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frame_sampling": "random"}, "frame_sampling must be one of 'consecutive', 'uniform', 'center', got 'random'"),
        ({"resize_mode": "crop"}, "resize_mode must be one of 'resize', 'shorter_side_crop', 'shorter_side'"),
        ({"frame_stride": 0}, "frame_stride must be an integer >= 1"),
        ({"start_frame": -1}, "start_frame must be an integer >= 0"),
        ({"num_frames": 0}, "num_frames must be an integer >= 1 or None"),
        ({"resize_mode": "shorter_side_crop", "size": {"height": 48, "width": 88}}, "needs size="),
        ({"size": {"longest_edge": 48}}, "size must be"),
        ({"resample": 42}, "resample must be a PIL filter"),
    ],
)
def test_bad_options_are_refused_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        FourDSVideoProcessor(**kwargs)(gradient_video(frames=16), return_tensors="pt")
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------------------------- defaults, protocols, configs


def test_defaults_are_each_methods_notebook_path():
    video = gradient_video(frames=20, height=240, width=320)
    fourds = FourDSVideoProcessor()
    out = fourds(video, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 16, 3, 224, 224) and frames_of(out) == list(range(16))
    assert fourds.resize_mode == "resize" and not fourds.do_center_crop and not fourds.do_normalize
    for cls in (RVMVideoProcessor, MooGVideoProcessor):
        out = cls()(video, return_tensors="pt")["pixel_values"]
        assert out.shape == (1, 20, 3, 256, 256) and frames_of(out) == list(range(20))
        assert cls().resize_mode == "resize" and cls().num_frames is None
    assert MooGVideoProcessor(num_frames=8)(video, return_tensors="pt")["pixel_values"].shape[1] == 8


def test_named_protocols():
    assert dict(FourDSVideoProcessor.from_protocol("4ds-depth-demo").size) == {"height": 224, "width": 224}
    evaluation = FourDSVideoProcessor.from_protocol("4ds-eval")
    assert evaluation.resize_mode == "shorter_side_crop" and evaluation.do_center_crop
    sizes = {name: dict(RVMVideoProcessor.from_protocol(name).size) for name in ("rvm-inference", "davis", "jhmdb", "vip")}
    assert sizes == {"rvm-inference": {"height": 256, "width": 256}, "davis": {"height": 480, "width": 880},
                     "jhmdb": {"height": 320, "width": 320}, "vip": {"height": 448, "width": 880}}
    assert RVMVideoProcessor.from_protocol("davis", num_frames=4).num_frames == 4
    with pytest.raises(ValueError, match="unknown RVMVideoProcessor protocol 'kinetics'; known protocols: "
                                         "'rvm-inference', 'davis', 'jhmdb', 'vip'"):
        RVMVideoProcessor.from_protocol("kinetics")
    with pytest.raises(ValueError, match="known protocols: '4ds-depth-demo', '4ds-eval'"):
        FourDSVideoProcessor.from_protocol("davis")
    assert "whole frame resized to 480x880 (no crop)" in RVMVideoProcessor.from_protocol("davis").describe()


def test_each_processor_has_its_own_kwargs_class():
    """issue 13 departure 6."""
    pairs = [(FourDSVideoProcessor, FourDSVideoProcessorKwargs), (MooGVideoProcessor, MooGVideoProcessorKwargs),
             (RVMVideoProcessor, RVMVideoProcessorKwargs)]
    for cls, kwargs_class in pairs:
        assert cls.valid_kwargs is kwargs_class and kwargs_class.__name__ == f"{cls.__name__}Kwargs"
        assert {"frame_sampling", "start_frame", "frame_stride", "resize_mode", "num_frames"} <= set(
            kwargs_class.__annotations__)
    assert len({kwargs_class for _, kwargs_class in pairs} | {Rep4dVideosKwargs}) == 4


def test_save_and_reload_round_trips_the_new_fields(tmp_path):
    processor = FourDSVideoProcessor.for_config(FourDSConfig(), frame_sampling="center", frame_stride=2)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "video_preprocessor_config.json").read_text())
    assert saved["frame_sampling"] == "center" and saved["resize_mode"] == "resize" and saved["frame_stride"] == 2
    reloaded = FourDSVideoProcessor.from_pretrained(tmp_path)
    assert reloaded.to_dict() == processor.to_dict()
    FourDSConfig().save_pretrained(tmp_path)
    assert type(AutoVideoProcessor.from_pretrained(tmp_path)) is FourDSVideoProcessor
    for original in (FourDSVideoProcessor.from_protocol("4ds-eval", start_frame=2), RVMVideoProcessor(),
                     MooGVideoProcessor(num_frames=None, resize_mode="shorter_side", size=128)):
        folder = tmp_path / type(original).__name__ / str(original.resize_mode)
        original.save_pretrained(folder)
        again = type(original).from_pretrained(folder)
        assert again.to_dict() == original.to_dict() and again.describe() == original.describe()


def test_all_frames_survives_a_round_trip(tmp_path):
    processor = FourDSVideoProcessor(num_frames=None)
    assert processor.num_frames is None
    processor.save_pretrained(tmp_path)
    assert FourDSVideoProcessor.from_pretrained(tmp_path).num_frames is None


LEGACY = {
    "crop_size": {"height": 32, "width": 32}, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": False,
    "do_rescale": True, "do_resize": True, "do_sample_frames": True, "num_frames": 4, "resample": 2,
    "rescale_factor": 1 / 255, "return_metadata": False, "size": {"shortest_edge": 32},
    "video_processor_type": "FourDSVideoProcessor",
}


def test_configs_saved_before_resize_mode_keep_their_old_meaning(tmp_path):
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps(LEGACY))
    legacy = FourDSVideoProcessor.from_pretrained(tmp_path)
    assert legacy.resize_mode == "shorter_side_crop" and legacy.frame_sampling == "uniform"
    out = legacy(gradient_video(), return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 4, 3, 32, 32) and frames_of(out) == [0, 2, 5, 7]
    assert legacy.output_geometry(40, 48)["crop"] == (0, 3, 32, 32)
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps({**LEGACY, "frame_stride": 2}))
    strided = FourDSVideoProcessor.from_pretrained(tmp_path)
    assert strided.frame_sampling == "center"
    assert frames_of(strided(gradient_video(), return_tensors="pt")["pixel_values"]) == [1, 3, 5, 7]


@pytest.mark.parametrize("name", ["4ds-tiny", "4ds-tiny-dist", "4ds-points", "moog-tiny", "rvm-tiny"])
def test_model_zoo_processor_configs_still_load(name):
    from pathlib import Path

    folder = Path(rep4d.__file__).resolve().parents[1] / "model_zoo" / name
    processor = AutoVideoProcessor.from_pretrained(folder)
    assert isinstance(processor, Rep4dVideoProcessor)
    assert processor.resize_mode == "shorter_side_crop" and processor.frame_sampling == "uniform"
    out = processor(gradient_video(frames=12), return_tensors="pt")["pixel_values"]
    expected_frames = processor.num_frames or 12
    assert out.shape == (1, expected_frames, 3, 32, 32)
