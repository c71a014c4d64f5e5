"""The ``hf-mim`` command (also ``python -m hf_mim``): one entry point for every workflow.

    hf-mim pretrain --method simmim --preset vit-base --data_files train.parquet
    hf-mim finetune --model_name_or_path outputs/simmim --data_files labelled.parquet --output_dir outputs/ft
    hf-mim convert | analyze | export | push | env
    accelerate launch -m hf_mim pretrain ...      torchrun --nproc_per_node 2 -m hf_mim pretrain --cpu ...

Each subcommand is a module of this package with a ``main(argv)``; ``scripts/*.py`` are few-line wrappers around
the same functions, so ``accelerate launch scripts/pretrain.py`` keeps working.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..console import run_main  # re-exported for the subcommands

__all__ = ["COMMANDS", "HelpFormatter", "main", "run_main"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` of the subcommands: the usage examples as written, and every flag's default."""


#: subcommand -> (module under hf_mim.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "pretrain": ("pretrain", "pretrain MaskFeat, SimMIM or HPM with accelerate"),
    "finetune": ("finetune", "fine-tune or linearly probe a checkpoint for classification with Trainer"),
    "convert": ("convert", "convert transformers / official checkpoints into hf_mim checkpoints"),
    "analyze": ("analyze", "attention distance / entropy / head diversity, layer CKA, mask AvgDist"),
    "export": ("export", "write the encoder as a plain transformers model (the class a run started from)"),
    "push": ("push", "upload a finished output folder to the Hub"),
    "env": ("env", "print versions and devices, for bug reports"),
}


def _usage() -> str:
    from .. import __version__

    width = max(map(len, COMMANDS))
    lines = [f"hf-mim {__version__}: masked image modeling pretraining (MaskFeat, SimMIM, HPM)", "",
             "usage: hf-mim COMMAND [ARGS...]   (hf-mim COMMAND --help for a command's arguments)", "", "commands:"]  # fmt: skip
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "options:", "  --version   print the version and exit", "  -h, --help  print this help and exit"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Runs ``hf-mim COMMAND ARGS``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from .. import __version__

        print(f"hf-mim {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"hf-mim: unknown command {command!r}; choose one of: {', '.join(COMMANDS)}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{COMMANDS[command][0]}")
    return module.run(rest)
