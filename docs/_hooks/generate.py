"""Everything the documentation restates from code or data is rendered here, at build time, from its source.

A page asks for generated content in two ways (``docs/contributing.md`` documents both):

- a line ``<!-- gen: NAME ARG... -->`` is replaced by the Markdown that :data:`GENERATORS` ``[NAME](*ARGS)``
  returns (results tables from ``docs/<study>/*.json``, config fields, presets, recipes, flags, modules);
- ``{{ STUDY: PATH | FORMAT }}`` inside prose is replaced by one number of a study's JSON file: ``PATH`` is a
  ``/``-separated key path (``summary/mae/knn/0.1/mean``; ``A - B`` subtracts two of them), ``FORMAT`` is
  ``pct`` (x100, one decimal), ``+pct`` (signed), ``minutes`` (seconds as minutes) or a Python format spec such
  as ``.3f``, optionally after ``mean`` / ``min`` / ``max`` / ``ptp`` (max - min) of a list or matrix; a ``*`` key
  collects a value from every entry (``rows/hpm/pretrain/*/hpm_spearman``).

Unknown generators, keys or formats raise, so a page cannot show a stale or missing number.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import sys
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import cli_parsers  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "hf_mim"

#: study -> its JSON file under docs/ (written by the study itself; see the results pages).
STUDIES = {
    "label_efficiency": "label_efficiency/results.json",
    "ablations": "ablations/results.json",
    "analysis": "analysis/analysis.json",
}
PROTOCOL_NAMES = {"knn": "kNN", "linear": "linear probe", "finetune": "fine-tune"}
ROW_NAMES = {"maskfeat": "MaskFeat", "simmim": "SimMIM", "mae": "MAE", "hpm": "HPM"}


# -- small helpers ----------------------------------------------------------------------------------------------


def md_table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A Markdown table; ``align`` has one ``l`` / ``r`` per column."""
    align = align or "l" * len(headers)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in row) + " |" for row in rows]
    # a generated table: its first column holds names, kept on one line (docs/stylesheets/extra.css)
    return "\n".join(['<div class="generated" markdown>', "", *lines, "", "</div>"])


def rst_to_md(text: str) -> str:
    """Docstring markup (reST roles, double backticks) as Markdown inline code."""
    text = re.sub(r":[a-z]+:`~?(?:[\w.]+\.)?([\w]+)`", r"`\1`", text)
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _short(value: Any) -> str:
    """``repr`` with floats to four significant digits (``4 / 3`` shows as ``1.333``)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple | list):
        inner = ", ".join(_short(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_short(v)}" for k, v in value.items()) + "}"
    return repr(value)


def code(value: Any) -> str:
    return f"`{_short(value)}`" if not isinstance(value, str) else f'`"{value}"`'


def first_paragraph(docstring: str | None) -> str:
    if not docstring:
        return ""
    return " ".join(inspect.cleandoc(docstring).split("\n\n")[0].split())


def pct(value: float, signed: bool = False) -> str:
    value = 100 * value + 0.0 if round(100 * value, 1) else 0.0  # no "-0.0"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def mean_std(cell: dict) -> str:
    return f"{pct(cell['mean'])} ± {pct(cell['std'])}"


# -- study data -------------------------------------------------------------------------------------------------


@cache
def study(name: str) -> dict:
    if name not in STUDIES:
        raise KeyError(f"Unknown study {name!r}; known: {', '.join(STUDIES)}.")
    return json.loads((DOCS / STUDIES[name]).read_text())


def lookup(data: Any, path: str) -> Any:
    """The value at ``path`` (``/``-separated keys or list indices); a ``*`` key maps the rest of the path over every
    entry and returns the list of values."""
    keys = path.strip().strip("/").split("/")
    for i, key in enumerate(keys):
        if key == "*":
            entries = data if isinstance(data, list) else list(data.values())
            rest = "/".join(keys[i + 1 :])
            return [lookup(entry, rest) if rest else entry for entry in entries]
        if isinstance(data, list):
            data = data[int(key)]
        elif key in data:
            data = data[key]
        else:
            raise KeyError(f"No key {key!r} on the path {path!r} (keys here: {', '.join(map(str, data))}).")
    return data


def format_value(value: Any, fmt: str | None) -> str:
    parts = (fmt or "").split()
    if parts and parts[0] in ("mean", "min", "max", "ptp"):
        value = float(getattr(np, parts.pop(0))(np.asarray(value, dtype=float)))
    spec = parts[0] if parts else ""
    if len(parts) > 1:
        raise ValueError(f"Unknown format {fmt!r}.")
    if spec == "pct":
        return pct(value)
    if spec == "+pct":
        return pct(value, signed=True)
    if spec == "minutes":
        return f"{value / 60:.0f}"
    return format(value, spec)


_VALUE = re.compile(r"\{\{\s*(?P<study>[a-z_]+):\s*(?P<expr>[^|}]+?)\s*(?:\|\s*(?P<fmt>[^}]+?)\s*)?\}\}")


def study_value(name: str, expr: str, fmt: str | None) -> str:
    terms = [lookup(study(name), term) for term in expr.split(" - ")]
    value = terms[0] - sum(terms[1:]) if len(terms) > 1 else terms[0]
    return format_value(value, fmt)


# -- results pages ----------------------------------------------------------------------------------------------


def le_rows(results: dict) -> list[str]:
    """Rows grouped by architecture: each scratch row after the pretrained rows that share its architecture."""
    rows = results["rows"]
    ordered = []
    for scratch in [name for name, info in rows.items() if info["scratch_row"] is None]:
        ordered += [name for name, info in rows.items() if info["scratch_row"] == scratch] + [scratch]
    return [name for name in ordered if name in results["summary"]]


def gen_le_table(protocol: str) -> str:
    """Label efficiency, one protocol: mean ± std over seeds and the gain over the same architecture's scratch row."""
    results = study("label_efficiency")
    fractions = [f"{f:g}" for f in results["fractions"]]
    headers = ["row", "compared with"]
    for f in fractions:
        headers += [f"{float(f) * 100:g}% labels", "gain"]
    rows = []
    for name in le_rows(results):
        info, cells = results["rows"][name], results["summary"][name][protocol]
        row = [ROW_NAMES.get(name, name), info["scratch_row"] or "(from scratch)"]
        for f in fractions:
            cell = cells[f]
            gain = cell.get("gain_over_scratch")
            row += [mean_std(cell), "" if gain is None else f"{pct(gain, True)} ± {pct(cell['gain_std'])}"]
        rows.append(row)
    return md_table(headers, rows, "ll" + "rr" * len(fractions))


