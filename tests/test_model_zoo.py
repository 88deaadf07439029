"""The embedded demo models (model_zoo/): every folder is described in rep4d.configuration.zoo_recipes.ZOO_MODELS
(with its training recipe, which scripts/train_tiny_models.sh runs and which trained the shipped weights), loads with
its class, shipped a training log whose loss went down, and has an honest, up-to-date card generated from the one
template that names its exact training command; `rep4d demo` uses the zoo folders that exist and random models for the
others."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rep4d  # noqa: F401
import rep4d.modeling
from rep4d.cards import DEMO_NOTE, write_zoo_cards
from rep4d.cli import build_parser
from rep4d.configuration.zoo_recipes import (
    DEMO_MODELS,
    TRAINING_SCRIPT,
    ZOO_MODELS,
    demo_fallback_config,
    script_lines,
)
from rep4d.model_zoo import ZOO_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]
PRESENT = sorted(path.parent.name for path in ZOO_DIR.glob("*/config.json"))
SHIPPED = ["4ds-tiny", "4ds-tiny-dist", "moog-tiny", "rvm-tiny"]  # trained by scripts/train_tiny_models.sh


def _losses(folder: Path) -> list[float]:
    with (folder / "training_metrics.csv").open() as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def test_zoo_ships_the_tiny_models_and_every_folder_is_described():
    assert set(SHIPPED) <= set(PRESENT), f"missing zoo folders: run bash scripts/train_tiny_models.sh ({PRESENT})"
    assert set(PRESENT) <= set(ZOO_MODELS), "describe every model_zoo folder in configuration/zoo_recipes.py"
    assert set(DEMO_MODELS) == {"moog", "4ds", "4ds_distilled", "rvm", "point_tracking"}
    for name in PRESENT:
        size = sum(path.stat().st_size for path in (ZOO_DIR / name).iterdir())
        assert size < 10 * 2**20, f"{name} is {size / 2**20:.1f} MB: zoo models must stay a few MB"


@pytest.mark.parametrize("name", SHIPPED)
def test_zoo_model_loads_and_its_training_loss_went_down(name):
    folder = ZOO_MODELS[name].folder()
    model = getattr(rep4d.modeling, ZOO_MODELS[name].model_class).from_pretrained(folder)
    assert type(model).__name__ == json.loads((folder / "config.json").read_text())["architectures"][0]
    losses = _losses(folder)
    assert len(losses) >= 5
    # Compare the first and last thirds of the log (single logged values are noisy for masked objectives).
    third = max(1, len(losses) // 3)
    first, last = sum(losses[:third]) / third, sum(losses[-third:]) / third
    assert last < 0.85 * first, f"{name}: loss {first:.4g} -> {last:.4g}"


@pytest.mark.slow  # one `import rep4d` in a subprocess (registers every class): ~10-20 s on 2 cores
def test_the_training_script_runs_the_recipes_of_the_table():
    # scripts/train_tiny_models.sh takes every command from configuration/zoo_recipes.py (DRY_RUN=1 prints them).
    names = [model.training for model in ZOO_MODELS.values()]
    result = subprocess.run(["bash", str(REPO_ROOT / TRAINING_SCRIPT), *names], capture_output=True, text=True,
                            env={**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable}, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"rep4d {' '.join(model.arguments())}" for model in ZOO_MODELS.values()]
    # Without names: the default recipes (4ds-points only on request), the teacher before its student.
    default = [line.split("\x1f")[0] for line in script_lines([])]
    assert default == ["4ds", "distill", "rvm", "moog"]
    assert "--teacher\x1fmodel_zoo/4ds-tiny" in script_lines(["distill"])[0]
    with pytest.raises(ValueError, match="unknown zoo model nope; choose from 4ds, distill"):
        script_lines(["nope"])


@pytest.mark.parametrize("name", list(ZOO_MODELS))
def test_recipe_is_a_command_line_of_the_rep4d_cli(name):
    # The recorded arguments parse with the real `rep4d train` / `rep4d finetune` flags to the recipe's values.
    recipe = ZOO_MODELS[name]
    args = build_parser().parse_args(recipe.arguments(runs="R", zoo="Z"))
    assert args._command.name == recipe.command and args.output == f"R/{recipe.training}"
    assert (args.max_steps, args.learning_rate, args.warmup_steps, args.batch_size, args.seed) == (
        recipe.max_steps, recipe.learning_rate, recipe.warmup_steps, recipe.batch_size, recipe.seed)
    if recipe.command == "train":
        assert (args.method, args.model_preset, args.config) == (
            recipe.method, recipe.preset, [f"{key}={json.dumps(value)}" for key, value in recipe.config.items()])
        assert args.teacher == (f"Z/{recipe.teacher}" if recipe.teacher else None)
    else:
        assert (args.task, args.backbone) == (recipe.method, recipe.preset)
        assert args.readout_overrides == recipe.options["readout_overrides"]  # parsed as JSON


@pytest.mark.parametrize("name", PRESENT)
def test_shipped_folder_was_trained_by_its_recipe(name):
    # The weights in model_zoo/ come from the recorded recipe: same steps, log cadence and model size.
    recipe = ZOO_MODELS[name]
    config = json.loads((ZOO_DIR / name / "config.json").read_text())
    if recipe.command == "train":
        with (ZOO_DIR / name / "training_metrics.csv").open() as handle:
            steps = [int(row["step"]) for row in csv.DictReader(handle)]
        log_steps = recipe.options.get("log_steps", 10)
        assert steps[0] == log_steps and steps[-1] == recipe.max_steps, steps
        # The demo's fallback for this step is the same architecture, untrained.
        fallback = demo_fallback_config(recipe.demo_step).to_dict()
        for key, value in recipe.config.items():
            assert config[key] == value == fallback[key], key
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "image_size", "num_frames"):
            if key in config:
                assert config[key] == fallback[key], key
    else:
        overrides = recipe.options["readout_overrides"]
        assert {key: config[key] for key in overrides} == overrides
        assert (config["readout_num_params"], config["readout_num_heads"]) == (
            recipe.options["readout_width"], recipe.options["readout_heads"])
        assert config["task"] == recipe.method


def test_zoo_cards_are_generated_up_to_date_and_honest(tmp_path):
    zoo = tmp_path / "zoo"
    for name in PRESENT:
        shutil.copytree(ZOO_DIR / name, zoo / name, ignore=shutil.ignore_patterns("README.md"))
    written = write_zoo_cards(zoo)
    assert sorted(path.parent.name for path in written) == PRESENT
    for path in written:
        name = path.parent.name
        card = path.read_text()
        committed = ZOO_DIR / name / "README.md"
        assert committed.is_file() and committed.read_text() == card, \
            f"model_zoo/{name}/README.md is stale: run python model_cards/generate.py --zoo"
        assert "Trained on synthetic data for demonstration; convert the released checkpoints for real use" in card
        assert DEMO_NOTE in card and "license: apache-2.0" in card and "- demo" in card
        zoo_model = ZOO_MODELS[name]
        # The exact command: the script's, then what it runs (quoted for a shell).
        assert f"bash scripts/train_tiny_models.sh {zoo_model.training}\n# which runs:\n" in card
        assert zoo_model.command_line() in card and zoo_model.command_line().startswith(f"rep4d {zoo_model.command} ")
        if (zoo / name / "training_metrics.csv").is_file():
            losses = _losses(zoo / name)
            assert f"{losses[0]:.4g}" in card and f"{losses[-1]:.4g}" in card
        else:  # a readout: its held-out metrics against the trivial baseline
            report = json.loads((zoo / name / "eval_metrics.json").read_text())
            assert "trivial baseline" in card and ("does NOT beat" in card) != report["beats_baseline"]
        assert "trust_remote_code" not in card, "zoo folders carry no remote code"
        snippet = re.search(r"```python\n(.*?)```", card, flags=re.DOTALL).group(1)
        exec(compile(snippet, f"{name}/README.md", "exec"), {})  # the usage snippet runs


def test_zoo_cards_refuse_an_undescribed_folder(tmp_path):
    shutil.copytree(ZOO_DIR / "4ds-tiny", tmp_path / "mystery-model")
    with pytest.raises(ValueError, match="mystery-model.*ZOO_MODELS"):
        write_zoo_cards(tmp_path)


def _run_demo(tmp_path, zoo: Path) -> dict:
    from rep4d.cli import main as cli_main

    out = tmp_path / "demo"
    assert cli_main(["demo", "--output", str(out), "--num-frames", "8", "--resolution", "32", "--zoo", str(zoo), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == set(DEMO_MODELS)
    for name in summary["files"]:
        assert (out / name).stat().st_size > 0, name
    assert (out / "summary.md").read_text().startswith("# rep4d demo")
    return summary


@pytest.mark.slow
def test_demo_uses_the_zoo_folders_present_and_random_models_for_the_rest(tmp_path):
    # A zoo with two of the models: those two steps must use them, every other step a labelled random model.
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    used = {"4ds-tiny", "rvm-tiny"}
    for name in used:
        (zoo / name).symlink_to(ZOO_DIR / name, target_is_directory=True)
    summary = _run_demo(tmp_path, zoo)
    for step, zoo_model in DEMO_MODELS.items():
        text = summary["models"][step]
        if zoo_model.name in used:
            assert text.startswith(f"model_zoo/{zoo_model.name} "), text
            assert step not in summary["random_models"]
        else:
            assert text.startswith("RANDOMLY INITIALISED"), text
            assert f"no model_zoo/{zoo_model.name}" in text and step in summary["random_models"]
    assert "RANDOMLY INITIALISED" in summary["note"]
    # The trained 4DS reconstructs the masked clip better than a random decoder would (mean image error ~0.1).
    assert summary["results"]["synthetic/masked_reconstruction"]["value"] < 0.05


@pytest.mark.slow
def test_demo_with_the_shipped_zoo_reports_no_random_model(tmp_path):
    summary = _run_demo(tmp_path, ZOO_DIR)
    for step, zoo_model in DEMO_MODELS.items():
        if zoo_model.folder() is not None:
            assert summary["models"][step].startswith(f"model_zoo/{zoo_model.name} ")
    assert set(summary["random_models"]) == {step for step, m in DEMO_MODELS.items() if m.folder() is None}
    if not summary["random_models"]:
        assert "RANDOMLY" not in summary["note"] and "embedded demo models" in summary["note"]


# Held-out metrics against the trivial baselines (benchmarks/bench_zoo.py --write-zoo) ---------------------------------

BENCH_ZOO = REPO_ROOT / "benchmarks" / "bench_zoo.py"
EVAL_FIELDS = {"metric", "value", "baseline", "baseline_value", "lower_is_better", "beats_baseline", "clips_better",
               "num_eval_clips", "eval_seed", "command", "clip_values", "clip_baseline_values"}


def _bench_zoo():
    import importlib.util
    import sys

    if "bench_zoo" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_zoo", BENCH_ZOO)
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_zoo"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["bench_zoo"]


def _eval_rows(name: str) -> list[dict]:
    report = json.loads((ZOO_DIR / name / "eval_metrics.json").read_text())
    return report["rows"] if "rows" in report else [report]


@pytest.mark.parametrize("name", PRESENT)
def test_zoo_eval_metrics_are_consistent(name):
    # Every zoo folder carries its held-out score next to its trivial baseline, with a verdict that follows from the
    # two numbers (a tie does not beat the baseline) and the command that measured it on seeds not used in training.
    assert (ZOO_DIR / name / "eval_metrics.json").is_file(), f"run python benchmarks/bench_zoo.py --write-zoo ({name})"
    report = json.loads((ZOO_DIR / name / "eval_metrics.json").read_text())
    rows = _eval_rows(name)
    for row in rows:
        assert EVAL_FIELDS <= set(row), f"{name}: missing {EVAL_FIELDS - set(row)}"
        value, baseline = row["value"], row["baseline_value"]
        assert row["beats_baseline"] == (value < baseline if row["lower_is_better"] else value > baseline), row
        assert row["num_eval_clips"] == len(row["clip_values"]) == len(row["clip_baseline_values"]) >= 8
        assert value == pytest.approx(sum(row["clip_values"]) / len(row["clip_values"]), rel=1e-6)
        assert baseline == pytest.approx(sum(row["clip_baseline_values"]) / row["num_eval_clips"], rel=1e-6)
        wins = [(v < b) if row["lower_is_better"] else (v > b)
                for v, b in zip(row["clip_values"], row["clip_baseline_values"])]
        assert row["clips_better"] == pytest.approx(sum(wins) / len(wins))
        assert row["eval_seed"] != 0, "seed 0 rendered the training clips"
        assert row["command"].startswith("OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_zoo.py")
        assert f"--models {name} " in row["command"] and f"--clips {row['num_eval_clips']} " in row["command"]
        assert row["baseline"] and row["metric"]
    assert report["beats_baseline"] == all(row["beats_baseline"] for row in rows)


def test_bench_zoo_remeasures_the_recorded_clips():
    # The shipped 4ds-tiny weights and the bench reproduce the recorded per-clip numbers of the first two clips.
    bench = _bench_zoo()
    (recorded,) = _eval_rows("4ds-tiny")
    model = bench._load(ZOO_DIR, "4ds-tiny")
    (row,) = bench.BENCHES["4ds-tiny"](model, recorded["eval_seed"], 2)
    assert row.clip_values == pytest.approx(recorded["clip_values"][:2], rel=1e-4, abs=1e-6)
    assert row.clip_baseline_values == pytest.approx(recorded["clip_baseline_values"][:2], rel=1e-4, abs=1e-6)


def test_bench_zoo_baseline_is_what_a_mean_colour_model_scores():
    # Fairness of the masked-reconstruction baseline: a "model" that paints every hidden tubelet with the mean colour
    # of the pixels it was shown scores exactly the baseline, so it does not beat it; copying the truth does.
    from types import SimpleNamespace

    import torch

    from rep4d.modeling import FourDSForPreTraining

    bench = _bench_zoo()
    config = FourDSForPreTraining.config_class.from_pretrained(ZOO_DIR / "4ds-tiny")
    grid = [size // tube for size, tube in zip((config.num_frames, *config.image_size), config.tubelet_size)]

    class PaintModel:
        def __init__(self, cheat: bool):
            self.config, self.cheat = config, cheat

        def __call__(self, frames, generator=None):
            num_tokens = grid[0] * grid[1] * grid[2]
            mask = torch.zeros(num_tokens, dtype=torch.bool)
            mask[torch.randperm(num_tokens, generator=generator)[: int(num_tokens * config.mask_ratio)]] = True
            hidden = mask.reshape(grid)
            for axis, size in enumerate(config.tubelet_size):
                hidden = hidden.repeat_interleave(size, dim=axis)
            hidden = hidden[:, None].expand_as(frames[0])
            mean = frames[0].permute(0, 2, 3, 1)[~hidden[:, 0]].mean(0)[None, :, None, None]
            painted = frames if self.cheat else torch.where(hidden, mean.expand_as(frames[0]), frames[0])[None]
            return SimpleNamespace(reconstruction=painted, mask=mask[None].float())

    (row,) = [bench.bench_fourds_reconstruction(PaintModel(cheat=False), 1000, 2)]
    assert row.value == pytest.approx(row.baseline_value, rel=1e-5) and not row.beats_baseline
    (row,) = [bench.bench_fourds_reconstruction(PaintModel(cheat=True), 1000, 2)]
    assert row.value == 0 and row.beats_baseline
