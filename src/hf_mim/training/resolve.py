"""One step from what the user gave to what a run uses: flags + config file + preset + checkpoint config + recipe ->
an immutable :class:`ResolvedPretraining`, by :func:`resolve_pretraining`.

A run started from a released backbone (``--init_from``) builds a new model whose encoder is the backbone's class:
its sizes are the backbone's, the method's settings for it come from the method's config
(``encoder_defaults``), and an implicit main recipe then sets only the optimisation (an explicit ``--recipe`` still
sets its masking).

Precedence, for every value (:func:`first_set` is the one rule; :func:`config_layers` orders a config's sources): an
explicit flag, then ``--config_overrides``, then the config file, then the preset (or the checkpoint's config), then
the recipe, then the CPU demo's defaults (or the config class's defaults). The main recipe a named model gets
without ``--recipe`` therefore only fills what nothing more specific set; a recipe named with ``--recipe`` ranks
above the preset (a preset names a size; the recipe's masking is what was asked for). ``--dry_run`` prints
:meth:`ResolvedPretraining.report`; ``run.json`` and ``training_args.json`` store :meth:`ResolvedPretraining.to_dict`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config_overrides import parse_config_overrides
from ..registry import get_model_spec
from . import recipes
from .arguments import PretrainingArguments
from .optimization import NO_DECAY_KEYWORDS, no_weight_decay_names

__all__ = [
    "DEMO_DEFAULTS",
    "DEMO_LEARNING_RATE",
    "RECIPE_CONFIG_KEYS",
    "config_layers",
    "ResolvedPretraining",
    "first_set",
    "resolve_pretraining",
    "explicit_flags",
    "explicit_training_fields",
    "finetune_dry_run_report",
    "finetune_schedule",
    "resolve_finetune_recipe",
]

#: The CPU demo's own recipe (the main job: minutes on 2 cores, a batch far below the papers', so a fixed LR).
DEMO_DEFAULTS: dict[str, Any] = {
    "per_device_train_batch_size": 32, "num_train_epochs": 10.0, "max_steps": 400, "weight_decay": 0.05,
    "adam_beta1": 0.9, "adam_beta2": 0.95, "adam_epsilon": 1e-8, "lr_scheduler_type": "cosine",
    "warmup_epochs": None, "warmup_ratio": 0.05, "lr_milestones": (), "lr_gamma": 0.1, "max_grad_norm": 3.0,
}  # fmt: skip
DEMO_LEARNING_RATE = 1e-3  # the demo's small batch would scale the papers' rates down to nothing

#: Recipe keys that are config fields of a new model: they fill only what the model's own sources leave unset.
RECIPE_CONFIG_KEYS = ("mask_ratio", "mask_patch_size", "norm_pix_loss")


#: The method of ``hf-mim pretrain`` without --method, --recipe or a model (the demo's).
DEFAULT_METHOD = "maskfeat"


class FrozenDict(dict):
    """A read-only, picklable dict (resolved values)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("resolved values are read-only: resolve again from changed arguments")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self):
        return FrozenDict, (dict(self),)

    def __deepcopy__(self, memo):
        return self


