"""Video processors (``rep4d.processing``)."""

from .video_processing_base import Rep4dVideoProcessor, read_video_pyav
from .video_processing_fourds import FourDSVideoProcessor

__all__ = ["Rep4dVideoProcessor", "FourDSVideoProcessor", "read_video_pyav"]
from .video_processing_rvm import RVMVideoProcessor  # noqa: E402

__all__ += ["RVMVideoProcessor"]
