"""PyTorch MooG: recurrent off-the-grid video representations ("Moving Off-the-Grid", arXiv 2411.05927).

A port of the DeepMind reference (representations4d ``moog/``, and the inference notebook that loads the released
Ego4D checkpoints). A per-frame CNN encoder produces tokens on the grid; a fixed set of K off-the-grid state tokens
is carried through time by a self-attention *predictor* and a self+cross-attention *corrector* that reads the
current frame. Numerics that matter for parity (spec §7): TF "SAME" padding of the stride-2 convolutions, Fourier
features with ``sin(z + pi/2)`` in float32 on the coordinate grid XLA folds for ``linspace`` under jit, tanh GELU,
LayerNorm eps 1e-4 on the state (1e-6 everywhere else), q/k RMS norms per head.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput, can_return_tuple, logging

from ..configuration.configuration_moog import MooGConfig
from .attention_readout import AttentionReadout
from .cpu_fast_paths import Conv2d, Linear
from .layers import FeedForward, MultiHeadAttention, activation, split_heads
from .losses import masked_mean_squared_error
from .outputs import BoxTrackingOutput, DepthEstimationOutput, PointTrackingOutput, VideoFeaturesOutput
from .pretrained import Rep4DPreTrainedModel, trunc_normal_init_
from .video_inputs import check_video_input

logger = logging.get_logger(__name__)

# --------------------------------------------------------------------------------------------------------------------
# Coordinates and Fourier features (bit-exact with the jitted reference)

PI_F32 = float(np.float32(np.pi))
HALF_PI_F32 = float(np.float32(np.pi / 2))


@lru_cache(maxsize=64)
def _jit_linspace_np(size: int) -> np.ndarray:
    if size == 1:
        return np.array([-1.0], dtype=np.float32)
    one = np.float32(1.0)
    step = one / np.float32(size - 1)
    positions = (np.arange(size - 1, dtype=np.float32) * step).astype(np.float32)
    values = (positions - (one - positions)).astype(np.float32)
    return np.concatenate([values, np.array([1.0], dtype=np.float32)])


def jit_linspace(size: int) -> torch.Tensor:
    """``linspace(-1, 1, size)`` as XLA constant-folds it under jit (spec §7.1), not ``torch.linspace``.

    ``r = fl(1/(n-1))``, ``s_i = fl(i r)``, ``lin_i = fl(s_i - fl(1 - s_i))``, last entry exactly 1.
    """
    return torch.from_numpy(_jit_linspace_np(int(size)).copy())


def coordinate_grid(height: int, width: int) -> torch.Tensor:
    """(height, width, 2) grid of (row, column) coordinates in [-1, 1] ("ij" order)."""
    rows, cols = jit_linspace(height), jit_linspace(width)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)


def fourier_features(coords: torch.Tensor, num_bases: int) -> torch.Tensor:
    """``[sin(z), sin(z + pi/2)]`` with ``z = [c * pi * 2^0, ..., c * pi * 2^(n-1)]`` frequency-major (spec §2.2).

    Always float32: the top frequency is 2^19 pi, where any rounding of the argument is visible. Multiplying by a
    power of two is exact, so this equals the reference's matmul with its frequency basis.
    """
    scaled = coords.float() * torch.tensor(PI_F32, dtype=torch.float32, device=coords.device)
    z = torch.cat([scaled * float(2**i) for i in range(num_bases)], dim=-1)
    half_pi = torch.tensor(HALF_PI_F32, dtype=torch.float32, device=coords.device)
    return torch.cat([torch.sin(z), torch.sin(z + half_pi)], dim=-1)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow/flax "SAME" padding (before, after): stride 2 on an even size pads (0, 1)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def subsample_indices(size: int, factor: int, offsets: torch.Tensor) -> torch.Tensor:
    """Pixel indices ``(k f + f // 2 - offset) mod size`` for k < size / f (spec §2.7); offsets (B,) -> (B, size/f)."""
    if factor <= 1:
        return torch.arange(size, device=offsets.device).expand(offsets.shape[0], size)
    if size % factor:
        raise ValueError(f"the decoding size {size} must be divisible by the subsampling factor {factor}")
    base = torch.arange(size // factor, device=offsets.device) * factor + factor // 2
    return (base[None, :] - offsets[:, None].long()) % size


def attention_weights_available(config, output_attentions: bool) -> bool:
    """Whether attention weights can be returned: only eager attention computes them. As transformers does, asking
    for them under another implementation (SDPA, flex) warns once and returns None instead of failing."""
    if output_attentions and (getattr(config, "_attn_implementation", None) or "eager") != "eager":
        logger.warning_once(
            "MooG returns attention weights only with eager attention; `output_attentions=True` is ignored under "
            f"{config._attn_implementation!r}. Load the model with attn_implementation='eager' or call "
            "model.set_attn_implementation('eager') to get them."
        )
        return False
    return bool(output_attentions)


def check_moog_model(model, expected: str = "a MooG model (MooGModel or a MooG head)") -> None:
    """Refuse a model of another family with a message naming the family expected."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) != MooGConfig.model_type:
        family = getattr(config, "model_type", None) or type(model).__name__
        raise ValueError(f"expected {expected} (model family 'moog'), got a {family!r} model ({type(model).__name__})")


# --------------------------------------------------------------------------------------------------------------------
# Outputs


@dataclass
class MooGModelOutput(ModelOutput):
    """Outputs of :class:`MooGModel`.

    Args:
        features: (B, T, K, D) corrected state of every frame, as the released model emits it ("features" of the
            notebook; pre-LayerNorm for the released configuration).
        final_state: (B, K, D) state after the last frame: pass it back as ``state`` to continue the video.
        predicted_states: (B, T, K, D) predicted state of every frame (before seeing it), read by the pixel decoder.
        corrected_states: (B, T, K, D) same tensor as ``features``.
        normed_states: (B, T, K, D) the state entering the predictor at every step (when ``output_intermediates``).
        states_concat: (B, T, 2K, D) ``[predicted || LN(corrected)]`` along tokens, the input of the recurrent and
            grid readouts (when ``output_states_concat``).
        encoder_features: (B, T, h*w, E) encoder tokens of every frame (when ``output_intermediates``).
        hidden_states: (``output_hidden_states``) P + C + 1 tensors (B, T, K, D), P / C the predictor / corrector
            layers: the state entering the predictor, the predictor's token stream after each of its layers, then the
            corrector's token stream after each of its layers (the corrector's stream starts at the predicted state).
        attentions: (``output_attentions``, eager attention) P + C tensors (B, T, heads, K, K): the self-attention of
            every predictor then corrector layer over the state tokens.
        cross_attentions: (``output_attentions``, eager attention) C tensors (B, T, heads, K, h*w): the corrector's
            cross-attention of every state token over the encoder tokens of the frame.
    """

    features: torch.FloatTensor | None = None
    final_state: torch.FloatTensor | None = None
    predicted_states: torch.FloatTensor | None = None
    corrected_states: torch.FloatTensor | None = None
    normed_states: torch.FloatTensor | None = None
    states_concat: torch.FloatTensor | None = None
    encoder_features: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class MooGNextFramePredictionOutput(ModelOutput):
    """Outputs of :class:`MooGForNextFramePrediction`.

    Args:
        loss: mean squared error between the decoded and the true (subsampled) pixels of every frame.
        predicted_pixel_values: (B, T, C, h, w) frame t decoded from the predicted state of step t; full resolution
            unless a subsampling factor > 1 is used (then h = H / f, w = W / f).
        target_pixel_values: (B, T, C, h, w) the true pixels at the same positions.
        pixel_rows / pixel_cols: (B, T, h) and (B, T, w) indices of the decoded pixels in the full frame.
        features / final_state / predicted_states: the backbone outputs (:class:`MooGModelOutput`).
        hidden_states / attentions / cross_attentions: the backbone's (:class:`MooGModelOutput`).
        decoder_attentions: per decoder layer, (B, T, heads, h*w, K) attention of every pixel over the state tokens
            (``output_attentions``, eager attention only).
    """

    loss: torch.FloatTensor | None = None
    predicted_pixel_values: torch.FloatTensor | None = None
    target_pixel_values: torch.FloatTensor | None = None
    pixel_rows: torch.LongTensor | None = None
    pixel_cols: torch.LongTensor | None = None
    features: torch.FloatTensor | None = None
    final_state: torch.FloatTensor | None = None
    predicted_states: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    decoder_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class MooGPointTrackingOutput(PointTrackingOutput):
    """Outputs of the MooG point heads: the shared :class:`~rep4d.modeling.outputs.PointTrackingOutput` (``tracks``
    (B, Q, T, 2) (x, y) pixels, ``occluded`` / ``visibility_logits`` / ``certainty_logits`` (B, Q, T)) plus:

    Args:
        query_embedding: (B, Q, Dq) the query embedding after the Fourier features and the MLP.
        raw_output: (B, Q * k, 4 t) the attention readout's raw output (released heads).
        readout_states / readout_states_corrected / readout_state: the recurrent readout's latents (B, T, Q, L)
            after the LayerNorm and before it, and the last latent (B, Q, L), to continue a video.
        features: (B, T, K, D) the backbone features the head read (tracking models only).
    """

    query_embedding: torch.FloatTensor | None = None
    raw_output: torch.FloatTensor | None = None
    readout_states: torch.FloatTensor | None = None
    readout_states_corrected: torch.FloatTensor | None = None
    readout_state: torch.FloatTensor | None = None
    features: torch.FloatTensor | None = None


@dataclass
class MooGBoxTrackingOutput(BoxTrackingOutput):
    """Outputs of the MooG box head: the shared :class:`~rep4d.modeling.outputs.BoxTrackingOutput` (``boxes``
    (B, O, T, 4) (ymin, xmin, ymax, xmax) in [0, 1], no activation) plus ``query_embedding`` (B, O, Dq),
    ``raw_output`` (B, O * k, 4 t) and the backbone ``features`` (B, T, K, D) (tracking models only)."""

    query_embedding: torch.FloatTensor | None = None
    raw_output: torch.FloatTensor | None = None
    features: torch.FloatTensor | None = None


@dataclass
class MooGDepthEstimatorOutput(DepthEstimationOutput):
    """Outputs of :class:`MooGForDepthEstimation`: the shared :class:`~rep4d.modeling.outputs.DepthEstimationOutput`
    (``predicted_depth`` (B, T, h, w); C > 1 output channels: (B, T, C, h, w)) plus the decoded pixel indices
    ``pixel_rows`` (B, T, h) and ``pixel_cols`` (B, T, w) in the full frame."""

    pixel_rows: torch.LongTensor | None = None
    pixel_cols: torch.LongTensor | None = None


# --------------------------------------------------------------------------------------------------------------------
# Transformer ("ImprovedTransformer")


class MooGImprovedMHDPA(MultiHeadAttention):
    """The reference ``ImprovedMHDPAttention``: multi-head attention with per-head RMS-normalised queries and keys;
    q/k/v without bias, output with bias."""

    def __init__(self, config, query_dim: int, kv_dim: int, qkv_size: int, num_heads: int):
        super().__init__(config, qkv_size, num_heads)
        self.q_proj = Linear(query_dim, qkv_size, bias=False)
        self.k_proj = Linear(kv_dim, qkv_size, bias=False)
        self.v_proj = Linear(kv_dim, qkv_size, bias=False)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=config.layer_norm_eps)
        self.k_norm = nn.RMSNorm(self.head_dim, eps=config.layer_norm_eps)
        self.out_proj = Linear(qkv_size, query_dim)

    def forward(self, hidden_states: torch.Tensor, key_value_states: torch.Tensor, **kwargs):
        query = self.q_norm(split_heads(self.q_proj(hidden_states), self.num_heads))
        key = self.k_norm(split_heads(self.k_proj(key_value_states), self.num_heads))
        value = split_heads(self.v_proj(key_value_states), self.num_heads)
        return self.attend(query, key, value)


class MooGTransformerLayer(GradientCheckpointingLayer):
    """Pre-LN block with parallel self- and cross-attention on the same normalised queries, then an MLP."""

    def __init__(self, config, width, qkv_size, num_heads, mlp_size, kv_dim=None, self_attention=True):
        super().__init__()
        self.norm_q = nn.LayerNorm(width, eps=config.layer_norm_eps, bias=False)
        self.self_attn = MooGImprovedMHDPA(config, width, width, qkv_size, num_heads) if self_attention else None
        self.cross_attn = MooGImprovedMHDPA(config, width, kv_dim, qkv_size, num_heads) if kv_dim else None
        self.norm_attn = nn.LayerNorm(width, eps=config.layer_norm_eps, bias=False)
        self.mlp = FeedForward(width, mlp_size, act=config.hidden_act)

    def forward(self, hidden_states: torch.Tensor, key_value_states: torch.Tensor | None = None):
        normed = self.norm_q(hidden_states)
        attended = hidden_states
        self_weights = cross_weights = None
        if self.self_attn is not None:
            out, self_weights = self.self_attn(normed, normed)
            attended = attended + out
        if self.cross_attn is not None:
            out, cross_weights = self.cross_attn(normed, key_value_states)
            attended = attended + out
        return attended + self.mlp(self.norm_attn(attended)), self_weights, cross_weights


class MooGTransformer(nn.Module):
    """``[Dense] -> blocks -> LayerNorm -> [Dense]`` (the reference ``ImprovedTransformer``, spec §2.6)."""

    def __init__(
        self,
        config,
        width: int,
        num_layers: int,
        qkv_size: int,
        num_heads: int,
        mlp_size: int,
        kv_dim: int | None = None,
        self_attention: bool = True,
        hidden_size: int | None = None,
        output_size: int | None = None,
    ):
        super().__init__()
        inner = hidden_size or width
        self.input_proj = Linear(width, hidden_size) if hidden_size else None
        self.layers = nn.ModuleList(
            [
                MooGTransformerLayer(config, inner, qkv_size, num_heads, mlp_size, kv_dim, self_attention)
                for _ in range(num_layers)
            ]
        )
        self.final_norm = nn.LayerNorm(inner, eps=config.layer_norm_eps, bias=False)
        self.output_proj = Linear(inner, output_size) if output_size else None

    def forward(
        self,
        hidden_states,
        key_value_states=None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, list, list, list]:
        """Returns the output, then per layer (when asked) the self-attention weights, the cross-attention weights
        and the token stream after the layer (lists; empty when not asked or when the layer has no such attention)."""
        if self.input_proj is not None:
            hidden_states = self.input_proj(hidden_states)
        self_attentions, cross_attentions, all_hidden_states = [], [], []
        for layer in self.layers:
            hidden_states, self_weights, cross_weights = layer(hidden_states, key_value_states)
            if output_attentions:
                if self_weights is not None:
                    self_attentions.append(self_weights)
                if cross_weights is not None:
                    cross_attentions.append(cross_weights)
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
        hidden_states = self.final_norm(hidden_states)
        if self.output_proj is not None:
            hidden_states = self.output_proj(hidden_states)
        return hidden_states, self_attentions, cross_attentions, all_hidden_states


# --------------------------------------------------------------------------------------------------------------------
# Encoder, decoder, heads


class MooGTokenProjection(nn.Module):
    """``[Dense] -> LayerNorm -> [Dense]`` over the encoder tokens (spec §2.3).

    The reference builds this as an ``ImprovedTransformer`` with no blocks, which computes exactly this; the
    parameter names (``input_proj``, ``final_norm``, ``output_proj``) are those of :class:`MooGTransformer`, so
    converted checkpoints load unchanged. Each Dense is present only when its width is set.
    """

    def __init__(self, config, width: int, hidden_size: int | None = None, output_size: int | None = None):
        super().__init__()
        inner = hidden_size or width
        self.input_proj = Linear(width, hidden_size) if hidden_size else None
        self.final_norm = nn.LayerNorm(inner, eps=config.layer_norm_eps, bias=False)
        self.output_proj = Linear(inner, output_size) if output_size else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.input_proj is not None:
            hidden_states = self.input_proj(hidden_states)
        hidden_states = self.final_norm(hidden_states)
        return hidden_states if self.output_proj is None else self.output_proj(hidden_states)


class MooGEncoder(nn.Module):
    """Per-frame CNN (SAME padding) -> LayerNorm -> Fourier features -> Dense -> LayerNorm [-> Dense] (spec §2.1-2.3)."""

    def __init__(self, config: MooGConfig):
        super().__init__()
        self.config = config
        channels = [config.num_channels, *config.conv_features]
        self.convs = nn.ModuleList(
            [
                Conv2d(channels[i], channels[i + 1], config.conv_kernel_size, stride=config.conv_strides[i])
                for i in range(len(config.conv_features))
            ]
        )
        self.act = activation(config.hidden_act)
        self.conv_norm = nn.LayerNorm(config.conv_features[-1], eps=config.layer_norm_eps, bias=False)
        self.posenc_proj = (
            Linear(config.encoder_posenc_size, config.conv_features[-1])
            if config.posenc_mode == "project_add"
            else None
        )
        self.token_projection = MooGTokenProjection(
            config, config.encoder_input_size, config.encoder_hidden_size, config.encoder_output_size
        )

    def feature_map_size(self, height: int, width: int) -> tuple[int, int]:
        for stride in self.config.conv_strides:
            height, width = -(-height // stride), -(-width // stride)
        return height, width

    def conv_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) frames -> (N, h, w, C') CNN output after the channel LayerNorm."""
        x = frames
        kernel = self.config.conv_kernel_size
        for index, conv in enumerate(self.convs):
            stride = conv.stride[0]
            top, bottom = same_padding(x.shape[-2], kernel, stride)
            left, right = same_padding(x.shape[-1], kernel, stride)
            x = conv(F.pad(x, (left, right, top, bottom)))
            if index < len(self.convs) - 1:
                x = self.act(x)
        return self.conv_norm(x.permute(0, 2, 3, 1))

    def posenc(self, height: int, width: int, device=None) -> torch.Tensor:
        """(h, w, 4 n) Fourier table of the feature-map grid."""
        return fourier_features(coordinate_grid(height, width).to(device), self.config.enc_fourier_bases)

    def forward(self, frames: torch.Tensor, return_conv: bool = False):
        x = self.conv_features(frames)
        count, height, width, _ = x.shape
        table = self.posenc(height, width, x.device).to(x.dtype)
        if self.posenc_proj is None:
            x = torch.cat([x, table.expand(count, -1, -1, -1)], dim=-1)
        else:
            x = x + self.posenc_proj(table)
        tokens = self.token_projection(x.reshape(count, height * width, -1))
        return (tokens, x[..., : self.config.conv_features[-1]]) if return_conv else tokens


DECODER_QUERY_CHUNK = 4096  # pixels decoded per pass by default (memory bound, see MooGGridDecoder)


class MooGGridDecoder(nn.Module):
    """Coordinate-query decoder: queries ``[0^D, Fourier(coords)]`` cross-attend to state tokens (spec §2.7, §4.2)."""

    def __init__(self, config, num_layers, qkv_size, num_heads, mlp_size, out_channels, kv_dim):
        super().__init__()
        self.config = config
        self.query_size = config.token_size + 4 * config.dec_fourier_bases
        self.transformer = MooGTransformer(
            config, self.query_size, num_layers, qkv_size, num_heads, mlp_size, kv_dim=kv_dim, self_attention=False
        )
        self.recon = Linear(self.query_size, out_channels)

    def posenc(self, height: int, width: int, device=None) -> torch.Tensor:
        return fourier_features(coordinate_grid(height, width).to(device), self.config.dec_fourier_bases)

    def forward(
        self,
        key_value_states: torch.Tensor,
        height: int,
        width: int,
        subsample_factor: int = 1,
        offsets: torch.Tensor | None = None,
        output_attentions: bool = False,
        chunk_size: int | None = None,
    ):
        """(B, N, D) tokens -> (B, h, w, C) decoded pixels, (B, h) rows, (B, w) cols, attentions per layer."""
        batch, device = key_value_states.shape[0], key_value_states.device
        if offsets is None:
            offsets = torch.zeros(batch, 2, dtype=torch.long, device=device)
        rows = subsample_indices(height, subsample_factor, offsets[:, 0].to(device))
        cols = subsample_indices(width, subsample_factor, offsets[:, 1].to(device))
        table = self.posenc(height, width, device).to(key_value_states.dtype)
        queries_posenc = table[rows[:, :, None], cols[:, None, :]]
        out_h, out_w = rows.shape[1], cols.shape[1]
        queries_posenc = queries_posenc.reshape(batch, out_h * out_w, -1)
        zeros = queries_posenc.new_zeros(batch, out_h * out_w, self.config.token_size)
        queries = torch.cat([zeros, queries_posenc], dim=-1)
        # Queries are independent (no self-attention among pixels): decoding them in chunks bounds memory at any
        # resolution (about 0.45 GB at 256x256 with the released config) and changes nothing but float rounding.
        chunk = chunk_size or min(queries.shape[1], DECODER_QUERY_CHUNK)
        outputs, attentions = [], []
        for start in range(0, queries.shape[1], chunk):
            hidden, _, weights, _ = self.transformer(
                queries[:, start : start + chunk], key_value_states, output_attentions=output_attentions
            )
            outputs.append(self.recon(hidden))
            attentions.append(weights)
        decoded = torch.cat(outputs, dim=1).reshape(batch, out_h, out_w, -1)
        layer_weights = None
        if output_attentions:
            layer_weights = tuple(torch.cat([w[i] for w in attentions], dim=2) for i in range(len(attentions[0])))
        return decoded, rows, cols, layer_weights


class MooGQueryEmbedding(nn.Module):
    """``MLP(Fourier_replace(query))``: coordinates in [0, 1] times pi, then Dense -> gelu -> Dense (spec §3.1)."""

    def __init__(self, config, query_dim: int, size: int, num_bases: int):
        super().__init__()
        self.query_dim = query_dim
        self.num_bases = num_bases
        self.mlp = FeedForward(2 * query_dim * num_bases, size, size, act=config.hidden_act)

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        if queries.ndim != 3 or queries.shape[-1] != self.query_dim:
            raise ValueError(
                f"queries must have shape (batch, num_queries, {self.query_dim}), got {tuple(queries.shape)}"
            )
        return self.mlp(fourier_features(queries, self.num_bases).to(self.mlp.dense_in.weight.dtype))


def point_tracking_output(
    positions: torch.Tensor,
    logits_visible: torch.Tensor,
    logits_certainty: torch.Tensor,
    threshold: float,
    frame_size,
    **extra,
) -> MooGPointTrackingOutput:
    """The heads' (B, T, Q, 2) positions in [0, 1] and (B, T, Q, 1) logits -> the shared point output: tracks
    (B, Q, T, 2) (x, y) in pixels of frames of ``frame_size`` (H, W), occlusion and logits (B, Q, T)."""
    height, width = (int(v) for v in frame_size)
    tracks = positions.transpose(1, 2) * positions.new_tensor([width, height])
    visibility, certainty = logits_visible[..., 0].transpose(1, 2), logits_certainty[..., 0].transpose(1, 2)
    visible = torch.sigmoid(visibility) * torch.sigmoid(certainty) > threshold
    return MooGPointTrackingOutput(
        tracks=tracks, occluded=~visible, visibility_logits=visibility, certainty_logits=certainty, **extra
    )


class MooGTrackingReadout(nn.Module):
    """The released point/box head: query embedding, temporal tiling, AttentionReadout over all T*K tokens (§3)."""

    def __init__(self, config: MooGConfig, kind: str):
        super().__init__()
        if kind not in ("point", "box"):
            raise ValueError(f"kind must be 'point' or 'box', got {kind!r}")
        self.kind = kind
        self.config = config
        get = lambda name: getattr(config, f"{kind}_readout_{name}")  # noqa: E731
        self.query_dim = 2 if kind == "point" else 4
        self.num_tiles = get("temporal_tile_size")
        self.frames_per_query = get("frames_per_query")
        self.num_frames = config.readout_num_frames
        query_size = get("query_mlp_size")
        num_params = get("num_params")
        if get("mlp_size") % num_params:
            raise ValueError(f"{kind}_readout_mlp_size must be a multiple of {kind}_readout_num_params")
        self.query_embedding = MooGQueryEmbedding(config, self.query_dim, query_size, config.readout_fourier_bases)
        self.temporal_tile_embedding = (
            nn.Parameter(torch.zeros(self.num_tiles, query_size)) if self.num_tiles > 1 else None
        )
        self.readout = AttentionReadout(
            config,
            input_dim=config.token_size,
            num_params=num_params,
            num_heads=get("num_heads"),
            num_classes=4 * self.frames_per_query,
            query_dim=query_size,
            num_frames=self.num_frames,
            layer_norm_eps=config.layer_norm_eps,
            mlp_ratio=get("mlp_size") // num_params,
            act=config.hidden_act,
            squeeze_single_query=False,
        )

    def forward(
        self, features: torch.Tensor, queries: torch.Tensor, frame_size=None
    ) -> MooGPointTrackingOutput | MooGBoxTrackingOutput:
        """(B, T, K, D) features and (B, Q, 2|4) queries in [0, 1] -> tracks in pixels of ``frame_size`` (H, W)
        (default ``config.image_size``), or boxes in [0, 1]."""
        if features.ndim != 4 or features.shape[-1] != self.config.token_size:
            raise ValueError(
                f"features must have shape (batch, frames, tokens, {self.config.token_size}), "
                f"got {tuple(features.shape)}"
            )
        if features.shape[1] != self.num_frames:
            raise ValueError(
                f"the released {self.kind} head reads clips of exactly {self.num_frames} frames, got "
                f"{features.shape[1]}; split the video into {self.num_frames}-frame clips (carry the state)"
                + (" or use point_readout_type='recurrent'" if self.kind == "point" else "")
            )
        if queries.shape[0] != features.shape[0]:
            raise ValueError(f"queries batch {queries.shape[0]} does not match the video batch {features.shape[0]}")
        embedding = self.query_embedding(queries)
        batch, num_queries, width = embedding.shape
        tiled = embedding
        if self.temporal_tile_embedding is not None:
            tiled = embedding[:, :, None, :] + self.temporal_tile_embedding
        tiled = tiled.reshape(batch, num_queries * self.num_tiles, width)
        raw = self.readout(features, tiled)
        out = raw.reshape(batch, num_queries, self.num_tiles, self.frames_per_query, 4)
        out = out.permute(0, 2, 3, 1, 4).reshape(batch, self.num_tiles * self.frames_per_query, num_queries, 4)
        if self.kind == "box":
            return MooGBoxTrackingOutput(boxes=out.transpose(1, 2), query_embedding=embedding, raw_output=raw)
        return point_tracking_output(
            torch.sigmoid(out[..., 0:2]),
            out[..., 2:3],
            out[..., 3:4],
            self.config.visibility_threshold,
            frame_size or self.config.image_size,
            query_embedding=embedding,
            raw_output=raw,
        )


class MooGRecurrentPointReadout(nn.Module):
    """The paper's recurrent query readout (``ConditionalAutoregressiveReadout``, spec §4.1), any clip length."""

    def __init__(self, config: MooGConfig):
        super().__init__()
        self.config = config
        latent = config.recurrent_latent_size
        self.query_embedding = MooGQueryEmbedding(config, 2, latent, config.readout_fourier_bases)
        self.corrector = MooGTransformer(
            config,
            latent,
            config.recurrent_num_layers,
            config.recurrent_qkv_size,
            config.recurrent_num_heads,
            config.recurrent_mlp_size,
            kv_dim=config.token_size,
            self_attention=False,
            hidden_size=latent,
            output_size=latent,
        )
        self.predictor = FeedForward(latent, latent, latent, act=config.hidden_act)
        self.state_norm = nn.LayerNorm(latent, eps=config.recurrent_state_ln_eps, bias=False)
        self.output_values = FeedForward(latent, latent, 2, act=config.hidden_act)
        self.output_logits = FeedForward(latent, latent, 2, act=config.hidden_act)

    def forward(
        self,
        states_concat: torch.Tensor,
        queries: torch.Tensor,
        query_frame_mask: torch.Tensor | None = None,
        readout_state: torch.Tensor | None = None,
        frame_size=None,
    ) -> MooGPointTrackingOutput:
        batch, frames = states_concat.shape[:2]
        embedding = self.query_embedding(queries)
        num_queries = embedding.shape[1]
        if query_frame_mask is None:
            query_frame_mask = torch.zeros(batch, frames, num_queries, dtype=torch.bool, device=queries.device)
            if readout_state is None:
                query_frame_mask[:, 0] = True
        if tuple(query_frame_mask.shape) != (batch, frames, num_queries):
            raise ValueError(
                f"query_frame_mask must have shape (batch, frames, queries) = {(batch, frames, num_queries)}, "
                f"got {tuple(query_frame_mask.shape)}"
            )
        latent = embedding if readout_state is None else readout_state
        if latent.shape != embedding.shape:
            raise ValueError(f"readout_state must have shape {tuple(embedding.shape)}, got {tuple(latent.shape)}")
        states, corrected_states = [], []
        for t in range(frames):
            latent = torch.where(query_frame_mask[:, t, :, None].bool(), embedding, latent)
            update = self.corrector(latent, states_concat[:, t])[0]
            corrected = latent + update
            latent = self.state_norm(corrected + self.predictor(corrected))
            corrected_states.append(corrected)
            states.append(latent)
        corrected_states = torch.stack(corrected_states, dim=1)
        logits = self.output_logits(corrected_states)
        return point_tracking_output(
            torch.sigmoid(self.output_values(corrected_states)),
            logits[..., 0:1],
            logits[..., 1:2],
            self.config.visibility_threshold,
            frame_size or self.config.image_size,
            query_embedding=embedding,
            readout_states=torch.stack(states, dim=1),
            readout_states_corrected=corrected_states,
            readout_state=latent,
        )


# --------------------------------------------------------------------------------------------------------------------
# Models


class MooGPreTrainedModel(Rep4DPreTrainedModel):
    config: MooGConfig
    config_class = MooGConfig
    base_model_prefix = "moog"
    _no_split_modules = ["MooGTransformerLayer"]
    _supports_flash_attn = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MooGTrackingReadout) and module.temporal_tile_embedding is not None:
            trunc_normal_init_(module.temporal_tile_embedding, self.config.initializer_range)


