"""FourDSModel / FourDSForDepthEstimation behaviour: presets, configs, readout features, losses, errors, fast paths.

Checks every model class shares (save/load, eager vs SDPA, checkpointing...): tests/conformance/model_checks.py.
"""

import math

import numpy as np
import pytest
import torch

import rep4d  # noqa: F401
from rep4d.configuration import FourDSConfig
from rep4d.modeling import FourDSForDepthEstimation, FourDSModel
from rep4d.modeling.modeling_fourds import readout_layer_index
from rep4d.modeling.resampling import cubic_resize_matrix


def tiny_config(**overrides) -> FourDSConfig:
    values = dict(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, tubelet_size=[2, 8, 8],
        image_size=[32, 32], num_frames=4, readout_num_params=16, readout_num_heads=2,
        readout_decoding_patch_size=[2, 8, 8],
    )
    values.update(overrides)
    return FourDSConfig(**values)


def video(batch=2, frames=4, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, frames, 3, size, size, generator=generator)


SPEC_PARAMETER_COUNTS = {  # spec §1.4: backbone at 16x224x224 with 2x16x16 tubelets
    "s": 22_485_888, "b": 87_439_104, "l": 305_488_896, "h": 633_652_480,
    "g": 1_846_529_664, "e": 3_809_464_064, "j": 21_492_011_008,
}


@pytest.mark.parametrize("preset", sorted(SPEC_PARAMETER_COUNTS))
def test_presets_match_the_spec_parameter_counts(preset):
    config = FourDSConfig.from_preset(preset)
    with torch.device("meta"):
        model = FourDSModel(config)
    assert sum(p.numel() for p in model.parameters()) == SPEC_PARAMETER_COUNTS[preset]


def test_preset_names_and_overrides():
    config = FourDSConfig.from_preset("4DS-B-dist-e", num_frames=32)
    assert (config.hidden_size, config.num_frames, config.token_grid) == (768, 32, (16, 14, 14))
    with pytest.raises(ValueError, match="unknown 4DS preset"):
        FourDSConfig.from_preset("xxl")


def test_config_validation():
    with pytest.raises(ValueError, match="divisible by num_attention_heads"):
        tiny_config(num_attention_heads=5)
    with pytest.raises(ValueError, match="divisible by tubelet_size"):
        tiny_config(num_frames=5)
    with pytest.raises(ValueError, match="readout_depth"):
        tiny_config(readout_depth=1.5)


@pytest.mark.parametrize(
    "layers, depth, expected",
    [(12, 0.95, 11), (24, 0.95, 22), (32, 0.95, 30), (48, 0.95, 45), (56, 0.95, 53), (64, 0.95, 60),
     (6, 0.75, 4), (12, 0.75, 8), (4, 0.95, 3)],
)
def test_readout_index_rule(layers, depth, expected):
    assert readout_layer_index(layers + 1, depth) == expected


def test_cubic_resize_matrix_matches_the_spec_examples():
    matrix = cubic_resize_matrix(8, 16).numpy()
    np.testing.assert_allclose(matrix[0, :2], [1.088235, -0.088235], atol=1e-6)
    np.testing.assert_allclose(matrix[1, :3], [0.810219, 0.211679, -0.021898], atol=1e-6)
    np.testing.assert_allclose(matrix[3, :4], [-0.070312, 0.867188, 0.226562, -0.023438], atol=1e-6)
    np.testing.assert_allclose(matrix[15, ::-1], matrix[0], atol=1e-7)
    np.testing.assert_allclose(matrix.sum(1), 1.0, atol=1e-6)
    expected = [[1.105263, -0.105263], [1, 0], [0.7, 0.3], [0.3, 0.7], [0, 1], [-0.105263, 1.105263]]
    np.testing.assert_allclose(cubic_resize_matrix(2, 6).numpy(), expected, atol=1e-6)


