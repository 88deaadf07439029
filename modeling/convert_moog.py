"""Conversion of the released MooG checkpoints (and the golden-fixture parity runner).

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

from pathlib import Path

import torch

from rep4d.conversion import (
    CheckpointConverter,
    ConversionError,
    ParamSource,
    Shapes,
    attention_readout_sources,
    dense_general_in,
    dense_general_out,
    dense_kernel,
    layer_indices,
    register_converter,
    source,
)
from rep4d.parity import ParityOutputs, Tolerance, load_case_arrays, register_parity_runner

from ..configuration.configuration_moog import MooGConfig
from ..processing.video_processing_moog import MooGVideoProcessor
from .modeling_moog import (
    MooGForBoxTracking,
    MooGForNextFramePrediction,
    MooGForPointTracking,
    MooGModel,
    MooGTrackingHeadModel,
    coordinate_grid,
    fourier_features,
)

BACKBONE = "pretrained_model/"
DECODER = f"{BACKBONE}decoder/"
RECURRENT_MARKER = "initializer/layers_1/Dense_0/kernel"
HEAD_MARKER = "attention_readout/Dense_2/kernel"
QUERY_INIT = "query_initializer/layers_1/"

VARIANTS = {
    "backbone": ("MooG backbone", MooGModel),
    "backbone_decoder": ("MooG backbone + pixel decoder", MooGForNextFramePrediction),
    "point_head": ("MooG released point-track head", MooGTrackingHeadModel),
    "box_head": ("MooG released box-track head", MooGTrackingHeadModel),
    "points": ("MooG backbone + released point-track head", MooGForPointTracking),
    "boxes": ("MooG backbone + released box-track head", MooGForBoxTracking),
    "recurrent_points": ("MooG backbone + recurrent point readout", MooGForPointTracking),
}
RELEASED_NAMES = {
    "backbone": "moog_ego4d_backbone_ckpt_164335139.npz",
    "backbone_decoder": "moog_ego4d_backbone_ckpt_164335139.npz",
    "point_head": "moog_ego4d_point_track_head_ckpt_164335139.npz",
    "box_head": "moog_ego4d_box_track_head_ckpt_164335139.npz",
}


def head_kind(shapes: Shapes) -> str:
    """``point`` or ``box``: points have a temporal tile embedding or 2-D queries (16 Fourier bases: 64 inputs)."""
    if "temporal_tile_posenc/embeddings" in shapes:
        return "point"
    # Without a tile embedding: 2 * query_dim * 16 inputs (the released 16 bases) tell 2-D points from 4-D boxes.
    return "box" if shapes[f"{QUERY_INIT}Dense_0/kernel"][0] == 2 * 4 * 16 else "point"


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
    in_size, query_size = shapes[f"{QUERY_INIT}Dense_0/kernel"]
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
    sources = {f"{dst}final_norm.weight": source(f"{src}norm_encoder/scale")}
    if input_proj:
        sources[f"{dst}input_proj.weight"] = source(f"{src}Dense_0/kernel", transform=dense_kernel)
        sources[f"{dst}input_proj.bias"] = source(f"{src}Dense_0/bias")
    if output_proj:
        name = "Dense_1" if input_proj else "Dense_0"
        sources[f"{dst}output_proj.weight"] = source(f"{src}{name}/kernel", transform=dense_kernel)
        sources[f"{dst}output_proj.bias"] = source(f"{src}{name}/bias")
    for layer in range(num_layers):
        s, d = f"{src}layer_{layer}/", f"{dst}layers.{layer}."
        sources.update(
            {
                f"{d}norm_q.weight": source(f"{s}norm_q/scale"),
                f"{d}norm_attn.weight": source(f"{s}norm_attn/scale"),
                f"{d}mlp.dense_in.weight": source(f"{s}MLP_in/kernel", transform=dense_kernel),
                f"{d}mlp.dense_in.bias": source(f"{s}MLP_in/bias"),
                f"{d}mlp.dense_out.weight": source(f"{s}MLP_out/kernel", transform=dense_kernel),
                f"{d}mlp.dense_out.bias": source(f"{s}MLP_out/bias"),
            }
        )
        for enabled, ref, ours in ((self_attention, "self_att", "self_attn"), (cross_attention, "cross_att", "cross_attn")):
            if not enabled:
                continue
            a, b = f"{s}{ref}/", f"{d}{ours}."
            sources.update(
                {
                    f"{b}q_proj.weight": source(f"{a}dense_query/kernel", transform=dense_general_in),
                    f"{b}k_proj.weight": source(f"{a}dense_key/kernel", transform=dense_general_in),
                    f"{b}v_proj.weight": source(f"{a}dense_value/kernel", transform=dense_general_in),
                    f"{b}q_norm.weight": source(f"{a}norm_query/scale"),
                    f"{b}k_norm.weight": source(f"{a}norm_key/scale"),
                    f"{b}out_proj.weight": source(f"{a}dense_out/kernel", transform=dense_general_out),
                    f"{b}out_proj.bias": source(f"{a}dense_out/bias"),
                }
            )
    return sources


def mlp_sources(src: str, dst: str) -> dict[str, ParamSource]:
    return {
        f"{dst}dense_in.weight": source(f"{src}Dense_0/kernel", transform=dense_kernel),
        f"{dst}dense_in.bias": source(f"{src}Dense_0/bias"),
        f"{dst}dense_out.weight": source(f"{src}Dense_1/kernel", transform=dense_kernel),
        f"{dst}dense_out.bias": source(f"{src}Dense_1/bias"),
    }


def backbone_sources(config: MooGConfig, dst: str) -> dict[str, ParamSource]:
    enc = f"{BACKBONE}encoder/"
    sources = {}
    for index in range(len(config.conv_features)):
        sources[f"{dst}encoder.convs.{index}.weight"] = source(
            f"{enc}backbone/Conv_{index}/kernel", transform=lambda k: k.permute(3, 2, 0, 1)
        )
        sources[f"{dst}encoder.convs.{index}.bias"] = source(f"{enc}backbone/Conv_{index}/bias")
    sources[f"{dst}encoder.conv_norm.weight"] = source(f"{enc}backbone/LayerNorm_0/scale")
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
    sources = mlp_sources(QUERY_INIT, f"{dst}query_embedding.mlp.")
    if tiles > 1:
        sources[f"{dst}temporal_tile_embedding"] = source("temporal_tile_posenc/embeddings")
    sources.update(attention_readout_sources(ckpt, r, given_queries=True))
    return sources


def recurrent_head_sources(config: MooGConfig, dst: str) -> dict[str, ParamSource]:
    sources = mlp_sources("initializer/layers_1/", f"{dst}query_embedding.mlp.")
    sources.update(
        transformer_sources(
            "backbone/transformer/", f"{dst}corrector.", config.recurrent_num_layers, False, True,
            input_proj=True, output_proj=True,
        )
    )
    sources.update(mlp_sources("predictor/", f"{dst}predictor."))
    sources.update(mlp_sources("output_values/", f"{dst}output_values."))
    sources.update(mlp_sources("output_logits/", f"{dst}output_logits."))
    sources[f"{dst}state_norm.weight"] = source("state_layer_norm/scale")
    return sources


class MooGConverter(CheckpointConverter):
    method = "moog"

    def identify(self, shapes: Shapes) -> str | None:
        has_backbone = f"{BACKBONE}encoder/backbone/Conv_0/kernel" in shapes
        has_head = HEAD_MARKER in shapes and f"{QUERY_INIT}Dense_0/kernel" in shapes
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
        name = RELEASED_NAMES.get(variant)
        return VARIANTS[variant][0] + (f" ({name} layout)" if name else "")

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
            sources["decoder.recon.weight"] = source(f"{DECODER}recon/kernel", transform=dense_kernel)
            sources["decoder.recon.bias"] = source(f"{DECODER}recon/bias")
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


MOOG_CONVERTER = register_converter(MooGConverter())


# Golden-fixture parity ----------------------------------------------------------------------------------------------


def config_from_case(case: dict) -> MooGConfig:
    """A MooGConfig built from a fixture's ``case.json`` alone."""
    backbone = case["backbone"]
    values = dict(
        image_size=[case["height"], case["width"]],
        num_frames=case["num_frames"],
        conv_features=backbone["conv_features"],
        conv_strides=[s[0] if isinstance(s, list) else s for s in backbone["conv_strides"]],
        enc_fourier_bases=backbone["enc_fourier_bases"],
        num_tokens=backbone["num_tokens"],
        token_size=backbone["token_size"],
        dec_fourier_bases=backbone["dec_fourier_bases"],
        state_init_scale=backbone["state_init_scale"],
        state_ln_eps=backbone["state_ln_eps"],
        encoder_hidden_size=case["encoder_hidden_size"],
        encoder_output_size=case["encoder_output_size"],
        eval_subsample_factor=case.get("eval_subsample_factor_main", 1),
        train_subsample_factor=case.get("train_subsample_factor", 8),
        readout_num_frames=case["num_frames"],
    )
    if any(s[0] != s[1] for s in backbone["conv_strides"] if isinstance(s, list)):
        raise ConversionError(f"non-square conv strides are not supported: {backbone['conv_strides']}")
    for name in ("predictor", "corrector", "decoder"):
        for field in ("qkv_size", "num_heads", "mlp_size", "num_layers"):
            values[f"{name}_{field}"] = backbone[name][field]
    if case.get("decode_states", "states_predicted") != "states_predicted":
        raise ConversionError(f"decode_states={case['decode_states']!r} is not supported")
    # The unused head of each kind must still be consistent with the frame count.
    for kind in ("point", "box"):
        values[f"{kind}_readout_temporal_tile_size"] = 1
        values[f"{kind}_readout_frames_per_query"] = case["num_frames"]
    for kind, key in (("point", "point_head"), ("box", "box_head")):
        head = case.get(key)
        if head is None:
            continue
        values.update(
            {
                f"{kind}_readout_num_params": head["num_params"],
                f"{kind}_readout_num_heads": head["num_heads"],
                f"{kind}_readout_mlp_size": 4 * head["num_params"],
                f"{kind}_readout_query_mlp_size": head["query_mlp_size"],
                f"{kind}_readout_temporal_tile_size": head["temporal_tile_size"],
                f"{kind}_readout_frames_per_query": head["num_frames_per_query"],
                "readout_fourier_bases": head["fourier_bases"],
                "tracking_head": kind,
            }
        )
        if kind == "point":
            values["visibility_threshold"] = head.get("certainty_threshold", 0.5)
    recurrent = case.get("recurrent_point_head")
    if recurrent:
        values.update(
            point_readout_type="recurrent",
            recurrent_latent_size=recurrent["latent_size"],
            recurrent_qkv_size=recurrent["qkv_size"],
            recurrent_num_heads=recurrent["num_heads"],
            recurrent_mlp_size=recurrent["mlp_size"],
            recurrent_num_layers=recurrent["num_layers"],
            recurrent_state_ln_eps=recurrent["state_ln_eps"],
            readout_fourier_bases=recurrent["fourier_bases"],
            visibility_threshold=recurrent.get("certainty_threshold", 0.5),
        )
    return MooGConfig(**values)


