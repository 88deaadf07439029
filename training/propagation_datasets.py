"""Readers for the label-propagation benchmarks, on the datasets' own on-disk layouts (``rep4d.training.propagation_datasets``).

The layouts are those the official RVM evaluation notebook reads (``colabs/rvm_evaluation_demo.ipynb`` cell 15,
``create_davis_dataset`` / ``create_jhmdb_dataset`` / ``create_vip_dataset``); ``ROOT`` is the folder passed as
``--root``::

    DAVIS-2017 (DAVIS-2017-trainval-480p, unpacked: ROOT = .../DAVIS)
      ROOT/ImageSets/2017/val.txt                  one video name per line
      ROOT/JPEGImages/480p/<video>/00000.jpg ...   RGB frames
      ROOT/Annotations/480p/<video>/00000.png ...  palette PNGs: pixel value = object id (0 = background)

    JHMDB (ROOT holds the three folders of the JHMDB release)
      ROOT/splits/<action>_test_split1.txt         lines "<video>.avi 1|2"; 2 = test (the evaluated videos)
      ROOT/Rename_Images/<action>/<video>/00001.png ...
      ROOT/joint_positions/<action>/<video>/joint_positions.mat   'pos_img': (2, 15, T) 1-based (x, y) pixels

    VIP (VIP_Fine: ROOT = .../VIP_Fine)
      ROOT/lists/val_videos.txt                    one video name per line
      ROOT/Images/<video>/*.jpg                    RGB frames (the annotated frames)
      ROOT/Annotations/Category_ids/<video>/*.png  class id per pixel (0..19, 255 = void)

Frames and annotations are paired in sorted file-name order, as the notebook does. Every reader yields
:class:`PropagationSample` objects: ``frames`` (T, H, W, 3) uint8 and either ``masks`` (T, H, W) uint8 label ids
(DAVIS, VIP) or ``pose`` (T, 15, 2) float32 0-based (x, y) pixels (JHMDB, ``pos_img - 1`` as the notebook). JHMDB
videos are listed in split-file order (the notebook shuffles them; the PCK does not depend on the order). A missing
folder or file raises ``FileNotFoundError`` naming the expected layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DAVIS_LAYOUT = ("DAVIS-2017 layout: ROOT/ImageSets/2017/<split>.txt, ROOT/JPEGImages/480p/<video>/*.jpg, "
                "ROOT/Annotations/480p/<video>/*.png")
JHMDB_LAYOUT = ("JHMDB layout: ROOT/splits/<action>_test_split1.txt, ROOT/Rename_Images/<action>/<video>/*.png, "
                "ROOT/joint_positions/<action>/<video>/joint_positions.mat")
VIP_LAYOUT = ("VIP layout: ROOT/lists/<split>_videos.txt, ROOT/Images/<video>/*.jpg, "
              "ROOT/Annotations/Category_ids/<video>/*.png")


@dataclass
class PropagationSample:
    """One benchmark video: ``frames`` (T, H, W, 3) uint8; ``masks`` (T, H, W) uint8 label ids or ``pose``
    (T, J, 2) float32 (x, y) pixels of every joint in every frame."""

    video_id: str
    frames: np.ndarray
    masks: np.ndarray | None = None
    pose: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def _require_dir(path: Path, layout: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"missing folder {path} (expected the {layout})")
    return path


def _require_file(path: Path, layout: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"missing file {path} (expected the {layout})")
    return path


def _sorted_files(folder: Path, suffix: str, layout: str) -> list[Path]:
    files = sorted(path for path in _require_dir(folder, layout).iterdir() if path.name.lower().endswith(suffix))
    if not files:
        raise FileNotFoundError(f"no *{suffix} files in {folder} (expected the {layout})")
    return files


def read_rgb_frames(files: list[Path]) -> np.ndarray:
    """(T, H, W, 3) uint8 from image files (converted to RGB), all of one size."""
    from PIL import Image

    frames = []
    for path in files:
        with Image.open(path) as image:
            frames.append(np.array(image.convert("RGB")))
    sizes = {frame.shape for frame in frames}
    if len(sizes) != 1:
        raise ValueError(f"the frames in {files[0].parent} have different sizes: {sorted(sizes)}")
    return np.stack(frames)


def read_label_maps(files: list[Path]) -> np.ndarray:
    """(T, H, W) uint8 label ids from single-channel (palette or grayscale) PNGs; the pixel value is the id."""
    from PIL import Image

    maps = []
    for path in files:
        with Image.open(path) as image:
            if image.mode not in ("P", "L", "1"):
                raise ValueError(
                    f"{path} is a {image.mode} image; annotations must be palette or grayscale PNGs whose pixel "
                    "value is the label id"
                )
            maps.append(np.array(image, dtype=np.uint8))
    sizes = {label.shape for label in maps}
    if len(sizes) != 1:
        raise ValueError(f"the annotations in {files[0].parent} have different sizes: {sorted(sizes)}")
    return np.stack(maps)


def _read_list(path: Path, layout: str) -> list[str]:
    lines = [line.strip() for line in _require_file(path, layout).read_text().splitlines()]
    return [line for line in lines if line]


class PropagationDataset:
    """Base reader: ``video_ids`` in evaluation order, ``load(video_id)`` -> :class:`PropagationSample`."""

    name: str = ""
    task: str = ""  # "mask" or "pose"
    layout: str = ""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        _require_dir(self.root, self.layout)
        self.video_ids: list[str] = []

    def __len__(self) -> int:
        return len(self.video_ids)

    def __iter__(self):
        for video_id in self.video_ids:
            yield self.load(video_id)

    def load(self, video_id: str) -> PropagationSample:
        raise NotImplementedError


class _SegmentationDataset(PropagationDataset):
    """Frames under ``frames_dir/<video>``, PNG label maps under ``labels_dir/<video>``, the split's video ids listed
    in ``split_list`` (a path below the root, ``{split}`` filled in)."""

    task = "mask"
    frames_dir = ""
    labels_dir = ""
    frame_suffix = ".jpg"
    split_list = ""

    def __init__(self, root: str | os.PathLike, split: str = "val"):
        super().__init__(root)
        self.video_ids = _read_list(self.root / self.split_list.format(split=split), self.layout)

    def load(self, video_id: str) -> PropagationSample:
        frame_files = _sorted_files(self.root / self.frames_dir / video_id, self.frame_suffix, self.layout)
        label_files = _sorted_files(self.root / self.labels_dir / video_id, ".png", self.layout)
        if len(frame_files) != len(label_files):
            raise ValueError(
                f"{self.name} video {video_id!r} has {len(frame_files)} frames but {len(label_files)} annotations "
                f"(expected one annotation per frame: {self.layout})"
            )
        frames, masks = read_rgb_frames(frame_files), read_label_maps(label_files)
        if frames.shape[1:3] != masks.shape[1:]:
            raise ValueError(
                f"{self.name} video {video_id!r}: frames are {frames.shape[1:3]} but annotations {masks.shape[1:]}"
            )
        return PropagationSample(video_id, frames, masks=masks)


class DavisDataset(_SegmentationDataset):
    """DAVIS-2017 semi-supervised video object segmentation (``ImageSets/2017/<split>.txt``, 480p)."""

    name = "davis"
    layout = DAVIS_LAYOUT
    frames_dir = "JPEGImages/480p"
    labels_dir = "Annotations/480p"
    split_list = "ImageSets/2017/{split}.txt"


class VIPDataset(_SegmentationDataset):
    """VIP video human parsing (``lists/<split>_videos.txt``, 20 classes, 255 = void)."""

    name = "vip"
    layout = VIP_LAYOUT
    frames_dir = "Images"
    labels_dir = "Annotations/Category_ids"
    split_list = "lists/{split}_videos.txt"


def read_joint_positions(path: str | os.PathLike) -> np.ndarray:
    """JHMDB ``joint_positions.mat`` -> (T, J, 2) float32 0-based (x, y) pixels (``pos_img - 1``, transposed)."""
    try:
        from scipy.io import loadmat
    except ImportError as error:  # pragma: no cover - scipy is a dependency
        raise ImportError("reading JHMDB .mat files needs scipy (pip install scipy)") from error

    try:
        data = loadmat(str(path))
    except Exception as error:  # scipy raises several exception types for a corrupt file
        raise ValueError(f"{path} is not a readable MATLAB .mat file: {error}") from error
    if "pos_img" not in data:
        raise ValueError(f"{path} has no 'pos_img' array (JHMDB joint_positions.mat holds pos_img (2, 15, T))")
    pos = np.asarray(data["pos_img"])
    if pos.ndim != 3 or pos.shape[0] != 2:
        raise ValueError(f"'pos_img' in {path} must be (2, joints, frames), got shape {pos.shape}")
    return (pos - 1).astype(np.float32).transpose(2, 1, 0)


class JHMDBDataset(PropagationDataset):
    """JHMDB keypoint propagation: the test videos (label 2) of every ``<action>_test_split<k>.txt``."""

    name = "jhmdb"
    task = "pose"
    layout = JHMDB_LAYOUT

    def __init__(self, root: str | os.PathLike, split: int = 1):
        super().__init__(root)
        splits = _require_dir(self.root / "splits", self.layout)
        suffix = f"split{split}.txt"
        split_files = sorted(path for path in splits.iterdir() if path.name.endswith(suffix))
        if not split_files:
            raise FileNotFoundError(f"no *_{suffix} files in {splits} (expected the {self.layout})")
        self.video_ids = []
        for split_file in split_files:
            action = "_".join(split_file.name.split("_")[:-2])
            for number, line in enumerate(split_file.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                fields = line.split()
                if len(fields) != 2 or fields[1] not in ("1", "2"):
                    raise ValueError(
                        f"{split_file} line {number}: expected '<video>.avi <1|2>', got {line.strip()!r}"
                    )
                if fields[1] == "2":
                    self.video_ids.append(f"{action}/{fields[0].split('.')[0]}")

    def load(self, video_id: str) -> PropagationSample:
        mat = _require_file(self.root / "joint_positions" / video_id / "joint_positions.mat", self.layout)
        pose = read_joint_positions(mat)
        frames = read_rgb_frames(_sorted_files(self.root / "Rename_Images" / video_id, ".png", self.layout))
        if len(pose) > len(frames):
            raise ValueError(
                f"jhmdb video {video_id!r} has joint positions for {len(pose)} frames but only {len(frames)} frames"
            )
        # Propagation is causal, so dropping frames after the last annotated one changes no scored prediction.
        return PropagationSample(video_id, frames[: len(pose)], pose=pose)


DATASETS = {"davis": DavisDataset, "jhmdb": JHMDBDataset, "vip": VIPDataset}


def load_propagation_dataset(name: str, root: str | os.PathLike) -> PropagationDataset:
    """The reader of ``name`` (``davis``, ``jhmdb`` or ``vip``) on the folder ``root``."""
    if name not in DATASETS:
        raise ValueError(f"unknown propagation dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](root)


__all__ = [
    "DATASETS",
    "DavisDataset",
    "JHMDBDataset",
    "PropagationDataset",
    "PropagationSample",
    "VIPDataset",
    "load_propagation_dataset",
    "read_joint_positions",
    "read_label_maps",
    "read_rgb_frames",
]