def gen_le_setup() -> str:
    r = study("label_efficiency")
    fractions = ", ".join(f"{f * 100:g}%" for f in r["fractions"])
    epochs = lambda pair: " / ".join(str(e) for e in pair)  # noqa: E731
    rows = [
        ["budget", f"`{r['budget']}`"],
        ["pretraining", f"{r['pretrain_epochs']} epochs per method and seed"],
        ["labelled fractions", fractions],
        ["fine-tuning epochs (per fraction)", epochs(r["finetune_epochs"])],
        ["linear-probe epochs (per fraction)", epochs(r["linear_epochs"])],
        ["seeds", ", ".join(map(str, r["seeds"]))],
        ["held-out images", str(r["held_out_rows"])],
        ["data", f"`{r['train_file']}`"],
        ["machine", r["machine"]],
        ["wall time", f"{r['wall_seconds'] / 60:.0f} min"],
    ]
    return md_table(["setting", "value"], rows)


def gen_le_pretraining() -> str:
    """Per-row pretraining cost and final loss (mean over seeds)."""
    r = study("label_efficiency")
    rows = []
    for name, info in r["rows"].items():
        runs = list(info.get("pretrain", {}).values())
        if not runs:
            continue
        spearman = [run["hpm_spearman"] for run in runs if "hpm_spearman" in run]
        rows.append([
            ROW_NAMES.get(name, name),
            f"`{runs[0]['recipe']}`",
            f"{np.mean([run['seconds'] for run in runs]) / 60:.1f}",
            f"{np.mean([run['final_loss'] for run in runs]):.3f}",
            f"{np.mean(spearman):.2f}" if spearman else "",
        ])  # fmt: skip
    return md_table(["row", "recipe shape", "minutes per seed", "final loss", "loss-predictor Spearman"], rows,
                    "llrrr")  # fmt: skip


