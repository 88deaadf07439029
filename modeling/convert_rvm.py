"""Conversion of the released RVM checkpoints: the key map from the JAX/Flax arrays onto the RVM models.

Recognised files: ``pretrain_rvm_{small,base,large,huge}16_256_*.npz``, flat keys without a ``params/`` prefix
(``cls_token``, ``tokenizer/...``, ``encoder/...``, ``rnn_core/...``, ``decoder/...``, ...). Every size, head
counts included, is read from the array shapes (the S/B/H recurrent-core heads are not published anywhere else).
The full files convert to :class:`RVMForMaskedReconstruction` (whose ``.rvm`` is the streaming encoder; ``AutoModel``
loads just the encoder from the converted folder). A file holding only the encoder and core converts to
:class:`RVMModel`.
"""

from __future__ import annotations

from ..configuration.configuration_rvm import RVMConfig
from ..conversion import (
    CheckpointConverter,
    ConversionError,
    ParamSource,
    Shapes,
    dense_general_in,
    dense_general_in_sources,
    dense_general_out_sources,
    dense_sources,
    flatten,
    fused,
    layer_indices,
    layer_norm_sources,
    mlp_sources,
    self_attention_sources,
    source,
)
from ..processing.video_processing_rvm import RVMVideoProcessor
from .modeling_rvm import (
    RVMForMaskedReconstruction,
    RVMModel,
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


def cross_attention(src: str, dst: str) -> dict[str, ParamSource]:
    """Flax q/k/v/out DenseGenerals -> layers.CrossAttention (q_proj, fused kv_proj, out_proj)."""
    return {
        **dense_general_in_sources(f"{src}/query", f"{dst}.q_proj"),
        f"{dst}.kv_proj.weight": fused(f"{src}/key/kernel", f"{src}/value/kernel", transform=dense_general_in),
        f"{dst}.kv_proj.bias": fused(f"{src}/key/bias", f"{src}/value/bias", transform=flatten),
        **dense_general_out_sources(f"{src}/out", f"{dst}.out_proj"),
    }


def cross_attention_transformer(src: str, dst: str, num_layers: int) -> dict[str, ParamSource]:
    """A reference ``CrossAttentionTransformer`` (``xa_blocks_{i}`` + ``output_norm``)."""
    sources = layer_norm_sources(f"{src}/output_norm", f"{dst}.output_norm")
    for index in range(num_layers):
        block, out = f"{src}/xa_blocks_{index}", f"{dst}.blocks.{index}"
        sources.update(layer_norm_sources(f"{block}/ca_attention_norm", f"{out}.cross_attention_norm"))
        sources.update(cross_attention(f"{block}/ca_attention", f"{out}.cross_attention"))
        sources.update(layer_norm_sources(f"{block}/mlp_norm", f"{out}.mlp_norm"))
        sources.update(mlp_sources(f"{block}/mlp", f"{out}.mlp"))
        sources.update(layer_norm_sources(f"{block}/attention_norm", f"{out}.attention_norm"))
        sources.update(cross_attention(f"{block}/attention", f"{out}.attention"))
    return sources


def encoder_sources(config: RVMConfig, dst: str) -> dict[str, ParamSource]:
    """Tokenizer, ViT encoder and recurrent core onto :class:`RVMModel` (``dst`` is its prefix)."""
    sources = {
        f"{dst}embeddings.patch_embeddings.weight": source(PATCH_KERNEL, transform=lambda k: k[0].permute(3, 2, 0, 1)),
        f"{dst}embeddings.patch_embeddings.bias": source("tokenizer/patch_embedding/Conv_0/bias"),
        f"{dst}embeddings.cls_token": source("cls_token", transform=lambda c: c.reshape(1, 1, -1)),
        **layer_norm_sources("encoder/LayerNorm_0", f"{dst}encoder.final_norm"),
    }
    for index in range(config.num_hidden_layers):
        src, out = f"encoder/layers_{index}", f"{dst}encoder.layers.{index}"
        sources.update(layer_norm_sources(f"{src}/attention_norm", f"{out}.attention_norm"))
        sources.update(self_attention_sources(f"{src}/attention", f"{out}.attention"))
        sources.update(layer_norm_sources(f"{src}/mlp_norm", f"{out}.mlp_norm"))
        sources.update(mlp_sources(f"{src}/mlp", f"{out}.mlp"))
    core = f"{dst}recurrent_core"
    for gate in ("input_update", "input_reset", "state_update", "state_reset"):
        sources.update(dense_sources(f"rnn_core/{gate}", f"{core}.{gate}", bias=False))
    sources.update(layer_norm_sources("rnn_core/state_layer_norm", f"{core}.state_norm", bias=False))
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
        sources.update(dense_sources("decoder_embedder", "decoder_embedder"))
        sources.update(dense_sources("delta_embedder", "delta_embedder"))
        sources.update(dense_sources("detokenizer/Dense_0", "detokenizer"))
        sources["mask_token"] = source("mask_token", transform=lambda m: m.reshape(1, 1, -1))
        sources.update(cross_attention_transformer("decoder", "decoder", config.decoder_num_layers))
        return sources

    def video_processor(self, config, variant: str) -> RVMVideoProcessor:
        return RVMVideoProcessor.for_config(config)


RVM_CONVERTER = RVMConverter()
