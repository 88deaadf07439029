"""The 4DS readout benchmark (paper Tables 2 / 3) over any backbone: the library behind ``rep4d benchmark readouts``.

For every task preset (:mod:`rep4d.configuration.readout_presets`) :func:`run_readout_benchmark`

1. reads the task's train and eval splits in the dataset's own layout (:func:`~rep4d.training.readout_datasets.
   open_task_source`, one sub-folder of ``data_root`` per dataset);
2. builds the preset's readout on the backbone (a rep4d model folder or Hub id, a transformers model folder of any
   family the backbone adapters accept, or ``random:4ds-<size>`` / ``random:videomae-<size>``), frozen (features
   computed once and cached in memory, :class:`~rep4d.training.readout_data.CachedFeatureDataset`) or fine-tuned
   end to end (backbone learning rate x0.003);
3. trains it with the transformers ``Trainer`` on the preset's schedule (AdamW, warm-up, cosine to 1e-7; ``max_steps``
   shortens it, the warm-up in proportion; ``sweep`` runs every learning rate of the preset and keeps the best);
   With ``cache_features=False`` the frozen backbone runs on every batch instead (no gradients): the paper's
   setting for large datasets, whose cached features would not fit in memory (SSv2 at 16x224x224 on a 1024-wide
   backbone: ~13 MB per clip). Runs without the cache (fine-tuning, uncached frozen) apply the preset's training
   augmentation (:class:`~rep4d.training.readout_datasets.AugmentedSource`; ``augment`` overrides); cached runs
   do not, since the features of a clip are computed once;
4. evaluates it with the preset's test procedure (K700: 7 clips of the looped video averaged; points: the named
   TAP-Vid protocol, ``4ds-clip`` for Perception Test) next to the task's trivial baseline.

Output folder (resumable; ``accelerate launch`` runs it on several processes, files are written by the main one)::

    OUTPUT/runs/<backbone>__<mode>/<task>/result.json   one per finished task, written atomically; a re-run skips it
    OUTPUT/runs/<backbone>__<mode>/<task>/readout/      the trained readout (from_pretrained)
    OUTPUT/results.json, OUTPUT/results.md             every finished run of the folder beside the papers' rows
    OUTPUT/radar.png                                   one polygon per backbone run

A task whose ``result.json`` exists with the same settings is read back instead of trained; with other settings
the run is refused (use another ``--output``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rep4d.configuration.readout_presets import READOUT_PRESETS, TABLE2_TASKS, ReadoutPreset, get_readout_preset
from rep4d.configuration.readout_tasks import READOUT_TASK_SPECS
from rep4d.training.propagation_benchmark import write_atomic

RESULTS_VERSION = 1
RESULT_FILE = "result.json"

# Published rows (paper-results.md): 4DS paper Table 2 (frozen) and Table 3 (fine-tuned 20k steps), MooG paper
# Table 1 (frozen) / Table 2 (end to end). Values in the tables' units (percent; ScanNet AbsRel x10; raw EPE).
TABLE2_COLUMNS = ("re10k", "perception-test-points", "scannet", "waymo-open", "ssv2", "k700-2020")
PUBLISHED_FROZEN = {
    "SigLIP": (1705, 2.71, 40.2, 1.47, 45.5, 50.5, 66.4),
    "DINOv2-L": (303, 2.00, 36.6, 1.02, 51.7, 52.2, 63.5),
    "DINOv2-g": (1135, 1.89, 39.9, 0.91, 50.6, 54.8, 65.4),
    "VideoPrism-B": (114, 0.93, 71.9, 1.20, 66.6, 60.7, 64.3),
    "VideoPrism-g": (1113, 0.90, 75.0, 0.96, 68.5, 65.4, 70.3),
    "V-JEPA-L": (307, 0.39, 75.6, 1.14, 73.3, 66.0, 55.2),
    "V-JEPA-H": (635, 0.34, 78.0, 1.02, 74.9, 68.9, 57.0),
    "VideoMAE-B": (87, 0.37, 79.2, 1.51, 73.1, 52.3, 38.9),
    "VideoMAE-L": (305, 0.28, 78.3, 1.09, 74.9, 62.7, 52.5),
    "VideoMAE-H": (633, 0.30, 77.1, 1.03, 74.6, 64.2, 54.5),
    "VideoMAEv2-g": (1013, 0.51, 73.7, 1.08, 72.6, 65.6, 69.7),
    "4DS-S": (24, 0.73, 75.9, 2.05, 69.6, 39.9, 28.1),
    "4DS-B": (91, 0.51, 78.9, 1.65, 72.7, 49.6, 35.7),
    "4DS-B-dist-e": (91, 0.34, 81.4, 1.21, 76.3, 60.3, 46.4),
    "4DS-L": (310, 0.33, 81.5, 1.23, 75.9, 57.6, 45.2),
    "4DS-H": (639, 0.29, 81.8, 1.14, 76.1, 60.0, 47.5),
    "4DS-G": (1848, 0.27, 82.7, 1.01, 77.4, 62.5, 52.1),
    "4DS-e": (3811, 0.27, 82.4, 0.95, 78.0, 64.3, 54.4),
    "4DS-j": (21495, 0.24, 83.4, 0.84, 78.3, 68.2, 58.0),
}
PUBLISHED_FINETUNE = {
    "SigLIP": (1705, 2.84, 32.9, 1.33, 44.9, 57.4, 67.7),
    "DINOv2-L": (303, 2.00, 48.3, 0.85, 50.8, 61.0, 62.4),
    "DINOv2-g": (1135, 2.09, 40.5, 0.72, 50.2, 64.2, 64.8),
    "VideoPrism-B": (114, 0.81, 72.8, 1.07, 66.6, 63.6, 59.6),
    "VideoPrism-g": (1113, 0.81, 73.7, 0.87, 67.1, 68.6, 71.2),
    "V-JEPA-L": (307, 0.35, 76.0, 0.94, 74.1, 70.4, 56.8),
    "V-JEPA-H": (635, 0.29, 71.5, 0.85, 74.6, 72.9, 57.6),
    "VideoMAE-B": (87, 0.36, 79.7, 1.50, 72.0, 54.8, 36.4),
    "VideoMAE-L": (305, 0.28, 79.1, 0.98, 74.0, 65.6, 50.3),
    "VideoMAE-H": (633, 0.32, 77.3, 0.93, 73.3, 66.5, 53.0),
    "VideoMAEv2-g": (1013, 0.42, 76.7, 0.91, 71.1, 70.1, 70.1),
    "4DS-S": (24, 0.72, 75.2, 2.05, 69.1, 40.3, 25.4),
    "4DS-B": (91, 0.48, 79.5, 1.49, 71.8, 52.4, 34.9),
    "4DS-L": (310, 0.37, 81.1, 1.07, 74.8, 61.8, 45.2),
    "4DS-H": (639, 0.36, 81.9, 0.96, 75.7, 64.9, 48.6),
    "4DS-G": (1848, 0.29, 83.0, 0.81, 77.2, 67.4, 53.0),
    "4DS-e": (3811, 0.28, 82.9, 0.73, 77.5, 68.9, 52.7),
    "4DS-j": (21495, 0.26, 84.2, 0.62, 78.0, 72.9, 57.3),
}
MOOG_COLUMNS = ("movi-e-points", "movi-e-depth", "movi-e-boxes")
PUBLISHED_MOOG = {  # MooG paper Table 1 (frozen) / Table 2 (end to end): MOVi-E points AJ, depth AbsRel, boxes IoU
    "frozen": {"MooG": (0.839, 0.0359, 0.793), "Grid": (0.769, 0.0451, 0.730), "Grid Rec.": (0.778, 0.0443, 0.734),
               "DINOv1 (B)": (0.518, 0.0371, 0.724), "DINOv2 (B)": (0.544, 0.0370, 0.738),
               "VideoMAEv2 (S)": (0.595, 0.0567, 0.700), "VideoMAEv2 (B)": (0.681, 0.0458, 0.736),
               "VideoMAEv2 (G)": (0.822, 0.0311, 0.793)},
    "finetune": {"MooG": (0.886, 0.0263, 0.803), "Grid": (0.860, 0.0264, 0.775), "Grid Rec.": (0.902, 0.0233, 0.806),
                 "DINOv1": (0.698, 0.0381, 0.728), "DINOv2": (0.732, 0.0439, 0.734)},
}


@dataclass
class ReadoutBenchmarkSettings:
    """What a benchmark run does (the ``rep4d benchmark readouts`` flags). None keeps the preset's value."""

    backbone: str
    tasks: list[str]
    data_root: str
    output_dir: str = "benchmark_results/readouts"
    mode: str = "frozen"
    max_steps: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    sweep: bool = False
    num_frames: int | None = None
    image_size: list[int] | None = None
    readout_num_params: int | None = None
    readout_num_heads: int | None = None
    readout_options: dict | None = None
    max_videos: int | None = None
    tapvid_protocol: str | None = None
    augment: bool | None = None
    cache_features: bool = True
    num_workers: int = 0
    seed: int = 0
    use_cpu: bool | None = None
    progress: bool = True

    def __post_init__(self):
        if self.mode not in ("frozen", "finetune"):
            raise ValueError(f"mode must be frozen or finetune, got {self.mode!r}")
        if not self.tasks:
            raise ValueError(f"give at least one task: {', '.join(READOUT_PRESETS)}")
        for task in self.tasks:
            get_readout_preset(task)
        if self.image_size is not None:
            self.image_size = [int(v) for v in self.image_size]
        if self.readout_options:
            from rep4d.configuration.configuration_readout import ReadoutConfig

            unknown = sorted(set(self.readout_options) - set(ReadoutConfig.__dataclass_fields__))
            if unknown:
                raise ValueError(f"unknown readout option(s) {', '.join(unknown)}: expected ReadoutConfig fields "
                                 "(e.g. feature_position_embedding, num_fourier_bands, point_certainty_threshold)")

    def resume_key(self, task: str) -> dict:
        """The settings a finished task's result must share to be reused."""
        keys = ("backbone", "mode", "max_steps", "batch_size", "learning_rate", "sweep", "num_frames", "image_size",
                "readout_num_params", "readout_num_heads", "readout_options", "max_videos", "tapvid_protocol",
                "augment", "cache_features", "seed")
        return {"task": task, **{key: getattr(self, key) for key in keys}}


