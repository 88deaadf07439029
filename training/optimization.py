"""Optimizer parameter groups and learning-rate schedules: the one place every training path takes them from.

One no-decay rule (:func:`decays`) for pretraining and for readouts: weight decay applies to matrices and kernels
only; biases, norm scales (every parameter with fewer than two dimensions), position embeddings and learned tokens
or queries (names ending in :data:`NO_DECAY_SUFFIXES`) get none.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> Callable[[int], float]:
    """Multiplier of the peak lr: linear from 1/warmup to 1 over ``warmup_steps``, then cosine to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


__all__ = ["NO_DECAY_SUFFIXES", "decays", "parameter_groups", "warmup_cosine"]
