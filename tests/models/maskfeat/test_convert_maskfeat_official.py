"""SlowFast's and mmpretrain's MaskFeat checkpoints: tiny files in their exact layouts convert, and the converted
model reproduces predictions and loss computed from the official definitions (tests/official_reference.py)."""

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoModelForImageClassification, AutoModelForPreTraining

import hf_mim  # noqa: F401  (Auto classes)
from hf_mim.convert import convert_official_checkpoint
from hf_mim.convert_utils import OfficialCheckpointError

from ...official_reference import MMPRETRAIN, TIMM, layer_norm, linear, masked_vit, rand, random_block
from ...reference import numpy_hog_patch_targets, numpy_masked_mse

DIM, MLP, HEADS, DEPTH, PATCH, GRID = 32, 64, 2, 2, 8, 4  # 32 px images, 16 patches
HOG_DIM = 3 * 9 * (PATCH // 8) ** 2


def slowfast_checkpoint(path, seed=0):
    """As slowfast/utils/checkpoint.py:133-144 saves MaskMViT in its ViT configuration."""
    g = torch.Generator().manual_seed(seed)
    sd = {"patch_embed.proj.weight": rand(g, DIM, 3, PATCH, PATCH), "patch_embed.proj.bias": rand(g, DIM),
          "cls_token": rand(g, 1, 1, DIM), "pos_embed": rand(g, 1, GRID * GRID + 1, DIM),
          "mask_token": rand(g, 1, 1, DIM),
          "pred_head.transforms.0.0.weight": rand(g, DIM, offset=1.0), "pred_head.transforms.0.0.bias": rand(g, DIM),
          "pred_head.projections.0.weight": rand(g, HOG_DIM, DIM), "pred_head.projections.0.bias": rand(g, HOG_DIM),
          "hogs.0.weight_x": torch.zeros(3, 1, 3, 3), "hogs.0.weight_y": torch.zeros(3, 1, 3, 3)}  # fmt: skip
    for i in range(DEPTH):
        random_block(sd, f"blocks.{i}.", DIM, MLP, g)
    cfg = {"MVIT": {"EMBED_DIM": DIM, "NUM_HEADS": HEADS, "DEPTH": DEPTH, "PATCH_KERNEL": [PATCH, PATCH]},
           "DATA": {"TRAIN_CROP_SIZE": 32}, "AUG": {"MASK_RATIO": 0.4}, "MASK": {"PRETRAIN_DEPTH": [DEPTH - 1]}}  # fmt: skip
    torch.save({"epoch": 1600, "model_state": sd, "optimizer_state": {"state": {}, "param_groups": []},
                "cfg": yaml.safe_dump(cfg)}, path)  # fmt: skip
    return sd


def mmpretrain_checkpoint(path, seed=1):
    """As mmpretrain publishes MaskFeat (tools/model_converters/publish_model.py): ``meta`` + ``state_dict``."""
    g = torch.Generator().manual_seed(seed)
    sd = {"backbone.patch_embed.projection.weight": rand(g, DIM, 3, PATCH, PATCH),
          "backbone.patch_embed.projection.bias": rand(g, DIM), "backbone.cls_token": rand(g, 1, 1, DIM),
          "backbone.pos_embed": rand(g, 1, GRID * GRID + 1, DIM), "backbone.mask_token": rand(g, 1, 1, DIM),
          "backbone.ln1.weight": rand(g, DIM, offset=1.0), "backbone.ln1.bias": rand(g, DIM),
          "neck.fc.weight": rand(g, HOG_DIM, DIM), "neck.fc.bias": rand(g, HOG_DIM),
          "target_generator.weight_x": torch.zeros(3, 1, 3, 3), "target_generator.weight_y": torch.zeros(3, 1, 3, 3),
          "target_generator.gaussian_kernel": torch.ones(16, 16) / 256}  # fmt: skip
    for i in range(DEPTH):
        random_block(sd, f"backbone.layers.{i}.", DIM, MLP, g, names=MMPRETRAIN)
    torch.save({"meta": {"mmpretrain_version": "1.0.0", "dataset_meta": {}}, "state_dict": sd}, path)
    return sd


def official_outputs(sd, x, mask, source):
    if source == "slowfast":
        tokens = masked_vit(x, mask, sd, "", HEADS, TIMM)
        return linear(layer_norm(tokens, sd, "pred_head.transforms.0.0"), sd, "pred_head.projections.0")[:, 1:]
    tokens = masked_vit(x, mask, sd, "backbone.", HEADS, MMPRETRAIN, patch="patch_embed.projection",
                        depth_prefix="layers.")  # fmt: skip
    return linear(layer_norm(tokens, sd, "backbone.ln1"), sd, "neck.fc")[:, 1:]


@pytest.mark.parametrize("source,window", [("slowfast", 0), ("mmpretrain", 16)])
def test_official_maskfeat_converts_and_matches(tmp_path, source, window):
    make = slowfast_checkpoint if source == "slowfast" else mmpretrain_checkpoint
    sd = make(tmp_path / "official.pth")
    model, report = convert_official_checkpoint("maskfeat", tmp_path / "official.pth", return_report=True,
                                                config_overrides={"num_attention_heads": HEADS})  # fmt: skip
    assert report["source"] == source and model.config.hog_gaussian_window == window
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.image_size) == (DIM, DEPTH, 32)
    assert all("HOG" in reason for reason in report["dropped"].values())
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    mask = torch.rand(2, GRID * GRID) < 0.4
    with torch.no_grad():
        out = model(pixel_values=x, bool_masked_pos=mask)
        expected = official_outputs(sd, x, mask, source)
    torch.testing.assert_close(out.logits, expected, atol=1e-4, rtol=1e-4)
    targets = numpy_hog_patch_targets(x.double().numpy(), PATCH, gaussian_window=window)
    loss = numpy_masked_mse(expected.double().numpy(), targets, mask.numpy())
    assert out.loss.item() == pytest.approx(loss, rel=1e-4)


