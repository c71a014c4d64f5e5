"""Griffe extension: the docstrings' Sphinx roles and double backticks as Markdown for mkdocstrings.

``:class:`~hf_mim.training.Pretrainer``` becomes an optional cross-reference (a link where the object is rendered in
the API reference, plain inline code where it is not, such as a private helper), other roles and ````text````
become inline code. An ``Args:`` entry whose names run over several lines (``a, b,`` / ``c: ...``) is joined into
one line, the form griffe's Google-style parser reads.
"""

from __future__ import annotations

import html
import re

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|obj|exc):`(?P<tilde>~?)(?P<target>[\w.]+)`")
_NAMES_CONTINUED = re.compile(r"^(?P<indent>[ ]*)(?P<names>\w+(?:, \w+)*,)[ ]*\n(?P=indent)(?=\w+(?:, \w+)*:)", re.M)


def _role(match: re.Match) -> str:
    target = match["target"]
    shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
    if target.startswith("hf_mim."):
        return f'<autoref identifier="{html.escape(target)}" optional><code>{html.escape(shown)}</code></autoref>'
    return f"`{shown}`"


def convert(text: str) -> str:
    text = _NAMES_CONTINUED.sub(lambda m: f"{m['indent']}{m['names']} ", text)
    text = _ROLE.sub(_role, text)
    return re.sub(r"``(.+?)``", r"`\1`", text)


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
