"""PyTorch RVM: Recurrent Video Masked Autoencoders (Zoran et al. 2025, arXiv 2512.13684).

A port of the Flax model of the DeepMind ``representations4d`` RVM notebooks. A per-frame ViT encodes each frame;
a gated "transformer GRU" (the recurrent core) carries a token-shaped state from frame to frame, and the state after
frame t is that frame's feature map. Numerics that matter for parity with the released checkpoints: LayerNorm eps 1e-6
(1e-4 and no bias on the state norm), tanh GELU, the 1-D MAE sinusoid table laid out on a 16x16 grid and resized with
``jax.image.resize``'s antialiased cubic kernel, cross-attention blocks in the order CA -> MLP -> SA, zero initial
state.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput, can_return_tuple

from ..configuration.configuration_rvm import RVMConfig
from .cpu_fast_paths import Conv2d, Linear
from .layers import CrossAttention, FeedForward, PreNormViTLayer, SelfAttention
from .outputs import VideoFeaturesOutput
from .pretrained import Rep4DPreTrainedModel, trunc_normal_init_
from .resampling import cubic_resize_matrix
from .video_inputs import check_video_input

# --------------------------------------------------------------------------------------------------------------------
# Position tables


def mae_sinusoid_table(num_positions: int, dim: int) -> np.ndarray:
    """The MAE 1-D table: ``PE[n, 2i] = sin(n / 10000^(2i/d))``, ``PE[n, 2i+1] = cos(...)``; float64 -> float32."""
    position = np.arange(num_positions, dtype=np.float64)[:, None]
    exponent = 2 * (np.arange(dim) // 2) / dim
    angles = position / np.power(10000.0, exponent)[None, :]
    table = np.empty((num_positions, dim), dtype=np.float64)
    table[:, 0::2] = np.sin(angles[:, 0::2])
    table[:, 1::2] = np.cos(angles[:, 1::2])
    return table.astype(np.float32)


@lru_cache(maxsize=64)
def _grid_table_np(base_h: int, base_w: int, height: int, width: int, dim: int) -> np.ndarray:
    table = mae_sinusoid_table(base_h * base_w, dim).reshape(base_h, base_w, dim)
    if (height, width) == (base_h, base_w):
        return table
    rows = cubic_resize_matrix(base_h, height).numpy()
    cols = cubic_resize_matrix(base_w, width).numpy()
    # Separable resize, rows then columns, in float32 like jax.image.resize on the float32 table.
    table = np.einsum("oi,ijd->ojd", rows, table, dtype=np.float32)
    return np.einsum("oj,ijd->iod", cols, table, dtype=np.float32)


def encoder_position_table(base_token_shape, token_grid, dim: int) -> torch.Tensor:
    """(h, w, dim) encoder posenc: the 1-D table on ``base_token_shape``, cubic-resized (antialiased) to the grid."""
    return torch.from_numpy(_grid_table_np(*map(int, base_token_shape), *map(int, token_grid), int(dim)).copy())


def decoder_position_table(token_grid, dim: int) -> torch.Tensor:
    """(h*w, dim) decoder posenc: the 1-D table over the raster index of the grid, never resized."""
    height, width = token_grid
    return torch.from_numpy(mae_sinusoid_table(int(height) * int(width), int(dim)))


# --------------------------------------------------------------------------------------------------------------------
# Outputs


@dataclass
class RVMModelOutput(ModelOutput):
    """Outputs of :class:`RVMModel`.

    Args:
        last_hidden_state: (B, T, 1+N, D) features after each frame (the recurrent state), CLS token first, then the
            patches in raster order.
        final_state: (B, 1+N, D) state after the last frame; pass it back as ``state`` to continue the stream (the
            same field as MooG's).
        hidden_states: L+1 tensors (B, T, 1+N, D): the per-frame ViT's embeddings, then every block's output, for
            every frame (when ``output_hidden_states``).
        attentions: L tensors (B, T, heads, 1+N, 1+N): the per-frame ViT's attention probabilities (when
            ``output_attentions``, eager attention only).
        encoder_hidden_states: (B, T, 1+N, D) per-frame ViT outputs after its final norm, the recurrent core's input
            (when ``output_gates``).
        update_gates / reset_gates / candidate_states: (B, T, 1+N, D) ``u_t``, ``r_t`` and the cross-attention
            transformer output ``h_t`` of the core (when ``output_gates``).
    """

    last_hidden_state: torch.FloatTensor | None = None
    final_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    encoder_hidden_states: torch.FloatTensor | None = None
    update_gates: torch.FloatTensor | None = None
    reset_gates: torch.FloatTensor | None = None
    candidate_states: torch.FloatTensor | None = None


@dataclass
class RVMMaskedReconstructionOutput(ModelOutput):
    """Outputs of :class:`RVMForMaskedReconstruction`.

    Args:
        loss: mean squared pixel error over the masked patches of the target frames (when ``compute_loss``).
        reconstruction: (B, TT, C, h*p, w*p) reconstructed target frames, unclipped (the model predicts [0, 1]).
        mask: (B, TT, h, w) 1 for masked (hidden) patches, 0 for visible ones.
        ids_shuffle: (B, TT, N) the permutation used; its first ``num_visible`` entries are the visible patches.
        features: (B, S, 1+N, D) recurrent features of the source frames.
        final_state: (B, 1+N, D) state after the last source frame.
        decoder_output: (B, TT, 1+N, Dd) decoder output after its final norm.
        hidden_states / attentions: the source frames' per-frame ViT outputs / attention probabilities, as in
            :class:`RVMModelOutput` (when ``output_hidden_states`` / ``output_attentions``).
        intermediates: named intermediate tensors (when ``output_intermediates``), for parity checks.
    """

    loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_shuffle: torch.LongTensor | None = None
    features: torch.FloatTensor | None = None
    final_state: torch.FloatTensor | None = None
    decoder_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    intermediates: dict | None = None


# --------------------------------------------------------------------------------------------------------------------
# Modules


def check_frames(pixel_values, num_channels: int, patch_size: int, name: str = "pixel_values") -> torch.Tensor:
    """Return ``pixel_values`` as (B, T, C, H, W): accepts one frame (B, C, H, W) or a clip (B, T, C, H, W)."""
    if not isinstance(pixel_values, torch.Tensor):
        shape = getattr(pixel_values, "shape", None)
        given = f"a {type(pixel_values).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")
        raise ValueError(
            f"{name} must be a torch.Tensor of shape (batch, channels, height, width) or (batch, frames, channels, "
            f"height, width), got {given}; use the model's video processor to turn frames or arrays into pixel_values"
        )
    if pixel_values.ndim not in (4, 5):
        raise ValueError(
            f"{name} must have shape (batch, channels, height, width) or (batch, frames, channels, height, width), "
            f"got {tuple(pixel_values.shape)}"
        )
    if pixel_values.ndim == 4:
        pixel_values = pixel_values.unsqueeze(1)
    check_video_input(pixel_values, num_channels, name)
    height, width = pixel_values.shape[-2:]
    if height < patch_size or width < patch_size:
        raise ValueError(f"{name} frames of {height}x{width} are smaller than one {patch_size}x{patch_size} patch")
    if pixel_values.shape[0] == 0 or pixel_values.shape[1] == 0:
        raise ValueError(f"{name} has an empty batch or frame dimension: {tuple(pixel_values.shape)}")
    return pixel_values


class RVMEmbeddings(nn.Module):
    """Per-frame p x p patch embedding (VALID: remainders cropped) + sinusoidal posenc, then the CLS token."""

    def __init__(self, config: RVMConfig):
        super().__init__()
        self.config = config
        self.patch_size = config.patch_size
        self.patch_embeddings = Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))

    def token_grid(self, height: int, width: int) -> tuple[int, int]:
        return height // self.patch_size, width // self.patch_size

    def position_table(self, grid: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        table = encoder_position_table(self.config.base_token_shape, grid, self.config.hidden_size)
        return table.to(device=like.device, dtype=like.dtype)

    def tokenize(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, h, w, D): patch embedding plus posenc, before the CLS token."""
        weight = self.patch_embeddings.weight
        x = self.patch_embeddings(frames.to(weight.dtype)).permute(0, 2, 3, 1)
        return x + self.position_table(tuple(x.shape[1:3]), x)

    def prepend_cls(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, n, D) -> (B, 1+n, D); the CLS token gets no posenc."""
        return torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens], dim=1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.prepend_cls(self.tokenize(frames).flatten(1, 2))


class RVMEncoderLayer(PreNormViTLayer):
    """Pre-LN ViT block: ``x += Attn(LN(x)); x += MLP(LN(x))`` over the tokens of one frame."""


class RVMEncoder(nn.Module):
    """The per-frame ViT: L pre-LN blocks and a final LayerNorm."""

    def __init__(self, config: RVMConfig):
        super().__init__()
        self.layers = nn.ModuleList([RVMEncoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        all_hidden_states: list | None = None,
        all_attentions: list | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """(B, 1+n, D) tokens -> (B, 1+n, D) after the blocks and the final norm. Given lists collect the input and
        every block's output (``all_hidden_states``) and every block's attention probabilities (``all_attentions``)."""
        if all_hidden_states is not None:
            all_hidden_states.append(hidden_states)
        for layer in self.layers:
            hidden_states, weights = layer(hidden_states, **kwargs)
            if all_hidden_states is not None:
                all_hidden_states.append(hidden_states)
            if all_attentions is not None:
                all_attentions.append(weights)
        return self.final_norm(hidden_states)


class RVMCrossAttentionBlock(GradientCheckpointingLayer):
    """``x += CA(LN(x), kv); x += MLP(LN(x)); x += SA(LN(x))`` (this order; ``kv`` is not normalised here)."""

    def __init__(self, config: RVMConfig, width: int, num_heads: int, attention_size: int, intermediate_size: int):
        super().__init__()
        eps = config.layer_norm_eps
        self.cross_attention_norm = nn.LayerNorm(width, eps=eps)
        self.cross_attention = CrossAttention(config, width, width, num_heads, inner_dim=attention_size)
        self.mlp_norm = nn.LayerNorm(width, eps=eps)
        self.mlp = FeedForward(width, intermediate_size, act=config.hidden_act)
        self.attention_norm = nn.LayerNorm(width, eps=eps)
        self.attention = SelfAttention(config, width, num_heads, inner_dim=attention_size, fused_qkv=False)

    def forward(self, hidden_states: torch.Tensor, key_value_states: torch.Tensor, **kwargs) -> torch.Tensor:
        attended, _ = self.cross_attention(self.cross_attention_norm(hidden_states), key_value_states, **kwargs)
        hidden_states = hidden_states + attended
        hidden_states = hidden_states + self.mlp(self.mlp_norm(hidden_states))
        attended, _ = self.attention(self.attention_norm(hidden_states), **kwargs)
        return hidden_states + attended


class RVMCrossTransformer(nn.Module):
    """The reference `CrossAttentionTransformer`: cross-attention blocks (the same ``key_value_states`` for every
    block) followed by ``output_norm``."""

    def __init__(self, config: RVMConfig, width: int, num_layers: int, num_heads: int, attention_size: int,
                 intermediate_size: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            [RVMCrossAttentionBlock(config, width, num_heads, attention_size, intermediate_size) for _ in range(num_layers)]
        )
        self.output_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor, key_value_states: torch.Tensor, **kwargs) -> torch.Tensor:
        for block in self.blocks:
            hidden_states = block(hidden_states, key_value_states, **kwargs)
        return self.output_norm(hidden_states)


class RVMRecurrentCore(nn.Module):
    """Gated transformer core: a GRU whose candidate state comes from a cross-attention transformer.

    ``u = sigmoid(x Wiu + s Wsu)``, ``r = sigmoid(x Wir + s Wsr)``, ``h = XAT(x, r * LN_s(s))``,
    ``s' = (1 - u) * s + u * h``. The gates act per token, so state token i is tied to token i of every frame.
    """

    def __init__(self, config: RVMConfig):
        super().__init__()
        width = config.hidden_size
        self.input_update = Linear(width, width, bias=False)
        self.input_reset = Linear(width, width, bias=False)
        self.state_update = Linear(width, width, bias=False)
        self.state_reset = Linear(width, width, bias=False)
        self.state_norm = nn.LayerNorm(width, eps=config.state_layer_norm_eps, bias=False)
        self.transformer = RVMCrossTransformer(
            config, width, config.rnn_num_layers, config.rnn_num_attention_heads, config.rnn_attention_size,
            config.rnn_intermediate_size,
        )

    def forward(
        self, inputs: torch.Tensor, state: torch.Tensor, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step: returns the new state and ``(update_gate, reset_gate, candidate)``."""
        update = torch.sigmoid(self.input_update(inputs) + self.state_update(state))
        reset = torch.sigmoid(self.input_reset(inputs) + self.state_reset(state))
        candidate = self.transformer(inputs, reset * self.state_norm(state), **kwargs)
        new_state = (1 - update) * state + update * candidate
        return new_state, update, reset, candidate


