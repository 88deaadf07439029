"""Datasets for the 4D readout heads: clip sources -> task examples -> batches (``rep4d.training.readout_data``).

A *source* yields raw clips, dicts of numpy arrays named as the synthetic generator names them
(:mod:`rep4d.training.synthetic`); :class:`ReadoutDataset` validates the fields a task needs, crops/resizes the clip
to the backbone's input and returns tensors named as the readout's ``forward`` arguments; :func:`collate_readout_batch`
stacks them.

Sources (:func:`open_clip_source` picks one from a path):

* **Per-clip npz folder** (the synthetic generator's output, and the documented layout for your own data): a folder
  of ``<stem>.npz`` files, each with the task fields below (``np.savez``, no pickles: read with
  ``allow_pickle=False``), and the video either as a ``video`` array in the npz (uint8 (T, H, W, 3)) or as a video
  file ``<stem>.mp4`` (or .webm/.mkv/.avi/.mov) next to it, decoded with PyAV. A ``metadata.csv`` with ``file_name``
  and ``annotation`` columns (what ``rep4d synth`` writes) fixes the order and pairs videos with annotations.

  =====================  =====================  ===============================================================
  field                  dtype / shape          task / meaning
  =====================  =====================  ===============================================================
  ``depth``              float (T, H, W)        depth; pixels with depth <= 0 or non-finite are invalid
  ``query_points``       float (N, 3)           points: (t, y, x) query frame and pixel position
  ``tracks``             float (N, T, 2)        points: (x, y) pixel position per frame (pixel centres at +0.5)
  ``occluded``           bool (N, T)            points: True where the point is hidden or outside the frame
  ``boxes``              float (O, T, 4)        boxes: (ymin, xmin, ymax, xmax) normalised to [0, 1]
  ``box_visible``        bool (O, T)            boxes (optional, default all visible)
  ``camera_rotation``    float (3, 3)           pose: rotation of the last camera in the first camera's frame
  ``camera_translation`` float (3,)             pose: position of the last camera in the first camera's frame
  ``label``              int ()                 classification: class id
  =====================  =====================  ===============================================================

* **In-memory synthetic clips**: ``synthetic:NUM_CLIPS[,seed=S,num_objects=...,num_points=...]`` generates clip ``i``
  with :func:`~rep4d.training.synthetic.generate_clip` (seed ``(S, i)``) at the requested frames and size, with the
  task's ``synthetic_options`` of the registry as defaults (pose: a camera that also translates).
* **TAP-Vid pickle** (``*.pkl``/``*.pickle``, the DAVIS/RGB-Stacking layout): a dict ``{name: {"video", "points",
  "occluded"}}`` or a list of such dicts; ``video`` uint8 (T, H, W, 3) or a list of encoded JPEG/PNG frames,
  ``points`` (N, T, 2) (x, y) normalised to [0, 1], ``occluded`` (N, T). The query of each track is its first visible
  frame (TAP-Vid's ``first`` mode); tracks never visible are dropped. The file is read with
  :class:`RestrictedUnpickler`, which only rebuilds numpy arrays/dtypes/scalars and builtin containers: a pickle
  that references any other callable is refused instead of executed (never ``pickle.load`` untrusted files).
  These clips serve training and the Trainer's evaluations; benchmark numbers come from the named TAP-Vid protocols
  of :mod:`rep4d.training.tapvid` (tapnet's readers and query sampling on the same files, same unpickler).
* **Video folder / CSV for classification**: a folder of class sub-folders (``root/<class_name>/*.mp4``; class ids
  in sorted name order) or a CSV with ``file_name`` (relative to the CSV's folder) and ``label`` (int id or class
  name) columns. Videos are decoded with PyAV; the central ``num_frames`` frames are used.

Temporal and spatial fitting (:class:`ReadoutDataset`): clips with more frames than the readout's ``num_frames`` are
cut to the first ``num_frames`` frames (classification: the central ones; point queries after the cut move to the
track's first visible frame inside it, tracks never visible there are dropped; pose needs exactly ``num_frames``
frames because its rotation refers to the last frame). Frames are resized to ``image_size`` (antialiased bilinear;
depth nearest; tracks and query points scaled).
"""

from __future__ import annotations

import csv
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rep4d.configuration.readout_tasks import check_boxes, get_readout_task
from rep4d.training.video_data import VIDEO_EXTENSIONS, resize_clip

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------------------------------------
# Sources of raw clips
# ----------------------------------------------------------------------------------------------------------------


