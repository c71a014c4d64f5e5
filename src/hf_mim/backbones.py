"""Released transformers vision encoders as the encoder of a method: continued (domain-adaptive) pretraining.

A method can wrap the very class a backbone was released as -- ``ViTModel``, ``DeiTModel``, ``Dinov2Model``,
``Dinov2WithRegistersModel``, ``BeitModel``, ``SwinModel``, ``ViTMAEModel`` -- instead of its own encoder, start
from its weights, and give it back as that class afterwards:

- :data:`BACKBONES`: how hf_mim drives each class (:class:`BackboneType`, data); each method's config lists the
  ones it accepts in ``backbone_types``.
- :class:`BackboneEncoder`: the wrapped class, masked patches replaced by its mask token (MaskFeat, SimMIM);
  :class:`VisiblePatchEncoder`: the same class encoding the visible patches only (HPM / MAE).
- :class:`BackboneMixin` (``from_backbone`` on every hf_mim model class): the method built around a backbone's
  weights, its config sized from the backbone by :func:`backbone_method_config`.
- :func:`mean_patch_features`: a plain encoder's features as a wrapped one pools them (kNN against the start).
- :func:`source_image_processor`: the source's image processor, at the run's resolution and normalisation
  (``hf_mim.export.export_backbone`` writes the encoder back as the source class).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel

from .modeling_utils import check_bool_masked_pos, kept_swin_windows, resize_position_tables

__all__ = [
    "BACKBONES",
    "BackboneEncoder",
    "BackboneMixin",
    "BackboneType",
    "VisiblePatchEncoder",
    "as_backbone_config",
    "backbone_method_config",
    "backbone_source",
    "backbone_type",
    "check_backbone",
    "class_name",
    "encoder_sizes",
    "hub_id",
    "load_backbone",
    "load_backbone_weights",
    "mean_patch_features",
    "output_stride",
    "source_image_processor",
]

#: The attribute of a wrapped encoder's config that records where it came from (``name_or_path`` when it is a Hub
#: id, the source class and its image processor); :func:`source_image_processor` reads it, the export drops it.
SOURCE_KEY = "hf_mim_source"


def _vit_mae_tokens(model: nn.Module, pixel_values: torch.Tensor, interpolate: bool) -> torch.Tensor:
    """ViTMAE's embeddings without its random masking: ``[CLS]`` and every patch, with positions."""
    embeddings = model.embeddings
    patches = embeddings.patch_embeddings(pixel_values)
    positions = embeddings.position_embeddings
    if interpolate:
        positions = embeddings.interpolate_pos_encoding(patches, *pixel_values.shape[-2:])
    cls = (embeddings.cls_token + positions[:, :1]).expand(patches.shape[0], -1, -1)
    return torch.cat([cls, patches + positions[:, 1:]], dim=1)


def _vit_mae_fixed_positions(model: nn.Module) -> None:
    """ViTMAE's sin-cos table, from its own ``initialize_weights``: a model built from a config skips it (transformers
    marks the patch embedding initialised first), which would leave a new grid's table at zeros."""
    model.embeddings.patch_embeddings.projection._is_hf_initialized = False
    model.embeddings.initialize_weights()


