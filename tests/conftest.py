"""Shared fixtures: real photos from scikit-image and the shared CIFAR-10 parquet file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CIFAR10 = REPO.parent / "shared" / "data" / "cifar10" / "train.parquet"


def cifar10_path() -> Path:
    """Path of the shared CIFAR-10 parquet file; skips where it is absent, fails under CI."""
    if CIFAR10.is_file():
        return CIFAR10
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the shared CIFAR-10 file is missing at {CIFAR10}")
    pytest.skip(f"shared CIFAR-10 data not found at {CIFAR10} (only present next to the project's CI checkout)")


@pytest.fixture(scope="session")
def cifar10_file() -> Path:
    return cifar10_path()


@pytest.fixture(scope="session")
def cifar10_rows(cifar10_file):
    """512 training rows drawn at random (seed 0) as a `datasets.Dataset` with `image` / `label` columns.

    The shared file is sorted by class: its first rows are all airplanes, so a prefix would be single-class.
    """
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files=str(cifar10_file), split="train")
    return ds.shuffle(seed=0).select(range(512)).flatten_indices()


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photos shipped with scikit-image, as uint8 RGB arrays."""
    from skimage import data

    return {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee()}
