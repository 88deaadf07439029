"""4DS feature distillation (paper section 4.1): a student backbone learns to match two teacher layers.

The student (:class:`FourDSModel`) sees the same **unmasked** clip as the frozen teacher. For each of two layer
pairs, a linear adapter maps the student's tokens (width ``D_student``) to the teacher's width, and the loss is the
L1 distance to the teacher's tokens, averaged over tokens and channels, then over the two pairs.

Which two layers: the paper's text says two teacher layers without naming them in the material we have. The default
takes the layers at relative depths 0.5 and 1.0 (the middle block and the last block) of both networks, so the
student is supervised both on mid-level features and on the last features (the readout features, at depth 0.95,
lie between). ``layer_depths`` changes them; the index of depth ``d`` in a network of ``L`` blocks is
``max(1, round(d * L))`` into ``hidden_states`` (0 = embeddings, i = output of block i).

The adapters exist only for training: :meth:`FourDSDistillationModel.save_pretrained` writes the student alone as a
plain :class:`FourDSModel` folder (loadable with ``AutoModel``), and :meth:`student_state_dict` gives its weights.
The teacher stays frozen and in eval mode whatever ``train()`` is called with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from rep4d.modeling.modeling_fourds import FourDSModel

DEFAULT_LAYER_DEPTHS = (0.5, 1.0)


@dataclass
class DistillationOutput(ModelOutput):
    """Outputs of :class:`FourDSDistillationModel`.

    Args:
        loss: mean over the layer pairs of the L1 error between adapted student tokens and teacher tokens.
        layer_losses: (num_pairs,) the L1 error of every pair.
    """

    loss: torch.FloatTensor | None = None
    layer_losses: torch.FloatTensor | None = None


def layer_index(depth: float, num_layers: int) -> int:
    """Index into ``hidden_states`` (embeddings first) of the block at relative ``depth`` in (0, 1]."""
    if not 0.0 < depth <= 1.0:
        raise ValueError(f"layer depths must be in (0, 1], got {depth}")
    return max(1, min(num_layers, round(depth * num_layers)))


class FourDSDistillationModel(nn.Module):
    """Student + frozen teacher + one linear adapter per distilled layer pair (training only)."""

    _no_split_modules = ["FourDSLayer"]

    def __init__(self, student: FourDSModel, teacher: FourDSModel, layer_depths=DEFAULT_LAYER_DEPTHS):
        super().__init__()
        s_cfg, t_cfg = student.config, teacher.config
        student_grid = (s_cfg.num_frames, *s_cfg.image_size, *s_cfg.tubelet_size)
        teacher_grid = (t_cfg.num_frames, *t_cfg.image_size, *t_cfg.tubelet_size)
        if student_grid != teacher_grid:
            raise ValueError(
                "student and teacher must tokenise the same clip the same way: (frames, height, width, tubelet) is "
                f"{student_grid} for the student and {teacher_grid} for the teacher"
            )
        if len(layer_depths) < 1:
            raise ValueError("layer_depths must name at least one layer")
        self.config = s_cfg  # the loop reads the clip geometry from ``model.config``
        self.student = student
        self.teacher = teacher.eval().requires_grad_(False)
        self.layer_depths = tuple(float(depth) for depth in layer_depths)
        self.student_layers = [layer_index(d, s_cfg.num_hidden_layers) for d in self.layer_depths]
        self.teacher_layers = [layer_index(d, t_cfg.num_hidden_layers) for d in self.layer_depths]
        self.adapters = nn.ModuleList(nn.Linear(s_cfg.hidden_size, t_cfg.hidden_size) for _ in self.layer_depths)
        for adapter in self.adapters:
            nn.init.trunc_normal_(adapter.weight, std=s_cfg.initializer_range)
            nn.init.zeros_(adapter.bias)

    def train(self, mode: bool = True) -> FourDSDistillationModel:
        super().train(mode)
        self.teacher.eval()  # frozen: no dropout/batch statistics of the teacher ever change
        return self

    def activation_checkpointing_enable(self, **kwargs) -> None:
        """Activation checkpointing of the student (transformers 5's name; ``gradient_checkpointing_enable`` is
        deprecated)."""
        self.student.activation_checkpointing_enable(**kwargs)

    def forward(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None, **kwargs):
        r"""
        Args:
            pixel_values: (B, T, C, H, W) float clip in [0, 1], unmasked, fed to both networks.
            generator: unused (the objective has no randomness); accepted for the generic training loop.
        """
        with torch.no_grad():
            teacher_states = self.teacher(pixel_values, output_hidden_states=True).hidden_states
        student_states = self.student(pixel_values, output_hidden_states=True).hidden_states
        losses = []
        for adapter, s_index, t_index in zip(self.adapters, self.student_layers, self.teacher_layers):
            predicted = adapter(student_states[s_index])
            losses.append((predicted.float() - teacher_states[t_index].float()).abs().mean())
        layer_losses = torch.stack(losses)
        return DistillationOutput(loss=layer_losses.mean(), layer_losses=layer_losses)

    def student_state_dict(self, state_dict: dict | None = None) -> dict:
        """The student's weights (adapters and teacher dropped), from ``state_dict`` or from this module."""
        state_dict = self.state_dict() if state_dict is None else state_dict
        prefix = "student."
        return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}

    def save_pretrained(self, save_directory, **kwargs) -> None:
        """Save the student alone as a :class:`FourDSModel` folder (the adapters are training-only)."""
        self.student.save_pretrained(save_directory, **kwargs)


__all__ = ["FourDSDistillationModel", "DistillationOutput", "DEFAULT_LAYER_DEPTHS", "layer_index"]
