"""Registration of the rep4d classes with the transformers Auto classes (run on ``import rep4d``)."""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForDepthEstimation,
    AutoModelForPreTraining,
    AutoModelForVideoClassification,
    AutoVideoProcessor,
)

from rep4d.configuration.configuration_fourds import FourDSConfig
from rep4d.configuration.configuration_moog import MooGConfig
from rep4d.configuration.configuration_readout import ReadoutConfig
from rep4d.configuration.configuration_rvm import RVMConfig
from rep4d.modeling.modeling_fourds import FourDSForDepthEstimation, FourDSForPreTraining, FourDSModel
from rep4d.modeling.modeling_moog import MooGForNextFramePrediction, MooGModel
from rep4d.modeling.modeling_readout import (
    ReadoutForBoxTracking,
    ReadoutForCameraPose,
    ReadoutForDepthEstimation,
    ReadoutForPointTracking,
    ReadoutForVideoClassification,
)
from rep4d.modeling.modeling_rvm import RVMForMaskedReconstruction, RVMModel
from rep4d.processing.video_processing_fourds import FourDSVideoProcessor
from rep4d.processing.video_processing_moog import MooGVideoProcessor
from rep4d.processing.video_processing_rvm import RVMVideoProcessor

# (config class, {auto class: model class}, video processor class)
REGISTRY = [
    (
        FourDSConfig,
        {
            AutoModel: FourDSModel,
            AutoModelForDepthEstimation: FourDSForDepthEstimation,
            AutoModelForPreTraining: FourDSForPreTraining,
        },
        FourDSVideoProcessor,
    ),
    # One config class serves every readout task. AutoModel maps it to all five heads: transformers picks the class
    # named by the config's ``architectures`` (set from ``task`` by ReadoutConfig), so
    # AutoModel.from_pretrained(any saved readout) gives its head.
    (
        ReadoutConfig,
        {
            AutoModel: (
                ReadoutForPointTracking,
                ReadoutForDepthEstimation,
                ReadoutForBoxTracking,
                ReadoutForCameraPose,
                ReadoutForVideoClassification,
            ),
            AutoModelForVideoClassification: ReadoutForVideoClassification,
            AutoModelForDepthEstimation: ReadoutForDepthEstimation,
        },
        None,
    ),
    (MooGConfig, {AutoModel: MooGModel, AutoModelForPreTraining: MooGForNextFramePrediction}, MooGVideoProcessor),
    (RVMConfig, {AutoModel: RVMModel, AutoModelForPreTraining: RVMForMaskedReconstruction}, RVMVideoProcessor),
]


def register(config_class, models: dict, processor_class=None) -> None:
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    for auto_class, model_class in models.items():
        auto_class.register(config_class, model_class, exist_ok=True)
    if processor_class is not None:
        AutoVideoProcessor.register(config_class, video_processor_class=processor_class, exist_ok=True)


def register_all() -> None:
    for config_class, models, processor_class in REGISTRY:
        register(config_class, models, processor_class)
