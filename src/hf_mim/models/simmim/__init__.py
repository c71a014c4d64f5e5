from .configuration_simmim import SIMMIM_PRESETS, SimMIMConfig
from .image_processing_simmim import SimMIMImageProcessor
from .modeling_simmim import (
    SimMIMForImageClassification,
    SimMIMForMaskedImageModeling,
    SimMIMForMaskedImageModelingOutput,
    SimMIMModel,
    SimMIMPreTrainedModel,
)

__all__ = [
    "SIMMIM_PRESETS",
    "SimMIMConfig",
    "SimMIMForImageClassification",
    "SimMIMForMaskedImageModeling",
    "SimMIMForMaskedImageModelingOutput",
    "SimMIMImageProcessor",
    "SimMIMModel",
    "SimMIMPreTrainedModel",
]
