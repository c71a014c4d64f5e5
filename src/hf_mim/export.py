"""Using hf_mim checkpoints without hf_mim.

- :func:`export_backbone` writes the encoder as a plain transformers ``ViTModel`` / ``SwinModel`` checkpoint.
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
from transformers import BeitModel, SwinModel, ViTConfig, ViTModel

from .modeling_utils import vit_config_kwargs

__all__ = ["export_backbone", "bundle_remote_code", "AUTO_CLASSES"]

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


def export_backbone(model, save_directory: str | os.PathLike) -> ViTModel | SwinModel | BeitModel:
    """Writes the encoder of an hf_mim model as a plain transformers ``ViTModel`` (or ``SwinModel``) checkpoint.

    ``transformers.ViTModel.from_pretrained(save_directory)`` then gives the same hidden states as the hf_mim
    encoder (without a mask), so downstream projects need only transformers.

    Args:
        model: Any hf_mim model (pretraining, bare or classification).
        save_directory: Output folder.

    Returns:
        The exported transformers model.
    """
    config = model.config
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
