"""Haochen-Wang409/HPM ``main_pretrain.py`` checkpoints: a tiny file in its exact layout converts, and the converted
model reproduces the official forward (tests/official_reference.py) for the same mask: pixel predictions, predicted
losses and the teacher's scores from the EMA weights."""

import pytest
import torch
from transformers import AutoModelForPreTraining

import hf_mim  # noqa: F401
from hf_mim.convert import convert_official_checkpoint
from hf_mim.convert_utils import OfficialCheckpointError

from ...official_reference import mae_forward, rand, random_block

DIM, DEC, HEADS, DEC_HEADS, DEPTH, DEC_DEPTH, PATCH, GRID = 32, 16, 2, 2, 2, 1, 8, 4
PIXELS = PATCH * PATCH * 3


def mae_state(g, prefix=""):
    """models_mae_learn_loss.py MaskedAutoencoderViT (lines 49-84), official names."""
    sd = {"patch_embed.proj.weight": rand(g, DIM, 3, PATCH, PATCH), "patch_embed.proj.bias": rand(g, DIM),
          "cls_token": rand(g, 1, 1, DIM), "pos_embed": rand(g, 1, GRID * GRID + 1, DIM),
          "norm.weight": rand(g, DIM, offset=1.0), "norm.bias": rand(g, DIM),
          "decoder_embed.weight": rand(g, DEC, DIM), "decoder_embed.bias": rand(g, DEC),
          "mask_token": rand(g, 1, 1, DEC), "decoder_pos_embed": rand(g, 1, GRID * GRID + 1, DEC),
          "decoder_norm.weight": rand(g, DEC, offset=1.0), "decoder_norm.bias": rand(g, DEC),
          "decoder_pred.weight": rand(g, PIXELS, DEC), "decoder_pred.bias": rand(g, PIXELS),
          "decoder_norm_losspred.weight": rand(g, DEC, offset=1.0), "decoder_norm_losspred.bias": rand(g, DEC),
          "decoder_pred_losspred.weight": rand(g, PIXELS, DEC), "decoder_pred_losspred.bias": rand(g, PIXELS)}  # fmt: skip
    for i in range(DEPTH):
        random_block(sd, f"blocks.{i}.", DIM, 4 * DIM, g)
    for i in range(DEC_DEPTH):
        random_block(sd, f"decoder_blocks.{i}.", DEC, 4 * DEC, g)
        random_block(sd, f"decoder_blocks_losspred.{i}.", DEC, 4 * DEC, g)
    return {prefix + k: v for k, v in sd.items()}


def hpm_checkpoint(path, ddp=True):
    """As main_pretrain.py:282-295 saves it: the DDP student (``module.``), timm's ModelEma copy (no prefix)."""
    g = torch.Generator().manual_seed(0)
    student, ema = mae_state(g, "module." if ddp else ""), mae_state(g)
    ema["decoder_pos_embed"] = student[("module." if ddp else "") + "decoder_pos_embed"]  # fixed sin-cos in both
    torch.save({"epoch": 200, "state_dict": student, "optimizer": {"state": {}, "param_groups": []},
                "model": "mae_vit_tiny_for_tests", "ema_state_dict": ema, "loss_scaler": {"scale": 65536.0}},
               path)  # fmt: skip
    return {k.removeprefix("module."): v for k, v in student.items()}, ema


