"""Readers of the readout benchmark's datasets in their own formats (``rep4d.training.readout_datasets``).

Every reader is a :class:`~rep4d.training.readout_data.ClipSource`: ``load(i)`` returns a dict of numpy arrays,
``video`` uint8 (T, H, W, 3) plus the task's fields named as :mod:`rep4d.training.readout_data` documents them, so
the clips feed :class:`~rep4d.training.readout_data.ReadoutDataset` and the Trainer unchanged. Missing files or
fields raise a one-line ``FileNotFoundError`` / ``ValueError`` naming the layout expected.

==================  ==================================================================================================
reader              layout read (``root`` is the dataset folder)
==================  ==================================================================================================
SSv2Source          ``labels.json`` (``{template: "id"}``), ``train.json`` / ``validation.json`` (lists of ``{"id",
                    "label", "template", "placeholders"}``), videos ``<id>.webm`` in ``root/videos/`` (or ``root/``,
                    or ``root/20bn-something-something-v2/``)
Kinetics700Source   ``<split>.csv`` (``label,youtube_id,time_start,time_end,split``; split train / validate / test)
                    and videos ``<label>/<youtube_id>_<start:06d>_<end:06d>.mp4`` in ``root/<split>/`` or ``root/``
RealEstate10KSource ``<split>/<sequence>.txt`` camera files (first line the video URL, then per frame: timestamp
                    (us), fx fy cx cy (normalised), 2 zeros, 3x4 world-to-camera pose row-major) and the frames
                    ``frames/<split>/<sequence>/<timestamp>.(jpg|png)``
ScanNetSource       ``scans/<scene>/`` (or ``<scene>/``) with ``color/<i>.jpg``, ``depth/<i>.png`` (uint16 mm),
                    ``pose/<i>.txt`` (4x4 camera-to-world), ``intrinsic/intrinsic_color.txt``; optional scene lists
                    ``scannetv2_<split>.txt``
PerceptionTest-     ``point_tracking_<split>.json`` (``{video_id: {"metadata": {"video_id", "num_frames", ...},
PointsSource        "point_tracking": [{"id", "frame_ids", "points": [[x...], [y...]] normalised}]}}``) and videos
                    ``videos/<video_id>.mp4``
TAP-Vid pickles     :class:`~rep4d.training.readout_data.TapVidPickleSource` (restricted unpickler)
WaymoOpenSource     the converted layout (see below): ``<split>/<segment>.npz`` with ``boxes``, ``box_visible`` and
                    the frames in ``video`` or ``<segment>.mp4``
MoviESource         the converted layout (see below): ``<split>/<example>.npz`` with ``video``, ``depth``,
                    ``tracks``, ``occluded``, ``boxes``, ``box_visible``
==================  ==================================================================================================

Waymo Open (TFRecords of protobufs) and Kubric MOVi-E (TFDS) need TensorFlow to read; a user converts them once with
the scripts in docs/READOUT_BENCHMARK.md into the npz layout above (no TensorFlow dependency here).

Clips follow the presets (:mod:`rep4d.configuration.readout_presets`): ``num_frames`` frames at ``frame_stride``;
classification test clips are the central clip (SSv2) or ``num_test_clips`` evenly spaced clips of the video looped
to ``loop_to_frames`` frames (K700: 7 clips of a 250-frame loop), yielded consecutively so the readout averages them;
ScanNet depth outside ``depth_range`` (0.001, 10) m is set to 0 (invalid, masked by the loss and the metric).
SSv2 / K700 and ScanNet clips are the central square of the frames (the protocol's test crop; the readout then
resizes it), unless :class:`AugmentedSource` crops them at random for training.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from rep4d.training.readout_data import ClipSource, NpzFolderSource, TapVidPickleSource, decode_video

SPLITS = ("train", "eval")


def _clip_indices(total: int, num_frames: int, stride: int, start: int) -> np.ndarray:
    """``num_frames`` indices from ``start`` at ``stride``; videos too short are looped (index modulo ``total``)."""
    return (start + stride * np.arange(num_frames)) % max(total, 1)


def _central_start(total: int, num_frames: int, stride: int) -> int:
    span = (num_frames - 1) * stride + 1
    return max(0, (total - span) // 2)


def _spaced_starts(total: int, num_frames: int, stride: int, num_clips: int) -> np.ndarray:
    span = (num_frames - 1) * stride + 1
    return np.linspace(0, max(total - span, 0), num_clips).round().astype(int)


def centre_square(array: np.ndarray, axes=(1, 2)) -> np.ndarray:
    """The central square of the shorter side of frames (``axes`` are height and width)."""
    height, width = array.shape[axes[0]], array.shape[axes[1]]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    index = [slice(None)] * array.ndim
    index[axes[0]], index[axes[1]] = slice(top, top + side), slice(left, left + side)
    return np.ascontiguousarray(array[tuple(index)])


class _ClassificationVideos(ClipSource):
    """Shared clip logic of SSv2 and K700: one central clip per video, or ``num_test_clips`` evenly spaced clips
    of the video looped to ``loop_to_frames`` frames (consecutive items). ``centre_crop`` (default) keeps the
    central square of the shorter side (the protocol's test crop; :class:`AugmentedSource` turns it off and crops
    at random instead)."""

    centre_crop = True

    def __init__(self, paths, labels, label_names, num_frames, frame_stride, num_test_clips, loop_to_frames):
        if num_frames < 1 or frame_stride < 1 or num_test_clips < 1:
            raise ValueError("num_frames, frame_stride and num_test_clips must be >= 1")
        self.paths, self.labels, self.label_names = list(paths), list(labels), list(label_names)
        self.num_frames, self.frame_stride = int(num_frames), int(frame_stride)
        self.num_test_clips, self.loop_to_frames = int(num_test_clips), loop_to_frames

    def __len__(self) -> int:
        return len(self.paths) * self.num_test_clips

    def name(self, index: int) -> str:
        video, clip = divmod(int(index), self.num_test_clips)
        return f"{self.paths[video]}" + (f" (clip {clip})" if self.num_test_clips > 1 else "")

    def load(self, index: int) -> dict[str, np.ndarray]:
        video, clip = divmod(int(index), self.num_test_clips)
        frames, stride, clips, loop = self.num_frames, self.frame_stride, self.num_test_clips, self.loop_to_frames

        def sample(total: int) -> np.ndarray:
            if clips == 1:
                return _clip_indices(total, frames, stride, _central_start(total, frames, stride))
            length = max(int(loop or total), 1)
            start = _spaced_starts(length, frames, stride, clips)[clip]
            return (start + stride * np.arange(frames)) % length % max(total, 1)

        frames_ = decode_video(self.paths[video], sample)
        return {"video": centre_square(frames_) if self.centre_crop else frames_, "label": np.int64(self.labels[video])}


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return path


def _read_json(path: Path, what: str):
    _require_file(path, what)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({what}): {error}") from error


class SSv2Source(_ClassificationVideos):
    """Something-Something v2 (see the module docstring); ``split`` is ``train`` or ``validation``. Labels are the
    ids of ``labels.json`` for the entry's template with its brackets removed."""

    SPLIT_FILES = {"train": "train.json", "eval": "validation.json", "validation": "validation.json"}

    def __init__(self, root, split: str = "train", num_frames: int = 16, frame_stride: int = 2,
                 max_videos: int | None = None):
        root = Path(root)
        if split not in self.SPLIT_FILES:
            raise ValueError(f"SSv2 split must be one of {sorted(self.SPLIT_FILES)}, got {split!r}")
        mapping = _read_json(root / "labels.json", "SSv2 label file (labels.json: {template: id})")
        if not isinstance(mapping, dict):
            raise ValueError(f"{root / 'labels.json'} must map each template to its class id ({{template: \"id\"}})")
        names = [name for name, _ in sorted(mapping.items(), key=lambda item: int(item[1]))]
        entries = _read_json(root / self.SPLIT_FILES[split], "SSv2 split file (a list of {id, label, template})")
        folders = [root / "videos", root / "20bn-something-something-v2", root]
        paths, labels = [], []
        for entry in entries[:max_videos] if max_videos else entries:
            if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
                raise ValueError(f"{root / self.SPLIT_FILES[split]}: entries need 'id' and 'template', got {entry!r}")
            template = entry["template"].replace("[", "").replace("]", "")
            if template not in mapping:
                raise ValueError(f"SSv2 video {entry['id']}: template {template!r} is not in labels.json")
            video = next((f / f"{entry['id']}.webm" for f in folders if (f / f"{entry['id']}.webm").is_file()), None)
            if video is None:
                raise FileNotFoundError(f"SSv2 video {entry['id']}.webm not found in {root}/videos/ or {root}/")
            paths.append(video)
            labels.append(int(mapping[template]))
        if not paths:
            raise ValueError(f"{root / self.SPLIT_FILES[split]} lists no videos")
        super().__init__(paths, labels, names, num_frames, frame_stride, 1, None)


