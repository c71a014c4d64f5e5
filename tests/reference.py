"""Independent NumPy implementations the tests check hf_mim against (written from the definitions)."""

import math

import numpy as np


def numpy_hog(images: np.ndarray, nbins=9, cell=8, gaussian_window=0):
    """Independent float64 HOG with MaskFeat's semantics, written from the definition.

    Returns the histograms [B, C, nbins, h, w] and two [B, C, h, w] cell masks: cells holding a pixel whose
    orientation lies within 1e-4 of a bin edge (where float32 and float64 may legitimately disagree on the bin),
    and cells whose gradient magnitude is ~0.
    """
    x = np.pad(images.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    kx = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64)
    ky = kx.T
    b, c, hp, wp = x.shape
    h, w = hp - 2, wp - 2
    gx = np.zeros((b, c, h, w))
    gy = np.zeros((b, c, h, w))
    for i in range(3):
        for j in range(3):
            window = x[:, :, i : i + h, j : j + w]
            gx += kx[i, j] * window
            gy += ky[i, j] * window
    mag = np.sqrt(gx**2 + gy**2)
    phase = np.arctan2(gx, gy) / math.pi * nbins
    ambiguous = (np.abs(phase - np.round(phase)) < 1e-4) & (mag > 1e-4)
    bins = np.floor(phase).astype(int) % nbins
    if gaussian_window:
        n = np.arange(gaussian_window, dtype=np.float64)
        n = (n - n.mean()) / (gaussian_window // 2)
        g = np.exp(-0.5 * n**2)
        g2 = np.outer(g, g)
        g2 /= g2.sum()
        mag = mag * np.tile(g2, (h // gaussian_window, w // gaussian_window))
    ch, cw = h // cell, w // cell
    hist = np.zeros((b, c, nbins, ch, cw))
    for bin_ in range(nbins):
        weighted = np.where(bins == bin_, mag, 0.0)
        hist[:, :, bin_] = weighted.reshape(b, c, ch, cell, cw, cell).sum(axis=(3, 5))
    norm = np.sqrt((hist**2).sum(axis=2, keepdims=True))
    hist = hist / np.maximum(norm, 1e-12)
    amb_cells = ambiguous.reshape(b, c, ch, cell, cw, cell).any(axis=(3, 5))
    # ~0 gradient: orientations of float32 rounding residue (1e-7) are noise that L2 normalisation amplifies
    flat_cells = norm[:, :, 0] < 1e-3
    return hist, amb_cells, flat_cells


def numpy_hog_patch_targets(images: np.ndarray, patch_size: int, nbins=9, cell=8, gaussian_window=0) -> np.ndarray:
    """[B, L, C * nbins * k * k] with feature index ((c * nbins + bin) * k + cell_row) * k + cell_col."""
    hist, _, _ = numpy_hog(images, nbins=nbins, cell=cell, gaussian_window=gaussian_window)
    b, c, n, h, w = hist.shape
    k = patch_size // cell
    out = np.zeros((b, (h // k) * (w // k), c * n * k * k))
    for pr in range(h // k):
        for pc in range(w // k):
            block = hist[:, :, :, pr * k : (pr + 1) * k, pc * k : (pc + 1) * k]  # [B, C, nbins, k, k]
            out[:, pr * (w // k) + pc] = block.reshape(b, -1)
    return out


def numpy_masked_mse(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Mean of the squared error over masked tokens x target dims."""
    sel = mask.astype(bool)
    if not sel.any():
        return 0.0
    return float(((pred[sel] - target[sel]) ** 2).mean())
