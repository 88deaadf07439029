"""Every backbone family through ``rep4d benchmark readouts`` on tiny generated data (issue 14's closing table).

For each family a tiny randomly initialised model of the real class is saved with ``save_pretrained`` (the configs
of ``tests/test_backbone_adapters.py``: width 16, 3 blocks, 8x8 patches; PE's vision tower a tiny timm ViT), and the
COMMAND runs on it in a subprocess, exactly as a user types it:

    rep4d benchmark readouts --backbone FOLDER --tasks TASKS --data-root DATA --frozen --max-steps N --json \\
        --num-frames 4 --resolution 32 --readout-width 32 --readout-heads 2 --batch-size 2 --learning-rate 1e-3 \\
        --tapvid-protocol tapvid-first --device cpu

The data root holds every dataset in its own layout, written by the generators of
``tests/test_readout_datasets.py`` (SSv2 / K700 red vs blue clips; ScanNet, Waymo, Perception Test and MOVi-E from
rep4d's synthetic renderer; RE10k frames with known camera poses). A task the command refuses for a family is
recorded with the command's one-line error and the remaining tasks still run. Writes ``OUTPUT/families.md`` (one
row per family: ours (baseline) per task, bold when better than the baseline) and ``OUTPUT/families.json``.

Command (the table in docs/READOUT_BENCHMARK.md):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_readout_families.py --output /tmp/readout_families

``--families`` / ``--tasks`` pick a subset; ``--max-steps`` (default 30) the training steps of every task;
``--movi-e-examples`` the generated MOVi-E clips per split; ``--option TASK:KEY=VALUE`` passes
``--readout-option KEY=VALUE`` to that task's runs (``*:KEY=VALUE`` to all).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tiny-layout generators and tiny configs of the test suite
sys.path.insert(0, str(REPO / "benchmarks"))

FAMILIES = ("4ds", "moog", "rvm", "videomae", "vjepa2", "timesformer", "vivit", "videoprism", "xclip", "dinov2",
            "dinov2_with_registers", "dinov3_vit", "siglip", "siglip2", "pe_video")
TASKS = ("ssv2", "k700-2020", "scannet", "waymo-open", "perception-test-points", "movi-e-points", "movi-e-depth",
         "movi-e-boxes", "re10k")
TINY = ["--num-frames", "4", "--resolution", "32", "--readout-width", "32", "--readout-heads", "2", "--batch-size",
        "2", "--learning-rate", "1e-3", "--tapvid-protocol", "tapvid-first", "--device", "cpu", "--quiet"]


def make_data_root(root: Path, movi_e_examples: int) -> Path:
    """Every dataset folder of the benchmark, in its own layout (the test suite's generators)."""
    from test_readout_datasets import (
        make_kinetics,
        make_movi_e,
        make_perception_test,
        make_realestate10k,
        make_scannet,
        make_ssv2,
        make_waymo,
    )

    makers = {"ssv2": make_ssv2, "kinetics700_2020": make_kinetics, "scannet": make_scannet,
              "realestate10k": make_realestate10k, "waymo_open": make_waymo, "perception_test": make_perception_test,
              "movi_e": lambda path: make_movi_e(path, examples=movi_e_examples)}
    for name, make in makers.items():
        if not (root / name).exists():
            staging = root / f".{name}.partial"
            make(staging)
            staging.replace(root / name)
    return root


def save_family(family: str, folder: Path) -> Path:
    """A tiny randomly initialised model of ``family`` saved with ``save_pretrained`` (32x32 frames, 4 frames)."""
    import torch
    from test_backbone_adapters import _family_configs, tiny_fourds, tiny_rvm
    from transformers import AutoModel

    from rep4d.modeling import FourDSModel, MooGModel, RVMModel

    from testing_utils import tiny_moog_config

    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    if family == "4ds":
        model = FourDSModel(tiny_fourds(image_size=[32, 32], num_frames=4))
    elif family == "moog":
        model = MooGModel(tiny_moog_config(image_size=[32, 32], num_frames=4))
    elif family == "rvm":
        model = RVMModel(tiny_rvm(image_size=[32, 32], base_token_shape=[4, 4]))
    else:
        model = AutoModel.from_config(_family_configs()[family]())
    staging = folder.with_name(folder.name + ".partial")
    model.save_pretrained(staging)
    staging.replace(folder)
    return folder


def run_family(folder: Path, tasks: list[str], data_root: Path, output: Path, max_steps: int,
               options: dict[str, list[str]]) -> dict[str, dict]:
    """Run the command on ``folder`` for ``tasks``; returns {task: result.json, or {"error": the command's last
    line}}."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1",
           "HF_EVALUATE_OFFLINE": "1"}
    rep4d = str(Path(sys.executable).with_name("rep4d"))
    results: dict[str, dict] = {}
    run_dir = output / "runs" / f"{folder.name}__frozen"
    # Tasks sharing the same --readout-option values run in one command; a task the command refuses for this family
    # is recorded with its error and the tasks after it run again (finished tasks are read back, not retrained).
    groups: dict[tuple[str, ...], list[str]] = {}
    for task in tasks:
        groups.setdefault(tuple(options.get("*", []) + options.get(task, [])), []).append(task)
    for group_options, pending in groups.items():
        while pending:
            extra = [item for option in group_options for item in ("--readout-option", option)]
            command = [rep4d, "benchmark", "readouts", "--backbone", str(folder), "--tasks", ",".join(pending),
                       "--data-root", str(data_root), "--output", str(output), "--frozen", "--max-steps",
                       str(max_steps), "--json", *TINY, *extra]
            done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
            finished = [task for task in pending if (run_dir / task / "result.json").is_file()]
            for task in finished:
                results[task] = json.loads((run_dir / task / "result.json").read_text())
            remaining = [task for task in pending if task not in finished]
            if done.returncode == 0 or not remaining:
                break
            lines = [line for line in (done.stderr + done.stdout).strip().splitlines() if line.strip()]
            results[remaining[0]] = {"error": lines[-1] if lines else f"exit status {done.returncode}"}
            pending = remaining[1:]
    for task in tasks:
        row = results.setdefault(task, {"error": "no result written"})
        print(f"{folder.name:<24} {task:<24} {row.get('error') or row['metric'] + ' ' + cell(row)}", flush=True)
    return results


def cell(row: dict) -> str:
    if "error" in row:
        return "refused"
    if row.get("value") is None or row.get("baseline") is None:
        return "-"
    text = f"{row['value']:.3f} ({row['baseline']:.3f})"
    return f"**{text}**" if row.get("beats_baseline") else text


def markdown(results: dict[str, dict[str, dict]], tasks: list[str]) -> str:
    metrics = {}
    for rows in results.values():
        for task, row in rows.items():
            metrics.setdefault(task, row.get("metric"))
    header = "| family | " + " | ".join(f"{task}<br>{metrics.get(task) or ''}" for task in tasks) + " |"
    lines = [header, "|---|" + "---|" * len(tasks)]
    for family, rows in results.items():
        lines.append(f"| {family} | " + " | ".join(cell(rows[task]) if task in rows else "" for task in tasks) + " |")
    errors = [(family, task, row["error"]) for family, rows in results.items() for task, row in rows.items()
              if "error" in row]
    if errors:
        lines += ["", "Refused (the command's one-line error):", ""]
        lines += [f"* {family} / {task}: {message}" for family, task, message in errors]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from bench_official import cpu_name  # the benchmarks' one CPU-name helper

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", "-o", default="benchmark_results/readout_families", help="results folder")
    parser.add_argument("--data-root", help="generated data root (default OUTPUT/data, written if missing)")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated families")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task presets")
    parser.add_argument("--max-steps", type=int, default=30, help="training steps per task (default 30)")
    parser.add_argument("--movi-e-examples", type=int, default=2, help="generated MOVi-E clips per split")
    parser.add_argument("--option", action="append", default=[], metavar="TASK:KEY=VALUE",
                        help="a --readout-option for one task (TASK * for all), repeatable")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise SystemExit(f"error: unknown families {unknown}; expected {', '.join(FAMILIES)}")
    options: dict[str, list[str]] = {}
    for item in args.option:
        task, sep, option = item.partition(":")
        if not sep or "=" not in option:
            raise SystemExit(f"error: --option takes TASK:KEY=VALUE, got {item!r}")
        options.setdefault(task, []).append(option)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    data_root = make_data_root(Path(args.data_root) if args.data_root else output / "data", args.movi_e_examples)
    start = time.perf_counter()
    results = {}
    for family in families:
        folder = save_family(family, output / "models" / family)
        results[family] = run_family(folder, tasks, data_root, output, args.max_steps, options)
    seconds = time.perf_counter() - start
    runs = [row for rows in results.values() for row in rows.values() if "error" not in row]
    note = (f"{len(runs)} runs, {sum(row['seconds'] for row in runs):.0f} s of training and evaluation (the tasks' "
            f"`seconds`), {seconds:.0f} s wall clock with the subprocesses; {cpu_name()}, {os.cpu_count()} cores, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}; --max-steps {args.max_steps}, "
            f"--movi-e-examples {args.movi_e_examples}, options {args.option or 'none'}.")
    table = markdown(results, tasks) + "\n" + note + "\n"
    for name, text in (("families.md", table), ("families.json", json.dumps({
            "settings": vars(args), "cpu": cpu_name(), "seconds": seconds,
            "results": {family: {task: {k: row.get(k) for k in ("metric", "value", "baseline", "beats_baseline",
                                                                 "error", "seconds", "num_train_clips")}
                                        for task, row in rows.items()} for family, rows in results.items()}},
            indent=1))):
        partial = output / f".{name}.partial"
        partial.write_text(text)
        partial.replace(output / name)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
