"""``rep4d train``: pretrain 4DS (SimpleMAE), distil 4DS, or pretrain MooG/RVM, with Accelerate."""

from __future__ import annotations

import argparse
import sys

from rep4d.cli import Command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rep4d.training.train import METHODS, add_train_arguments

    add_train_arguments(parser)
    # Offer the methods as choices so a typo fails in argparse with the list of valid names.
    for action in parser._actions:
        if action.dest == "method":
            action.choices = list(METHODS)


def run(args: argparse.Namespace) -> int:
    from rep4d.training.train import train

    try:
        result = train(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result.losses:
        print(f"trained {result.steps} steps: loss {result.losses[0]:.5f} -> {result.losses[-1]:.5f}, "
              f"{result.clips_per_second:.2f} clips/s")
    if result.final_dir is not None:
        print(f"final model: {result.final_dir} (AutoModel.from_pretrained loads it)")
    if result.skipped_videos:
        print(f"skipped videos: {result.skipped_videos}")
    return 0


COMMAND = Command(
    name="train",
    help="pretrain or distil a model (4ds, distill, moog, rvm) on videos or synthetic clips",
    description="Pretrain 4DS (SimpleMAE), distil a 4DS student, or pretrain MooG/RVM with Accelerate: one process, "
    "torchrun/accelerate launch (DDP), FSDP or DeepSpeed (see training/configs/README.md).",
    add_arguments=add_arguments,
    run=run,
    order=40,
)
