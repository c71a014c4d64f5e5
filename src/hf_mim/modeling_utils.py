"""Building blocks shared by the methods: a ViT with a mask token built from transformers' own ViT modules,
input checks, and classification pooling.

Parameter names follow transformers' ``ViTModel`` (``embeddings``, ``layers.N.attention.q_proj``, ...), so an
encoder exports to a plain ``ViTModel`` by renaming a prefix only.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.models.swin.modeling_swin import SwinDropPath
from transformers.models.vit.modeling_vit import ViTEmbeddings, ViTLayer

__all__ = [
    "ClassifierMixin",
    "ViTBlock",
    "MaskedViTEncoder",
    "check_bool_masked_pos",
    "check_choice",
    "pool_tokens",
    "fc_norm_pool",
    "vit_config_kwargs",
]

# The ViT hyper-parameters, with transformers' ViTConfig meaning; configs of ViT-based methods carry all of them.
VIT_KEYS = (
    "image_size",
    "patch_size",
    "num_channels",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "qkv_bias",
    "layer_norm_eps",
    "initializer_range",
)


def vit_config_kwargs(config) -> dict:
    """The ViT hyper-parameters of a method config, as ``transformers.ViTConfig`` keyword arguments."""
    return {key: getattr(config, key) for key in VIT_KEYS}


def encoder_config(config):
    """The config that holds the encoder's geometry and channels: a nested transformers encoder config (SimMIM's
    ``encoder_config``), else the config itself."""
    return getattr(config, "encoder_config", None) or config


def default_statistics(num_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel ``(mean, std)`` inputs are normalised with unless told otherwise: ImageNet's for 3 channels
    (transformers' ``IMAGENET_DEFAULT_*``), 0.5 / 0.5 for any other count (``IMAGENET_STANDARD_*``)."""
    from transformers.image_utils import (
        IMAGENET_DEFAULT_MEAN,
        IMAGENET_DEFAULT_STD,
        IMAGENET_STANDARD_MEAN,
        IMAGENET_STANDARD_STD,
    )

    if num_channels == 3:
        return tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD)
    return (IMAGENET_STANDARD_MEAN[0],) * num_channels, (IMAGENET_STANDARD_STD[0],) * num_channels


