"""Smoke tests of `hf-mim pretrain`: a couple of steps each, then the saved files are checked (diffusers' habit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoImageProcessor, AutoModelForPreTraining

from hf_mim.cli import pretrain

REPO = Path(__file__).resolve().parents[2]


SMALL = {
    "maskfeat": "image_size=32,patch_size=16",
    "simmim": "mask_patch_size=16",
    "hpm": "image_size=32,patch_size=8",
}
PRESETS = {"maskfeat": "test", "simmim": "vit-test", "hpm": "test"}


def run_args(method, out, *extra):
    overrides = SMALL[method]
    args = ["--method", method, "--preset", PRESETS[method], "--output_dir", str(out), "--default_data_size", "64"]
    args += ["--per_device_train_batch_size", "8", "--picture_steps", "0", "--seed", "0", "--cpu"]
    if method != "simmim":
        args += ["--config_overrides", overrides]
    else:
        args += ["--config_overrides", overrides]
    return args + list(extra)


@pytest.mark.parametrize("method", ["maskfeat", "simmim", "hpm"])
def test_pretrain_two_steps_writes_everything(method, tmp_path):
    metrics = pretrain.main(run_args(method, tmp_path, "--max_steps", "2"))
    assert metrics["train_steps"] == 2
    # the trivial baseline on the picture batch is reported and saved
    saved = json.loads((tmp_path / "all_results.json").read_text())
    for key in ("picture_batch_loss", "picture_batch_mean_target_loss", "picture_batch_correlation"):
        assert key in saved and saved[key] == metrics[key]
    for name in (
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "README.md",
        "training_args.json",
        "all_results.json",
        "reconstruction.png",
        "train_log.jsonl",
    ):
        assert (tmp_path / name).is_file(), name
    assert not list(tmp_path.glob("*.bin")), "weights must be safetensors only"
    model = AutoModelForPreTraining.from_pretrained(tmp_path)
    assert model.config.model_type == method
    state = load_file(tmp_path / "model.safetensors")
    for key, value in model.state_dict().items():
        if key in state:
            assert torch.equal(value, state[key]), key
    assert type(AutoImageProcessor.from_pretrained(tmp_path)).__name__.lower().startswith(method)
    card = (tmp_path / "README.md").read_text()
    assert "library_name: transformers" in card and f"- {method}" in card
    lines = (tmp_path / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


def losses(out: Path) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())}


@pytest.mark.parametrize("method", ["maskfeat", "hpm"])
def test_resume_continues_exactly(method, tmp_path):
    full, split = tmp_path / "full", tmp_path / "split"
    common = ("--max_steps", "8", "--checkpointing_steps", "4")
    pretrain.main(run_args(method, full, *common))
    pretrain.main(run_args(method, split, *common, "--stop_after_steps", "4"))
    assert [p.name for p in (split / "checkpoints").iterdir()] == ["step-4"]
    assert not (split / "model.safetensors").exists()
    checkpoint = split / "checkpoints" / "step-4"
    assert list(checkpoint.glob("*.safetensors")) and not list(checkpoint.glob("pytorch_model*.bin"))
    pretrain.main(run_args(method, split, *common, "--resume_from_checkpoint", "latest"))
    a, b = losses(full), losses(split)
    assert sorted(b) == list(range(1, 9))
    for step in range(1, 9):
        assert a[step] == b[step], f"step {step}: {a[step]} != {b[step]}"
    full_state = load_file(full / "model.safetensors")
    split_state = load_file(split / "model.safetensors")
    for key in full_state:
        assert torch.equal(full_state[key], split_state[key]), key


def test_bad_arguments_are_explained(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pretrain.main(["--push_to_hub", "--output_dir", str(tmp_path)])
    assert "--hub_model_id" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pretrain.main(["--method", "beit"])
    # resolved before any work: a bad override is a parser error naming the rule, not a traceback
    with pytest.raises(SystemExit):
        pretrain.main(run_args("maskfeat", tmp_path, "--max_steps", "1", "--config_overrides", "oops"))
    assert "key=value" in capsys.readouterr().err


def test_two_cpu_ranks_ddp_identical_weights_and_rank0_writes(tmp_path):
    out = tmp_path / "ddp"
    reports = tmp_path / "reports"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_MIM_DDP_REPORT_DIR": str(reports)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "tests" / "ddp_check.py"),
        *run_args("maskfeat", out, "--max_steps", "3", "--checkpointing_steps", "2"),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rank0, rank1 = (json.loads((reports / f"rank-{r}.json").read_text()) for r in (0, 1))
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["weights_sha256"] == rank1["weights_sha256"], "ranks diverged"
    # rank 1 writes nothing but its own RNG state into checkpoints (accelerate keeps one per process, which exact
    # per-rank resumption needs); weights, optimizer, logs, cards and pictures come from rank 0 only
    assert rank1["files_written"] == ["checkpoints/tmp-step-2/random_states_1.pkl"], rank1["files_written"]
    assert "checkpoints/tmp-step-2/optimizer.bin" in rank0["files_written"]
    # and that file is inside the finished checkpoint, not in a stray temporary folder
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2"]
    assert {"random_states_0.pkl", "random_states_1.pkl", "model.safetensors"} <= {
        p.name for p in (out / "checkpoints" / "step-2").iterdir()
    }
    assert "config.json" in rank0["files_written"] and (out / "model.safetensors").is_file()
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_tensorboard_bf16_checkpointing_and_pictures(tmp_path):
    extra = ("--max_steps", "2", "--report_to", "tensorboard", "--mixed_precision", "bf16", "--gradient_checkpointing",
             "--picture_steps", "1", "--logging_steps", "1")  # fmt: skip
    pretrain.main(run_args("maskfeat", tmp_path, *extra))
    assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == ["step-1.png", "step-2.png"]
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    assert "train/loss" in accumulator.Tags()["scalars"] and "pictures" in accumulator.Tags()["images"]


def test_streaming_parquet_data(cifar10_rows, tmp_path):
    data = tmp_path / "rows.parquet"
    cifar10_rows.select(range(40)).to_parquet(str(data))
    args = run_args("simmim", tmp_path / "out", "--max_steps", "2", "--streaming", "--data_files", str(data))
    metrics = pretrain.main(args)
    assert metrics["train_steps"] == 2
    card = (tmp_path / "out" / "README.md").read_text()
    assert "rows.parquet" in card


def test_imagefolder_data(photos, tmp_path):
    import PIL.Image

    folder = tmp_path / "images" / "train" / "photos"
    folder.mkdir(parents=True)
    for i, image in enumerate(list(photos.values()) * 4):
        PIL.Image.fromarray(image).save(folder / f"{i}.jpg")
    metrics = pretrain.main(
        run_args("hpm", tmp_path / "out", "--max_steps", "1", "--train_dir", str(tmp_path / "images"))
    )
    assert metrics["train_steps"] == 1
    assert "imagefolder" in (tmp_path / "out" / "README.md").read_text()


def test_dry_run_prints_the_recipe_and_explicit_flags_win(tmp_path, capsys):
    report = pretrain.main(["--recipe", "maskfeat-vit-b-300ep", "--preset", "test", "--dry_run",
                            "--adam_beta2", "0.95", "--per_device_train_batch_size", "64", "--output_dir", str(tmp_path / "o")])  # fmt: skip
    assert json.loads(capsys.readouterr().out)["recipe"] == "maskfeat-vit-b-300ep"
    assert report["optimizer"]["betas"] == [0.9, 0.95]  # explicit
    assert report["optimizer"]["peak_learning_rate"] == pytest.approx(2e-4 * 64 / 256)  # recipe base LR, scaled
    assert report["max_grad_norm"] == 0.02 and report["schedule"]["warmup_start_lr"] == pytest.approx(1e-6 * 64 / 256)
    assert report["schedule"]["warmup_epochs"] == 30 and report["masking"]["mask_ratio"] == 0.4
    decayed = report["optimizer"]["no_weight_decay"]["special_parameters_decayed"]
    assert {"maskfeat.encoder.embeddings.cls_token", "maskfeat.encoder.embeddings.position_embeddings"} <= set(decayed)
    assert report["sources"]["max_grad_norm"].endswith("in1k_VIT_B_MaskFeat_PT.yaml:63")
    assert not (tmp_path / "o").exists()


def test_a_config_file_keeps_its_mask_settings_under_the_main_recipe(tmp_path):
    # the main recipe (simmim-vit-b-800ep: 32 px cells) fills mask settings only where the file is silent
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"backbone": "vit", "mask_patch_size": 8, "encoder_config": {
        "image_size": 32, "patch_size": 4, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64}}))  # fmt: skip
    args = pretrain.parse_args(
        ["--method", "simmim", "--config_file", str(config_file), "--output_dir", str(tmp_path)]
    )
    assert args.recipe == "simmim-vit-b-800ep"
    config = args.build_model().config
    assert config.mask_patch_size == 8 and config.mask_ratio == 0.6
    args = pretrain.parse_args(["--method", "simmim", "--config_file", str(config_file), "--output_dir", str(tmp_path),
                                "--config_overrides", "mask_patch_size=16"])  # fmt: skip
    assert args.build_model().config.mask_patch_size == 16


def test_a_preset_gets_the_main_recipe_and_the_demo_keeps_its_own():
    args = pretrain.parse_args(["--method", "hpm", "--preset", "base"])
    assert args.recipe == "hpm-vit-b-800ep" and args.num_train_epochs == 800 and args.max_grad_norm == 5.0
    args = pretrain.parse_args(["--method", "simmim", "--preset", "swin-base"])
    assert args.recipe == "simmim-swin-b-800ep"
    args = pretrain.parse_args([])
    assert args.recipe is None and args.max_steps == 400 and args.adam_beta2 == 0.95 and args.max_grad_norm == 3.0
    # a recipe run to fewer epochs keeps its warm-up share
    args = pretrain.parse_args(["--recipe", "hpm-vit-b-800ep", "--num_train_epochs", "80"])
    assert args.warmup_epochs == pytest.approx(4.0)


def test_the_main_recipe_keeps_a_presets_mask_cells(capsys):
    """#23 item 7: `--preset vit-test` (16 px cells on 32 px images) under SimMIM's main recipe (32 px cells)."""
    report = pretrain.main(["--method", "simmim", "--preset", "vit-test", "--dry_run"])
    assert report["recipe"] == "simmim-vit-b-800ep" and report["masking"]["mask_patch_size"] == 16
    assert report["value_sources"]["mask_patch_size"] == "preset" and report["masking"]["mask_ratio"] == 0.6
