"""Video processor of the RVM models: by default every frame, the whole frame resized to 256x256 with PIL LANCZOS
(the inference notebook), float32 = uint8 / 255; the label-propagation evaluations are named protocols."""

from __future__ import annotations

from transformers.image_utils import PILImageResampling
from transformers.processing_utils import Unpack

from .video_processing_base import Rep4dVideoProcessor, Rep4dVideosKwargs


class RVMVideoProcessorKwargs(Rep4dVideosKwargs, total=False):
    """Keyword arguments of :class:`RVMVideoProcessor` (those of ``Rep4dVideosKwargs``)."""


def _whole_frame(height: int, width: int) -> dict:
    return {
        "frame_sampling": "consecutive", "start_frame": 0, "frame_stride": 1, "num_frames": None,
        "resize_mode": "resize", "size": {"height": height, "width": width}, "resample": PILImageResampling.LANCZOS,
    }


RVM_PROTOCOLS = {
    # colabs/rvm_inference_demo.ipynb cell 9: media.resize_video(video, (256, 256)), every frame.
    "rvm-inference": _whole_frame(256, 256),
    # colabs/rvm_evaluation_demo.ipynb cells 23-25: media.resize_video(sample['video'], (height, width)).
    "davis": _whole_frame(480, 880),
    "jhmdb": _whole_frame(320, 320),
    "vip": _whole_frame(448, 880),
}


class RVMVideoProcessor(Rep4dVideoProcessor):
    r"""Prepares videos for :class:`RVMModel` as ``pixel_values`` (B, T, C, H, W) float32 in [0, 1].

    Defaults (protocol ``"rvm-inference"``): every frame (RVM streams; pass ``num_frames`` for the first
    ``num_frames``), the whole frame resized to 256x256 (no crop) with PIL LANCZOS on uint8, ``uint8 / 255``, no
    mean/std normalisation. The label-propagation evaluations are ``from_protocol("davis")`` (480x880),
    ``"jhmdb"`` (320x320) and ``"vip"`` (448x880); other sizes: :meth:`for_size`.
    """

    size = {"height": 256, "width": 256}
    crop_size = {"height": 256, "width": 256}
    num_frames = None
    valid_kwargs = RVMVideoProcessorKwargs
    protocols = RVM_PROTOCOLS

    def __init__(self, **kwargs: Unpack[RVMVideoProcessorKwargs]):
        super().__init__(**kwargs)

    @classmethod
    def for_config(cls, config, **kwargs) -> "RVMVideoProcessor":
        """Every frame of ``config.image_size``, whole-frame resize (see :meth:`for_size`)."""
        height, width = config.image_size
        return cls.for_size(height, width, kwargs.pop("num_frames", None), **kwargs)


__all__ = ["RVMVideoProcessor", "RVMVideoProcessorKwargs"]
