"""The site builds in strict mode (a broken link, a missing anchor, an unresolved API reference or a page missing from
the navigation fails the build), every image and local link of the built pages exists, and every results table
shows what its study's JSON file holds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from .pages import DOCS, ROOT


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


class _Page(HTMLParser):
    """Headings, tables (rows of cell texts), image sources and link targets of one built page."""

    def __init__(self):
        super().__init__()
        self.items: list[tuple[str, object]] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self._text: list[str] | None = None
        self._row: list[str] | None = None
        self._table: list[list[str]] | None = None
        self._heading = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "table":
            self._table = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._text = []
        elif tag in ("h1", "h2", "h3"):
            self._heading, self._text = True, []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._text is not None:
            self._row.append(" ".join("".join(self._text).split()))
            self._text = None
        elif tag == "tr" and self._table is not None and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table" and self._table is not None:
            self.items.append(("table", self._table))
            self._table = None
        elif tag in ("h1", "h2", "h3") and self._heading:
            self.items.append(("heading", "".join(self._text or []).replace("¶", "").strip()))
            self._heading, self._text = False, None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


def tables_after(page: _Page, heading: str | None = None) -> list[list[list[str]]]:
    """The tables of the page (after ``heading`` until the next heading, when given)."""
    tables, inside = [], heading is None
    for kind, value in page.items:
        if kind == "heading":
            inside = heading is None or value == heading
        elif inside:
            tables.append(value)
    return tables


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d+)?", text.replace("−", "-"))]


def close(shown: list[float], expected: list[float], decimals: int = 1) -> bool:
    return len(shown) == len(expected) and all(
        abs(s - e) <= 0.5 * 10**-decimals + 1e-9 for s, e in zip(shown, expected)
    )


def test_every_image_and_local_link_exists(site):
    problems = []
    for html in site.rglob("*.html"):
        if html.name == "404.html":  # served at any depth, so its links are absolute to the site's root
            continue
        page = parse(html)
        for target in page.images + page.links:
            url = urlparse(target)
            if url.scheme or url.netloc or not url.path:
                continue
            path = (html.parent / unquote(url.path)).resolve()
            if path.is_dir():
                path = path / "index.html"
            if not path.exists():
                problems.append(f"{html.relative_to(site)} -> {target}")
    assert not problems, problems


def test_every_page_of_the_navigation_is_built(site):
    for page in ("methods/maskfeat", "methods/simmim", "methods/hpm", "guides/pretrain-at-scale",
                 "guides/continued-pretraining", "results/label-efficiency", "reference/api/models"):  # fmt: skip
        assert (site / page / "index.html").is_file(), page


def test_label_efficiency_tables_equal_results_json(site):
    results = json.loads((DOCS / "label_efficiency" / "results.json").read_text())
    page = parse(site / "results" / "label-efficiency" / "index.html")
    fractions = [f"{f:g}" for f in results["fractions"]]
    for protocol, heading in (("knn", "kNN"), ("linear", "Linear probe"), ("finetune", "Fine-tuning")):
        (table,) = tables_after(page, heading)
        body = {row[0].lower(): row for row in table[1:]}
        assert set(body) == {name.lower() for name in results["summary"]}, protocol
        for name, cells in results["summary"].items():
            row = body[name.lower()]
            for i, fraction in enumerate(fractions):
                cell = cells[protocol][fraction]
                shown = numbers(row[2 + 2 * i])
                assert close(shown, [100 * cell["mean"], 100 * cell["std"]]), (protocol, name, fraction, row)
                if "gain_over_scratch" in cell:
                    gain = numbers(row[3 + 2 * i])
                    assert close(gain, [100 * cell["gain_over_scratch"], 100 * cell["gain_std"]]), (name, row)
                else:
                    assert row[3 + 2 * i] == ""


def test_ablation_table_equals_results_json(site):
    results = json.loads((DOCS / "ablations" / "results.json").read_text())
    page = parse(site / "results" / "ablations" / "index.html")
    table = next(t for t in tables_after(page) if t[0][0] == "method")
    assert len(table) - 1 == len(results["summary"])
    for row, (name, cells) in zip(table[1:], results["summary"].items(), strict=True):
        method, switch = name.split(" ", 1)
        assert row[0].lower() == method and row[1].startswith(switch)
        for column, protocol in ((2, "knn"), (4, "finetune")):
            cell = cells[protocol]
            assert close(numbers(row[column]), [100 * cell["mean"], 100 * cell["std"]]), (name, protocol, row)
            delta = [100 * cell["delta"]["mean"], 100 * cell["delta"]["std"]] if "delta" in cell else []
            assert close(numbers(row[column + 1]), delta), (name, protocol, row)
        assert close(numbers(row[6]), [cells["pretrain_loss"]["mean"]], decimals=3), (name, row)


def test_analysis_tables_equal_analysis_json(site):
    results = json.loads((DOCS / "analysis" / "analysis.json").read_text())
    page = parse(site / "results" / "analysis" / "index.html")
    (attention,) = tables_after(page, "Attention")
    assert [row[0] for row in attention[1:]] == list(results["models"])
    for row, model in zip(attention[1:], results["models"].values(), strict=True):
        assert close(numbers(row[1]), [float(np.mean(model["entropy"]))], decimals=3), row
        assert close(numbers(row[2]), model["head_kl"], decimals=3), row
        assert close(numbers(row[3]), [float(np.mean(model["distance"]))]), row
    avgdist, defaults = tables_after(page, "Masks: SimMIM's AvgDist")
    masks = results["mask_study"]["random_masks"]
    for row in avgdist[1:]:
        size = int(numbers(row[0])[0])
        for header, cell in zip(avgdist[0][1:], row[1:], strict=True):
            value = masks[f"{size}/{header.split()[-1]}"]
            assert (cell == "–") if value is None else close(numbers(cell), [value["avg_dist"]]), (size, header)
    for row, (method, cell) in zip(defaults[1:], results["mask_study"]["method_defaults"].items(), strict=True):
        assert row[0].lower() == method
        assert close(numbers(row[-1]), [cell["avg_dist"], cell["avg_dist_std"]]), row


def test_a_results_table_that_differs_from_its_json_is_caught(site, tmp_path):
    """The comparison itself: one changed number in the JSON makes the built table disagree."""
    results = json.loads((DOCS / "label_efficiency" / "results.json").read_text())
    results["summary"]["hpm"]["knn"]["0.1"]["mean"] += 0.01
    page = parse(site / "results" / "label-efficiency" / "index.html")
    (table,) = tables_after(page, "kNN")
    row = next(r for r in table if r[0].lower() == "hpm")
    cell = results["summary"]["hpm"]["knn"]["0.1"]
    assert not close(numbers(row[4]), [100 * cell["mean"], 100 * cell["std"]])
