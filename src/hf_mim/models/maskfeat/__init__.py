from .configuration_maskfeat import MASKFEAT_PRESETS, MaskFeatConfig
from .image_processing_maskfeat import MaskFeatImageProcessor
from .modeling_maskfeat import (
    MaskFeatForImageClassification,
    MaskFeatForPreTraining,
    MaskFeatForPreTrainingOutput,
    MaskFeatModel,
    MaskFeatPreTrainedModel,
)

__all__ = [
    "MASKFEAT_PRESETS",
    "MaskFeatConfig",
    "MaskFeatForImageClassification",
    "MaskFeatForPreTraining",
    "MaskFeatForPreTrainingOutput",
    "MaskFeatImageProcessor",
    "MaskFeatModel",
    "MaskFeatPreTrainedModel",
]
