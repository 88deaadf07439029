"""Fine-tuning and evaluation of the 4D readout heads with the transformers ``Trainer`` (``rep4d finetune``/``evaluate``).

:func:`run_finetune` builds a readout (:mod:`rep4d.modeling.modeling_readout`) on a backbone (a saved rep4d or
transformers video model, a Hub repo id, or ``random:<family>-<size>`` for a randomly initialised 4DS/VideoMAE),
builds the datasets (:mod:`rep4d.training.readout_data`), trains with a :class:`ReadoutTrainer` (evaluation every
``eval_steps``, best checkpoint kept by the task's main metric, TensorBoard logs under ``output_dir/runs``) and writes
``output_dir/`` = the best model (``load_readout`` / ``from_pretrained``) + ``metrics.json``.

Frozen mode (default): the backbone runs in inference mode without gradients and, with ``cache_features``, only once
per clip: training then reads cached (B, T, N, C) features. End-to-end mode (``end_to_end=True``): the backbone trains
too, at ``learning_rate * backbone_learning_rate_scale`` (0.003 by default, as in the 4DS paper) through
:func:`~rep4d.training.optimization.parameter_groups`.

Every evaluation also reports the task's trivial baseline on the same clips (``baseline_*`` keys; the registry
:mod:`rep4d.configuration.readout_tasks` names each task's): points: tracks stay at the query point and are always
visible; depth: the mean training depth everywhere; boxes: boxes stay at their first-frame position; pose: the
identity pose; classification: chance (1 / classes) and the majority class.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainingArguments

from rep4d.configuration.readout_presets import SMALL_BACKBONE_SIZES
from rep4d.configuration.readout_tasks import READOUT_TASK_SPECS, get_readout_task
from rep4d.training.metrics import ScoringOptions, beats_baseline, score_task
from rep4d.training.optimization import adamw, parameter_groups
from rep4d.training.readout_data import (
    CachedFeatureDataset,
    ReadoutDataConfig,
    ReadoutDataset,
    collate_readout_batch,
    open_clip_source,
)

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


@dataclass
class FinetuneConfig:
    """Options of :func:`run_finetune` (the ``rep4d finetune`` flags, see its ``--help``)."""

    task: str
    backbone: str
    data: str
    output_dir: str
    eval_data: str | None = None
    eval_fraction: float = 0.2
    num_frames: int | None = None
    image_size: list[int] | None = None
    backbone_overrides: dict = field(default_factory=dict)
    readout_overrides: dict = field(default_factory=dict)
    end_to_end: bool = False
    cache_features: bool = True
    learning_rate: float = 1e-3
    backbone_learning_rate_scale: float | None = None
    weight_decay: float = 0.0
    max_steps: int = 200
    warmup_steps: int = 0
    lr_scheduler_type: str = "cosine"
    batch_size: int = 8
    eval_batch_size: int | None = None
    eval_steps: int | None = None
    logging_steps: int = 10
    num_points: int | None = None
    tapvid_protocol: str = "tapvid-first"
    readout_num_params: int = 256
    readout_num_heads: int = 8
    seed: int = 0
    report_to: str = "tensorboard"
    progress: bool = True
    save_pictures: int = 0
    keep_checkpoints: bool = False
    use_cpu: bool | None = None
    dataloader_num_workers: int = 0


# ----------------------------------------------------------------------------------------------------------------
# Backbone and model
# ----------------------------------------------------------------------------------------------------------------


def pixel_normalisation(backbone_config) -> tuple[tuple | None, tuple | None]:
    """(mean, std) the backbone expects on [0, 1] pixels, from its backbone adapter (one table for every family):
    transformers' backbones are normalised as their processors do (ImageNet, CLIP, ...), 4DS/MooG/RVM are not."""
    from rep4d.modeling.backbone_adapters import backbone_adapter_class

    adapter = backbone_adapter_class(backbone_config)
    return adapter.pixel_mean, adapter.pixel_std


