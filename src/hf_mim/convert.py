"""Conversions of other checkpoints into hf_mim checkpoints, written as complete output folders.

- transformers' ``ViTForMaskedImageModeling`` / ``SwinForMaskedImageModeling`` -> SimMIM (same loss and
  reconstruction), ``ViTMAEForPreTraining`` -> HPM with mining off (MAE: same loss for the same mask).
- The papers' released checkpoints (:func:`convert_official_checkpoint`): SlowFast's and mmpretrain's MaskFeat,
  microsoft/SimMIM's ViT and Swin (pretraining and fine-tuned), Haochen-Wang409/HPM's ``main_pretrain.py`` files.
  The layouts, each with the official file:line it was read from, are documented in
  ``hf_mim/models/*/convert_*_official.py``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel

from .convert_utils import OfficialCheckpointError, load_official_checkpoint
from .export import bundle_remote_code
from .hub import render_model_card
from .registry import get_model_spec, list_models
from .training.checkpointing import COMPLETION_FILE, write_json_atomic

__all__ = [
    "official_sources",
    "OfficialCheckpointError",
    "convert_official_checkpoint",
    "convert_transformers_checkpoint",
    "official_card_notes",
    "save_converted",
]


def official_sources() -> dict[str, tuple[str, ...]]:
    """Method -> the official layouts its converter reads (the first is the default when detection is not possible),
    from each method's registry entry."""
    return {name: tuple(get_model_spec(name).official_sources) for name in list_models()
            if get_model_spec(name).official_sources}  # fmt: skip


def _card_text(source: str) -> str:
    for name in list_models():
        if source in get_model_spec(name).official_sources:
            return get_model_spec(name).official_sources[source]
    raise ValueError(f"Unknown official layout {source!r}.")


def convert_transformers_checkpoint(method: str, model_name_or_path: str, **config_kwargs) -> PreTrainedModel:
    """Loads a transformers checkpoint (local folder or Hub id) and converts it into ``method``'s pretraining model.

    Args:
        method: ``"simmim"`` (from ``ViTForMaskedImageModeling`` / ``SwinForMaskedImageModeling``) or ``"hpm"``
            (from ``ViTMAEForPreTraining``).
        model_name_or_path: The transformers checkpoint.
        config_kwargs: Extra arguments of the method's config.
    """
    loadable = [name for name in list_models() if get_model_spec(name).transformers_loader is not None]
    if method not in loadable:
        raise ValueError(f"`method` must be one of {loadable} for transformers checkpoints, got {method!r}.")
    source = get_model_spec(method).transformers_loader.from_pretrained(model_name_or_path)
    return get_model_spec(method).pretraining_class.from_transformers(source, **config_kwargs)


def save_converted(
    model: PreTrainedModel,
    output_dir: str | os.PathLike,
    source: str,
    card_notes: str | dict[str, str] = "",
    report: dict | None = None,
) -> list[str]:
    """Writes a converted model as a complete hf_mim folder: safetensors weights, config, the method's image
    processor with the paper's defaults, the remote-code bundle and a model card naming the source.

    Args:
        model: The converted model.
        output_dir: The folder to write.
        source: What it was converted from (file name or Hub id).
        card_notes: A line, or rows, for the model card's table.
        report: The converter's report (official checkpoints); recorded in ``all_results.json``.

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
    if isinstance(card_notes, dict):
        hyper.update(card_notes)
    elif card_notes:
        hyper["conversion"] = card_notes
    classifier = "ForImageClassification" in type(model).__name__
    dataset = "ImageNet-1k (the authors' pretraining)" if report else None
    card = render_model_card(method, output_dir.name, model.config, hyper, dataset,
                             pipeline_tag="image-classification" if classifier else "image-feature-extraction")  # fmt: skip
    card.save(output_dir / "README.md")
    results = {"converted_from": source, "class": type(model).__name__}
    if report:
        results["dropped_keys"] = report.get("dropped", {})
        results["source_layout"] = report.get("source")
        results["source_epoch"] = report.get("epoch")
    write_json_atomic(output_dir / COMPLETION_FILE, results)
    return sorted(p.name for p in output_dir.iterdir() if p.is_file())


def convert_official_checkpoint(
    method: str,
    checkpoint: str | os.PathLike,
    source: str | None = None,
    config_overrides: dict[str, Any] | None = None,
    trust_pickle: bool = False,
    return_report: bool = False,
    **kwargs: Any,
):
    """Converts a checkpoint file released with a paper (or written by its official code) into an hf_mim model.

    Args:
        method: ``maskfeat``, ``simmim`` or ``hpm``.
        checkpoint: The official ``.pth`` / ``.pyth`` file.
        source: The layout (``official_sources()[method]``); detected from the file when None.
        config_overrides: Config fields that win over what the checkpoint says (e.g. ``num_attention_heads``
            where the file records no head count; SimMIM: ``{"encoder_config": {...}}``).
        trust_pickle: Allow full unpickling for files that need more than plain containers (can run code).
        return_report: Also return the report (source, deliberately dropped keys with reasons, epoch).
        kwargs: Extra converter arguments (HPM: ``total_epochs``).

    Returns:
        The model in eval mode (``MaskFeatForPreTraining``, ``SimMIMForMaskedImageModeling`` or
        ``SimMIMForImageClassification``, ``HPMForPreTraining``), and the report if asked.

    Raises:
        OfficialCheckpointError: Unsafe pickle without ``trust_pickle``, or keys that do not map (named).
    """
    sources = official_sources()
    if method not in sources:
        raise ValueError(f"`method` must be one of {sorted(sources)}, got {method!r}.")
    if source is not None and source not in sources[method]:
        raise ValueError(f"`source` must be one of {sources[method]} for {method}, got {source!r}.")
    state = load_official_checkpoint(checkpoint, trust_pickle=trust_pickle)
    module = importlib.import_module(f"hf_mim.models.{method}.convert_{method}_official")
    model, report = module.convert(state, source, **kwargs, **dict(config_overrides or {}))
    report["checkpoint"] = Path(checkpoint).name
    return (model, report) if return_report else model


def official_card_notes(report: dict) -> dict[str, str]:
    """Model-card rows for a converted official checkpoint."""
    rows = {
        "converted from": f"`{report['checkpoint']}` ({report['source']} layout, epoch {report.get('epoch')})",
        "official source": _card_text(report["source"]),
        "conversion check": "hf_mim tests: a tiny model in the official layout converts and reproduces outputs "
        "computed independently from the official definitions; see the hf_mim docs, guide 'Convert official checkpoints'",
        "dropped keys": f"{len(report['dropped'])} (buffers recomputed by the model, unused EMA parts)",
    }
    return rows
