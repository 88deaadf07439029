"""Trainer-based readout fine-tuning: a few steps through run_finetune (the `rep4d finetune` code path) for two
tasks, saved models that reload, `rep4d evaluate` on the result, pictures, metrics/baselines and end-to-end LRs."""

import json

import numpy as np
import pytest
import torch

from rep4d.cli import main as cli_main
from rep4d.modeling.modeling_readout import ReadoutForBoxTracking, ReadoutForPointTracking, load_readout
from rep4d.processing.video_processing_base import read_video_pyav
from rep4d.training.finetune import (
    FinetuneConfig,
    ReadoutTrainer,
    random_backbone_config,
    run_finetune,
    task_metrics,
    training_arguments,
)
from rep4d.training.metrics import beats_baseline

TINY = dict(backbone="random:fourds-tiny", num_frames=4, image_size=[16, 16], max_steps=4, eval_steps=2,
            batch_size=4, logging_steps=2, readout_num_params=16, readout_num_heads=2, report_to="none",
            progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def points_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("points_run")
    config = FinetuneConfig(task="points", data="synthetic:10,num_points=8", output_dir=str(output),
                            save_pictures=1, **TINY)  # fmt: skip
    return output, run_finetune(config)


def test_points_finetune_saves_a_loadable_model_and_metrics(points_run):
    output, results = points_run
    assert (output / "model.safetensors").is_file() and not (output / "checkpoints").exists()
    saved = json.loads((output / "metrics.json").read_text())
    assert saved["task"] == "points" and saved["num_train_clips"] == 8 and saved["num_eval_clips"] == 2
    for key in ("eval_average_jaccard", "eval_average_pts_within_thresh", "eval_baseline_average_pts_within_thresh"):
        assert 0.0 <= saved["eval"][key] <= 1.0
    assert saved["train"]["train_loss"] > 0 and saved["mode"] == "frozen"
    assert any("eval_loss" in entry for entry in saved["log_history"])
    model = load_readout(output)
    assert isinstance(model, ReadoutForPointTracking) and model.config.freeze_backbone
    again = ReadoutForPointTracking.from_pretrained(output)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)


def test_points_pictures_are_decodable(points_run):
    output, results = points_run
    videos = [path for path in results["pictures"] if path.endswith(".mp4")]
    assert videos and all(path.startswith(str(output / "pictures")) for path in results["pictures"])
    frames, _ = read_video_pyav(videos[0])
    # 16 px frames are enlarged 16x to 256 px; truth and prediction side by side, labelled (title, captions, legend).
    assert frames.shape[0] == 4 and frames.shape[1] > 256 + 40 and frames.shape[2] >= 2 * 256 and frames.std() > 0
    from PIL import Image

    png = [path for path in results["pictures"] if path.endswith(".png")][0]
    assert np.asarray(Image.open(png)).shape == frames.shape[1:]


def test_evaluate_command_on_the_saved_points_model(points_run, tmp_path, capsys):
    output, _ = points_run
    report = tmp_path / "eval.json"
    status = cli_main(["evaluate", "--model", str(output), "--data", "synthetic:3,seed=9,num_points=8",
                       "--output", str(report), "--quiet", "--save-pictures", "1",
                       "--pictures-dir", str(tmp_path / "pics")])  # fmt: skip
    assert status == 0
    result = json.loads(report.read_text())
    assert result["task"] == "points" and result["num_clips"] == 3
    assert 0.0 <= result["eval"]["eval_average_jaccard"] <= 1.0
    assert json.loads(capsys.readouterr().out)["num_clips"] == 3
    assert (tmp_path / "pics" / "clip_000_points.mp4").is_file()


def test_boxes_finetune_through_the_cli(tmp_path, capsys):
    from rep4d.training.synthetic import write_dataset

    data = write_dataset(tmp_path / "synth", num_clips=6, num_frames=4, height=16, width=16, progress=False,
                         num_objects=2, num_points=4)  # fmt: skip
    output = tmp_path / "boxes"
    status = cli_main(["finetune", "--task", "boxes", "--backbone", "random:fourds-tiny", "--data", str(data),
                       "--output", str(output), "--max-steps", "3", "--eval-steps", "3", "--batch-size", "2",
                       "--readout-width", "16", "--readout-heads", "2", "--report-to", "tensorboard",
                       "--quiet", "--save-pictures", "1", "--keep-checkpoints"])  # fmt: skip
    assert status == 0
    assert "mean_iou" in capsys.readouterr().out
    model = load_readout(output)
    assert isinstance(model, ReadoutForBoxTracking)
    metrics = json.loads((output / "metrics.json").read_text())
    assert 0.0 <= metrics["eval"]["eval_mean_iou"] <= 1.0
    assert list((output / "checkpoints").rglob("events.out.tfevents*")), "TensorBoard logs are written"
    frames, _ = read_video_pyav(output / "pictures" / "clip_000_boxes.mp4")
    assert frames.shape[0] == 4


