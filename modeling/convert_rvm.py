"""Conversion of the released RVM checkpoints (and the golden-fixture parity runner).

Recognised files: ``pretrain_rvm_{small,base,large,huge}16_256_*.npz``, flat keys without a ``params/`` prefix
(``cls_token``, ``tokenizer/...``, ``encoder/...``, ``rnn_core/...``, ``decoder/...``, ...). Every size, head
counts included, is read from the array shapes (the S/B/H recurrent-core heads are not published anywhere else).
The full files convert to :class:`RVMForMaskedReconstruction` (whose ``.rvm`` is the streaming encoder; ``AutoModel``
loads just the encoder from the converted folder). A file holding only the encoder and core converts to
:class:`RVMModel`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from rep4d.conversion import (
    CheckpointConverter,
    ConversionError,
    ParamSource,
    Shapes,
    dense_general_in,
    dense_general_out,
    dense_kernel,
    flatten,
    fused,
    layer_indices,
    register_converter,
    source,
)
from rep4d.parity import ParityOutputs, Tolerance, load_case_arrays, register_parity_runner

from ..configuration.configuration_rvm import RVMConfig
from ..processing.video_processing_rvm import RVMVideoProcessor
from .modeling_rvm import (
    RVMForMaskedReconstruction,
    RVMModel,
    decoder_position_table,
    encoder_position_table,
    mae_sinusoid_table,
)

PATCH_KERNEL = "tokenizer/patch_embedding/Conv_0/kernel"
CORE_TRANSFORMER = "rnn_core/transformer/xa_blocks_"

# (width, encoder layers) -> (released file stem, preset)
RELEASED_FILES = {
    (384, 12): ("pretrain_rvm_small16_256_204031069.npz", "RVM-S", "s"),
    (768, 12): ("pretrain_rvm_base16_256_203916225.npz", "RVM-B", "b"),
    (1024, 24): ("pretrain_rvm_large16_256_202497301.npz", "RVM-L", "l"),
    (1280, 32): ("pretrain_rvm_huge16_256_203854202.npz", "RVM-H", "h"),
}


def numbered_blocks(shapes: Shapes, prefix: str, what: str) -> int:
    indices = layer_indices(shapes, prefix)
    if not indices:
        raise ConversionError(f"no {what} blocks under {prefix}")
    if indices != list(range(len(indices))):
        raise ConversionError(f"{what} blocks are not numbered 0..{len(indices) - 1}: {indices}")
    return len(indices)


def attention_heads(shapes: Shapes, prefix: str) -> tuple[int, int]:
    """(heads, heads * head_dim) of an attention module, from its ``query/kernel`` (in, heads, head_dim)."""
    _, heads, head_dim = shapes[f"{prefix}query/kernel"]
    return int(heads), int(heads * head_dim)


def inferred_sizes(shapes: Shapes, variant: str) -> dict:
    """Every hyper-parameter the array shapes determine."""
    _, patch_h, patch_w, channels, width = shapes[PATCH_KERNEL]
    if patch_h != patch_w:
        raise ConversionError(f"non-square patches {patch_h}x{patch_w} are not supported ({PATCH_KERNEL})")
    encoder_heads, encoder_inner = attention_heads(shapes, "encoder/layers_0/attention/")
    if encoder_inner != width:
        raise ConversionError(f"encoder attention width {encoder_inner} differs from the token width {width}")
    core_heads, core_inner = attention_heads(shapes, f"{CORE_TRANSFORMER}0/ca_attention/")
    sizes = dict(
        hidden_size=int(width),
        patch_size=int(patch_h),
        num_channels=int(channels),
        num_hidden_layers=numbered_blocks(shapes, "encoder/layers_", "encoder"),
        num_attention_heads=encoder_heads,
        intermediate_size=int(shapes["encoder/layers_0/mlp/dense_in/kernel"][1]),
        rnn_num_layers=numbered_blocks(shapes, CORE_TRANSFORMER, "recurrent-core"),
        rnn_num_attention_heads=core_heads,
        rnn_attention_size=core_inner,
        rnn_intermediate_size=int(shapes[f"{CORE_TRANSFORMER}0/mlp/dense_in/kernel"][1]),
    )
    if variant == "pretrain":
        decoder_heads, decoder_inner = attention_heads(shapes, "decoder/xa_blocks_0/ca_attention/")
        decoder_width = int(shapes["mask_token"][-1])
        if decoder_inner != decoder_width:
            raise ConversionError(f"decoder attention width {decoder_inner} differs from its width {decoder_width}")
        sizes.update(
            decoder_hidden_size=decoder_width,
            decoder_num_layers=numbered_blocks(shapes, "decoder/xa_blocks_", "decoder"),
            decoder_num_attention_heads=decoder_heads,
            decoder_intermediate_size=int(shapes["decoder/xa_blocks_0/mlp/dense_in/kernel"][1]),
            num_delta_classes=int(shapes["delta_embedder/kernel"][0]),
        )
    return sizes


def layer_norm(src: str, dst: str, bias: bool = True) -> dict[str, ParamSource]:
    sources = {f"{dst}.weight": source(f"{src}/scale")}
    if bias:
        sources[f"{dst}.bias"] = source(f"{src}/bias")
    return sources


def dense(src: str, dst: str, bias: bool = True) -> dict[str, ParamSource]:
    sources = {f"{dst}.weight": source(f"{src}/kernel", transform=dense_kernel)}
    if bias:
        sources[f"{dst}.bias"] = source(f"{src}/bias")
    return sources


def cross_attention(src: str, dst: str) -> dict[str, ParamSource]:
    """Flax q/k/v/out DenseGenerals -> layers.CrossAttention (q_proj, fused kv_proj, out_proj)."""
    return {
        f"{dst}.q_proj.weight": source(f"{src}/query/kernel", transform=dense_general_in),
        f"{dst}.q_proj.bias": source(f"{src}/query/bias", transform=flatten),
        f"{dst}.kv_proj.weight": fused(f"{src}/key/kernel", f"{src}/value/kernel", transform=dense_general_in),
        f"{dst}.kv_proj.bias": fused(f"{src}/key/bias", f"{src}/value/bias", transform=flatten),
        f"{dst}.out_proj.weight": source(f"{src}/out/kernel", transform=dense_general_out),
        f"{dst}.out_proj.bias": source(f"{src}/out/bias"),
    }


def self_attention(src: str, dst: str) -> dict[str, ParamSource]:
    """Flax q/k/v/out DenseGenerals -> layers.SelfAttention (fused qkv, out_proj)."""
    names = ("query", "key", "value")
    return {
        f"{dst}.qkv.weight": fused(*(f"{src}/{n}/kernel" for n in names), transform=dense_general_in),
        f"{dst}.qkv.bias": fused(*(f"{src}/{n}/bias" for n in names), transform=flatten),
        f"{dst}.out_proj.weight": source(f"{src}/out/kernel", transform=dense_general_out),
        f"{dst}.out_proj.bias": source(f"{src}/out/bias"),
    }


def mlp(src: str, dst: str) -> dict[str, ParamSource]:
    return {**dense(f"{src}/dense_in", f"{dst}.dense_in"), **dense(f"{src}/dense_out", f"{dst}.dense_out")}


def cross_attention_transformer(src: str, dst: str, num_layers: int) -> dict[str, ParamSource]:
    """A reference ``CrossAttentionTransformer`` (``xa_blocks_{i}`` + ``output_norm``)."""
    sources = layer_norm(f"{src}/output_norm", f"{dst}.output_norm")
    for index in range(num_layers):
        block, out = f"{src}/xa_blocks_{index}", f"{dst}.blocks.{index}"
        sources.update(layer_norm(f"{block}/ca_attention_norm", f"{out}.cross_attention_norm"))
        sources.update(cross_attention(f"{block}/ca_attention", f"{out}.cross_attention"))
        sources.update(layer_norm(f"{block}/mlp_norm", f"{out}.mlp_norm"))
        sources.update(mlp(f"{block}/mlp", f"{out}.mlp"))
        sources.update(layer_norm(f"{block}/attention_norm", f"{out}.attention_norm"))
        sources.update(cross_attention(f"{block}/attention", f"{out}.attention"))
    return sources


def encoder_sources(config: RVMConfig, dst: str) -> dict[str, ParamSource]:
    """Tokenizer, ViT encoder and recurrent core onto :class:`RVMModel` (``dst`` is its prefix)."""
    sources = {
        f"{dst}embeddings.patch_embeddings.weight": source(PATCH_KERNEL, transform=lambda k: k[0].permute(3, 2, 0, 1)),
        f"{dst}embeddings.patch_embeddings.bias": source("tokenizer/patch_embedding/Conv_0/bias"),
        f"{dst}embeddings.cls_token": source("cls_token", transform=lambda c: c.reshape(1, 1, -1)),
        **layer_norm("encoder/LayerNorm_0", f"{dst}encoder.final_norm"),
    }
    for index in range(config.num_hidden_layers):
        src, out = f"encoder/layers_{index}", f"{dst}encoder.layers.{index}"
        sources.update(layer_norm(f"{src}/attention_norm", f"{out}.attention_norm"))
        sources.update(self_attention(f"{src}/attention", f"{out}.attention"))
        sources.update(layer_norm(f"{src}/mlp_norm", f"{out}.mlp_norm"))
        sources.update(mlp(f"{src}/mlp", f"{out}.mlp"))
    core = f"{dst}recurrent_core"
    for gate in ("input_update", "input_reset", "state_update", "state_reset"):
        sources.update(dense(f"rnn_core/{gate}", f"{core}.{gate}", bias=False))
    sources.update(layer_norm("rnn_core/state_layer_norm", f"{core}.state_norm", bias=False))
    sources.update(cross_attention_transformer("rnn_core/transformer", f"{core}.transformer", config.rnn_num_layers))
    return sources


class RVMConverter(CheckpointConverter):
    method = "rvm"

    def identify(self, shapes: Shapes) -> str | None:
        if PATCH_KERNEL not in shapes or "cls_token" not in shapes or "rnn_core/state_update/kernel" not in shapes:
            return None
        return "pretrain" if "mask_token" in shapes else "encoder"

    def released_file(self, shapes: Shapes):
        width = shapes[PATCH_KERNEL][-1]
        return RELEASED_FILES.get((int(width), len(layer_indices(shapes, "encoder/layers_"))))

    def variant_description(self, variant: str, shapes: Shapes) -> str:
        kind = "encoder + recurrent core + decoder" if variant == "pretrain" else "encoder + recurrent core"
        released = self.released_file(shapes)
        if released and variant == "pretrain":
            return f"{released[1]} ({released[0]})"
        return f"RVM {kind}, width {shapes[PATCH_KERNEL][-1]}"

    def build_config(self, shapes: Shapes, variant: str, preset: str | None = None, **overrides) -> RVMConfig:
        inferred = inferred_sizes(shapes, variant)
        if preset is None:
            released = self.released_file(shapes)
            preset = released[2] if released else None
        values = dict(RVMConfig.from_preset(preset).to_diff_dict()) if preset else {}
        for key in ("model_type", "transformers_version"):
            values.pop(key, None)
        # The arrays win over the preset: a preset only supplies what shapes cannot tell (image size, base grid).
        values.update(inferred)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return RVMConfig(**values)

    def model_class(self, config, variant: str) -> type:
        return RVMForMaskedReconstruction if variant == "pretrain" else RVMModel

    def parameter_sources(self, shapes: Shapes, config, variant: str) -> dict[str, ParamSource]:
        if variant == "encoder":
            return encoder_sources(config, "")
        sources = encoder_sources(config, "rvm.")
        sources.update(dense("decoder_embedder", "decoder_embedder"))
        sources.update(dense("delta_embedder", "delta_embedder"))
        sources.update(dense("detokenizer/Dense_0", "detokenizer"))
        sources["mask_token"] = source("mask_token", transform=lambda m: m.reshape(1, 1, -1))
        sources.update(cross_attention_transformer("decoder", "decoder", config.decoder_num_layers))
        return sources

    def video_processor(self, config, variant: str) -> RVMVideoProcessor:
        return RVMVideoProcessor.for_config(config)


RVM_CONVERTER = register_converter(RVMConverter())


# Golden-fixture parity ----------------------------------------------------------------------------------------------

PARITY_TOLERANCE = Tolerance(atol=1e-5, rtol=1e-5)


def config_from_case(case: dict) -> RVMConfig:
    """An RVMConfig built from a fixture's ``case.json`` alone."""
    model = case["model"]
    if model.get("state_layernorm_has_bias", False):
        raise ConversionError("RVM cases with a biased state LayerNorm are not supported (the reference has none)")
    if model.get("initial_state", "zeros") != "zeros":
        raise ConversionError(f"unsupported initial state {model['initial_state']!r} (the reference uses zeros)")
    return RVMConfig(
        hidden_size=model["width"],
        num_hidden_layers=model["enc_layers"],
        num_attention_heads=model["enc_heads"],
        intermediate_size=model["enc_mlp"],
        patch_size=model["patch"],
        image_size=[case.get("frame_height", 256), case.get("frame_width", 256)],
        base_token_shape=model["base_token_shape"],
        rnn_num_layers=model["rnn_layers"],
        rnn_num_attention_heads=model["rnn_heads"],
        rnn_attention_size=model.get("rnn_feats", model["width"]),
        rnn_intermediate_size=model["rnn_mlp"],
        decoder_hidden_size=model["dec_feats"],
        decoder_num_layers=model["dec_layers"],
        decoder_num_attention_heads=model["dec_heads"],
        decoder_intermediate_size=model["dec_mlp"],
        num_delta_classes=model.get("delta_one_hot_classes", 64),
        mask_ratio=case.get("masking_ratio", 0.95),
        layer_norm_eps=model.get("layernorm_eps", 1e-6),
        state_layer_norm_eps=model.get("state_layernorm_eps", 1e-4),
        hidden_act="gelu_pytorch_tanh" if model.get("gelu", "tanh_approximation").startswith("tanh") else "gelu",
    )


