"""Golden-fixture parity of 4DS (``tests/fixtures/4ds``): the model built from ``case.json`` alone, its parameters
converted by :data:`rep4d.modeling.convert_fourds.FOURDS_CONVERTER` (the ``rep4d convert`` key map), every block's
output, block 0's intermediates and the depth readout's intermediates compared with the reference (atol 5e-5).
"""

from __future__ import annotations

from pathlib import Path

import torch

from rep4d.configuration.configuration_fourds import FourDSConfig
from rep4d.conversion import ConversionError, flax_hidden_act, load_converted_model, plan_conversion
from rep4d.modeling.convert_fourds import FOURDS_CONVERTER
from rep4d.modeling.modeling_fourds import FourDSModel
from rep4d.modeling.patches import patches_to_video
from rep4d.parity import ParityOutputs, Tolerance, case_fields, load_case_arrays

#: FourDSConfig field -> case.json key
CASE_FIELDS = {
    "hidden_size": "width", "num_hidden_layers": "depth", "num_attention_heads": "heads", "intermediate_size": "mlp",
    "tubelet_size": "patch_size", "image_size": "image_size", "num_frames": "num_frames", "num_channels": "in_channels",
    "layer_norm_eps": "layer_norm_epsilon", "readout_depth": "readout_depth",
}
#: FourDSConfig field -> case.json["readout_head"] key
HEAD_FIELDS = {
    "readout_num_params": "num_params", "readout_num_heads": "num_heads",
    "readout_decoding_patch_size": "decoding_patch_size",
}


def config_from_case(case: dict) -> FourDSConfig:
    """A FourDSConfig built from a fixture's ``case.json`` alone."""
    values = case_fields(case, CASE_FIELDS, {"layer_norm_epsilon": 1e-6})
    values["hidden_act"] = flax_hidden_act(case.get("gelu", "tanh_approximation"))
    if case.get("qk_norm"):
        raise ConversionError("4DS cases with q/k normalisation are not supported (no released model uses it)")
    head = case.get("readout_head")
    if head:
        output_shape = head["output_shape"]
        values.update(case_fields(head, HEAD_FIELDS))
        values.update(readout_output_channels=output_shape[3] if len(output_shape) > 3 else 1,
                      readout_num_frames=output_shape[0])
        if list(output_shape[1:3]) != list(case["image_size"]):
            raise ConversionError(f"readout output {output_shape} does not match the image size {case['image_size']}")
    return FourDSConfig(**values)


def accepts_case(case: dict, case_dir: Path) -> bool:
    return case.get("layout") in ("bare", "sequential_depth") and "width" in case and "patch_size" in case


def run_case(case_dir: Path, case: dict) -> ParityOutputs:
    params = load_case_arrays(case_dir / "params.npz")
    video = load_case_arrays(case_dir / "inputs.npz")["video"]
    shapes = {key: tuple(value.shape) for key, value in params.items()}
    variant = "depth" if case["layout"] == "sequential_depth" else "backbone"
    found = FOURDS_CONVERTER.identify(shapes)
    if found != variant:
        raise ConversionError(f"case layout {case['layout']!r} but the params look like a 4DS {found or 'unknown'} file")
    config = config_from_case(case)
    plan = plan_conversion(shapes, FOURDS_CONVERTER, variant, config=config)
    model = load_converted_model(plan, params)
    backbone = model
    if variant == "depth":
        # The depth model leaves out the blocks above its readout layer; the cases also compare every block's
        # output, so the backbone comparisons run on a full backbone built from the same arrays.
        sources = FOURDS_CONVERTER.parameter_sources(shapes, config, variant, num_layers=config.num_hidden_layers)
        prefix = "fourds."
        state = {
            name[len(prefix):]: src.build(*(torch.from_numpy(params[key]) for key in src.keys)).float()
            for name, src in sources.items()
            if name.startswith(prefix)
        }
        backbone = FourDSModel(config)
        backbone.load_state_dict(state, strict=True)
        backbone.eval()
    pixel_values = torch.from_numpy(video).permute(0, 1, 4, 2, 3).contiguous()

    outputs = {}
    with torch.no_grad():
        result = backbone(pixel_values, output_hidden_states=True)
        hidden = result.hidden_states
        layers = config.num_hidden_layers
        outputs["patch_embedding"] = backbone.embeddings.patch_embed(pixel_values)
        outputs["tokens"] = hidden[0]
        outputs["features"] = torch.stack([hidden[max(i - 1, 0)] for i in range(layers + 1)])
        outputs["last_block_output"] = hidden[layers]
        outputs["readout_features"] = result.readout_features
        block = backbone.encoder.layers[0]
        backbone.set_attn_implementation("eager")
        normed = block.attention_norm(hidden[0])
        attended, weights = block.attention(normed)
        after_attention = hidden[0] + attended
        mlp_norm = block.mlp_norm(after_attention)
        mlp = block.mlp(mlp_norm)
        outputs.update(
            block0_attention_norm=normed,
            block0_attn_weights=weights,
            block0_attention=attended,
            block0_mlp_norm=mlp_norm,
            block0_mlp=mlp,
            block0_output=after_attention + mlp,
        )
        if variant == "depth":
            readout = model.readout
            logits, inter = readout(result.readout_features, return_intermediates=True)
            batch, queries = inter["logits"].shape[:2]
            heads, head_dim = readout.num_heads, readout.head_dim
            outputs.update(
                readout_input_norm=inter["input_norm"],
                readout_key=inter["key"].reshape(batch, -1, heads, head_dim),
                readout_value=inter["value"].reshape(batch, -1, heads, head_dim),
                readout_attention=inter["attention"],
                readout_attn_proj=inter["attn_proj"],
                readout_mlp_norm=inter["mlp_norm"],
                readout_mlp=inter["mlp"],
                readout_logits=inter["logits"],
                output=patches_to_video(inter["logits"], model.output_shape, config.readout_decoding_patch_size),
            )
    arrays = {key: value.detach().cpu().numpy() for key, value in outputs.items()}
    return ParityOutputs(arrays, default=Tolerance(atol=5e-5))
