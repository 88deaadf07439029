"""Building blocks shared by the 4DS, MooG and RVM models.

Everything here follows the numerics of the DeepMind JAX/Flax reference (kauldron/flax): LayerNorm epsilons are
passed explicitly, GELU is the tanh approximation, attention scales the queries by ``1/sqrt(head_dim)`` and takes
the softmax in float32. Attention goes through transformers' attention-interface registry, so ``eager`` and
``sdpa`` (and any registered kernel) are selected with ``config._attn_implementation``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import logging

logger = logging.get_logger(__name__)

# oneDNN's fused matmul + bias + GELU(tanh) epilogue on CPU (the op inductor emits for this pattern).
_FUSED_CPU_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 / AMX); AVX2-only CPUs do not."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def fused_cpu_gelu_linear_supports(dtype: torch.dtype) -> bool:
    """Whether the fused oneDNN linear + tanh-GELU op can run ``dtype`` on this CPU.

    float32 always; bfloat16 only where oneDNN has native bf16 kernels: elsewhere ``_linear_pointwise`` fails with
    "could not create a primitive descriptor", so bf16 falls back to the plain matmul + GELU (and a one-time warning
    says that bf16 on this CPU is emulated and slow).
    """
    if not _FUSED_CPU_LINEAR:
        return False
    if dtype == torch.float32:
        return True
    if dtype == torch.bfloat16:
        if cpu_has_native_bf16():
            return True
        logger.warning_once(
            "bfloat16 was requested on a CPU without native bf16 support (no AVX512-BF16/AMX): rep4d uses the plain "
            "(unfused) layers, and bf16 matmuls on this CPU are emulated and usually slower than float32."
        )
    return False


class Linear(nn.Linear):
    """``nn.Linear`` with two inference fast paths (no autograd; results equal to float32 rounding).

    - Under autocast it reuses its weight cast to the autocast dtype across calls. Autocast re-casts every fp32 weight
      on every call (its own cache lives for one autocast region only). The copy is keyed by dtype, storage and the
      parameters' version counters, so any in-place update (optimizer step, ``load_state_dict``, ``.to()``)
      refreshes it; it is not part of the state dict.
    - :meth:`forward_gelu_tanh` fuses bias and the tanh-GELU into the oneDNN matmul on CPU, which saves the separate
      GELU pass over the MLP's widest activation (tanh-GELU is slower than erf-GELU on CPU, and the models need it).
      float32 always; bfloat16 only on CPUs with native bf16 (:func:`fused_cpu_gelu_linear_supports`), otherwise the
      plain path runs.
    """

    def _inference_operands(self, input: torch.Tensor):
        """(input, weight, bias) for the inference paths, or None when autograd or compilation is in charge."""
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return None
        device_type = input.device.type
        if not torch.is_autocast_enabled(device_type):
            return input, self.weight, self.bias
        dtype = torch.get_autocast_dtype(device_type)
        weight, bias = self.weight, self.bias
        key = (dtype, weight.device, weight.data_ptr(), weight._version, None if bias is None else bias._version)
        cached = self.__dict__.get("_autocast_weight_cache")
        if cached is None or cached[0] != key:
            cached = (key, weight.detach().to(dtype), None if bias is None else bias.detach().to(dtype))
            self.__dict__["_autocast_weight_cache"] = cached
        return input.to(dtype), cached[1], cached[2]

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        operands = self._inference_operands(input)
        if operands is None:
            return super().forward(input)
        return nn.functional.linear(*operands)

    def forward_gelu_tanh(self, input: torch.Tensor) -> torch.Tensor:
        """``gelu(self(input), approximate="tanh")``, fused into one oneDNN call in CPU inference."""
        operands = self._inference_operands(input)
        if (
            operands is not None
            and input.device.type == "cpu"
            and operands[0].dtype == operands[1].dtype
            and fused_cpu_gelu_linear_supports(operands[0].dtype)
        ):
            x, weight, bias = operands
            return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, "gelu", [], "tanh")
        return nn.functional.gelu(self(input), approximate="tanh")


def check_video_input(pixel_values: torch.Tensor, num_channels: int, name: str = "pixel_values") -> None:
    """Refuse, with a one-line ValueError, inputs that are not a non-empty (B, T, C, H, W) floating tensor with
    ``num_channels`` channels (arrays, integer dtypes such as uint8/uint16, grayscale (T, H, W) clips, empty clips)."""
    if not isinstance(pixel_values, torch.Tensor):
        shape = getattr(pixel_values, "shape", None)
        given = f"a {type(pixel_values).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")
        raise ValueError(
            f"{name} must be a torch.Tensor of shape (batch, frames, channels, height, width), got {given}; "
            "use the model's video processor to turn frames or arrays into pixel_values"
        )
    if pixel_values.ndim != 5:
        raise ValueError(
            f"{name} must have shape (batch, frames, channels, height, width), got {tuple(pixel_values.shape)}"
        )
    if not pixel_values.is_floating_point():
        raise ValueError(
            f"{name} must be a floating tensor with values in [0, 1], got dtype {pixel_values.dtype}; "
            "use the model's video processor (or divide uint8 frames by 255)"
        )
    if pixel_values.shape[2] != num_channels:
        raise ValueError(
            f"{name} must have {num_channels} channels in dimension 2 (batch, frames, channels, height, width), "
            f"got shape {tuple(pixel_values.shape)}"
        )
    if 0 in pixel_values.shape:
        raise ValueError(f"{name} is empty: shape {tuple(pixel_values.shape)} (batch, frames, channels, height, width)")


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


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused q/k/v projection (biases on q, k, v and out, no q/k norm)."""

    def __init__(self, config, hidden_size: int, num_heads: int, bias: bool = True):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by the number of heads ({num_heads})")
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.qkv = Linear(hidden_size, 3 * hidden_size, bias=bias)
        self.out_proj = Linear(hidden_size, hidden_size, bias=bias)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, heads, N, head_dim) views of the fused projection
        if qkv.dtype == torch.float32 and qkv.device.type == "cpu":
            # CPU flash attention reads contiguous fp32 rows ~10% faster than these strided views, which pays for
            # the copy; in bf16 the copy costs more than it saves (benchmarks/bench_attention_layout.py).
            qkv = qkv.contiguous()
        query, key, value = qkv.unbind(0)
        attention = attention_interface(self.config)
        output, weights = attention(
            self, query, key, value, attention_mask, scaling=self.scaling, dropout=0.0, is_causal=False, **kwargs
        )
        return self.out_proj(output.reshape(batch, length, -1)), weights