class ClipSource:
    """A sequence of raw clips: ``load(i)`` -> dict of numpy arrays (``video`` uint8 (T, H, W, 3) + task fields)."""

    label_names: list[str] | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def name(self, index: int) -> str:
        return f"clip {index}"


def decode_video(path, frame_indices=None) -> np.ndarray:
    """Decode a video file (or file object) with PyAV -> uint8 (T, H, W, 3); ``frame_indices`` selects frames
    (a callable of the total frame count, or None for every frame)."""
    from rep4d.processing.video_processing_base import read_video_pyav

    def sample(metadata, **_):
        total = int(metadata.total_num_frames)
        return np.arange(total) if frame_indices is None else np.asarray(frame_indices(total))

    return read_video_pyav(path, sample)[0]


class NpzFolderSource(ClipSource):
    """A folder of ``<stem>.npz`` annotations with the video inside (``video``) or in ``<stem>.<video ext>``."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"data folder {self.folder} does not exist")
        metadata = self.folder / "metadata.csv"
        self.videos: list[Path | None] = []
        if metadata.is_file():
            with open(metadata, newline="") as handle:
                rows = list(csv.DictReader(handle))
            if rows and "annotation" in rows[0]:
                self.annotations = [self.folder / row["annotation"] for row in rows]
                self.videos = [self.folder / row["file_name"] if row.get("file_name") else None for row in rows]
            else:
                self.annotations = []
        else:
            self.annotations = []
        if not self.annotations:
            self.annotations = sorted(p for p in self.folder.glob("*.npz") if not p.name.startswith("."))
            self.videos = [self._video_next_to(path) for path in self.annotations]
        if not self.annotations:
            raise ValueError(
                f"{self.folder} holds no <stem>.npz clip annotations; see rep4d.training.readout_data for the layout"
            )
        from rep4d.training.synthetic import LABEL_NAMES

        # Folders written by `rep4d synth` carry the synthetic label names.
        if metadata.is_file() and "label_name" in metadata.read_text().splitlines()[0]:
            self.label_names = list(LABEL_NAMES)

    @staticmethod
    def _video_next_to(annotation: Path) -> Path | None:
        for extension in VIDEO_EXTENSIONS:
            candidate = annotation.with_suffix(extension)
            if candidate.is_file():
                return candidate
        return None

    def __len__(self) -> int:
        return len(self.annotations)

    def name(self, index: int) -> str:
        return str(self.annotations[index])

    def load(self, index: int) -> dict[str, np.ndarray]:
        path = self.annotations[index]
        if not path.is_file():
            raise FileNotFoundError(f"annotation file {path} does not exist")
        with np.load(path, allow_pickle=False) as data:
            clip = {key: data[key] for key in data.files}
        if "video" not in clip:
            video = self.videos[index] if index < len(self.videos) else None
            if video is None or not Path(video).is_file():
                raise ValueError(
                    f"{path} has no `video` array and no video file <stem>{'/'.join(VIDEO_EXTENSIONS)} next to it"
                )
            clip["video"] = decode_video(video)
        return clip


class SyntheticSource(ClipSource):
    """``num_clips`` synthetic clips generated in memory (clip ``i`` from seed ``(seed, i)``), nothing on disk.

    Rendered clips are kept in memory up to ``cache_bytes`` (default 256 MiB, 0 disables), so end-to-end training,
    which loads every clip once per epoch, renders each clip once instead of once per epoch (a 32x32x8 clip takes
    ~5 ms to render, as long as a training step of a small readout).
    """

    DEFAULT_CACHE_BYTES = 256 * 2**20

    def __init__(self, num_clips: int, seed: int = 0, cache_bytes: int = DEFAULT_CACHE_BYTES, **generate_options):
        from rep4d.training.synthetic import LABEL_NAMES, generate_clip

        if num_clips < 1:
            raise ValueError(f"num_clips must be >= 1, got {num_clips}")
        if cache_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0, got {cache_bytes}")
        self.num_clips, self.seed, self.options = int(num_clips), int(seed), generate_options
        self.label_names = list(LABEL_NAMES)
        self.cache_bytes, self._cache, self._cached_bytes = int(cache_bytes), {}, 0
        generate_clip(seed=(self.seed, 0), **self.options)  # validate the options now, not in a worker

    def __len__(self) -> int:
        return self.num_clips

    def name(self, index: int) -> str:
        return f"synthetic clip {index} (seed {self.seed})"

    def load(self, index: int) -> dict[str, np.ndarray]:
        from rep4d.training.synthetic import generate_clip

        index = int(index)
        clip = self._cache.get(index)
        if clip is None:
            clip = generate_clip(seed=(self.seed, index), **self.options)
            size = sum(value.nbytes for value in clip.values())
            if self._cached_bytes + size <= self.cache_bytes:
                self._cache[index] = clip
                self._cached_bytes += size
        # A new dict per call: callers may add or replace fields; the arrays themselves are only read.
        return dict(clip)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dtypes and scalars inside builtin containers, and refuses every other global.

    A pickle can call any importable function while loading; TAP-Vid files only need the numpy reconstruction
    helpers below (``ndarray.__reduce__``), so anything else is an error, never executed.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5 arrays
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("collections", "OrderedDict"),
    }
    # numpy >= 1.25 pickles dtypes by class (numpy.dtypes.Float32DType, ...): data-only classes, allowed by module.
    ALLOWED_MODULES = ("numpy.dtypes",)

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED or module in self.ALLOWED_MODULES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to unpickle {module}.{name}: TAP-Vid pickles may only hold numpy arrays, dicts and lists"
        )


def restricted_pickle_load(path: str | os.PathLike):
    with open(path, "rb") as handle:
        return RestrictedUnpickler(handle).load()


def _decode_frames(video) -> np.ndarray:
    """TAP-Vid ``video``: uint8 (T, H, W, 3), or a list of encoded frames (JPEG/PNG bytes, the Kinetics layout)."""
    if isinstance(video, np.ndarray) and video.dtype != object:
        return video
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(bytes(frame))).convert("RGB")) for frame in video])


class TapVidPickleSource(ClipSource):
    """TAP-Vid pickle (see the module docstring); tracks are converted to pixels and queried at the first visible
    frame."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"TAP-Vid pickle {self.path} does not exist")
        data = restricted_pickle_load(self.path)
        if isinstance(data, dict):
            self.names, self.videos = [str(key) for key in data], list(data.values())
        elif isinstance(data, list):
            self.names, self.videos = [f"video {i}" for i in range(len(data))], data
        else:
            raise ValueError(f"{self.path}: expected a dict or list of videos, got {type(data).__name__}")
        for name, entry in zip(self.names, self.videos):
            missing = [key for key in ("video", "points", "occluded") if not isinstance(entry, dict) or key not in entry]
            if missing:
                raise ValueError(f"{self.path}: {name} lacks the TAP-Vid field(s) {missing} (video, points, occluded)")
        if not self.videos:
            raise ValueError(f"{self.path} holds no videos")

    def __len__(self) -> int:
        return len(self.videos)

    def name(self, index: int) -> str:
        return f"{self.path}:{self.names[index]}"

    def load(self, index: int) -> dict[str, np.ndarray]:
        entry = self.videos[index]
        video = _decode_frames(entry["video"])
        points = np.asarray(entry["points"], dtype=np.float32)
        occluded = np.asarray(entry["occluded"], dtype=bool)
        name = self.name(index)
        if points.ndim != 3 or points.shape[-1] != 2 or occluded.shape != points.shape[:2]:
            raise ValueError(
                f"{name}: TAP-Vid points must be (N, T, 2) and occluded (N, T), got {points.shape} and {occluded.shape}"
            )
        if video.ndim != 4 or video.shape[0] != points.shape[1]:
            raise ValueError(f"{name}: video {video.shape} must be (T, H, W, 3) with T = {points.shape[1]}")
        height, width = video.shape[1:3]
        keep = (~occluded).any(axis=1)
        points, occluded = points[keep], occluded[keep]
        tracks = points * np.array([width, height], dtype=np.float32)
        first = np.argmax(~occluded, axis=1)
        rows = np.arange(len(tracks))
        query = np.stack([first, tracks[rows, first, 1], tracks[rows, first, 0]], axis=-1).astype(np.float32)
        return {"video": video, "query_points": query, "tracks": tracks, "occluded": occluded}


