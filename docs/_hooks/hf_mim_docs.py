"""MkDocs hook: renders the generated parts of every page (``generate.expand``) from the checkout being built.

The checkout's ``src/`` goes first on ``sys.path`` so that tables, flags and the API reference describe the code next
to these pages, not another installed copy of hf_mim.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (str(HERE), str(ROOT / "src")):
    if path not in sys.path:
        sys.path.insert(0, path)

import generate  # noqa: E402


def on_page_markdown(markdown: str, page, config, files) -> str:
    try:
        return generate.expand(markdown)
    except Exception as err:  # a build error that names the page
        raise RuntimeError(f"{page.file.src_path}: {err}") from err
