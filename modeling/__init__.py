"""Models (``rep4d.modeling``): one ``modeling_<method>.py`` and ``convert_<method>.py`` per method."""

from .backbone_adapters import BackboneAdapter, register_backbone_adapter
from .modeling_fourds import (
    FourDSDepthEstimatorOutput,
    FourDSForDepthEstimation,
    FourDSForPreTraining,
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
)
from .modeling_readout import (
    ReadoutForBoxTracking,
    ReadoutForCameraPose,
    ReadoutForDepthEstimation,
    ReadoutForPointTracking,
    ReadoutForVideoClassification,
    ReadoutPreTrainedModel,
    load_readout,
    readout_class_for_task,
)
from .modeling_rvm import (
    RVMForMaskedReconstruction,
    RVMMaskedReconstructionOutput,
    RVMModel,
    RVMModelOutput,
    RVMPreTrainedModel,
)

__all__ = [
    "FourDSModel",
    "FourDSForDepthEstimation",
    "FourDSForPreTraining",
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
    "MooGDepthEstimatorOutput",
    "BackboneAdapter",
    "register_backbone_adapter",
    "ReadoutPreTrainedModel",
    "ReadoutForDepthEstimation",
    "ReadoutForPointTracking",
    "ReadoutForBoxTracking",
    "ReadoutForCameraPose",
    "ReadoutForVideoClassification",
    "load_readout",
    "readout_class_for_task",
    "RVMModel",
    "RVMForMaskedReconstruction",
    "RVMPreTrainedModel",
    "RVMModelOutput",
    "RVMMaskedReconstructionOutput",
]
