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
import torch
from tqdm.auto import tqdm

from .. import analysis, training
from ..image_processing import MaskedImageProcessor
from ..training.builders import load_checkpoint_config
from . import run_main

MASK_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MASK_PATCH_SIZES = (4, 8, 16, 32, 64)


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


def preprocess(checkpoint: str, images: list) -> torch.Tensor:
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(checkpoint)
    if isinstance(processor, MaskedImageProcessor):
        return processor(images, augment=False, return_mask=False)["pixel_values"]
    return processor([image.convert("RGB") for image in images], return_tensors="pt")["pixel_values"]


def analyse_checkpoint(checkpoint: str, images: list, batch_size: int) -> dict:
    from transformers import AutoModel

    import hf_mim  # noqa: F401  (registers the hf_mim Auto classes)

    model = AutoModel.from_pretrained(checkpoint).eval()
    pixel_values = preprocess(checkpoint, images)
    stats = analysis.attention_statistics(model, pixel_values, batch_size=batch_size)
    cka = analysis.layer_similarity(model, pixel_values, batch_size=batch_size)
    return {"model_type": model.config.model_type, **{k: v.tolist() for k, v in stats.items()}, "cka": cka.tolist()}


def mask_study(num_masks: int, seed: int) -> dict:
    from ..masking import SimMIMMaskGenerator
    from ..registry import get_model_spec, list_models

    table = {}
    for size in tqdm(MASK_PATCH_SIZES, desc="mask study"):
        for ratio in MASK_RATIOS:
            if SimMIMMaskGenerator.hides_every_cell(192, size, ratio):  # nothing visible: AvgDist undefined
                table[f"{size}/{ratio:g}"] = None
                continue
            generator = SimMIMMaskGenerator(192, size, min(size, 4), ratio)
            table[f"{size}/{ratio:g}"] = analysis.mask_statistics(
                generator, num_masks, seed=seed, pixel_size=min(size, 4)
            )
    defaults = {}
    for method in list_models():
        spec = get_model_spec(method)
        processor = spec.image_processor_class()
        if processor.mask_type is None:  # HPM: its teacher masks; its random share is MAE's
            processor = spec.image_processor_class(mask_type="random")
        defaults[method] = analysis.mask_statistics(processor, num_masks, seed=seed)
    return {"image_size": 192, "random_masks": table, "method_defaults": defaults}


def figures(results: dict, out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: wrote analysis.json only (pip install 'hf_mim[analysis]' for figures).")
        return []
    written = []
    models = results.get("models", {})
    if models:
        for key, label in (("distance", "attention distance (px)"), ("entropy", "attention entropy (nats)")):
            fig, ax = plt.subplots(figsize=(7, 4))
            for i, (name, res) in enumerate(models.items()):
                values = np.asarray(res[key])
                layers = np.arange(1, len(values) + 1)
                for head in range(values.shape[1]):
                    ax.scatter(layers + 0.12 * (i - len(models) / 2), values[:, head], s=12, color=f"C{i}",
                               label=name if head == 0 else None)  # fmt: skip
            ax.set(xlabel="layer", ylabel=label, title=f"{label}: every head a dot")
            ax.legend()
            fig.tight_layout()
            fig.savefig(out / f"attention_{key}.png", dpi=120)
            plt.close(fig)
            written.append(f"attention_{key}.png")
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, (name, res) in enumerate(models.items()):
            ax.plot(np.arange(1, len(res["head_kl"]) + 1), res["head_kl"], "o-", color=f"C{i}", label=name)
        ax.set(xlabel="layer", ylabel="mean KL between heads", title="head diversity")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "head_kl.png", dpi=120)
        plt.close(fig)
        fig, axes = plt.subplots(1, len(models), figsize=(2.6 * len(models) + 1.2, 3.0), squeeze=False,
                                 layout="constrained")  # fmt: skip
        for ax, (name, res) in zip(axes[0], models.items()):
            image = ax.imshow(np.asarray(res["cka"]), vmin=0, vmax=1, cmap="magma", origin="lower")
            ax.set(title=name, xlabel="layer (0 = embedding)", ylabel="layer" if ax is axes[0][0] else None)
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.9, label="linear CKA", pad=0.01)
        fig.savefig(out / "cka.png", dpi=120)
        plt.close(fig)
        written += ["head_kl.png", "cka.png"]
    if "mask_study" in results:
        study = results["mask_study"]["random_masks"]
        fig, ax = plt.subplots(figsize=(6, 4))
        for i, size in enumerate(MASK_PATCH_SIZES):
            ratios = [r for r in MASK_RATIOS if study[f"{size}/{r:g}"] is not None]
            ax.plot(ratios, [study[f"{size}/{r:g}"]["avg_dist"] for r in ratios], "o-", color=f"C{i}",
                    label=f"mask patch {size} px")  # fmt: skip
        ax.set(xlabel="mask ratio", ylabel="AvgDist (px)", title="SimMIM AvgDist, 192 px images")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "mask_avgdist.png", dpi=120)
        plt.close(fig)
        written.append("mask_avgdist.png")
    return written


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
            results["models"][name] = {"checkpoint": checkpoint, **analyse_checkpoint(checkpoint, images,
                                                                                       args.batch_size)}  # fmt: skip
    if args.mask_study:
        results["mask_study"] = mask_study(args.num_masks, args.seed)
    (out / "analysis.json").write_text(json.dumps(results, indent=1))
    written = ["analysis.json", *figures(results, out)]
    print(f"Wrote {', '.join(written)} to {out.resolve()}/")
    for name, res in results.get("models", {}).items():
        distance, entropy = np.asarray(res["distance"]), np.asarray(res["entropy"])
        print(f"  {name}: mean attention distance per layer {np.round(distance.mean(1), 1).tolist()} px, "
              f"entropy {np.round(entropy.mean(1), 2).tolist()}, head KL {np.round(res['head_kl'], 3).tolist()}")  # fmt: skip
    return results


def run(argv: list[str] | None = None) -> int:
    """Console entry point (one error line and exit code 2 for a user error)."""
    return run_main(main, argv)
