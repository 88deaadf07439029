"""Golden-fixture parity of MooG (``tests/fixtures/moog``): the backbone with its pixel decoder and every tracking
head of a case, built from ``case.json`` alone and converted by :data:`rep4d.modeling.convert_moog.MOOG_CONVERTER`
(the ``rep4d convert`` key map); encoder, predictor/corrector states, decoded frames and head outputs compared with
the reference (atol 1e-4 + rtol 1e-4; Fourier tables 1e-6; masks and visibility exact).
"""

from __future__ import annotations

from pathlib import Path

import torch

from rep4d.configuration.configuration_moog import MooGConfig
from rep4d.conversion import ConversionError, load_converted_model, plan_conversion
from rep4d.modeling.convert_moog import MOOG_CONVERTER
from rep4d.modeling.modeling_moog import coordinate_grid, fourier_features
from rep4d.parity import ParityOutputs, Tolerance, case_fields, load_case_arrays

#: MooGConfig fields named as in case.json["backbone"] / case.json
BACKBONE_FIELDS = (
    "conv_features", "enc_fourier_bases", "num_tokens", "token_size", "dec_fourier_bases", "state_init_scale",
    "state_ln_eps",
)
CASE_FIELDS = ("num_frames", "encoder_hidden_size", "encoder_output_size")
#: MooGConfig field (after the ``point_`` / ``box_`` prefix) -> case.json["point_head"] / ["box_head"] key
HEAD_FIELDS = {
    "readout_num_params": "num_params", "readout_num_heads": "num_heads", "readout_query_mlp_size": "query_mlp_size",
    "readout_temporal_tile_size": "temporal_tile_size", "readout_frames_per_query": "num_frames_per_query",
}
#: MooGConfig field -> case.json["recurrent_point_head"] key
RECURRENT_FIELDS = {
    "recurrent_latent_size": "latent_size", "recurrent_qkv_size": "qkv_size", "recurrent_num_heads": "num_heads",
    "recurrent_mlp_size": "mlp_size", "recurrent_num_layers": "num_layers", "recurrent_state_ln_eps": "state_ln_eps",
    "readout_fourier_bases": "fourier_bases",
}


def config_from_case(case: dict) -> MooGConfig:
    """A MooGConfig built from a fixture's ``case.json`` alone."""
    backbone = case["backbone"]
    values = {name: backbone[name] for name in BACKBONE_FIELDS}
    values.update({name: case[name] for name in CASE_FIELDS})
    values.update(
        image_size=[case["height"], case["width"]],
        conv_strides=[s[0] if isinstance(s, list) else s for s in backbone["conv_strides"]],
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
        values.update({f"{kind}_{field}": value for field, value in case_fields(head, HEAD_FIELDS).items()})
        values[f"{kind}_readout_mlp_size"] = 4 * head["num_params"]
        values.update(readout_fourier_bases=head["fourier_bases"], tracking_head=kind)
        if kind == "point":
            values["visibility_threshold"] = head.get("certainty_threshold", 0.5)
    recurrent = case.get("recurrent_point_head")
    if recurrent:
        values.update(case_fields(recurrent, RECURRENT_FIELDS))
        values.update(point_readout_type="recurrent", visibility_threshold=recurrent.get("certainty_threshold", 0.5))
    return MooGConfig(**values)


def accepts_case(case: dict, case_dir: Path) -> bool:
    backbone = case.get("backbone")
    return isinstance(backbone, dict) and "num_tokens" in backbone and "conv_features" in backbone


def _converted(arrays: dict, config: MooGConfig, expected_variant: str):
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


#: reference key -> field of the backbone's output
BACKBONE_OUTPUTS = {
    "encoder_features": "encoder_features", "states_normed_input": "normed_states",
    "states_predicted": "predicted_states", "states_corrected": "corrected_states", "features": "features",
    "final_state": "final_state", "states_concat": "states_concat",
}


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
            decoder_query_posenc=fourier_features(coordinate_grid(height, width), config.dec_fourier_bases),
        )
        out.update({key: getattr(result, field) for key, field in BACKBONE_OUTPUTS.items()})
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
