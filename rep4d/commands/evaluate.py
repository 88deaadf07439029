"""``rep4d evaluate``: run a saved readout over a dataset and report its metrics (and the trivial baselines)."""

from __future__ import annotations

import argparse
import json
import sys

from rep4d.cli import Command

EXAMPLES = """
examples:
  rep4d evaluate --model runs/points --data synth_test --output runs/points/test_metrics.json
  rep4d evaluate --model runs/points --data tapvid_davis.pkl --num-points 256 --query-mode first
  rep4d evaluate --model runs/depth --data synthetic:32,seed=7 --save-pictures 2 --pictures-dir pics/

--data takes the same forms as `rep4d finetune --data` (npz folder, synthetic:N, TAP-Vid .pkl, video folder/CSV).
Clips are cut/resized to the readout's frames and size. Prints the metrics as JSON (and writes them with --output).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--model", required=True, help="folder of a readout saved by `rep4d finetune`")
    parser.add_argument("--data", required=True, help="evaluation data")
    parser.add_argument("--output", "-o", help="write the metrics JSON here")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-points", type=int, help="point tracks sampled per clip (needed when clips differ)")
    parser.add_argument("--query-mode", choices=["strided", "first"], default="strided",
                        help="TAP-Vid query mode (default strided)")
    parser.add_argument("--max-clips", type=int, help="evaluate only the first N clips")
    parser.add_argument("--save-pictures", type=int, default=0, metavar="N",
                        help="write prediction-vs-truth MP4/PNG for the first N clips")
    parser.add_argument("--pictures-dir", help="folder of the pictures (default MODEL/evaluate_pictures)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from rep4d.training.finetune import run_evaluate

    try:
        results = run_evaluate(
            args.model, args.data, output=args.output, batch_size=args.batch_size, num_points=args.num_points,
            tapvid_query_mode=args.query_mode, save_pictures=args.save_pictures, pictures_dir=args.pictures_dir,
            progress=not args.quiet, max_clips=args.max_clips,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(results, indent=2, default=str))
    return 0


COMMAND = Command(
    name="evaluate",
    help="evaluate a saved readout on a dataset (metrics + trivial baselines as JSON)",
    add_arguments=add_arguments,
    run=run,
    order=41,
)