class CrossAttention(nn.Module):
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
        super().__init__()
        inner_dim = inner_dim or query_dim
        if inner_dim % num_heads:
            raise ValueError(f"attention width ({inner_dim}) must be divisible by the number of heads ({num_heads})")
        self.config = config
        self.num_heads = num_heads
        self.head_dim = inner_dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
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
        batch, length, _ = hidden_states.shape
        query = split_heads(self.q_proj(hidden_states), self.num_heads)
        key, value = self.kv_proj(encoder_hidden_states).chunk(2, dim=-1)
        key, value = split_heads(key, self.num_heads), split_heads(value, self.num_heads)
        attention = attention_interface(self.config)
        output, weights = attention(
            self, query, key, value, attention_mask, scaling=self.scaling, dropout=0.0, is_causal=False, **kwargs
        )
        return self.out_proj(output.reshape(batch, length, -1)), weights


class FeedForward(nn.Module):
    """Two-layer MLP ``dense_out(act(dense_in(x)))``; the reference uses the tanh-approximate GELU."""

    def __init__(self, hidden_size: int, intermediate_size: int, output_size: int | None = None, act: str = "gelu_tanh"):
        super().__init__()
        self.dense_in = Linear(hidden_size, intermediate_size)
        self.dense_out = Linear(intermediate_size, output_size or hidden_size)
        self.act = activation(act)
        self.gelu_tanh = isinstance(self.act, nn.GELU) and self.act.approximate == "tanh"

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.gelu_tanh:
            return self.dense_out(self.dense_in.forward_gelu_tanh(hidden_states))
        return self.dense_out(self.act(self.dense_in(hidden_states)))


def activation(name: str) -> nn.Module:
    """Activation by name; ``gelu_tanh``/``gelu_pytorch_tanh`` is the JAX default ``nn.gelu``."""
    if name in ("gelu_tanh", "gelu_pytorch_tanh", "gelu_new"):
        return nn.GELU(approximate="tanh")
    if name == "gelu":
        return nn.GELU()
    if name == "relu":
        return nn.ReLU()
    if name in ("silu", "swish"):
        return nn.SiLU()
    raise ValueError(f"unknown activation {name!r}; expected one of gelu_tanh, gelu, relu, silu")


# --------------------------------------------------------------------------------------------------------------------
# Resampling with jax.image.resize's cubic kernel


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic kernel with a = -0.5 on |x|, in the operation order of jax.image's ``_keys_cubic_kernel``."""
    out = ((np.float32(1.5) * x - np.float32(2.5)) * x) * x + np.float32(1.0)
    out = np.where(x >= 1.0, ((np.float32(-0.5) * x + np.float32(2.5)) * x - np.float32(4.0)) * x + np.float32(2.0), out)
    return np.where(x >= 2.0, np.float32(0.0), out).astype(np.float32)


