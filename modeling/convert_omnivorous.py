"""Conversion of the released Omnivorous DINOv2 checkpoints onto transformers' own ``Dinov2WithRegistersModel``.

Recognised files (spec omnivorous §3): ``frozen_dinov2-vit_b.safetensors`` (the frozen DINOv2 teacher) and
``omnivorous_dinov2-vit_b.safetensors`` (the omnivorous student). Both hold the same 198 arrays of the official flax
``ViTBackbone`` (keys: flax parameter paths joined with ``.``, no ``params.`` prefix) and are told apart only by
their file names. No model code of ours is involved: spec §4 shows that ``Dinov2WithRegistersModel`` with
``num_register_tokens=0``, ``hidden_act="gelu_pytorch_tanh"``, ``layerscale_value=1.0`` and ``layer_norm_eps=1e-6``
reproduces the official encoder, its antialiased bicubic position-table resize included (``Dinov2Model`` does not:
its resize has no antialiasing). This module holds only the key map (spec §3.2) and the config builder; the parity
runner is ``rep4d.parity.omnivorous`` and the demo (pre-processing, score, PCA) ``rep4d.omnivorous``.
"""

from __future__ import annotations

import logging

import torch

from ..conversion import (
    CheckpointConverter,
    ConversionError,
    ParamSource,
    Shapes,
    dense_general_in_sources,
    dense_general_out_sources,
    dense_sources,
    flax_hidden_act,
    layer_norm_sources,
    source,
)

logger = logging.getLogger(__name__)

TOKENIZER = "ToTokenSequence_0."
BLOCK = "encoderblock_"
ATTENTION = "MultiHeadDotProductAttention_0."
KEY_PREFIXES = (TOKENIZER, BLOCK, "encoder_norm.")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEMO_IMAGE_SIZE = 224  # the notebook squashes every image to 224x224 (token grid 16x16 with 14x14 patches)

#: release name -> (file name, one-line description); both files share one key set (spec §3.1)
RELEASED_FILES = {
    "frozen-dinov2-b": ("frozen_dinov2-vit_b.safetensors", "Frozen DINOv2 teacher, ViT-B/14"),
    "omnivorous-dinov2-b": ("omnivorous_dinov2-vit_b.safetensors", "Omnivorous DINOv2 student, ViT-B/14"),
}


def vit_sizes(shapes: Shapes) -> dict:
    """Hyper-parameters of an official ``ViTBackbone`` read off its array shapes."""
    try:
        ph, pw, channels, width = shapes[f"{TOKENIZER}embedding.kernel"]
        _, table_h, table_w, _ = shapes[f"{TOKENIZER}posembed_input"]
        layers = sorted(
            {int(key[len(BLOCK):].split(".", 1)[0]) for key in shapes if key.startswith(BLOCK)
             and key[len(BLOCK):].split(".", 1)[0].isdigit()}
        )
        if not layers or layers != list(range(len(layers))):
            raise ConversionError(f"encoder blocks are not numbered 0..N-1: {layers}")
        _, heads, head_dim = shapes[f"{BLOCK}0.{ATTENTION}query.kernel"]
        mlp = shapes[f"{BLOCK}0.MlpBlock_0.Dense_0.kernel"][1]
    except KeyError as error:
        raise ConversionError(f"not an Omnivorous DINOv2 ViTBackbone checkpoint: missing {error}") from None
    return dict(
        width=int(width), depth=len(layers), heads=int(heads), head_dim=int(head_dim), mlp=int(mlp),
        patch_size=[int(ph), int(pw)], posemb_grid=[int(table_h), int(table_w)], num_channels=int(channels),
    )


