"""``rep4d benchmark``: the official evaluation benchmarks, one subcommand each (``propagation``, ...)."""

from __future__ import annotations

import argparse
import json

from rep4d.cli import (
    add_device_argument,
    add_num_frames_argument,
    add_num_workers_argument,
    add_resolution_argument,
    module_command,
    positive_int,
)

PROPAGATION_EXAMPLES = """
examples:
  rep4d benchmark propagation --dataset davis --root DAVIS --model rvm-b --output results/davis
  rep4d benchmark propagation --dataset jhmdb --root JHMDB --model 4ds-b-dist-e --max-videos 10
  rep4d benchmark propagation --dataset vip --root VIP_Fine --model facebook/vjepa2-vitl-fpc64-256 --json

Label propagation as the RVM evaluation notebook scores it: DAVIS-2017 val J&F (480x880, top-k 7), JHMDB split-1
test PCK@0.1..0.5 (320x320, top-k 7), VIP val mIoU (448x880, top-k 10); context 20, temperature 0.7, radius 20.
--root is the dataset folder in its own layout:
  davis  ImageSets/2017/val.txt, JPEGImages/480p/<video>/*.jpg, Annotations/480p/<video>/*.png
  jhmdb  splits/<action>_test_split1.txt, Rename_Images/<action>/<video>/*.png,
         joint_positions/<action>/<video>/joint_positions.mat
  vip    lists/val_videos.txt, Images/<video>/*.jpg, Annotations/Category_ids/<video>/*.png
--model is any model folder or hub id rep4d loads (RVM, 4DS, MooG, or a transformers video/image backbone).
The output folder gets one JSON file per finished video, results.json and results.md; a re-run with the same
settings skips finished videos, so an interrupted run resumes.
"""


def add_propagation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = PROPAGATION_EXAMPLES
    parser.add_argument("--dataset", required=True, choices=["davis", "jhmdb", "vip"], help="benchmark to run")
    parser.add_argument("--root", "--data-root", dest="root", required=True, help="dataset folder (see below)")
    parser.add_argument("--model", required=True, help="model folder or hub id")
    parser.add_argument("--output", "-o", help="results folder (default: benchmark_results/propagation_<dataset>)")
    add_resolution_argument(parser, help="processing size HxW (default: the notebook's, 480x880 / 320x320 / "
                            "448x880)")
    parser.add_argument("--max-videos", type=positive_int, metavar="N", help="evaluate only the first N videos")
    parser.add_argument("--topk", type=positive_int, help="neighbours per token (default 7; 10 for vip)")
    parser.add_argument("--n-context", type=positive_int, help="queue of recent frames (default 20)")
    parser.add_argument("--temperature", type=float, help="affinity temperature (default 0.7)")
    parser.add_argument("--radius", type=float, help="neighbourhood radius in grid cells (default 20)")
    add_device_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the overall result as one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_propagation(args: argparse.Namespace) -> int:
    from rep4d.training.propagation_benchmark import default_settings, run_propagation_benchmark

    settings = default_settings(args.dataset, resolution=args.resolution, topk=args.topk, n_context=args.n_context,
                                temperature=args.temperature, radius=args.radius)
    output = args.output or f"benchmark_results/propagation_{args.dataset}"
    result = run_propagation_benchmark(args.dataset, args.root, model=args.model, output_dir=output,
                                       settings=settings, max_videos=args.max_videos, device=args.device,
                                       progress=not args.quiet)
    if args.json:
        print(json.dumps({"dataset": result.dataset, "output": str(result.output_dir), "computed": result.computed,
                          "skipped": result.skipped, **result.overall}))
        return 0
    overall = result.overall
    metrics = {"davis": ["JF_mean", "J_mean", "F_mean"], "vip": ["mean_iou"],
               "jhmdb": [key for key in overall if key.startswith("PCK@")]}[result.dataset]
    print(f"{result.dataset}: {overall['num_videos']} videos ({len(result.computed)} computed, "
          f"{len(result.skipped)} read back), {overall['num_frames']} frames")
    for key in metrics:
        value = overall[key]
        print(f"  {key:<8} {'nan' if value is None else f'{value:.4f}'}")
    if overall["seconds_per_frame"] is not None:
        print(f"  {overall['seconds_per_frame']:.3f} s/frame, {overall['seconds_per_video']:.2f} s/video")
    print(f"tables: {result.output_dir / 'results.md'}, {result.output_dir / 'results.json'}")
    return 0


