"""The prepared GPU check (`benchmarks/gpu_check.py`) runs in its tiny CPU mode, so it cannot rot before a GPU runs it."""

from __future__ import annotations

import importlib.util
import json

from .cli.test_pretrain import REPO


def test_the_gpu_check_runs_in_its_cpu_mode_and_writes_its_tables(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    result = gpu_check.main(["--cpu", "--output_dir", str(tmp_path), "--repeats", "1"])
    assert json.loads((tmp_path / "gpu_check.json").read_text())["steps"]["size"] == "micro-32"
    models = result["steps"]["models"]
    for method in ("MaskFeatForPreTraining", "SimMIMForMaskedImageModeling", "HPMForPreTraining (HPM)"):
        for variant in ("sdpa", "compile"):
            row = models[f"hf_mim {method} [{variant}]"]
            assert row["ms_per_step"] > 0 and row["tflops_per_step"] > 0, (method, variant, row)
        assert "CUDA" in models[f"hf_mim {method} [flash_attention_2]"]["unavailable"]
    assert set(result["steps"]["comparisons"]) == set(gpu_check.REFERENCE)
    assert result["steps"]["hog"]["ms_per_batch"] > 0  # (a share of a micro step is noise)
    assert result["data"]["1_workers"]["images_per_second"] > 0
    assert result["resume"]["bitwise_equal"], result["resume"]
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| model [variant] | ms / step |" in table and "Checkpoint and resume" in table
