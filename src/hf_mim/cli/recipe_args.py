"""How ``hf-mim pretrain`` turns ``--recipe`` (or a preset's main recipe, or the CPU demo's defaults) and the
explicit flags into the hyper-parameters of a run, and what ``--dry_run`` prints."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from .. import recipes
from ..optimization import LR_SCALE_BATCH, NO_DECAY_KEYWORDS, no_weight_decay_names

#: The CPU demo's own recipe (the main job: minutes on 2 cores, a batch far below the papers', so a fixed LR).
DEMO_DEFAULTS: dict[str, Any] = {
    "per_device_train_batch_size": 32, "num_train_epochs": 10.0, "max_steps": 400, "weight_decay": 0.05,
    "adam_beta1": 0.9, "adam_beta2": 0.95, "adam_epsilon": 1e-8, "lr_scheduler_type": "cosine",
    "warmup_epochs": None, "warmup_ratio": 0.05, "lr_milestones": [], "lr_gamma": 0.1, "max_grad_norm": 3.0,
}  # fmt: skip
DEMO_LEARNING_RATE = 1e-3  # the demo's small batch would scale the papers' rates down to nothing
DEMO_PRESETS = {"maskfeat": "demo", "simmim": "vit-demo", "hpm": "demo"}

#: Recipe keys that are config fields of a new model (--config_overrides still win).
RECIPE_CONFIG_KEYS = ("mask_ratio", "mask_patch_size", "norm_pix_loss")


def _recipe_as_args(recipe: recipes.Recipe, processes: int) -> dict[str, Any]:
    """A pretraining recipe in ``hf-mim pretrain``'s argument names."""
    beta1, beta2 = recipe["betas"]
    return {
        "per_device_train_batch_size": max(1, recipe["batch_size"] // processes),
        "num_train_epochs": float(recipe["epochs"]), "max_steps": 0, "weight_decay": recipe["weight_decay"],
        "adam_beta1": beta1, "adam_beta2": beta2, "adam_epsilon": recipe["eps"],
        "lr_scheduler_type": recipe["schedule"], "warmup_epochs": float(recipe["warmup_epochs"]),
        "warmup_ratio": None, "lr_milestones": [float(m) for m in recipe.get("milestones", ())],
        "lr_gamma": recipe.get("gamma", 0.1), "max_grad_norm": recipe["max_grad_norm"],
    }  # fmt: skip


def _simmim_backbone(args: argparse.Namespace) -> str | None:
    if args.preset:
        from ..models.simmim.configuration_simmim import SIMMIM_PRESETS

        return SIMMIM_PRESETS.get(args.preset, {}).get("backbone")
    path = args.config_file or (args.model_name_or_path and Path(args.model_name_or_path, "config.json"))
    if path and Path(path).is_file():
        return json.loads(Path(path).read_text()).get("backbone")
    return None


def resolve_recipe_args(args: argparse.Namespace) -> None:
    """Fills every optimisation argument left unset, in place: from ``--recipe``; else, when a model other than
    the demo is named (``--preset`` / ``--config_file`` / ``--model_name_or_path``), from the method's main recipe;
    else from the CPU demo's defaults. Sets ``args.recipe`` (None for the demo) and ``args.method``."""
    recipe = None
    if args.recipe:
        recipe = recipes.get_recipe(args.recipe, stage="pretrain")
        if args.method and args.method != recipe.method:
            raise ValueError(f"--recipe {args.recipe} is a {recipe.method} recipe, but --method is {args.method!r}.")
        args.method = recipe.method
        if not (args.preset or args.config_file or args.model_name_or_path):
            args.preset = recipe["preset"]
    args.method = args.method or "maskfeat"
    named_model = args.config_file or args.model_name_or_path or args.preset
    if recipe is None and named_model and args.preset not in DEMO_PRESETS.values():
        backbone = _simmim_backbone(args) if args.method == "simmim" else None
        recipe = recipes.main_recipe(args.method, "pretrain", backbone)
        args.recipe = recipe.name
    processes = int(os.environ.get("WORLD_SIZE", "1")) * (args.gradient_accumulation_steps or 1)
    defaults = DEMO_DEFAULTS if recipe is None else _recipe_as_args(recipe, processes)
    explicit_ratio = args.warmup_ratio is not None and args.warmup_epochs is None
    if recipe is not None and args.num_train_epochs is not None:
        # a recipe run to another length keeps the shape of its schedule (explicit values still win)
        share = args.num_train_epochs / recipe["epochs"]
        if args.warmup_epochs is None:
            args.warmup_epochs = recipe["warmup_epochs"] * share
        if args.lr_milestones is None:
            args.lr_milestones = [m * share for m in recipe.get("milestones", ())]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if explicit_ratio:  # an explicit --warmup_ratio replaces the recipe's warm-up epochs
        args.warmup_epochs = None
    if args.warmup_epochs is None and args.warmup_ratio is None:
        args.warmup_ratio = 0.0


def recipe_of(args: argparse.Namespace) -> recipes.Recipe | None:
    return recipes.get_recipe(args.recipe) if args.recipe else None


def learning_rates(args: argparse.Namespace, total_batch_size: int) -> dict[str, float]:
    """Absolute peak, warm-up start and floor LRs: explicit flags, else the recipe's base values scaled to
    ``total_batch_size``, else the demo's."""
    recipe = recipe_of(args)
    if recipe is not None:
        values = recipes.absolute_learning_rates(recipe.as_dict(), total_batch_size)
        divisor = recipe["lr_batch_divisor"]
    else:
        values = {"learning_rate": DEMO_LEARNING_RATE, "warmup_start_lr": 0.0, "min_lr": 0.0}
        divisor = LR_SCALE_BATCH.get(args.method, 256)
    if args.base_learning_rate is not None:
        values["learning_rate"] = args.base_learning_rate * total_batch_size / divisor
    if args.learning_rate is not None:
        values["learning_rate"] = args.learning_rate
    if args.warmup_lr is not None:
        values["warmup_start_lr"] = args.warmup_lr
    if args.min_lr is not None:
        values["min_lr"] = args.min_lr
    return values


def schedule_steps(args: argparse.Namespace, max_steps: int) -> tuple[int, list[int]]:
    """Warm-up steps and milestone steps for a run of ``max_steps``: epochs-based values keep their share of the
    recipe's epochs, so ``--max_steps`` shortens a recipe without changing its shape."""
    epochs = args.num_train_epochs or 1.0
    if args.warmup_epochs is not None:
        warmup = round(args.warmup_epochs / epochs * max_steps)
    else:
        warmup = int(args.warmup_ratio * max_steps)
    milestones = [round(m / epochs * max_steps) for m in args.lr_milestones or ()]
    return min(warmup, max_steps), milestones


def no_decay_keywords(args: argparse.Namespace) -> tuple[str, ...]:
    recipe = recipe_of(args)
    return tuple(recipe["no_weight_decay"]) if recipe is not None else NO_DECAY_KEYWORDS


def dry_run_report(args: argparse.Namespace, model, processor, num_processes: int = 1) -> dict[str, Any]:
    """Everything a run would use, resolved: optimizer (with the parameter names that get no weight decay), LR
    schedule, clipping, length, augmentation and masking, plus the recipe's official sources."""
    recipe = recipe_of(args)
    total_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * num_processes
    lrs = learning_rates(args, total_batch)
    keywords = no_decay_keywords(args)
    names = no_weight_decay_names(model, keywords)
    special = [n for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1 and any(
        k in n for k in ("token", "position", "relative_position", "pos_embed"))]  # fmt: skip
    processor_settings = processor.to_dict()
    config = model.config
    masking = {k: v for k, v in processor_settings.items() if k.startswith("mask")}
    masking.update({k: getattr(config, k) for k in RECIPE_CONFIG_KEYS if hasattr(config, k)})
    return {
        "recipe": args.recipe or "demo",
        "method": args.method,
        "model": {
            "class": type(model).__name__,
            "preset": args.preset,
            "config_file": args.config_file,
            "model_name_or_path": args.model_name_or_path,
            "parameters": sum(p.numel() for p in model.parameters()),
        },  # fmt: skip
        "batch": {
            "total": total_batch,
            "per_device": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "processes": num_processes,
        },  # fmt: skip
        "optimizer": {
            "name": "AdamW",
            "peak_learning_rate": lrs["learning_rate"],
            "betas": [args.adam_beta1, args.adam_beta2],
            "eps": args.adam_epsilon,
            "weight_decay": args.weight_decay,
            "no_weight_decay": {
                "rule": "1-D parameters, biases, and names containing any of the keywords",
                "keywords": list(keywords),
                "parameters": names,
                "special_parameters_exempt": [n for n in special if n in names],
                "special_parameters_decayed": [n for n in special if n not in names],
            },
        },  # fmt: skip
        "schedule": {
            "type": args.lr_scheduler_type,
            "epochs": args.num_train_epochs,
            "max_steps": args.max_steps or None,
            "warmup_epochs": args.warmup_epochs,
            "warmup_ratio": args.warmup_ratio if args.warmup_epochs is None else None,
            "warmup_start_lr": lrs["warmup_start_lr"],
            "peak_lr": lrs["learning_rate"],
            "min_lr": lrs["min_lr"] if args.lr_scheduler_type == "cosine" else None,
            "milestones_epochs": list(args.lr_milestones or []) if args.lr_scheduler_type == "multistep" else None,
            "gamma": args.lr_gamma if args.lr_scheduler_type == "multistep" else None,
        },  # fmt: skip
        "max_grad_norm": args.max_grad_norm,
        "augmentation": {
            "random_resized_crop": {
                "size": processor_settings["image_size"],
                "scale": processor_settings["crop_scale"],
                "ratio": processor_settings["crop_ratio"],
                "resample": processor_settings["resample"],
            },
            "horizontal_flip_prob": processor_settings["flip_prob"],
            "normalize": {"mean": processor_settings["image_mean"], "std": processor_settings["image_std"]},
        },  # fmt: skip
        "masking": masking,
        "mixed_precision": args.mixed_precision,
        "sources": recipe.sources() if recipe is not None else {},
        "deviations": recipes.DEVIATIONS if recipe is not None else {},
    }


# ------------------------------------------------------------------------------------------------ fine-tuning

#: FinetuneArguments fields a fine-tuning recipe fills (recipe key -> field), and their values without a recipe.
FINETUNE_FIELDS = {
    "layer_decay": ("layer_decay", 1.0), "drop_path_rate": ("drop_path_rate", None),
    "use_fc_norm": ("use_fc_norm", None), "rand_augment": ("rand_augment", None),
    "random_erasing_prob": ("random_erasing_prob", 0.0), "mixup_alpha": ("mixup_alpha", 0.0),
    "cutmix_alpha": ("cutmix_alpha", 0.0), "mixup_prob": ("mixup_prob", 1.0),
    "mixup_switch_prob": ("mixup_switch_prob", 0.5), "warmup_epochs": ("warmup_epochs", None),
}  # fmt: skip
#: TrainingArguments fields a fine-tuning recipe fills (recipe key -> field).
TRAINER_FIELDS = {"epochs": "num_train_epochs", "weight_decay": "weight_decay", "eps": "adam_epsilon",
                  "max_grad_norm": "max_grad_norm", "label_smoothing": "label_smoothing_factor"}  # fmt: skip
AUGMENTATION_FIELDS = ("rand_augment", "random_erasing_prob", "mixup_alpha", "cutmix_alpha")


def explicit_flags(argv: list[str] | None) -> set[str]:
    """The ``--names`` given on the command line (explicit values win over a recipe's)."""
    import sys

    tokens = sys.argv[1:] if argv is None else argv
    return {t[2:].split("=", 1)[0] for t in tokens if t.startswith("--")}


def resolve_finetune_recipe(args, train_args, method: str, backbone: str | None, explicit: set[str]):
    """Applies ``args.recipe`` (a name, or ``auto``: the method's fine-tuning recipe) to the fine-tuning and
    Trainer arguments, in place, leaving explicit flags alone. Returns the recipe, or None (``Trainer``'s defaults:
    no augmentation, layer decay off)."""
    recipe = None
    if args.recipe == "auto":
        recipe = recipes.main_recipe(method, "finetune", backbone)
        args.recipe = recipe.name
    elif args.recipe:
        recipe = recipes.get_recipe(args.recipe, stage="finetune")
        if recipe.method != method:
            raise ValueError(f"--recipe {args.recipe} is a {recipe.method} recipe, but {args.model_name_or_path} is "
                             f"a {method!r} checkpoint; use one of {recipes.list_recipes('finetune', method)}.")  # fmt: skip
    if recipe is None:
        given = [f"--{name}" for name in AUGMENTATION_FIELDS + ("warmup_epochs", "base_learning_rate")
                 if getattr(args, name) not in (None, 0.0)]  # fmt: skip
        if given:
            raise ValueError(f"{', '.join(given)} need a recipe: pass --recipe auto (or a name from "
                             f"{recipes.list_recipes('finetune', method)}) and override what you want to change.")  # fmt: skip
        for name, (_, default) in FINETUNE_FIELDS.items():
            if getattr(args, name) is None:
                setattr(args, name, default)
        return None
    values = recipe.as_dict()
    for name, (key, _) in FINETUNE_FIELDS.items():
        if getattr(args, name) is None:
            setattr(args, name, values.get(key))
    for key, name in TRAINER_FIELDS.items():
        if name not in explicit:
            setattr(train_args, name, values[key])
    if "adam_beta1" not in explicit:
        train_args.adam_beta1 = values["betas"][0]
    if "adam_beta2" not in explicit:
        train_args.adam_beta2 = values["betas"][1]
    processes = max(1, train_args.world_size) * train_args.gradient_accumulation_steps
    if "per_device_train_batch_size" not in explicit:
        train_args.per_device_train_batch_size = max(1, values["batch_size"] // processes)
    total = train_args.per_device_train_batch_size * processes
    lrs = recipes.absolute_learning_rates(values, total)
    if "learning_rate" not in explicit:
        base = args.base_learning_rate if args.base_learning_rate is not None else values["base_learning_rate"]
        train_args.learning_rate = base * total / values["lr_batch_divisor"]
    args.warmup_lr = lrs["warmup_start_lr"] if args.warmup_lr is None else args.warmup_lr
    args.min_lr = lrs["min_lr"] if args.min_lr is None else args.min_lr
    return recipe


def finetune_schedule(args, train_args, recipe) -> dict:
    """The LR schedule :class:`~hf_mim.finetuning.RecipeTrainer` builds (warm-up as a share of the epochs)."""
    return {
        "type": recipe["schedule"], "epochs": train_args.num_train_epochs, "warmup_epochs": args.warmup_epochs,
        "warmup_start_lr": args.warmup_lr, "peak_lr": train_args.learning_rate, "min_lr": args.min_lr,
    }  # fmt: skip


def finetune_dry_run_report(args, train_args, recipe, model, augmentation) -> dict[str, Any]:
    """What ``hf-mim finetune --recipe ... --dry_run`` prints."""
    keywords = tuple(recipe["no_weight_decay"]) if recipe is not None else NO_DECAY_KEYWORDS
    total = (
        train_args.per_device_train_batch_size * max(1, train_args.world_size) * train_args.gradient_accumulation_steps
    )
    return {
        "recipe": args.recipe, "model_name_or_path": args.model_name_or_path, "class": type(model).__name__,
        "batch": {"total": total, "per_device": train_args.per_device_train_batch_size},
        "optimizer": {
            "name": "AdamW", "peak_learning_rate": train_args.learning_rate,
            "betas": [train_args.adam_beta1, train_args.adam_beta2], "eps": train_args.adam_epsilon,
            "weight_decay": train_args.weight_decay, "layer_decay": args.layer_decay,
            "no_weight_decay": {"keywords": list(keywords), "parameters": no_weight_decay_names(model, keywords)},
        },
        "schedule": finetune_schedule(args, train_args, recipe) if recipe is not None else "Trainer's own",
        "max_grad_norm": train_args.max_grad_norm, "label_smoothing": train_args.label_smoothing_factor,
        "model": {"drop_path_rate": args.drop_path_rate, "use_fc_norm": getattr(model.config, "use_fc_norm", False),
                  "fc_norm_init": recipe.get("fc_norm_init") if recipe is not None else None,
                  "head_init": recipe.get("head_init") if recipe is not None else None,
                  "num_labels": model.config.num_labels},
        "augmentation": {"random_resized_crop_scale": [args.crop_scale_min, 1.0], "horizontal_flip_prob": 0.5,
                         **(augmentation.describe() if augmentation is not None else {})},
        "sources": recipe.sources() if recipe is not None else {},
        "deviations": recipes.DEVIATIONS if recipe is not None else {},
    }  # fmt: skip