class VideoLabelSource(ClipSource):
    """Classification videos from class sub-folders or a CSV (``file_name``, ``label``); ``num_frames`` central
    frames are decoded with PyAV."""

    def __init__(self, source: str | os.PathLike, num_frames: int | None = None, label_names=None):
        source = Path(source)
        self.num_frames = num_frames
        if source.suffix.lower() == ".csv":
            with open(source, newline="") as handle:
                rows = list(csv.DictReader(handle))
            if not rows or "file_name" not in rows[0] or "label" not in rows[0]:
                found = list(rows[0]) if rows else []
                raise ValueError(f"{source} needs the columns file_name and label, found {found}")
            self.paths = [source.parent / row["file_name"] for row in rows]
            raw = [row["label"].strip() for row in rows]
            if all(value.lstrip("-").isdigit() for value in raw):
                self.labels = [int(value) for value in raw]
                self.label_names = list(label_names) if label_names else None
            else:
                self.label_names = list(label_names) if label_names else sorted(set(raw))
                unknown = sorted(set(raw) - set(self.label_names))
                if unknown:
                    raise ValueError(f"{source}: labels {unknown} are not among the class names {self.label_names}")
                self.labels = [self.label_names.index(value) for value in raw]
        elif source.is_dir():
            classes = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
            if not classes:
                raise ValueError(f"{source} has no class sub-folders (root/<class_name>/*.mp4) and is not a CSV file")
            self.label_names = classes
            self.paths, self.labels = [], []
            for label, name in enumerate(classes):
                for path in sorted((source / name).rglob("*")):
                    if path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith("."):
                        self.paths.append(path)
                        self.labels.append(label)
        else:
            raise FileNotFoundError(f"classification data {source} is neither a folder nor a CSV file")
        if not self.paths:
            raise ValueError(f"no videos found in {source}")

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return str(self.paths[index])

    def load(self, index: int) -> dict[str, np.ndarray]:
        frames = self.num_frames

        def central(total: int) -> np.ndarray:
            if frames is None:
                return np.arange(total)
            if total < frames:
                raise ValueError(f"{self.paths[index]} has {total} frames, fewer than the {frames} the readout reads")
            start = (total - frames) // 2
            return np.arange(start, start + frames)

        return {"video": decode_video(self.paths[index], central), "label": np.int64(self.labels[index])}