def test_end_to_end_mode_scales_the_backbone_learning_rate(tmp_path):
    config = FinetuneConfig(task="pose", data="synthetic:4", output_dir=str(tmp_path), end_to_end=True,
                            **{**TINY, "learning_rate": 2e-3})  # fmt: skip
    from rep4d.training.finetune import build_readout

    model = build_readout(config, 4, [16, 16])
    assert not model.config.freeze_backbone
    args = training_arguments(config, str(tmp_path), 2, eval_strategy="no", save_strategy="no",
                              load_best_model_at_end=False)
    trainer = ReadoutTrainer(model=model, args=args)
    optimizer = trainer.create_optimizer()
    rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert rates["readout_decay"] == pytest.approx(2e-3)
    assert rates["backbone_decay"] == pytest.approx(2e-3 * 0.003)


def test_random_backbone_presets_and_errors():
    config = random_backbone_config("random:fourds-mini", 8, [32, 32])
    assert config.hidden_size == 64 and config.tubelet_size == [2, 8, 8] and config.image_size == [32, 32]
    videomae = random_backbone_config("random:videomae-tiny", 4, [16, 16])
    assert videomae.model_type == "videomae" and videomae.patch_size == 8
    with pytest.raises(ValueError, match="unknown random backbone"):
        random_backbone_config("random:resnet-50", 8, [32, 32])


def test_task_metrics_and_baselines_by_hand():
    boxes = np.tile(np.array([0.1, 0.1, 0.5, 0.5]), (1, 1, 3, 1))
    boxes[0, 0, 1:] += 0.2  # the box moves after frame 0: "boxes stay put" has IoU (0.2*0.2)/(0.32-0.04)
    visible = np.ones((1, 1, 3), bool)
    scores = task_metrics("boxes", (boxes,), (boxes, visible), (16, 16))
    assert scores["mean_iou"] == pytest.approx(1.0)
    assert scores["baseline_mean_iou"] == pytest.approx(0.04 / 0.28)
    assert beats_baseline("boxes", scores, prefix="")
    logits = np.array([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0], [2.0, 0, 0]])
    scores = task_metrics("classification", (logits,), (np.array([0, 1, 1, 0]),), (16, 16), num_labels=3)
    assert scores["top1_accuracy"] == 0.75 and scores["baseline_chance_accuracy"] == pytest.approx(1 / 3)
    assert scores["baseline_majority_accuracy"] == 0.5
    rotation, translation = np.eye(3)[None], np.array([[0.0, 0.0, 2.0]])
    # Predictions: (rotation, translation, raw_rotation) as the Trainer hands them; targets (rotation, translation).
    scores = task_metrics("pose", (rotation, translation, rotation), (rotation, translation), (16, 16))
    assert scores["pose_epe"] == 0.0 and scores["baseline_pose_epe"] == pytest.approx(2.0)
    assert beats_baseline("pose", scores, prefix="")
    # The translation is scored: every cube corner is off by the 3-4-0 translation error.
    scores = task_metrics("pose", (rotation, translation + [[3.0, 4.0, 0.0]]), (rotation, translation), (16, 16))
    assert scores["pose_epe"] == pytest.approx(5.0) and scores["rotation_epe"] == 0.0
    assert not beats_baseline("pose", scores, prefix="")
    depth = np.full((1, 2, 4, 4), 2.0)
    scores = task_metrics("depth", (depth * 1.5,), (depth,), (4, 4), train_depth_mean=3.0)
    assert scores["abs_rel"] == pytest.approx(0.5) and scores["baseline_abs_rel"] == pytest.approx(0.5)


def test_points_metrics_read_the_output_fields_by_name():
    # The Trainer hands compute_metrics the model output's fields as a tuple; the metric must read `tracks` and
    # `occluded` by name, not by a position that moves when the output class changes.
    import torch

    from rep4d.modeling.outputs import PointTrackingOutput

    frames, queries = 4, 3
    tracks = torch.rand(1, queries, frames, 2) * 15
    occluded = torch.zeros(1, queries, frames, dtype=torch.bool)
    output = PointTrackingOutput(
        tracks=tracks, occluded=occluded, visibility_logits=torch.full((1, queries, frames), 3.0),
        certainty_logits=torch.full((1, queries, frames), -1.0),  # non-zero logits: not an occlusion flag
    )
    predictions = tuple(value.numpy() for value in output.to_tuple())
    query = torch.cat([torch.zeros(1, queries, 1), tracks[:, :, 0].flip(-1)], dim=-1).numpy()  # (t, y, x) at t=0
    labels = (query, tracks.numpy(), occluded.numpy())
    scores = task_metrics("points", predictions, labels, (16, 16))
    assert scores["average_jaccard"] == pytest.approx(1.0) and scores["occlusion_accuracy"] == pytest.approx(1.0)


