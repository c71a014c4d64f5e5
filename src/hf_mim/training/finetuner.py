"""``hf-mim finetune`` as a library function: :func:`finetune` fine-tunes (or linearly probes, or kNN-evaluates) an
hf_mim checkpoint for image classification with ``Trainer``.

Any hf_mim checkpoint (local folder or Hub id) loads through ``AutoModelForImageClassification``: the pretrained
encoder plus a new head. Accuracy (and top-5 with more than 5 classes) comes from metric modules shipped inside
hf_mim, so evaluation works offline; the results go into the model card's model-index.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    Trainer,
    TrainingArguments,
)

from ..backbones import class_name
from ..evaluation import extract_features, knn_accuracy
from ..export import bundle_remote_code
from ..hub import pretraining_repo_id, push_folder, render_model_card
from ..image_processing import MaskedImageProcessor
from ..metrics import load_metric
from ..modeling_utils import encoder_config, normalization
from ..registry import list_models
from .arguments import ATTENTION_KERNELS
from .augmentation import FinetuneAugmentation
from .builders import load_checkpoint_config, set_attention
from .checkpointing import COMPLETION_FILE, write_json_atomic
from .data import data_file_format, expand_data_files, find_image_column, find_label_column, load_image_dataset
from .finetuning import RecipeTrainer, finetuning_config, init_classifier
from .optimization import layer_decay_param_groups
from .resolve import finetune_dry_run_report, finetune_schedule, resolve_finetune_recipe

__all__ = ["FinetuneArguments", "build_augmentation", "check_labels", "finetune", "label_names", "load_splits"]


@dataclass
class FinetuneArguments:
    model_name_or_path: str = field(metadata={"help": "hf_mim checkpoint: local folder or Hub id"})
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id"})
    dataset_config: str | None = None
    train_dir: str | None = field(default=None, metadata={"help": "imagefolder directory"})
    data_files: list[str] | None = field(
        default=None, metadata={"help": "parquet / arrow / WebDataset .tar training files (glob patterns allowed)"}
    )
    validation_files: list[str] | None = field(
        default=None, metadata={"help": "parquet / arrow / WebDataset .tar validation files (glob patterns allowed)"}
    )
    validation_split_percentage: float = field(
        default=10.0, metadata={"help": "held out when there is no validation split"}
    )
    image_column: str | None = field(
        default=None, metadata={"help": "the image column (default: the one datasets.Image column, else image / img)"}
    )
    label_column: str | None = field(
        default=None,
        metadata={"help": "the label column (default: the one ClassLabel column, else label / labels / fine_label)"},
    )
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    linear_probe: bool = field(default=False, metadata={"help": "freeze the encoder, train a linear head only"})
    recipe: str | None = field(
        default=None,
        metadata={
            "help": "a paper fine-tuning recipe (hf_mim.training.recipes) or 'auto' (the checkpoint's method's); explicit flags "
            "win. Without one: Trainer's defaults, no augmentation"
        },
    )
    dry_run: bool = field(default=False, metadata={"help": "print the resolved hyper-parameters as JSON and exit"})
    base_learning_rate: float | None = field(default=None, metadata={"help": "recipe LR per its reference batch"})
    layer_decay: float | None = field(
        default=None, metadata={"help": "layer-wise learning-rate decay (1 = off; recipes: 0.65-0.9)"}
    )
    warmup_epochs: float | None = field(default=None, metadata={"help": "recipe warm-up length in epochs"})
    warmup_lr: float | None = field(default=None, metadata={"help": "absolute LR at the start of the warm-up"})
    min_lr: float | None = field(default=None, metadata={"help": "absolute LR at the end of the cosine"})
    drop_path_rate: float | None = field(default=None, metadata={"help": "stochastic depth while fine-tuning"})
    use_fc_norm: bool | None = field(default=None, metadata={"help": "mean of the patch tokens + LayerNorm head"})
    rand_augment: str | None = field(
        default=None, metadata={"help": "timm RandAugment string, e.g. rand-m9-mstd0.5-inc1"}
    )
    random_erasing_prob: float | None = None
    mixup_alpha: float | None = None
    cutmix_alpha: float | None = None
    mixup_prob: float | None = None
    mixup_switch_prob: float | None = None
    crop_scale_min: float = field(default=0.08, metadata={"help": "random-resized-crop minimum area"})
    image_size: int | None = field(
        default=None,
        metadata={"help": "fine-tune at this resolution (default: the checkpoint's); positions and relative tables "
                          "are interpolated"},
    )  # fmt: skip
    window_size: int | None = field(
        default=None, metadata={"help": "Swin: fine-tune with this window (relative tables interpolated)"}
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "attention kernel: eager, sdpa, flash_attention_2 or flex_attention"}
    )

    def __post_init__(self) -> None:
        for name in ("image_size", "window_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"--{name} must be a positive integer, got {value!r}")
        if self.attn_implementation is not None and self.attn_implementation not in ATTENTION_KERNELS:
            raise ValueError(f"--attn_implementation must be one of {list(ATTENTION_KERNELS)}, got "
                             f"{self.attn_implementation!r}")  # fmt: skip

    knn: bool = field(default=False, metadata={"help": "no training: kNN accuracy of the frozen encoder's features"})
    knn_k: int = field(default=20, metadata={"help": "neighbours for --knn (cosine similarity)"})
    knn_temperature: float = field(default=0.07, metadata={"help": "vote temperature for --knn (0: majority)"})
    hub_model_id_card: str | None = field(default=None, metadata={"help": "name shown in the model card"})


def load_splits(args: FinetuneArguments, seed: int):
    """The training and evaluation splits (a held-out share of the training data when there is no validation
    split), their description, and the image and label columns (found when not given).

    Returns:
        ``(train, evaluation, description, image_column, label_column)``.
    """
    import datasets

    train, description = load_image_dataset(
        dataset_name=args.dataset_name,
        dataset_config=args.dataset_config,
        train_dir=args.train_dir,
        data_files=args.data_files,
        image_column=args.image_column,
    )
    label_column = find_label_column(train, args.label_column, description)
    if args.validation_files:
        files = expand_data_files(args.validation_files)
        evaluation = datasets.load_dataset(data_file_format(files), data_files=files, split="train")
    elif args.dataset_name:
        splits = datasets.get_dataset_split_names(args.dataset_name, args.dataset_config)
        held = next((s for s in ("validation", "test") if s in splits), None)
        evaluation = datasets.load_dataset(args.dataset_name, args.dataset_config, split=held) if held else None
    else:
        evaluation = None
    if evaluation is None:
        parts = train.train_test_split(test_size=args.validation_split_percentage / 100, seed=seed)
        train, evaluation = parts["train"], parts["test"]
    if args.max_train_samples:
        train = train.select(range(min(args.max_train_samples, len(train))))
    if args.max_eval_samples:
        evaluation = evaluation.select(range(min(args.max_eval_samples, len(evaluation))))
    image_column = find_image_column(train, args.image_column, description)
    return train, evaluation, description, image_column, label_column


def label_names(dataset, column: str) -> list[str]:
    """Class names: a ``ClassLabel``'s names, else the sorted distinct values (checked by :func:`check_labels`)."""
    feature = dataset.features[column]
    if hasattr(feature, "names"):
        return list(feature.names)
    return [str(v) for v in sorted(set(dataset[column]))]