def open_clip_source(data, task: str, num_frames: int | None = None, image_size=None) -> ClipSource:
    """A :class:`ClipSource` for ``data``: a source, ``synthetic:N[,key=value...]``, a TAP-Vid ``.pkl``, an npz
    folder, or (classification) a video folder / CSV."""
    spec = get_readout_task(task)
    if isinstance(data, ClipSource):
        return data
    text = str(data)
    if text.startswith("synthetic:"):
        fields = text[len("synthetic:") :].split(",")
        try:
            num_clips = int(fields[0])
            options = {key: value for key, value in (item.split("=", 1) for item in fields[1:] if item)}
        except ValueError as error:
            raise ValueError(f"expected synthetic:NUM_CLIPS[,key=value,...], got {text!r}") from error
        seed = int(options.pop("seed", 0))
        parsed = {}
        for key, value in options.items():
            try:
                parsed[key] = int(value)
            except ValueError:
                try:
                    parsed[key] = float(value)
                except ValueError:
                    parsed[key] = value
        for key, value in spec.synthetic_options.items():  # e.g. pose: a translating camera
            parsed.setdefault(key, value)
        if num_frames is not None:
            parsed.setdefault("num_frames", int(num_frames))
        if image_size is not None:
            parsed.setdefault("height", int(image_size[0]))
            parsed.setdefault("width", int(image_size[1]))
        return SyntheticSource(num_clips, seed=seed, **parsed)
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"data {path} does not exist")
    if path.suffix.lower() in (".pkl", ".pickle"):
        return TapVidPickleSource(path)
    if path.is_dir() and any(p.suffix == ".npz" for p in path.iterdir()):
        return NpzFolderSource(path)
    if task == "classification":
        return VideoLabelSource(path, num_frames=num_frames)
    raise ValueError(
        f"cannot read {task} data from {path}: expected a folder of <stem>.npz clips (see rep4d.training.readout_data), "
        "a TAP-Vid .pkl file (points) or synthetic:NUM_CLIPS"
    )


# ----------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------


def _field(clip: dict, name: str, key: str, expected: tuple, layout: str) -> np.ndarray:
    """``clip[key]`` as an array, checked to have shape ``expected``."""
    value = np.asarray(clip[key])
    if value.shape != tuple(expected):
        raise ValueError(f"{name}: `{key}` must have shape {tuple(expected)} {layout}, got {value.shape}")
    return value


