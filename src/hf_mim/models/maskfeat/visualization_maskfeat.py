"""MaskFeat's panels of the pretraining picture: the HOG target and the HOG prediction (masked patches), or the
reconstruction for pixel targets (``hf_mim.training.pictures`` draws the input and the mask first)."""

from __future__ import annotations

import numpy as np

from ...visualization import denormalize, hog_panel, patch_reconstruction


def picture_panels(model, out, pixel_values, mask, index: int, mean, std) -> list[tuple[str, np.ndarray]]:
    """``(title, [H, W, 3] uint8)`` panels for image ``index`` of a MaskFeat forward ``out``.

    Args:
        model: A :class:`MaskFeatForPreTraining`.
        out: Its output on ``pixel_values`` with ``mask``.
        pixel_values: ``[B, C, H, W]`` normalised images.
        mask: ``[B, L]`` bool, True = masked.
        index: Which image.
        mean: The normalisation mean the images were made with (per channel).
        std: The normalisation std.
    """
    config = model.config
    patch = config.patch_size
    height, width = pixel_values.shape[-2:]
    grid = (height // patch, width // patch)
    if config.target in ("hog", "hog+pixel"):
        channels, nbins, cells = pixel_values.shape[1], config.hog_nbins, patch // config.hog_cell_size
        # the prediction is drawn on masked patches only (the loss ignores the others)
        prediction = out.logits[index].float().clamp(min=0) * mask[index, :, None]
        return [
            ("HOG target", hog_panel(out.hog_targets[index], grid, channels, nbins, cells, (height, width))),
            ("HOG prediction (masked patches)", hog_panel(prediction, grid, channels, nbins, cells, (height, width))),
        ]
    if config.target == "pixel":
        image = patch_reconstruction(pixel_values[index], out.logits[index], mask[index], patch, config.norm_pix_loss)
        title = "prediction on masked patches" + (" (visible patches' mean/std)" if config.norm_pix_loss else "")
        return [(title, denormalize(image, mean, std))]
    return []  # teacher features: nothing to draw