def accepts_case(case: dict, case_dir: Path) -> bool:
    kind = case.get("kind")
    if kind in ("stream", "reconstruct"):
        return "rnn_layers" in case.get("model", {})
    return kind == "posenc" and "entries" in case and "raw_tables" in case


def load_case_model(case_dir: Path, case: dict) -> tuple[RVMForMaskedReconstruction, RVMConfig]:
    from rep4d.conversion import load_converted_model, plan_conversion

    params = load_case_arrays(case_dir / "params.npz")
    shapes = {key: tuple(value.shape) for key, value in params.items()}
    variant = RVM_CONVERTER.identify(shapes)
    if variant != "pretrain":
        raise ConversionError(f"{case_dir}/params.npz does not look like a full RVM file (identified: {variant})")
    config = config_from_case(case)
    plan = plan_conversion(shapes, RVM_CONVERTER, variant, config=config)
    return load_converted_model(plan, params), config


def channels_first(video: np.ndarray) -> torch.Tensor:
    """(..., H, W, C) numpy -> (..., C, H, W) torch."""
    return torch.from_numpy(video).movedim(-1, -3).contiguous()


def run_posenc(case: dict) -> dict[str, torch.Tensor]:
    outputs = {}
    for entry in case["entries"]:
        grid, dim = entry["token_grid"], entry["dim"]
        if entry["base_token_shape"] is None:
            outputs[entry["key"]] = decoder_position_table(grid, dim).reshape(*grid, dim)
        else:
            outputs[entry["key"]] = encoder_position_table(entry["base_token_shape"], grid, dim)
    for description in case["raw_tables"]:
        key = description.split()[0]
        match = re.fullmatch(r"mae_table_n(\d+)_d(\d+)", key)
        if match is None:
            raise ConversionError(f"unrecognised raw table {description!r} (expected mae_table_n<positions>_d<dim>)")
        outputs[key] = torch.from_numpy(mae_sinusoid_table(int(match[1]), int(match[2])))
    return outputs


