"""Readout dataset adapters: synthetic folder and in-memory clips, TAP-Vid pickles, video folders/CSV, errors."""

import io
import os
import pickle

import numpy as np
import pytest
import torch

from rep4d.configuration.readout_tasks import READOUT_TASKS
from rep4d.training.readout_data import (
    NpzFolderSource,
    ReadoutDataConfig,
    ReadoutDataset,
    RestrictedUnpickler,
    SyntheticSource,
    TapVidPickleSource,
    VideoLabelSource,
    collate_readout_batch,
    cut_clip,
    open_clip_source,
    restricted_pickle_load,
    validate_clip,
)
from rep4d.training.synthetic import LABEL_NAMES, generate_clip, write_dataset
from rep4d.visualization import write_video

FRAMES, SIZE = 4, 16


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    write_dataset(folder, num_clips=3, seed=0, num_frames=FRAMES, height=SIZE, width=SIZE, progress=False,
                  num_points=6, num_objects=2)  # fmt: skip
    return folder


EXPECTED_SHAPES = {
    "depth": {"depth": (2, FRAMES, SIZE, SIZE)},
    "points": {"query_points": (2, 6, 3), "tracks": (2, 6, FRAMES, 2), "occluded": (2, 6, FRAMES)},
    "boxes": {"boxes": (2, 2, FRAMES, 4), "box_visible": (2, 2, FRAMES)},
    "pose": {"camera_rotation": (2, 3, 3), "camera_translation": (2, 3)},
    "classification": {"labels": (2,)},
}


@pytest.mark.parametrize("task", READOUT_TASKS)
def test_synthetic_folder_serves_every_task(synth_folder, task):
    source = open_clip_source(synth_folder, task)
    assert isinstance(source, NpzFolderSource) and len(source) == 3
    assert source.label_names == LABEL_NAMES
    dataset = ReadoutDataset(source, task, ReadoutDataConfig(num_frames=FRAMES))
    batch = collate_readout_batch([dataset[0], dataset[1]])
    assert batch["pixel_values"].shape == (2, FRAMES, 3, SIZE, SIZE)
    assert batch["pixel_values"].dtype == torch.float32
    assert 0.0 <= batch["pixel_values"].min() and batch["pixel_values"].max() <= 1.0
    for key, shape in EXPECTED_SHAPES[task].items():
        assert tuple(batch[key].shape) == shape, key
    # The mp4 is decoded with PyAV and matches the exact frames up to H.264 loss.
    exact = generate_clip(seed=(0, 1), num_frames=FRAMES, height=SIZE, width=SIZE, num_points=6, num_objects=2)
    decoded = batch["pixel_values"][1].permute(0, 2, 3, 1).numpy() * 255
    assert np.abs(decoded - exact["video"].astype(np.float32)).mean() < 12
    if task != "classification":
        annotation = exact[{"depth": "depth", "points": "tracks", "boxes": "boxes", "pose": "camera_rotation"}[task]]
        key = {"depth": "depth", "points": "tracks", "boxes": "boxes", "pose": "camera_rotation"}[task]
        np.testing.assert_allclose(batch[key][1].numpy(), annotation, atol=1e-6)


