"""Smoke test of the label-efficiency experiment: the whole pipeline on a few CIFAR-10 rows."""

import json

from hf_mim.experiments import label_efficiency


def test_label_efficiency_pipeline_writes_table(cifar10_rows, tmp_path):
    train = tmp_path / "train.parquet"
    cifar10_rows.select(range(400)).to_parquet(str(train))
    test = tmp_path / "test.parquet"
    cifar10_rows.select(range(400, 464)).to_parquet(str(test))
    results = label_efficiency.main([
        "--train_file", str(train), "--test_file", str(test), "--output_dir", str(tmp_path / "out"),
        "--val_size", "80", "--fractions", "0.1", "0.25", "--budget", "smoke", "--batch_size", "32", "--cpu",
    ])  # fmt: skip
    rows = results["rows"]
    assert set(rows) == {"maskfeat", "simmim", "hpm", "scratch"}
    for row in rows.values():
        for key in ("top1_0.1", "top1_0.25", "test_top1_0.1", "test_top1_0.25"):
            assert 0.0 <= row[key] <= 1.0
    assert -1.0 <= rows["hpm"]["hpm_spearman"] <= 1.0
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| scratch |" in table and "HPM Spearman" in table
    assert json.loads((tmp_path / "out" / "results.json").read_text())["budget"] == "smoke"
    # labelled subsets are class-balanced and never touch the held-out rows
    subset = label_efficiency.labelled_subset(__import__("numpy").repeat(range(10), 32), 0.1, 400, 0)
    assert len(subset) == 40 and len(set(subset)) == 40
    import datasets

    data = tmp_path / "out" / "data"
    val = datasets.load_dataset("parquet", data_files=str(data / "val.parquet"), split="train")
    labelled = datasets.load_dataset("parquet", data_files=str(data / "labels_0.25.parquet"), split="train")
    assert len(set(val["label"])) >= 8, "held-out rows must span the classes (the source file is sorted by class)"
    assert len(set(labelled["label"])) == 10