@dataclass(frozen=True)
class BackboneType:
    """How hf_mim drives one transformers encoder class.

    Attributes:
        model_type: transformers' ``model_type`` (the class is ``AutoModel``'s for it).
        mask_token: Where the class gets a mask token: ``"argument"`` (its ``use_mask_token`` argument),
            ``"config"`` (``config.use_mask_token``), ``"always"`` or ``"none"`` (it cannot replace patches).
        extra_tokens: Tokens between ``[CLS]`` and the patches, from the config (DeiT's distillation token, DINOv2's
            registers); they take part in attention and are dropped from the outputs.
        hierarchical: Stages that downsample, no ``[CLS]`` (Swin): its outputs are one token per ``output_stride``.
        interpolate_argument: Its forward takes ``interpolate_pos_encoding`` (DINOv2 always interpolates).
        blocks: Where its blocks are, for encoding the visible patches only (None: it cannot drop tokens, e.g.
            relative position biases over the whole grid).
        tokens: Its ``[CLS]``, extra and patch tokens with positions, ``(model, pixel_values, interpolate)``, when its
            embeddings module cannot give them (ViTMAE masks there); None: ``model.embeddings``.
        forward_encodes_all: Its forward encodes every patch (ViTMAE's drops a random share).
        fixed_position_tables: Names of its position tables that are a fixed function of the grid (recomputed at
            another resolution, never interpolated).
        init_fixed_tables: Computes those tables on a new model, where the class's own initialisation does not.
    """

    model_type: str
    mask_token: str
    extra_tokens: Callable[[Any], int] = lambda config: 0
    hierarchical: bool = False
    interpolate_argument: bool = True
    blocks: str | None = "layers"
    tokens: Callable[..., torch.Tensor] | None = None
    forward_encodes_all: bool = True
    fixed_position_tables: tuple[str, ...] = ()
    init_fixed_tables: Callable[[nn.Module], None] | None = None


#: Every encoder class hf_mim can wrap, by ``model_type``.
BACKBONES: dict[str, BackboneType] = {
    kind.model_type: kind
    for kind in (
        BackboneType("vit", mask_token="argument"),
        BackboneType("deit", mask_token="argument", extra_tokens=lambda config: 1),
        BackboneType("dinov2", mask_token="config", interpolate_argument=False, blocks="encoder.layer"),
        BackboneType(
            "dinov2_with_registers",
            mask_token="always",
            interpolate_argument=False,
            blocks="encoder.layer",
            extra_tokens=lambda config: config.num_register_tokens,
        ),
        BackboneType("beit", mask_token="config", blocks=None),
        BackboneType("swin", mask_token="argument", hierarchical=True, blocks=None),
        BackboneType(
            "vit_mae",
            mask_token="none",
            tokens=_vit_mae_tokens,
            forward_encodes_all=False,
            fixed_position_tables=("position_embeddings",),
            init_fixed_tables=_vit_mae_fixed_positions,
        ),
    )
}


def class_name(model_type: str) -> str:
    """transformers' bare model class for ``model_type`` (``"dinov2"`` -> ``"Dinov2Model"``)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    name = MODEL_MAPPING_NAMES.get(model_type, f"{model_type!r}")
    return name if isinstance(name, str) else name[0]


def check_backbone(model_type: str, supported: tuple[str, ...], method: str, argument: str = "backbone") -> None:
    """Raises a ValueError naming ``argument``, the class and the classes ``method`` supports, unless ``model_type``
    is one of ``supported``."""
    if model_type not in supported:
        names = ", ".join(class_name(t) for t in supported)
        raise ValueError(f"{method} cannot start from a {class_name(model_type)} ({argument}, model_type "
                         f"{model_type!r}); the encoders it supports: {names}.")  # fmt: skip


def backbone_type(model_type: str) -> BackboneType:
    """The :class:`BackboneType` of ``model_type``; a ValueError naming the supported classes otherwise."""
    check_backbone(model_type, tuple(BACKBONES), "hf_mim")
    return BACKBONES[model_type]


def as_backbone_config(config: PreTrainedConfig | dict) -> PreTrainedConfig:
    """A wrapped encoder's config from a config or its dict (``model_type`` required), of a supported class."""
    if isinstance(config, dict):
        if "model_type" not in config:
            raise ValueError(f"`encoder_config` needs a `model_type`, one of {sorted(BACKBONES)}.")
        backbone_type(config["model_type"])
        data = {k: v for k, v in config.items() if k != "model_type"}
        config = AutoConfig.for_model(config["model_type"], **data)
    backbone_type(config.model_type)
    return config


def _side(value) -> int:
    return int(value) if isinstance(value, int) else int(value[0])


