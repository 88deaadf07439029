"""Label-propagation benchmarks (DAVIS-2017 J&F, JHMDB PCK, VIP mIoU) as the official RVM evaluation notebook runs them.

``rep4d.training.propagation_benchmark`` is the library behind ``rep4d benchmark propagation``. For every video of a
dataset (read by :mod:`rep4d.training.propagation_datasets`), as ``evaluate_davis`` / ``evaluate_jhmdb`` /
``evaluate_vip`` of ``colabs/rvm_evaluation_demo.ipynb`` (cells 23-25):

1. the whole frames are resized to the processing size with PIL's LANCZOS on uint8 (``mediapy.resize_video``: no
   crop; :func:`rep4d.label_propagation.resize_frames`) and scaled to float32 [0, 1];
2. a dense feature extractor maps the (T, 3, H, W) video to (T, h, w, C) features
   (:func:`rep4d.modeling.backbone_adapters.dense_feature_extractor`, for every rep4d backbone and transformers'
   video / image backbones), which are L2-normalised;
3. the first frame's mask (or joints) is encoded on the feature grid, propagated and decoded with
   :mod:`rep4d.label_propagation` (``encode_mask`` / ``encode_pose``, ``propagate_labels``, ``decode_masks`` /
   ``decode_pose``);
4. the video is scored with :mod:`rep4d.training.propagation_metrics`.

Defaults (:data:`DEFAULT_SETTINGS`): DAVIS 480x880 with top-k 7, JHMDB 320x320 with top-k 7, VIP 448x880 with top-k
10; context 20, temperature 0.7, radius 20, neighbourhood restricted.

Output folder (resumable)::

    OUTPUT/settings.json          what was run (a re-run with other settings is refused)
    OUTPUT/videos/<video>.json    one file per finished video, written atomically (temp file + rename)
    OUTPUT/results.json           per-video rows and the overall metrics (strict JSON: nan/inf -> null)
    OUTPUT/results.md             the same as markdown tables

A re-run with the same settings skips every video whose file exists, so an interrupted run continues where it
stopped and ends with the table a single run would give.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .propagation_datasets import PropagationDataset, PropagationSample, load_propagation_dataset
from .propagation_metrics import (
    PCK_THRESHOLDS,
    VIP_CLASSES,
    DavisVideoScores,
    compute_distances,
    compute_human_boxes,
    compute_iou,
    compute_pck,
    davis_summary,
    davis_video_scores,
    fast_hist,
)

RESULTS_VERSION = 1


@dataclass(frozen=True)
class PropagationSettings:
    """Geometry and hyper-parameters of one benchmark (the notebook's values by default)."""

    dataset: str
    resolution: tuple[int, int]
    n_context: int = 20
    temperature: float = 0.7
    topk: int = 7
    radius: float = 20
    restrict_neighborhood: bool = True

    def __post_init__(self):
        height, width = (int(v) for v in self.resolution)
        if height < 1 or width < 1:
            raise ValueError(f"the processing resolution must be positive HxW, got {self.resolution}")
        object.__setattr__(self, "resolution", (height, width))
        if self.n_context < 1 or self.topk < 1 or not self.temperature > 0 or not self.radius > 0:
            raise ValueError(
                f"need n_context >= 1, topk >= 1, temperature > 0 and radius > 0; got {self.n_context}, {self.topk}, "
                f"{self.temperature}, {self.radius}"
            )

    def to_json(self) -> dict:
        values = asdict(self)
        values["resolution"] = list(self.resolution)
        return values


DEFAULT_SETTINGS = {
    "davis": PropagationSettings("davis", (480, 880), topk=7),
    "jhmdb": PropagationSettings("jhmdb", (320, 320), topk=7),
    "vip": PropagationSettings("vip", (448, 880), topk=10),
}


def default_settings(dataset: str, **overrides) -> PropagationSettings:
    """The notebook's settings of ``dataset``, with ``overrides`` (None values are ignored)."""
    if dataset not in DEFAULT_SETTINGS:
        raise ValueError(f"unknown propagation benchmark {dataset!r}; choose one of {', '.join(DEFAULT_SETTINGS)}")
    return replace(DEFAULT_SETTINGS[dataset], **{k: v for k, v in overrides.items() if v is not None})


# Per-video pipeline --------------------------------------------------------------------------------------------------


@dataclass
class VideoPrediction:
    """What label propagation predicted for one video: ``masks`` (T, H, W) label ids, or ``coords`` (T, J, 2) (x, y)
    pixels with ``visible`` (T, J); plus timings in seconds."""

    masks: np.ndarray | None = None
    coords: np.ndarray | None = None
    visible: np.ndarray | None = None
    timings: dict = field(default_factory=dict)


def propagate_sample(extractor: Callable, sample: PropagationSample, settings: PropagationSettings,
                     device=None, progress: bool = False) -> VideoPrediction:
    """Run the notebook's pipeline on one video: resize, features, encode, propagate, decode."""
    import torch

    from rep4d import label_propagation as lp

    start = time.perf_counter()
    ori_hw = tuple(int(v) for v in sample.frames.shape[1:3])
    resized = lp.resize_frames(sample.frames, settings.resolution)  # whole frame, PIL LANCZOS on uint8
    pixels = lp.to_model_input(resized)  # (T, 3, H, W) float32, u8 / 255
    if device is not None:
        pixels = pixels.to(device)
    after_resize = time.perf_counter()
    with torch.inference_mode():
        features = extractor(pixels)
    features = torch.as_tensor(features)
    if features.ndim != 4 or features.shape[0] != len(resized):
        raise ValueError(
            f"the feature extractor must return ({len(resized)}, h, w, C) features, got {tuple(features.shape)}"
        )
    features = lp.normalize_features(features.detach().cpu())
    grid_hw = (int(features.shape[1]), int(features.shape[2]))
    after_features = time.perf_counter()
    options = dict(n_context=settings.n_context, temperature=settings.temperature, topk=settings.topk,
                   radius=settings.radius, restrict_neighborhood=settings.restrict_neighborhood, progress=progress)
    prediction = VideoPrediction()
    with torch.inference_mode():
        if sample.masks is not None:
            labels, label_map = lp.encode_mask(sample.masks[0], settings.resolution, grid_hw)
            labels = torch.as_tensor(labels).to(features)
            propagated = lp.propagate_labels(features, labels, **options)
            prediction.masks = np.asarray(lp.decode_masks(propagated, label_map, settings.resolution, ori_hw))
        elif sample.pose is not None:
            labels = torch.as_tensor(lp.encode_pose(sample.pose[0], ori_hw, grid_hw)).to(features)
            propagated = lp.propagate_labels(features, labels, **options)
            coords, visible = lp.decode_pose(propagated, ori_hw)
            prediction.coords = np.asarray(coords, dtype=np.float32)
            prediction.visible = np.asarray(visible, dtype=np.float64)
        else:
            raise ValueError(f"video {sample.video_id!r} has neither masks nor pose annotations")
    end = time.perf_counter()
    prediction.timings = {
        "resize_seconds": after_resize - start,
        "feature_seconds": after_features - after_resize,
        "propagation_seconds": end - after_features,
    }
    return prediction


# Per-video scores (JSON-serialisable) and the overall table ---------------------------------------------------------


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _floats(values) -> list:
    return [_finite_or_none(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def score_video(dataset: str, sample: PropagationSample, prediction: VideoPrediction) -> dict:
    """One video's scores as a JSON-ready dict (non-finite values as null)."""
    if dataset == "davis":
        scores = davis_video_scores(sample.masks, prediction.masks)
        n = scores.num_objects
        return {
            "num_objects": n,
            "J": [_floats(row) for row in scores.J],
            "F": [_floats(row) for row in scores.F],
            "JM": _floats(scores.JM),
            "FM": _floats(scores.FM),
            "FJM": _floats(scores.FJM),
            "counter": _floats(scores.counter),
            "J_mean": _finite_or_none(np.mean(scores.JM[:n])) if n else None,
            "F_mean": _finite_or_none(np.mean(scores.FM[:n])) if n else None,
            "JF_mean": _finite_or_none(np.mean(scores.FJM[:n])) if n else None,
        }
    if dataset == "vip":
        num_classes = len(VIP_CLASSES)
        # A first frame with void (255) pixels makes "void" a propagated label. The notebook's fast_hist then bins
        # those pixels into wrong cells or crashes; here they count as background (never a correct part).
        predicted = np.asarray(prediction.masks)
        outside = (predicted < 0) | (predicted >= num_classes)
        predicted = np.where(outside, 0, predicted)
        hist = np.zeros((num_classes, num_classes), np.int64)
        for t in range(len(predicted)):
            hist += fast_hist(sample.masks[t], predicted[t], num_classes)
        mean_iou, _ = compute_iou(hist)
        return {"hist": hist.tolist(), "mean_iou": _finite_or_none(mean_iou),
                "predicted_void_pixels": int(outside.sum())}
    if dataset == "jhmdb":
        gt = sample.pose.astype(np.float32)
        boxes = compute_human_boxes([gt], [prediction.visible])
        distances = compute_distances([gt], [prediction.coords], boxes, [prediction.visible], num_joints=gt.shape[1])
        row = {"human_boxes": _floats(boxes[0]),
               "distances": {str(joint): _floats(d) for joint, d in distances.items()}}
        for threshold in PCK_THRESHOLDS:
            row[f"PCK@{threshold}"] = _finite_or_none(compute_pck(distances, threshold)[0])
        return row
    raise ValueError(f"unknown propagation benchmark {dataset!r}")


def _array(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def summarize(dataset: str, rows: list[dict]) -> dict:
    """Overall metrics from the per-video rows, aggregated exactly as the notebook does."""
    if not rows:
        raise ValueError("no video was evaluated")
    if dataset == "davis":
        # the aggregation only reads the per-object slots, so J and F per frame are not needed here
        videos = [DavisVideoScores(np.zeros((0, 0)), np.zeros((0, 0)), _array(row["JM"]), _array(row["FM"]),
                                   _array(row["FJM"]), _array(row["counter"])) for row in rows]
        summary = davis_summary(videos)
        overall = {"JF_mean": summary["JF_mean"], "J_mean": summary["J_mean"], "F_mean": summary["F_mean"],
                   "num_objects": int(summary["counters"].sum())}
    elif dataset == "vip":
        hist = np.zeros((len(VIP_CLASSES), len(VIP_CLASSES)))
        for row in rows:
            hist += np.asarray(row["hist"], dtype=np.float64)
        mean_iou, per_class = compute_iou(hist)
        overall = {"mean_iou": mean_iou, "iou_per_class": {name: _finite_or_none(v) for name, v in per_class.items()}}
    elif dataset == "jhmdb":
        joints = sorted({int(j) for row in rows for j in row["distances"]})
        distances = {j: np.concatenate([_array(row["distances"].get(str(j), [])) for row in rows]) for j in joints}
        # a stored null is a non-finite distance (zero box): it never counts as correct, like inf
        distances = {j: np.where(np.isnan(d), np.inf, d) for j, d in distances.items()}
        overall = {}
        per_joint = []
        for threshold in PCK_THRESHOLDS:
            pck, joint_pck = compute_pck(distances, threshold)
            overall[f"PCK@{threshold}"] = pck
            per_joint.append(_floats(joint_pck))
        overall["pck_per_joint"] = per_joint
    else:
        raise ValueError(f"unknown propagation benchmark {dataset!r}")
    overall = {k: (_finite_or_none(v) if isinstance(v, (float, np.floating)) else v) for k, v in overall.items()}
    frames = sum(row["num_frames"] for row in rows)
    seconds = sum(row["seconds"] for row in rows)
    overall.update(num_videos=len(rows), num_frames=frames, seconds=seconds,
                   seconds_per_frame=seconds / frames if frames else None,
                   seconds_per_video=seconds / len(rows))
    return overall


# Files ---------------------------------------------------------------------------------------------------------------


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename: never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def video_file_name(video_id: str) -> str:
    """A flat file name for a video id (JHMDB ids are ``<action>/<video>``)."""
    return video_id.replace(os.sep, "__").replace("/", "__") + ".json"


def _format(value, digits: int = 4) -> str:
    if value is None:
        return "nan"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


METRIC_COLUMNS = {
    "davis": ["JF_mean", "J_mean", "F_mean"],
    "jhmdb": [f"PCK@{t}" for t in PCK_THRESHOLDS],
    "vip": ["mean_iou"],
}


def markdown_report(dataset: str, header: dict, rows: list[dict], overall: dict) -> str:
    metrics = METRIC_COLUMNS[dataset]
    lines = [f"# Label propagation on {dataset.upper()}", ""]
    lines += [f"- {key}: `{value}`" for key, value in header.items()]
    lines += ["", "## Overall", "", "| " + " | ".join(metrics + ["videos", "frames", "s/frame", "s/video"]) + " |",
              "|" + "---|" * (len(metrics) + 4)]
    lines.append("| " + " | ".join([_format(overall[m]) for m in metrics] + [
        str(overall["num_videos"]), str(overall["num_frames"]), _format(overall["seconds_per_frame"], 3),
        _format(overall["seconds_per_video"], 3)]) + " |")
    if dataset == "vip":
        lines += ["", "| class | IoU |", "|---|---|"]
        lines += [f"| {name} | {_format(v)} |" for name, v in overall["iou_per_class"].items()]
    lines += ["", "## Per video", "", "| video | " + " | ".join(metrics + ["frames", "seconds"]) + " |",
              "|" + "---|" * (len(metrics) + 3)]
    for row in rows:
        lines.append(f"| {row['video_id']} | " + " | ".join(
            [_format(row.get(m)) for m in metrics] + [str(row["num_frames"]), _format(row["seconds"], 2)]) + " |")
    return "\n".join(lines) + "\n"


# The benchmark -------------------------------------------------------------------------------------------------------


@dataclass
class BenchmarkResult:
    """``rows``: per-video results (evaluation order); ``overall``: the aggregated metrics; ``computed``: ids of the
    videos run in this call (the others were read back from the output folder); ``output_dir``."""

    dataset: str
    rows: list[dict]
    overall: dict
    computed: list[str]
    skipped: list[str]
    output_dir: Path


def load_feature_extractor(model, device: str | None = None) -> Callable:
    """A (T, 3, H, W) [0, 1] -> (T, h, w, C) feature extractor for a model folder / hub id or a loaded model."""
    import torch

    from rep4d.modeling.backbone_adapters import dense_feature_extractor

    if isinstance(model, (str, os.PathLike)):
        from transformers import AutoModel

        import rep4d

        getattr(rep4d, "register", lambda: None)()  # the Auto classes must know the rep4d models
        if Path(model).exists() and not Path(model).is_dir():
            raise ValueError(f"{model} is a file; --model takes a model folder (config.json + weights) or a hub id")
        try:
            model = AutoModel.from_pretrained(str(model))
        except OSError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise FileNotFoundError(f"cannot load the model {str(model)!r}: {first_line}") from error
    # The benchmark geometry (e.g. 480x880) is not the training one: dense_feature_extractor resamples the learned
    # position embedding for it (4DS: cubic, documented in the model), as transformers' ViT backbones do.
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    return dense_feature_extractor(model)


def run_propagation_benchmark(
    dataset: str | PropagationDataset,
    root: str | os.PathLike | None = None,
    model=None,
    output_dir: str | os.PathLike = "propagation_results",
    settings: PropagationSettings | None = None,
    max_videos: int | None = None,
    extractor: Callable | None = None,
    model_name: str | None = None,
    device: str | None = None,
    progress: bool = True,
    on_video_done: Callable[[str, dict], None] | None = None,
) -> BenchmarkResult:
    """Run (or resume) one label-propagation benchmark and write its tables.

    Args:
        dataset: ``davis``, ``jhmdb`` or ``vip`` (read from ``root``), or a :class:`PropagationDataset`.
        model: a model folder / hub id or a loaded model (features via ``dense_feature_extractor``); or pass
            ``extractor``, any callable (T, 3, H, W) float [0, 1] -> (T, h, w, C).
        output_dir: results folder; finished videos found there are not recomputed.
        settings: geometry and hyper-parameters (default: the notebook's for this dataset).
        max_videos: evaluate only the first N videos of the split.
        on_video_done: called with (video_id, row) after each newly computed video is written.
    """
    reader = dataset if isinstance(dataset, PropagationDataset) else load_propagation_dataset(dataset, root)
    name = reader.name
    settings = settings or default_settings(name)
    if settings.dataset != name:
        raise ValueError(f"settings are for {settings.dataset!r} but the dataset is {name!r}")
    if max_videos is not None and max_videos < 1:
        raise ValueError(f"max_videos must be >= 1, got {max_videos}")
    if extractor is None and model is None:
        raise ValueError("pass a model (folder or hub id) or a feature extractor")
    if model_name is None:
        if isinstance(model, (str, os.PathLike)):
            # a local folder is recorded by its absolute path, so "dir" and "dir/" resume the same run
            model_name = str(Path(model).resolve()) if Path(model).is_dir() else str(model)
        else:
            source = model if model is not None else extractor
            model_name = getattr(getattr(source, "config", None), "name_or_path", None) or getattr(
                source, "__name__", type(source).__name__)

    output_dir = Path(output_dir)
    videos_dir = output_dir / "videos"
    header = {**settings.to_json(), "model": model_name, "results_version": RESULTS_VERSION}
    settings_file = output_dir / "settings.json"
    if settings_file.exists():
        previous = json.loads(settings_file.read_text())
        if previous != header:
            changed = sorted(k for k in set(previous) | set(header) if previous.get(k) != header.get(k))
            raise ValueError(
                f"{output_dir} holds results of other settings ({', '.join(changed)} differ); "
                "use another --output folder or delete it"
            )

    video_ids = list(reader.video_ids)[: max_videos or None]
    if not video_ids:
        raise ValueError(f"the {name} split under {reader.root} lists no video")
    pending = [video_id for video_id in video_ids if not (videos_dir / video_file_name(video_id)).exists()]
    if pending and extractor is None:
        extractor = load_feature_extractor(model, device)  # before anything is written: a bad model writes nothing
    if not settings_file.exists():
        write_atomic(settings_file, json.dumps(header, indent=2) + "\n")
    rows, computed, skipped = [], [], []
    bar = video_ids
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(video_ids, desc=f"{name} videos", unit="video")
    for video_id in bar:
        path = videos_dir / video_file_name(video_id)
        if path.exists():
            row = json.loads(path.read_text())
            if row.get("video_id") != video_id:
                raise ValueError(f"{path} holds video {row.get('video_id')!r}, expected {video_id!r}")
            rows.append(row)
            skipped.append(video_id)
            continue
        start = time.perf_counter()
        sample = reader.load(video_id)
        loaded = time.perf_counter()
        prediction = propagate_sample(extractor, sample, settings, device=device, progress=progress)
        row = {"video_id": video_id, "num_frames": sample.num_frames,
               "frame_hw": list(sample.frames.shape[1:3]), **score_video(name, sample, prediction)}
        seconds = time.perf_counter() - start
        row.update(seconds=seconds, load_seconds=loaded - start, **prediction.timings)
        write_atomic(path, json.dumps(row, allow_nan=False) + "\n")
        rows.append(row)
        computed.append(video_id)
        if on_video_done is not None:
            on_video_done(video_id, row)

    overall = summarize(name, rows)
    per_video = [{k: v for k, v in row.items() if k not in ("hist", "distances", "human_boxes")} for row in rows]
    report = {"header": header, "overall": overall, "videos": per_video}
    write_atomic(output_dir / "results.json", json.dumps(report, indent=2, allow_nan=False) + "\n")
    write_atomic(output_dir / "results.md", markdown_report(name, header, rows, overall))
    return BenchmarkResult(name, rows, overall, computed, skipped, output_dir)


__all__ = [
    "DEFAULT_SETTINGS",
    "BenchmarkResult",
    "PropagationSettings",
    "VideoPrediction",
    "default_settings",
    "load_feature_extractor",
    "markdown_report",
    "propagate_sample",
    "run_propagation_benchmark",
    "score_video",
    "summarize",
    "write_atomic",
]
