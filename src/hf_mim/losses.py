"""Losses of the methods, written once and checked against independent implementations in the tests."""

from __future__ import annotations

import torch

__all__ = ["masked_mean", "masked_mse_loss", "per_patch_mse"]


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
