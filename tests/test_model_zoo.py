"""The embedded demo models (model_zoo/): every folder is described in rep4d.model_zoo.ZOO_MODELS, loads with its
class, shipped a training log whose loss went down, and has an honest, up-to-date card generated from the one template
that names its training command; `rep4d demo` uses the zoo folders that exist and random models for the others."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

import rep4d  # noqa: F401
import rep4d.modeling
from rep4d.model_zoo import DEMO_MODELS, ZOO_DIR, ZOO_MODELS
from rep4d.publishing import DEMO_NOTE, write_zoo_cards, zoo_training_commands

REPO_ROOT = Path(__file__).resolve().parents[1]
PRESENT = sorted(path.parent.name for path in ZOO_DIR.glob("*/config.json"))
SHIPPED = ["4ds-tiny", "4ds-tiny-dist", "moog-tiny", "rvm-tiny"]  # trained by scripts/train_tiny_models.sh


def _losses(folder: Path) -> list[float]:
    with (folder / "training_metrics.csv").open() as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def test_zoo_ships_the_tiny_models_and_every_folder_is_described():
    assert set(SHIPPED) <= set(PRESENT), f"missing zoo folders: run bash scripts/train_tiny_models.sh ({PRESENT})"
    assert set(PRESENT) <= set(ZOO_MODELS), "describe every model_zoo folder in rep4d.model_zoo.ZOO_MODELS"
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


def test_training_commands_are_read_from_the_script():
    commands = zoo_training_commands()
    for method in ("4ds", "distill", "rvm", "moog"):
        command = commands[method]
        assert command.startswith(f"python -m rep4d.training.train --method {method} --data synthetic"), command
        assert "--max-steps" in command and "${" not in command and "$" not in command, command


def test_zoo_cards_are_generated_up_to_date_and_honest(tmp_path):
    zoo = tmp_path / "zoo"
    for name in PRESENT:
        shutil.copytree(ZOO_DIR / name, zoo / name, ignore=shutil.ignore_patterns("README.md"))
    written = write_zoo_cards(zoo)
    assert sorted(path.parent.name for path in written) == PRESENT
    commands = zoo_training_commands()
    for path in written:
        name = path.parent.name
        card = path.read_text()
        committed = ZOO_DIR / name / "README.md"
        assert committed.is_file() and committed.read_text() == card, \
            f"model_zoo/{name}/README.md is stale: run python model_cards/generate.py --zoo"
        assert "Trained on synthetic data for demonstration; convert the released checkpoints for real use" in card
        assert DEMO_NOTE in card and "license: apache-2.0" in card and "- demo" in card
        zoo_model = ZOO_MODELS[name]
        assert f"bash scripts/train_tiny_models.sh {zoo_model.training}" in card
        if zoo_model.training in commands:
            assert commands[zoo_model.training] in card
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
