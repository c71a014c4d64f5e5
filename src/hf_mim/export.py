"""Using hf_mim checkpoints without hf_mim.

- :func:`export_backbone` writes the encoder as a plain transformers checkpoint: the class a run started from
  (``from_backbone`` / ``--init_from``: ``ViTModel``, ``DeiTModel``, ``Dinov2Model``, ``BeitModel``, ``SwinModel``,
  ...), else ``ViTModel`` / ``SwinModel`` / ``BeitModel``; :func:`export_image_processor` gives its processor and
  :func:`export_checkpoint` writes a complete folder (weights, processor, model card, ``all_results.json``) as
  ``hf-mim export`` does.
- :func:`bundle_remote_code` copies the modules a checkpoint needs, flat, into its folder and sets ``auto_map``, so
  that ``AutoModelForPreTraining.from_pretrained(repo, trust_remote_code=True)`` works where hf_mim is not
  installed (transformers only copies files imported relatively from the checkpoint folder).
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import torch
from transformers import BeitModel, PreTrainedModel, SwinModel, ViTConfig, ViTModel

from .backbones import BackboneEncoder, backbone_source, source_image_processor
from .modeling_utils import normalization, vit_config_kwargs

__all__ = ["export_backbone", "export_checkpoint", "export_image_processor", "bundle_remote_code", "AUTO_CLASSES"]

PACKAGE_DIR = Path(__file__).resolve().parent

#: Auto class -> attribute of the method's registry spec.
AUTO_CLASSES = {
    "AutoModel": "model_class",
    "AutoModelForPreTraining": "pretraining_class",
    "AutoModelForImageClassification": "classification_class",
}


def _encoder_state(model) -> tuple[str, dict[str, torch.Tensor]]:
    """The encoder's backbone type and state dict (names relative to the encoder) of any hf_mim model."""
    base = getattr(model, model.base_model_prefix, model)
    encoder = base.encoder
    state = {k: v for k, v in encoder.state_dict().items() if "mask_token" not in k}
    # a config with a nested transformers encoder config names its backbone (SimMIM: vit / swin / beit)
    backbone = getattr(model.config, "backbone", None)
    return (backbone if backbone in ("swin", "beit") else "vit"), state


def export_backbone(model, save_directory: str | os.PathLike) -> PreTrainedModel:
    """Writes the encoder of an hf_mim model as a plain transformers checkpoint.

    A model started from a released backbone (``from_backbone``) gives that backbone's class back -- its config at
    the pretraining resolution, the trained weights, the mask token dropped where the class has none, its pooler as
    it came -- so ``AutoModel.from_pretrained(save_directory)`` returns e.g. a ``Dinov2Model``. Any other model gives
    a ``ViTModel`` (or ``SwinModel`` / ``BeitModel``). Either way the export's hidden states equal the hf_mim
    encoder's (without a mask), and downstream projects need only transformers.

    Args:
        model: Any hf_mim model (pretraining, bare or classification).
        save_directory: Output folder.

    Returns:
        The exported transformers model.

    Raises:
        ValueError: The encoder's weights do not map onto the class (naming the keys).
    """
    config = model.config
    encoder = getattr(model, model.base_model_prefix, model).encoder
    if isinstance(encoder, BackboneEncoder):
        backbone = encoder.source_model()
        backbone.save_pretrained(save_directory, safe_serialization=True)
        return backbone
    kind, state = _encoder_state(model)
    if kind == "swin":
        backbone = SwinModel(config.encoder_config, add_pooling_layer=False)
    elif kind == "beit":
        backbone = BeitModel(config.encoder_config, add_pooling_layer=False)
    else:
        encoder_config = getattr(config, "encoder_config", None)
        vit_config = encoder_config if encoder_config is not None else ViTConfig(**vit_config_kwargs(config))
        backbone = ViTModel(vit_config, add_pooling_layer=False)
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if "relative_position_index" not in k]
    if missing or unexpected:
        raise ValueError(
            f"Encoder does not map onto {type(backbone).__name__}: missing {missing}, unexpected {unexpected}."
        )
    backbone.save_pretrained(save_directory, safe_serialization=True)
    return backbone


def export_image_processor(model, processor=None):
    """The image processor an export ships with: for a model started from a backbone, the backbone's own processor
    class and settings at the model's resolution and normalisation (:func:`hf_mim.backbones.source_image_processor`);
    else a ``ViTImageProcessor`` with the evaluation preprocessing of ``processor`` (the checkpoint's), or of the
    model's config when there is none."""
    from transformers import ViTImageProcessor  # (its import warns where torchvision is missing: only when used)

    encoder = getattr(model, model.base_model_prefix, model).encoder
    if isinstance(encoder, BackboneEncoder):
        return source_image_processor(model.config)
    if processor is not None:
        size, mean, std = processor.image_size, processor.image_mean, processor.image_std
    else:
        size, (mean, std) = model.config.image_size, normalization(model.config)
    return ViTImageProcessor(size={"height": size, "width": size}, image_mean=list(mean), image_std=list(std))


