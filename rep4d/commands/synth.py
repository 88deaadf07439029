"""``rep4d synth``: write a synthetic 4D video dataset (mp4 + exact ground truth) for training, tests and demos."""

from __future__ import annotations

import argparse
import time

from rep4d.cli import (
    add_deprecated_alias,
    add_num_frames_argument,
    add_num_workers_argument,
    add_old_resolution_aliases,
    add_resolution_argument,
    module_command,
    positive_float,
)

EXAMPLES = """
examples:
  rep4d synth --output synth64 --num-clips 2000 --num-frames 16 --resolution 64x64 --seed 0 --num-workers 2
  rep4d synth --output tiny --num-clips 8 --num-frames 8 --resolution 32 --query-mode first
  rep4d synth --output big --num-clips 500 --num-frames 24 --resolution 128x128 --num-objects 5 --num-points 256

Writes OUTPUT/clip_XXXXX.mp4 (H.264) and OUTPUT/clip_XXXXX.npz (depth, segmentation, query_points, tracks,
occluded, boxes, box_visible, camera_rotation, camera_translation, label, ...; no pickles), OUTPUT/metadata.csv
(file_name, annotation, label, label_name, num_frames, height, width) and OUTPUT/dataset (datasets.load_from_disk).
Clip i is generated from the seed (SEED, i): the output is identical for any --num-workers.
Python: rep4d.training.synthetic.generate_clip(seed, num_frames, height, width) returns one clip as a dict.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--output", "-o", required=True, help="output folder (created if needed)")
    parser.add_argument("--num-clips", type=int, default=100, help="number of clips (default 100)")
    add_num_frames_argument(parser, default=16, help="frames per clip (default 16)")
    add_resolution_argument(parser, default=(64, 64), help="frame size HxW, even sides (default 64x64)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    add_num_workers_argument(parser, default=1, help="worker processes")
    add_deprecated_alias(parser, "--frames", "--num-frames", "num_frames", type=int)
    add_deprecated_alias(parser, "--workers", "--num-workers", "num_workers", type=int)
    add_old_resolution_aliases(parser, flags=("--height", "--width"), fallback=(64, 64))
    parser.add_argument("--num-objects", type=int, default=3, help="moving shapes per clip (default 3)")
    parser.add_argument("--num-points", type=int, default=64, help="point tracks per clip (default 64)")
    parser.add_argument("--object-point-fraction", type=float, default=0.5,
                        help="fraction of the tracks sampled on objects, the rest on the background (default 0.5)")
    parser.add_argument("--query-mode", choices=["random", "first"], default="random",
                        help="query frame of each track: uniform over the clip or always frame 0 (default random)")
    parser.add_argument("--fps", type=positive_float, default=8.0,
                        help="frame rate written into the mp4 files (default 8: synthetic clips have no source)")
    parser.add_argument("--save-video-array", action="store_true",
                        help="also store the exact uint8 frames in each npz (the mp4 is lossy)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rep4d.training.synthetic import write_dataset

    start = time.perf_counter()
    height, width = args.resolution
    output = write_dataset(
        args.output,
        num_clips=args.num_clips,
        seed=args.seed,
        num_frames=args.num_frames,
        height=height,
        width=width,
        workers=args.num_workers,
        fps=args.fps,
        progress=not args.quiet,
        save_video_array=args.save_video_array,
        num_objects=args.num_objects,
        num_points=args.num_points,
        object_point_fraction=args.object_point_fraction,
        query_mode=args.query_mode,
    )
    seconds = time.perf_counter() - start
    print(f"wrote {args.num_clips} clips to {output} in {seconds:.1f}s ({args.num_clips / seconds:.1f} clips/s)")
    return 0


COMMAND = module_command(
    __name__,
    help="generate synthetic 4D videos with exact depth, tracks, boxes, camera motion and labels",
    order=60,
    needs_models=False,
)
