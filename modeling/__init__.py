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
from .modeling_readout import (
    ReadoutForBoxTracking,
    ReadoutForCameraPose,
    ReadoutForDepthEstimation,
    ReadoutForPointTracking,
    ReadoutForVideoClassification,
    ReadoutPreTrainedModel,
    load_readout,
    readout_class_for_task,
    readout_parameter_groups,
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
    "readout_parameter_groups",
    "RVMModel",
    "RVMForMaskedReconstruction",
    "RVMPreTrainedModel",
    "RVMModelOutput",
    "RVMMaskedReconstructionOutput",
]
