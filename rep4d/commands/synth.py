"""``rep4d synth``: write a synthetic 4D video dataset (mp4 + exact ground truth) for training, tests and demos."""

from __future__ import annotations

import argparse
import sys
import time

from rep4d.cli import Command

EXAMPLES = """
examples:
  rep4d synth --output synth64 --num-clips 2000 --frames 16 --height 64 --width 64 --seed 0 --workers 2
  rep4d synth --output tiny --num-clips 8 --frames 8 --height 32 --width 32 --query-mode first
  rep4d synth --output big --num-clips 500 --frames 24 --height 128 --width 128 --num-objects 5 --num-points 256

Writes OUTPUT/clip_XXXXX.mp4 (H.264) and OUTPUT/clip_XXXXX.npz (depth, segmentation, query_points, tracks,
occluded, boxes, box_visible, camera_rotation, camera_translation, label, ...; no pickles), OUTPUT/metadata.csv
(file_name, annotation, label, label_name, num_frames, height, width) and OUTPUT/dataset (datasets.load_from_disk).
Clip i is generated from the seed (SEED, i): the output is identical for any --workers.
Python: rep4d.training.synthetic.generate_clip(seed, num_frames, height, width) returns one clip as a dict.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--output", "-o", required=True, help="output folder (created if needed)")
    parser.add_argument("--num-clips", type=int, default=100, help="number of clips (default 100)")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    parser.add_argument("--height", type=int, default=64, help="frame height, even (default 64)")
    parser.add_argument("--width", type=int, default=64, help="frame width, even (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--num-objects", type=int, default=3, help="moving shapes per clip (default 3)")
    parser.add_argument("--num-points", type=int, default=64, help="point tracks per clip (default 64)")
    parser.add_argument("--object-point-fraction", type=float, default=0.5,
                        help="fraction of the tracks sampled on objects, the rest on the background (default 0.5)")
    parser.add_argument("--query-mode", choices=["random", "first"], default="random",
                        help="query frame of each track: uniform over the clip or always frame 0 (default random)")
    parser.add_argument("--fps", type=float, default=8.0, help="frame rate written into the mp4 files (default 8)")
    parser.add_argument("--save-video-array", action="store_true",
                        help="also store the exact uint8 frames in each npz (the mp4 is lossy)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rep4d.training.synthetic import write_dataset

    start = time.perf_counter()
    try:
        output = write_dataset(
            args.output,
            num_clips=args.num_clips,
            seed=args.seed,
            num_frames=args.frames,
            height=args.height,
            width=args.width,
            workers=args.workers,
            fps=args.fps,
            progress=not args.quiet,
            save_video_array=args.save_video_array,
            num_objects=args.num_objects,
            num_points=args.num_points,
            object_point_fraction=args.object_point_fraction,
            query_mode=args.query_mode,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(f"wrote {args.num_clips} clips to {output} in {seconds:.1f}s ({args.num_clips / seconds:.1f} clips/s)")
    return 0


COMMAND = Command(
    name="synth",
    help="generate synthetic 4D videos with exact depth, tracks, boxes, camera motion and labels",
    add_arguments=add_arguments,
    run=run,
    order=60,
)
