"""``hf-mim finetune``: fine-tune (or linearly probe) an hf_mim checkpoint for image classification with Trainer.

    hf-mim finetune --model_name_or_path outputs/maskfeat --data_files train.parquet \
        --output_dir outputs/maskfeat-ft --num_train_epochs 10 --layer_decay 0.75
    hf-mim finetune --model_name_or_path me/maskfeat-demo --dataset_name <hub id> --linear_probe ...

Any hf_mim checkpoint (local folder or Hub id) loads through AutoModelForImageClassification: the pretrained
encoder plus a new head. Accuracy (and top-5 with more than 5 classes) comes from metric modules shipped inside
hf_mim, so evaluation works offline; the results go into the model card's model-index. All other flags are
transformers' TrainingArguments (--learning_rate, --per_device_train_batch_size, --eval_strategy, ...).

Parse -> hf_mim.training.finetune(args, training_args).
"""

from __future__ import annotations

from transformers import HfArgumentParser, TrainingArguments

from ..training.finetuner import FinetuneArguments, finetune
from ..training.resolve import explicit_flags
from . import HelpFormatter, run_main


def main(argv: list[str] | None = None) -> dict:
    parser = HfArgumentParser((FinetuneArguments, TrainingArguments), prog="hf-mim finetune", description=__doc__,
                              formatter_class=HelpFormatter)  # fmt: skip
    args, train_args = parser.parse_args_into_dataclasses(args=argv)
    return finetune(args, train_args, explicit_flags(argv))


def run(argv: list[str] | None = None) -> int:
    """Console entry point (exit code 1 for a failed upload)."""
    return run_main(main, argv)