def test_official_hpm_converts_and_matches(tmp_path):
    student, ema = hpm_checkpoint(tmp_path / "hpm.pth")
    model, report = convert_official_checkpoint(
        "hpm", tmp_path / "hpm.pth", return_report=True, total_epochs=800,
        config_overrides={"num_attention_heads": HEADS, "decoder_num_attention_heads": DEC_HEADS},
    )  # fmt: skip
    config = model.config
    assert (config.hidden_size, config.decoder_hidden_size, config.num_hidden_layers, config.image_size) == (
        DIM, DEC, DEPTH, GRID * PATCH)  # fmt: skip
    assert config.hard_patches_mining and not config.norm_pix_loss and config.loss_predictor_loss == "relative"
    assert report["teacher"] == "ema_state_dict" and report["epoch"] == 200
    assert float(model.training_epoch) == 200 and float(model.total_epochs) == 800
    assert "ema_state_dict:decoder_pred.weight" in report["dropped"]

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, GRID * GRID, dtype=torch.bool)
    for row in range(2):
        mask[row, torch.randperm(GRID * GRID)[: config.num_masked]] = True
    with torch.no_grad():
        out = model(pixel_values=x, bool_masked_pos=mask)
        pred, loss_pred = mae_forward(x, mask, student, HEADS, DEC_HEADS, PATCH)
        num_visible = GRID * GRID - config.num_masked
        torch.testing.assert_close(out.logits[mask].view(2, -1, PIXELS), pred[:, num_visible:], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out.predicted_patch_loss[mask].view(2, -1), loss_pred[:, num_visible:],
                                   atol=1e-4, rtol=1e-4)  # fmt: skip
        torch.testing.assert_close(out.predicted_patch_loss[~mask].view(2, -1), loss_pred[:, :num_visible],
                                   atol=1e-4, rtol=1e-4)  # fmt: skip
        # the teacher scores every patch with the EMA weights (nothing masked)
        _, teacher_scores = mae_forward(x, torch.zeros_like(mask), ema, HEADS, DEC_HEADS, PATCH)
        torch.testing.assert_close(model.teacher_scores(x), teacher_scores, atol=1e-4, rtol=1e-4)
        # the official reconstruction loss (no norm_pix_loss): MSE over masked patches
        target = x.reshape(2, 3, GRID, PATCH, GRID, PATCH).permute(0, 2, 4, 3, 5, 1).reshape(2, GRID * GRID, -1)
        expected = ((pred[:, num_visible:] - target[mask].view(2, -1, PIXELS)) ** 2).mean()
        assert out.reconstruction_loss.item() == pytest.approx(expected.item(), rel=1e-4)


def test_hpm_single_gpu_checkpoint_and_plain_mae(tmp_path):
    student, _ = hpm_checkpoint(tmp_path / "one_gpu.pth", ddp=False)
    heads = {"num_attention_heads": HEADS, "decoder_num_attention_heads": DEC_HEADS}
    model = convert_official_checkpoint("hpm", tmp_path / "one_gpu.pth", config_overrides=heads)
    assert model.config.hard_patches_mining
    mae = {k: v for k, v in student.items() if "losspred" not in k}
    torch.save({"epoch": 1, "state_dict": mae, "model": "x"}, tmp_path / "mae.pth")
    model = convert_official_checkpoint("hpm", tmp_path / "mae.pth", config_overrides=heads)
    assert not model.config.hard_patches_mining and model.teacher is None


def test_hpm_unknown_and_missing_keys_are_named(tmp_path):
    student, ema = hpm_checkpoint(tmp_path / "a.pth")
    heads = {"num_attention_heads": HEADS, "decoder_num_attention_heads": DEC_HEADS}
    torch.save({"state_dict": {**student, "blocks.0.ls1.gamma": torch.ones(DIM)}}, tmp_path / "b.pth")
    with pytest.raises(OfficialCheckpointError, match=r"blocks\.0\.ls1\.gamma"):
        convert_official_checkpoint("hpm", tmp_path / "b.pth", config_overrides=heads)
    del ema["decoder_embed.bias"]
    torch.save({"state_dict": student, "ema_state_dict": ema}, tmp_path / "c.pth")
    with pytest.raises(OfficialCheckpointError, match="ema_state_dict: missing key 'decoder_embed.bias'"):
        convert_official_checkpoint("hpm", tmp_path / "c.pth", config_overrides=heads)


def test_converted_hpm_folder_loads_and_keeps_its_teacher(tmp_path):
    from hf_mim.cli.convert import main

    hpm_checkpoint(tmp_path / "hpm.pth")
    out = main(["--method", "hpm", "--checkpoint", str(tmp_path / "hpm.pth"), "--output_dir", str(tmp_path / "out"),
                "--config_overrides", f"num_attention_heads={HEADS},decoder_num_attention_heads={DEC_HEADS}"])  # fmt: skip
    reloaded = AutoModelForPreTraining.from_pretrained(out)
    direct = convert_official_checkpoint("hpm", tmp_path / "hpm.pth", config_overrides={
        "num_attention_heads": HEADS, "decoder_num_attention_heads": DEC_HEADS})  # fmt: skip
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.teacher_scores(x), direct.teacher_scores(x))


def mae_file(path, encoder_only=False, args=True):
    """As facebookresearch/mae's util/misc.py:save_model writes it (or its released encoder-only files)."""
    import argparse

    g = torch.Generator().manual_seed(1)
    full = mae_state(g)  # the reference forward also scores losses: it gets the (unused) loss-predictor weights
    state = {k: v for k, v in full.items() if "losspred" not in k}  # models_mae.py has no loss predictor
    if encoder_only:
        state = {k: v for k, v in state.items() if not k.startswith(("decoder", "mask_token"))}
        torch.save({"model": state}, path)
        return state
    namespace = argparse.Namespace(model="mae_vit_tiny_for_tests", mask_ratio=0.6, norm_pix_loss=True, epochs=800)
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 42,
                "scaler": {"scale": 65536.0}, **({"args": namespace} if args else {})}, path)  # fmt: skip
    return full


