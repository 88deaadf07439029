"""CPU inference fast paths of the rep4d models, in one place.

- :func:`cpu_has_native_bf16`: whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 / AMX).
- :func:`fused_cpu_gelu_linear_supports`: whether the fused oneDNN linear + tanh-GELU op can run a dtype here.
- :func:`emulated_cpu_dtype`: the half-precision dtype a CPU matmul was asked for but cannot run natively.
- :class:`Linear`: ``nn.Linear`` that reuses its autocast weight copy across calls and, in CPU inference, fuses bias
  and tanh-GELU into one oneDNN matmul (:meth:`Linear.forward_gelu_tanh`). Every projection of the models is one.
- :func:`linear`: ``F.linear`` with the same precision policy, for the few matmuls that are not a :class:`Linear`.
- :class:`Conv2d`: ``nn.Conv2d`` with the same precision policy (MooG's CNN encoder, RVM's patch embedding).
- :func:`attention_in_float32`: CPU training attention over short key sequences runs in float32 (bf16 is slower).

**Precision policy** (docs/BENCHMARKS.md, "Precision policy"): bf16 / fp16 matmuls run in that dtype only where the
CPU executes it natively. On a CPU without native bf16 (AVX2-only CPUs, or oneDNN capped below AVX512-BF16 with
``ONEDNN_MAX_CPU_ISA``), oneDNN emulates bf16 matmuls 4-9x slower than float32; there, in inference, every rep4d
matmul of a bf16 (autocast or bf16-weight) model computes in float32 from the exactly upcast bf16 operands and
rounds its output to bf16, and the user is told once. Outputs keep the dtype they would have had.

None of these change results beyond float rounding, and none take part when autograd or ``torch.compile`` runs.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from transformers.utils import logging

logger = logging.get_logger(__name__)

# oneDNN's fused matmul + bias + GELU(tanh) epilogue on CPU (the op inductor emits for this pattern).
_FUSED_CPU_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
_HALF = (torch.bfloat16, torch.float16)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 / AMX); AVX2-only CPUs do not.

    Cached (the CPU does not change within a process); ``cpu_has_native_bf16.cache_clear()`` re-reads it.
    """
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


@functools.cache
def cpu_has_native_fp16() -> bool:
    """Whether oneDNN runs float16 natively on this CPU (AMX-FP16 / AVX512-FP16)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def emulated_cpu_dtype(input: torch.Tensor, weight: torch.Tensor) -> torch.dtype | None:
    """The half dtype (bf16 / fp16) a CPU inference matmul of ``input`` by ``weight`` would run in (autocast's dtype
    under CPU autocast, else the operands' own) when this CPU lacks native support for it; None otherwise (native,
    float32, another device, or autograd / compilation in charge)."""
    if input.device.type != "cpu" or torch.is_grad_enabled() or torch.compiler.is_compiling():
        return None
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
    elif input.dtype in _HALF or weight.dtype in _HALF:
        dtype = input.dtype if input.dtype in _HALF else weight.dtype
    else:
        return None
    native = cpu_has_native_bf16() if dtype == torch.bfloat16 else cpu_has_native_fp16()
    if native:
        return None
    logger.warning_once(
        f"{str(dtype).replace('torch.', '')} was requested on a CPU without native support for it (no AVX512-BF16/"
        "AMX, e.g. an AVX2-only CPU): rep4d computes its matmuls in float32 from the exactly upcast operands and rounds "
        "the outputs back (an emulated half-precision matmul is 4-9x slower here). Running float32 is as fast and "
        "more accurate on this CPU."
    )
    return dtype


# Key lengths below which CPU training runs bf16 attention in float32 (attention_in_float32).
BF16_ATTENTION_BACKWARD_MIN_KEYS = 384


def attention_in_float32(query: torch.Tensor, key: torch.Tensor) -> bool:
    """Whether a CPU *training* attention call on bf16 q/k/v should compute in float32 (upcast, output cast back).

    PyTorch's CPU flash-attention backward is slow in bf16 on short key sequences: forward + backward of bf16 q/k/v
    took 6.05 ms vs 1.85 ms through float32 for (8, 3 heads, 65, 65, 64), 8.5 vs 6.6 ms for 257 keys, but 14.4 vs
    22.3 ms for 512 keys and 117 vs 185 ms for 1646 (AMX CPU, docs/BENCHMARKS.md). So with autograd on a CPU,
    attention over fewer than :data:`BF16_ATTENTION_BACKWARD_MIN_KEYS` keys with heads of 64 or more channels runs in
    float32: whole bf16 training steps measured 14-20% faster for RVM and 8% for 4DS (small presets), but 10-13%
    slower for MooG (heads of 32), which is left in bf16. Inference keeps bf16, whose forward is faster at every
    length.
    """
    return (
        query.device.type == "cpu"
        and query.dtype == torch.bfloat16
        and torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and key.shape[-2] < BF16_ATTENTION_BACKWARD_MIN_KEYS
        and query.shape[-1] >= 64
    )


def _float32_linear(input, weight, bias, out_dtype, gelu_tanh: bool = False):
    """``linear(input, weight, bias)`` (+ tanh-GELU) computed in float32, output rounded to ``out_dtype``."""
    input = input.float()
    with torch.autocast("cpu", enabled=False):
        if gelu_tanh and fused_cpu_gelu_linear_supports(torch.float32):
            output = torch.ops.mkldnn._linear_pointwise(input.contiguous(), weight, bias, "gelu", [], "tanh")
        else:
            output = nn.functional.linear(input, weight, bias)
            if gelu_tanh:
                output = nn.functional.gelu(output, approximate="tanh")
    return output.to(out_dtype)


def linear(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` under the precision policy: on a CPU without native bf16 / fp16, a half-precision inference matmul
    computes in float32 and returns the half dtype (uncached weight upcast: for matmuls run once per forward)."""
    dtype = emulated_cpu_dtype(input, weight)
    if dtype is None:
        return nn.functional.linear(input, weight, bias)
    return _float32_linear(input, weight.float(), None if bias is None else bias.float(), dtype)