def test_slowfast_config_gives_heads_and_unknown_keys_fail(tmp_path):
    sd = slowfast_checkpoint(tmp_path / "a.pth")
    model = convert_official_checkpoint("maskfeat", tmp_path / "a.pth")  # heads from the checkpoint's cfg
    assert model.config.num_attention_heads == HEADS and model.config.mask_ratio == 0.4
    torch.save({"model_state": {**sd, "blocks.0.attn.rel_pos_h": torch.zeros(3)}}, tmp_path / "b.pth")
    with pytest.raises(OfficialCheckpointError, match="blocks.0.attn.rel_pos_h"):
        convert_official_checkpoint("maskfeat", tmp_path / "b.pth", config_overrides={"num_attention_heads": 2})
    del sd["mask_token"]
    torch.save({"model_state": sd}, tmp_path / "c.pth")
    with pytest.raises(OfficialCheckpointError, match="missing key 'mask_token'"):
        convert_official_checkpoint("maskfeat", tmp_path / "c.pth", config_overrides={"num_attention_heads": 2})


def test_converted_folder_loads_with_auto_classes(tmp_path):
    from hf_mim.cli.convert import main

    slowfast_checkpoint(tmp_path / "in1k_VIT_B_MaskFeat_PT_epoch_01600.pyth")
    out = main(["--method", "maskfeat", "--checkpoint", str(tmp_path / "in1k_VIT_B_MaskFeat_PT_epoch_01600.pyth"),
                "--output_dir", str(tmp_path / "out")])  # fmt: skip
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "all_results.json",
            "modeling_maskfeat.py"} <= names  # fmt: skip
    card = (out / "README.md").read_text()
    assert "in1k_VIT_B_MaskFeat_PT_epoch_01600.pyth" in card and "84.0" in card
    reloaded = AutoModelForPreTraining.from_pretrained(out)
    direct = convert_official_checkpoint("maskfeat", tmp_path / "in1k_VIT_B_MaskFeat_PT_epoch_01600.pyth")
    x, mask = torch.randn(1, 3, 32, 32), torch.rand(1, GRID * GRID) < 0.5
    with torch.no_grad():
        got, want = reloaded(pixel_values=x, bool_masked_pos=mask), direct(pixel_values=x, bool_masked_pos=mask)
    np.testing.assert_allclose(got.logits.numpy(), want.logits.numpy(), atol=1e-6)
    classifier = AutoModelForImageClassification.from_pretrained(out, num_labels=3)
    torch.testing.assert_close(
        classifier.maskfeat.encoder.embeddings.position_embeddings,
        direct.maskfeat.encoder.embeddings.position_embeddings,
    )
