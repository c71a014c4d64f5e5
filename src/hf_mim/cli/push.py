"""``hf-mim push``: upload a finished output folder to the Hub (what ``--push_to_hub`` does at the end of a run).

hf-mim push --output_dir outputs/maskfeat --hub_model_id me/maskfeat-demo [--hub_private]

``--eval_results`` adds results measured since (the ``all_results.json`` of ``hf-mim finetune`` runs: kNN, linear
probe, fine-tuning) to the model-index of the folder's card before the upload.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..hub import add_eval_results, push_folder
from ..training.checkpointing import COMPLETION_FILE
from . import run_main


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        prog="hf-mim push", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--hub_model_id", required=True)
    parser.add_argument("--hub_private", action="store_true")
    parser.add_argument("--hub_token")
    parser.add_argument(
        "--eval_results", nargs="+", default=[], help="all_results.json files of hf-mim finetune runs for the card"
    )
    args = parser.parse_args(argv)
    folder = Path(args.output_dir)
    missing = [name for name in ("config.json", "README.md", COMPLETION_FILE) if not (folder / name).is_file()]
    if not list(folder.glob("*.safetensors")):
        missing.append("*.safetensors")
    if missing:
        parser.error(f"--output_dir {folder} is not a finished output folder (missing {', '.join(missing)}; "
                     f"{COMPLETION_FILE} is written last, so a run that was interrupted has none)")  # fmt: skip
    if args.eval_results:
        add_eval_results(folder, args.eval_results)
    url = push_folder(args.output_dir, args.hub_model_id, private=args.hub_private, token=args.hub_token)
    print(f"Pushed {Path(args.output_dir).resolve()} to {args.hub_model_id}: {url}")
    return url


def run(argv: list[str] | None = None) -> int:
    """Console entry point (exit code 1 for a failed upload)."""
    return run_main(main, argv)
