"""Every ``python`` block of the README and the docs runs: the blocks of one page top to bottom in one namespace, in
a fresh folder holding ``train.parquet`` (16 labelled photo crops), shrunk by the page's ``<!-- docs-test -->``
markers where the page shows big sizes (docs/contributing.md describes the convention)."""

from __future__ import annotations

import contextlib
import io
import os
import traceback

import pytest

from .pages import pages, shrunk

PAGES = [page for page in pages() if any(block.lang == "python" for block in page.blocks)]


@pytest.fixture(scope="module")
def train_parquet(tmp_path_factory):
    """16 crops of 48 px from scikit-image's photos, labels 0-3, as the pages' ``train.parquet``."""
    import datasets
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    crops, labels = [], []
    for label, photo in enumerate(photos):
        for k in range(4):
            y, x = 40 * k, 60 * k
            crops.append(Image.fromarray(photo[y : y + 48, x : x + 48]))
            labels.append(label)
    folder = tmp_path_factory.mktemp("docs-data")
    table = datasets.Dataset.from_dict({"image": crops, "label": labels}).cast_column("image", datasets.Image())
    table.to_parquet(str(folder / "train.parquet"))
    return folder / "train.parquet"


def test_the_pages_have_python_blocks():
    assert {"README.md", "docs/methods/maskfeat.md", "docs/guides/pretrain-your-data.md"} <= {p.name for p in PAGES}


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_python_blocks_run(page, train_parquet, tmp_path, monkeypatch):
    os.symlink(train_parquet, tmp_path / "train.parquet")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    namespace: dict = {"__name__": "__docs__"}
    for block in (b for b in page.blocks if b.lang == "python"):
        code = shrunk(block)
        output = io.StringIO()
        try:
            with contextlib.redirect_stdout(output):
                exec(compile(code, block.where, "exec"), namespace)  # noqa: S102
        except Exception:
            pytest.fail(f"The python block at {block.where} failed:\n{code}\n{traceback.format_exc()}")
