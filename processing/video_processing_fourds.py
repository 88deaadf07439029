"""Video processor of the 4DS models: 16 frames of 224x224 RGB in [0, 1] for the released checkpoints."""

from __future__ import annotations

from .video_processing_base import Rep4dVideoProcessor


class FourDSVideoProcessor(Rep4dVideoProcessor):
    r"""Prepares videos for :class:`FourDSModel`: ``num_frames`` frames, shorter side resized then centre-cropped to
    ``crop_size``, float32 in [0, 1] (no mean/std normalisation), returned as ``pixel_values`` (B, T, C, H, W).
    """

    size = {"shortest_edge": 224}
    crop_size = {"height": 224, "width": 224}
    num_frames = 16

    @classmethod
    def for_config(cls, config, **kwargs) -> "FourDSVideoProcessor":
        height, width = config.image_size
        return cls.for_size(height, width, config.num_frames, **kwargs)


__all__ = ["FourDSVideoProcessor"]
