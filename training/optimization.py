"""Optimizer parameter groups, the AdamW optimizer and learning-rate schedules: the one place every training path takes
them from.

One no-decay rule (:func:`decays`) for pretraining and for readouts: weight decay applies to matrices and kernels
only; biases, norm scales (every parameter with fewer than two dimensions), position embeddings and learned tokens
or queries (names ending in :data:`NO_DECAY_SUFFIXES`) get none.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

NO_DECAY_SUFFIXES = ("position_embeddings", "tokens", "mask_token", "query", "latents")


def decays(name: str, parameter: nn.Parameter) -> bool:
    """Whether ``parameter`` (called ``name`` in ``named_parameters()``) gets weight decay."""
    return parameter.ndim >= 2 and "norm" not in name and not name.endswith(NO_DECAY_SUFFIXES)


def parameter_groups(
    model: nn.Module,
    weight_decay: float,
    learning_rate: float | None = None,
    backbone_prefix: str | None = None,
    backbone_learning_rate_scale: float = 1.0,
) -> list[dict]:
    """AdamW parameter groups of the trainable parameters of ``model``, split by :func:`decays`.

    With ``backbone_prefix`` (e.g. ``"backbone."`` for a readout model trained end to end) the parameters under it
    form their own groups at ``learning_rate * backbone_learning_rate_scale``; the others run at ``learning_rate``.
    Without ``learning_rate`` the groups carry no ``lr`` and take the optimizer's. Groups are named
    ``{part}_{decay|no_decay}`` (part ``model``, ``readout`` or ``backbone``); empty groups are left out.
    """
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if backbone_prefix is None:
            part = "model"
        else:
            part = "backbone" if name.startswith(backbone_prefix) else "readout"
        groups.setdefault((part, decays(name, parameter)), []).append(parameter)
    order = {"model": 0, "readout": 0, "backbone": 1}
    result = []
    for (part, decay), parameters in sorted(groups.items(), key=lambda item: (order[item[0][0]], not item[0][1])):
        group = {"params": parameters, "weight_decay": weight_decay if decay else 0.0,
                 "name": f"{part}_{'decay' if decay else 'no_decay'}"}
        if learning_rate is not None:
            group["lr"] = learning_rate * (backbone_learning_rate_scale if part == "backbone" else 1.0)
        result.append(group)
    return result


def fused_adamw_supported(groups: list[dict]) -> bool:
    """Whether torch's fused AdamW kernel can take every parameter of ``groups``: plain (not sharded ``DTensor``)
    floating-point tensors, all on CPU or all on one CUDA device."""
    parameters = [p for group in groups for p in group["params"]]
    devices = {p.device for p in parameters}
    return (
        bool(parameters)
        and len(devices) == 1
        and next(iter(devices)).type in ("cpu", "cuda")
        and all(type(p.data) is torch.Tensor and p.is_floating_point() for p in parameters)
    )


def adamw(groups: list[dict], fused: bool | None = None, **kwargs) -> torch.optim.AdamW:
    """``torch.optim.AdamW(groups, **kwargs)`` with the fused kernel where it runs (``fused=None``: when
    :func:`fused_adamw_supported`). The fused step updates every parameter in one kernel instead of about eight
    ``foreach`` passes: 3.4x faster on the 3.3M-parameter 4DS training preset on CPU (25 -> 7 ms, one thread;
    docs/BENCHMARKS.md "Training steps"), the same update up to float rounding. Pass ``fused=False`` where
    parameters become sharded after construction (FSDP, DeepSpeed)."""
    if fused is None:
        fused = fused_adamw_supported(groups)
    return torch.optim.AdamW(groups, fused=fused or None, **kwargs)


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> Callable[[int], float]:
    """Multiplier of the peak lr: linear from 1/warmup to 1 over ``warmup_steps``, then cosine to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


__all__ = ["NO_DECAY_SUFFIXES", "decays", "parameter_groups", "warmup_cosine"]
