"""``rep4d finetune``: train a 4D readout (depth, points, boxes, pose, classification) on a video backbone."""

from __future__ import annotations

import argparse
import json

from rep4d.cli import (
    add_deprecated_alias,
    add_num_frames_argument,
    add_num_workers_argument,
    add_old_resolution_aliases,
    add_resolution_argument,
    module_command,
    read_model_config,
)

EXAMPLES = """
examples:
  # frozen, randomly initialised small 4DS on in-memory synthetic clips (no download, CPU)
  rep4d finetune --task points --backbone random:4ds-mini --data synthetic:200,num_points=32 \\
      --num-frames 8 --resolution 32x32 --max-steps 300 --output runs/points
  # a converted 4DS checkpoint on a synthetic folder written by `rep4d synth`, pictures of 4 clips
  rep4d finetune --task depth --backbone converted/4ds-b --data synth64 --output runs/depth --save-pictures 4
  # transformers' VideoMAE (Hub id or local folder), end to end with the backbone at 0.003x the readout LR
  rep4d finetune --task classification --backbone MCG-NJU/videomae-base --data videos.csv --end-to-end \\
      --learning-rate 1e-4 --output runs/cls
  # TAP-Vid DAVIS pickle as evaluation data for a readout trained on synthetic clips
  rep4d finetune --task points --backbone random:4ds-mini --data synth64 --eval-data tapvid_davis.pkl \\
      --num-points 64 --output runs/points

--data/--eval-data: a folder of <stem>.npz clips (+ <stem>.mp4; what `rep4d synth` writes), synthetic:N[,key=v]
(generated in memory), a TAP-Vid .pkl (points), or a video folder with class sub-folders / a CSV with file_name,label
(classification). Without --eval-data, --eval-fraction of the clips is held out.
--backbone: a local folder or Hub id of a rep4d/transformers video model (4DS, VideoMAE, ...), or
random:4ds-<tiny|mini|small|s|b|...> / random:videomae-<tiny|mini|small> for a randomly initialised backbone
sized to the data.
Writes OUTPUT/config.json + model.safetensors (load with rep4d.load_readout or ReadoutFor<Task>.from_pretrained),
OUTPUT/metrics.json (eval metrics, trivial baselines, log history) and TensorBoard logs in OUTPUT/checkpoints/runs
(kept with --keep-checkpoints).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    # The task list lives in the readout-task registry (rep4d.configuration.readout_tasks), checked in run(): the
    # registry is not imported here because rep4d.configuration loads transformers (`rep4d --help` stays light).
    parser.add_argument("--task", required=True,
                        help="readout task of the registry rep4d.configuration.readout_tasks (depth, points, ...)")
    parser.add_argument("--backbone", required=True, help="model folder, Hub repo id, or random:<4ds|videomae>-<size>")
    parser.add_argument("--data", required=True, help="training data (see below)")
    parser.add_argument("--output", "-o", required=True, help="output folder for the model and metrics.json")
    parser.add_argument("--eval-data", help="evaluation data (default: hold out --eval-fraction of --data)")
    parser.add_argument("--eval-fraction", type=float, default=0.2, help="held-out fraction without --eval-data")
    add_num_frames_argument(parser, help="frames per clip (default: the backbone's / the data's)")
    add_resolution_argument(parser, help="frame size HxW, or N for a square (default: the backbone's / the data's)")
    add_old_resolution_aliases(parser, flags=("--image-size",))
    parser.add_argument("--backbone-overrides", type=json.loads, default={},
                        help='JSON of backbone config overrides, e.g. \'{"num_hidden_layers": 2}\'')
    parser.add_argument("--readout-overrides", type=json.loads, default={},
                        help='JSON of ReadoutConfig overrides, e.g. \'{"num_fourier_bands": 8}\'')
    parser.add_argument("--end-to-end", action="store_true", help="train the backbone too (default: frozen)")
    parser.add_argument("--no-cache-features", action="store_true",
                        help="frozen mode: run the backbone every step instead of caching its features once")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="readout learning rate (default 1e-3)")
    parser.add_argument("--backbone-lr-scale", type=float,
                        help="end-to-end: backbone LR / readout LR (default: the config's 0.003)")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--max-steps", type=int, default=200, help="optimizer steps (default 200)")
    parser.add_argument("--warmup-steps", type=int, default=0)
    parser.add_argument("--scheduler", default="cosine", help="learning-rate schedule (default cosine)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--eval-batch-size", type=int)
    parser.add_argument("--eval-steps", type=int, help="evaluate (and keep the best model) every N steps "
                        "(default max-steps/4)")
    parser.add_argument("--logging-steps", type=int, default=10)
    parser.add_argument("--num-points", type=int, help="point tracks sampled per clip (needed when clips differ)")
    parser.add_argument("--tapvid-protocol", choices=("tapvid-first", "tapvid-strided", "4ds-clip"),
                        default="tapvid-first",
                        help="points: TAP-Vid protocol of the final evaluation (default tapvid-first: whole videos at "
                        "256x256, first-visible queries, `first` scoring; see `rep4d evaluate --help`)")
    parser.add_argument("--readout-width", type=int, default=256, help="readout width (default 256)")
    parser.add_argument("--readout-heads", type=int, default=8, help="readout attention heads (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-to", default="tensorboard", help="tensorboard (default), none, or a list")
    parser.add_argument("--save-pictures", type=int, default=0, metavar="N",
                        help="write prediction-vs-truth MP4/PNG for N evaluation clips into OUTPUT/pictures")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep OUTPUT/checkpoints")
    add_num_workers_argument(parser, help="DataLoader workers")
    add_deprecated_alias(parser, "--workers", "--num-workers", "num_workers", type=int)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace):
    from rep4d.training.finetune import FinetuneConfig

    backbone = args.backbone
    if backbone.startswith("random:4ds-"):  # the family is spelled 4ds on the command line
        backbone = "random:fourds-" + backbone[len("random:4ds-"):]
    return FinetuneConfig(
        task=args.task, backbone=backbone, data=args.data, output_dir=args.output, eval_data=args.eval_data,
        eval_fraction=args.eval_fraction, num_frames=args.num_frames,
        image_size=list(args.resolution) if args.resolution else None,
        backbone_overrides=args.backbone_overrides, readout_overrides=args.readout_overrides,
        end_to_end=args.end_to_end, cache_features=not args.no_cache_features, learning_rate=args.learning_rate,
        backbone_learning_rate_scale=args.backbone_lr_scale, weight_decay=args.weight_decay,
        max_steps=args.max_steps, warmup_steps=args.warmup_steps, lr_scheduler_type=args.scheduler,
        batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, eval_steps=args.eval_steps,
        logging_steps=args.logging_steps, num_points=args.num_points, tapvid_protocol=args.tapvid_protocol,
        readout_num_params=args.readout_width, readout_num_heads=args.readout_heads, seed=args.seed,
        report_to=args.report_to, progress=not args.quiet, save_pictures=args.save_pictures,
        keep_checkpoints=args.keep_checkpoints, dataloader_num_workers=args.num_workers,
    )


def run(args: argparse.Namespace) -> int:
    from rep4d.configuration.readout_tasks import get_readout_task
    from rep4d.training.finetune import run_finetune

    spec = get_readout_task(args.task)  # ValueError naming the registry's tasks
    if not args.backbone.startswith("random:"):
        read_model_config(args.backbone)  # an unknown folder or repo id is a one-line error before anything loads
    results = run_finetune(config_from_args(args))
    metric = results["main_metric"]
    scores = results["eval"]
    baseline = scores.get(f"eval_{spec.baseline_metric}")
    print(json.dumps({key: value for key, value in scores.items() if not key.endswith(("_runtime", "_per_second"))},
                     indent=2))
    scope = " (evaluation clips, their own queries)" if args.task == "points" else ""
    print(f"{args.task}{scope}: {metric} = {scores[f'eval_{metric}']:.4f} (trivial baseline {baseline:.4f}); "
          f"model and metrics.json in {args.output}")
    if "tapvid" in results:
        tapvid = results["tapvid"]
        print(f"points under the TAP-Vid protocol {results['tapvid_protocol']}: average_jaccard "
              f"{tapvid['average_jaccard']:.4f} (stay-at-query baseline {tapvid['baseline_average_jaccard']:.4f}), "
              f"{tapvid['num_examples']} videos/clips, {tapvid['num_queries']} queries")
    return 0


COMMAND = module_command(
    __name__,
    help="train a 4D readout (depth, points, boxes, pose, classification) on a frozen or fine-tuned backbone",
    order=40,
)
