"""The embedded demo models (``model_zoo/``) as data, and the presets of ``rep4d demo``.

:data:`ZOO_MODELS` is the one table of the zoo: per folder, the ``rep4d demo`` step it serves, the class that loads it
and its training recipe (the ``rep4d train`` / ``rep4d finetune`` command, as fields). Everything else reads it:

- ``scripts/train_tiny_models.sh`` runs the recipes (``python -m rep4d.configuration.zoo_recipes NAME...`` prints
  their command lines for the script);
- the zoo model cards (:func:`rep4d.cards.write_zoo_cards`) state the exact command;
- ``rep4d demo`` (:mod:`rep4d.demo`) loads the folders, and falls back to the recipe's config, randomly initialised,
  for a folder that is missing (:func:`demo_fallback_config`).

The shipped weights were trained with exactly these commands: change a recipe and retrain its folder.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..model_zoo import ZOO_DIR
from .configuration_fourds import FOURDS_TRAIN_PRESETS, FourDSConfig
from .configuration_moog import MOOG_TRAIN_PRESETS, MooGConfig
from .configuration_rvm import RVM_TRAIN_PRESETS, RVMConfig

TRAINING_SCRIPT = "scripts/train_tiny_models.sh"
RUNS_DIR = "runs/tiny"  # where the script's runs go (its $RUNS)
ZOO_FOLDER = "model_zoo"  # the zoo folder of the repository (the script's $ZOO)

# Options every recipe of a command shares (a recipe's own ``options`` come after and win).
SHARED_OPTIONS = {
    "train": {"data": "synthetic", "synthetic_clips": 64, "log_steps": 10, "report_to": "none", "quiet": True},
    "finetune": {"report_to": "none", "quiet": True},
}
# `rep4d train --method` -> (config class, size presets) of the model it trains (the distilled student is a 4DS).
METHOD_CONFIGS = {
    "4ds": (FourDSConfig, FOURDS_TRAIN_PRESETS),
    "distill": (FourDSConfig, FOURDS_TRAIN_PRESETS),
    "rvm": (RVMConfig, RVM_TRAIN_PRESETS),
    "moog": (MooGConfig, MOOG_TRAIN_PRESETS),
}


@dataclass(frozen=True)
class ZooModel:
    """One folder of ``model_zoo/`` and how it is trained: ``rep4d {command} {arguments()}``.

    Args:
        name: folder name under ``model_zoo/``.
        training: the argument of ``scripts/train_tiny_models.sh`` that trains it.
        demo_step: the ``rep4d demo`` step it serves (a key of the demo summary's ``models``).
        model_class: the ``rep4d.modeling`` class that loads the folder.
        description: what it is, for its card.
        command: the ``rep4d`` subcommand that trains it: ``train`` (pretraining; the script publishes ``final/`` and
            ``metrics.csv``) or ``finetune`` (a readout; the script publishes the run folder and its report).
        method: ``rep4d train --method`` / ``rep4d finetune --task``.
        preset: ``rep4d train --model-preset`` / ``rep4d finetune --backbone``.
        max_steps, learning_rate, warmup_steps, batch_size, seed: the optimisation.
        config: ``rep4d train --config KEY=VALUE``: what differs from the preset.
        teacher: ``rep4d train --teacher``: the zoo folder the student learns from (trained before it).
        processor_from: a readout folder gets the video processor of this zoo folder.
        options: every other flag (``name`` -> value; ``True`` is a bare flag, a dict is written as JSON), after
            :data:`SHARED_OPTIONS`.
        default: trained by ``bash scripts/train_tiny_models.sh`` without arguments (else on request).
    """

    name: str
    training: str
    demo_step: str
    model_class: str
    description: str
    command: str
    method: str
    preset: str
    max_steps: int
    learning_rate: float
    warmup_steps: int
    batch_size: int
    seed: int = 0
    config: dict = field(default_factory=dict)
    teacher: str | None = None
    processor_from: str | None = None
    options: dict = field(default_factory=dict)
    default: bool = True

    @property
    def training_command(self) -> str:
        """The command that reproduces the folder, from the repository root."""
        return f"bash {TRAINING_SCRIPT} {self.training}"

    def arguments(self, runs: str = RUNS_DIR, zoo: str = ZOO_FOLDER) -> list[str]:
        """The arguments after ``rep4d``: the subcommand and its flags (``--output {runs}/{training}``)."""
        names = {"train": ("--method", "--model-preset"), "finetune": ("--task", "--backbone")}[self.command]
        arguments = [self.command, names[0], self.method, names[1], self.preset, "--output",
                     f"{runs}/{self.training}"]
        if self.teacher:
            arguments += ["--teacher", f"{zoo}/{self.teacher}"]
        for key, value in self.config.items():
            arguments += ["--config", f"{key}={json.dumps(value)}"]
        options = {**SHARED_OPTIONS[self.command], **self.options, "batch_size": self.batch_size,
                   "max_steps": self.max_steps, "learning_rate": self.learning_rate,
                   "warmup_steps": self.warmup_steps, "seed": self.seed}
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                arguments.append(flag)
            elif value is not False and value is not None:
                arguments += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
        return arguments

    def command_line(self, runs: str = RUNS_DIR, zoo: str = ZOO_FOLDER) -> str:
        """``rep4d train ...`` / ``rep4d finetune ...`` as one shell line (quoted where needed)."""
        return shlex.join(["rep4d", *self.arguments(runs, zoo)])

    def folder(self, zoo_dir: str | Path = ZOO_DIR) -> Path | None:
        """The model folder when it is present in ``zoo_dir``, else None."""
        folder = Path(zoo_dir) / self.name
        return folder if (folder / "config.json").is_file() else None


ZOO_MODELS: dict[str, ZooModel] = {
    model.name: model
    for model in [
        ZooModel(
            "4ds-tiny", "4ds", "4ds", "FourDSForPreTraining",
            "4DS SimpleMAE (95% tubelet masking, pixel decoder) trained on 8x32x32 synthetic clips",
            command="train", method="4ds", preset="tiny", max_steps=1500, learning_rate=2e-3, warmup_steps=50,
            batch_size=8, options={"synthetic_clips": 256},
        ),
        # The student learns from 4ds-tiny (trained first); its width is also the demo's fallback student's.
        ZooModel(
            "4ds-tiny-dist", "distill", "4ds_distilled", "FourDSModel",
            "4DS student distilled from 4ds-tiny (L1 on two teacher layers through linear adapters, dropped when "
            "saved)",
            command="train", method="distill", preset="tiny", max_steps=150, learning_rate=2e-3, warmup_steps=15,
            batch_size=8, teacher="4ds-tiny",
            config={"hidden_size": 48, "num_attention_heads": 3, "intermediate_size": 192},
        ),
        ZooModel(
            "rvm-tiny", "rvm", "rvm", "RVMForMaskedReconstruction",
            "RVM asymmetric masked reconstruction (recurrent sources, 95%-masked targets) on 32x32 synthetic clips",
            command="train", method="rvm", preset="tiny", max_steps=100, learning_rate=2e-3, warmup_steps=10,
            batch_size=8,
        ),
        # MooG logs every 2 steps: its short run drops from ~0.3 within the first 10 steps, which a 10-step log
        # would not show.
        ZooModel(
            "moog-tiny", "moog", "moog", "MooGForNextFramePrediction",
            "MooG trained for next-frame prediction (8-frame unroll) on 32x32 synthetic clips",
            command="train", method="moog", preset="tiny", max_steps=50, learning_rate=2e-3, warmup_steps=5,
            batch_size=4, options={"log_steps": 2},
        ),
        # End to end (backbone learning rate x1) from a random 4-layer 4DS, one query per track and 2-frame chunk,
        # 2000 clips: the recipe of benchmarks/bench_readouts.py that beats "tracks stay at the query" (frozen
        # features never do, docs/READOUT_EVIDENCE.md). Readout: learned feature position embedding, 6 Fourier bands,
        # query-point features. The certainty loss is off (weight 0: the logit keeps its +2 bias, so "occluded" is
        # the visibility logit alone; the certainty target, within 3 px at 32x32, is met by few points).
        ZooModel(
            "4ds-points", "4ds-points", "point_tracking", "ReadoutForPointTracking",
            "attention point-tracking readout trained end to end with a small 4DS backbone on synthetic tracks",
            command="finetune", method="points", preset="random:4ds-mini", max_steps=3000, learning_rate=3e-3,
            warmup_steps=40, batch_size=16, processor_from="4ds-tiny", default=False,
            options={
                "data": "synthetic:2000,num_points=32,seed=0", "num_frames": 8, "resolution": 32, "end_to_end": True,
                "backbone_lr_scale": 1.0, "readout_width": 64, "readout_heads": 4, "logging_steps": 100,
                "eval_steps": 1000,
                "readout_overrides": {
                    "backbone_feature_layer": 1, "feature_position_embedding": True, "num_fourier_bands": 6,
                    "point_certainty_threshold": 24.0, "point_certainty_loss_weight": 0.0,
                    "point_query_features": True, "point_offset_scale": 0.1, "point_frames_per_query": 2,
                },
            },
        ),
    ]
}

# demo step -> the zoo model serving it
DEMO_MODELS: dict[str, ZooModel] = {model.demo_step: model for model in ZOO_MODELS.values()}


# The presets of `rep4d demo` --------------------------------------------------------------------------------------

DEMO_NUM_FRAMES = 8  # frames of the synthetic clip
DEMO_RESOLUTION = (64, 64)  # (height, width) of the synthetic clip
DEMO_NUM_POINTS = 8  # ground-truth point tracks of the synthetic clip
DEMO_GRID_TOKENS = 512  # feature-grid cells of the demo's label propagation (the DAVIS protocol uses 1650): CPU seconds


def demo_fallback_config(step: str):
    """The config of the small model ``rep4d demo`` initialises at random for ``step`` when its zoo folder is missing:
    the zoo model's own size (its recipe's preset and ``--config`` overrides). None for a readout step, whose random
    head sits on the backbone of the reconstruction step (:func:`demo_fallback_readout`)."""
    zoo_model = DEMO_MODELS[step]
    if zoo_model.command != "train":
        return None
    config_class, presets = METHOD_CONFIGS[zoo_model.method]
    return config_class(**{**presets[zoo_model.preset], **zoo_model.config})


def demo_fallback_readout(step: str = "point_tracking") -> dict:
    """ReadoutConfig fields of the random readout head the demo uses when the zoo lacks ``step``'s folder: the width
    and heads of that folder's recipe."""
    options = DEMO_MODELS[step].options
    return {"readout_num_params": options["readout_width"], "readout_num_heads": options["readout_heads"]}


