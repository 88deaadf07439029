"""Models (``rep4d.modeling``): one ``modeling_<method>.py`` and ``convert_<method>.py`` per method."""

from .modeling_fourds import (
    FourDSDepthEstimatorOutput,
    FourDSForDepthEstimation,
    FourDSModel,
    FourDSModelOutput,
    FourDSPreTrainedModel,
)
from .modeling_moog import (
    MooGDepthEstimatorOutput,
    MooGForBoxTracking,
    MooGForDepthEstimation,
    MooGForNextFramePrediction,
    MooGForPointTracking,
    MooGModel,
    MooGModelOutput,
    MooGNextFramePredictionOutput,
    MooGPreTrainedModel,
    MooGTrackingHeadModel,
    MooGTrackingOutput,
)

__all__ = [
    "FourDSModel",
    "FourDSForDepthEstimation",
    "FourDSPreTrainedModel",
    "FourDSModelOutput",
    "FourDSDepthEstimatorOutput",
    "MooGModel",
    "MooGPreTrainedModel",
    "MooGForNextFramePrediction",
    "MooGForPointTracking",
    "MooGForBoxTracking",
    "MooGForDepthEstimation",
    "MooGTrackingHeadModel",
    "MooGModelOutput",
    "MooGNextFramePredictionOutput",
    "MooGTrackingOutput",
    "MooGDepthEstimatorOutput",
]
