"""Video processors (``rep4d.processing``)."""

from .video_processing_base import Rep4dVideoProcessor, read_video_pyav
from .video_processing_fourds import FourDSVideoProcessor
from .video_processing_moog import MooGVideoProcessor
from .video_processing_rvm import RVMVideoProcessor

__all__ = ["Rep4dVideoProcessor", "FourDSVideoProcessor", "MooGVideoProcessor", "RVMVideoProcessor", "read_video_pyav"]
