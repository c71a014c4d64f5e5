"""SimMIM's ablation switches (Xie et al., Tables 1-5): each loss against an independent NumPy / PIL computation on
the same weights and inputs, the masks each strategy draws, bad values, and save / reload / fine-tune."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import AutoModelForImageClassification, AutoModelForPreTraining

from hf_mim import SimMIMConfig, SimMIMForMaskedImageModeling, training
from hf_mim.image_processing import IMAGENET_MEAN, IMAGENET_STD

PATCH, SIZE = 8, 32


def prediction_and_inputs(**switches):
    torch.manual_seed(0)
    config = SimMIMConfig.from_preset("vit-test", **switches)
    model = SimMIMForMaskedImageModeling(config).eval()
    pixel_values = torch.randn(2, 3, SIZE, SIZE)
    mask = torch.rand(2, (SIZE // PATCH) ** 2) < 0.5
    mask[:, 0] = True
    with torch.no_grad():
        feature_map, _ = model.forward_encoder(pixel_values, mask, None, False)
        prediction = model.forward_decoder(feature_map)
        loss = model(pixel_values=pixel_values, bool_masked_pos=mask).loss
    return model, pixel_values.numpy().astype(np.float64), mask.numpy(), prediction.numpy().astype(np.float64), loss


def pixel_mask(mask: np.ndarray) -> np.ndarray:
    """``[B, L]`` patch mask -> ``[B, 1, H, W]``, pixel by pixel."""
    grid = SIZE // PATCH
    out = np.zeros((mask.shape[0], 1, SIZE, SIZE))
    for b in range(mask.shape[0]):
        for i in range(SIZE):
            for j in range(SIZE):
                out[b, 0, i, j] = mask[b, (i // PATCH) * grid + j // PATCH]
    return out


def reduce(per_value: np.ndarray, m: np.ndarray, loss_on: str) -> float:
    if loss_on == "all":
        return float(per_value.mean())
    return float((per_value * m).sum() / (m.sum() + 1e-5) / per_value.shape[1])


ELEMENTWISE = {
    "l1": lambda d: np.abs(d),
    "l2": lambda d: d**2,
    "smooth_l1": lambda d: np.where(np.abs(d) < 1.0, 0.5 * d**2, np.abs(d) - 0.5),
}


@pytest.mark.parametrize("loss", ["l1", "l2", "smooth_l1"])
@pytest.mark.parametrize("loss_on", ["masked", "all"])
@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_pixel_losses(loss, loss_on, head):
    model, x, mask, pred, ours = prediction_and_inputs(loss=loss, loss_on=loss_on, head=head)
    expected = reduce(ELEMENTWISE[loss](x - pred), pixel_mask(mask), loss_on)
    assert float(ours) == pytest.approx(expected, abs=1e-5, rel=1e-5)
    if head == "mlp":
        convs = [m for m in model.decoder if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 2 and isinstance(model.decoder[1], torch.nn.GELU)


def pil_resize(images: np.ndarray, side: int) -> np.ndarray:
    """PIL's antialiased bilinear resize of every channel (float32 'F' images)."""
    out = np.zeros(images.shape[:2] + (side, side))
    for b in range(images.shape[0]):
        for c in range(images.shape[1]):
            image = PIL.Image.fromarray(images[b, c].astype(np.float32), mode="F")
            out[b, c] = np.asarray(image.resize((side, side), PIL.Image.BILINEAR))
    return out


@pytest.mark.parametrize("side", [8, 16])
def test_target_resolution(side):
    _, x, mask, pred, ours = prediction_and_inputs(target_resolution=side)
    m = pixel_mask(mask)
    rows = (np.arange(side) * SIZE / side).astype(int)  # nearest neighbours, as torch's "nearest"
    m_small = m[:, :, rows][:, :, :, rows]
    expected = reduce(np.abs(pil_resize(x, side) - pil_resize(pred, side)), m_small, "masked")
    assert float(ours) == pytest.approx(expected, abs=1e-5, rel=1e-4)