def _validate_depth(clip: dict, name: str, num_labels: int | None) -> None:
    frames, height, width = np.asarray(clip["video"]).shape[:3]
    _field(clip, name, "depth", (frames, height, width), "(T, H, W) like the video")


def _validate_points(clip: dict, name: str, num_labels: int | None) -> None:
    frames, height, width = np.asarray(clip["video"]).shape[:3]
    query = np.asarray(clip["query_points"], dtype=np.float64)
    if query.ndim != 2 or query.shape[-1] != 3:
        raise ValueError(f"{name}: `query_points` must be (N, 3) as (t, y, x), got shape {query.shape}")
    count = len(query)
    tracks = _field(clip, name, "tracks", (count, frames, 2), "(N, T, 2) as (x, y) pixels").astype(np.float64)
    occluded = _field(clip, name, "occluded", (count, frames), "(N, T) bool").astype(bool)
    visible = ~occluded
    xs, ys = tracks[..., 0][visible], tracks[..., 1][visible]
    if xs.size and (xs.min() < 0 or xs.max() > width or ys.min() < 0 or ys.max() > height or
                    not np.isfinite(xs).all() or not np.isfinite(ys).all()):
        raise ValueError(
            f"{name}: visible track points must lie inside the {width}x{height} frame (x in [0, {width}], "
            f"y in [0, {height}]); got x in [{xs.min():.4g}, {xs.max():.4g}], y in [{ys.min():.4g}, {ys.max():.4g}]. "
            "Tracks are (x, y) pixels; mark points outside the frame as occluded"
        )
    if count:
        t, y, x = query[:, 0], query[:, 1], query[:, 2]
        if t.min() < 0 or t.max() > frames - 1 or y.min() < 0 or y.max() > height or x.min() < 0 or x.max() > width:
            raise ValueError(
                f"{name}: query_points (t, y, x) must lie in the video (t in [0, {frames - 1}], y in [0, {height}],"
                f" x in [0, {width}]); got t in [{t.min():.4g}, {t.max():.4g}], y in [{y.min():.4g}, "
                f"{y.max():.4g}], x in [{x.min():.4g}, {x.max():.4g}]"
            )


def _validate_boxes(clip: dict, name: str, num_labels: int | None) -> None:
    frames = np.asarray(clip["video"]).shape[0]
    boxes = np.asarray(clip["boxes"], dtype=np.float64)
    if boxes.ndim != 3 or boxes.shape[1:] != (frames, 4):
        raise ValueError(
            f"{name}: `boxes` must be (O, {frames}, 4) as normalised (ymin, xmin, ymax, xmax), got {boxes.shape}"
        )
    if "box_visible" in clip:
        _field(clip, name, "box_visible", boxes.shape[:2], "(O, T) bool")
    bad = np.argwhere((boxes[..., 0] > boxes[..., 2]) | (boxes[..., 1] > boxes[..., 3]))
    if len(bad):  # name the first bad box (the shared rule below only says that one is bad)
        obj, frame = bad[0]
        raise ValueError(
            f"{name}: boxes must satisfy ymin <= ymax and xmin <= xmax (ymin, xmin, ymax, xmax); box {obj} in "
            f"frame {frame} is {boxes[obj, frame].tolist()}"
        )
    if not np.isfinite(boxes).all():
        raise ValueError(f"{name}: boxes must be finite")
    check_boxes(f"{name}: boxes", boxes)


def _validate_pose(clip: dict, name: str, num_labels: int | None) -> None:
    rotation = _field(clip, name, "camera_rotation", (3, 3), "(rotation matrix)").astype(np.float64)
    error = np.abs(rotation @ rotation.T - np.eye(3)).max()
    if error > 1e-3 or np.linalg.det(rotation) < 0:
        raise ValueError(
            f"{name}: `camera_rotation` must be a rotation (R R^T = I, det +1); max |R R^T - I| = {error:.3g}, "
            f"det = {np.linalg.det(rotation):.3g}"
        )
    translation = _field(clip, name, "camera_translation", (3,), "(last camera position in the first camera's frame)")
    if not np.isfinite(translation.astype(np.float64)).all():
        raise ValueError(f"{name}: `camera_translation` must be finite, got {translation.tolist()}")


def _validate_classification(clip: dict, name: str, num_labels: int | None) -> None:
    label = np.asarray(clip["label"])
    if label.size != 1 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"{name}: `label` must be one integer class id, got {label!r}")
    value = int(label.reshape(()))
    if value < 0 or (num_labels is not None and value >= num_labels):
        upper = num_labels if num_labels is not None else "num_labels"
        raise ValueError(f"{name}: label {value} is out of range [0, {upper})")


