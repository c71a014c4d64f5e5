"""The installable product: a wheel, installed (not editable) into a fresh virtual environment, used from a folder
outside the checkout through the `hf-mim` command only, with every read of a checkout file refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .hub_server import HubServer, hub_env

REPO = Path(__file__).resolve().parents[1]

# Installed as the fresh environment's sitecustomize: any open() of a file in the checkout is refused and logged.
GUARD = """
import os, sys
_REPO = {repo!r}
_LOG = {log!r}
def _guard(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if path == _REPO or path.startswith(_REPO + os.sep):
            with open(_LOG, "a") as log:  # the log is outside the checkout
                log.write(path + "\\n")
            raise PermissionError(f"hf_mim read {{path}} from the source checkout")
sys.addaudithook(_guard)
"""

LOAD = """
import hf_mim, sys, torch
from transformers import AutoModelForImageClassification, AutoModelForPreTraining, ViTModel
root = hf_mim.__file__
assert "site-packages" in root, root
pre = AutoModelForPreTraining.from_pretrained("pre")
ft = AutoModelForImageClassification.from_pretrained("ft")
vit = ViTModel.from_pretrained("vit")
pulled = AutoModelForPreTraining.from_pretrained("org/wheel-test")
assert all(torch.equal(pulled.state_dict()[k], v) for k, v in pre.state_dict().items())
print("LOADED", type(pre).__name__, type(ft).__name__, type(vit).__name__, root)
"""


@pytest.mark.slow
def test_wheel_in_a_fresh_environment_needs_nothing_from_the_checkout(tmp_path):
    import datasets
    import PIL.Image

    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                            str(dist), str(REPO)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(dist.glob("hf_mim-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # torch pinned in the same resolve: the local CPU wheel, not a CUDA build
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-compile", "torch==2.13.0", str(wheel)],
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    log = tmp_path / "checkout_reads.log"
    Path(site, "sitecustomize.py").write_text(GUARD.format(repo=str(REPO.resolve()), log=str(log)))
    probe = subprocess.run([python, "-c", f"open({str(REPO / 'README.md')!r})"], capture_output=True, text=True)
    assert probe.returncode != 0 and "source checkout" in probe.stderr, "the guard is not active"
    log.unlink()

    # a tiny labelled parquet: 24 random images of 3 classes
    rng = np.random.default_rng(0)
    images = [PIL.Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in range(24)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    datasets.Dataset.from_dict({"image": images, "label": [i % 3 for i in range(24)]}, features=features).to_parquet(
        str(work / "labelled.parquet")
    )

    hf_mim = str(venv / "bin" / "hf-mim")
    with HubServer() as hub:
        env = hub_env(hub, tmp_path)
        for key in ("PYTHONPATH", "HF_MIM_MODEL_CARDS", "VIRTUAL_ENV"):
            env.pop(key, None)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

        def run(*args):
            result = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, f"{args}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
            return result.stdout

        assert run(hf_mim, "--version").strip().startswith("hf-mim ")
        out = run(hf_mim, "pretrain", "--preset", "test", "--config_overrides", "image_size=32,patch_size=16",
                  "--default_data_size", "32", "--per_device_train_batch_size", "8", "--max_steps", "2",
                  "--picture_steps", "0", "--cpu", "--output_dir", "pre")  # fmt: skip
        assert "Pretrained maskfeat" in out
        out = run(hf_mim, "finetune", "--model_name_or_path", "pre", "--data_files", "labelled.parquet",
                  "--output_dir", "ft", "--max_steps", "2", "--per_device_train_batch_size", "8", "--use_cpu",
                  "--report_to", "none", "--save_strategy", "no", "--validation_split_percentage", "25")  # fmt: skip
        assert "eval accuracy" in out
        assert "Exported ViTModel" in run(hf_mim, "export", "--model_name_or_path", "pre", "--output_dir", "vit")
        assert "Pushed" in run(hf_mim, "push", "--output_dir", "pre", "--hub_model_id", "org/wheel-test")
        assert "hf-mim" in run(python, "-m", "hf_mim", "--version")
        loaded = run(python, "-c", LOAD)
    assert "LOADED MaskFeatForPreTraining MaskFeatForImageClassification ViTModel" in loaded
    assert not log.exists(), f"files of the checkout were needed:\n{log.read_text()}"
    card = (work / "pre" / "README.md").read_text()
    assert "MaskFeat" in card and json.loads((work / "ft" / "all_results.json").read_text())["eval_accuracy"] >= 0
