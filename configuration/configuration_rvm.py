"""Configuration of RVM, the Recurrent Video Masked Autoencoder (Zoran et al. 2025, arXiv 2512.13684)."""

from __future__ import annotations

from dataclasses import field

from transformers import PreTrainedConfig

from .config_presets import FamilyCheckedConfig, preset_values

# Encoder rows of the notebook's VIT_SIZES; recurrent-core settings of the released files (L verified in the notebook,
# S/B/H read from the released files' array shapes as recorded in their manifests). Every released decoder is
# 8 blocks x 16 heads, width 512, MLP 2048.
_DECODER = dict(decoder_hidden_size=512, decoder_num_layers=8, decoder_num_attention_heads=16, decoder_intermediate_size=2048)

RVM_PRESETS = {
    "s": dict(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
        rnn_num_layers=4, rnn_num_attention_heads=8, rnn_intermediate_size=2048, **_DECODER,
    ),
    "b": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        rnn_num_layers=4, rnn_num_attention_heads=12, rnn_intermediate_size=3072, **_DECODER,
    ),
    "l": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        rnn_num_layers=4, rnn_num_attention_heads=16, rnn_intermediate_size=4096, **_DECODER,
    ),
    "h": dict(
        hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120,
        rnn_num_layers=4, rnn_num_attention_heads=16, rnn_intermediate_size=5120, **_DECODER,
    ),
}
# Pretraining presets small enough for a CPU (``rep4d train --method rvm --model-preset tiny``).
RVM_TRAIN_PRESETS = {
    # 32x32 frames, 4x4 patches: 64 patches per frame, 3 visible at 95% masking; about 0.5M parameters.
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256, patch_size=4,
                 image_size=[32, 32], base_token_shape=[8, 8], rnn_num_layers=1, rnn_num_attention_heads=4,
                 rnn_intermediate_size=256, decoder_hidden_size=64, decoder_num_layers=2,
                 decoder_num_attention_heads=4, decoder_intermediate_size=256),
    "small": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768, patch_size=8,
                  image_size=[64, 64], base_token_shape=[8, 8], rnn_num_layers=2, rnn_num_attention_heads=3,
                  rnn_intermediate_size=768, decoder_hidden_size=128, decoder_num_layers=2,
                  decoder_num_attention_heads=4, decoder_intermediate_size=512),
}
# Released file names -> preset.
RVM_PRESET_ALIASES = {"small16-256": "s", "base16-256": "b", "large16-256": "l", "huge16-256": "h"}


class RVMConfig(FamilyCheckedConfig, PreTrainedConfig):
    r"""Configuration of an RVM streaming encoder (:class:`RVMModel`) and its masked-reconstruction decoder
    (:class:`RVMForMaskedReconstruction`).

    Encoder (a per-frame ViT):
        hidden_size: token width D.
        num_hidden_layers / num_attention_heads / intermediate_size: ViT depth, heads and MLP size.
        patch_size: square patch p of the per-frame patch embedding (VALID: remainders are cropped).
        image_size: ``[H, W]`` of the training frames (256x256 for every release); informational, any size works.
        base_token_shape: grid of the sinusoidal position table; resized (antialiased cubic, as
            ``jax.image.resize``) when the token grid differs.
        num_channels: input channels.

    Gated recurrent core (a GRU whose candidate comes from a cross-attention transformer):
        rnn_num_layers / rnn_num_attention_heads / rnn_intermediate_size: depth, heads and MLP size of the core.
        rnn_attention_size: inner width of the core's attention (q/k/v); defaults to ``hidden_size``.
        state_layer_norm_eps: epsilon of the scale-only LayerNorm applied to the state (1e-4 in the reference).

    Decoder (pretraining only):
        decoder_hidden_size / decoder_num_layers / decoder_num_attention_heads / decoder_intermediate_size.
        num_delta_classes: size of the one-hot temporal delta embedding (64); deltas outside ``[0, classes)``
            contribute only the embedding bias, as in the reference.
        mask_ratio: fraction of target patches hidden; ``int(N * (1 - mask_ratio))`` stay visible.

    Shared:
        layer_norm_eps: LayerNorm epsilon (1e-6; PyTorch's default 1e-5 is a real deviation).
        hidden_act: MLP activation, the tanh approximation of GELU in the reference.
    """

    model_type = "rvm"
    family = "RVM"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    patch_size: int = 16
    image_size: list[int] | tuple[int, int] = field(default_factory=lambda: [256, 256])
    base_token_shape: list[int] | tuple[int, int] = field(default_factory=lambda: [16, 16])
    num_channels: int = 3
    rnn_num_layers: int = 4
    rnn_num_attention_heads: int = 12
    rnn_intermediate_size: int = 3072
    rnn_attention_size: int | None = None
    state_layer_norm_eps: float = 1e-4
    decoder_hidden_size: int = 512
    decoder_num_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048
    num_delta_classes: int = 64
    mask_ratio: float = 0.95
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu_pytorch_tanh"
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        self.image_size = [int(v) for v in self.image_size]
        self.base_token_shape = [int(v) for v in self.base_token_shape]
        if self.rnn_attention_size is None:
            self.rnn_attention_size = self.hidden_size
        if len(self.image_size) != 2:
            raise ValueError(f"image_size must be [H, W], got {self.image_size}")
        if len(self.base_token_shape) != 2 or min(self.base_token_shape) < 1:
            raise ValueError(f"base_token_shape must be [h, w] with positive sizes, got {self.base_token_shape}")
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {self.patch_size}")
        for name, width, heads in (
            ("hidden_size", self.hidden_size, self.num_attention_heads),
            ("rnn_attention_size", self.rnn_attention_size, self.rnn_num_attention_heads),
            ("decoder_hidden_size", self.decoder_hidden_size, self.decoder_num_attention_heads),
        ):
            if width % heads:
                raise ValueError(f"{name} ({width}) must be divisible by its number of attention heads ({heads})")
        if self.hidden_size % 2 or self.decoder_hidden_size % 2:
            raise ValueError("the sinusoidal position tables need even hidden_size and decoder_hidden_size")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if self.num_delta_classes < 1:
            raise ValueError(f"num_delta_classes must be positive, got {self.num_delta_classes}")
        super().__post_init__(**kwargs)

    @property
    def token_grid(self) -> tuple[int, int]:
        """(h, w) tokens of ``image_size``."""
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @classmethod
    def from_preset(cls, name: str, **overrides) -> RVMConfig:
        """A configuration by preset name: ``s``, ``b``, ``l``, ``h`` (or ``small16_256`` ... ``huge16_256``).

        Keyword arguments override preset values, e.g. ``RVMConfig.from_preset("s", image_size=[480, 880])``.
        """
        values = preset_values(
            RVM_PRESETS, name, "RVM", prefixes=("rvm-", "pretrain-rvm-"), aliases=RVM_PRESET_ALIASES
        )
        return cls(**{**values, **overrides})

    @staticmethod
    def preset_names() -> list[str]:
        return sorted(RVM_PRESETS)


__all__ = ["RVMConfig", "RVM_PRESETS", "RVM_TRAIN_PRESETS"]
