"""Pictures for people: HOG glyph maps, masked inputs, reconstructions and loss heat maps."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = [
    "band_description",
    "denormalize",
    "heatmap",
    "hog_glyphs",
    "hog_panel",
    "image_grid",
    "mask_overlay",
    "patch_reconstruction",
]


def denormalize(
    pixel_values: torch.Tensor,
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> np.ndarray:
    """``[C, H, W]`` normalised tensor -> ``[H, W, 3]`` uint8 array to look at: RGB as it is, one band as grey, and
    the first three bands as an RGB composite for more (:func:`band_description` says which)."""
    x = pixel_values.detach().float().cpu()
    channels = x.shape[0]
    x = x * torch.tensor(std, dtype=x.dtype).view(channels, 1, 1) + torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    x = x[:3] if channels >= 3 else x[:1].expand(3, -1, -1)
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def band_description(num_channels: int) -> str:
    """What :func:`denormalize` shows of ``num_channels`` bands, for picture titles ("" for RGB)."""
    if num_channels == 3:
        return ""
    return " (grey)" if num_channels < 3 else f" (bands 1-3 of {num_channels})"


def hog_glyphs(hog: torch.Tensor, cell_px: int = 16) -> np.ndarray:
    """Draws a HOG map ``[C, nbins, h, w]`` (channels averaged) as oriented strokes, one glyph per cell.

    Bin ``k`` holds gradient orientations around ``(k + 0.5) * pi / nbins`` measured by ``atan2(gx, gy)``; edges
    run perpendicular to the gradient, which is what the strokes show.
    """
    hist = hog.detach().float().cpu().mean(0).numpy()  # [nbins, h, w]
    nbins, h, w = hist.shape
    canvas = PIL.Image.new("L", (w * cell_px, h * cell_px), 0)
    draw = PIL.ImageDraw.Draw(canvas)
    peak = max(float(hist.max()), 1e-6)
    for r in range(h):
        for c in range(w):
            cy, cx = (r + 0.5) * cell_px, (c + 0.5) * cell_px
            for k in range(nbins):
                strength = hist[k, r, c] / peak
                if strength < 0.05:
                    continue
                theta = (k + 0.5) * math.pi / nbins  # gradient direction: (dx, dy) = (sin, cos)
                dx, dy = math.cos(theta), -math.sin(theta)  # perpendicular: the edge
                half = 0.45 * cell_px
                draw.line(
                    [(cx - dx * half, cy - dy * half), (cx + dx * half, cy + dy * half)],
                    fill=int(255 * strength),
                    width=1,
                )
    return np.stack([np.asarray(canvas)] * 3, axis=-1)


def mask_overlay(image: np.ndarray, mask: torch.Tensor, grid: tuple[int, int], shade: float = 0.75) -> np.ndarray:
    """Greys out the masked patches of an ``[H, W, 3]`` uint8 image; ``mask`` is ``[h * w]`` over ``grid``."""
    h, w = grid
    m = mask.detach().cpu().bool().view(h, w).numpy()
    m = m.repeat(image.shape[0] // h, 0).repeat(image.shape[1] // w, 1)[..., None]
    return np.where(m, (image * (1 - shade) + 127 * shade).astype(np.uint8), image)


def heatmap(values: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Per-patch values ``[h * w]`` as a blue-to-red ``[H, W, 3]`` uint8 heat map of the given size."""
    v = values.detach().float().cpu().view(*grid).numpy()
    v = (v - v.min()) / max(float(v.max() - v.min()), 1e-12)
    rgb = np.stack([v, 0.2 * np.ones_like(v), 1 - v], axis=-1)
    image = PIL.Image.fromarray((rgb * 255).astype(np.uint8)).resize(size[::-1], PIL.Image.NEAREST)
    return np.asarray(image)


def image_grid(
    rows: Sequence[Sequence[np.ndarray]], pad: int = 2, upscale: int = 1, titles: Sequence[str] | None = None
) -> PIL.Image.Image:
    """Tiles equally sized ``[H, W, 3]`` uint8 arrays into one picture (rows x columns), with a line of text above
    each column when ``titles`` are given (wrapped to the column's width)."""
    tiles = [[PIL.Image.fromarray(t) for t in row] for row in rows]
    th = max(t.height for row in tiles for t in row) * upscale
    tw = max(t.width for row in tiles for t in row) * upscale
    ncols = max(len(row) for row in tiles)
    # PIL's default bitmap font: about 6 px a character, 12 px a line
    wrapped = [textwrap.wrap(title, max(8, tw // 6)) or [""] for title in titles or ()]
    header = 12 * max((len(lines) for lines in wrapped), default=0) + (pad if wrapped else 0)
    grid = PIL.Image.new("RGB", (ncols * (tw + pad) + pad, header + len(tiles) * (th + pad) + pad), (255, 255, 255))
    draw = PIL.ImageDraw.Draw(grid)
    for j, lines in enumerate(wrapped):
        for k, line in enumerate(lines):
            draw.text((pad + j * (tw + pad), pad + 12 * k), line, fill=(0, 0, 0))
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            grid.paste(tile.resize((tw, th), PIL.Image.NEAREST), (pad + j * (tw + pad), header + pad + i * (th + pad)))
    return grid


def hog_panel(hog: torch.Tensor, grid: tuple[int, int], channels: int, nbins: int, cells: int,
              size: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """Per-patch HOG features ``[h * w, C * nbins * cells^2]`` (:class:`~hf_mim.targets.HOGFeatures` order) drawn as
    glyphs of the given ``size``, each (channel, cell) histogram normalised so that orientations, not magnitudes,
    are compared."""
    h, w = grid
    hog = hog.float().reshape(h, w, channels, nbins, cells, cells)
    hog = hog.permute(2, 3, 0, 4, 1, 5).reshape(channels, nbins, h * cells, w * cells)
    glyphs = hog_glyphs(torch.nn.functional.normalize(hog, dim=1), cell_px=16)
    return np.asarray(PIL.Image.fromarray(glyphs).resize((size[1], size[0]), PIL.Image.BILINEAR))


def patch_reconstruction(
    pixel_values: torch.Tensor, prediction: torch.Tensor, mask: torch.Tensor, patch_size: int, norm_pix_loss: bool
) -> torch.Tensor:
    """The normalised image ``[C, H, W]`` with its masked patches replaced by the predicted patches.

    ``prediction`` is ``[L, patch^2 * C]`` in MAE's patch order. With ``norm_pix_loss`` the model predicts each
    patch normalised by its own mean and variance; the masked patches are then drawn with the mean and variance of
    the *visible* patches (averaged over them), never with the masked patches' own statistics, so the picture shows
    nothing the model did not predict.
    """
    from .targets import patchify, unpatchify

    height, width = pixel_values.shape[-2:]
    target = patchify(pixel_values[None].float(), patch_size)[0]  # [L, p * p * C]
    prediction = prediction.float()
    if norm_pix_loss:
        visible = target[~mask] if bool((~mask).any()) else target.new_zeros(1, target.shape[-1])
        mean, var = visible.mean(-1).mean(), visible.var(-1).mean()  # as normalize_patches: unbiased variance
        prediction = prediction * (var + 1e-6) ** 0.5 + mean
    merged = torch.where(mask[:, None], prediction, target)
    return unpatchify(merged[None], patch_size, (height, width))[0]
