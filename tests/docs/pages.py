"""The pages the docs tests read: ``README.md``, ``CHANGELOG.md`` and every page under ``docs/``, split into fenced
code blocks (with their ``<!-- docs-test ... -->`` markers) and the prose between them."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
HOOKS = DOCS / "_hooks"
if str(HOOKS) not in sys.path:
    sys.path.insert(0, str(HOOKS))

import cli_parsers  # noqa: E402  (docs/_hooks: the commands' parsers, shared with the site's flag tables)
import generate  # noqa: E402  (docs/_hooks: the site's generators)

__all__ = ["Block", "Page", "cli_parsers", "generate", "inline_code", "pages", "read", "shrunk"]

#: Markdown files under docs/ that are not pages: the studies' own plain-text summaries (mkdocs.yml excludes them).
NOT_PAGES = {DOCS / "label_efficiency" / "results.md", DOCS / "ablations" / "results.md"}

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```|~~~)(?P<lang>[\w+-]*)[^\n]*$")
_MARKER = re.compile(r"<!--\s*docs-test\b(?P<body>.*?)-->", re.S)


@dataclass
class Block:
    """A fenced code block: its language, code (dedented), first line number and the marker just before it."""

    page: Path
    lang: str
    code: str
    line: int
    replacements: list[tuple[str, str]] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass
class Page:
    path: Path
    text: str
    blocks: list[Block]
    prose: str  # the text outside fenced blocks (and outside HTML comments)

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT))


def pages() -> list[Page]:
    paths = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    paths += sorted(p for p in DOCS.rglob("*.md") if p not in NOT_PAGES and "_hooks" not in p.parts)
    return [read(path) for path in paths]


def _parse_marker(body: str, where: str) -> list[tuple[str, str]]:
    replacements = []
    for line in body.strip().splitlines():
        line = line.strip()
        if not line:
            continue
        if not line.startswith("replace:") or " -> " not in line:
            raise ValueError(f"{where}: a docs-test marker line must read 'replace: OLD -> NEW', got {line!r}.")
        old, new = line.removeprefix("replace:").strip().split(" -> ", 1)
        replacements.append((old, new))
    return replacements


def read(path: Path) -> Page:
    text = path.read_text()
    lines = text.splitlines()
    blocks, prose = [], []
    i = 0
    while i < len(lines):
        opening = _FENCE_OPEN.match(lines[i])
        if not opening:
            prose.append(lines[i])
            i += 1
            continue
        indent, fence, lang = opening["indent"], opening["fence"], opening["lang"]
        body, j = [], i + 1
        while j < len(lines) and not re.match(rf"^{re.escape(indent)}{fence}\s*$", lines[j]):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        if j == len(lines):
            raise ValueError(f"{path}:{i + 1}: a code fence that never closes.")
        block = Block(path, lang, "\n".join(body) + "\n", i + 1)
        # a marker is the last non-blank thing before the block
        before = "\n".join(prose).rstrip()
        marker = _MARKER.search(before.rsplit("\n\n", 1)[-1]) if before.endswith("-->") else None
        if marker:
            block.replacements = _parse_marker(marker["body"], block.where)
        blocks.append(block)
        i = j + 1
    return Page(path, text, blocks, _MARKER.sub("", "\n".join(prose)))


def shrunk(block: Block) -> str:
    """The block's code with its marker's replacements applied; a replacement that matches nothing is an error."""
    code = block.code
    for old, new in block.replacements:
        if old not in code:
            raise AssertionError(f"{block.where}: the docs-test replacement {old!r} matches nothing in the block.")
        code = code.replace(old, new)
    return code


def inline_code(prose: str) -> list[str]:
    """The inline code spans of ``prose`` (single or double backticks)."""
    return [m.group(2).strip() for m in re.finditer(r"(`+)(.+?)\1", prose)]