def gen_ablations_table() -> str:
    """Each variant: mean ± std over seeds, and the paired difference to its method's reference (same seed and
    split), mean ± std over seeds."""
    r = study("ablations")
    rows = []
    for name, cells in r["summary"].items():
        reference = name in r["reference"].values()

        def delta(protocol: str, cells=cells) -> str:
            d = cells[protocol].get("delta")
            return f"{pct(d['mean'], True)} ± {pct(d['std'])}" if d else ""

        method, switch = name.split(" ", 1)
        rows.append([
            ROW_NAMES.get(method, method),
            f"`{switch}`" + (" (reference)" if reference else ""),
            mean_std(cells["knn"]),
            delta("knn"),
            mean_std(cells["finetune"]),
            delta("finetune"),
            f"{cells['pretrain_loss']['mean']:.3f}",
        ])  # fmt: skip
    headers = ["method", "variant", "kNN top-1", "vs reference", "fine-tune top-1", "vs reference", "pretraining loss"]
    return md_table(headers, rows, "llrrrrr")


def gen_ablations_setup() -> str:
    r = study("ablations")
    rows = [
        ["budget", f"`{r['budget']}`"],
        ["pretraining", f"{r['pretrain_epochs']} epoch per variant and seed"],
        ["fine-tuning", f"{r['finetune_epochs']} epochs"],
        ["labelled fraction", f"{r['fraction'] * 100:g}%"],
        ["seeds", ", ".join(map(str, r["seeds"]))],
        ["held-out images", str(r["held_out_rows"])],
        ["references", ", ".join(f"`{v}`" for v in r["reference"].values())],
        ["machine", r["machine"]],
        ["wall time", f"{r['wall_seconds'] / 60:.0f} min"],
    ]
    return md_table(["setting", "value"], rows)


def gen_analysis_attention() -> str:
    a = study("analysis")
    rows = []
    for name, res in a["models"].items():
        rows.append([
            name,
            f"{np.mean(res['entropy']):.3f}",
            " ".join(f"{v:.3f}" for v in res["head_kl"]),
            f"{np.mean(res['distance']):.1f}",
        ])  # fmt: skip
    return md_table(["model", "mean attention entropy (nats)", "head KL per layer", "mean attention distance (px)"],
                    rows, "lrlr")  # fmt: skip


def gen_analysis_avgdist() -> str:
    study_ = study("analysis")["mask_study"]
    table = study_["random_masks"]
    sizes = sorted({int(k.split("/")[0]) for k in table})
    ratios = sorted({k.split("/")[1] for k in table}, key=float)
    rows = []
    for size in sizes:
        cells = [table[f"{size}/{ratio}"] for ratio in ratios]
        rows.append([f"{size} px"] + ["–" if c is None else f"{c['avg_dist']:.1f}" for c in cells])
    return md_table(["cell \\ ratio"] + ratios, rows, "l" + "r" * len(ratios))


def gen_analysis_defaults() -> str:
    """AvgDist of each method's default masks (``hf_mim.analysis.mask_study`` draws them from the method's image
    processor with its paper defaults; HPM's random share is MAE's random mask)."""
    defaults = study("analysis")["mask_study"]["method_defaults"]
    rows = []
    for method, cell in defaults.items():
        paper = spec(method).image_processor_class.PAPER_DEFAULTS
        kind = paper["mask_type"] or "random"
        kwargs = ", ".join(f"{k}={v:g}" for k, v in paper["mask_kwargs"].items())
        rows.append([ROW_NAMES.get(method, method), f"{paper['image_size']} px", f"`{kind}` ({kwargs})",
                     f"{cell['mask_ratio'] * 100:.0f}%", f"{cell['avg_dist']:.1f} ± {cell['avg_dist_std']:.1f}"])  # fmt: skip
    return md_table(["method", "image", "mask", "masked", "AvgDist (px)"], rows, "lllrr")


# -- methods ----------------------------------------------------------------------------------------------------


def spec(method: str):
    from hf_mim import get_model_spec

    return get_model_spec(method)


