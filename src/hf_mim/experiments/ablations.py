"""A short CPU study of the papers' ablation switches on CIFAR-10: MaskFeat's targets and SimMIM's masking cell and
loss, each pretrained like a label-efficiency row and scored by kNN and fine-tuning at one label fraction.

    python -m hf_mim.experiments.ablations --train_file ../shared/data/cifar10/train.parquet --budget short --cpu --output_dir outputs/ablations

Every variant is the label-efficiency experiment's small ViT (32 px, patch 4) with one switch changed
(``VARIANTS``), pretrained on the same non-held-out rows for the budget's epochs, then evaluated with the same
protocols on the same held-out rows (hf_mim.experiments.label_efficiency does the work), for several seeds. Each
variant is compared with its method's reference (``REFERENCE``: the setting of the label-efficiency row) seed by
seed: same split, same seed, one switch apart. Writes ``results.json`` (every run, mean +- std over seeds and the
paired differences), ``results.md`` (the table) and ``results.png`` to ``--output_dir``; ``--resume`` continues a
killed run.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..training.checkpointing import write_json_atomic, write_text_atomic
from . import label_efficiency as le

_MASKFEAT = le.ROWS["maskfeat"][1]
_SIMMIM = le.ROWS["simmim"][1]
#: variant -> (method, config, the switch it shows)
VARIANTS = {
    "maskfeat target=hog": ("maskfeat", _MASKFEAT, "target"),
    "maskfeat target=pixel": ("maskfeat", {**_MASKFEAT, "target": "pixel"}, "target"),
    "maskfeat target=hog+pixel": ("maskfeat", {**_MASKFEAT, "target": "hog+pixel"}, "target"),
    "simmim mask_patch_size=4": ("simmim", {**_SIMMIM, "mask_patch_size": 4}, "mask_patch_size"),
    "simmim mask_patch_size=8": ("simmim", _SIMMIM, "mask_patch_size / loss"),
    "simmim mask_patch_size=16": ("simmim", {**_SIMMIM, "mask_patch_size": 16}, "mask_patch_size"),
    "simmim loss=l2": ("simmim", {**_SIMMIM, "loss": "l2"}, "loss"),
}
#: The variant each method's others are compared with: the label-efficiency row's setting (HOG; L1 on an 8 px cell).
REFERENCE = {"maskfeat": "maskfeat target=hog", "simmim": "simmim mask_patch_size=8"}
PROTOCOLS = ("knn", "finetune")
PROTOCOL_NAMES = {"knn": "kNN", "finetune": "fine-tune"}
#: pretraining epochs; fine-tuning (and unused linear) epochs as in label_efficiency.BUDGETS; default seeds.
BUDGETS = {"smoke": {"pretrain": 0.02, "finetune": (1, 1), "linear": (1, 1), "seeds": 1},
           "short": {"pretrain": 1, "finetune": (4, 4), "linear": (3, 3), "seeds": 3}}  # fmt: skip


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train_file", required=True, help="parquet of labelled images (image / label), e.g. CIFAR-10's")
    p.add_argument("--output_dir", default="outputs/ablations")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--budget", default="short", choices=list(BUDGETS))
    p.add_argument("--seeds", type=int, help="number of seeds (default: the budget's)")
    p.add_argument("--val_size", type=int, default=5000)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0, help="seed of the split; run seeds are seed, seed + 1, ...")
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed run in --output_dir: finished runs and pretrained checkpoints are kept")  # fmt: skip
    args = p.parse_args(argv)
    if not 0 < args.fraction < 1:
        p.error(f"--fraction must be in (0, 1), got {args.fraction}")
    if args.seeds is not None and args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    return args


def variant_key(name: str) -> str:
    """Folder-safe name: ``maskfeat target=hog+pixel`` -> ``maskfeat_target-hog_pixel``."""
    return name.replace(" ", "_").replace("=", "-").replace("+", "_")


def main(argv=None) -> dict:
    args = parse_args(argv)
    budget = BUDGETS[args.budget]
    seeds = [args.seed + i for i in range(args.seeds or budget["seeds"])]
    out = Path(args.output_dir)
    held_out, labelled = le.write_splits(args.train_file, out, args.val_size, [args.fraction], args.seed)
    options = argparse.Namespace(fractions=[args.fraction], batch_size=args.batch_size, cpu=args.cpu,
                                 resume=args.resume, knn_k=20, test_file=None)  # fmt: skip
    results: dict = {
        "command": " ".join(["python", "-m", "hf_mim.experiments.ablations", *(argv or sys.argv[1:])]),
        "budget": args.budget, "pretrain_epochs": budget["pretrain"], "finetune_epochs": budget["finetune"][0],
        "fraction": args.fraction, "seeds": seeds, "train_file": str(args.train_file), "held_out_rows": len(held_out),
        "machine": f"{platform.platform()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "reference": REFERENCE, "rows": {}, "runs": [], "wall_seconds": 0.0,
    }  # fmt: skip
    keys = ("budget", "seeds", "fraction", "train_file")
    earlier = le.resume_results(out, results, keys, "study") if args.resume else 0.0
    done = {(r["variant"], r["seed"]) for r in results["runs"]}
    started = time.perf_counter()
    for seed in seeds:  # seed-major: a killed study has whole seeds to compare
        for name in args.variants:
            if (name, seed) in done:
                continue
            method, config, _ = VARIANTS[name]
            key = variant_key(name)
            ckpt = le.prepare_row(key, seed, out, budget["pretrain"], options, results, spec=(method, config))
            pretrained = results["rows"][key]["pretrain"][str(seed)]
            run = {"variant": name, "seed": seed, "pretrain_loss": pretrained["final_loss"],
                   "pretrain_seconds": pretrained["seconds"]}  # fmt: skip
            for protocol in PROTOCOLS:
                run[protocol], _ = le.evaluate_row(protocol, ckpt, args.fraction, labelled, held_out, budget, seed,
                                                   out, key, options)  # fmt: skip
            results["runs"].append(run)
            results["wall_seconds"] = round(earlier + time.perf_counter() - started, 1)
            summarize(results)
            write_outputs(results, out, quiet=True)  # after every run: a killed study keeps what it did
    summarize(results)
    write_outputs(results, out)
    return results


def summarize(results: dict) -> None:
    """``results["summary"][variant][protocol]`` = mean +- std over seeds and, for a variant that is not its
    method's reference, ``delta`` = mean +- std of the per-seed differences to the reference (paired: same seed and
    split, so the spread that both share cancels)."""
    by_seed: dict = {}
    for run in results["runs"]:
        by_seed.setdefault(run["variant"], {})[run["seed"]] = run
    summary: dict = {}
    for name, runs in by_seed.items():
        cells = {p: le.mean_std([r[p] for r in runs.values()]) for p in PROTOCOLS}
        cells["pretrain_loss"] = le.mean_std([r["pretrain_loss"] for r in runs.values()])
        reference = by_seed.get(results["reference"][VARIANTS[name][0]], {})
        common = sorted(set(runs) & set(reference))
        if name not in results["reference"].values() and common:
            for p in PROTOCOLS:
                cells[p]["delta"] = le.mean_std([runs[s][p] - reference[s][p] for s in common])
        summary[name] = cells
    results["summary"] = summary


def _cell(cell: dict) -> str:
    text = f"{100 * cell['mean']:.1f} +- {100 * cell['std']:.1f}"
    if "delta" in cell:
        text += f" ({100 * cell['delta']['mean']:+.1f} +- {100 * cell['delta']['std']:.1f})"
    return text


def write_outputs(results: dict, out: Path, quiet: bool = False) -> None:
    summary = results.get("summary", {})
    lines = [f"budget `{results['budget']}`: pretraining {results['pretrain_epochs']} epoch(s), fine-tuning "
             f"{results['finetune_epochs']} epochs at {results['fraction'] * 100:g}% of the labels, seeds "
             f"{results['seeds']}; top-1 % on {results['held_out_rows']} held-out rows, mean +- std over seeds "
             "(in brackets: paired difference to the method's reference, mean +- std over seeds)", "",
             "| variant | switch | pretraining loss | kNN | fine-tune | pretraining min |",
             "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, cells in summary.items():
        minutes = np.mean([r["pretrain_seconds"] for r in results["runs"] if r["variant"] == name]) / 60
        reference = " (reference)" if name in results["reference"].values() else ""
        lines.append(f"| {name}{reference} | {VARIANTS[name][2]} | {cells['pretrain_loss']['mean']:.4f} | "
                     f"{_cell(cells['knn'])} | {_cell(cells['finetune'])} | {minutes:.1f} |")  # fmt: skip
    lines += ["", "Pretraining losses of different targets or losses are not comparable with each other.",
              f"Wall time: {results['wall_seconds'] / 60:.0f} min on {results['machine']}."]  # fmt: skip
    write_text_atomic(out / "results.md", "\n".join(lines) + "\n")
    write_json_atomic(out / "results.json", results)
    plot(results, out / "results.png")
    if not quiet:
        print("\n".join(lines) + f"\nWritten to {out / 'results.md'}")


def plot(results: dict, path: Path) -> None:
    """One row per variant and panel per protocol: mean over seeds with std error bars, small dots for the seeds,
    references drawn as squares (needs matplotlib). Points, not bars: the axis does not start at zero."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no results.png (pip install 'hf_mim[analysis]').")
        return
    summary = results.get("summary", {})
    names = list(summary)
    colours = {"maskfeat": "tab:blue", "simmim": "tab:orange"}
    fig, axes = plt.subplots(1, len(PROTOCOLS), figsize=(5.2 * len(PROTOCOLS), 0.45 * len(names) + 1.4),
                             squeeze=False, sharey=True)  # fmt: skip
    ys = np.arange(len(names))[::-1]
    for ax, protocol in zip(axes[0], PROTOCOLS):
        for y, name in zip(ys, names):
            cell = summary[name][protocol]
            marker = "s" if name in results["reference"].values() else "o"
            ax.errorbar(100 * cell["mean"], y, xerr=100 * cell["std"], fmt=marker, capsize=3,
                        color=colours.get(VARIANTS[name][0], "grey"))  # fmt: skip
            ax.plot([100 * v for v in cell["runs"]], [y] * len(cell["runs"]), "k.", markersize=3, alpha=0.5)
        ax.set_title(f"{PROTOCOL_NAMES[protocol]} top-1 (%), {results['fraction'] * 100:g}% labels")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(ys, names)
    fig.suptitle(f"ablations, budget {results['budget']}, seeds {results['seeds']} (squares: references)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(argv=None) -> int:
    """Console entry point (one error line and exit code 2 for a user error)."""
    from ..console import run_main

    return run_main(main, argv, name="experiments.ablations")


if __name__ == "__main__":
    sys.exit(run())
