"""Does masked image modeling pay off with few labels? One command, CIFAR-10, every method against scratch.

    python scripts/experiments/label_efficiency.py --budget short --output_dir outputs/label_efficiency
    python -m hf_mim.experiments.label_efficiency --budget long --test_file cifar10_test.parquet   # a GPU run

1. Split `--train_file` (default: the shared CIFAR-10 training parquet) at random (seeded): `--val_size` rows are
   held out. (A plain tail would not do: the shared file is sorted by class.)
2. Pretrain the same small ViT (32 px inputs, patch 4, so 64 tokens) with each method on the remaining images
   (labels unused), through `hf-mim pretrain` (hf_mim.cli.pretrain).
3. Fine-tune each pretrained encoder, and the same architecture from a random initialisation (scratch), on 1% and
   10% of the labels of the full training set (a fixed, class-balanced subset drawn from the non-held-out rows),
   through `hf-mim finetune` with one recipe for all; evaluate top-1 on the held-out rows (and `--test_file`).
4. For HPM, the Spearman correlation between predicted and true per-patch reconstruction loss on held-out images.

Prints and writes `results.md` / `results.json` in the output folder. `--budget` picks epochs for a short CPU
run or a long GPU run; `--pretrain_epochs` / `--finetune_epochs_1` / `--finetune_epochs_10` override them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..cli import finetune, pretrain

#: The CIFAR-10 training parquet next to a checkout of the project (relative to the working directory).
DEFAULT_TRAIN = Path("..") / "shared" / "data" / "cifar10" / "train.parquet"
BUDGETS = {  # pretraining epochs, fine-tuning epochs at 1% and 10% of the labels
    "smoke": (0.02, 2, 1),
    "short": (1, 30, 4),
    "long": (100, 100, 50),
}
VIT = {"image_size": 32, "patch_size": 4, "hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
       "intermediate_size": 512, "layer_norm_eps": 1e-6}  # fmt: skip
CONFIGS = {
    "maskfeat": {**VIT, "hog_cell_size": 4, "mask_min_num_patches": 4},
    "simmim": {"backbone": "vit", "encoder_config": VIT, "mask_patch_size": 8},
    "hpm": {
        **VIT,
        "decoder_hidden_size": 128,
        "decoder_num_hidden_layers": 2,
        "decoder_num_attention_heads": 4,
        "decoder_intermediate_size": 512,
    },  # fmt: skip
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train_file", default=str(DEFAULT_TRAIN))
    p.add_argument("--test_file", help="another parquet file of the same layout to evaluate on")
    p.add_argument("--output_dir", default="outputs/label_efficiency")
    p.add_argument("--methods", nargs="+", default=["maskfeat", "simmim", "hpm"])
    p.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.1])
    p.add_argument("--budget", default="short", choices=sorted(BUDGETS))
    p.add_argument("--pretrain_epochs", type=float)
    p.add_argument("--finetune_epochs_1", type=float, help="fine-tuning epochs at the smallest label fraction")
    p.add_argument("--finetune_epochs_10", type=float, help="fine-tuning epochs at the other fractions")
    p.add_argument("--val_size", type=int, default=5000)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu", action="store_true")
    return p.parse_args(argv)


def labelled_subset(labels: np.ndarray, fraction: float, total: int, seed: int) -> np.ndarray:
    """Class-balanced indices: `fraction * total` labels, equally many per class."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = max(1, int(round(fraction * total / len(classes))))
    picks = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


def hpm_spearman(checkpoint: Path, held_out, count: int = 512) -> float:
    from transformers import AutoImageProcessor, AutoModelForPreTraining

    model = AutoModelForPreTraining.from_pretrained(checkpoint).eval()
    processor = AutoImageProcessor.from_pretrained(checkpoint)
    rhos = []
    images = held_out.select(range(min(count, len(held_out))))["image"]
    with torch.no_grad():
        for i in range(0, len(images), 128):
            out = model(**processor(images[i : i + 128], augment=False, seed=i, return_mask=False))
            for b in range(out.mask.shape[0]):
                sel = out.mask[b]
                pred, true = out.predicted_patch_loss[b][sel].numpy(), out.patch_loss[b][sel].numpy()
                ranks = np.argsort(np.argsort(pred)), np.argsort(np.argsort(true))
                rhos.append(np.corrcoef(*ranks)[0, 1])
    return float(np.nanmean(rhos))


