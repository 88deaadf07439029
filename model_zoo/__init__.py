"""Small demonstration models trained by rep4d's own pipelines on synthetic clips (Hub-format folders).

What each folder is, which ``rep4d demo`` step it serves, which class loads it and how it was trained is one table,
``rep4d.configuration.zoo_recipes.ZOO_MODELS``; this package only holds the folders. A folder missing from here makes
the demo fall back to a small randomly initialised model, said in its summary.
"""

from __future__ import annotations

from pathlib import Path

ZOO_DIR = Path(__file__).resolve().parent
