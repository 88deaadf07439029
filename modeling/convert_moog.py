"""Conversion of the released MooG checkpoints: the key map from the JAX/Flax arrays onto the MooG models.

Recognised files (spec §5, manifests in ``tests/fixtures/moog/manifests``):

* ``moog_ego4d_backbone_ckpt_164335139.npz``: keys ``pretrained_model/{encoder,predictor_sa,predictor_ca,
  state_layer_norm}/...``, with or without the pixel decoder under ``pretrained_model/decoder/...``. Without the
  decoder it converts to :class:`MooGModel`, with it to :class:`MooGForNextFramePrediction`.
* ``moog_ego4d_point_track_head_ckpt_164335139.npz`` / ``..._box_track_head_...``: the released heads on their own
  (:class:`MooGTrackingHeadModel`), or merged with the backbone (``rep4d convert BACKBONE.npz HEAD.npz``) into
  :class:`MooGForPointTracking` / :class:`MooGForBoxTracking`.
* backbone + the training code's recurrent point readout (``initializer/``, ``backbone/transformer/``, ...): the
  paper-style :class:`MooGForPointTracking` with ``point_readout_type="recurrent"``.

Sizes come from the array shapes; the conv strides, token count and LayerNorm epsilons (not visible in shapes) come
from the ``released`` preset unless overridden.
"""

from __future__ import annotations

from ..configuration.configuration_moog import MooGConfig
from ..conversion import (
    CheckpointConverter,
    ConversionError,
    ParamSource,
    Shapes,
    attention_readout_sources,
    dense_general_in_sources,
    dense_general_out_sources,
    dense_sources,
    layer_indices,
    layer_norm_sources,
    mlp_sources,
    source,
)
from ..processing.video_processing_moog import MooGVideoProcessor
from .modeling_moog import (
    MooGForBoxTracking,
    MooGForNextFramePrediction,
    MooGForPointTracking,
    MooGModel,
    MooGTrackingHeadModel,
)

BACKBONE = "pretrained_model/"
DECODER = f"{BACKBONE}decoder/"
RECURRENT_MARKER = "initializer/layers_1/Dense_0/kernel"
HEAD_MARKER = "attention_readout/Dense_2/kernel"
QUERY_INIT = "query_initializer/layers_1"
DENSE_PAIR = ("Dense_0", "Dense_1")  # the layers of a Flax MLP without names

BACKBONE_FILE = "moog_ego4d_backbone_ckpt_164335139.npz"
# variant -> (description, model class, released file of that layout or None)
VARIANTS = {
    "backbone": ("MooG backbone", MooGModel, BACKBONE_FILE),
    "backbone_decoder": ("MooG backbone + pixel decoder", MooGForNextFramePrediction, BACKBONE_FILE),
    "point_head": ("MooG released point-track head", MooGTrackingHeadModel,
                   "moog_ego4d_point_track_head_ckpt_164335139.npz"),
    "box_head": ("MooG released box-track head", MooGTrackingHeadModel, "moog_ego4d_box_track_head_ckpt_164335139.npz"),
    "points": ("MooG backbone + released point-track head", MooGForPointTracking, None),
    "boxes": ("MooG backbone + released box-track head", MooGForBoxTracking, None),
    "recurrent_points": ("MooG backbone + recurrent point readout", MooGForPointTracking, None),
}


def head_kind(shapes: Shapes) -> str:
    """``point`` or ``box``: points have a temporal tile embedding or 2-D queries (16 Fourier bases: 64 inputs)."""
    if "temporal_tile_posenc/embeddings" in shapes:
        return "point"
    # Without a tile embedding: 2 * query_dim * 16 inputs (the released 16 bases) tell 2-D points from 4-D boxes.
    return "box" if shapes[f"{QUERY_INIT}/Dense_0/kernel"][0] == 2 * 4 * 16 else "point"


def transformer_sizes(shapes: Shapes, prefix: str, kind: str) -> dict:
    layers = layer_indices(shapes, f"{prefix}layer_")
    if layers != list(range(len(layers))) or not layers:
        raise ConversionError(f"transformer blocks under {prefix} are not numbered 0..n-1: {layers}")
    _, heads, head_dim = shapes[f"{prefix}layer_0/{kind}/dense_query/kernel"]
    return dict(
        qkv_size=int(heads * head_dim),
        num_heads=int(heads),
        mlp_size=int(shapes[f"{prefix}layer_0/MLP_in/kernel"][1]),
        num_layers=len(layers),
    )


