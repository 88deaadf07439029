"""Executing an official colab notebook's model cells at run time (shared by ``notebook_models.py`` and
``train_rvm.py``).

The official MooG and RVM models exist only inside the colab notebooks of the official checkout. The notebook is read
from ``--official-src`` at run time and the code cells picked by their "# @title" line are executed into one
namespace (no data download, checkpoint or visualisation cell); nothing is copied into this repository. The notebooks
import visualisation-only modules (mediapy, tapnet's viz_utils, cv2, seaborn, sklearn, pandas, PIL) that the model
cells never use: any of them that is not installed is replaced by an empty module so the imports cell runs unchanged.
"""

import importlib
import json
import os
import sys
import types

STUB_MODULES = ("mediapy", "tapnet", "tapnet.utils", "tapnet.utils.viz_utils", "cv2", "seaborn", "sklearn",
                "pandas", "PIL", "PIL.Image", "scipy.io")


def stub_missing_modules(names=STUB_MODULES) -> None:
    """Put an empty module in ``sys.modules`` for every name in ``names`` that cannot be imported."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            module = sys.modules[name] = types.ModuleType(name)
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)


def load_notebook_namespace(src: str, notebook: str, titles, extra: dict | None = None) -> dict:
    """Execute the code cells of ``src/colabs/notebook`` titled ``titles`` (in that order) into a fresh namespace
    holding ``extra`` and return it. Stubs the missing visualisation modules first."""
    stub_missing_modules()
    cells = {}
    for cell in json.load(open(os.path.join(src, "colabs", notebook)))["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and text.startswith("# @title "):
            cells.setdefault(text.split("\n", 1)[0][len("# @title "):].split(" {")[0].strip(), text)
    namespace = {"__name__": "official_notebook", **(extra or {})}
    for title in titles:
        exec(compile(cells[title], f"{notebook}:{title}", "exec"), namespace)
    return namespace
