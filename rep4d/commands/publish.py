"""``rep4d publish``: released .npz checkpoint(s) -> a Hub-ready folder (weights, card, processor, remote code)."""

from __future__ import annotations

import argparse

from rep4d.cli import add_method_argument, module_command

EXAMPLES = """
examples:
  rep4d publish scaling4d_dist_b.npz --repo-id rep4d/4ds-b-dist-e --output hub/4ds-b-dist-e
  rep4d publish moog_ego4d_backbone_ckpt_164335139.npz moog_ego4d_point_track_head_ckpt_164335139.npz \\
      --repo-id rep4d/moog-point-tracking --output hub/moog-point-tracking
  rep4d publish scaling4d_e.npz --repo-id rep4d/4ds-e --output hub/4ds-e --dry-run   # no weights written
  rep4d publish --manifest rep4d/manifests/4ds/scaling4d_e.json --repo-id rep4d/4ds-e --output x --dry-run
  rep4d publish pretrain_rvm_small16_256_204031069.npz --repo-id rep4d/rvm-s --output hub/rvm-s --push

The folder holds model.safetensors (or shards), config.json with auto_map for every Auto class the repo serves and
custom_pipelines, video_preprocessor_config.json, the model code (loads with trust_remote_code=True without rep4d)
and README.md, the model card. It appears only when complete. --dry-run plans from the shapes only and writes
weights_plan.json instead of the weights. --push uploads with huggingface_hub (needs a token and the network).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT.npz",
                        help="released checkpoint(s): a backbone, optionally followed by a readout head")
    parser.add_argument("--repo-id", required=True, help="Hub repo id, e.g. rep4d/4ds-b-dist-e")
    parser.add_argument("--output", "-o", required=True, help="output folder (Hub-ready)")
    parser.add_argument("--manifest", action="append", default=[],
                        help="a checkpoint manifest JSON (shapes only) instead of the .npz; needs --dry-run")
    parser.add_argument("--release", help="released checkpoint name for the card (default: from the repo id)")
    add_method_argument(parser)
    parser.add_argument("--preset", help="config preset for what the arrays cannot tell")
    parser.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard (default 5GB)")
    parser.add_argument("--dry-run", action="store_true", help="plan from shapes only: no weights, no upload")
    parser.add_argument("--push", action="store_true", help="upload the folder to the Hub (create_repo + upload_folder)")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rep4d.publishing import RELEASES, manifest_shapes, publish

    if bool(args.checkpoints) == bool(args.manifest):
        raise ValueError("pass checkpoint .npz file(s) or --manifest (with --dry-run), not both")
    if args.manifest and not args.dry_run:
        raise ValueError("--manifest gives shapes only; add --dry-run")
    if args.release and args.release not in RELEASES:
        raise ValueError(f"unknown release {args.release!r}; known: {', '.join(RELEASES)}")
    result = publish(
        args.checkpoints or None, args.repo_id, args.output, release=args.release,
        shapes=manifest_shapes(args.manifest) if args.manifest else None,
        dry_run=args.dry_run, push=args.push, overwrite=args.overwrite, private=args.private,
        max_shard_size=args.max_shard_size, progress=not args.quiet, method=args.method, preset=args.preset,
    )
    what = "planned (dry run, no weights)" if result.dry_run else "published"
    release = result.release.title if result.release else "custom checkpoint"
    print(f"{what} {release}: {result.model_class}, {result.num_parameters:,} parameters -> {result.output_dir}")
    for name in result.files:
        print(f"  {name}")
    if result.pushed:
        print(f"uploaded to https://huggingface.co/{result.repo_id} ({result.commit_url})")
    return 0


COMMAND = module_command(
    __name__,
    help="convert a released checkpoint into a Hub-ready folder with model card and remote code (optionally push)",
    order=20,
)