@pytest.mark.parametrize("bins", [8, 256])
@pytest.mark.parametrize("loss_on", ["masked", "all"])
def test_color_bins_cross_entropy(bins, loss_on):
    model, x, mask, logits, ours = prediction_and_inputs(target="color_bins", num_color_bins=bins, loss_on=loss_on)
    mean, std = np.array(IMAGENET_MEAN).reshape(1, 3, 1, 1), np.array(IMAGENET_STD).reshape(1, 3, 1, 1)
    values = np.round(np.clip(x * std + mean, 0, 1) * 255)
    target = np.minimum(np.floor(values * bins / 256), bins - 1).astype(int)  # [B, C, H, W]
    logits = logits.reshape(2, 3, bins, SIZE, SIZE)
    shifted = logits - logits.max(2, keepdims=True)
    log_prob = shifted - np.log(np.exp(shifted).sum(2, keepdims=True))
    ce = -np.take_along_axis(log_prob, target[:, :, None], axis=2)[:, :, 0]  # [B, C, H, W]
    assert float(ours) == pytest.approx(reduce(ce, pixel_mask(mask), loss_on), abs=1e-5, rel=1e-5)
    out = model(pixel_values=torch.tensor(x, dtype=torch.float32))
    assert out.reconstruction.shape == (2, 3, SIZE, SIZE)  # the likeliest bins, back in normalised pixels


def test_mask_strategies_draw_what_they_say():
    square = training.build_image_processor("simmim", SimMIMConfig.from_preset("vit-test", mask_strategy="square",
                                                                                 mask_ratio=0.5))  # fmt: skip
    images = [np.full((40, 40, 3), 128, dtype=np.uint8)] * 6
    masks = square(images, return_mask=True, seed=0)["bool_masked_pos"].reshape(6, 4, 4).numpy()
    for m in masks:
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        assert len(rows) == len(cols) == 3 and m.sum() == 9  # one 3 x 3 square: round(sqrt(0.5 * 16)) = 3
        assert m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
    config = SimMIMConfig.from_preset("vit-test", mask_strategy="blockwise", mask_ratio=0.5)
    blocks = training.build_image_processor("simmim", config)(images, return_mask=True, seed=0)["bool_masked_pos"]
    assert (blocks.sum(-1) == 8).all()  # exactly half of the 16 patches
    random = training.build_image_processor("simmim", SimMIMConfig.from_preset("vit-test"))(
        images, return_mask=True, seed=0
    )
    cells = random["bool_masked_pos"].reshape(6, 2, 2, 2, 2)  # 16 px cells of 8 px patches
    assert (cells.all(dim=(2, 4)) | ~cells.any(dim=(2, 4))).all()  # whole cells masked


@pytest.mark.parametrize(
    "field,value,allowed",
    [("mask_strategy", "grid", "random"), ("head", "conv", "mlp"), ("loss", "huber", "smooth_l1"),
     ("target", "tokens", "color_bins"), ("loss_on", "visible", "masked"), ("num_color_bins", 1, "[2, 256]"),
     ("target_resolution", 64, "image_size")],
)  # fmt: skip
def test_bad_values_name_the_field_and_the_allowed_values(field, value, allowed):
    with pytest.raises(
        ValueError, match=rf"`{field}`.*{allowed}" if field != "target_resolution" else "target_resolution"
    ):
        SimMIMConfig.from_preset("vit-test", **{field: value})


@pytest.mark.parametrize(
    "switches",
    [{"head": "mlp"}, {"loss": "smooth_l1", "loss_on": "all"}, {"target": "color_bins", "num_color_bins": 8},
     {"target_resolution": 16}, {"mask_strategy": "square"}, {"mask_strategy": "blockwise"}],
)  # fmt: skip
def test_every_variant_saves_reloads_and_finetunes(switches, tmp_path):
    torch.manual_seed(0)
    model = SimMIMForMaskedImageModeling(SimMIMConfig.from_preset("vit-test", **switches)).eval()
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    for key, value in switches.items():
        assert getattr(reloaded.config, key) == value
    x, mask = torch.randn(2, 3, SIZE, SIZE), torch.rand(2, 16) < 0.5
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values=x, bool_masked_pos=mask).loss,
                                   model(pixel_values=x, bool_masked_pos=mask).loss)  # fmt: skip
    classifier = AutoModelForImageClassification.from_pretrained(tmp_path, num_labels=3)
    out = classifier(pixel_values=x, labels=torch.tensor([0, 2]))
    out.loss.backward()
    assert classifier.classifier.weight.grad is not None and torch.isfinite(out.loss)
