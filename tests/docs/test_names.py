"""What the README and the docs name exists: hf_mim modules and objects, classes, flags, repository paths, config
lines; and the pages read as documentation (a short README, no first person, run dates or commit hashes)."""

from __future__ import annotations

import importlib
import re
from functools import cache

import pytest

from .pages import ROOT, cli_parsers, generate, inline_code, pages

PAGES = pages()

#: Names of other projects that the pages mention (the official code bases and their tools), which the test cannot
#: import: the conversion guide names the classes and files it was checked against.
OTHER_PROJECTS = {"CfgNode", "ModelEma", "MaskFeatViT", "HOGGenerator", "NativeScaler", "MaskedAutoencoderViT"}
#: Flags of other commands that the pages pass through (accelerate launch, torchrun).
OTHER_FLAGS = {"--multi_gpu", "--num_processes", "--nproc_per_node", "--nnodes", "--node_rank", "--rdzv_backend",
               "--rdzv_endpoint", "--standalone", "--num_machines", "--machine_rank", "--main_process_ip",
               "--main_process_port", "--help", "--version"}  # fmt: skip
#: Where a class name may come from.
NAMESPACES = ("hf_mim", "transformers", "torch", "torch.nn", "torch.utils.data", "datasets", "accelerate")
#: Top-level folders and files of the repository that a path in the pages may start with.
REPO_ROOTS = ("src/", "tests/", "scripts/", "docs/", "model_cards/", "benchmarks/")
PACKAGE_ROOTS = ("training/", "models/", "cli/", "experiments/")
TOP_FILES = {"README.md", "CHANGELOG.md", "mkdocs.yml", "setup.py", "pyproject.toml"}


def spans(page) -> list[str]:
    return inline_code(page.prose)


@cache
def hf_mim_names() -> set[str]:
    """Every public name defined in or exported by an hf_mim module."""
    import pkgutil

    import hf_mim

    names = set(dir(hf_mim)) | set(hf_mim.__all__)
    for module in pkgutil.walk_packages(hf_mim.__path__, "hf_mim."):
        if module.name.endswith("__main__") or ".metrics." in module.name:
            continue
        names |= {n for n in dir(importlib.import_module(module.name)) if not n.startswith("_")}
    return names


