"""Readers of DAVIS-2017, JHMDB and VIP in their own on-disk layouts (``rep4d.training.propagation_datasets``), on tiny
folders generated here. ``make_davis`` / ``make_jhmdb`` / ``make_vip`` are reused by the benchmark tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rep4d.training.propagation_datasets import (
    DavisDataset,
    JHMDBDataset,
    VIPDataset,
    load_propagation_dataset,
    read_joint_positions,
)

DAVIS_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (256 * 3 - 12)


def synthetic_clip(num_frames: int, height: int, width: int, seed: int = 0):
    """(T, H, W, 3) uint8 frames and (T, H, W) uint8 masks: a red square (id 1) moving right and a blue disc (id 2)
    moving down on a textured green background."""
    rng = np.random.default_rng(seed)
    background = np.zeros((height, width, 3), np.float64)
    background[..., 1] = 150 + 40 * rng.random((height, width))
    background[..., 0] = 40 + 30 * rng.random((height, width))
    background[..., 2] = 40 + 30 * rng.random((height, width))
    rows, cols = np.mgrid[:height, :width]
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    masks = np.zeros((num_frames, height, width), np.uint8)
    size = max(4, height // 4)
    for t in range(num_frames):
        frame = background.copy()
        top, left = height // 6 + seed % 3, width // 10 + (3 + seed % 2) * t
        masks[t, top : top + size, left : left + size] = 1
        disc = (rows - height // 3 - 2 * t) ** 2 + (cols - 3 * width // 4) ** 2 < (size // 2 + 1) ** 2
        masks[t][disc] = 2
        frame[masks[t] == 1] = (220, 30, 30)
        frame[masks[t] == 2] = (30, 40, 220)
        frames[t] = np.clip(frame + rng.normal(0, 4, frame.shape), 0, 255).astype(np.uint8)
    return frames, masks


def _write_palette_png(path: Path, labels: np.ndarray):
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(DAVIS_PALETTE)
    image.save(path)


def make_davis(root: Path, videos=("bear", "camel"), num_frames=4, height=64, width=112) -> Path:
    """DAVIS-2017 layout: ImageSets/2017/val.txt, JPEGImages/480p/<v>/00000.jpg, Annotations/480p/<v>/00000.png."""
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("".join(f"{video}\n" for video in videos))
    for index, video in enumerate(videos):
        frames, masks = synthetic_clip(num_frames, height, width, seed=index)
        (root / "JPEGImages" / "480p" / video).mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / "480p" / video).mkdir(parents=True, exist_ok=True)
        for t in range(num_frames):
            Image.fromarray(frames[t]).save(root / "JPEGImages" / "480p" / video / f"{t:05d}.jpg", quality=95)
            _write_palette_png(root / "Annotations" / "480p" / video / f"{t:05d}.png", masks[t])
    return root


def make_vip(root: Path, videos=("videos1", "videos7"), num_frames=3, height=48, width=80) -> Path:
    """VIP layout: lists/val_videos.txt, Images/<v>/*.jpg, Annotations/Category_ids/<v>/*.png (grayscale ids)."""
    (root / "lists").mkdir(parents=True, exist_ok=True)
    (root / "lists" / "val_videos.txt").write_text("\n".join(videos) + "\n")
    for index, video in enumerate(videos):
        frames, masks = synthetic_clip(num_frames, height, width, seed=10 + index)
        classes = np.array([0, 4, 13], np.uint8)[masks]  # background, upper-clothes, face
        classes[:, :2, :2] = 255  # void
        (root / "Images" / video).mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / "Category_ids" / video).mkdir(parents=True, exist_ok=True)
        for t in range(num_frames):
            name = f"{(t + 1) * 25:012d}"
            Image.fromarray(frames[t]).save(root / "Images" / video / f"{name}.jpg", quality=95)
            Image.fromarray(classes[t], mode="L").save(root / "Annotations" / "Category_ids" / video / f"{name}.png")
    return root


def synthetic_pose(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(T, 15, 2) float (x, y) 0-based pixels: a rigid constellation moving right."""
    rng = np.random.default_rng(seed)
    start = np.stack([rng.uniform(0.2 * width, 0.6 * width, 15), rng.uniform(0.2 * height, 0.8 * height, 15)], -1)
    return start[None] + np.arange(num_frames)[:, None, None] * np.array([2.0, 0.5])


def make_jhmdb(root: Path, num_frames=4, height=48, width=64) -> Path:
    """JHMDB layout: splits/<action>_test_split1.txt, Rename_Images/<action>/<video>/00001.png,
    joint_positions/<action>/<video>/joint_positions.mat (pos_img (2, 15, T), 1-based)."""
    from scipy.io import savemat

    videos = {"brush_hair": ["April_09_brush_hair_u_nm_np1_ba_goo_0", "Blonde_brush_hair_f_nm_np1_le_goo_0"],
              "clap": ["clap_hands_f_nm_np1_fr_med_1"]}
    (root / "splits").mkdir(parents=True, exist_ok=True)
    index = 0
    for action, names in videos.items():
        lines = []
        for position, name in enumerate(names):
            test = not (action == "brush_hair" and position == 1)  # one training video, not evaluated
            lines.append(f"{name}.avi {2 if test else 1} ")
            frames, _ = synthetic_clip(num_frames, height, width, seed=20 + index)
            pose = synthetic_pose(num_frames, height, width, seed=index)
            folder = root / "Rename_Images" / action / name
            folder.mkdir(parents=True, exist_ok=True)
            for t in range(num_frames):
                Image.fromarray(frames[t]).save(folder / f"{t + 1:05d}.png")
            (root / "joint_positions" / action / name).mkdir(parents=True, exist_ok=True)
            savemat(root / "joint_positions" / action / name / "joint_positions.mat",
                    {"pos_img": (pose + 1).transpose(2, 1, 0), "scale": np.ones(num_frames)})
            index += 1
        (root / "splits" / f"{action}_test_split1.txt").write_text("\n".join(lines) + "\n")
        (root / "splits" / f"{action}_test_split2.txt").write_text("".join(f"{n}.avi 2\n" for n in names))
    return root


def test_davis_reader(tmp_path):
    root = make_davis(tmp_path / "DAVIS", num_frames=3)
    dataset = load_propagation_dataset("davis", root)
    assert isinstance(dataset, DavisDataset) and dataset.task == "mask"
    assert dataset.video_ids == ["bear", "camel"] and len(dataset) == 2
    sample = dataset.load("camel")
    _, masks = synthetic_clip(3, 64, 112, seed=1)
    assert sample.frames.shape == (3, 64, 112, 3) and sample.frames.dtype == np.uint8
    assert sample.masks.dtype == np.uint8
    np.testing.assert_array_equal(sample.masks, masks)  # palette index = object id
    assert [s.video_id for s in dataset] == ["bear", "camel"]


def test_vip_reader(tmp_path):
    root = make_vip(tmp_path / "VIP_Fine")
    dataset = load_propagation_dataset("vip", root)
    assert isinstance(dataset, VIPDataset)
    sample = dataset.load("videos7")
    assert sample.frames.shape == (3, 48, 80, 3)
    assert set(np.unique(sample.masks)) == {0, 4, 13, 255}


def test_jhmdb_reader(tmp_path):
    root = make_jhmdb(tmp_path / "JHMDB")
    dataset = load_propagation_dataset("jhmdb", root)
    assert isinstance(dataset, JHMDBDataset) and dataset.task == "pose"
    assert dataset.video_ids == ["brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0", "clap/clap_hands_f_nm_np1_fr_med_1"]
    assert len(JHMDBDataset(root, split=2)) == 3
    sample = dataset.load(dataset.video_ids[1])
    assert sample.frames.shape == (4, 48, 64, 3)
    assert sample.pose.shape == (4, 15, 2) and sample.pose.dtype == np.float32
    np.testing.assert_allclose(sample.pose, synthetic_pose(4, 48, 64, seed=2), atol=1e-4)  # pos_img - 1


def test_jhmdb_drops_frames_after_the_last_pose(tmp_path):
    root = make_jhmdb(tmp_path / "JHMDB", num_frames=4)
    video = "clap/clap_hands_f_nm_np1_fr_med_1"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(root / "Rename_Images" / video / "00005.png")
    assert JHMDBDataset(root).load(video).frames.shape[0] == 4
    for t in (3, 4, 5):
        (root / "Rename_Images" / video / f"{t:05d}.png").unlink()
    with pytest.raises(ValueError, match="joint positions for 4 frames but only 2 frames"):
        JHMDBDataset(root).load(video)


def test_read_joint_positions_errors(tmp_path):
    from scipy.io import savemat

    savemat(tmp_path / "bad.mat", {"pos_world": np.zeros((2, 15, 3))})
    with pytest.raises(ValueError, match="pos_img"):
        read_joint_positions(tmp_path / "bad.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match="not a readable MATLAB"):
        read_joint_positions(tmp_path / "junk.mat")


@pytest.mark.parametrize("name", ["davis", "jhmdb", "vip"])
def test_missing_root_names_the_layout(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="layout"):
        load_propagation_dataset(name, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="layout"):
        load_propagation_dataset(name, tmp_path / "empty")


def test_missing_video_folder_and_mismatched_annotations(tmp_path):
    root = make_davis(tmp_path / "DAVIS", num_frames=3)
    (root / "ImageSets" / "2017" / "val.txt").write_text("bear\nghost\n")
    dataset = DavisDataset(root)
    with pytest.raises(FileNotFoundError, match="JPEGImages/480p/ghost"):
        dataset.load("ghost")
    (root / "Annotations" / "480p" / "bear" / "00002.png").unlink()
    with pytest.raises(ValueError, match="3 frames but 2 annotations"):
        dataset.load("bear")
    Image.fromarray(np.zeros((64, 112, 3), np.uint8)).save(root / "Annotations" / "480p" / "bear" / "00002.png")
    with pytest.raises(ValueError, match="palette or grayscale"):
        dataset.load("bear")


def test_unknown_dataset():
    with pytest.raises(ValueError, match="davis, jhmdb, vip"):
        load_propagation_dataset("kinetics", ".")
