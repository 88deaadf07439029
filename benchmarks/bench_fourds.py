"""Time FourDSModel against transformers' VideoMAEModel (ViT-B, same token count) in the same run.

    python benchmarks/bench_fourds.py                      # B preset, 16x224x224, batch 1, fp32 + bf16 autocast
    python benchmarks/bench_fourds.py --modes fp32 bf16-autocast bf16-weights --compile
    python benchmarks/bench_fourds.py --batch 8 --repeats 3
    python benchmarks/bench_fourds.py --preset s --frames 8 --size 112 --json out.json

Both models get the same input (16 frames, 2x16x16 tubelets -> 1568 tokens), run under torch.inference_mode with SDPA
attention, timed in alternation (robust to background load; the best of --repeats is reported). The matmul peak of each dtype is measured in the same run, so the achieved FLOP/s can be reported as a
fraction of what this machine can do. Prints a table and the FourDS/VideoMAE speed ratio (> 1 means rep4d is faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from transformers import VideoMAEConfig, VideoMAEModel

import rep4d  # noqa: F401
from rep4d.configuration import FourDSConfig
from rep4d.modeling import FourDSModel


def model_flops(config: FourDSConfig, tokens: int, batch: int) -> float:
    """Forward FLOPs (2 per multiply-add) of the transformer blocks and patch embedding."""
    d, m, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_layer = 2 * tokens * (4 * d * d + 2 * d * m) + 2 * 2 * tokens * tokens * d
    patch = 2 * tokens * d * config.num_channels * int(torch.tensor(config.tubelet_size).prod())
    return batch * (layers * per_layer + patch)


def time_call(fn, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def time_interleaved(calls: dict, repeats: int) -> dict[str, list[float]]:
    """Time several callables in alternation (one warm-up each), so background load hits all of them alike."""
    for fn in calls.values():
        fn()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    times = time_call(lambda: a @ b, repeats, warmup=2)
    return 2 * size**3 / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="b")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["fp32", "bf16-autocast"],
                        choices=["fp32", "bf16-autocast", "bf16-weights"],
                        help="fp32; bf16 autocast over fp32 weights; or both models cast to bf16")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = FourDSConfig.from_preset(args.preset, num_frames=args.frames, image_size=[args.size, args.size])
    fourds = FourDSModel(config).eval()
    videomae = VideoMAEModel(
        VideoMAEConfig(
            image_size=args.size, patch_size=config.tubelet_size[1], num_frames=args.frames,
            tubelet_size=config.tubelet_size[0], hidden_size=config.hidden_size,
            num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size, use_mean_pooling=False, attn_implementation="sdpa",
        )
    ).eval()
    pixels = torch.rand(args.batch, args.frames, 3, args.size, args.size)
    flops = model_flops(config, config.num_tokens, args.batch)
    print(f"threads {torch.get_num_threads()}, {config.num_tokens} tokens, batch {args.batch}, "
          f"{flops / 1e9:.1f} GFLOP per forward")

    models = {"fourds": fourds, "videomae": videomae}
    if args.compile:
        for name in list(models):
            start = time.perf_counter()
            compiled = torch.compile(models[name])
            with torch.inference_mode():
                compiled(pixels)
            print(f"compile {name}: {time.perf_counter() - start:.1f}s")
            models[f"{name}+compile"] = compiled

    results = {}
    for mode in args.modes:
        dtype = torch.float32 if mode == "fp32" else torch.bfloat16
        peak = matmul_peak(dtype)
        use_autocast = mode == "bf16-autocast"
        inputs = pixels.to(dtype) if mode == "bf16-weights" else pixels
        calls = {}
        for name, model in models.items():
            model.to(dtype if mode == "bf16-weights" else torch.float32)

            def call(m=model, x=inputs, amp=use_autocast):
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    return m(x)

            calls[name] = call
        timings = time_interleaved(calls, args.repeats)
        row = {"matmul_peak_tflops": peak / 1e12}
        for name, times in timings.items():
            best = min(times)
            row[name] = {"best_s": best, "median_s": statistics.median(times), "tflops": flops / best / 1e12,
                         "fraction_of_peak": flops / best / peak}
        for variant in ("", "+compile"):
            if f"fourds{variant}" in row and f"videomae{variant}" in row:
                row[f"speedup{variant}"] = row[f"videomae{variant}"]["best_s"] / row[f"fourds{variant}"]["best_s"]
        results[mode] = row
        print(f"[{mode}] matmul peak {peak / 1e12:.2f} TFLOP/s")
        for name in models:
            r = row[name]
            print(f"  {name:<18} best {r['best_s'] * 1000:8.1f} ms  median {r['median_s'] * 1000:8.1f} ms  "
                  f"{r['tflops']:.2f} TFLOP/s = {100 * r['fraction_of_peak']:.0f}% of peak")
        for variant in ("", "+compile"):
            if f"speedup{variant}" in row:
                print(f"  speed ratio fourds{variant}/videomae{variant} (>1: rep4d faster): {row['speedup' + variant]:.2f}x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
