"""Video training data: ``datasets`` tables of video paths, decoded with PyAV on access, with clip augmentations.

Sources (all become a ``datasets.Dataset`` with a path column; frames are decoded lazily in ``with_transform``):

* a folder (searched recursively for video files),
* a list of paths, or a CSV file with a path column (``file_name`` by default, relative to the CSV's folder),
* a ``datasets.Dataset`` (e.g. from the Hub or ``load_from_disk``) with a string path column or a
  ``Video(decode=False)`` column (``{"path", "bytes"}``).

Each example is a clip of ``num_frames`` frames at ``frame_stride``. In training mode (``train=True``):

* temporal: a uniformly random start among the valid ones;
* spatial: one random resized crop per clip (area fraction ``crop_scale``, aspect ratio ``crop_ratio``, as in the
  Inception/MAE crop), resized to ``height`` x ``width`` with antialiased bilinear interpolation;
* a horizontal flip with probability ``flip_prob``;
* colour jitter with probability ``color_prob``, the same for every frame of the clip, the four operations in a
  random order (the TapNet/Kubric colour augmentation that the MooG code refers to, with TensorFlow semantics):
  brightness ``x + delta`` with ``delta ~ U(-brightness, brightness)`` (32/255), contrast
  ``(x - mean) * c + mean`` with a per-frame, per-channel mean and ``c ~ U(contrast)`` (0.6-1.4), saturation: blend
  with the grey image (ITU-R 601 luma) with ``s ~ U(saturation)`` (0.6-1.4), and a hue rotation by
  ``h ~ U(-hue, hue)`` of the colour circle (0.1); values are clipped to [0, 1] after each step.

In evaluation mode (``train=False``) the clip is the central one, the frames are resized (shorter side) and centre
cropped, with no flip or colour change. Randomness comes only from ``np.random.default_rng((seed, epoch, index))``,
so an example is reproducible whatever the worker or process that decodes it; call ``set_epoch`` every epoch.

Unreadable or too-short videos never crash a run: files are probed when the dataset is built (header frame count,
or the ``num_frames`` column when the table has one) and dropped with a warning; a file that fails later while
decoding is replaced by the next usable example, with a warning. Both are counted in ``VideoClipDataset.stats``
(counts in the process that decoded; with DataLoader workers, read the per-batch ``num_skipped`` that the collate
function returns).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".gif")
INDEX_COLUMN = "__rep4d_index__"


@dataclass
class ClipConfig:
    """What one training example looks like and how it is augmented (see the module docstring)."""

    num_frames: int = 16
    frame_stride: int = 1
    height: int = 64
    width: int = 64
    train: bool = True
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    color_prob: float = 0.8
    brightness: float = 32 / 255
    contrast: tuple[float, float] = (0.6, 1.4)
    saturation: tuple[float, float] = (0.6, 1.4)
    hue: float = 0.1

    def __post_init__(self):
        for name in ("num_frames", "frame_stride", "height", "width"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        for name in ("flip_prob", "color_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")

    @property
    def span(self) -> int:
        """Frames a clip covers in the source video."""
        return (self.num_frames - 1) * self.frame_stride + 1


@dataclass
class SkipStats:
    """Videos that could not be used: dropped when probing, or replaced after failing to decode."""

    corrupt: int = 0
    too_short: int = 0
    decode_failures: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.corrupt + self.too_short + self.decode_failures


# ----------------------------------------------------------------------------------------------------------------
# Building the table of videos
# ----------------------------------------------------------------------------------------------------------------


def paths_from_folder(folder: str | os.PathLike, extensions=VIDEO_EXTENSIONS) -> list[str]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} does not exist")
    return sorted(str(path) for path in folder.rglob("*") if path.suffix.lower() in extensions and path.is_file()
                  and not path.name.startswith("."))


def paths_from_csv(csv_path: str | os.PathLike, path_column: str = "file_name", root=None) -> tuple[list[str], dict]:
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"CSV file {csv_path} does not exist")
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and path_column not in rows[0]:
        raise ValueError(f"{csv_path} has no column {path_column!r}; columns are {list(rows[0])}")
    root = Path(root) if root is not None else csv_path.parent
    paths = [str(root / row[path_column]) for row in rows]
    extra = {name: [row[name] for row in rows] for name in (rows[0] if rows else {}) if name != path_column}
    return paths, extra


def _probe_num_frames(source) -> int:
    import av

    with av.open(source) as container:
        stream = container.streams.video[0]
        return stream.frames or sum(1 for packet in container.demux(stream) if packet.size)


# ----------------------------------------------------------------------------------------------------------------
# Augmentations on float (T, C, H, W) clips in [0, 1]
# ----------------------------------------------------------------------------------------------------------------


def random_resized_crop_box(rng: np.random.Generator, height: int, width: int, scale, ratio) -> tuple[int, int, int, int]:
    """(top, left, crop_height, crop_width) of an Inception-style random crop; falls back to the centre crop."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        crop_w = int(round(math.sqrt(target * aspect)))
        crop_h = int(round(math.sqrt(target / aspect)))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            return top, left, crop_h, crop_w
    aspect = width / height
    if aspect < ratio[0]:
        crop_w, crop_h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        crop_h, crop_w = height, int(round(height * ratio[1]))
    else:
        crop_w, crop_h = width, height
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def resize_clip(clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if clip.shape[-2:] == (height, width):
        return clip
    return F.interpolate(clip, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def _grey(clip: torch.Tensor) -> torch.Tensor:
    return (0.299 * clip[:, 0] + 0.587 * clip[:, 1] + 0.114 * clip[:, 2]).unsqueeze(1)


def adjust_hue(clip: torch.Tensor, delta: float) -> torch.Tensor:
    """Rotate hues by ``delta`` turns (TF ``adjust_hue`` semantics) on (T, 3, H, W) in [0, 1]."""
    from torchvision.transforms.v2 import functional as TF

    return TF.adjust_hue(clip, delta)


def color_jitter(clip: torch.Tensor, rng: np.random.Generator, config: ClipConfig) -> torch.Tensor:
    brightness = rng.uniform(-config.brightness, config.brightness)
    contrast = rng.uniform(*config.contrast)
    saturation = rng.uniform(*config.saturation)
    hue = rng.uniform(-config.hue, config.hue)
    for operation in rng.permutation(4):
        if operation == 0:
            clip = clip + brightness
        elif operation == 1:
            mean = clip.mean(dim=(-2, -1), keepdim=True)
            clip = (clip - mean) * contrast + mean
        elif operation == 2:
            grey = _grey(clip)
            clip = grey + (clip - grey) * saturation
        else:
            clip = adjust_hue(clip.clamp(0, 1), hue)
        clip = clip.clamp(0.0, 1.0)
    return clip


def augment_clip(frames: np.ndarray, rng: np.random.Generator, config: ClipConfig) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (T, 3, height, width) in [0, 1], augmented as ``config`` says."""
    clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    source_h, source_w = clip.shape[-2:]
    if config.train:
        top, left, crop_h, crop_w = random_resized_crop_box(rng, source_h, source_w, config.crop_scale,
                                                            config.crop_ratio)
        clip = resize_clip(clip[..., top:top + crop_h, left:left + crop_w], config.height, config.width)
        if rng.uniform() < config.flip_prob:
            clip = clip.flip(-1)
        if rng.uniform() < config.color_prob:
            clip = color_jitter(clip, rng, config)
    else:
        # Resize the shorter side (keeping the aspect ratio) so the target fits, then take the centre crop.
        factor = max(config.height / source_h, config.width / source_w)
        resized_h, resized_w = max(config.height, round(source_h * factor)), max(config.width, round(source_w * factor))
        clip = resize_clip(clip, resized_h, resized_w)
        top, left = (resized_h - config.height) // 2, (resized_w - config.width) // 2
        clip = clip[..., top:top + config.height, left:left + config.width]
    return clip.clamp_(0.0, 1.0).contiguous()


# ----------------------------------------------------------------------------------------------------------------
# The dataset
# ----------------------------------------------------------------------------------------------------------------


class VideoClipDataset(torch.utils.data.Dataset):
    """Map-style dataset of augmented clips over a ``datasets.Dataset`` of video paths.

    ``dataset[i]`` is ``{"pixel_values": float32 (T, C, H, W) in [0, 1], "index": i, "num_skipped": k}`` plus
    ``"labels"`` when ``label_column`` is set. ``hf_dataset`` is the underlying table with the decoding
    transform attached (``with_transform``); ``stats`` counts the videos that were skipped.
    """

    def __init__(self, table, config: ClipConfig, path_column: str, seed: int = 0, label_column: str | None = None,
                 probe: bool = True, max_retries: int = 10):
        self.config, self.path_column, self.seed, self.label_column = config, path_column, seed, label_column
        self.max_retries, self.epoch, self.stats = max_retries, 0, SkipStats()
        self._lock = threading.Lock()
        if len(table) == 0:
            raise ValueError("the video dataset is empty")
        if path_column not in table.column_names:
            raise ValueError(f"the dataset has no column {path_column!r}; columns are {table.column_names}")
        if label_column is not None and label_column not in table.column_names:
            raise ValueError(f"the dataset has no label column {label_column!r}; columns are {table.column_names}")
        if probe:
            table = self._drop_unusable(table)
        self.table = table
        self.hf_dataset = table.add_column(INDEX_COLUMN, list(range(len(table)))).with_transform(self._transform)

    # -- probing --------------------------------------------------------------------------------------------
    def _drop_unusable(self, table):
        from tqdm.auto import tqdm

        known = table["num_frames"] if "num_frames" in table.column_names else None
        keep, lengths = [], []
        sources = table[self.path_column]
        for row, source in enumerate(tqdm(sources, desc="probing videos", unit="video", disable=len(sources) < 500)):
            name = self._name(source)
            try:
                total = int(known[row]) if known is not None else self._with_source(source, _probe_num_frames)
            except Exception as error:  # noqa: BLE001 - any decoder error means the file is unusable
                self._skip("corrupt", name, f"cannot open video {name}: {error}")
                continue
            lengths.append(total)
            if total < self.config.span:
                self._skip("too_short", name,
                           f"skipping {name}: {total} frames, a clip of {self.config.num_frames} frames at stride "
                           f"{self.config.frame_stride} needs {self.config.span}")
                continue
            keep.append(row)
        if not keep:
            longest = max(lengths) if lengths else 0
            raise ValueError(
                f"no usable video: a clip of {self.config.num_frames} frames at stride {self.config.frame_stride} "
                f"needs {self.config.span} frames, the longest readable video has {longest} "
                f"({self.stats.corrupt} unreadable, {self.stats.too_short} too short)"
            )
        return table.select(keep) if len(keep) < len(table) else table

    def _skip(self, kind: str, name: str, message: str) -> None:
        with self._lock:
            setattr(self.stats, kind, getattr(self.stats, kind) + 1)
            self.stats.skipped.append(name)
        logger.warning(message)

    @staticmethod
    def _name(source) -> str:
        if isinstance(source, dict):
            return str(source.get("path") or "<bytes>")
        return str(source)

    @staticmethod
    def _with_source(source, function):
        """Call ``function`` on a path; ``Video(decode=False)`` dicts with bytes go through a file-like object."""
        if isinstance(source, dict):
            if source.get("bytes"):
                return function(io.BytesIO(source["bytes"]))
            source = source.get("path")
        if source is None or not os.path.exists(str(source)):
            raise FileNotFoundError(f"video file {source} does not exist")
        return function(str(source))

    # -- decoding ----------------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Change the random draws of every example (call once per epoch, before iterating)."""
        self.epoch = int(epoch)

    def rng(self, index: int, attempt: int = 0) -> np.random.Generator:
        """The generator of example ``index`` this epoch (``attempt`` > 0 for a replacement after a failure)."""
        key = [self.seed, self.epoch, int(index)] + ([attempt] if attempt else [])
        return np.random.default_rng(key)

    def _frame_indices(self, total: int, rng: np.random.Generator) -> np.ndarray:
        span = self.config.span
        if total < span:
            raise ValueError(f"{total} frames, fewer than the {span} a clip needs")
        start = int(rng.integers(0, total - span + 1)) if self.config.train else (total - span) // 2
        return np.arange(start, start + span, self.config.frame_stride)

    def _decode(self, source, rng: np.random.Generator) -> np.ndarray:
        from rep4d.processing.video_processing_base import read_video_pyav

        def sample(metadata, **_):
            return self._frame_indices(int(metadata.total_num_frames), rng)

        return self._with_source(source, lambda path: read_video_pyav(path, sample)[0])

    def load_example(self, index: int) -> dict:
        """Decode and augment example ``index``; on failure use the next rows (counted in ``stats``)."""
        skipped = 0
        for attempt in range(self.max_retries + 1):
            row = (index + attempt) % len(self.table)
            record = self.table[row]
            rng = self.rng(index, attempt)
            try:
                frames = self._decode(record[self.path_column], rng)
            except Exception as error:  # noqa: BLE001 - a bad file must never stop training
                skipped += 1
                self._skip("decode_failures", self._name(record[self.path_column]),
                           f"failed to decode {self._name(record[self.path_column])} ({error}); using another video")
                continue
            example = {"pixel_values": augment_clip(frames, rng, self.config), "index": index, "num_skipped": skipped}
            if self.label_column is not None:
                example["labels"] = int(record[self.label_column])
            return example
        raise RuntimeError(f"{self.max_retries + 1} consecutive videos from row {index} failed to decode")

    def _transform(self, batch: dict) -> dict:
        examples = [self.load_example(int(index)) for index in batch[INDEX_COLUMN]]
        return {key: [example[key] for example in examples] for key in examples[0]}

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} videos")
        row = self.hf_dataset[int(index) % len(self)]
        return {key: value[0] if isinstance(value, list) else value for key, value in row.items()}


def collate_video_clips(examples: list[dict]) -> dict:
    """Stack examples into ``pixel_values`` (B, T, C, H, W) float32, ``labels`` (B,), ``index`` and ``num_skipped``."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    batch = {
        "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
        "index": torch.tensor([int(example["index"]) for example in examples]),
        "num_skipped": torch.tensor(sum(int(example.get("num_skipped", 0)) for example in examples)),
    }
    if "labels" in examples[0]:
        batch["labels"] = torch.tensor([int(example["labels"]) for example in examples], dtype=torch.long)
    return batch


def build_video_dataset(
    source,
    config: ClipConfig | None = None,
    seed: int = 0,
    path_column: str | None = None,
    label_column: str | None = None,
    root: str | os.PathLike | None = None,
    probe: bool = True,
) -> VideoClipDataset:
    """A :class:`VideoClipDataset` from a folder, a CSV file, a list of paths or a ``datasets.Dataset``.

    ``path_column`` defaults to ``file_name`` for CSV files and to the first of ``video_path``, ``path``,
    ``video``, ``file_name`` for datasets. Relative paths of a dataset are resolved against ``root`` when given.
    """
    from datasets import Dataset

    config = config or ClipConfig()
    if isinstance(source, Dataset):
        table = source
        if path_column is None:
            candidates = [name for name in ("video_path", "path", "video", "file_name") if name in table.column_names]
            if not candidates:
                raise ValueError(f"no path column found in {table.column_names}; pass path_column=")
            path_column = candidates[0]
        if root is not None:
            table = table.map(lambda row: {path_column: str(Path(root) / row[path_column])})
    elif isinstance(source, (list, tuple)):
        table, path_column = Dataset.from_dict({"video_path": [str(path) for path in source]}), "video_path"
    else:
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"data source {source} does not exist")
        if source.suffix.lower() == ".csv":
            paths, extra = paths_from_csv(source, path_column or "file_name", root)
            table, path_column = Dataset.from_dict({"video_path": paths, **extra}), "video_path"
        elif source.is_dir():
            table, path_column = Dataset.from_dict({"video_path": paths_from_folder(source)}), "video_path"
        else:
            raise FileNotFoundError(f"data source {source} is neither a folder nor a CSV file")
    if len(table) == 0:
        raise ValueError(f"the video dataset from {source if not isinstance(source, Dataset) else 'Dataset'} is empty")
    return VideoClipDataset(table, config, path_column, seed=seed, label_column=label_column, probe=probe)
