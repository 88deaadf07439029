"""4DS and RVM bugs and departures from transformers' conventions found by its common tests (issue 13, items 1-2).

Each test here failed before its fix: bf16 on CPUs without native bf16, RVMForMaskedReconstruction with
output_hidden_states, blocks the depth model owned but never ran, hidden_states / attentions on every output, the
float pre-training mask, ``final_state``, and one-line input errors.
"""

from __future__ import annotations

import pytest
import torch
import transformers.utils.logging as hf_logging
from safetensors.torch import save_file
from torch.utils._python_dispatch import TorchDispatchMode
from transformers.testing_utils import CaptureLogger

from rep4d.configuration import FourDSConfig, MooGConfig, RVMConfig
from rep4d.configuration.configuration_moog import MOOG_TRAIN_PRESETS
from rep4d.modeling import (
    FourDSForDepthEstimation,
    FourDSForPreTraining,
    FourDSModel,
    MooGForNextFramePrediction,
    RVMForMaskedReconstruction,
    RVMModel,
    cpu_fast_paths,
)


def fourds_config(**overrides) -> FourDSConfig:
    # 3 blocks, readout_depth 0.95: features [tokens, tokens, out_0, out_1, out_2], index int(4 * 0.95) - 1 = 2,
    # i.e. the output of block 1 of 3, so the depth model leaves out blocks 1 and 2 (indices from 0: it keeps 0).
    values = dict(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, tubelet_size=[2, 8, 8],
        image_size=[16, 16], num_frames=4, readout_num_params=16, readout_num_heads=2,
        readout_decoding_patch_size=[2, 8, 8], decoder_num_layers=1, decoder_patch_size=[2, 8, 8], mask_ratio=0.5,
    )
    values.update(overrides)
    return FourDSConfig(**values)


def rvm_config(**overrides) -> RVMConfig:
    values = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, patch_size=8,
        image_size=[16, 16], base_token_shape=[2, 2], rnn_num_layers=1, rnn_num_attention_heads=4,
        rnn_intermediate_size=48, decoder_hidden_size=16, decoder_num_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=32, num_delta_classes=8, mask_ratio=0.5,
    )
    values.update(overrides)
    return RVMConfig(**values)


def moog_config(**overrides) -> MooGConfig:
    return MooGConfig(**{**MOOG_TRAIN_PRESETS["tiny"], "image_size": [16, 16], "num_frames": 4, **overrides})