def output_stride(config: PreTrainedConfig) -> int:
    """Pixels per output token: the patch size, times 2 per downsampling stage of a hierarchical encoder."""
    patch = _side(config.patch_size)
    return patch * 2 ** (len(config.depths) - 1) if backbone_type(config.model_type).hierarchical else patch


def encoder_sizes(config: PreTrainedConfig) -> dict[str, int]:
    """A wrapped encoder in the ViT fields of a method config: ``image_size``, ``patch_size`` (the output stride:
    one prediction per output token), ``num_channels``, ``hidden_size`` (the output width), depth, heads and MLP
    width (Swin: blocks of all stages, the last stage's heads and MLP)."""
    sizes = {"image_size": _side(config.image_size), "patch_size": output_stride(config),
             "num_channels": int(config.num_channels)}  # fmt: skip
    if backbone_type(config.model_type).hierarchical:
        width = int(config.embed_dim * 2 ** (len(config.depths) - 1))
        return {**sizes, "hidden_size": width, "num_hidden_layers": int(sum(config.depths)),
                "num_attention_heads": int(config.num_heads[-1]), "intermediate_size": int(config.mlp_ratio * width)}  # fmt: skip
    intermediate = getattr(config, "intermediate_size", None) or int(config.mlp_ratio * config.hidden_size)
    return {**sizes, "hidden_size": int(config.hidden_size), "num_hidden_layers": int(config.num_hidden_layers),
            "num_attention_heads": int(config.num_attention_heads), "intermediate_size": int(intermediate)}  # fmt: skip


def backbone_source(config) -> dict[str, Any]:
    """What a method config (or a wrapped encoder's config) records about the backbone it started from: ``class``,
    ``name_or_path`` (a Hub id; None for a local folder or a model object) and ``image_processor`` (a dict or None).
    Empty for a model that wraps nothing."""
    encoder = getattr(config, "encoder_config", None) or config
    return dict(getattr(encoder, SOURCE_KEY, None) or {})


# ------------------------------------------------------------------------------------------------- encoding


def _tokens(model: nn.Module, kind: BackboneType, pixel_values: torch.Tensor, interpolate: bool) -> torch.Tensor:
    """``[B, 1 + extra + L, D]``: ``[CLS]``, extra tokens and every patch, with positions."""
    if kind.tokens is not None:
        return kind.tokens(model, pixel_values, interpolate)
    options = {"interpolate_pos_encoding": interpolate} if kind.interpolate_argument else {}
    return model.embeddings(pixel_values, **options)


def _blocks(model: nn.Module, kind: BackboneType) -> nn.ModuleList:
    blocks = model
    for name in kind.blocks.split("."):
        blocks = getattr(blocks, name)
    return blocks


def _run_blocks(model, kind, tokens, output_hidden_states: bool = False, final_norm: bool = True):
    """The blocks (and the final LayerNorm) on ``tokens``; ``(last, hidden_states or None)``."""
    hidden = (tokens,) if output_hidden_states else None
    for block in _blocks(model, kind):
        tokens = block(tokens)
        tokens = tokens[0] if isinstance(tokens, tuple) else tokens
        hidden = hidden + (tokens,) if output_hidden_states else None
    return (model.layernorm(tokens) if final_norm else tokens), hidden


def _interpolate(config, pixel_values: torch.Tensor, interpolate_pos_encoding: bool | None) -> bool:
    if interpolate_pos_encoding is not None:
        return bool(interpolate_pos_encoding)
    size = _side(config.image_size)
    return tuple(pixel_values.shape[-2:]) != (size, size)


