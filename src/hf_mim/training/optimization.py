"""Optimizer and learning-rate schedule pieces of the recipes: AdamW parameter groups with each official code's
weight-decay exemptions, layer-wise LR decay, the linear LR scaling rule, and warm-up + cosine / multistep schedules
built from torch's and transformers' schedulers."""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LinearLR, LRScheduler, MultiStepLR, SequentialLR
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from ..modeling_utils import check_choice
from ..registry import get_model_spec

__all__ = [
    "NO_DECAY_KEYWORDS",
    "SCHEDULES",
    "build_lr_scheduler",
    "layer_decay_param_groups",
    "layer_ids",
    "no_weight_decay_names",
    "param_groups",
    "scaled_learning_rate",
]

#: The demo's exemptions from weight decay, beyond 1-D parameters (norms, biases, layer scales): position
#: embeddings and the special tokens. The paper recipes name their own (:mod:`hf_mim.training.recipes`).
NO_DECAY_KEYWORDS = ("position_embeddings", "pos_embed", "cls_token", "mask_token", "relative_position_bias_table")

SCHEDULES = ("cosine", "multistep", "constant")


def _exempt(name: str, param, keywords: Sequence[str]) -> bool:
    # what every official optimizer builder does: 1-D tensors and biases, then the model's own skip list
    return param.ndim <= 1 or name.endswith(".bias") or any(key in name for key in keywords)


def no_weight_decay_names(model: nn.Module, keywords: Sequence[str] = NO_DECAY_KEYWORDS) -> list[str]:
    """Names of the trainable parameters :func:`param_groups` exempts from weight decay."""
    return [n for n, p in model.named_parameters() if p.requires_grad and _exempt(n, p, keywords)]


def param_groups(
    model: nn.Module, weight_decay: float, no_decay_keywords: Sequence[str] = NO_DECAY_KEYWORDS
) -> list[dict]:
    """AdamW groups: weight decay on every trainable parameter except 1-D ones, biases and names containing one of
    ``no_decay_keywords``."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if _exempt(name, param, no_decay_keywords) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def scaled_learning_rate(base_learning_rate: float, total_batch_size: int, method: str) -> float:
    """The papers' linear scaling rule: ``base_lr * total_batch / 256`` (``/ 512`` for SimMIM)."""
    return base_learning_rate * total_batch_size / get_model_spec(method).lr_scale_batch


# "encoder.layers.3." (ViT block 3), "encoder.layers.1.blocks.2." (Swin stage 1, block 2), and the blocks of a
# wrapped transformers encoder: "encoder.model.layers.3." (ViT, DeiT), "encoder.model.encoder.layer.3." (DINOv2)
_BLOCK = re.compile(r"encoder\.(?:model\.(?:encoder\.)?)?layers?\.(\d+)\.(?:blocks\.(\d+)\.)?")
_EMBEDDING_KEYS = ("embeddings", "cls_token", "mask_token", "position_embeddings")


def layer_ids(names: list[str]) -> tuple[dict[str, int], int]:
    """Maps parameter names to depth: 0 for embeddings and tokens, ``1..L`` for the encoder blocks in order (Swin
    blocks counted across stages, a stage's patch merging with its last block), ``L + 1`` for the rest (final norm,
    head). Returns the mapping and ``L``."""

    def block(name: str) -> tuple[int, int] | None:
        match = _BLOCK.search(name)
        return None if match is None else (int(match.group(1)), int(match.group(2) or 0))

    blocks = sorted({b for n in names if ".downsample." not in n and (b := block(n)) is not None})
    depth = {b: i + 1 for i, b in enumerate(blocks)}
    last_of_stage = {stage: depth[(stage, blk)] for stage, blk in blocks}
    ids = {}
    for name in names:
        if any(key in name for key in _EMBEDDING_KEYS):
            ids[name] = 0
        elif (b := block(name)) is not None:
            ids[name] = last_of_stage[b[0]] if ".downsample." in name else depth[b]
        else:
            ids[name] = len(blocks) + 1
    return ids, len(blocks)


def layer_decay_param_groups(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    layer_decay: float,
    no_decay_keywords: Sequence[str] = NO_DECAY_KEYWORDS,
) -> list[dict]:
    """BEiT / MAE fine-tuning groups: depth ``d`` (see :func:`layer_ids`) trains at
    ``learning_rate * layer_decay ** (L + 1 - d)``, with the weight-decay exemptions of :func:`param_groups`."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    ids, num_layers = layer_ids([n for n, _ in named])
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in named:
        no_decay = _exempt(name, param, no_decay_keywords)
        scale = layer_decay ** (num_layers + 1 - ids[name])
        group = groups.setdefault(
            (ids[name], no_decay),
            {"params": [], "weight_decay": 0.0 if no_decay else weight_decay, "lr": learning_rate * scale},
        )
        group["params"].append(param)
    return list(groups.values())


def build_lr_scheduler(
    optimizer: Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    warmup_start_factor: float = 0.0,
    min_lr_factor: float = 0.0,
    schedule: str = "cosine",
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> LRScheduler:
    """Linear warm-up from ``warmup_start_factor * lr`` to each group's ``lr`` over ``warmup_steps``, then cosine
    decay to ``min_lr_factor * lr`` at ``total_steps`` (SlowFast's COSINE_AFTER_WARMUP, MAE's ``lr_sched``),
    multistep decay (``gamma`` at each step of ``milestones``, counted from the start of training; SimMIM's
    MultiStepLRScheduler) or a constant rate. Factors are relative to each group's own ``lr``, so layer-wise decay
    scales the warm-up start and the floor too, as MAE / SlowFast do.

    Built from torch's ``LinearLR`` / ``MultiStepLR`` / ``SequentialLR`` and transformers'
    ``get_cosine_with_min_lr_schedule_with_warmup``; step it once per optimizer step.
    """
    check_choice("schedule", schedule, SCHEDULES)
    if not 0 <= warmup_steps <= total_steps or total_steps < 1:
        raise ValueError(f"Need 0 <= warmup_steps <= total_steps and total_steps >= 1, got {warmup_steps} and "
                         f"{total_steps}.")  # fmt: skip
    if not 0.0 <= warmup_start_factor <= 1.0 or not 0.0 <= min_lr_factor <= 1.0:
        raise ValueError(f"`warmup_start_factor` and `min_lr_factor` must be in [0, 1], got {warmup_start_factor} "
                         f"and {min_lr_factor}.")  # fmt: skip
    if schedule == "cosine" and warmup_start_factor == 0.0:  # MAE: warm-up from zero, transformers' form exactly
        return get_cosine_with_min_lr_schedule_with_warmup(
            optimizer, warmup_steps, total_steps, min_lr_rate=min_lr_factor
        )
    main_steps = total_steps - warmup_steps
    if schedule == "cosine":
        main = get_cosine_with_min_lr_schedule_with_warmup(optimizer, 0, main_steps, min_lr_rate=min_lr_factor)
    elif schedule == "multistep":
        main = MultiStepLR(optimizer, [max(0, m - warmup_steps) for m in milestones], gamma=gamma)
    else:
        main = MultiStepLR(optimizer, [], gamma=1.0)
    if warmup_steps == 0:
        return main
    # torch's LinearLR needs a start factor > 0; 1e-8 of the peak is zero for any practical purpose
    warmup = LinearLR(optimizer, start_factor=max(warmup_start_factor, 1e-8), end_factor=1.0, total_iters=warmup_steps)
    return SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps])
