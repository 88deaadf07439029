"""What every rep4d ``PreTrainedModel`` shares: the video-model settings and the reference weight initialisation."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init

from .attention_readout import AttentionReadout


def trunc_normal_init_(tensor: torch.Tensor, std: float) -> None:
    """Truncated normal at +-2 std (the JAX/Flax default), through ``transformers.initialization`` so loaded
    weights are never overwritten."""
    init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


def init_reference_weights(module: nn.Module, std: float) -> bool:
    """Initialise the standard layers as the rep4d models do (truncated normal at +-2 std for Linear/Conv weights,
    zero biases, unit norms), through ``transformers.initialization`` so loaded weights are never overwritten.

    Also initialises the learned query and temporal embedding of an :class:`AttentionReadout`. Returns True when
    ``module`` was one of these; models handle their own parameters (position embeddings, tokens) otherwise.
    """
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        trunc_normal_init_(module.weight, std)
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
                trunc_normal_init_(parameter, std)
        return True
    return False


class Rep4DPreTrainedModel(PreTrainedModel):
    """Base of the 4DS, MooG and RVM ``PreTrainedModel`` classes: video input, gradient checkpointing, every
    attention implementation, and :func:`init_reference_weights`. A family adds its own parameters (position
    embeddings, tokens) by extending ``_init_weights`` after ``super()._init_weights(module)``."""

    main_input_name = "pixel_values"
    input_modalities = "video"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        init_reference_weights(module, self.config.initializer_range)


__all__ = ["Rep4DPreTrainedModel", "init_reference_weights", "trunc_normal_init_"]
