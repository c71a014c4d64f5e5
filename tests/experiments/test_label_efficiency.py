"""The label-efficiency experiment: its split and seed logic against direct checks, and the whole pipeline (every
row, protocol and two seeds) on a few CIFAR-10 rows."""

import json

import numpy as np
import pytest

from hf_mim.experiments import label_efficiency


def test_split_never_mixes_held_out_and_labelled_rows_and_balances_classes():
    labels = np.repeat(np.arange(10), 100)  # sorted by class, like the shared file
    held, rest, subsets = label_efficiency.split_rows(labels, 200, [0.01, 0.1], seed=3)
    assert len(held) == 200 and len(rest) == 800 and not set(held) & set(rest)
    assert len(np.unique(labels[held])) == 10, "held-out rows are drawn at random, not a tail"
    for fraction, idx in subsets.items():
        assert set(idx) <= set(rest) and len(set(idx)) == len(idx)
        counts = np.bincount(labels[idx], minlength=10)
        assert (counts == counts[0]).all() and counts.sum() == round(fraction * 1000)
    again = label_efficiency.split_rows(labels, 200, [0.01, 0.1], seed=3)
    assert np.array_equal(again[0], held) and all(np.array_equal(again[2][f], subsets[f]) for f in subsets)
    other = label_efficiency.split_rows(labels, 200, [0.01, 0.1], seed=4)
    assert not np.array_equal(other[0], held)
    with pytest.raises(ValueError, match="fewer than"):
        label_efficiency.labelled_subset(labels[:150], 0.5, 1000, 0)


def test_summary_is_mean_and_sample_std_over_seeds_with_gain_over_own_scratch():
    runs = [{"row": r, "seed": s, "protocol": "knn", "fraction": 0.1, "top1": v}
            for r, vals in {"hpm": [0.5, 0.6, 0.7], "scratch-mae": [0.3, 0.3, 0.3]}.items() for s, v in enumerate(vals)]  # fmt: skip
    results = {"runs": runs}
    label_efficiency.summarize(results)
    cell = results["summary"]["hpm"]["knn"]["0.1"]
    assert cell["mean"] == pytest.approx(0.6) and cell["std"] == pytest.approx(np.std([0.5, 0.6, 0.7], ddof=1))
    assert cell["gain_over_scratch"] == pytest.approx(0.3) and cell["gain_std"] == pytest.approx(0.1)


def test_pipeline_two_seeds_every_row_and_protocol(cifar10_rows, tmp_path):
    train = tmp_path / "train.parquet"
    cifar10_rows.select(range(400)).to_parquet(str(train))
    test = tmp_path / "test.parquet"
    cifar10_rows.select(range(400, 432)).to_parquet(str(test))
    out = tmp_path / "out"
    results = label_efficiency.main([
        "--train_file", str(train), "--test_file", str(test), "--output_dir", str(out), "--val_size", "80",
        "--fractions", "0.1", "0.25", "--budget", "smoke", "--seeds", "2", "--batch_size", "32", "--cpu",
    ])  # fmt: skip
    summary = results["summary"]
    assert set(summary) == set(label_efficiency.ROWS)
    for row in summary.values():
        for protocol in label_efficiency.PROTOCOLS:
            for fraction in ("0.1", "0.25"):
                cell = row[protocol][fraction]
                assert len(cell["runs"]) == 2 and all(0 <= v <= 1 for v in cell["runs"])
    assert summary["hpm"]["finetune"]["0.1"]["gain_over_scratch"] == pytest.approx(
        summary["hpm"]["finetune"]["0.1"]["mean"] - summary["scratch-mae"]["finetune"]["0.1"]["mean"]
    )
    assert all("test_top1" in r for r in results["runs"] if r["protocol"] != "knn")
    pretrained = results["rows"]["hpm"]["pretrain"]
    assert len(pretrained) == 2 and all(-1 <= r["hpm_spearman"] <= 1 for r in pretrained.values())
    assert all("hpm_spearman" not in r for r in results["rows"]["mae"]["pretrain"].values())
    table = (out / "results.md").read_text()
    assert "**knn**" in table and "| scratch-mae |" in table and "+-" in table
    saved = json.loads((out / "results.json").read_text())
    assert saved["budget"] == "smoke" and saved["seeds"] == [0, 1] and saved["wall_seconds"] > 0
    assert (out / "results.png").stat().st_size > 1000

    # a killed run resumes: nothing finished is redone (the pretrained weights are not rewritten)
    weights = out / "seed1" / "hpm" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    resumed = label_efficiency.main([
        "--train_file", str(train), "--test_file", str(test), "--output_dir", str(out), "--val_size", "80",
        "--fractions", "0.1", "0.25", "--budget", "smoke", "--seeds", "2", "--batch_size", "32", "--cpu", "--resume",
    ])  # fmt: skip
    assert resumed["runs"] == results["runs"] and weights.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="another experiment"):
        label_efficiency.main(["--train_file", str(train), "--output_dir", str(out), "--val_size", "80",
                               "--fractions", "0.1", "--budget", "smoke", "--cpu", "--resume"])  # fmt: skip
