"""FourDSModel / FourDSForDepthEstimation behaviour: configs, attention backends, checkpointing, I/O, errors."""

import math

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForDepthEstimation

import rep4d  # noqa: F401
from rep4d.configuration import FourDSConfig
from rep4d.modeling import FourDSForDepthEstimation, FourDSModel
from rep4d.modeling.layers import cubic_resize_matrix, readout_layer_index


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


def test_eager_and_sdpa_agree():
    config = tiny_config()
    model = FourDSForDepthEstimation(config).eval()
    inputs = video()
    model.set_attn_implementation("eager")
    eager = model(inputs).predicted_depth
    model.set_attn_implementation("sdpa")
    sdpa = model(inputs).predicted_depth
    assert (eager - sdpa).abs().max() < 1e-5


def test_attention_maps_with_eager():
    model = FourDSModel(tiny_config(_attn_implementation="eager")).eval()
    out = model(video(batch=1), output_attentions=True)
    assert len(out.attentions) == 3 and out.attentions[0].shape == (1, 4, 32, 32)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(1, 4, 32))


def test_gradient_checkpointing_gives_the_same_gradients():
    config = tiny_config()
    inputs = video()
    labels = torch.rand(2, 4, 32, 32) + 0.5

    def gradients(checkpointing: bool):
        torch.manual_seed(0)
        model = FourDSForDepthEstimation(config).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.fourds.encoder.layers[0].gradient_checkpointing
        model(inputs, labels=labels).loss.backward()
        return {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}

    plain, checkpointed = gradients(False), gradients(True)
    # Blocks above the readout depth feed nothing the head reads, so they get no gradient in either mode.
    assert {n for n, g in plain.items() if g is None} == {n for n, g in checkpointed.items() if g is None}
    assert plain["fourds.encoder.layers.0.attention.qkv.weight"].abs().sum() > 0
    for name, grad in plain.items():
        if grad is not None:
            torch.testing.assert_close(grad, checkpointed[name], rtol=0, atol=1e-6, msg=name)


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


def test_save_and_load_round_trip_with_auto_classes(tmp_path):
    config = tiny_config()
    model = FourDSForDepthEstimation(config).eval()
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), FourDSConfig)
    loaded = AutoModelForDepthEstimation.from_pretrained(tmp_path).eval()
    assert type(loaded) is FourDSForDepthEstimation
    inputs = video()
    torch.testing.assert_close(model(inputs).predicted_depth, loaded(inputs).predicted_depth, rtol=0, atol=0)
    backbone = AutoModel.from_pretrained(tmp_path).eval()
    assert type(backbone) is FourDSModel
    torch.testing.assert_close(backbone(inputs).readout_features, model.fourds(inputs).readout_features, rtol=0, atol=0)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.rand(4, 3, 32, 32), r"\(batch, frames, channels, height, width\)"),
        (torch.rand(1, 4, 1, 32, 32), "3 channels"),
        ((torch.rand(1, 4, 3, 32, 32) * 255).to(torch.uint8), "floating tensor"),
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


def test_pretrained_backbone_loads_into_the_plain_model(tmp_path):
    from rep4d.modeling import FourDSForPreTraining

    model = FourDSForPreTraining(tiny_config(decoder_num_layers=1))
    model.save_pretrained(tmp_path)
    backbone = FourDSModel.from_pretrained(tmp_path)
    torch.testing.assert_close(backbone.embeddings.position_embeddings, model.fourds.embeddings.position_embeddings)


def test_readout_only_skips_unused_blocks_without_changing_readout_features():
    model = FourDSModel(tiny_config()).eval()
    inputs = video()
    full = model(inputs, output_hidden_states=True)
    short = model(inputs, output_hidden_states=True, readout_only=True)
    torch.testing.assert_close(short.readout_features, full.readout_features, rtol=0, atol=0)
    assert len(short.hidden_states) == model.readout_hidden_state_index + 1 < len(full.hidden_states)


def test_autocast_weight_cache_is_bit_identical_and_follows_weight_updates(monkeypatch):
    import rep4d.modeling.layers as layers

    monkeypatch.setattr(layers, "_FUSED_CPU_LINEAR", False)  # isolate the cache from the fused GELU path
    model = FourDSForDepthEstimation(tiny_config()).eval()
    inputs = video()

    def run(cache: bool):
        with monkeypatch.context() as patch:
            if not cache:  # autocast's own per-call casts
                patch.setattr(layers.Linear, "_inference_operands", lambda self, x: None)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return model(inputs).predicted_depth

    cached = run(cache=True)
    assert any("_autocast_weight_cache" in m.__dict__ for m in model.modules() if isinstance(m, layers.Linear))
    reference = run(cache=False)
    torch.testing.assert_close(cached, reference, rtol=0, atol=0)
    torch.testing.assert_close(run(cache=True), reference, rtol=0, atol=0)
    with torch.no_grad():
        model.readout.classifier.weight.mul_(2.0)  # in-place update: the cached copy must be refreshed
    updated = run(cache=True)
    assert not torch.equal(updated, reference)
    torch.testing.assert_close(updated, run(cache=False), rtol=0, atol=0)
    assert not any("_autocast_weight_cache" in key for key in model.state_dict())


def test_fused_linear_gelu_matches_the_unfused_path(monkeypatch):
    import rep4d.modeling.layers as layers

    model = FourDSModel(tiny_config()).eval()
    inputs = video()
    with torch.no_grad():
        fused = model(inputs).last_hidden_state
        monkeypatch.setattr(layers, "_FUSED_CPU_LINEAR", False)
        plain = model(inputs).last_hidden_state
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-5)
    # With gradients on, the autograd path is used: training is unaffected by the inference fast paths.
    monkeypatch.setattr(layers, "_FUSED_CPU_LINEAR", True)
    torch.testing.assert_close(model(inputs).last_hidden_state.detach(), plain, rtol=0, atol=1e-5)
