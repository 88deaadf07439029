"""``rep4d evaluate``: run a saved readout over a dataset and report its metrics (and the trivial baselines)."""

from __future__ import annotations

import argparse
import json
import sys

from rep4d.cli import module_command

# The names of rep4d.training.tapvid.TAPVID_PROTOCOLS (not imported here: commands import nothing heavy at the top).
TAPVID_PROTOCOL_NAMES = ("tapvid-first", "tapvid-strided", "4ds-clip")

EXAMPLES = """
examples:
  rep4d evaluate --model runs/points --data synth_test --output runs/points/test_metrics.json
  rep4d evaluate --model runs/points --data tapvid_davis.pkl --tapvid-protocol tapvid-strided
  rep4d evaluate --model runs/depth --data synthetic:32,seed=7 --save-pictures 2 --pictures-dir pics/

--data takes the same forms as `rep4d finetune --data` (npz folder, synthetic:N, TAP-Vid .pkl, video folder/CSV).
Clips are cut/resized to the readout's frames and size. Prints the metrics as JSON (and writes them with --output).
Point-tracking readouts are scored under a named TAP-Vid protocol (--tapvid-protocol), which fixes the frames, the
256x256 raster, the query sampling and its paired scoring mode: tapvid-first (default: whole videos, first-visible
queries, `first` scoring; TAP-Vid's main protocol and the one query-first trackers report), tapvid-strided (whole
videos, queries every 5 frames, `strided` scoring) or 4ds-clip (the 4DS paper's 16-frame clips at stride 4 with
first-frame queries). The JSON names the protocol under "tapvid_protocol".
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--model", required=True, help="folder of a readout saved by `rep4d finetune`")
    parser.add_argument("--data", required=True, help="evaluation data")
    parser.add_argument("--output", "-o", help="write the metrics JSON here")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-points", type=int, help="point tracks sampled per clip (needed when clips differ)")
    parser.add_argument("--tapvid-protocol", choices=TAPVID_PROTOCOL_NAMES, default="tapvid-first",
                        help="TAP-Vid protocol of point-tracking readouts (default tapvid-first, see below)")
    parser.add_argument("--max-clips", type=int, help="evaluate only the first N clips")
    parser.add_argument("--save-pictures", type=int, default=0, metavar="N",
                        help="write prediction-vs-truth MP4/PNG for the first N clips")
    parser.add_argument("--pictures-dir", help="folder of the pictures (default MODEL/evaluate_pictures)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from rep4d.training.finetune import run_evaluate

    results = run_evaluate(
        args.model, args.data, output=args.output, batch_size=args.batch_size, num_points=args.num_points,
        tapvid_protocol=args.tapvid_protocol, save_pictures=args.save_pictures, pictures_dir=args.pictures_dir,
        progress=not args.quiet, max_clips=args.max_clips,
    )
    print(json.dumps(results, indent=2, default=str))
    if "tapvid_protocol" in results:
        scores = results["eval"]
        print(f"points: average_jaccard {scores['eval_average_jaccard']:.4f} (stay-at-query baseline "
              f"{scores['eval_baseline_average_jaccard']:.4f}) under the TAP-Vid protocol {results['tapvid_protocol']} "
              f"({results['tapvid']['num_examples']} videos/clips, {results['tapvid']['num_queries']} queries)",
              file=sys.stderr)
    return 0


COMMAND = module_command(
    __name__,
    help="evaluate a saved readout on a dataset (metrics + trivial baselines as JSON)",
    order=41,
)