def random_backbone_config(spec: str, num_frames: int, image_size, overrides: dict | None = None):
    """Config of a randomly initialised backbone ``random:<fourds|videomae>-<size>`` for clips of ``num_frames``
    frames of ``image_size``; tubelets are 2x8x8 below 128 px, 2x16x16 above."""
    from rep4d.configuration.configuration_fourds import FOURDS_SIZES, FourDSConfig

    name = spec[len("random:") :]
    family, _, size = name.partition("-")
    size = size or "mini"
    sizes = {**SMALL_BACKBONE_SIZES, **(FOURDS_SIZES if family == "fourds" else {})}
    if family not in ("fourds", "videomae") or size not in sizes:
        raise ValueError(
            f"unknown random backbone {spec!r}; use random:fourds-<size> or random:videomae-<size> with size in "
            f"{', '.join(sorted(set(SMALL_BACKBONE_SIZES) | set(FOURDS_SIZES)))} (videomae: {', '.join(SMALL_BACKBONE_SIZES)})"
        )
    height, width = int(image_size[0]), int(image_size[1])
    patch = 8 if min(height, width) < 128 else 16
    settings = dict(sizes[size])
    if family == "fourds":
        settings.update(tubelet_size=[2, patch, patch], image_size=[height, width], num_frames=int(num_frames))
        settings.update(overrides or {})
        return FourDSConfig(**settings)
    from transformers import VideoMAEConfig

    if height != width:
        raise ValueError(f"VideoMAE needs square frames, got {height}x{width}; pass --image-size N N")
    settings.update(image_size=height, patch_size=patch, tubelet_size=2, num_frames=int(num_frames))
    settings.update(overrides or {})
    return VideoMAEConfig(**settings)


def load_backbone(spec: str, num_frames: int, image_size, overrides: dict | None = None):
    """(backbone config, pretrained backbone model or None) for a ``--backbone`` value."""
    if spec.startswith("random:"):
        return random_backbone_config(spec, num_frames, image_size, overrides), None
    from transformers import AutoConfig, AutoModel

    import rep4d  # noqa: F401 - registers the rep4d model types with the Auto classes

    config = AutoConfig.from_pretrained(spec)
    if config.model_type == "rep4d_readout":
        raise ValueError(f"{spec} is a readout, not a backbone; pass its backbone, or use `rep4d evaluate`")
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    model = AutoModel.from_pretrained(spec, config=config, dtype=torch.float32)
    return model.config, model


def build_readout(config: FinetuneConfig, data_frames: int, data_size, label_names=None, num_labels=None):
    """The readout model of ``config.task`` on the requested backbone."""
    from rep4d.configuration.configuration_readout import ReadoutConfig
    from rep4d.modeling.modeling_readout import readout_class_for_task

    frames = config.num_frames or data_frames
    size = config.image_size or data_size
    backbone_config, backbone = load_backbone(config.backbone, frames, size, config.backbone_overrides)
    settings = dict(
        task=config.task,
        backbone_config=backbone_config,
        backbone_name_or_path=config.backbone,
        freeze_backbone=not config.end_to_end,
        readout_num_params=config.readout_num_params,
        readout_num_heads=config.readout_num_heads,
    )
    if config.num_frames is not None and backbone is not None:
        settings["num_frames"] = config.num_frames
    if config.backbone_learning_rate_scale is not None:
        settings["backbone_learning_rate_scale"] = config.backbone_learning_rate_scale
    if config.task == "classification":
        num_labels = num_labels or (len(label_names) if label_names else None)
        if not num_labels:
            raise ValueError("classification needs the number of classes (label names or labels in the data)")
        names = list(label_names) if label_names else [f"class_{i}" for i in range(num_labels)]
        settings.update(num_labels=num_labels, id2label=dict(enumerate(names)),
                        label2id={name: i for i, name in enumerate(names)})
    if config.task == "depth":
        patch = list(settings.get("decoding_patch_size", [2, 8, 8]))
        if frames % patch[0]:
            patch[0] = 1
        settings["decoding_patch_size"] = patch
    settings.update(config.readout_overrides)
    readout_config = ReadoutConfig(**settings)
    cls = readout_class_for_task(config.task)
    if backbone is None:
        return cls(readout_config)
    model = cls(readout_config)
    model.backbone.model.load_state_dict(backbone.state_dict())
    return model


# ----------------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------------


def _as_tuple(value) -> tuple:
    return value if isinstance(value, (tuple, list)) else (value,)


