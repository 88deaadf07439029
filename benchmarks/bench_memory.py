"""Peak memory of converting and loading a multi-billion-parameter 4DS checkpoint, and of meta-device instantiation.

    python benchmarks/bench_memory.py --workdir /tmp/rep4d_mem                 # 4DS-G shapes: 1.85B params, 7.4 GB
    python benchmarks/bench_memory.py --workdir /tmp/rep4d_mem --preset b      # quicker: 87M params

1. Writes a synthetic checkpoint with the released key layout and the preset's shapes (random float32), array by array
   straight into the .npz zip, so writing it never holds the model in memory.
2. Runs `rep4d convert --max-shard-size SIZE` in a child process and reads its peak resident memory (ru_maxrss).
3. Runs `FourDSModel.from_pretrained` on the result in a child process, likewise.
4. Instantiates the 4DS-e and 4DS-j configs on the meta device and reports the memory that took.
The baseline is the peak RSS of a child that only imports rep4d; the target (issue 8) is
convert <= 1.3 x largest shard and from_pretrained <= model + 1.3 x largest shard, both above that baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

CHILD_PEAK = """
import resource, sys, time
start = time.perf_counter()
{body}
elapsed = time.perf_counter() - start
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "SECONDS", elapsed)
"""


def run_child(body: str) -> tuple[float, float]:
    """Peak RSS (bytes) and seconds of a fresh interpreter running ``body``."""
    result = subprocess.run([sys.executable, "-c", CHILD_PEAK.format(body=body)], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    line = [row for row in result.stdout.splitlines() if row.startswith("PEAK_KB")][-1].split()
    return int(line[1]) * 1024, float(line[3])


def write_synthetic_checkpoint(path: Path, preset: str) -> int:
    """A bare-layout 4DS checkpoint with the preset's shapes, written one array at a time. Returns bytes written."""
    from rep4d.configuration import FourDSConfig

    config = FourDSConfig.from_preset(preset)
    d, m, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    t, h, w = config.token_grid
    shapes = {
        "params/encoder/patch_embedding/Conv_0/kernel": (*config.tubelet_size, 3, d),
        "params/encoder/patch_embedding/Conv_0/bias": (d,),
        "params/encoder/posenc/embeddings": (t, h, w, d),
    }
    for layer in range(config.num_hidden_layers):
        p = f"params/processor/layers_{layer}/"
        for norm in ("attention_norm", "mlp_norm"):
            shapes[f"{p}{norm}/scale"] = shapes[f"{p}{norm}/bias"] = (d,)
        for name in ("query", "key", "value"):
            shapes[f"{p}attention/{name}/kernel"] = (d, heads, d // heads)
            shapes[f"{p}attention/{name}/bias"] = (heads, d // heads)
        shapes[f"{p}attention/out/kernel"] = (heads, d // heads, d)
        shapes[f"{p}attention/out/bias"] = (d,)
        shapes[f"{p}mlp/dense_in/kernel"], shapes[f"{p}mlp/dense_in/bias"] = (d, m), (m,)
        shapes[f"{p}mlp/dense_out/kernel"], shapes[f"{p}mlp/dense_out/bias"] = (m, d), (d,)
    rng = np.random.default_rng(0)
    total = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, shape in shapes.items():
            array = rng.random(shape, dtype=np.float32) * np.float32(0.04) - np.float32(0.02)
            with archive.open(f"{key}.npy", "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, array, allow_pickle=False)
            total += array.nbytes
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/rep4d_memory_bench")
    parser.add_argument("--preset", default="g")
    parser.add_argument("--max-shard-size", default="1GB")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic checkpoint and the converted folder")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint, output = workdir / f"synthetic_4ds_{args.preset}.npz", workdir / f"converted_{args.preset}"
    results = {"preset": args.preset, "max_shard_size": args.max_shard_size}

    start = time.perf_counter()
    results["checkpoint_bytes"] = write_synthetic_checkpoint(checkpoint, args.preset)
    results["write_seconds"] = time.perf_counter() - start
    print(f"synthetic checkpoint: {results['checkpoint_bytes'] / 1e9:.2f} GB in {results['write_seconds']:.0f}s")

    baseline, _ = run_child("import rep4d, torch")
    results["baseline_rss"] = baseline
    convert_peak, convert_seconds = run_child(
        "from rep4d.cli import main\n"
        f"assert main(['convert', {str(checkpoint)!r}, '-o', {str(output)!r}, '--overwrite', '--quiet', "
        f"'--max-shard-size', {args.max_shard_size!r}]) == 0"
    )
    shards = sorted(output.glob("*.safetensors"))
    largest = max(path.stat().st_size for path in shards)
    model_bytes = sum(path.stat().st_size for path in shards)
    load_peak, load_seconds = run_child(
        "import torch, rep4d\nfrom rep4d.modeling import FourDSModel\n"
        f"model = FourDSModel.from_pretrained({str(output)!r})\n"
        "assert next(model.parameters()).dtype == torch.float32\n"
        "checksum = sum(float(p.double().sum()) for p in model.parameters())  # touch every weight (mmap pages)"
    )
    meta_peak, _ = run_child(
        "import torch, rep4d\nfrom rep4d.configuration import FourDSConfig\nfrom rep4d.modeling import FourDSModel\n"
        "with torch.device('meta'):\n"
        "    e = FourDSModel(FourDSConfig.from_preset('e'))\n"
        "    j = FourDSModel(FourDSConfig.from_preset('j'))\n"
        "assert sum(p.numel() for p in j.parameters()) > 2e10"
    )
    results.update(
        shards=len(shards), largest_shard_bytes=largest, model_bytes=model_bytes,
        convert_peak_rss=convert_peak, convert_seconds=convert_seconds,
        convert_peak_over_baseline=convert_peak - baseline,
        convert_ratio_to_largest_shard=(convert_peak - baseline) / largest,
        load_peak_rss=load_peak, load_seconds=load_seconds,
        load_ratio=(load_peak - baseline) / (model_bytes + largest),
        meta_instantiation_rss_over_baseline=meta_peak - baseline,
    )
    gb = 1e9
    print(f"baseline (import rep4d, torch): {baseline / gb:.2f} GB")
    print(f"convert: {convert_seconds:.0f}s, peak {convert_peak / gb:.2f} GB = baseline + {(convert_peak - baseline) / gb:.2f} GB;"
          f" largest shard {largest / gb:.2f} GB ({len(shards)} shards) -> {results['convert_ratio_to_largest_shard']:.2f}x")
    print(f"from_pretrained: {load_seconds:.0f}s, peak {load_peak / gb:.2f} GB = baseline + "
          f"{(load_peak - baseline) / gb:.2f} GB; model {model_bytes / gb:.2f} GB + largest shard -> "
          f"{results['load_ratio']:.2f}x of (model + largest shard)")
    print(f"meta-device 4DS-e + 4DS-j (25.3B parameters): {(meta_peak - baseline) / 1e6:.0f} MB over baseline")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if not args.keep:
        checkpoint.unlink()
        for path in output.iterdir():
            path.unlink()
        output.rmdir()


if __name__ == "__main__":
    main()