class MooGModel(MooGPreTrainedModel):
    """The MooG backbone: per-frame encoder plus the predictor/corrector recurrence over K state tokens (spec §2).

    Streaming: ``model(clip_b, state=model(clip_a).final_state)`` equals ``model(cat(clip_a, clip_b))``; every
    frame costs the same, so videos of any length can be processed in chunks (or frame by frame).
    """

    _input_embed_layer = "encoder"  # get_input_embeddings(): the per-frame encoder (pixels -> tokens)
    # A MooG folder holds the backbone with its pixel decoder or a head: loading the backbone alone
    # (AutoModel.from_pretrained) leaves those out on purpose, not as a mismatch to report.
    _keys_to_ignore_on_load_unexpected = [r"^decoder\.", r"^readout\."]

    def __init__(self, config: MooGConfig):
        super().__init__(config)
        self.encoder = MooGEncoder(config)
        self.predictor = MooGTransformer(
            config,
            config.token_size,
            config.predictor_num_layers,
            config.predictor_qkv_size,
            config.predictor_num_heads,
            config.predictor_mlp_size,
        )
        self.corrector = MooGTransformer(
            config,
            config.token_size,
            config.corrector_num_layers,
            config.corrector_qkv_size,
            config.corrector_num_heads,
            config.corrector_mlp_size,
            kv_dim=config.encoder_token_size,
        )
        self.state_norm = nn.LayerNorm(config.token_size, eps=config.state_ln_eps, bias=False)
        self.post_init()

    def initial_state(
        self,
        batch_size: int,
        initial_noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_tokens: int | None = None,
        device=None,
    ) -> torch.Tensor:
        """``state_init_scale * noise`` (B, K, D); the noise is drawn from ``generator`` (default: torch's global RNG)."""
        num_tokens = num_tokens or self.config.num_tokens
        shape = (batch_size, num_tokens, self.config.token_size)
        dtype = self.state_norm.weight.dtype
        if initial_noise is None:
            device = device if device is not None else self.state_norm.weight.device
            gen_device = generator.device if generator is not None else device
            initial_noise = torch.randn(shape, generator=generator, device=gen_device, dtype=torch.float32).to(device)
        elif tuple(initial_noise.shape) != shape:
            raise ValueError(
                f"initial_noise must have shape (batch, num_tokens, token_size) = {shape}, "
                f"got {tuple(initial_noise.shape)}"
            )
        state = (torch.tensor(self.config.state_init_scale, dtype=torch.float32) * initial_noise.float()).to(dtype)
        if self.config.state_norm_position == "end":
            state = self.state_norm(state)
        return state

    def check_state(self, state: torch.Tensor, batch_size: int, num_tokens: int | None) -> None:
        if not isinstance(state, torch.Tensor) or state.ndim != 3:
            raise ValueError(
                "state must be a (batch, num_tokens, token_size) tensor, got "
                f"{tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__}"
            )
        if state.shape[0] != batch_size or state.shape[2] != self.config.token_size:
            raise ValueError(
                f"state must have shape ({batch_size}, num_tokens, {self.config.token_size}) for this batch, "
                f"got {tuple(state.shape)}"
            )
        if num_tokens is not None and state.shape[1] != num_tokens:
            raise ValueError(f"state has {state.shape[1]} tokens but num_tokens={num_tokens} was requested")

    def step(
        self,
        state: torch.Tensor,
        frame_tokens: torch.Tensor,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ):
        """One recurrence step: returns (normed input, predicted, corrected, next state, records), ``records`` a dict
        of per-layer lists (``hidden_states``, ``attentions``, ``cross_attentions``) filled when asked."""
        normed = self.state_norm(state) if self.config.state_norm_position == "start" else state
        update, predictor_self, _, predictor_hidden = self.predictor(
            normed, output_attentions=output_attentions, output_hidden_states=output_hidden_states
        )
        predicted = normed + update
        update, corrector_self, corrector_cross, corrector_hidden = self.corrector(
            predicted, frame_tokens, output_attentions=output_attentions, output_hidden_states=output_hidden_states
        )
        corrected = predicted + update
        if self.config.state_norm_position == "end":
            corrected = self.state_norm(corrected)
        records = {
            "hidden_states": [normed, *predictor_hidden, *corrector_hidden] if output_hidden_states else [],
            "attentions": [*predictor_self, *corrector_self],
            "cross_attentions": corrector_cross,
        }
        return normed, predicted, corrected, corrected, records

    def get_video_features(
        self,
        pixel_values: torch.Tensor,
        state: torch.Tensor | None = None,
        initial_noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_tokens: int | None = None,
        grid_features: bool = False,
        **kwargs,
    ) -> VideoFeaturesOutput:
        r"""Per-frame features: the corrected latent states, or the encoder's tokens on the pixel grid.

        Args:
            pixel_values: (B, T, C, H, W) float video in [0, 1].
            state / initial_noise / num_tokens: as :meth:`forward`. When none of ``state``, ``initial_noise`` and
                ``generator`` is given, the initial state is drawn once from a generator seeded with 0 and shared by every
                clip of the batch, so the features are a function of the video alone (cacheable, reproducible
                evaluation, independent of the batch position).
            grid_features: return the per-frame encoder tokens (B, T, h*w, E) on the CNN feature-map grid instead
                of the latent states. MooG's K latent tokens are not tied to pixel positions; dense tasks that need
                a feature per location (label propagation) read the encoder tokens, which carry no recurrent state.

        Returns:
            :class:`VideoFeaturesOutput` with ``features`` (B, T, K, D) corrected states, ``grid_size`` None and
            ``final_state`` (B, K, D) to pass back as ``state``; with ``grid_features``: ``features``
            (B, T, h*w, E), ``grid_size`` (h, w) and ``final_state`` None.
        """
        check_video_input(pixel_values, self.config.num_channels)
        if grid_features:
            batch, frames = pixel_values.shape[:2]
            dtype = self.state_norm.weight.dtype
            tokens = self.encoder(pixel_values.flatten(0, 1).to(dtype))
            grid = self.encoder.feature_map_size(*pixel_values.shape[-2:])
            return VideoFeaturesOutput(features=tokens.unflatten(0, (batch, frames)), grid_size=grid)
        if state is None and initial_noise is None and generator is None:
            # One noise draw shared by the whole batch: a clip's features must not depend on its batch position.
            generator = torch.Generator(device=pixel_values.device).manual_seed(0)
            shape = (1, num_tokens or self.config.num_tokens, self.config.token_size)
            initial_noise = torch.randn(shape, generator=generator, device=pixel_values.device)
            initial_noise, generator = initial_noise.expand(pixel_values.shape[0], -1, -1), None
        outputs = self(
            pixel_values, state=state, initial_noise=initial_noise, generator=generator, num_tokens=num_tokens, **kwargs
        )
        return VideoFeaturesOutput(features=outputs.features, final_state=outputs.final_state)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        state: torch.Tensor | None = None,
        initial_noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_tokens: int | None = None,
        output_intermediates: bool = False,
        output_states_concat: bool = False,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> MooGModelOutput:
        r"""
        Args:
            pixel_values: (B, T, C, H, W) float video in [0, 1].
            state: (B, K, D) state to continue from (``final_state`` of the previous chunk). When None a new state
                is made from ``initial_noise`` (B, K, D) standard-normal noise, or noise drawn from ``generator``
                (torch's global RNG by default, so ``torch.manual_seed`` makes it reproducible).
            num_tokens: number of state tokens K of a new state (default ``config.num_tokens``); MooG works with
                another K at inference than in training.
            output_intermediates: also return the normed states and the encoder tokens of every frame.
            output_states_concat: also return ``[predicted || LN(corrected)]`` (input of the recurrent/grid readouts).
            output_attentions: return the self- and cross-attention weights of every layer and frame (eager
                attention; under SDPA a warning is logged and they are None).
            output_hidden_states: return the token streams of every predictor and corrector layer and frame.
        """
        check_video_input(pixel_values, self.config.num_channels)
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_attentions = attention_weights_available(self.config, output_attentions)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        batch, frames = pixel_values.shape[:2]
        if state is None:
            state = self.initial_state(batch, initial_noise, generator, num_tokens, device=pixel_values.device)
        else:
            if initial_noise is not None:
                raise ValueError("pass either state (to continue a video) or initial_noise (to start one), not both")
            self.check_state(state, batch, num_tokens)
        dtype = self.state_norm.weight.dtype
        state = state.to(dtype)
        normed_all, predicted_all, corrected_all, concat_all, encoded_all = [], [], [], [], []
        records_all = []
        for t in range(frames):
            tokens = self.encoder(pixel_values[:, t].to(dtype))
            normed, predicted, corrected, state, records = self.step(
                state, tokens, output_attentions, output_hidden_states
            )
            predicted_all.append(predicted)
            corrected_all.append(corrected)
            records_all.append(records)
            if output_intermediates:
                normed_all.append(normed)
                encoded_all.append(tokens)
            if output_states_concat:
                normed_corrected = corrected if self.config.state_norm_position == "end" else self.state_norm(corrected)
                concat_all.append(torch.cat([predicted, normed_corrected], dim=1))
        corrected = torch.stack(corrected_all, dim=1)

        def per_layer(name: str, wanted: bool):
            """(layer -> per-frame list) stacked along time: one (B, T, ...) tensor per layer."""
            if not wanted or frames == 0:
                return None
            return tuple(
                torch.stack([step[name][i] for step in records_all], dim=1) for i in range(len(records_all[0][name]))
            )

        return MooGModelOutput(
            features=corrected,
            final_state=state,
            predicted_states=torch.stack(predicted_all, dim=1),
            corrected_states=corrected,
            normed_states=torch.stack(normed_all, dim=1) if output_intermediates else None,
            states_concat=torch.stack(concat_all, dim=1) if output_states_concat else None,
            encoder_features=torch.stack(encoded_all, dim=1) if output_intermediates else None,
            hidden_states=per_layer("hidden_states", output_hidden_states),
            attentions=per_layer("attentions", output_attentions),
            cross_attentions=per_layer("cross_attentions", output_attentions),
        )


