"""Tests of hf_mim.training; small data makers shared by its modules."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image


def _parquet(path, images, labels=None, raw=False):
    import datasets

    if raw:
        data = {"image": images}
        features = datasets.Features({"image": datasets.Value("binary")})
    else:
        data = {"image": images, **({"label": labels} if labels is not None else {})}
        features = None
    datasets.Dataset.from_dict(data, features=features).to_parquet(str(path))
    return path


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    array = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    PIL.Image.fromarray(array).save(buf, "JPEG")
    return buf.getvalue()
