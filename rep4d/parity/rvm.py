"""Golden-fixture parity of RVM (``tests/fixtures/rvm``): position tables (``posenc``), frame-by-frame streaming
(``stream``) and masked reconstruction (``reconstruct``), the model built from ``case.json`` alone and converted by
:data:`rep4d.modeling.convert_rvm.RVM_CONVERTER` (the ``rep4d convert`` key map); atol 1e-5 + rtol 1e-5, masks exact.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from rep4d.configuration.configuration_rvm import RVMConfig
from rep4d.conversion import ConversionError, flax_hidden_act, load_converted_model, plan_conversion
from rep4d.modeling.convert_rvm import RVM_CONVERTER
from rep4d.modeling.modeling_rvm import (
    RVMForMaskedReconstruction,
    decoder_position_table,
    encoder_position_table,
    mae_sinusoid_table,
)
from rep4d.parity import ParityOutputs, Tolerance, case_fields, load_case_arrays

PARITY_TOLERANCE = Tolerance(atol=1e-5, rtol=1e-5)


#: RVMConfig field -> case.json["model"] key, and the defaults of the optional keys
MODEL_FIELDS = {
    "hidden_size": "width", "num_hidden_layers": "enc_layers", "num_attention_heads": "enc_heads",
    "intermediate_size": "enc_mlp", "patch_size": "patch", "base_token_shape": "base_token_shape",
    "rnn_num_layers": "rnn_layers", "rnn_num_attention_heads": "rnn_heads", "rnn_attention_size": "rnn_feats",
    "rnn_intermediate_size": "rnn_mlp", "decoder_hidden_size": "dec_feats", "decoder_num_layers": "dec_layers",
    "decoder_num_attention_heads": "dec_heads", "decoder_intermediate_size": "dec_mlp",
    "num_delta_classes": "delta_one_hot_classes", "layer_norm_eps": "layernorm_eps",
    "state_layer_norm_eps": "state_layernorm_eps",
}
MODEL_DEFAULTS = {"delta_one_hot_classes": 64, "layernorm_eps": 1e-6, "state_layernorm_eps": 1e-4}
#: RVMConfig field (or image side) -> case.json key, all optional
CASE_FIELDS = {"frame_height": "frame_height", "frame_width": "frame_width", "mask_ratio": "masking_ratio"}
CASE_DEFAULTS = {"frame_height": 256, "frame_width": 256, "masking_ratio": 0.95}


def config_from_case(case: dict) -> RVMConfig:
    """An RVMConfig built from a fixture's ``case.json`` alone."""
    model = case["model"]
    if model.get("state_layernorm_has_bias", False):
        raise ConversionError("RVM cases with a biased state LayerNorm are not supported (the reference has none)")
    if model.get("initial_state", "zeros") != "zeros":
        raise ConversionError(f"unsupported initial state {model['initial_state']!r} (the reference uses zeros)")
    values = case_fields(model, MODEL_FIELDS, {"rnn_feats": model["width"], **MODEL_DEFAULTS})
    values.update(case_fields(case, CASE_FIELDS, CASE_DEFAULTS))
    values["image_size"] = [values.pop("frame_height"), values.pop("frame_width")]
    values["hidden_act"] = flax_hidden_act(model.get("gelu", "tanh_approximation"))
    return RVMConfig(**values)


def accepts_case(case: dict, case_dir: Path) -> bool:
    kind = case.get("kind")
    if kind in ("stream", "reconstruct"):
        return "rnn_layers" in case.get("model", {})
    return kind == "posenc" and "entries" in case and "raw_tables" in case


def load_case_model(case_dir: Path, case: dict) -> tuple[RVMForMaskedReconstruction, RVMConfig]:
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