def arg_docs(cls: type, section: str = "Args:") -> dict[str, str]:
    """``{argument: description}`` from the ``Args:`` (or other ``section``) of the docstrings of ``cls`` and its
    bases (the class's own win); an entry may name several arguments (``a, b: ...``)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = klass.__dict__.get("__doc__")
        if not doc or section not in doc:
            continue
        lines = []
        for line in inspect.cleandoc(doc).split(section, 1)[1].splitlines()[1:]:
            if line.strip() and not line[0].isspace():
                break  # the next section (Returns:, Raises:, ...)
            lines.append(line)
        body = textwrap.dedent("\n".join(lines)).strip("\n")
        entries: list[str] = []
        for line in body.splitlines():
            if line and not line[0].isspace() and not (entries and entries[-1].rstrip().endswith(",")):
                entries.append(line)
            elif entries:
                entries[-1] += " " + line.strip()
        for entry in entries:
            names, _, text = entry.partition(": ")
            for name in names.split(","):
                docs[name.strip()] = " ".join(text.split())
    return docs


def config_fields(cls: type) -> list[tuple[str, Any]]:
    from transformers import PreTrainedConfig

    base = {f.name for f in dataclasses.fields(PreTrainedConfig)}
    fields = []
    for f in dataclasses.fields(cls):
        if f.name in base or f.name.startswith("_"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        fields.append((f.name, default))
    return fields


def gen_config(method: str) -> str:
    cls = spec(method).config_class
    docs = arg_docs(cls)
    rows = [[f"`{name}`", code(default), rst_to_md(docs.get(name, ""))] for name, default in config_fields(cls)]
    return md_table(["field", "default", "meaning"], rows)


def _values(values: dict) -> str:
    parts = []
    for key, value in values.items():
        if isinstance(value, dict):
            parts.append(f"{key}: " + _values(value))
        else:
            parts.append(f"`{key}={json.dumps(value) if not isinstance(value, str) else value}`")
    return ", ".join(parts)


def gen_presets(method: str) -> str:
    s = spec(method)
    rows = []
    for name, values in s.config_class.presets.items():
        note = " (the CPU demo)" if name == s.demo_preset else ""
        rows.append([f"`{name}`{note}", _values(values)])
    return md_table(["preset", "values (over the config defaults)"], rows)


def gen_processor(method: str) -> str:
    cls = spec(method).image_processor_class
    rows = [[f"`{key}`", code(value)] for key, value in cls.PAPER_DEFAULTS.items()]
    return f"`{cls.__name__}`: {rst_to_md(first_paragraph(cls.__doc__))}\n\n" + md_table(["argument", "default"], rows)


def gen_recipes(method: str) -> str:
    s = spec(method)
    main = ", ".join(f"{stage}: `{name}`" for stage, name in s.main_recipes.items())
    out = [f"Main recipes (what a named model gets without `--recipe`): {main}.", ""]
    for name, (stage, values) in s.recipes.items():
        rows = [[f"`{key}`", code(value), source] for key, (value, source) in values.items()]
        out += [f'??? info "`{name}` ({stage})"', ""]
        out += ["    " + line for line in md_table(["key", "value", "official source"], rows).splitlines()]
        out.append("")
    return "\n".join(out)


def gen_converters(method: str) -> str:
    s = spec(method)
    rows = [[f"`{source}`", text] for source, text in s.official_sources.items()]
    text = md_table(["`--source`", "release"], rows) if rows else "No official converter."
    if s.transformers_loader is not None:
        text += (f"\n\n`{s.pretraining_class.__name__}.from_transformers(model)` (and `hf-mim convert "
                 f"--model_name_or_path`) takes the transformers model that `{s.transformers_loader.__name__}` loads.")  # fmt: skip
    if s.official_converter_options:
        options = ", ".join(f"`--{o}`" for o in s.official_converter_options)
        text += f"\n\nExtra option of its official converter: {options}."
    return text


def gen_classes(method: str) -> str:
    s = spec(method)
    rows = []
    for role, cls, auto in (
        ("config", s.config_class, "AutoConfig"),
        ("encoder", s.model_class, "AutoModel"),
        ("pretraining", s.pretraining_class, "AutoModelForPreTraining"),
        ("classification", s.classification_class, "AutoModelForImageClassification"),
        ("image processor", s.image_processor_class, "AutoImageProcessor"),
    ):
        rows.append([role, f"[`{cls.__name__}`][{cls.__module__}.{cls.__name__}]", f"`{auto}`"])
    return md_table(["role", "class", "loaded by"], rows)


def gen_deviations() -> str:
    from hf_mim.training.recipes import DEVIATIONS

    return md_table(["what", "how hf_mim differs from the official code, and why"],
                    [[name, text] for name, text in DEVIATIONS.items()])  # fmt: skip


def gen_recipe_index() -> str:
    from hf_mim.training.recipes import RECIPES

    rows = []
    for name, recipe in RECIPES.items():
        get = recipe.get
        lr = f"{get('base_learning_rate'):g} / {get('lr_batch_divisor')}" if get("base_learning_rate") else ""
        rows.append([f"`{name}`", f"[{recipe.method}](../methods/{recipe.method}.md#recipes)", recipe.stage,
                     str(get("epochs", "")), str(get("warmup_epochs", "")), str(get("batch_size", "")), lr])  # fmt: skip
    return md_table(["recipe", "method", "stage", "epochs", "warm-up epochs", "batch", "base LR / per batch"], rows,
                    "lllrrrr")  # fmt: skip


# -- commands ---------------------------------------------------------------------------------------------------


def gen_commands(page: str = "") -> str:
    """The ``hf-mim`` commands, each linked to its flags on ``page`` (default: this page)."""
    rows = [[f"[`hf-mim {name}`]({page}#hf-mim-{name})", text] for name, (_, text) in cli_parsers.commands().items()]
    return md_table(["command", "what it does"], rows)


def _sections(cls: type) -> dict[str, str]:
    """field -> the ``# -- section --`` comment above it in the dataclass source (empty when there is none)."""
    section, sections = "", {}
    for line in inspect.getsource(cls).splitlines():
        heading = re.match(r"\s*# -- (.+?) -+$", line)
        if heading:
            section = heading.group(1)
        field = re.match(r"\s{4}(\w+): ", line)
        if field:
            sections[field.group(1)] = section
    return sections