def named_fields(task: str, predictions, labels) -> tuple[dict, dict]:
    """The Trainer's ``predictions`` and ``label_ids`` (tuples in the order of the head's output fields without
    ``loss``, and of the task's ``label_names``) as dicts by name: the registry's ``output_fields`` (always set, the
    first fields of the task's output class, so the tuple starts with them) and ``label_names``."""
    spec = get_readout_task(task)
    predictions, labels = _as_tuple(predictions), _as_tuple(labels)
    if len(predictions) < len(spec.output_fields) or len(labels) != len(spec.label_names):
        raise ValueError(
            f"the {task} readout's predictions must start with {spec.output_fields} and its labels be "
            f"{spec.label_names}; got {len(predictions)} prediction and {len(labels)} label arrays"
        )
    return dict(zip(spec.output_fields, predictions)), dict(zip(spec.label_names, labels))


def task_metrics(task: str, predictions: tuple, labels: tuple, image_size, *, tapvid_query_mode=None,
                 train_depth_mean: float | None = None, num_test_clips: int = 1,
                 num_labels: int | None = None) -> dict[str, float]:
    """Metrics and trivial baselines of a task (:func:`rep4d.training.metrics.score_task`) from the Trainer's
    tuples: the readout outputs (without loss, in output order) and the targets in the task's ``label_names`` order.

    Points: ``tapvid_query_mode`` None (default) scores with the mode that matches how the clips' queries were
    sampled (:func:`~rep4d.training.tapvid.infer_query_mode`: ``first`` when every query is at its track's first
    visible frame, else ``strided``); an explicit ``first`` on queries that are not first-visible is refused.
    Benchmark numbers come from a named protocol instead (:func:`evaluate_points_protocol`)."""
    outputs, targets = named_fields(task, predictions, labels)
    options = ScoringOptions(image_size=tuple(image_size), tapvid_query_mode=tapvid_query_mode,
                             train_depth_mean=train_depth_mean, num_test_clips=num_test_clips, num_labels=num_labels)
    return score_task(task, outputs, targets, options)


def make_compute_metrics(model, image_size, tapvid_query_mode=None, train_depth_mean=None):
    config = model.config

    def compute_metrics(evaluation) -> dict[str, float]:
        return task_metrics(
            config.task, evaluation.predictions, evaluation.label_ids, image_size,
            tapvid_query_mode=tapvid_query_mode, train_depth_mean=train_depth_mean,
            num_test_clips=config.num_test_clips, num_labels=getattr(config, "num_labels", None),
        )

    return compute_metrics


# ----------------------------------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------------------------------


class ReadoutTrainer(Trainer):
    """A Trainer whose optimizer takes :func:`~rep4d.training.optimization.parameter_groups`: readout at the
    learning rate, backbone (in end-to-end mode) at ``learning_rate * backbone_learning_rate_scale``, weight decay by
    the one no-decay rule (none on biases, norms, position embeddings and learned queries)."""

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = self.model if model is None else model
            groups = parameter_groups(
                model, self.args.weight_decay, self.args.learning_rate, backbone_prefix="backbone.",
                backbone_learning_rate_scale=model.config.backbone_learning_rate_scale,
            )
            self.optimizer = adamw(
                groups, lr=self.args.learning_rate, betas=(self.args.adam_beta1, self.args.adam_beta2),
                eps=self.args.adam_epsilon,
            )
        return self.optimizer


def _report_to(value: str) -> list[str]:
    if value in ("none", "", None):
        return []
    wanted = [item.strip() for item in value.split(",") if item.strip()]
    if "tensorboard" in wanted:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            logger.warning("tensorboard is not installed; logging to the console only (pip install tensorboard)")
            wanted.remove("tensorboard")
    return wanted


