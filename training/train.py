"""Pretraining loop for 4DS (SimpleMAE), 4DS distillation, MooG and RVM, with Accelerate.

One process, ``torchrun`` or ``accelerate launch`` (DDP, FSDP, DeepSpeed through ``training/configs/``)::

    rep4d train --method 4ds --data synthetic --model-preset tiny --output runs/4ds --max-steps 200
    python -m rep4d.training.train --method 4ds --data videos/ --output runs/4ds ...
    ACCELERATE_USE_CPU=1 OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m rep4d.training.train --method 4ds ...
    accelerate launch --config_file training/configs/ddp_multi_gpu.yaml -m rep4d.training.train --method 4ds ...

This file is the loop, top to bottom: build (accelerator, model, data) -> optimizer and schedule -> resume -> step
loop with logging and checkpoints -> save. Its parts live beside it: what each method trains in
:mod:`~rep4d.training.objectives`, the clips in :mod:`~rep4d.training.pretraining_data`, the Accelerator, mixed
precision and sharding in :mod:`~rep4d.training.launch`, checkpoints, ``metrics.csv`` and ``final/`` in
:mod:`~rep4d.training.checkpointing`, parameter groups and the schedule in :mod:`~rep4d.training.optimization`. The
flags are defined once, in ``rep4d/commands/train.py``.

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
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rep4d.training.checkpointing import MetricsWriter, load_checkpoint, save_checkpoint, save_final
from rep4d.training.launch import build_accelerator, enable_checkpointing
from rep4d.training.objectives import METHODS
from rep4d.training.optimization import adamw, parameter_groups, warmup_cosine
from rep4d.training.pretraining_data import build_pretraining_dataset, clip_geometry
from rep4d.training.video_data import ClipConfig, collate_video_clips


@dataclass
class TrainResult:
    output: Path
    losses: list[float]
    final_dir: Path | None
    clips_per_second: float
    steps: int
    skipped_videos: int = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags of ``rep4d train`` (defined once, in ``rep4d/commands/train.py``) -> the namespace :func:`train`
    takes."""
    from rep4d.commands.train import add_arguments

    parser = argparse.ArgumentParser(prog="python -m rep4d.training.train", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return parser.parse_args(argv)


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


def validate_args(args: argparse.Namespace, num_processes: int) -> None:
    """Refuse a bad configuration before any model or data is built; sets ``args.config_overrides``."""
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


def step_generator_seed(seed: int, step: int, micro_step: int, rank: int) -> int:
    """Seed of the model's generator for one micro-batch: a function of the position in training only."""
    return int(np.random.SeedSequence([seed, step, micro_step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def epoch_batches(accelerator, dataloader, dataset, epoch: int, batches_in_epoch: int) -> Iterator[tuple]:
    """``(epoch, batches consumed in that epoch, batch)``, epoch after epoch without end, starting after the first
    ``batches_in_epoch`` batches of ``epoch`` (a resumed run). The sampler and the augmentations follow the epoch."""
    while True:
        dataloader.set_epoch(epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        batches = accelerator.skip_first_batches(dataloader, batches_in_epoch) if batches_in_epoch else dataloader
        for batch in batches:
            batches_in_epoch += 1
            yield epoch, batches_in_epoch, batch
        epoch, batches_in_epoch = epoch + 1, 0


def train(args: argparse.Namespace) -> TrainResult:
    """Run training as ``args`` says (see :func:`parse_args`); returns the per-step losses and outputs."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    # Build: the accelerator, the method's module, the clips at the module's size.
    output = Path(args.output)
    validate_args(args, num_processes=1)
    accelerator = build_accelerator(args, output)
    validate_args(args, accelerator.num_processes)  # the process count is known once Accelerate has joined the group
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
    clip_config = ClipConfig(num_frames=frames, frame_stride=args.frame_stride, height=height, width=width,
                             train=True, color_prob=args.color_prob)
    dataset = build_pretraining_dataset(args.data, clip_config, seed=args.seed, synthetic_clips=args.synthetic_clips,
                                        path_column=args.path_column)
    per_device_batch = args.batch_size // (accelerator.num_processes * args.gradient_accumulation_steps)
    if len(dataset) < per_device_batch * accelerator.num_processes:
        raise ValueError(
            f"{len(dataset)} clips cannot fill one batch of {per_device_batch} x {accelerator.num_processes} processes"
        )
    dataloader = torch.utils.data.DataLoader(
        dataset, batch_size=per_device_batch, shuffle=True, drop_last=True, num_workers=args.num_workers,
        collate_fn=collate_video_clips, generator=torch.Generator().manual_seed(args.seed),
    )

    # Optimizer and schedule. The scheduler is not prepared (a prepared one steps num_processes times per optimizer
    # step): the loop steps it once per optimizer step, and it is registered for checkpointing.
    sharded = accelerator.distributed_type.name in ("FSDP", "DEEPSPEED")  # parameters re-created by prepare()
    optimizer = adamw(parameter_groups(model, args.weight_decay), fused=False if sharded else None,
                      lr=args.learning_rate, betas=(args.beta1, args.beta2))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(args.warmup_steps, args.max_steps, args.min_lr_ratio)
    )
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, dataloader)
    accelerator.register_for_checkpointing(scheduler)

    # Resume: model, optimizer, scheduler and RNG states, and the position in the data.
    step, epoch, batches_in_epoch, resume_step = 0, 0, 0, None
    if args.resume_from:
        meta = load_checkpoint(accelerator, args.resume_from, output, args.method)
        step, epoch, batches_in_epoch = meta["step"], meta["epoch"], meta["batches_in_epoch"]
        resume_step = step
    metrics = MetricsWriter(output / "metrics.csv", resume_step, accelerator.is_main_process)
    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers("logs", config={k: v for k, v in vars(args).items()
                                                  if isinstance(v, (int, float, str, bool))})

    # The loop: one iteration per micro-batch; an optimizer step every gradient_accumulation_steps micro-batches.
    rank = accelerator.process_index
    losses: list[float] = []
    window_loss = torch.zeros((), device=accelerator.device)
    micro_step, interval_steps, interval_start = 0, 0, time.perf_counter()
    run_start, trained_steps = time.perf_counter(), 0
    last_loss, last_grad_norm = float("nan"), float("nan")
    progress = tqdm(total=args.max_steps, initial=step, desc=f"train {args.method}", unit="step",
                    disable=args.quiet or not accelerator.is_local_main_process)
    model.train()
    batches = epoch_batches(accelerator, dataloader, dataset, epoch, batches_in_epoch)
    while step < args.max_steps:
        epoch, batches_in_epoch, batch = next(batches)
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
            continue  # accumulating: the optimizer step comes with a later micro-batch

        scheduler.step()
        last_loss = float(accelerator.reduce(window_loss / micro_step, reduction="mean"))
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
                   "clips_per_s": f"{interval_steps * args.batch_size / max(elapsed, 1e-9):.4g}",
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
    batches.close()
    progress.close()
    total_time = time.perf_counter() - run_start

    # Save: the last checkpoint, then final/ (save_pretrained of the method's model).
    save_checkpoint(accelerator, output, dict(step=step, epoch=epoch, batches_in_epoch=batches_in_epoch,
                                              method=args.method, loss=last_loss), args.save_total_limit)
    final_dir = None if args.no_final else save_final(accelerator, model, method, output / "final", args)
    if args.report_to != "none":
        accelerator.end_training()
    skipped = getattr(getattr(dataset, "stats", None), "total", 0)
    if skipped:
        accelerator.print(f"{skipped} videos were skipped (unreadable or too short); see the warnings")
    return TrainResult(output=output, losses=losses, final_dir=final_dir, steps=step, skipped_videos=skipped,
                       clips_per_second=trained_steps * args.batch_size / max(total_time, 1e-9))


def main(argv: list[str] | None = None) -> int:
    """``python -m rep4d.training.train``: the same flags, output and error handling as ``rep4d train``."""
    from rep4d.cli import run_command
    from rep4d.commands.train import COMMAND

    return run_command(COMMAND, argv, prog="python -m rep4d.training.train")


if __name__ == "__main__":
    raise SystemExit(main())
