"""What each pretraining method trains: the :data:`METHODS` registry and the training-only modules.

A method builds a module whose ``forward(pixel_values=(B, T, C, H, W), generator=...)`` returns an output with
``.loss``, and says which pretrained model ``final/`` holds:

* ``4ds``: :class:`FourDSForPreTraining` (SimpleMAE), saved whole;
* ``distill``: :class:`rep4d.training.distillation.FourDSDistillationModel`, the student saved as a ``FourDSModel``;
* ``moog``: :class:`MooGForNextFramePrediction`, saved whole;
* ``rvm``: :class:`RVMPretrainingObjective` around :class:`RVMForMaskedReconstruction`, the model saved.

Model sizes come from the training presets of the configuration files (``FOURDS_TRAIN_PRESETS``,
``RVM_TRAIN_PRESETS``, ``MOOG_TRAIN_PRESETS``: CPU-sized ``tiny`` and ``small``) or any model preset name.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rep4d.configuration.configuration_fourds import FOURDS_TEACHER_PRESETS, FOURDS_TRAIN_PRESETS
from rep4d.configuration.configuration_moog import MOOG_TRAIN_PRESETS
from rep4d.configuration.configuration_rvm import RVM_TRAIN_PRESETS
from rep4d.training.launch import enable_checkpointing


def config_from_table(config_class, table: dict, preset: str, overrides: dict):
    """``config_class`` of the training preset ``preset`` of ``table``, else of the model preset ``preset``; with
    ``overrides`` applied."""
    if preset in table:
        return config_class(**{**table[preset], **overrides})
    try:
        return config_class.from_preset(preset, **overrides)
    except ValueError as error:
        raise ValueError(f"{error}; training presets: {', '.join(table)}") from None


def fourds_config(preset: str, overrides: dict, table: dict = FOURDS_TRAIN_PRESETS):
    """A :class:`FourDSConfig` of a training preset (``tiny``, ``small``) or a model preset (``s``, ``b``...)."""
    from rep4d.configuration.configuration_fourds import FourDSConfig

    return config_from_table(FourDSConfig, table, preset, overrides)


class RVMPretrainingObjective(nn.Module):
    """RVM asymmetric masked reconstruction on one clip of ``source + target`` (or more) frames.

    The first ``num_source_frames`` frames are the unmasked sources (encoder + recurrent core); ``num_target_frames``
    target frames are drawn (with the step's generator, the same for the batch, sorted) among the later frames of the
    clip, 95%-masked, and reconstructed by the decoder with their temporal delta = offset from the first source frame
    (the demo's convention: sources 0-3, targets 4-7, deltas 4-7). Loss: L2 on the masked patches of the targets, raw
    [0, 1] pixels (``masked_patch_loss`` of the model). A clip longer than ``source + target`` gives random gaps.
    """

    def __init__(self, model: nn.Module, num_source_frames: int, num_target_frames: int, clip_frames: int | None):
        super().__init__()
        clip_frames = clip_frames or num_source_frames + num_target_frames
        if num_source_frames < 1 or num_target_frames < 1:
            raise ValueError("RVM needs at least one source and one target frame")
        if clip_frames < num_source_frames + num_target_frames:
            raise ValueError(f"a clip of {clip_frames} frames cannot hold {num_source_frames} source and "
                             f"{num_target_frames} target frames")
        if clip_frames - 1 >= model.config.num_delta_classes:
            raise ValueError(f"clip of {clip_frames} frames: deltas up to {clip_frames - 1} exceed the "
                             f"{model.config.num_delta_classes} delta classes")
        self.model, self.config = model, model.config
        self.num_source_frames, self.num_target_frames = num_source_frames, num_target_frames
        self.clip_shape = (clip_frames, *model.config.image_size)
        self._no_split_modules = model._no_split_modules

    def activation_checkpointing_enable(self, **kwargs) -> None:
        """Activation checkpointing of the wrapped model (transformers 5's name; ``gradient_checkpointing_enable`` is
        deprecated)."""
        enable_checkpointing(self.model)

    def forward(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None, **kwargs):
        batch, frames = pixel_values.shape[:2]
        source = self.num_source_frames
        candidates = frames - source
        order = torch.randperm(candidates, generator=generator, device=generator.device if generator else "cpu")
        target_index = (order[: self.num_target_frames].sort().values + source).to(pixel_values.device)
        deltas = target_index[None].expand(batch, -1)
        return self.model(pixel_values=pixel_values[:, :source], target_pixel_values=pixel_values[:, target_index],
                          target_deltas=deltas, generator=generator, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# The methods
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Method:
    """How to build the training module of a method and what to save at the end.

    ``build(args) -> nn.Module`` whose forward takes ``pixel_values`` and ``generator`` and returns ``.loss``;
    the module has a ``config`` from which :func:`rep4d.training.pretraining_data.clip_geometry` reads the clip size;
    ``save_prefix``: the state-dict prefix of the model saved in ``final/`` ("" = the whole module);
    ``saved_model(module)`` returns the ``PreTrainedModel`` whose ``save_pretrained`` writes ``final/``.
    """

    name: str
    description: str
    build: Callable[[argparse.Namespace], nn.Module]
    saved_model: Callable[[nn.Module], nn.Module] = lambda module: module
    save_prefix: str = ""
    available: Callable[[], bool] = lambda: True


def _load_or_init(model_class, config, args):
    if args.init_from:
        return model_class.from_pretrained(args.init_from, config=config)
    return model_class(config)


def _class_available(module_name: str, class_name: str) -> Callable[[], bool]:
    def available() -> bool:
        try:
            return hasattr(importlib.import_module(module_name), class_name)
        except ImportError:
            return False

    return available


def build_fourds(args: argparse.Namespace) -> nn.Module:
    from rep4d.modeling.modeling_fourds import FourDSForPreTraining

    return _load_or_init(FourDSForPreTraining, fourds_config(args.model_preset, args.config_overrides), args)


def build_distill(args: argparse.Namespace) -> nn.Module:
    from rep4d.modeling.modeling_fourds import FourDSModel
    from rep4d.training.distillation import FourDSDistillationModel

    student = _load_or_init(FourDSModel, fourds_config(args.model_preset, args.config_overrides), args)
    if args.teacher:
        if not Path(args.teacher).exists():
            raise FileNotFoundError(f"--teacher {args.teacher} does not exist (a save_pretrained folder of 4DS)")
        teacher = FourDSModel.from_pretrained(args.teacher)
    else:
        teacher = FourDSModel(fourds_config(args.teacher_preset or args.model_preset, {}, FOURDS_TEACHER_PRESETS))
    return FourDSDistillationModel(student, teacher, layer_depths=args.distill_layers)


def build_rvm(args: argparse.Namespace) -> nn.Module:
    from rep4d.configuration.configuration_rvm import RVMConfig
    from rep4d.modeling.modeling_rvm import RVMForMaskedReconstruction

    config = config_from_table(RVMConfig, RVM_TRAIN_PRESETS, args.model_preset, args.config_overrides)
    model = _load_or_init(RVMForMaskedReconstruction, config, args)
    return RVMPretrainingObjective(model, args.rvm_source_frames, args.rvm_target_frames, args.clip_frames)


def build_moog(args: argparse.Namespace) -> nn.Module:
    from rep4d.configuration.configuration_moog import MooGConfig
    from rep4d.modeling.modeling_moog import MooGForNextFramePrediction

    config = config_from_table(MooGConfig, MOOG_TRAIN_PRESETS, args.model_preset, args.config_overrides)
    return _load_or_init(MooGForNextFramePrediction, config, args)


METHODS: dict[str, Method] = {
    "4ds": Method("4ds", "4DS SimpleMAE: 95% tubelet masking, decoding tokens in the last blocks, L2 on all patches",
                  build_fourds),
    "distill": Method("distill", "4DS distillation: student matches two teacher layers (linear adapters, L1)",
                      build_distill, saved_model=lambda module: module.student, save_prefix="student."),
    "moog": Method("moog", "MooG next-frame prediction (8-frame unroll, decoding at subsampling 8, random offset)",
                   build_moog,
                   available=_class_available("rep4d.modeling.modeling_moog", "MooGForNextFramePrediction")),
    "rvm": Method("rvm", "RVM asymmetric masked reconstruction (recurrent source frames, 95%-masked targets)",
                  build_rvm, saved_model=lambda module: module.model, save_prefix="model.",
                  available=_class_available("rep4d.modeling.modeling_rvm", "RVMForMaskedReconstruction")),
}

__all__ = ["METHODS", "Method", "RVMPretrainingObjective", "config_from_table", "fourds_config"]