READOUT_EXAMPLES = """
examples:
  rep4d benchmark readouts --backbone models/4ds-b-dist-e --tasks all --data-root DATA --frozen -o results/readouts
  rep4d benchmark readouts --backbone facebook/vjepa2-vitl-fpc64-256 --tasks scannet,re10k --data-root DATA --sweep
  rep4d benchmark readouts --backbone random:4ds-tiny --tasks ssv2,scannet --data-root tiny --max-steps 5 \
      --num-frames 4 --resolution 32 --readout-width 32 --readout-heads 2
  accelerate launch --num_processes 8 -m rep4d benchmark readouts --backbone models/4ds-e --tasks table2 \
      --data-root DATA

The 4DS paper's readout protocol (Tables 2 / 3), one preset per task (rep4d.configuration.readout_presets):
  re10k, perception-test-points, scannet, waymo-open, ssv2, k700-2020 (the Table 2 columns: --tasks table2)
  movi-e-points, movi-e-depth, movi-e-boxes (MooG's Kubric tasks: --tasks moog); --tasks all runs every one.
--data-root holds one folder per dataset, each in its own layout (rep4d.training.readout_datasets,
docs/READOUT_BENCHMARK.md): ssv2/, kinetics700_2020/, realestate10k/, scannet/, perception_test/, and the converted
waymo_open/ and movi_e/ (Perception Test points train on movi_e/).
Defaults are the paper's: frozen backbone, 40k steps at batch 32, AdamW, cosine to 1e-7 (fine-tuning: 20k steps,
backbone lr x0.003). The output folder gets runs/<backbone>__<mode>/<task>/result.json per finished task (a re-run
skips them), results.md / results.json (the papers' rows beside ours) and radar.png.
"""