def script_lines(names: list[str], runs: str = RUNS_DIR, zoo: str = ZOO_FOLDER) -> list[str]:
    """What ``scripts/train_tiny_models.sh`` reads: one line per recipe (the ``training`` names given, else every
    default one, in table order), fields separated by the ASCII unit separator: training name, folder, command,
    processor_from (or empty), then the arguments after ``rep4d``."""
    by_training = {model.training: model for model in ZOO_MODELS.values()}
    unknown = [name for name in names if name not in by_training]
    if unknown:
        raise ValueError(f"unknown zoo model {', '.join(unknown)}; choose from {', '.join(by_training)}")
    chosen = [by_training[name] for name in names] or [m for m in ZOO_MODELS.values() if m.default]
    return ["\x1f".join([m.training, m.name, m.command, m.processor_from or "", *m.arguments(runs, zoo)])
            for m in chosen]


if __name__ == "__main__":  # python -m rep4d.configuration.zoo_recipes [--runs DIR] [--zoo DIR] [NAME...]
    import argparse

    parser = argparse.ArgumentParser(description="print the zoo recipes for scripts/train_tiny_models.sh")
    parser.add_argument("names", nargs="*")
    parser.add_argument("--runs", default=RUNS_DIR)
    parser.add_argument("--zoo", default=ZOO_FOLDER)
    args = parser.parse_args()
    try:
        print("\n".join(script_lines(args.names, args.runs, args.zoo)))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