def normalization(config) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel ``(mean, std)`` the model's inputs are normalised with: the config's ``image_mean`` /
    ``image_std`` (recorded from the image processor), else :func:`default_statistics` for its channel count."""
    default_mean, default_std = default_statistics(encoder_config(config).num_channels)
    mean, std = getattr(config, "image_mean", None), getattr(config, "image_std", None)
    mean, std = default_mean if mean is None else mean, default_std if std is None else std
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def check_normalization(config, num_channels: int) -> None:
    """Config-time check of ``image_mean`` / ``image_std``: one positive value per channel when given."""
    for name in ("image_mean", "image_std"):
        value = getattr(config, name, None)
        if value is None:
            continue
        if isinstance(value, str) or len(value) != num_channels:
            raise ValueError(f"`{name}` must have one value per channel ({num_channels}), got {value!r}.")
        setattr(config, name, [float(v) for v in value])
    if config.image_std is not None and any(v <= 0 for v in config.image_std):
        raise ValueError(f"`image_std` must be positive, got {config.image_std!r}.")


def check_choice(name: str, value, allowed: Sequence) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}, got {value!r}.")


def check_vit_sizes(config) -> None:
    """Config-time checks shared by ViT-based method configs."""
    for key in ("image_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads"):
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be a positive integer, got {value!r}.")
    if config.image_size % config.patch_size:
        raise ValueError(
            f"`image_size` ({config.image_size}) must be divisible by `patch_size` ({config.patch_size})."
        )
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(
            f"`hidden_size` ({config.hidden_size}) must be divisible by `num_attention_heads` "
            f"({config.num_attention_heads})."
        )
    if not getattr(config, "layer_norm_eps", 1e-6) > 0:
        raise ValueError(f"`layer_norm_eps` must be > 0, got {config.layer_norm_eps!r}.")
    if getattr(config, "num_channels", 3) < 1:
        raise ValueError(f"`num_channels` must be >= 1, got {config.num_channels!r}.")
    if not 0.0 <= getattr(config, "drop_path_rate", 0.0) < 1.0:
        raise ValueError(f"`drop_path_rate` must be in [0, 1), got {config.drop_path_rate!r}.")


def check_bool_masked_pos(bool_masked_pos: torch.Tensor, batch_size: int, num_patches: int) -> torch.Tensor:
    """Validates a ``[B, num_patches]`` boolean mask and returns it."""
    if not isinstance(bool_masked_pos, torch.Tensor):
        raise ValueError(f"`bool_masked_pos` must be a torch.BoolTensor, got {type(bool_masked_pos).__name__}.")
    if bool_masked_pos.dtype != torch.bool:
        raise ValueError(
            f"`bool_masked_pos` must have dtype torch.bool (True = masked), got {bool_masked_pos.dtype}; "
            "convert with `.bool()` if it holds 0/1 values."
        )
    if tuple(bool_masked_pos.shape) != (batch_size, num_patches):
        raise ValueError(
            f"`bool_masked_pos` must have shape (batch_size, num_patches) = ({batch_size}, {num_patches}) for this "
            f"input, got {tuple(bool_masked_pos.shape)}."
        )
    return bool_masked_pos


class ViTBlock(ViTLayer):
    """transformers' ``ViTLayer`` (pre-norm attention + MLP, SDPA, gradient checkpointing) with stochastic depth.

    Args:
        config: A config with ViT hyper-parameters.
        drop_path_rate: Probability of dropping each residual branch during training.
    """

    def __init__(self, config, drop_path_rate: float = 0.0):
        super().__init__(config)
        self.drop_path = SwinDropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        residual = hidden_states
        hidden_states, _ = self.attention(self.layernorm_before(hidden_states), attention_mask, **kwargs)
        hidden_states = residual + self.drop_path(self.dropout(hidden_states))
        residual = hidden_states
        hidden_states = self.mlp(self.layernorm_after(hidden_states))
        return residual + self.drop_path(self.dropout(hidden_states))


class MaskedViTEncoder(nn.Module):
    """ViT encoder whose masked patch embeddings are replaced by a learnable ``[MASK]`` token.

    The token replaces patch embeddings *before* the absolute position embeddings are added (transformers'
    ``ViTEmbeddings``); ``[CLS]`` is prepended and all tokens go through the blocks and the final LayerNorm.

    Args:
        config: A config with ViT hyper-parameters and ``drop_path_rate``.
        use_mask_token: Create the ``[MASK]`` token (pretraining) or not.
    """

    #: Its outputs start with a ``[CLS]`` token (as :class:`hf_mim.backbones.BackboneEncoder` declares for its own).
    has_cls_token = True

    def __init__(self, config, use_mask_token: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = ViTEmbeddings(config, use_mask_token=use_mask_token)
        rates = torch.linspace(0, getattr(config, "drop_path_rate", 0.0), config.num_hidden_layers).tolist()
        self.layers = nn.ModuleList([ViTBlock(config, rate) for rate in rates])
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def grid_size(self, pixel_values: torch.Tensor) -> tuple[int, int]:
        patch = self.config.patch_size
        return pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """Encodes images.

        Args:
            pixel_values: ``[B, C, H, W]``; H and W multiples of the patch size, any size (position embeddings
                are interpolated when it differs from the config's ``image_size``).
            bool_masked_pos: ``[B, L]`` bool, True = replace by ``[MASK]``.
            interpolate_pos_encoding: Force interpolation on/off (default: whenever the size differs).
            output_hidden_states: Also return the input of every block and the final output (pre-norm).

        Returns:
            ``(last_hidden_state [B, 1 + L, D] after the final LayerNorm, hidden_states or None)``.
        """
        height, width = pixel_values.shape[-2:]
        patch = self.config.patch_size
        if height % patch or width % patch:
            raise ValueError(f"`pixel_values` ({height}x{width}) must be divisible by patch_size={patch}.")
        if interpolate_pos_encoding is None:
            size = self.config.image_size
            interpolate_pos_encoding = (height, width) != (size, size)
        pixel_values = pixel_values.to(self.embeddings.patch_embeddings.projection.weight.dtype)
        if bool_masked_pos is not None:
            check_bool_masked_pos(bool_masked_pos, pixel_values.shape[0], (height // patch) * (width // patch))
        hidden_states = self.embeddings(
            pixel_values, bool_masked_pos=bool_masked_pos, interpolate_pos_encoding=interpolate_pos_encoding
        )  # [B, 1 + L, D]
        all_hidden = (hidden_states,) if output_hidden_states else None
        for layer in self.layers:
            hidden_states = layer(hidden_states)
            if output_hidden_states:
                all_hidden = all_hidden + (hidden_states,)
        return self.layernorm(hidden_states), all_hidden


@contextlib.contextmanager
def kept_swin_windows(module: nn.Module):
    """Runs a forward of ``module`` and restores every Swin layer's window and shift afterwards: transformers'
    ``SwinLayer`` shrinks its window (and drops its shift) for the first input smaller than the window and keeps it
    for every later call."""
    layers = [m for m in module.modules() if hasattr(m, "set_shift_and_window_size")]
    windows = [(layer, layer.window_size, layer.shift_size) for layer in layers]
    try:
        yield
    finally:
        for layer, window, shift in windows:
            layer.window_size, layer.shift_size = window, shift


def pool_tokens(last_hidden_state: torch.Tensor, pooling: str, has_cls_token: bool = True) -> torch.Tensor:
    """``[B, T, D]`` -> ``[B, D]``: mean of the patch tokens or the ``[CLS]`` token."""
    check_choice("pooling", pooling, ("mean", "cls"))
    if pooling == "cls":
        if not has_cls_token:
            raise ValueError("`pooling='cls'` needs a [CLS] token; this encoder has none, use 'mean'.")
        return last_hidden_state[:, 0]
    patches = last_hidden_state[:, 1:] if has_cls_token else last_hidden_state
    return patches.mean(dim=1)


def fc_norm_pool(pre_norm_hidden_state: torch.Tensor, norm: nn.Module, has_cls_token: bool = True) -> torch.Tensor:
    """The papers' fine-tuning pooling: ``[B, T, D]`` tokens *before* the final LayerNorm -> mean of the patch
    tokens -> ``norm`` -> ``[B, D]`` (SlowFast's USE_MEAN_POOLING, MAE's ``global_pool`` + ``fc_norm``, SimMIM's
    ``use_mean_pooling``)."""
    patches = pre_norm_hidden_state[:, 1:] if has_cls_token else pre_norm_hidden_state
    return norm(patches.mean(dim=1))


class ClassifierMixin:
    """The linear head and loss shared by every ``*ForImageClassification`` model (mixed into a PreTrainedModel)."""

    def build_classifier(self, hidden_size: int) -> None:
        self.num_labels = self.config.num_labels
        self.classifier = nn.Linear(hidden_size, self.num_labels) if self.num_labels > 0 else nn.Identity()

    def classify(self, outputs, labels: torch.Tensor | None, return_dict: bool | None):
        """Encoder outputs (with ``pooler_output [B, D]``) -> ``ImageClassifierOutput`` with ``logits [B, C]`` and,
        given ``labels``, the loss transformers picks for ``config.problem_type`` (cross-entropy by default)."""
        logits = self.classifier(outputs.pooler_output)
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        out = ImageClassifierOutput(loss=loss, logits=logits, hidden_states=getattr(outputs, "hidden_states", None))
        return out if return_dict is not False else out.to_tuple()


# --------------------------------------------------------------------------------- another input resolution


def resize_absolute_positions(
    table: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """Learned absolute position embeddings ``[1, extra + h * w, D]`` for another patch grid: the ``extra`` leading
    tokens (``[CLS]``) kept, the grid part resized bicubically (``align_corners=False``), as MAE's
    ``interpolate_pos_embed`` and transformers' ``interpolate_pos_encoding`` do."""
    extra = table.shape[1] - old_grid[0] * old_grid[1]
    if extra < 0:
        raise ValueError(f"A position table of {table.shape[1]} tokens does not fit a {old_grid} grid.")
    grid = table[:, extra:].reshape(1, *old_grid, -1).permute(0, 3, 1, 2).float()
    grid = nn.functional.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], -1).to(table.dtype)
    return torch.cat([table[:, :extra], grid], dim=1)


