"""Attention and MLP building blocks shared by the 4DS, MooG and RVM models (and the attention readout).

Everything here follows the numerics of the DeepMind JAX/Flax reference (kauldron/flax): attention scales the queries
by ``1/sqrt(head_dim)`` and takes the softmax in float32; the MLP's GELU is the tanh approximation
(``ACT2FN["gelu_pytorch_tanh"]``). Attention goes through transformers' attention-interface registry, so ``eager``
and ``sdpa`` (and any registered kernel) are selected with ``config._attn_implementation``. Every projection is the
:class:`~.cpu_fast_paths.Linear` of the CPU fast paths.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .cpu_fast_paths import Linear, attention_in_float32


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference attention: inputs (B, heads, N, head_dim); returns (B, N, heads, head_dim) and the weights."""
    weights = torch.matmul(query * scaling, key.transpose(-1, -2))
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def attention_interface(config) -> Callable:
    """The attention function selected by ``config._attn_implementation`` (eager by default)."""
    implementation = getattr(config, "_attn_implementation", None) or "eager"
    return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, N, heads*head_dim) -> (B, heads, N, head_dim), head-major feature order as in the reference."""
    batch, length, features = x.shape
    return x.view(batch, length, num_heads, features // num_heads).transpose(1, 2)


class MultiHeadAttention(nn.Module):
    """What every attention module shares: head geometry and the call into the selected attention function.

    Subclasses build their projections (``out_proj`` included) and call :meth:`attend` with per-head q/k/v.
    """

    def __init__(self, config, inner_dim: int, num_heads: int):
        super().__init__()
        if inner_dim % num_heads:
            raise ValueError(f"attention width ({inner_dim}) must be divisible by the number of heads ({num_heads})")
        self.config = config
        self.num_heads = num_heads
        self.head_dim = inner_dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask=None, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, heads, Nq, head_dim) q and (B, heads, Nk, head_dim) k/v -> ((B, Nq, out) projected, weights)."""
        batch, length = query.shape[0], query.shape[2]
        attention = attention_interface(self.config)
        dtype = query.dtype
        upcast = attention_in_float32(query, key)  # CPU training, bf16, short keys: float32 is faster (cpu_fast_paths)
        if upcast:
            query, key, value = query.float(), key.float(), value.float()
            if attention_mask is not None and attention_mask.is_floating_point():
                attention_mask = attention_mask.float()
        with torch.autocast("cpu", enabled=False) if upcast else contextlib.nullcontext():
            output, weights = attention(
                self, query, key, value, attention_mask, scaling=self.scaling, dropout=0.0, is_causal=False, **kwargs
            )
        if upcast:
            output, weights = output.to(dtype), None if weights is None else weights.to(dtype)
        return self.out_proj(output.reshape(batch, length, -1)), weights


class SelfAttention(MultiHeadAttention):
    """Multi-head self-attention (biases on q, k, v and out, no q/k norm).

    ``fused_qkv`` (the default, 4DS and RVM's per-frame ViT) projects q, k and v with one ``qkv`` matmul; otherwise
    the projections are ``q_proj`` and a fused ``kv_proj`` as in :class:`CrossAttention` (the checkpoint layout of
    RVM's cross-attention transformer). ``inner_dim`` (heads * head_dim) defaults to ``hidden_size``.
    """

    def __init__(
        self,
        config,
        hidden_size: int,
        num_heads: int,
        inner_dim: int | None = None,
        bias: bool = True,
        fused_qkv: bool = True,
    ):
        inner_dim = inner_dim or hidden_size
        super().__init__(config, inner_dim, num_heads)
        self.fused_qkv = fused_qkv
        if fused_qkv:
            self.qkv = Linear(hidden_size, 3 * inner_dim, bias=bias)
        else:
            self.q_proj = Linear(hidden_size, inner_dim, bias=bias)
            self.kv_proj = Linear(hidden_size, 2 * inner_dim, bias=bias)
        self.out_proj = Linear(inner_dim, hidden_size, bias=bias)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.fused_qkv:
            query, key, value = project_query_key_value(self, hidden_states, hidden_states)
            return self.attend(query, key, value, attention_mask, **kwargs)
        batch, length, _ = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, heads, N, head_dim) views of the fused projection
        if qkv.dtype == torch.float32 and qkv.device.type == "cpu":
            # CPU flash attention reads contiguous fp32 rows ~10% faster than these strided views, which pays for
            # the copy; in bf16 the copy costs more than it saves (benchmarks/bench_attention_layout.py).
            qkv = qkv.contiguous()
        query, key, value = qkv.unbind(0)
        return self.attend(query, key, value, attention_mask, **kwargs)


