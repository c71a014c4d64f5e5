"""Conversions of other checkpoints into hf_mim checkpoints, written as complete output folders.

- transformers' ``ViTForMaskedImageModeling`` / ``SwinForMaskedImageModeling`` -> SimMIM (same loss and
  reconstruction), ``ViTMAEForPreTraining`` -> HPM with mining off (MAE: same loss for the same mask).
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import AutoModelForMaskedImageModeling, AutoModelForPreTraining, PreTrainedModel

from .checkpointing import COMPLETION_FILE, write_json_atomic
from .export import bundle_remote_code
from .hub import render_model_card
from .registry import get_model_spec

__all__ = ["convert_transformers_checkpoint", "save_converted"]

#: method -> how its transformers counterpart is loaded
_TRANSFORMERS_LOADERS = {"simmim": AutoModelForMaskedImageModeling, "hpm": AutoModelForPreTraining}


def convert_transformers_checkpoint(method: str, model_name_or_path: str, **config_kwargs) -> PreTrainedModel:
    """Loads a transformers checkpoint (local folder or Hub id) and converts it into ``method``'s pretraining model.

    Args:
        method: ``"simmim"`` (from ``ViTForMaskedImageModeling`` / ``SwinForMaskedImageModeling``) or ``"hpm"``
            (from ``ViTMAEForPreTraining``).
        model_name_or_path: The transformers checkpoint.
        config_kwargs: Extra arguments of the method's config.
    """
    if method not in _TRANSFORMERS_LOADERS:
        raise ValueError(f"`method` must be one of {sorted(_TRANSFORMERS_LOADERS)} for transformers checkpoints, "
                         f"got {method!r}.")  # fmt: skip
    source = _TRANSFORMERS_LOADERS[method].from_pretrained(model_name_or_path)
    return get_model_spec(method).pretraining_class.from_transformers(source, **config_kwargs)


def save_converted(
    model: PreTrainedModel, output_dir: str | os.PathLike, source: str, card_notes: str = ""
) -> list[str]:
    """Writes a converted model as a complete hf_mim folder: safetensors weights, config, the method's image
    processor with the paper's defaults, the remote-code bundle and a model card naming the source.

    Returns:
        The file names written.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    method = model.config.model_type
    model.save_pretrained(output_dir, safe_serialization=True)
    processor = get_model_spec(method).image_processor_class.from_model_config(model.config)
    processor.save_pretrained(output_dir)
    bundle_remote_code(model, output_dir)
    bundle_remote_code(processor, output_dir)
    hyper = {"converted from": source}
    if card_notes:
        hyper["conversion"] = card_notes
    render_model_card(method, output_dir.name, model.config, hyper, None).save(output_dir / "README.md")
    write_json_atomic(output_dir / COMPLETION_FILE, {"converted_from": source, "class": type(model).__name__})
    return sorted(p.name for p in output_dir.iterdir() if p.is_file())
