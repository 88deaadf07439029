"""Helpers shared by the test modules (importable as ``testing_utils``; tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
# Key/shape manifests of the released checkpoints ship with the package (rep4d/manifests/<method>/).
MANIFESTS = Path(__file__).parent.parent / "rep4d" / "manifests"


def randomized(model):
    """``model`` in eval mode with every parameter perturbed (as the parity fixtures are): no norm scale stays 1, no
    bias or zero-initialised output layer stays 0, so every output depends on every layer. Deterministic."""
    import torch

    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def tiny_moog_config(**overrides):
    """A tiny MooGConfig (4 frames of 16x16, 6 tokens of width 16, one layer per stack, 2-head readouts) for the tests
    that need a MooG backbone; tests/test_moog.py has its own, with every head's sizes."""
    from rep4d.configuration.configuration_moog import MooGConfig

    values = dict(image_size=[16, 16], num_frames=4, conv_features=[4, 8, 8, 8, 8, 8], enc_fourier_bases=4,
                  encoder_hidden_size=8, encoder_output_size=24, num_tokens=6, token_size=16,
                  predictor_qkv_size=16, predictor_num_heads=2, predictor_mlp_size=32, predictor_num_layers=1,
                  corrector_qkv_size=16, corrector_num_heads=2, corrector_mlp_size=32, corrector_num_layers=1,
                  decoder_qkv_size=8, decoder_num_heads=2, decoder_mlp_size=32, decoder_num_layers=1,
                  dec_fourier_bases=4, readout_num_frames=4, readout_fourier_bases=4,
                  point_readout_temporal_tile_size=2, point_readout_frames_per_query=2,
                  box_readout_temporal_tile_size=1, box_readout_frames_per_query=4)  # fmt: skip
    values.update(overrides)
    return MooGConfig(**values)


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