def test_in_memory_synthetic_source_and_resizing():
    source = open_clip_source("synthetic:2,seed=3,num_points=5", "points", num_frames=6, image_size=(24, 24))
    assert isinstance(source, SyntheticSource) and len(source) == 2
    clip = generate_clip(seed=(3, 1), num_frames=6, height=24, width=24, num_points=5)
    dataset = ReadoutDataset(source, "points", ReadoutDataConfig(image_size=(12, 12)))
    example = dataset[1]
    assert example["pixel_values"].shape == (6, 3, 12, 12)
    visible = ~clip["occluded"]
    np.testing.assert_allclose(example["tracks"].numpy()[visible], np.clip(clip["tracks"][visible] / 2, 0, 12),
                               atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(example["query_points"].numpy(), clip["query_points"] * [1, 0.5, 0.5], atol=1e-5)


def test_synthetic_source_caches_rendered_clips_within_its_budget():
    source = SyntheticSource(3, seed=1, num_frames=4, height=16, width=16, num_points=4)
    first = source.load(2)
    first["video"] = None  # callers get their own dict: replacing a field does not touch the cache
    again = source.load(2)
    np.testing.assert_array_equal(again["video"], generate_clip(seed=(1, 2), num_frames=4, height=16, width=16,
                                                                 num_points=4)["video"])  # fmt: skip
    assert again["depth"] is source.load(2)["depth"]  # rendered once
    uncached = SyntheticSource(3, seed=1, cache_bytes=0, num_frames=4, height=16, width=16, num_points=4)
    assert uncached.load(2)["depth"] is not uncached.load(2)["depth"]
    np.testing.assert_array_equal(uncached.load(2)["depth"], again["depth"])
    with pytest.raises(ValueError, match="cache_bytes"):
        SyntheticSource(3, cache_bytes=-1)


def test_npz_layout_with_video_inside_and_normalisation(tmp_path):
    clip = generate_clip(seed=1, num_frames=FRAMES, height=SIZE, width=SIZE, num_objects=1, num_points=3)
    np.savez(tmp_path / "a.npz", video=clip["video"], depth=clip["depth"])
    source = open_clip_source(tmp_path, "depth")
    config = ReadoutDataConfig(pixel_mean=(0.5, 0.5, 0.5), pixel_std=(0.25, 0.25, 0.25))
    example = ReadoutDataset(source, "depth", config)[0]
    expected = (torch.from_numpy(clip["video"]).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(example["pixel_values"], expected)
    with pytest.raises(ValueError, match=r"lack the field\(s\) \['boxes'\]|lacks the field\(s\) \['boxes'\]"):
        ReadoutDataset(source, "boxes")[0]


def write_tapvid_pickle(path, as_list=False, jpeg=False):
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, size=(5, 20, 30, 3), dtype=np.uint8)
    points = rng.uniform(0.1, 0.9, size=(3, 5, 2)).astype(np.float32)
    occluded = np.zeros((3, 5), dtype=bool)
    occluded[0, :2] = True  # first visible at frame 2
    occluded[2] = True  # never visible: dropped
    frames = video
    if jpeg:
        from PIL import Image

        frames = []
        for frame in video:
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="PNG")
            frames.append(buffer.getvalue())
    entry = {"video": frames, "points": points, "occluded": occluded}
    data = [entry] if as_list else {"bear": entry}
    with open(path, "wb") as handle:
        pickle.dump(data, handle)
    return video, points, occluded


@pytest.mark.parametrize("as_list, jpeg", [(False, False), (True, True)])
def test_tapvid_pickle_adapter(tmp_path, as_list, jpeg):
    path = tmp_path / "tapvid_davis.pkl"
    video, points, occluded = write_tapvid_pickle(path, as_list, jpeg)
    source = open_clip_source(path, "points")
    assert isinstance(source, TapVidPickleSource) and len(source) == 1
    clip = source.load(0)
    np.testing.assert_array_equal(clip["video"], video)
    np.testing.assert_allclose(clip["tracks"], points[:2] * [30, 20], rtol=1e-6)
    np.testing.assert_array_equal(clip["occluded"], occluded[:2])
    expected_query = [[2, points[0, 2, 1] * 20, points[0, 2, 0] * 30], [0, points[1, 0, 1] * 20, points[1, 0, 0] * 30]]
    np.testing.assert_allclose(clip["query_points"], expected_query, rtol=1e-6)
    example = ReadoutDataset(source, "points")[0]
    assert example["tracks"].shape == (2, 5, 2) and example["pixel_values"].shape == (5, 3, 20, 30)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_restricted_unpickler_refuses_code(tmp_path):
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"video": _Exploit()}, handle)
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle posix.system|refusing to unpickle os.system"):
        restricted_pickle_load(path)
    with pytest.raises(pickle.UnpicklingError):
        TapVidPickleSource(path)
    # numpy arrays of every dtype still load, with old and new protocols.
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([True, False]), "c": np.int64(3)}
    for protocol in (2, 4, 5):
        loaded = RestrictedUnpickler(io.BytesIO(pickle.dumps(arrays, protocol=protocol))).load()
        np.testing.assert_array_equal(loaded["a"], arrays["a"])
        np.testing.assert_array_equal(loaded["b"], arrays["b"])
        assert loaded["c"] == 3


