"""Synthetic 4D video generator: determinism, ground-truth consistency with the rendered pixels, files on disk."""

import csv

import numpy as np
import pytest

from rep4d.training.synthetic import LABEL_DIRECTIONS, LABEL_NAMES, generate_clip, load_annotation, write_dataset

T, H, W = 10, 48, 64


@pytest.fixture(scope="module")
def clips():
    return [generate_clip(seed, num_frames=T, height=H, width=W, num_points=96, max_camera_shift=0.3)
            for seed in range(4)]


def nearest_pixel(tracks):
    """Row/column of the pixel containing each continuous (x, y) position."""
    col = np.clip(np.floor(tracks[..., 0]).astype(int), 0, W - 1)
    row = np.clip(np.floor(tracks[..., 1]).astype(int), 0, H - 1)
    return row, col


def test_same_seed_is_bit_identical_and_seeds_differ():
    first = generate_clip(11, num_frames=6, height=32, width=32)
    again = generate_clip(11, num_frames=6, height=32, width=32)
    other = generate_clip(12, num_frames=6, height=32, width=32)
    assert first.keys() == again.keys()
    for key in first:
        assert first[key].dtype == again[key].dtype
        assert np.array_equal(first[key], again[key]), key
    assert not np.array_equal(first["video"], other["video"])
    tuple_seed = generate_clip((3, 5), num_frames=6, height=32, width=32)
    assert np.array_equal(tuple_seed["video"], generate_clip([3, 5], num_frames=6, height=32, width=32)["video"])


def test_shapes_dtypes_ranges(clips):
    clip = clips[0]
    num_points, num_objects = 96, 3
    expected = {
        "video": (np.uint8, (T, H, W, 3)),
        "depth": (np.float32, (T, H, W)),
        "segmentation": (np.uint8, (T, H, W)),
        "query_points": (np.float32, (num_points, 3)),
        "tracks": (np.float32, (num_points, T, 2)),
        "occluded": (np.bool_, (num_points, T)),
        "track_depth": (np.float32, (num_points, T)),
        "point_object": (np.int32, (num_points,)),
        "boxes": (np.float32, (num_objects, T, 4)),
        "box_visible": (np.bool_, (num_objects, T)),
        "camera_rotation": (np.float32, (3, 3)),
        "camera_translation": (np.float32, (3,)),
        "label": (np.int64, ()),
    }
    for key, (dtype, shape) in expected.items():
        assert clip[key].dtype == dtype, key
        assert clip[key].shape == shape, key
    assert clip["depth"].min() > 0
    background = clip["segmentation"] == 0
    assert clip["depth"][background].min() > clip["depth"][~background].max()  # background farther than objects
    assert 0 <= clip["boxes"].min() and clip["boxes"].max() <= 1
    assert np.all(clip["boxes"][..., 2] >= clip["boxes"][..., 0]) and np.all(clip["boxes"][..., 3] >= clip["boxes"][..., 1])
    assert 0 <= int(clip["label"]) < len(LABEL_NAMES)
    assert np.array_equal(clip["camera_translation"], np.zeros(3))
    for key in ("query_points", "tracks", "depth", "track_depth"):
        assert np.isfinite(clip[key]).all()
    # Points on objects and on the background.
    assert (clip["point_object"] == 0).any() and (clip["point_object"] > 0).any()


def test_query_points_lie_on_their_tracks_and_are_visible(clips):
    for clip in clips:
        query_frame = clip["query_points"][:, 0].astype(int)
        at_query = clip["tracks"][np.arange(len(query_frame)), query_frame]
        np.testing.assert_allclose(at_query[:, 0], clip["query_points"][:, 2], atol=1e-3)
        np.testing.assert_allclose(at_query[:, 1], clip["query_points"][:, 1], atol=1e-3)
        assert not clip["occluded"][np.arange(len(query_frame)), query_frame].any()
        # Queries sit on pixel centres of the surface they belong to.
        row, col = nearest_pixel(at_query)
        assert np.array_equal(clip["segmentation"][query_frame, row, col], clip["point_object"])


