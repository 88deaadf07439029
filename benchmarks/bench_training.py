"""Training throughput (clips/s) of every method at a small size on this machine, with the real training loop.

    .venv/bin/python benchmarks/bench_training.py                     # tiny presets, 10 steps each, batch 8
    .venv/bin/python benchmarks/bench_training.py --methods 4ds rvm --steps 20 --batch-size 16 --preset small
    .venv/bin/python benchmarks/bench_training.py --json bench.json

Each run trains on synthetic clips rendered in memory (``--data synthetic``), one process, fp32 on CPU (bf16 with
SDPA when a GPU is present and ``--mixed-precision auto``). The first ``--warmup`` steps are not timed: throughput is
measured from the loop's own per-step timestamps over the remaining steps (metrics.csv, logged every step).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import rep4d  # noqa: F401
from rep4d.training.checkpointing import read_metrics
from rep4d.training.objectives import METHODS
from rep4d.training.train import parse_args, train


def bench(method: str, preset: str, steps: int, warmup: int, batch_size: int, mixed_precision: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        argv = ["--method", method, "--data", "synthetic", "--output", folder, "--model-preset", preset,
                "--synthetic-clips", str(max(batch_size, 16)), "--batch-size", str(batch_size),
                "--max-steps", str(steps + warmup), "--log-steps", "1", "--quiet", "--report-to", "none",
                "--no-final", "--mixed-precision", mixed_precision, "--save-total-limit", "1"]
        start = time.perf_counter()
        result = train(parse_args(argv))
        wall = time.perf_counter() - start
        rows = read_metrics(Path(folder) / "metrics.csv")
    timed = rows[warmup:]
    seconds = timed[-1]["elapsed_s"] - rows[warmup - 1]["elapsed_s"] if warmup else timed[-1]["elapsed_s"]
    return dict(method=method, preset=preset, batch_size=batch_size, timed_steps=len(timed),
                clips_per_s=round(len(timed) * batch_size / seconds, 2), first_loss=round(result.losses[0], 5),
                last_loss=round(result.losses[-1], 5), wall_s=round(wall, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=[m for m in METHODS if METHODS[m].available()])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--mixed-precision", default="auto")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {device}, torch {torch.__version__}")
    results = []
    for method in args.methods:
        row = bench(method, args.preset, args.steps, args.warmup, args.batch_size, args.mixed_precision)
        results.append(row)
        print(f"{method:8s} preset={row['preset']} batch={row['batch_size']} {row['clips_per_s']:8.2f} clips/s "
              f"(loss {row['first_loss']} -> {row['last_loss']} over {row['timed_steps'] + args.warmup} steps)",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(device=device, results=results), indent=2))


if __name__ == "__main__":
    main()
