"""Video processor of the RVM models: every frame, 256x256 RGB in [0, 1] (the resolution of the released models)."""

from __future__ import annotations

from .video_processing_base import Rep4dVideoProcessor


class RVMVideoProcessor(Rep4dVideoProcessor):
    r"""Prepares videos for :class:`RVMModel`: shorter side resized then centre-cropped to ``crop_size`` (256x256 for
    the released models), float32 in [0, 1] with no mean/std normalisation, returned as ``pixel_values``
    (B, T, C, H, W). RVM streams frames, so by default every frame is kept (``num_frames=None``); pass
    ``num_frames`` or ``frame_stride`` to sample. For other resolutions (e.g. DAVIS at 480x880) use
    :meth:`for_size`.
    """

    size = {"shortest_edge": 256}
    crop_size = {"height": 256, "width": 256}
    num_frames = None

    @classmethod
    def for_config(cls, config, **kwargs) -> "RVMVideoProcessor":
        height, width = config.image_size
        return cls.for_size(height, width, None, **kwargs)


__all__ = ["RVMVideoProcessor"]
