"""Streaming cost of the recurrent models: per-frame time must not grow with the clip length.

    python benchmarks/bench_streaming.py                                # MooG (released) and RVM-S/B, fp32 + bf16
    python benchmarks/bench_streaming.py --models moog --moog-size 256  # the released resolution (slow on CPU)
    python benchmarks/bench_streaming.py --short 8 --long 64 --json streaming.json

Each model processes a video one frame at a time, carrying the returned state (as in `rep4d propagate` or any long
video). Two streams are fed in alternation, frame by frame: one restarts every --short frames (8-frame clips), the
other carries its state through all --long frames. The ratio of their median per-frame times (and of the last 8 frames
of the long stream to the same frames of the short one) is the evidence for constant cost (target <= 1.1); the
alternation keeps background load from biasing it. fp32 runs plain; bf16 runs
under CPU autocast. Random weights of the released configurations (timing does not depend on their values).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import rep4d  # noqa: F401
from rep4d.configuration import MooGConfig, RVMConfig
from rep4d.modeling import MooGModel, RVMModel


def interleaved_streams(step, frames: torch.Tensor, short: int, bf16: bool) -> tuple[list[float], list[float]]:
    """Per-frame seconds of two streams fed in alternation: one restarts every ``short`` frames, the other carries its
    state through all ``len(frames)``. Alternating frame by frame exposes both to the same background load, so the
    ratio of their per-frame times isolates the effect of the stream's length."""
    short_times, long_times = [], []
    short_state = long_state = None
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        step(frames[:1], None)  # warm-up
        for index, frame in enumerate(frames):
            if index % short == 0:
                short_state = None
            start = time.perf_counter()
            short_state = step(frame[None], short_state)
            short_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            long_state = step(frame[None], long_state)
            long_times.append(time.perf_counter() - start)
    return short_times, long_times


def moog_step(model):
    generator = torch.Generator().manual_seed(0)

    def step(frame, state):
        return model(frame[:, None] if frame.ndim == 4 else frame, state=state, generator=generator).final_state

    return step


def rvm_step(model):
    def step(frame, state):
        return model(frame, state=state).final_state

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["moog", "rvm-s", "rvm-b"], choices=["moog", "rvm-s", "rvm-b"])
    parser.add_argument("--moog-size", type=int, default=128, help="square input size of MooG (released: 256)")
    parser.add_argument("--rvm-size", type=int, default=256, help="square input size of RVM (released: 256)")
    parser.add_argument("--short", type=int, default=8)
    parser.add_argument("--long", type=int, default=64)
    parser.add_argument("--modes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()

    torch.manual_seed(0)
    results = {}
    for name in args.models:
        if name == "moog":
            model, step_fn, size = MooGModel(MooGConfig.from_preset("released")).eval(), moog_step, args.moog_size
        else:
            config = RVMConfig.from_preset(name.split("-")[1])
            model, step_fn, size = RVMModel(config).eval(), rvm_step, args.rvm_size
        video = torch.rand(args.long, 3, size, size)
        for mode in args.modes:
            short, long = interleaved_streams(step_fn(model), video, args.short, mode == "bf16")
            row = {
                "size": size,
                "short_frames": args.short,
                "long_frames": args.long,
                "short_ms_per_frame": 1000 * statistics.median(short),
                "long_ms_per_frame": 1000 * statistics.median(long),
                "long_last_8_ms": 1000 * statistics.median(long[-8:]),
                "short_last_8_ms": 1000 * statistics.median(short[-8:]),
            }
            row["ratio_long_to_short"] = row["long_ms_per_frame"] / row["short_ms_per_frame"]
            row["ratio_last_8"] = row["long_last_8_ms"] / row["short_last_8_ms"]
            results[f"{name}/{mode}"] = row
            print(f"{name:<6} {mode:<5} {size}x{size}: {row['short_ms_per_frame']:8.1f} ms/frame in {args.short}-frame "
                  f"clips, {row['long_ms_per_frame']:8.1f} in one {args.long}-frame stream; ratio "
                  f"{row['ratio_long_to_short']:.3f} (frames {args.long - 7}-{args.long}: {row['ratio_last_8']:.3f})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
