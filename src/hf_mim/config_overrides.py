"""``key=value`` config overrides (``--config_overrides``) and config files, typed by the method config's fields.

Kept apart from :mod:`hf_mim.configuration_utils` because it needs the registry, which the modeling files (bundled
as remote code) must not import.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_config_keys", "config_fields", "parse_config_overrides", "parse_value"]

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def config_fields(config_class) -> dict[str, str]:
    """``{field name: type annotation as text}`` of a (transformers 5 dataclass) config class."""
    import dataclasses

    return {f.name: str(f.type) for f in dataclasses.fields(config_class) if not f.name.startswith("_")}


def _unknown_key(name: str, key: str, known) -> ValueError:
    import difflib

    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"Unknown {name} field {key!r}.{hint} Known fields: {', '.join(sorted(known))}.")


def parse_value(key: str, text: str, annotation: str):
    """Parses ``text`` by the field's type: booleans strictly (true/false/1/0/yes/no), numbers and lists as JSON,
    strings as they are."""
    import json

    stripped = text.strip()
    if annotation.replace(" ", "") in ("bool", "bool|None"):
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise ValueError(f"`{key}` is a boolean: give true or false (or 1/0, yes/no), got {text!r}.")
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        value = stripped
    if isinstance(value, bool) and "bool" not in annotation:
        raise ValueError(f"`{key}` has type {annotation}, got the boolean {text!r}.")
    if annotation.split("|")[0].strip() == "str" and not isinstance(value, str):
        value = stripped  # e.g. hidden_act=gelu or a numeric-looking name stays a string
    if annotation.split("|")[0].strip() == "float" and isinstance(value, int):
        value = float(value)
    if annotation.split("|")[0].strip() == "int" and isinstance(value, float):
        raise ValueError(f"`{key}` must be an integer, got {text!r}.")
    if isinstance(value, str) and any(t in annotation for t in ("int", "float")) and "str" not in annotation:
        raise ValueError(f"`{key}` must be a number ({annotation}), got {text!r}.")
    return value


def _split_items(text: str) -> list[str]:
    """Splits ``a=1,b=[2,3]`` on the commas outside brackets."""
    items, depth, current = [], 0, []
    for char in text:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def encoder_config_classes() -> dict[str, type]:
    """The transformers configs a method config may nest as ``encoder_config``, by ``model_type``: SimMIM's ViT /
    Swin / BEiT and every class a method can wrap (:data:`hf_mim.backbones.BACKBONES`)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from .backbones import BACKBONES

    return {model_type: CONFIG_MAPPING[model_type] for model_type in ("vit", "swin", "beit", *BACKBONES)}


def parse_config_overrides(text: str, method: str) -> dict[str, Any]:
    """``"key=value,..."`` -> config keyword arguments, typed by ``method``'s config fields.

    Values are parsed by the field's type (``norm_pix_loss=false`` is ``False``); unknown keys raise an error that
    suggests the closest field; ``encoder_config.key=value`` sets a field of a nested encoder config (SimMIM).
    """
    from .registry import get_model_spec

    fields = config_fields(get_model_spec(method).config_class)
    overrides: dict[str, Any] = {}
    for item in _split_items(text or ""):
        if "=" not in item:
            raise ValueError(f"--config_overrides items must be key=value, got {item!r}.")
        key, value = (part.strip() for part in item.split("=", 1))
        if "." in key:
            parent, child = key.split(".", 1)
            if parent not in fields or "config" not in parent:
                raise _unknown_key(f"{method} config", parent, fields)
            nested = {}
            for cls in encoder_config_classes().values():
                nested.update(config_fields(cls))
            if child not in nested:
                raise _unknown_key(f"{method} {parent}", child, nested)
            overrides.setdefault(parent, {})[child] = parse_value(key, value, nested[child])
            continue
        if key not in fields:
            raise _unknown_key(f"{method} config", key, fields)
        overrides[key] = parse_value(key, value, fields[key])
    return overrides


def check_config_keys(method: str, data: dict[str, Any], source: str) -> None:
    """Raises on keys of ``data`` (e.g. a ``--config_file``) that are no field of ``method``'s config."""
    from .registry import get_model_spec

    fields = config_fields(get_model_spec(method).config_class)
    for key in data:
        if key not in fields and key not in ("model_type", "auto_map"):
            raise _unknown_key(f"{method} config ({source})", key, fields)
