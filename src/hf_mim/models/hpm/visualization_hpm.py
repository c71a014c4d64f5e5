"""HPM's (and MAE's) panels of the pretraining picture: the reconstruction with the visible patches pasted back,
and the loss predictor's heat map (``hf_mim.training.pictures`` draws the input and the mask first)."""

from __future__ import annotations

import numpy as np

from ...visualization import denormalize, heatmap, patch_reconstruction


def picture_panels(model, out, pixel_values, mask, index: int, mean, std) -> list[tuple[str, np.ndarray]]:
    """``(title, [H, W, 3] uint8)`` panels for image ``index`` of an HPM forward ``out``.

    Args: as :func:`hf_mim.models.maskfeat.visualization_maskfeat.picture_panels`.
    """
    config = model.config
    patch = config.patch_size
    height, width = pixel_values.shape[-2:]
    panels = []
    if config.target == "pixel":
        image = patch_reconstruction(pixel_values[index], out.logits[index], mask[index], patch, config.norm_pix_loss)
        title = "prediction on masked patches" + (" (visible patches' mean/std)" if config.norm_pix_loss else "")
        panels.append((title, denormalize(image, mean, std)))
    if getattr(out, "predicted_patch_loss", None) is not None:
        grid = (height // patch, width // patch)
        panels.append(("predicted loss", heatmap(out.predicted_patch_loss[index], grid, (height, width))))
    return panels
