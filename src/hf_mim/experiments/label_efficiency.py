"""Does masked image modeling pay off with few labels? CIFAR-10, every method against the same architecture trained
from scratch, MAE next to HPM, several seeds, three protocols.

    python scripts/experiments/label_efficiency.py --train_file ../shared/data/cifar10/train.parquet --budget medium --cpu --output_dir outputs/label_efficiency
    python -m hf_mim.experiments.label_efficiency --train_file cifar10_train.parquet --budget long --test_file cifar10_test.parquet   # a GPU run

1. Split ``--train_file`` (a parquet file of ``image`` / ``label`` rows, e.g. CIFAR-10's training set) at random (``--seed``): ``--val_size``
   rows are held out for evaluation. (A plain tail would not do: the shared file is sorted by class.) The labelled
   subsets (1% and 10% of the file by default) are drawn class-balanced from the other rows.
2. For every seed, pretrain the same small ViT (32 px inputs, patch 4 = 64 tokens) with MaskFeat, SimMIM, MAE
   (HPM with mining off) and HPM on the non-held-out images (labels unused), with :class:`~hf_mim.training.Pretrainer`.
3. Rows: each pretrained encoder, and the two architectures trained from scratch -- ``scratch-vit`` (learned
   position embeddings: MaskFeat's and SimMIM's encoder) and ``scratch-mae`` (MAE/HPM's encoder with fixed sin-cos
   positions) -- so every pretrained row has a scratch row of its own architecture.
4. Protocols on every row, seed and label fraction: **kNN** (k=20, cosine, frozen pooled features, labelled
   subset as memory), **linear** probe and full **fine-tuning** (:func:`~hf_mim.training.finetune`, one recipe for all). Top-1 on
   the held-out rows (and ``--test_file``). HPM also reports the Spearman correlation of predicted and true
   per-patch losses.

Writes ``results.json`` (every run and the mean +- std over seeds), ``results.md`` (tables) and ``results.png``
(accuracy vs label fraction per protocol, error bars = std over seeds) to ``--output_dir``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..training import Pretrainer, PretrainingArguments
from ..training.checkpointing import write_json_atomic, write_text_atomic
from ..training.finetuner import FinetuneArguments, finetune

#: pretraining epochs; fine-tuning and linear-probe epochs at the smallest / the other label fractions; seeds.
#: ``medium`` fits about 2 hours on 2 CPU cores: twice ``short``'s pretraining (4 methods x 3 seeds take about an
#: hour), with shorter fine-tuning and probing to leave room for 6 rows x 3 seeds x 2 fractions of each; ``long``
#: is a GPU run.
BUDGETS = {
    "smoke": {"pretrain": 0.02, "finetune": (2, 1), "linear": (2, 1), "seeds": 1},
    "short": {"pretrain": 1, "finetune": (30, 4), "linear": (30, 4), "seeds": 1},
    "medium": {"pretrain": 2, "finetune": (20, 3), "linear": (10, 2), "seeds": 3},
    "long": {"pretrain": 100, "finetune": (100, 50), "linear": (100, 50), "seeds": 3},
}
VIT = {"image_size": 32, "patch_size": 4, "hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
       "intermediate_size": 512, "layer_norm_eps": 1e-6}  # fmt: skip
_DECODER = {"decoder_hidden_size": 128, "decoder_num_hidden_layers": 2, "decoder_num_attention_heads": 4,
            "decoder_intermediate_size": 512}  # fmt: skip
#: row -> (method, config); scratch rows are the architecture's pretraining model, saved untrained.
ROWS = {
    "maskfeat": ("maskfeat", {**VIT, "hog_cell_size": 4, "mask_min_num_patches": 4}),
    "simmim": ("simmim", {"backbone": "vit", "encoder_config": VIT, "mask_patch_size": 8}),
    "mae": ("hpm", {**VIT, **_DECODER, "hard_patches_mining": False}),
    "hpm": ("hpm", {**VIT, **_DECODER}),
    "scratch-vit": ("maskfeat", {**VIT, "hog_cell_size": 4, "mask_min_num_patches": 4}),
    "scratch-mae": ("hpm", {**VIT, **_DECODER, "hard_patches_mining": False}),
}
#: Which scratch row shares each row's architecture.
SCRATCH_OF = {"maskfeat": "scratch-vit", "simmim": "scratch-vit", "mae": "scratch-mae", "hpm": "scratch-mae"}
PROTOCOLS = ("knn", "linear", "finetune")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train_file", required=True, help="parquet of labelled images (image / label), e.g. CIFAR-10's")
    p.add_argument("--test_file", help="another parquet file of the same layout to evaluate on")
    p.add_argument("--output_dir", default="outputs/label_efficiency")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    p.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.1])
    p.add_argument("--budget", default="short", choices=list(BUDGETS))
    p.add_argument("--seeds", type=int, help="number of seeds (default: the budget's)")
    p.add_argument("--pretrain_epochs", type=float)
    p.add_argument("--val_size", type=int, default=5000)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--knn_k", type=int, default=20)
    p.add_argument("--seed", type=int, default=0, help="seed of the split; run seeds are seed, seed + 1, ...")
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed run in --output_dir: finished runs and pretrained checkpoints are kept")  # fmt: skip
    args = p.parse_args(argv)
    if not all(0 < f < 1 for f in args.fractions):
        p.error(f"--fractions must be in (0, 1), got {args.fractions}")
    if args.seeds is not None and args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    return args


def split_rows(labels: np.ndarray, val_size: int, fractions, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Held-out rows at random, and for each fraction a class-balanced labelled subset of the *other* rows, with
    ``fraction * len(labels)`` labels in all. Returns ``(held_out, pretraining_rows, {fraction: labelled})`` as
    sorted index arrays into ``labels``."""
    if not 0 < val_size < len(labels):
        raise ValueError(f"`val_size` must be in (0, {len(labels)}), got {val_size}.")
    order = np.random.default_rng(seed).permutation(len(labels))
    held_out, rest = np.sort(order[:val_size]), np.sort(order[val_size:])
    subsets = {f: rest[labelled_subset(labels[rest], f, len(labels), seed)] for f in fractions}
    return held_out, rest, subsets


