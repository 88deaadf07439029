"""``rep4d moog-attention``: render what MooG's state tokens attend to (paper figures 4 and 7)."""

from __future__ import annotations

import argparse

from rep4d.cli import (
    add_fps_argument,
    add_num_frames_argument,
    add_old_resolution_aliases,
    add_resolution_argument,
    module_command,
    read_video_metadata,
    require_model_family,
)

EXAMPLES = """
examples:
  rep4d convert moog_ego4d_backbone_ckpt_164335139.npz -o moog-ego4d        # a backbone file with the decoder
  rep4d moog-attention moog-ego4d clip.mp4 -o attention.mp4
  rep4d moog-attention moog-ego4d clip.mp4 -o tokens.gif --mode tokens --tokens 3 17 250 --num-frames 8
  rep4d moog-attention moog-ego4d clip.mp4 -o argmax.mp4 --mode argmax --resolution 128

The model folder must hold a MooGForNextFramePrediction (a backbone converted together with its pixel decoder):
the maps are the decoder's cross-attention from every pixel to the state tokens, averaged over heads. The output
shows the input, the arg-max token of every pixel (one colour per token) and heat maps of the chosen tokens.
The output keeps the input's duration: its frame rate is the source's, times --num-frames / the source's frames.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("model", help="converted MooG folder with the pixel decoder (MooGForNextFramePrediction)")
    parser.add_argument("video", help="input video file (anything FFmpeg reads)")
    parser.add_argument("--output", "-o", required=True, help="output .mp4, .webm or .gif")
    parser.add_argument("--mode", choices=("both", "argmax", "tokens"), default="both", help="what to draw")
    parser.add_argument("--tokens", type=int, nargs="+", help="token indices for the heat maps (default: top 3)")
    add_num_frames_argument(parser, default=8, help="frames sampled uniformly from the video (default 8)")
    add_resolution_argument(parser, help="processing size HxW or N for a square (default: the model's image size)")
    add_old_resolution_aliases(parser, flags=("--size",))
    parser.add_argument("--layer", type=int, default=-1, help="decoder layer whose attention is shown (default last)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial state noise")
    add_fps_argument(parser, help="frame rate of the output (default: the input's, scaled to keep its duration)")

def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from rep4d.modeling.modeling_moog import MooGForNextFramePrediction
    from rep4d.moog_attention import decoder_attention_maps, write_attention_video
    from rep4d.processing.video_processing_moog import MooGVideoProcessor

    config = require_model_family(args.model, "moog", "moog-attention")
    if "MooGForNextFramePrediction" not in (config.get("architectures") or ["MooGForNextFramePrediction"]):
        raise ValueError(f"moog-attention needs a MooGForNextFramePrediction (a MooG backbone converted with its pixel "
                         f"decoder); {args.model} holds {', '.join(config['architectures'])}")
    source = read_video_metadata(args.video)  # fps and frame count, decoding one frame
    model = MooGForNextFramePrediction.from_pretrained(args.model).eval()
    height, width = args.resolution or model.config.image_size
    processor = MooGVideoProcessor.for_size(height, width, args.num_frames)
    pixel_values = processor(args.video, return_tensors="pt")["pixel_values"]
    fps = args.fps
    if fps is None:  # the sampled frames span the whole input: keep its duration
        fps = source.fps * pixel_values.shape[1] / source.total_num_frames if source.fps else 8.0
    generator = torch.Generator().manual_seed(args.seed)
    # One frame at a time, carrying the state: memory stays flat for long clips.
    maps, state = [], model.moog.initial_state(pixel_values.shape[0], generator=generator)
    for t in tqdm(range(pixel_values.shape[1]), desc="frames", unit="frame"):
        frame_maps, state = decoder_attention_maps(
            model, pixel_values[:, t : t + 1], layer=args.layer, state=state, return_state=True
        )
        maps.append(frame_maps[0])

    frames = pixel_values[0].permute(0, 2, 3, 1).numpy()
    path = write_attention_video(args.output, frames, np.concatenate(maps), tokens=args.tokens, mode=args.mode, fps=fps)
    print(f"wrote {path}")
    return 0


COMMAND = module_command(
    __name__,
    help="render MooG decoder attention: per-token maps over time and arg-max token colours (MP4/GIF)",
    order=60,
)