def _frozen(value: Any) -> Any:
    """``value`` with every dict read-only and every list a tuple, recursively."""
    if isinstance(value, Mapping):
        return FrozenDict({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


class _ReadOnlyArguments(PretrainingArguments):
    """The resolved run's copy of the arguments: reads like them, refuses changes (lists are tuples)."""

    @classmethod
    def of(cls, args: PretrainingArguments) -> _ReadOnlyArguments:
        copy_ = cls.__new__(cls)
        for f in dataclasses.fields(args):
            object.__setattr__(copy_, f.name, _frozen(getattr(args, f.name)))
        return copy_

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"the resolved run's arguments are read-only (tried to set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"the resolved run's arguments are read-only (tried to delete {name!r})")

    def as_dict(self) -> dict[str, Any]:
        """The arguments as plain values (lists and dicts again)."""
        return {f.name: _thawed(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def __reduce__(self):
        return _ReadOnlyArguments.of, (PretrainingArguments(**self.as_dict()),)


def _thawed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


def first_set(key: str, layers: list[tuple[str, Mapping[str, Any]]]) -> tuple[Any, str | None]:
    """The precedence rule: the value of ``key`` in the first layer (most specific first) that sets it (not None).

    Args:
        key: The value's name.
        layers: ``(source name, values)`` pairs, most specific first.

    Returns:
        ``(value, source name)``, or ``(None, None)`` when no layer sets it.
    """
    for source, values in layers:
        if values.get(key) is not None:
            return values[key], source
    return None, None


def config_layers(
    overrides: Mapping[str, Any],
    model_sources: Mapping[str, Mapping[str, Any]],
    recipe: Mapping[str, Any],
    explicit_recipe: bool,
) -> list[tuple[str, Mapping[str, Any]]]:
    """The sources of a new model's config values, most specific first: ``--config_overrides``, the config file,
    then the preset (and a checkpoint's config), then the recipe. A recipe named with ``--recipe`` ranks above the
    preset: its paper settings are what was asked for, and a preset names a size. The main recipe a named model
    gets implicitly ranks last, so it fills only what nothing else set."""
    named = [("config file", model_sources.get("config file", {}))]
    model = [(name, values) for name, values in model_sources.items() if name != "config file"]
    if explicit_recipe:
        return [("config_overrides", overrides), *named, ("recipe", recipe), *model]
    return [("config_overrides", overrides), *named, *model, ("recipe", recipe)]


def _recipe_as_args(recipe: recipes.Recipe, processes: int) -> dict[str, Any]:
    """A pretraining recipe in :class:`PretrainingArguments`' names."""
    beta1, beta2 = recipe["betas"]
    return {
        "per_device_train_batch_size": max(1, recipe["batch_size"] // processes),
        "num_train_epochs": float(recipe["epochs"]), "max_steps": 0, "weight_decay": recipe["weight_decay"],
        "adam_beta1": beta1, "adam_beta2": beta2, "adam_epsilon": recipe["eps"],
        "lr_scheduler_type": recipe["schedule"], "warmup_epochs": float(recipe["warmup_epochs"]),
        "warmup_ratio": None, "lr_milestones": [float(m) for m in recipe.get("milestones", ())],
        "lr_gamma": recipe.get("gamma", 0.1), "max_grad_norm": recipe["max_grad_norm"],
    }  # fmt: skip


def _model_sources(args: PretrainingArguments, method: str, preset: str | None) -> dict[str, dict[str, Any]]:
    """The config values each model source sets: config file, preset, checkpoint config (read once)."""
    spec = get_model_spec(method)
    sources: dict[str, dict[str, Any]] = {}
    if args.config_file:
        path = Path(args.config_file)
        if not path.is_file():
            raise ValueError(f"--config_file {args.config_file} is not a file")
        sources["config file"] = json.loads(path.read_text())
    if preset is not None:
        if preset not in spec.config_class.presets:
            raise ValueError(
                f"--preset must be one of {sorted(spec.config_class.presets)} for {method}, got {preset!r}"
            )
        sources["preset"] = dict(spec.config_class.presets[preset])
    if args.model_name_or_path:
        from .builders import load_checkpoint_config

        sources["checkpoint config"] = load_checkpoint_config(args.model_name_or_path).to_dict()
    if args.init_from:  # checked before any weights are read; its model_type picks a recipe variant (Swin)
        from ..backbones import check_backbone
        from .builders import load_checkpoint_config

        found = load_checkpoint_config(args.init_from, flag="--init_from").model_type
        check_backbone(found, tuple(spec.config_class.backbone_types), spec.config_class.__name__.removesuffix("Config"),
                       f"--init_from {args.init_from}")  # fmt: skip
        sources["backbone"] = {"backbone": found}
    return sources


@dataclass(frozen=True)
class ResolvedPretraining:
    """Everything a pretraining run uses, resolved once and never changed afterwards.

    Attributes:
        args: The arguments as given (a copy; unset values stay None there).
        method: The method (``model_type``).
        recipe: The applied recipe's name, or None (the CPU demo's defaults).
        preset: The preset the model is built from (the method's demo preset when no model is named), or None.
        config_overrides: Config fields set on a new model: ``--config_overrides`` plus the recipe's loss and mask
            settings where nothing more specific set them.
        processor_overrides: Image-processor settings of the recipe (its crop scale).
        output_dir: The run's folder.
        num_processes: Processes the batch and learning rate were resolved for.
        values: Every optimisation value (the names of :class:`PretrainingArguments`), resolved.
        learning_rates: Absolute ``learning_rate`` (peak), ``warmup_start_lr`` and ``min_lr``.
        no_decay_keywords: Parameter-name keywords exempt from weight decay.
        value_sources: Where each optimisation and config value came from (``flag``, ``recipe``, ``demo``, ...).
    """

    args: PretrainingArguments
    method: str
    recipe: str | None
    preset: str | None
    config_overrides: Mapping[str, Any]
    processor_overrides: Mapping[str, Any]
    output_dir: str
    num_processes: int
    values: Mapping[str, Any]
    learning_rates: Mapping[str, float]
    no_decay_keywords: tuple[str, ...]
    value_sources: Mapping[str, str]

    def __getattr__(self, name: str) -> Any:
        # resolved optimisation values read like arguments: plan.weight_decay, plan.max_steps, ...
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    @property
    def total_batch_size(self) -> int:
        return self.values["per_device_train_batch_size"] * self.args.gradient_accumulation_steps * self.num_processes

    def schedule_steps(self, max_steps: int) -> tuple[int, list[int]]:
        """Warm-up steps and milestone steps for a run of ``max_steps``: epoch-based values keep their share of the
        epochs, so ``--max_steps`` shortens a recipe without changing its shape."""
        epochs = self.values["num_train_epochs"] or 1.0
        if self.values["warmup_epochs"] is not None:
            warmup = round(self.values["warmup_epochs"] / epochs * max_steps)
        else:
            warmup = int(self.values["warmup_ratio"] * max_steps)
        milestones = [round(m / epochs * max_steps) for m in self.values["lr_milestones"] or ()]
        return min(warmup, max_steps), milestones

    # -- building what the run needs ----------------------------------------------------------------------
    def build_model(self):
        """The pretraining model: continued from ``--model_name_or_path`` (checked to be of the method before any
        weights are read), built around the backbone of ``--init_from`` with :attr:`config_overrides`
        (``from_backbone``), else new from the config file / preset with :attr:`config_overrides`."""
        from .builders import build_config, build_model

        if self.args.init_from:
            spec = get_model_spec(self.method)
            return spec.pretraining_class.from_backbone(self.args.init_from, **_thawed(dict(self.config_overrides)))
        if self.args.model_name_or_path:
            return build_model(self.method, model_name_or_path=self.args.model_name_or_path)
        config = build_config(self.method, preset=self.preset, config_file=self.args.config_file,
                              **self.config_overrides)  # fmt: skip
        return build_model(self.method, config)

    def build_image_processor(self, config):
        """The method's image processor for ``config``, with the recipe's crop scale."""
        from .builders import build_image_processor

        return build_image_processor(self.method, config, **self.processor_overrides)

    def load_dataset(self):
        """The training images as a ``datasets`` (Iterable)Dataset and a description: ``(dataset, description)``."""
        from .data import load_image_dataset

        a = self.args
        return load_image_dataset(
            dataset_name=a.dataset_name, dataset_config=a.dataset_config, train_dir=a.train_dir,
            data_files=a.data_files, split=a.split, streaming=a.streaming, image_column=a.image_column,
            max_samples=a.max_train_samples, default_data_size=a.default_data_size,
        )  # fmt: skip

    # -- records ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the arguments as given and everything resolved from them."""
        return json.loads(json.dumps({
            "arguments": {**self.args.as_dict(), "hub_token": "<redacted>" if self.args.hub_token else None},
            "method": self.method, "recipe": self.recipe,
            "preset": self.preset, "config_overrides": dict(self.config_overrides),
            "processor_overrides": dict(self.processor_overrides), "output_dir": self.output_dir,
            "num_processes": self.num_processes, "total_batch_size": self.total_batch_size,
            "values": dict(self.values), "learning_rates": dict(self.learning_rates),
            "no_decay_keywords": list(self.no_decay_keywords), "value_sources": dict(self.value_sources),
        }, default=str))  # fmt: skip

    def report(self, model, processor) -> dict[str, Any]:
        """What ``--dry_run`` prints: optimizer (with the parameters that get no weight decay), LR schedule,
        clipping, length, augmentation and masking, plus the recipe's official sources."""
        v, lrs = self.values, self.learning_rates
        recipe = recipes.get_recipe(self.recipe) if self.recipe else None
        names = no_weight_decay_names(model, self.no_decay_keywords)
        special = [n for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1 and any(
            k in n for k in ("token", "position", "relative_position", "pos_embed"))]  # fmt: skip
        settings = processor.to_dict()
        masking = {k: val for k, val in settings.items() if k.startswith("mask")}
        masking.update({k: getattr(model.config, k) for k in RECIPE_CONFIG_KEYS if hasattr(model.config, k)})
        return {
            "recipe": self.recipe or "demo",
            "method": self.method,
            "model": {"class": type(model).__name__, "preset": self.preset, "config_file": self.args.config_file,
                      "model_name_or_path": self.args.model_name_or_path, "init_from": self.args.init_from,
                      "parameters": sum(p.numel() for p in model.parameters())},
            "batch": {"total": self.total_batch_size, "per_device": v["per_device_train_batch_size"],
                      "gradient_accumulation_steps": self.args.gradient_accumulation_steps,
                      "processes": self.num_processes},
            "optimizer": {
                "name": "AdamW", "peak_learning_rate": lrs["learning_rate"], "betas": [v["adam_beta1"], v["adam_beta2"]],
                "eps": v["adam_epsilon"], "weight_decay": v["weight_decay"],
                "no_weight_decay": {
                    "rule": "1-D parameters, biases, and names containing any of the keywords",
                    "keywords": list(self.no_decay_keywords), "parameters": names,
                    "special_parameters_exempt": [n for n in special if n in names],
                    "special_parameters_decayed": [n for n in special if n not in names],
                },
            },
            "schedule": {
                "type": v["lr_scheduler_type"], "epochs": v["num_train_epochs"], "max_steps": v["max_steps"] or None,
                "warmup_epochs": v["warmup_epochs"],
                "warmup_ratio": v["warmup_ratio"] if v["warmup_epochs"] is None else None,
                "warmup_start_lr": lrs["warmup_start_lr"], "peak_lr": lrs["learning_rate"],
                "min_lr": lrs["min_lr"] if v["lr_scheduler_type"] == "cosine" else None,
                "milestones_epochs": list(v["lr_milestones"] or []) if v["lr_scheduler_type"] == "multistep" else None,
                "gamma": v["lr_gamma"] if v["lr_scheduler_type"] == "multistep" else None,
            },
            "max_grad_norm": v["max_grad_norm"],
            "augmentation": {
                "random_resized_crop": {"size": settings["image_size"], "scale": settings["crop_scale"],
                                        "ratio": settings["crop_ratio"], "resample": settings["resample"]},
                "horizontal_flip_prob": settings["flip_prob"],
                "normalize": {"mean": settings["image_mean"], "std": settings["image_std"]},
            },
            "masking": masking,
            "mixed_precision": self.args.mixed_precision,
            "value_sources": dict(self.value_sources),
            "sources": recipe.sources() if recipe is not None else {},
            "deviations": recipes.DEVIATIONS if recipe is not None else {},
            "resolved": self.to_dict(),  # what run.json stores
        }  # fmt: skip


def resolve_pretraining(
    args: PretrainingArguments, num_processes: int | None = None, model_config=None
) -> ResolvedPretraining:
    """Resolves ``args`` into the run they describe (``args`` itself is not changed).

    Args:
        args: The arguments as given.
        num_processes: Processes of the run (default: ``$WORLD_SIZE``, else 1): a recipe's batch is split over them
            and its learning rate scaled to the total batch.
        model_config: The config of a model built by the caller (``Pretrainer(model, args)``): it names the method
            and, like a checkpoint, gets the method's main recipe unless ``recipe`` is given; nothing of the config is
            changed.

    Returns:
        The frozen :class:`ResolvedPretraining`.

    Raises:
        ValueError: Naming the argument, for a recipe of another stage or method, an unknown preset, a checkpoint or
            model of another method, config overrides on a checkpoint or model, or a schedule that cannot run.
    """
    if num_processes is None:
        num_processes = int(os.environ.get("WORLD_SIZE", "1"))
    recipe = None
    preset = args.preset
    method = args.method
    if model_config is not None:
        if method and method != model_config.model_type:
            raise ValueError(f"The model is a {model_config.model_type!r} model, but --method is {method!r}.")
        if preset or args.config_file or args.model_name_or_path or args.init_from or args.config_overrides:
            raise ValueError("A model was given: --preset, --config_file, --model_name_or_path, --init_from and "
                             "--config_overrides describe a model to build and cannot apply to it.")  # fmt: skip
        method = model_config.model_type
    if args.recipe:
        recipe = recipes.get_recipe(args.recipe, stage="pretrain")
        if method and method != recipe.method:
            raise ValueError(f"--recipe {args.recipe} is a {recipe.method} recipe, but --method is {method!r}.")
        method = recipe.method
        if not (preset or args.config_file or args.model_name_or_path or args.init_from or model_config is not None):
            preset = recipe["preset"]
    method = method or DEFAULT_METHOD
    spec = get_model_spec(method)
    named_model = bool(
        args.config_file or args.model_name_or_path or args.init_from or preset or model_config is not None
    )
    if not named_model:
        preset = spec.demo_preset
    model_sources = _model_sources(args, method, preset)
    if model_config is not None:
        model_sources["model config"] = model_config.to_dict()
    if args.model_name_or_path:
        found = model_sources["checkpoint config"].get("model_type")
        if found != method:
            raise ValueError(f"--model_name_or_path {args.model_name_or_path} is a {found!r} checkpoint, but "
                             f"--method is {method!r}; pass --method {found} or another checkpoint.")  # fmt: skip
        if args.config_overrides:
            raise ValueError("--config_overrides cannot change a checkpoint's architecture (--model_name_or_path).")
    if recipe is None and named_model and preset != spec.demo_preset:
        backbone, _ = first_set("backbone", list(model_sources.items()))
        recipe = recipes.get_recipe(spec.main_recipe("pretrain", backbone))

    # -- optimisation values: flag > recipe > demo ----------------------------------------------------------
    processes = num_processes * args.gradient_accumulation_steps
    defaults = DEMO_DEFAULTS if recipe is None else _recipe_as_args(recipe, processes)
    flags = {key: getattr(args, key) for key in DEMO_DEFAULTS}
    if recipe is not None and args.num_train_epochs is not None:
        # a recipe run to another length keeps the shape of its schedule (explicit values still win)
        share = args.num_train_epochs / recipe["epochs"]
        defaults = {**defaults, "warmup_epochs": recipe["warmup_epochs"] * share,
                    "lr_milestones": [m * share for m in recipe.get("milestones", ())]}  # fmt: skip
    layers = [("flag", flags), ("recipe" if recipe is not None else "demo", defaults)]
    values, sources = {}, {}
    for key in DEMO_DEFAULTS:
        values[key], sources[key] = first_set(key, layers)
    if args.warmup_ratio is not None and args.warmup_epochs is None:
        values["warmup_epochs"], sources["warmup_epochs"] = None, "flag (--warmup_ratio)"
    if values["warmup_epochs"] is None and values["warmup_ratio"] is None:
        values["warmup_ratio"] = 0.0
    values["lr_milestones"] = list(values["lr_milestones"] or [])
    _check_schedule(values, args.streaming)

    # -- learning rates: explicit absolute > explicit base (scaled) > recipe (scaled) > demo ----------------
    total_batch = values["per_device_train_batch_size"] * processes
    if recipe is not None:
        lrs = recipes.absolute_learning_rates(recipe.as_dict(), total_batch, args.base_learning_rate)
    else:
        base = {"base_learning_rate": args.base_learning_rate, "lr_batch_divisor": spec.lr_scale_batch,
                "warmup_start_lr": 0.0, "min_lr": 0.0}  # fmt: skip
        lrs = recipes.absolute_learning_rates(base, total_batch) if args.base_learning_rate is not None else {
            "learning_rate": DEMO_LEARNING_RATE, "warmup_start_lr": 0.0, "min_lr": 0.0}  # fmt: skip
    origin = "recipe" if recipe is not None else "demo"
    sources.update({"learning_rate": origin, "warmup_start_lr": origin, "min_lr": origin})
    if args.base_learning_rate is not None:
        sources["learning_rate"] = "flag (base, scaled)"
    for flag, key in (("learning_rate", "learning_rate"), ("warmup_lr", "warmup_start_lr"), ("min_lr", "min_lr")):
        if getattr(args, flag) is not None:
            lrs[key], sources[key] = getattr(args, flag), "flag"

    # -- config of a new model: overrides > config file > preset > (checkpoint) > recipe ---------------------
    overrides = parse_config_overrides(args.config_overrides, method)
    # a backbone sizes its own model: an implicit main recipe leaves its masking alone
    from_recipe = recipe is not None and (bool(args.recipe) or not args.init_from)
    if from_recipe and not args.model_name_or_path and model_config is None:
        for key in RECIPE_CONFIG_KEYS:
            if key in recipe.values:
                value, source = first_set(key, config_layers(overrides, model_sources, {key: recipe[key]},
                                                             explicit_recipe=bool(args.recipe)))  # fmt: skip
                sources[key] = source
                if source == "recipe":
                    overrides[key] = value
    processor_overrides = {}
    if recipe is not None and "crop_scale" in recipe.values:
        processor_overrides["crop_scale"], sources["crop_scale"] = recipe["crop_scale"], "recipe"
    keywords = tuple(recipe["no_weight_decay"]) if recipe is not None else NO_DECAY_KEYWORDS
    return ResolvedPretraining(
        args=_ReadOnlyArguments.of(args), method=method, recipe=recipe.name if recipe is not None else None,
        preset=None if model_config is not None else preset, config_overrides=_frozen(overrides),
        processor_overrides=_frozen(processor_overrides),
        output_dir=args.output_dir or os.path.join("outputs", method), num_processes=num_processes,
        values=_frozen(values), learning_rates=_frozen(lrs), no_decay_keywords=keywords, value_sources=_frozen(sources),
    )  # fmt: skip


def _check_schedule(values: dict[str, Any], streaming: bool) -> None:
    """The resolved schedule can run (each error names the flag to change)."""
    epochs = values["num_train_epochs"]
    if values["max_steps"] == 0 and epochs <= 0:
        raise ValueError("nothing to train: give --max_steps > 0 or --num_train_epochs > 0")
    warmup = values["warmup_epochs"]
    if warmup is not None and not 0.0 <= warmup <= max(epochs, 0.0):
        raise ValueError(f"--warmup_epochs must be in [0, --num_train_epochs={epochs}], got {warmup}")
    if values["lr_scheduler_type"] == "multistep" and not values["lr_milestones"]:
        raise ValueError("--lr_scheduler_type multistep needs --lr_milestones (epochs)")
    if streaming and not values["max_steps"]:
        raise ValueError("--streaming needs --max_steps > 0 (the length of a stream is unknown)")


# ------------------------------------------------------------------------------------------------ fine-tuning

#: FinetuneArguments fields a fine-tuning recipe fills (recipe key -> field), and their values without a recipe.
FINETUNE_FIELDS = {
    "layer_decay": ("layer_decay", 1.0), "drop_path_rate": ("drop_path_rate", None),
    "use_fc_norm": ("use_fc_norm", None), "rand_augment": ("rand_augment", None),
    "random_erasing_prob": ("random_erasing_prob", 0.0), "mixup_alpha": ("mixup_alpha", 0.0),
    "cutmix_alpha": ("cutmix_alpha", 0.0), "mixup_prob": ("mixup_prob", 1.0),
    "mixup_switch_prob": ("mixup_switch_prob", 0.5), "warmup_epochs": ("warmup_epochs", None),
    "image_size": ("image_size", None), "window_size": ("window_size", None),
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


def explicit_training_fields(train_args) -> set[str]:
    """The ``TrainingArguments`` fields a fine-tuning recipe fills that differ from transformers' defaults: what a
    Python caller set (a command line knows better: :func:`explicit_flags`)."""
    names = {*TRAINER_FIELDS.values(), "adam_beta1", "adam_beta2", "per_device_train_batch_size", "learning_rate"}
    defaults = {f.name: f.default for f in dataclasses.fields(type(train_args)) if f.name in names}
    return {name for name, default in defaults.items() if getattr(train_args, name) != default}


def resolve_finetune_recipe(args, train_args, method: str, backbone: str | None, explicit: set[str] | None = None):
    """Applies ``args.recipe`` (a name, or ``auto``: the method's fine-tuning recipe) to copies of the fine-tuning
    and Trainer arguments, leaving explicit values alone: flag > recipe > default, as for pretraining
    (:func:`first_set`). Nothing the caller passed is changed.

    Args:
        args: ``FinetuneArguments``.
        train_args: transformers' ``TrainingArguments``.
        method: The checkpoint's method.
        backbone: The checkpoint's backbone (SimMIM's main recipe depends on it).
        explicit: ``TrainingArguments`` fields the user set (default: those differing from transformers' defaults).

    Returns:
        ``(args, train_args, recipe)``: the resolved copies and the recipe, or None (``Trainer``'s defaults: no
        augmentation, layer decay off).
    """
    args, train_args = copy.deepcopy(args), copy.deepcopy(train_args)
    explicit = explicit_training_fields(train_args) if explicit is None else explicit
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
            setattr(args, name, first_set(name, [("flag", vars(args)), ("default", {name: default})])[0])
        return args, train_args, None
    values = recipe.as_dict()
    for name, (key, _) in FINETUNE_FIELDS.items():
        setattr(args, name, first_set(name, [("flag", vars(args)), ("recipe", {name: values.get(key)})])[0])
    given = {name: getattr(train_args, name) for name in explicit if hasattr(train_args, name)}
    from_recipe = {name: values[key] for key, name in TRAINER_FIELDS.items()}
    from_recipe.update(adam_beta1=values["betas"][0], adam_beta2=values["betas"][1])
    processes = max(1, train_args.world_size) * train_args.gradient_accumulation_steps
    from_recipe["per_device_train_batch_size"] = max(1, values["batch_size"] // processes)
    for name in from_recipe:
        setattr(train_args, name, first_set(name, [("flag", given), ("recipe", from_recipe)])[0])
    total = train_args.per_device_train_batch_size * processes
    lrs = recipes.absolute_learning_rates(values, total, args.base_learning_rate)
    train_args.learning_rate = first_set("learning_rate", [("flag", given), ("recipe", lrs)])[0]
    args.warmup_lr = first_set("warmup_lr", [("flag", vars(args)), ("recipe", {"warmup_lr": lrs["warmup_start_lr"]})])[
        0
    ]
    args.min_lr = first_set("min_lr", [("flag", vars(args)), ("recipe", lrs)])[0]
    return args, train_args, recipe


def finetune_schedule(args, train_args, recipe) -> dict:
    """The LR schedule :class:`~hf_mim.training.finetuning.RecipeTrainer` builds (warm-up as a share of the epochs)."""
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
