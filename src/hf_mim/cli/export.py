"""``hf-mim export``: write the encoder of an hf_mim checkpoint as a plain transformers ViTModel / SwinModel.

    hf-mim export --model_name_or_path outputs/maskfeat --output_dir outputs/maskfeat-vit

Downstream code then needs only transformers: ``transformers.ViTModel.from_pretrained("outputs/maskfeat-vit")``.
The checkpoint's evaluation preprocessing is written alongside as a transformers ``ViTImageProcessor``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import AutoImageProcessor, AutoModel, ViTImageProcessor

from ..export import export_backbone
from ..training.builders import load_checkpoint_config
from . import run_main


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="hf-mim export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_name_or_path", required=True)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)
    source = Path(args.model_name_or_path)
    if source.is_dir() and source.resolve() == Path(args.output_dir).resolve():
        parser.error("--output_dir must differ from --model_name_or_path: the export would overwrite the checkpoint")
    load_checkpoint_config(args.model_name_or_path)  # names the flag when there is no checkpoint
    model = AutoModel.from_pretrained(args.model_name_or_path)
    backbone = export_backbone(model, args.output_dir)
    written = ["config.json", "model.safetensors"]
    try:
        source = AutoImageProcessor.from_pretrained(args.model_name_or_path)
        # a transformers processor with the evaluation preprocessing, so no hf_mim code is needed downstream
        ViTImageProcessor(
            size={"height": source.image_size, "width": source.image_size},
            image_mean=source.image_mean,
            image_std=source.image_std,
        ).save_pretrained(args.output_dir)
        written.append("preprocessor_config.json")
    except (OSError, ValueError):
        pass
    out = Path(args.output_dir).resolve()
    print(f"Exported {type(backbone).__name__} to {out}/ ({', '.join(written)}); load it with "
          f"transformers.{type(backbone).__name__}.from_pretrained({str(out)!r}).")  # fmt: skip
    return out


def run(argv: list[str] | None = None) -> int:
    """Console entry point (one error line and exit code 2 for a user error)."""
    return run_main(main, argv)