def _default(action) -> str:
    if action.default is None or action.default == "":
        return ""
    if isinstance(action.default, bool):
        return "" if action.default is False else "`true`"
    return f"`{action.default}`"


def gen_flags(command: str) -> str:
    """The flags of ``hf-mim COMMAND``, from its parser (``finetune``: its own dataclass; transformers'
    ``TrainingArguments`` flags are the rest)."""
    parser = cli_parsers.command_parser(command)
    own = None
    groups: dict[str, list] = {}
    if command == "finetune":
        from hf_mim.training.finetuner import FinetuneArguments

        own = {f.name for f in dataclasses.fields(FinetuneArguments)}
    sections = {}
    if command == "pretrain":
        from hf_mim.training.arguments import PretrainingArguments

        sections = _sections(PretrainingArguments)
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        if own is not None and action.dest not in own:
            continue
        flag = max(action.option_strings, key=len)
        text = rst_to_md(" ".join((action.help or "").split())).replace("%%", "%")
        if action.choices:
            text += (" " if text else "") + "(one of " + ", ".join(f"`{c}`" for c in action.choices) + ")"
        required = " (required)" if action.required else ""
        groups.setdefault(sections.get(action.dest, ""), []).append([f"`{flag}`{required}", _default(action), text])
    out = []
    for section, rows in groups.items():
        if section:
            out += [f"**{section}**", ""]
        out += [md_table(["flag", "default", "meaning"], rows), ""]
    return "\n".join(out).strip()


# -- layout -----------------------------------------------------------------------------------------------------


