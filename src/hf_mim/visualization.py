"""Pictures for people: HOG glyph maps, masked inputs, reconstructions and loss heat maps."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = ["denormalize", "hog_glyphs", "mask_overlay", "heatmap", "image_grid"]


def denormalize(
    pixel_values: torch.Tensor,
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> np.ndarray:
    """``[3, H, W]`` normalised tensor -> ``[H, W, 3]`` uint8 array."""
    x = pixel_values.detach().float().cpu()
    x = x * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


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


def image_grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 2, upscale: int = 1) -> PIL.Image.Image:
    """Tiles equally sized ``[H, W, 3]`` uint8 arrays into one picture (rows x columns)."""
    tiles = [[PIL.Image.fromarray(t) for t in row] for row in rows]
    th = max(t.height for row in tiles for t in row)
    tw = max(t.width for row in tiles for t in row)
    ncols = max(len(row) for row in tiles)
    grid = PIL.Image.new("RGB", (ncols * (tw + pad) + pad, len(tiles) * (th + pad) + pad), (255, 255, 255))
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            grid.paste(tile.resize((tw, th), PIL.Image.NEAREST), (pad + j * (tw + pad), pad + i * (th + pad)))
    if upscale > 1:
        grid = grid.resize((grid.width * upscale, grid.height * upscale), PIL.Image.NEAREST)
    return grid
