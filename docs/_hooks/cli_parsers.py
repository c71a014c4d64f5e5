"""The argument parsers of every command the documentation shows, taken from the code itself.

Each ``hf-mim`` subcommand builds its parser inside ``main`` (or ``run``); :func:`command_parser` runs that function
with ``argparse.ArgumentParser.parse_known_args`` replaced by one that hands the parser back before anything is
parsed, so the docs and their tests see exactly the flags, defaults, choices and help a user gets.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class _Captured(BaseException):
    """Carries the parser out of the command (a BaseException, so no ``except Exception`` in the command stops it)."""

    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__()
        self.parser = parser


def _capture(function, argv: list[str]) -> argparse.ArgumentParser:
    original = argparse.ArgumentParser.parse_known_args

    def capture(self, *args, **kwargs):
        raise _Captured(self)

    argparse.ArgumentParser.parse_known_args = capture
    try:
        function(argv)
    except _Captured as captured:
        return captured.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original
    raise RuntimeError(f"{function.__module__}.{function.__name__} returned without parsing arguments.")


@cache
def module_parser(module_name: str) -> argparse.ArgumentParser:
    """The parser of a command module (``hf_mim.cli.pretrain``, ``hf_mim.experiments.ablations``, ...)."""
    module = importlib.import_module(module_name)
    for name in ("parse_args", "main", "run"):
        if hasattr(module, name):
            return _capture(getattr(module, name), [])
    raise RuntimeError(f"{module_name} has no parse_args / main / run.")


def commands() -> dict[str, tuple[str, str]]:
    """``hf-mim`` subcommand -> (module under ``hf_mim.cli``, one-line help)."""
    from hf_mim.cli import COMMANDS

    return dict(COMMANDS)


def command_parser(command: str) -> argparse.ArgumentParser:
    """The parser of ``hf-mim COMMAND``."""
    table = commands()
    if command not in table:
        raise KeyError(f"hf-mim has no command {command!r}; it has {', '.join(table)}.")
    return module_parser(f"hf_mim.cli.{table[command][0]}")


def flags(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def all_flags() -> set[str]:
    """Every flag of every ``hf-mim`` command and study (``hf-mim finetune`` includes transformers'
    ``TrainingArguments``)."""
    found: set[str] = set()
    for command in commands():
        found |= flags(command_parser(command))
    for study in ("label_efficiency", "ablations"):
        found |= flags(module_parser(f"hf_mim.experiments.{study}"))
    return found


# -- commands shown in the pages --------------------------------------------------------------------------------

#: How a shown command line reaches hf_mim: ``hf-mim CMD``, ``python -m hf_mim CMD``, ``accelerate launch [...] -m
#: hf_mim CMD``, ``torchrun [...] -m hf_mim CMD``, ``python -m hf_mim.experiments.X``, ``[python | accelerate launch] scripts/X.py``.
_HF_MIM = re.compile(r"(?:^|\s)(?:hf-mim|-m hf_mim(?:\.cli)?)\s+(?P<command>[a-z]+)(?P<rest>.*)$")
_STUDY = re.compile(r"(?:^|\s)-m (?P<module>hf_mim\.experiments\.[a-z_]+)(?P<rest>.*)$")
_SCRIPT = re.compile(r"(?:^|\s)(?P<script>scripts/[\w/]+\.py)(?P<rest>.*)$")


def script_module(script: str) -> str:
    """The module whose ``run`` a wrapper script in ``scripts/`` calls (read from its import line)."""
    text = (ROOT / script).read_text()
    match = re.search(r"^from (hf_mim\.[\w.]+) import run$", text, flags=re.M)
    if not match:
        raise ValueError(f"{script} does not call an hf_mim command's run().")
    return match.group(1)


def shown_command(line: str) -> tuple[str, list[str]] | None:
    """``(module, argv)`` of one shell line that runs an hf_mim command, or None for other lines.

    ``...`` (arguments left out on purpose) is dropped; ``<placeholder>`` values stay as they are (they parse as
    strings). Comments after ``#`` are removed first.
    """
    line = re.sub(r"(^|\s)#.*$", "", line).strip()
    if not line:
        return None
    line = re.sub(r"<([^<>]+)>", lambda m: "<" + m.group(1).replace(" ", "-") + ">", line)  # one token each
    for pattern in (_SCRIPT, _STUDY, _HF_MIM):
        match = pattern.search(line)
        if not match:
            continue
        if pattern is _SCRIPT:
            module = script_module(match["script"])
        elif pattern is _STUDY:
            module = match["module"]
        else:
            table = commands()
            if match["command"] not in table:
                raise ValueError(f"`{line}` runs hf-mim {match['command']!r}, which is not a command.")
            module = f"hf_mim.cli.{table[match['command']][0]}"
        argv = [token for token in shlex.split(match["rest"]) if token != "..."]
        return module, argv
    return None


def shell_lines(block: str) -> list[str]:
    """The logical lines of a shell block: ``\\``-continued lines joined, ``cmd1 && cmd2`` split."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = []
    for line in joined.splitlines():
        lines.extend(part.strip() for part in line.split("&&"))
    return [line for line in lines if line]
