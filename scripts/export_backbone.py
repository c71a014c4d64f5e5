"""Write the encoder of an hf_mim checkpoint as a plain transformers ViTModel / SwinModel checkpoint.

    python scripts/export_backbone.py --model_name_or_path outputs/maskfeat --output_dir outputs/maskfeat-vit

Downstream code then needs only transformers: `transformers.ViTModel.from_pretrained("outputs/maskfeat-vit")`.
The image processor is copied along when the checkpoint has one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import AutoImageProcessor, AutoModel, ViTImageProcessor

import hf_mim  # noqa: F401  (registers the hf_mim classes)
from hf_mim.export import export_backbone


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)
    model = AutoModel.from_pretrained(args.model_name_or_path)
    backbone = export_backbone(model, args.output_dir)
    try:
        source = AutoImageProcessor.from_pretrained(args.model_name_or_path)
        # a transformers processor with the evaluation preprocessing, so no hf_mim code is needed downstream
        ViTImageProcessor(
            size={"height": source.image_size, "width": source.image_size},
            image_mean=source.image_mean,
            image_std=source.image_std,
        ).save_pretrained(args.output_dir)
    except (OSError, ValueError):
        pass
    print(f"Exported {type(backbone).__name__} to {args.output_dir}")
    return Path(args.output_dir)


if __name__ == "__main__":
    main()
