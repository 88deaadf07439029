"""MooG full-resolution pixel decoding: time per frame and peak memory, whole frame at once vs chunked queries.

    python benchmarks/bench_moog_decode.py                                   # 128 and 256, chunks none/16384/4096
    python benchmarks/bench_moog_decode.py --sizes 256 --chunks 0 8192 --frames 2 --json decode.json
    python benchmarks/bench_moog_decode.py --config tiny --sizes 32 --chunks 0 256   # seconds (smoke test)

The released MooG configuration (random weights: timing does not depend on their values) decodes every pixel of a
frame (``eval_subsample_factor`` 1): 16,384 coordinate queries per frame at 128x128, 65,536 at 256x256, each
cross-attending to the 1024 predicted state tokens through the 6-layer decoder. ``MooGForNextFramePrediction.decode``
takes ``chunk_size`` (``decoder_chunk_size`` in ``forward``): at most that many queries go through the decoder at once,
which bounds the activations (MLP hidden 2048 wide, attention weights over 1024 tokens) independently of the
resolution. Each (size, chunk) runs in a fresh process (``--worker``); its peak memory is the peak resident set size
sampled every 2 ms during the first decode, minus the resident size just before it (model, states and inputs excluded).
Decoding only is timed (the backbone runs once beforehand); a chunk of 0 means the whole frame at once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples the resident set size in a thread; ``peak - start`` is the memory the measured block added."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak, self.start = interval, 0, 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        self.start = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def worker(args: argparse.Namespace) -> dict:
    import torch

    from rep4d.configuration.configuration_moog import MooGConfig
    from rep4d.modeling.modeling_moog import MooGForNextFramePrediction

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.config == "tiny":
        from rep4d.configuration.configuration_moog import MOOG_TRAIN_PRESETS

        config = MooGConfig(**MOOG_TRAIN_PRESETS["tiny"])
    else:
        config = MooGConfig.from_preset(args.config)
    model = MooGForNextFramePrediction(config).eval()
    size, chunk = args.sizes[0], args.chunks[0] or None
    generator = torch.Generator().manual_seed(0)
    video = torch.rand(1, args.frames, 3, size, size, generator=generator)
    bf16 = args.dtype == "bf16"
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        states = model.moog(video, generator=generator).predicted_states
        # Memory on the first decode (nothing freed by an earlier decode can be reused), which is also the warm-up.
        with PeakRSS() as memory:
            model.decode(states[:, :1], size, size, 1, chunk_size=chunk)
        times = []
        for t in range(args.frames):
            start = time.perf_counter()
            decoded = model.decode(states[:, t : t + 1], size, size, 1, chunk_size=chunk)[0]
            times.append(time.perf_counter() - start)
    if tuple(decoded.shape) != (1, 1, size, size, config.decoder_output_channels):
        raise RuntimeError(f"decoded shape {tuple(decoded.shape)}")
    return {"config": args.config, "size": size, "queries_per_frame": size * size, "chunk": chunk or 0,
            "dtype": args.dtype, "frames": args.frames, "threads": torch.get_num_threads(),
            "s_per_frame": statistics.median(times), "peak_mib": (memory.peak - memory.start) / 2**20}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="released", help="MooG preset (released) or 'tiny' (training preset)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="square frame sizes")
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 16384, 4096],
                        help="queries per decoder call; 0 = the whole frame at once")
    parser.add_argument("--frames", type=int, default=1, help="timed frames per run (median reported)")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="bf16 = CPU autocast")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return []
    rows = []
    for size in args.sizes:
        for chunk in args.chunks:
            command = [sys.executable, os.path.abspath(__file__), "--worker", "--config", args.config, "--sizes",
                       str(size), "--chunks", str(chunk), "--frames", str(args.frames), "--dtype", args.dtype]
            if args.threads:
                command += ["--threads", str(args.threads)]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"worker {size}x{size} chunk {chunk} failed:\n{result.stderr[-3000:]}")
            row = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{args.config} {size}x{size} ({size * size} queries) chunk {chunk or 'whole frame':>11} "
                  f"{args.dtype}: {row['s_per_frame']:.2f} s/frame, peak +{row['peak_mib']:.0f} MiB", flush=True)
    if args.json:
        tmp = f"{args.json}.tmp"
        with open(tmp, "w") as handle:
            json.dump({"args": {k: v for k, v in vars(args).items() if k != "worker"}, "rows": rows}, handle, indent=2)
        os.replace(tmp, args.json)
    return rows


if __name__ == "__main__":
    main()