class Kinetics700Source(_ClassificationVideos):
    """Kinetics-700-2020 (see the module docstring); ``split`` is ``train``, ``validate`` or ``test`` (``eval`` =
    validate). Class ids are the sorted label names of ``train.csv`` (else of the split's CSV). Rows whose video is
    missing (deleted YouTube videos) are skipped; ``self.missing`` counts them."""

    SPLIT_NAMES = {"train": "train", "eval": "validate", "validate": "validate", "val": "validate", "test": "test"}

    def __init__(self, root, split: str = "train", num_frames: int = 16, frame_stride: int = 2,
                 num_test_clips: int = 1, loop_to_frames: int | None = None, label_names=None,
                 max_videos: int | None = None):
        root = Path(root)
        if split not in self.SPLIT_NAMES:
            raise ValueError(f"Kinetics split must be one of {sorted(self.SPLIT_NAMES)}, got {split!r}")
        split = self.SPLIT_NAMES[split]
        rows = self._rows(root / f"{split}.csv")
        if label_names is None:
            train = root / "train.csv"
            label_names = sorted({row["label"] for row in (self._rows(train) if train.is_file() else rows)})
        index = {name: i for i, name in enumerate(label_names)}
        folders = [root / split, root]
        paths, labels, self.missing = [], [], 0
        for row in rows:
            stem = f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}.mp4"
            video = next((f / row["label"] / stem for f in folders if (f / row["label"] / stem).is_file()), None)
            if video is None:
                self.missing += 1
                continue
            if row["label"] not in index:
                raise ValueError(f"Kinetics label {row['label']!r} of {stem} is not among the training classes")
            paths.append(video)
            labels.append(index[row["label"]])
            if max_videos and len(paths) >= max_videos:
                break
        if not paths:
            raise FileNotFoundError(
                f"no Kinetics video of {root / f'{split}.csv'} found as <label>/<youtube_id>_<start>_<end>.mp4 in "
                f"{root / split}/ or {root}/"
            )
        super().__init__(paths, labels, label_names, num_frames, frame_stride, num_test_clips, loop_to_frames)

    @staticmethod
    def _rows(path: Path) -> list[dict]:
        _require_file(path, "Kinetics CSV (label,youtube_id,time_start,time_end,split)")
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        needed = {"label", "youtube_id", "time_start", "time_end"}
        if not rows or not needed <= set(rows[0]):
            found = sorted(rows[0]) if rows else []
            raise ValueError(f"{path} needs the columns label,youtube_id,time_start,time_end,split; found {found}")
        return rows