def module_summary(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    text = rst_to_md(first_paragraph(doc))
    return re.split(r"(?<=\.)\s(?=[A-Z`])", text, maxsplit=1)[0].rstrip(".") if text else ""


def gen_modules(folder: str = "") -> str:
    """The modules of ``src/hf_mim/FOLDER`` with the first sentence of their docstrings."""
    base = SRC / folder if folder else SRC
    rows = []
    for path in sorted(base.glob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        dotted = ".".join(("hf_mim", *path.relative_to(SRC).with_suffix("").parts))
        rows.append([f"`{dotted}`", module_summary(path)])
    if not folder:
        for package in sorted(p for p in base.iterdir() if (p / "__init__.py").is_file()):
            rows.append([f"`hf_mim.{package.name}`", module_summary(package / "__init__.py") + " (package)"])
    return md_table(["module", "what it holds"], rows)


def gen_method_files() -> str:
    """Which files each method package has, by pattern (``configuration_<method>.py``, ...)."""
    from hf_mim import list_models

    methods = list_models()
    patterns: dict[str, set[str]] = {}
    for method in methods:
        for path in (SRC / "models" / method).glob("*.py"):
            if path.name == "__init__.py":
                continue
            patterns.setdefault(path.name.replace(method, "<method>"), set()).add(method)
    rows = [[f"`{p}`"] + ["yes" if m in patterns[p] else "" for m in methods] for p in sorted(patterns)]
    return md_table(["file"] + [f"`{m}`" for m in methods], rows, "l" + "l" * len(methods))


def gen_spec_fields() -> str:
    """The fields of a method's registry entry (``hf_mim.registry.ModelSpec``), from its docstring."""
    from hf_mim.registry import ModelSpec

    docs = arg_docs(ModelSpec, "Attributes:")
    rows = []
    for f in dataclasses.fields(ModelSpec):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
        rows.append([f"`{f.name}`", "required" if required else "optional", rst_to_md(docs.get(f.name, ""))])
    return md_table(["field", "", "what it is"], rows)


def _test_doc(path: Path) -> str:
    return module_summary(path)


def gen_tests_layout() -> str:
    """Which modules have a test file at the mirrored path (``tests/<folder>/test_<module>.py``), which are tested
    through others, and the test files that check the package as a whole."""
    tests = ROOT / "tests"
    modules = sorted(p for p in SRC.rglob("*.py") if not p.name.startswith("__"))
    mirrored, through = [], []
    for path in modules:
        rel = path.relative_to(SRC)
        (mirrored if (tests / rel.parent / f"test_{path.name}").is_file() else through).append(rel)
    cross = sorted(
        t for t in tests.rglob("test_*.py") if not (SRC / t.relative_to(tests).parent / t.name[5:]).is_file()
    )
    names = lambda paths: ", ".join(f"`{p.with_suffix('')}`" for p in paths)  # noqa: E731
    return "\n".join([
        f"- **{len(mirrored)} of {len(modules)} modules** have a test file at the mirrored path: {names(mirrored)}.",
        f"- **{len(through)} modules** have no test file of their own; the tests of the code that uses them cover "
        f"them (configs, processors and recipes: the modeling, registry and training tests; command modules: the "
        f"command tests): {names(through)}.",
        "",
        md_table(["test file", "what it checks"],
                 [[f"`{t.relative_to(ROOT)}`", _test_doc(t)] for t in cross]),
    ])  # fmt: skip


def gen_backbones() -> str:
    """Which released transformers encoder classes each method starts from (``from_backbone``, ``--init_from``):
    the methods' ``backbone_types``, with what the method sizes from the backbone."""
    from hf_mim import list_models
    from hf_mim.backbones import BACKBONES, class_name

    methods = list_models()
    header = ["encoder class (`model_type`)", *[spec(m).config_class.__name__.removesuffix("Config") for m in methods]]
    rows = [[f"`{class_name(kind)}` (`{kind}`)", *["yes" if kind in spec(m).backbone_types else "-" for m in methods]]
            for kind in BACKBONES]  # fmt: skip
    return md_table(header, rows, "l" + "c" * len(methods))


GENERATORS = {
    "backbones": gen_backbones,
    "le-table": gen_le_table,
    "le-setup": gen_le_setup,
    "le-pretraining": gen_le_pretraining,
    "ablations-table": gen_ablations_table,
    "ablations-setup": gen_ablations_setup,
    "analysis-attention": gen_analysis_attention,
    "analysis-avgdist": gen_analysis_avgdist,
    "analysis-defaults": gen_analysis_defaults,
    "config": gen_config,
    "presets": gen_presets,
    "processor": gen_processor,
    "recipes": gen_recipes,
    "converters": gen_converters,
    "classes": gen_classes,
    "deviations": gen_deviations,
    "recipe-index": gen_recipe_index,
    "commands": gen_commands,
    "flags": gen_flags,
    "modules": gen_modules,
    "method-files": gen_method_files,
    "spec-fields": gen_spec_fields,
    "tests-layout": gen_tests_layout,
}

_DIRECTIVE = re.compile(r"^<!-- gen: (?P<name>[\w-]+)(?P<args>(?: [^\s>]+)*) -->$", flags=re.M)


def expand(markdown: str) -> str:
    """``markdown`` with every ``<!-- gen: ... -->`` line and ``{{ study: ... }}`` value rendered."""

    def directive(match: re.Match) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise KeyError(f"Unknown generator {name!r} in {match.group(0)!r}; known: {', '.join(GENERATORS)}.")
        return GENERATORS[name](*match["args"].split())

    def render(text: str) -> str:
        text = _DIRECTIVE.sub(directive, text)
        return _VALUE.sub(lambda m: study_value(m["study"], m["expr"], m["fmt"]), text)

    # fenced code blocks are shown as they are (a page may show the syntax itself)
    out, start = [], 0
    for fence in _FENCE.finditer(markdown):
        out += [render(markdown[start : fence.start()]), fence.group(0)]
        start = fence.end()
    return "".join([*out, render(markdown[start:])])


_FENCE = re.compile(r"^[ \t]*(?P<fence>```|~~~)[^\n]*\n.*?^[ \t]*(?P=fence)[ \t]*$", flags=re.M | re.S)
