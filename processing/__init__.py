"""Video processors (``rep4d.processing``); the preprocessing choices are documented in docs/PREPROCESSING.md."""

from .video_processing_base import (
    FRAME_SAMPLINGS,
    RESIZE_MODES,
    Rep4dVideoProcessor,
    Rep4dVideosKwargs,
    read_video_pyav,
)
from .video_processing_fourds import FourDSVideoProcessor, FourDSVideoProcessorKwargs
from .video_processing_moog import MooGVideoProcessor, MooGVideoProcessorKwargs
from .video_processing_rvm import RVMVideoProcessor, RVMVideoProcessorKwargs

__all__ = [
    "FRAME_SAMPLINGS",
    "RESIZE_MODES",
    "FourDSVideoProcessor",
    "FourDSVideoProcessorKwargs",
    "MooGVideoProcessor",
    "MooGVideoProcessorKwargs",
    "RVMVideoProcessor",
    "RVMVideoProcessorKwargs",
    "Rep4dVideoProcessor",
    "Rep4dVideosKwargs",
    "read_video_pyav",
]
