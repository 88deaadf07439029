"""Label propagation: the notebook's semantics (queue, restriction, chunking), encodings, decoders, errors, and a
textured square moving over a textured background that must be followed (library and ``rep4d propagate``)."""

from __future__ import annotations

import queue

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rep4d
from rep4d.cli import main as cli_main
from rep4d.label_propagation import (
    check_memory,
    decode_masks,
    decode_pose,
    default_resolution,
    encode_mask,
    encode_pose,
    iter_propagate_labels,
    nearest_exact_indices,
    nearest_indices,
    propagate_keypoints,
    propagate_labels,
    propagate_mask,
    resize_linear,
    write_overlay,
)

PATCH = 8
SIZE = 96
SQUARE = 32
STEP = (8, 8)  # (dx, dy) pixels per frame: whole patches, so the simple features match exactly
FRAMES = 8


def notebook_label_propagation(feats, heatmap, n_context=20, temperature=0.7, topk=7, radius=20,
                               restrict_neighborhood=True):
    """rvm_evaluation_demo.ipynb cell 16's ``label_propagation`` (torch, CPU), kept verbatim as the reference."""
    h, w = feats.shape[1], feats.shape[2]
    gx, gy = torch.meshgrid(torch.arange(0, h), torch.arange(0, w), indexing="ij")
    D = ((gx[None, None, :, :] - gx[:, :, None, None]) ** 2 + (gy[None, None, :, :] - gy[:, :, None, None]) ** 2
         ).float() ** 0.5
    D = (D < radius).float()
    D[D == 0] = -1e10
    D[D == 1] = 0
    D = D.permute(2, 3, 0, 1)
    que = queue.Queue(n_context)
    for _ in range(n_context):
        que.put([feats[0], heatmap])
    preds = []
    for t in range(feats.shape[0]):
        ctx_feats = torch.stack([feats[0]] + [pair[0] for pair in que.queue])
        ctx_lbls = torch.stack([heatmap] + [pair[1] for pair in que.queue])
        aff = torch.einsum("hwc, tmnc -> hwtmn", feats[t], ctx_feats) / temperature
        if restrict_neighborhood:
            aff[:, :, 1:] += D[:, :, None]
        aff = aff.view(aff.shape[0], aff.shape[1], -1)
        weights, ids = torch.topk(aff, topk, dim=-1)
        weights = F.softmax(weights, dim=-1)
        ctx_lbls = ctx_lbls.view(-1, ctx_lbls.shape[-1])
        pred = torch.einsum("hwlk, hwl -> hwk", ctx_lbls[ids], weights)
        if que.qsize() == n_context:
            que.get()
        que.put([feats[t], pred])
        preds.append(pred)
    return torch.stack(preds)


