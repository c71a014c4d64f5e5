"""The pretraining picture grid: what the model sees and predicts, one row per image; each method draws its own
panels (``models/<method>/visualization_<method>.py``, named in its registry entry)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..registry import get_model_spec
from ..visualization import band_description, denormalize, image_grid, mask_overlay

__all__ = ["pretraining_picture"]


@torch.no_grad()
def pretraining_picture(
    model,
    batch: dict,
    max_images: int = 4,
    image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
):
    """A picture grid of what the model sees and predicts, one row per image, a title above each column:
    input | masked input | the method's panels (MaskFeat: HOG target and prediction; SimMIM: reconstruction; HPM /
    MAE: reconstruction and predicted-loss heat map). A panel never shows what the model did not predict.

    Args:
        model: A pretraining model of any registered method.
        batch: ``pixel_values`` ``[B, C, H, W]`` and the mask (``bool_masked_pos``) when the model takes one.
        max_images: Rows at most.
        image_mean: The normalisation mean the images were made with (per channel).
        image_std: The normalisation std.
    """
    was_training = model.training
    model.eval()
    pixel_values = batch["pixel_values"][:max_images]
    inputs = {"pixel_values": pixel_values}
    if batch.get("bool_masked_pos") is not None:
        inputs["bool_masked_pos"] = batch["bool_masked_pos"][:max_images]
    out = model(**inputs)
    model.train(was_training)
    patch = model.config.patch_size
    height, width = pixel_values.shape[-2:]
    grid = (height // patch, width // patch)
    mask = out.mask if out.mask is not None else inputs["bool_masked_pos"]
    panels = get_model_spec(model.config.model_type).picture_panels
    bands = band_description(pixel_values.shape[1])
    rows, titles = [], [f"input{bands}", "masked input"]
    for i in range(len(pixel_values)):
        image = denormalize(pixel_values[i], image_mean, image_std)
        extra = panels(model, out, pixel_values, mask, i, image_mean, image_std) if panels is not None else []
        rows.append([image, mask_overlay(image, mask[i], grid), *(panel for _, panel in extra)])
        titles = [f"input{bands}", "masked input", *(title for title, _ in extra)]
    return image_grid(rows, upscale=max(1, 128 // height), titles=titles)
