"""The reference ``AttentionReadout``: a cross-attention head from queries over (B, T, S, C) video features.

4DS's depth head, MooG's released point/box heads and every readout model (``modeling_readout``) use it.
"""

from __future__ import annotations

import torch
from torch import nn

from .cpu_fast_paths import Linear
from .layers import FeedForward, attention_interface, split_heads


class AttentionReadout(nn.Module):
    """Cross-attention readout from learned (or given) queries over (B, T, S, C) video features.

    ``LN -> + temporal embedding -> flatten (T*S) -> attention from raw queries -> query + W0(attn)
    -> + MLP(LN(.)) -> Linear`` as in the reference ``AttentionReadout`` with ``match_vjepa_implementation``.
    With ``query_dim`` set the queries are given per example (B, Q, query_dim) and projected by ``query_proj``;
    otherwise ``num_queries`` learned queries are used. Returns (B, Q, num_classes), or (B, num_classes) if
    ``squeeze_single_query`` and Q == 1.
    """

    def __init__(
        self,
        config,
        input_dim: int,
        num_params: int,
        num_heads: int,
        num_classes: int,
        num_queries: int | None = None,
        query_dim: int | None = None,
        num_frames: int | None = None,
        layer_norm_eps: float = 1e-6,
        mlp_ratio: int = 4,
        act: str = "gelu_pytorch_tanh",
        squeeze_single_query: bool = True,
    ):
        super().__init__()
        if (num_queries is None) == (query_dim is None):
            raise ValueError("AttentionReadout needs exactly one of num_queries (learned) or query_dim (given)")
        if num_params % num_heads:
            raise ValueError(f"num_params ({num_params}) must be divisible by num_heads ({num_heads})")
        self.config = config
        self.num_heads = num_heads
        self.head_dim = num_params // num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.squeeze_single_query = squeeze_single_query
        self.input_norm = nn.LayerNorm(input_dim, eps=layer_norm_eps)
        self.temporal_embedding = nn.Parameter(torch.zeros(num_frames, input_dim)) if num_frames else None
        if num_queries is not None:
            self.query = nn.Parameter(torch.zeros(num_queries, num_params))
            self.query_proj = None
        else:
            self.query = None
            self.query_proj = Linear(query_dim, num_params)
        self.k_proj = Linear(input_dim, num_params)
        self.v_proj = Linear(input_dim, num_params)
        self.attn_proj = Linear(num_params, num_params)
        self.mlp_norm = nn.LayerNorm(num_params, eps=layer_norm_eps)
        self.mlp = FeedForward(num_params, mlp_ratio * num_params, act=act)
        self.classifier = Linear(num_params, num_classes)

    def forward(
        self, features: torch.Tensor, queries: torch.Tensor | None = None, return_intermediates: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if features.ndim != 4:
            raise ValueError(f"readout features must be (batch, frames, tokens, channels), got {tuple(features.shape)}")
        batch, frames, tokens, _ = features.shape
        intermediates = {}
        x = self.input_norm(features)
        intermediates["input_norm"] = x
        if self.temporal_embedding is not None:
            if frames != self.temporal_embedding.shape[0]:
                raise ValueError(
                    f"the readout was built for {self.temporal_embedding.shape[0]} frames, features have {frames}"
                )
            x = x + self.temporal_embedding[None, :, None, :]
        x = x.reshape(batch, frames * tokens, -1)
        if self.query_proj is not None:
            if queries is None:
                raise ValueError("this readout takes query features: pass queries of shape (batch, num_queries, dim)")
            query = self.query_proj(queries)
        else:
            if queries is not None:
                raise ValueError("this readout has learned queries; do not pass queries")
            query = self.query.unsqueeze(0).expand(batch, -1, -1)
        key, value = self.k_proj(x), self.v_proj(x)
        intermediates["key"], intermediates["value"] = key, value
        attention = attention_interface(self.config)
        attended, _ = attention(
            self,
            split_heads(query, self.num_heads),
            split_heads(key, self.num_heads),
            split_heads(value, self.num_heads),
            None,
            scaling=self.scaling,
            dropout=0.0,
            is_causal=False,
        )
        intermediates["attention"] = attended
        projected = self.attn_proj(attended.reshape(batch, query.shape[1], -1))
        intermediates["attn_proj"] = projected
        hidden = query + projected
        normed = self.mlp_norm(hidden)
        intermediates["mlp_norm"] = normed
        mlp = self.mlp(normed)
        intermediates["mlp"] = mlp
        logits = self.classifier(hidden + mlp)
        intermediates["logits"] = logits
        if self.squeeze_single_query and logits.shape[1] == 1:
            logits = logits[:, 0]
        return (logits, intermediates) if return_intermediates else logits


__all__ = ["AttentionReadout"]