def run_stream(case_dir: Path, case: dict) -> dict[str, torch.Tensor]:
    model, _ = load_case_model(case_dir, case)
    encoder = model.rvm
    video = channels_first(load_case_arrays(case_dir / "inputs.npz")["video"])
    grid = encoder.token_grid(*video.shape[-2:])
    outputs = {}
    with torch.no_grad():
        # The protocol of the reference: one frame per call, carrying the state.
        state, steps = None, []
        for t in range(video.shape[1]):
            step = encoder(video[:, t], state=state, output_hidden_states=True, output_gates=True)
            state = step.final_state
            steps.append(step)

        def cat(name):
            return torch.cat([getattr(step, name) for step in steps], dim=1)

        outputs["features"] = cat("last_hidden_state")
        outputs["final_state"] = state
        outputs["encoded"] = cat("encoder_hidden_states")
        outputs["update_gate"] = cat("update_gates")
        outputs["reset_gate"] = cat("reset_gates")
        outputs["rnn_transformer_out"] = cat("candidate_states")
        outputs["tokens"] = torch.stack(
            [encoder.embeddings.tokenize(video[:, t]) for t in range(video.shape[1])], dim=1
        )
        outputs["encoder_posenc"] = encoder.embeddings.position_table(grid, video)
    return outputs


