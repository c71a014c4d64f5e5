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

from transformers import AutoModelForMaskedImageModeling, AutoModelForPreTraining, PreTrainedModel

from .checkpointing import COMPLETION_FILE, write_json_atomic
from .convert_utils import OfficialCheckpointError, load_official_checkpoint
from .export import bundle_remote_code
from .hub import render_model_card
from .registry import get_model_spec

__all__ = [
    "OFFICIAL_SOURCES",
    "OfficialCheckpointError",
    "convert_official_checkpoint",
    "convert_transformers_checkpoint",
    "official_card_notes",
    "save_converted",
]

#: method -> the official layouts its converter reads (the first is the default when detection is not possible)
OFFICIAL_SOURCES = {"maskfeat": ("slowfast", "mmpretrain"), "simmim": ("simmim",), "hpm": ("hpm",)}

#: What the model cards say about each source: paper, the authors' reported ImageNet-1k top-1 after fine-tuning
#: (with where it is reported), and the released files.
OFFICIAL_CARDS = {
    "slowfast": "facebookresearch/SlowFast (projects/maskfeat/README.md: in1k_VIT_B_MaskFeat_PT_epoch_01600.pyth "
                "84.0 top-1 after fine-tuning, ViT-L 85.7)",
    "mmpretrain": "open-mmlab/mmpretrain (configs/maskfeat/metafile.yml: maskfeat_vit-base-p16_8xb256-amp-coslr-"
                  "300e_in1k, 83.4 top-1 after its 100-epoch fine-tuning)",
    "simmim": "microsoft/SimMIM (README.md model tables: ViT-B 800 ep 83.8; Swin-B 100 ep 82.8 at 192 px / 83.5 at "
              "224 px; Swin-B 800 ep 84.0; Swin-L 800 ep 85.4 top-1 after fine-tuning)",
    "hpm": "Haochen-Wang409/HPM (README.md: ViT-B/16 800 ep 84.2, ViT-L/16 800 ep 85.8 top-1 after fine-tuning)",
}  # fmt: skip

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
        source: The layout (``OFFICIAL_SOURCES[method]``); detected from the file when None.
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
    if method not in OFFICIAL_SOURCES:
        raise ValueError(f"`method` must be one of {sorted(OFFICIAL_SOURCES)}, got {method!r}.")
    if source is not None and source not in OFFICIAL_SOURCES[method]:
        raise ValueError(f"`source` must be one of {OFFICIAL_SOURCES[method]} for {method}, got {source!r}.")
    state = load_official_checkpoint(checkpoint, trust_pickle=trust_pickle)
    module = importlib.import_module(f"hf_mim.models.{method}.convert_{method}_official")
    model, report = module.convert(state, source, **kwargs, **dict(config_overrides or {}))
    report["checkpoint"] = Path(checkpoint).name
    return (model, report) if return_report else model


def official_card_notes(report: dict) -> dict[str, str]:
    """Model-card rows for a converted official checkpoint."""
    rows = {
        "converted from": f"`{report['checkpoint']}` ({report['source']} layout, epoch {report.get('epoch')})",
        "official source": OFFICIAL_CARDS[report["source"]],
        "conversion check": "hf_mim tests: a tiny model in the official layout converts and reproduces outputs "
        "computed independently from the official definitions; see README 'Official checkpoints'",
        "dropped keys": f"{len(report['dropped'])} (buffers recomputed by the model, unused EMA parts)",
    }
    return rows
