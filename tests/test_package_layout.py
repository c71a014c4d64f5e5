"""The package's shape: no library module imports the command line, the import graph has no circle, method
packages never import each other, and generic modules hold no method names (a method owns its knowledge)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hf_mim"
METHODS = sorted(p.name for p in (PACKAGE / "models").iterdir() if (p / "__init__.py").is_file())


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The hf_mim modules ``path`` imports, at the top or inside functions (a submodule import counts for the
    submodule when it is a module, else for the package)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [f"{target}.{alias.name}" for alias in node.names] + [target]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for candidate in candidates:
            if candidate.startswith("hf_mim") and candidate in MODULES:
                found.add(candidate)
                break
    found.discard(name)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports(path) for name, path in MODULES.items()}


def test_no_library_module_imports_the_command_line():
    offenders = {name: sorted(t for t in targets if t.startswith("hf_mim.cli"))
                 for name, targets in GRAPH.items() if not name.startswith(("hf_mim.cli", "hf_mim.__main__"))}  # fmt: skip
    assert not {k: v for k, v in offenders.items() if v}


def test_command_modules_do_not_import_each_other():
    for name, targets in GRAPH.items():
        if name.startswith("hf_mim.cli."):
            assert not [t for t in targets if t.startswith("hf_mim.cli.")], name


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(GRAPH.get(node, ())):
            # a package's __init__ re-exporting its submodules is not a circle of their logic
            if node == target.rsplit(".", 1)[0] or target == node.rsplit(".", 1)[0]:
                continue
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(GRAPH):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_circle():
    assert _cycle() is None


@pytest.mark.parametrize("method", METHODS)
def test_method_packages_never_import_each_other(method):
    others = [f"hf_mim.models.{m}" for m in METHODS if m != method]
    for name, targets in GRAPH.items():
        if name.startswith(f"hf_mim.models.{method}"):
            assert not [t for t in targets if any(t.startswith(o) for o in others)], name


def test_generic_modules_have_no_method_branches():
    """A fourth method touches its own folder and its registry entry: generic code never compares to a method
    name (``x == "hpm"``, ``x in ("hpm", ...)``, ``getattr(c, "model_type", "") != "hpm"``, ``x or "hpm"``); the one
    default method of the command line is a named constant."""
    names = "|".join(METHODS)
    pattern = re.compile(
        r"""(==|!=|\bin)\s*[\(\[\{]?\s*["'](""" + names + r""")["']|\bor\s+["'](""" + names + r""")["']"""
    )
    offenders = []
    for name, path in MODULES.items():
        if name.startswith("hf_mim.models.") or name == "hf_mim.registry":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and "mask_type" not in line:  # "simmim" is also a mask generator's name
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