@lru_cache(maxsize=256)
def _cubic_resize_matrix_np(in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    # float32 throughout, as jax.image.resize's compute_weight_mat (x64 disabled): this matters at the 1e-6 level.
    scale = np.float32(out_size / in_size)
    inv_scale = np.float32(1.0) / scale
    widening = np.maximum(inv_scale, np.float32(1.0)) if antialias else np.float32(1.0)
    centres = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * inv_scale - np.float32(0.5)
    taps = np.arange(in_size, dtype=np.float32)
    weights = _keys_cubic(np.abs(centres[:, None] - taps[None, :]) / widening)
    totals = weights.sum(axis=1, keepdims=True, dtype=np.float32)
    # Taps that fall outside the input do not exist; the remaining weights are renormalised (no edge padding).
    valid = np.abs(totals) > 1000 * np.finfo(np.float32).eps
    weights = np.where(valid, weights / np.where(totals != 0, totals, np.float32(1.0)), np.float32(0.0))
    inside = (centres >= -0.5) & (centres <= in_size - 0.5)
    weights[~inside] = 0
    return weights.astype(np.float32)


def cubic_resize_matrix(in_size: int, out_size: int, antialias: bool = True) -> torch.Tensor:
    """The (out_size, in_size) matrix of ``jax.image.resize(..., method="cubic", antialias=antialias)`` on one axis.

    Keys cubic kernel with a = -0.5, half-pixel centres, out-of-range taps dropped and rows renormalised; with
    ``antialias`` the kernel is widened by the downsampling factor. Not the same as ``F.interpolate("bicubic")``.
    """
    return torch.from_numpy(_cubic_resize_matrix_np(int(in_size), int(out_size), bool(antialias)).copy())


def cubic_resize(x: torch.Tensor, sizes: dict[int, int], antialias: bool = True) -> torch.Tensor:
    """Separable cubic resize of the axes in ``sizes`` ({axis: new_size}), as ``jax.image.resize`` does."""
    for axis, new_size in sizes.items():
        axis = axis % x.ndim
        if x.shape[axis] == new_size:
            continue
        matrix = cubic_resize_matrix(x.shape[axis], new_size, antialias).to(device=x.device, dtype=x.dtype)
        x = torch.movedim(torch.tensordot(matrix, torch.movedim(x, axis, 0), dims=([1], [0])), 0, axis)
    return x


def readout_layer_index(num_features: int, readout_depth: float) -> int:
    """Index into the reference feature list: ``int(len(features) * readout_depth) - 1`` in double arithmetic."""
    index = int(num_features * float(readout_depth)) - 1
    if not 0 <= index < num_features:
        raise ValueError(
            f"readout_depth={readout_depth} selects feature {index}, outside the {num_features} available features"
        )
    return index


# --------------------------------------------------------------------------------------------------------------------
# Attention readout (the reference `AttentionReadout`)


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
        act: str = "gelu_tanh",
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


def patches_to_video(logits: torch.Tensor, output_shape, patch_size) -> torch.Tensor:
    """(B, n0*n1*n2, p0*p1*p2*c) -> (B, T, H, W, c): the reference readout's pixel rearrangement."""
    frames, height, width = output_shape[:3]
    channels = output_shape[3] if len(output_shape) > 3 else 1
    p0, p1, p2 = patch_size
    if frames % p0 or height % p1 or width % p2:
        raise ValueError(f"output shape {tuple(output_shape)} is not divisible by the decoding patch {tuple(patch_size)}")
    n0, n1, n2 = frames // p0, height // p1, width // p2
    batch = logits.shape[0]
    x = logits.reshape(batch, n0, n1, n2, p0, p1, p2, channels)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(batch, frames, height, width, channels)


def video_to_patches(video: torch.Tensor, patch_size) -> torch.Tensor:
    """Inverse of :func:`patches_to_video`: (B, T, H, W, c) -> (B, n0*n1*n2, p0*p1*p2*c)."""
    batch, frames, height, width, channels = video.shape
    p0, p1, p2 = patch_size
    x = video.reshape(batch, frames // p0, p0, height // p1, p1, width // p2, p2, channels)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(batch, -1, p0 * p1 * p2 * channels)


def init_reference_weights(module: nn.Module, std: float) -> bool:
    """Initialise the standard layers as the rep4d models do (truncated normal at +-2 std for Linear/Conv weights,
    zero biases, unit norms), through ``transformers.initialization`` so loaded weights are never overwritten.

    Also initialises the learned query and temporal embedding of an :class:`AttentionReadout`. Returns True when
    ``module`` was one of these; models handle their own parameters (position embeddings, tokens) otherwise.
    """
    from transformers import initialization as init

    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        if module.bias is not None:
            init.zeros_(module.bias)
        return True
    if isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
        if module.weight is not None:
            init.ones_(module.weight)
        if getattr(module, "bias", None) is not None:
            init.zeros_(module.bias)
        return True
    if isinstance(module, AttentionReadout):
        for parameter in (module.query, module.temporal_embedding):
            if parameter is not None:
                init.trunc_normal_(parameter, std=std, a=-2 * std, b=2 * std)
        return True
    return False


def trunc_normal_init_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """Truncated normal at +-2 std, the JAX/Flax default for position embeddings and queries."""
    return nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2 * std, b=2 * std)


def lecun_normal_(tensor: torch.Tensor) -> torch.Tensor:
    """Flax's default kernel init (variance 1/fan_in, truncated normal)."""
    fan_in = tensor.shape[1] if tensor.ndim >= 2 else tensor.shape[0]
    if tensor.ndim > 2:
        fan_in = math.prod(tensor.shape[1:])
    std = math.sqrt(1.0 / max(fan_in, 1)) / 0.87962566103423978
    return nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)