def resize_relative_position_table(table: torch.Tensor, rows: int) -> torch.Tensor:
    """A relative position bias table ``[(2h - 1) * (2w - 1) + extra, heads]`` (BEiT: 3 extra rows for the
    ``[CLS]`` pairs; Swin: none) resized to ``rows`` rows: the square part bicubically over the relative offsets, as
    SimMIM's fine-tuning does for Swin (microsoft/SimMIM utils.py, load_pretrained), the extra rows kept."""

    def split(n: int) -> tuple[int, int]:
        for extra in (0, 3):
            side = math.isqrt(n - extra)
            if side * side == n - extra and side % 2 == 1:
                return side, extra
        raise ValueError(f"A relative position table of {n} rows is neither (2w-1)^2 nor (2w-1)^2 + 3.")

    old_side, extra = split(table.shape[0])
    new_side, new_extra = split(rows)
    if extra != new_extra:
        raise ValueError(f"Relative position tables of {table.shape[0]} and {rows} rows do not match.")
    square = table[: old_side * old_side].T.reshape(1, -1, old_side, old_side).float()
    square = nn.functional.interpolate(square, size=(new_side, new_side), mode="bicubic", align_corners=False)
    square = square.reshape(-1, new_side * new_side).T.to(table.dtype)
    return torch.cat([square, table[old_side * old_side :]], dim=0)


