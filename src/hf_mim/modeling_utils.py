"""Building blocks shared by the methods: a ViT with a mask token built from transformers' own ViT modules,
input checks, and classification pooling.

Parameter names follow transformers' ``ViTModel`` (``embeddings``, ``layers.N.attention.q_proj``, ...), so an
encoder exports to a plain ``ViTModel`` by renaming a prefix only.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def normalization(config, num_channels: int | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel ``(mean, std)`` the model's inputs are normalised with: the config's ``image_mean`` /
    ``image_std`` (recorded from the image processor), else ImageNet's for 3 channels and 0.5 / 0.5 otherwise."""
    from transformers.image_utils import (
        IMAGENET_DEFAULT_MEAN,
        IMAGENET_DEFAULT_STD,
        IMAGENET_STANDARD_MEAN,
        IMAGENET_STANDARD_STD,
    )

    channels = num_channels or getattr(config, "num_channels", None) or 3
    mean, std = getattr(config, "image_mean", None), getattr(config, "image_std", None)
    if mean is None:
        mean = IMAGENET_DEFAULT_MEAN if channels == 3 else IMAGENET_STANDARD_MEAN[:1] * channels
    if std is None:
        std = IMAGENET_DEFAULT_STD if channels == 3 else IMAGENET_STANDARD_STD[:1] * channels
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
