"""``rep4d propagate``: carry a first-frame mask or keypoints through a video by feature affinity."""

from __future__ import annotations

import argparse
import sys

from rep4d.cli import (
    add_deprecated_alias,
    add_device_argument,
    add_fps_argument,
    add_num_frames_argument,
    add_resolution_argument,
    module_command,
    read_video_metadata,
    require_file,
    require_model_family,
    resolve_device,
)

EXAMPLES = """
examples:
  rep4d propagate rvm-s video.mp4 --mask first_frame.png --output overlay.mp4
  rep4d propagate rvm-s davis_goat.mp4 --mask 00000.png --resolution 480x880 --output goat.mp4 --save masks.npz
  rep4d propagate rvm-s jump.mp4 --points "120,80;140,95;100,150" --resolution 320 --output pose.mp4

MODEL is a folder (or hub id) converted with `rep4d convert` (RVM, 4DS or MooG; features come from
rep4d.modeling.backbone_adapters.dense_feature_extractor). The mask is an image whose pixel values are the label
ids (0 = background; a palette PNG as in DAVIS works), with the video's frame size.
Frames are resized whole (PIL LANCZOS, as mediapy) to --resolution (default: about the DAVIS protocol's 30x55
tokens at the model's patch size, keeping the video's aspect; the evaluation notebook uses 480x880 for DAVIS and
320x320 for JHMDB at patch 16), features are L2-normalised, and labels are propagated by top-k feature affinity
with a queue of --context recent frames (the notebook's settings are the defaults). The video is streamed: memory
does not grow with its resolution or length beyond the processing-size frames and features, and a resolution
whose estimated memory exceeds what is available is refused before anything runs. The overlay keeps the source
frame rate. --save writes the per-frame masks (or keypoints) as .npz.
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
    parser.add_argument("model", help="converted RVM, 4DS or MooG model folder or hub id")
    parser.add_argument("video", help="input video file (anything FFmpeg reads)")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--mask", help="first-frame segmentation mask image (pixel value = label id)")
    labels.add_argument("--points", type=parse_points, help="first-frame keypoints 'x,y;x,y;...' in pixels")
    parser.add_argument("--output", "-o", required=True, help="overlay video to write (.mp4 or .webm)")
    parser.add_argument("--save", help="also save the propagated masks / keypoints as .npz")
    add_resolution_argument(parser, help="processing size HxW, or N for a square (default: about the DAVIS protocol's "
                            "30x55 tokens at the model's patch size, the video's aspect ratio, at most its size)")
    add_num_frames_argument(parser, help="use only the first N frames (default: all)")
    add_deprecated_alias(parser, "--max-frames", "--num-frames", "num_frames", type=int)
    parser.add_argument("--context", type=int, default=20, help="queue of recent frames (default 20)")
    parser.add_argument("--topk", type=int, default=7, help="neighbours per token (default 7; VIP uses 10)")
    parser.add_argument("--temperature", type=float, default=0.7, help="affinity temperature (default 0.7)")
    parser.add_argument("--radius", type=float, default=20, help="neighbourhood radius in grid cells (default 20)")
    parser.add_argument("--no-restrict", action="store_true", help="do not restrict to the spatial neighbourhood")
    add_fps_argument(parser, help="frame rate of the overlay video (default: the input video's)")
    add_device_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    # Wrong inputs are refused before anything heavy is imported or loaded.
    require_model_family(args.model, ("rvm", "4ds", "moog"), "propagate")
    metadata = read_video_metadata(args.video)  # a missing or undecodable video is a one-line error
    if args.mask:
        require_file(args.mask, "first-frame mask image")
    import time

    import numpy as np
    from PIL import Image
    from transformers import AutoModel

    import rep4d  # noqa: F401  (registers the rep4d classes with the Auto classes)
    from rep4d.label_propagation import propagate_video

    mask = None
    if args.mask:
        image = np.asarray(Image.open(args.mask))
        mask = image
        if image.ndim == 3:  # an RGB mask: every distinct colour is a label, black (the first colour) is background
            _, mask = np.unique(image.reshape(-1, image.shape[-1]), axis=0, return_inverse=True)
            mask = mask.reshape(image.shape[:2]).astype(np.int32)
        expected = (metadata.height, metadata.width)
        if mask.shape != expected:
            raise ValueError(f"the mask {args.mask} is {mask.shape[1]}x{mask.shape[0]} (WxH) but the video's frames "
                             f"are {expected[1]}x{expected[0]}: the mask must have the video's frame size")
    # The feature extractor resamples a learned position table whenever the frame size differs from the trained one.
    model = AutoModel.from_pretrained(args.model).to(resolve_device(args.device)).eval()
    options = dict(n_context=args.context, topk=args.topk, temperature=args.temperature, radius=args.radius,
                   restrict_neighborhood=not args.no_restrict)
    start = time.perf_counter()
    result = propagate_video(model, args.video, mask=mask, points=args.points, output=args.output,
                             resolution=args.resolution, num_frames=args.num_frames, fps=args.fps,
                             keep_results=bool(args.save), progress=not args.quiet, **options)
    seconds = time.perf_counter() - start
    if args.save:
        from rep4d.label_propagation import save_npz

        if result.masks is not None:
            save_npz(args.save, masks=result.masks, label_ids=result.label_map)
        else:
            save_npz(args.save, points=result.points, visible=result.visible)
    height, width = result.processing_hw
    what = (f"{len(result.label_map) - 1} object(s)" if result.label_map is not None
            else f"{len(args.points)} keypoint(s)")
    print(f"propagated {what} over {result.num_frames} frames at {height}x{width} "
          f"({result.grid_hw[0]}x{result.grid_hw[1]} tokens, {seconds / result.num_frames:.3f} s/frame) "
          f"-> {args.output} ({result.fps:g} fps)")
    foreground = result.foreground_fraction
    if foreground is not None and len(foreground) > 1 and not foreground[1:].any():
        print("warning: the propagated mask is empty after the first frame", file=sys.stderr)
    return 0


COMMAND = module_command(
    __name__,
    help="propagate a first-frame mask or keypoints through a video (label propagation, as the RVM evaluation)",
    order=40,
)
