"""MooG CPU/GPU benchmark: per-frame streaming cost (constant in the clip length) and an 8-frame clip.

Usage:
    python benchmarks/bench_moog.py                        # released config, streaming at 64x64, clip at 128x128
    python benchmarks/bench_moog.py --stream-size 256      # streaming at the released resolution (slow on CPU)
    python benchmarks/bench_moog.py --json results.json --threads 2

Streaming: the released backbone (random weights: timing does not depend on them) processes 8 and 64 frames one
frame at a time, carrying the state; the per-frame time of both runs (and their ratio, ~1 for constant cost) is
reported, along with the peak memory growth of the process. The clip: one call on an 8-frame 128x128 video.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from rep4d.configuration.configuration_moog import MooGConfig
from rep4d.modeling.modeling_moog import MooGModel


def per_frame_stream(model, frames: int, size: int, device) -> float:
    """Seconds per frame when streaming ``frames`` frames one by one (first frame excluded as warm-up)."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    video = torch.rand(1, frames + 1, 3, size, size, generator=generator).to(device)
    state = model.initial_state(1, generator=generator).to(device)
    with torch.no_grad():
        state = model(video[:, :1], state=state).final_state  # warm-up
        sync(device)
        start = time.perf_counter()
        for t in range(1, frames + 1):
            state = model(video[:, t : t + 1], state=state).final_state
        sync(device)
    return (time.perf_counter() - start) / frames


def clip_time(model, frames: int, size: int, device, repeats: int) -> float:
    video = torch.rand(1, frames, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        model(video[:, :1], generator=torch.Generator().manual_seed(0))  # warm-up
        sync(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(video, generator=torch.Generator().manual_seed(0))
            sync(device)
            times.append(time.perf_counter() - start)
    return min(times)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream-size", type=int, default=64, help="square resolution of the streaming runs")
    parser.add_argument("--clip-size", type=int, default=128, help="square resolution of the clip run")
    parser.add_argument("--short", type=int, default=8, help="frames of the short streaming run")
    parser.add_argument("--long", type=int, default=64, help="frames of the long streaming run")
    parser.add_argument("--clip-frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1, help="clip repetitions (the minimum is reported)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--attn", default="sdpa", choices=("sdpa", "eager"))
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # the Fourier features need exact float32 (spec §7.3)
    torch.manual_seed(0)
    config = MooGConfig.from_preset("released")
    model = MooGModel(config).to(device).eval()
    model.set_attn_implementation(args.attn)

    results = {"device": str(device), "threads": torch.get_num_threads(), "config": "released",
               "parameters": sum(p.numel() for p in model.parameters())}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    short = per_frame_stream(model, args.short, args.stream_size, device)
    rss_short = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    long = per_frame_stream(model, args.long, args.stream_size, device)
    rss_long = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results.update(
        stream_size=args.stream_size,
        per_frame_s_short=short,
        per_frame_s_long=long,
        short_frames=args.short,
        long_frames=args.long,
        per_frame_ratio_long_over_short=long / short,
        peak_rss_mib_after_short=rss_short / 1024,
        peak_rss_growth_mib_long_vs_short=(rss_long - rss_short) / 1024,
        peak_rss_mib_before=rss_before / 1024,
    )
    results.update(clip_frames=args.clip_frames, clip_size=args.clip_size,
                   clip_s=clip_time(model, args.clip_frames, args.clip_size, device, args.repeats))
    for key, value in results.items():
        print(f"{key:>36}: {value:.4f}" if isinstance(value, float) else f"{key:>36}: {value}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