def _encode(
    model, kind, pixel_values, bool_masked_pos=None, interpolate_pos_encoding=None, output_hidden_states=False
):
    """Every token of ``model`` (a supported class) for ``pixel_values``, masked patches replaced by its mask token:
    ``(last_hidden_state [B, prefix + L, D], hidden_states or None)``, as the class computes them."""
    interpolate = _interpolate(model.config, pixel_values, interpolate_pos_encoding)
    pixel_values = pixel_values.to(model.embeddings.patch_embeddings.projection.weight.dtype)
    if not kind.forward_encodes_all:  # its forward masks patches at random: embeddings, blocks and norm instead
        if bool_masked_pos is not None:
            raise ValueError(f"{class_name(kind.model_type)} has no mask token: it cannot replace patches.")
        return _run_blocks(model, kind, _tokens(model, kind, pixel_values, interpolate), output_hidden_states)
    options = {"interpolate_pos_encoding": interpolate} if kind.interpolate_argument else {}
    if bool_masked_pos is not None:
        options["bool_masked_pos"] = bool_masked_pos
    with kept_swin_windows(model):
        out = model(pixel_values, output_hidden_states=output_hidden_states, **options)
    return out.last_hidden_state, (out.hidden_states if output_hidden_states else None)


def _cls_and_patches(kind: BackboneType, config, tokens: torch.Tensor) -> torch.Tensor:
    """``[B, 1 + extra + L, D]`` -> ``[B, 1 + L, D]`` (the extra tokens dropped); hierarchical outputs unchanged."""
    extra = 0 if kind.hierarchical else kind.extra_tokens(config)
    return torch.cat([tokens[:, :1], tokens[:, 1 + extra :]], dim=1) if extra else tokens


