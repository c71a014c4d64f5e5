"""FSDP2 on 2 gloo ranks (torch's fully_shard through hf_mim.training.shard_model), see tests/fsdp_check.py.

accelerate (1.15) enables FSDP only for GPU-like backends and silently runs DDP on CPU, so the CPU check shards with
torch directly; `hf-mim pretrain --fsdp` uses accelerate's FSDP2 plugin and is refused on CPU with that reason.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_mim.cli import pretrain

REPO = Path(__file__).resolve().parents[1]


def test_fsdp2_matches_unsharded_training_teacher_and_resume(tmp_path):
    report = tmp_path / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_MIM_FSDP_REPORT": str(report)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "tests" / "fsdp_check.py")]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    methods = json.loads(report.read_text())["methods"]
    for method, r in methods.items():
        assert r["no_decay_equal"], f"{method}: weight-decay groups changed by sharding"
        assert r["max_loss_diff"] < 1e-5 and r["max_weight_diff"] < 1e-4, (method, r)
        assert r["resume_exact"], f"{method}: the distributed checkpoint did not resume exactly"
    hpm = methods["hpm"]
    assert hpm["teacher_keys"] > 0 and hpm["teacher_moved"] and hpm["max_teacher_diff"] < 1e-6


def test_fsdp_on_cpu_is_refused_with_the_reason(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pretrain.main(["--preset", "test", "--cpu", "--fsdp", "--output_dir", str(tmp_path), "--max_steps", "1"])
    assert "accelerate enables FSDP only on GPU-like devices" in capsys.readouterr().err
