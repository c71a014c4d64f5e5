"""``hf-mim convert``: turn a transformers checkpoint or an official release file into a complete hf_mim folder.

    hf-mim convert --method simmim --model_name_or_path microsoft/swin-base-simmim-window6-192 --output_dir out
    hf-mim convert --method hpm --model_name_or_path facebook/vit-mae-base --output_dir out   # MAE, mining off
    hf-mim convert --method maskfeat --checkpoint in1k_VIT_B_MaskFeat_PT_epoch_01600.pyth --output_dir out
    hf-mim convert --method simmim --checkpoint simmim_pretrain__vit_base__img224__800ep.pth --output_dir out
    hf-mim convert --method hpm --checkpoint mae_vit_base_patch16_dec512d8b_hpm_in1k_ep800_0799.pth --output_dir out

Official files are read with torch.load(weights_only=True) and a short allow-list; a file that needs arbitrary
unpickling is refused unless --trust_pickle. Every key of the file is mapped or deliberately dropped (listed in
all_results.json); anything else is an error that names the key. The folder holds safetensors weights, config, the
method's image processor, the modeling code (for ``trust_remote_code``) and a model card;
``AutoModelForPreTraining.from_pretrained(out)`` (fine-tuned SimMIM: ``AutoModelForImageClassification``) loads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config_overrides import parse_config_overrides
from ..convert import (
    convert_official_checkpoint,
    convert_transformers_checkpoint,
    official_card_notes,
    official_sources,
    save_converted,
)
from ..registry import get_model_spec, list_models
from . import run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hf-mim convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sources = official_sources()
    parser.add_argument("--method", required=True, choices=list_models())
    origin = parser.add_mutually_exclusive_group(required=True)
    origin.add_argument("--model_name_or_path", help="transformers checkpoint (folder or Hub id): simmim, hpm")
    origin.add_argument("--checkpoint", help="official release file (.pth / .pyth) of the method's own code")
    parser.add_argument("--source", choices=sorted({s for v in sources.values() for s in v}),
                        help="layout of --checkpoint (detected when omitted)")  # fmt: skip
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--config_overrides", default="", help='config fields, e.g. "num_attention_heads=16"')
    parser.add_argument("--trust_pickle", action="store_true",
                        help="allow full unpickling of --checkpoint (can run code; only for files you trust)")  # fmt: skip
    parser.add_argument("--total_epochs", type=int, help="HPM: length of the official run (default: its epoch)")
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_model_id")
    parser.add_argument("--hub_private", action="store_true")
    args = parser.parse_args(argv)
    spec = get_model_spec(args.method)
    if args.model_name_or_path and spec.transformers_loader is None:
        name = spec.config_class.__name__.removesuffix("Config")
        parser.error(f"--model_name_or_path: transformers has no {name}; use --checkpoint with an official file")
    if args.source and not args.checkpoint:
        parser.error("--source applies to --checkpoint only")
    if args.source and args.source not in sources.get(args.method, ()):
        parser.error(f"--source must be one of {list(sources.get(args.method, ()))} for --method {args.method}")
    if args.checkpoint and args.method not in sources:
        parser.error(f"--checkpoint: no official converter for --method {args.method}; one of {sorted(sources)}")
    if args.total_epochs is not None and (
        "total_epochs" not in spec.official_converter_options or not args.checkpoint
    ):
        with_it = [m for m in list_models() if "total_epochs" in get_model_spec(m).official_converter_options]
        parser.error(f"--total_epochs applies to --method {' / '.join(with_it)} --checkpoint only")
    if args.total_epochs is not None and args.total_epochs < 1:
        parser.error(f"--total_epochs must be a positive number of epochs, got {args.total_epochs}")
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    if args.checkpoint and not Path(args.checkpoint).is_file():
        parser.error(f"--checkpoint {args.checkpoint} is not a file")
    try:
        args.overrides = parse_config_overrides(args.config_overrides, args.method)
    except ValueError as err:
        parser.error(f"--config_overrides: {err}")
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    report = None
    if args.checkpoint:
        extra = {"total_epochs": args.total_epochs} if args.total_epochs else {}
        try:
            model, report = convert_official_checkpoint(args.method, args.checkpoint, args.source, args.overrides,
                                                        trust_pickle=args.trust_pickle, return_report=True, **extra)  # fmt: skip
        except ValueError as err:  # OfficialCheckpointError included: a clear message, not a traceback
            raise SystemExit(f"hf-mim convert: error: {err}") from None
        origin, notes = Path(args.checkpoint).name, official_card_notes(report)
    else:
        model = convert_transformers_checkpoint(args.method, args.model_name_or_path, **args.overrides)
        origin, notes = args.model_name_or_path, "hf_mim.convert (transformers weights)"
    written = save_converted(model, args.output_dir, origin, notes, report)
    out = Path(args.output_dir).resolve()
    print(f"Converted {origin} into {type(model).__name__}: wrote {', '.join(written)} to {out}/")
    if report:
        print(f"  {len(report['dropped'])} source key(s) dropped on purpose (listed in all_results.json)")
    if args.push_to_hub:
        from ..hub import push_folder

        url = push_folder(out, args.hub_model_id, private=args.hub_private)
        print(f"Pushed {out} to {args.hub_model_id}: {url}")
    return out


def run(argv: list[str] | None = None) -> int:
    """Console entry point (exit code 1 for a failed upload)."""
    return run_main(main, argv)
