"""hf_mim: masked image modeling pretraining (MaskFeat, SimMIM, HPM) as transformers models.

Importing the package registers every method's config, models and image processor with transformers' Auto
classes, so ``AutoModelForPreTraining.from_pretrained(...)`` works on hf_mim checkpoints.
"""

from .image_processing import MaskedImageProcessor
from .masking import BlockwiseMaskGenerator, RandomMaskGenerator, SimMIMMaskGenerator, build_mask_generator
from .models.hpm import (
    HPMConfig,
    HPMForImageClassification,
    HPMForPreTraining,
    HPMImageProcessor,
    HPMModel,
    HPMTrainerCallback,
)
from .models.maskfeat import (
    MaskFeatConfig,
    MaskFeatForImageClassification,
    MaskFeatForPreTraining,
    MaskFeatImageProcessor,
    MaskFeatModel,
)
from .models.simmim import (
    SimMIMConfig,
    SimMIMForImageClassification,
    SimMIMForMaskedImageModeling,
    SimMIMImageProcessor,
    SimMIMModel,
)
from .registry import get_model_spec, list_models, register_auto_classes
from .targets import HOGFeatures, normalize_patches, patchify, unpatchify

__version__ = "0.1.0"

#: The engine (hf_mim.training), imported on first use: ``from hf_mim import Pretrainer`` works without making
#: ``import hf_mim`` (models only) pay for accelerate and datasets.
_ENGINE = ("Pretrainer", "PretrainerCallback", "PretrainingArguments", "ResolvedPretraining", "resolve_pretraining")


def __getattr__(name: str):
    if name in _ENGINE:
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module 'hf_mim' has no attribute {name!r}")


__all__ = [
    "BlockwiseMaskGenerator",
    "HOGFeatures",
    "HPMConfig",
    "HPMForImageClassification",
    "HPMForPreTraining",
    "HPMImageProcessor",
    "HPMModel",
    "HPMTrainerCallback",
    "MaskFeatConfig",
    "MaskFeatForImageClassification",
    "MaskFeatForPreTraining",
    "MaskFeatImageProcessor",
    "MaskFeatModel",
    "MaskedImageProcessor",
    "Pretrainer",
    "PretrainerCallback",
    "PretrainingArguments",
    "ResolvedPretraining",
    "RandomMaskGenerator",
    "SimMIMConfig",
    "SimMIMForImageClassification",
    "SimMIMForMaskedImageModeling",
    "SimMIMImageProcessor",
    "SimMIMMaskGenerator",
    "SimMIMModel",
    "build_mask_generator",
    "get_model_spec",
    "list_models",
    "normalize_patches",
    "patchify",
    "register_auto_classes",
    "resolve_pretraining",
    "unpatchify",
]

register_auto_classes()
