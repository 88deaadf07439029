"""Readers of the readout benchmark's datasets, each on a tiny folder generated in its own layout."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from rep4d.configuration.readout_presets import get_readout_preset
from rep4d.training.readout_data import ReadoutDataConfig, ReadoutDataset, TapVidPickleSource, validate_clip
from rep4d.training.readout_datasets import (
    AugmentedSource,
    Kinetics700Source,
    MoviESource,
    PerceptionTestPointsSource,
    RealEstate10KSource,
    ScanNetSource,
    SSv2Source,
    WaymoOpenSource,
    centre_square,
    open_task_source,
    read_realestate10k_cameras,
    read_scannet_pose,
)


def write_video(path: Path, frames: np.ndarray, codec: str = "mpeg4") -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


CLASS_COLOURS = ((200, 40, 40), (40, 40, 200))  # red / blue frames: a readout can tell the classes apart


def _frames(rng, count: int, height: int, width: int, label: int | None = None) -> np.ndarray:
    if label is not None:  # a flat colour per class plus noise, so a classifier can learn it
        noise = rng.integers(-20, 20, (count, height, width, 3))
        return np.clip(np.array(CLASS_COLOURS[label]) + noise, 0, 255).astype(np.uint8)
    return rng.integers(0, 255, (count, height, width, 3), dtype=np.uint8)


def make_ssv2(root: Path, num_train: int = 4, num_eval: int = 2, frames: int = 10, size: int = 32,
              width: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    templates = ["Pushing something from left to right", "Holding something"]
    (root).mkdir(parents=True, exist_ok=True)
    (root / "labels.json").write_text(json.dumps({t: str(i) for i, t in enumerate(templates)}))
    for split, count in (("train", num_train), ("validation", num_eval)):
        entries = []
        for i in range(count):
            label = i % 2
            video_id = f"{split[0]}{i}"
            template = templates[label].replace("something", "[something]", 1)
            entries.append({"id": video_id, "label": template.replace("[something]", "a cup"), "template": template,
                            "placeholders": ["a cup"]})
            write_video(root / "videos" / f"{video_id}.webm", _frames(rng, frames, size, width or size, label),
                        codec="libvpx")
        (root / f"{split}.json").write_text(json.dumps(entries))
    return root


def make_kinetics(root: Path, frames: int = 12, size: int = 32, per_split: int = 2) -> Path:
    rng = np.random.default_rng(1)
    labels = ["abseiling", "zumba"]
    for split in ("train", "validate"):
        rows = []
        for i in range(per_split):
            label = labels[i % 2]
            youtube_id = f"yt{split[0]}{i:03d}"
            start, end = 10 * i, 10 * i + 10
            rows.append({"label": label, "youtube_id": youtube_id, "time_start": start, "time_end": end,
                         "split": split})
            write_video(root / split / label / f"{youtube_id}_{start:06d}_{end:06d}.mp4",
                        _frames(rng, frames, size, size, i % 2))
        rows.append({"label": "zumba", "youtube_id": "gone", "time_start": 0, "time_end": 10, "split": split})
        with open(root / f"{split}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["label", "youtube_id", "time_start", "time_end", "split"])
            writer.writeheader()
            writer.writerows(rows)
    return root


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def make_realestate10k(root: Path, sequences: int = 3, frames: int = 6, size: int = 32) -> Path:
    from PIL import Image

    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        for k in range(sequences):
            name = f"{split}{k:04x}"
            lines = [f"https://www.youtube.com/watch?v={name}"]
            for f in range(frames):
                stamp = 1000000 + 33366 * f
                rotation = _rotation_z(0.05 * (k + 1) * f)
                pose = np.concatenate([rotation, [[0.1 * f], [0.0], [0.0]]], axis=1)
                lines.append(" ".join([str(stamp), "0.5", "0.9", "0.5", "0.5", "0", "0",
                                       *[f"{v:.9f}" for v in pose.reshape(-1)]]))
                folder = root / "frames" / split / name
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_frames(rng, 1, size, size)[0]).save(folder / f"{stamp}.png")
            (root / split).mkdir(parents=True, exist_ok=True)
            (root / split / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_scannet(root: Path, scenes: int = 2, frames: int = 8, height: int = 24, width: int = 32) -> Path:
    from PIL import Image

    names = [f"scene{k:04d}_00" for k in range(scenes)]
    for k, name in enumerate(names):
        scene = root / "scans" / name
        for sub in ("color", "depth", "pose", "intrinsic"):
            (scene / sub).mkdir(parents=True, exist_ok=True)
        np.savetxt(scene / "intrinsic" / "intrinsic_color.txt", np.eye(4))
        clip = _synthetic(300 + k, frames, height, width)
        # Depth scaled to [0.5, 3.9] m as uint16 millimetres, at half the colour size (ScanNet: 640x480 vs 1296x968).
        depth_m = 0.5 + 3.4 * (clip["depth"] - clip["depth"].min()) / np.ptp(clip["depth"])
        millimetres = (1000 * depth_m).astype(np.uint16)[:, ::2, ::2]
        for f in range(frames):
            Image.fromarray(clip["video"][f]).save(scene / "color" / f"{f}.jpg")
            depth = millimetres[f].copy()
            depth[0, 0] = 0  # missing
            depth[0, 1] = 12000  # 12 m: outside the protocol's range
            Image.fromarray(depth).save(scene / "depth" / f"{f}.png")
            np.savetxt(scene / "pose" / f"{f}.txt", np.eye(4))
    (root / "scannetv2_train.txt").write_text(names[0] + "\n")
    (root / "scannetv2_val.txt").write_text(names[-1] + "\n")
    return root


def make_perception_test(root: Path, videos: int = 2, frames: int = 8, size: int = 32) -> Path:
    annotations = {}
    for k in range(videos):
        video_id = f"video_{k:04d}"
        clip = _synthetic(500 + k, frames, size, size, num_points=6)
        write_video(root / "videos" / f"{video_id}.mp4", clip["video"])
        tracks = []
        for t in range(len(clip["tracks"])):
            ids = np.flatnonzero(~clip["occluded"][t])
            if len(ids):
                points = clip["tracks"][t, ids] / np.array([size, size])
                tracks.append({"id": t, "label": "point", "parent_objects": [0], "frame_ids": ids.tolist(),
                               "points": points.T.tolist()})
        annotations[video_id] = {"metadata": {"video_id": video_id, "num_frames": frames, "split": "valid",
                                              "is_camera_moving": False}, "point_tracking": tracks}
    root.mkdir(parents=True, exist_ok=True)
    (root / "point_tracking_valid.json").write_text(json.dumps(annotations))
    return root


def _synthetic(seed: int, frames: int, height: int, width: int, **options) -> dict:
    """A rendered clip with consistent ground truth (moving objects, depth, tracks, boxes) to write in a layout."""
    from rep4d.training.synthetic import generate_clip

    return generate_clip(seed=seed, num_frames=frames, height=height, width=width, query_mode="first", **options)


def make_waymo(root: Path, segments: int = 2, frames: int = 8, height: int = 32, width: int = 48) -> Path:
    for s, split in enumerate(("training", "validation")):
        (root / split).mkdir(parents=True, exist_ok=True)
        for k in range(segments):
            clip = _synthetic(100 * s + k, frames, height, width, num_objects=3)
            tiny = np.tile(np.array([[[0.5, 0.5, 0.51, 0.51]]], np.float32), (1, frames, 1))  # 0.01%: dropped
            boxes = np.concatenate([clip["boxes"], tiny])
            visible = np.concatenate([clip["box_visible"], np.ones((1, frames), bool)])
            np.savez(root / split / f"segment-{k}.npz", boxes=boxes, box_visible=visible)
            write_video(root / split / f"segment-{k}.mp4", clip["video"])
    return root


def make_movi_e(root: Path, examples: int = 2, frames: int = 8, size: int = 32) -> Path:
    for s, split in enumerate(("train", "validation")):
        (root / split).mkdir(parents=True, exist_ok=True)
        for k in range(examples):
            clip = _synthetic(1000 + 100 * s + k, frames, size, size, num_points=16)
            occluded = clip["occluded"].copy()
            occluded[0] = True  # never visible: dropped by the reader
            occluded[1, 0], occluded[1, 1] = True, False  # first visible at frame 1
            np.savez(root / split / f"{k:05d}.npz", video=clip["video"], depth=clip["depth"], tracks=clip["tracks"],
                     occluded=occluded, boxes=clip["boxes"], box_visible=clip["box_visible"])
    return root


# ----------------------------------------------------------------------------------------------------------------


def test_ssv2_reader(tmp_path):
    root = make_ssv2(tmp_path / "ssv2")
    source = SSv2Source(root, "train", num_frames=4, frame_stride=2)
    assert len(source) == 4 and source.label_names == ["Pushing something from left to right", "Holding something"]
    clip = source.load(1)
    assert clip["video"].shape == (4, 32, 32, 3) and int(clip["label"]) == 1  # square videos: the crop is whole
    red, _, blue = clip["video"].reshape(-1, 3).mean(0)
    assert blue > red + 100  # the class-1 colour decoded
    validate_clip(clip, "classification", num_labels=2)
    assert len(SSv2Source(root, "validation", num_frames=4)) == 2
    (root / "videos" / "t0.webm").unlink()
    with pytest.raises(FileNotFoundError, match="t0.webm"):
        SSv2Source(root, "train")
    with pytest.raises(FileNotFoundError, match="labels.json"):
        SSv2Source(tmp_path / "nothing")


def test_classification_clips_are_centre_cropped(tmp_path):
    source = SSv2Source(make_ssv2(tmp_path / "wide", num_train=2, num_eval=1, size=32, width=48), num_frames=4)
    assert source.load(0)["video"].shape == (4, 32, 32, 3)  # the central square of a 32x48 video
    frames = np.arange(2 * 4 * 6 * 3).reshape(2, 4, 6, 3)
    np.testing.assert_array_equal(centre_square(frames), frames[:, :, 1:5])


def test_kinetics_reader_and_seven_clip_test(tmp_path):
    root = make_kinetics(tmp_path / "k700")
    train = Kinetics700Source(root, "train", num_frames=4, frame_stride=2)
    assert len(train) == 2 and train.missing == 1 and train.label_names == ["abseiling", "zumba"]
    assert train.load(0)["video"].shape == (4, 32, 32, 3)
    test = Kinetics700Source(root, "validate", num_frames=4, frame_stride=2, num_test_clips=7, loop_to_frames=25)
    assert len(test) == 14  # 2 videos x 7 clips, consecutive
    labels = [int(test.load(i)["label"]) for i in range(14)]
    assert labels == [0] * 7 + [1] * 7
    assert "(clip 6)" in test.name(6)
    with pytest.raises(ValueError, match="label,youtube_id"):
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "train.csv").write_text("name,id\nx,y\n")
        Kinetics700Source(tmp_path / "bad")


def test_realestate10k_reader(tmp_path):
    root = make_realestate10k(tmp_path / "re10k")
    url, stamps, intrinsics, poses = read_realestate10k_cameras(root / "train" / "train0001.txt")
    assert url.startswith("https://") and stamps.shape == (6,) and intrinsics.shape == (6, 4)
    assert poses.shape == (6, 3, 4)
    source = RealEstate10KSource(root, "train", num_frames=4, frame_stride=1)
    clip = source.load(1)
    assert clip["video"].shape == (4, 32, 32, 3)
    # world-to-camera R_f = Rz(0.1 f): the last camera (frame 3) seen from the first is Rz(0) @ Rz(0.3).T
    np.testing.assert_allclose(clip["camera_rotation"], _rotation_z(0.3).T, atol=1e-6)
    validate_clip(clip, "pose")
    assert len(RealEstate10KSource(root, "eval")) == 3
    (root / "train" / "bad.txt").write_text("url\n1 2 3\n")
    with pytest.raises(ValueError, match="19 numbers"):
        RealEstate10KSource(root, "train").load(0)


def test_scannet_reader_masks_depth_range(tmp_path):
    root = make_scannet(tmp_path / "scannet")
    source = ScanNetSource(root, "train", num_frames=4)
    assert len(source) == 2  # one scene in the train list, 8 frames -> 2 clips of 4
    assert source.load(0)["depth"].shape == (4, 24, 24)  # the central square (test crop)
    source.centre_crop = False
    clip = source.load(0)
    assert clip["video"].shape == (4, 24, 32, 3) and clip["depth"].shape == (4, 24, 32)
    assert clip["depth"][:, :2, :4].max() == 0.0  # missing (0) and 12 m (outside (0.001, 10)) masked
    valid = clip["depth"][clip["depth"] > 0]
    assert 0.5 <= valid.min() and valid.max() < 4.0  # millimetres -> metres
    validate_clip(clip, "depth")
    assert len(ScanNetSource(root, "eval", num_frames=4)) == 2
    np.testing.assert_array_equal(read_scannet_pose(root / "scans" / "scene0000_00" / "pose" / "0.txt"), np.eye(4))


def test_perception_test_points_reader(tmp_path):
    root = make_perception_test(tmp_path / "pt")
    source = PerceptionTestPointsSource(root, "valid")
    track = json.loads((root / "point_tracking_valid.json").read_text())["video_0000"]["point_tracking"][0]
    clip = source.load(0)
    assert clip["tracks"].shape[1:] == (8, 2) and clip["occluded"].shape == clip["tracks"].shape[:2]
    ids = track["frame_ids"]
    assert not clip["occluded"][0, ids].any() and clip["occluded"][0].sum() == 8 - len(ids)
    x, y = track["points"][0][0] * 32, track["points"][1][0] * 32
    np.testing.assert_allclose(clip["query_points"][0], [ids[0], y, x], atol=1e-4)
    np.testing.assert_allclose(clip["tracks"][0, ids[-1]], [track["points"][0][-1] * 32, track["points"][1][-1] * 32],
                               atol=1e-4)
    validate_clip(clip, "points")
    with pytest.raises(FileNotFoundError, match="point_tracking_train.json"):
        PerceptionTestPointsSource(root, "train")


def test_tapvid_pickle_serves_perception_test_eval(tmp_path):
    root = tmp_path / "data" / "perception_test"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    points = rng.uniform(0.1, 0.9, (4, 8, 2)).astype(np.float32)
    data = {"v0": {"video": _frames(rng, 8, 32, 32), "points": points, "occluded": np.zeros((4, 8), bool)}}
    with open(root / "tapvid_perception.pkl", "wb") as handle:
        pickle.dump(data, handle)
    source = open_task_source("perception-test-points", tmp_path / "data", "eval")
    assert isinstance(source, TapVidPickleSource) and source.load(0)["tracks"].shape == (4, 8, 2)


def test_waymo_converted_reader(tmp_path):
    root = make_waymo(tmp_path / "waymo")
    source = WaymoOpenSource(root, "train", num_frames=4)
    assert len(source) == 4  # 2 segments x 2 windows of 4 frames
    clip = source.load(0)
    assert clip["video"].shape == (4, 32, 32, 3)  # 32x48 centre-cropped to 32x32
    area = (clip["boxes"][:, 0, 2] - clip["boxes"][:, 0, 0]) * (clip["boxes"][:, 0, 3] - clip["boxes"][:, 0, 1])
    assert 1 <= len(area) <= 3 and area.min() >= 0.005  # the tiny box is dropped
    validate_clip(clip, "boxes")
    with pytest.raises(FileNotFoundError, match="convert the dataset"):
        WaymoOpenSource(tmp_path / "missing")


def test_movi_e_converted_reader(tmp_path):
    root = make_movi_e(tmp_path / "movi")
    with np.load(root / "train" / "00000.npz") as data:
        ever_visible = int((~data["occluded"]).any(axis=1).sum())
    points = MoviESource(root, "train", "points").load(0)
    assert points["tracks"].shape == (ever_visible, 8, 2) and ever_visible <= 15  # never-visible tracks dropped
    assert points["query_points"][0, 0] == 1  # track 1: first visible at frame 1
    validate_clip(points, "points")
    validate_clip(MoviESource(root, "eval", "depth").load(1), "depth")
    validate_clip(MoviESource(root, "train", "boxes", num_frames=4).load(1), "boxes")
    with pytest.raises(ValueError, match="points, depth and boxes"):
        MoviESource(root, "train", "pose")


def test_task_sources_feed_the_readout_dataset(tmp_path):
    make_ssv2(tmp_path / "ssv2")
    make_scannet(tmp_path / "scannet")
    make_realestate10k(tmp_path / "realestate10k")
    for name, task in (("ssv2", "classification"), ("scannet", "depth"), ("re10k", "pose")):
        preset = get_readout_preset(name).with_overrides(num_frames=4, frame_stride=1)
        source = open_task_source(preset, tmp_path, "train")
        config = ReadoutDataConfig(num_frames=4, image_size=(16, 16), num_labels=2 if task == "classification" else None)
        example = ReadoutDataset(source, task, config)[0]
        assert example["pixel_values"].shape == (4, 3, 16, 16)
    with pytest.raises(FileNotFoundError, match="waymo_open"):
        open_task_source("waymo-open", tmp_path, "train")


def test_training_augmentation_moves_targets_with_pixels(tmp_path):
    ssv2 = AugmentedSource(SSv2Source(make_ssv2(tmp_path / "ssv2"), num_frames=4), "classification", seed=0)
    first, second = ssv2.load(0), ssv2.load(0)
    assert first["video"].shape == (4, 30, 30, 3)  # 224/239 of the 32-pixel shorter side
    assert int(first["label"]) == 0 and not np.array_equal(first["video"], second["video"])  # a new draw per load
    validate_clip(first, "classification")
    depth = AugmentedSource(ScanNetSource(make_scannet(tmp_path / "scannet"), num_frames=4), "depth", seed=1)
    for _ in range(3):
        clip = depth.load(0)
        assert clip["depth"].shape == clip["video"].shape[:3] and clip["video"].shape[1] >= 19
        validate_clip(clip, "depth")
    movi = make_movi_e(tmp_path / "movi")
    plain, points = MoviESource(movi, "train", "points"), AugmentedSource(MoviESource(movi, "train", "points"), "points")
    for _ in range(4):
        clip = points.load(0)
        validate_clip(clip, "points")  # visible points inside the crop, queries at the first visible frame
        assert clip["video"].shape[1] * clip["video"].shape[2] <= 32 * 32
        assert len(clip["tracks"]) <= len(plain.load(0)["tracks"])
    waymo = AugmentedSource(WaymoOpenSource(make_waymo(tmp_path / "waymo"), num_frames=4), "boxes")
    np.testing.assert_array_equal(waymo.load(0)["boxes"], waymo.source.load(0)["boxes"])  # boxes: no augmentation
