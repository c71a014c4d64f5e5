"""Hub round trips through the real huggingface_hub client, against a Hub-API-compatible server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .hub_server import BLOCK_HF_MIM, HubServer, hub_env

REPO = Path(__file__).resolve().parents[1]

PRETRAIN = [
    sys.executable, str(REPO / "scripts" / "pretrain.py"), "--preset", "test", "--config_overrides",
    "image_size=32,patch_size=16", "--default_data_size", "32", "--per_device_train_batch_size", "8",
    "--max_steps", "2", "--picture_steps", "0", "--cpu",
]  # fmt: skip

# Loads a pushed repo with transformers alone: hf_mim is made unimportable first.
LOAD_WITHOUT_HF_MIM = (
    BLOCK_HF_MIM
    + """
import torch
from safetensors.torch import load_file
from transformers import AutoImageProcessor, AutoModelForPreTraining
model = AutoModelForPreTraining.from_pretrained(sys.argv[1], trust_remote_code=True)
processor = AutoImageProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
local = load_file(sys.argv[2] + "/model.safetensors")
state = model.state_dict()
assert all(torch.equal(state[k], v) for k, v in local.items()), "weights differ"
batch = processor([torch.rand(3, 40, 40)], augment=False, return_mask=True, seed=0)
out = model(**batch)
assert torch.isfinite(out.loss)
assert "hf_mim" not in sys.modules and type(model).__module__.startswith("transformers_modules")
print("LOADED", type(model).__name__, type(processor).__name__)
"""
)

LOAD_WITH_HF_MIM = """
import sys, torch, hf_mim
from safetensors.torch import load_file
from transformers import AutoModelForPreTraining
model = AutoModelForPreTraining.from_pretrained(sys.argv[1])
local = load_file(sys.argv[2] + "/model.safetensors")
assert all(torch.equal(model.state_dict()[k], v) for k, v in local.items())
assert type(model).__module__.startswith("hf_mim")
print("LOADED", type(model).__name__)
"""


def run(cmd, env, cwd=REPO):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


def test_push_retries_then_pull_identical_and_remote_code(tmp_path):
    out = tmp_path / "out"
    with HubServer() as hub:
        hub.state.fail_commits = 2  # the Hub errors twice (HTTP 500), then recovers
        env = hub_env(hub, tmp_path)
        result = run(
            [*PRETRAIN, "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "org/maskfeat-test"], env
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert hub.state.commit_attempts == 3
        repo = hub.state.repos["org/maskfeat-test"]
        assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "modeling_maskfeat.py",
                "configuration_maskfeat.py", "targets.py", "reconstruction.png"} <= set(repo.files)  # fmt: skip
        assert not any(name.startswith("checkpoints/") for name in repo.files)
        pulled = run([sys.executable, "-c", LOAD_WITH_HF_MIM, "org/maskfeat-test", str(out)], env)
        assert pulled.returncode == 0 and "LOADED MaskFeatForPreTraining" in pulled.stdout, pulled.stderr[-3000:]
        remote = run([sys.executable, "-c", LOAD_WITHOUT_HF_MIM, "org/maskfeat-test", str(out)], env, cwd=tmp_path)
        assert remote.returncode == 0, remote.stderr[-3000:]
        assert "LOADED MaskFeatForPreTraining MaskFeatImageProcessor" in remote.stdout


def test_failing_hub_keeps_local_output_and_says_how_to_retry(tmp_path):
    out = tmp_path / "out"
    with HubServer() as hub:
        hub.state.fail_commits = 10**6
        env = hub_env(hub, tmp_path)
        result = run([*PRETRAIN, "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "org/flaky"], env)
        assert result.returncode == 1
        assert "retry the upload alone with: hf-mim push" in result.stderr
        for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md", "all_results.json"):
            assert (out / name).is_file(), name
        hub.state.fail_commits = 0  # the Hub is back: the suggested command finishes the job
        retry = run([sys.executable, str(REPO / "scripts" / "push_to_hub.py"), "--output_dir", str(out),
                     "--hub_model_id", "org/flaky"], env)  # fmt: skip
        assert retry.returncode == 0, retry.stderr[-3000:]
        pulled = run([sys.executable, "-c", LOAD_WITH_HF_MIM, "org/flaky", str(out)], env)
        assert pulled.returncode == 0, pulled.stderr[-3000:]


def test_push_to_hub_script_rejects_unfinished_folder(tmp_path):
    result = run([sys.executable, str(REPO / "scripts" / "push_to_hub.py"), "--output_dir", str(tmp_path),
                  "--hub_model_id", "org/x"], dict(os.environ))  # fmt: skip
    assert (
        result.returncode == 2
        and "not a finished output folder (missing config.json, README.md, all_results.json" in result.stderr
    )


@pytest.mark.parametrize("method", ["simmim", "hpm"])
def test_remote_code_bundle_for_other_methods(method, tmp_path):
    import torch

    from hf_mim import get_model_spec
    from hf_mim.export import bundle_remote_code

    spec = get_model_spec(method)
    model = spec.pretraining_class(spec.tiny_config())
    processor = spec.image_processor_class.from_model_config(model.config)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    written = bundle_remote_code(model, tmp_path) + bundle_remote_code(processor, tmp_path)
    assert f"modeling_{method}.py" in written and "image_processing.py" in written
    code = LOAD_WITHOUT_HF_MIM.replace(
        "processor([torch.rand(3, 40, 40)], augment=False, return_mask=True, seed=0)",
        "processor([torch.rand(3, 40, 40)], augment=False, seed=0, return_mask=False)",
    )
    code = code.replace("out = model(**batch)", "out = model(**batch, **EXTRA)")
    extra = spec.pretraining_inputs(model.config, 1, torch.Generator().manual_seed(0))
    torch.save(extra, tmp_path / "extra.pt")
    code = code.replace("out = model(", "EXTRA = torch.load(sys.argv[2] + '/extra.pt')\nout = model(")
    result = run([sys.executable, "-c", code, str(tmp_path), str(tmp_path)], dict(os.environ), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


# A continued pretraining through the Hub: a backbone pushed as org/tiny-deit, pretrained from its Hub id and pushed,
# exported from the run's Hub id, scored with kNN, and pushed with the kNN result in its card.
CONTINUE_THROUGH_THE_HUB = """
import sys
from pathlib import Path