def accepts_case(case: dict, case_dir: Path) -> bool:
    backbone = case.get("backbone")
    return isinstance(backbone, dict) and "num_tokens" in backbone and "conv_features" in backbone


def _converted(arrays: dict, config: MooGConfig, expected_variant: str):
    from rep4d.conversion import load_converted_model, plan_conversion

    shapes = {key: tuple(value.shape) for key, value in arrays.items()}
    variant = MOOG_CONVERTER.identify(shapes)
    if variant != expected_variant:
        raise ConversionError(f"expected a MooG {expected_variant} parameter set, the files look like {variant}")
    return load_converted_model(plan_conversion(shapes, MOOG_CONVERTER, variant, config=config), arrays)


HEAD_CASE_KEYS = {"point_head": "points", "box_head": "boxes", "recurrent_point_head": "recurrent_points"}


def _head_models(case: dict, params: dict, backbone_file: str) -> dict:
    """One tracking model per head of the case, keyed by variant (``points``, ``boxes``, ``recurrent_points``).

    Each head file is converted together with the backbone alone (never with the other heads, whose keys have the
    same layout), with a config built from the case's backbone and that head only (heads may differ in their
    Fourier bases)."""
    wanted = {variant: key for key, variant in HEAD_CASE_KEYS.items() if key in case}
    models = {}
    for name, arrays in params.items():
        if name == backbone_file or not wanted:
            continue
        merged = {**params[backbone_file], **arrays}
        variant = MOOG_CONVERTER.identify({key: tuple(value.shape) for key, value in merged.items()})
        if variant not in wanted:
            raise ConversionError(
                f"{name}: the case has heads {sorted(wanted.values())} but this file looks like a {variant} parameter set"
            )
        if variant in models:
            raise ConversionError(f"{name}: a second {variant} parameter set in one case")
        head_case = {key: value for key, value in case.items() if key not in HEAD_CASE_KEYS or key == wanted[variant]}
        models[variant] = _converted(merged, config_from_case(head_case), variant)
    missing = set(wanted) - set(models)
    if missing:
        raise ConversionError(f"no parameter file for the case's {', '.join(sorted(wanted[v] for v in missing))}")
    return models


