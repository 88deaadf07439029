"""Regenerate the model cards of the released checkpoints from ``model_cards/template.md``.

    python model_cards/generate.py            # writes model_cards/<release>/README.md for all twelve releases
    python model_cards/generate.py --zoo      # also the cards of the embedded demo models in model_zoo/

Release names, files and URLs come from rep4d.releases (the download table), the published results from the papers'
tables (rep4d.papers: FOURDS_TABLES, MOOG_TABLES). Parameter counts come from the checkpoint manifests
(rep4d/manifests/<family>/), checked against the model built on
the meta device; tests/test_publishing.py checks that the committed cards are up to date.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import rep4d  # noqa: F401  (registers the converters)
from rep4d.cards import MODEL_CARDS_DIR, write_zoo_cards
from rep4d.publishing import write_release_cards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(MODEL_CARDS_DIR), help="folder of the cards (default model_cards/)")
    parser.add_argument("--zoo", action="store_true", help="also rewrite model_zoo/<name>/README.md")
    args = parser.parse_args()
    for path in write_release_cards(Path(args.output)):
        print(path)
    if args.zoo:
        for path in write_zoo_cards():
            print(path)


if __name__ == "__main__":
    main()
