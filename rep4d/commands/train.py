"""``rep4d train``: pretrain 4DS (SimpleMAE), distil 4DS, or pretrain MooG/RVM, with Accelerate.

The flags are defined here, once, for both ``rep4d train`` and ``python -m rep4d.training.train`` (torchrun /
accelerate launch); this module imports nothing heavy so that ``rep4d --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os

from rep4d.cli import (
    add_deprecated_alias,
    add_num_frames_argument,
    add_num_workers_argument,
    module_command,
    positive_int,
)

# The keys of rep4d.training.objectives.METHODS (a test checks they agree), listed here to keep torch out of --help.
METHOD_NAMES = ("4ds", "distill", "moog", "rvm")

EXAMPLES = """
examples:
  # 4DS SimpleMAE on synthetic clips, tiny model, one CPU process
  rep4d train --method 4ds --data synthetic --model-preset tiny --output runs/4ds --max-steps 300 --batch-size 8
  # on your videos (folder, CSV with a file_name column, or a datasets folder), bf16 on GPU
  rep4d train --method 4ds --data videos/ --model-preset s --output runs/4ds-s --batch-size 256 \\
      --learning-rate 1e-4 --warmup-steps 10000 --max-steps 200000 --mixed-precision bf16 --gradient-checkpointing
  # continue pretraining a converted checkpoint, override config values
  rep4d train --method 4ds --data videos.csv --init-from converted/4ds-b --output runs/4ds-b-cont --config mask_ratio=0.9
  # distil a tiny student from a trained 4DS folder
  rep4d train --method distill --teacher runs/4ds/final --data synthetic --model-preset tiny --output runs/dist
  # resume the newest checkpoint of a run
  rep4d train --method 4ds --data synthetic --output runs/4ds --max-steps 300 --resume-from latest
  # two CPU processes (DDP over gloo); GPUs: see training/configs/README.md
  ACCELERATE_USE_CPU=1 OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m rep4d.training.train --method 4ds ...

--batch-size is the global batch: per-device batch = batch / (processes * gradient accumulation steps).
Outputs: OUTPUT/metrics.csv, OUTPUT/logs (TensorBoard), OUTPUT/checkpoint-NNNNNNNN (save_state + meta.json),
OUTPUT/final (save_pretrained, loadable with AutoModel).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `rep4d train` and `python -m rep4d.training.train` (one definition for both)."""
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--method", required=True, choices=METHOD_NAMES, help="training objective")
    parser.add_argument("--data", required=True,
                        help="'synthetic' (clips rendered in memory), a folder of videos, a CSV of paths, or a "
                             "datasets folder (load_from_disk) with a path column")
    parser.add_argument("--output", "-o", required=True, help="run folder (metrics, logs, checkpoints, final/)")
    model = parser.add_argument_group("model")
    model.add_argument("--model-preset", default="tiny",
                       help="size preset: tiny, small (CPU-sized) or a model preset name such as s, b (default tiny)")
    model.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value (JSON), repeatable: --config hidden_size=128 --config mask_ratio=0.9")
    model.add_argument("--init-from", default=None, help="start from a save_pretrained folder instead of random init")
    model.add_argument("--teacher", default=None, help="distill: teacher FourDSModel folder")
    model.add_argument("--teacher-preset", default=None,
                       help="distill without --teacher: randomly initialised teacher preset (tests only)")
    model.add_argument("--distill-layers", type=float, nargs="+", default=[0.5, 1.0],
                       help="distill: relative depths of the matched layers (default 0.5 1.0)")
    model.add_argument("--rvm-source-frames", type=int, default=4, help="rvm: unmasked source frames (default 4)")
    model.add_argument("--rvm-target-frames", type=int, default=4, help="rvm: masked target frames (default 4)")
    add_num_frames_argument(model, dest="clip_frames",
                            help="rvm: frames per clip (default source + target; longer clips give random gaps)")
    add_deprecated_alias(model, "--clip-frames", "--num-frames", "clip_frames", type=positive_int)
    model.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in backward")
    model.add_argument("--attn-implementation", default=None, choices=["eager", "sdpa", "flash_attention_2"],
                       help="attention kernel (default: the model's default)")
    data = parser.add_argument_group("data")
    data.add_argument("--synthetic-clips", type=int, default=64, help="number of synthetic clips (default 64)")
    data.add_argument("--frame-stride", type=int, default=1, help="frame stride of the clips (default 1)")
    data.add_argument("--color-prob", type=float, default=0.8, help="probability of colour jitter (default 0.8)")
    data.add_argument("--path-column", default=None, help="path column of a CSV or datasets table")
    add_num_workers_argument(data, help="DataLoader workers per process")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--batch-size", type=int, default=8, help="global batch size in clips (default 8)")
    optim.add_argument("--gradient-accumulation-steps", type=int, default=1)
    optim.add_argument("--max-steps", type=int, default=100, help="optimizer steps (default 100)")
    optim.add_argument("--learning-rate", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    optim.add_argument("--min-lr-ratio", type=float, default=0.0, help="final lr / peak lr of the cosine (default 0)")
    optim.add_argument("--warmup-steps", type=int, default=10, help="linear warm-up steps (default 10)")
    optim.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (default 0.05)")
    optim.add_argument("--beta1", type=float, default=0.9)
    optim.add_argument("--beta2", type=float, default=0.95)
    optim.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping, <= 0 disables")
    optim.add_argument("--mixed-precision", default="auto", choices=["auto", "no", "bf16", "fp16"],
                       help="auto: bf16 on a GPU that supports it, otherwise fp32; bf16/fp16 on a CPU without native "
                       "support for it trains in fp32 (default auto)")
    optim.add_argument("--seed", type=int, default=0)
    run = parser.add_argument_group("logging and checkpoints")
    run.add_argument("--log-steps", type=int, default=10, help="log every N steps (default 10)")
    run.add_argument("--save-steps", type=int, default=0, help="checkpoint every N steps (0: only at the end)")
    run.add_argument("--save-total-limit", type=int, default=2, help="checkpoints kept (default 2, 0 keeps all)")
    run.add_argument("--resume-from", default=None, help="checkpoint folder, or 'latest' in --output")
    run.add_argument("--report-to", default="tensorboard", choices=["tensorboard", "none"])
    run.add_argument("--no-final", action="store_true", help="do not write final/ (checkpoints only)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rep4d.training.train import train

    result = train(args)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if result.losses:
        print(f"trained {result.steps} steps: loss {result.losses[0]:.5f} -> {result.losses[-1]:.5f}, "
              f"{result.clips_per_second:.2f} clips/s")
    if result.final_dir is not None:
        print(f"final model: {result.final_dir} (AutoModel.from_pretrained loads it)")
    if result.skipped_videos:
        print(f"skipped videos: {result.skipped_videos}")
    return 0


COMMAND = module_command(
    __name__,
    help="pretrain or distil a model (4ds, distill, moog, rvm) on videos or synthetic clips",
    description="Pretrain 4DS (SimpleMAE), distil a 4DS student, or pretrain MooG/RVM with Accelerate: one process, "
    "torchrun/accelerate launch (DDP), FSDP or DeepSpeed (see training/configs/README.md).",
    order=40,
)
