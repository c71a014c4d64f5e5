"""The pretraining picture grid: what the model sees and predicts, one row per image."""

from __future__ import annotations

import numpy as np
import torch

from ..targets import patchify, unpatchify
from ..visualization import denormalize, heatmap, hog_glyphs, image_grid, mask_overlay

__all__ = ["pretraining_picture"]


@torch.no_grad()
def pretraining_picture(model, batch: dict, max_images: int = 4):
    """A picture grid of what the model sees and predicts, one row per image.

    MaskFeat: input | masked input | HOG target | HOG prediction (masked patches). SimMIM: input | masked input | reconstruction.
    HPM / MAE: input | masked input | reconstruction (visible patches pasted back) | predicted-loss heat map.
    Pixel targets (either method) show the reconstruction; teacher-feature targets only input and mask.
    """
    was_training = model.training
    model.eval()
    pixel_values = batch["pixel_values"][:max_images]
    inputs = {"pixel_values": pixel_values}
    if batch.get("bool_masked_pos") is not None:
        inputs["bool_masked_pos"] = batch["bool_masked_pos"][:max_images]
    out = model(**inputs)
    if was_training:
        model.train()
    patch = model.config.patch_size
    height, width = pixel_values.shape[-2:]
    grid = (height // patch, width // patch)
    mask = out.mask if out.mask is not None else inputs["bool_masked_pos"]
    rows = []
    for i in range(len(pixel_values)):
        image = denormalize(pixel_values[i])
        row = [image, mask_overlay(image, mask[i], grid)]
        target_kind = getattr(model.config, "target", "pixel")
        if getattr(out, "hog_targets", None) is not None and target_kind in ("hog", "hog+pixel"):
            nbins, cells = model.config.hog_nbins, patch // model.config.hog_cell_size
            # the prediction is drawn on masked patches only (the loss ignores the others), normalised per
            # (channel, cell) like the targets so that orientations, not magnitudes, are compared
            prediction = out.logits[i].float().clamp(min=0) * mask[i, :, None]
            for feats in (out.hog_targets[i], prediction):
                hog = feats.float().reshape(grid[0], grid[1], 3, nbins, cells, cells)
                hog = hog.permute(2, 3, 0, 4, 1, 5).reshape(3, nbins, grid[0] * cells, grid[1] * cells)
                hog = torch.nn.functional.normalize(hog, dim=1)
                glyphs = hog_glyphs(hog, cell_px=16)
                row.append(np.asarray(_resize(glyphs, (height, width))))
        elif getattr(out, "reconstruction", None) is not None:
            row.append(denormalize(out.reconstruction[i]))
        else:
            prediction = out.logits[i : i + 1].float()
            if target_kind == "pixel":
                target = patchify(pixel_values[i : i + 1].float(), patch)
                if model.config.norm_pix_loss:  # undo the per-patch normalisation with the true statistics
                    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
                    prediction = prediction * (var + 1e-6) ** 0.5 + mean
                merged = torch.where(mask[i : i + 1, :, None], prediction, target)
                row.append(denormalize(unpatchify(merged, patch, (height, width))[0]))
            if getattr(out, "predicted_patch_loss", None) is not None:
                row.append(heatmap(out.predicted_patch_loss[i], grid, (height, width)))
        rows.append(row)
    return image_grid(rows, upscale=max(1, 128 // height))


def _resize(array: np.ndarray, size: tuple[int, int]):
    import PIL.Image

    return PIL.Image.fromarray(array).resize((size[1], size[0]), PIL.Image.BILINEAR)
