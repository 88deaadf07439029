"""The pretraining loop (rep4d.training.train), its objectives, checkpoints and optimisation, and 4DS distillation:
short CPU runs on synthetic clips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open

import rep4d  # noqa: F401  (registers the Auto classes)
from rep4d.configuration.configuration_fourds import FOURDS_TEACHER_PRESETS
from rep4d.training.checkpointing import METRIC_COLUMNS, read_metrics
from rep4d.training.objectives import fourds_config
from rep4d.training.optimization import parameter_groups, warmup_cosine
from rep4d.training.train import parse_args, train

FAST = ["--quiet", "--report-to", "none", "--log-steps", "1"]


def run(tmp_path, name, *extra, **kwargs):
    argv = ["--data", "synthetic", "--output", str(tmp_path / name), "--synthetic-clips", "8", "--batch-size", "4",
            "--seed", "0", *FAST, *extra]
    return train(parse_args(argv))


def first_last_mean(losses, k=3):
    return float(np.mean(losses[:k])), float(np.mean(losses[-k:]))


def test_4ds_trains_logs_checkpoints_and_saves_automodel_folder(tmp_path):
    from transformers import AutoModel

    from rep4d.modeling.modeling_fourds import FourDSForPreTraining, FourDSModel

    result = run(tmp_path, "4ds", "--method", "4ds", "--max-steps", "16", "--warmup-steps", "2",
                 "--learning-rate", "2e-3", "--save-steps", "8")
    assert len(result.losses) == 16
    start, end = first_last_mean(result.losses)
    assert end < 0.7 * start, result.losses
    out = result.output
    rows = read_metrics(out / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 17))
    assert list(rows[0]) == METRIC_COLUMNS
    assert rows[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine to min_lr_ratio 0 at max_steps
    assert max(r["lr"] for r in rows) == pytest.approx(2e-3)
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-00000008", "checkpoint-00000016"]
    assert not list(out.glob(".tmp-*"))
    meta = json.loads((out / "checkpoint-00000008" / "meta.json").read_text())
    assert meta["step"] == 8 and meta["method"] == "4ds"
    assert (out / "checkpoint-00000008" / "model.safetensors").exists()
    model = AutoModel.from_pretrained(out / "final")
    assert isinstance(model, FourDSModel) and model.config.hidden_size == 64
    pretraining = FourDSForPreTraining.from_pretrained(out / "final")  # continue pretraining from final/
    assert torch.equal(pretraining.fourds.encoder.layers[0].mlp_norm.weight, model.encoder.layers[0].mlp_norm.weight)
    assert (out / "final" / "video_preprocessor_config.json").exists()


def test_tensorboard_and_gradient_options(tmp_path):
    result = run(tmp_path, "tb", "--method", "4ds", "--max-steps", "2", "--gradient-checkpointing",
                 "--gradient-accumulation-steps", "2", "--report-to", "tensorboard", "--no-final")
    assert result.final_dir is None and len(result.losses) == 2
    assert list((result.output / "logs").rglob("events.out.tfevents.*"))


def test_resume_reproduces_uninterrupted_run_bit_for_bit(tmp_path):
    common = ["--method", "4ds", "--max-steps", "8", "--gradient-accumulation-steps", "2", "--warmup-steps", "2",
              "--save-steps", "4", "--save-total-limit", "0"]
    full = run(tmp_path, "full", *common)
    resumed = run(tmp_path, "resumed", *common, "--resume-from", str(tmp_path / "full" / "checkpoint-00000004"))
    assert resumed.losses == full.losses[4:]  # exact float equality, step by step
    assert (tmp_path / "full/final/model.safetensors").read_bytes() == \
        (tmp_path / "resumed/final/model.safetensors").read_bytes()
    # Resuming in the same folder with "latest" keeps the metrics of the steps before the checkpoint.
    again = run(tmp_path, "full", *common[:3], "12", *common[4:], "--resume-from", "latest")
    rows = read_metrics(tmp_path / "full" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 13)) and len(again.losses) == 4


def test_epoch_end_closes_the_accumulation_window_and_resume_mid_epoch(tmp_path):
    # 6 clips at a per-device batch of 2: 3 micro-batches per epoch. With 2 accumulation steps an epoch is one step
    # of 2 micro-batches, then one of the last micro-batch alone (Accelerate syncs at the end of the dataloader).
    common = ["--method", "4ds", "--synthetic-clips", "6", "--max-steps", "5", "--gradient-accumulation-steps", "2",
              "--warmup-steps", "1", "--save-steps", "1", "--save-total-limit", "0", "--no-final"]
    full = run(tmp_path, "full", *common)
    metas = [json.loads((tmp_path / "full" / f"checkpoint-{step:08d}" / "meta.json").read_text())
             for step in range(1, 6)]
    assert [(meta["epoch"], meta["batches_in_epoch"]) for meta in metas] == [(0, 2), (0, 3), (1, 2), (1, 3), (2, 2)]
    assert [int(row["epoch"]) for row in read_metrics(tmp_path / "full" / "metrics.csv")] == [0, 0, 1, 1, 2]
    resumed = run(tmp_path, "resumed", *common, "--resume-from", str(tmp_path / "full" / "checkpoint-00000003"))
    assert resumed.losses == full.losses[3:]  # exact: resumed after 2 of the 3 micro-batches of epoch 1


def test_distillation_trains_student_and_saves_plain_fourds(tmp_path):
    from transformers import AutoModel

    from rep4d.modeling.modeling_fourds import FourDSModel

    # A teacher saved to disk, as a real run passes --teacher PATH.
    teacher = FourDSModel(fourds_config("tiny", {}, FOURDS_TEACHER_PRESETS))
    teacher.save_pretrained(tmp_path / "teacher")
    result = run(tmp_path, "dist", "--method", "distill", "--teacher", str(tmp_path / "teacher"), "--max-steps", "12",
                 "--warmup-steps", "2", "--learning-rate", "3e-3")
    start, end = first_last_mean(result.losses)
    assert end < 0.8 * start, result.losses
    with safe_open(str(result.final_dir / "model.safetensors"), "pt") as handle:
        keys = list(handle.keys())
    assert keys and not any("adapter" in k or "teacher" in k or k.startswith("student.") for k in keys)
    student = AutoModel.from_pretrained(result.final_dir)
    assert isinstance(student, FourDSModel) and student.config.hidden_size == 64
    # The teacher did not change during training.
    reloaded = FourDSModel.from_pretrained(tmp_path / "teacher")
    assert torch.equal(reloaded.embeddings.position_embeddings, teacher.embeddings.position_embeddings)


def test_distillation_module_matches_layers_with_l1_and_freezes_teacher():
    from rep4d.modeling.modeling_fourds import FourDSModel
    from rep4d.training.distillation import FourDSDistillationModel

    student = FourDSModel(fourds_config("tiny", {}))
    teacher = FourDSModel(fourds_config("tiny", {}, FOURDS_TEACHER_PRESETS))
    module = FourDSDistillationModel(student, teacher).train()
    assert module.student_layers == [2, 4] and module.teacher_layers == [3, 6]
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    video = torch.rand(2, 8, 3, 32, 32)
    out = module(video)
    s_states = student(video, output_hidden_states=True).hidden_states
    t_states = teacher(video, output_hidden_states=True).hidden_states
    expected = torch.stack([(module.adapters[i](s_states[s]) - t_states[t]).abs().mean()
                            for i, (s, t) in enumerate(zip(module.student_layers, module.teacher_layers))])
    torch.testing.assert_close(out.layer_losses, expected)
    torch.testing.assert_close(out.loss, expected.mean())
    out.loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert module.adapters[0].weight.grad is not None
    assert set(module.student_state_dict()) == set(student.state_dict())
    with pytest.raises(ValueError, match="same clip"):
        FourDSDistillationModel(student, FourDSModel(fourds_config("tiny", {"num_frames": 4})))


def test_rvm_trains_and_saves(tmp_path):
    from transformers import AutoModel

    from rep4d.modeling.modeling_rvm import RVMModel

    result = run(tmp_path, "rvm", "--method", "rvm", "--max-steps", "10", "--warmup-steps", "2",
                 "--learning-rate", "2e-3", "--clip-frames", "6", "--rvm-source-frames", "2",
                 "--rvm-target-frames", "2")
    start, end = first_last_mean(result.losses)
    assert end < 0.8 * start, result.losses
    assert isinstance(AutoModel.from_pretrained(result.final_dir), RVMModel)


def test_rvm_objective_splits_sources_targets_with_deltas():
    from rep4d.configuration.configuration_rvm import RVM_TRAIN_PRESETS, RVMConfig
    from rep4d.modeling.modeling_rvm import RVMForMaskedReconstruction
    from rep4d.training.objectives import RVMPretrainingObjective

    model = RVMForMaskedReconstruction(RVMConfig(**RVM_TRAIN_PRESETS["tiny"]))
    calls = {}

    def spy(module, args, kwargs):
        calls.update(kwargs)

    model.register_forward_pre_hook(spy, with_kwargs=True)
    objective = RVMPretrainingObjective(model, 3, 2, clip_frames=8)
    video = torch.rand(2, 8, 3, 32, 32)
    out = objective(video, generator=torch.Generator().manual_seed(0))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    deltas = calls["target_deltas"]
    assert deltas.shape == (2, 2) and (deltas >= 3).all() and (deltas < 8).all() and (deltas[:, 0] < deltas[:, 1]).all()
    assert torch.equal(calls["pixel_values"], video[:, :3])
    assert torch.equal(calls["target_pixel_values"], video[:, deltas[0]])
    with pytest.raises(ValueError, match="cannot hold"):
        RVMPretrainingObjective(model, 4, 4, clip_frames=6)


def test_video_files_through_video_data(tmp_path):
    from rep4d.training.synthetic import write_dataset

    data = write_dataset(tmp_path / "videos", num_clips=4, num_frames=10, height=32, width=32, progress=False,
                         num_points=0)
    result = train(parse_args(["--method", "4ds", "--data", str(data / "metadata.csv"), "--output",
                               str(tmp_path / "run"), "--batch-size", "2", "--max-steps", "3", *FAST, "--no-final"]))
    assert len(result.losses) == 3 and all(math.isfinite(x) for x in result.losses)


@pytest.mark.parametrize(
    "extra, error, message",
    [
        (["--method", "4ds", "--batch-size", "6", "--gradient-accumulation-steps", "4"], ValueError,
         "not divisible by processes x gradient accumulation = 1 x 4"),
        (["--method", "4ds", "--data", "/nonexistent/videos"], FileNotFoundError, "does not exist"),
        (["--method", "4ds", "--teacher", "x"], ValueError, "only apply to --method distill"),
        (["--method", "4ds", "--config", "hidden_size=65"], ValueError, "divisible by num_attention_heads"),
        (["--method", "4ds", "--model-preset", "enormous"], ValueError, "unknown 4DS preset"),
    ],
)
def test_bad_configuration_fails_before_training(tmp_path, extra, error, message):
    argv = ["--data", "synthetic", "--output", str(tmp_path / "bad"), "--batch-size", "4", *FAST, *extra]
    with pytest.raises(error, match=message):
        train(parse_args(argv))
    assert not (tmp_path / "bad" / "metrics.csv").exists()


def test_clip_longer_than_videos_fails_before_training(tmp_path):
    from rep4d.training.synthetic import write_dataset

    data = write_dataset(tmp_path / "short", num_clips=2, num_frames=4, height=32, width=32, progress=False,
                         num_points=0)
    with pytest.raises(ValueError, match="needs 8 frames, the longest readable video has 4"):
        train(parse_args(["--method", "4ds", "--data", str(data), "--output", str(tmp_path / "run"), *FAST]))
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_cli_rejects_unknown_method_and_runs(tmp_path, capsys):
    from rep4d.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--method", "mae", "--data", "synthetic", "--output", str(tmp_path / "x")])
    assert "invalid choice: 'mae'" in capsys.readouterr().err
    code = main(["train", "--method", "4ds", "--data", "synthetic", "--output", str(tmp_path / "cli"),
                 "--synthetic-clips", "4", "--batch-size", "4", "--max-steps", "2", *FAST])
    assert code == 0 and "trained 2 steps" in capsys.readouterr().out
    code = main(["train", "--method", "4ds", "--data", "synthetic", "--output", str(tmp_path / "cli2"),
                 "--batch-size", "3", "--gradient-accumulation-steps", "2", *FAST])
    assert code == 2 and "not divisible" in capsys.readouterr().err


def test_schedule_and_weight_decay_groups():
    factor = warmup_cosine(4, 12, min_ratio=0.1)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(8) == pytest.approx(0.1 + 0.9 * 0.5)
    assert factor(12) == pytest.approx(0.1)
    from rep4d.modeling.modeling_fourds import FourDSForPreTraining

    model = FourDSForPreTraining(fourds_config("tiny", {}))
    decay, no_decay = parameter_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert "fourds.embeddings.position_embeddings" in no_decay_names
    assert "decoding_tokens.tokens" in no_decay_names
    assert all(names[id(p)].endswith("weight") for p in decay["params"])
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_moog_trains_and_saves(tmp_path):
    from transformers import AutoModel

    from rep4d.modeling.modeling_moog import MooGModel

    result = run(tmp_path, "moog", "--method", "moog", "--max-steps", "3", "--batch-size", "2", "--warmup-steps", "1")
    assert len(result.losses) == 3 and all(math.isfinite(x) for x in result.losses)
    model = AutoModel.from_pretrained(result.final_dir)
    assert isinstance(model, MooGModel) and model.config.num_frames == 8 and model.config.train_subsample_factor == 8


def test_mixed_precision_follows_the_cpu(tmp_path, monkeypatch):
    """The precision policy for training: bf16 / fp16 autocast on a CPU only where the CPU runs it natively; on an
    AVX2-only CPU (emulated, several times slower) the run trains in fp32 and says so once. ``auto`` stays fp32 on
    CPU, bf16 on a bf16-capable GPU."""
    from transformers.testing_utils import CaptureLogger

    from rep4d.modeling import cpu_fast_paths
    from rep4d.training import launch

    monkeypatch.setattr(cpu_fast_paths, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(cpu_fast_paths, "cpu_has_native_fp16", lambda: False)
    with CaptureLogger(launch.logger) as captured:
        assert launch.resolve_mixed_precision("bf16", device="cpu") == "no"
    assert "without native bf16" in captured.out and "trains in fp32" in captured.out
    assert launch.resolve_mixed_precision("fp16", device="cpu") == "no"
    args = parse_args(["--method", "4ds", "--data", "synthetic", "--output", str(tmp_path), "--mixed-precision", "bf16"])
    assert launch.build_accelerator(args, tmp_path).mixed_precision == "no"

    monkeypatch.setattr(cpu_fast_paths, "cpu_has_native_bf16", lambda: True)
    assert launch.resolve_mixed_precision("bf16", device="cpu") == "bf16"
    assert launch.build_accelerator(args, tmp_path).mixed_precision == "bf16"
    assert launch.resolve_mixed_precision("auto", device="cpu") == "no"
    assert launch.resolve_mixed_precision("no", device="cpu") == "no"
    assert launch.resolve_mixed_precision("bf16", device="cuda") == "bf16"