import torch
from transformers import AutoModel, DeiTConfig
from transformers import ViTImageProcessorPil as ViTImageProcessor

from hf_mim.cli import main
from hf_mim.hub import push_folder

work, labelled = Path(sys.argv[1]), sys.argv[2]
torch.manual_seed(0)
AutoModel.from_config(DeiTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 image_size=32, patch_size=8)).save_pretrained(work / "deit")
ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(
    work / "deit")
push_folder(work / "deit", "org/tiny-deit")
steps = [
    ["pretrain", "--method", "maskfeat", "--init_from", "org/tiny-deit", "--output_dir", str(work / "run"),
     "--default_data_size", "16", "--per_device_train_batch_size", "8", "--max_steps", "2", "--picture_steps", "0",
     "--cpu", "--push_to_hub", "--hub_model_id", "org/deit-maskfeat"],
    ["export", "--model_name_or_path", "org/deit-maskfeat", "--output_dir", str(work / "export"),
     "--hub_model_id", "org/deit-maskfeat-encoder"],
    ["finetune", "--knn", "--knn_k", "3", "--model_name_or_path", str(work / "export"), "--data_files", labelled,
     "--output_dir", str(work / "knn"), "--use_cpu", "--report_to", "none"],
    ["push", "--output_dir", str(work / "export"), "--hub_model_id", "org/deit-maskfeat-encoder", "--eval_results",
     str(work / "knn" / "all_results.json")],
]
for step in steps:
    assert main(step) == 0, step
