"""RVM: golden-fixture parity, conversion of the released layouts, streaming, reconstruction and error handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rep4d
from rep4d.conversion import convert_checkpoint, identify_checkpoint, plan_conversion, read_manifest
from rep4d.modeling.convert_rvm import RVM_CONVERTER
from rep4d.modeling.modeling_rvm import masked_patch_loss
from rep4d.parity import format_report, load_case_arrays, run_parity
from rep4d.processing import RVMVideoProcessor

FIXTURES = Path(__file__).parent / "fixtures" / "rvm"
CASES = sorted(path.parent.name for path in FIXTURES.glob("*/case.json"))
MANIFESTS = sorted((Path(__file__).parent.parent / "rep4d" / "manifests" / "rvm").glob("*.json"))


def tiny_config(**overrides) -> rep4d.RVMConfig:
    values = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=8,
        image_size=[32, 32], base_token_shape=[4, 4], rnn_num_layers=2, rnn_num_attention_heads=4,
        rnn_intermediate_size=48, decoder_hidden_size=16, decoder_num_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    values.update(overrides)
    return rep4d.RVMConfig(**values)


def tiny_model(cls=None, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = (cls or rep4d.RVMModel)(tiny_config(**overrides))
    return model.eval()


def clip(batch=2, frames=5, height=32, width=40, seed=1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, frames, 3, height, width, generator=generator)


# Golden fixtures -----------------------------------------------------------------------------------------------------


def test_every_fixture_case_is_covered():
    assert set(CASES) == {"posenc", "tiny_stream", "tiny_stream_resize", "tiny_reconstruct"}


@pytest.mark.parametrize("case", CASES)
def test_parity(case):
    report = run_parity(FIXTURES / case)
    assert report.method == "rvm"
    assert report.not_compared == [], report.not_compared
    reference = load_case_arrays(FIXTURES / case / "outputs.npz")
    assert set(report.results) == set(reference)
    assert report.ok, format_report(report)
    if case == "tiny_reconstruct":
        assert report.results["mask"].tolerance.exact


# Conversion of the released files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda path: path.stem)
def test_manifest_maps_every_key(manifest):
    shapes = read_manifest(manifest)
    info = json.loads(manifest.read_text())
    expected = info["config"]
    converter, variant = identify_checkpoint(shapes)
    assert converter is RVM_CONVERTER and variant == "pretrain"
    assert info["file"] in converter.variant_description(variant, shapes)
    plan = plan_conversion(shapes, converter, variant)  # raises on any unmapped, missing or mis-shaped key
    config = plan.config
    assert plan.num_parameters == info["num_params"]
    assert len({key for source in plan.sources.values() for key in source.keys}) == len(shapes)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size) == (
        expected["width"], expected["enc_layers"], expected["enc_heads"], expected["enc_mlp"]
    )
    # Core heads are read from the kernel shapes (the S/B/H values are in no table of the reference).
    assert (config.rnn_num_layers, config.rnn_num_attention_heads, config.rnn_intermediate_size) == (
        expected["rnn_layers"], expected["rnn_heads"], expected["rnn_mlp"]
    )
    assert config.rnn_attention_size == expected["rnn_feats"]
    assert (config.decoder_num_layers, config.decoder_num_attention_heads, config.decoder_hidden_size) == (
        expected["dec_layers"], expected["dec_heads"], expected["dec_feats"]
    )
    assert config.patch_size == expected["patch_size"] and config.base_token_shape == expected["base_token_shape"]
    encoder = plan_conversion(shapes, converter, variant, config=config).num_parameters - sum(
        np.prod(shape) for name, shape in plan.target_shapes.items() if not name.startswith("rvm.")
    )
    assert encoder == info["num_params_encoder_plus_rnn_core"]
    # The preset of the released size is the same architecture.
    preset = rep4d.RVMConfig.from_preset(expected["variant"])
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "rnn_num_attention_heads",
                  "rnn_intermediate_size", "decoder_num_layers", "decoder_hidden_size"):
        assert getattr(preset, field) == getattr(config, field), field


def test_head_counts_come_from_shapes_not_presets():
    shapes = read_manifest(MANIFESTS[-1])
    # Re-split the core q/k/v/out kernels into 4 heads of 96: same parameter count, other head count.
    resplit = {}
    for key, shape in shapes.items():
        if key.startswith("rnn_core/transformer/") and any(f"/{n}/" in key for n in ("query", "key", "value", "out")):
            if key.endswith("kernel"):
                shape = (shape[0], 4, 96) if "/out/" not in key else (4, 96, shape[-1])
            elif "/out/" not in key:
                shape = (4, 96)
        resplit[key] = shape
    plan = plan_conversion(resplit, RVM_CONVERTER, "pretrain")
    assert plan.config.rnn_num_attention_heads == 4 and plan.config.num_attention_heads == 6


def test_unexpected_key_is_reported():
    shapes = read_manifest(MANIFESTS[0])
    shapes["encoder/extra/kernel"] = (3, 3)
    with pytest.raises(ValueError, match="encoder/extra/kernel"):
        plan_conversion(shapes, RVM_CONVERTER, "pretrain")


def test_convert_fixture_and_reload(tmp_path):
    case = FIXTURES / "tiny_stream"
    params = load_case_arrays(case / "params.npz")
    result = convert_checkpoint(params, tmp_path / "rvm", image_size=[32, 32], base_token_shape=[4, 4])
    assert result.method == "rvm" and result.variant == "pretrain"
    model = rep4d.RVMForMaskedReconstruction.from_pretrained(tmp_path / "rvm").eval()
    encoder = __import__("transformers").AutoModel.from_pretrained(tmp_path / "rvm").eval()
    assert type(encoder) is rep4d.RVMModel
    video = torch.from_numpy(load_case_arrays(case / "inputs.npz")["video"]).permute(0, 1, 4, 2, 3)
    reference = load_case_arrays(case / "outputs.npz")["features"]
    with torch.no_grad():
        for module in (model.rvm, encoder):
            torch.testing.assert_close(module(video).last_hidden_state.numpy(), reference, atol=1e-5, rtol=1e-5)
    processor = RVMVideoProcessor.from_pretrained(tmp_path / "rvm")
    assert processor.crop_size["height"] == 32


# Streaming -----------------------------------------------------------------------------------------------------------


def test_chunked_streaming_equals_one_call():
    model = tiny_model()
    video = clip()
    with torch.no_grad():
        whole = model(video)
        first = model(video[:, :2])
        second = model(video[:, 2:], state=first.final_state)
        state, per_frame = None, []
        for t in range(video.shape[1]):
            step = model(video[:, t], state=state)  # a single (B, C, H, W) frame
            state = step.final_state
            per_frame.append(step.last_hidden_state)
    assert whole.last_hidden_state.shape == (2, 5, 1 + 4 * 5, 32)
    torch.testing.assert_close(torch.cat([first.last_hidden_state, second.last_hidden_state], 1), whole.last_hidden_state)
    torch.testing.assert_close(torch.cat(per_frame, 1), whole.last_hidden_state)
    torch.testing.assert_close(whole.final_state, whole.last_hidden_state[:, -1])
    patches = model.patch_features(whole.last_hidden_state, video.shape[-2:])
    assert patches.shape == (2, 5, 4, 5, 32)
    torch.testing.assert_close(patches[:, :, 1, 2], whole.last_hidden_state[:, :, 1 + 1 * 5 + 2])


def test_streaming_is_causal_and_stateful():
    model = tiny_model()
    video = clip(frames=3)
    changed = video.clone()
    changed[:, 2] = torch.rand_like(changed[:, 2])
    with torch.no_grad():
        a, b = model(video).last_hidden_state, model(changed).last_hidden_state
        fresh = model(video[:, 1:2]).last_hidden_state
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2], b[:, 2])
    assert not torch.allclose(a[:, 1:2], fresh)  # the carried state matters


def test_frames_are_cropped_to_whole_patches():
    model = tiny_model()
    video = clip(frames=2, height=37, width=45)
    with torch.no_grad():
        cropped = model(video[..., :32, :40]).last_hidden_state
        uncropped = model(video).last_hidden_state
    torch.testing.assert_close(uncropped, cropped)


def test_resolution_changes_resize_the_position_table():
    model = tiny_model()
    with torch.no_grad():
        out = model(clip(frames=1, height=48, width=24)).last_hidden_state
    assert out.shape == (2, 1, 1 + 6 * 3, 32)


def test_bad_inputs_are_refused():
    model = tiny_model()
    video = clip(frames=2)
    with torch.no_grad():
        state = model(video).final_state
        with pytest.raises(ValueError, match=r"state must have shape \(2, 17, 32\).*4x4 token grid"):
            model(clip(frames=1, height=32, width=32), state=state)
        other = tiny_model(hidden_size=48, intermediate_size=96)
        with pytest.raises(ValueError, match="width 48"):
            other(video, state=state)
        with pytest.raises(ValueError, match="state batch size 4 does not match the frames. batch size 1"):
            model(video[:1], state=torch.cat([state, state]))
        with pytest.raises(ValueError, match="channels"):
            model(video[:, :, :2])
        with pytest.raises(ValueError, match=r"\(batch, channels, height, width\)"):
            model(video[0, 0])
        with pytest.raises(ValueError, match="floating"):
            model((video * 255).to(torch.uint8))
        with pytest.raises(ValueError, match="smaller than one 8x8 patch"):
            model(video[..., :4, :])


# Masked reconstruction ----------------------------------------------------------------------------------------------


def test_reconstruction_masks_deltas_and_loss():
    model = tiny_model(rep4d.RVMForMaskedReconstruction)
    sources, targets = clip(frames=2, seed=2), clip(frames=3, seed=3)
    deltas = torch.tensor([[2, 3, 4], [1, 5, 63]])
    with torch.no_grad():
        out = model(sources, targets, target_deltas=deltas, mask_ratio=0.75, generator=torch.Generator().manual_seed(0))
        again = model(sources, targets, target_deltas=deltas, mask_ratio=0.75, generator=torch.Generator().manual_seed(0))
        no_delta = model(sources, targets, ids_shuffle=out.ids_shuffle, mask_ratio=0.75)
        zero_delta = model(sources, targets, target_deltas=torch.zeros_like(deltas), ids_shuffle=out.ids_shuffle,
                           mask_ratio=0.75)
    assert out.reconstruction.shape == (2, 3, 3, 32, 40)
    assert out.mask.shape == (2, 3, 4, 5)
    assert (out.mask.flatten(2).sum(-1) == 20 - int(20 * 0.25)).all()
    torch.testing.assert_close(out.reconstruction, again.reconstruction)
    # Masks differ between frames and examples (one permutation per (b, t)).
    assert len({tuple(ids.tolist()) for ids in out.ids_shuffle.flatten(0, 1)}) == 6
    assert not torch.allclose(no_delta.reconstruction, zero_delta.reconstruction)
    # The loss is the MSE over the pixels of masked patches only.
    mask_pixels = out.mask.repeat_interleave(8, -2).repeat_interleave(8, -1)[:, :, None].expand_as(targets)
    manual = ((out.reconstruction - targets) ** 2)[mask_pixels.bool()].mean()
    torch.testing.assert_close(out.loss, manual)
    assert masked_patch_loss(targets, targets, out.mask, 8) == 0


def test_reconstruction_trains_and_checks_ids():
    model = tiny_model(rep4d.RVMForMaskedReconstruction)
    sources, targets = clip(frames=1, seed=2), clip(frames=1, seed=3)
    out = model(sources, targets, target_deltas=torch.tensor([[4], [7]]), generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    assert model.rvm.embeddings.patch_embeddings.weight.grad.abs().sum() > 0
    assert model.mask_token.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"ids_shuffle must have shape \(2, 1, 20\)"):
        model(sources, targets, ids_shuffle=torch.zeros(2, 1, 19, dtype=torch.long))
    with pytest.raises(ValueError, match="permutation"):
        model(sources, targets, ids_shuffle=torch.zeros(2, 1, 20, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target_deltas must be an integer tensor of shape \(2, 1\)"):
        model(sources, targets, target_deltas=torch.zeros(2, 2, dtype=torch.long))


# Presets, processor (save/load, eager vs SDPA, checkpointing: tests/conformance/model_checks.py) -------------------


def test_presets_and_processor():
    assert rep4d.RVMConfig.preset_names() == ["b", "h", "l", "s"]
    config = rep4d.RVMConfig.from_preset("small16_256")
    assert (config.hidden_size, config.rnn_num_attention_heads, config.patch_size) == (384, 8, 16)
    with pytest.raises(ValueError, match="unknown RVM preset"):
        rep4d.RVMConfig.from_preset("xl")
    with pytest.raises(ValueError, match="divisible"):
        tiny_config(rnn_num_attention_heads=5)
    processor = RVMVideoProcessor()
    frames = np.random.default_rng(0).integers(0, 256, (3, 300, 400, 3), dtype=np.uint8)
    pixels = processor(frames, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 3, 256, 256) and 0 <= pixels.min() and pixels.max() <= 1


def test_rvm_self_attention_is_cross_attention_of_the_tokens_on_themselves():
    """RVM's self-attention keeps the q_proj / fused kv_proj checkpoint layout of the cross-attention it replaces."""
    from types import SimpleNamespace

    from rep4d.modeling.layers import CrossAttention, SelfAttention

    config = SimpleNamespace(_attn_implementation="eager")
    attention = SelfAttention(config, 16, 2, inner_dim=24, fused_qkv=False)
    cross = CrossAttention(config, 16, 16, 2, inner_dim=24)
    assert sorted(attention.state_dict()) == sorted(cross.state_dict()) == sorted(
        f"{name}.{kind}" for name in ("q_proj", "kv_proj", "out_proj") for kind in ("weight", "bias")
    )
    cross.load_state_dict(attention.state_dict())
    tokens = torch.randn(2, 7, 16)
    with torch.no_grad():
        ours, ours_weights = attention(tokens)
        expected, expected_weights = cross(tokens, tokens)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    torch.testing.assert_close(ours_weights, expected_weights, rtol=0, atol=0)
