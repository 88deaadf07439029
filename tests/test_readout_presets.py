"""The readout protocol presets: paper settings, configs they build, and our readout parameter counts (Table 6)."""

from __future__ import annotations

import pytest

from rep4d.configuration.configuration_fourds import FourDSConfig
from rep4d.configuration.readout_presets import (
    MOOG_TASKS,
    READOUT_PRESETS,
    TABLE2_TASKS,
    feature_layer_for_depth,
    get_readout_preset,
    readout_parameter_count,
)

# Our readouts at the paper's widths on 768-wide (B-size) features, counted on the meta device.
OUR_COUNTS_768 = {
    "ssv2": 6_644_142,
    "k700-2020": 11_752_636,
    "re10k": 1_386_764,
    "scannet": 17_587_840,
    "waymo-open": 11_235_904,
    "perception-test-points": 11_167_752,
    "movi-e-points": 11_163_168,
    "movi-e-depth": 12_207_744,
    "movi-e-boxes": 11_196_960,
}


def test_every_task_has_a_preset():
    assert set(TABLE2_TASKS) | set(MOOG_TASKS) == set(READOUT_PRESETS)
    assert [READOUT_PRESETS[name].column for name in TABLE2_TASKS] == [
        "RE10k", "Percep. test", "ScanNet", "Waymo", "SSv2", "K700"]
    with pytest.raises(ValueError, match="unknown readout task 'imagenet'"):
        get_readout_preset("imagenet")


@pytest.mark.parametrize("name", sorted(OUR_COUNTS_768))
def test_readout_parameter_counts_are_pinned(name):
    assert readout_parameter_count(name, feature_dim=768) == OUR_COUNTS_768[name]


def test_table6_counts_match_on_1024_wide_features():
    # Table 6 was counted on 1024-wide (L-size) features: the learned-query heads then match it exactly (the pose
    # head too: first and last frames concatenated along channels, 12 outputs = rotation + translation).
    for name in ("ssv2", "k700-2020", "scannet", "re10k"):
        assert readout_parameter_count(name, feature_dim=1024) == READOUT_PRESETS[name].paper_readout_params
    # Heads that differ from the paper's by design (docs/READOUT_BENCHMARK.md): smaller than Table 6.
    for name in ("waymo-open", "perception-test-points"):
        assert readout_parameter_count(name, feature_dim=1024) < READOUT_PRESETS[name].paper_readout_params


def test_paper_protocol_values():
    ssv2, k700 = READOUT_PRESETS["ssv2"], READOUT_PRESETS["k700-2020"]
    assert (ssv2.readout_num_params, ssv2.readout_num_heads, ssv2.readout_options["num_labels"]) == (768, 12, 174)
    assert (k700.readout_num_params, k700.readout_num_heads, k700.readout_options["num_labels"]) == (1024, 16, 700)
    assert k700.test_procedure["num_clips"] == 7 and k700.test_procedure["loop_to_frames"] == 250
    assert ssv2.readout_depth == k700.readout_depth == 0.75 and ssv2.finetune_readout_depth == 0.95
    assert READOUT_PRESETS["scannet"].test_procedure["valid_depth_range_m"] == [0.001, 10.0]
    assert READOUT_PRESETS["re10k"].test_procedure["projection"] == "procrustes_so3"
    points = READOUT_PRESETS["perception-test-points"]
    assert points.readout_options["point_frames_per_query"] == 2
    assert (points.readout_options["point_position_loss_weight"], points.readout_options[
        "point_visibility_loss_weight"], points.readout_options["point_certainty_loss_weight"]) == (100.0, 0.1, 0.1)
    assert points.frozen.learning_rates == (3e-4,) and points.test_procedure["tapvid_protocol"] == "4ds-clip"
    for name in TABLE2_TASKS:
        preset = READOUT_PRESETS[name]
        assert preset.num_frames == 16
        frozen, finetune = preset.frozen, preset.finetune
        assert (frozen.warmup_steps, frozen.max_steps, frozen.batch_size) == (1000, 40000, 32)
        assert frozen.weight_decays == (1e-4,) and frozen.final_learning_rate == 1e-7
        assert (finetune.warmup_steps, finetune.max_steps, finetune.backbone_learning_rate_scale) == (3000, 20000, 0.003)
        assert finetune.learning_rates == (1e-4, 3e-4) and finetune.weight_decays == (1e-4, 5e-2)
    assert READOUT_PRESETS["scannet"].frozen.learning_rates == (1e-4, 3e-4, 1e-3)


def test_readout_config_frozen_and_finetune():
    backbone = FourDSConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                            image_size=[32, 32], num_frames=4, tubelet_size=[2, 8, 8])
    preset = READOUT_PRESETS["ssv2"]
    frozen = preset.readout_config(backbone, "frozen", num_frames=4, image_size=[32, 32])
    assert frozen.task == "classification" and frozen.freeze_backbone and frozen.num_labels == 174
    assert (frozen.readout_num_params, frozen.readout_num_heads) == (768, 12)
    assert frozen.backbone_config.readout_depth == 0.75 and backbone.readout_depth == 0.95  # a copy is changed
    tuned = preset.readout_config(backbone, "finetune", num_labels=3)
    assert not tuned.freeze_backbone and tuned.backbone_learning_rate_scale == 0.003
    assert tuned.backbone_config.readout_depth == 0.95 and tuned.num_labels == 3 and len(tuned.id2label) == 3
    assert tuned.num_frames == 16 and tuned.image_size == [224, 224]
    assert READOUT_PRESETS["k700-2020"].readout_config(backbone).num_test_clips == 7
    with pytest.raises(ValueError, match="mode must be one of"):
        preset.readout_config(backbone, "linear-probe")


def test_readout_depth_selects_transformers_layer():
    from transformers import VideoMAEConfig

    from rep4d.modeling.backbone_adapters import hidden_state_index

    config = VideoMAEConfig(hidden_size=32, num_hidden_layers=12, num_attention_heads=2, intermediate_size=64)
    assert feature_layer_for_depth(config, 0.75) == hidden_state_index(12, 0.75)
    assert feature_layer_for_depth(config, 0.95) is None  # the adapter's default depth
    readout = READOUT_PRESETS["k700-2020"].readout_config(config, "frozen")
    assert readout.backbone_feature_layer == hidden_state_index(12, 0.75)
    assert READOUT_PRESETS["k700-2020"].readout_config(config, "finetune").backbone_feature_layer is None


def test_training_arguments_follow_the_schedule(tmp_path):
    preset = READOUT_PRESETS["scannet"]
    args = preset.training_arguments(str(tmp_path), "frozen")
    assert (args.max_steps, args.warmup_steps, args.per_device_train_batch_size) == (40000, 1000, 32)
    assert args.learning_rate == 3e-4 and args.weight_decay == 1e-4
    assert args.lr_scheduler_type == "cosine_with_min_lr" and args.lr_scheduler_kwargs == {"min_lr": 1e-7}
    short = preset.training_arguments(str(tmp_path), "finetune", max_steps=2000, learning_rate=1e-4)
    assert (short.max_steps, short.warmup_steps, short.learning_rate) == (2000, 300, 1e-4)  # warm-up scaled
