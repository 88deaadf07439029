"""Video processor of MooG: by default every frame, the whole frame resized to 256x256 (the released Ego4D
checkpoints' resolution) with PIL LANCZOS, float32 = uint8 / 255."""

from __future__ import annotations

from transformers.image_utils import PILImageResampling
from transformers.processing_utils import Unpack

from .video_processing_base import Rep4dVideoProcessor, Rep4dVideosKwargs


class MooGVideoProcessorKwargs(Rep4dVideosKwargs, total=False):
    """Keyword arguments of :class:`MooGVideoProcessor` (those of ``Rep4dVideosKwargs``)."""


MOOG_PROTOCOLS = {
    # Whole frame to the released checkpoints' 256x256 with mediapy's filter, every frame (MooG is recurrent).
    "moog-inference": {
        "frame_sampling": "consecutive", "start_frame": 0, "frame_stride": 1, "num_frames": None,
        "resize_mode": "resize", "size": {"height": 256, "width": 256}, "resample": PILImageResampling.LANCZOS,
    },
}


class MooGVideoProcessor(Rep4dVideoProcessor):
    r"""Prepares videos for the MooG models as ``pixel_values`` (B, T, C, H, W) float32 in [0, 1].

    Defaults (protocol ``"moog-inference"``): every frame (MooG is recurrent; pass ``num_frames`` for a clip of the
    first ``num_frames`` frames, e.g. 16 for the released point/box heads), the whole frame resized to 256x256 (no
    crop) with PIL LANCZOS on uint8, ``uint8 / 255``, no mean/std normalisation.
    """

    size = {"height": 256, "width": 256}
    crop_size = {"height": 256, "width": 256}
    num_frames = None
    valid_kwargs = MooGVideoProcessorKwargs
    protocols = MOOG_PROTOCOLS

    def __init__(self, **kwargs: Unpack[MooGVideoProcessorKwargs]):
        super().__init__(**kwargs)

    @classmethod
    def for_config(cls, config, **kwargs) -> "MooGVideoProcessor":
        """``config.num_frames`` frames of ``config.image_size``, whole-frame resize (see :meth:`for_size`)."""
        height, width = config.image_size
        return cls.for_size(height, width, config.num_frames, **kwargs)


__all__ = ["MooGVideoProcessor", "MooGVideoProcessorKwargs"]
