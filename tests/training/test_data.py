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


def _rows(columns: dict, features: dict):
    import datasets

    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def test_the_image_and_label_columns_are_found_by_type_then_name():
    import datasets

    from hf_mim.training.data import find_image_column, find_label_column

    image, label = datasets.Image(), datasets.ClassLabel(names=["a", "b"])
    jpeg = {"bytes": _jpeg(0), "path": None}
    # CIFAR-100's own schema: two ClassLabel columns, the usual name decides
    cifar = _rows({"img": [jpeg], "fine_label": [1], "coarse_label": [0]},
                  {"img": image, "fine_label": label, "coarse_label": label})  # fmt: skip
    assert find_image_column(cifar) == "img" and find_label_column(cifar) == "fine_label"
    raw = _rows(
        {"img": [_jpeg(1)], "labels": [3]}, {"img": datasets.Value("binary"), "labels": datasets.Value("int64")}
    )
    assert find_image_column(raw) == "img" and find_label_column(raw) == "labels"  # by name
    two = _rows({"a": [jpeg], "b": [jpeg], "x": [0], "y": [1]}, {"a": image, "b": image, "x": label, "y": label})
    with pytest.raises(ValueError, match=r"several image columns \['a', 'b'\].*--image_column"):
        find_image_column(two)
    with pytest.raises(ValueError, match=r"several class-label columns \['x', 'y'\].*--label_column"):
        find_label_column(two)
    with pytest.raises(ValueError, match="--image_column 'photo' is not a column"):
        find_image_column(cifar, "photo")
    with pytest.raises(ValueError, match="no class-label column"):
        find_label_column(_rows({"img": [jpeg]}, {"img": image}))


def test_pretraining_finds_an_img_column(tmp_path):
    import datasets

    from hf_mim.cli import pretrain

    from ..cli.test_pretrain import run_args

    rows = [{"bytes": _jpeg(i), "path": None} for i in range(16)]
    data = tmp_path / "cifar_like.parquet"
    features = datasets.Features({"img": datasets.Image(), "label": datasets.Value("int64")})
    datasets.Dataset.from_dict({"img": rows, "label": list(range(16))}, features=features).to_parquet(str(data))
    metrics = pretrain.main(run_args("maskfeat", tmp_path / "out", "--max_steps", "1", "--data_files", str(data)))
    assert metrics["train_steps"] == 1


def test_a_class_sorted_stream_is_shuffled_and_reshuffled_every_epoch(cifar10_rows):
    """#24 (part): a stream stored in class order no longer trains in class order."""
    from hf_mim.training.streaming import prepare_stream

    rows = cifar10_rows.select(range(200)).sort("label").remove_columns("image")  # class-sorted, as the shared file
    stream = prepare_stream(rows.to_iterable_dataset(num_shards=4), "label", seed=0, buffer_size=10_000)
    first = [row["label"] for _, row in zip(range(32), iter(stream))]
    assert len(set(first)) >= 5  # stored order would give one class
    stream.set_epoch(0)
    epoch0 = [row["label"] for row in stream]
    stream.set_epoch(1)
    epoch1 = [row["label"] for row in stream]
    assert sorted(epoch0) == sorted(epoch1) == sorted(rows["label"]) and epoch0 != epoch1  # all rows, new order
    assert [r["label"] for r in prepare_stream(rows.to_iterable_dataset(), "label", 0, 0)] == rows["label"]  # stored


def test_shuffling_a_stream_keeps_its_shards():
    """datasets 5.0.x reported one shard after shuffle() for fewer than 20 files (datasets#8669): DataLoader workers
    and ranks beyond the first then got nothing. The floor in setup.py is past it; this keeps it so."""
    import datasets

    from hf_mim.training.streaming import prepare_stream

    stream = datasets.Dataset.from_dict({"x": list(range(64))}).to_iterable_dataset(num_shards=8)
    assert prepare_stream(stream, "x", seed=0, buffer_size=16).num_shards == 8
