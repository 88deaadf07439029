"""``rep4d omnivorous``: the Omnivorous DINOv2 demo (alignment score + PCA picture of an RGB / auxiliary pair)."""

from __future__ import annotations

import argparse
import json

from rep4d.cli import add_device_argument, module_command

EXAMPLES = """
examples:
  rep4d convert omnivorous_dinov2-vit_b.safetensors --output omnivorous-dinov2-b
  rep4d convert frozen_dinov2-vit_b.safetensors --output frozen-dinov2-b
  rep4d omnivorous room_rgb.png room_depth.png --model omnivorous-dinov2-b --teacher frozen-dinov2-b -o demo.png
  rep4d omnivorous art.jpg art_xray.jpg --model omnivorous-dinov2-b --json

Both images are squashed to 224x224 (PIL bicubic, aspect ratio not kept) and ImageNet-normalised, as in the official
notebook. The auxiliary image must already be an 8-bit RGB picture: like the notebook, nothing is colourised here
(the released depth asset is a depth map coloured with matplotlib's cividis map). The score is the mean cosine
between the two images' patch features (1 = aligned). The picture shows the inputs and, per model, the first three
principal components of each image's patch features (colours are defined only up to a flip per channel).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("rgb", metavar="RGB_IMAGE", help="RGB image (PNG/JPEG)")
    parser.add_argument("aux", metavar="AUX_IMAGE", help="auxiliary image of the same scene (coloured depth, X-ray)")
    parser.add_argument("--model", required=True,
                        help="converted Omnivorous DINOv2 student folder (or any omnivorous folder), see rep4d convert")
    parser.add_argument("--teacher", help="optional second folder, e.g. the converted frozen DINOv2 teacher")
    parser.add_argument("--output", "-o", help="write the labelled picture here (PNG)")
    parser.add_argument("--panel-size", type=int, default=256, help="panel size in pixels (at least 256)")
    add_device_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")


def load_model(folder: str, device: str):
    from transformers import AutoModel

    from rep4d.cli import require_model_family

    require_model_family(folder, ("omnivorous", "dinov2_with_registers"), "rep4d omnivorous")
    return AutoModel.from_pretrained(folder).to(device).eval()


def run(args: argparse.Namespace) -> int:
    from rep4d.cli import require_file, resolve_device
    from rep4d.omnivorous import render_demo_picture, run_demo, save_picture

    require_file(args.rgb, "RGB image")
    require_file(args.aux, "auxiliary image")
    if args.panel_size < 256:
        raise ValueError(f"--panel-size must be at least 256 pixels, got {args.panel_size}")
    device = resolve_device(args.device)
    models = {}
    if args.teacher:
        models["teacher"] = load_model(args.teacher, device)
    models["student"] = load_model(args.model, device)
    result = run_demo(models, args.rgb, args.aux)
    if args.output:
        save_picture(render_demo_picture(result, args.panel_size), args.output)
    if args.json:
        print(json.dumps({"scores": result.scores, "output": args.output}))
    else:
        for role, score in result.scores.items():
            print(f"{role} alignment score (mean patch cosine RGB vs auxiliary): {score:.4f}")
        if args.output:
            print(f"picture -> {args.output}")
    return 0


COMMAND = module_command(
    __name__,
    help="Omnivorous DINOv2 demo: RGB vs depth/X-ray feature alignment score and PCA picture",
    order=60,
)