def _geometry(config) -> tuple:
    encoder = encoder_config(config)
    return encoder.image_size, encoder.patch_size, getattr(encoder, "window_size", None)


def _grid(config) -> tuple[int, int]:
    size, patch, _ = _geometry(config)
    size = (size, size) if isinstance(size, int) else tuple(size)
    return size[0] // patch, size[1] // patch


def _with_geometry(config, geometry: tuple):
    """A copy of ``config`` with the image size, patch size and window of ``geometry`` (on its nested encoder
    config where it has one)."""
    import copy

    config = copy.deepcopy(config)
    encoder = encoder_config(config)
    for key, value in zip(("image_size", "patch_size", "window_size"), geometry, strict=True):
        if value is not None:
            setattr(encoder, key, value)
    return config


class ResolutionMixin:
    """``from_pretrained`` at another input resolution: a checkpoint loads into a config with another
    ``image_size`` (grid) or Swin ``window_size`` -- ``from_pretrained(path, image_size=64)``, or a ``config=`` --
    with everything that depends on the geometry carried over: learned absolute positions resized bicubically
    (``[CLS]`` kept), relative position bias tables (BEiT's shared one, Swin's per block) resized bicubically over
    the offsets, and fixed tables (``_fixed_position_tables``, e.g. MAE's sin-cos) recomputed for the new grid.
    Papers fine-tune this way: SimMIM Swin 192 px / window 6 -> 224 px / window 7, MAE 224 -> 448."""

    #: Name suffixes of tables that are a fixed function of the grid: recomputed, never interpolated.
    _fixed_position_tables: tuple[str, ...] = ()
    _GEOMETRY_KEYS = ("image_size", "patch_size", "window_size")
    _HUB_KEYS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")
    #: Loading arguments, never config fields (a config has a ``dtype`` field too)
    _LOADER_KEYS = ("dtype", "torch_dtype", "device_map", "attn_implementation", "output_loading_info",
                    "trust_remote_code", "ignore_mismatched_sizes", "use_safetensors", "weights_only")  # fmt: skip

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        config = kwargs.get("config")
        if pretrained_model_name_or_path is None or kwargs.get("state_dict") is not None:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        if config is None and not any(key in kwargs for key in cls._GEOMETRY_KEYS):
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        hub = {key: kwargs[key] for key in cls._HUB_KEYS if key in kwargs}
        saved = cls.config_class.from_pretrained(pretrained_model_name_or_path, **hub)  # the checkpoint's geometry
        if config is None:  # geometry (and other config fields) given as keyword arguments
            base = saved.to_dict()
            nested = base.get("encoder_config")  # a nested encoder config (SimMIM) holds the geometry
            for key in [k for k in cls._GEOMETRY_KEYS if k in kwargs]:
                (nested if isinstance(nested, dict) else base)[key] = kwargs.pop(key)
            overrides = {k: kwargs.pop(k) for k in list(kwargs)
                         if k not in cls._HUB_KEYS + cls._LOADER_KEYS and hasattr(saved, k)}  # fmt: skip
            if "num_labels" in overrides:  # new classes: the saved label names go
                base.pop("id2label", None), base.pop("label2id", None)
            config = cls.config_class.from_dict({**base, **overrides})
            kwargs["config"] = config
        if _geometry(config) == _geometry(saved):
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        # load at the checkpoint's own geometry (transformers maps the names), then carry the weights over
        loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args,
                                         **{**kwargs, "config": _with_geometry(config, _geometry(saved))})  # fmt: skip
        source, info = loaded if isinstance(loaded, tuple) else (loaded, None)
        config._attn_implementation = source.config._attn_implementation  # as asked for when loading
        model = cls(config).to(device=next(source.parameters()).device, dtype=source.dtype)
        model.load_state_dict(cls.resize_state_dict(source.state_dict(), saved, model))
        model.eval()
        return (model, info) if info is not None else model

    @classmethod
    def resize_state_dict(cls, state: dict[str, torch.Tensor], saved_config, model) -> dict[str, torch.Tensor]:
        """``state`` (this class's weights at ``saved_config``'s geometry) for ``model`` (a new instance at another
        geometry, whose own values serve for the fixed tables and index buffers). A submodule that declares its own
        ``fixed_position_tables`` (a wrapped transformers encoder, :mod:`hf_mim.backbones`) decides for its keys.

        Raises:
            ValueError: A tensor whose shape changed is no position table (named).
        """
        own = {f"{name}.": module.fixed_position_tables for name, module in model.named_modules()
               if name and hasattr(module, "fixed_position_tables")}  # fmt: skip

        def fixed(key: str) -> tuple[str, ...]:
            return next(
                (tables for prefix, tables in own.items() if key.startswith(prefix)), cls._fixed_position_tables
            )

        return resize_position_tables(state, _grid(saved_config), _grid(model.config), model.state_dict(), fixed)