def run_reconstruct(case_dir: Path, case: dict) -> dict[str, torch.Tensor]:
    model, config = load_case_model(case_dir, case)
    inputs = load_case_arrays(case_dir / "inputs.npz")
    source_frames = channels_first(inputs["source_frames"])
    target_frames = channels_first(inputs["target_frames"])
    deltas = torch.from_numpy(inputs["target_deltas"]) if "target_deltas" in inputs else None
    ids_shuffle = torch.from_numpy(inputs["ids_shuffle"]).long()
    ratio = case.get("masking_ratio", config.mask_ratio)
    grid = model.rvm.token_grid(*target_frames.shape[-2:])
    with torch.no_grad():
        result = model(
            source_frames, target_frames, target_deltas=deltas, ids_shuffle=ids_shuffle, mask_ratio=ratio,
            output_intermediates=True,
        )
        inter = result.intermediates
        outputs = {
            "reconstructed": result.reconstruction.movedim(-3, -1),
            "mask": result.mask[..., None],
            "features": result.features,
            "state": result.final_state,
            "source_tokens": torch.stack(
                [model.rvm.embeddings.tokenize(source_frames[:, s]) for s in range(source_frames.shape[1])], dim=1
            ),
            "source_encoded": inter["source_encoded"],
            "target_tokens": inter["target_tokens"],
            "target_encoded": inter["target_encoded"],
            "target_embedded": inter["target_embedded"],
            "decoder_input": inter["decoder_input"],
            "decoder_kv": inter["decoder_kv"],
            "decoder_output": result.decoder_output,
            "decoder_posenc": decoder_position_table(grid, config.decoder_hidden_size),
            "encoder_posenc": model.rvm.embeddings.position_table(grid, target_frames),
        }
        if inter["delta_tokens"] is not None:
            outputs["delta_tokens"] = inter["delta_tokens"]
    return outputs


def run_case(case_dir: Path, case: dict) -> ParityOutputs:
    kind = case["kind"]
    if kind == "posenc":
        outputs = run_posenc(case)
    elif kind == "stream":
        outputs = run_stream(case_dir, case)
    else:
        outputs = run_reconstruct(case_dir, case)
    arrays = {key: value.detach().cpu().numpy() for key, value in outputs.items()}
    per_key = {"mask": Tolerance(exact=True)} if "mask" in arrays else {}
    return ParityOutputs(arrays, default=PARITY_TOLERANCE, per_key=per_key)


register_parity_runner("rvm", accepts_case, run_case)
