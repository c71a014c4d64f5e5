"""``hf-mim env``: versions and devices to paste into a bug report (like ``transformers env``)."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys

PACKAGES = ("hf_mim", "torch", "transformers", "accelerate", "datasets", "evaluate", "huggingface_hub",
            "safetensors", "kornia", "numpy", "pillow")  # fmt: skip


def collect() -> dict[str, str]:
    """Platform, Python, the versions of hf_mim's dependencies and the available accelerators."""
    info = {"platform": platform.platform(), "python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = "not installed"
    import torch

    info["torch threads"] = str(torch.get_num_threads())
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["device"] = f"cuda ({torch.cuda.device_count()}x: {', '.join(names)}; CUDA {torch.version.cuda})"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        info["device"] = "mps"
    else:
        info["device"] = "cpu"
    info["distributed"] = "available" if torch.distributed.is_available() else "not available"
    return info


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hf-mim env", description=__doc__)
    parser.parse_args(argv)
    info = collect()
    width = max(map(len, info))
    print("Copy-and-paste the text below in your GitHub issue:\n")
    print("\n".join(f"- {key.ljust(width)}: {value}" for key, value in info.items()))
    return 0