def project_query_key_value(module: nn.Module, hidden_states: torch.Tensor, key_value_states: torch.Tensor):
    """Per-head q from ``module.q_proj(hidden_states)`` and k, v from ``module.kv_proj(key_value_states)``."""
    query = split_heads(module.q_proj(hidden_states), module.num_heads)
    key, value = module.kv_proj(key_value_states).chunk(2, dim=-1)
    return query, split_heads(key, module.num_heads), split_heads(value, module.num_heads)


class CrossAttention(MultiHeadAttention):
    """Multi-head cross-attention: queries from one sequence, fused keys/values from another.

    ``query_dim`` and ``kv_dim`` are the input widths; ``inner_dim`` is the width of q/k/v (heads * head_dim);
    ``output_dim`` defaults to ``query_dim``. ``out_proj=False`` returns the concatenated heads unprojected.
    """

    def __init__(
        self,
        config,
        query_dim: int,
        kv_dim: int,
        num_heads: int,
        inner_dim: int | None = None,
        output_dim: int | None = None,
        bias: bool = True,
        out_proj: bool = True,
    ):
        inner_dim = inner_dim or query_dim
        super().__init__(config, inner_dim, num_heads)
        self.q_proj = Linear(query_dim, inner_dim, bias=bias)
        self.kv_proj = Linear(kv_dim, 2 * inner_dim, bias=bias)
        self.out_proj = Linear(inner_dim, output_dim or query_dim, bias=bias) if out_proj else nn.Identity()

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query, key, value = project_query_key_value(self, hidden_states, encoder_hidden_states)
        return self.attend(query, key, value, attention_mask, **kwargs)


class FeedForward(nn.Module):
    """Two-layer MLP ``dense_out(act(dense_in(x)))``; ``act`` is a transformers ``ACT2FN`` name, and the reference's
    tanh-approximate GELU (``"gelu_pytorch_tanh"``) takes the fused CPU path (:meth:`Linear.forward_gelu_tanh`)."""

    def __init__(
        self, hidden_size: int, intermediate_size: int, output_size: int | None = None, act: str = "gelu_pytorch_tanh"
    ):
        super().__init__()
        self.dense_in = Linear(hidden_size, intermediate_size)
        self.dense_out = Linear(intermediate_size, output_size or hidden_size)
        self.act = activation(act)
        self.gelu_tanh = act == "gelu_pytorch_tanh"

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.gelu_tanh:
            return self.dense_out(self.dense_in.forward_gelu_tanh(hidden_states))
        return self.dense_out(self.act(self.dense_in(hidden_states)))


class PreNormViTLayer(GradientCheckpointingLayer):
    """Pre-LN ViT block ``x += Attn(LN(x)); x += MLP(LN(x))`` with fused-qkv :class:`SelfAttention`, sized by the
    config's ``hidden_size``, ``num_attention_heads``, ``intermediate_size``, ``hidden_act`` and ``layer_norm_eps``
    (4DS's blocks, RVM's per-frame ViT). Returns the new (B, N, D) tokens and the attention probabilities."""

    def __init__(self, config):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = SelfAttention(config, config.hidden_size, config.num_attention_heads)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = FeedForward(config.hidden_size, config.intermediate_size, act=config.hidden_act)

    def forward(self, hidden_states: torch.Tensor, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(self.attention_norm(hidden_states), **kwargs)
        hidden_states = hidden_states + attended
        hidden_states = hidden_states + self.mlp(self.mlp_norm(hidden_states))
        return hidden_states, weights


def activation(name: str) -> nn.Module:
    """``ACT2FN[name]``, refusing unknown names with a ValueError (the JAX default ``nn.gelu`` is
    ``"gelu_pytorch_tanh"``; ``"gelu"`` is the exact erf GELU)."""
    if name not in ACT2FN:
        raise ValueError(
            f"unknown activation {name!r}; expected a transformers ACT2FN name such as 'gelu_pytorch_tanh' (the "
            "reference's tanh GELU), 'gelu', 'relu' or 'silu'"
        )
    return ACT2FN[name]


__all__ = [
    "CrossAttention",
    "FeedForward",
    "MultiHeadAttention",
    "PreNormViTLayer",
    "SelfAttention",
    "activation",
    "attention_interface",
    "split_heads",
]