def test_tracks_follow_the_rendered_texture(clips):
    """A visible tracked point shows (nearly) the colour it had at its query pixel; shuffled pairs do not."""
    track_errors, shuffled_errors = [], []
    rng = np.random.default_rng(0)
    for clip in clips:
        video = clip["video"].astype(np.float32) / 255
        query_frame = clip["query_points"][:, 0].astype(int)
        query_colour = video[query_frame, clip["query_points"][:, 1].astype(int), clip["query_points"][:, 2].astype(int)]
        row, col = nearest_pixel(clip["tracks"])
        frames = np.broadcast_to(np.arange(T), row.shape)
        colour = video[frames, row, col]  # (N, T, 3)
        visible = ~clip["occluded"]
        difference = np.abs(colour - query_colour[:, None]).mean(-1)
        track_errors.append(difference[visible])
        shuffled = np.abs(colour - query_colour[rng.permutation(len(query_colour))][:, None]).mean(-1)
        shuffled_errors.append(shuffled[visible])
    track_error, shuffled_error = np.concatenate(track_errors), np.concatenate(shuffled_errors)
    assert np.median(track_error) < 0.03, np.median(track_error)
    assert track_error.mean() < 0.3 * shuffled_error.mean(), (track_error.mean(), shuffled_error.mean())


def test_occlusion_flags_agree_with_depth_and_segmentation(clips):
    agree_visible, agree_hidden = [], []
    for clip in clips:
        x, y = clip["tracks"][..., 0], clip["tracks"][..., 1]
        outside = (x < 0) | (x >= W) | (y < 0) | (y >= H)
        assert clip["occluded"][outside].all()
        row, col = nearest_pixel(clip["tracks"])
        frames = np.broadcast_to(np.arange(T), row.shape)
        seg, depth = clip["segmentation"][frames, row, col], clip["depth"][frames, row, col]
        visible = ~clip["occluded"]
        agree_visible.append((seg == clip["point_object"][:, None])[visible])
        np.testing.assert_allclose(depth[visible & (seg == clip["point_object"][:, None])],
                                   clip["track_depth"][visible & (seg == clip["point_object"][:, None])], rtol=0.02)
        hidden = clip["occluded"] & ~outside
        agree_hidden.append((depth < clip["track_depth"] - 1e-3)[hidden])
    agree_visible, agree_hidden = np.concatenate(agree_visible), np.concatenate(agree_hidden)
    # Disagreements only where a point is within half a pixel of an occlusion boundary.
    assert agree_visible.mean() > 0.95, agree_visible.mean()
    assert agree_hidden.size > 0 and agree_hidden.mean() > 0.9, agree_hidden.mean()


def test_boxes_contain_every_object_pixel(clips):
    for clip in clips:
        for obj in range(clip["boxes"].shape[0]):
            for t in range(T):
                rows, cols = np.nonzero(clip["segmentation"][t] == obj + 1)
                assert clip["box_visible"][obj, t] == (rows.size > 0)
                if rows.size == 0:
                    continue
                ymin, xmin, ymax, xmax = clip["boxes"][obj, t] * np.array([H, W, H, W])
                assert ymin - 1e-3 <= (rows + 0.5).min() and (rows + 0.5).max() <= ymax + 1e-3
                assert xmin - 1e-3 <= (cols + 0.5).min() and (cols + 0.5).max() <= xmax + 1e-3


def test_camera_rotation_is_a_rotation_matching_the_background_motion(clips):
    for clip in clips:
        rotation = clip["camera_rotation"].astype(np.float64)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
        assert abs(np.linalg.det(rotation) - 1) < 1e-6
        intrinsics = clip["intrinsics"].astype(np.float64)
        homography = intrinsics @ rotation.T @ np.linalg.inv(intrinsics)
        # Background tracks: first-frame position -> last-frame position through the homography.
        background = clip["point_object"] == 0
        first = np.concatenate([clip["tracks"][background, 0], np.ones((background.sum(), 1))], -1)
        mapped = first @ homography.T
        np.testing.assert_allclose(mapped[:, :2] / mapped[:, 2:], clip["tracks"][background, -1], atol=1e-3)
        # Rendered pixels: background of frame 0 warped by the homography matches the last frame's background.
        rows, cols = np.nonzero(clip["segmentation"][0] == 0)
        points = np.stack([cols + 0.5, rows + 0.5, np.ones_like(rows, dtype=float)], -1) @ homography.T
        x, y = points[:, 0] / points[:, 2], points[:, 1] / points[:, 2]
        inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
        target_row, target_col = y[inside].astype(int), x[inside].astype(int)
        keep = clip["segmentation"][-1, target_row, target_col] == 0
        source = clip["video"][0, rows[inside][keep], cols[inside][keep]].astype(float)
        warped_error = np.abs(source - clip["video"][-1, target_row[keep], target_col[keep]]).mean()
        static_error = np.abs(source - clip["video"][-1, rows[inside][keep], cols[inside][keep]]).mean()
        assert warped_error < 0.5 * static_error and warped_error < 12, (warped_error, static_error)


