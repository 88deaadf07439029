"""Helpers shared by the test modules (importable as ``testing_utils``; tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
# Key/shape manifests of the released checkpoints ship with the package (rep4d/manifests/<method>/).
MANIFESTS = Path(__file__).parent.parent / "rep4d" / "manifests"


def fixture_cases(method: str) -> list[Path]:
    """Every case directory of a method (any directory holding a case.json)."""
    return sorted(path.parent for path in (FIXTURES / method).glob("*/case.json"))


def run_isolated_python(code: str, cwd: str | os.PathLike, env: dict | None = None, timeout: int = 300):
    """Run ``code`` in a fresh interpreter where the rep4d package cannot be imported.

    The interpreter keeps the venv's third-party packages (torch, transformers, av) but the editable-install finder
    that maps ``rep4d`` to this repository is blocked, as on a machine where only transformers is installed.
    """
    guard = (
        "import sys, importlib.abc\n"
        "class _BlockRep4d(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'rep4d' or name.startswith('rep4d.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (blocked for this test)')\n"
        "        return None\n"
        "sys.meta_path.insert(0, _BlockRep4d())\n"
        "try:\n"
        "    import rep4d\n"
        "    raise SystemExit('rep4d should not be importable here')\n"
        "except ModuleNotFoundError:\n"
        "    pass\n"
    )
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", guard + code], cwd=str(cwd), env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )
