"""Video processor of the 4DS models: by default the official depth demo's input (first 16 frames, whole frame to
224x224 with PIL LANCZOS, float32 = uint8 / 255)."""

from __future__ import annotations

from transformers.image_utils import PILImageResampling
from transformers.processing_utils import Unpack

from .video_processing_base import Rep4dVideoProcessor, Rep4dVideosKwargs


class FourDSVideoProcessorKwargs(Rep4dVideosKwargs, total=False):
    """Keyword arguments of :class:`FourDSVideoProcessor` (those of ``Rep4dVideosKwargs``)."""


_LANCZOS = PILImageResampling.LANCZOS

FOURDS_PROTOCOLS = {
    # colabs/scaling4d_depth_demo.ipynb cells 6 and 10: mediapy.resize_video(video, (224, 224)) / 255, video[:16].
    "4ds-depth-demo": {
        "frame_sampling": "consecutive", "start_frame": 0, "frame_stride": 1, "num_frames": 16,
        "resize_mode": "resize", "size": {"height": 224, "width": 224}, "resample": _LANCZOS,
    },
    # The 4DS paper's evaluation geometry: shorter side to 224, one central 224x224 crop, a 16-frame clip.
    "4ds-eval": {
        "frame_sampling": "consecutive", "start_frame": 0, "frame_stride": 1, "num_frames": 16,
        "resize_mode": "shorter_side_crop", "size": {"shortest_edge": 224},
        "crop_size": {"height": 224, "width": 224}, "resample": _LANCZOS,
    },
}


class FourDSVideoProcessor(Rep4dVideoProcessor):
    r"""Prepares videos for :class:`FourDSModel` and its heads, returned as ``pixel_values`` (B, T, C, H, W) float32.

    Defaults = the official depth demo (protocol ``"4ds-depth-demo"``): the first ``num_frames=16`` consecutive
    frames, the whole frame resized to 224x224 (no crop) with PIL LANCZOS on uint8, ``uint8 / 255``. The paper's
    evaluation geometry (shorter side 224, centre crop 224x224) is ``FourDSVideoProcessor.from_protocol("4ds-eval")``.
    """

    size = {"height": 224, "width": 224}
    crop_size = {"height": 224, "width": 224}
    num_frames = 16
    valid_kwargs = FourDSVideoProcessorKwargs
    protocols = FOURDS_PROTOCOLS

    def __init__(self, **kwargs: Unpack[FourDSVideoProcessorKwargs]):
        super().__init__(**kwargs)

    @classmethod
    def for_config(cls, config, **kwargs) -> "FourDSVideoProcessor":
        """``config.num_frames`` frames of ``config.image_size``, whole-frame resize (see :meth:`for_size`)."""
        height, width = config.image_size
        return cls.for_size(height, width, config.num_frames, **kwargs)


__all__ = ["FourDSVideoProcessor", "FourDSVideoProcessorKwargs"]
