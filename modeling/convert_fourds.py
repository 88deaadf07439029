"""Conversion of the released 4DS checkpoints: the key map from the JAX/Flax arrays onto :class:`FourDSModel`.

Recognised files (spec §4): ``scaling4d_dist_b.npz`` and ``scaling4d_e.npz`` (bare backbone, keys
``params/encoder/...`` and ``params/processor/layers_{i}/...``) and ``scaling4d_dist_b_depth.npz`` (backbone under
``params/layers_0/``, depth readout under ``params/layers_2/``). Every size is inferred from the array shapes; the
readout depth and the decoding patch size come from a preset or overrides.
"""

from __future__ import annotations

import itertools

from ..configuration.configuration_fourds import FOURDS_PRESETS, FourDSConfig
from ..conversion import (
    CheckpointConverter,
    ConversionError,
    ParamSource,
    Shapes,
    attention_readout_sources,
    layer_indices,
    layer_norm_sources,
    mlp_sources,
    self_attention_sources,
    source,
)
from ..processing.video_processing_fourds import FourDSVideoProcessor
from .modeling_fourds import FourDSForDepthEstimation, FourDSModel, readout_hidden_state_index

BACKBONE_PREFIXES = {"backbone": "params/", "depth": "params/layers_0/"}
READOUT_PREFIX = "params/layers_2/"

RELEASED_FILES = {
    ("backbone", 768, 12): ("scaling4d_dist_b.npz", "4DS-B-dist-e", "b-dist-e"),
    ("backbone", 1792, 56): ("scaling4d_e.npz", "4DS-e", "e"),
    ("depth", 768, 12): ("scaling4d_dist_b_depth.npz", "4DS-B-dist-e ScanNet depth", "b-dist-e-depth"),
}


def backbone_sizes(shapes: Shapes, prefix: str) -> dict:
    """Backbone hyper-parameters read off the array shapes."""
    kernel = shapes[f"{prefix}encoder/patch_embedding/Conv_0/kernel"]
    posenc = shapes[f"{prefix}encoder/posenc/embeddings"]
    layers = layer_indices(shapes, f"{prefix}processor/layers_")
    if not layers:
        raise ConversionError(f"no transformer blocks under {prefix}processor/")
    if layers != list(range(len(layers))):
        raise ConversionError(f"transformer blocks are not numbered 0..{len(layers) - 1}: {layers}")
    block = f"{prefix}processor/layers_0/"
    width, heads, _ = shapes[f"{block}attention/query/kernel"]
    pt, ph, pw, channels, _ = kernel
    t, h, w, _ = posenc
    return dict(
        hidden_size=int(width),
        num_hidden_layers=len(layers),
        num_attention_heads=int(heads),
        intermediate_size=int(shapes[f"{block}mlp/dense_in/kernel"][1]),
        tubelet_size=[int(pt), int(ph), int(pw)],
        num_frames=int(t * pt),
        image_size=[int(h * ph), int(w * pw)],
        num_channels=int(channels),
    )


