"""The ablation study: every variant pretrains, is scored and lands in the table; paired differences to the
method's reference; --resume keeps finished runs."""

import json

import numpy as np
import pytest

from hf_mim.experiments import ablations


def test_summary_pairs_each_variant_with_its_reference_seed_by_seed():
    runs = [
        {"variant": "maskfeat target=hog", "seed": 0, "knn": 0.30, "finetune": 0.40, "pretrain_loss": 1.0},
        {"variant": "maskfeat target=hog", "seed": 1, "knn": 0.20, "finetune": 0.35, "pretrain_loss": 1.2},
        {"variant": "maskfeat target=pixel", "seed": 0, "knn": 0.28, "finetune": 0.41, "pretrain_loss": 0.5},
        {"variant": "maskfeat target=pixel", "seed": 1, "knn": 0.19, "finetune": 0.33, "pretrain_loss": 0.6},
        {"variant": "maskfeat target=pixel", "seed": 2, "knn": 0.50, "finetune": 0.50, "pretrain_loss": 0.6},
    ]
    results = {"runs": runs, "reference": ablations.REFERENCE}
    ablations.summarize(results)
    pixel = results["summary"]["maskfeat target=pixel"]
    assert pixel["knn"]["mean"] == pytest.approx(np.mean([0.28, 0.19, 0.50]))
    assert pixel["knn"]["std"] == pytest.approx(np.std([0.28, 0.19, 0.50], ddof=1))
    # seed 2 has no reference run: the difference uses seeds 0 and 1 only
    diffs = [0.28 - 0.30, 0.19 - 0.20]
    assert pixel["knn"]["delta"]["mean"] == pytest.approx(np.mean(diffs))
    assert pixel["knn"]["delta"]["std"] == pytest.approx(np.std(diffs, ddof=1))
    assert pixel["finetune"]["delta"]["runs"] == pytest.approx([0.01, -0.02])
    assert "delta" not in results["summary"]["maskfeat target=hog"]["knn"]


def test_bad_arguments_are_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        ablations.parse_args(["--train_file", "x.parquet", "--fraction", "1.5"])
    assert "--fraction" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ablations.parse_args(["--train_file", "x.parquet", "--seeds", "0"])
    assert "--seeds" in capsys.readouterr().err


def test_every_variant_runs_is_tabled_and_resumes(cifar10_rows, tmp_path):
    train = tmp_path / "train.parquet"
    cifar10_rows.select(range(300)).to_parquet(str(train))
    out = tmp_path / "out"
    argv = ["--train_file", str(train), "--output_dir", str(out), "--val_size", "60", "--fraction", "0.2",
            "--budget", "smoke", "--batch_size", "32", "--cpu"]  # fmt: skip
    results = ablations.main(argv)
    assert [r["variant"] for r in results["runs"]] == list(ablations.VARIANTS)
    for run in results["runs"]:
        assert 0 <= run["knn"] <= 1 and 0 <= run["finetune"] <= 1, run["variant"]
    configs = {json.loads(p.read_text()).get("target", "hog") for p in out.glob("maskfeat_*_config.json")}
    assert configs == {"hog", "pixel", "hog+pixel"}
    table = (out / "results.md").read_text()
    assert "simmim loss=l2" in table and "maskfeat target=hog+pixel" in table and "(reference)" in table
    assert (out / "results.png").stat().st_size > 0
    assert json.loads((out / "results.json").read_text())["runs"] == results["runs"]

    # a resumed study with nothing left to do trains nothing and keeps every run
    finished = out / "seed0" / "maskfeat_target-hog" / "all_results.json"
    stamp = finished.stat().st_mtime_ns
    again = ablations.main([*argv, "--resume"])
    assert again["runs"] == results["runs"] and finished.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="another study"):
        ablations.main([*argv, "--resume", "--seeds", "2"])