def test_classification_video_folder_and_csv(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        for index in range(2):
            write_video(tmp_path / "videos" / name / f"{index}.mp4", rng.integers(0, 255, (6, 16, 16, 3), np.uint8))
    source = open_clip_source(tmp_path / "videos", "classification", num_frames=4)
    assert isinstance(source, VideoLabelSource) and source.label_names == ["cats", "dogs"]
    dataset = ReadoutDataset(source, "classification", ReadoutDataConfig(num_frames=4, num_labels=2))
    batch = collate_readout_batch([dataset[i] for i in range(4)])
    assert batch["pixel_values"].shape == (4, 4, 3, 16, 16)
    assert batch["labels"].tolist() == [0, 0, 1, 1]
    (tmp_path / "videos" / "labels.csv").write_text("file_name,label\ncats/0.mp4,dogs\ndogs/1.mp4,cats\n")
    source = open_clip_source(tmp_path / "videos" / "labels.csv", "classification", num_frames=4)
    assert source.label_names == ["cats", "dogs"] and source.labels == [1, 0]
    (tmp_path / "videos" / "ids.csv").write_text("file_name,label\ncats/0.mp4,5\n")
    dataset = ReadoutDataset(open_clip_source(tmp_path / "videos" / "ids.csv", "classification", num_frames=4),
                             "classification", ReadoutDataConfig(num_labels=3))  # fmt: skip
    with pytest.raises(ValueError, match=r"label 5 is out of range \[0, 3\)"):
        dataset[0]


@pytest.fixture
def clip():
    return generate_clip(seed=2, num_frames=FRAMES, height=SIZE, width=SIZE, num_objects=2, num_points=4)


def test_bad_input_errors(clip):
    bad = dict(clip, tracks=clip["tracks"].copy(), occluded=np.zeros_like(clip["occluded"]))
    bad["tracks"][0, 1] = [SIZE + 5, 3]
    with pytest.raises(ValueError, match="visible track points must lie inside the 16x16 frame"):
        validate_clip(bad, "points", "clip")
    boxes = clip["boxes"].copy()
    boxes[1, 2] = [0.8, 0.1, 0.2, 0.5]
    with pytest.raises(ValueError, match=r"ymin <= ymax .* box 1 in frame 2"):
        validate_clip(dict(clip, boxes=boxes), "boxes", "clip")
    with pytest.raises(ValueError, match=r"normalised to \[0, 1\]"):
        validate_clip(dict(clip, boxes=clip["boxes"] * 16), "boxes", "clip")
    with pytest.raises(ValueError, match=r"label 7 is out of range \[0, 4\)"):
        validate_clip(dict(clip, label=np.int64(7)), "classification", "clip", num_labels=4)
    without = {key: value for key, value in clip.items() if key != "camera_rotation"}
    with pytest.raises(ValueError, match=r"lacks the field\(s\) \['camera_rotation'\]"):
        validate_clip(without, "pose", "clip 3")
    with pytest.raises(ValueError, match=r"`depth` must have shape \(4, 16, 16\)"):
        validate_clip(dict(clip, depth=clip["depth"][:2]), "depth", "clip")
    with pytest.raises(ValueError, match="must be a rotation"):
        validate_clip(dict(clip, camera_rotation=np.eye(3) * 2), "pose", "clip")
    with pytest.raises(ValueError, match=r"`camera_translation` must have shape \(3,\)"):
        validate_clip(dict(clip, camera_translation=np.zeros(4)), "pose", "clip")
    with pytest.raises(ValueError, match="pose clips must have exactly num_frames"):
        cut_clip(clip, "pose", 2)
    with pytest.raises(ValueError, match="fewer than the 8"):
        cut_clip(clip, "depth", 8)


def test_cut_clip_moves_late_queries_into_the_window():
    clip = {
        "video": np.zeros((6, 8, 8, 3), np.uint8),
        "query_points": np.array([[1, 2, 3], [4, 5, 6], [5, 1, 1]], np.float32),
        "tracks": np.tile(np.array([[1.0, 1.0]], np.float32), (3, 6, 1)),
        "occluded": np.array([[0, 0, 0, 0, 0, 0], [1, 0, 0, 1, 0, 0], [1, 1, 1, 1, 1, 0]], bool),
    }
    clip["tracks"][1, 1] = [6.0, 7.0]
    cut = cut_clip(clip, "points", 3)
    assert cut["tracks"].shape == (2, 3, 2)  # the third track is never visible in frames 0-2: dropped
    np.testing.assert_array_equal(cut["query_points"], [[1, 2, 3], [1, 7, 6]])


def test_collator_pads_boxes_and_explains_point_mismatch(clip):
    source = SyntheticSource(2, num_frames=FRAMES, height=SIZE, width=SIZE, num_objects=2, num_points=4)
    dataset = ReadoutDataset(source, "boxes")
    one, two = dataset[0], dataset[1]
    two = dict(two, boxes=two["boxes"][:1], box_visible=two["box_visible"][:1])
    batch = collate_readout_batch([one, two])
    assert batch["boxes"].shape == (2, 2, FRAMES, 4)
    assert not batch["box_visible"][1, 1].any() and batch["boxes"][1, 1].abs().sum() == 0
    points = ReadoutDataset(source, "points")
    a, b = points[0], points[1]
    b = {key: value[:2] if key != "pixel_values" else value for key, value in b.items()}
    with pytest.raises(ValueError, match="num_points"):
        collate_readout_batch([a, b])
    sampled = ReadoutDataset(source, "points", ReadoutDataConfig(num_points=7))
    assert sampled[0]["tracks"].shape == (7, FRAMES, 2)


def test_synthetic_pose_clips_carry_the_relative_camera_translation():
    """``synthetic:N`` pose data uses the registry's synthetic options (a translating camera); the example carries the
    relative pose [R | t] of the last camera in the first camera's frame."""
    source = open_clip_source("synthetic:2,seed=4", "pose", num_frames=FRAMES, image_size=(SIZE, SIZE))
    example = ReadoutDataset(source, "pose")[1]
    clip = generate_clip(seed=(4, 1), num_frames=FRAMES, height=SIZE, width=SIZE, max_camera_translation=1.0)
    np.testing.assert_array_equal(example["camera_translation"].numpy(), clip["camera_translation"])
    assert np.abs(clip["camera_translation"]).max() > 0.05
    # The other tasks' synthetic clips keep a camera that only pans.
    depth_clip = open_clip_source("synthetic:1,seed=4", "depth", num_frames=FRAMES, image_size=(SIZE, SIZE)).load(0)
    np.testing.assert_array_equal(depth_clip["camera_translation"], np.zeros(3))


def test_realestate10k_pose_labels_carry_the_relative_translation(tmp_path):
    """The RE10k reader's label is the relative pose [R | t] of the last camera in the first camera's frame, from
    the 3x4 world-to-camera poses: t = R_first @ c_last + t_first with the camera centre c = -R^T t."""
    from test_readout_datasets import _rotation_z, make_realestate10k

    from rep4d.training.readout_datasets import RealEstate10KSource

    root = make_realestate10k(tmp_path / "re10k")
    clip = RealEstate10KSource(root, "train", num_frames=4, frame_stride=1).load(1)
    # Sequence 1: world-to-camera R_f = Rz(0.1 f), t_f = (0.1 f, 0, 0); the first camera is the world frame.
    centre_last = -_rotation_z(0.3).T @ np.array([0.3, 0.0, 0.0])
    np.testing.assert_allclose(clip["camera_translation"], centre_last, atol=1e-6)
    example = ReadoutDataset(RealEstate10KSource(root, "train", num_frames=4), "pose")[1]
    np.testing.assert_allclose(example["camera_translation"].numpy(), centre_last, atol=1e-6)