@dataclass
class ReadoutBenchmarkResult:
    output_dir: Path
    results: dict[str, dict] = field(default_factory=dict)
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)


def backbone_slug(backbone: str) -> str:
    """A folder name for a backbone id or path."""
    text = backbone.rstrip("/")
    if not text.startswith("random:") and ("/" in text or "\\" in text) and Path(text).exists():
        text = Path(text).name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "backbone"


def _normalise_backbone(spec: str) -> str:
    return "random:fourds-" + spec[len("random:4ds-"):] if spec.startswith("random:4ds-") else spec


def effective_preset(preset: ReadoutPreset, settings: ReadoutBenchmarkSettings) -> ReadoutPreset:
    """The preset with the run's overrides of clip length / size (tiny runs)."""
    changes = {}
    if settings.num_frames is not None:
        changes.update(num_frames=settings.num_frames, frame_stride=1)
    if settings.image_size is not None:
        changes["image_size"] = tuple(settings.image_size)
    return preset.with_overrides(**changes) if changes else preset


def load_backbone_for_readout(spec: str, num_frames: int, image_size):
    """(backbone config, pretrained backbone module or None): ``random:`` specs give a fresh config; folders and Hub
    ids of every family the adapters accept load through :meth:`BackboneAdapter.from_pretrained` (the vision tower
    of text-vision models)."""
    import rep4d  # noqa: F401 - registers the rep4d model types with the Auto classes
    from rep4d.training.finetune import random_backbone_config

    spec = _normalise_backbone(spec)
    if spec.startswith("random:"):
        return random_backbone_config(spec, num_frames, image_size), None
    from transformers import AutoConfig

    from rep4d.modeling.backbone_adapters import BackboneAdapter

    getattr(rep4d, "register", lambda: None)()  # the Auto classes must know the rep4d models
    if Path(spec).exists() and not Path(spec).is_dir():
        raise ValueError(f"{spec} is a file; --backbone takes a model folder (config.json + weights) or a hub id")
    try:
        config = AutoConfig.from_pretrained(spec)
    except OSError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FileNotFoundError(f"cannot load the backbone {spec!r}: {first_line}") from error
    if config.model_type == "rep4d_readout":
        raise ValueError(f"{spec} is a readout, not a backbone; pass its backbone")
    adapter = BackboneAdapter.from_pretrained(spec)
    return config, adapter.model


