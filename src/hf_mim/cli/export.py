"""``hf-mim export``: write the encoder of an hf_mim checkpoint as a plain transformers model.

    hf-mim export --model_name_or_path outputs/maskfeat --output_dir outputs/maskfeat-encoder

A run started from a released backbone (``hf-mim pretrain --init_from``) gives that backbone's class back (e.g. a
``Dinov2Model``) with its own image processor at the run's resolution and normalisation; other runs give a
``ViTModel`` / ``SwinModel`` / ``BeitModel`` with a ``ViTImageProcessor``. Downstream code then needs only
transformers: ``transformers.AutoModel.from_pretrained("outputs/maskfeat-encoder")``. The folder also holds a model
card (``base_model``: the pretraining run; the model-index of ``--eval_results``) and ``all_results.json``, so
``hf-mim push`` uploads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..export import export_checkpoint
from ..training.builders import load_checkpoint_config
from . import run_main


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="hf-mim export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_name_or_path", required=True, help="the hf_mim checkpoint (local folder or Hub id)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--eval_results",
        nargs="+",
        default=[],
        help="all_results.json files of hf-mim finetune runs (--knn, --linear_probe, fine-tuning): the card's "
        "model-index",
    )
    parser.add_argument(
        "--base_model",
        help="the card's base_model (default: the checkpoint's Hub id, or the repository its run was pushed to)",
    )
    parser.add_argument("--hub_model_id", help="the repository the export will be pushed to (named in its card)")
    args = parser.parse_args(argv)
    source = Path(args.model_name_or_path)
    if source.is_dir() and source.resolve() == Path(args.output_dir).resolve():
        parser.error("--output_dir must differ from --model_name_or_path: the export would overwrite the checkpoint")
    load_checkpoint_config(args.model_name_or_path)  # names the flag when there is no checkpoint
    backbone, written = export_checkpoint(args.model_name_or_path, args.output_dir, base_model=args.base_model,
                                          eval_results=args.eval_results, model_id=args.hub_model_id)  # fmt: skip
    out = Path(args.output_dir).resolve()
    print(f"Exported {type(backbone).__name__} to {out}/ ({', '.join(written)}); load it with "
          f"transformers.AutoModel.from_pretrained({str(out)!r}).")  # fmt: skip
    return out


def run(argv: list[str] | None = None) -> int:
    """Console entry point (one error line and exit code 2 for a user error)."""
    return run_main(main, argv)