def dinov2_config(
    width: int,
    depth: int,
    heads: int,
    mlp: int,
    patch_size,
    posemb_grid,
    num_channels: int = 3,
    layer_norm_eps: float = 1e-6,
    gelu: str = "tanh_approximation",
    allow_fractional_mlp_ratio: bool = False,
    **_ignored,
):
    """The ``Dinov2WithRegistersConfig`` equivalent to an official ``ViTBackbone`` (spec §4.2).

    ``image_size`` = table x patch only fixes the position-table size; any input size works through transformers'
    antialiased bicubic resize. transformers requires a square table and an integer ``mlp_ratio``; with
    ``allow_fractional_mlp_ratio`` (in-memory models only: such a config does not survive ``from_pretrained``) a
    fractional ratio is set past the config's type check.
    """
    from transformers import Dinov2WithRegistersConfig

    patch = [int(p) for p in (patch_size if isinstance(patch_size, (list, tuple)) else (patch_size, patch_size))]
    table = [int(p) for p in posemb_grid]
    if table[0] != table[1]:
        raise ConversionError(
            f"position table {table[0]}x{table[1]} is not square: transformers' Dinov2WithRegistersModel stores a "
            "square table only"
        )
    if width % heads:
        raise ConversionError(f"width {width} is not a multiple of the {heads} heads")
    ratio, fractional = divmod(int(mlp), int(width))
    if fractional and not allow_fractional_mlp_ratio:
        raise ConversionError(
            f"MLP size {mlp} is not a multiple of the width {width}: Dinov2WithRegistersConfig needs an integer mlp_ratio"
        )
    config = Dinov2WithRegistersConfig(
        hidden_size=int(width), num_hidden_layers=int(depth), num_attention_heads=int(heads),
        mlp_ratio=max(ratio, 1), hidden_act=flax_hidden_act(gelu), layer_norm_eps=float(layer_norm_eps),
        layerscale_value=1.0,
        num_register_tokens=0, image_size=table[0] * patch[0] if patch[0] == patch[1] else [t * p for t, p in
                                                                                                zip(table, patch)],
        patch_size=patch[0] if patch[0] == patch[1] else patch, num_channels=int(num_channels), qkv_bias=True,
        use_swiglu_ffn=False, drop_path_rate=0.0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    if fractional:
        config.__dict__["mlp_ratio"] = int(mlp) / int(width)  # bypasses the strict int check (in memory only)
        if int(width * config.mlp_ratio) != int(mlp):
            raise ConversionError(f"MLP size {mlp} cannot be expressed as width {width} x a ratio in transformers")
    return config


def config_from_flax(vit_config: dict, num_channels: int = 3, **kwargs):
    """The config from the official flax ``vit_config`` dict (``num_layers``, ``hidden_size``, ``mlp_dim``, ...)."""
    patches = vit_config["patches"]["size"]
    return dinov2_config(
        width=vit_config["hidden_size"], depth=vit_config["num_layers"], heads=vit_config["num_heads"],
        mlp=vit_config["mlp_dim"], patch_size=patches, posemb_grid=vit_config["posembs"], num_channels=num_channels,
        **kwargs,
    )


def position_table(posemb: torch.Tensor) -> torch.Tensor:
    """Flax ``posembed_input`` (1, P0, P1, D) -> transformers ``position_embeddings`` (1, 1 + P0*P1, D), with a zero
    class-token row (the official class token gets no position embedding)."""
    zero = torch.zeros(1, 1, posemb.shape[-1], dtype=posemb.dtype, device=posemb.device)
    return torch.cat([zero, posemb.reshape(1, -1, posemb.shape[-1])], dim=1)


def constant(shape: tuple[int, ...], value: float) -> ParamSource:
    """A parameter the official model does not have, filled with ``value`` (unit LayerScale, zero mask token)."""
    return ParamSource((), lambda: torch.full(shape, float(value)))


def parameter_sources(config) -> dict[str, ParamSource]:
    """transformers ``Dinov2WithRegistersModel`` state-dict name -> official flax key(s) and transform (spec §3.2)."""
    width = config.hidden_size
    sources = {
        "embeddings.cls_token": source(f"{TOKENIZER}cls"),
        "embeddings.mask_token": constant((1, width), 0.0),
        "embeddings.register_tokens": constant((1, 0, width), 0.0),
        "embeddings.position_embeddings": source(f"{TOKENIZER}posembed_input", transform=position_table),
        "embeddings.patch_embeddings.projection.weight": source(
            f"{TOKENIZER}embedding.kernel", transform=lambda k: k.permute(3, 2, 0, 1)
        ),
        "embeddings.patch_embeddings.projection.bias": source(f"{TOKENIZER}embedding.bias"),
        **layer_norm_sources("encoder_norm", "layernorm", sep="."),
    }
    for layer in range(config.num_hidden_layers):
        src, dst = f"{BLOCK}{layer}.", f"encoder.layer.{layer}."
        attention = f"{src}{ATTENTION}"
        sources.update(layer_norm_sources(f"{src}LayerNorm_0", f"{dst}norm1", sep="."))
        sources.update(dense_general_out_sources(f"{attention}out", f"{dst}attention.o_proj", sep="."))
        sources[f"{dst}layer_scale1.lambda1"] = constant((width,), 1.0)
        sources.update(layer_norm_sources(f"{src}LayerNorm_1", f"{dst}norm2", sep="."))
        sources.update(dense_sources(f"{src}MlpBlock_0.Dense_0", f"{dst}mlp.fc1", sep="."))
        sources.update(dense_sources(f"{src}MlpBlock_0.Dense_1", f"{dst}mlp.fc2", sep="."))
        sources[f"{dst}layer_scale2.lambda1"] = constant((width,), 1.0)
        for flax_name, torch_name in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
            sources.update(dense_general_in_sources(f"{attention}{flax_name}", f"{dst}attention.{torch_name}", sep="."))
    return sources


def image_processor(image_size: int = DEMO_IMAGE_SIZE):
    """The notebook's pre-processing as a transformers image processor: PIL bicubic resize to ``image_size`` squared
    (aspect ratio not kept, no crop), rescale 1/255, ImageNet mean/std (spec §2.2).

    Load it with ``AutoImageProcessor.from_pretrained(folder, backend="pil")`` to resize with PIL like the notebook
    (the default torchvision backend differs by one grey level on a few pixels); it then matches the notebook to
    float32 rounding (<= 2.4e-7). ``rep4d.omnivorous.preprocess_image`` reproduces the notebook bit for bit.
    """
    from transformers import BitImageProcessorPil
    from transformers.image_utils import PILImageResampling

    return BitImageProcessorPil(
        do_resize=True, size={"height": image_size, "width": image_size}, resample=PILImageResampling.BICUBIC,
        do_center_crop=False, crop_size=None, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD), do_convert_rgb=True,
    )