def build_task_readout(preset: ReadoutPreset, settings: ReadoutBenchmarkSettings, label_names=None):
    """The preset's readout model on the run's backbone (weights copied in)."""
    import torch

    from rep4d.modeling.modeling_readout import readout_class_for_task

    backbone_config, backbone = load_backbone_for_readout(settings.backbone, preset.num_frames, preset.image_size)
    overrides = {}
    if settings.readout_num_params is not None:
        overrides["readout_num_params"] = settings.readout_num_params
    if settings.readout_num_heads is not None:
        overrides["readout_num_heads"] = settings.readout_num_heads
    overrides.update(settings.readout_options or {})
    if preset.task == "classification":
        if not label_names:
            raise ValueError(f"the {preset.name} training data gives no class names")
        names = list(label_names)
        overrides.update(num_labels=len(names), id2label=dict(enumerate(names)),
                         label2id={name: i for i, name in enumerate(names)})
    if preset.task == "depth":
        patch = list(preset.readout_options.get("decoding_patch_size", [2, 8, 8]))
        if preset.num_frames % patch[0]:
            patch[0] = 1
        overrides["decoding_patch_size"] = patch
    config = preset.readout_config(backbone_config, settings.mode, num_frames=preset.num_frames,
                                   image_size=preset.image_size, backbone_name_or_path=settings.backbone, **overrides)
    model = readout_class_for_task(preset.task)(config)
    if backbone is not None:
        model.backbone.model.load_state_dict(backbone.state_dict())
    return model.to(torch.float32)