def _moog_tiny():
    from test_moog import tiny_config

    return tiny_config()


def _rvm_tiny():
    from test_rvm import tiny_config

    return tiny_config(image_size=[16, 16])


@pytest.mark.parametrize("backbone", ["moog", "rvm"])
def test_moog_and_rvm_backbones_feed_every_readout_layout(backbone):
    from rep4d.configuration.configuration_readout import ReadoutConfig
    from rep4d.modeling.modeling_readout import ReadoutForPointTracking, ReadoutForVideoClassification

    backbone_config = _moog_tiny() if backbone == "moog" else _rvm_tiny()
    settings = dict(backbone_config=backbone_config, readout_num_params=16, readout_num_heads=2,
                    num_fourier_bands=2, num_frames=4, image_size=[16, 16])  # fmt: skip
    video = torch.rand(2, 4, 3, 16, 16)
    model = ReadoutForVideoClassification(ReadoutConfig(task="classification", num_labels=3, **settings))
    features = model.extract_features(video)
    if backbone == "moog":
        # MooG: the corrected states (B, T, K, D), the same on every call (one seeded initial noise for the batch).
        shape = (1, backbone_config.num_tokens, backbone_config.token_size)
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(0)).expand(2, -1, -1)
        expected = model.backbone.model(video, initial_noise=noise).corrected_states
        assert features.shape == (2, 4, backbone_config.num_tokens, backbone_config.token_size)
    else:
        # RVM: the recurrent states without the CLS token, (B, T, N, D).
        expected = model.backbone.model(video).last_hidden_state[:, :, 1:]
        assert features.shape == (2, 4, 4, backbone_config.hidden_size)
    torch.testing.assert_close(features, expected)
    torch.testing.assert_close(model.extract_features(video), features)
    loss = model(pixel_values=video, labels=torch.tensor([0, 2])).loss
    loss.backward()
    assert torch.isfinite(loss)
    points = ReadoutForPointTracking(ReadoutConfig(task="points", **settings))
    out = points(features=features, query_points=torch.tensor([[[0.0, 4.0, 4.0]], [[1.0, 8.0, 2.0]]]))
    assert out.tracks.shape == (2, 1, 4, 2)


def test_pose_readout_predicts_translation_and_beats_the_identity_pose(tmp_path):
    """The RE10k-style pose readout (rotation + translation) on synthetic clips of a walking camera among static
    objects: trained, it beats the identity pose (R = I, t = 0) on held-out clips under the full-pose end-point
    error, and its translations move forward as the cameras do."""
    config = FinetuneConfig(task="pose", data="synthetic:128", output_dir=str(tmp_path), eval_fraction=0.25,
                            **{**TINY, "max_steps": 200, "eval_steps": 200, "batch_size": 16,
                               "learning_rate": 3e-3})  # fmt: skip
    results = run_finetune(config)
    scores = results["eval"]
    assert results["main_metric"] == "pose_epe" and results["beats_baseline"]
    assert scores["eval_pose_epe"] < 0.75 * scores["eval_baseline_pose_epe"], scores
    model = load_readout(tmp_path)
    batch = collate_pose_clips(model, "synthetic:4,seed=11")
    with torch.no_grad():
        out = model(**batch)
    assert out.translation.shape == (4, 3) and (out.translation[:, 2] > 0.2).all()  # forward, as the cameras
    assert out.loss > 0 and torch.isfinite(out.loss)


def collate_pose_clips(model, data):
    from rep4d.training.readout_data import ReadoutDataConfig, ReadoutDataset, collate_readout_batch, open_clip_source

    source = open_clip_source(data, "pose", model.num_frames, model.image_size)
    dataset = ReadoutDataset(source, "pose", ReadoutDataConfig(num_frames=model.num_frames, image_size=model.image_size))
    return collate_readout_batch([dataset[i] for i in range(len(dataset))])


def test_finetune_command_takes_its_tasks_from_the_registry(tmp_path, capsys):
    status = cli_main(["finetune", "--task", "segmentation", "--backbone", "random:fourds-tiny", "--data",
                       "synthetic:2", "--output", str(tmp_path / "out")])  # fmt: skip
    assert status == 2
    assert "task must be one of ('depth', 'points', 'boxes', 'pose', 'classification')" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
