"""rep4d: 4DS, MooG and RVM self-supervised video representations for Hugging Face Transformers.

Importing ``rep4d`` registers every config, model and video processor with the transformers Auto classes, and every
checkpoint converter and parity runner with the ``rep4d`` command line.
"""

__version__ = "0.1.0"

from rep4d import auto as _auto  # noqa: E402
from rep4d.configuration import FourDSConfig, MooGConfig, ReadoutConfig, RVMConfig  # noqa: E402
from rep4d.modeling import (  # noqa: E402
    FourDSForDepthEstimation,
    FourDSForPreTraining,
    FourDSModel,
    MooGForBoxTracking,
    MooGForDepthEstimation,
    MooGForNextFramePrediction,
    MooGForPointTracking,
    MooGModel,
    MooGTrackingHeadModel,
    ReadoutForBoxTracking,
    ReadoutForCameraPose,
    ReadoutForDepthEstimation,
    ReadoutForPointTracking,
    ReadoutForVideoClassification,
    RVMForMaskedReconstruction,
    RVMModel,
    load_readout,
)
from rep4d.modeling import convert_fourds as _convert_fourds  # noqa: E402,F401  (registers converter + parity)
from rep4d.modeling import convert_moog as _convert_moog  # noqa: E402,F401
from rep4d.modeling import convert_rvm as _convert_rvm  # noqa: E402,F401
from rep4d.processing import FourDSVideoProcessor, MooGVideoProcessor, RVMVideoProcessor  # noqa: E402

_auto.register_all()

__all__ = [
    "__version__",
    "FourDSConfig",
    "FourDSModel",
    "FourDSForDepthEstimation",
    "FourDSForPreTraining",
    "FourDSVideoProcessor",
    "MooGConfig",
    "MooGModel",
    "MooGForNextFramePrediction",
    "MooGForPointTracking",
    "MooGForBoxTracking",
    "MooGForDepthEstimation",
    "MooGTrackingHeadModel",
    "MooGVideoProcessor",
    "ReadoutConfig",
    "ReadoutForDepthEstimation",
    "ReadoutForPointTracking",
    "ReadoutForBoxTracking",
    "ReadoutForCameraPose",
    "ReadoutForVideoClassification",
    "load_readout",
    "RVMConfig",
    "RVMModel",
    "RVMForMaskedReconstruction",
    "RVMVideoProcessor",
]
