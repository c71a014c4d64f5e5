"""The arguments of a pretraining run, as a dataclass that transformers' ``HfArgumentParser`` turns into flags.

    >>> from transformers import HfArgumentParser
    >>> from hf_mim.training import PretrainingArguments
    >>> (args,) = HfArgumentParser(PretrainingArguments).parse_args_into_dataclasses(["--method", "simmim"])

Every optimisation field left at ``None`` is filled by :func:`~hf_mim.training.resolve_pretraining` from the recipe
(``--recipe``, or the method's main recipe when a model other than the demo is named) or the CPU demo's defaults;
:meth:`PretrainingArguments.__post_init__` checks every value that was given, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import list_models
from .optimization import SCHEDULES

__all__ = ["ATTENTION_KERNELS", "PretrainingArguments"]

#: transformers' attention implementations a run can ask for (``--attn_implementation``).
ATTENTION_KERNELS = ("eager", "sdpa", "flash_attention_2", "flex_attention")
#: ``torch.compile`` modes.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _help(text: str, **kwargs) -> dict:
    return {"metadata": {"help": text, **kwargs}}


#: argument -> (lowest allowed value, whether the lowest value itself is allowed)
_MINIMA = {"per_device_train_batch_size": (1, True), "gradient_accumulation_steps": (1, True),
           "logging_steps": (1, True), "checkpointing_steps": (0, True), "checkpoints_total_limit": (0, True),
           "picture_steps": (0, True), "dataloader_num_workers": (0, True), "default_data_size": (1, True),
           "max_train_samples": (1, True), "stop_after_steps": (1, True), "max_grad_norm": (0.0, True),
           "weight_decay": (0.0, True), "learning_rate": (0.0, False), "base_learning_rate": (0.0, False),
           "max_steps": (0, True), "num_train_epochs": (0.0, True), "warmup_lr": (0.0, True),
           "min_lr": (0.0, True), "adam_epsilon": (0.0, False), "max_consecutive_nonfinite": (1, True),
           "shuffle_buffer_size": (0, True), "dataloader_prefetch_factor": (1, True)}  # fmt: skip


@dataclass
class PretrainingArguments:
    """What ``hf-mim pretrain`` takes; each field is a flag of the same name (``--help`` lists them).

    Raises:
        ValueError: From ``__post_init__``, naming the argument, for a value out of its range or a contradictory
            combination (e.g. two data sources).
    """

    # -- method and model ----------------------------------------------------------------------------------
    method: str | None = field(
        default=None, **_help("the method; default: the recipe's method, else maskfeat", choices=list_models())
    )
    preset: str | None = field(default=None, **_help("named config (default: the method's small demo config)"))
    config_file: str | None = field(default=None, **_help("JSON file of config arguments"))
    config_overrides: str = field(default="", **_help('config fields, e.g. "image_size=64,drop_path_rate=0.1"'))
    model_name_or_path: str | None = field(
        default=None, **_help("continue pretraining from a checkpoint of the same method (local folder or Hub id)")
    )
    init_from: str | None = field(
        default=None,
        **_help("start from a released transformers vision backbone (Hub id or local folder: ViT, DeiT, DINOv2, BEiT, "
                "Swin, ViTMAE as the method supports): the method is built around its weights, and hf-mim export gives "
                "that class back; the resolution is encoder_config.image_size in --config_overrides"),
    )  # fmt: skip
    # -- data ----------------------------------------------------------------------------------------------
    dataset_name: str | None = field(default=None, **_help("a Hub dataset id"))
    dataset_config: str | None = field(default=None, **_help("the Hub dataset's configuration"))
    streaming: bool = field(default=False, **_help("stream the dataset instead of downloading it"))
    train_dir: str | None = field(default=None, **_help("an imagefolder directory"))
    data_files: list[str] | None = field(
        default=None, **_help("parquet / arrow / WebDataset .tar files (glob patterns allowed: 'shards/*.tar')")
    )
    image_column: str | None = field(
        default=None, **_help("the image column (default: the one datasets.Image column, else image / img / jpg)")
    )
    split: str = field(default="train", **_help("the dataset split"))
    max_train_samples: int | None = field(default=None, **_help("use only the first N rows"))
    default_data_size: int = field(default=2048, **_help("crops in the embedded default data"))
    dataloader_num_workers: int = field(default=0, **_help("DataLoader worker processes"))
    dataloader_prefetch_factor: int = field(default=2, **_help("batches each DataLoader worker prepares ahead"))
    skip_corrupt_images: bool = field(default=False, **_help("skip (and count) undecodable rows"))
    shuffle_buffer_size: int = field(
        default=10_000,
        **_help("streams: examples in the shuffle buffer (seeded, reshuffled every epoch; datasets' "
                "IterableDataset.shuffle also shuffles the shard order); 0: no buffer, the stored order in the first "
                "epoch"),
    )  # fmt: skip
    # -- optimisation (None: from the recipe, else the CPU demo's defaults) ----------------------------------
    recipe: str | None = field(
        default=None,
        **_help("a paper recipe (hf_mim.training.recipes); default with --preset/--config_file/--model_name_or_path: "
                "the method's main recipe"),
    )  # fmt: skip
    dry_run: bool = field(default=False, **_help("print the resolved run as JSON and exit"))
    per_device_train_batch_size: int | None = field(
        default=None, **_help("default: recipe batch / processes, demo 32")
    )
    gradient_accumulation_steps: int = field(default=1, **_help("batches per optimizer step"))
    num_train_epochs: float | None = field(default=None, **_help("training length in epochs"))
    max_steps: int | None = field(
        default=None, **_help("overrides the epochs when > 0 (the schedule keeps its shape); demo default 400")
    )
    base_learning_rate: float | None = field(
        default=None, **_help("scaled by total batch / the method's reference batch (256, SimMIM 512)")
    )
    learning_rate: float | None = field(default=None, **_help("absolute peak learning rate (no scaling)"))
    weight_decay: float | None = field(default=None, **_help("AdamW weight decay"))
    adam_beta1: float | None = field(default=None, **_help("AdamW beta1"))
    adam_beta2: float | None = field(default=None, **_help("AdamW beta2"))
    adam_epsilon: float | None = field(default=None, **_help("AdamW epsilon"))
    lr_scheduler_type: str | None = field(default=None, **_help("the LR schedule", choices=list(SCHEDULES)))
    warmup_epochs: float | None = field(default=None, **_help("warm-up length in epochs (recipes)"))
    warmup_ratio: float | None = field(default=None, **_help("warm-up share of the steps (the demo's 0.05)"))
    warmup_lr: float | None = field(default=None, **_help("absolute learning rate at the start of the warm-up"))
    min_lr: float | None = field(default=None, **_help("absolute learning rate at the end of the cosine"))
    lr_milestones: list[float] | None = field(default=None, **_help("multistep: epochs where the LR drops"))
    lr_gamma: float | None = field(default=None, **_help("multistep: factor at each milestone"))
    max_grad_norm: float | None = field(default=None, **_help("gradient clipping norm; 0 disables clipping"))
    mixed_precision: str = field(default="no", **_help("autocast precision", choices=["no", "bf16", "fp16"]))
    gradient_checkpointing: bool = field(default=False, **_help("recompute activations in the backward pass"))
    torch_compile: bool = field(default=False, **_help("torch.compile the model"))
    torch_compile_backend: str | None = field(
        default=None, **_help("torch.compile backend (default inductor); setting it turns --torch_compile on")
    )
    torch_compile_mode: str | None = field(
        default=None,
        **_help("torch.compile mode; setting it turns --torch_compile on", choices=list(COMPILE_MODES)),
    )
    tf32: bool = field(
        default=False, **_help("TF32 matmuls and convolutions on GPUs that have them (Ampere and newer)")
    )
    attn_implementation: str | None = field(
        default=None,
        **_help("attention kernel (default: the model's, sdpa where it supports it); each model class declares what "
                "its encoder supports", choices=list(ATTENTION_KERNELS)),
    )  # fmt: skip
    seed: int = field(default=42, **_help("seed of the weights, data order, augmentation and masks"))
    cpu: bool = field(default=False, **_help("train on CPU even when a GPU is present"))
    fsdp: bool = field(
        default=False,
        **_help("shard with accelerate's FSDP2 plugin (GPUs; the blocks of _no_split_modules are the units)"),
    )
    # -- output --------------------------------------------------------------------------------------------
    output_dir: str | None = field(default=None, **_help("default: outputs/<method>"))
    checkpointing_steps: int = field(default=0, **_help("save a checkpoint every N steps (0: never)"))
    checkpoints_total_limit: int = field(default=2, **_help("checkpoints kept (older ones of this run go)"))
    resume_from_checkpoint: str | None = field(default=None, **_help('"latest" or a checkpoint folder'))
    overwrite_output_dir: bool = field(default=False, **_help("replace another run's files in --output_dir"))
    skip_nonfinite_loss: bool = field(
        default=False, **_help("skip batches whose loss is NaN/inf (default: stop at the first one)")
    )
    max_consecutive_nonfinite: int = field(
        default=100,
        **_help("with --skip_nonfinite_loss: stop after this many skipped batches in a row (the weights or data are "
                "broken, not one batch)"),
    )  # fmt: skip
    stop_after_steps: int | None = field(
        default=None, **_help("stop (with a checkpoint) after this step, e.g. before a time limit")
    )
    logging_steps: int = field(default=10, **_help("log to the trackers every N steps"))
    picture_steps: int = field(default=100, **_help("write a picture grid every N steps (0: only at the end)"))
    report_to: str = field(default="none", **_help("experiment tracker", choices=["none", "tensorboard"]))
    push_to_hub: bool = field(default=False, **_help("upload the finished folder (needs --hub_model_id)"))
    hub_model_id: str | None = field(default=None, **_help("the Hub repository, e.g. me/maskfeat-vit-b"))
    hub_private: bool = field(default=False, **_help("create the Hub repository private"))
    hub_token: str | None = field(default=None, **_help("Hub token (default: the logged-in user's)"))

    def __post_init__(self) -> None:
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id")
        if sum(bool(x) for x in (self.dataset_name, self.train_dir, self.data_files)) > 1:
            raise ValueError("give at most one of --dataset_name, --train_dir, --data_files")
        if sum(bool(x) for x in (self.preset, self.config_file, self.model_name_or_path, self.init_from)) > 1:
            raise ValueError("give at most one of --preset, --config_file, --model_name_or_path, --init_from")
        if self.method is not None and self.method not in list_models():
            raise ValueError(f"--method must be one of {list_models()}, got {self.method!r}")
        if self.attn_implementation is not None and self.attn_implementation not in ATTENTION_KERNELS:
            raise ValueError(f"--attn_implementation must be one of {list(ATTENTION_KERNELS)}, got "
                             f"{self.attn_implementation!r}")  # fmt: skip
        if self.torch_compile_mode is not None and self.torch_compile_mode not in COMPILE_MODES:
            raise ValueError(f"--torch_compile_mode must be one of {list(COMPILE_MODES)}, got "
                             f"{self.torch_compile_mode!r}")  # fmt: skip
        if self.torch_compile_backend is not None:
            import torch._dynamo

            if self.torch_compile_backend not in torch._dynamo.list_backends(exclude_tags=()):
                raise ValueError(f"--torch_compile_backend must be a torch.compile backend, one of "
                                 f"{torch._dynamo.list_backends()} (or a debugging one such as aot_eager), got "
                                 f"{self.torch_compile_backend!r}")  # fmt: skip
        if self.torch_compile_backend or self.torch_compile_mode:
            self.torch_compile = True  # as transformers' TrainingArguments: naming a backend or mode compiles
        if self.lr_scheduler_type is not None and self.lr_scheduler_type not in SCHEDULES:
            raise ValueError(f"--lr_scheduler_type must be one of {list(SCHEDULES)}, got {self.lr_scheduler_type!r}")
        for name, (low, inclusive) in _MINIMA.items():
            value = getattr(self, name)
            if value is not None and ((value < low) if inclusive else (value <= low)):
                raise ValueError(f"--{name} must be {'>=' if inclusive else '>'} {low}, got {value}")
        for name in ("adam_beta1", "adam_beta2"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"--{name} must be in [0, 1), got {value}")
        if self.warmup_ratio is not None and not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.lr_gamma is not None and not 0.0 < self.lr_gamma <= 1.0:
            raise ValueError(f"--lr_gamma must be in (0, 1], got {self.lr_gamma}")
        if self.skip_corrupt_images and self.streaming:
            raise ValueError("--skip_corrupt_images needs a map-style dataset: it checks every row before training, "
                             "which a stream cannot do (leave out --streaming)")  # fmt: skip
        if self.fsdp and self.init_from:
            raise ValueError("--fsdp cannot shard a model started from a backbone (--init_from) yet: its sharding units "
                             "are the method's own block classes; train it with DDP (accelerate launch / torchrun)")  # fmt: skip
        if self.fsdp:
            import torch

            if self.cpu or not torch.cuda.is_available():
                raise ValueError("--fsdp needs GPUs: accelerate enables FSDP only on GPU-like devices and would "
                                 "silently run DDP on CPU; leave --fsdp out on CPU (DDP), or shard with "
                                 "hf_mim.training.shard_model yourself")  # fmt: skip