def video(batch=2, frames=4, size=16, seed=0):
    return torch.rand(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------------------------------
# Bug 1: bf16 inference on CPUs without native bf16


@pytest.fixture
def cpu_without_native_bf16(monkeypatch):
    """Simulate an AVX2-only CPU: oneDNN reports no native bf16 (there, its fused linear also refuses bf16; the
    tests check that no bf16 matmul is dispatched at all)."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    cpu_fast_paths.cpu_has_native_bf16.cache_clear()
    hf_logging.warning_once.cache_clear()
    yield
    cpu_fast_paths.cpu_has_native_bf16.cache_clear()
    hf_logging.warning_once.cache_clear()


class MatmulDtypes(TorchDispatchMode):
    """Records the dtype of every dense matmul (``mm``, ``addmm``, ``bmm``, oneDNN's fused linear) and convolution
    dispatched."""

    OPS = {"aten::mm", "aten::addmm", "aten::bmm", "mkldnn::_linear_pointwise", "aten::convolution"}

    def __init__(self):
        super().__init__()
        self.dtypes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name in self.OPS:
            self.dtypes.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "model_class", [FourDSModel, FourDSForPreTraining, FourDSForDepthEstimation, RVMModel, MooGForNextFramePrediction]
)
@pytest.mark.parametrize("mode", ["bf16-weights", "autocast"])
def test_bf16_inference_on_a_cpu_without_native_bf16(cpu_without_native_bf16, model_class, mode):
    """The precision policy: on a CPU without native bf16, every dense matmul and convolution of a bf16 model runs in
    float32 (exact upcast operands, output rounded to bf16), the outputs keep their bf16 dtype, and the user is told
    once. MooG: the CNN encoder, the predictor / corrector and the pixel decoder."""
    config = {RVMModel: rvm_config, MooGForNextFramePrediction: moog_config}.get(model_class, fourds_config)()
    torch.manual_seed(0)
    model = model_class(config).eval()
    inputs = video()
    kwargs = {"mask": torch.arange(8).repeat(2, 1) < 4} if model_class is FourDSForPreTraining else {}
    if model_class is MooGForNextFramePrediction:
        kwargs = {"generator": torch.Generator().manual_seed(0)}
    field = {FourDSForPreTraining: "logits", FourDSForDepthEstimation: "predicted_depth",
             MooGForNextFramePrediction: "predicted_pixel_values"}.get(model_class, "last_hidden_state")
    with torch.no_grad():
        reference = model(inputs, **kwargs)[field]
        if mode == "bf16-weights":
            model, inputs = model.to(torch.bfloat16), inputs.to(torch.bfloat16)
        logger = hf_logging.get_logger(cpu_fast_paths.__name__)
        with CaptureLogger(logger) as captured, MatmulDtypes() as matmuls, torch.autocast(
            "cpu", dtype=torch.bfloat16, enabled=mode == "autocast"
        ):
            output = model(inputs, **kwargs)[field]
            model(inputs, **kwargs)
    # bf16 weights give bf16 outputs; under autocast the output keeps autocast's own dtype (fp32 after a LayerNorm).
    assert output.dtype == torch.bfloat16 or mode == "autocast"
    assert torch.isfinite(output.float()).all()
    torch.testing.assert_close(output.float(), reference.float(), atol=0.1, rtol=0.1)
    assert matmuls.dtypes and set(matmuls.dtypes) == {torch.float32}, matmuls.dtypes
    # The user is told once that bf16 matmuls compute in float32 on this CPU.
    assert captured.out.count("without native support") == 1
    assert "computes its matmuls in float32" in captured.out


def test_half_precision_stays_native_where_the_cpu_has_it(monkeypatch):
    """Where oneDNN runs bf16 natively, a bf16 Linear keeps its bf16 matmul (the policy only replaces emulation)."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    cpu_fast_paths.cpu_has_native_bf16.cache_clear()
    try:
        layer = cpu_fast_paths.Linear(8, 4).to(torch.bfloat16)
        with torch.no_grad(), MatmulDtypes() as matmuls:
            output = layer(torch.rand(3, 8, dtype=torch.bfloat16))
        assert output.dtype == torch.bfloat16 and set(matmuls.dtypes) == {torch.bfloat16}
        assert cpu_fast_paths.emulated_cpu_dtype(torch.rand(3, 8), layer.weight.float()) is None  # float32: never
    finally:
        cpu_fast_paths.cpu_has_native_bf16.cache_clear()


def test_fused_gelu_path_kept_where_bf16_is_native(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(cpu_fast_paths, "cpu_has_avx512", lambda: True)
    cpu_fast_paths.cpu_has_native_bf16.cache_clear()
    assert cpu_fast_paths.fused_cpu_gelu_linear_supports(torch.float32) == cpu_fast_paths._FUSED_CPU_LINEAR
    assert cpu_fast_paths.fused_cpu_gelu_linear_supports(torch.bfloat16) == cpu_fast_paths._FUSED_CPU_LINEAR
    assert not cpu_fast_paths.fused_cpu_gelu_linear_supports(torch.float16)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    cpu_fast_paths.cpu_has_native_bf16.cache_clear()
    assert not cpu_fast_paths.fused_cpu_gelu_linear_supports(torch.bfloat16)
    cpu_fast_paths.cpu_has_native_bf16.cache_clear()
    # On an AVX2-only CPU oneDNN's fused tanh-GELU epilogue is slower than matmul + GELU: float32 runs unfused.
    monkeypatch.setattr(cpu_fast_paths, "cpu_has_avx512", lambda: False)
    assert not cpu_fast_paths.fused_cpu_gelu_linear_supports(torch.float32)


# --------------------------------------------------------------------------------------------------------------------
# Bug 2 and departure 1 for RVM: output_hidden_states / output_attentions, final_state


def rvm_reconstruction_inputs(batch=2):
    generator = torch.Generator().manual_seed(1)
    return dict(
        pixel_values=video(batch, 3),
        target_pixel_values=video(batch, 2, seed=2),
        target_deltas=torch.tensor([[1, 2]] * batch),
        ids_shuffle=torch.rand(batch, 2, 4, generator=generator).argsort(-1),
    )


def test_rvm_masked_reconstruction_returns_hidden_states_and_attentions():
    model = RVMForMaskedReconstruction(rvm_config(_attn_implementation="eager")).eval()
    inputs = rvm_reconstruction_inputs()
    with torch.no_grad():
        plain = model(**inputs)
        out = model(**inputs, output_hidden_states=True, output_attentions=True)
    assert plain.hidden_states is None and plain.attentions is None
    # Embeddings + one per ViT block, per source frame: (B, S, 1+N, D); attentions (B, S, heads, 1+N, 1+N).
    assert len(out.hidden_states) == 3 and out.hidden_states[0].shape == (2, 3, 5, 32)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 3, 4, 5, 5)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(2, 3, 4, 5))
    torch.testing.assert_close(out.reconstruction, plain.reconstruction)
    assert out.final_state.shape == (2, 5, 32)
    # As a config default too.
    model.config.output_hidden_states = True
    with torch.no_grad():
        assert len(model(**inputs).hidden_states) == 3


def test_rvm_output_is_final_state_and_state_input_continues_the_stream():
    model = RVMModel(rvm_config()).eval()
    clip = video(1, 4)
    with torch.no_grad():
        whole = model(clip)
        first = model(clip[:, :2])
        second = model(clip[:, 2:], state=first.final_state)
    assert "state" not in whole and whole.final_state.shape == (1, 5, 32)
    torch.testing.assert_close(second.final_state, whole.final_state)
    torch.testing.assert_close(whole.final_state, whole.last_hidden_state[:, -1])


def test_rvm_hidden_states_are_the_per_frame_vit_and_config_default():
    model = RVMModel(rvm_config(_attn_implementation="eager")).eval()
    clip = video(2, 3)
    with torch.no_grad():
        out = model(clip, output_hidden_states=True, output_attentions=True, output_gates=True)
        frame = model.embeddings(clip[:, 1])
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    torch.testing.assert_close(out.hidden_states[0][:, 1], frame)
    # The core's input is the last block's output after the ViT's final norm.
    torch.testing.assert_close(out.encoder_hidden_states, model.encoder.final_norm(out.hidden_states[-1]))


# --------------------------------------------------------------------------------------------------------------------
# Bug 3: the depth model holds (and trains) only the blocks it runs


def test_depth_model_holds_only_the_blocks_up_to_its_readout_layer():
    config = fourds_config()
    model = FourDSForDepthEstimation(config)
    assert len(model.fourds.encoder.layers) == FourDSModel(config).readout_hidden_state_index == 1
    assert config.num_hidden_layers == 3  # the config still describes the full backbone


def test_every_depth_model_parameter_gets_a_gradient():
    config = fourds_config()
    model = FourDSForDepthEstimation(config).train()
    inputs = video()
    labels = inputs.mean(2) + 0.5
    model(inputs, labels=labels).loss.backward()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_depth_model_matches_the_full_backbone_and_loads_full_checkpoints_quietly(tmp_path):
    config = fourds_config()
    torch.manual_seed(0)
    full_backbone = FourDSModel(config).eval()
    depth = FourDSForDepthEstimation(config).eval()
    # A depth checkpoint in the released layout holds every block (the converter and older saves did).
    state = {f"fourds.{name}": tensor for name, tensor in full_backbone.state_dict().items()}
    state.update({name: tensor for name, tensor in depth.state_dict().items() if not name.startswith("fourds.")})
    config.save_pretrained(tmp_path)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    loaded, info = FourDSForDepthEstimation.from_pretrained(tmp_path, output_loading_info=True)
    assert info["unexpected_keys"] == set() or not info["unexpected_keys"]
    assert not info["missing_keys"] and not info["mismatched_keys"]
    inputs = video()
    with torch.no_grad():
        predicted = loaded.eval()(inputs).predicted_depth
        features = full_backbone(inputs).readout_features
        expected = loaded.readout(features)
    from rep4d.modeling.patches import patches_to_video

    expected = patches_to_video(expected, loaded.output_shape, config.readout_decoding_patch_size)[..., 0]
    torch.testing.assert_close(predicted, expected)


def test_depth_model_output_tuples_are_complete():
    config = fourds_config(_attn_implementation="eager")
    model = FourDSForDepthEstimation(config).eval()
    inputs = video()
    with torch.no_grad():
        out = model(inputs, labels=inputs.mean(2) + 0.5, output_hidden_states=True, output_attentions=True)
        as_tuple = model(
            inputs, labels=inputs.mean(2) + 0.5, output_hidden_states=True, output_attentions=True, return_dict=False
        )
    assert len(out.hidden_states) == 2 and len(out.attentions) == 1  # embeddings + the one block the model holds
    assert len(as_tuple) == 5  # loss, predicted_depth, readout_features, hidden_states, attentions
    torch.testing.assert_close(as_tuple[3][-1], out.hidden_states[-1])


# --------------------------------------------------------------------------------------------------------------------
# Departures 1 and 5 for FourDSForPreTraining


def test_pretraining_returns_hidden_states_attentions_and_a_float_mask():
    model = FourDSForPreTraining(fourds_config(_attn_implementation="eager")).eval()
    inputs = video()
    with torch.no_grad():
        out = model(inputs, generator=torch.Generator().manual_seed(0), output_hidden_states=True,
                    output_attentions=True)
        again = model(inputs, mask=out.mask)  # the output mask can be passed back
    assert out.mask.dtype == torch.float32 and set(out.mask.unique().tolist()) == {0.0, 1.0}
    assert out.mask.sum(1).tolist() == [4.0, 4.0]  # 8 tubelets, mask_ratio 0.5
    # 4 visible tubelets through blocks 0-1, then + 8 decoding tokens (one per 2x8x8 output patch) through block 2.
    assert [h.shape[1] for h in out.hidden_states] == [4, 4, 4, 12]
    assert [a.shape[-1] for a in out.attentions] == [4, 4, 12]
    torch.testing.assert_close(again.loss, out.loss)
    with pytest.raises(ValueError, match="0 \\(visible\\) and 1 \\(hidden\\)"):
        model(inputs, mask=out.mask * 0.5)


# --------------------------------------------------------------------------------------------------------------------
# One-line ValueErrors from the models' input checks (layout, dtype, ndarray and empty batch for every model class:
# tests/conformance/model_checks.py)


def test_empty_rvm_clip_is_a_value_error():
    model = RVMModel(rvm_config()).eval()
    with pytest.raises(ValueError, match="empty") as error:
        model(torch.zeros(1, 0, 3, 16, 16))
    assert "\n" not in str(error.value)


DDP_SCRIPT = r"""
import torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from rep4d.configuration import FourDSConfig
from rep4d.modeling import FourDSForDepthEstimation

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
config = FourDSConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                      tubelet_size=[2, 8, 8], image_size=[16, 16], num_frames=4, readout_num_params=16,
                      readout_num_heads=2, readout_decoding_patch_size=[2, 8, 8])
model = DistributedDataParallel(FourDSForDepthEstimation(config).train())  # plain DDP: find_unused_parameters=False
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(2):
    video = torch.rand(2, 4, 3, 16, 16, generator=torch.Generator().manual_seed(10 * step + rank))
    loss = model(video, labels=video.mean(2) + 0.5).loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
gathered = [torch.empty_like(flat) for _ in range(2)]
dist.all_gather(gathered, flat)
assert torch.equal(gathered[0], gathered[1]), "replicas diverged"
if rank == 0:
    print("DDP-OK")
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_depth_model_trains_under_plain_ddp(tmp_path):
    # Blocks that get no gradient make plain DDP fail on the second step ("Expected to have finished reduction in the
    # prior iteration"); two gloo processes, two steps.
    import os
    import socket
    import subprocess
    import sys

    script = tmp_path / "ddp_depth.py"
    script.write_text(DDP_SCRIPT)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               str(script)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0 and "DDP-OK" in result.stdout, result.stdout[-2000:] + result.stderr[-3000:]


def test_a_config_of_another_family_is_refused_naming_both_families(tmp_path):
    # Before: MooGForPointTracking.from_pretrained(<a 4DS folder>) failed with "temporal_tile_size ...
    # readout_num_frames (None)", RVMModel on a 4DS folder with "rnn_attention_size ... divisible by ...", and
    # FourDSModel on an RVM folder loaded silently with random weights.
    # Here the config classes, whose messages name the family; from_pretrained of every model class on another
    # family's folder: tests/conformance/model_checks.py.
    from rep4d.configuration import MooGConfig

    rvm_folder = tmp_path / "rvm"
    rvm_config().save_pretrained(rvm_folder)
    cases = [
        (lambda: MooGConfig.from_pretrained(rvm_folder), "MooG", "moog", "rvm"),
        (lambda: RVMConfig.from_dict(fourds_config().to_dict()), "RVM", "rvm", "fourds"),
        (lambda: FourDSConfig.from_pretrained(rvm_folder), "4DS", "fourds", "rvm"),
        (lambda: MooGConfig.from_dict(fourds_config().to_dict()), "MooG", "moog", "fourds"),
    ]
    for load, family, expected, found in cases:
        with pytest.raises(ValueError, match=rf"^expected a {family} config \(model_type '{expected}'\), got a "
                           rf"'{found}' config") as error:
            load()
        assert "\n" not in str(error.value)
    # Each family still round-trips its own config.
    for config in (fourds_config(), rvm_config(), MooGConfig()):
        assert type(config).from_dict(config.to_dict()).to_dict() == config.to_dict()


class AttentionDtypes(TorchDispatchMode):
    """Records the dtype of every fused attention kernel call (SDPA's CPU flash attention, forward and backward)."""

    def __init__(self):
        super().__init__()
        self.dtypes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "scaled_dot_product" in func._schema.name:
            self.dtypes.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


def test_cpu_bf16_training_attention_over_short_keys_runs_in_float32():
    """CPU flash attention's bf16 backward is slower than float32 on short key sequences (cpu_fast_paths.
    attention_in_float32): under bf16 autocast, training attention over < 384 keys with 64-wide heads computes in
    float32 and hands bf16 back; inference keeps bf16; long key sequences keep bf16 in training too."""
    config = rvm_config(hidden_size=128, num_attention_heads=2, rnn_num_attention_heads=2)  # heads of 64
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = RVMModel(config).train()
    with AttentionDtypes() as training, torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(video()).last_hidden_state
        output.float().square().mean().backward()
    assert training.dtypes and set(training.dtypes) == {torch.float32}, training.dtypes
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.no_grad(), AttentionDtypes() as inference, torch.autocast("cpu", dtype=torch.bfloat16):
        model.eval()(video())
    assert set(inference.dtypes) == {torch.bfloat16}
    long_keys = torch.zeros(1, 2, 8, 64, dtype=torch.bfloat16, requires_grad=True)
    assert not cpu_fast_paths.attention_in_float32(long_keys, torch.zeros(1, 2, 512, 64, dtype=torch.bfloat16))
    assert cpu_fast_paths.attention_in_float32(long_keys, torch.zeros(1, 2, 257, 64, dtype=torch.bfloat16))
    assert not cpu_fast_paths.attention_in_float32(long_keys[..., :32], torch.zeros(1, 2, 257, 32))  # heads of 32
