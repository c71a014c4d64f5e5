"""``hf-mim push``: upload a finished output folder to the Hub (what ``--push_to_hub`` does at the end of a run).

hf-mim push --output_dir outputs/maskfeat --hub_model_id me/maskfeat-demo [--hub_private]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..hub import PushToHubError, push_folder


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        prog="hf-mim push", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--hub_model_id", required=True)
    parser.add_argument("--hub_private", action="store_true")
    parser.add_argument("--hub_token")
    args = parser.parse_args(argv)
    if not (Path(args.output_dir) / "config.json").is_file():
        parser.error(f"--output_dir {args.output_dir} holds no config.json: not a finished output folder")
    url = push_folder(args.output_dir, args.hub_model_id, private=args.hub_private, token=args.hub_token)
    print(f"Pushed {Path(args.output_dir).resolve()} to {args.hub_model_id}: {url}")
    return url


def run(argv: list[str] | None = None) -> int:
    try:
        main(argv)
        return 0
    except PushToHubError as err:
        print(err, file=sys.stderr)
        return 1