"""

# Reads the cards back with huggingface_hub's card API, and uses the export with transformers alone.
READ_BACK_WITHOUT_HF_MIM = (
    BLOCK_HF_MIM
    + """
import json
import numpy as np
from huggingface_hub import ModelCard
from PIL import Image
from transformers import AutoModel, pipeline

run, export = sys.argv[1], sys.argv[2]
cards = {repo: ModelCard.load(repo).data.to_dict() for repo in (run, export)}
model = AutoModel.from_pretrained(export)
features = pipeline("image-feature-extraction", model=export)(Image.fromarray(np.zeros((48, 40, 3), np.uint8)))
print("RESULT " + json.dumps({"cards": cards, "class": type(model).__name__, "shape": np.asarray(features).shape}))
"""
)


def test_continued_pretraining_and_its_export_carry_hub_metadata(tmp_path):
    import json

    import numpy as np
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    rows = {"image": [PILImage.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(24)],
            "label": [i % 2 for i in range(24)]}  # fmt: skip
    labelled = tmp_path / "labelled.parquet"
    Dataset.from_dict(rows, features=Features({"image": Image(), "label": ClassLabel(names=["a", "b"])})).to_parquet(
        str(labelled)
    )
    with HubServer() as hub:
        env = hub_env(hub, tmp_path)
        result = run([sys.executable, "-c", CONTINUE_THROUGH_THE_HUB, str(tmp_path), str(labelled)], env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= set(
            hub.state.repos["org/deit-maskfeat-encoder"].files
        )
        read = run([sys.executable, "-c", READ_BACK_WITHOUT_HF_MIM, "org/deit-maskfeat", "org/deit-maskfeat-encoder"],
                   env, cwd=tmp_path)  # fmt: skip
    assert read.returncode == 0, read.stderr[-3000:]
    found = json.loads(read.stdout.split("RESULT ", 1)[1])
    run_card, export_card = found["cards"]["org/deit-maskfeat"], found["cards"]["org/deit-maskfeat-encoder"]
    assert run_card["base_model"] == "org/tiny-deit" and run_card["pipeline_tag"] == "image-feature-extraction"
    assert (
        export_card["base_model"] == "org/deit-maskfeat" and export_card["pipeline_tag"] == "image-feature-extraction"
    )
    (index,) = export_card["model-index"]
    (knn,) = index["results"]
    assert knn["metrics"][0]["name"] == "kNN top-1" and 0.0 <= knn["metrics"][0]["value"] <= 1.0
    assert found["class"] == "DeiTModel" and found["shape"] == [1, 2 + 16, 32]  # [CLS], distillation, 4 x 4 patches


def test_eval_results_of_finetune_runs_become_named_model_index_rows(tmp_path):
    import json

    from hf_mim.hub import eval_results_from_files

    files = {"knn": {"mode": "knn", "knn_accuracy": 0.5, "knn_k": 20, "dataset": "me/images"},
             "probe": {"mode": "linear probe", "eval_accuracy": 0.6, "dataset": "me/images"},
             "ft": {"mode": "fine-tuning", "eval_accuracy": 0.7, "eval_top5_accuracy": 0.9, "dataset": "me/images"}}  # fmt: skip
    for name, data in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    rows = eval_results_from_files([tmp_path / f"{name}.json" for name in files])
    assert [r["metric_name"] for r in rows] == ["kNN top-1", "linear probe top-1", "fine-tuning top-1",
                                                "fine-tuning top-5"]  # fmt: skip
    assert [r["value"] for r in rows] == [0.5, 0.6, 0.7, 0.9] and rows[0]["task_name"] == "kNN (k=20, frozen features)"
    (tmp_path / "other.json").write_text(json.dumps({"train_loss": 1.0}))
    with pytest.raises(ValueError, match="other.json: holds neither knn_accuracy nor eval_accuracy"):
        eval_results_from_files([tmp_path / "other.json"])
