"""The readout-task registry: the ONE list of 4D readout tasks and every per-task fact the code reads from.

:class:`~.configuration_readout.ReadoutConfig` (valid ``task`` values, default ``architectures``), the heads
(``READOUT_CLASSES`` in :mod:`rep4d.modeling.modeling_readout`), the datasets (:mod:`rep4d.training.readout_data`:
clip fields and target names), the metrics (:mod:`rep4d.training.metrics`: main metric, direction, output fields
read, metric settings), the ``rep4d finetune`` / ``evaluate`` commands and the readout benchmark all take their task
list and per-task facts from :data:`READOUT_TASK_SPECS`. Adding a task is one entry here plus its head class, its
example builder and its scorer (each keyed by the task name; tests check that the keys match this registry).

This module imports nothing heavy (no torch / numpy): command modules read it at ``--help`` time.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReadoutTask:
    """Facts of one readout task.

    Args:
        name: task name (``ReadoutConfig.task``, ``rep4d finetune --task``).
        head_class: class name of the head in :mod:`rep4d.modeling.modeling_readout` (the config's default
            ``architectures`` entry, which AutoModel follows).
        output_class: class name of the head's ``ModelOutput``.
        clip_fields: fields of a raw clip the task needs besides ``video`` (the clip layout of
            :mod:`rep4d.training.readout_data`).
        optional_clip_fields: fields read when present.
        label_names: the targets as the head's ``forward`` arguments, in this order (the Trainer's ``label_names``).
        output_fields: the output fields the metrics read, by name; always set, and the first fields of
            ``output_class`` after ``loss`` (so the Trainer's prediction tuples map back to them).
        main_metric / greater_is_better: the metric that selects the best checkpoint, and its direction.
        baseline_metric: the key of the trivial baseline :func:`beats_baseline` compares the main metric with.
        loss: the loss function of :mod:`rep4d.modeling.losses` the head trains with.
        metric_settings: settings of the task's metric (pose: ``cube_size``, the side of the virtual cube).
        synthetic_options: options of :func:`rep4d.training.synthetic.generate_clip` that ``synthetic:N`` data of
            this task uses by default (pose: a translating camera among static objects, whose parallax makes the
            translation observable).
        baseline: the trivial baseline (documentation; the scorer computes it).
    """

    name: str
    head_class: str
    output_class: str
    clip_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    output_fields: tuple[str, ...]
    main_metric: str
    greater_is_better: bool
    loss: str
    baseline: str
    baseline_metric: str = ""
    optional_clip_fields: tuple[str, ...] = ()
    metric_settings: dict = field(default_factory=dict)
    synthetic_options: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.baseline_metric:
            object.__setattr__(self, "baseline_metric", f"baseline_{self.main_metric}")


READOUT_TASK_SPECS: dict[str, ReadoutTask] = {
    task.name: task
    for task in (
        ReadoutTask(
            name="depth", head_class="ReadoutForDepthEstimation", output_class="DepthEstimationOutput",
            clip_fields=("depth",), label_names=("depth",), output_fields=("predicted_depth",),
            main_metric="abs_rel", greater_is_better=False, loss="depth_loss / log_depth_loss",
            baseline="the mean training depth everywhere",
        ),
        ReadoutTask(
            name="points", head_class="ReadoutForPointTracking", output_class="PointTrackingOutput",
            clip_fields=("query_points", "tracks", "occluded"), label_names=("query_points", "tracks", "occluded"),
            output_fields=("tracks", "occluded"), main_metric="average_pts_within_thresh", greater_is_better=True,
            loss="point_tracking_loss", baseline="tracks stay at the query point, always visible",
        ),
        ReadoutTask(
            name="boxes", head_class="ReadoutForBoxTracking", output_class="BoxTrackingOutput",
            clip_fields=("boxes",), optional_clip_fields=("box_visible",), label_names=("boxes", "box_visible"),
            output_fields=("boxes",), main_metric="mean_iou", greater_is_better=True, loss="box_tracking_loss",
            baseline="boxes stay at their first-frame position",
        ),
        ReadoutTask(
            name="pose", head_class="ReadoutForCameraPose", output_class="CameraPoseReadoutOutput",
            clip_fields=("camera_rotation", "camera_translation"),
            label_names=("camera_rotation", "camera_translation"), output_fields=("rotation", "translation"),
            main_metric="pose_epe", greater_is_better=False, loss="camera_pose_loss",
            baseline="the identity pose (R = I, t = 0)", metric_settings={"cube_size": 1.0},
            synthetic_options={"max_camera_translation": 1.0, "static_objects": True},
        ),
        ReadoutTask(
            name="classification", head_class="ReadoutForVideoClassification",
            output_class="VideoClassificationReadoutOutput", clip_fields=("label",), label_names=("labels",),
            output_fields=("logits",), main_metric="top1_accuracy", greater_is_better=True,
            loss="classification_loss", baseline="chance (1 / classes) and the majority class",
            baseline_metric="baseline_chance_accuracy",
        ),
    )
}
READOUT_TASKS = tuple(READOUT_TASK_SPECS)


def get_readout_task(name: str) -> ReadoutTask:
    """The registry entry of task ``name`` (ValueError naming the tasks otherwise)."""
    if name not in READOUT_TASK_SPECS:
        raise ValueError(f"task must be one of {READOUT_TASKS}, got {name!r}")
    return READOUT_TASK_SPECS[name]


def check_boxes(name: str, boxes, normalised: bool = True):
    """Validate (..., 4) boxes as (ymin, xmin, ymax, xmax) with min <= max (and, if ``normalised``, inside [0, 1]);
    works on torch tensors and numpy arrays alike and returns ``boxes``."""
    if len(boxes.shape) < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"`{name}` must have shape (..., 4) as (ymin, xmin, ymax, xmax), got {tuple(boxes.shape)}")
    if (boxes.numel() if hasattr(boxes, "numel") else boxes.size) == 0:
        return boxes
    if (boxes[..., 0] > boxes[..., 2]).any() or (boxes[..., 1] > boxes[..., 3]).any():
        raise ValueError(f"`{name}` must satisfy ymin <= ymax and xmin <= xmax (boxes are (ymin, xmin, ymax, xmax))")
    if normalised and (boxes.min() < 0 or boxes.max() > 1):
        raise ValueError(
            f"`{name}` must be normalised to [0, 1], got values in [{float(boxes.min()):.3g}, {float(boxes.max()):.3g}]"
        )
    return boxes


__all__ = ["ReadoutTask", "READOUT_TASK_SPECS", "READOUT_TASKS", "get_readout_task", "check_boxes"]
