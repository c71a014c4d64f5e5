"""Training data: undecodable and empty data are named before training (hf_mim.training.data)."""

from __future__ import annotations

import pytest

from . import _jpeg, _parquet


def test_bad_data_is_named(tmp_path):
    import datasets

    from hf_mim.cli import pretrain

    from ..cli.test_pretrain import run_args

    rows = [_jpeg(i) for i in range(16)]
    rows[5] = b"\xff\xd8 not a jpeg"
    bad = _parquet(tmp_path / "bad.parquet", rows, raw=True)  # raw bytes: cast to images automatically
    with pytest.raises(ValueError, match="Row 5 of .*cannot be decoded.*--skip_corrupt_images"):
        pretrain.main(run_args("maskfeat", tmp_path / "a", "--max_steps", "2", "--data_files", str(bad)))
    metrics = pretrain.main(run_args("maskfeat", tmp_path / "b", "--max_steps", "2", "--data_files", str(bad),
                                     "--skip_corrupt_images"))  # fmt: skip
    assert metrics["train_steps"] == 2
    empty = tmp_path / "empty.parquet"
    datasets.Dataset.from_dict({"image": []}, features=datasets.Features({"image": datasets.Image()})).to_parquet(
        str(empty)
    )
    with pytest.raises(ValueError, match="has no rows"):
        pretrain.main(run_args("maskfeat", tmp_path / "c", "--max_steps", "2", "--data_files", str(empty)))
