"""Configuration of the 4DS video masked-autoencoder backbones ("Scaling 4D Representations")."""

from __future__ import annotations

from dataclasses import field

from transformers import PreTrainedConfig

from .config_presets import FamilyCheckedConfig, preset_values

# Backbone sizes of the paper (kauldron VIT_SIZES; "j" from the paper). Every released model uses 2x16x16 tubelets on
# 16x224x224 clips.
FOURDS_SIZES = {
    "s": dict(hidden_size=384, num_hidden_layers=12, intermediate_size=1536, num_attention_heads=6),
    "b": dict(hidden_size=768, num_hidden_layers=12, intermediate_size=3072, num_attention_heads=12),
    "l": dict(hidden_size=1024, num_hidden_layers=24, intermediate_size=4096, num_attention_heads=16),
    "h": dict(hidden_size=1280, num_hidden_layers=32, intermediate_size=5120, num_attention_heads=16),
    "g": dict(hidden_size=1664, num_hidden_layers=48, intermediate_size=8192, num_attention_heads=16),
    "e": dict(hidden_size=1792, num_hidden_layers=56, intermediate_size=15360, num_attention_heads=16),
    "j": dict(hidden_size=4096, num_hidden_layers=64, intermediate_size=32768, num_attention_heads=32),
}

# Named presets: the sizes above plus the released checkpoints.
FOURDS_PRESETS = {
    **{name: dict(size) for name, size in FOURDS_SIZES.items()},
    # 4DS-B distilled from 4DS-e (scaling4d_dist_b.npz) and its ScanNet depth readout (scaling4d_dist_b_depth.npz).
    "b-dist-e": dict(FOURDS_SIZES["b"]),
    "b-dist-e-depth": dict(FOURDS_SIZES["b"]),
    # 22B-style models decode with 2 decoding layers and 4x32x32 output patches (paper section 5).
    "j-pretrain": dict(FOURDS_SIZES["j"], decoder_num_layers=2, decoder_patch_size=[4, 32, 32]),
}

# Pretraining presets small enough for a CPU (``rep4d train --model-preset tiny``; any name above works too).
FOURDS_TRAIN_PRESETS = {
    # 8 frames of 32x32, 2x8x8 tubelets: 64 tokens, 3 visible at 95% masking; about 0.25M parameters.
    "tiny": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
                 tubelet_size=[2, 8, 8], image_size=[32, 32], num_frames=8, decoder_num_layers=2,
                 decoder_patch_size=[2, 8, 8], readout_num_params=64, readout_num_heads=4),
    # 16 frames of 64x64, 2x16x16 tubelets: 128 tokens; about 2.7M parameters.
    "small": dict(hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
                  tubelet_size=[2, 16, 16], image_size=[64, 64], num_frames=16, decoder_num_layers=2,
                  decoder_patch_size=[2, 16, 16], readout_num_params=192, readout_num_heads=3),
}
# Teachers for distillation tests from scratch (a real run passes --teacher PATH): same clip, wider and deeper.
FOURDS_TEACHER_PRESETS = {
    "tiny": dict(FOURDS_TRAIN_PRESETS["tiny"], hidden_size=96, num_hidden_layers=6, intermediate_size=384),
    "small": dict(FOURDS_TRAIN_PRESETS["small"], hidden_size=384, num_hidden_layers=8, num_attention_heads=6,
                  intermediate_size=1536),
}


