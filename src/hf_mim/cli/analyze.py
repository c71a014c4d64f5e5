"""``hf-mim analyze``: look inside pretrained encoders, side by side.

    hf-mim analyze --model_name_or_path outputs/maskfeat outputs/simmim outputs/scratch \
        --data_files val.parquet --num_images 256 --output_dir outputs/analysis [--mask_study]

For each checkpoint (hf_mim or a plain transformers ViT / BEiT): per-layer attention distance and entropy (every
head a dot), head diversity (mean pairwise KL) per layer, and the layer-by-layer linear CKA matrix, on the same
images with each checkpoint's own evaluation preprocessing. ``--mask_study`` adds SimMIM's AvgDist over mask ratios
and mask patch sizes, and the values of each method's default masks. Writes ``analysis.json`` and PNG figures
(figures need matplotlib: ``pip install hf_mim[analysis]``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import analysis, training
from ..training.builders import load_checkpoint_config
from . import run_main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hf-mim analyze", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model_name_or_path", nargs="+", default=[], help="checkpoints to compare (folders or Hub ids)")
    p.add_argument("--names", nargs="+", help="labels for the checkpoints (default: folder names)")
    p.add_argument("--dataset_name")
    p.add_argument("--train_dir", help="an imagefolder directory")
    p.add_argument("--data_files", nargs="+", help="parquet / arrow files (default: the embedded photos)")
    p.add_argument("--image_column", help="default: the one datasets.Image column, else image / img")
    p.add_argument("--num_images", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--output_dir", default="outputs/analysis")
    p.add_argument("--mask_study", action="store_true", help="AvgDist over mask ratios and mask patch sizes")
    p.add_argument("--num_masks", type=int, default=200, help="masks per setting in the mask study")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not args.model_name_or_path and not args.mask_study:
        p.error("give --model_name_or_path (one or more checkpoints) and/or --mask_study")
    if args.num_images < 1 or args.batch_size < 1:
        p.error("--num_images and --batch_size must be >= 1")
    if args.names and len(args.names) != len(args.model_name_or_path):
        p.error("--names needs one label per --model_name_or_path")
    return args


def load_images(args) -> tuple[list, str]:
    dataset, description = training.load_image_dataset(
        dataset_name=args.dataset_name, train_dir=args.train_dir, data_files=args.data_files,
        image_column=args.image_column, default_data_size=args.num_images,
    )  # fmt: skip
    if len(dataset) == 0:
        raise ValueError(f"The dataset ({description}) is empty: nothing to analyse.")
    rows = np.random.default_rng(args.seed).permutation(len(dataset))[: args.num_images]
    column = training.data.find_image_column(dataset, args.image_column, description)
    return list(dataset.select(np.sort(rows))[column]), description


def main(argv=None) -> dict:
    args = parse_args(argv)
    for checkpoint in args.model_name_or_path or ():  # every checkpoint exists before any work
        load_checkpoint_config(checkpoint)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    if args.model_name_or_path:
        images, description = load_images(args)
        results["images"] = {"source": description, "count": len(images), "seed": args.seed}
        names = args.names or [Path(p).name or p for p in args.model_name_or_path]
        results["models"] = {}
        for name, checkpoint in tqdm(list(zip(names, args.model_name_or_path)), desc="analyse"):
            results["models"][name] = {"checkpoint": checkpoint, **analysis.analyse_checkpoint(checkpoint, images,
                                                                                       args.batch_size)}  # fmt: skip
    if args.mask_study:
        results["mask_study"] = analysis.mask_study(args.num_masks, args.seed)
    (out / "analysis.json").write_text(json.dumps(results, indent=1))
    written = ["analysis.json", *analysis.figures(results, out)]
    print(f"Wrote {', '.join(written)} to {out.resolve()}/")
    for name, res in results.get("models", {}).items():
        distance, entropy = np.asarray(res["distance"]), np.asarray(res["entropy"])
        print(f"  {name}: mean attention distance per layer {np.round(distance.mean(1), 1).tolist()} px, "
              f"entropy {np.round(entropy.mean(1), 2).tolist()}, head KL {np.round(res['head_kl'], 3).tolist()}")  # fmt: skip
    return results


def run(argv: list[str] | None = None) -> int:
    """Console entry point (one error line and exit code 2 for a user error)."""
    return run_main(main, argv)