def test_outputs_and_hidden_states():
    config = tiny_config()
    model = FourDSModel(config).eval()
    out = model(video(), output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 2 * 4 * 4, 32)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    torch.testing.assert_close(out.hidden_states[-1], out.last_hidden_state)
    assert out.readout_features.shape == (2, 4, 16, 32)
    # readout_depth 0.95 with 3 blocks: reference list index int(4 * 0.95) - 1 = 2 -> output of block 0.
    assert model.readout_hidden_state_index == 1
    block0 = out.hidden_states[1].reshape(2, 2, 16, 32)
    weights = cubic_resize_matrix(2, 4)
    torch.testing.assert_close(out.readout_features, torch.einsum("oi,bisd->bosd", weights, block0))
    as_tuple = model(video(), return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.last_hidden_state)


def test_depth_loss_uses_the_valid_mask():
    model = FourDSForDepthEstimation(tiny_config()).eval()
    inputs = video()
    with torch.no_grad():
        predicted = model(inputs).predicted_depth
    labels = predicted + 1.0
    labels[:, :, :16] = 0  # invalid: no ground truth
    loss = model(inputs, labels=labels).loss
    assert loss.item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="depth labels must have shape"):
        model(inputs, labels=labels[:, :2])


@pytest.mark.parametrize(
    "bad, message",
    [
        # Layout, dtype, ndarray and empty-batch errors of every model class: tests/conformance/model_checks.py.
        (torch.rand(1, 4, 1, 32, 32), "3 channels"),
        (torch.rand(1, 5, 3, 32, 32), "divisible by the tubelet"),
        (torch.rand(1, 4, 3, 36, 36), "divisible by the tubelet"),
        (torch.rand(1, 4, 3, 48, 48), "trained on 4 frames of 32x32"),
        (torch.rand(1, 8, 3, 32, 32), "interpolate_pos_encoding"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(bad, message):
    model = FourDSModel(tiny_config()).eval()
    with pytest.raises(ValueError, match=message):
        model(bad)


def test_position_embedding_interpolation_is_explicit():
    model = FourDSModel(tiny_config()).eval()
    larger = video(batch=1, frames=8, size=48)
    out = model(larger, interpolate_pos_encoding=True)
    assert out.last_hidden_state.shape == (1, 4 * 6 * 6, 32)
    assert out.readout_features.shape == (1, 8, 36, 32)
    # Interpolating to the trained grid is the identity.
    same = video(batch=1)
    torch.testing.assert_close(model(same, interpolate_pos_encoding=True).last_hidden_state, model(same).last_hidden_state)


def test_meta_device_instantiation_of_the_largest_config_allocates_nothing():
    config = FourDSConfig.from_preset("j")
    with torch.device("meta"):
        model = FourDSModel(config)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert math.isclose(sum(p.numel() for p in model.parameters()) / 1e9, 21.492, rel_tol=1e-3)


def test_simplemae_pretraining_masks_decodes_and_learns():
    from rep4d.modeling import FourDSForPreTraining

    config = tiny_config(decoder_num_layers=2, decoder_patch_size=[2, 8, 8], mask_ratio=0.75)
    model = FourDSForPreTraining(config)
    inputs = video()
    out = model(inputs, generator=torch.Generator().manual_seed(0))
    assert out.mask.shape == (2, 32) and out.mask.sum(1).tolist() == [24, 24]
    assert out.logits.shape == (2, 32, 2 * 8 * 8 * 3) and out.reconstruction.shape == inputs.shape
    # The loss is the plain MSE against the raw pixels over every patch.
    torch.testing.assert_close(out.loss, ((out.reconstruction - inputs) ** 2).mean())
    same = model(inputs, generator=torch.Generator().manual_seed(0))
    assert torch.equal(same.mask, out.mask)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        loss = model(inputs, mask=out.mask).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    with pytest.raises(ValueError, match="same number of tubelets"):
        bad = out.mask.bool()  # the output mask is float (1.0 = hidden), as ViTMAE's
        bad[0, ~bad[0]] = True
        model(inputs, mask=bad)


def test_readout_only_skips_unused_blocks_without_changing_readout_features():
    model = FourDSModel(tiny_config()).eval()
    inputs = video()
    full = model(inputs, output_hidden_states=True)
    short = model(inputs, output_hidden_states=True, readout_only=True)
    torch.testing.assert_close(short.readout_features, full.readout_features, rtol=0, atol=0)
    assert len(short.hidden_states) == model.readout_hidden_state_index + 1 < len(full.hidden_states)


def test_autocast_weight_cache_is_bit_identical_and_follows_weight_updates(monkeypatch):
    from rep4d.modeling import cpu_fast_paths

    monkeypatch.setattr(cpu_fast_paths, "_FUSED_CPU_LINEAR", False)  # isolate the cache from the fused GELU path
    # The cache serves native bf16 (on other CPUs the precision policy computes in float32 instead).
    monkeypatch.setattr(cpu_fast_paths, "cpu_has_native_bf16", lambda: True)
    model = FourDSForDepthEstimation(tiny_config()).eval()
    inputs = video()

    def run(cache: bool):
        with monkeypatch.context() as patch:
            if not cache:  # autocast's own per-call casts
                patch.setattr(cpu_fast_paths.Linear, "_inference_operands", lambda self, x: None)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return model(inputs).predicted_depth

    cached = run(cache=True)
    assert any("_cast_weight_cache" in m.__dict__ for m in model.modules() if isinstance(m, cpu_fast_paths.Linear))
    reference = run(cache=False)
    torch.testing.assert_close(cached, reference, rtol=0, atol=0)
    torch.testing.assert_close(run(cache=True), reference, rtol=0, atol=0)
    with torch.no_grad():
        model.readout.classifier.weight.mul_(2.0)  # in-place update: the cached copy must be refreshed
    updated = run(cache=True)
    assert not torch.equal(updated, reference)
    torch.testing.assert_close(updated, run(cache=False), rtol=0, atol=0)
    assert not any("_cast_weight_cache" in key for key in model.state_dict())


def test_fused_linear_gelu_matches_the_unfused_path(monkeypatch):
    from rep4d.modeling import cpu_fast_paths

    monkeypatch.setattr(cpu_fast_paths, "cpu_has_avx512", lambda: True)  # the fused path, on any CPU
    model = FourDSModel(tiny_config()).eval()
    inputs = video()
    with torch.no_grad():
        fused = model(inputs).last_hidden_state
        monkeypatch.setattr(cpu_fast_paths, "_FUSED_CPU_LINEAR", False)
        plain = model(inputs).last_hidden_state
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-5)
    # With gradients on, the autograd path is used: training is unaffected by the inference fast paths.
    monkeypatch.setattr(cpu_fast_paths, "_FUSED_CPU_LINEAR", True)
    torch.testing.assert_close(model(inputs).last_hidden_state.detach(), plain, rtol=0, atol=1e-5)


def test_encoder_runs_a_range_of_blocks_and_segments_join_to_the_full_stack():
    model = FourDSModel(tiny_config(attn_implementation="eager")).eval()
    tokens = model.embeddings(video())
    with torch.no_grad():
        full = model.encoder(tokens, output_hidden_states=True, output_attentions=True)
        lower = model.encoder(tokens, output_hidden_states=True, output_attentions=True, end=1)
        upper = model.encoder(lower.last_hidden_state, output_hidden_states=True, output_attentions=True, start=1)
        plain = model.encoder(tokens)
    assert len(full.hidden_states) == len(model.encoder.layers) + 1 == len(full.attentions) + 1
    assert len(lower.hidden_states) == 2 and len(upper.hidden_states) == len(model.encoder.layers)
    torch.testing.assert_close(upper.last_hidden_state, full.last_hidden_state, rtol=0, atol=0)
    torch.testing.assert_close(plain.last_hidden_state, full.last_hidden_state, rtol=0, atol=0)
    assert plain.hidden_states is None and plain.attentions is None
    with torch.no_grad():
        outputs = model(video(), output_hidden_states=True, output_attentions=True)
    for ours, expected in zip(outputs.hidden_states, full.hidden_states, strict=True):
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    assert all(weights.shape[-1] == tokens.shape[1] for weights in outputs.attentions)


def test_unknown_activation_is_refused_with_the_act2fn_names():
    from rep4d.modeling.layers import FeedForward

    with pytest.raises(ValueError, match="unknown activation 'gelu_tanh'.*gelu_pytorch_tanh"):
        FourDSModel(tiny_config(hidden_act="gelu_tanh"))
    assert not FeedForward(4, 8, act="gelu").gelu_tanh and FeedForward(4, 8).gelu_tanh