def test_labels_are_balanced_and_match_the_object_motion():
    labels = []
    for seed in range(400):
        clip = generate_clip(seed, num_frames=4, height=16, width=16, num_points=0, max_camera_shift=0.0)
        labels.append(int(clip["label"]))
        if seed < 40:
            centres = np.stack([(clip["boxes"][..., 1] + clip["boxes"][..., 3]) / 2,
                                (clip["boxes"][..., 0] + clip["boxes"][..., 2]) / 2], -1)  # (O, T, 2) as (x, y)
            # Unclipped motion: compare box centres while boxes are inside the frame at both ends.
            direction = LABEL_DIRECTIONS[labels[-1]]
            ends = clip["boxes"][:, [1, 2]]
            inside = (ends > 0).all((1, 2)) & (ends < 1).all((1, 2))
            if inside.any():
                assert ((centres[inside, 2] - centres[inside, 1]) @ direction > 0).all()
    counts = np.bincount(labels, minlength=len(LABEL_NAMES))
    assert len(LABEL_NAMES) >= 4 and counts.min() >= 70 and counts.max() <= 130, counts


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="num_frames"):
        generate_clip(0, num_frames=1)
    with pytest.raises(ValueError, match="query_mode"):
        generate_clip(0, query_mode="middle")
    with pytest.raises(ValueError, match="even"):
        write_dataset("/nonexistent-never-created", num_clips=1, height=33)


def test_written_dataset_decodes_and_is_independent_of_workers(tmp_path):
    from datasets import load_from_disk

    from rep4d.cli import main
    from rep4d.processing.video_processing_base import read_video_pyav

    single, double = tmp_path / "one", tmp_path / "two"
    assert main(["synth", "--output", str(single), "--num-clips", "3", "--frames", "6", "--height", "32",
                 "--width", "48", "--seed", "5", "--quiet"]) == 0
    write_dataset(double, num_clips=3, seed=5, num_frames=6, height=32, width=48, workers=2, progress=False)
    with open(single / "metadata.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["file_name", "annotation", "label", "label_name", "num_frames", "height", "width"]
    assert len(rows) == 3
    for row in rows:
        frames, _ = read_video_pyav(str(single / row["file_name"]))
        assert frames.shape == (6, 32, 48, 3)
        one, two = load_annotation(single / row["annotation"]), load_annotation(double / row["annotation"])
        assert one.keys() == two.keys() and "tracks" in one and "video" not in one
        assert all(np.array_equal(one[key], two[key]) for key in one)
        assert LABEL_NAMES[int(one["label"])] == row["label_name"] and int(row["label"]) == int(one["label"])
        # The mp4 is lossy (yuv420p halves the chroma resolution) but its brightness is close to the exact frames.
        exact = generate_clip((5, int(row["file_name"][5:10])), num_frames=6, height=32, width=48)["video"]
        assert np.abs(frames.astype(float).mean(-1) - exact.astype(float).mean(-1)).mean() < 6
    dataset = load_from_disk(str(single / "dataset"))
    assert len(dataset) == 3 and dataset.features["label"].names == LABEL_NAMES
    assert dataset[0]["video_path"].endswith("clip_00000.mp4")
    assert main(["synth", "--output", str(tmp_path / "odd"), "--num-clips", "1", "--height", "31", "--quiet"]) == 2
