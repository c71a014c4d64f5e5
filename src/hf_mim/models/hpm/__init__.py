from .configuration_hpm import HPM_PRESETS, HPMConfig
from .image_processing_hpm import HPMImageProcessor
from .modeling_hpm import (
    HPMForImageClassification,
    HPMForPreTraining,
    HPMForPreTrainingOutput,
    HPMModel,
    HPMPreTrainedModel,
)
from .trainer_callback_hpm import HPMTrainerCallback

__all__ = [
    "HPM_PRESETS",
    "HPMConfig",
    "HPMForImageClassification",
    "HPMForPreTraining",
    "HPMForPreTrainingOutput",
    "HPMImageProcessor",
    "HPMModel",
    "HPMPreTrainedModel",
    "HPMTrainerCallback",
]
