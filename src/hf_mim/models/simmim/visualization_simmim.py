"""SimMIM's panel of the pretraining picture: the reconstruction (``hf_mim.training.pictures`` draws the input and
the mask first)."""

from __future__ import annotations

import numpy as np

from ...visualization import denormalize


def picture_panels(model, out, pixel_values, mask, index: int, mean, std) -> list[tuple[str, np.ndarray]]:
    """``(title, [H, W, 3] uint8)`` panels for image ``index`` of a SimMIM forward ``out``: the head's
    reconstruction of the whole image (SimMIM predicts every pixel; its loss counts the masked ones).

    Args: as :func:`hf_mim.models.maskfeat.visualization_maskfeat.picture_panels`.
    """
    return [("reconstruction (the loss counts masked patches)", denormalize(out.reconstruction[index], mean, std))]