def fused_cpu_gelu_linear_supports(dtype: torch.dtype) -> bool:
    """Whether the fused oneDNN linear + tanh-GELU op can run ``dtype`` on this CPU.

    float32 on AVX512 CPUs (:func:`cpu_has_avx512`); bfloat16 only where oneDNN has native bf16 kernels: elsewhere
    ``_linear_pointwise`` fails with "could not create a primitive descriptor" (and :class:`Linear` computes in
    float32 instead, see the policy above).
    """
    if not _FUSED_CPU_LINEAR:
        return False
    if dtype == torch.float32:
        return cpu_has_avx512()
    return dtype == torch.bfloat16 and cpu_has_native_bf16()


@functools.cache
def cpu_has_avx512() -> bool:
    """Whether ATen runs its AVX512 kernels here. oneDNN's fused tanh-GELU epilogue pays off only with AVX512: on an
    AVX2-only CPU it is 15-20% slower than MKL's matmul followed by ATen's GELU (4DS-B shapes, docs/BENCHMARKS.md), so
    the fused path is used only where this holds."""
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def _weights_in(module: nn.Module, dtype: torch.dtype):
    """``module``'s (weight, bias) in ``dtype``, cast once and reused while the parameters are unchanged.

    The copy is keyed by dtype, storage and the parameters' version counters, so any in-place update (optimizer step,
    ``load_state_dict``, ``.to()``) refreshes it; it is not part of the state dict.
    """
    weight, bias = module.weight, module.bias
    if weight.dtype == dtype:
        return weight, bias
    key = (dtype, weight.device, weight.data_ptr(), weight._version, None if bias is None else bias._version)
    cached = module.__dict__.get("_cast_weight_cache")
    if cached is None or cached[0] != key:
        cached = (key, weight.detach().to(dtype), None if bias is None else bias.detach().to(dtype))
        module.__dict__["_cast_weight_cache"] = cached
    return cached[1], cached[2]


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` under the precision policy: on a CPU without native bf16 / fp16, a half-precision inference
    convolution (autocast or half weights) computes in float32 with a cached float32 copy of the weights and returns
    the half dtype (oneDNN's emulated bf16 convolution is several times slower than float32 there)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        emulated = emulated_cpu_dtype(input, self.weight)
        if emulated is None:
            return super().forward(input)
        with torch.autocast("cpu", enabled=False):
            return self._conv_forward(input.float(), *_weights_in(self, torch.float32)).to(emulated)


class Linear(nn.Linear):
    """``nn.Linear`` with three inference paths (no autograd; results equal to float32 rounding).

    - Under autocast it reuses its weight cast to the autocast dtype across calls (:func:`_weights_in`). Autocast
      re-casts every fp32 weight on every call (its own cache lives for one autocast region only).
    - :meth:`forward_gelu_tanh` fuses bias and the tanh-GELU into the oneDNN matmul on CPU, which saves the separate
      GELU pass over the MLP's widest activation (tanh-GELU is slower than erf-GELU on CPU, and the models need it).
      float32 always; bfloat16 only on CPUs with native bf16 (:func:`fused_cpu_gelu_linear_supports`).
    - On a CPU without native bf16 / fp16 (the precision policy above), a half-precision inference call computes in
      float32 with a cached float32 copy of the weights and returns the half dtype.
    """

    def _inference_operands(self, input: torch.Tensor):
        """(input, weight, bias) for the inference paths, or None when autograd or compilation is in charge."""
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return None
        device_type = input.device.type
        if not torch.is_autocast_enabled(device_type):
            return input, self.weight, self.bias
        dtype = torch.get_autocast_dtype(device_type)
        return (input.to(dtype), *_weights_in(self, dtype))

    def _float32_forward(self, input: torch.Tensor, out_dtype: torch.dtype, gelu_tanh: bool = False) -> torch.Tensor:
        """The precision policy's path: float32 matmul (cached float32 weights), output in ``out_dtype``."""
        return _float32_linear(input, *_weights_in(self, torch.float32), out_dtype, gelu_tanh=gelu_tanh)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        emulated = emulated_cpu_dtype(input, self.weight)
        if emulated is not None:
            return self._float32_forward(input, emulated)
        operands = self._inference_operands(input)
        if operands is None:
            return super().forward(input)
        return nn.functional.linear(*operands)

    def forward_gelu_tanh(self, input: torch.Tensor) -> torch.Tensor:
        """``gelu(self(input), approximate="tanh")``, fused into one oneDNN call in CPU inference."""
        emulated = emulated_cpu_dtype(input, self.weight)
        if emulated is not None:
            return self._float32_forward(input, emulated, gelu_tanh=True)
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


__all__ = [
    "BF16_ATTENTION_BACKWARD_MIN_KEYS",
    "Conv2d",
    "Linear",
    "attention_in_float32",
    "cpu_has_avx512",
    "cpu_has_native_bf16",
    "cpu_has_native_fp16",
    "emulated_cpu_dtype",
    "fused_cpu_gelu_linear_supports",
    "linear",
]
