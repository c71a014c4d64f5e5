"""Interoperability with transformers' ``ViTMAEForPreTraining`` (MAE weights as the HPM / MAE baseline)."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedModel, ViTMAEForPreTraining

from ...modeling_utils import VIT_KEYS
from .configuration_hpm import HPMConfig

_SHARED = VIT_KEYS + (
    "decoder_hidden_size",
    "decoder_num_hidden_layers",
    "decoder_num_attention_heads",
    "decoder_intermediate_size",
    "mask_ratio",
    "norm_pix_loss",
)


def hpm_from_transformers(cls: type, model: PreTrainedModel, **config_kwargs: Any):
    """Builds ``cls`` (``HPMForPreTraining``) with the weights of a ``ViTMAEForPreTraining``.

    Mining is off by default (plain MAE, same loss for the same mask); with ``hard_patches_mining=True`` the
    loss predictor starts from scratch and the teacher from the converted encoder.
    """
    if not isinstance(model, ViTMAEForPreTraining):
        raise ValueError(f"`model` must be a transformers ViTMAEForPreTraining, got {type(model).__name__}.")
    source = model.config
    kwargs = {key: getattr(source, key) for key in _SHARED}
    kwargs["hard_patches_mining"] = False
    kwargs.update(config_kwargs)
    converted = cls(HPMConfig(**kwargs))
    state = {}
    for key, value in model.state_dict().items():
        state["hpm.encoder." + key[len("vit.") :] if key.startswith("vit.") else key] = value
    missing, unexpected = converted.load_state_dict(state, strict=False)
    allowed_missing = ("loss_predictor.", "teacher.", "training_epoch", "total_epochs")
    missing = [k for k in missing if not k.startswith(allowed_missing)]
    if missing or unexpected:
        raise ValueError(f"Weights do not map 1:1; missing: {missing}, unexpected: {unexpected}.")
    if converted.teacher is not None:
        converted.reset_teacher()
    parameter = next(model.parameters())
    return converted.to(device=parameter.device, dtype=parameter.dtype).eval()
