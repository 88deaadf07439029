"""Per-frame streaming latency of RVM-S and RVM-B at 256x256 (random weights; the architecture is what matters).

Each step feeds one frame (batch 1 by default) with the carried state, as the notebooks stream videos; the first
``--warmup`` frames are excluded. Reports the median and mean milliseconds per frame and frames per second.

    python benchmarks/bench_rvm.py                       # S and B on CPU, float32, eager and sdpa
    python benchmarks/bench_rvm.py --device cuda --dtype bfloat16 --sizes s b l h
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from rep4d import RVMConfig, RVMModel


def bench(size: str, device: str, dtype: torch.dtype, attention: str, frames: int, warmup: int, batch: int,
          resolution: tuple[int, int]) -> dict:
    torch.manual_seed(0)
    config = RVMConfig.from_preset(size)
    model = RVMModel(config).to(device=device, dtype=dtype).eval()
    model.set_attn_implementation(attention)
    video = torch.rand(batch, warmup + frames, 3, *resolution, device=device, dtype=dtype)
    times, state = [], None
    with torch.inference_mode():
        for t in range(video.shape[1]):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            state = model(video[:, t], state=state).final_state
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if t >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return {
        "size": size, "device": device, "dtype": str(dtype).removeprefix("torch."), "attention": attention,
        "batch": batch, "resolution": list(resolution), "frames_timed": frames,
        "params_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "median_ms_per_frame": round(statistics.median(times), 2), "mean_ms_per_frame": round(statistics.mean(times), 2),
        "frames_per_second": round(1000 * batch / statistics.median(times), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["s", "b"], choices=["s", "b", "l", "h"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--attention", nargs="+", default=["eager", "sdpa"])
    parser.add_argument("--frames", type=int, default=10, help="timed frames")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--resolution", type=int, nargs=2, default=[256, 256])
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    for size in args.sizes:
        for attention in args.attention:
            print(json.dumps(bench(size, args.device, dtype, attention, args.frames, args.warmup, args.batch,
                                   tuple(args.resolution))), flush=True)


if __name__ == "__main__":
    main()