def main(argv=None) -> dict:
    import datasets

    args = parse_args(argv)
    if not Path(args.train_file).is_file():
        raise FileNotFoundError(
            f"--train_file {args.train_file} does not exist (a CIFAR-10 parquet with image/label)."
        )
    budget = BUDGETS[args.budget]
    pretrain_epochs = args.pretrain_epochs if args.pretrain_epochs is not None else budget[0]
    ft_small = args.finetune_epochs_1 if args.finetune_epochs_1 is not None else budget[1]
    ft_large = args.finetune_epochs_10 if args.finetune_epochs_10 is not None else budget[2]
    out = Path(args.output_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    full = datasets.load_dataset("parquet", data_files=args.train_file, split="train")
    total = len(full)
    order = np.random.default_rng(args.seed).permutation(total)
    train_rows = full.select(np.sort(order[args.val_size :]))
    held_out = full.select(np.sort(order[: args.val_size]))
    train_rows.to_parquet(str(out / "data" / "pretrain.parquet"))
    held_out.to_parquet(str(out / "data" / "val.parquet"))
    labels = np.asarray(train_rows["label"])
    subsets = {}
    for fraction in args.fractions:
        path = out / "data" / f"labels_{fraction:g}.parquet"
        train_rows.select(labelled_subset(labels, fraction, total, args.seed)).to_parquet(str(path))
        subsets[fraction] = path
    common = ["--seed", str(args.seed)] + (["--cpu"] if args.cpu else [])
    results: dict = {"budget": args.budget, "pretrain_epochs": pretrain_epochs, "finetune_epochs": [ft_small, ft_large],
                     "train_file": args.train_file, "rows": {}}  # fmt: skip

    checkpoints = {}
    for method in args.methods:
        config_file = out / f"{method}_config.json"
        config_file.write_text(json.dumps(CONFIGS[method]))
        ckpt = out / f"pretrain_{method}"
        start = time.perf_counter()
        metrics = pretrain.main([
            "--method", method, "--config_file", str(config_file), "--data_files", str(out / "data" / "pretrain.parquet"),
            "--output_dir", str(ckpt), "--num_train_epochs", str(pretrain_epochs), "--max_steps", "0",
            "--per_device_train_batch_size", str(args.batch_size), "--base_learning_rate", "1.5e-4",
            "--picture_steps", "0", "--logging_steps", "50", *common,
        ])  # fmt: skip
        checkpoints[method] = ckpt
        row = results["rows"].setdefault(method, {})
        row["pretrain_seconds"] = round(time.perf_counter() - start, 1)
        row["pretrain_final_loss"] = metrics["train_loss"]
        if method == "hpm":
            row["hpm_spearman"] = hpm_spearman(ckpt, held_out)
    # scratch: the same architecture, randomly initialised (MaskFeat's classifier is a plain ViT + linear head)
    from hf_mim import MaskFeatConfig, MaskFeatForPreTraining, MaskFeatImageProcessor

    torch.manual_seed(args.seed)
    scratch = MaskFeatForPreTraining(MaskFeatConfig(**CONFIGS["maskfeat"]))
    scratch.save_pretrained(out / "scratch")
    MaskFeatImageProcessor.from_model_config(scratch.config).save_pretrained(out / "scratch")
    checkpoints["scratch"] = out / "scratch"
    results["rows"].setdefault("scratch", {})["pretrain_seconds"] = 0.0

    for name, ckpt in checkpoints.items():
        for fraction, data in subsets.items():
            epochs = ft_small if fraction == min(args.fractions) else ft_large
            ft_dir = out / f"finetune_{name}_{fraction:g}"
            extra = ["--validation_files", str(out / "data" / "val.parquet")]
            metrics = finetune.main([
                "--model_name_or_path", str(ckpt), "--data_files", str(data), *extra, "--output_dir", str(ft_dir),
                "--num_train_epochs", str(epochs), "--per_device_train_batch_size", "64",
                "--per_device_eval_batch_size", "256", "--learning_rate", "1e-3", "--weight_decay", "0.05",
                "--warmup_steps", "0.1", "--lr_scheduler_type", "cosine", "--save_strategy", "no",
                "--report_to", "none", "--logging_steps", "50", "--seed", str(args.seed), "--crop_scale_min", "0.5",
                *(["--use_cpu"] if args.cpu else []),
            ])  # fmt: skip
            row = results["rows"][name]
            row[f"top1_{fraction:g}"] = metrics["eval_accuracy"]
            if args.test_file:
                row[f"test_top1_{fraction:g}"] = _evaluate(ft_dir, args.test_file)
    write_table(results, args, out)
    return results


def _evaluate(checkpoint: Path, test_file: str) -> float:
    import datasets
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(checkpoint).eval()
    processor = AutoImageProcessor.from_pretrained(checkpoint)
    data = datasets.load_dataset("parquet", data_files=test_file, split="train")
    correct = 0
    with torch.no_grad():
        for i in range(0, len(data), 256):
            rows = data[i : i + 256]
            logits = model(**processor(rows["image"], augment=False, return_mask=False)).logits
            correct += int((logits.argmax(-1) == torch.as_tensor(rows["label"])).sum())
    return correct / len(data)


def write_table(results: dict, args, out: Path) -> None:
    fractions = [f"{f:g}" for f in args.fractions]
    header = "| method | " + " | ".join(f"top-1 @ {float(f) * 100:g}% labels" for f in fractions)
    header += " | pretraining time (s) | HPM Spearman |"
    lines = [header, "|" + " --- |" * (len(fractions) + 3)]
    for name, row in results["rows"].items():
        cells = [f"{100 * row[f'top1_{f}']:.1f}" if f"top1_{f}" in row else "-" for f in fractions]
        spearman = f"{row['hpm_spearman']:.3f}" if "hpm_spearman" in row else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row.get('pretrain_seconds', 0):.0f} | {spearman} |")
    table = "\n".join(lines)
    budget = (f"budget `{results['budget']}`: pretraining {results['pretrain_epochs']} epoch(s), fine-tuning "
              f"{results['finetune_epochs'][0]} / {results['finetune_epochs'][1]} epochs")  # fmt: skip
    (out / "results.md").write_text(f"{budget}\n\n{table}\n")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{budget}\n{table}\nWritten to {out / 'results.md'}")


def run(argv=None) -> int:
    main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(run())
