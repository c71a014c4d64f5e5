"""The papers' training recipes: one named recipe per official configuration, every value with the official file and
line it comes from. The data live with their method (``models/<method>/recipes_<method>.py``, listed in its registry
entry); this module serves them and holds the rules common to all (learning-rate scaling, deviations).

    >>> from hf_mim.training.recipes import get_recipe
    >>> recipe = get_recipe("simmim-vit-b-800ep")
    >>> recipe["schedule"], recipe.source("schedule")
    ('multistep', 'microsoft/SimMIM configs/vit_base__800ep/simmim_pretrain__vit_base__img224__800ep.yaml:24')

``hf-mim pretrain --recipe NAME`` and ``hf-mim finetune --recipe NAME`` apply one (explicit flags still win;
``--dry_run`` prints what results). Learning rates are stored as the official *base* values together with the batch
they refer to (``lr_batch_divisor``): the absolute rate is ``base_learning_rate * total_batch / lr_batch_divisor``,
and so are the warm-up start and the floor where ``scale_lr_bounds`` says the official code scales them too.

Sources are files of facebookresearch/SlowFast, microsoft/SimMIM and Haochen-Wang409/HPM (their default branches);
"timm" refers to the timm version those repositories pin (0.3.2 / 0.4.12), whose defaults they inherit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Recipe", "RECIPES", "get_recipe", "list_recipes", "main_recipe", "absolute_learning_rates", "DEVIATIONS"]


@dataclass(frozen=True)
class Recipe:
    """A named recipe: ``values[key] = (value, source)``.

    Args:
        name: The recipe's name (``<method>-<arch>-<epochs>`` or ``<method>-<arch>-ft``).
        method: ``maskfeat``, ``simmim`` or ``hpm``.
        stage: ``pretrain`` or ``finetune``.
        values: Each hyper-parameter with the official ``file:line`` it comes from.
        notes: What the recipe does differently from the official code, and why.
    """

    name: str
    method: str
    stage: str
    values: dict[str, tuple[Any, str]]
    notes: tuple[str, ...] = field(default=())

    def __getitem__(self, key: str) -> Any:
        return self.values[key][0]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values[key][0] if key in self.values else default

    def source(self, key: str) -> str:
        return self.values[key][1]

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, (value, _) in self.values.items()}

    def sources(self) -> dict[str, str]:
        return {key: source for key, (_, source) in self.values.items()}


def _collect() -> dict[str, Recipe]:
    """Every method's recipes, from its registry entry (``models/<method>/recipes_<method>.py``)."""
    from ..registry import get_model_spec, list_models

    recipes = {}
    for method in list_models():
        for name, (stage, values) in get_model_spec(method).recipes.items():
            recipes[name] = Recipe(name, method, stage, values)
    return recipes


RECIPES: dict[str, Recipe] = _collect()

#: What hf_mim does differently from the official code, on purpose (the README's recipe table lists them).
DEVIATIONS = {
    "augmentation library": "kornia's RandAugment (batched, on the training device) with timm's 15 operations and "
    "magnitude 9/10 of the range; kornia applies one draw of operations to a group of images and has no magnitude "
    "noise (mstd0.5), and its enhance operations move one way (timm's 'inc1' picks the direction at random).",
    "random erasing": "kornia's RandomErasing fills with 0 in normalised space (the mean colour); timm's 'pixel' "
    "mode fills with per-pixel normal noise.",
    "simmim cosine": "SimMIM's cosine (timm's CosineLRScheduler) runs over all steps and starts below the peak "
    "after warm-up; hf_mim's cosine starts at the peak after warm-up (SlowFast and MAE/HPM's form). Same start, "
    "peak and end; at most 2.5% apart right after warm-up.",
    "simmim vit relative bias": "SimMIM's fine-tuning copies the shared relative position table into every block; "
    "hf_mim keeps the pretrained checkpoint's layout (shared) -- the same function at the start of fine-tuning.",
    "mask counts": "block-wise and random masks mask exactly the configured number of patches per image (the "
    "official generators may mask slightly fewer), so every image of a batch weighs the same in the loss.",
    "precision": "fp32 on CPU (the official runs use fp16/AMP on GPUs); --mixed_precision bf16 on GPUs.",
    "max_steps": "--max_steps or --num_train_epochs shorten a recipe proportionally: warm-up and milestones keep "
    "their share of training (unless given explicitly).",
}


def list_recipes(stage: str | None = None, method: str | None = None) -> list[str]:
    """Recipe names, optionally only those of one ``stage`` (``pretrain`` / ``finetune``) and ``method``."""
    return [
        name
        for name, recipe in RECIPES.items()
        if (stage is None or recipe.stage == stage) and (method is None or recipe.method == method)
    ]


def get_recipe(name: str, stage: str | None = None, method: str | None = None) -> Recipe:
    """The recipe ``name``; ``stage`` / ``method`` check that it is the kind the caller can run."""
    if name not in RECIPES:
        raise ValueError(f"`recipe` must be one of {list_recipes(stage, method)}, got {name!r}.")
    recipe = RECIPES[name]
    if (stage and recipe.stage != stage) or (method and recipe.method != method):
        raise ValueError(
            f"`recipe` {name!r} is a {recipe.method} {recipe.stage} recipe; this needs one of "
            f"{list_recipes(stage, method)}."
        )
    return recipe


def main_recipe(method: str, stage: str, backbone: str | None = None) -> Recipe:
    """The recipe a named model gets without ``--recipe``: the released checkpoint's, as the method's registry entry
    names it (per backbone where the method has several)."""
    from ..registry import get_model_spec

    return RECIPES[get_model_spec(method).main_recipe(stage, backbone)]


def absolute_learning_rates(
    values: dict[str, Any], total_batch_size: int, base_learning_rate: float | None = None
) -> dict[str, float]:
    """Peak, warm-up start and floor learning rates for ``total_batch_size`` from resolved recipe ``values``: the
    papers' linear scaling rule, ``base_learning_rate * total_batch / lr_batch_divisor`` for the peak, and the same
    factor on the warm-up start and the floor where the official code scales them too (``scale_lr_bounds``:
    SimMIM, SlowFast). ``base_learning_rate`` replaces the recipe's base (an explicit flag)."""
    scale = total_batch_size / values["lr_batch_divisor"]
    bound_scale = scale if values.get("scale_lr_bounds") else 1.0
    base = values["base_learning_rate"] if base_learning_rate is None else base_learning_rate
    return {
        "learning_rate": base * scale,
        "warmup_start_lr": values["warmup_start_lr"] * bound_scale,
        "min_lr": values["min_lr"] * bound_scale,
    }