@torch.no_grad()
def mean_patch_features(model: PreTrainedModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """``[B, D]``: the mean of the final patch tokens of a plain encoder of a supported class -- what an hf_mim
    model wrapping it pools with ``pooling="mean"``, so the two compare directly (positions interpolated for
    another input size)."""
    kind = backbone_type(model.config.model_type)
    sequence, _ = _encode(model, kind, pixel_values)
    tokens = _cls_and_patches(kind, model.config, sequence)
    return (tokens if kind.hierarchical else tokens[:, 1:]).mean(dim=1)


class BackboneEncoder(nn.Module):
    """A transformers encoder of a supported class whose masked patches are replaced by its mask token: the encoder
    of an hf_mim model started from a released backbone (``from_backbone``).

    Parameters the method does not use (the class's pooler; its mask token when nothing masks with it) are frozen
    and travel unchanged, so that :func:`hf_mim.export.export_backbone` gives back the complete source class and
    distributed training sees no unused trainable parameter.

    Args:
        config: The encoder's transformers config (ViT, DeiT, DINOv2, BEiT, Swin).
        use_mask_token: Create the mask token (pretraining; kept anyway where the class or its config has one).
        attn_implementation: The attention kernel (default: the config's).
        initializer_range: Std of the truncated normal a new mask token is drawn from.

    Attributes:
        model: The wrapped transformers model (``AutoModel`` for the config).
        has_cls_token: Outputs start with ``[CLS]`` (False for Swin).
    """

    def __init__(self, config: PreTrainedConfig, use_mask_token: bool = True, attn_implementation: str | None = None,
                 initializer_range: float = 0.02):  # fmt: skip
        super().__init__()
        self.kind = backbone_type(config.model_type)
        if use_mask_token and self.kind.mask_token == "none":
            raise ValueError(f"{class_name(config.model_type)} has no mask token: a method that masks patches with "
                             "a token cannot wrap it (HPM / MAE encode the visible patches only).")  # fmt: skip
        model_config = copy.deepcopy(config)
        if hasattr(model_config, SOURCE_KEY):
            delattr(model_config, SOURCE_KEY)
        if attn_implementation is not None:
            model_config._attn_implementation = attn_implementation
        options = {}
        if self.kind.mask_token == "argument":
            options["use_mask_token"] = use_mask_token
        elif self.kind.mask_token == "config":
            model_config.use_mask_token = bool(use_mask_token or getattr(config, "use_mask_token", False))
        self._source_mask_token = bool(getattr(config, "use_mask_token", False))
        self.model = AutoModel.from_config(model_config, **options)
        if self.kind.init_fixed_tables is not None:
            with torch.no_grad():
                self.kind.init_fixed_tables(self.model)
        mask_token = getattr(self.model.embeddings, "mask_token", None)
        if mask_token is not None:
            with torch.no_grad():  # replaced by the source's own token where it has one
                nn.init.trunc_normal_(mask_token, std=initializer_range)
            mask_token.requires_grad_(use_mask_token)  # a token the class keeps but nothing masks with: frozen
        pooler = getattr(self.model, "pooler", None)
        if pooler is not None:
            pooler.requires_grad_(False)
        self.has_cls_token = not self.kind.hierarchical
        #: Position tables of this class that are a fixed function of the grid (``ResolutionMixin`` reads it).
        self.fixed_position_tables = self.kind.fixed_position_tables

    @property
    def config(self) -> PreTrainedConfig:
        return self.model.config

    @property
    def embeddings(self) -> nn.Module:
        return self.model.embeddings

    @property
    def layernorm(self) -> nn.Module:
        """The final norm (what the papers' mean + fc_norm fine-tuning head applies to the mean token)."""
        return self.model.layernorm

    def patch_mask(self, bool_masked_pos: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """A ``[B, L]`` mask over the patch grid, or over the output grid of a hierarchical encoder (each output
        token's patches masked together), as the ``[B, num_patches]`` mask the class takes.

        Raises:
            ValueError: The mask fits neither grid (naming both).
        """
        patch, stride = _side(self.config.patch_size), output_stride(self.config)
        batch, length = bool_masked_pos.shape[0], bool_masked_pos.shape[-1]
        patches = (height // patch) * (width // patch)
        outputs = (height // stride, width // stride)
        if self.kind.hierarchical and length == outputs[0] * outputs[1] and length != patches:
            check_bool_masked_pos(bool_masked_pos, batch, length)
            factor = stride // patch
            grid = bool_masked_pos.view(batch, outputs[0], 1, outputs[1], 1)
            return grid.expand(batch, outputs[0], factor, outputs[1], factor).reshape(batch, patches)
        return check_bool_masked_pos(bool_masked_pos, batch, patches)

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """Encodes images, masked patches replaced by the mask token.

        Args:
            pixel_values: ``[B, C, H, W]``, H and W multiples of the output stride (positions are interpolated when
                the size differs from the config's).
            bool_masked_pos: ``[B, L]`` bool, True = masked, over the patch grid (or the output grid of a
                hierarchical encoder, see :meth:`patch_mask`).
            interpolate_pos_encoding: Force interpolation on/off (default: whenever the size differs).
            output_hidden_states: Also return the hidden states (the input of every block and the final output,
                before the final norm).

        Returns:
            ``(last_hidden_state, hidden_states or None)``: ``[B, 1 + L, D]`` (``[CLS]`` then the patches; extra
            tokens dropped) after the final norm, or ``[B, L_out, D]`` for a hierarchical encoder.
        """
        height, width = pixel_values.shape[-2:]
        stride = output_stride(self.config)
        if height % stride or width % stride:
            raise ValueError(f"`pixel_values` ({height}x{width}) must be divisible by the encoder's output stride "
                             f"{stride}.")  # fmt: skip
        if bool_masked_pos is not None:
            bool_masked_pos = self.patch_mask(bool_masked_pos, height, width)
        sequence, hidden = _encode(self.model, self.kind, pixel_values, bool_masked_pos, interpolate_pos_encoding,
                                   output_hidden_states)  # fmt: skip
        if hidden is not None and not self.kind.hierarchical:
            hidden = tuple(_cls_and_patches(self.kind, self.config, h) for h in hidden)
        return _cls_and_patches(self.kind, self.config, sequence), hidden

    def source_model(self) -> PreTrainedModel:
        """A new instance of the source class (its own config and options, at this encoder's resolution) holding
        this encoder's weights -- without the mask token where the source class has none.

        Raises:
            ValueError: The weights do not map (naming the keys).
        """
        source_config = copy.deepcopy(self.config)
        if self.kind.mask_token == "config":  # the source's own setting (the wrapped copy may have switched it on)
            source_config.use_mask_token = self._source_mask_token
        target = AutoModel.from_config(source_config)
        state = self.model.state_dict()
        expected = target.state_dict()
        missing = [k for k in expected if k not in state]
        if missing:
            raise ValueError(f"The encoder does not map onto {type(target).__name__}: missing {missing}.")
        target.load_state_dict({k: v for k, v in state.items() if k in expected})
        return target.to(dtype=next(self.model.parameters()).dtype)


class VisiblePatchEncoder(BackboneEncoder):
    """A wrapped ViT-family encoder (ViT, DeiT, DINOv2, ViTMAE) that encodes the visible patches only, MAE's way:
    every patch embedded with its position, the visible ones gathered, then the blocks. Its interface is HPM's
    ``MAEEncoder``'s. A mask token of the class is kept (and frozen) so that the export is complete.

    Args:
        config: The encoder's transformers config.
        attn_implementation: The attention kernel (default: the config's).
        initializer_range: Unused (no mask token is drawn); kept for a common signature.

    Raises:
        ValueError: A class that cannot drop tokens (BEiT's relative position bias, Swin's windows).
    """

    def __init__(self, config: PreTrainedConfig, attn_implementation: str | None = None,
                 initializer_range: float = 0.02):  # fmt: skip
        kind = backbone_type(config.model_type)
        if kind.blocks is None:
            raise ValueError(f"{class_name(config.model_type)} cannot encode the visible patches only (its positions "
                             "span the whole grid); MAE-style methods need a ViT-family encoder.")  # fmt: skip
        super().__init__(config, use_mask_token=False, attn_implementation=attn_implementation,
                         initializer_range=initializer_range)  # fmt: skip

    def forward(self, pixel_values: torch.Tensor, ids_keep: torch.Tensor | None = None, final_norm: bool = True):
        """``[B, C, H, W]`` -> ``[B, 1 + K, D]`` for the ``K`` patches in ``ids_keep [B, K]`` (all when None),
        ``[CLS]`` first (extra tokens take part, then are dropped), after the final norm unless ``final_norm=False``."""
        interpolate = _interpolate(self.config, pixel_values, None)
        weight = self.model.embeddings.patch_embeddings.projection.weight
        tokens = _tokens(self.model, self.kind, pixel_values.to(weight.dtype), interpolate)
        if ids_keep is not None:
            prefix = 1 + self.kind.extra_tokens(self.config)
            patches = torch.gather(tokens[:, prefix:], 1, ids_keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
            tokens = torch.cat([tokens[:, :prefix], patches], dim=1)
        tokens, _ = _run_blocks(self.model, self.kind, tokens, final_norm=final_norm)
        return _cls_and_patches(self.kind, self.config, tokens)


# ------------------------------------------------------------------------------------------ starting a method


def hub_id(name_or_path: str | os.PathLike | None) -> str | None:
    """``name_or_path`` when it names a Hub repository (``org/name``; not a local path), else None: what model-card
    metadata such as ``base_model`` may hold."""
    if name_or_path is None or os.path.exists(name_or_path):
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(str(name_or_path))
    except HFValidationError:
        return None
    return str(name_or_path)


def load_backbone(backbone: str | os.PathLike | PreTrainedModel, argument: str = "backbone") -> PreTrainedModel:
    """The bare encoder of a supported class: ``AutoModel`` from a Hub id or local folder (a classifier checkpoint
    gives its encoder), or the base model of a transformers model object.

    Raises:
        ValueError: Naming ``argument``: no checkpoint there, or a class hf_mim cannot wrap (naming the supported).
    """
    if isinstance(backbone, PreTrainedModel):
        model = backbone.base_model
        backbone_type(model.config.model_type)
        return model
    if not isinstance(backbone, str | os.PathLike):
        raise ValueError(f"`{argument}` must be a Hub id, a local folder or a transformers model, got "
                         f"{type(backbone).__name__}.")  # fmt: skip
    try:
        config = AutoConfig.from_pretrained(backbone)
    except (OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{argument} {backbone}: no transformers checkpoint there ({first})") from err
    check_backbone(config.model_type, tuple(BACKBONES), "hf_mim", f"{argument} {backbone}")
    return AutoModel.from_pretrained(backbone)


def _load_image_processor(name_or_path) -> Any:
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(name_or_path)
    except (OSError, ValueError, KeyError):
        return None


def backbone_method_config(
    config_class: type,
    source_config: PreTrainedConfig,
    image_size: int | None = None,
    image_processor=None,
    name_or_path: str | None = None,
    **config_kwargs: Any,
):
    """The config of ``config_class``'s method wrapping an encoder of ``source_config``'s class.

    The encoder config is a copy of the source's at the pretraining resolution, recording the source (its class, its
    Hub id, its image processor); the method's own defaults for this encoder come from
    ``config_class.encoder_defaults`` (e.g. MaskFeat's HOG cell, SimMIM's mask cell); the inputs are normalised with
    the source processor's statistics. Explicit ``config_kwargs`` win.

    Args:
        config_class: A method config class with ``backbone_types``.
        source_config: The backbone's transformers config.
        image_size: Pretraining resolution (default: the backbone's); also read from ``encoder_config`` /
            ``image_size`` in ``config_kwargs``. A multiple of the encoder's output stride.
        image_processor: The backbone's image processor (its statistics normalise the inputs; the export adjusts it).
        name_or_path: Where the backbone came from (recorded when it is a Hub id).
        config_kwargs: Method config fields; ``encoder_config`` is a dict of fields of the backbone's config to set.

    Raises:
        ValueError: An encoder the method does not support (naming the supported classes), an unknown encoder field,
            a resolution that is not a multiple of the output stride.
    """
    method = config_class.__name__.removesuffix("Config")
    check_backbone(source_config.model_type, tuple(config_class.backbone_types), method)
    encoder = copy.deepcopy(source_config)
    overrides = dict(config_kwargs.pop("encoder_config", None) or {})
    flat_size = config_kwargs.pop("image_size", None)
    size = next((s for s in (image_size, overrides.pop("image_size", None), flat_size) if s is not None), None)
    for key, value in overrides.items():
        if not hasattr(encoder, key):
            raise ValueError(f"`encoder_config.{key}` is no field of {type(encoder).__name__}.")
        setattr(encoder, key, value)
    if size is not None:
        stride = output_stride(encoder)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % stride:
            raise ValueError(f"`image_size` must be a positive multiple of the {class_name(encoder.model_type)}'s "
                             f"output stride {stride}, got {size!r}.")  # fmt: skip
        encoder.image_size = size
    processor = None
    if image_processor is not None:
        import json

        processor = json.loads(image_processor.to_json_string())
        for name in ("image_mean", "image_std"):
            if processor.get(name) is not None:
                config_kwargs.setdefault(name, [float(v) for v in processor[name]])
    setattr(encoder, SOURCE_KEY, {"class": class_name(encoder.model_type), "name_or_path": hub_id(name_or_path),
                                  "image_processor": processor})  # fmt: skip
    return config_class(encoder_config=encoder, **{**config_class.encoder_defaults(encoder), **config_kwargs})


def _grid(config) -> tuple[int, int]:
    side, patch = _side(config.image_size), _side(config.patch_size)
    return side // patch, side // patch


def load_backbone_weights(encoder: BackboneEncoder, source: PreTrainedModel) -> None:
    """Copies ``source``'s weights into ``encoder`` (positions resized to its resolution by hf_mim's one rule,
    :func:`hf_mim.modeling_utils.resize_position_tables`); a mask token the source lacks keeps its new values.

    Raises:
        ValueError: The weights do not map (naming the keys).
    """
    expected = encoder.model.state_dict()
    state = resize_position_tables(source.state_dict(), _grid(source.config), _grid(encoder.config), expected,
                                   encoder.fixed_position_tables)  # fmt: skip
    missing, unexpected = encoder.model.load_state_dict(state, strict=False)
    missing = [k for k in missing if "mask_token" not in k]
    unexpected = [k for k in unexpected if "mask_token" not in k]
    if missing or unexpected:
        raise ValueError(f"The {type(source).__name__} weights do not map onto the wrapped encoder: missing "
                         f"{missing}, unexpected {unexpected}.")  # fmt: skip


class BackboneMixin:
    """``from_backbone`` for hf_mim model classes (mixed into a ``PreTrainedModel`` whose base model keeps its encoder
    as ``encoder``)."""

    @classmethod
    def from_backbone(
        cls,
        backbone: str | os.PathLike | PreTrainedModel,
        image_size: int | None = None,
        image_processor=None,
        **config_kwargs: Any,
    ):
        """This method built around a released backbone: its encoder is the backbone's class with the backbone's
        weights (positions interpolated to ``image_size``), the heads and targets are sized from it.

        Before any training step the encoder's features equal the backbone's for the same unmasked input; after
        training, :func:`hf_mim.export.export_backbone` writes it back as the backbone's class.

        Args:
            backbone: A Hub id or local folder of a transformers vision encoder (or a classifier, whose encoder is
                taken), or a model object; its class must be one of the config class's ``backbone_types``.
            image_size: Pretraining resolution (default: the backbone's), a multiple of its output stride.
            image_processor: The backbone's image processor (default: loaded with the backbone when it has one).
            config_kwargs: Fields of this method's config (``encoder_config={...}``: fields of the backbone's).

        Returns:
            The model in eval mode, on the backbone's device and dtype.

        Raises:
            ValueError: A backbone class the method does not support (naming the supported ones), or a resolution
                that does not fit it.
        """
        name = backbone if isinstance(backbone, str | os.PathLike) else None
        source = load_backbone(backbone)
        if image_processor is None and name is not None:
            image_processor = _load_image_processor(name)
        config = backbone_method_config(cls.config_class, source.config, image_size, image_processor,
                                        None if name is None else str(name), **config_kwargs)  # fmt: skip
        model = cls(config)
        load_backbone_weights(getattr(model, model.base_model_prefix).encoder, source)
        parameter = next(source.parameters())
        return model.to(device=parameter.device, dtype=parameter.dtype).eval()


# ----------------------------------------------------------------------------------------------------- export


def _edge(size: dict) -> int | None:
    return size.get("shortest_edge") or size.get("height")


def source_image_processor(config):
    """The image processor of a model that wraps a backbone, for its export: the backbone's own (recorded by
    ``from_backbone``; else its class's default processor) at the model's resolution and with the statistics the
    model was trained with. A source that resizes then crops keeps its ratio (DINOv2's 256 / 224).

    Args:
        config: A method config with a wrapped ``encoder_config``.
    """
    import json

    from transformers.models.auto.image_processing_auto import (
        IMAGE_PROCESSOR_MAPPING_NAMES,
        get_image_processor_class_from_name,
    )

    from .modeling_utils import normalization

    encoder = config.encoder_config
    data = backbone_source(config).get("image_processor")
    if not data:
        names = IMAGE_PROCESSOR_MAPPING_NAMES.get(encoder.model_type) or {"torchvision": "ViTImageProcessor"}
        name = names.get("torchvision") or next(iter(names.values())) if isinstance(names, dict) else names
        data = json.loads(get_image_processor_class_from_name(name)().to_json_string())
    data = dict(data)
    processor_class = get_image_processor_class_from_name(data["image_processor_type"])
    side = _side(encoder.image_size)
    mean, std = normalization(config)
    data["image_mean"], data["image_std"] = list(mean), list(std)
    size = dict(data.get("size") or {})
    if data.get("do_center_crop") and data.get("crop_size") and _edge(size):
        resized = round(side * _edge(size) / _edge(data["crop_size"]))
        data["crop_size"] = {"height": side, "width": side}
    else:
        resized = side
    data["size"] = {"shortest_edge": resized} if "shortest_edge" in size else {"height": resized, "width": resized}
    return processor_class.from_dict(data)
