"""``rep4d benchmark readouts`` end to end on tiny generated datasets: training, evaluation, resuming, tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_readout_datasets import make_kinetics, make_realestate10k, make_scannet, make_ssv2, make_waymo

from rep4d.training.readout_benchmark import (
    PUBLISHED_FROZEN,
    ReadoutBenchmarkSettings,
    markdown_tables,
    radar_scores,
    run_readout_benchmark,
)

TINY = ["--num-frames", "4", "--resolution", "32", "--readout-width", "32", "--readout-heads", "2", "--batch-size",
        "2", "--learning-rate", "1e-3", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("readout_data")
    make_ssv2(root / "ssv2")
    make_kinetics(root / "kinetics700_2020")
    make_scannet(root / "scannet")
    make_realestate10k(root / "realestate10k")
    make_waymo(root / "waymo_open")
    return root


def test_benchmark_readouts_end_to_end_and_resume(data_root, tmp_path, capsys):
    from PIL import Image

    from rep4d.cli import main

    output = tmp_path / "out"
    command = ["benchmark", "readouts", "--backbone", "random:4ds-tiny", "--tasks", "ssv2,k700-2020,scannet,re10k",
               "--data-root", str(data_root), "--output", str(output), "--max-steps", "30", "--json", *TINY]
    assert main(command) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["computed"] == ["ssv2", "k700-2020", "scannet", "re10k"] and report["skipped"] == []
    tasks = report["tasks"]
    # Red vs blue clips: 30 steps of a readout on frozen random features separate them; chance is 0.5.
    assert tasks["ssv2"]["value"] == 1.0 and tasks["ssv2"]["baseline"] == 0.5
    assert tasks["ssv2"]["table_value"] == 100.0
    assert tasks["k700-2020"]["value"] == 1.0
    k700 = json.loads((output / "runs" / "random-4ds-tiny__frozen" / "k700-2020" / "result.json").read_text())
    assert k700["num_eval_clips"] == 14 and k700["eval"]["eval_samples_per_second"] > 0  # 2 videos x 7 clips
    for name in ("scannet", "re10k"):
        assert np.isfinite(tasks[name]["value"]) and np.isfinite(tasks[name]["baseline"])
    run_dir = output / "runs" / "random-4ds-tiny__frozen"
    result = json.loads((run_dir / "scannet" / "result.json").read_text())
    assert result["metric"] == "abs_rel" and result["table_value"] == pytest.approx(10 * result["value"])
    assert result["preset"]["test_procedure"]["valid_depth_range_m"] == [0.001, 10.0]
    assert (run_dir / "ssv2" / "readout" / "config.json").is_file()
    markdown = (output / "results.md").read_text()
    assert "| 4DS-B-dist-e | 91 | 0.34 | 81.40 | 1.21 | 76.30 | 60.30 | 46.40 |" in markdown
    assert "**ours: random:4ds-tiny**" in markdown and "| baseline (random:4ds-tiny data)" in markdown
    tables = json.loads((output / "results.json").read_text())
    assert tables["published"]["frozen_table2"]["4DS-e"]["scannet"] == 0.95
    assert {row["task"] for row in tables["runs"]} == {"ssv2", "k700-2020", "scannet", "re10k"}
    assert Image.open(output / "radar.png").size[0] == 640

    # A re-run reads every finished task back instead of training it.
    assert main(command) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["computed"] == [] and again["skipped"] == ["ssv2", "k700-2020", "scannet", "re10k"]
    assert again["tasks"] == tasks
    # The same folder with other settings is refused, not mixed.
    changed = [arg if arg != "30" else "31" for arg in command]
    assert main(changed) == 2
    captured = capsys.readouterr()
    assert "other settings (max_steps)" in captured.out + captured.err


def test_benchmark_readouts_transformers_backbone_folder(data_root, tmp_path):
    from transformers import VideoMAEConfig, VideoMAEModel

    folder = tmp_path / "videomae-tiny"
    config = VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32,
                            num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    VideoMAEModel(config).save_pretrained(folder)
    settings = ReadoutBenchmarkSettings(
        backbone=str(folder), tasks=["waymo-open"], data_root=str(data_root), output_dir=str(tmp_path / "out"),
        max_steps=3, batch_size=2, num_frames=4, image_size=[32, 32], readout_num_params=32, readout_num_heads=2,
        use_cpu=True, progress=False)
    result = run_readout_benchmark(settings)
    row = result.results["waymo-open"]
    assert row["metric"] == "mean_iou" and 0.0 <= row["value"] <= 1.0 and 0.0 <= row["baseline"] <= 1.0
    assert row["backbone_parameters"] == sum(p.numel() for p in VideoMAEModel(config).parameters())
    assert (tmp_path / "out" / "runs" / "videomae-tiny__frozen" / "waymo-open" / "result.json").is_file()


def test_benchmark_readouts_command_on_a_pe_video_folder(data_root, tmp_path, capsys):
    # A transformers family through the command: PE's timm vision tower read frame by frame (tiny, random, offline).
    from PIL import Image
    from test_backbone_adapters import tiny_pe_video
    from transformers import AutoModel

    from rep4d.cli import main

    folder = tmp_path / "pe-video-tiny"
    AutoModel.from_config(tiny_pe_video()).save_pretrained(folder)
    output = tmp_path / "out"
    command = ["benchmark", "readouts", "--backbone", str(folder), "--tasks", "ssv2", "--data-root", str(data_root),
               "--output", str(output), "--frozen", "--max-steps", "30", "--json", *TINY,
               "--readout-option", "feature_position_embedding=true"]
    assert main(command) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    row = report["tasks"]["ssv2"]
    assert report["computed"] == ["ssv2"] and row["metric"] == "top1_accuracy" and row["baseline"] == 0.5
    assert row["value"] == 1.0 and row["beats_baseline"] is True  # red vs blue clips
    result = json.loads((output / "runs" / "pe-video-tiny__frozen" / "ssv2" / "result.json").read_text())
    assert result["settings"]["readout_options"] == {"feature_position_embedding": True}
    config = json.loads((output / "runs" / "pe-video-tiny__frozen" / "ssv2" / "readout" / "config.json").read_text())
    assert config["feature_position_embedding"] is True and config["backbone_config"]["model_type"] == "pe_video"
    assert "**ours: " + str(folder) + "**" in (output / "results.md").read_text()
    assert json.loads((output / "results.json").read_text())["runs"][0]["backbone"] == str(folder)
    assert Image.open(output / "radar.png").size[0] == 640
    # An unknown readout option is a one-line error (exit status 2), not a crash.
    assert main([*command[:-1], "feature_position_embeddings=true", "--output", str(tmp_path / "other")]) == 2
    assert "unknown readout option(s) feature_position_embeddings" in "".join(capsys.readouterr())


@pytest.mark.parametrize("mode", ["finetune", "frozen"])
def test_benchmark_readouts_without_feature_cache(data_root, tmp_path, mode, monkeypatch):
    # Fine-tuning, and frozen runs with --no-cache-features: the backbone runs on every batch, the clips are augmented.
    from rep4d.configuration.configuration_readout import ReadoutConfig
    from rep4d.training import readout_data, readout_datasets

    loads = []
    monkeypatch.setattr(readout_datasets.AugmentedSource, "_depth",
                        staticmethod(lambda clip, rng: loads.append(1) or clip))
    monkeypatch.setattr(readout_data.CachedFeatureDataset, "__init__", lambda *a, **k: pytest.fail("cached"))
    settings = ReadoutBenchmarkSettings(
        backbone="random:4ds-tiny", tasks=["scannet"], data_root=str(data_root), output_dir=str(tmp_path / "out"),
        mode=mode, cache_features=False, max_steps=3, batch_size=2, num_frames=4, image_size=[32, 32],
        readout_num_params=32, readout_num_heads=2, use_cpu=True, progress=False)
    row = run_readout_benchmark(settings).results["scannet"]
    assert row["mode"] == mode and np.isfinite(row["value"]) and loads  # augmented training clips
    config = ReadoutConfig.from_pretrained(tmp_path / "out" / "runs" / f"random-4ds-tiny__{mode}" / "scannet" /
                                           "readout")
    assert config.freeze_backbone == (mode == "frozen")
    if mode == "finetune":
        assert config.backbone_learning_rate_scale == 0.003 and row["preset"]["finetune"]["warmup_steps"] == 3000


def test_tables_and_radar_scores_on_given_rows():
    rows = [
        {"backbone": "b", "mode": "frozen", "task": "scannet", "metric": "abs_rel", "value": 0.1, "baseline": 0.4,
         "table_value": 1.0, "table_baseline": 4.0, "greater_is_better": False, "beats_baseline": True,
         "learning_rate": 3e-4, "max_steps": 10, "num_train_clips": 2, "num_eval_clips": 2, "seconds": 1.0,
         "backbone_parameters": 2_000_000},
        {"backbone": "b", "mode": "frozen", "task": "ssv2", "metric": "top1_accuracy", "value": 0.6, "baseline": 0.5,
         "table_value": 60.0, "table_baseline": 50.0, "greater_is_better": True, "beats_baseline": True,
         "learning_rate": 3e-4, "max_steps": 10, "num_train_clips": 2, "num_eval_clips": 2, "seconds": 1.0,
         "backbone_parameters": 2_000_000},
    ]
    scores = radar_scores({row["task"]: row for row in rows})
    assert scores == {"scannet": pytest.approx(0.75), "ssv2": pytest.approx(0.6)}
    # A prediction no better than the trivial baseline scores 0 on a lower-is-better axis.
    assert radar_scores({"scannet": {**rows[0], "value": 0.5}})["scannet"] == 0.0
    markdown = markdown_tables(rows)
    assert "| **ours: b** | 2.00 |  |  | 1.00 |  | 60.00 |  |" in markdown
    assert len(PUBLISHED_FROZEN) == 19 and "End-to-end" not in markdown


def test_benchmark_readouts_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown readout task"):
        ReadoutBenchmarkSettings(backbone="random:4ds-tiny", tasks=["imagenet"], data_root=str(tmp_path))
    with pytest.raises(ValueError, match="frozen or finetune"):
        ReadoutBenchmarkSettings(backbone="random:4ds-tiny", tasks=["ssv2"], data_root=str(tmp_path), mode="linear")
    settings = ReadoutBenchmarkSettings(backbone="random:4ds-tiny", tasks=["scannet"], data_root=str(tmp_path),
                                        output_dir=str(tmp_path / "out"), progress=False)
    with pytest.raises(FileNotFoundError, match="scannet data folder"):
        run_readout_benchmark(settings)


@pytest.mark.slow
def test_benchmark_readouts_two_processes(data_root, tmp_path):
    # `accelerate launch` / torchrun on 2 CPU processes: DDP training, one writer for the result files.
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    output = tmp_path / "ddp"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               "-m", "rep4d", "benchmark", "readouts", "--backbone", "random:4ds-tiny", "--tasks", "ssv2",
               "--data-root", str(data_root), "--output", str(output), "--max-steps", "4", "--json", *TINY]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"output"')]
    assert len(reports) == 2 and all(report["computed"] == ["ssv2"] for report in reports)
    assert sum(bool(report["tables"]) for report in reports) == 1  # only rank 0 writes
    row = json.loads((output / "runs" / "random-4ds-tiny__frozen" / "ssv2" / "result.json").read_text())
    assert row["baseline"] == 0.5 and 0.0 <= row["value"] <= 1.0 and row["max_steps"] == 4
    assert not [p for p in output.rglob("*") if "partial" in p.name or p.name.endswith(".tmp")]