def training_arguments(config: FinetuneConfig, output_dir: str, eval_steps: int, **overrides) -> TrainingArguments:
    spec = READOUT_TASK_SPECS[config.task]
    use_cpu = config.use_cpu if config.use_cpu is not None else not torch.cuda.is_available()
    settings = dict(
        output_dir=output_dir,
        use_cpu=use_cpu,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size or config.batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        max_steps=config.max_steps,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler_type,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model=spec.main_metric,
        greater_is_better=spec.greater_is_better,
        logging_steps=config.logging_steps,
        report_to=_report_to(config.report_to),
        remove_unused_columns=False,  # the forward arguments differ per task; keep every collated field
        label_names=list(spec.label_names),
        disable_tqdm=not config.progress,
        seed=config.seed,
        dataloader_num_workers=config.dataloader_num_workers,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


# ----------------------------------------------------------------------------------------------------------------
# Fine-tuning and evaluation entry points
# ----------------------------------------------------------------------------------------------------------------


def split_train_eval(dataset: ReadoutDataset, fraction: float, seed: int) -> tuple[ReadoutDataset, ReadoutDataset]:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1) when no eval data is given, got {fraction}")
    count = len(dataset)
    num_eval = max(1, int(round(count * fraction)))
    if count - num_eval < 1:
        raise ValueError(f"{count} clips cannot be split into training and evaluation; pass --eval-data")
    order = np.random.default_rng(seed).permutation(count)
    return dataset.subset(sorted(order[num_eval:])), dataset.subset(sorted(order[:num_eval]))


def training_depth_statistics(dataset, limit: int = 64) -> tuple[float, float]:
    """(mean, std) of the valid depth of (up to ``limit``) training clips: the constant of the mean-depth baseline,
    and the centre/scale of the depth head's output (``depth_mean``/``depth_std`` of the readout config)."""
    total, total_squared, count = 0.0, 0.0, 0
    for position in range(min(len(dataset), limit)):
        depth = dataset[position]["depth"].double()
        valid = torch.isfinite(depth) & (depth > 0)
        values = depth[valid]
        total, total_squared, count = total + float(values.sum()), total_squared + float((values**2).sum()), (
            count + int(values.numel()))
    if not count:
        raise ValueError("the training clips have no valid depth (finite, > 0)")
    mean = total / count
    return mean, max(math.sqrt(max(total_squared / count - mean**2, 0.0)), 1e-6)


