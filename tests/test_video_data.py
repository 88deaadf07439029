"""Video data pipeline: sources, determinism, augmentations, skipping bad files, collate, configuration errors."""

import csv
import logging

import numpy as np
import pytest
import torch
from datasets import Dataset, Features, Value, Video

from rep4d.training.synthetic import generate_clip
from rep4d.training.video_data import (
    ClipConfig,
    augment_clip,
    build_video_dataset,
    collate_video_clips,
)
from rep4d.visualization import write_video

CONFIG = ClipConfig(num_frames=4, frame_stride=2, height=24, width=24)


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    for index, num_frames in enumerate([12, 10, 9]):
        write_video(folder / f"good_{index}.mp4", generate_clip(index, num_frames=num_frames, height=32, width=40)["video"])
    write_video(folder / "short.mp4", generate_clip(9, num_frames=3, height=32, width=40)["video"])
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return folder


def test_folder_skips_corrupt_and_short_files_with_warnings(video_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="rep4d.training.video_data"):
        dataset = build_video_dataset(video_folder, CONFIG, seed=0)
    assert len(dataset) == 3
    assert (dataset.stats.corrupt, dataset.stats.too_short, dataset.stats.decode_failures) == (1, 1, 0)
    assert dataset.stats.total == 2
    assert any("corrupt.mp4" in message for message in caplog.messages)
    assert any("short.mp4" in message and "needs 7" in message for message in caplog.messages)
    example = dataset[0]
    assert example["pixel_values"].shape == (4, 3, 24, 24) and example["pixel_values"].dtype == torch.float32
    assert 0 <= float(example["pixel_values"].min()) and float(example["pixel_values"].max()) <= 1


def test_examples_are_deterministic_per_seed_epoch_and_index(video_folder):
    first = build_video_dataset(video_folder, CONFIG, seed=3)
    second = build_video_dataset(video_folder, CONFIG, seed=3)
    other_seed = build_video_dataset(video_folder, CONFIG, seed=4)
    for index in range(len(first)):
        assert torch.equal(first[index]["pixel_values"], second[index]["pixel_values"])
    assert not torch.equal(first[0]["pixel_values"], other_seed[0]["pixel_values"])
    before = first[1]["pixel_values"]
    first.set_epoch(1)
    assert not torch.equal(first[1]["pixel_values"], before)
    first.set_epoch(0)
    assert torch.equal(first[1]["pixel_values"], before)
    # Through a DataLoader with worker processes the examples are the same.
    loader = torch.utils.data.DataLoader(second, batch_size=3, num_workers=2, collate_fn=collate_video_clips)
    batch = next(iter(loader))
    assert batch["pixel_values"].shape == (3, 4, 3, 24, 24)
    assert torch.equal(batch["pixel_values"][1], before)
    assert batch["index"].tolist() == [0, 1, 2] and int(batch["num_skipped"]) == 0


def test_augmentations_flip_crop_and_colour():
    frames = generate_clip(1, num_frames=3, height=24, width=24)["video"]
    plain = augment_clip(frames, np.random.default_rng(0), ClipConfig(
        num_frames=3, height=24, width=24, crop_scale=(1, 1), crop_ratio=(1, 1), flip_prob=0, color_prob=0))
    np.testing.assert_allclose(plain.permute(0, 2, 3, 1).numpy(), frames / 255.0, atol=1e-6)
    flipped = augment_clip(frames, np.random.default_rng(0), ClipConfig(
        num_frames=3, height=24, width=24, crop_scale=(1, 1), crop_ratio=(1, 1), flip_prob=1, color_prob=0))
    assert torch.equal(flipped, plain.flip(-1))
    jittered = augment_clip(frames, np.random.default_rng(0), ClipConfig(
        num_frames=3, height=24, width=24, crop_scale=(1, 1), crop_ratio=(1, 1), flip_prob=0, color_prob=1))
    assert jittered.shape == plain.shape and not torch.allclose(jittered, plain, atol=1e-3)
    assert 0 <= float(jittered.min()) and float(jittered.max()) <= 1
    cropped = augment_clip(frames, np.random.default_rng(0), ClipConfig(
        num_frames=3, height=12, width=16, crop_scale=(0.2, 0.4), flip_prob=0, color_prob=0))
    assert cropped.shape == (3, 3, 12, 16)


def test_eval_mode_is_seed_independent_centre_clip(video_folder):
    config = ClipConfig(num_frames=4, frame_stride=2, height=24, width=24, train=False)
    one = build_video_dataset(video_folder, config, seed=0)
    two = build_video_dataset(video_folder, config, seed=99)
    assert torch.equal(one[0]["pixel_values"], two[0]["pixel_values"])


def test_csv_list_and_hub_style_sources(video_folder, tmp_path):
    names = ["good_0.mp4", "good_1.mp4"]
    csv_path = video_folder / "train.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "label"])
        writer.writerows([[name, index + 2] for index, name in enumerate(names)])
    from_csv = build_video_dataset(csv_path, CONFIG, seed=0, label_column="label")
    batch = collate_video_clips([from_csv[0], from_csv[1]])
    assert batch["labels"].tolist() == [2, 3] and batch["labels"].dtype == torch.long
    from_list = build_video_dataset([video_folder / name for name in names], CONFIG, seed=0)
    assert torch.equal(from_list[1]["pixel_values"], from_csv[1]["pixel_values"])
    table = Dataset.from_dict({"video_path": names, "label": [0, 1]})
    from_table = build_video_dataset(table, CONFIG, seed=0, root=video_folder, label_column="label")
    assert torch.equal(from_table[0]["pixel_values"], from_csv[0]["pixel_values"])
    # Video(decode=False): embedded bytes, e.g. a Hub parquet dataset.
    embedded = Dataset.from_dict(
        {"video": [{"path": name, "bytes": (video_folder / name).read_bytes()} for name in names]},
        features=Features({"video": Video(decode=False)}),
    )
    from_bytes = build_video_dataset(embedded, CONFIG, seed=0)
    assert from_bytes.path_column == "video"
    assert torch.equal(from_bytes[1]["pixel_values"], from_csv[1]["pixel_values"])
    strings = Dataset.from_dict({"clip": [str(video_folder / names[0])]}, features=Features({"clip": Value("string")}))
    assert len(build_video_dataset(strings, CONFIG, path_column="clip")) == 1


def test_decode_failures_are_replaced_and_counted(video_folder, caplog):
    paths = [video_folder / "corrupt.mp4", video_folder / "good_0.mp4"]
    dataset = build_video_dataset(paths, CONFIG, seed=0, probe=False)  # the bad file is only found when decoding
    with caplog.at_level(logging.WARNING, logger="rep4d.training.video_data"):
        batch = collate_video_clips([dataset[0], dataset[1]])
    assert batch["pixel_values"].shape == (2, 4, 3, 24, 24)
    assert int(batch["num_skipped"]) == 1 and dataset.stats.decode_failures == 1
    assert any("corrupt.mp4" in message for message in caplog.messages)


def test_bad_configuration_errors(video_folder, tmp_path):
    with pytest.raises(ValueError, match="longest readable video has 12"):
        build_video_dataset(video_folder, ClipConfig(num_frames=8, frame_stride=2))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_video_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        build_video_dataset(tmp_path / "empty")
    with pytest.raises(ValueError, match="num_frames"):
        ClipConfig(num_frames=0)
    with pytest.raises(ValueError, match="no column 'nope'"):
        build_video_dataset(Dataset.from_dict({"video_path": ["a.mp4"]}), path_column="nope")
    with pytest.raises(ValueError, match="empty batch"):
        collate_video_clips([])
