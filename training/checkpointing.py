"""What a pretraining run writes and reads back: checkpoints, ``metrics.csv`` and the final model folder.

* ``OUTPUT/checkpoint-NNNNNNNN``: an ``accelerator.save_state`` folder (model, optimizer, scheduler, every rank's RNG
  states) plus ``meta.json`` (step, epoch, batches consumed in the epoch, method, loss), written to a temporary
  folder and renamed, so a crash never leaves half a checkpoint; the newest ``keep`` are kept.
* ``OUTPUT/metrics.csv``: one row per logged step (:data:`METRIC_COLUMNS`); on resume the rows after the resumed
  step are dropped.
* ``OUTPUT/final``: ``save_pretrained`` of the trained model (gathered from every shard), its video processor and
  ``training_args.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
from pathlib import Path

from torch import nn

METRIC_COLUMNS = ["step", "epoch", "loss", "lr", "grad_norm", "clips_per_s", "elapsed_s"]
CHECKPOINT_PREFIX = "checkpoint-"


def list_checkpoints(output: Path) -> list[Path]:
    """The complete checkpoints of a run folder, oldest first."""
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
    """``--resume-from``: a checkpoint folder, or ``latest`` (the newest checkpoint in ``output``)."""
    if resume_from == "latest":
        checkpoints = list_checkpoints(output)
        if not checkpoints:
            raise FileNotFoundError(f"--resume-from latest: no checkpoint in {output}")
        return checkpoints[-1]
    path = Path(resume_from)
    if not (path / "meta.json").exists():
        raise FileNotFoundError(f"--resume-from {path} is not a checkpoint folder (no meta.json)")
    return path


def load_checkpoint(accelerator, resume_from: str, output: Path, method: str) -> dict:
    """Restore the prepared objects of ``accelerator`` from a checkpoint; returns its ``meta.json``."""
    checkpoint = resolve_resume(resume_from, output)
    accelerator.load_state(str(checkpoint))
    meta = json.loads((checkpoint / "meta.json").read_text())
    if meta.get("method") != method:
        raise ValueError(f"checkpoint {checkpoint} was trained with --method {meta.get('method')}, not {method}")
    accelerator.print(f"resumed from {checkpoint} at step {meta['step']}")
    return meta


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


def save_final(accelerator, model: nn.Module, method, final_dir: Path, args: argparse.Namespace) -> Path:
    """``save_pretrained`` the trained model (gathered from every shard) plus a video processor.

    ``method`` is the run's :class:`rep4d.training.objectives.Method`: ``method.saved_model(module)`` is the model
    written, ``method.save_prefix`` the prefix of its weights in the training module's state dict.
    """
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


__all__ = ["CHECKPOINT_PREFIX", "METRIC_COLUMNS", "MetricsWriter", "list_checkpoints", "load_checkpoint",
           "read_metrics", "resolve_resume", "save_checkpoint", "save_final", "video_processor_for"]
