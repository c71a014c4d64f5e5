"""Metric modules shipped inside hf_mim and loaded by path: ``evaluate.load("accuracy")`` needs the Hub."""

from __future__ import annotations

from pathlib import Path

__all__ = ["load_metric", "metric_path"]

_HERE = Path(__file__).resolve().parent


def metric_path(name: str) -> str:
    path = _HERE / name / f"{name}.py"
    if not path.is_file():
        available = sorted(p.name for p in _HERE.iterdir() if (p / f"{p.name}.py").is_file())
        raise ValueError(f"Unknown metric {name!r}; shipped metrics: {available}.")
    return str(path)


def load_metric(name: str = "accuracy"):
    """``evaluate.load`` of a shipped metric module, offline."""
    import evaluate

    return evaluate.load(metric_path(name))