def run_finetune(config: FinetuneConfig) -> dict:
    """Train a readout as configured; returns (and writes to ``output_dir/metrics.json``) its metrics."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    source = open_clip_source(config.data, config.task, config.num_frames, config.image_size)
    first = source.load(0)
    data_frames, data_size = int(first["video"].shape[0]), list(first["video"].shape[1:3])
    num_labels = len(source.label_names) if source.label_names else None
    if config.task == "classification" and num_labels is None:
        num_labels = 1 + max(int(source.load(i)["label"]) for i in range(len(source)))
    model = build_readout(config, data_frames, data_size, source.label_names, num_labels)
    mean, std = pixel_normalisation(model.config.backbone_config)
    data_config = ReadoutDataConfig(
        num_frames=model.num_frames, image_size=model.image_size, pixel_mean=mean, pixel_std=std,
        num_points=config.num_points, num_labels=getattr(model.config, "num_labels", None) if config.task ==
        "classification" else None, seed=config.seed,
    )
    dataset = ReadoutDataset(source, config.task, data_config)
    if config.eval_data:
        eval_source = open_clip_source(config.eval_data, config.task, config.num_frames, config.image_size)
        train_dataset, eval_dataset = dataset, ReadoutDataset(eval_source, config.task, data_config)
    else:
        train_dataset, eval_dataset = split_train_eval(dataset, config.eval_fraction, config.seed)
    picture_dataset = eval_dataset
    if config.task == "points":
        check_points_protocol(picture_dataset.source, config.tapvid_protocol, picture_dataset.indices)
    train_depth_mean = None
    if config.task == "depth":
        train_depth_mean, train_depth_std = training_depth_statistics(train_dataset)
        model.config.depth_mean, model.config.depth_std = train_depth_mean, train_depth_std
    if config.cache_features and not config.end_to_end:
        train_dataset = CachedFeatureDataset(train_dataset, model, config.eval_batch_size or config.batch_size,
                                             progress=config.progress)
        eval_dataset = CachedFeatureDataset(eval_dataset, model, config.eval_batch_size or config.batch_size,
                                            progress=config.progress)
    eval_steps = config.eval_steps or max(1, config.max_steps // 4)
    args = training_arguments(config, str(output_dir / "checkpoints"), eval_steps)
    trainer = ReadoutTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collate_readout_batch,
        compute_metrics=make_compute_metrics(model, model.image_size, None, train_depth_mean),
    )
    train_output = trainer.train()
    eval_metrics = trainer.evaluate()  # the best checkpoint (load_best_model_at_end)
    trainer.save_model(str(output_dir))
    if not config.keep_checkpoints:
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    spec = READOUT_TASK_SPECS[config.task]
    results = {
        "task": config.task,
        "backbone": config.backbone,
        "mode": "end_to_end" if config.end_to_end else "frozen",
        "main_metric": spec.main_metric,
        "greater_is_better": spec.greater_is_better,
        "num_train_clips": len(train_dataset),
        "num_eval_clips": len(eval_dataset),
        "train": {key: float(value) for key, value in train_output.metrics.items()},
        "eval": {key: float(value) for key, value in eval_metrics.items()},
        "train_depth_mean": train_depth_mean,
        "log_history": trainer.state.log_history,
        "seconds": time.perf_counter() - start,
        "config": asdict(config),
    }
    results["beats_baseline"] = beats_baseline(config.task, results["eval"])
    if config.task == "points":
        # The Trainer's evaluations above score the clips' own queries (best-model selection); the reported
        # benchmark numbers come from the named TAP-Vid protocol on the evaluation videos.
        results["tapvid"] = evaluate_points_protocol(trainer.model, picture_dataset.source, config.tapvid_protocol,
                                                     picture_dataset.indices, progress=config.progress)
        results["tapvid_protocol"] = results["tapvid"]["protocol"]["name"]
    if config.save_pictures:
        from rep4d.readout_pictures import save_readout_pictures

        results["pictures"] = [str(p) for p in save_readout_pictures(
            trainer.model, picture_dataset, output_dir / "pictures", config.save_pictures)]
    (output_dir / METRICS_FILE).write_text(json.dumps(_json_safe(results), indent=2))
    return results


def _json_safe(value):
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def evaluate_points_protocol(model, source, protocol="tapvid-first", indices=None, progress: bool = True) -> dict:
    """TAP-Vid metrics of a point-tracking readout on the videos of ``source`` (indices ``indices``) under a named
    protocol (:mod:`rep4d.training.tapvid`: ``tapvid-first``, ``tapvid-strided``, ``4ds-clip``): the protocol's
    frames, resolution and query sampling, scored with its paired query mode; the stay-at-query baseline under
    ``baseline_*``. The returned dict names the protocol (``protocol``, ``query_mode``)."""
    from rep4d.training.tapvid import evaluate_tracker, readout_tracker, tapvid_videos_from_source

    return evaluate_tracker(protocol, tapvid_videos_from_source(source, indices), readout_tracker(model, protocol),
                            progress=progress)


def check_points_protocol(source, protocol, indices=None) -> None:
    """Refuse (before any training) a protocol that the data cannot serve: ``4ds-clip`` needs videos of at least
    (16 - 1) * 4 + 1 frames."""
    from rep4d.training.readout_data import TapVidPickleSource
    from rep4d.training.tapvid import get_tapvid_protocol

    protocol = get_tapvid_protocol(protocol)
    if protocol.num_frames is None:
        return
    index = list(range(len(source)) if indices is None else indices)[0]
    if isinstance(source, TapVidPickleSource):
        frames = len(source.videos[index]["video"])
    else:
        frames = int(np.asarray(source.load(index)["video"]).shape[0])
    needed = (protocol.num_frames - 1) * protocol.frame_stride + 1
    if frames < needed:
        raise ValueError(
            f"the {protocol.name} TAP-Vid protocol evaluates {protocol.num_frames}-frame clips at stride "
            f"{protocol.frame_stride} ({needed} frames); {source.name(index)} has {frames}: use tapvid-first or "
            "tapvid-strided (whole videos)"
        )


def run_evaluate(model_dir: str, data: str, output: str | None = None, batch_size: int = 8,
                 num_points: int | None = None, tapvid_protocol: str = "tapvid-first", save_pictures: int = 0,
                 pictures_dir: str | None = None, progress: bool = True, use_cpu: bool | None = None,
                 max_clips: int | None = None) -> dict:
    """Run a saved readout over a dataset; returns (and writes to ``output``, if given) its metrics and baselines.

    Point-tracking readouts are scored under the TAP-Vid protocol ``tapvid_protocol`` (whole videos through
    :func:`evaluate_points_protocol`; ``results["tapvid_protocol"]`` names it); other tasks on the readout's clips.
    """
    from rep4d.modeling.modeling_readout import load_readout

    start = time.perf_counter()
    model = load_readout(model_dir, dtype=torch.float32)
    task = model.config.task
    if task == "points":
        from rep4d.training.tapvid import get_tapvid_protocol

        get_tapvid_protocol(tapvid_protocol)  # a clear error for an unknown name before any work
    source = open_clip_source(data, task, model.num_frames, model.image_size)
    mean, std = pixel_normalisation(model.config.backbone_config)
    data_config = ReadoutDataConfig(
        num_frames=model.num_frames, image_size=model.image_size, pixel_mean=mean, pixel_std=std,
        num_points=num_points, num_labels=getattr(model.config, "num_labels", None) if task == "classification"
        else None,
    )
    dataset = ReadoutDataset(source, task, data_config)
    if max_clips is not None:
        dataset = dataset.subset(range(min(max_clips, len(dataset))))
    # The mean-depth baseline uses the training mean that run_finetune stored in the config (else the data's mean).
    train_depth_mean = model.config.depth_mean if task == "depth" and model.config.depth_mean > 0 else None
    tapvid = None
    if task == "points":
        check_points_protocol(source, tapvid_protocol, dataset.indices)
        tapvid = evaluate_points_protocol(model, source, tapvid_protocol, dataset.indices, progress=progress)
        scores = {f"eval_{key}": value for key, value in tapvid.items() if isinstance(value, float)}
    else:
        config = FinetuneConfig(task=task, backbone=str(model_dir), data=str(data), output_dir=str(model_dir),
                                batch_size=batch_size, progress=progress, report_to="none", use_cpu=use_cpu)
        args = training_arguments(config, str(Path(output or model_dir).parent / ".rep4d_evaluate"), 1,
                                  load_best_model_at_end=False, save_strategy="no", eval_strategy="no", max_steps=-1)
        trainer = ReadoutTrainer(
            model=model, args=args, data_collator=collate_readout_batch,
            compute_metrics=make_compute_metrics(model, model.image_size, None, train_depth_mean),
        )
        if not progress:
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)  # keep stdout for the JSON report
        scores = trainer.evaluate(eval_dataset=dataset)
        shutil.rmtree(args.output_dir, ignore_errors=True)
    spec = READOUT_TASK_SPECS[task]
    results = {
        "task": task,
        "model": str(model_dir),
        "data": str(data),
        "num_clips": len(dataset),
        "main_metric": spec.main_metric,
        "greater_is_better": spec.greater_is_better,
        "eval": {key: float(value) for key, value in scores.items()},
        "beats_baseline": beats_baseline(task, scores),
        "train_depth_mean": train_depth_mean,
        "seconds": time.perf_counter() - start,
    }
    if tapvid is not None:
        results["tapvid_protocol"] = tapvid["protocol"]["name"]
        results["tapvid"] = tapvid
    if save_pictures:
        from rep4d.readout_pictures import save_readout_pictures

        folder = Path(pictures_dir) if pictures_dir else Path(output or model_dir).with_suffix("") / "pictures"
        if pictures_dir is None and output is None:
            folder = Path(model_dir) / "evaluate_pictures"
        results["pictures"] = [str(p) for p in save_readout_pictures(model, dataset, folder, save_pictures)]
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        partial = Path(output).with_name(f".{Path(output).name}.partial")
        partial.write_text(json.dumps(_json_safe(results), indent=2))
        partial.replace(output)  # never a half-written report
    return results


__all__ = [
    "FinetuneConfig",
    "ReadoutTrainer",
    "build_readout",
    "load_backbone",
    "random_backbone_config",
    "pixel_normalisation",
    "task_metrics",
    "named_fields",
    "make_compute_metrics",
    "training_arguments",
    "run_finetune",
    "run_evaluate",
    "evaluate_points_protocol",
    "check_points_protocol",
]
