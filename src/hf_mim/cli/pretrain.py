"""``hf-mim pretrain``: pretrain MaskFeat, SimMIM or HPM with accelerate.

    hf-mim pretrain                                              # the demo: small MaskFeat ViT, embedded photos
    accelerate launch -m hf_mim pretrain --method simmim --preset vit-base --dataset_name <hub id>
    torchrun --standalone --nproc_per_node 2 -m hf_mim pretrain --cpu ...   # 2-rank DDP on CPU (gloo)

Data: --dataset_name (+ --dataset_config), --train_dir (imagefolder) or --data_files (parquet / arrow / WebDataset
.tar, glob patterns allowed), each also --streaming (shuffled, split across processes and workers); none of them
means random crops of the photos that ship with scikit-image. Checkpoints go to OUTPUT_DIR/checkpoints/step-N
(complete or absent, never half-written); --resume_from_checkpoint latest continues with the same data order
(streams included), schedule and RNG state. At the end the model, image processor, model card, training
arguments and metrics are saved to OUTPUT_DIR (and pushed with --push_to_hub).

Parse -> resolve (hf_mim.training.resolve_pretraining) -> hf_mim.training.Pretrainer(...).train().
"""

from __future__ import annotations

import json

from transformers import HfArgumentParser

from ..training import Pretrainer, PretrainingArguments, ResolvedPretraining, resolve_pretraining
from . import HelpFormatter, run_main

LAST_MODEL = None  # the trained (unwrapped) model of the last main() call, for in-process checks


def parse_args(argv: list[str] | None = None) -> ResolvedPretraining:
    """The resolved run of ``argv``; a bad argument ends with one ``hf-mim pretrain: error: ...`` line (exit 2)."""
    parser = HfArgumentParser(PretrainingArguments, prog="hf-mim pretrain", description=__doc__,
                              formatter_class=HelpFormatter)  # fmt: skip
    try:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
        return resolve_pretraining(args)
    except ValueError as err:
        parser.error(str(err))


def main(argv: list[str] | None = None) -> dict:
    plan = parse_args(argv)
    if plan.args.dry_run:  # what would run, resolved; nothing is trained or written
        model = plan.build_model()
        report = plan.report(model, plan.build_image_processor(model.config))
        print(json.dumps(report, indent=2))
        return report
    global LAST_MODEL
    pretrainer = Pretrainer(args=plan)
    try:
        return pretrainer.train()
    finally:
        LAST_MODEL = pretrainer.model


def run(argv: list[str] | None = None) -> int:
    """Console entry point (exit code 1 for a failed upload)."""
    return run_main(main, argv)
