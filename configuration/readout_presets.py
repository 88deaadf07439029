"""The 4DS / MooG readout protocol as named presets, one per benchmark task (``rep4d benchmark readouts --tasks``).

Each :class:`ReadoutPreset` carries what the papers specify for a task (4DS paper section 3.3, appendix A.2 and
Table 6; MooG paper section 4): the clip (frames, size, stride), the readout (queries, width, heads, outputs, loss
weights), the readout layer depth (0.95 for the 4D tasks, 0.75 for frozen SSv2 / K700), the optimiser and schedule
of frozen training and of end-to-end fine-tuning, the augmentation and the test-time procedure. It builds the
:class:`~rep4d.configuration.configuration_readout.ReadoutConfig` of a backbone (:meth:`ReadoutPreset.readout_config`)
and the ``TrainingArguments`` (:meth:`ReadoutPreset.training_arguments`)::

    from rep4d.configuration.readout_presets import get_readout_preset

    preset = get_readout_preset("scannet")
    config = preset.readout_config(backbone_config, mode="frozen")
    args = preset.training_arguments("out/scannet", mode="frozen", learning_rate=3e-4)

Protocol common to every 4DS task: AdamW (weight decay 1e-4), learning rate swept over {1e-4, 3e-4, 1e-3} (best
kept), 1k linear warm-up steps from 0, cosine decay to 1e-7, 40k steps at batch 32 (1.28M examples). Fine-tuning:
learning rate in {1e-4, 3e-4}, weight decay in {1e-4, 5e-2}, 3k warm-up steps, 20k steps (40k / 80k in Table 9),
backbone learning rate 0.003x the readout's, features read at 95% depth.

Where our heads differ from the paper's (see docs/READOUT_BENCHMARK.md for the parameter counts): the box and point
queries are projected linearly from their Fourier features (the paper's point queries go through a 512-wide MLP).
The camera-pose head is the paper's (first and last frames concatenated along channels, 12 outputs).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

READOUT_MODES = ("frozen", "finetune")
# Sizes of the randomly initialised backbones of ``rep4d finetune --backbone random:<fourds|videomae>-<size>``,
# besides the 4DS paper sizes s, b, l, ... of FOURDS_SIZES.
SMALL_BACKBONE_SIZES = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    "mini": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128),
    "small": dict(hidden_size=128, num_hidden_layers=6, num_attention_heads=4, intermediate_size=256),
}
PAPER_LEARNING_RATES = (1e-4, 3e-4, 1e-3)
FINETUNE_LEARNING_RATES = (1e-4, 3e-4)


@dataclass(frozen=True)
class TrainingSchedule:
    """Optimiser and schedule of one training mode (the paper's values; ``learning_rates`` / ``weight_decays`` are
    the sweeps, the first entry is the default of a single run)."""

    learning_rates: tuple[float, ...] = PAPER_LEARNING_RATES
    weight_decays: tuple[float, ...] = (1e-4,)
    warmup_steps: int = 1000
    max_steps: int = 40000
    batch_size: int = 32
    optimizer: str = "adamw"
    lr_scheduler_type: str = "cosine"
    final_learning_rate: float = 1e-7
    backbone_learning_rate_scale: float | None = None  # None: frozen backbone

    @property
    def learning_rate(self) -> float:
        return self.learning_rates[0] if len(self.learning_rates) == 1 else self.learning_rates[1]


FROZEN_SCHEDULE = TrainingSchedule()
FINETUNE_SCHEDULE = TrainingSchedule(
    learning_rates=FINETUNE_LEARNING_RATES, weight_decays=(1e-4, 5e-2), warmup_steps=3000, max_steps=20000,
    backbone_learning_rate_scale=0.003,
)


@dataclass(frozen=True)
class ReadoutPreset:
    """One task of the readout protocol.

    Args:
        name: preset name (``--tasks`` value).
        task: readout head (``depth``, ``points``, ``boxes``, ``pose``, ``classification``).
        dataset: the dataset the paper evaluates on (its reader in :mod:`rep4d.training.readout_datasets`).
        column: the column of the paper's table (``RE10k``, ``Percep. test``, ...).
        metric: key of the task's scores (:func:`rep4d.training.metrics.score_task`); ``greater_is_better`` its
            direction.
        table_scale: factor from the metric to the table's unit (100 for percent, 10 for AbsRel x10).
        num_frames / image_size / frame_stride: the clip the backbone reads.
        readout_num_params / readout_num_heads: width and heads of the attention readout.
        readout_options: further :class:`ReadoutConfig` fields of the head (labels, decoding patch, loss weights).
        queries / outputs / loss: the paper's description (documentation).
        readout_depth: relative depth of the features, frozen mode (0.95; 0.75 for classification).
        finetune_readout_depth: relative depth in fine-tuning (0.95).
        frozen / finetune: the two :class:`TrainingSchedule`.
        augmentation / test_procedure: the paper's augmentation and test-time procedure (applied by the readers).
        paper_readout_params: the readout's parameter count in the paper's Table 6 (None if not given).
        family: ``4ds`` (Table 2 task) or ``moog`` (MooG Table 1 task).
    """

    name: str
    task: str
    dataset: str
    column: str
    metric: str
    greater_is_better: bool
    table_scale: float
    readout_num_params: int
    readout_num_heads: int
    queries: str
    outputs: str
    loss: str
    num_frames: int = 16
    image_size: tuple[int, int] = (224, 224)
    frame_stride: int = 1
    readout_options: dict = field(default_factory=dict)
    readout_depth: float = 0.95
    finetune_readout_depth: float = 0.95
    frozen: TrainingSchedule = FROZEN_SCHEDULE
    finetune: TrainingSchedule = FINETUNE_SCHEDULE
    augmentation: dict = field(default_factory=dict)
    test_procedure: dict = field(default_factory=dict)
    paper_readout_params: int | None = None
    family: str = "4ds"

    def schedule(self, mode: str = "frozen") -> TrainingSchedule:
        _check_mode(mode)
        return self.frozen if mode == "frozen" else self.finetune

    def depth_for(self, mode: str = "frozen") -> float:
        _check_mode(mode)
        return self.readout_depth if mode == "frozen" else self.finetune_readout_depth

    def readout_config(self, backbone_config, mode: str = "frozen", num_frames: int | None = None,
                       image_size=None, backbone_name_or_path: str | None = None, **overrides):
        """The :class:`ReadoutConfig` of this task on ``backbone_config`` (a config object or dict with
        ``model_type``). The readout depth selects the backbone layer: 4DS through ``readout_depth`` of its config,
        transformers backbones through ``backbone_feature_layer``; ``overrides`` replace any field."""
        from transformers import AutoConfig, PreTrainedConfig

        from rep4d.configuration.configuration_readout import ReadoutConfig

        if isinstance(backbone_config, dict):
            settings = dict(backbone_config)
            backbone_config = AutoConfig.for_model(settings.pop("model_type"), **settings)
        if not isinstance(backbone_config, PreTrainedConfig):
            raise ValueError(f"backbone_config must be a transformers config or its dict, got {type(backbone_config)}")
        backbone_config = copy.deepcopy(backbone_config)
        schedule = self.schedule(mode)
        settings = dict(
            task=self.task,
            backbone_config=backbone_config,
            backbone_name_or_path=backbone_name_or_path,
            freeze_backbone=mode == "frozen",
            readout_num_params=self.readout_num_params,
            readout_num_heads=self.readout_num_heads,
            num_frames=num_frames if num_frames is not None else self.num_frames,
            image_size=list(image_size if image_size is not None else self.image_size),
            **self.readout_options,
        )
        if schedule.backbone_learning_rate_scale is not None:
            settings["backbone_learning_rate_scale"] = schedule.backbone_learning_rate_scale
        settings["backbone_feature_layer"] = feature_layer_for_depth(backbone_config, self.depth_for(mode))
        if self.task == "classification" and "num_labels" in settings:
            count = settings["num_labels"]
            settings.setdefault("id2label", {i: f"class_{i}" for i in range(count)})
            settings.setdefault("label2id", {f"class_{i}": i for i in range(count)})
        settings.update(overrides)
        if "num_labels" in overrides and "id2label" not in overrides:
            settings["id2label"] = {i: f"class_{i}" for i in range(overrides["num_labels"])}
            settings["label2id"] = {name: i for i, name in settings["id2label"].items()}
        return ReadoutConfig(**settings)

    def training_arguments(self, output_dir: str, mode: str = "frozen", learning_rate: float | None = None,
                           weight_decay: float | None = None, max_steps: int | None = None,
                           batch_size: int | None = None, **overrides):
        """``TrainingArguments`` of this task's schedule: AdamW, linear warm-up from 0, cosine decay to
        ``final_learning_rate``. A shorter ``max_steps`` scales the warm-up in proportion."""
        from transformers import TrainingArguments

        schedule = self.schedule(mode)
        steps = int(max_steps or schedule.max_steps)
        warmup = int(round(schedule.warmup_steps * min(1.0, steps / schedule.max_steps)))
        lr = float(learning_rate if learning_rate is not None else schedule.learning_rate)
        settings = dict(
            output_dir=output_dir,
            learning_rate=lr,
            weight_decay=float(weight_decay if weight_decay is not None else schedule.weight_decays[0]),
            max_steps=steps,
            warmup_steps=warmup,
            lr_scheduler_type="cosine_with_min_lr",
            lr_scheduler_kwargs={"min_lr": min(schedule.final_learning_rate, lr)},
            per_device_train_batch_size=int(batch_size or schedule.batch_size),
            optim="adamw_torch",
            remove_unused_columns=False,
            report_to=[],
        )
        settings.update(overrides)
        return TrainingArguments(**settings)

    def to_dict(self) -> dict:
        """JSON-ready description of the preset (what the benchmark writes next to its results)."""
        from dataclasses import asdict

        result = asdict(self)
        result["image_size"] = list(self.image_size)
        return result

    def with_overrides(self, **changes) -> ReadoutPreset:
        return replace(self, **changes)


def _check_mode(mode: str) -> None:
    if mode not in READOUT_MODES:
        raise ValueError(f"mode must be one of {READOUT_MODES}, got {mode!r}")


def feature_layer_for_depth(backbone_config, depth: float) -> int | None:
    """``backbone_feature_layer`` that makes a readout read ``depth`` of the backbone (None: the adapter's default).

    4DS: ``readout_depth`` of the backbone config is set (the model's own rule picks the layer), None returned.
    transformers backbones that read ``hidden_states``: the index at ``depth`` (only when it differs from the
    adapter's default 0.95). MooG / RVM and backbones that read ``last_hidden_state``: None (their features).
    """
    from rep4d.modeling.backbone_adapters import DEFAULT_READOUT_DEPTH, backbone_adapter_class, hidden_state_index

    if getattr(backbone_config, "model_type", None) == "fourds":
        backbone_config.readout_depth = float(depth)
        return None
    if abs(depth - DEFAULT_READOUT_DEPTH) < 1e-9:
        return None
    adapter = backbone_adapter_class(backbone_config)
    if not getattr(adapter, "use_hidden_states", False):
        return None
    sub_config = adapter.backbone_config_of(backbone_config)
    layers = getattr(sub_config, "num_hidden_layers", None)
    return None if layers is None else hidden_state_index(int(layers), depth)


_CLASSIFICATION_TRAIN_AUGMENTATION = {
    "resize_shorter_side": 239,
    "random_crop": [224, 224],
    "color_jitter": {"p": 0.8, "brightness": 0.125, "saturation": [0.6, 1.4], "contrast": [0.6, 1.4], "hue": 0.2},
    "grayscale": {"p": 0.1},
}

READOUT_PRESETS: dict[str, ReadoutPreset] = {
    "ssv2": ReadoutPreset(
        name="ssv2", task="classification", dataset="something-something-v2", column="SSv2",
        metric="top1_accuracy", greater_is_better=True, table_scale=100.0,
        readout_num_params=768, readout_num_heads=12, frame_stride=2,
        readout_options={"num_labels": 174},
        queries="1 learned", outputs="174 logits", loss="cross-entropy", readout_depth=0.75,
        augmentation=dict(_CLASSIFICATION_TRAIN_AUGMENTATION),
        test_procedure={"crop": "one central 224x224 crop of the shorter side resized to 224", "num_clips": 1},
        paper_readout_params=7_041_966,
    ),
    "k700-2020": ReadoutPreset(
        name="k700-2020", task="classification", dataset="kinetics-700-2020", column="K700",
        metric="top1_accuracy", greater_is_better=True, table_scale=100.0,
        readout_num_params=1024, readout_num_heads=16, frame_stride=2,
        readout_options={"num_labels": 700, "num_test_clips": 7},
        queries="1 learned", outputs="700 logits", loss="cross-entropy", readout_depth=0.75,
        augmentation=dict(_CLASSIFICATION_TRAIN_AUGMENTATION),
        test_procedure={"loop_to_frames": 250, "num_clips": 7, "clip_spacing": "evenly spaced",
                        "aggregation": "mean of the clips' softmax"},
        paper_readout_params=12_281_532,
    ),
    "re10k": ReadoutPreset(
        name="re10k", task="pose", dataset="realestate10k", column="RE10k",
        metric="pose_epe", greater_is_better=False, table_scale=1.0,
        readout_num_params=256, readout_num_heads=8, image_size=(256, 256),
        queries="1 learned over the first and last frames' features, concatenated along channels",
        outputs="12 numbers: 3x3 rotation, projected to SO(3) by Procrustes, and a 3-vector translation",
        loss="L2 on the 3x4 pose matrix",
        test_procedure={"projection": "procrustes_so3", "metric": "end-point error of the 8 corners of a unit cube"},
        paper_readout_params=1_650_444,
    ),
    "scannet": ReadoutPreset(
        name="scannet", task="depth", dataset="scannet", column="ScanNet",
        metric="abs_rel", greater_is_better=False, table_scale=10.0,
        readout_num_params=1024, readout_num_heads=16,
        readout_options={"depth_query_type": "patch", "decoding_patch_size": [2, 8, 8], "depth_loss_type": "l2"},
        queries="one learned query per 2x8x8 patch", outputs="128 depths per query (2x8x8 pixels)", loss="L2",
        augmentation={"random_crop": True, "horizontal_flip": True, "pixel_range": [0.0, 1.0]},
        test_procedure={"crop": "centre", "valid_depth_range_m": [0.001, 10.0]},
        paper_readout_params=18_116_736,
    ),
    "waymo-open": ReadoutPreset(
        name="waymo-open", task="boxes", dataset="waymo-open", column="Waymo",
        metric="mean_iou", greater_is_better=True, table_scale=100.0,
        readout_num_params=1024, readout_num_heads=4, image_size=(256, 256),
        queries="one per box track: the first-frame box through Fourier features",
        outputs="4 box coordinates per frame, no output activation", loss="L2",
        augmentation={"resize": [256, 384], "fps": 5, "centre_crop": [256, 256], "random_temporal_crop": 16,
                      "min_box_area_fraction": 0.005, "max_boxes": 25},
        test_procedure={"metric": "mean IoU, first frame excluded"},
        paper_readout_params=12_482_624,
    ),
    "perception-test-points": ReadoutPreset(
        name="perception-test-points", task="points", dataset="perception-test (trained on kubric-movi-e)",
        column="Percep. test", metric="average_jaccard", greater_is_better=True, table_scale=100.0,
        readout_num_params=1024, readout_num_heads=8, image_size=(256, 256),
        readout_options={"point_frames_per_query": 2, "num_fourier_bands": 16, "point_position_loss_weight": 100.0,
                         "point_visibility_loss_weight": 0.1, "point_certainty_loss_weight": 0.1},
        queries="one per track per 2-frame chunk: query point through 16 Fourier bases (+ chunk time)",
        outputs="per frame (x, y), visibility and uncertainty logits",
        loss="Huber (weight 100) + BCE visibility (0.1) + BCE uncertainty (0.1)",
        frozen=replace(FROZEN_SCHEDULE, learning_rates=(3e-4,)),
        augmentation={"train_dataset": "kubric-movi-e", "num_tracks": 64, "random_crop_area": [0.3, 1.0],
                      "random_crop_aspect": [0.5, 2.0], "queries": "first frame; tracks invisible there dropped"},
        test_procedure={"tapvid_protocol": "4ds-clip", "clip_frames": 16, "frame_stride": 4},
        paper_readout_params=12_396_552,
    ),
    "movi-e-points": ReadoutPreset(
        name="movi-e-points", task="points", dataset="kubric-movi-e", column="MOVi-E points",
        metric="average_jaccard", greater_is_better=True, table_scale=1.0, family="moog",
        readout_num_params=1024, readout_num_heads=8, num_frames=8, image_size=(128, 128),
        readout_options={"num_fourier_bands": 16},
        queries="one per track: its first-frame query point through Fourier features",
        outputs="per frame (x, y), visibility and uncertainty logits", loss="Huber + BCE visibility + BCE uncertainty",
        augmentation={"num_points": 64, "queries": "first frame"},
        test_procedure={"tapvid_query_mode": "first"},
    ),
    "movi-e-depth": ReadoutPreset(
        name="movi-e-depth", task="depth", dataset="kubric-movi-e", column="MOVi-E depth",
        metric="abs_rel", greater_is_better=False, table_scale=1.0, family="moog",
        readout_num_params=1024, readout_num_heads=16, num_frames=8, image_size=(128, 128),
        readout_options={"decoding_patch_size": [2, 8, 8], "depth_loss_type": "log_l2"},
        queries="one learned query per 2x8x8 patch", outputs="depth per pixel",
        loss="L2 on log depth (MooG trains on depth normalised with log(1 + depth))", test_procedure={"metric": "AbsRel"},
    ),
    "movi-e-boxes": ReadoutPreset(
        name="movi-e-boxes", task="boxes", dataset="kubric-movi-e", column="MOVi-E boxes",
        metric="mean_iou", greater_is_better=True, table_scale=1.0, family="moog",
        readout_num_params=1024, readout_num_heads=4, num_frames=8, image_size=(128, 128),
        queries="one per box track: the first-frame box through Fourier features", outputs="4 coordinates per frame",
        loss="L2", test_procedure={"metric": "mean IoU, first frame excluded"},
    ),
}
TABLE2_TASKS = ("re10k", "perception-test-points", "scannet", "waymo-open", "ssv2", "k700-2020")
MOOG_TASKS = ("movi-e-points", "movi-e-depth", "movi-e-boxes")


def get_readout_preset(name: str | ReadoutPreset) -> ReadoutPreset:
    """The preset called ``name`` (a :class:`ReadoutPreset` is returned as is)."""
    if isinstance(name, ReadoutPreset):
        return name
    if name not in READOUT_PRESETS:
        raise ValueError(f"unknown readout task {name!r}; expected one of {', '.join(READOUT_PRESETS)}")
    return READOUT_PRESETS[name]


def readout_parameter_count(preset: str | ReadoutPreset, feature_dim: int = 768) -> int:
    """Parameters of the task's readout (backbone excluded) at the paper's widths on ``feature_dim``-wide
    features, counted on the meta device (nothing is allocated). The backbone is a 2-layer stand-in of that width:
    only ``readout.*`` (and the feature position embedding, off by default) are counted."""
    import torch

    from rep4d.configuration.configuration_fourds import FourDSConfig
    from rep4d.modeling.modeling_readout import readout_class_for_task

    preset = get_readout_preset(preset)
    height, width = preset.image_size
    backbone = FourDSConfig(hidden_size=feature_dim, num_hidden_layers=2, num_attention_heads=max(1, feature_dim // 64),
                            intermediate_size=4 * feature_dim, image_size=[height, width],
                            num_frames=preset.num_frames, tubelet_size=[2, 16, 16])
    config = preset.readout_config(backbone)
    with torch.device("meta"):
        model = readout_class_for_task(preset.task)(config)
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("backbone."))


__all__ = [
    "ReadoutPreset",
    "TrainingSchedule",
    "READOUT_PRESETS",
    "READOUT_MODES",
    "SMALL_BACKBONE_SIZES",
    "TABLE2_TASKS",
    "MOOG_TASKS",
    "FROZEN_SCHEDULE",
    "FINETUNE_SCHEDULE",
    "get_readout_preset",
    "feature_layer_for_depth",
    "readout_parameter_count",
]
