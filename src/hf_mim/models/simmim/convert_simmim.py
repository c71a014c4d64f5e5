"""Interoperability with transformers' own SimMIM classes (``ViTForMaskedImageModeling``, ``SwinForMaskedImageModeling``)."""

from __future__ import annotations

import copy
from typing import Any

from transformers import PreTrainedModel, SwinForMaskedImageModeling, ViTForMaskedImageModeling

from .configuration_simmim import SimMIMConfig

_PREFIXES = {ViTForMaskedImageModeling: ("vit", "vit."), SwinForMaskedImageModeling: ("swin", "swin.")}


def simmim_from_transformers(cls: type, model: PreTrainedModel, **config_kwargs: Any):
    """Builds ``cls`` (an hf_mim SimMIM class) with the weights of a transformers SimMIM model.

    Args:
        cls: ``SimMIMForMaskedImageModeling``.
        model: A ``ViTForMaskedImageModeling`` or ``SwinForMaskedImageModeling`` instance.
        config_kwargs: Extra :class:`SimMIMConfig` arguments (e.g. ``mask_patch_size``).

    Returns:
        The hf_mim model, in eval mode, on the source model's device and dtype.
    """
    if type(model) not in _PREFIXES:
        raise ValueError(
            "`model` must be a transformers ViTForMaskedImageModeling or SwinForMaskedImageModeling, got "
            f"{type(model).__name__}."
        )
    backbone, prefix = _PREFIXES[type(model)]
    encoder_config = copy.deepcopy(model.config)
    try:
        config = SimMIMConfig(
            backbone=backbone,
            encoder_config=encoder_config,
            encoder_stride=encoder_config.encoder_stride,
            **config_kwargs,
        )
    except ValueError as err:
        raise ValueError(f"This {type(model).__name__} cannot be converted: {err}") from err
    converted = cls(config)
    state = {}
    for key, value in model.state_dict().items():
        state["simmim.encoder." + key[len(prefix) :] if key.startswith(prefix) else key] = value
    missing, unexpected = converted.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"Weights do not map 1:1; missing: {missing}, unexpected: {unexpected}.")
    parameter = next(model.parameters())
    return converted.to(device=parameter.device, dtype=parameter.dtype).eval()
