"""A short CPU study of the papers' ablation switches on CIFAR-10: MaskFeat's targets and SimMIM's masking cell and
loss, each pretrained like a label-efficiency row and scored by kNN and fine-tuning at one label fraction.

    python -m hf_mim.experiments.ablations --budget short --cpu --output_dir outputs/ablations

Every variant is the label-efficiency experiment's small ViT (32 px, patch 4) with one switch changed
(``VARIANTS``), pretrained on the same non-held-out rows for the budget's epochs, then evaluated with the same
protocols on the same held-out rows (hf_mim.experiments.label_efficiency does the work). Writes ``results.json``
and ``results.md`` to ``--output_dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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
BUDGETS = {"smoke": {"pretrain": 0.02, "finetune": (1, 1), "linear": (1, 1)},
           "short": {"pretrain": 1, "finetune": (4, 4), "linear": (3, 3)}}  # fmt: skip


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train_file", default=str(le.DEFAULT_TRAIN))
    p.add_argument("--output_dir", default="outputs/ablations")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--budget", default="short", choices=list(BUDGETS))
    p.add_argument("--val_size", type=int, default=5000)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    budget = BUDGETS[args.budget]
    out = Path(args.output_dir)
    held_out, labelled = le.write_splits(args.train_file, out, args.val_size, [args.fraction], args.seed)
    options = argparse.Namespace(fractions=[args.fraction], batch_size=args.batch_size, cpu=args.cpu, resume=False,
                                 knn_k=20, test_file=None)  # fmt: skip
    results: dict = {"command": " ".join(["python", "-m", "hf_mim.experiments.ablations", *(argv or sys.argv[1:])]),
                     "budget": args.budget, "fraction": args.fraction, "seed": args.seed, "variants": {}}  # fmt: skip
    started = time.perf_counter()
    for name in args.variants:
        method, config, switch = VARIANTS[name]
        key = name.replace(" ", "_").replace("=", "-").replace("+", "_")
        info: dict = {"rows": {}}
        ckpt = le.prepare_row(key, args.seed, out, budget["pretrain"], options, info, spec=(method, config))
        row = {"switch": switch, "pretrain": info["rows"][key]["pretrain"][str(args.seed)]}
        for protocol in ("knn", "finetune"):
            row[protocol], _ = le.evaluate_row(protocol, ckpt, args.fraction, labelled, held_out, budget, args.seed,
                                               out, key, options)  # fmt: skip
        results["variants"][name] = row
        results["wall_seconds"] = round(time.perf_counter() - started, 1)
        write_outputs(results, out)
    return results


def write_outputs(results: dict, out: Path) -> None:
    lines = [f"budget `{results['budget']}`, seed {results['seed']}, {results['fraction'] * 100:g}% labels; top-1 % "
             "on the held-out rows", "", "| variant | switch | pretraining loss | kNN | fine-tune | pretraining min |",
             "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, row in results["variants"].items():
        lines.append(f"| {name} | {row['switch']} | {row['pretrain']['final_loss']:.4f} | {100 * row['knn']:.1f} | "
                     f"{100 * row['finetune']:.1f} | {row['pretrain']['seconds'] / 60:.1f} |")  # fmt: skip
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))


def run(argv=None) -> int:
    main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(run())
