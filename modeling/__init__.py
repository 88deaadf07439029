"""Models (``rep4d.modeling``): one ``modeling_<method>.py`` and ``convert_<method>.py`` per method."""

from .modeling_fourds import (
    FourDSDepthEstimatorOutput,
    FourDSForDepthEstimation,
    FourDSForPreTraining,
    FourDSModel,
    FourDSModelOutput,
    FourDSPreTrainedModel,
)

__all__ = [
    "FourDSModel",
    "FourDSForDepthEstimation",
    "FourDSForPreTraining",
    "FourDSPreTrainedModel",
    "FourDSModelOutput",
    "FourDSDepthEstimatorOutput",
]

from .backbone_adapters import (  # noqa: E402
    BackboneAdapter,
    register_backbone_adapter,
)
from .modeling_readout import (  # noqa: E402
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

__all__ += [
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
]
