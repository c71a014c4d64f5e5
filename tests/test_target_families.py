"""The target families MaskFeat and HPM share (hf_mim.targets.PatchTargets): each loss against an independent
computation for the same weights and inputs, the feature teacher (a tiny local transformers ViT), bad values, and
save / reload / fine-tune of every variant."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageClassification, AutoModelForPreTraining, ViTConfig, ViTModel

from hf_mim import HPMConfig, HPMForPreTraining, MaskFeatConfig, MaskFeatForPreTraining

SIZE = 32


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A tiny ViT (patch 16 on 32 px: a 2 x 2 grid, 24 wide), saved to a folder and loaded by path."""
    torch.manual_seed(1)
    config = ViTConfig(image_size=SIZE, patch_size=16, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=48)  # fmt: skip
    path = tmp_path_factory.mktemp("teacher")
    ViTModel(config, add_pooling_layer=False).save_pretrained(path)
    return path


def build(method: str, **kw):
    torch.manual_seed(0)
    if method == "maskfeat":
        return MaskFeatForPreTraining(
            MaskFeatConfig.from_preset("test", **{"image_size": SIZE, "patch_size": 8, **kw})
        )
    return HPMForPreTraining(HPMConfig.from_preset("test", hard_patches_mining=False, **kw))


def patches_np(x: np.ndarray, p: int) -> np.ndarray:
    """MAE's patchify, by loops: row-major patches, (row, column, channel) inside."""
    b, c, h, w = x.shape
    out = np.zeros((b, (h // p) * (w // p), p * p * c))
    for i in range(h // p):
        for j in range(w // p):
            out[:, i * (w // p) + j] = (
                x[:, :, i * p : (i + 1) * p, j * p : (j + 1) * p].transpose(0, 2, 3, 1).reshape(b, -1)
            )
    return out


def norm_np(t: np.ndarray) -> np.ndarray:
    return (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, ddof=1, keepdims=True) + 1e-6)


def masked_loss_np(pred, target, mask, per_patch):
    return float(per_patch(pred, target)[mask].mean())


def mse(pred, target):
    return ((pred - target) ** 2).mean(-1)


@pytest.mark.parametrize("method", ["maskfeat", "hpm"])
@pytest.mark.parametrize("norm", [True, False])
def test_pixel_target(method, norm):
    model = build(method, target="pixel", norm_pix_loss=norm).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    targets = model.forward_targets(x).numpy()
    expected = patches_np(x.numpy().astype(np.float64), model.config.patch_size)
    np.testing.assert_allclose(targets, norm_np(expected) if norm else expected, atol=1e-5)
    if method == "maskfeat":
        mask = torch.rand(2, targets.shape[1]) < 0.5
        mask[:, 0] = True
        out = model(pixel_values=x, bool_masked_pos=mask)
        ref = masked_loss_np(out.logits.detach().numpy(), targets, mask.numpy(), mse)
        assert float(out.loss.detach()) == pytest.approx(ref, rel=1e-5)


def test_hpm_hog_plus_pixel_is_a_weighted_sum_per_patch():
    model = build("hpm", target="hog+pixel", hog_loss_weight=0.3, pixel_loss_weight=2.0, norm_pix_loss=False).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    targets = model.forward_targets(x)
    hog = model.targets.hog.patch_targets(x, model.config.patch_size)
    pixels = patches_np(x.numpy().astype(np.float64), model.config.patch_size)
    np.testing.assert_allclose(targets[..., : hog.shape[-1]].numpy(), hog.numpy(), atol=1e-6)
    np.testing.assert_allclose(targets[..., hog.shape[-1] :].numpy(), pixels, atol=1e-6)
    pred = torch.randn_like(targets)
    h = hog.shape[-1]
    expected = 0.3 * mse(pred[..., :h].numpy(), targets[..., :h].numpy()) + 2.0 * mse(pred[..., h:].numpy(),
                                                                                     targets[..., h:].numpy())  # fmt: skip
    np.testing.assert_allclose(model.targets.per_patch_loss(pred, targets).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("method", ["maskfeat", "hpm"])
def test_feature_targets_are_the_teachers_patch_tokens(method, teacher_dir):
    """A student with the teacher's grid: targets equal the teacher's patch tokens (after the optional per-token
    norm); the teacher gets no gradient and is not in the student's state dict."""
    kw = {"patch_size": 16} if method == "hpm" else {}
    model = build(method, target="features", teacher_name_or_path=str(teacher_dir), feature_norm=False,
                  **({"patch_size": 16, "hog_cell_size": 8} if method == "maskfeat" else kw))  # fmt: skip
    assert model.config.teacher_hidden_size == 24
    x = torch.randn(2, 3, SIZE, SIZE)
    targets = model.forward_targets(x)
    teacher = ViTModel.from_pretrained(teacher_dir, add_pooling_layer=False).eval()
    with torch.no_grad():
        tokens = teacher(pixel_values=x).last_hidden_state[:, 1:]
    torch.testing.assert_close(targets, tokens, atol=1e-5, rtol=1e-5)
    loaded = model.targets.teacher.model
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert not any("teacher.model" in k or k.startswith("targets.") for k in model.state_dict())
    # the student trains; the teacher does not move
    mask = torch.zeros(2, targets.shape[1], dtype=torch.bool)
    mask[:, :2] = True
    if method == "maskfeat":
        out = model(pixel_values=x, bool_masked_pos=mask)
    else:
        out = model(pixel_values=x)
    out.loss.backward()
    assert all(p.grad is None for p in loaded.parameters())


def test_feature_targets_resize_to_the_student_grid_and_normalise(teacher_dir):
    """Student grid 4 x 4, teacher 2 x 2: the teacher's token maps are resized bilinearly, then layer-normalised."""
    model = build("maskfeat", target="features", teacher_name_or_path=str(teacher_dir))  # patch 8: 4 x 4 grid
    x = torch.randn(2, 3, SIZE, SIZE)
    targets = model.forward_targets(x)
    teacher = ViTModel.from_pretrained(teacher_dir, add_pooling_layer=False).eval()
    with torch.no_grad():
        tokens = teacher(pixel_values=x).last_hidden_state[:, 1:].numpy().astype(np.float64)  # [B, 4, D]
    maps = tokens.reshape(2, 2, 2, -1)
    coords = (np.arange(4) + 0.5) / 2 - 0.5  # half-pixel centres, clamped: align_corners=False
    lo = np.clip(np.floor(coords), 0, 1).astype(int)
    hi = np.clip(lo + 1, 0, 1)
    frac = np.clip(coords - lo, 0, 1)
    rows = maps[:, lo] * (1 - frac)[None, :, None, None] + maps[:, hi] * frac[None, :, None, None]
    grid = rows[:, :, lo] * (1 - frac)[None, None, :, None] + rows[:, :, hi] * frac[None, None, :, None]
    expected = grid.reshape(2, 16, -1)
    expected = (expected - expected.mean(-1, keepdims=True)) / np.sqrt(expected.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(targets.numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("loss", ["l2", "smooth_l1", "cosine"])
def test_feature_losses(loss, teacher_dir):
    model = build("maskfeat", target="features", teacher_name_or_path=str(teacher_dir), feature_loss=loss)
    pred, target = torch.randn(2, 16, 24) * 2, torch.randn(2, 16, 24)
    p, t = pred.numpy().astype(np.float64), target.numpy().astype(np.float64)
    if loss == "l2":
        expected = ((p - t) ** 2).mean(-1)
    elif loss == "smooth_l1":
        d = np.abs(p - t)
        expected = np.where(d < 1, 0.5 * d**2, d - 0.5).mean(-1)
    else:
        expected = 1 - (p * t).sum(-1) / np.linalg.norm(p, axis=-1) / np.linalg.norm(t, axis=-1)
    np.testing.assert_allclose(model.targets.per_patch_loss(pred, target).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("config_class", [MaskFeatConfig, HPMConfig])
def test_bad_target_values_name_the_field(config_class, teacher_dir):
    with pytest.raises(ValueError, match=r"`target`.*features"):
        config_class.from_preset("test", target="tokens")
    with pytest.raises(ValueError, match="teacher_name_or_path"):
        config_class.from_preset("test", target="features")
    with pytest.raises(ValueError, match=r"`feature_loss`.*cosine"):
        config_class.from_preset("test", target="features", teacher_name_or_path=str(teacher_dir), feature_loss="l3")


@pytest.mark.parametrize(
    "method,kw",
    [("maskfeat", {"target": "pixel"}), ("maskfeat", {"target": "features"}), ("hpm", {"target": "hog+pixel"}),
     ("hpm", {"target": "features"}), ("hpm", {"target": "hog"})],
)  # fmt: skip
def test_every_variant_saves_reloads_without_the_teacher_and_finetunes(method, kw, teacher_dir, tmp_path):
    import shutil

    teacher = tmp_path / "teacher"
    shutil.copytree(teacher_dir, teacher)
    if kw["target"] == "features":
        kw = {**kw, "teacher_name_or_path": str(teacher)}
    model = build(method, **kw).eval()
    model.save_pretrained(tmp_path / "student")
    shutil.rmtree(teacher)  # loading the student needs no teacher
    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path / "student")
    assert reloaded.config.target == kw["target"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value)
    classifier = AutoModelForImageClassification.from_pretrained(tmp_path / "student", num_labels=3)
    out = classifier(pixel_values=torch.randn(2, 3, SIZE, SIZE), labels=torch.tensor([0, 1]))
    out.loss.backward()
    assert torch.isfinite(out.loss)
