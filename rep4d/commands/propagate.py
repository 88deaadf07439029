"""``rep4d propagate``: carry a first-frame mask or keypoints through a video with RVM features."""

from __future__ import annotations

import argparse
import sys

from rep4d.cli import Command

EXAMPLES = """
examples:
  rep4d propagate rvm-s video.mp4 --mask first_frame.png --output overlay.mp4
  rep4d propagate rvm-s davis_goat.mp4 --mask 00000.png --resolution 480 880 --output goat.mp4 --save masks.npz
  rep4d propagate rvm-s jump.mp4 --points "120,80;140,95;100,150" --resolution 320 320 --output pose.mp4

MODEL is a folder (or hub id) converted with `rep4d convert` from an RVM checkpoint. The mask is an image whose
pixel values are the label ids (0 = background; a palette PNG as in DAVIS works), with the video's frame size.
Features are streamed frame by frame at --resolution (default: the video's size; the evaluation notebook uses
480x880 for DAVIS, 320x320 for JHMDB), L2-normalised, and labels are propagated by top-k feature affinity with a
queue of --context recent frames (the notebook's settings are the defaults). --save writes the per-frame masks or
keypoints as .npz.
"""


def parse_points(text: str):
    import numpy as np

    try:
        points = [[float(v) for v in pair.split(",")] for pair in text.split(";") if pair.strip()]
        array = np.asarray(points, dtype=np.float64)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--points expects 'x,y;x,y;...', got {text!r}") from error
    if array.ndim != 2 or array.shape[1] != 2:
        raise argparse.ArgumentTypeError(f"--points expects 'x,y;x,y;...', got {text!r}")
    return array


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("model", help="converted RVM model folder or hub id")
    parser.add_argument("video", help="input video file (anything FFmpeg reads)")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--mask", help="first-frame segmentation mask image (pixel value = label id)")
    labels.add_argument("--points", type=parse_points, help="first-frame keypoints 'x,y;x,y;...' in pixels")
    parser.add_argument("--output", "-o", required=True, help="overlay video to write (.mp4, .webm or .gif)")
    parser.add_argument("--save", help="also save the propagated masks / keypoints as .npz")
    parser.add_argument("--resolution", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="processing resolution (default: the video's frame size)")
    parser.add_argument("--max-frames", type=int, help="use only the first N frames")
    parser.add_argument("--context", type=int, default=20, help="queue of recent frames (default 20)")
    parser.add_argument("--topk", type=int, default=7, help="neighbours per token (default 7; VIP uses 10)")
    parser.add_argument("--temperature", type=float, default=0.7, help="affinity temperature (default 0.7)")
    parser.add_argument("--radius", type=float, default=20, help="neighbourhood radius in grid cells (default 20)")
    parser.add_argument("--no-restrict", action="store_true", help="do not restrict to the spatial neighbourhood")
    parser.add_argument("--fps", type=float, default=8.0, help="frame rate of the overlay video")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    import rep4d  # noqa: F401  (registers the RVM classes with the Auto classes)
    from rep4d.label_propagation import (
        propagate_keypoints,
        propagate_mask,
        rvm_feature_extractor,
        write_overlay,
    )
    from rep4d.modeling.modeling_rvm import RVMModel
    from rep4d.processing.video_processing_base import read_video_pyav

    try:
        video, _ = read_video_pyav(args.video)
    except (OSError, ValueError) as error:
        print(f"error: cannot read {args.video}: {error}", file=sys.stderr)
        return 1
    if args.max_frames:
        video = video[: args.max_frames]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = RVMModel.from_pretrained(args.model).to(device).eval()
    extractor = rvm_feature_extractor(model, device=device, progress=not args.quiet)
    options = dict(n_context=args.context, topk=args.topk, temperature=args.temperature, radius=args.radius,
                   restrict_neighborhood=not args.no_restrict, progress=not args.quiet)
    resolution = tuple(args.resolution) if args.resolution else None
    try:
        if args.mask:
            mask = np.asarray(Image.open(args.mask))
            if mask.ndim == 3:  # an RGB mask: every distinct colour is a label, black is background
                colours, mask = np.unique(mask.reshape(-1, mask.shape[-1]), axis=0, return_inverse=True)
                mask = mask.reshape(video.shape[1:3])
            result = propagate_mask(extractor, video, mask.astype(np.int64), resolution=resolution, **options)
            write_overlay(args.output, video, masks=result.masks, fps=args.fps)
            if args.save:
                np.savez_compressed(args.save, masks=result.masks.astype(np.int32), label_ids=result.label_ids)
            print(f"propagated {len(result.label_ids) - 1} object(s) over {len(video)} frames -> {args.output}")
        else:
            result = propagate_keypoints(extractor, video, args.points, resolution=resolution, **options)
            write_overlay(args.output, video, points=result.points, visible=result.visible, fps=args.fps)
            if args.save:
                np.savez_compressed(args.save, points=result.points, visible=result.visible)
            print(f"propagated {args.points.shape[0]} keypoint(s) over {len(video)} frames -> {args.output}")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


COMMAND = Command(
    name="propagate",
    help="propagate a first-frame mask or keypoints through a video with RVM features (label propagation)",
    add_arguments=add_arguments,
    run=run,
    order=40,
)