def test_official_mae_training_file_converts_and_matches(tmp_path):
    """#23 item 4: MAE's own files are HPM with mining off; the forward equals the official one for the same mask."""
    state = mae_file(tmp_path / "checkpoint-42.pth")
    heads = {"num_attention_heads": HEADS, "decoder_num_attention_heads": DEC_HEADS}
    model, report = convert_official_checkpoint("hpm", tmp_path / "checkpoint-42.pth", return_report=True,
                                                config_overrides=heads)  # fmt: skip
    assert report["source"] == "mae" and report["epoch"] == 42 and report["decoder"] == "from the file"
    assert not model.config.hard_patches_mining and model.teacher is None and model.loss_predictor is None
    assert model.config.norm_pix_loss and model.config.mask_ratio == 0.6  # the run's args
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, GRID * GRID, dtype=torch.bool)
    for row in range(2):
        mask[row, torch.randperm(GRID * GRID)[: model.config.num_masked]] = True
    with torch.no_grad():
        out = model(pixel_values=x, bool_masked_pos=mask)
        pred, _ = mae_forward(x, mask, state, HEADS, DEC_HEADS, PATCH)
    num_visible = GRID * GRID - model.config.num_masked
    torch.testing.assert_close(out.logits[mask].view(2, -1, PIXELS), pred[:, num_visible:], atol=1e-4, rtol=1e-4)
    # the same file as a visualisation release (no args): raw-pixel targets
    mae_file(tmp_path / "visualize.pth", args=False)
    assert not convert_official_checkpoint(
        "hpm", tmp_path / "visualize.pth", config_overrides=heads
    ).config.norm_pix_loss


def test_official_mae_encoder_release_gets_a_fresh_decoder_and_a_classifier(tmp_path):
    from transformers import AutoModelForImageClassification

    from hf_mim.cli.convert import main

    state = mae_file(tmp_path / "mae_pretrain_vit_tiny.pth", encoder_only=True)
    model, report = convert_official_checkpoint("hpm", tmp_path / "mae_pretrain_vit_tiny.pth", return_report=True,
                                                source="mae", config_overrides={"num_attention_heads": HEADS})  # fmt: skip
    assert report["decoder"].startswith("freshly initialised") and model.config.decoder_hidden_size == 512
    assert model.config.norm_pix_loss  # the released encoders were trained with --norm_pix_loss
    torch.testing.assert_close(model.hpm.encoder.embeddings.cls_token, state["cls_token"])
    out = main(["--method", "hpm", "--checkpoint", str(tmp_path / "mae_pretrain_vit_tiny.pth"), "--output_dir",
                str(tmp_path / "out"), "--config_overrides", f"num_attention_heads={HEADS}"])  # fmt: skip
    classifier = AutoModelForImageClassification.from_pretrained(out, num_labels=3)
    torch.testing.assert_close(classifier.hpm.encoder.layers[0].attention.o_proj.weight,
                               state["blocks.0.attn.proj.weight"])  # fmt: skip
    with pytest.raises(OfficialCheckpointError, match="not 'hpm'"):
        convert_official_checkpoint("hpm", tmp_path / "mae_pretrain_vit_tiny.pth", source="hpm")


def test_released_encoders_get_their_head_count_from_the_width():
    """mae_pretrain_vit_huge.pth records no architecture: ViT-H/14 (width 1280) has 16 heads, not 1280 / 64."""
    from hf_mim.convert_utils import KeyMapper
    from hf_mim.models.hpm.convert_hpm_official import _architecture

    state = {"patch_embed.proj.weight": torch.empty(1280, 3, 14, 14), "pos_embed": torch.empty(1, 257, 1280),
             "blocks.0.mlp.fc1.weight": torch.empty(5120, 1280)}  # fmt: skip
    assert _architecture(KeyMapper(state, "test"), None)["num_attention_heads"] == 16
    assert _architecture(KeyMapper(state, "test"), "mae_vit_huge_patch14")["num_attention_heads"] == 16
    base = {"patch_embed.proj.weight": torch.empty(768, 3, 16, 16), "pos_embed": torch.empty(1, 197, 768),
            "blocks.0.mlp.fc1.weight": torch.empty(3072, 768)}  # fmt: skip
    assert _architecture(KeyMapper(base, "test"), None)["num_attention_heads"] == 12
