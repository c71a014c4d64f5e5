"""Smoke test of the ablation study: every variant pretrains, is scored, and lands in the table."""

import json

from hf_mim.experiments import ablations


def test_every_variant_runs_and_is_tabled(cifar10_rows, tmp_path):
    train = tmp_path / "train.parquet"
    cifar10_rows.select(range(300)).to_parquet(str(train))
    out = tmp_path / "out"
    results = ablations.main(["--train_file", str(train), "--output_dir", str(out), "--val_size", "60",
                              "--fraction", "0.2", "--budget", "smoke", "--batch_size", "32", "--cpu"])  # fmt: skip
    assert list(results["variants"]) == list(ablations.VARIANTS)
    for name, row in results["variants"].items():
        assert 0 <= row["knn"] <= 1 and 0 <= row["finetune"] <= 1, name
    configs = {json.loads(p.read_text()).get("target", "hog") for p in out.glob("maskfeat_*_config.json")}
    assert configs == {"hog", "pixel", "hog+pixel"}
    table = (out / "results.md").read_text()
    assert "simmim loss=l2" in table and "maskfeat target=hog+pixel" in table
