"""How a pretraining run is launched: the Accelerator (one process, DDP, FSDP or DeepSpeed through
``training/configs/``), mixed precision, activation checkpointing, and FSDP2 sharding for custom loops.

The loop (:mod:`rep4d.training.train`) builds its :class:`accelerate.Accelerator` with :func:`build_accelerator`;
``accelerate launch --config_file training/configs/<file>`` chooses DDP, FSDP or DeepSpeed without code changes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from transformers.utils import logging

logger = logging.get_logger(__name__)


def resolve_mixed_precision(choice: str, device: str | None = None) -> str:
    """``--mixed-precision`` for a run on ``device`` (``cuda`` when a GPU is visible, else ``cpu``; Accelerate's choice).

    ``auto`` is bf16 on a GPU that supports it, otherwise ``no`` (fp32). The precision policy (docs/BENCHMARKS.md):
    bf16 / fp16 on a CPU without native support for it (no AVX512-BF16 / AMX, e.g. an AVX2-only CPU) would train
    through emulated half-precision matmuls, several times slower than fp32, so the run trains in fp32 and says so
    once.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "auto":
        return "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "no"
    if choice in ("bf16", "fp16") and device == "cpu":
        from rep4d.modeling.cpu_fast_paths import cpu_has_native_bf16, cpu_has_native_fp16

        if not (cpu_has_native_bf16() if choice == "bf16" else cpu_has_native_fp16()):
            logger.warning_once(
                f"--mixed-precision {choice} on a CPU without native {choice} (no AVX512-BF16/AMX, e.g. an AVX2-only "
                "CPU): its matmuls would be emulated, several times slower than fp32, so this run trains in fp32.")
            return "no"
    return choice


def reset_accelerate_state() -> None:
    """Allow several runs in one process (tests): Accelerate keeps its state in class-level singletons."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()


def build_accelerator(args: argparse.Namespace, output: Path):
    """The run's Accelerator: gradient accumulation, mixed precision, trackers under ``output``, a seedable sampler.

    The scheduler is not stepped with the optimizer (``step_scheduler_with_optimizer=False``): the loop steps it
    once per optimizer step, whatever the number of processes.
    """
    from accelerate import Accelerator, DataLoaderConfiguration

    reset_accelerate_state()
    return Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        log_with=None if args.report_to == "none" else args.report_to,
        project_dir=str(output),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        step_scheduler_with_optimizer=False,
    )


def enable_checkpointing(module: nn.Module) -> None:
    """Activation (gradient) checkpointing, with the transformers 5 name when the module has it."""
    enable = getattr(module, "activation_checkpointing_enable", None) or getattr(
        module, "gradient_checkpointing_enable", None)
    if enable is None:
        raise ValueError(f"{type(module).__name__} does not support gradient checkpointing")
    enable()


def apply_fsdp2(model: nn.Module, **fully_shard_kwargs) -> nn.Module:
    """Shard ``model`` with ``torch.distributed.fsdp.fully_shard``: each ``_no_split_modules`` block, then the root.

    Raw torch FSDP2, for custom loops and the distributed tests (the loop itself shards through Accelerate's FSDP
    configs). Needs an initialised process group (gloo on CPU, nccl on GPU). Returns the model (sharded in place).
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


__all__ = ["apply_fsdp2", "build_accelerator", "enable_checkpointing", "reset_accelerate_state",
           "resolve_mixed_precision"]