def random_offsets(batch: int, frames: int, factor: int, generator=None, device=None) -> torch.Tensor:
    """Training offsets: one uniform (row, col) pair in [0, f) per batch element and step."""
    if factor <= 1:
        return torch.zeros(batch, frames, 2, dtype=torch.long, device=device)
    gen_device = generator.device if generator is not None else device
    return torch.randint(0, factor, (batch, frames, 2), generator=generator, device=gen_device).to(device)


class MooGForNextFramePrediction(MooGPreTrainedModel):
    """MooG backbone + the pixel decoder reading the predicted state: frame t is decoded before it is seen (§2.7).

    At inference the decoder produces full frames (``eval_subsample_factor``, 1 by default); in training it decodes
    every ``train_subsample_factor``-th pixel with a random (or given) offset, as the reference does, and the loss is
    the mean squared error on those pixels.
    """

    accepts_loss_kwargs = False

    def __init__(self, config: MooGConfig):
        super().__init__(config)
        self.moog = MooGModel(config)
        self.decoder = MooGGridDecoder(
            config,
            config.decoder_num_layers,
            config.decoder_qkv_size,
            config.decoder_num_heads,
            config.decoder_mlp_size,
            config.decoder_output_channels,
            kv_dim=config.token_size,
        )
        self.post_init()

    def decode(
        self,
        predicted_states: torch.Tensor,
        height: int,
        width: int,
        subsample_factor: int = 1,
        offsets: torch.Tensor | None = None,
        output_attentions: bool = False,
        chunk_size: int | None = None,
    ):
        """(B, T, K, D) states -> (B, T, h, w, C) pixels (channels-last), rows (B, T, h), cols (B, T, w), attentions."""
        batch, frames = predicted_states.shape[:2]
        if offsets is not None and tuple(offsets.shape) != (batch, frames, 2):
            raise ValueError(f"offsets must have shape (batch, frames, 2) = {(batch, frames, 2)}, got {tuple(offsets.shape)}")
        decoded, rows, cols, attentions = [], [], [], []
        for t in range(frames):
            out, r, c, weights = self.decoder(
                predicted_states[:, t],
                height,
                width,
                subsample_factor,
                None if offsets is None else offsets[:, t],
                output_attentions=output_attentions,
                chunk_size=chunk_size,
            )
            decoded.append(out)
            rows.append(r)
            cols.append(c)
            attentions.append(weights)
        layer_weights = None
        if output_attentions:
            layer_weights = tuple(torch.stack([w[i] for w in attentions], dim=1) for i in range(len(attentions[0])))
        return torch.stack(decoded, 1), torch.stack(rows, 1), torch.stack(cols, 1), layer_weights

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        state: torch.Tensor | None = None,
        initial_noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_tokens: int | None = None,
        subsample_factor: int | None = None,
        offsets: torch.Tensor | None = None,
        return_loss: bool = True,
        output_attentions: bool | None = None,
        decoder_chunk_size: int | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> MooGNextFramePredictionOutput:
        r"""
        Args:
            pixel_values: (B, T, C, H, W) float video in [0, 1]; also the targets of the next-frame loss.
            state / initial_noise / generator / num_tokens: as :meth:`MooGModel.forward`.
            subsample_factor: decode every f-th pixel (default: ``train_subsample_factor`` in training mode,
                ``eval_subsample_factor`` otherwise); H and W must be divisible by f.
            offsets: (B, T, 2) integer (row, col) roll offsets in [0, f); default random in training (from
                ``generator``), zero at inference.
            output_attentions: return the decoder attention of every pixel over the state tokens and the backbone's
                attentions (eager attention; under SDPA a warning is logged and they are None).
            decoder_chunk_size: decode at most this many pixels at once (default 4096: bounds memory at full
                resolution; 65,536 queries per 256x256 frame).
            output_hidden_states: return the backbone's hidden states (:class:`MooGModelOutput`).
        """
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_attentions = attention_weights_available(self.config, output_attentions)
        outputs = self.moog(
            pixel_values,
            state=state,
            initial_noise=initial_noise,
            generator=generator,
            num_tokens=num_tokens,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        batch, frames, _, height, width = pixel_values.shape
        if subsample_factor is None:
            subsample_factor = self.config.train_subsample_factor if self.training else self.config.eval_subsample_factor
        if offsets is None and self.training:
            offsets = random_offsets(batch, frames, subsample_factor, generator, pixel_values.device)
        decoded, rows, cols, attentions = self.decode(
            outputs.predicted_states, height, width, subsample_factor, offsets, output_attentions, decoder_chunk_size
        )
        video = pixel_values.permute(0, 1, 3, 4, 2)
        b_index = torch.arange(batch, device=video.device)[:, None, None, None]
        t_index = torch.arange(frames, device=video.device)[None, :, None, None]
        targets = video[b_index, t_index, rows[:, :, :, None], cols[:, :, None, :]]
        loss = ((decoded.float() - targets.float()) ** 2).mean() if return_loss else None
        return MooGNextFramePredictionOutput(
            loss=loss,
            predicted_pixel_values=decoded.permute(0, 1, 4, 2, 3),
            target_pixel_values=targets.permute(0, 1, 4, 2, 3),
            pixel_rows=rows,
            pixel_cols=cols,
            features=outputs.features,
            final_state=outputs.final_state,
            predicted_states=outputs.predicted_states,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cross_attentions=outputs.cross_attentions,
            decoder_attentions=attentions,
        )


class MooGTrackingHeadModel(MooGPreTrainedModel):
    """A released MooG tracking head on its own: ``head(features, queries)`` as in the notebook (spec §3.5).

    ``config.tracking_head`` ("point" or "box") selects the head; combine it with a backbone through
    :meth:`MooGForPointTracking.from_backbone_and_head` / :meth:`MooGForBoxTracking.from_backbone_and_head`.
    Its input is the backbone's features, not a video, and it has no layer stack of its own: it returns no hidden
    states or attentions.
    """

    main_input_name = "features"
    input_modalities = "video"
    supports_gradient_checkpointing = False  # one attention readout, no checkpointable layer stack

    def __init__(self, config: MooGConfig):
        super().__init__(config)
        kind = config.tracking_head
        self.readout = MooGTrackingReadout(config, kind)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        """The query embedding (Fourier features + MLP), the head's only input projection."""
        return self.readout.query_embedding

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.readout.query_embedding = value

    @can_return_tuple
    def forward(
        self, features: torch.Tensor, queries: torch.Tensor, frame_size=None, **kwargs
    ) -> MooGPointTrackingOutput | MooGBoxTrackingOutput:
        r"""
        Args:
            features: (B, T, K, D) MooG features (``MooGModel(...).features``); T = ``readout_num_frames``.
            queries: (B, Q, 2) point queries (x, y) or (B, Q, 4) box queries (y1, x1, y2, x2), in [0, 1].
            frame_size: (H, W) of the frames, to return tracks in pixels (default ``config.image_size``).
        """
        return self.readout(features, queries, frame_size)


def check_queries(queries, batch: int, dim: int, name: str) -> None:
    if not isinstance(queries, torch.Tensor) or queries.ndim != 3 or queries.shape[0] != batch or queries.shape[2] != dim:
        shape = tuple(queries.shape) if isinstance(queries, torch.Tensor) else type(queries).__name__
        raise ValueError(f"{name} must have shape ({batch}, num_queries, {dim}) with coordinates in [0, 1], got {shape}")


def pixel_queries_to_unit_xy(queries: torch.Tensor, video_shape, recurrent: bool, query_frame_mask=None):
    """(B, Q, 3) (t, y, x) queries in pixels -> ((B, Q, 2) (x, y) in [0, 1], query_frame_mask) for MooG's heads."""
    batch, frames, _, height, width = video_shape
    if queries.shape[0] != batch:
        raise ValueError(f"query_points must have shape ({batch}, num_queries, 3) as (t, y, x), got {tuple(queries.shape)}")
    times = queries[..., 0].round().long()
    if (times < 0).any() or (times >= frames).any():
        raise ValueError(f"query frame indices t must lie in [0, {frames - 1}], got {queries[..., 0].min().item():g}.."
                         f"{queries[..., 0].max().item():g}")
    if not recurrent and (times != 0).any():
        raise ValueError("MooG's released point head takes queries on the first frame of the clip only (t = 0); "
                         "use point_readout_type='recurrent' for queries on later frames")
    unit_xy = torch.stack([queries[..., 2] / width, queries[..., 1] / height], dim=-1).to(queries.dtype)
    if recurrent and query_frame_mask is None:
        query_frame_mask = torch.nn.functional.one_hot(times, frames).permute(0, 2, 1).bool()
    return unit_xy, query_frame_mask


class _MooGTrackingBase(MooGPreTrainedModel):
    kind = "point"

    @classmethod
    def from_backbone_and_head(cls, backbone: MooGPreTrainedModel, head: MooGTrackingHeadModel):
        """Assemble a tracking model from a converted backbone (MooGModel or a model holding one) and a head."""
        check_moog_model(backbone, "a MooG backbone (MooGModel or MooGForNextFramePrediction)")
        if not isinstance(head, MooGTrackingHeadModel):
            raise ValueError(f"expected a MooGTrackingHeadModel (model family 'moog'), got {type(head).__name__}")
        if head.readout.kind != cls.kind:
            raise ValueError(f"{cls.__name__} needs a {cls.kind} head, got a {head.readout.kind} head")
        config = MooGConfig(**{**backbone.config.to_dict(), **_readout_fields(head.config, cls.kind)})
        model = cls(config)
        base = backbone if isinstance(backbone, MooGModel) else backbone.moog
        model.moog.load_state_dict(base.state_dict())
        model.readout.load_state_dict(head.readout.state_dict())
        return model.eval()

    def check_clip_length(self, pixel_values: torch.Tensor, advice: str = "") -> None:
        """The released heads read clips of exactly ``config.readout_num_frames`` frames."""
        frames = self.config.readout_num_frames
        if pixel_values.shape[1] != frames:
            raise ValueError(
                f"the released {self.kind} head reads clips of exactly {frames} frames, got {pixel_values.shape[1]} "
                f"(pixel_values shape {tuple(pixel_values.shape)}){advice}"
            )

    def backbone_then_head(self, pixel_values: torch.Tensor, read_head, **backbone_kwargs):
        """``read_head(self.moog(pixel_values, **backbone_kwargs))``, the head's output carrying the backbone's
        ``features``, ``final_state``, ``hidden_states`` and ``attentions``."""
        outputs = self.moog(pixel_values, **backbone_kwargs)
        result = read_head(outputs)
        result.features, result.final_state = outputs.features, outputs.final_state
        result.hidden_states, result.attentions = outputs.hidden_states, outputs.attentions
        return result


def _readout_fields(config: MooGConfig, kind: str) -> dict:
    prefixes = (f"{kind}_readout_", "readout_", "visibility_threshold", "recurrent_")
    return {key: value for key, value in config.to_dict().items() if key.startswith(prefixes)}


class MooGForPointTracking(_MooGTrackingBase):
    """MooG backbone + point readout: the released attention head (16-frame clips, ``point_readout_type='attention'``)
    or the paper's recurrent query readout (any length, ``'recurrent'``). Queries are (x, y) in [0, 1] at frame 0
    (recurrent: inserted at the frames given by ``query_frame_mask``)."""

    kind = "point"
    accepts_loss_kwargs = False

    def __init__(self, config: MooGConfig):
        super().__init__(config)
        self.moog = MooGModel(config)
        if config.point_readout_type == "recurrent":
            self.readout = MooGRecurrentPointReadout(config)
        else:
            self.readout = MooGTrackingReadout(config, "point")
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        query_points: torch.Tensor,
        query_frame_mask: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        readout_state: torch.Tensor | None = None,
        initial_noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_tokens: int | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> MooGPointTrackingOutput:
        r"""
        Returns the shared point output: ``tracks`` (B, Q, T, 2) (x, y) in pixels of the input frames, ``occluded``,
        ``visibility_logits`` and ``certainty_logits`` (B, Q, T), plus the backbone's ``final_state`` (and its
        ``hidden_states`` / ``attentions`` when asked).

        Args:
            pixel_values: (B, T, C, H, W) video in [0, 1]; T = 16 for the released head.
            query_points: (B, Q, 3) queries (t, y, x): clip frame index and pixels of the input frames, the layout of
                every rep4d point model (the readouts', TAP-Vid's); or (B, Q, 2) (x, y) in [0, 1] (fractions of the
                frame width and height, at frame 0), the released head's own layout. The released (attention) head
                takes queries on frame 0 only; the recurrent readout inserts each query at its frame.
            query_frame_mask: recurrent readout only, (B, T, Q) bool: the frame at which each query is inserted
                (default: frame 0 of a new video, or the queries' t).
            readout_state: recurrent readout only, (B, Q, L) latents of the previous chunk (``readout_state``).
        """
        check_video_input(pixel_values, self.config.num_channels)
        recurrent = isinstance(self.readout, MooGRecurrentPointReadout)
        if isinstance(query_points, torch.Tensor) and query_points.ndim == 3 and query_points.shape[-1] == 3:
            query_points, query_frame_mask = pixel_queries_to_unit_xy(
                query_points, pixel_values.shape, recurrent, query_frame_mask
            )
        check_queries(query_points, pixel_values.shape[0], 2, "query_points")
        if not recurrent:
            self.check_clip_length(
                pixel_values, f"; use clips of {self.config.readout_num_frames} frames or point_readout_type='recurrent'"
            )
        frame_size = pixel_values.shape[-2:]

        def read_head(outputs: MooGModelOutput) -> MooGPointTrackingOutput:
            if recurrent:
                return self.readout(outputs.states_concat, query_points, query_frame_mask, readout_state, frame_size)
            return self.readout(outputs.features, query_points, frame_size)

        return self.backbone_then_head(
            pixel_values,
            read_head,
            state=state,
            initial_noise=initial_noise,
            generator=generator,
            num_tokens=num_tokens,
            output_states_concat=recurrent,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )


class MooGForBoxTracking(_MooGTrackingBase):
    """MooG backbone + the released box head: (B, Q, 4) queries (y1, x1, y2, x2) in [0, 1] at frame 0, 16-frame
    clips, one query token predicts the boxes of all frames (no activation)."""

    kind = "box"
    accepts_loss_kwargs = False

    def __init__(self, config: MooGConfig):
        super().__init__(config)
        self.moog = MooGModel(config)
        self.readout = MooGTrackingReadout(config, "box")
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        query_boxes: torch.Tensor,
        state: torch.Tensor | None = None,
        initial_noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_tokens: int | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> MooGBoxTrackingOutput:
        r"""
        Returns the shared box output: ``boxes`` (B, O, T, 4) (y1, x1, y2, x2) in [0, 1], plus the backbone's
        ``final_state`` (and its ``hidden_states`` / ``attentions`` when asked).

        Args:
            pixel_values: (B, T, C, H, W) video in [0, 1]; T = ``readout_num_frames`` (16 for the released head).
            query_boxes: (B, O, 4) first-frame boxes (y1, x1, y2, x2) in [0, 1].
        """
        check_video_input(pixel_values, self.config.num_channels)
        check_queries(query_boxes, pixel_values.shape[0], 4, "query_boxes")
        self.check_clip_length(pixel_values)
        return self.backbone_then_head(
            pixel_values,
            lambda outputs: self.readout(outputs.features, query_boxes),
            state=state,
            initial_noise=initial_noise,
            generator=generator,
            num_tokens=num_tokens,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )


class MooGForDepthEstimation(MooGPreTrainedModel):
    """MooG backbone + the grid (dense) readout of the paper: coordinate queries cross-attend to the predicted and
    corrected states of each frame (``states_concat``, spec §4.2) and regress depth at any resolution."""

    accepts_loss_kwargs = False

    def __init__(self, config: MooGConfig):
        super().__init__(config)
        self.moog = MooGModel(config)
        self.readout = MooGGridDecoder(
            config,
            config.depth_readout_num_layers,
            config.depth_readout_qkv_size,
            config.depth_readout_num_heads,
            config.depth_readout_mlp_size,
            config.depth_output_channels,
            kv_dim=config.token_size,
        )
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        initial_noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        subsample_factor: int | None = None,
        offsets: torch.Tensor | None = None,
        output_size: tuple[int, int] | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> MooGDepthEstimatorOutput:
        r"""
        Args:
            labels: optional (B, T, H, W) depth; the loss is the mean squared error over finite, positive labels at
                the decoded pixels.
            output_size: (h, w) of the decoded depth grid (default: the input resolution).
        """
        outputs = self.moog(
            pixel_values,
            state=state,
            initial_noise=initial_noise,
            generator=generator,
            output_states_concat=True,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        batch, frames, _, height, width = pixel_values.shape
        height, width = output_size or (height, width)
        if subsample_factor is None:
            subsample_factor = self.config.train_subsample_factor if self.training else self.config.eval_subsample_factor
        if offsets is None and self.training:
            offsets = random_offsets(batch, frames, subsample_factor, generator, pixel_values.device)
        decoded, rows, cols = [], [], []
        for t in range(frames):
            out, r, c, _ = self.readout(
                outputs.states_concat[:, t], height, width, subsample_factor, None if offsets is None else offsets[:, t]
            )
            decoded.append(out)
            rows.append(r)
            cols.append(c)
        depth = torch.stack(decoded, 1)
        rows, cols = torch.stack(rows, 1), torch.stack(cols, 1)
        depth = depth[..., 0] if depth.shape[-1] == 1 else depth.permute(0, 1, 4, 2, 3)
        loss = None
        if labels is not None:
            if tuple(labels.shape) != (batch, frames, height, width):
                raise ValueError(f"labels must have shape {(batch, frames, height, width)}, got {tuple(labels.shape)}")
            b_index = torch.arange(batch, device=labels.device)[:, None, None, None]
            t_index = torch.arange(frames, device=labels.device)[None, :, None, None]
            target = labels[b_index, t_index, rows[:, :, :, None], cols[:, :, None, :]]
            loss = masked_mean_squared_error(depth, target, torch.isfinite(target) & (target > 0))
        return MooGDepthEstimatorOutput(
            loss=loss,
            predicted_depth=depth,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            final_state=outputs.final_state,
            pixel_rows=rows,
            pixel_cols=cols,
        )


__all__ = [
    "MooGModel",
    "MooGPreTrainedModel",
    "MooGForNextFramePrediction",
    "MooGForPointTracking",
    "MooGForBoxTracking",
    "MooGForDepthEstimation",
    "MooGTrackingHeadModel",
    "MooGModelOutput",
    "MooGNextFramePredictionOutput",
    "MooGPointTrackingOutput",
    "MooGBoxTrackingOutput",
    "MooGDepthEstimatorOutput",
    "coordinate_grid",
    "fourier_features",
    "jit_linspace",
]
