"""One list of the methods hf_mim provides.

It drives both the registration with transformers' Auto classes (done once, on ``import hf_mim``) and the
parametrised common tests (``tests/test_modeling_common.py``), in the spirit of timm's ``list_models()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForPreTraining,
)
from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

from .image_processing import MaskedImageProcessor

__all__ = ["ModelSpec", "MODELS", "list_models", "get_model_spec", "register_auto_classes"]


@dataclass(frozen=True)
class ModelSpec:
    """Everything the Auto classes and the common tests need to know about one method.

    Attributes:
        name: The method's name, also its ``model_type``.
        config_class: Its ``PreTrainedConfig`` subclass.
        model_class: The bare encoder (``AutoModel``).
        pretraining_class: The pretraining model (``AutoModelForPreTraining``).
        classification_class: The classifier (``AutoModelForImageClassification``).
        image_processor_class: Its ``MaskedImageProcessor`` subclass.
        tiny_config: Builds a small config for tests and smoke runs.
        pretraining_inputs: Builds the extra pretraining inputs (e.g. a mask) for a tiny batch:
            ``(config, batch_size, generator) -> dict``.
    """

    name: str
    config_class: type
    model_class: type
    pretraining_class: type
    classification_class: type
    image_processor_class: type
    tiny_config: Callable[..., Any]
    pretraining_inputs: Callable[..., dict] = field(default=lambda config, batch_size, generator: {})


MODELS: dict[str, ModelSpec] = {}


def _collect() -> None:
    for spec in _specs():
        MODELS[spec.name] = spec


def _random_mask(config, batch_size: int, generator: torch.Generator) -> dict:
    num_patches = (config.image_size // config.patch_size) ** 2
    return {"bool_masked_pos": torch.rand(batch_size, num_patches, generator=generator) < 0.5}


def _specs() -> list[ModelSpec]:
    from .models import hpm, maskfeat, simmim

    return [
        ModelSpec(
            name="maskfeat",
            config_class=maskfeat.MaskFeatConfig,
            model_class=maskfeat.MaskFeatModel,
            pretraining_class=maskfeat.MaskFeatForPreTraining,
            classification_class=maskfeat.MaskFeatForImageClassification,
            image_processor_class=maskfeat.MaskFeatImageProcessor,
            tiny_config=lambda **kw: maskfeat.MaskFeatConfig.from_preset("test", **kw),
            pretraining_inputs=_random_mask,
        ),
        ModelSpec(
            name="simmim",
            config_class=simmim.SimMIMConfig,
            model_class=simmim.SimMIMModel,
            pretraining_class=simmim.SimMIMForMaskedImageModeling,
            classification_class=simmim.SimMIMForImageClassification,
            image_processor_class=simmim.SimMIMImageProcessor,
            tiny_config=_simmim_tiny,
            pretraining_inputs=_random_mask,
        ),
        ModelSpec(
            name="hpm",
            config_class=hpm.HPMConfig,
            model_class=hpm.HPMModel,
            pretraining_class=hpm.HPMForPreTraining,
            classification_class=hpm.HPMForImageClassification,
            image_processor_class=hpm.HPMImageProcessor,
            tiny_config=lambda **kw: hpm.HPMConfig.from_preset("test", **kw),
            pretraining_inputs=_exact_mask,
        ),
    ]


def _exact_mask(config, batch_size: int, generator: torch.Generator) -> dict:
    # MAE / HPM take masks with exactly L - int(L * (1 - mask_ratio)) patches
    length = (config.image_size // config.patch_size) ** 2
    num_masked = length - int(length * (1 - config.mask_ratio))
    order = torch.argsort(torch.rand(batch_size, length, generator=generator), dim=1)
    mask = torch.zeros(batch_size, length, dtype=torch.bool).scatter_(1, order[:, :num_masked], True)
    return {"bool_masked_pos": mask}


def _simmim_tiny(backbone: str = "vit", image_size: int | None = None, patch_size: int | None = None, **kwargs):
    from .models.simmim import SimMIMConfig

    encoder = {}
    if image_size is not None:
        encoder["image_size"] = image_size
    if patch_size is not None:
        encoder["patch_size"] = patch_size
    return SimMIMConfig.from_preset(f"{backbone}-test", encoder_config=encoder, **kwargs)


def list_models() -> list[str]:
    """Names of the available methods, e.g. ``["maskfeat", ...]``."""
    return sorted(MODELS)


def get_model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"Unknown method {name!r}; available: {list_models()}.")
    return MODELS[name]


_REGISTERED = False


def register_auto_classes() -> None:
    """Registers every method's config, models and image processor with transformers' Auto classes (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    _collect()
    # The base processor is tied to no model; registering it under its own class lets AutoImageProcessor
    # resolve a saved ``"image_processor_type": "MaskedImageProcessor"`` by name.
    IMAGE_PROCESSOR_MAPPING.register(
        MaskedImageProcessor, {"pil": MaskedImageProcessor, "torchvision": MaskedImageProcessor}, exist_ok=True
    )
    for spec in MODELS.values():
        AutoConfig.register(spec.name, spec.config_class, exist_ok=True)
        AutoModel.register(spec.config_class, spec.model_class, exist_ok=True)
        AutoModelForPreTraining.register(spec.config_class, spec.pretraining_class, exist_ok=True)
        AutoModelForImageClassification.register(spec.config_class, spec.classification_class, exist_ok=True)
        processor = spec.image_processor_class
        AutoImageProcessor.register(
            spec.config_class, image_processor_classes={"pil": processor, "torchvision": processor}, exist_ok=True
        )
    _REGISTERED = True
