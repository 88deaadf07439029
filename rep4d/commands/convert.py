"""``rep4d convert``: released .npz / .safetensors checkpoint -> Hugging Face model folder."""

from __future__ import annotations

import argparse
import json

from rep4d.cli import add_method_argument, module_command

EXAMPLES = """
examples:
  rep4d convert scaling4d_dist_b.npz --output 4ds-b-dist-e
  rep4d convert scaling4d_dist_b_depth.npz --output 4ds-b-dist-e-depth
  rep4d convert scaling4d_e.npz --output 4ds-e --max-shard-size 2GB
  rep4d convert my_4ds.npz --output out --preset b --readout-depth 0.75
  rep4d convert scaling4d_dist_b.npz --dry-run          # check the mapping, write nothing
  rep4d convert 4ds-b-dist-e                            # a release by name: download + convert into the cache
  rep4d convert omnivorous_dinov2-vit_b.safetensors --output omnivorous-dinov2-b   # transformers' Dinov2WithRegisters
  rep4d convert frozen_dinov2-vit_b.safetensors --output frozen-dinov2-b

Every size is read from the arrays; what the arrays cannot tell (readout depth, decoding patch size) comes from the
preset of the recognised release, from --preset, or from the flags. Nothing partial is ever left in --output.
"""


def parse_override(text: str):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                        help="released .npz or .safetensors checkpoint(s); several files are merged (e.g. a backbone and a readout head)")
    parser.add_argument("--output", "-o", help="output folder (loadable with from_pretrained)")
    add_method_argument(parser)
    parser.add_argument("--preset", help="config preset supplying what the arrays cannot tell (e.g. b, e, b-dist-e)")
    parser.add_argument("--readout-depth", type=float, help="relative depth of the readout features (4DS; default 0.95)")
    parser.add_argument("--decoding-patch-size", type=int, nargs=3, metavar=("PT", "PH", "PW"),
                        help="decoding patch of a 4DS readout head (inferred when unambiguous)")
    parser.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[],
                        metavar="KEY=VALUE", help="override any config field (JSON values), repeatable")
    parser.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard (default 5GB)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    parser.add_argument("--dry-run", action="store_true", help="check the key mapping and print the config only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--cache-dir", help="with a release NAME: the cache folder (default: $REP4D_CACHE, else "
                        "$HF_HOME/rep4d)")


def run(args: argparse.Namespace) -> int:
    overrides = dict(args.overrides)
    if args.readout_depth is not None:
        overrides["readout_depth"] = args.readout_depth
    if args.decoding_patch_size is not None:
        overrides["readout_decoding_patch_size"] = list(args.decoding_patch_size)
    if len(args.checkpoints) == 1 and is_release_name(args.checkpoints[0]):  # `rep4d convert NAME`
        from rep4d.releases import convert_release, download

        name = args.checkpoints[0]
        if args.method or args.preset:
            raise ValueError(f"--method / --preset apply to a checkpoint file; release {name} fixes both")
        if not args.dry_run:
            folder = convert_release(name, args.cache_dir, output=args.output, overwrite=args.overwrite,
                                     max_shard_size=args.max_shard_size, progress=not args.quiet, **overrides)
            print(f"release {name}: {folder}")
            return 0
        args.checkpoints = [str(path) for path in download(name, args.cache_dir, progress=not args.quiet)]
    from rep4d.conversion import (
        checkpoint_shapes,
        convert_checkpoint,
        identify_checkpoint,
        open_checkpoint,
        plan_conversion,
    )

    if args.dry_run:
        arrays = open_checkpoint(args.checkpoints)
        shapes = checkpoint_shapes(arrays)
        arrays.close()
        converter, variant = identify_checkpoint(shapes, args.method)
        plan = plan_conversion(shapes, converter, variant, preset=args.preset, **overrides)
        print(f"recognised: {converter.variant_description(variant, shapes)}")
        print(
            f"model: {plan.model_class.__name__}, {plan.num_parameters:,} parameters, "
            f"{len(plan.sources)} tensors from {len(shapes)} arrays"
        )
        print(plan.config.to_json_string(use_diff=True))
        return 0
    if not args.output:
        raise ValueError("--output is required (or pass --dry-run)")
    result = convert_checkpoint(
        args.checkpoints,
        args.output,
        method=args.method,
        preset=args.preset,
        max_shard_size=args.max_shard_size,
        overwrite=args.overwrite,
        progress=not args.quiet,
        **overrides,
    )
    print(f"converted {result.description}: {result.num_parameters:,} parameters -> {result.output_dir}")
    for name in result.files:
        print(f"  {name}")
    return 0


def is_release_name(text: str) -> bool:
    """True for a release name of ``rep4d.releases.RELEASES``; an unknown name that is not a file is refused there."""
    from pathlib import Path

    from rep4d.releases import get_release

    if Path(text).exists() or text.endswith((".npz", ".safetensors")) or "/" in text:
        return False
    get_release(text)  # one-line error listing the release names
    return True


COMMAND = module_command(
    __name__,
    help="convert a released .npz checkpoint into a Hugging Face model folder",
    order=10,
    needs_models=False,
)
