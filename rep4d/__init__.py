"""rep4d: 4DS, MooG and RVM self-supervised video representations for Hugging Face Transformers.

Importing ``rep4d`` registers every config, model and video processor with the transformers Auto classes and the custom
pipelines (:func:`register`). The public classes below are loaded on first access (PEP 562), so ``rep4d.FourDSModel``
works as before. Checkpoint converters and parity runners are not registered: ``rep4d.conversion.CONVERTERS`` and
``rep4d.parity.PARITY_RUNNERS`` name their modules, imported when a checkpoint is converted or a case is run.

The ``rep4d`` command line is the one exception: there the package import stays light (no torch) so that
``rep4d --help`` is instant, and the entry point (``rep4d.cli.main``) calls :func:`register` itself before running a
command that uses models.
"""

from __future__ import annotations

import importlib
import sys

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY_NAMES = {
    **dict.fromkeys(["FourDSConfig", "MooGConfig", "ReadoutConfig", "RVMConfig"], "rep4d.configuration"),
    **dict.fromkeys(
        [
            "FourDSForDepthEstimation",
            "FourDSForPreTraining",
            "FourDSModel",
            "MooGForBoxTracking",
            "MooGForDepthEstimation",
            "MooGForNextFramePrediction",
            "MooGForPointTracking",
            "MooGModel",
            "MooGTrackingHeadModel",
            "ReadoutForBoxTracking",
            "ReadoutForCameraPose",
            "ReadoutForDepthEstimation",
            "ReadoutForPointTracking",
            "ReadoutForVideoClassification",
            "RVMForMaskedReconstruction",
            "RVMModel",
            "load_readout",
        ],
        "rep4d.modeling",
    ),
    **dict.fromkeys(["FourDSVideoProcessor", "MooGVideoProcessor", "RVMVideoProcessor"], "rep4d.processing"),
    "from_release": "rep4d.releases",
}

__all__ = ["__version__", "register", *_LAZY_NAMES]

_registered = False


def register() -> None:
    """Register the rep4d configs, models and video processors with the Auto classes and the custom pipelines with
    ``PIPELINE_REGISTRY``. Idempotent."""
    global _registered
    if _registered:
        return
    from rep4d import auto

    auto.register_all()
    importlib.import_module("rep4d.pipelines")  # the custom pipelines
    _registered = True


def __getattr__(name: str):
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'rep4d' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))


def _started_as_command_line() -> bool:
    """True in the ``rep4d`` console script and under ``python -m rep4d``: there the entry point registers."""
    script = (sys.argv[0] if sys.argv else "").replace("\\", "/").rsplit("/", 1)[-1]
    if script in ("rep4d", "rep4d.exe", "rep4d-script.py"):
        return True
    argv = list(getattr(sys, "orig_argv", None) or [])  # python [options] -m rep4d ...
    return "-m" in argv and argv[argv.index("-m") + 1 : argv.index("-m") + 2] in (["rep4d"], ["rep4d.cli"])


if not _started_as_command_line():
    register()
