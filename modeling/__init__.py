"""Models (``rep4d.modeling``): one ``modeling_<method>.py`` and ``convert_<method>.py`` per method."""

from .modeling_fourds import (
    FourDSDepthEstimatorOutput,
    FourDSForDepthEstimation,
    FourDSModel,
    FourDSModelOutput,
    FourDSPreTrainedModel,
)

__all__ = [
    "FourDSModel",
    "FourDSForDepthEstimation",
    "FourDSPreTrainedModel",
    "FourDSModelOutput",
    "FourDSDepthEstimatorOutput",
]
from .modeling_rvm import (  # noqa: E402
    RVMForMaskedReconstruction,
    RVMMaskedReconstructionOutput,
    RVMModel,
    RVMModelOutput,
    RVMPreTrainedModel,
)

__all__ += ["RVMModel", "RVMForMaskedReconstruction", "RVMPreTrainedModel", "RVMModelOutput", "RVMMaskedReconstructionOutput"]
