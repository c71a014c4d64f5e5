"""``hf-mim convert``: turn a transformers checkpoint into a complete hf_mim checkpoint folder.

    hf-mim convert --method simmim --model_name_or_path microsoft/swin-base-simmim-window6-192 --output_dir out
    hf-mim convert --method hpm --model_name_or_path facebook/vit-mae-base --output_dir out   # MAE, mining off

The folder holds safetensors weights, config, the method's image processor, the modeling code (for
``trust_remote_code``) and a model card; ``AutoModelForPreTraining.from_pretrained(out)`` loads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config_overrides import parse_config_overrides
from ..convert import convert_transformers_checkpoint, save_converted


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="hf-mim convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", required=True, choices=["simmim", "hpm"])
    parser.add_argument("--model_name_or_path", required=True, help="transformers checkpoint (folder or Hub id)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--config_overrides", default="", help='extra config fields, e.g. "hard_patches_mining=true"')
    args = parser.parse_args(argv)
    overrides = parse_config_overrides(args.config_overrides, args.method)
    model = convert_transformers_checkpoint(args.method, args.model_name_or_path, **overrides)
    written = save_converted(model, args.output_dir, args.model_name_or_path, "hf_mim.convert (transformers weights)")
    out = Path(args.output_dir).resolve()
    print(f"Converted {args.model_name_or_path} into {type(model).__name__}: wrote {', '.join(written)} to {out}/")
    return out


def run(argv: list[str] | None = None) -> int:
    main(argv)
    return 0
