"""FourDSVideoProcessor: every input kind, frame sampling, [0, 1] output, refusals, save/reload."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoVideoProcessor

import rep4d  # noqa: F401
from rep4d.configuration import FourDSConfig
from rep4d.processing import FourDSVideoProcessor
from rep4d.processing.video_processing_base import read_video_pyav
from rep4d.visualization import write_video


def gradient_video(frames=10, height=40, width=48) -> np.ndarray:
    """uint8 (T, H, W, 3) whose frame index is readable from the pixels (red channel = 20 * t)."""
    video = np.zeros((frames, height, width, 3), np.uint8)
    for t in range(frames):
        video[t, ..., 0] = (20 * t) % 256
        video[t, ..., 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        video[t, ..., 2] = 128
    return video


@pytest.fixture
def processor():
    return FourDSVideoProcessor.for_size(32, 32, num_frames=4)


def test_numpy_uint8_video(processor):
    out = processor(gradient_video(), return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 4, 3, 32, 32) and out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    # Uniform sampling of 4 of 10 frames, read back from the red channel (20 * t / 255).
    frames = torch.round(out[0, :, 0].mean((-1, -2)) * 255 / 20).tolist()
    assert frames == [0.0, 2.0, 5.0, 7.0]


def test_float_torch_and_pil_inputs_agree_with_uint8(processor):
    frames = gradient_video(frames=4)
    reference = processor(frames, return_tensors="pt")["pixel_values"]
    as_float = processor(torch.from_numpy(frames).float() / 255, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(as_float, reference, atol=2e-6, rtol=0)
    channels_first = processor(torch.from_numpy(frames).permute(0, 3, 1, 2), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(channels_first, reference, atol=0, rtol=0)
    pil = processor([Image.fromarray(frame) for frame in frames], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pil, reference, atol=0, rtol=0)


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
    out = processor(str(path), return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 4, 3, 32, 32)
    red = torch.round(out[0, :, 0, 8:-8, 8:-8].mean((-1, -2)) * 255 / 20).tolist()
    assert red == [0.0, 3.0, 6.0, 9.0]  # uniform sampling; lossy codec, but frame identity survives
    both = processor([str(path), str(path)], return_tensors="pt")["pixel_values"]
    assert both.shape == (2, 4, 3, 32, 32)


def test_frame_stride_takes_consecutive_centred_frames(processor):
    out = processor(gradient_video(frames=10), frame_stride=2, return_tensors="pt", return_metadata=True)
    assert list(out["video_metadata"][0].frames_indices) == [1, 3, 5, 7]
    with pytest.raises(ValueError, match="need at least 13"):
        processor(gradient_video(frames=10), frame_stride=4, return_tensors="pt")


def test_no_sampling_keeps_every_frame(processor):
    out = processor(gradient_video(frames=6), do_sample_frames=False, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 6, 3, 32, 32)


def test_too_short_videos_are_refused(processor):
    with pytest.raises(ValueError, match="fewer than num_frames=4"):
        processor(gradient_video(frames=3), return_tensors="pt")


@pytest.mark.parametrize(
    "video, message",
    [
        (np.full((4, 8, 8, 3), np.nan, np.float32), "NaN or infinite"),
        (np.full((4, 8, 8, 3), np.inf, np.float32), "NaN or infinite"),
        (np.full((4, 8, 8, 3), 200.0, np.float32), r"values in \[0, 1\]"),
        (np.full((4, 8, 8, 3), 300, np.int64), r"values in \[0, 255\]"),
    ],
)
def test_bad_values_are_refused(processor, video, message):
    with pytest.raises(ValueError, match=message):
        processor(video, return_tensors="pt")


def test_save_and_reload(tmp_path):
    processor = FourDSVideoProcessor.for_config(FourDSConfig(), frame_stride=2)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "video_preprocessor_config.json").exists()
    reloaded = FourDSVideoProcessor.from_pretrained(tmp_path)
    assert reloaded.to_dict() == processor.to_dict()
    assert reloaded.frame_stride == 2 and reloaded.crop_size["height"] == 224 and reloaded.num_frames == 16
    FourDSConfig().save_pretrained(tmp_path)
    assert type(AutoVideoProcessor.from_pretrained(tmp_path)) is FourDSVideoProcessor


def test_default_processor_matches_the_released_models():
    processor = FourDSVideoProcessor()
    out = processor(gradient_video(frames=20, height=240, width=320), return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 16, 3, 224, 224)
    assert not processor.do_normalize
