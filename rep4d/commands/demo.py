"""``rep4d demo``: run MooG, 4DS, RVM, label propagation and point tracking on a synthetic clip with ground truth and
on a short real video, and write labelled pictures, videos and a summary with a verdict per step.

The steps live in :mod:`rep4d.demo` (one function per step); this command only parses the arguments and prints.

Models come from ``model_zoo/<name>/`` (Hub-format folders trained by the project on synthetic clips; which folder
serves which step, and the demo's presets, are in ``rep4d.configuration.zoo_recipes``). A step whose folder is missing
uses a small RANDOMLY INITIALISED model of the zoo model's config, and the summary says so.
``--model DIR`` uses a converted released 4DS checkpoint for the 4DS steps; ``--release NAME`` a downloaded release.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rep4d.cli import (
    add_deprecated_alias,
    add_num_frames_argument,
    add_old_resolution_aliases,
    add_resolution_argument,
    module_command,
    positive_float,
)
from rep4d.model_zoo import ZOO_DIR

EXAMPLES = """
examples:
  rep4d demo                                    # everything, results in demo_output/ (summary.md shows them)
  rep4d demo --output results --num-frames 8 --resolution 64
  rep4d demo --release 4ds-b-dist-e             # the released 4DS-B-dist-e (downloaded once) for label propagation
  rep4d demo --model 4ds-b-dist-e               # a converted released 4DS checkpoint (rep4d convert) for 4DS
  rep4d demo --video my_clip.mp4                # your own real video (a few seconds) instead of the shipped clip
  rep4d demo --zoo /nonexistent                 # no embedded models: small random ones (pipeline check only)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--output", "-o", default="demo_output", help="folder for the results (default demo_output)")
    parser.add_argument("--model", help="a converted 4DS folder (rep4d convert) used for the 4DS steps")
    parser.add_argument("--zoo", default=str(ZOO_DIR),
                        help="folder of the embedded demo models (default: the installed rep4d.model_zoo)")
    # Defaults (None here): the demo presets of rep4d.configuration.zoo_recipes, named in the help texts.
    add_num_frames_argument(parser, help="frames of the synthetic clip (even, >= 4; default: the demo preset, 8)")
    add_resolution_argument(parser, help="frame size of the synthetic clip HxW, or N for a square (sides >= 16; "
                            "default: the demo preset, 64x64)")
    parser.add_argument("--fps", type=positive_float,
                        help="frame rate of the synthetic clip's videos (default 8: it has no source video; the real "
                        "video's keep its own frame rate)")
    add_deprecated_alias(parser, "--frames", "--num-frames", "num_frames", type=int)
    add_old_resolution_aliases(parser, flags=("--size",))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--release", metavar="NAME",
                        help="use a released model (rep4d download --list) for the steps it serves; downloaded and "
                        "converted on first use, e.g. 4ds-b-dist-e")
    parser.add_argument("--video", default=None, metavar="PATH",
                        help="the real video (default: the shipped 24-frame Big Buck Bunny clip, CC-BY 3.0)")
    parser.add_argument("--no-video", action="store_true", help="skip the real video: synthetic clip only")


def run(args: argparse.Namespace) -> int:
    from rep4d.demo import DEMO_VIDEO, run_demo, verdict_table

    if args.num_frames is not None and (args.num_frames < 4 or args.num_frames % 2):
        raise ValueError(f"--num-frames must be an even number >= 4, got {args.num_frames}")
    if args.resolution is not None and min(args.resolution) < 16:
        raise ValueError(f"--resolution must be at least 16x16, got {args.resolution[0]}x{args.resolution[1]}")
    video = None if args.no_video else Path(args.video) if args.video else DEMO_VIDEO
    if args.quiet:  # transformers' own "Loading weights" bars too
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    if video is not None and not video.is_file():
        raise FileNotFoundError(f"--video: no such video file: {video}")
    clip = {"num_frames": args.num_frames, "resolution": args.resolution, "synthetic_fps": args.fps}
    summary = run_demo(args.output, seed=args.seed, zoo=args.zoo, model_dir=args.model, release=args.release,
                       video=video, progress=not args.quiet, **{key: value for key, value in clip.items() if value})
    print(summary["note"])
    print()
    print(verdict_table(summary))
    print(f"\npictures, videos and summary.md (pictures inline) in {args.output}/")
    return 0


COMMAND = module_command(
    __name__,
    help="run MooG, 4DS, RVM, label propagation and point tracking on a synthetic and a real clip: labelled "
    "pictures and a verdict against a trivial baseline per step",
    order=90,
)
