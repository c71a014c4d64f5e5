"""The converted official checkpoints as users get them: pushed with ``--push_to_hub`` (to a loopback Hub) and
loaded with transformers alone (``trust_remote_code=True``, hf_mim unimportable), by the Auto class each needs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from hf_mim.cli.convert import main

from .hub_server import BLOCK_HF_MIM, HubServer, hub_env
from .models.hpm.test_convert_hpm_official import DEC_HEADS, HEADS, hpm_checkpoint
from .models.maskfeat.test_convert_maskfeat_official import mmpretrain_checkpoint
from .models.simmim.test_convert_simmim_official import DIM, rand, save, vit_config, vit_state

LOAD_WITHOUT_HF_MIM = (
    BLOCK_HF_MIM
    + """
import torch, transformers
for folder, auto in zip(sys.argv[1::2], sys.argv[2::2]):
    model = getattr(transformers, auto).from_pretrained(folder, trust_remote_code=True)
    processor = transformers.AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules")
    out = model(pixel_values=torch.randn(1, 3, 32, 32))
    print("LOADED", type(model).__name__, type(processor).__name__, tuple(out[0].shape) if out[0] is not None else "")
assert "hf_mim" not in sys.modules
"""
)


def test_converted_official_folders_push_and_load_without_hf_mim(tmp_path):
    folders = []
    mmpretrain_checkpoint(tmp_path / "maskfeat.pth")
    folders.append((main(["--method", "maskfeat", "--checkpoint", str(tmp_path / "maskfeat.pth"), "--output_dir",
                          str(tmp_path / "maskfeat"), "--config_overrides", "num_attention_heads=2"]),
                    "AutoModel"))  # fmt: skip
    g = torch.Generator().manual_seed(3)
    sd = vit_state(g, "", shared=False, finetuned=True)
    sd.update({"head.weight": rand(g, 4, DIM), "head.bias": rand(g, 4)})
    save(tmp_path / "simmim_ft.pth", sd, vit_config())
    folders.append((main(["--method", "simmim", "--checkpoint", str(tmp_path / "simmim_ft.pth"), "--output_dir",
                          str(tmp_path / "simmim")]), "AutoModelForImageClassification"))  # fmt: skip
    hpm_checkpoint(tmp_path / "hpm.pth")
    with HubServer() as hub:
        env = hub_env(hub, tmp_path)
        result = subprocess.run(
            [sys.executable, "-m", "hf_mim", "convert", "--method", "hpm", "--checkpoint", str(tmp_path / "hpm.pth"),
             "--output_dir", str(tmp_path / "hpm"), "--config_overrides",
             f"num_attention_heads={HEADS},decoder_num_attention_heads={DEC_HEADS}", "--push_to_hub",
             "--hub_model_id", "org/hpm-official"],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert {"model.safetensors", "modeling_hpm.py", "README.md"} <= set(hub.state.repos["org/hpm-official"].files)
        folders.append(("org/hpm-official", "AutoModelForPreTraining"))
        args = [str(item) for pair in folders for item in pair]
        loaded = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_HF_MIM, *args], env=env, capture_output=True,
                                text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "LOADED MaskFeatModel MaskFeatImageProcessor" in loaded.stdout
    assert "LOADED SimMIMForImageClassification SimMIMImageProcessor (1, 4)" in loaded.stdout
    assert "LOADED HPMForPreTraining HPMImageProcessor" in loaded.stdout


def test_convert_command_refuses_bad_input_before_any_work(tmp_path, capsys):

    hpm_checkpoint(tmp_path / "hpm.pth")
    base = ["--checkpoint", str(tmp_path / "hpm.pth"), "--output_dir", str(tmp_path / "out")]
    cases = [
        (["--method", "hpm", *base, "--total_epochs", "0"], "--total_epochs must be a positive"),
        (["--method", "simmim", *base, "--total_epochs", "10"], "--total_epochs applies to --method hpm"),
        (["--method", "hpm", *base, "--source", "slowfast"], "--source must be one of ['hpm', 'mae']"),
        (["--method", "hpm", "--checkpoint", str(tmp_path / "nope.pth"), "--output_dir", "x"], "is not a file"),
        (["--method", "maskfeat", "--model_name_or_path", "x", "--output_dir", "x"], "transformers has no MaskFeat"),
        (["--method", "hpm", *base, "--config_overrides", "mask_ratoi=0.5"], "mask_ratio"),
        (["--method", "hpm", *base, "--push_to_hub"], "--push_to_hub needs --hub_model_id"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err, argv
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit, match="hf-mim convert: error: .*missing key 'patch_embed.proj.weight'"):
        torch.save({"state_dict": {}}, tmp_path / "empty.pth")
        main(["--method", "hpm", "--checkpoint", str(tmp_path / "empty.pth"), "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