def export_checkpoint(
    model_name_or_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    base_model: str | None = None,
    eval_results: list[str | os.PathLike] | None = None,
    model_id: str | None = None,
) -> tuple[PreTrainedModel, list[str]]:
    """What ``hf-mim export`` does: the encoder of an hf_mim checkpoint as a complete transformers folder -- weights
    and config (:func:`export_backbone`), image processor (:func:`export_image_processor`), a model card with the
    Hub's metadata (``pipeline_tag: image-feature-extraction``, ``base_model``: the pretraining run, its datasets,
    the model-index of ``eval_results``) and ``all_results.json`` (written last: ``hf-mim push`` uploads it).

    Args:
        model_name_or_path: The hf_mim checkpoint (local folder or Hub id).
        output_dir: The folder to write.
        base_model: The card's ``base_model`` (default: the checkpoint's Hub id, or the repository its run was
            pushed to; see :func:`hf_mim.hub.pretraining_repo_id`).
        eval_results: ``all_results.json`` files of ``hf-mim finetune`` runs (``--knn``, ``--linear_probe``,
            fine-tuning) for the card's model-index.
        model_id: The name shown in the card (default: the output folder's).

    Returns:
        The exported model and the file names written.
    """
    from huggingface_hub import ModelCard
    from transformers import AutoImageProcessor, AutoModel

    from .hub import eval_results_from_files, pretraining_repo_id, render_model_card
    from .training.checkpointing import COMPLETION_FILE, write_json_atomic

    output_dir = Path(output_dir)
    results = eval_results_from_files(eval_results or [])  # a wrong file fails before anything is written
    model = AutoModel.from_pretrained(model_name_or_path)
    try:
        processor = AutoImageProcessor.from_pretrained(model_name_or_path)
    except (OSError, ValueError):
        processor = None
    backbone = export_backbone(model, output_dir)
    export_image_processor(model, processor).save_pretrained(output_dir)
    card_data = None
    try:  # the pretraining run's card: its datasets and license carry over
        location = Path(model_name_or_path) / "README.md"
        card_data = ModelCard.load(location if location.is_file() else str(model_name_or_path)).data
    except Exception:  # noqa: BLE001 - a checkpoint without a card exports all the same
        pass
    datasets = (getattr(card_data, "datasets", None) or [None]) if card_data is not None else [None]
    base_model = base_model or pretraining_repo_id(model_name_or_path)
    source = backbone_source(model.config)
    config = model.config
    method = config.model_type
    mean, std = normalization(config)
    rows = {"exported from": f"`{model_name_or_path}` (hf_mim {method})",
            "class": f"`{type(backbone).__name__}` ({'the class the run started from' if source else 'plain encoder'})",
            "started from": f"`{source.get('name_or_path') or 'a local backbone'}`" if source else "-",
            "resolution": f"{backbone.config.image_size} px", "normalisation": f"mean {list(mean)}, std {list(std)}"}  # fmt: skip
    card = render_model_card(
        method, model_id or output_dir.name, config, rows, datasets[0], results, license=getattr(card_data, "license",
        None) or "apache-2.0", base_model=base_model, template="export", source_class=type(backbone).__name__,
        method_name=type(config).__name__.removesuffix("Config"), pretraining_run=f"`{base_model or model_name_or_path}`",
    )  # fmt: skip
    card.save(output_dir / "README.md")
    write_json_atomic(output_dir / COMPLETION_FILE, {"exported_from": str(model_name_or_path),
                                                     "class": type(backbone).__name__, "base_model": base_model,
                                                     "eval_results": results})  # fmt: skip
    return backbone, sorted(p.name for p in output_dir.iterdir() if p.is_file())


_RELATIVE = re.compile(r"^(\s*from\s+)(\.+)([\w.]*)(\s+import\s)", re.MULTILINE)


def _module_path(importer: Path, dots: int, name: str) -> Path:
    base = importer.parent
    for _ in range(dots - 1):
        base = base.parent
    return base.joinpath(*name.split(".")).with_suffix(".py") if name else base / "__init__.py"


def _relative_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    return [
        (node.level, node.module or "") for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
    ]


def bundle_remote_code(model_or_processor, save_directory: str | os.PathLike) -> list[str]:
    """Copies the hf_mim modules ``model_or_processor`` needs, flat, into ``save_directory`` and adds ``auto_map``.

    Relative imports are rewritten to single-dot imports of the flat files (the only kind transformers' custom-code
    loader copies). Call after ``save_pretrained``; works for models (``config.json``) and image processors
    (``preprocessor_config.json``).

    Returns:
        The file names written.
    """
    from .registry import get_model_spec

    save_directory = Path(save_directory)
    is_model = hasattr(model_or_processor, "config")
    if is_model:
        method = model_or_processor.config.model_type
        spec = get_model_spec(method)
        roots = [spec.config_class, spec.model_class, spec.pretraining_class, spec.classification_class]
    else:
        roots = [type(model_or_processor)]
    files: dict[str, Path] = {}
    pending = [Path(__import__(cls.__module__, fromlist=["_"]).__file__) for cls in roots]
    while pending:
        path = pending.pop()
        if path.name in files:
            if files[path.name] != path:
                raise ValueError(f"Two modules named {path.name} cannot be bundled flat: {files[path.name]}, {path}")
            continue
        files[path.name] = path
        for dots, name in _relative_imports(path):
            target = _module_path(path, dots, name)
            if not target.is_file() or PACKAGE_DIR not in target.parents:
                raise ValueError(f"{path.name} imports {'.' * dots}{name}, which cannot be bundled.")
            pending.append(target)
    for name, path in files.items():
        source = _RELATIVE.sub(lambda m: f"{m.group(1)}.{m.group(3).split('.')[-1]}{m.group(4)}", path.read_text())
        (save_directory / name).write_text(source)

    def auto(cls) -> str:
        return f"{Path(__import__(cls.__module__, fromlist=['_']).__file__).stem}.{cls.__name__}"

    if is_model:
        config_path = save_directory / "config.json"
        config = json.loads(config_path.read_text())
        config["auto_map"] = {"AutoConfig": auto(spec.config_class)} | {
            name: auto(getattr(spec, attr)) for name, attr in AUTO_CLASSES.items()
        }
    else:
        config_path = save_directory / "preprocessor_config.json"
        config = json.loads(config_path.read_text())
        config["auto_map"] = {"AutoImageProcessor": auto(type(model_or_processor))}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return sorted(files)
