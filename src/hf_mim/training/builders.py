"""Models, configs and image processors for a run: from a preset, a JSON config file (+ typed overrides) or a
checkpoint, through the registry (no method names in this module)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from ..config_overrides import check_config_keys
from ..registry import get_model_spec

__all__ = [
    "build_config",
    "build_image_processor",
    "build_model",
    "compile_model",
    "load_checkpoint_config",
    "set_attention",
    "reconcile_normalization",
    "shard_model",
]


def build_config(method: str, preset: str | None = None, config_file: str | None = None, **overrides: Any):
    """A method config from a named preset, a JSON file, or the defaults; ``overrides`` are applied on top."""
    spec = get_model_spec(method)
    cls = spec.config_class
    if preset and config_file:
        raise ValueError("Give either `preset` or `config_file`, not both.")
    if config_file:
        data = json.loads(Path(config_file).read_text())
        check_config_keys(method, data, config_file)
        data = {k: v for k, v in data.items() if k not in ("model_type", "auto_map")}
        for key, value in overrides.items():  # nested configs (encoder_config) merge field by field
            data[key] = (
                {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
            )
        return cls(**data)
    if preset:
        return cls.from_preset(preset, **overrides)
    return cls(**overrides)


def build_model(method: str, config=None, model_name_or_path: str | None = None, **kwargs):
    """The method's pretraining model, new from ``config`` or continued from a checkpoint (local or Hub id)."""
    spec = get_model_spec(method)
    if model_name_or_path:
        return spec.pretraining_class.from_pretrained(model_name_or_path, **kwargs)
    return spec.pretraining_class(config)


def build_image_processor(method: str, config, **overrides: Any):
    return get_model_spec(method).image_processor_class.from_model_config(config, **overrides)


def shard_model(model: nn.Module, mesh=None) -> nn.Module:
    """Applies torch's FSDP2 (``fully_shard``) to every block class in ``model._no_split_modules`` and then to the
    root, in place: parameters become DTensors sharded over ``mesh`` (default: all ranks). Build the optimizer
    (:func:`param_groups`) afterwards; names, and so the weight-decay groups, are unchanged. HPM's teacher is
    sharded like the student, so :meth:`~hf_mim.HPMForPreTraining.update_teacher` is a local lerp per shard.
    """
    from torch.distributed.fsdp import fully_shard

    names = set(getattr(model, "_no_split_modules", None) or ())
    for module in model.modules():
        if type(module).__name__ in names and module is not model:
            fully_shard(module, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def load_checkpoint_config(name_or_path: str, flag: str = "--model_name_or_path", **kwargs: Any):
    """``AutoConfig.from_pretrained(name_or_path)``, with an error that names the argument when there is no
    checkpoint there (a local folder without ``config.json``, or a Hub id that cannot be reached).

    Raises:
        ValueError: Naming ``flag`` and ``name_or_path``.
    """
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as err:
        where = "a local folder without config.json" if Path(name_or_path).is_dir() else "no local folder"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{flag} {name_or_path}: no checkpoint there ({where}, and the Hub could not provide "
                         f"one: {first})") from err  # fmt: skip


def reconcile_normalization(config, processor) -> None:
    """Makes the model know how its inputs are normalised: the config records the processor's ``image_mean`` /
    ``image_std`` when it has none (colour bins and pictures un-normalise with them).

    Raises:
        ValueError: The config records other statistics than the processor uses, or another channel count.
    """
    import math

    from ..modeling_utils import encoder_config

    channels = encoder_config(config).num_channels
    if getattr(processor, "num_channels", 3) != channels:
        raise ValueError(f"The image processor makes {processor.num_channels}-channel inputs, but the model takes "
                         f"{channels} (`num_channels`): build the processor from the model's config.")  # fmt: skip

    for name in ("image_mean", "image_std"):
        used = [float(v) for v in getattr(processor, name)]
        recorded = getattr(config, name, None)
        if recorded is None:
            setattr(config, name, used)
        elif len(recorded) != len(used) or not all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(recorded, used)):
            raise ValueError(f"The image processor normalises with {name}={used}, but the model config records "
                             f"{name}={list(recorded)}: build the processor from the config "
                             "(`from_model_config`) or set the config's statistics to the data's.")  # fmt: skip


def compile_model(model: nn.Module, backend: str | None = None, mode: str | None = None) -> nn.Module:
    """``torch.compile(model)`` (``backend`` default inductor) whose random numbers match eager mode's.

    Random ops inside the graph (HPM / MAE's random masking) then draw from torch's generator as in eager mode
    (inductor's ``fallback_random``; inductor's own generator draws other numbers), so a compiled run masks the same
    patches as an eager one and resumes exactly. The setting is process-wide.
    """
    import torch
    from torch._inductor import config as inductor_config

    inductor_config.fallback_random = True
    return torch.compile(model, backend=backend or "inductor", mode=mode)


def set_attention(model, attn_implementation: str | None, flag: str = "--attn_implementation") -> None:
    """Switches ``model`` to an attention kernel its class declares (``_supports_sdpa``, ``_supports_flash_attn``,
    ...; transformers checks that the kernel is installed and usable here).

    Raises:
        ValueError: Naming ``flag``, the kernel and why it cannot be used.
    """
    if attn_implementation is None:
        return
    try:
        model.set_attn_implementation(attn_implementation)
    except (ValueError, ImportError) as err:
        raise ValueError(f"{flag} {attn_implementation}: {type(model).__name__} cannot use it here "
                         f"({' '.join(str(err).split())})") from err  # fmt: skip