def labelled_subset(labels: np.ndarray, fraction: float, total: int, seed: int) -> np.ndarray:
    """Class-balanced positions into ``labels``: ``fraction * total`` labels, equally many per class."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = max(1, int(round(fraction * total / len(classes))))
    short = [c for c in classes if (labels == c).sum() < per_class]
    if short:
        raise ValueError(f"Classes {short} have fewer than {per_class} rows for fraction {fraction}.")
    picks = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (0 for one run) of per-seed accuracies."""
    arr = np.asarray(values, dtype=float)
    return {"runs": [float(v) for v in arr], "mean": float(arr.mean()),
            "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0}  # fmt: skip


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


def knn_top1(checkpoint: Path, labelled, held_out, k: int) -> float:
    from transformers import AutoImageProcessor, AutoModel

    from ..evaluation import extract_features, knn_accuracy

    model = AutoModel.from_pretrained(checkpoint).eval()
    processor = AutoImageProcessor.from_pretrained(checkpoint)
    bank = extract_features(model, labelled, processor, desc="kNN bank")
    queries = extract_features(model, held_out, processor, desc="kNN queries")
    return knn_accuracy(bank, labelled["label"], queries, held_out["label"], k=min(k, len(bank)))


def write_splits(train_file: str, out: Path, val_size: int, fractions, seed: int):
    """Splits ``train_file`` (:func:`split_rows`) and writes ``out/data/{pretrain,val,labels_<f>}.parquet``.

    Returns:
        ``(held_out, {fraction: labelled subset})`` as ``datasets.Dataset`` objects.
    """
    import datasets

    if not Path(train_file).is_file():
        raise FileNotFoundError(f"--train_file {train_file} does not exist (a CIFAR-10 parquet with image/label).")
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    full = datasets.load_dataset("parquet", data_files=train_file, split="train")
    held_idx, rest_idx, subset_idx = split_rows(np.asarray(full["label"]), val_size, fractions, seed)
    held_out = full.select(held_idx)
    full.select(rest_idx).to_parquet(str(data_dir / "pretrain.parquet"))
    held_out.to_parquet(str(data_dir / "val.parquet"))
    subsets = {}
    for fraction, idx in subset_idx.items():
        subsets[fraction] = full.select(idx)
        subsets[fraction].to_parquet(str(data_dir / f"labels_{fraction:g}.parquet"))
    return held_out, subsets


def main(argv=None) -> dict:
    args = parse_args(argv)
    budget = BUDGETS[args.budget]
    seeds = [args.seed + i for i in range(args.seeds or budget["seeds"])]
    pretrain_epochs = args.pretrain_epochs if args.pretrain_epochs is not None else budget["pretrain"]
    out = Path(args.output_dir)
    held_out, subsets = write_splits(args.train_file, out, args.val_size, args.fractions, args.seed)
    started = time.perf_counter()
    results: dict = {
        "command": " ".join(["python", "-m", "hf_mim.experiments.label_efficiency", *(argv or sys.argv[1:])]),
        "budget": args.budget, "seeds": seeds, "pretrain_epochs": pretrain_epochs,
        "finetune_epochs": list(budget["finetune"]), "linear_epochs": list(budget["linear"]),
        "fractions": args.fractions, "train_file": str(args.train_file), "held_out_rows": len(held_out),
        "machine": f"{platform.platform()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "rows": {}, "runs": [], "wall_seconds": 0.0,
    }  # fmt: skip
    keys = ("budget", "seeds", "pretrain_epochs", "fractions", "train_file")
    earlier = resume_results(out, results, keys, "experiment") if args.resume else 0.0
    done = {(r["row"], r["seed"], r["protocol"], r["fraction"]) for r in results["runs"]}
    for seed in seeds:
        for row in args.rows:
            ckpt = prepare_row(row, seed, out, pretrain_epochs, args, results)
            for fraction in args.fractions:
                for protocol in args.protocols:
                    if (row, seed, protocol, fraction) in done:
                        continue
                    accuracy, test = evaluate_row(protocol, ckpt, fraction, subsets, held_out, budget, seed, out, row,
                                                  args)  # fmt: skip
                    run = {"row": row, "seed": seed, "protocol": protocol, "fraction": fraction, "top1": accuracy}
                    results["runs"].append({**run, **({"test_top1": test} if test is not None else {})})
                    results["wall_seconds"] = round(earlier + time.perf_counter() - started, 1)
                    summarize(results)
                    write_outputs(results, out, quiet=True)  # after every run: a killed run keeps what it did
    results["wall_seconds"] = round(earlier + time.perf_counter() - started, 1)
    summarize(results)
    write_outputs(results, out)
    return results


def resume_results(out: Path, results: dict, keys, what: str) -> float:
    """Takes the rows, runs and command of ``out/results.json`` into ``results`` (a fresh start when there is
    none) after checking that ``keys`` agree. Returns the wall seconds already spent.

    Raises:
        ValueError: the saved file is another ``what`` (names the keys that differ).
    """
    path = out / "results.json"
    if not path.is_file():
        return 0.0
    saved = json.loads(path.read_text())
    differ = [k for k in keys if saved.get(k) != results[k]]
    if differ:
        raise ValueError(f"--resume: {path} is another {what} ({', '.join(differ)} differ); use another --output_dir.")
    results["rows"], results["runs"], results["command"] = saved["rows"], saved["runs"], saved["command"]
    return saved.get("wall_seconds", 0.0)


def prepare_row(row: str, seed: int, out: Path, epochs: float, args, results: dict, spec=None) -> Path:
    """The row's checkpoint for ``seed``: pretrained with its method, or (scratch) saved at initialisation.
    ``spec`` = ``(method, config)`` for rows outside :data:`ROWS` (the ablation study's variants)."""
    method, config = spec or ROWS[row]
    ckpt = out / f"seed{seed}" / row
    info = results["rows"].setdefault(row, {"method": method, "scratch_row": SCRATCH_OF.get(row)})
    if row.startswith("scratch"):
        from hf_mim import get_model_spec, training

        torch.manual_seed(seed)
        model = training.build_model(method, training.build_config(method, **config))
        model.save_pretrained(ckpt)
        get_model_spec(method).image_processor_class.from_model_config(model.config).save_pretrained(ckpt)
        return ckpt
    config_file = out / f"{row}_config.json"
    config_file.write_text(json.dumps(config))
    finished = ckpt / "all_results.json"
    if not (args.resume and finished.is_file()):  # a complete pretraining (all_results.json is written last)
        Pretrainer(args=PretrainingArguments(
            method=method, config_file=str(config_file), data_files=[str(out / "data" / "pretrain.parquet")],
            output_dir=str(ckpt), num_train_epochs=epochs, max_steps=0, overwrite_output_dir=True,
            per_device_train_batch_size=args.batch_size, base_learning_rate=1.5e-4, picture_steps=0, logging_steps=50,
            seed=seed, cpu=args.cpu,
        )).train()  # fmt: skip
    metrics = json.loads(finished.read_text())
    record = info.setdefault("pretrain", {}).setdefault(str(seed), {})
    record.update({"seconds": metrics["train_runtime_s"], "final_loss": metrics["train_loss"],
                   "recipe": json.loads((ckpt / "training_args.json").read_text()).get("recipe")})  # fmt: skip
    mining = json.loads((ckpt / "config.json").read_text()).get("hard_patches_mining", False)  # HPM, not MAE
    if mining and "hpm_spearman" not in record:
        held_out = __import__("datasets").load_dataset("parquet", data_files=str(out / "data" / "val.parquet"),
                                                       split="train")  # fmt: skip
        record["hpm_spearman"] = hpm_spearman(ckpt, held_out)
    return ckpt


def evaluate_row(protocol, ckpt, fraction, subsets, held_out, budget, seed, out, row, args):
    """Top-1 on the held-out rows (and on ``--test_file``, or None) of one protocol."""
    if protocol == "knn":
        return knn_top1(ckpt, subsets[fraction], held_out, args.knn_k), None
    smallest = fraction == min(args.fractions)
    epochs = budget[protocol][0 if smallest else 1]
    ft_dir = out / f"seed{seed}" / f"{protocol}_{row}_{fraction:g}"
    from transformers import TrainingArguments

    metrics = finetune(
        FinetuneArguments(
            model_name_or_path=str(ckpt), data_files=[str(out / "data" / f"labels_{fraction:g}.parquet")],
            validation_files=[str(out / "data" / "val.parquet")], crop_scale_min=0.5, linear_probe=protocol == "linear",
        ),
        TrainingArguments(
            output_dir=str(ft_dir), num_train_epochs=epochs, per_device_train_batch_size=64,
            per_device_eval_batch_size=256, learning_rate=1e-3, weight_decay=0.05 if protocol == "finetune" else 0.0,
            warmup_steps=0.1, lr_scheduler_type="cosine", save_strategy="no", report_to="none", logging_steps=50,
            seed=seed, use_cpu=args.cpu,
        ),
    )  # fmt: skip
    return float(metrics["eval_accuracy"]), (top1_on_file(ft_dir, args.test_file) if args.test_file else None)


def top1_on_file(checkpoint: Path, test_file: str) -> float:
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


def summarize(results: dict) -> None:
    """``results["summary"][row][protocol][fraction]`` = mean +- std over seeds, and the gain over the row's own
    scratch architecture (difference of means, with the two stds combined)."""
    summary: dict = {}
    for run in results["runs"]:
        cell = summary.setdefault(run["row"], {}).setdefault(run["protocol"], {})
        cell.setdefault(f"{run['fraction']:g}", []).append(run["top1"])
    for row in summary.values():
        for protocol, cells in row.items():
            row[protocol] = {f: mean_std(v) for f, v in cells.items()}
    for name, row in summary.items():
        scratch = summary.get(SCRATCH_OF.get(name, ""), {})
        for protocol, cells in row.items():
            for fraction, cell in cells.items():
                ref = scratch.get(protocol, {}).get(fraction)
                if ref is not None:
                    cell["gain_over_scratch"] = cell["mean"] - ref["mean"]
                    cell["gain_std"] = float(np.hypot(cell["std"], ref["std"]))
    results["summary"] = summary


def write_outputs(results: dict, out: Path, quiet: bool = False) -> None:
    summary = results.get("summary", {})
    fractions = [f"{f:g}" for f in results["fractions"]]
    lines = [f"budget `{results['budget']}`: pretraining {results['pretrain_epochs']} epoch(s), fine-tuning "
             f"{results['finetune_epochs']} / linear {results['linear_epochs']} epochs at {fractions} of the labels, "
             f"seeds {results['seeds']}; top-1 % on {results['held_out_rows']} held-out rows, mean +- std over "
             "seeds (gain over the same architecture from scratch)", ""]  # fmt: skip
    for protocol in PROTOCOLS:
        rows = [(n, r[protocol]) for n, r in summary.items() if protocol in r]
        if not rows:
            continue
        lines += [f"**{protocol}**", "", "| row | " + " | ".join(f"{float(f) * 100:g}% labels" for f in fractions) + " |",
                  "|---|" + "---:|" * len(fractions)]  # fmt: skip
        for name, cells in rows:
            text = []
            for f in fractions:
                c = cells.get(f)
                if c is None:
                    text.append("-")
                    continue
                gain = f" ({100 * c['gain_over_scratch']:+.1f})" if "gain_over_scratch" in c else ""
                text.append(f"{100 * c['mean']:.1f} +- {100 * c['std']:.1f}{gain}")
            lines.append(f"| {name} | " + " | ".join(text) + " |")
        lines.append("")
    for name, info in results["rows"].items():
        spear = [r["hpm_spearman"] for r in info.get("pretrain", {}).values() if "hpm_spearman" in r]
        if spear:
            lines.append(f"HPM Spearman ({name}): {np.mean(spear):.3f} (per seed {[round(v, 3) for v in spear]})")
    minutes = {n: [r["seconds"] / 60 for r in i.get("pretrain", {}).values()] for n, i in results["rows"].items()}
    lines.append(
        "Pretraining minutes per seed: " + ", ".join(f"{n} {np.mean(m):.1f}" for n, m in minutes.items() if m)
    )
    lines.append(f"Wall time: {results['wall_seconds'] / 60:.0f} min on {results['machine']}.")
    write_text_atomic(out / "results.md", "\n".join(lines) + "\n")
    write_json_atomic(out / "results.json", results)
    plot(summary, fractions, out / "results.png")
    if not quiet:
        print("\n".join(lines) + f"\nWritten to {out / 'results.md'}")


def plot(summary: dict, fractions: list[str], path: Path) -> None:
    """Accuracy vs label fraction, one panel per protocol, error bars = std over seeds (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no results.png (pip install 'hf_mim[analysis]').")
        return
    protocols = [p for p in PROTOCOLS if any(p in r for r in summary.values())]
    fig, axes = plt.subplots(1, len(protocols), figsize=(4.2 * len(protocols), 3.6), squeeze=False)
    xs = [float(f) * 100 for f in fractions]
    for ax, protocol in zip(axes[0], protocols):
        for name, row in summary.items():
            cells = row.get(protocol, {})
            if not all(f in cells for f in fractions):
                continue
            style = "--" if name.startswith("scratch") else "-"
            ax.errorbar(xs, [100 * cells[f]["mean"] for f in fractions], yerr=[100 * cells[f]["std"] for f in fractions],
                        label=name, linestyle=style, marker="o", capsize=3)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:g}%" for x in xs])
        ax.set_title(protocol)
        ax.set_xlabel("labels")
        ax.set_ylabel("top-1 (%)")
        ax.grid(alpha=0.3)
    if axes[0][-1].get_legend_handles_labels()[0]:
        axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(argv=None) -> int:
    """Console entry point (one error line and exit code 2 for a user error)."""
    from ..console import run_main

    return run_main(main, argv, name="experiments.label_efficiency")


if __name__ == "__main__":
    sys.exit(run())
