"""CPU inference fast paths of the rep4d models, in one place.

- :func:`cpu_has_native_bf16`: whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 / AMX).
- :func:`fused_cpu_gelu_linear_supports`: whether the fused oneDNN linear + tanh-GELU op can run a dtype here.
- :class:`Linear`: ``nn.Linear`` that reuses its autocast weight copy across calls and, in CPU inference, fuses bias
  and tanh-GELU into one oneDNN matmul (:meth:`Linear.forward_gelu_tanh`). Every projection of the models is one.

None of these change results beyond float rounding, and none take part when autograd or ``torch.compile`` runs.
"""

from __future__ import annotations

import torch
from torch import nn
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


__all__ = ["Linear", "cpu_has_native_bf16", "fused_cpu_gelu_linear_supports"]
