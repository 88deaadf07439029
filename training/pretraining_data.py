"""The clips a pretraining run trains on: synthetic clips rendered in memory, or video files, at the model's size.

``--data synthetic`` gives a :class:`SyntheticClipDataset`; a folder, a CSV file or a ``datasets`` folder gives a
:class:`rep4d.training.video_data.VideoClipDataset`. Both return ``{"pixel_values": (T, C, H, W) in [0, 1], ...}``
with the same augmentations, drawn from ``(seed, epoch, index)`` (call ``set_epoch`` every epoch), and are batched
by :func:`rep4d.training.video_data.collate_video_clips`. The clip size comes from the model (:func:`clip_geometry`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rep4d.training.video_data import ClipConfig, augment_clip, build_video_dataset


def clip_geometry(model: nn.Module) -> tuple[int, int, int]:
    """(frames, height, width) of the training clips: ``model.clip_shape``, or the config's num_frames/image_size."""
    if getattr(model, "clip_shape", None) is not None:
        return tuple(int(v) for v in model.clip_shape)
    config = model.config
    image_size = getattr(config, "image_size", None)
    if image_size is None:
        raise ValueError(f"{type(config).__name__} has no image_size; cannot size the training clips")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    return int(config.num_frames), int(image_size[0]), int(image_size[1])


class SyntheticClipDataset(torch.utils.data.Dataset):
    """``num_clips`` synthetic 4D clips rendered in memory (``rep4d.training.synthetic``), augmented like video files.

    Clip ``i`` is rendered from the seed ``(seed, i)`` at the training size; each epoch the same random resized
    crop / flip / colour augmentation as :mod:`rep4d.training.video_data` is drawn from ``(seed, epoch, i)``.
    """

    def __init__(self, num_clips: int, clip_config: ClipConfig, seed: int = 0):
        from rep4d.training.synthetic import generate_clip

        if num_clips < 1:
            raise ValueError(f"--synthetic-clips must be >= 1, got {num_clips}")
        self.config, self.seed, self.epoch = clip_config, seed, 0
        self.videos = [
            generate_clip(seed=(seed, index), num_frames=clip_config.span, height=clip_config.height,
                          width=clip_config.width, num_points=0)["video"]
            for index in range(num_clips)
        ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        frames = self.videos[index][:: self.config.frame_stride]
        return {"pixel_values": augment_clip(frames, rng, self.config), "index": int(index), "num_skipped": 0}


def build_pretraining_dataset(
    data: str,
    clip_config: ClipConfig,
    seed: int = 0,
    synthetic_clips: int = 64,
    path_column: str | None = None,
) -> torch.utils.data.Dataset:
    """``data``: ``"synthetic"`` (``synthetic_clips`` clips rendered in memory), a folder of videos, a CSV file of
    paths or a ``datasets`` folder (with ``path_column``)."""
    if data == "synthetic":
        return SyntheticClipDataset(synthetic_clips, clip_config, seed=seed)
    return build_video_dataset(data, clip_config, seed=seed, path_column=path_column)


__all__ = ["SyntheticClipDataset", "build_pretraining_dataset", "clip_geometry"]
