"""``rep4d download NAME``: fetch a released checkpoint into the cache (resumable; ``rep4d convert NAME`` converts it)."""

from __future__ import annotations

import argparse
import json

from rep4d.cli import module_command

EXAMPLES = """
examples:
  rep4d download --list                         # the release names, URLs, sizes and what the cache holds
  rep4d download 4ds-b-dist-e                   # -> <cache>/downloads/4ds-b-dist-e/scaling4d_dist_b.npz
  rep4d download moog-points --cache-dir /data/rep4d   # the MooG backbone file and the point-track head
  rep4d convert 4ds-b-dist-e                    # download if needed, convert into <cache>/converted/4ds-b-dist-e/

An interrupted download is resumed by running the same command again (HTTP Range request). The cache is --cache-dir,
else $REP4D_CACHE, else $HF_HOME/rep4d (~/.cache/huggingface/rep4d). $REP4D_RELEASES_URL replaces the official base
URL https://storage.googleapis.com/representations4d/checkpoints/ (e.g. a mirror). These files are not on the Hugging
Face Hub: HF_HUB_OFFLINE=1 does not stop this command.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("names", nargs="*", metavar="NAME", help="release name(s), e.g. 4ds-b-dist-e, rvm-b, moog-points "
                        "(--list shows them all)")
    parser.add_argument("--cache-dir", help="cache folder (default: $REP4D_CACHE, else $HF_HOME/rep4d)")
    parser.add_argument("--list", action="store_true", help="list the releases and what the cache holds")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rep4d.releases import RELEASES, download, get_release, release_status, resolve_cache_dir

    if args.list:
        rows = release_status(args.cache_dir)
        if args.json:
            print(json.dumps([row.__dict__ for row in rows], indent=2))
            return 0
        print(f"cache: {resolve_cache_dir(args.cache_dir)}")
        for row in rows:
            state = "converted" if row.converted else ("downloaded" if row.downloaded else "-")
            print(f"  {row.name:<20} {state:<10} {row.filename}  ({row.approx_size})")
        return 0
    if not args.names:
        raise ValueError(f"name a release to download (one of {', '.join(RELEASES)}) or pass --list")
    for name in args.names:
        get_release(name)  # refuse an unknown name before downloading anything
    result = {name: [str(path) for path in download(name, args.cache_dir, progress=not args.quiet)]
              for name in args.names}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for paths in result.values():
            for path in paths:
                print(path)
    return 0


COMMAND = module_command(
    __name__,
    help="download a released checkpoint by name into the cache (resumable)",
    order=9,
    needs_models=False,
)