def _metric_pair(preset: ReadoutPreset, scores: dict, prefix: str) -> tuple[float | None, float | None]:
    metric, spec = preset.metric, READOUT_TASK_SPECS[preset.task]
    baseline_key = spec.baseline_metric if metric == spec.main_metric else f"baseline_{metric}"
    value, baseline = scores.get(prefix + metric), scores.get(prefix + baseline_key)
    return (None if value is None else float(value)), (None if baseline is None else float(baseline))


def _finite(value):
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def run_task(preset: ReadoutPreset, settings: ReadoutBenchmarkSettings, task_dir: Path) -> dict:
    """Train and evaluate one task (every learning rate of the preset with ``sweep``); returns its result dict."""
    import torch
    from transformers import set_seed

    from rep4d.training.finetune import (
        ReadoutTrainer,
        evaluate_points_protocol,
        make_compute_metrics,
        pixel_normalisation,
        training_depth_statistics,
    )
    from rep4d.training.readout_data import (
        CachedFeatureDataset,
        ReadoutDataConfig,
        ReadoutDataset,
        collate_readout_batch,
    )
    from rep4d.training.readout_datasets import AugmentedSource, open_task_source

    start = time.perf_counter()
    if not settings.progress:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    preset = effective_preset(preset, settings)
    schedule = preset.schedule(settings.mode)
    train_source = open_task_source(preset, settings.data_root, "train", settings.max_videos)
    cache = settings.cache_features and settings.mode == "frozen"
    augment = not cache if settings.augment is None else settings.augment
    if augment:
        train_source = AugmentedSource(train_source, preset.task, settings.seed)
    eval_source = open_task_source(preset, settings.data_root, "eval", settings.max_videos)
    learning_rates = list(schedule.learning_rates) if settings.sweep and settings.learning_rate is None else [
        settings.learning_rate if settings.learning_rate is not None else schedule.learning_rate]
    batch_size = settings.batch_size or schedule.batch_size
    num_points = int(preset.augmentation.get("num_tracks", preset.augmentation.get("num_points", 64)))
    cached = {}
    runs = []
    best = None
    for learning_rate in learning_rates:
        set_seed(settings.seed)
        model = build_task_readout(preset, settings, train_source.label_names)
        mean, std = pixel_normalisation(model.config.backbone_config)
        num_labels = model.config.num_labels if preset.task == "classification" else None
        data_config = ReadoutDataConfig(num_frames=model.num_frames, image_size=model.image_size, pixel_mean=mean,
                                        pixel_std=std, num_points=num_points if preset.task == "points" else None,
                                        num_labels=num_labels, seed=settings.seed)
        train_dataset = ReadoutDataset(train_source, preset.task, data_config)
        eval_dataset = ReadoutDataset(eval_source, preset.task, data_config)
        depth_mean = None
        if preset.task == "depth":
            depth_mean, depth_std = training_depth_statistics(train_dataset)
            model.config.depth_mean, model.config.depth_std = depth_mean, depth_std
        # Each process of a distributed launch computes (and caches) on its own GPU.
        device = ("cpu" if settings.use_cpu or not torch.cuda.is_available() else
                  f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
        model.to(device)
        clips = int(model.config.num_test_clips) if preset.task == "classification" else 1
        eval_batch = clips * max(1, batch_size // clips)
        if cache:
            if "train" not in cached:  # the backbone is frozen: its features are computed once for every rate
                cached["train"] = CachedFeatureDataset(train_dataset, model, eval_batch, settings.progress, device)
                cached["eval"] = (None if preset.task == "points" else
                                  CachedFeatureDataset(eval_dataset, model, eval_batch, settings.progress, device))
            train_data, eval_data = cached["train"], cached["eval"]
        else:
            train_data, eval_data = train_dataset, None if preset.task == "points" else eval_dataset
        args = preset.training_arguments(
            str(task_dir / "checkpoints"), settings.mode, learning_rate=learning_rate, max_steps=settings.max_steps,
            batch_size=batch_size, per_device_eval_batch_size=eval_batch, eval_strategy="no", save_strategy="no",
            logging_steps=max(1, min(50, (settings.max_steps or schedule.max_steps) // 10)),
            disable_tqdm=not settings.progress, seed=settings.seed, use_cpu=device.startswith("cpu"),
            dataloader_num_workers=settings.num_workers, ddp_find_unused_parameters=False,
            label_names=list(_label_names(preset.task)),
        )
        trainer = ReadoutTrainer(model=model, args=args, train_dataset=train_data, data_collator=collate_readout_batch,
                                 compute_metrics=make_compute_metrics(model, model.image_size, None, depth_mean))
        if not settings.progress:
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)  # keep stdout for the command's report
        train_output = trainer.train()
        if preset.task == "points":
            protocol = settings.tapvid_protocol or preset.test_procedure.get("tapvid_protocol", "tapvid-first")
            tapvid = evaluate_points_protocol(trainer.model, eval_source, protocol, progress=settings.progress)
            scores = {f"eval_{k}": v for k, v in tapvid.items() if isinstance(v, float)}
            scores["eval_tapvid_protocol"] = tapvid["protocol"]["name"]
        else:
            scores = trainer.evaluate(eval_dataset=eval_data)
        value, baseline = _metric_pair(preset, scores, "eval_")
        run = {"learning_rate": learning_rate, "value": value, "baseline": baseline,
               "train_loss": float(train_output.metrics.get("train_loss", float("nan"))),
               "eval": {k: v for k, v in scores.items()}}
        runs.append(run)
        better = best is None or (value is not None and (
            best[0]["value"] is None or (value > best[0]["value"] if preset.greater_is_better else
                                         value < best[0]["value"])))
        if better:
            best = (run, trainer)
    run, trainer = best
    if trainer.is_world_process_zero():
        staging = task_dir / ".readout.partial"
        shutil.rmtree(staging, ignore_errors=True)
        trainer.save_model(str(staging))
        shutil.rmtree(task_dir / "readout", ignore_errors=True)
        staging.replace(task_dir / "readout")
    shutil.rmtree(task_dir / "checkpoints", ignore_errors=True)
    value, baseline = run["value"], run["baseline"]
    beats = None if value is None or baseline is None else bool(
        value > baseline if preset.greater_is_better else value < baseline)
    backbone_params = sum(p.numel() for p in trainer.model.backbone.parameters())
    readout_params = sum(p.numel() for n, p in trainer.model.named_parameters() if not n.startswith("backbone."))
    return _finite({
        "version": RESULTS_VERSION,
        "task": preset.name,
        "readout": preset.task,
        "dataset": preset.dataset,
        "column": preset.column,
        "backbone": settings.backbone,
        "mode": settings.mode,
        "metric": preset.metric,
        "greater_is_better": preset.greater_is_better,
        "table_scale": preset.table_scale,
        "value": value,
        "baseline": baseline,
        "table_value": None if value is None else value * preset.table_scale,
        "table_baseline": None if baseline is None else baseline * preset.table_scale,
        "beats_baseline": beats,
        "learning_rate": run["learning_rate"],
        "sweep": [{"learning_rate": r["learning_rate"], "value": r["value"]} for r in runs],
        "train_loss": run["train_loss"],
        "eval": run["eval"],
        "num_train_clips": len(train_source),
        "num_eval_clips": len(eval_source),
        "max_steps": int(trainer.args.max_steps),
        "batch_size": batch_size,
        "backbone_parameters": int(backbone_params),
        "readout_parameters": int(readout_params),
        "preset": preset.to_dict(),
        "settings": settings.resume_key(preset.name),
        "seconds": time.perf_counter() - start,
    })


def _label_names(task: str) -> list[str]:
    from rep4d.configuration.readout_tasks import get_readout_task

    return list(get_readout_task(task).label_names)


def run_readout_benchmark(settings: ReadoutBenchmarkSettings) -> ReadoutBenchmarkResult:
    """Run (or read back) every task of ``settings`` and write the tables; see the module docstring."""
    output = Path(settings.output_dir)
    run_dir = output / "runs" / f"{backbone_slug(settings.backbone)}__{settings.mode}"
    result = ReadoutBenchmarkResult(output_dir=output)
    is_main = _is_main_process()
    for name in settings.tasks:
        preset = get_readout_preset(name)
        task_dir = run_dir / name
        path = task_dir / RESULT_FILE
        if path.is_file():
            previous = json.loads(path.read_text())
            wanted, found = _finite(settings.resume_key(name)), previous.get("settings") or {}
            if found != wanted:
                keys = sorted(key for key in set(wanted) | set(found) if wanted.get(key) != found.get(key))
                raise ValueError(
                    f"{path} was computed with other settings ({', '.join(keys)}); use another --output or delete "
                    "that folder"
                )
            result.results[name] = previous
            result.skipped.append(name)
            continue
        task_result = run_task(preset, settings, task_dir)
        if is_main:
            write_atomic(path, json.dumps(task_result, indent=2))
        result.results[name] = task_result
        result.computed.append(name)
    if is_main:
        result.tables = write_tables(output)
    return result


def _is_main_process() -> bool:
    """Rank 0 of a distributed launch (``accelerate launch`` / ``torchrun`` set ``RANK`` before the process group
    exists), or a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


# ----------------------------------------------------------------------------------------------------------------
# Tables and radar plot
# ----------------------------------------------------------------------------------------------------------------


def collect_results(output_dir) -> list[dict]:
    """Every finished task result under ``output_dir/runs``."""
    rows = []
    for path in sorted(Path(output_dir).glob(f"runs/*/*/{RESULT_FILE}")):
        rows.append(json.loads(path.read_text()))
    return rows


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _group_runs(rows: list[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    runs: dict[tuple[str, str], dict[str, dict]] = {}
    for row in rows:
        runs.setdefault((row["backbone"], row["mode"]), {})[row["task"]] = row
    return runs


def markdown_tables(rows: list[dict]) -> str:
    """Table 2 / 3 layout (and MooG's Table 1 layout for MOVi-E tasks): the papers' rows, then ours and the trivial
    baselines of the same evaluation data."""
    runs = _group_runs(rows)
    lines = ["# Readout benchmark", "",
             "Units as in the papers: RE10k pose end-point error (lower is better), Perception "
             "Test average Jaccard %, ScanNet AbsRel x10 (lower), Waymo mean IoU % (first frame excluded), SSv2 / "
             "K700 top-1 %. `ours` rows are this folder's runs (steps and data as run: a short run on a subset is "
             "not comparable to the papers' 40k steps); `baseline` rows are the trivial predictions on the same "
             "evaluation clips (identity pose, mean depth, boxes/points that stay, chance accuracy).", ""]
    for mode, published, title in (("frozen", PUBLISHED_FROZEN, "Frozen backbone + attention readout (Table 2)"),
                                   ("finetune", PUBLISHED_FINETUNE, "End-to-end fine-tuning (Table 3)")):
        ours = {key: value for key, value in runs.items() if key[1] == mode and set(value) & set(TABLE2_COLUMNS)}
        if not ours:
            continue
        header = ["model", "params (M)"] + [READOUT_PRESETS[c].column for c in TABLE2_COLUMNS]
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for model, values in published.items():
            lines.append(f"| {model} | {values[0]:,} | " + " | ".join(f"{v:.2f}" for v in values[1:]) + " |")
        for (backbone, _), tasks in ours.items():
            params = next(iter(tasks.values()))["backbone_parameters"] / 1e6
            cells = [_fmt(tasks[c]["table_value"]) if c in tasks else "" for c in TABLE2_COLUMNS]
            base = [_fmt(tasks[c]["table_baseline"]) if c in tasks else "" for c in TABLE2_COLUMNS]
            lines.append(f"| **ours: {backbone}** | {params:.2f} | " + " | ".join(cells) + " |")
            lines.append(f"| baseline ({backbone} data) | - | " + " | ".join(base) + " |")
        lines.append("")
    for mode in ("frozen", "finetune"):
        ours = {key: value for key, value in runs.items() if key[1] == mode and set(value) & set(MOOG_COLUMNS)}
        if not ours:
            continue
        header = ["model"] + [READOUT_PRESETS[c].column for c in MOOG_COLUMNS]
        lines += [f"## MooG tasks on Kubric MOVi-E ({'Table 1, frozen' if mode == 'frozen' else 'Table 2, end to end'})",
                  "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for model, values in PUBLISHED_MOOG[mode].items():
            lines.append(f"| {model} | " + " | ".join(f"{v:.4g}" for v in values) + " |")
        for (backbone, _), tasks in ours.items():
            cells = [_fmt(tasks[c]["table_value"], 4) if c in tasks else "" for c in MOOG_COLUMNS]
            base = [_fmt(tasks[c]["table_baseline"], 4) if c in tasks else "" for c in MOOG_COLUMNS]
            lines.append(f"| **ours: {backbone}** | " + " | ".join(cells) + " |")
            lines.append(f"| baseline ({backbone} data) | " + " | ".join(base) + " |")
        lines.append("")
    lines += ["## Runs", "", "| backbone | mode | task | metric | ours | baseline | beats baseline | lr | steps | "
              "train / eval clips | seconds |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['backbone']} | {row['mode']} | {row['task']} | {row['metric']} | {_fmt(row['value'], 4)} | "
            f"{_fmt(row['baseline'], 4)} | {row['beats_baseline']} | {row['learning_rate']:g} | {row['max_steps']} | "
            f"{row['num_train_clips']} / {row['num_eval_clips']} | {row['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def radar_scores(tasks: dict[str, dict]) -> dict[str, float]:
    """Per task a score in [0, 1] for the radar plot: metrics that are fractions (accuracy, Jaccard, IoU) as they
    are; lower-is-better metrics (pose EPE, AbsRel) as the gain over the trivial baseline, ``1 - value / baseline``
    clipped to [0, 1]."""
    scores = {}
    for name, row in tasks.items():
        value, baseline = row.get("value"), row.get("baseline")
        if value is None:
            continue
        if row["greater_is_better"]:
            scores[name] = float(np.clip(value, 0.0, 1.0))
        elif baseline:
            scores[name] = float(np.clip(1.0 - value / baseline, 0.0, 1.0))
    return scores


def write_radar_plot(rows: list[dict], path, size: int = 640) -> Path | None:
    """A radar (spider) plot PNG, one polygon per (backbone, mode), drawn with PIL; None with fewer than 3 axes."""
    from PIL import Image, ImageDraw

    runs = {f"{backbone} ({mode})": radar_scores(tasks) for (backbone, mode), tasks in _group_runs(rows).items()}
    axes = [name for name in READOUT_PRESETS if any(name in scores for scores in runs.values())]
    if len(axes) < 3:
        axes = axes + [f"(none {i})" for i in range(3 - len(axes))]
    image = Image.new("RGB", (size, size + 30 * len(runs)), "white")
    draw = ImageDraw.Draw(image)
    centre, radius = size / 2, size * 0.33

    def point(axis: int, value: float) -> tuple[float, float]:
        angle = -math.pi / 2 + 2 * math.pi * axis / len(axes)
        return centre + radius * value * math.cos(angle), centre + radius * value * math.sin(angle)

    for ring in (0.25, 0.5, 0.75, 1.0):
        draw.polygon([point(i, ring) for i in range(len(axes))], outline=(200, 200, 200))
    for i, name in enumerate(axes):
        draw.line([point(i, 0), point(i, 1)], fill=(160, 160, 160))
        x, y = point(i, 1.12)
        label = READOUT_PRESETS[name].column if name in READOUT_PRESETS else ""
        draw.text((x - 3 * len(label), y - 6), label, fill="black")
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
    for k, (label, scores) in enumerate(runs.items()):
        colour = colours[k % len(colours)]
        polygon = [point(i, scores.get(name, 0.0)) for i, name in enumerate(axes)]
        draw.polygon(polygon, outline=colour)
        for x, y in polygon:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.rectangle([20, size + 30 * k + 8, 34, size + 30 * k + 22], fill=colour)
        draw.text((42, size + 30 * k + 9), label, fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial.png")
    image.save(temporary)
    temporary.replace(path)
    return path


def write_tables(output_dir) -> dict[str, Path]:
    """results.json, results.md and radar.png of every finished run under ``output_dir``."""
    output = Path(output_dir)
    rows = collect_results(output)
    payload = {
        "version": RESULTS_VERSION,
        "columns": {name: READOUT_PRESETS[name].column for name in READOUT_PRESETS},
        "published": {
            "frozen_table2": {model: dict(zip(("params_m", *TABLE2_COLUMNS), values))
                              for model, values in PUBLISHED_FROZEN.items()},
            "finetune_table3": {model: dict(zip(("params_m", *TABLE2_COLUMNS), values))
                                for model, values in PUBLISHED_FINETUNE.items()},
            "moog": {mode: {model: dict(zip(MOOG_COLUMNS, values)) for model, values in table.items()}
                     for mode, table in PUBLISHED_MOOG.items()},
        },
        "runs": [{key: row[key] for key in ("backbone", "mode", "task", "metric", "value", "baseline", "table_value",
                                              "table_baseline", "beats_baseline", "learning_rate", "max_steps",
                                              "num_train_clips", "num_eval_clips", "backbone_parameters",
                                              "readout_parameters", "seconds")} for row in rows],
    }
    tables = {
        "json": write_atomic(output / "results.json", json.dumps(_finite(payload), indent=2)),
        "markdown": write_atomic(output / "results.md", markdown_tables(rows)),
    }
    radar = write_radar_plot(rows, output / "radar.png")
    if radar is not None:
        tables["radar"] = radar
    return tables


__all__ = [
    "ReadoutBenchmarkSettings",
    "ReadoutBenchmarkResult",
    "PUBLISHED_FROZEN",
    "PUBLISHED_FINETUNE",
    "PUBLISHED_MOOG",
    "TABLE2_COLUMNS",
    "TABLE2_TASKS",
    "run_readout_benchmark",
    "run_task",
    "build_task_readout",
    "load_backbone_for_readout",
    "collect_results",
    "markdown_tables",
    "radar_scores",
    "write_radar_plot",
    "write_tables",
]