def backbone_sizes(shapes: Shapes) -> dict:
    convs = layer_indices(shapes, f"{BACKBONE}encoder/backbone/Conv_")
    kernels = [shapes[f"{BACKBONE}encoder/backbone/Conv_{i}/kernel"] for i in convs]
    conv_out = int(kernels[-1][3])
    encoder_in, encoder_hidden = shapes[f"{BACKBONE}encoder/transformer/Dense_0/kernel"]
    values = dict(
        num_channels=int(kernels[0][2]),
        conv_features=[int(k[3]) for k in kernels],
        conv_kernel_size=int(kernels[0][0]),
        encoder_hidden_size=int(encoder_hidden),
        encoder_output_size=(
            int(shapes[f"{BACKBONE}encoder/transformer/Dense_1/kernel"][1])
            if f"{BACKBONE}encoder/transformer/Dense_1/kernel" in shapes
            else None
        ),
        posenc_mode="concat",
        token_size=int(shapes[f"{BACKBONE}state_layer_norm/scale"][0]),
    )
    if (encoder_in - conv_out) % 4 or encoder_in <= conv_out:
        raise ConversionError(
            f"encoder input width {encoder_in} is not the CNN output ({conv_out}) plus 4 x Fourier bases"
        )
    values["enc_fourier_bases"] = int((encoder_in - conv_out) // 4)
    for name, key in (("predictor", "predictor_sa"), ("corrector", "predictor_ca")):
        for field, value in transformer_sizes(shapes, f"{BACKBONE}{key}/", "self_att").items():
            values[f"{name}_{field}"] = value
    if f"{DECODER}recon/kernel" in shapes:
        for field, value in transformer_sizes(shapes, f"{DECODER}transformer/", "cross_att").items():
            values[f"decoder_{field}"] = value
        query_size, channels = shapes[f"{DECODER}recon/kernel"]
        values["dec_fourier_bases"] = int((query_size - values["token_size"]) // 4)
        values["decoder_output_channels"] = int(channels)
    return values


def head_sizes(shapes: Shapes, kind: str) -> dict:
    readout = "attention_readout/"
    in_size, query_size = shapes[f"{QUERY_INIT}/Dense_0/kernel"]
    query_dim = 2 if kind == "point" else 4
    _, heads, _ = shapes[f"{readout}key_embedding/kernel"]
    num_params = int(shapes[f"{readout}Dense_0/kernel"][1])
    tiles = int(shapes["temporal_tile_posenc/embeddings"][0]) if "temporal_tile_posenc/embeddings" in shapes else 1
    frames = int(shapes[f"{readout}temporal_posenc/embeddings"][0])
    num_classes = int(shapes[f"{readout}Dense_2/kernel"][1])
    if num_classes % 4 or tiles * (num_classes // 4) != frames:
        raise ConversionError(
            f"{kind} head: {num_classes} outputs per query token x {tiles} tiles do not cover {frames} frames"
        )
    return {
        "readout_fourier_bases": int(in_size // (2 * query_dim)),
        "readout_num_frames": frames,
        f"{kind}_readout_num_params": num_params,
        f"{kind}_readout_num_heads": int(heads),
        f"{kind}_readout_mlp_size": int(shapes[f"{readout}MLP_0/Dense_0/kernel"][1]),
        f"{kind}_readout_query_mlp_size": int(query_size),
        f"{kind}_readout_temporal_tile_size": tiles,
        f"{kind}_readout_frames_per_query": num_classes // 4,
        "tracking_head": kind,
        "token_size": int(shapes[f"{readout}LayerNorm_0/scale"][0]),
    }


def recurrent_sizes(shapes: Shapes) -> dict:
    in_size, latent = shapes["initializer/layers_1/Dense_0/kernel"]
    sizes = transformer_sizes(shapes, "backbone/transformer/", "cross_att")
    return dict(
        point_readout_type="recurrent",
        recurrent_latent_size=int(latent),
        recurrent_qkv_size=sizes["qkv_size"],
        recurrent_num_heads=sizes["num_heads"],
        recurrent_mlp_size=sizes["mlp_size"],
        recurrent_num_layers=sizes["num_layers"],
        readout_fourier_bases=int(in_size // 4),
    )


def transformer_sources(
    src: str, dst: str, num_layers: int, self_attention: bool, cross_attention: bool, input_proj=False, output_proj=False
) -> dict[str, ParamSource]:
    """Mapping of a reference ``ImprovedTransformer`` onto :class:`MooGTransformer` (spec §2.6, §5)."""
    sources = layer_norm_sources(f"{src}norm_encoder", f"{dst}final_norm", bias=False)
    if input_proj:
        sources.update(dense_sources(f"{src}Dense_0", f"{dst}input_proj"))
    if output_proj:
        sources.update(dense_sources(f"{src}Dense_1" if input_proj else f"{src}Dense_0", f"{dst}output_proj"))
    for layer in range(num_layers):
        s, d = f"{src}layer_{layer}/", f"{dst}layers.{layer}."
        sources.update(layer_norm_sources(f"{s}norm_q", f"{d}norm_q", bias=False))
        sources.update(layer_norm_sources(f"{s}norm_attn", f"{d}norm_attn", bias=False))
        sources.update(dense_sources(f"{s}MLP_in", f"{d}mlp.dense_in"))
        sources.update(dense_sources(f"{s}MLP_out", f"{d}mlp.dense_out"))
        for enabled, ref, ours in ((self_attention, "self_att", "self_attn"), (cross_attention, "cross_att", "cross_attn")):
            if not enabled:
                continue
            a, b = f"{s}{ref}/", f"{d}{ours}."
            for projection in ("query", "key", "value"):
                sources.update(dense_general_in_sources(f"{a}dense_{projection}", f"{b}{projection[0]}_proj", bias=False))
            sources.update(layer_norm_sources(f"{a}norm_query", f"{b}q_norm", bias=False))
            sources.update(layer_norm_sources(f"{a}norm_key", f"{b}k_norm", bias=False))
            sources.update(dense_general_out_sources(f"{a}dense_out", f"{b}out_proj"))
    return sources


def backbone_sources(config: MooGConfig, dst: str) -> dict[str, ParamSource]:
    enc = f"{BACKBONE}encoder/"
    sources = {}
    for index in range(len(config.conv_features)):
        sources[f"{dst}encoder.convs.{index}.weight"] = source(
            f"{enc}backbone/Conv_{index}/kernel", transform=lambda k: k.permute(3, 2, 0, 1)
        )
        sources[f"{dst}encoder.convs.{index}.bias"] = source(f"{enc}backbone/Conv_{index}/bias")
    sources.update(layer_norm_sources(f"{enc}backbone/LayerNorm_0", f"{dst}encoder.conv_norm", bias=False))
    if config.posenc_mode != "concat":
        raise ConversionError("only the released layout (posenc_mode='concat') has a checkpoint format to convert")
    sources.update(
        transformer_sources(
            f"{enc}transformer/", f"{dst}encoder.token_projection.", 0, False, False,
            input_proj=True, output_proj=config.encoder_output_size is not None,
        )
    )
    sources.update(
        transformer_sources(f"{BACKBONE}predictor_sa/", f"{dst}predictor.", config.predictor_num_layers, True, False)
    )
    sources.update(
        transformer_sources(f"{BACKBONE}predictor_ca/", f"{dst}corrector.", config.corrector_num_layers, True, True)
    )
    sources[f"{dst}state_norm.weight"] = source(f"{BACKBONE}state_layer_norm/scale")
    return sources


def tracking_head_sources(dst: str, kind: str, tiles: int) -> dict[str, ParamSource]:
    ckpt = "attention_readout/"
    r = f"{dst}readout."
    sources = mlp_sources(QUERY_INIT, f"{dst}query_embedding.mlp", DENSE_PAIR)
    if tiles > 1:
        sources[f"{dst}temporal_tile_embedding"] = source("temporal_tile_posenc/embeddings")
    sources.update(attention_readout_sources(ckpt, r, given_queries=True))
    return sources


def recurrent_head_sources(config: MooGConfig, dst: str) -> dict[str, ParamSource]:
    sources = mlp_sources("initializer/layers_1", f"{dst}query_embedding.mlp", DENSE_PAIR)
    sources.update(
        transformer_sources(
            "backbone/transformer/", f"{dst}corrector.", config.recurrent_num_layers, False, True,
            input_proj=True, output_proj=True,
        )
    )
    sources.update(mlp_sources("predictor", f"{dst}predictor", DENSE_PAIR))
    sources.update(mlp_sources("output_values", f"{dst}output_values", DENSE_PAIR))
    sources.update(mlp_sources("output_logits", f"{dst}output_logits", DENSE_PAIR))
    sources[f"{dst}state_norm.weight"] = source("state_layer_norm/scale")
    return sources


class MooGConverter(CheckpointConverter):
    method = "moog"

    def identify(self, shapes: Shapes) -> str | None:
        has_backbone = f"{BACKBONE}encoder/backbone/Conv_0/kernel" in shapes
        has_head = HEAD_MARKER in shapes and f"{QUERY_INIT}/Dense_0/kernel" in shapes
        has_recurrent = RECURRENT_MARKER in shapes and "backbone/transformer/norm_encoder/scale" in shapes
        if has_backbone and has_recurrent:
            return "recurrent_points"
        if has_backbone and has_head:
            return "points" if head_kind(shapes) == "point" else "boxes"
        if has_backbone:
            return "backbone_decoder" if f"{DECODER}recon/kernel" in shapes else "backbone"
        if has_head:
            return f"{head_kind(shapes)}_head"
        return None

    def variant_description(self, variant: str, shapes: Shapes) -> str:
        description, _, name = VARIANTS[variant]
        return description + (f" ({name} layout)" if name else "")

    def build_config(self, shapes: Shapes, variant: str, preset: str | None = None, **overrides) -> MooGConfig:
        try:
            return self._build_config(shapes, variant, preset, **overrides)
        except KeyError as error:
            raise ConversionError(
                f"the checkpoint lacks {error.args[0]}, needed to infer the {VARIANTS[variant][0]} sizes"
            ) from error

    def _build_config(self, shapes: Shapes, variant: str, preset: str | None = None, **overrides) -> MooGConfig:
        values = dict(MooGConfig.from_preset(preset or "released").to_diff_dict())
        for key in ("model_type", "transformers_version"):
            values.pop(key, None)
        if variant.startswith("backbone") or variant in ("points", "boxes", "recurrent_points"):
            values.update(backbone_sizes(shapes))
        if variant in ("point_head", "points"):
            values.update(head_sizes(shapes, "point"))
        if variant in ("box_head", "boxes"):
            values.update(head_sizes(shapes, "box"))
        if variant == "recurrent_points":
            values.update(recurrent_sizes(shapes))
        values.update({key: value for key, value in overrides.items() if value is not None})
        # A head this file does not hold keeps the released tiling only if it fits the clip length.
        frames = values.get("readout_num_frames", 16)
        for kind in ("point", "box"):
            tiles = values.get(f"{kind}_readout_temporal_tile_size", getattr(MooGConfig, f"{kind}_readout_temporal_tile_size"))
            per_query = values.get(f"{kind}_readout_frames_per_query", getattr(MooGConfig, f"{kind}_readout_frames_per_query"))
            if tiles * per_query != frames:
                values[f"{kind}_readout_temporal_tile_size"], values[f"{kind}_readout_frames_per_query"] = 1, frames
        return MooGConfig(**values)

    def model_class(self, config, variant: str) -> type:
        return VARIANTS[variant][1]

    def parameter_sources(self, shapes: Shapes, config, variant: str) -> dict[str, ParamSource]:
        sources = {}
        if variant == "backbone":
            sources.update(backbone_sources(config, ""))
        elif variant in ("backbone_decoder", "points", "boxes", "recurrent_points"):
            sources.update(backbone_sources(config, "moog."))
        if variant == "backbone_decoder":
            sources.update(
                transformer_sources(f"{DECODER}transformer/", "decoder.transformer.", config.decoder_num_layers, False, True)
            )
            sources.update(dense_sources(f"{DECODER}recon", "decoder.recon"))
        if variant in ("point_head", "points"):
            sources.update(tracking_head_sources("readout.", "point", config.point_readout_temporal_tile_size))
        if variant in ("box_head", "boxes"):
            sources.update(tracking_head_sources("readout.", "box", config.box_readout_temporal_tile_size))
        if variant == "recurrent_points":
            sources.update(recurrent_head_sources(config, "readout."))
        return sources

    def ignored_keys(self, shapes: Shapes, config, variant: str) -> set[str]:
        # A tracking model reads the corrected states only; the backbone file's pixel decoder (next-frame
        # prediction, spec §2.7) has no place in it. Convert the backbone file alone to keep the decoder.
        if variant in ("points", "boxes", "recurrent_points"):
            return {key for key in shapes if key.startswith(DECODER)}
        return set()

    def video_processor(self, config, variant: str) -> MooGVideoProcessor | None:
        if variant.endswith("_head"):
            return None
        return MooGVideoProcessor.for_config(config)


MOOG_CONVERTER = MooGConverter()

__all__ = ["MooGConverter", "MOOG_CONVERTER"]