class RVMPreTrainedModel(Rep4DPreTrainedModel):
    config: RVMConfig
    config_class = RVMConfig
    base_model_prefix = "rvm"
    _no_split_modules = ["RVMEncoderLayer", "RVMCrossAttentionBlock"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, RVMEmbeddings):
            trunc_normal_init_(module.cls_token, self.config.initializer_range)
        elif isinstance(module, RVMForMaskedReconstruction):
            trunc_normal_init_(module.mask_token, self.config.initializer_range)


class RVMModel(RVMPreTrainedModel):
    """The RVM streaming encoder: per-frame ViT + gated recurrent core; the features of frame t are the state after t.

    Example::

        model = RVMModel.from_pretrained("rvm-s")
        state = None
        for frame in frames:                       # (B, 3, H, W) in [0, 1]
            out = model(frame, state=state)
            state = out.final_state
            patches = model.patch_features(out.last_hidden_state, frame.shape[-2:])   # (B, 1, h, w, D)
    """

    def __init__(self, config: RVMConfig):
        super().__init__(config)
        self.embeddings = RVMEmbeddings(config)
        self.encoder = RVMEncoder(config)
        self.recurrent_core = RVMRecurrentCore(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embeddings

    def token_grid(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) token grid of ``height`` x ``width`` frames (remainders of the patch size are cropped)."""
        return self.embeddings.token_grid(int(height), int(width))

    def initial_state(self, grid: tuple[int, int], batch_size: int = 1, device=None, dtype=None) -> torch.Tensor:
        """The reference's initial state: zeros of shape (batch_size, 1 + h*w, D)."""
        return torch.zeros(batch_size, 1 + grid[0] * grid[1], self.config.hidden_size, device=device, dtype=dtype)

    def patch_features(self, features: torch.Tensor, frame_size) -> torch.Tensor:
        """(..., 1+N, D) features -> (..., h, w, D) patch features (CLS dropped) for frames of ``frame_size`` (H, W)."""
        height, width = self.token_grid(*frame_size)
        if features.shape[-2] != 1 + height * width:
            raise ValueError(
                f"features with {features.shape[-2]} tokens do not match frames of {tuple(frame_size)} "
                f"(expected 1 + {height}*{width} = {1 + height * width} tokens)"
            )
        return features[..., 1:, :].unflatten(-2, (height, width))

    def check_state(self, state: torch.Tensor, batch_size: int, grid: tuple[int, int]) -> None:
        expected = (1 + grid[0] * grid[1], self.config.hidden_size)
        if not isinstance(state, torch.Tensor) or state.ndim != 3 or tuple(state.shape[1:]) != expected:
            given = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise ValueError(
                f"state must have shape ({batch_size}, {expected[0]}, {expected[1]}) for frames with a {grid[0]}x{grid[1]} "
                f"token grid and width {expected[1]}, got {given}; a state only continues a stream of the same "
                "resolution and model size"
            )
        if state.shape[0] not in (1, batch_size):
            raise ValueError(f"state batch size {state.shape[0]} does not match the frames' batch size {batch_size}")

    def encode_frame(self, frame: torch.Tensor, **kwargs) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1+N, D) ViT output of one frame (before the recurrent core); ``all_hidden_states`` /
        ``all_attentions`` lists collect the ViT's per-block outputs as in :meth:`RVMEncoder.forward`."""
        return self.encoder(self.embeddings(frame), **kwargs)

    def get_video_features(
        self, pixel_values: torch.Tensor, state: torch.Tensor | None = None, grid_features: bool = True, **kwargs
    ) -> VideoFeaturesOutput:
        r"""Per-frame patch features (the recurrent state after every frame, CLS token dropped).

        Args:
            pixel_values: one frame (B, C, H, W) or a clip (B, T, C, H, W), float in [0, 1].
            state: (B or 1, 1+N, D) ``final_state`` of a previous call on the same stream (default: zeros).
            grid_features: accepted so every backbone is asked the same way; RVM features are always on the grid.

        Returns:
            :class:`VideoFeaturesOutput` with ``features`` (B, T, h*w, D) patch tokens in raster order,
            ``grid_size`` (h, w) = (H // patch, W // patch) and ``final_state`` (B, 1+N, D) (CLS included) to pass
            back as ``state``: streaming a video in chunks gives the same features as one call on the whole video.
        """
        outputs = self(pixel_values, state=state, **kwargs)
        features = outputs.last_hidden_state  # (B, T, 1+N, D): the state after every frame
        grid = self.token_grid(*pixel_values.shape[-2:])
        return VideoFeaturesOutput(features=features[:, :, 1:], grid_size=grid, final_state=features[:, -1])

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        state: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        output_gates: bool = False,
        **kwargs,
    ) -> RVMModelOutput:
        r"""
        Args:
            pixel_values: one frame (B, C, H, W) or a clip (B, T, C, H, W), float in [0, 1] (no mean/std
                normalisation). Any size of at least one patch works; remainders of the patch size are cropped.
            state: (B or 1, 1+N, D) state returned by a previous call on the same stream (default: zeros).
            output_hidden_states: also return the per-frame ViT's hidden states and outputs (default: the config's).
            output_attentions: also return the per-frame ViT's attention probabilities (default: the config's).
            output_gates: also return the core's input (``encoder_hidden_states``), its update/reset gates and its
                candidate states.
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        pixel_values = check_frames(pixel_values, self.config.num_channels, self.config.patch_size)
        batch, frames = pixel_values.shape[:2]
        grid = self.token_grid(*pixel_values.shape[-2:])
        dtype = self.embeddings.patch_embeddings.weight.dtype
        if state is None:
            state = self.initial_state(grid, 1, device=pixel_values.device, dtype=dtype)
        else:
            self.check_state(state, batch, grid)
        features, encoded, updates, resets, candidates = [], [], [], [], []
        frame_hidden_states, frame_attentions = [], []
        for t in range(frames):
            layer_outputs = [] if output_hidden_states else None
            layer_attentions = [] if output_attentions else None
            x = self.encode_frame(
                pixel_values[:, t], all_hidden_states=layer_outputs, all_attentions=layer_attentions, **kwargs
            )
            if output_hidden_states:
                frame_hidden_states.append(layer_outputs)
            if output_attentions:
                frame_attentions.append(layer_attentions)
            state, update, reset, candidate = self.recurrent_core(x, state, **kwargs)
            features.append(state)
            if output_gates:
                encoded.append(x)
            if output_gates:
                updates.append(update)
                resets.append(reset)
                candidates.append(candidate)
        def stack(items):
            return torch.stack(items, dim=1)

        def per_layer(per_frame):  # [frame][layer] -> tuple over layers of (B, T, ...); None for SDPA's weights
            return tuple(
                None if layer[0] is None else stack(list(layer)) for layer in zip(*per_frame)
            )

        return RVMModelOutput(
            last_hidden_state=stack(features),
            final_state=state,
            hidden_states=per_layer(frame_hidden_states) if output_hidden_states else None,
            attentions=per_layer(frame_attentions) if output_attentions else None,
            encoder_hidden_states=stack(encoded) if output_gates else None,
            update_gates=stack(updates) if output_gates else None,
            reset_gates=stack(resets) if output_gates else None,
            candidate_states=stack(candidates) if output_gates else None,
        )


# --------------------------------------------------------------------------------------------------------------------
# Masked reconstruction


def random_masking_ids(
    batch_size: int, num_frames: int, num_patches: int, generator: torch.Generator | None = None, device=None,
    shared: bool = False,
) -> torch.Tensor:
    """(B, TT, N) random permutations of the patch indices; ``shared`` draws one for every (b, t) like the reference."""
    shape = (1, 1, num_patches) if shared else (batch_size, num_frames, num_patches)
    noise = torch.rand(shape, generator=generator, device=generator.device if generator is not None else device)
    ids = torch.argsort(noise, dim=-1)
    return ids.expand(batch_size, num_frames, num_patches).to(device)


def num_visible_patches(num_patches: int, mask_ratio: float) -> int:
    """``int(N * (1 - ratio))`` with Python floats, as the reference (N=256, 0.95 -> 12)."""
    return int(num_patches * (1.0 - float(mask_ratio)))


def masked_patch_loss(reconstruction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, patch_size: int):
    """Mean squared error over the pixels of masked patches.

    The released code has no loss; the paper describes an L2 pixel loss on the masked patches of the target frames,
    and the demo compares raw [0, 1] outputs with raw frames, so targets are plain [0, 1] pixels (no per-patch
    normalisation). Each masked patch weighs equally; visible patches do not count.
    ``reconstruction`` and ``target`` are (B, TT, C, h*p, w*p), ``mask`` is (B, TT, h, w).
    """
    squared = (reconstruction.float() - target.float()) ** 2
    per_patch = squared.mean(dim=2).unflatten(-1, (-1, patch_size)).unflatten(-3, (-1, patch_size)).mean(dim=(-3, -1))
    mask = mask.to(per_patch.dtype)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1)


class RVMForMaskedReconstruction(RVMPreTrainedModel):
    """RVM pretraining model: reconstructs heavily masked target frames from the recurrent features of source frames.

    Source frames go through the encoder and the recurrent core; the visible patches of each target frame go through
    the same encoder (not the core), are embedded to the decoder width, put back in place among mask tokens, get the
    temporal-delta embedding and the decoder posenc, and the decoder cross-attends to the per-step recurrent features
    of every source frame. A linear detokenizer predicts the pixels of every patch.
    """

    accepts_loss_kwargs = False

    def __init__(self, config: RVMConfig):
        super().__init__(config)
        self.rvm = RVMModel(config)
        decoder_width = config.decoder_hidden_size
        self.decoder_embedder = Linear(config.hidden_size, decoder_width)
        self.delta_embedder = Linear(config.num_delta_classes, decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_width))
        self.decoder = RVMCrossTransformer(
            config, decoder_width, config.decoder_num_layers, config.decoder_num_attention_heads, decoder_width,
            config.decoder_intermediate_size,
        )
        self.detokenizer = Linear(decoder_width, config.patch_size**2 * config.num_channels)
        self.post_init()

    def delta_tokens(self, target_deltas: torch.Tensor) -> torch.Tensor:
        """(B, TT) integer deltas -> (B, TT, Dd); out-of-range deltas give an all-zero one-hot (bias only)."""
        classes = torch.arange(self.config.num_delta_classes, device=target_deltas.device)
        one_hot = (target_deltas[..., None].long() == classes).to(self.delta_embedder.weight.dtype)
        return self.delta_embedder(one_hot)

    def check_ids(self, ids: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or tuple(ids.shape) != shape:
            given = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ValueError(f"ids_shuffle must have shape {shape} (batch, target frames, patches), got {given}")
        if ids.is_floating_point():
            raise ValueError(f"ids_shuffle must be an integer tensor, got dtype {ids.dtype}")
        ids = ids.long()
        expected = torch.arange(shape[-1], device=ids.device)
        if not torch.equal(ids.sort(dim=-1).values, expected.expand(shape)):
            raise ValueError(f"every ids_shuffle[b, t] must be a permutation of range({shape[-1]})")
        return ids

    def unpatchify(self, patches: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(..., N, p*p*C) with channel index (i*p + j)*C + c -> (..., C, h*p, w*p)."""
        p, channels = self.config.patch_size, self.config.num_channels
        height, width = grid
        x = patches.unflatten(-1, (p, p, channels)).unflatten(-4, (height, width))  # (..., h, w, p, p, C)
        x = x.movedim(-1, -5)  # (..., C, h, w, p, p)
        x = x.transpose(-3, -2)  # (..., C, h, p, w, p)
        return x.flatten(-4, -3).flatten(-2, -1)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        target_pixel_values: torch.Tensor,
        target_deltas: torch.Tensor | None = None,
        ids_shuffle: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
        state: torch.Tensor | None = None,
        compute_loss: bool = True,
        output_intermediates: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> RVMMaskedReconstructionOutput:
        r"""
        Args:
            pixel_values: (B, S, C, H, W) source frames in [0, 1], unmasked.
            target_pixel_values: (B, TT, C, H, W) target frames in [0, 1] (same size as the sources).
            target_deltas: optional (B, TT) integer temporal offsets (one-hot over ``config.num_delta_classes``).
                ``None`` skips the delta embedding entirely, which differs from delta 0 (kernel row + bias).
            ids_shuffle: optional (B, TT, N) per-frame permutations of the patch indices; the first
                ``int(N * (1 - mask_ratio))`` entries are the visible patches. Drawn from ``generator`` when omitted.
            mask_ratio: fraction of masked target patches (default ``config.mask_ratio``).
            generator: ``torch.Generator`` for the random masks.
            state: optional initial recurrent state (B or 1, 1+N, D).
            compute_loss: return the masked-patch L2 loss (see :func:`masked_patch_loss`).
            output_intermediates: return a dict of intermediates as the last tuple element / ``intermediates`` key.
            output_hidden_states / output_attentions: also return the source frames' per-frame ViT hidden states /
                attention probabilities (defaults: the config's).
        """
        config = self.config
        pixel_values = check_frames(pixel_values, config.num_channels, config.patch_size)
        targets = check_frames(target_pixel_values, config.num_channels, config.patch_size, "target_pixel_values")
        if targets.shape[0] != pixel_values.shape[0] or targets.shape[-2:] != pixel_values.shape[-2:]:
            raise ValueError(
                f"target_pixel_values {tuple(targets.shape)} must have the batch size and frame size of the source "
                f"pixel_values {tuple(pixel_values.shape)}"
            )
        batch, num_targets = targets.shape[:2]
        grid = self.rvm.token_grid(*targets.shape[-2:])
        num_patches = grid[0] * grid[1]
        mask_ratio = config.mask_ratio if mask_ratio is None else float(mask_ratio)
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        num_visible = num_visible_patches(num_patches, mask_ratio)
        if ids_shuffle is None:
            ids_shuffle = random_masking_ids(batch, num_targets, num_patches, generator, device=targets.device)
        ids_shuffle = self.check_ids(ids_shuffle, (batch, num_targets, num_patches)).to(targets.device)
        if target_deltas is not None:
            if not isinstance(target_deltas, torch.Tensor):
                target_deltas = torch.as_tensor(target_deltas, device=targets.device)
            if tuple(target_deltas.shape) != (batch, num_targets) or target_deltas.is_floating_point():
                raise ValueError(
                    f"target_deltas must be an integer tensor of shape ({batch}, {num_targets}), "
                    f"got {tuple(target_deltas.shape)} {target_deltas.dtype}"
                )

        # Source path: encoder + recurrent core over the source frames.
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        source = self.rvm(
            pixel_values,
            state=state,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            output_gates=output_intermediates,
            **kwargs,
        )
        features = source.last_hidden_state  # (B, S, 1+N, D)

        # Target path: [CLS, visible tokens in ids_shuffle order] through the encoder only.
        target_tokens = self.rvm.embeddings.tokenize(targets.flatten(0, 1)).flatten(1, 2)  # (B*TT, N, D)
        ids = ids_shuffle.flatten(0, 1)
        ids_keep = ids[:, :num_visible]
        visible = torch.gather(target_tokens, 1, ids_keep[..., None].expand(-1, -1, target_tokens.shape[-1]))
        target_encoded = self.rvm.encoder(self.rvm.embeddings.prepend_cls(visible), **kwargs)
        target_embedded = self.decoder_embedder(target_encoded)  # (B*TT, 1+n_keep, Dd)

        # Decoder queries: visible embeddings back in place among mask tokens, + delta, + posenc, CLS first.
        width = target_embedded.shape[-1]
        mask_tokens = self.mask_token.to(target_embedded.dtype).expand(ids.shape[0], num_patches - num_visible, width)
        shuffled = torch.cat([target_embedded[:, 1:], mask_tokens], dim=1)
        ids_restore = torch.argsort(ids, dim=-1)
        queries = torch.gather(shuffled, 1, ids_restore[..., None].expand(-1, -1, width))
        delta = None
        if target_deltas is not None:
            delta = self.delta_tokens(target_deltas.to(targets.device))  # (B, TT, Dd)
            queries = queries + delta.flatten(0, 1)[:, None, :]
        posenc = decoder_position_table(grid, width).to(device=queries.device, dtype=queries.dtype)
        queries = torch.cat([target_embedded[:, :1], queries + posenc], dim=1)  # (B*TT, 1+N, Dd)

        # Decoder keys/values: the embedded recurrent features of every source frame, the same for every target.
        decoder_kv = self.decoder_embedder(features.flatten(1, 2))  # (B, S*(1+N), Dd)
        decoder_kv_per_target = decoder_kv.repeat_interleave(num_targets, dim=0)
        decoder_output = self.decoder(queries, decoder_kv_per_target, **kwargs)
        patches = self.detokenizer(decoder_output[:, 1:])
        reconstruction = self.unpatchify(patches, grid).unflatten(0, (batch, num_targets))

        mask = torch.ones(ids.shape, device=targets.device, dtype=reconstruction.dtype)
        mask[:, :num_visible] = 0
        mask = torch.gather(mask, 1, ids_restore).reshape(batch, num_targets, *grid)

        loss = None
        if compute_loss:
            cropped = targets[..., : grid[0] * config.patch_size, : grid[1] * config.patch_size]
            loss = masked_patch_loss(reconstruction, cropped, mask, config.patch_size)
        intermediates = None
        if output_intermediates:

            def unflatten(x):
                return x.unflatten(0, (batch, num_targets))

            intermediates = {
                "source_encoded": source.encoder_hidden_states,
                "target_tokens": unflatten(target_tokens).unflatten(2, grid),
                "target_encoded": unflatten(target_encoded),
                "target_embedded": unflatten(target_embedded),
                "delta_tokens": delta,
                "decoder_input": unflatten(queries),
                "decoder_kv": decoder_kv[:, None].expand(-1, num_targets, -1, -1),
            }
        return RVMMaskedReconstructionOutput(
            loss=loss,
            reconstruction=reconstruction,
            mask=mask,
            ids_shuffle=ids_shuffle,
            features=features,
            final_state=source.final_state,
            decoder_output=decoder_output.unflatten(0, (batch, num_targets)),
            hidden_states=source.hidden_states,
            attentions=source.attentions,
            intermediates=intermediates,
        )


__all__ = [
    "RVMModel",
    "RVMForMaskedReconstruction",
    "RVMPreTrainedModel",
    "RVMModelOutput",
    "RVMMaskedReconstructionOutput",
    "encoder_position_table",
    "decoder_position_table",
    "mae_sinusoid_table",
    "masked_patch_loss",
]