# The clip check of each task of the registry (a test checks the keys are the registry's tasks).
CLIP_VALIDATORS = {
    "depth": _validate_depth,
    "points": _validate_points,
    "boxes": _validate_boxes,
    "pose": _validate_pose,
    "classification": _validate_classification,
}


def validate_clip(clip: dict, task: str, name: str = "clip", num_labels: int | None = None) -> None:
    """Raise ValueError naming the field and expected vs given shape/range when ``clip`` cannot serve ``task``
    (the task's ``clip_fields`` of the registry, then its :data:`CLIP_VALIDATORS` entry)."""
    spec = get_readout_task(task)
    missing = [key for key in ("video", *spec.clip_fields) if key not in clip]
    if missing:
        raise ValueError(f"{name} lacks the field(s) {missing} that the {task} task needs; it has {sorted(clip)}")
    video = np.asarray(clip["video"])
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"{name}: `video` must be (T, H, W, 3) RGB frames, got shape {video.shape}")
    CLIP_VALIDATORS[task](clip, name, num_labels)


# ----------------------------------------------------------------------------------------------------------------
# Fitting a clip to the readout's input (frames, size) and the task dataset
# ----------------------------------------------------------------------------------------------------------------


def cut_clip(clip: dict, task: str, num_frames: int | None, name: str = "clip") -> dict:
    """Cut ``clip`` to the readout's ``num_frames`` frames (see the module docstring); arrays are copied only when
    cut."""
    frames = np.asarray(clip["video"]).shape[0]
    if num_frames is None or frames == num_frames:
        return clip
    if frames < num_frames:
        raise ValueError(f"{name} has {frames} frames, fewer than the {num_frames} the readout reads")
    if task == "pose":
        raise ValueError(
            f"{name} has {frames} frames but the pose readout reads {num_frames}: camera_rotation and "
            "camera_translation refer to the clip's last frame, so pose clips must have exactly num_frames frames"
        )
    start = (frames - num_frames) // 2 if task == "classification" else 0
    window = slice(start, start + num_frames)
    clip = dict(clip)
    clip["video"] = np.asarray(clip["video"])[window]
    if task == "depth":
        clip["depth"] = np.asarray(clip["depth"])[window]
    elif task == "boxes":
        clip["boxes"] = np.asarray(clip["boxes"])[:, window]
        if "box_visible" in clip:
            clip["box_visible"] = np.asarray(clip["box_visible"])[:, window]
    elif task == "points":
        tracks = np.asarray(clip["tracks"])[:, window]
        occluded = np.asarray(clip["occluded"], dtype=bool)[:, window]
        query = np.array(clip["query_points"], dtype=np.float32, copy=True)
        keep = (~occluded).any(axis=1)
        moved = np.round(query[:, 0]) >= num_frames
        first = np.argmax(~occluded, axis=1)
        rows = np.flatnonzero(moved & keep)
        query[rows] = np.stack([first[rows], tracks[rows, first[rows], 1], tracks[rows, first[rows], 0]], axis=-1)
        clip["query_points"], clip["tracks"], clip["occluded"] = query[keep], tracks[keep], occluded[keep]
    return clip


@dataclass
class ReadoutDataConfig:
    """How clips become readout inputs: ``num_frames`` and ``image_size`` of the backbone, optional per-channel
    ``pixel_mean``/``pixel_std`` normalisation (e.g. ImageNet for VideoMAE), ``num_points`` tracks sampled per clip
    (so clips with different track counts batch), ``num_labels`` for label range checks."""

    num_frames: int | None = None
    image_size: tuple[int, int] | list[int] | None = None
    pixel_mean: tuple[float, float, float] | None = None
    pixel_std: tuple[float, float, float] | None = None
    num_points: int | None = None
    num_labels: int | None = None
    seed: int = 0


