"""Golden-fixture parity for Omnivorous DINOv2 (``tests/fixtures/omnivorous``; spec omnivorous §7).

Three kinds of case, told apart by ``case.json["kind"]``:

* ``model``: a random-weight official ``ViTBackbone`` in the released file format. The runner builds transformers'
  ``Dinov2WithRegistersModel`` from ``case.json`` alone, converts the parameters through the same key map as
  ``rep4d convert`` (``rep4d.modeling.convert_omnivorous``) and returns every reference output: patch embeddings,
  the (resized) position embedding, block-0 intermediates (forward hooks on the transformers modules), every block
  output, final tokens, pooled output and the demo score.
* ``posemb``: the position-table resize alone, through transformers' own ``interpolate_pos_encoding``.
* ``demo``: the notebook's ``run_demo`` with a teacher and a student: the stored 224x224 uint8 images go through
  :func:`rep4d.omnivorous.normalize_image`; scores and PCA images through :mod:`rep4d.omnivorous`. PCA channels are
  compared up to the SVD sign (``p`` or ``1 - p``).

Tolerances are the fixture README's: 5e-5 on every float output, 1e-5 on scalar scores, 1e-4 on PCA images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rep4d.conversion import ConversionError, load_converted_model, plan_conversion
from rep4d.modeling.convert_omnivorous import OMNIVOROUS_CONVERTER, config_from_flax, dinov2_config, position_table
from rep4d.omnivorous import alignment_score, normalize_image, pca_image, to_pixel_values
from rep4d.parity import ParityOutputs, Tolerance, load_case_arrays

FLOAT_TOLERANCE = Tolerance(atol=5e-5)
SCORE_TOLERANCE = Tolerance(atol=1e-5)
PCA_TOLERANCE = Tolerance(atol=1e-4, flip_channels=True)


def accepts_case(case: dict, case_dir: Path) -> bool:
    kind = case.get("kind")
    if kind == "model":
        return "patches" in case.get("config", {}) and "posembs" in case.get("config", {})
    if kind == "posemb":
        return "posembed_input" in case.get("inputs", {}) and "grids" in case
    if kind == "demo":
        return all(role in case and "config" in case[role] for role in ("teacher", "student"))
    return False


def load_params(path: Path) -> dict[str, np.ndarray]:
    """A released-format safetensors file (never unpickled)."""
    from safetensors.numpy import load_file

    if not path.is_file():
        raise FileNotFoundError(f"parameter file not found: {path}")
    return load_file(str(path))


def build_model(params: dict[str, np.ndarray], config):
    """``Dinov2WithRegistersModel`` with the converted parameters (strict key/shape check first)."""
    shapes = {key: tuple(value.shape) for key, value in params.items()}
    if OMNIVOROUS_CONVERTER.identify(shapes) is None:
        raise ConversionError("the parameters are not an official Omnivorous DINOv2 ViTBackbone")
    plan = plan_conversion(shapes, OMNIVOROUS_CONVERTER, "encoder", config=config)
    model = load_converted_model(plan, params)
    model.set_attn_implementation("eager")  # the attention probabilities are a reference output
    return model


def _case_config(case: dict, flax_config: dict | None = None):
    gelu = case.get("gelu", "tanh_approximation")
    eps = case.get("layer_norm_epsilon", 1e-6)
    if flax_config is not None:
        return config_from_flax(flax_config, layer_norm_eps=eps, gelu=gelu, allow_fractional_mlp_ratio=True)
    return dinov2_config(
        width=case["width"], depth=case["depth"], heads=case["heads"], mlp=case["mlp"], patch_size=case["patch_size"],
        posemb_grid=case["posemb_grid"], layer_norm_eps=eps, gelu=gelu, allow_fractional_mlp_ratio=True,
    )


def position_embedding(model, height: int, width: int) -> torch.Tensor:
    """The position embedding transformers adds for an ``height x width`` pixel input, as (1, h, w, D)."""
    patch = model.embeddings.patch_embeddings.patch_size
    grid = (height // patch[0], width // patch[1])
    dummy = torch.zeros(1, 1 + grid[0] * grid[1], model.config.hidden_size)
    table = model.embeddings.interpolate_pos_encoding(dummy, height, width)
    return table[:, 1:].reshape(1, grid[0], grid[1], -1)


def model_outputs(model, pixel_values: torch.Tensor, intermediates: bool = True) -> dict[str, torch.Tensor]:
    """Every reference output of one forward pass (block-0 intermediates through forward hooks)."""
    batch, _, height, width = pixel_values.shape
    grid = (height // model.embeddings.patch_embeddings.patch_size[0],
            width // model.embeddings.patch_embeddings.patch_size[1])
    captured: dict[str, torch.Tensor] = {}
    handles = []
    if intermediates:
        layer = model.encoder.layer[0]
        heads = model.config.num_attention_heads

        def keep(name, reshape_heads=False, use_input=False):
            def hook(module, inputs, output):
                value = inputs[0] if use_input else output
                value = value[0] if isinstance(value, tuple) else value
                if reshape_heads:
                    value = value.reshape(*value.shape[:2], heads, -1)
                captured[name] = value

            return hook

        hooks = {
            "block0_ln1": (layer.norm1, keep("block0_ln1")),
            "block0_query": (layer.attention.q_proj, keep("block0_query", reshape_heads=True)),
            "block0_key": (layer.attention.k_proj, keep("block0_key", reshape_heads=True)),
            "block0_value": (layer.attention.v_proj, keep("block0_value", reshape_heads=True)),
            "block0_attn_out": (layer.attention.o_proj, keep("block0_attn_out")),
            "block0_ln2": (layer.norm2, keep("block0_ln2")),
            "block0_mlp_fc1": (layer.mlp.fc1, keep("block0_mlp_fc1")),
            "block0_mlp_gelu": (layer.mlp.fc2, keep("block0_mlp_gelu", use_input=True)),
            "block0_mlp_out": (layer.mlp, keep("block0_mlp_out")),
        }
        handles = [module.register_forward_hook(hook) for module, hook in hooks.values()]
    try:
        with torch.no_grad():
            result = model(pixel_values=pixel_values, output_hidden_states=True, output_attentions=intermediates)
            patches = model.embeddings.patch_embeddings(pixel_values)
    finally:
        for handle in handles:
            handle.remove()
    outputs = dict(captured)
    outputs.update(
        patch_embeddings=patches.reshape(batch, grid[0], grid[1], -1),
        pos_embedding=position_embedding(model, height, width),
        tokens=result.hidden_states[0],
        block_outputs=torch.stack(result.hidden_states[1:]),
        final_tokens=result.last_hidden_state,
        pooled_output=result.pooler_output,
    )
    if intermediates:
        outputs["block0_attn_weights"] = result.attentions[0]
    return outputs


def _numpy(outputs: dict) -> dict[str, np.ndarray]:
    return {key: value.detach().float().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
            for key, value in outputs.items()}


def run_model_case(case_dir: Path, case: dict) -> ParityOutputs:
    model = build_model(load_params(case_dir / case.get("params_file", "params.safetensors")), _case_config(case))
    image = load_case_arrays(case_dir / "inputs.npz")["image"]
    pixel_values = to_pixel_values(image)
    outputs = _numpy(model_outputs(model, pixel_values))
    if image.shape[0] >= 2:  # the notebook's score between image[0] and image[1], each run in a batch of 1
        first = model(pixel_values=pixel_values[0:1]).last_hidden_state[:, 1:].detach().numpy()
        second = model(pixel_values=pixel_values[1:2]).last_hidden_state[:, 1:].detach().numpy()
        outputs["demo_score"] = np.asarray(alignment_score(first, second), np.float32)
    return ParityOutputs(outputs, default=FLOAT_TOLERANCE, per_key={"demo_score": SCORE_TOLERANCE})


def run_posemb_case(case_dir: Path, case: dict) -> ParityOutputs:
    table = load_case_arrays(case_dir / "inputs.npz")["posembed_input"]
    _, rows, cols, channels = table.shape
    config = dinov2_config(width=channels, depth=1, heads=1, mlp=channels, patch_size=1, posemb_grid=[rows, cols])
    from transformers import Dinov2WithRegistersModel

    model = Dinov2WithRegistersModel(config).eval()
    with torch.no_grad():
        model.embeddings.position_embeddings.copy_(position_table(torch.from_numpy(table)))
    outputs = {}
    with torch.no_grad():
        for height, width in case["grids"]:
            outputs[f"pos_embedding_{height}x{width}"] = position_embedding(model, height, width).numpy()
    return ParityOutputs(outputs, default=FLOAT_TOLERANCE)


def run_demo_case(case_dir: Path, case: dict) -> ParityOutputs:
    inputs = load_case_arrays(case_dir / "inputs.npz")
    images = {"rgb": normalize_image(inputs["rgb_resized_u8"]), "aux": normalize_image(inputs["aux_resized_u8"])}
    outputs, per_key = {}, {}
    for role in ("teacher", "student"):
        spec = case[role]
        model = build_model(load_params(case_dir / spec["params_file"]), _case_config(case, spec["config"]))
        dense = {}
        for name, image in images.items():
            pixel_values = to_pixel_values(image)
            result = _numpy(model_outputs(model, pixel_values, intermediates=False))
            outputs[f"{role}_pos_embedding"] = result["pos_embedding"]
            for key in ("tokens", "block_outputs", "final_tokens", "pooled_output"):
                outputs[f"{role}_{name}_{key}"] = result[key]
            dense[name] = result["final_tokens"][:, 1:]
            grid = result["pos_embedding"].shape[1:3]
            outputs[f"{role}_{name}_pca"] = pca_image(dense[name], grid)
            per_key[f"{role}_{name}_pca"] = PCA_TOLERANCE
        outputs[f"{role}_score"] = np.asarray(alignment_score(dense["rgb"], dense["aux"]), np.float32)
        per_key[f"{role}_score"] = SCORE_TOLERANCE
    return ParityOutputs(outputs, default=FLOAT_TOLERANCE, per_key=per_key)


def run_case(case_dir: Path, case: dict) -> ParityOutputs:
    runners = {"model": run_model_case, "posemb": run_posemb_case, "demo": run_demo_case}
    return runners[case["kind"]](Path(case_dir), case)


__all__ = ["accepts_case", "build_model", "model_outputs", "position_embedding", "run_case"]
