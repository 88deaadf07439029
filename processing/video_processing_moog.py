"""Video processor of MooG: RGB frames of 256x256 in [0, 1] (the released Ego4D checkpoints' resolution)."""

from __future__ import annotations

from .video_processing_base import Rep4dVideoProcessor


class MooGVideoProcessor(Rep4dVideoProcessor):
    r"""Prepares videos for the MooG models: shorter side resized then centre-cropped to ``crop_size`` (256x256 for
    the released checkpoints), float32 in [0, 1] without mean/std normalisation, as ``pixel_values`` (B, T, C, H, W).

    MooG is recurrent, so any number of frames works for the backbone; ``num_frames`` (16) matches the released
    point/box heads, which read 16-frame clips. Pass ``num_frames=None`` / ``do_sample_frames=False`` to keep every
    frame of a long video for streaming.
    """

    size = {"shortest_edge": 256}
    crop_size = {"height": 256, "width": 256}
    num_frames = 16

    @classmethod
    def for_config(cls, config, **kwargs) -> "MooGVideoProcessor":
        height, width = config.image_size
        return cls.for_size(height, width, config.num_frames, **kwargs)


__all__ = ["MooGVideoProcessor"]