class FourDSConfig(FamilyCheckedConfig, PreTrainedConfig):
    r"""Configuration of a 4DS backbone (:class:`FourDSModel`) and its readout heads.

    Args:
        hidden_size: token width D.
        num_hidden_layers: number of transformer blocks L.
        num_attention_heads: attention heads per block.
        intermediate_size: MLP hidden size.
        tubelet_size: tubelet ``[pt, ph, pw]`` of the 3D patch embedding.
        image_size: ``[H, W]`` of the training grid.
        num_frames: frames T of the training grid.
        num_channels: input channels.
        layer_norm_eps: LayerNorm epsilon (1e-6 in the reference; PyTorch's default 1e-5 is wrong here).
        hidden_act: MLP activation, the tanh approximation of GELU in the reference.
        readout_depth: relative depth of the features fed to readouts; the index rule of the reference
            (``int(len(features) * readout_depth) - 1`` over ``[tokens, tokens, out_0, ..., out_{L-2}]``) is kept.
        interpolate_pos_encoding: if True, inputs whose token grid differs from the trained one get the learned
            position embedding resampled (separable cubic, as ``jax.image.resize``). Off by default: the reference has
            no such path, and a grid mismatch is an error.
        readout_num_params / readout_num_heads / readout_decoding_patch_size / readout_output_channels:
            the attention readout of :class:`FourDSForDepthEstimation` (released: 1024, 16, [2, 8, 8], 1).
        readout_num_frames: frames of the readout's temporal embedding (defaults to ``num_frames``).
        decoder_num_layers / decoder_patch_size: SimpleMAE pretraining (last N blocks see decoding tokens, patchwise
            linear pixel decoder).
        mask_ratio: fraction of tubelets dropped in SimpleMAE pretraining.
    """

    model_type = "fourds"
    family = "4DS"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    tubelet_size: list[int] | tuple[int, int, int] = field(default_factory=lambda: [2, 16, 16])
    image_size: list[int] | tuple[int, int] = field(default_factory=lambda: [224, 224])
    num_frames: int = 16
    num_channels: int = 3
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu_pytorch_tanh"
    initializer_range: float = 0.02
    readout_depth: float = 0.95
    interpolate_pos_encoding: bool = False
    readout_num_params: int = 1024
    readout_num_heads: int = 16
    readout_decoding_patch_size: list[int] | tuple[int, int, int] = field(default_factory=lambda: [2, 8, 8])
    readout_output_channels: int = 1
    readout_num_frames: int | None = None
    decoder_num_layers: int = 4
    decoder_patch_size: list[int] | tuple[int, int, int] = field(default_factory=lambda: [2, 16, 16])
    mask_ratio: float = 0.95

    def __post_init__(self, **kwargs):
        self.tubelet_size = [int(v) for v in self.tubelet_size]
        self.image_size = [int(v) for v in self.image_size]
        self.readout_decoding_patch_size = [int(v) for v in self.readout_decoding_patch_size]
        self.decoder_patch_size = [int(v) for v in self.decoder_patch_size]
        if len(self.tubelet_size) != 3:
            raise ValueError(f"tubelet_size must be [pt, ph, pw], got {self.tubelet_size}")
        if len(self.image_size) != 2:
            raise ValueError(f"image_size must be [H, W], got {self.image_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})"
            )
        grid = (self.num_frames, *self.image_size)
        if any(size % patch for size, patch in zip(grid, self.tubelet_size)):
            raise ValueError(
                f"the input grid (frames, height, width) = {grid} must be divisible by tubelet_size {self.tubelet_size}"
            )
        if not 0.0 < self.readout_depth <= 1.0:
            raise ValueError(f"readout_depth must be in (0, 1], got {self.readout_depth}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        super().__post_init__(**kwargs)

    @property
    def token_grid(self) -> tuple[int, int, int]:
        """(t, h, w) tokens of the training grid."""
        return tuple(size // patch for size, patch in zip((self.num_frames, *self.image_size), self.tubelet_size))

    @property
    def num_tokens(self) -> int:
        t, h, w = self.token_grid
        return t * h * w

    @classmethod
    def from_preset(cls, name: str, **overrides) -> FourDSConfig:
        """A configuration by preset name: ``s, b, l, h, g, e, j``, ``b-dist-e``, ``b-dist-e-depth``, ``j-pretrain``.

        Keyword arguments override preset values, e.g. ``FourDSConfig.from_preset("b", num_frames=32)``.
        """
        return cls(**{**preset_values(FOURDS_PRESETS, name, "4DS", prefixes=("4ds-",)), **overrides})

    @staticmethod
    def preset_names() -> list[str]:
        return sorted(FOURDS_PRESETS)


__all__ = ["FourDSConfig", "FOURDS_PRESETS", "FOURDS_SIZES", "FOURDS_TEACHER_PRESETS", "FOURDS_TRAIN_PRESETS"]