class OmnivorousConverter(CheckpointConverter):
    """Official flax ``ViTBackbone`` (Omnivorous DINOv2 teacher or student) -> ``Dinov2WithRegistersModel``."""

    method = "omnivorous"

    def identify(self, shapes: Shapes) -> str | None:
        needed = (f"{TOKENIZER}embedding.kernel", f"{TOKENIZER}posembed_input", f"{TOKENIZER}cls", "encoder_norm.scale")
        return "encoder" if all(key in shapes for key in needed) else None

    def variant_description(self, variant: str, shapes: Shapes) -> str:
        sizes = vit_sizes(shapes)
        patch = "x".join(str(p) for p in sizes["patch_size"])
        text = (f"Omnivorous DINOv2 / frozen DINOv2 teacher ViT (width {sizes['width']}, {sizes['depth']} blocks, "
                f"patch {patch})")
        if (sizes["width"], sizes["depth"], sizes["patch_size"]) == (768, 12, [14, 14]):
            text += f" = {' or '.join(file for file, _ in RELEASED_FILES.values())}"
        return text

    def build_config(self, shapes: Shapes, variant: str, preset: str | None = None, **overrides):
        if preset:
            raise ConversionError("omnivorous checkpoints take no --preset: every size is read from the arrays")
        values = vit_sizes(shapes)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return dinov2_config(**values)

    def model_class(self, config, variant: str) -> type:
        from transformers import Dinov2WithRegistersModel

        return Dinov2WithRegistersModel

    def parameter_sources(self, shapes: Shapes, config, variant: str) -> dict[str, ParamSource]:
        return parameter_sources(config)

    def ignored_keys(self, shapes: Shapes, config, variant: str) -> set[str]:
        # Spec §3.3: the released files may hold more than the 198 arrays the notebook reads (the README's 1.6 GB is
        # ~4.6x their float32 size); the official loader ignores them, so do we, and say so.
        extra = {key for key in shapes if not key.startswith(KEY_PREFIXES)}
        if extra:
            logger.warning("ignoring %d arrays the official model does not read: %s", len(extra),
                           ", ".join(sorted(extra)[:10]) + (" ..." if len(extra) > 10 else ""))
        return extra

    def video_processor(self, config, variant: str):
        # an image model: the folder gets an image processor (preprocessor_config.json), not a video processor
        return image_processor()


OMNIVOROUS_CONVERTER = OmnivorousConverter()

__all__ = [
    "OMNIVOROUS_CONVERTER", "OmnivorousConverter", "RELEASED_FILES", "config_from_flax", "dinov2_config",
    "image_processor", "parameter_sources", "position_table", "vit_sizes",
]