class ReadoutDataset(torch.utils.data.Dataset):
    """Examples for a readout task from a :class:`ClipSource`, named as the readout's forward arguments:

    ``pixel_values`` float32 (T, C, H, W) (in [0, 1] unless normalised) plus, per task, ``depth`` (T, H, W);
    ``query_points`` (N, 3), ``tracks`` (N, T, 2), ``occluded`` (N, T) bool; ``boxes`` (O, T, 4), ``box_visible``
    (O, T) bool; ``camera_rotation`` (3, 3), ``camera_translation`` (3,); ``labels`` () int64 (the task's
    ``label_names`` of the registry, built by its :data:`EXAMPLE_TARGETS` entry). Every clip is validated
    (:func:`validate_clip`) when it is loaded.
    """

    def __init__(self, source: ClipSource, task: str, config: ReadoutDataConfig | None = None, indices=None):
        get_readout_task(task)
        self.source, self.task, self.config = source, task, config or ReadoutDataConfig()
        self.indices = list(range(len(source))) if indices is None else [int(i) for i in indices]
        if not self.indices:
            raise ValueError(f"the {task} dataset is empty")
        for option in ("pixel_mean", "pixel_std"):
            value = getattr(self.config, option)
            if value is not None and len(value) != 3:
                raise ValueError(f"{option} must have 3 values (R, G, B), got {value}")

    @property
    def label_names(self) -> list[str] | None:
        return self.source.label_names

    def subset(self, positions) -> ReadoutDataset:
        return ReadoutDataset(self.source, self.task, self.config, [self.indices[p] for p in positions])

    def __len__(self) -> int:
        return len(self.indices)

    def raw_clip(self, position: int) -> dict[str, np.ndarray]:
        """The validated clip cut to ``num_frames`` (numpy, original resolution)."""
        index = self.indices[position]
        name = self.source.name(index)
        clip = self.source.load(index)
        validate_clip(clip, self.task, name, self.config.num_labels)
        return cut_clip(clip, self.task, self.config.num_frames, name)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= position < len(self):
            raise IndexError(f"index {position} out of range for {len(self)} clips")
        position = position % len(self)
        clip = self.raw_clip(position)
        config = self.config
        video = torch.from_numpy(np.ascontiguousarray(clip["video"])).permute(0, 3, 1, 2).float() / 255.0
        height, width = video.shape[-2:]
        target_height, target_width = (height, width) if config.image_size is None else config.image_size
        if (target_height, target_width) != (height, width):
            video = resize_clip(video, int(target_height), int(target_width))
        if config.pixel_mean is not None:
            video = video - torch.tensor(config.pixel_mean).view(1, 3, 1, 1)
        if config.pixel_std is not None:
            video = video / torch.tensor(config.pixel_std).view(1, 3, 1, 1)
        example = {"pixel_values": video.contiguous()}
        targets = EXAMPLE_TARGETS[self.task](clip, (height, width), (int(target_height), int(target_width)),
                                             config, (config.seed, self.indices[position]),
                                             self.source.name(self.indices[position]))
        return {**example, **targets}


def _depth_targets(clip, size, target_size, config, rng_seed, name) -> dict[str, torch.Tensor]:
    depth = torch.from_numpy(np.asarray(clip["depth"], dtype=np.float32))
    if depth.shape[-2:] != target_size:
        depth = F.interpolate(depth[:, None], size=target_size, mode="nearest")[:, 0]
    return {"depth": torch.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)}


def _points_targets(clip, size, target_size, config, rng_seed, name) -> dict[str, torch.Tensor]:
    (height, width), (target_height, target_width) = size, target_size
    scale_x, scale_y = target_width / width, target_height / height
    query = np.asarray(clip["query_points"], dtype=np.float32) * np.array([1, scale_y, scale_x], np.float32)
    tracks = np.asarray(clip["tracks"], dtype=np.float32) * np.array([scale_x, scale_y], np.float32)
    occluded = np.asarray(clip["occluded"], dtype=bool)
    if config.num_points is not None:
        rng = np.random.default_rng(rng_seed)
        if len(query) == 0:
            raise ValueError(f"{name} has no visible point track")
        chosen = rng.choice(len(query), size=config.num_points, replace=len(query) < config.num_points)
        query, tracks, occluded = query[chosen], tracks[chosen], occluded[chosen]
    # Resizing maps the frame edge exactly onto the new edge; clamp float rounding so checks stay exact.
    bounds = np.array([target_width, target_height], dtype=np.float32)
    tracks = np.where(occluded[..., None], tracks, np.clip(tracks, 0, bounds)).astype(np.float32)
    return {
        "query_points": torch.from_numpy(np.ascontiguousarray(query)),
        "tracks": torch.from_numpy(np.ascontiguousarray(tracks)),
        "occluded": torch.from_numpy(np.ascontiguousarray(occluded)),
    }