def check_labels(dataset, column: str, split: str) -> None:
    """Labels usable for single-label classification, checked before training: no nulls, integers (or strings),
    in range of the class names, at least two classes."""
    feature = dataset.features[column]
    values = dataset[column]
    nulls = [i for i, v in enumerate(values) if v is None]
    if nulls:
        raise ValueError(f"--label_column {column!r} of the {split} split has {len(nulls)} empty label(s) "
                         f"(rows {nulls[:10]}); drop or fill them first.")  # fmt: skip
    if hasattr(feature, "names"):
        bad = [(i, v) for i, v in enumerate(values) if not 0 <= v < len(feature.names)]
        if bad:
            raise ValueError(f"--label_column {column!r} of the {split} split has labels outside 0..{len(feature.names) - 1} "
                             f"(row, label: {bad[:10]}); the column's classes are {feature.names}.")  # fmt: skip
        return
    floats = [(i, v) for i, v in enumerate(values) if isinstance(v, float) and not float(v).is_integer()]
    if floats:
        raise ValueError(f"--label_column {column!r} holds non-integer numbers (row, label: {floats[:10]}): "
                         "classification needs class ids or names.")  # fmt: skip
    negative = [(i, v) for i, v in enumerate(values) if isinstance(v, int | float) and v < 0]
    if negative:
        raise ValueError(f"--label_column {column!r} holds negative class ids (row, label: {negative[:10]}).")
    if split == "train" and len(set(values)) < 2:
        raise ValueError(f"--label_column {column!r} has a single class ({values[0]!r}): classification needs at "
                         "least two (with one, the model would silently be trained as a regressor).")  # fmt: skip


