"""Configuration of MooG ("Moving Off-the-Grid: Scene-Grounded Video Representations").

Two presets: ``released`` (default) is the inference notebook's model that loads the released Ego4D checkpoints
(conv strides (2,1,1,2,1,1), Fourier features concatenated to the CNN output, 592-d encoder tokens, the state
LayerNorm at the start of every step); ``movi`` is the open training configuration (``configs/movi.py``: strides
(1,1,1,2,1,2), Fourier features projected and added, 512-d encoder tokens, the state LayerNorm at the end of every
step so the emitted corrected states are normalised).
"""

from __future__ import annotations

from dataclasses import field

from transformers import PreTrainedConfig

from .config_presets import FamilyCheckedConfig, preset_values

# The architecture choices of the training code (configs/movi.py + moog/modules.py) that differ from the notebook's.
_MOOG_TRAINING_CODE = dict(posenc_mode="project_add", encoder_output_size=None, state_norm_position="end")
MOOG_PRESETS = {
    # The inference notebook (colabs/moog_inference_demo.ipynb) = moog_ego4d_*_ckpt_164335139.npz.
    "released": dict(),
    # configs/movi.py + moog/modules.py (training code).
    "movi": dict(_MOOG_TRAINING_CODE, conv_strides=[1, 1, 1, 2, 1, 2], image_size=[128, 128], num_frames=8),
}

# Pretraining presets small enough for a CPU (``rep4d train --method moog --model-preset tiny``), with the training
# code's architecture.
MOOG_TRAIN_PRESETS: dict[str, dict] = {
    # 8 frames of 32x32 (the paper's 8-frame unroll), CNN strides 1,1,1,2,1,2 -> 8x8 encoder tokens, 16 state tokens;
    # decoding at subsampling 8 with a random offset (train_subsample_factor); about 0.4M parameters.
    "tiny": dict(_MOOG_TRAINING_CODE, image_size=[32, 32], num_frames=8, conv_features=[16, 32, 32, 64, 64, 64],
                 conv_strides=[1, 1, 1, 2, 1, 2], enc_fourier_bases=8, encoder_hidden_size=64, num_tokens=16,
                 token_size=64, predictor_qkv_size=64, predictor_num_heads=2, predictor_mlp_size=128,
                 predictor_num_layers=1, corrector_qkv_size=64, corrector_num_heads=2, corrector_mlp_size=128,
                 corrector_num_layers=1, decoder_qkv_size=32, decoder_num_heads=2, decoder_mlp_size=128,
                 decoder_num_layers=2, dec_fourier_bases=8, train_subsample_factor=8),
    "small": dict(_MOOG_TRAINING_CODE, image_size=[64, 64], num_frames=8, conv_features=[32, 64, 64, 128, 128, 128],
                  conv_strides=[1, 1, 1, 2, 1, 2], enc_fourier_bases=10, encoder_hidden_size=128, num_tokens=64,
                  token_size=128, predictor_qkv_size=128, predictor_num_heads=4, predictor_mlp_size=512,
                  predictor_num_layers=2, corrector_qkv_size=128, corrector_num_heads=4, corrector_mlp_size=512,
                  corrector_num_layers=1, decoder_qkv_size=64, decoder_num_heads=2, decoder_mlp_size=512,
                  decoder_num_layers=3, dec_fourier_bases=12, train_subsample_factor=8),
}