def read_realestate10k_cameras(path) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """One RealEstate10K camera file -> (url, timestamps (F,) int64 us, intrinsics (F, 4) normalised fx fy cx cy,
    world-to-camera poses (F, 3, 4))."""
    path = _require_file(Path(path), "RealEstate10K camera file")
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError(f"{path}: expected the video URL then one line per frame, got {len(lines)} line(s)")
    rows = lines[1:]
    if any(len(row) != 19 for row in rows):
        bad = next(row for row in rows if len(row) != 19)
        raise ValueError(
            f"{path}: frame lines need 19 numbers (timestamp, fx fy cx cy, 2 zeros, 3x4 pose), got {len(bad)}"
        )
    values = np.asarray(rows, dtype=np.float64)
    return " ".join(lines[0]), values[:, 0].astype(np.int64), values[:, 1:5], values[:, 7:].reshape(-1, 3, 4)


class RealEstate10KSource(ClipSource):
    """RealEstate10K camera pose (see the module docstring): each sequence gives one clip of ``num_frames`` frames
    spread evenly (at most ``frame_stride`` apart) from its first frame; ``camera_rotation`` is the last camera's
    orientation in the first camera's frame (``R_first @ R_last.T`` of the world-to-camera poses) and
    ``camera_translation`` the last camera's position there: together the relative pose ``[R | t]``
    (``X_first = R @ X_last + t``) the pose readout predicts and the end-point error scores."""

    def __init__(self, root, split: str = "train", num_frames: int = 16, frame_stride: int = 1,
                 max_videos: int | None = None):
        root = Path(root)
        split = {"eval": "test"}.get(split, split)
        folder = root / split
        if not folder.is_dir():
            raise FileNotFoundError(f"RealEstate10K camera folder {folder} (<split>/<sequence>.txt) does not exist")
        self.cameras = sorted(folder.glob("*.txt"))[:max_videos] if max_videos else sorted(folder.glob("*.txt"))
        if not self.cameras:
            raise ValueError(f"{folder} holds no <sequence>.txt camera files")
        self.frames_root = root / "frames" / split
        self.num_frames, self.frame_stride = int(num_frames), int(frame_stride)

    def __len__(self) -> int:
        return len(self.cameras)

    def name(self, index: int) -> str:
        return str(self.cameras[index])

    def load(self, index: int) -> dict[str, np.ndarray]:
        from PIL import Image

        path = self.cameras[index]
        _, timestamps, _, poses = read_realestate10k_cameras(path)
        if len(timestamps) < 2:
            raise ValueError(f"{path}: a pose clip needs at least 2 frames, got {len(timestamps)}")
        stride = min(self.frame_stride, max(1, (len(timestamps) - 1) // max(self.num_frames - 1, 1)))
        chosen = np.minimum(stride * np.arange(self.num_frames), len(timestamps) - 1)
        frames_dir = self.frames_root / path.stem
        images = []
        for stamp in timestamps[chosen]:
            image = next((frames_dir / f"{stamp}{ext}" for ext in (".jpg", ".png") if (frames_dir / f"{stamp}{ext}")
                          .is_file()), None)
            if image is None:
                raise FileNotFoundError(f"RealEstate10K frame {frames_dir}/{stamp}.jpg (or .png) does not exist")
            images.append(np.asarray(Image.open(image).convert("RGB")))
        first, last = poses[chosen[0]], poses[chosen[-1]]
        rotation = first[:, :3] @ last[:, :3].T
        # Camera centre of the last frame, in the first camera's coordinates.
        centre_world = -last[:, :3].T @ last[:, 3]
        translation = first[:, :3] @ centre_world + first[:, 3]
        return {"video": np.stack(images), "camera_rotation": rotation.astype(np.float32),
                "camera_translation": translation.astype(np.float32)}


class ScanNetSource(ClipSource):
    """ScanNet depth (see the module docstring): consecutive non-overlapping clips of ``num_frames`` frames at
    ``frame_stride`` per scene; depth (uint16 mm) in metres, resized (nearest) to the colour frames, 0 outside
    ``depth_range`` (the protocol's (0.001, 10) m mask). ``centre_crop`` (default) keeps the central square of
    colour and depth (the protocol's test crop; :class:`AugmentedSource` turns it off and crops at random)."""

    centre_crop = True

    def __init__(self, root, split: str = "train", num_frames: int = 16, frame_stride: int = 1,
                 depth_range: tuple[float, float] = (0.001, 10.0), max_videos: int | None = None):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"ScanNet folder {root} does not exist")
        scenes_root = root / "scans" if (root / "scans").is_dir() else root
        split = {"eval": "val"}.get(split, split)
        listing = root / f"scannetv2_{split}.txt"
        if listing.is_file():
            names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        else:
            names = sorted(p.name for p in scenes_root.iterdir() if (p / "color").is_dir())
        self.num_frames, self.frame_stride, self.depth_range = int(num_frames), int(frame_stride), depth_range
        self.clips: list[tuple[Path, list[str]]] = []
        span = (self.num_frames - 1) * self.frame_stride + 1
        for name in names[:max_videos] if max_videos else names:
            scene = scenes_root / name
            if not (scene / "color").is_dir() or not (scene / "depth").is_dir():
                raise FileNotFoundError(f"ScanNet scene {scene} needs color/<i>.jpg and depth/<i>.png folders")
            stems = sorted((p.stem for p in (scene / "color").glob("*.jpg")), key=lambda s: int(s) if s.isdigit() else s)
            for start in range(0, len(stems) - span + 1, span):
                self.clips.append((scene, stems[start : start + span : self.frame_stride]))
        if not self.clips:
            raise ValueError(f"no ScanNet scene under {scenes_root} has {span} colour frames (color/<i>.jpg)")

    def __len__(self) -> int:
        return len(self.clips)

    def name(self, index: int) -> str:
        scene, stems = self.clips[index]
        return f"{scene} frames {stems[0]}..{stems[-1]}"

    def load(self, index: int) -> dict[str, np.ndarray]:
        import torch
        import torch.nn.functional as F
        from PIL import Image

        scene, stems = self.clips[index]
        colour, depth = [], []
        for stem in stems:
            colour.append(np.asarray(Image.open(scene / "color" / f"{stem}.jpg").convert("RGB")))
            depth_path = _require_file(scene / "depth" / f"{stem}.png", "ScanNet depth PNG (uint16 millimetres)")
            depth.append(np.asarray(Image.open(depth_path), dtype=np.float32) / 1000.0)
        video, depth = np.stack(colour), np.stack(depth)
        if depth.shape[1:] != video.shape[1:3]:
            depth = F.interpolate(torch.from_numpy(depth)[:, None], size=video.shape[1:3], mode="nearest")[:, 0].numpy()
        low, high = self.depth_range
        depth = np.where((depth > low) & (depth < high), depth, 0.0).astype(np.float32)
        if self.centre_crop:
            video, depth = centre_square(video), centre_square(depth)
        return {"video": video, "depth": depth}


def read_scannet_pose(path) -> np.ndarray:
    """A ScanNet ``pose/<i>.txt`` -> (4, 4) camera-to-world matrix."""
    matrix = np.loadtxt(_require_file(Path(path), "ScanNet pose file"), dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"{path}: a ScanNet pose is a 4x4 matrix, got shape {matrix.shape}")
    return matrix


class PerceptionTestPointsSource(ClipSource):
    """Perception Test single point tracking (see the module docstring). Annotated frames are visible, every other
    frame occluded (as the official evaluation); tracks in pixels, queries at each track's first annotated frame."""

    def __init__(self, root, split: str = "valid", max_videos: int | None = None):
        root = Path(root)
        split = {"eval": "valid", "train": "train"}.get(split, split)
        annotations = _read_json(root / f"point_tracking_{split}.json", "Perception Test point tracking annotations")
        if not isinstance(annotations, dict):
            raise ValueError(f"{root}/point_tracking_{split}.json must map video ids to {{metadata, point_tracking}}")
        self.entries = [entry for entry in annotations.values() if entry.get("point_tracking")]
        self.entries = self.entries[:max_videos] if max_videos else self.entries
        for entry in self.entries:
            if "metadata" not in entry or "video_id" not in entry["metadata"]:
                raise ValueError(f"{root}/point_tracking_{split}.json: every video needs metadata.video_id")
        if not self.entries:
            raise ValueError(f"{root}/point_tracking_{split}.json holds no video with point_tracking annotations")
        self.videos = root / "videos"

    def __len__(self) -> int:
        return len(self.entries)

    def name(self, index: int) -> str:
        return str(self.videos / f"{self.entries[index]['metadata']['video_id']}.mp4")

    def load(self, index: int) -> dict[str, np.ndarray]:
        entry = self.entries[index]
        path = self.videos / f"{entry['metadata']['video_id']}.mp4"
        video = decode_video(_require_file(path, "Perception Test video"))
        frames, height, width = video.shape[:3]
        tracks = np.zeros((len(entry["point_tracking"]), frames, 2), np.float32)
        occluded = np.ones(tracks.shape[:2], bool)
        query = np.zeros((len(tracks), 3), np.float32)
        for row, track in enumerate(entry["point_tracking"]):
            ids = np.asarray(track["frame_ids"], dtype=np.int64)
            points = np.asarray(track["points"], dtype=np.float32)
            if points.shape != (2, len(ids)) or not len(ids) or ids.max() >= frames:
                raise ValueError(
                    f"{path}: track {track.get('id', row)} needs points [[x...], [y...]] for its {len(ids)} frame_ids "
                    f"inside the {frames}-frame video, got points of shape {points.shape}"
                )
            tracks[row, ids] = points.T * np.array([width, height], np.float32)
            occluded[row, ids] = False
            query[row] = (ids[0], tracks[row, ids[0], 1], tracks[row, ids[0], 0])
        return {"video": video, "query_points": query, "tracks": tracks, "occluded": occluded}


class _ConvertedNpzSource(ClipSource):
    """Clips of a converted npz folder (``<split>/<stem>.npz``), cut into windows of ``num_frames`` frames."""

    dataset = "converted"

    def __init__(self, root, split: str, task: str, num_frames: int | None = None, max_videos: int | None = None):
        folder = Path(root) / split
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{self.dataset} folder {folder} does not exist: convert the dataset once into <split>/<stem>.npz "
                "(docs/READOUT_BENCHMARK.md)"
            )
        self.inner = NpzFolderSource(folder)
        if max_videos:
            self.inner.annotations = self.inner.annotations[:max_videos]
            self.inner.videos = self.inner.videos[:max_videos]
        self.task, self.num_frames = task, num_frames
        self.windows: list[tuple[int, int]] = []
        for item in range(len(self.inner)):
            with np.load(self.inner.annotations[item], allow_pickle=False) as data:
                key = {"boxes": "boxes", "points": "tracks", "depth": "depth"}.get(task)
                if key not in data.files:
                    raise ValueError(f"{self.inner.annotations[item]} lacks `{key}`, needed by the {task} task")
                length = data[key].shape[1 if key in ("boxes", "tracks") else 0]
            count = 1 if not num_frames else max(1, length // num_frames)
            self.windows.extend((item, w * (num_frames or 0)) for w in range(count))

    def __len__(self) -> int:
        return len(self.windows)

    def name(self, index: int) -> str:
        item, start = self.windows[index]
        return f"{self.inner.name(item)} from frame {start}"

    def load(self, index: int) -> dict[str, np.ndarray]:
        item, start = self.windows[index]
        clip = self.inner.load(item)
        if self.num_frames:
            window = slice(start, start + self.num_frames)
            clip["video"] = clip["video"][window]
            for key in ("depth",):
                if key in clip:
                    clip[key] = clip[key][window]
            for key in ("boxes", "box_visible", "tracks", "occluded"):
                if key in clip:
                    clip[key] = clip[key][:, window]
        return self.finish(clip)

    def finish(self, clip: dict) -> dict:
        return clip


def _first_visible_queries(tracks: np.ndarray, occluded: np.ndarray) -> tuple[np.ndarray, ...]:
    keep = (~occluded).any(axis=1)
    tracks, occluded = tracks[keep], occluded[keep]
    first = np.argmax(~occluded, axis=1)
    rows = np.arange(len(tracks))
    query = np.stack([first, tracks[rows, first, 1], tracks[rows, first, 0]], axis=-1).astype(np.float32)
    return query, tracks.astype(np.float32), occluded


class WaymoOpenSource(_ConvertedNpzSource):
    """Waymo Open boxes, converted layout (docs/READOUT_BENCHMARK.md): per segment ``boxes`` (O, T, 4) normalised
    (ymin, xmin, ymax, xmax) of the front camera, ``box_visible`` (O, T), frames in ``video`` or ``<segment>.mp4``
    (256x384 at 5 fps). Clips are windows of ``num_frames``; the protocol's 256x256 centre crop is applied
    (``centre_crop``), boxes under ``min_area`` of the first frame dropped, at most ``max_boxes`` kept."""

    dataset = "Waymo Open (converted)"

    def __init__(self, root, split: str = "training", num_frames: int | None = 16, centre_crop: bool = True,
                 min_area: float = 0.005, max_boxes: int = 25, max_videos: int | None = None):
        split = {"train": "training", "eval": "validation"}.get(split, split)
        super().__init__(root, split, "boxes", num_frames, max_videos)
        self.centre_crop, self.min_area, self.max_boxes = centre_crop, min_area, max_boxes

    def finish(self, clip: dict) -> dict:
        boxes = np.asarray(clip["boxes"], np.float32)
        visible = np.asarray(clip.get("box_visible", np.ones(boxes.shape[:2], bool)), bool)
        video = clip["video"]
        height, width = video.shape[1:3]
        if self.centre_crop and width != height:
            side = min(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            video = video[:, top : top + side, left : left + side]
            scale = np.array([height, width, height, width], np.float32) / side
            offset = np.array([top, left, top, left], np.float32) / side
            boxes = boxes * scale - offset
            inside = (boxes[..., 2] > 0) & (boxes[..., 3] > 0) & (boxes[..., 0] < 1) & (boxes[..., 1] < 1)
            visible = visible & inside
            boxes = np.clip(boxes, 0.0, 1.0)
        area = (boxes[:, 0, 2] - boxes[:, 0, 0]) * (boxes[:, 0, 3] - boxes[:, 0, 1])
        keep = np.flatnonzero(visible[:, 0] & (area >= self.min_area))[: self.max_boxes]
        return {"video": np.ascontiguousarray(video), "boxes": boxes[keep], "box_visible": visible[keep]}


class MoviESource(_ConvertedNpzSource):
    """Kubric MOVi-E, converted layout (docs/READOUT_BENCHMARK.md): per example ``video`` (T, H, W, 3) uint8,
    ``depth`` (T, H, W) metres, ``tracks`` (N, T, 2) (x, y) pixels, ``occluded`` (N, T), ``boxes`` (O, T, 4)
    normalised (ymin, xmin, ymax, xmax), ``box_visible`` (O, T). ``task`` picks the fields; point queries are each
    track's first visible frame (tracks never visible dropped)."""

    dataset = "Kubric MOVi-E (converted)"

    def __init__(self, root, split: str = "train", task: str = "points", num_frames: int | None = None,
                 max_videos: int | None = None):
        split = {"eval": "validation"}.get(split, split)
        if task not in ("points", "depth", "boxes"):
            raise ValueError(f"MOVi-E serves the points, depth and boxes tasks, got {task!r}")
        super().__init__(root, split, task, num_frames, max_videos)

    def finish(self, clip: dict) -> dict:
        result = {"video": clip["video"]}
        if self.task == "depth":
            result["depth"] = np.asarray(clip["depth"], np.float32)
        elif self.task == "boxes":
            result["boxes"] = np.asarray(clip["boxes"], np.float32)
            if "box_visible" in clip:
                result["box_visible"] = np.asarray(clip["box_visible"], bool)
        else:
            occluded = np.asarray(clip["occluded"], bool)
            result["query_points"], result["tracks"], result["occluded"] = _first_visible_queries(
                np.asarray(clip["tracks"], np.float32), occluded)
        return result


class AugmentedSource(ClipSource):
    """The training augmentation of a preset on another source's clips (uint8 in, uint8 out; targets moved with the
    pixels). Each load draws new parameters (seeded by ``seed``, the clip and how often it was loaded), so every
    epoch sees another draw:

    * classification: a random square crop of 224/239 of the shorter side anywhere in the frame (the paper's
      "shorter side 239, random 224 crop"), colour jitter with probability 0.8 (brightness +-0.125, contrast and saturation x[0.6, 1.4], hue
      +-0.2) and grayscale with probability 0.1;
    * depth: a random square crop of 80-100% of the shorter side and a horizontal flip with probability 0.5 (depth
      moved alike);
    * points: a random crop of area [0.3, 1] and aspect [0.5, 2] (MOVi-E); points leaving it become occluded and the
      queries move to each track's first visible frame (tracks never visible dropped);
    * boxes and pose: none (the readers cut the protocol's crops and windows).
    """

    def __init__(self, source: ClipSource, task: str, seed: int = 0):
        self.source, self.task, self.seed = source, task, int(seed)
        self.label_names = source.label_names
        if task in ("classification", "depth") and getattr(source, "centre_crop", False):
            source.centre_crop = False  # the random crop replaces the test-time centre crop
        self._draws: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.source)

    def name(self, index: int) -> str:
        return self.source.name(index)

    def load(self, index: int) -> dict[str, np.ndarray]:
        clip = dict(self.source.load(index))
        draw = self._draws.get(index, 0)
        self._draws[index] = draw + 1
        rng = np.random.default_rng((self.seed, int(index), draw))
        if self.task == "classification":
            return self._classification(clip, rng)
        if self.task == "depth":
            return self._depth(clip, rng)
        if self.task == "points":
            return self._points(clip, rng)
        return clip

    @staticmethod
    def _classification(clip: dict, rng: np.random.Generator) -> dict:
        import torch

        from rep4d.training.video_data import ClipConfig, color_jitter

        video = clip["video"]
        height, width = video.shape[1:3]
        side = max(1, int(round(min(height, width) * 224 / 239)))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        frames = torch.from_numpy(np.ascontiguousarray(video[:, top : top + side, left : left + side]))
        frames = frames.permute(0, 3, 1, 2).float() / 255.0
        if rng.uniform() < 0.8:
            frames = color_jitter(frames, rng, ClipConfig(brightness=0.125, contrast=(0.6, 1.4),
                                                          saturation=(0.6, 1.4), hue=0.2))
        if rng.uniform() < 0.1:
            grey = 0.299 * frames[:, 0] + 0.587 * frames[:, 1] + 0.114 * frames[:, 2]
            frames = grey[:, None].expand(-1, 3, -1, -1)
        clip["video"] = (frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        return clip

    @staticmethod
    def _depth(clip: dict, rng: np.random.Generator) -> dict:
        video, depth = clip["video"], clip["depth"]
        height, width = video.shape[1:3]
        crop_h = crop_w = max(1, int(round(min(height, width) * rng.uniform(0.8, 1.0))))
        top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
        window = (slice(None), slice(top, top + crop_h), slice(left, left + crop_w))
        video, depth = video[window], depth[window]
        if rng.uniform() < 0.5:
            video, depth = video[:, :, ::-1], depth[:, :, ::-1]
        clip["video"], clip["depth"] = np.ascontiguousarray(video), np.ascontiguousarray(depth)
        return clip

    @staticmethod
    def _points(clip: dict, rng: np.random.Generator) -> dict:
        from rep4d.training.video_data import random_resized_crop_box

        video = clip["video"]
        height, width = video.shape[1:3]
        top, left, crop_h, crop_w = random_resized_crop_box(rng, height, width, (0.3, 1.0), (0.5, 2.0))
        tracks = np.asarray(clip["tracks"], np.float32) - np.array([left, top], np.float32)
        occluded = np.asarray(clip["occluded"], bool) | (tracks[..., 0] < 0) | (tracks[..., 1] < 0) | (
            tracks[..., 0] > crop_w) | (tracks[..., 1] > crop_h)
        query, tracks, occluded = _first_visible_queries(tracks, occluded)
        if not len(tracks):  # every track left the crop: keep this clip whole
            return clip
        clip["video"] = np.ascontiguousarray(video[:, top : top + crop_h, left : left + crop_w])
        clip["query_points"], clip["tracks"], clip["occluded"] = query, tracks, occluded
        return clip


# ----------------------------------------------------------------------------------------------------------------
# The benchmark's data root: one sub-folder per dataset
# ----------------------------------------------------------------------------------------------------------------

DATASET_FOLDERS = {
    "ssv2": "ssv2",
    "k700-2020": "kinetics700_2020",
    "re10k": "realestate10k",
    "scannet": "scannet",
    "waymo-open": "waymo_open",
    "perception-test-points": "perception_test",
    "movi-e": "movi_e",
}


def open_task_source(preset, data_root, split: str, max_videos: int | None = None) -> ClipSource:
    """The :class:`ClipSource` of a preset's ``split`` (``train`` or ``eval``) under ``data_root`` (one sub-folder
    per dataset, :data:`DATASET_FOLDERS`). Perception Test points train on MOVi-E (``movi_e/``) and evaluate on
    ``perception_test/`` (its JSON + videos, or a TAP-Vid style ``perception_test/<name>.pkl``)."""
    from rep4d.configuration.readout_presets import get_readout_preset

    preset = get_readout_preset(preset)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(data_root)
    name = preset.name
    if name.startswith("movi-e") or (name == "perception-test-points" and split == "train"):
        folder = root / DATASET_FOLDERS["movi-e"]
    else:
        folder = root / DATASET_FOLDERS[name]
    if not folder.is_dir():
        raise FileNotFoundError(f"the {name} data folder {folder} does not exist (data root layout: "
                                f"{', '.join(sorted(set(DATASET_FOLDERS.values())))})")
    frames, stride = preset.num_frames, preset.frame_stride
    if name == "ssv2":
        return SSv2Source(folder, split, frames, stride, max_videos=max_videos)
    if name == "k700-2020":
        if split == "train":
            return Kinetics700Source(folder, "train", frames, stride, max_videos=max_videos)
        test = preset.test_procedure
        return Kinetics700Source(folder, "eval", frames, stride, num_test_clips=test.get("num_clips", 1),
                                 loop_to_frames=test.get("loop_to_frames"), max_videos=max_videos)
    if name == "re10k":
        return RealEstate10KSource(folder, split, frames, stride, max_videos=max_videos)
    if name == "scannet":
        low_high = tuple(preset.test_procedure.get("valid_depth_range_m", (0.001, 10.0)))
        return ScanNetSource(folder, split, frames, stride, depth_range=low_high, max_videos=max_videos)
    if name == "waymo-open":
        return WaymoOpenSource(folder, split, frames, max_videos=max_videos)
    if name == "perception-test-points" and split == "eval":
        pickles = sorted(folder.glob("*.pkl"))
        if pickles and not any(folder.glob("point_tracking_*.json")):
            return TapVidPickleSource(pickles[0])
        return PerceptionTestPointsSource(folder, "valid", max_videos=max_videos)
    return MoviESource(folder, split, preset.task, frames, max_videos=max_videos)


__all__ = [
    "SSv2Source",
    "Kinetics700Source",
    "RealEstate10KSource",
    "ScanNetSource",
    "PerceptionTestPointsSource",
    "WaymoOpenSource",
    "MoviESource",
    "AugmentedSource",
    "DATASET_FOLDERS",
    "open_task_source",
    "read_realestate10k_cameras",
    "read_scannet_pose",
    "centre_square",
]