def finetune(args: FinetuneArguments, train_args: TrainingArguments, explicit: set[str] | None = None) -> dict:
    """Fine-tunes (or linearly probes, or kNN-evaluates) ``args.model_name_or_path`` as ``hf-mim finetune`` does.

    Args:
        args: The fine-tuning arguments.
        train_args: transformers' ``TrainingArguments``.
        explicit: Names of the ``TrainingArguments`` fields the user set (a recipe fills the others); default:
            those that differ from transformers' defaults.

    Returns:
        The metrics written to ``all_results.json`` (or the ``--dry_run`` report).

    Raises:
        ValueError: Before any training, naming the argument: no labelled data, unusable labels, bad kNN settings,
            a recipe of another method.
    """
    pretrained = load_checkpoint_config(args.model_name_or_path)
    method = pretrained.model_type
    plain = method not in list_models()  # a transformers encoder: the starting point of a continued pretraining
    if plain and not (args.knn and args.recipe is None):
        raise ValueError(f"--model_name_or_path {args.model_name_or_path} is a plain transformers "
                         f"{class_name(method)}, not an hf_mim checkpoint: hf-mim finetune evaluates it with --knn "
                         "(no --recipe), e.g. as the baseline of a continued pretraining; to train it, continue its "
                         "pretraining with hf-mim pretrain --init_from, or fine-tune transformers' own classes.")  # fmt: skip
    # resolved copies: nothing the caller passed is changed
    args, train_args, recipe = resolve_finetune_recipe(args, train_args, method, getattr(pretrained, "backbone", None),
                                                       explicit)  # fmt: skip
    # another resolution or window is checked against the checkpoint before any data is read
    finetuning_config(copy.deepcopy(pretrained), image_size=args.image_size, window_size=args.window_size)
    if args.dry_run:
        return dry_run(args, train_args, recipe, pretrained)
    if not (args.dataset_name or args.train_dir or args.data_files):
        raise ValueError("Fine-tuning needs labelled data: --dataset_name, --train_dir or --data_files.")
    if args.knn_k < 1 or args.knn_temperature < 0:
        raise ValueError(f"--knn_k must be >= 1 and --knn_temperature >= 0 (0: majority votes), got {args.knn_k} "
                         f"and {args.knn_temperature}.")  # fmt: skip
    train_args.remove_unused_columns = False  # the transform needs the image column
    push = train_args.push_to_hub
    train_args.push_to_hub = False  # uploaded once at the end by hf_mim.hub.push_folder (card, code, retries)
    train, evaluation, description, image_column, label_column = load_splits(args, train_args.seed)
    args = dataclasses.replace(args, image_column=image_column, label_column=label_column)  # a copy: found columns
    check_labels(train, args.label_column, "train")
    check_labels(evaluation, args.label_column, "evaluation")
    labels = label_names(train, args.label_column)
    if not hasattr(train.features[args.label_column], "names"):  # map raw labels to ids
        index = {name: i for i, name in enumerate(labels)}
        unseen = sorted({str(v) for v in evaluation[args.label_column]} - set(index))
        if unseen:
            raise ValueError(f"The evaluation labels {unseen[:10]} never occur in the training labels {labels}.")

        def to_ids(batch):
            return {args.label_column: [index[str(v)] for v in batch[args.label_column]]}

        train, evaluation = train.map(to_ids, batched=True), evaluation.map(to_ids, batched=True)

    config = AutoConfig.from_pretrained(
        args.model_name_or_path, num_labels=len(labels), problem_type="single_label_classification",
        id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)},
    )  # fmt: skip
    finetuning_config(config, args.drop_path_rate, args.use_fc_norm, args.image_size, args.window_size)
    if plain:  # kNN only: its positions are interpolated for another input size
        model = AutoModel.from_pretrained(args.model_name_or_path)
    else:  # another resolution: hf_mim models interpolate what depends on it (modeling_utils.ResolutionMixin)
        model = AutoModelForImageClassification.from_pretrained(args.model_name_or_path, config=config)
    set_attention(model, args.attn_implementation)
    if recipe is not None:
        init_classifier(model, recipe.get("head_init"), recipe.get("fc_norm_init"))
    if args.linear_probe:
        model.base_model.requires_grad_(False)
    channels = encoder_config(model.config).num_channels
    try:
        source = AutoImageProcessor.from_pretrained(args.model_name_or_path)
    except (OSError, ValueError):
        source = None
    if isinstance(source, MaskedImageProcessor):
        image_size, patch_size = source.image_size, source.patch_size
        mean, std = source.image_mean, source.image_std
    else:  # no processor, or a plain encoder's: the model's geometry with the processor's statistics
        geometry = encoder_config(model.config)
        image_size = geometry.image_size if isinstance(geometry.image_size, int) else geometry.image_size[0]
        patch_size = geometry.patch_size if isinstance(geometry.patch_size, int) else geometry.patch_size[0]
        mean, std = normalization(model.config)
        if getattr(source, "image_mean", None) is not None:
            mean, std = source.image_mean, source.image_std
    processor = MaskedImageProcessor(
        image_size=args.image_size or image_size,
        patch_size=patch_size,
        crop_scale=(args.crop_scale_min, 1.0),
        image_mean=mean,
        image_std=std,
        num_channels=channels,
        mask_type=None,
    )
    if channels != 3 and args.rand_augment:
        raise ValueError(f"--rand_augment {args.rand_augment!r}: RandAugment's colour operations need RGB images, and "
                         f"this model takes {channels} channel(s); pass --rand_augment '' (mixup, cutmix and "
                         "random erasing work on any channel count).")  # fmt: skip
    if args.knn:
        return knn_evaluation(args, model, processor, train, evaluation, Path(train_args.output_dir), description)
    train_ds = train.with_transform(
        processor.as_transform(args.image_column, args.label_column, augment=not args.linear_probe)
    )
    eval_ds = evaluation.with_transform(processor.as_transform(args.image_column, args.label_column, augment=False))

    accuracy = load_metric("accuracy")
    top_k = 5 if len(labels) > 5 else None

    def compute_metrics(eval_pred):
        logits, references = eval_pred.predictions, eval_pred.label_ids
        out = accuracy.compute(predictions=np.argmax(logits, -1), references=references)
        if top_k:
            out.update(accuracy.compute(predictions=logits.astype(np.float32), references=references, k=top_k))
        return out

    augmentation = build_augmentation(args, len(labels), mean, std) if not args.linear_probe else None
    if recipe is not None:
        trainer = RecipeTrainer(
            model=model, args=train_args, train_dataset=train_ds, eval_dataset=eval_ds,
            compute_metrics=compute_metrics, schedule=finetune_schedule(args, train_args, recipe),
            layer_decay=1.0 if args.linear_probe else args.layer_decay, no_decay_keywords=recipe["no_weight_decay"],
            augmentation=augmentation, label_smoothing=train_args.label_smoothing_factor,
        )  # fmt: skip
    else:
        optimizers = (None, None)
        if args.layer_decay != 1.0 and not args.linear_probe:
            groups = layer_decay_param_groups(
                model, train_args.learning_rate, train_args.weight_decay, args.layer_decay
            )
            optimizer = torch.optim.AdamW(
                groups, lr=train_args.learning_rate, betas=(train_args.adam_beta1, train_args.adam_beta2)
            )
            optimizers = (optimizer, None)
        trainer = Trainer(model=model, args=train_args, train_dataset=train_ds, eval_dataset=eval_ds,
                          compute_metrics=compute_metrics, optimizers=optimizers)  # fmt: skip
    result = trainer.train(resume_from_checkpoint=train_args.resume_from_checkpoint)
    metrics = {**result.metrics, **trainer.evaluate(), "mode": "linear probe" if args.linear_probe else "fine-tuning",
               "dataset": description}  # fmt: skip
    output_dir = Path(train_args.output_dir)
    if trainer.is_world_process_zero():
        (output_dir / COMPLETION_FILE).unlink(missing_ok=True)
        trainer.save_model(str(output_dir))
        processor.save_pretrained(output_dir)
        bundle_remote_code(model, output_dir)
        bundle_remote_code(processor, output_dir)
        results = [
            {"dataset": description, "metric": "accuracy", "value": metrics["eval_accuracy"], "split": "validation"}
        ]
        if top_k:
            results.append(
                {
                    "dataset": description,
                    "metric": f"top{top_k}_accuracy",
                    "value": metrics[f"eval_top{top_k}_accuracy"],
                }
            )
        hyper = {
            "mode": "linear probe" if args.linear_probe else "fine-tuning",
            "recipe": args.recipe or "none (Trainer's defaults)",
            "learning rate": train_args.learning_rate,
            "layer decay": args.layer_decay,
            "epochs": train_args.num_train_epochs if train_args.max_steps <= 0 else f"{train_args.max_steps} steps",
            "batch size": train_args.per_device_train_batch_size,
            "pretrained checkpoint": args.model_name_or_path,
        }
        model_id = args.hub_model_id_card or train_args.hub_model_id or output_dir.name
        card = render_model_card(method, model_id, model.config, hyper, description, results,
                                 pipeline_tag="image-classification",
                                 base_model=pretraining_repo_id(args.model_name_or_path))  # fmt: skip
        card.save(output_dir / "README.md")
        write_json_atomic(output_dir / COMPLETION_FILE, metrics)  # last: marks the folder complete
        print(
            f"eval accuracy {metrics['eval_accuracy']:.4f}"
            + (f", top-{top_k} {metrics[f'eval_top{top_k}_accuracy']:.4f}" if top_k else "")
            + f". Saved the classifier, image processor, model card and {COMPLETION_FILE} to {output_dir.resolve()}/"
        )
        if push:
            if not train_args.hub_model_id:
                raise ValueError("--push_to_hub needs --hub_model_id")
            private = bool(getattr(train_args, "hub_private_repo", False))
            print(f"Pushed to {push_folder(output_dir, train_args.hub_model_id, private=private)}")
    return metrics