def resolve_dotted(name: str):
    """The object ``hf_mim.a.b.C.d`` names: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def resolve_class(name: str):
    head, *attrs = name.split(".")
    for namespace in NAMESPACES:
        module = importlib.import_module(namespace)
        if hasattr(module, head):
            obj = getattr(module, head)
            break
    else:
        if head not in hf_mim_names():
            raise LookupError(f"no class {head!r} in {', '.join(NAMESPACES)} or any hf_mim module")
        return None
    for attr in attrs:
        obj = getattr(obj, attr)
    return obj


_DOTTED = re.compile(r"^(hf_mim(?:\.\w+)+)(?:\(.*\))?$")
_CLASS = re.compile(r"^([A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*(?:\.\w+)*)(?:\(.*\))?$")
_FLAG = re.compile(r"(?<![\w-])(--[a-z][\w-]*)")
_PATH = re.compile(r"^[\w./<>*{},-]+$")
#: Inline commands whose flags are checked (other tools' flags, e.g. `mkdocs build --strict`, are theirs).
_OUR_COMMANDS = {"hf-mim", "python", "accelerate", "torchrun", "finetune", "pretrain"}


def page_ids(items):
    return [page.name for page in items]


@pytest.mark.parametrize("page", PAGES, ids=page_ids(PAGES))
def test_named_hf_mim_objects_exist(page):
    missing = []
    for span in spans(page):
        match = _DOTTED.match(span)
        if not match or "<" in span or "*" in span:
            continue
        try:
            resolve_dotted(match.group(1))
        except (ImportError, AttributeError) as err:
            missing.append(f"{span} ({err})")
    assert not missing, f"{page.name} names what does not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=page_ids(PAGES))
def test_named_classes_exist(page):
    missing = []
    for span in spans(page):
        match = _CLASS.match(span)
        if not match or sum(c.isupper() for c in span.split(".")[0]) < 2 or span.isupper():
            continue
        if match.group(1).split(".")[0] in OTHER_PROJECTS:
            continue
        try:
            resolve_class(match.group(1))
        except (LookupError, AttributeError, ImportError) as err:
            missing.append(f"{span} ({err})")
    assert not missing, f"{page.name} names classes that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=page_ids(PAGES))
def test_named_flags_exist(page):
    known = cli_parsers.all_flags() | OTHER_FLAGS
    ours = [span for span in spans(page) if span.split(" ")[0] in _OUR_COMMANDS or span.startswith("--")]
    found = {flag for span in ours for flag in _FLAG.findall(span)}
    assert not found - known, f"{page.name} names flags no command has: {sorted(found - known)}"


@pytest.mark.parametrize("page", PAGES, ids=page_ids(PAGES))
def test_named_repository_paths_exist(page):
    from hf_mim import list_models

    missing = []
    for span in spans(page):
        if not _PATH.match(span) or "/" not in span and span not in TOP_FILES:
            continue
        if span in TOP_FILES or span.startswith(REPO_ROOTS):
            base = ROOT
        elif span.startswith(PACKAGE_ROOTS):
            base = ROOT / "src" / "hf_mim"
        else:
            continue
        if "<name>" in span or "<study>" in span:  # a method or study that does not exist yet
            continue
        candidates = {span.replace("<method>", method) for method in list_models()}
        if not any(list(base.glob(c.rstrip("/"))) for c in candidates):
            missing.append(span)
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def test_the_ablation_config_lines_make_valid_configs():
    """Every config line of the papers' ablation table parses for its method and builds that method's config."""
    from hf_mim import get_model_spec
    from hf_mim.config_overrides import parse_config_overrides

    page = next(p for p in PAGES if p.name == "docs/methods/index.md")
    rows = [line.split("|")[1:-1] for line in page.text.splitlines() if line.startswith("| ") and "`" in line]
    checked = 0
    for cells in rows:
        if len(cells) != 3 or cells[1].strip() not in ("maskfeat", "simmim", "hpm"):
            continue
        method = cells[1].strip()
        for line in inline_code(cells[2]):
            if "=" not in line or "<" in line:
                continue
            overrides = parse_config_overrides(line, method)
            get_model_spec(method).config_class(**overrides)
            checked += 1
    assert checked >= 20


def test_readme_is_short_and_lists_the_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    listed = re.findall(r"^\| `hf-mim (\w+)` \|", readme, flags=re.M)
    assert listed == list(cli_parsers.commands()), "the README's command table must list exactly `hf-mim --help`"
    for command in ("bash scripts/install.sh && .venv/bin/python scripts/pretrain.py",
                    "bash scripts/install.sh && bash scripts/run_tests.sh"):  # fmt: skip
        assert f"```bash\n   {command}\n   ```" in readme, f"the fresh-machine command `{command}` changed"


_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|[Ww]e|[Oo]ur|[Uu]s|[Mm]y|[Mm]e)\b")
_DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
_HASH = re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")


@pytest.mark.parametrize("page", PAGES, ids=page_ids(PAGES))
def test_pages_read_as_documentation(page):
    prose = re.sub(r"(`+).+?\1", "", page.prose)  # inline code (Hub ids like me/name) is not prose
    assert not _FIRST_PERSON.findall(prose), f"{page.name}: first person: {_FIRST_PERSON.findall(prose)}"
    assert not _DATE.findall(page.text), f"{page.name}: run dates: {_DATE.findall(page.text)}"
    assert not _HASH.findall(page.text), f"{page.name}: commit hashes: {_HASH.findall(page.text)}"


def test_the_contributing_page_lists_every_generator():
    page = (ROOT / "docs" / "contributing.md").read_text()
    missing = [name for name in generate.GENERATORS if f"`{name}`" not in page]
    assert not missing, f"docs/contributing.md does not describe the generators {missing}"


def test_a_missing_name_is_caught():
    with pytest.raises(AttributeError):
        resolve_dotted("hf_mim.training.no_such_thing")
    with pytest.raises(LookupError):
        resolve_class("MaskFeatConfigg")
    assert "--no_such_flag" not in cli_parsers.all_flags()
