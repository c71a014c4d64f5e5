"""The `hf-mim` command: dispatch, version, env, convert and analyze."""

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForPreTraining, ViTMAEConfig, ViTMAEForPreTraining

from hf_mim import __version__, get_model_spec
from hf_mim.cli import main


def test_version_help_and_unknown_command(capsys):
    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"hf-mim {__version__}"
    assert main(["--help"]) == 0 and "pretrain" in capsys.readouterr().out
    assert main(["pretrian"]) == 2 and "unknown command 'pretrian'" in capsys.readouterr().err


def test_python_dash_m_and_env():
    result = subprocess.run([sys.executable, "-m", "hf_mim", "env"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        f"hf_mim         : {__version__}" in result.stdout and f"torch          : {torch.__version__}" in result.stdout
    )
    assert "device         : cpu" in result.stdout


def test_convert_vit_mae_writes_a_complete_folder(tmp_path):
    config = ViTMAEConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
                          decoder_num_attention_heads=2, decoder_intermediate_size=64)  # fmt: skip
    torch.manual_seed(0)
    ViTMAEForPreTraining(config).save_pretrained(tmp_path / "mae")
    assert main(["convert", "--method", "hpm", "--model_name_or_path", str(tmp_path / "mae"),
                 "--output_dir", str(tmp_path / "out")]) == 0  # fmt: skip
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "modeling_hpm.py"} <= files
    model = AutoModelForPreTraining.from_pretrained(tmp_path / "out")
    assert type(model).__name__ == "HPMForPreTraining" and not model.config.hard_patches_mining


def test_analyze_compares_checkpoints_and_studies_masks(tmp_path, capsys):
    paths = []
    for method in ("maskfeat", "hpm"):
        spec = get_model_spec(method)
        model = spec.pretraining_class(spec.tiny_config())
        model.save_pretrained(tmp_path / method)
        spec.image_processor_class.from_model_config(model.config).save_pretrained(tmp_path / method)
        paths.append(str(tmp_path / method))
    out = tmp_path / "analysis"
    assert main(["analyze", "--model_name_or_path", *paths, "--num_images", "6", "--batch_size", "4",
                 "--output_dir", str(out), "--mask_study", "--num_masks", "3"]) == 0  # fmt: skip
    results = json.loads((out / "analysis.json").read_text())
    assert set(results["models"]) == {"maskfeat", "hpm"} and results["images"]["count"] == 6
    assert len(results["models"]["hpm"]["cka"]) == 3 and len(results["models"]["maskfeat"]["distance"][0]) == 2
    study = results["mask_study"]
    assert study["random_masks"]["32/0.6"]["mask_ratio"] == pytest.approx(0.6111, abs=1e-3)
    assert study["random_masks"]["64/0.9"] is None  # nothing visible
    # AvgDist rises with the ratio and with the mask patch size (SimMIM's figure)
    assert study["random_masks"]["32/0.3"]["avg_dist"] < study["random_masks"]["32/0.6"]["avg_dist"]
    assert study["random_masks"]["8/0.6"]["avg_dist"] < study["random_masks"]["32/0.6"]["avg_dist"]
    for name in ("attention_distance.png", "attention_entropy.png", "head_kl.png", "cka.png", "mask_avgdist.png"):
        assert (out / name).is_file(), name
    assert "mean attention distance per layer" in capsys.readouterr().out


def test_analyze_explains_bad_input(tmp_path):
    with pytest.raises(SystemExit):
        main(["analyze", "--output_dir", str(tmp_path)])  # neither checkpoints nor --mask_study


def test_analyze_refuses_an_empty_dataset(tmp_path, capsys):
    import datasets

    empty = tmp_path / "empty.parquet"
    datasets.Dataset.from_dict({"image": []}, features=datasets.Features({"image": datasets.Image()})).to_parquet(
        str(empty)
    )
    spec = get_model_spec("maskfeat")
    spec.pretraining_class(spec.tiny_config()).save_pretrained(tmp_path / "m")
    # a user error: one line and exit code 2 (the ValueError itself with HF_MIM_DEBUG=1)
    assert main(["analyze", "--model_name_or_path", str(tmp_path / "m"), "--data_files", str(empty),
                 "--output_dir", str(tmp_path / "out")]) == 2  # fmt: skip
    assert "has no rows" in capsys.readouterr().err


def _run(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["pretrain", "--data_files", "missing.parquet", "--max_steps", "1", "--cpu"], "--data_files not found"),
        (["pretrain", "--method", "simmim", "--preset", "nope"], "--preset must be one of"),
        (["pretrain", "--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be >= 1"),
        (["pretrain", "--recipe", "hpm-vit-b-ft"], "finetune recipe"),
        (["pretrain", "--config_overrides", "image_sise=64"], "Did you mean 'image_size'"),
        (["finetune", "--model_name_or_path", "no/such-folder", "--output_dir", "o"], "--model_name_or_path no/such"),
        (["export", "--model_name_or_path", "no/such-folder", "--output_dir", "o"], "--model_name_or_path no/such"),
        (["pretrain", "--method", "hpm", "--model_name_or_path", "no/such-folder"], "--model_name_or_path no/such"),
        (["push", "--output_dir", "no/such-folder", "--hub_model_id", "me/x"], "no/such-folder"),
        (["convert", "--method", "maskfeat", "--checkpoint", "missing.pth", "--output_dir", "o"], "not a file"),
        (["analyze", "--model_name_or_path", "no/such-folder", "--output_dir", "o"], "no/such-folder"),
    ],
)
def test_every_command_ends_a_user_error_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_MIM_DEBUG", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no Hub here: do not wait on retries
    code, err = _run(argv, capsys)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"hf-mim {argv[0]}: error:") or last.startswith("hf-mim: error:") or "error:" in last, err
    assert not (tmp_path / "o").exists()


def test_the_debug_switch_shows_the_traceback(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_MIM_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(["pretrain", "--data_files", "missing.parquet", "--max_steps", "1", "--cpu"])