def build_augmentation(args, num_classes: int, mean, std) -> FinetuneAugmentation | None:
    """The recipe's batched augmentation, or None when all of it is off."""
    if not (args.rand_augment or args.random_erasing_prob or args.mixup_alpha or args.cutmix_alpha):
        return None
    return FinetuneAugmentation(
        num_classes, mean, std, rand_augment=args.rand_augment, random_erasing_prob=args.random_erasing_prob or 0.0,
        mixup_alpha=args.mixup_alpha or 0.0, cutmix_alpha=args.cutmix_alpha or 0.0,
        mixup_prob=args.mixup_prob, mixup_switch_prob=args.mixup_switch_prob,
    )  # fmt: skip


def dry_run(args, train_args, recipe, pretrained) -> dict:
    """``--dry_run``: the resolved recipe as JSON (the classifier is built with 1000 classes: the data decide)."""
    config = copy.deepcopy(pretrained)
    config.num_labels = 1000
    finetuning_config(config, args.drop_path_rate, args.use_fc_norm, args.image_size, args.window_size)
    model = AutoModelForImageClassification.from_config(config)
    mean, std = normalization(config)
    report = finetune_dry_run_report(args, train_args, recipe, model, build_augmentation(args, 1000, mean, std))
    print(json.dumps(report, indent=2, default=str))
    return report


def knn_evaluation(args, model, processor, train, evaluation, output_dir: Path, description: str) -> dict:
    """``--knn``: cosine kNN accuracy of the frozen encoder's pooled features (train split -> evaluation split)."""
    train_features = extract_features(model, train, processor, args.image_column, desc="train features")
    eval_features = extract_features(model, evaluation, processor, args.image_column, desc="eval features")
    k = min(args.knn_k, len(train_features))
    accuracy = knn_accuracy(train_features, train[args.label_column], eval_features, evaluation[args.label_column],
                            k=k, temperature=args.knn_temperature or None)  # fmt: skip
    metrics = {"mode": "knn", "knn_accuracy": accuracy, "knn_k": k, "knn_temperature": args.knn_temperature,
               "train_rows": len(train), "eval_rows": len(evaluation), "dataset": description}  # fmt: skip
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / COMPLETION_FILE, metrics)
    print(f"kNN accuracy (k={k}, cosine) of {args.model_name_or_path}: {accuracy:.4f}; "
          f"wrote {(output_dir / COMPLETION_FILE).resolve()}")  # fmt: skip
    return metrics