def random_case(frames=9, grid=(6, 9), channels=12, classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(frames, *grid, channels, generator=generator)
    labels = torch.softmax(4 * torch.randn(*grid, classes, generator=generator), dim=-1)
    return features, labels


@pytest.mark.parametrize(
    "options",
    [
        dict(n_context=3, temperature=0.5, topk=4, radius=2.5, restrict_neighborhood=True),  # eviction, restriction
        dict(n_context=2, temperature=0.2, topk=3, radius=20, restrict_neighborhood=False),
        dict(n_context=20, temperature=0.7, topk=7, radius=20, restrict_neighborhood=True),  # the defaults
    ],
)
def test_queue_semantics_equal_the_notebook(options):
    features, labels = random_case()
    expected = notebook_label_propagation(F.normalize(features, dim=-1), labels, **options)
    for chunk_size in (None, 1, 7):
        result = propagate_labels(features, labels, chunk_size=chunk_size, **options)
        torch.testing.assert_close(result, expected, rtol=0, atol=1e-6)
    # Features may arrive frame by frame (a generator) and predictions may be consumed one at a time.
    streamed = torch.stack(list(iter_propagate_labels((frame for frame in features), labels, **options)))
    torch.testing.assert_close(streamed, expected, rtol=0, atol=1e-6)


def test_queue_eviction_changes_the_result():
    # With T > n_context the oldest copies of frame 0 leave the queue; a longer queue keeps them and differs.
    features, labels = random_case(frames=8)
    short = propagate_labels(features, labels, n_context=2, topk=3)
    long = propagate_labels(features, labels, n_context=8, topk=3)
    torch.testing.assert_close(short[0], long[0])  # frame 0 sees only copies of frame 0 in both
    assert (short[-1] - long[-1]).abs().max() > 1e-3


def test_chunked_affinity_equals_unchunked():
    features, labels = random_case(frames=5, grid=(7, 11), channels=16, seed=3)
    whole = propagate_labels(features, labels, chunk_size=7 * 11, radius=3)
    for chunk_size in (1, 5, 13, 76):
        # The same top-k selections; the matrix product's summation order may differ in the last bit.
        torch.testing.assert_close(propagate_labels(features, labels, chunk_size=chunk_size, radius=3), whole,
                                   rtol=0, atol=1e-6)


def test_restriction_spares_the_first_frame_slot():
    # radius 1: queued frames offer only the query's own cell; the frame-0 slot stays unrestricted, so a query whose
    # features match a far cell of frame 0 still takes that cell's label.
    grid = (1, 8)
    features = torch.zeros(2, *grid, 2)
    features[..., 0] = 1.0
    features[0, 0, 7] = torch.tensor([0.0, 1.0])  # frame 0: a distinctive cell at the far right
    features[1, 0, 0] = torch.tensor([0.0, 1.0])  # frame 1: the same feature at the far left
    labels = torch.zeros(*grid, 2)
    labels[..., 0] = 1
    labels[0, 7] = torch.tensor([0.0, 1.0])
    result = propagate_labels(features, labels, n_context=1, topk=1, radius=1, temperature=0.1)
    assert result[1, 0, 0].argmax() == 1


def test_bad_shapes_are_one_line_errors():
    features, labels = random_case()
    with pytest.raises(ValueError, match=r"\(frames, h, w, channels\)"):
        propagate_labels(features[0], labels)
    with pytest.raises(ValueError, match=r"\(h, w, K\) = \(6, 9, K\)"):
        propagate_labels(features, labels[:5])
    with pytest.raises(ValueError, match="topk"):
        propagate_labels(features[:, :1, :1], labels[:1, :1], n_context=1, topk=3)
    with pytest.raises(ValueError, match="frame 1"):
        list(iter_propagate_labels([features[0], features[1, :3]], labels))
    with pytest.raises(ValueError, match="no frame"):
        propagate_labels(iter([]), labels)
    with pytest.raises(ValueError, match="integer label ids"):
        encode_mask(np.zeros((4, 4), np.float32), (16, 16), (1, 1))
    with pytest.raises(ValueError, match="processing_hw"):
        encode_mask(np.zeros((4, 4), np.uint8), (16,), (1, 1))
    with pytest.raises(ValueError, match=r"\(joints, 2\)"):
        encode_pose(np.zeros((3, 3)), (10, 10), (2, 2))
    with pytest.raises(ValueError, match="K = 2 channels"):
        decode_masks(torch.zeros(1, 2, 2, 3), np.array([0, 1]), (4, 4), (4, 4))
    with pytest.raises(ValueError, match="J\\+1"):
        decode_pose(torch.zeros(2, 2, 2), (4, 4))


def test_opencv_index_rules():
    # INTER_NEAREST: floor(x * src/dst); OpenCV-4 INTER_NEAREST_EXACT: the 16-bit fixed-point rule of the README.
    assert nearest_indices(5, 3).tolist() == [0, 1, 3]
    assert nearest_exact_indices(4, 8).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert nearest_exact_indices(192, 180)[-3:].tolist() == [189, 190, 191]  # ifx = 69905
    # torch's nearest-exact differs on 192 -> 180 (the README's caveat), so the rule is not torch's.
    torch_index = F.interpolate(torch.arange(192.0)[None, None], size=180, mode="nearest-exact")[0, 0].long()
    assert not np.array_equal(torch_index.numpy(), nearest_exact_indices(192, 180))
    # INTER_LINEAR downsampling by 16: the mean of the pixels at offsets 7 and 8 of each cell, not the cell mean.
    image = np.random.default_rng(0).random((32, 48, 2)).astype(np.float32)
    small = resize_linear(image, (2, 3))
    expected = image.reshape(2, 16, 3, 16, 2)[:, 7:9, :, 7:9].mean(axis=(1, 3))
    np.testing.assert_allclose(small, expected, rtol=0, atol=1e-6)


def test_pose_encoding_is_the_notebooks():
    heat = encode_pose(np.array([[40.0, 24.0], [-500.0, -500.0]]), (80, 160), (10, 20))
    assert heat.shape == (10, 20, 3)
    # Joint 0 at grid (5.0, 3.0): a 4x4 patch from (3, 1) with its peak (1.0) at int() of the coordinate.
    joint = heat[..., 1].numpy()
    assert joint[3, 5] == 1.0 and np.count_nonzero(joint) == 16
    assert np.argwhere(joint > 0).min(0).tolist() == [1, 3]
    # Joint 1 is off the grid: no heat. Background (channel 0, FIRST) is 1 exactly where no joint has heat.
    assert heat[..., 2].sum() == 0
    np.testing.assert_array_equal(heat[..., 0].numpy(), (joint == 0).astype(np.float32))
    coords, visible = decode_pose(heat[None], (80, 160))
    assert visible.tolist() == [[True, False]] and (coords[0, 1] == -1).all()
    # Top-5 cells weighted by value, cell corner scaled by ori / grid.
    assert abs(coords[0, 0, 0] - 40.0) < 4 and abs(coords[0, 0, 1] - 24.0) < 4


def test_default_resolution_and_memory_check():
    assert default_resolution((480, 854), 16) == (480, 848)  # 30x53 tokens, about DAVIS's 30x55
    assert default_resolution((272, 640), 4) == (104, 244)
    assert default_resolution((720, 1280), 4) == (120, 212)
    assert default_resolution((96, 96), 8) == (96, 96)  # never larger than the video
    check_memory((96, 96), 8, 64, 4, 8, 2, limit_bytes=1 << 30)
    with pytest.raises(ValueError, match="needs about .* GiB, more than the 1.0 GiB available") as error:
        check_memory((1280, 2560), 4, 64, 4, 100, 2, limit_bytes=1 << 30)
    assert "\n" not in str(error.value)


# A textured square moving over a textured background ------------------------------------------------------------------


def moving_square_video(seed: int = 0):
    """(T, 96, 96, 3) uint8: a textured 32x32 square moving by STEP per frame over a static textured background,
    with the ground-truth masks (T, 96, 96) (1 = square) and the square's top-left corners (T, 2) as (x, y)."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    square = rng.integers(0, 256, (SQUARE, SQUARE, 3), dtype=np.uint8)
    video = np.repeat(background[None], FRAMES, axis=0)
    masks = np.zeros((FRAMES, SIZE, SIZE), np.uint8)
    corners = []
    for t in range(FRAMES):
        x, y = 8 + STEP[0] * t, 8 + STEP[1] * t
        video[t, y : y + SQUARE, x : x + SQUARE] = square
        masks[t, y : y + SQUARE, x : x + SQUARE] = 1
        corners.append((x, y))
    return video, masks, np.array(corners, np.float64)


def patch_pixels(video: torch.Tensor) -> torch.Tensor:
    """A deterministic feature extractor: each 8x8 patch's centred pixels, (T, 3, H, W) -> (T, h, w, 192)."""
    patches = torch.nn.functional.unfold(video - 0.5, kernel_size=PATCH, stride=PATCH)  # (T, 192, h*w)
    grid = (video.shape[-2] // PATCH, video.shape[-1] // PATCH)
    return patches.transpose(1, 2).unflatten(1, grid)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def mean_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([iou(p == 1, t == 1) for p, t in zip(predicted[1:], truth[1:])]))


def test_mask_follows_the_square_with_simple_features(tmp_path):
    video, truth, _ = moving_square_video()
    result = propagate_mask(patch_pixels, video, truth[0])
    assert result.masks.shape == truth.shape and result.masks.dtype == np.int32
    assert list(result.label_map) == [0, 1]
    propagated = mean_iou(result.masks, truth)
    static = mean_iou(np.repeat(truth[:1], FRAMES, 0), truth)
    assert static < 0.2
    assert propagated > 0.85, (propagated, static)
    # The last frame: the square moved 56 px right and 56 px down, far from where it started.
    assert iou(result.masks[-1] == 1, truth[-1] == 1) > 0.8
    path = write_overlay(tmp_path / "overlay.mp4", video, masks=result.masks, fps=12.5)
    assert path.stat().st_size > 1000
    import av

    with av.open(str(path)) as container:
        assert float(container.streams.video[0].average_rate) == 12.5


def test_keypoints_follow_the_square():
    video, _, corners = moving_square_video()
    # Two keypoints on interior cells of the square (the notebook's decoding averages the top-5 cells, so a point
    # on the square's border would be pulled towards the static background next to it).
    offsets = np.array([[12.0, 12.0], [20.0, 20.0]])
    first = corners[0] + offsets
    result = propagate_keypoints(patch_pixels, video, first)
    truth = corners[:, None, :] + offsets[None]
    assert result.points.shape == (FRAMES, 2, 2) and result.visible.all()
    assert result.heatmaps.shape == (FRAMES, 12, 12, 3)
    error = np.linalg.norm(result.points - truth, axis=-1)
    static_error = np.linalg.norm(first[None] - truth, axis=-1)
    assert error[1:].mean() < 8.0, error
    assert static_error[-1].mean() > 40


def test_end_to_end_with_an_rvm_model(tmp_path):
    # A small random RVM. Untrained, its features are dominated by the position table and its update gates sit near
    # 0.5, blending every frame with the previous ones at the same place. Two weight edits give it what training
    # gives a real RVM: a strong patch embedding (content-driven features) and an update gate held open
    # (u = sigmoid(x . W_iu) with a positive offset on x and W_iu = 1), so the state is the current frame's.
    torch.manual_seed(0)
    config = rep4d.RVMConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, patch_size=PATCH,
        image_size=[SIZE, SIZE], base_token_shape=[12, 12], rnn_num_layers=1, rnn_num_attention_heads=4,
        rnn_intermediate_size=128, decoder_hidden_size=32, decoder_num_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=64,
    )
    model = rep4d.RVMModel(config).eval()
    with torch.no_grad():
        model.embeddings.patch_embeddings.weight.mul_(50.0)
        model.encoder.final_norm.bias.fill_(1.0)
        model.recurrent_core.input_update.weight.fill_(1.0)
    video, truth, _ = moving_square_video()
    result = propagate_mask(model, video, truth[0])  # features through dense_feature_extractor(model)
    assert result.processing_hw == (SIZE, SIZE)
    propagated = mean_iou(result.masks, truth)
    static = mean_iou(np.repeat(truth[:1], FRAMES, 0), truth)
    assert propagated > 0.6 and propagated > static + 0.45, (propagated, static)  # measured: 0.79 vs 0.05

    # The command line, on a saved model and an mp4 of the same video (streamed; the overlay keeps the source fps).
    import av
    from PIL import Image

    from rep4d.visualization import write_video

    model.save_pretrained(tmp_path / "model")
    write_video(tmp_path / "video.mp4", video, fps=10)
    Image.fromarray((truth[0] * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    status = cli_main(["propagate", str(tmp_path / "model"), str(tmp_path / "video.mp4"), "--mask",
                       str(tmp_path / "mask.png"), "--output", str(tmp_path / "overlay.mp4"), "--save",
                       str(tmp_path / "masks.npz"), "--quiet"])
    assert status == 0
    assert (tmp_path / "overlay.mp4").stat().st_size > 1000
    with av.open(str(tmp_path / "overlay.mp4")) as container:
        assert float(container.streams.video[0].average_rate) == 10
    with np.load(tmp_path / "masks.npz", allow_pickle=False) as saved:
        masks = saved["masks"]
        assert saved["label_ids"].tolist() == [0, 255]
    assert masks.shape == truth.shape and set(np.unique(masks)) <= {0, 255}
    assert mean_iou((masks == 255).astype(np.uint8), truth) > 0.5

    # A processing size that cannot fit is refused before anything runs: one line, exit status 2.
    status = cli_main(["propagate", str(tmp_path / "model"), str(tmp_path / "video.mp4"), "--mask",
                       str(tmp_path / "mask.png"), "--output", str(tmp_path / "big.mp4"), "--resolution",
                       "8000x8000", "--quiet"])
    assert status == 2
    assert not (tmp_path / "big.mp4").exists()