def infer_decoding_patch(frames, height, width, num_queries, num_classes, channels, preferred) -> list[int]:
    """The decoding patch (p0, p1, p2) consistent with the readout's query and class counts."""
    per_patch = num_classes // channels
    candidates = []
    for p0, p1, p2 in itertools.product(range(1, frames + 1), range(1, height + 1), range(1, width + 1)):
        if p0 * p1 * p2 != per_patch or frames % p0 or height % p1 or width % p2:
            continue
        if (frames // p0) * (height // p1) * (width // p2) == num_queries:
            candidates.append([p0, p1, p2])
    if preferred in candidates:
        return list(preferred)
    square = [c for c in candidates if c[1] == c[2]]
    if len(square) == 1:
        return square[0]
    if len(candidates) == 1:
        return candidates[0]
    raise ConversionError(
        f"cannot infer the readout decoding patch from {num_queries} queries x {num_classes} outputs "
        f"(candidates {candidates or 'none'}); pass readout_decoding_patch_size (--decoding-patch-size)"
    )


def depth_backbone_layers(config: FourDSConfig) -> int:
    """Blocks of the backbone of :class:`FourDSForDepthEstimation`: those up to the readout layer."""
    return readout_hidden_state_index(config.num_hidden_layers, config.readout_depth)


class FourDSConverter(CheckpointConverter):
    method = "fourds"

    def identify(self, shapes: Shapes) -> str | None:
        if "params/layers_0/encoder/patch_embedding/Conv_0/kernel" in shapes and f"{READOUT_PREFIX}query" in shapes:
            return "depth"
        if "params/encoder/patch_embedding/Conv_0/kernel" in shapes and "params/encoder/posenc/embeddings" in shapes:
            return "backbone"
        return None

    def released_file(self, variant: str, shapes: Shapes):
        sizes = backbone_sizes(shapes, BACKBONE_PREFIXES[variant])
        return RELEASED_FILES.get((variant, sizes["hidden_size"], sizes["num_hidden_layers"]))

    def variant_description(self, variant: str, shapes: Shapes) -> str:
        released = self.released_file(variant, shapes)
        if released:
            return f"{released[1]} ({released[0]})"
        sizes = backbone_sizes(shapes, BACKBONE_PREFIXES[variant])
        kind = "backbone + depth readout" if variant == "depth" else "backbone"
        return f"4DS {kind}, width {sizes['hidden_size']}, {sizes['num_hidden_layers']} blocks"

    def build_config(self, shapes: Shapes, variant: str, preset: str | None = None, **overrides) -> FourDSConfig:
        inferred = backbone_sizes(shapes, BACKBONE_PREFIXES[variant])
        if preset is None:
            released = self.released_file(variant, shapes)
            preset = released[2] if released else None
        values = dict(FourDSConfig.from_preset(preset).to_diff_dict()) if preset else {}
        values.pop("model_type", None)
        values.pop("transformers_version", None)
        if preset:
            conflicts = {
                key: (values[key], value)
                for key, value in inferred.items()
                if key in FOURDS_PRESETS[preset.lower().removeprefix("4ds-")] and values.get(key) != value
            }
            if conflicts:
                described = ", ".join(f"{k}: preset {a} vs checkpoint {b}" for k, (a, b) in conflicts.items())
                raise ConversionError(f"preset {preset!r} does not match the checkpoint ({described})")
        values.update(inferred)
        if variant == "depth":
            query = shapes[f"{READOUT_PREFIX}query"]
            num_queries, heads, head_dim = query
            values["readout_num_params"] = int(heads * head_dim)
            values["readout_num_heads"] = int(heads)
            values["readout_num_frames"] = int(shapes[f"{READOUT_PREFIX}temporal_posenc/embeddings"][0])
            channels = int(overrides.get("readout_output_channels", values.get("readout_output_channels", 1)))
            if "readout_decoding_patch_size" not in overrides:
                values["readout_decoding_patch_size"] = infer_decoding_patch(
                    values["readout_num_frames"],
                    *inferred["image_size"],
                    int(num_queries),
                    int(shapes[f"{READOUT_PREFIX}Dense_1/kernel"][1]),
                    channels,
                    values.get("readout_decoding_patch_size", [2, 8, 8]),
                )
        values.update({key: value for key, value in overrides.items() if value is not None})
        return FourDSConfig(**values)

    def model_class(self, config, variant: str) -> type:
        return FourDSForDepthEstimation if variant == "depth" else FourDSModel

    def ignored_keys(self, shapes: Shapes, config, variant: str) -> set[str]:
        # The depth model holds the blocks up to its readout layer only (FourDSModel(config, readout_only=True)): the
        # released depth head never reads the blocks above it, whose arrays are therefore not converted.
        if variant != "depth":
            return set()
        unused = [f"{BACKBONE_PREFIXES[variant]}processor/layers_{layer}/"
                  for layer in range(depth_backbone_layers(config), config.num_hidden_layers)]
        return {key for key in shapes if key.startswith(tuple(unused))} if unused else set()

    def parameter_sources(
        self, shapes: Shapes, config, variant: str, num_layers: int | None = None
    ) -> dict[str, ParamSource]:
        """Model parameter name -> checkpoint source; ``num_layers`` overrides the number of blocks mapped (default:
        those the variant's model holds)."""
        ckpt = BACKBONE_PREFIXES[variant]
        model = "fourds." if variant == "depth" else ""
        if num_layers is None:
            num_layers = depth_backbone_layers(config) if variant == "depth" else config.num_hidden_layers
        sources = {
            f"{model}embeddings.patch_embeddings.weight": source(
                f"{ckpt}encoder/patch_embedding/Conv_0/kernel", transform=lambda k: k.permute(4, 3, 0, 1, 2)
            ),
            f"{model}embeddings.patch_embeddings.bias": source(f"{ckpt}encoder/patch_embedding/Conv_0/bias"),
            f"{model}embeddings.position_embeddings": source(
                f"{ckpt}encoder/posenc/embeddings", transform=lambda e: e.reshape(1, -1, e.shape[-1])
            ),
        }
        for layer in range(num_layers):
            src = f"{ckpt}processor/layers_{layer}/"
            dst = f"{model}encoder.layers.{layer}."
            sources.update(layer_norm_sources(f"{src}attention_norm", f"{dst}attention_norm"))
            sources.update(self_attention_sources(f"{src}attention", f"{dst}attention"))
            sources.update(layer_norm_sources(f"{src}mlp_norm", f"{dst}mlp_norm"))
            sources.update(mlp_sources(f"{src}mlp", f"{dst}mlp"))
        if variant == "depth":
            sources.update(attention_readout_sources(READOUT_PREFIX, "readout."))
        return sources

    def video_processor(self, config, variant: str) -> FourDSVideoProcessor:
        return FourDSVideoProcessor.for_config(config)


FOURDS_CONVERTER = FourDSConverter()

__all__ = ["FourDSConverter", "FOURDS_CONVERTER", "infer_decoding_patch"]
