"""The training engine: arguments, their resolution into a run, the pretrainer, data, checkpoints, optimizer
pieces, the papers' recipes and fine-tuning.

- :class:`PretrainingArguments` (``arguments``): the flags of ``hf-mim pretrain`` as a dataclass for
  ``HfArgumentParser``; :func:`resolve_pretraining` (``resolve``): flags + config file + preset + checkpoint
  config + recipe -> one frozen :class:`ResolvedPretraining`.
- :class:`Pretrainer` (``pretrainer``): the accelerate loop with exact resume, callbacks and the final save.
- ``data``: datasets and the seeded transform; ``builders``: models / processors from presets and files;
  ``pictures``: the picture grid; ``checkpointing``, ``optimization``, ``recipes``, ``finetuning``,
  ``augmentation``.
"""

from .arguments import PretrainingArguments
from .builders import build_config, build_image_processor, build_model, compile_model, shard_model
from .data import (
    SeededTransformDataset,
    default_image_dataset,
    drop_corrupt_images,
    load_image_dataset,
    truncate_log,
)
from .optimization import (
    NO_DECAY_KEYWORDS,
    layer_decay_param_groups,
    layer_ids,
    param_groups,
    scaled_learning_rate,
)
from .pictures import pretraining_picture
from .pretrainer import PicturesCallback, Pretrainer, PretrainerCallback, run_fingerprint
from .resolve import ResolvedPretraining, first_set, resolve_pretraining

__all__ = [
    "NO_DECAY_KEYWORDS",
    "PicturesCallback",
    "Pretrainer",
    "PretrainerCallback",
    "PretrainingArguments",
    "ResolvedPretraining",
    "SeededTransformDataset",
    "build_config",
    "build_image_processor",
    "build_model",
    "default_image_dataset",
    "drop_corrupt_images",
    "first_set",
    "layer_decay_param_groups",
    "layer_ids",
    "load_image_dataset",
    "param_groups",
    "pretraining_picture",
    "resolve_pretraining",
    "run_fingerprint",
    "scaled_learning_rate",
    "compile_model",
    "shard_model",
    "truncate_log",
]