def run_case(case_dir: Path, case: dict) -> ParityOutputs:
    config = config_from_case(case)
    files = case.get("param_files") or sorted(p.name for p in case_dir.glob("*params.npz"))
    params = {name: load_case_arrays(case_dir / name) for name in files}
    backbone_file = next(name for name in files if name.startswith("backbone"))
    inputs = load_case_arrays(case_dir / "inputs.npz")
    reference_keys = set(load_case_arrays(case_dir / "outputs.npz"))
    video = torch.from_numpy(inputs["video"])
    pixel_values = video.permute(0, 1, 4, 2, 3).contiguous()
    init_state = torch.from_numpy(inputs["init_state"])
    height, width = video.shape[2:4]

    predictor = _converted(params[backbone_file], config, "backbone_decoder")
    out = {}
    with torch.no_grad():
        backbone = predictor.moog
        result = backbone(pixel_values, state=init_state, output_intermediates=True, output_states_concat=True)
        tokens, conv = backbone.encoder(pixel_values[:, 0], return_conv=True)
        h, w = conv.shape[1:3]
        out.update(
            encoder_conv_out_frame0=conv,
            encoder_posenc=fourier_features(coordinate_grid(h, w), config.enc_fourier_bases),
            encoder_features_frame0=tokens,
            encoder_features=result.encoder_features,
            decoder_query_posenc=fourier_features(coordinate_grid(height, width), config.dec_fourier_bases),
            states_normed_input=result.normed_states,
            states_predicted=result.predicted_states,
            states_corrected=result.corrected_states,
            features=result.features,
            final_state=result.final_state,
            states_concat=result.states_concat,
        )
        full = predictor(pixel_values, state=init_state, subsample_factor=config.eval_subsample_factor)
        out["video_predicted"] = full.predicted_pixel_values.permute(0, 1, 3, 4, 2)
        if "train_decoder_offsets" in inputs:
            train = predictor(
                pixel_values,
                state=init_state,
                subsample_factor=case["train_subsample_factor"],
                offsets=torch.from_numpy(inputs["train_decoder_offsets"]).long(),
            )
            out.update(
                train_video_predicted=train.predicted_pixel_values.permute(0, 1, 3, 4, 2),
                train_subsampled_targets=train.target_pixel_values.permute(0, 1, 3, 4, 2),
                train_loss_l2=train.loss,
            )
        heads = _head_models(case, params, backbone_file)
        # The models return the shared task outputs (tracks in pixels, (B, Q, T) logits and occlusion, (B, O, T, 4)
        # boxes); the reference keys hold the heads' raw layout: positions in [0, 1] and (B, T, Q, ...) arrays.
        frame_scale = torch.tensor([float(width), float(height)])
        if "point_head" in case:
            r = heads["points"](pixel_values, torch.from_numpy(inputs["query_points"]), state=init_state)
            out.update(
                points_query_embedding=r.query_embedding,
                points_readout_raw=r.raw_output,
                points_values=(r.tracks / frame_scale).transpose(1, 2),
                points_logits_visible=r.visibility_logits.transpose(1, 2)[..., None],
                points_logits_certainty=r.certainty_logits.transpose(1, 2)[..., None],
                points_visible=(~r.occluded).transpose(1, 2)[..., None].float(),
            )
        if "box_head" in case:
            r = heads["boxes"](pixel_values, torch.from_numpy(inputs["query_boxes"]), state=init_state)
            out.update(
                boxes_query_embedding=r.query_embedding,
                boxes_readout_raw=r.raw_output,
                boxes_values=r.boxes.transpose(1, 2),
            )
        if "recurrent_point_head" in case:
            model = heads["recurrent_points"]
            r = model(
                pixel_values,
                torch.from_numpy(inputs["query_points"]),
                query_frame_mask=torch.from_numpy(inputs["query_frame_mask"]),
                state=init_state,
            )
            out.update(
                recurrent_query_embedding=r.query_embedding,
                recurrent_values=(r.tracks / frame_scale).transpose(1, 2),
                recurrent_logits=torch.stack([r.visibility_logits, r.certainty_logits], dim=-1).transpose(1, 2),
                recurrent_visible=(~r.occluded).transpose(1, 2)[..., None].float(),
                recurrent_states=r.readout_states,
                recurrent_states_corrected=r.readout_states_corrected,
            )
    arrays = {key: value.detach().cpu().numpy() for key, value in out.items() if key in reference_keys}
    exact = Tolerance(exact=True)
    per_key = {
        key: exact for key in ("points_visible", "recurrent_visible", "train_subsampled_targets") if key in arrays
    }
    per_key.update({key: Tolerance(atol=1e-6) for key in ("encoder_posenc", "decoder_query_posenc") if key in arrays})
    return ParityOutputs(arrays, default=Tolerance(atol=1e-4, rtol=1e-4), per_key=per_key)


register_parity_runner("moog", accepts_case, run_case)

__all__ = ["MooGConverter", "MOOG_CONVERTER", "config_from_case"]
