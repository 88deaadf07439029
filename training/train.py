"""Pretraining loop for 4DS (SimpleMAE), 4DS distillation, MooG and RVM, with Accelerate.

One process, ``torchrun`` or ``accelerate launch`` (DDP, FSDP, DeepSpeed through ``training/configs/``)::

    rep4d train --method 4ds --data synthetic --model-preset tiny --output runs/4ds --max-steps 200
    python -m rep4d.training.train --method 4ds --data videos/ --output runs/4ds ...
    ACCELERATE_USE_CPU=1 OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m rep4d.training.train --method 4ds ...
    accelerate launch --config_file training/configs/ddp_multi_gpu.yaml -m rep4d.training.train --method 4ds ...

The loop is generic: a method builds a module whose ``forward(pixel_values=(B, T, C, H, W), generator=...)``
returns an output with ``.loss``, and says which pretrained model to save at the end (see :data:`METHODS`).

What the loop guarantees:

* ``--batch-size`` is the **global** batch (all processes, all accumulation steps); it must be divisible by
  ``num_processes * gradient_accumulation_steps``. The schedule is counted in optimizer steps: the scheduler is not
  prepared by Accelerate (which would step it ``num_processes`` times per optimizer step) but stepped once per
  optimizer step by the loop and registered for checkpointing.
* AdamW (betas 0.9/0.95, weight decay 0.05 as 4DS; no decay on biases, norms, position embeddings and learned
  tokens), linear warm-up then cosine decay to ``--min-lr-ratio`` of the peak, gradient clipping, accumulation.
* Exact resume: checkpoints are ``accelerator.save_state`` folders (model, optimizer, scheduler, every rank's RNG
  states) written to a temporary folder and renamed, plus ``meta.json`` (step, epoch, batches consumed). The data
  order comes from a seedable sampler (seed + epoch), augmentations from ``(seed, epoch, index)`` and the model's
  randomness (masks, decoding offsets) from a generator seeded by ``(seed, step, micro-step, rank)``, so a resumed
  run replays the same losses bit for bit on CPU.
* Logs: ``metrics.csv`` (step, epoch, loss, lr, grad_norm, clips_per_s, elapsed_s) and TensorBoard under ``logs/``.
* ``final/``: ``save_pretrained`` of the trained model (for ``distill``: the student alone, as a ``FourDSModel``),
  loadable with ``AutoModel.from_pretrained``, and a video processor.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

METRIC_COLUMNS = ["step", "epoch", "loss", "lr", "grad_norm", "clips_per_s", "elapsed_s"]
CHECKPOINT_PREFIX = "checkpoint-"

# ----------------------------------------------------------------------------------------------------------------
# Model presets small enough for a CPU (any FourDSConfig preset name works too, e.g. "s", "b").
# ----------------------------------------------------------------------------------------------------------------

FOURDS_TRAIN_PRESETS = {
    # 8 frames of 32x32, 2x8x8 tubelets: 64 tokens, 3 visible at 95% masking; about 0.25M parameters.
    "tiny": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
                 tubelet_size=[2, 8, 8], image_size=[32, 32], num_frames=8, decoder_num_layers=2,
                 decoder_patch_size=[2, 8, 8], readout_num_params=64, readout_num_heads=4),
    # 16 frames of 64x64, 2x16x16 tubelets: 128 tokens; about 2.7M parameters.
    "small": dict(hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
                  tubelet_size=[2, 16, 16], image_size=[64, 64], num_frames=16, decoder_num_layers=2,
                  decoder_patch_size=[2, 16, 16], readout_num_params=192, readout_num_heads=3),
}
# Teachers for distillation tests from scratch (a real run passes --teacher PATH): same clip, wider and deeper.
FOURDS_TEACHER_PRESETS = {
    "tiny": dict(FOURDS_TRAIN_PRESETS["tiny"], hidden_size=96, num_hidden_layers=6, intermediate_size=384),
    "small": dict(FOURDS_TRAIN_PRESETS["small"], hidden_size=384, num_hidden_layers=8, num_attention_heads=6,
                  intermediate_size=1536),
}


def fourds_config(preset: str, overrides: dict, table: dict = FOURDS_TRAIN_PRESETS):
    from rep4d.configuration.configuration_fourds import FourDSConfig

    return config_from_table(FourDSConfig, table, preset, overrides)


# ----------------------------------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Method:
    """How to build the training module of a method and what to save at the end.

    ``build(args) -> nn.Module`` whose forward takes ``pixel_values`` and ``generator`` and returns ``.loss``;
    the module has a ``config`` from which :func:`clip_geometry` reads the clip size;
    ``save_prefix``: the state-dict prefix of the model saved in ``final/`` ("" = the whole module);
    ``saved_model(module)`` returns the ``PreTrainedModel`` whose ``save_pretrained`` writes ``final/``.
    """

    name: str
    description: str
    build: Callable[[argparse.Namespace], nn.Module]
    saved_model: Callable[[nn.Module], nn.Module] = lambda module: module
    save_prefix: str = ""
    available: Callable[[], bool] = lambda: True
    extra_arguments: list[str] = field(default_factory=list)


def _load_or_init(model_class, config, args):
    if args.init_from:
        return model_class.from_pretrained(args.init_from, config=config)
    return model_class(config)


def build_fourds(args):
    from rep4d.modeling.modeling_fourds import FourDSForPreTraining

    return _load_or_init(FourDSForPreTraining, fourds_config(args.model_preset, args.config_overrides), args)


def build_distill(args):
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


def _class_available(module_name: str, class_name: str) -> Callable[[], bool]:
    def available() -> bool:
        import importlib

        try:
            return hasattr(importlib.import_module(module_name), class_name)
        except ImportError:
            return False

    return available


RVM_TRAIN_PRESETS = {
    # 32x32 frames, 4x4 patches: 64 patches per frame, 3 visible at 95% masking; about 0.5M parameters.
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256, patch_size=4,
                 image_size=[32, 32], base_token_shape=[8, 8], rnn_num_layers=1, rnn_num_attention_heads=4,
                 rnn_intermediate_size=256, decoder_hidden_size=64, decoder_num_layers=2,
                 decoder_num_attention_heads=4, decoder_intermediate_size=256),
    "small": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768, patch_size=8,
                  image_size=[64, 64], base_token_shape=[8, 8], rnn_num_layers=2, rnn_num_attention_heads=3,
                  rnn_intermediate_size=768, decoder_hidden_size=128, decoder_num_layers=2,
                  decoder_num_attention_heads=4, decoder_intermediate_size=512),
}


def config_from_table(config_class, table: dict, preset: str, overrides: dict):
    if preset in table:
        return config_class(**{**table[preset], **overrides})
    try:
        return config_class.from_preset(preset, **overrides)
    except ValueError as error:
        raise ValueError(f"{error}; training presets: {', '.join(table)}") from None


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


def build_rvm(args):
    from rep4d.configuration.configuration_rvm import RVMConfig
    from rep4d.modeling.modeling_rvm import RVMForMaskedReconstruction

    config = config_from_table(RVMConfig, RVM_TRAIN_PRESETS, args.model_preset, args.config_overrides)
    model = _load_or_init(RVMForMaskedReconstruction, config, args)
    return RVMPretrainingObjective(model, args.rvm_source_frames, args.rvm_target_frames, args.clip_frames)


_MOOG_TRAINING_CODE = dict(posenc_mode="project_add", encoder_output_size=None, state_norm_position="end")
MOOG_TRAIN_PRESETS: dict[str, dict] = {
    # 8 frames of 32x32 (the paper's 8-frame unroll), CNN strides 1,1,1,2,1,2 -> 8x8 encoder tokens, 16 state tokens;
    # decoding at subsampling 8 with a random offset (train_subsample_factor); about 0.4M parameters.
    "tiny": dict(_MOOG_TRAINING_CODE, image_size=[32, 32], num_frames=8, conv_features=[16, 32, 32, 64, 64, 64],
                 conv_strides=[1, 1, 1, 2, 1, 2], enc_fourier_bases=8, encoder_hidden_size=64, num_tokens=16,
                 token_size=64, predictor_qkv_size=64, predictor_num_heads=2, predictor_mlp_size=128,
                 predictor_num_layers=1, corrector_qkv_size=64, corrector_num_heads=2, corrector_mlp_size=128,
                 corrector_num_layers=1, decoder_qkv_size=32, decoder_num_heads=2, decoder_mlp_size=128,
                 decoder_num_layers=2, dec_fourier_bases=8, train_subsample_factor=8),
    "small": dict(_MOOG_TRAINING_CODE, image_size=[64, 64], num_frames=8, conv_features=[32, 64, 64, 128, 128, 128],
                  conv_strides=[1, 1, 1, 2, 1, 2], enc_fourier_bases=10, encoder_hidden_size=128, num_tokens=64,
                  token_size=128, predictor_qkv_size=128, predictor_num_heads=4, predictor_mlp_size=512,
                  predictor_num_layers=2, corrector_qkv_size=128, corrector_num_heads=4, corrector_mlp_size=512,
                  corrector_num_layers=1, decoder_qkv_size=64, decoder_num_heads=2, decoder_mlp_size=512,
                  decoder_num_layers=3, dec_fourier_bases=12, train_subsample_factor=8),
}


def build_moog(args):
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


def clip_geometry(model: nn.Module) -> tuple[int, int, int]:
    """(frames, height, width) of the training clips: ``model.clip_shape``, or the config's num_frames/image_size."""
    if getattr(model, "clip_shape", None) is not None:
        return tuple(int(v) for v in model.clip_shape)
    config = model.config
    image_size = getattr(config, "image_size", None)
    if image_size is None:
        raise ValueError(f"{type(config).__name__} has no image_size; cannot size the training clips")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    return int(config.num_frames), int(image_size[0]), int(image_size[1])


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------


