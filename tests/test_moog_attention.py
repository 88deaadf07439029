"""MooG attention pictures: maps from the decoder, renderings, a decodable video file, the CLI command."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from rep4d.cli import main as cli_main
from rep4d.configuration.configuration_moog import MooGConfig
from rep4d.modeling.modeling_moog import MooGForNextFramePrediction
from rep4d.moog_attention import (
    argmax_token_frames,
    decoder_attention_maps,
    token_attention_frames,
    write_attention_video,
)
from rep4d.visualization import write_video


def tiny_config() -> MooGConfig:
    return MooGConfig(
        image_size=[16, 16], num_frames=4, conv_features=[4, 8, 8, 8, 8, 8], enc_fourier_bases=4,
        encoder_hidden_size=8, encoder_output_size=24, num_tokens=6, token_size=16,
        predictor_qkv_size=16, predictor_num_heads=2, predictor_mlp_size=32, predictor_num_layers=1,
        corrector_qkv_size=16, corrector_num_heads=2, corrector_mlp_size=32, corrector_num_layers=1,
        decoder_qkv_size=8, decoder_num_heads=2, decoder_mlp_size=32, decoder_num_layers=1, dec_fourier_bases=4,
        readout_num_frames=4, point_readout_temporal_tile_size=2, point_readout_frames_per_query=2,
        box_readout_frames_per_query=4,
    )


def randomized(model):
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def video(batch: int, frames: int) -> torch.Tensor:
    return torch.rand(batch, frames, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def decoded_frame_count(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_attention_maps_and_video(tmp_path):
    model = randomized(MooGForNextFramePrediction(tiny_config()))
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
    model = randomized(MooGForNextFramePrediction(tiny_config()))
    model.save_pretrained(tmp_path / "model")
    write_video(tmp_path / "clip.mp4", np.random.default_rng(0).random((6, 16, 16, 3)), fps=4)
    status = cli_main(
        ["moog-attention", str(tmp_path / "model"), str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "out.gif"),
         "--num-frames", "3", "--tokens", "1", "2"]
    )
    assert status == 0
    assert decoded_frame_count(tmp_path / "out.gif") == 3
