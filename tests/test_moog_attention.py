"""MooG attention pictures: maps from the decoder, renderings, a decodable video file, the CLI command."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from rep4d.cli import main as cli_main
from rep4d.modeling.modeling_moog import MooGForNextFramePrediction
from rep4d.moog_attention import (
    argmax_token_frames,
    decoder_attention_maps,
    token_attention_frames,
    write_attention_video,
)
from rep4d.visualization import write_video

from testing_utils import randomized, tiny_moog_config


def video(batch: int, frames: int) -> torch.Tensor:
    return torch.rand(batch, frames, 3, 16, 16, generator=torch.Generator().manual_seed(0))


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


def decoded_frame_count(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_attention_maps_and_video(tmp_path):
    model = randomized(MooGForNextFramePrediction(tiny_moog_config()))
    clip = video(batch=1, frames=3)
    maps, state = decoder_attention_maps(
        model, clip, generator=torch.Generator().manual_seed(0), return_state=True, chunk_size=100
    )
    assert maps.shape == (1, 3, 16, 16, 6) and state.shape == (1, 6, 16)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    frames = clip[0].permute(0, 2, 3, 1).numpy()
    panels = token_attention_frames(frames, maps[0], tokens=[0, 5])
    assert panels.shape == (3, 16, 32, 3)
    colours = argmax_token_frames(frames, maps[0])
    assert colours.shape == frames.shape and np.isfinite(colours).all()
    with pytest.raises(ValueError, match="tokens must be indices"):
        token_attention_frames(frames, maps[0], tokens=[6])
    for suffix in (".mp4", ".gif"):
        path = write_attention_video(tmp_path / f"attention{suffix}", frames, maps[0], mode="both")
        assert path.stat().st_size > 0
        assert decoded_frame_count(path) == 3


def test_moog_attention_command(tmp_path):
    model = randomized(MooGForNextFramePrediction(tiny_moog_config()))
    model.save_pretrained(tmp_path / "model")
    write_video(tmp_path / "clip.mp4", np.random.default_rng(0).random((6, 16, 16, 3)), fps=4)
    status = cli_main(
        ["moog-attention", str(tmp_path / "model"), str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "out.gif"),
         "--num-frames", "3", "--tokens", "1", "2"]
    )
    assert status == 0
    assert decoded_frame_count(tmp_path / "out.gif") == 3