def resize_position_tables(
    state: dict[str, torch.Tensor],
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    expected: dict[str, torch.Tensor],
    fixed: Callable[[str], tuple[str, ...]] | tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """The one rule for weights at another patch grid: ``state`` (at ``old_grid``) for a model whose own state dict
    is ``expected`` (at ``new_grid``). Learned absolute positions are resized bicubically ([CLS] and other leading
    tokens kept, :func:`resize_absolute_positions`), relative position bias tables bicubically over the offsets
    (:func:`resize_relative_position_table`); tables that are a fixed function of the grid (names ending with one of
    ``fixed``, or ``fixed(key)``) and relative position indices take the new model's values.

    Raises:
        ValueError: A tensor whose shape changed is no position table (named).
    """
    out = {}
    for key, value in state.items():
        tables = fixed(key) if callable(fixed) else fixed
        if key not in expected or expected[key].shape == value.shape:
            out[key] = value
        elif key.endswith((*tables, "relative_position_index")):
            out[key] = expected[key].clone()  # a fixed function of the grid or window: the new model's
        elif key.endswith("position_embeddings") and value.ndim == 3:
            out[key] = resize_absolute_positions(value, old_grid, new_grid)
        elif key.endswith("relative_position_bias_table"):
            out[key] = resize_relative_position_table(value, expected[key].shape[0])
        else:
            raise ValueError(f"{key} has shape {tuple(value.shape)} in the checkpoint and "
                             f"{tuple(expected[key].shape)} at the new resolution, and is no position table "
                             "that can be resized.")  # fmt: skip
    return out