class MooGConfig(FamilyCheckedConfig, PreTrainedConfig):
    r"""Configuration of :class:`MooGModel` and its heads.

    Backbone (spec §2):
        conv_features / conv_strides: the six 3x3 convolutions of the per-frame CNN (TF "SAME" padding, tanh GELU
            between them, LayerNorm without bias after the last).
        enc_fourier_bases: Fourier frequencies 2^0..2^(n-1) of the encoder coordinate encoding (4n channels).
        posenc_mode: ``"concat"`` (released: the encoding is appended to the CNN channels) or ``"project_add"``
            (training code: a Dense projection of the encoding is added to the CNN output).
        encoder_hidden_size: width of the encoder token projection (Dense -> LayerNorm).
        encoder_output_size: width of the back-projection after the LayerNorm (released: CNN channels + 4n = 592);
            None for no back-projection (training code), then tokens are ``encoder_hidden_size`` wide.
        num_tokens / token_size: K state tokens of width D. ``num_tokens`` can be changed at inference.
        state_init_scale: the initial state is ``state_init_scale * N(0, 1)`` noise.
        state_ln_eps: epsilon of the state LayerNorm (1e-4, not 1e-6: it acts on 1e-4-scale noise at t = 0).
        state_norm_position: ``"start"`` (released: LayerNorm before every predictor call, emitted states are
            pre-LN) or ``"end"`` (training code: LayerNorm after every step and once on the init state).
        predictor_* / corrector_*: the self-attention predictor and the parallel self+cross-attention corrector
            (qkv width, heads, MLP size, layers).
        layer_norm_eps: every other LayerNorm and the q/k RMS norms (1e-6).
    Pixel decoder (spec §2.7):
        decoder_*: cross-attention-only transformer reading the predicted state; ``dec_fourier_bases`` coordinate
        bases; ``train_subsample_factor`` / ``eval_subsample_factor`` (8 / 4 in configs/movi.py; 0 or 1 = all pixels).
    Released tracking heads (spec §3):
        point_readout_* / box_readout_*: AttentionReadout width, heads, MLP size, temporal tile size k and frames per
        query token t (k * t = ``readout_num_frames``), query MLP width; ``readout_fourier_bases`` for the queries;
        ``visibility_threshold`` for ``sigmoid(visible) * sigmoid(certain)``.
        tracking_head: which head a stand-alone :class:`MooGTrackingHeadModel` holds (``"point"`` or ``"box"``).
        point_readout_type: ``"attention"`` (released head, fixed 16-frame clips) or ``"recurrent"`` (the paper's
            recurrent query readout, any clip length; ``recurrent_*`` sizes).
    Depth grid readout (spec §4.2): depth_readout_* sizes, ``depth_output_channels``.
    """

    model_type = "moog"
    family = "MooG"
    # transformers' standard names: the width of the state tokens and the corrector (the transformer that reads each
    # frame into the state).
    attribute_map = {
        "hidden_size": "token_size",
        "num_attention_heads": "corrector_num_heads",
        "num_hidden_layers": "corrector_num_layers",
    }

    num_channels: int = 3
    image_size: list[int] | tuple[int, int] = field(default_factory=lambda: [256, 256])
    num_frames: int = 16
    conv_features: list[int] | tuple[int, ...] = field(default_factory=lambda: [64, 128, 128, 256, 256, 512])
    conv_strides: list[int] | tuple[int, ...] = field(default_factory=lambda: [2, 1, 1, 2, 1, 1])
    conv_kernel_size: int = 3
    enc_fourier_bases: int = 20
    posenc_mode: str = "concat"
    encoder_hidden_size: int = 512
    encoder_output_size: int | None = 592
    num_tokens: int = 1024
    token_size: int = 512
    state_init_scale: float = 1e-4
    state_ln_eps: float = 1e-4
    state_norm_position: str = "start"
    predictor_qkv_size: int = 256
    predictor_num_heads: int = 4
    predictor_mlp_size: int = 2048
    predictor_num_layers: int = 3
    corrector_qkv_size: int = 512
    corrector_num_heads: int = 8
    corrector_mlp_size: int = 2048
    corrector_num_layers: int = 2
    decoder_qkv_size: int = 128
    decoder_num_heads: int = 2
    decoder_mlp_size: int = 2048
    decoder_num_layers: int = 6
    dec_fourier_bases: int = 16
    decoder_output_channels: int = 3
    train_subsample_factor: int = 8
    eval_subsample_factor: int = 1
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu_pytorch_tanh"
    initializer_range: float = 0.02
    # Released tracking heads.
    readout_num_frames: int = 16
    readout_fourier_bases: int = 16
    visibility_threshold: float = 0.5
    tracking_head: str = "point"
    point_readout_type: str = "attention"
    point_readout_num_params: int = 1024
    point_readout_num_heads: int = 8
    point_readout_mlp_size: int = 4096
    point_readout_query_mlp_size: int = 512
    point_readout_temporal_tile_size: int = 8
    point_readout_frames_per_query: int = 2
    box_readout_num_params: int = 1024
    box_readout_num_heads: int = 4
    box_readout_mlp_size: int = 4096
    box_readout_query_mlp_size: int = 512
    box_readout_temporal_tile_size: int = 1
    box_readout_frames_per_query: int = 16
    # Recurrent query readout (configs/movi.py "points").
    recurrent_latent_size: int = 512
    recurrent_qkv_size: int = 512
    recurrent_num_heads: int = 8
    recurrent_mlp_size: int = 2048
    recurrent_num_layers: int = 3
    recurrent_state_ln_eps: float = 1e-4
    # Dense (grid) depth readout (configs/movi.py "depth").
    depth_readout_qkv_size: int = 512
    depth_readout_num_heads: int = 8
    depth_readout_mlp_size: int = 2048
    depth_readout_num_layers: int = 3
    depth_output_channels: int = 1

    def __post_init__(self, **kwargs):
        self.image_size = [int(v) for v in self.image_size]
        self.conv_features = [int(v) for v in self.conv_features]
        self.conv_strides = [int(v[0]) if isinstance(v, (list, tuple)) else int(v) for v in self.conv_strides]
        if len(self.image_size) != 2:
            raise ValueError(f"image_size must be [height, width], got {self.image_size}")
        if len(self.conv_features) != len(self.conv_strides) or not self.conv_features:
            raise ValueError(
                f"conv_features ({self.conv_features}) and conv_strides ({self.conv_strides}) need the same, "
                "non-zero length"
            )
        if self.posenc_mode not in ("concat", "project_add"):
            raise ValueError(f"posenc_mode must be 'concat' or 'project_add', got {self.posenc_mode!r}")
        if self.state_norm_position not in ("start", "end"):
            raise ValueError(f"state_norm_position must be 'start' or 'end', got {self.state_norm_position!r}")
        if self.tracking_head not in ("point", "box"):
            raise ValueError(f"tracking_head must be 'point' or 'box', got {self.tracking_head!r}")
        if self.point_readout_type not in ("attention", "recurrent"):
            raise ValueError(f"point_readout_type must be 'attention' or 'recurrent', got {self.point_readout_type!r}")
        for name in ("predictor", "corrector", "decoder", "recurrent", "depth_readout"):
            qkv, heads = getattr(self, f"{name}_qkv_size"), getattr(self, f"{name}_num_heads")
            if qkv % heads:
                raise ValueError(f"{name}_qkv_size ({qkv}) must be divisible by {name}_num_heads ({heads})")
        for name in ("point", "box"):
            params, heads = getattr(self, f"{name}_readout_num_params"), getattr(self, f"{name}_readout_num_heads")
            if params % heads:
                raise ValueError(f"{name}_readout_num_params ({params}) must be divisible by the heads ({heads})")
            tiles = getattr(self, f"{name}_readout_temporal_tile_size")
            per_query = getattr(self, f"{name}_readout_frames_per_query")
            if tiles * per_query != self.readout_num_frames:
                raise ValueError(
                    f"{name} readout: temporal_tile_size ({tiles}) x frames_per_query ({per_query}) must equal "
                    f"readout_num_frames ({self.readout_num_frames})"
                )
        if self.num_tokens < 1:
            raise ValueError(f"num_tokens must be positive, got {self.num_tokens}")
        super().__post_init__(**kwargs)

    @property
    def encoder_posenc_size(self) -> int:
        """Channels of the encoder Fourier features: sin and "cos" of 2 coordinates at each frequency."""
        return 4 * self.enc_fourier_bases

    @property
    def encoder_input_size(self) -> int:
        """Width entering the encoder token projection (CNN channels, plus the Fourier features if concatenated)."""
        extra = self.encoder_posenc_size if self.posenc_mode == "concat" else 0
        return self.conv_features[-1] + extra

    @property
    def encoder_token_size(self) -> int:
        """Width of the encoder tokens the corrector attends to."""
        return self.encoder_output_size or self.encoder_hidden_size

    @property
    def decoder_query_size(self) -> int:
        return self.token_size + 4 * self.dec_fourier_bases

    @classmethod
    def from_preset(cls, name: str, **overrides) -> MooGConfig:
        """``released`` (default, the Ego4D checkpoints) or ``movi`` (the training configuration)."""
        return cls(**{**preset_values(MOOG_PRESETS, name, "MooG", prefixes=("moog-",)), **overrides})

    @staticmethod
    def preset_names() -> list[str]:
        return sorted(MOOG_PRESETS)


__all__ = ["MooGConfig", "MOOG_PRESETS", "MOOG_TRAIN_PRESETS"]