def _boxes_targets(clip, size, target_size, config, rng_seed, name) -> dict[str, torch.Tensor]:
    boxes = np.asarray(clip["boxes"], dtype=np.float32)
    visible = np.asarray(clip.get("box_visible", np.ones(boxes.shape[:2], bool)), dtype=bool)
    return {"boxes": torch.from_numpy(np.ascontiguousarray(boxes)),
            "box_visible": torch.from_numpy(np.ascontiguousarray(visible))}


def _pose_targets(clip, size, target_size, config, rng_seed, name) -> dict[str, torch.Tensor]:
    return {"camera_rotation": torch.from_numpy(np.asarray(clip["camera_rotation"], dtype=np.float32)),
            "camera_translation": torch.from_numpy(np.asarray(clip["camera_translation"], dtype=np.float32))}


def _classification_targets(clip, size, target_size, config, rng_seed, name) -> dict[str, torch.Tensor]:
    return {"labels": torch.tensor(int(np.asarray(clip["label"]).reshape(())), dtype=torch.long)}


# The targets of each task of the registry, named as its ``label_names`` (frames resized from ``size`` to
# ``target_size``, (H, W)); a test checks the keys are the registry's tasks.
EXAMPLE_TARGETS = {
    "depth": _depth_targets,
    "points": _points_targets,
    "boxes": _boxes_targets,
    "pose": _pose_targets,
    "classification": _classification_targets,
}


def collate_readout_batch(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack readout examples into a batch; box tracks are padded to the largest object count with invisible
    all-zero boxes (``box_visible`` False, so they weigh nothing in the loss and metric)."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    keys = list(examples[0])
    for position, example in enumerate(examples):
        if list(example) != keys:
            raise ValueError(f"example {position} has fields {list(example)}, example 0 has {keys}")
    if "boxes" in keys:
        objects = max(example["boxes"].shape[0] for example in examples)
        padded = []
        for example in examples:
            missing = objects - example["boxes"].shape[0]
            if missing:
                example = dict(example)
                frames = example["boxes"].shape[1]
                example["boxes"] = torch.cat([example["boxes"], example["boxes"].new_zeros(missing, frames, 4)])
                example["box_visible"] = torch.cat(
                    [example["box_visible"], example["box_visible"].new_zeros(missing, frames)]
                )
            padded.append(example)
        examples = padded
    batch = {}
    for key in keys:
        shapes = {tuple(example[key].shape) for example in examples}
        if len(shapes) > 1:
            hint = " (clips have different numbers of point tracks: set num_points / --num-points)" if key in (
                "query_points", "tracks", "occluded") else ""
            raise ValueError(f"cannot batch `{key}` of different shapes {sorted(shapes)}{hint}")
        batch[key] = torch.stack([example[key] for example in examples])
    return batch


class CachedFeatureDataset(torch.utils.data.Dataset):
    """Frozen mode: the backbone features of every example computed once (``model.extract_features``) and served
    as ``features`` instead of ``pixel_values``, so training epochs only run the readout."""

    def __init__(self, dataset, model, batch_size: int = 8, progress: bool = True, device=None):
        from tqdm.auto import tqdm

        if not model.config.freeze_backbone:
            raise ValueError("feature caching needs a frozen backbone (freeze_backbone=True): end-to-end training "
                             "changes the features every step")
        self.dataset = dataset
        device = device or next(model.parameters()).device
        was_training = model.training
        model.eval()
        features, targets = [], []
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=False, collate_fn=lambda examples: examples
        )
        with torch.no_grad():
            for examples in tqdm(loader, desc="caching features", unit="batch", disable=not progress):
                pixels = torch.stack([example.pop("pixel_values") for example in examples]).to(device)
                features.extend(model.extract_features(pixels).float().cpu().unbind(0))
                targets.extend(examples)
        model.train(was_training)
        self.examples = [{"features": feature, **target} for feature, target in zip(features, targets)]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        return self.examples[position]


__all__ = [
    "CLIP_VALIDATORS",
    "EXAMPLE_TARGETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ClipSource",
    "NpzFolderSource",
    "SyntheticSource",
    "TapVidPickleSource",
    "VideoLabelSource",
    "RestrictedUnpickler",
    "restricted_pickle_load",
    "open_clip_source",
    "decode_video",
    "validate_clip",
    "cut_clip",
    "ReadoutDataConfig",
    "ReadoutDataset",
    "collate_readout_batch",
    "CachedFeatureDataset",
]
