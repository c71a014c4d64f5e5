"""The shared losses against independent NumPy computations written here (lightly's habit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_mim.losses import (
    masked_l1_loss,
    masked_mean,
    masked_mse_loss,
    mse_loss_predictor_loss,
    relative_loss_predictor_loss,
    upsample_patch_mask,
)

RNG = np.random.default_rng(0)


def test_masked_mean_and_mse_match_numpy():
    values, mask = RNG.normal(size=(3, 5)), RNG.random((3, 5)) < 0.5
    assert float(masked_mean(torch.tensor(values), torch.tensor(mask))) == pytest.approx(values[mask].mean())
    assert float(masked_mean(torch.tensor(values), torch.zeros(3, 5, dtype=torch.bool))) == 0.0  # not NaN
    pred, target = RNG.normal(size=(3, 5, 4)), RNG.normal(size=(3, 5, 4))
    expected = ((pred - target) ** 2)[mask].mean()
    got = masked_mse_loss(torch.tensor(pred), torch.tensor(target), torch.tensor(mask))
    assert float(got) == pytest.approx(expected)


def test_masked_l1_is_simmims_formula():
    pixels, recon = RNG.normal(size=(2, 3, 8, 8)), RNG.normal(size=(2, 3, 8, 8))
    mask = RNG.random((2, 4)) < 0.5  # a 2 x 2 grid of 4 px patches
    pixel_mask = np.kron(mask.reshape(2, 2, 2), np.ones((4, 4)))[:, None]  # [B, 1, H, W]
    expected = (np.abs(pixels - recon) * pixel_mask).sum() / (pixel_mask.sum() + 1e-5) / 3
    got = masked_l1_loss(torch.tensor(pixels), torch.tensor(recon), torch.tensor(mask), 4)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    upsampled = upsample_patch_mask(torch.tensor(mask), (2, 2), 4)
    assert np.array_equal(upsampled.numpy(), pixel_mask.astype(bool))


def test_loss_predictor_losses_match_numpy():
    predicted, actual = RNG.normal(size=(2, 4)), RNG.normal(size=(2, 4))
    actual[0, 1] = actual[0, 2]  # a tie: no pair
    total, pairs = 0.0, 0
    for b in range(2):
        for i in range(4):
            for j in range(4):
                if actual[b, j] == actual[b, i]:
                    continue
                y = float(actual[b, j] > actual[b, i])
                p = 1 / (1 + np.exp(-(predicted[b, j] - predicted[b, i])))
                total += -(y * np.log(p + 1e-6) + (1 - y) * np.log(1 - p + 1e-6))
                pairs += 1
    got = relative_loss_predictor_loss(torch.tensor(predicted), torch.tensor(actual))
    assert float(got) == pytest.approx(total / pairs, rel=1e-5)
    standardised = (actual - actual.mean(1, keepdims=True)) / np.sqrt(actual.var(1, ddof=1, keepdims=True) + 1e-6)
    got = mse_loss_predictor_loss(torch.tensor(predicted), torch.tensor(actual))
    assert float(got) == pytest.approx(((predicted - standardised) ** 2).mean(), rel=1e-5)
