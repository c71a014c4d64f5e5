"""Fine-tuning with a paper recipe through ``Trainer``: the recipe's optimizer (layer-wise LR decay, the official
weight-decay exemptions), its warm-up / cosine schedule, the classifier set-up (drop path, mean + fc_norm, scaled
head initialisation) and, while training, the batched augmentation with a soft-target loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import Trainer

from ..modeling_utils import encoder_config
from .augmentation import FinetuneAugmentation, soft_target_cross_entropy
from .optimization import NO_DECAY_KEYWORDS, build_lr_scheduler, layer_decay_param_groups

__all__ = ["RecipeTrainer", "finetuning_config", "init_classifier"]


def finetuning_config(
    config,
    drop_path_rate: float | None = None,
    use_fc_norm: bool | None = None,
    image_size: int | None = None,
    window_size: int | None = None,
):
    """``config`` (a pretraining or classification config) switched to the fine-tuning architecture, in place:
    stochastic depth (SimMIM: in its ``encoder_config``), the mean + fc_norm head, and another resolution or Swin
    window (``from_pretrained`` then interpolates positions and relative tables). Returns it.

    Raises:
        ValueError: ``image_size`` not a multiple of the patch size, ``window_size`` for an encoder without windows.
    """
    encoder = encoder_config(config)
    if image_size is not None:
        if image_size % encoder.patch_size:
            raise ValueError(f"--image_size must be a multiple of the patch size {encoder.patch_size}, got "
                             f"{image_size}.")  # fmt: skip
        encoder.image_size = int(image_size)
    if window_size is not None:
        if not hasattr(encoder, "window_size"):
            raise ValueError(f"--window_size is for Swin encoders; this {config.model_type} encoder has no windows.")
        encoder.window_size = int(window_size)
    if drop_path_rate is not None:
        encoder.drop_path_rate = drop_path_rate
    if use_fc_norm is not None and getattr(config, "backbone", None) != "swin":
        config.use_fc_norm = bool(use_fc_norm)
        if getattr(config, "backbone", None) == "beit":  # BEiT's own switch is the same head
            config.encoder_config.use_mean_pooling = bool(use_fc_norm)
    return config


def _final_norm(model: nn.Module) -> nn.Module | None:
    """The LayerNorm the fc_norm head applies (BEiT: its pooler's)."""
    base = getattr(model, model.base_model_prefix)
    pooler = getattr(base.encoder, "pooler", None)
    if pooler is not None and getattr(pooler, "layernorm", None) is not None:
        return pooler.layernorm
    return getattr(base.encoder, "layernorm", None)


@torch.no_grad()
def init_classifier(model: nn.Module, head_init: Sequence | None = None, fc_norm_init: str | None = None) -> None:
    """The recipes' classifier initialisation, after ``from_pretrained``: ``("scale", s)`` multiplies the new head's
    weight and bias by ``s`` (SlowFast HEAD_INIT_SCALE, SimMIM init_scale), ``("std", s)`` redraws its weight from a
    truncated normal of std ``s`` (MAE / HPM); ``fc_norm_init="fresh"`` starts the fc_norm LayerNorm at identity
    (MAE's new ``fc_norm``), ``"pretrained"`` keeps the pretrained final norm (SlowFast)."""
    head = model.classifier
    if head_init is not None and isinstance(head, nn.Linear):
        kind, value = head_init
        if kind == "scale":
            head.weight.mul_(value)
            head.bias.mul_(value)
        elif kind == "std":
            nn.init.trunc_normal_(head.weight, std=value, a=-2 * value, b=2 * value)
        else:
            raise ValueError(f"`head_init` must be ('scale', s) or ('std', s), got {head_init!r}.")
    if fc_norm_init not in (None, "fresh", "pretrained"):
        raise ValueError(f"`fc_norm_init` must be one of ['fresh', 'pretrained'], got {fc_norm_init!r}.")
    norm = _final_norm(model)
    if fc_norm_init == "fresh" and norm is not None and getattr(model.config, "use_fc_norm", False):
        nn.init.ones_(norm.weight)
        nn.init.zeros_(norm.bias)


class RecipeTrainer(Trainer):
    """``Trainer`` with a paper recipe's optimisation and augmentation.

    Args:
        schedule: ``warmup_epochs``, ``epochs`` (the recipe's, for the warm-up share), ``warmup_start_lr`` and
            ``min_lr`` (absolute), ``type`` (``cosine`` / ``multistep`` / ``constant``).
        layer_decay: Layer-wise LR decay (1.0: none).
        no_decay_keywords: Parameter-name keywords without weight decay (besides 1-D parameters and biases).
        augmentation: Applied to training batches only (evaluation sees the plain images).
        label_smoothing: Applied once, in the soft-target cross-entropy (``args.label_smoothing_factor`` is the same
            value, kept for the record; ``Trainer``'s own smoother is not used).
    """

    def __init__(
        self,
        *args: Any,
        schedule: dict[str, Any],
        layer_decay: float = 1.0,
        no_decay_keywords: Sequence[str] = NO_DECAY_KEYWORDS,
        augmentation: FinetuneAugmentation | None = None,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.schedule, self.layer_decay, self.no_decay_keywords = schedule, layer_decay, tuple(no_decay_keywords)
        self.augmentation, self.label_smoothing = augmentation, label_smoothing
        # our loss is a batch mean: let Trainer divide it over gradient-accumulation steps
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = self.model if model is None else model
            args = self.args
            groups = layer_decay_param_groups(
                model, args.learning_rate, args.weight_decay, self.layer_decay, self.no_decay_keywords
            )
            self.optimizer = torch.optim.AdamW(
                groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon
            )
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            schedule, peak = self.schedule, self.args.learning_rate
            share = schedule["warmup_epochs"] / max(schedule["epochs"], 1e-12)
            self.lr_scheduler = build_lr_scheduler(
                optimizer or self.optimizer, num_training_steps, min(num_training_steps, round(share * num_training_steps)),
                warmup_start_factor=min(1.0, schedule["warmup_start_lr"] / peak),
                min_lr_factor=min(1.0, schedule["min_lr"] / peak), schedule=schedule.get("type", "cosine"),
            )  # fmt: skip
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        pixel_values = inputs["pixel_values"]
        targets = labels
        if model.training and self.augmentation is not None:
            self.augmentation.to(pixel_values.device)  # a no-op after the first batch
            pixel_values, targets = self.augmentation(pixel_values, labels)
        outputs = model(pixel_values=pixel_values)
        smoothing = self.label_smoothing if model.training else 0.0
        loss = soft_target_cross_entropy(outputs.logits, targets, smoothing)
        return (loss, outputs) if return_outputs else loss