class SyntheticClipDataset(torch.utils.data.Dataset):
    """``num_clips`` synthetic 4D clips rendered in memory (``rep4d.training.synthetic``), augmented like video files.

    Clip ``i`` is rendered from the seed ``(seed, i)`` at the training size; each epoch the same random resized
    crop / flip / colour augmentation as :mod:`rep4d.training.video_data` is drawn from ``(seed, epoch, i)``.
    """

    def __init__(self, num_clips: int, clip_config, seed: int = 0):
        from rep4d.training.synthetic import generate_clip

        if num_clips < 1:
            raise ValueError(f"--synthetic-clips must be >= 1, got {num_clips}")
        self.config, self.seed, self.epoch = clip_config, seed, 0
        self.videos = [
            generate_clip(seed=(seed, index), num_frames=clip_config.span, height=clip_config.height,
                          width=clip_config.width, num_points=0)["video"]
            for index in range(num_clips)
        ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        from rep4d.training.video_data import augment_clip

        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        frames = self.videos[index][:: self.config.frame_stride]
        return {"pixel_values": augment_clip(frames, rng, self.config), "index": int(index), "num_skipped": 0}


def build_dataset(args, frames: int, height: int, width: int):
    from rep4d.training.video_data import ClipConfig, build_video_dataset

    clip_config = ClipConfig(num_frames=frames, frame_stride=args.frame_stride, height=height, width=width,
                             train=True, color_prob=args.color_prob)
    if args.data == "synthetic":
        return SyntheticClipDataset(args.synthetic_clips, clip_config, seed=args.seed)
    return build_video_dataset(args.data, clip_config, seed=args.seed, path_column=args.path_column)


# ----------------------------------------------------------------------------------------------------------------
# Arguments and validation
# ----------------------------------------------------------------------------------------------------------------


def parse_overrides(items: list[str] | None) -> dict:
    """``["hidden_size=128", "tubelet_size=[2,8,8]", "mask_ratio=0.9"]`` -> dict (JSON values, else strings)."""
    overrides = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--config expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The training flags; defined once in ``rep4d/commands/train.py`` (shared with ``rep4d train``)."""
    from rep4d.commands.train import add_arguments

    add_arguments(parser)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m rep4d.training.train", description=__doc__.split("\n")[0])
    add_train_arguments(parser)
    return parser.parse_args(argv)


def validate_args(args: argparse.Namespace, num_processes: int) -> None:
    """Refuse a bad configuration before any model or data is built."""
    if args.method not in METHODS:
        raise ValueError(f"unknown method {args.method!r}; choose one of {', '.join(METHODS)}")
    if not METHODS[args.method].available():
        raise ValueError(f"method {args.method!r} needs a model class that this installation does not have yet")
    for name in ("batch_size", "gradient_accumulation_steps", "max_steps", "log_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup_steps < 0 or args.save_steps < 0:
        raise ValueError("--warmup-steps and --save-steps must be >= 0")
    divisor = num_processes * args.gradient_accumulation_steps
    if args.batch_size % divisor:
        raise ValueError(
            f"--batch-size {args.batch_size} (global) is not divisible by processes x gradient accumulation = "
            f"{num_processes} x {args.gradient_accumulation_steps} = {divisor}"
        )
    if args.data != "synthetic" and not Path(args.data).exists():
        raise FileNotFoundError(f"--data {args.data} does not exist (use a folder, a CSV file, or 'synthetic')")
    if args.method != "distill" and (args.teacher or args.teacher_preset):
        raise ValueError("--teacher/--teacher-preset only apply to --method distill")
    if args.init_from and not Path(args.init_from).exists():
        raise FileNotFoundError(f"--init-from {args.init_from} does not exist")
    args.config_overrides = parse_overrides(args.config) if isinstance(args.config, list) else dict(args.config)


# ----------------------------------------------------------------------------------------------------------------
# Optimisation helpers
# ----------------------------------------------------------------------------------------------------------------

NO_DECAY_SUFFIXES = ("position_embeddings", "tokens", "mask_token", "query", "latents")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on matrices/kernels, none on biases, norms, position embeddings and learned tokens."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.ndim < 2 or name.endswith(NO_DECAY_SUFFIXES):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> Callable[[int], float]:
    """Multiplier of the peak lr: linear from 1/warmup to 1 over ``warmup_steps``, then cosine to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def step_generator_seed(seed: int, step: int, micro_step: int, rank: int) -> int:
    """Seed of the model's generator for one micro-batch: a function of the position in training only."""
    return int(np.random.SeedSequence([seed, step, micro_step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------------------


def list_checkpoints(output: Path) -> list[Path]:
    return sorted(p for p in output.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and (p / "meta.json").exists())


def save_checkpoint(accelerator, output: Path, meta: dict, keep: int) -> Path:
    """``save_state`` into a temporary folder, add ``meta.json``, then rename: a crash never leaves half a checkpoint."""
    final = output / f"{CHECKPOINT_PREFIX}{meta['step']:08d}"
    temporary = output / f".tmp-{final.name}"
    if accelerator.is_main_process and temporary.exists():
        shutil.rmtree(temporary)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with open(temporary / "meta.json", "w") as handle:
            json.dump(meta, handle, indent=2)
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
        if keep > 0:
            for old in list_checkpoints(output)[:-keep]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def resolve_resume(resume_from: str, output: Path) -> Path:
    if resume_from == "latest":
        checkpoints = list_checkpoints(output)
        if not checkpoints:
            raise FileNotFoundError(f"--resume-from latest: no checkpoint in {output}")
        return checkpoints[-1]
    path = Path(resume_from)
    if not (path / "meta.json").exists():
        raise FileNotFoundError(f"--resume-from {path} is not a checkpoint folder (no meta.json)")
    return path


class MetricsWriter:
    """``metrics.csv`` in the run folder (main process); on resume, rows after the resumed step are dropped."""

    def __init__(self, path: Path, resume_step: int | None, enabled: bool):
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        rows = []
        if resume_step is not None and path.exists():
            with open(path, newline="") as handle:
                rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        if self.enabled:
            with open(self.path, "a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=METRIC_COLUMNS).writerow(row)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``metrics.csv`` with numbers parsed."""
    with open(path, newline="") as handle:
        return [{key: float(value) if value not in ("", None) else None for key, value in row.items()}
                for row in csv.DictReader(handle)]


# ----------------------------------------------------------------------------------------------------------------
# FSDP2 (raw torch): used by the distributed tests and usable in custom loops
# ----------------------------------------------------------------------------------------------------------------


def apply_fsdp2(model: nn.Module, **fully_shard_kwargs) -> nn.Module:
    """Shard ``model`` with ``torch.distributed.fsdp.fully_shard``: each ``_no_split_modules`` block, then the root.

    Needs an initialised process group (gloo on CPU, nccl on GPU). Returns the model (sharded in place).
    """
    from torch.distributed.fsdp import fully_shard

    block_names = set(getattr(model, "_no_split_modules", None) or [])
    if not block_names:
        raise ValueError(f"{type(model).__name__} has no _no_split_modules to shard")
    blocks = [module for module in model.modules() if type(module).__name__ in block_names]
    if not blocks:
        raise ValueError(f"no module of class {sorted(block_names)} in {type(model).__name__}")
    for block in blocks:
        fully_shard(block, **fully_shard_kwargs)
    fully_shard(model, **fully_shard_kwargs)
    return model


# ----------------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    output: Path
    losses: list[float]
    final_dir: Path | None
    clips_per_second: float
    steps: int
    skipped_videos: int = 0


def _reset_accelerate_singletons() -> None:
    """Allow several runs in one process (tests): Accelerate keeps its state in class-level singletons."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()


def enable_checkpointing(module: nn.Module) -> None:
    """Activation (gradient) checkpointing, with the transformers 5 name when the module has it."""
    enable = getattr(module, "activation_checkpointing_enable", None) or getattr(
        module, "gradient_checkpointing_enable", None)
    if enable is None:
        raise ValueError(f"{type(module).__name__} does not support gradient checkpointing")
    enable()


def resolve_mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def train(args: argparse.Namespace) -> TrainResult:
    """Run training as ``args`` says (see :func:`add_train_arguments`); returns the per-step losses and outputs."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from rep4d.training.video_data import collate_video_clips

    output = Path(args.output)
    validate_args(args, num_processes=1)
    _reset_accelerate_singletons()
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        log_with=None if args.report_to == "none" else args.report_to,
        project_dir=str(output),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        step_scheduler_with_optimizer=False,
    )
    # The process count is known only once Accelerate has joined the process group.
    validate_args(args, accelerator.num_processes)
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    method = METHODS[args.method]
    set_seed(args.seed)
    model = method.build(args)
    if args.attn_implementation and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(args.attn_implementation)
    if args.gradient_checkpointing:
        enable_checkpointing(model)
    frames, height, width = clip_geometry(model)
    dataset = build_dataset(args, frames, height, width)
    per_device_batch = args.batch_size // (accelerator.num_processes * args.gradient_accumulation_steps)
    if len(dataset) < per_device_batch * accelerator.num_processes:
        raise ValueError(
            f"{len(dataset)} clips cannot fill one batch of {per_device_batch} x {accelerator.num_processes} processes"
        )
    dataloader = torch.utils.data.DataLoader(
        dataset, batch_size=per_device_batch, shuffle=True, drop_last=True, num_workers=args.num_workers,
        collate_fn=collate_video_clips, generator=torch.Generator().manual_seed(args.seed),
    )
    optimizer = torch.optim.AdamW(parameter_groups(model, args.weight_decay), lr=args.learning_rate,
                                  betas=(args.beta1, args.beta2))
    # Not prepared: a prepared scheduler is stepped num_processes times per optimizer step. We step it ourselves.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(args.warmup_steps, args.max_steps, args.min_lr_ratio)
    )
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, dataloader)
    accelerator.register_for_checkpointing(scheduler)

    step, epoch, skip_batches, resume_step = 0, 0, 0, None
    if args.resume_from:
        checkpoint = resolve_resume(args.resume_from, output)
        accelerator.load_state(str(checkpoint))
        meta = json.loads((checkpoint / "meta.json").read_text())
        if meta.get("method") != args.method:
            raise ValueError(f"checkpoint {checkpoint} was trained with --method {meta.get('method')}, not {args.method}")
        step, epoch, skip_batches = meta["step"], meta["epoch"], meta["batches_in_epoch"]
        resume_step = step
        accelerator.print(f"resumed from {checkpoint} at step {step}")
    metrics = MetricsWriter(output / "metrics.csv", resume_step, accelerator.is_main_process)
    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers("logs", config={k: v for k, v in vars(args).items()
                                                  if isinstance(v, (int, float, str, bool))})

    rank = accelerator.process_index
    global_batch = args.batch_size
    losses: list[float] = []
    window_loss = torch.zeros((), device=accelerator.device)
    micro_step, interval_steps, interval_start = 0, 0, time.perf_counter()
    run_start, trained_steps = time.perf_counter(), 0
    progress = tqdm(total=args.max_steps, initial=step, desc=f"train {args.method}", unit="step",
                    disable=args.quiet or not accelerator.is_local_main_process)
    model.train()
    last_loss, last_grad_norm = float("nan"), float("nan")
    batches_in_epoch = skip_batches
    while step < args.max_steps:
        dataloader.set_epoch(epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        batches = accelerator.skip_first_batches(dataloader, skip_batches) if skip_batches else dataloader
        batches_in_epoch = skip_batches
        for batch in batches:
            batches_in_epoch += 1
            generator = torch.Generator(device=accelerator.device).manual_seed(
                step_generator_seed(args.seed, step, micro_step, rank))
            with accelerator.accumulate(model):
                loss = model(pixel_values=batch["pixel_values"], generator=generator).loss
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {loss.item()} at step {step}")
                accelerator.backward(loss)
                window_loss += loss.detach().float()
                micro_step += 1
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    norm = accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                    # DeepSpeed clips inside its engine (gradient_clipping in the JSON) and returns None here.
                    last_grad_norm = float(norm) if norm is not None else float("nan")
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            step_loss = accelerator.reduce(window_loss / micro_step, reduction="mean")
            last_loss = float(step_loss)
            losses.append(last_loss)
            window_loss.zero_()
            micro_step = 0
            step += 1
            trained_steps += 1
            interval_steps += 1
            progress.update(1)
            if step % args.log_steps == 0 or step == args.max_steps:
                elapsed = time.perf_counter() - interval_start
                row = {"step": step, "epoch": epoch, "loss": f"{last_loss:.8g}",
                       "lr": f"{scheduler.get_last_lr()[0]:.6g}", "grad_norm": f"{last_grad_norm:.6g}",
                       "clips_per_s": f"{interval_steps * global_batch / max(elapsed, 1e-9):.4g}",
                       "elapsed_s": f"{time.perf_counter() - run_start:.2f}"}
                metrics.write(row)
                if args.report_to != "none":
                    accelerator.log({"train/loss": last_loss, "train/lr": float(row["lr"]),
                                     "train/grad_norm": last_grad_norm, "train/clips_per_s": float(row["clips_per_s"])},
                                    step=step)
                progress.set_postfix(loss=f"{last_loss:.4f}", lr=row["lr"])
                interval_steps, interval_start = 0, time.perf_counter()
            if args.save_steps and step % args.save_steps == 0 and step < args.max_steps:
                save_checkpoint(accelerator, output, dict(step=step, epoch=epoch, batches_in_epoch=batches_in_epoch,
                                                          method=args.method, loss=last_loss), args.save_total_limit)
            if step >= args.max_steps:
                break
        else:
            epoch, skip_batches = epoch + 1, 0
            continue
        break
    progress.close()
    total_time = time.perf_counter() - run_start
    save_checkpoint(accelerator, output, dict(step=step, epoch=epoch, batches_in_epoch=batches_in_epoch,
                                              method=args.method, loss=last_loss), args.save_total_limit)
    final_dir = None if args.no_final else save_final(accelerator, model, method, output / "final", args)
    if args.report_to != "none":
        accelerator.end_training()
    skipped = getattr(getattr(dataset, "stats", None), "total", 0)
    if skipped:
        accelerator.print(f"{skipped} videos were skipped (unreadable or too short); see the warnings")
    return TrainResult(output=output, losses=losses, final_dir=final_dir, steps=step, skipped_videos=skipped,
                       clips_per_second=trained_steps * global_batch / max(total_time, 1e-9))


def save_final(accelerator, model, method: Method, final_dir: Path, args) -> Path:
    """``save_pretrained`` the trained model (gathered from every shard) plus a video processor."""
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)
    saved = method.saved_model(accelerator.unwrap_model(model))
    if accelerator.is_main_process:
        if method.save_prefix:
            state_dict = {k[len(method.save_prefix):]: v for k, v in state_dict.items()
                          if k.startswith(method.save_prefix)}
        saved.save_pretrained(final_dir, state_dict=state_dict, save_function=accelerator.save)
        processor = video_processor_for(saved.config)
        if processor is not None:
            processor.save_pretrained(final_dir)
        with open(final_dir / "training_args.json", "w") as handle:
            json.dump({k: v for k, v in vars(args).items() if k != "config_overrides"}, handle, indent=2, default=str)
    accelerator.wait_for_everyone()
    return final_dir


def video_processor_for(config):
    """The video processor matching a saved model, when its method has one."""
    from rep4d.auto import REGISTRY

    for config_class, _, processor_class in REGISTRY:
        if isinstance(config, config_class) and processor_class is not None and hasattr(processor_class, "for_config"):
            return processor_class.for_config(config)
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m rep4d.training.train``: the same flags, output and error handling as ``rep4d train``."""
    from rep4d.cli import run_command
    from rep4d.commands.train import COMMAND

    return run_command(COMMAND, argv, prog="python -m rep4d.training.train")


if __name__ == "__main__":
    raise SystemExit(main())
