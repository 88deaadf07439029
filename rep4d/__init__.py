"""rep4d: 4DS, MooG and RVM self-supervised video representations for Hugging Face Transformers.

Importing ``rep4d`` registers every config, model and video processor with the transformers Auto classes, and every
checkpoint converter and parity runner with the ``rep4d`` command line.
"""

__version__ = "0.1.0"

from rep4d import auto as _auto  # noqa: E402
from rep4d.configuration import FourDSConfig  # noqa: E402
from rep4d.modeling import FourDSForDepthEstimation, FourDSModel  # noqa: E402
from rep4d.modeling import convert_fourds as _convert_fourds  # noqa: E402,F401
from rep4d.processing import FourDSVideoProcessor  # noqa: E402
from rep4d.configuration import MooGConfig  # noqa: E402
from rep4d.modeling import (  # noqa: E402
    MooGForBoxTracking,
    MooGForDepthEstimation,
    MooGForNextFramePrediction,
    MooGForPointTracking,
    MooGModel,
    MooGTrackingHeadModel,
)
from rep4d.modeling import convert_moog as _convert_moog  # noqa: E402,F401
from rep4d.processing import MooGVideoProcessor  # noqa: E402

_auto.register_all()

__all__ = ["FourDSConfig", "FourDSModel", "FourDSForDepthEstimation", "FourDSVideoProcessor", "__version__",
    "MooGConfig", "MooGModel", "MooGForNextFramePrediction", "MooGForPointTracking", "MooGForBoxTracking",
    "MooGForDepthEstimation", "MooGTrackingHeadModel", "MooGVideoProcessor",
]
