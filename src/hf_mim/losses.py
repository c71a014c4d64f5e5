"""Losses of the methods, written once and checked against independent implementations in the tests."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = [
    "simmim_loss",
    "masked_l1_loss",
    "masked_mean",
    "masked_mse_loss",
    "mse_loss_predictor_loss",
    "per_patch_mse",
    "relative_loss_predictor_loss",
    "upsample_patch_mask",
]


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [B, L]`` over the positions where ``mask [B, L]`` is true; 0 (not NaN) when none are."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def per_patch_mse(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[B, L, D]`` x 2 -> ``[B, L]`` squared error averaged over the target dimension."""
    return (predictions.float() - targets.float()).pow(2).mean(dim=-1)


def masked_mse_loss(predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE over masked patches only: mean over masked tokens x target dimensions (MaskFeat, MAE).

    Args:
        predictions: ``[B, L, D]``.
        targets: ``[B, L, D]``.
        mask: ``[B, L]`` bool, True = masked (counted).

    Returns:
        Scalar loss; 0 when no patch is masked.
    """
    return masked_mean(per_patch_mse(predictions, targets), mask)


def upsample_patch_mask(mask: torch.Tensor, grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """``[B, h * w]`` patch mask -> ``[B, 1, h * patch_size, w * patch_size]`` pixel mask."""
    h, w = grid
    pixel_mask = mask.reshape(-1, h, w).repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2)
    return pixel_mask.unsqueeze(1)


def masked_l1_loss(
    pixel_values: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor, patch_size: int
) -> torch.Tensor:
    """SimMIM's loss: L1 on masked pixels, ``sum(|x - x_rec| * m) / (sum(m) + 1e-5) / C``.

    Args:
        pixel_values: ``[B, C, H, W]`` normalised input.
        reconstruction: ``[B, C, H, W]`` prediction.
        mask: ``[B, L]`` bool over the ``(H / patch_size) x (W / patch_size)`` patch grid.
        patch_size: Model patch size in pixels.
    """
    height, width = pixel_values.shape[-2:]
    pixel_mask = upsample_patch_mask(mask, (height // patch_size, width // patch_size), patch_size)
    pixel_mask = pixel_mask.to(reconstruction.dtype)
    l1 = (pixel_values.to(reconstruction.dtype) - reconstruction).abs()
    return (l1 * pixel_mask).sum() / (pixel_mask.sum() + 1e-5) / pixel_values.shape[1]


def color_bins(
    pixel_values: torch.Tensor, num_color_bins: int, image_mean: Sequence[float], image_std: Sequence[float]
) -> torch.Tensor:
    """SimMIM's colour-bin classes: each channel's de-normalised 8-bit value ``[B, C, H, W]`` -> its bin index
    (``floor(value * bins / 256)``)."""
    mean = pixel_values.new_tensor(image_mean).view(1, -1, 1, 1)
    std = pixel_values.new_tensor(image_std).view(1, -1, 1, 1)
    values = ((pixel_values.float() * std + mean).clamp(0, 1) * 255).round()  # 8-bit values
    return (values * num_color_bins / 256).floor().long().clamp(max=num_color_bins - 1)


def simmim_loss(
    pixel_values: torch.Tensor,
    prediction: torch.Tensor,
    mask: torch.Tensor,
    patch_size: int,
    loss: str = "l1",
    target: str = "pixel",
    num_color_bins: int = 256,
    target_resolution: int | None = None,
    loss_on: str = "masked",
    image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> torch.Tensor:
    """SimMIM's loss with the paper's ablation switches (defaults: L1 on masked pixels, :func:`masked_l1_loss`).

    Args:
        pixel_values: ``[B, C, H, W]`` normalised input.
        prediction: ``[B, C, H, W]`` pixels, or ``[B, C * num_color_bins, H, W]`` logits for ``"color_bins"``.
        mask: ``[B, L]`` bool over the ``(H / patch_size) x (W / patch_size)`` patch grid.
        patch_size: Model patch size in pixels.
        loss: ``"l1"``, ``"l2"`` or ``"smooth_l1"`` (beta 1.0) per pixel and channel (pixel targets).
        target: ``"pixel"`` or ``"color_bins"`` (cross-entropy of each channel's bin of the de-normalised 8-bit
            value).
        num_color_bins: Bins per channel.
        target_resolution: Resize targets and predictions (bilinear, antialiased; logits alike) to this side, and
            the pixel mask with nearest neighbours (None: the input's resolution).
        loss_on: ``"masked"``: sum over masked pixels and channels / (masked pixels + 1e-5) / C; ``"all"``: the
            mean over every pixel and channel.
        image_mean, image_std: The statistics ``pixel_values`` were normalised with (colour bins un-normalise).
    """
    height, width = pixel_values.shape[-2:]
    channels = pixel_values.shape[1]
    pixel_mask = upsample_patch_mask(mask, (height // patch_size, width // patch_size), patch_size).float()
    targets = pixel_values.float()
    prediction = prediction.float()
    if target_resolution is not None and target_resolution != height:
        size = (target_resolution, round(width * target_resolution / height))
        targets = F.interpolate(targets, size=size, mode="bilinear", align_corners=False, antialias=True)
        prediction = F.interpolate(prediction, size=size, mode="bilinear", align_corners=False, antialias=True)
        pixel_mask = F.interpolate(pixel_mask, size=size, mode="nearest")
    if target == "color_bins":
        bins = color_bins(targets, num_color_bins, image_mean, image_std)  # [B, C, h, w]
        logits = prediction.reshape(prediction.shape[0], channels, num_color_bins, *prediction.shape[-2:])
        per_value = F.cross_entropy(logits.transpose(1, 2), bins, reduction="none")  # [B, C, h, w]
    elif loss == "l1":
        per_value = (targets - prediction).abs()
    elif loss == "l2":
        per_value = (targets - prediction) ** 2
    elif loss == "smooth_l1":
        per_value = F.smooth_l1_loss(prediction, targets, reduction="none", beta=1.0)
    else:
        raise ValueError(f"`loss` must be one of ['l1', 'l2', 'smooth_l1'], got {loss!r}.")
    if loss_on == "all":
        return per_value.mean()
    return (per_value * pixel_mask).sum() / (pixel_mask.sum() + 1e-5) / channels


def relative_loss_predictor_loss(predicted: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
    """HPM's "relative" loss-predictor loss: BCE over all ordered pairs of patches whose true losses differ.

    For pair ``(i, j)`` of one image: label 1 when ``actual_j > actual_i``, logit ``predicted_j - predicted_i``,
    ``-[y log(sigmoid(z) + 1e-6) + (1 - y) log(1 - sigmoid(z) + 1e-6)]``; summed over the batch and divided by the
    number of valid pairs (0 when there is none).

    Args:
        predicted: ``[B, M]`` predicted losses of the masked patches.
        actual: ``[B, M]`` true (detached) losses of the same patches.
    """
    predicted, actual = predicted.float(), actual.float()
    positive = actual.unsqueeze(1) > actual.unsqueeze(2)  # [B, i, j]: actual_j > actual_i
    negative = actual.unsqueeze(1) < actual.unsqueeze(2)
    probability = torch.sigmoid(predicted.unsqueeze(1) - predicted.unsqueeze(2))  # sigmoid(pred_j - pred_i)
    loss = -(positive * torch.log(probability + 1e-6) + negative * torch.log(1 - probability + 1e-6))
    return loss.sum() / (positive | negative).sum().clamp(min=1)


def mse_loss_predictor_loss(predicted: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
    """HPM's "mse" loss-predictor loss: regress the true losses standardised per image (unbiased var, eps 1e-6).

    Args:
        predicted: ``[B, M]``.
        actual: ``[B, M]`` true (detached) losses.
    """
    actual = actual.float()
    standardised = (actual - actual.mean(dim=1, keepdim=True)) / (actual.var(dim=1, keepdim=True) + 1e-6) ** 0.5
    return (predicted.float() - standardised).pow(2).mean()