def readout_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (key, value): VALUE parsed as JSON (``true``, ``6``, ``[2, 8, 8]``), else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (a ReadoutConfig field), got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def add_readout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = READOUT_EXAMPLES
    parser.add_argument("--backbone", "--model", dest="backbone", required=True,
                        help="backbone: model folder or hub id (rep4d or transformers), or random:<4ds|videomae>-SIZE")
    parser.add_argument("--tasks", required=True,
                        help="comma-separated task presets, or table2 / moog / all (see below)")
    parser.add_argument("--data-root", "--root", dest="data_root", required=True,
                        help="folder with one sub-folder per dataset (see below)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--frozen", dest="mode", action="store_const", const="frozen",
                      help="frozen backbone, cached features (default)")
    mode.add_argument("--finetune", dest="mode", action="store_const", const="finetune",
                      help="end-to-end fine-tuning (backbone lr x0.003)")
    parser.set_defaults(mode="frozen")
    parser.add_argument("--output", "-o", default="benchmark_results/readouts", help="results folder")
    parser.add_argument("--max-steps", type=positive_int, metavar="N", help="training steps (default: the preset's)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N", help="batch size (default: the preset's 32)")
    parser.add_argument("--learning-rate", type=float, help="one learning rate (default: the preset's middle value)")
    parser.add_argument("--sweep", action="store_true", help="train with every learning rate of the preset, keep the best")
    add_num_frames_argument(parser, help="consecutive clip frames (default: the preset's 16 at its stride)")
    add_resolution_argument(parser, help="clip size HxW (default: the preset's, 224x224 or 256x256)")
    parser.add_argument("--readout-width", type=positive_int, metavar="N", help="readout width (default: the paper's)")
    parser.add_argument("--readout-heads", type=positive_int, metavar="N", help="readout heads (default: the paper's)")
    parser.add_argument("--readout-option", dest="readout_options", action="append", type=readout_option,
                        metavar="KEY=VALUE", help="set a ReadoutConfig field of every task (repeatable; VALUE is JSON "
                        "or a string), e.g. feature_position_embedding=true for tiny random backbones")
    parser.add_argument("--max-videos", type=positive_int, metavar="N", help="use only N videos per split")
    parser.add_argument("--tapvid-protocol", help="point-tracking evaluation protocol (default: the preset's, 4ds-clip)")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="the preset's training augmentation (default: on unless frozen features are cached)")
    parser.add_argument("--no-cache-features", dest="cache_features", action="store_false",
                        help="frozen mode: run the backbone on every batch instead of caching features in memory "
                        "(large datasets)")
    add_num_workers_argument(parser, help="data loader workers")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_device_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_readouts(args: argparse.Namespace) -> int:
    from rep4d.configuration.readout_presets import MOOG_TASKS, READOUT_PRESETS, TABLE2_TASKS
    from rep4d.training.readout_benchmark import ReadoutBenchmarkSettings, run_readout_benchmark

    groups = {"table2": list(TABLE2_TASKS), "moog": list(MOOG_TASKS), "all": list(READOUT_PRESETS)}
    tasks = []
    for item in (part.strip() for part in args.tasks.split(",")):
        for name in groups.get(item, [item] if item else []):
            if name not in READOUT_PRESETS:
                raise ValueError(f"unknown task {name!r}; expected {', '.join(READOUT_PRESETS)}, table2, moog or all")
            if name not in tasks:
                tasks.append(name)
    settings = ReadoutBenchmarkSettings(
        backbone=args.backbone, tasks=tasks, data_root=args.data_root, output_dir=args.output, mode=args.mode,
        max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.learning_rate, sweep=args.sweep,
        num_frames=args.num_frames, image_size=list(args.resolution) if args.resolution else None,
        readout_num_params=args.readout_width, readout_num_heads=args.readout_heads,
        readout_options=dict(args.readout_options) if args.readout_options else None, max_videos=args.max_videos,
        tapvid_protocol=args.tapvid_protocol, augment=args.augment, cache_features=args.cache_features,
        num_workers=args.num_workers, seed=args.seed,
        use_cpu=None if args.device is None else args.device == "cpu", progress=not (args.quiet or args.json),
    )
    result = run_readout_benchmark(settings)
    rows = {name: {key: row.get(key) for key in ("metric", "value", "baseline", "table_value", "beats_baseline")}
            for name, row in result.results.items()}
    if args.json:
        print(json.dumps({"output": str(result.output_dir), "computed": result.computed, "skipped": result.skipped,
                          "tasks": rows, "tables": {k: str(v) for k, v in result.tables.items()}}))
        return 0
    print(f"{args.backbone} ({args.mode}): {len(result.computed)} task(s) trained, {len(result.skipped)} read back")
    for name, row in rows.items():
        value = "nan" if row["value"] is None else f"{row['value']:.4f}"
        baseline = "nan" if row["baseline"] is None else f"{row['baseline']:.4f}"
        print(f"  {name:<24} {row['metric']:<16} {value}  (baseline {baseline})")
    if result.tables:
        print(f"tables: {result.tables['markdown']}, {result.tables['json']}"
              + (f", {result.tables['radar']}" if "radar" in result.tables else ""))
    return 0


# name -> (help, add_arguments, run): another benchmark family is one more row.
SUBCOMMANDS = {
    "propagation": ("label propagation on DAVIS-2017 (J&F), JHMDB (PCK) or VIP (mIoU), as the RVM evaluation notebook",
                    add_propagation_arguments, run_propagation),
    "readouts": ("the 4DS readout protocol (Tables 2 / 3): train and evaluate attention readouts on any backbone",
                 add_readout_arguments, run_readouts),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (help_text, add, run_subcommand) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        add(sub)
        sub.set_defaults(_benchmark_run=run_subcommand)


def run(args: argparse.Namespace) -> int:
    return int(args._benchmark_run(args) or 0)


COMMAND = module_command(
    __name__,
    help="run an official evaluation benchmark (label propagation: DAVIS J&F, JHMDB PCK, VIP mIoU; 4D readouts)",
    order=45,
)
