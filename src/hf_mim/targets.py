"""Prediction targets: MaskFeat's HOG features, MAE-style pixel patches, a frozen teacher's patch features, and
the target families MaskFeat and HPM share."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from .losses import per_patch_mse

__all__ = [
    "FEATURE_LOSSES",
    "PATCH_TARGETS",
    "FeatureTeacher",
    "HOGFeatures",
    "PatchTargets",
    "check_target_config",
    "hog_cell_size_for",
    "normalize_patches",
    "patchify",
    "target_dim",
    "unpatchify",
]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return value


def _gaussian_kernel(window: int, device: torch.device) -> torch.Tensor:
    """``window x window`` Gaussian with std ``window // 2``, normalised to sum 1 (MaskFeat's ``get_gkern``)."""
    n = torch.arange(window, dtype=torch.float32, device=device)
    n = (n - n.mean()) / (window // 2)
    g = torch.exp(-0.5 * n**2)
    g2d = g[:, None] * g[None, :]
    return g2d / g2d.sum()


class HOGFeatures(nn.Module):
    """Histograms of oriented gradients with exactly MaskFeat's image semantics.

    Per channel: 1-pixel reflect padding, 3x3 Sobel cross-correlation, magnitude ``sqrt(gx^2 + gy^2)``,
    orientation ``atan2(gx, gy) / pi * nbins`` hard-assigned to bin ``floor(.) mod nbins``, optional Gaussian
    weighting tiled every ``gaussian_window`` pixels, histograms summed over ``cell_size x cell_size`` cells and
    L2-normalised over the bins of each (channel, cell).

    Histograms are accumulated directly at cell resolution (one ``bincount`` over pixels), never through a
    full-resolution ``[B, C, nbins, H, W]`` tensor, which is what makes this fast enough to run inside a training
    step. The module has no parameters and no state: its kernels are constants.

    Args:
        nbins: Number of orientation bins.
        cell_size: Side of a histogram cell in pixels.
        gaussian_window: Side of the Gaussian weighting window (0 disables it).
    """

    def __init__(self, nbins: int = 9, cell_size: int = 8, gaussian_window: int = 0):
        super().__init__()
        self.nbins = _check_positive_int("nbins", nbins)
        self.cell_size = _check_positive_int("cell_size", cell_size)
        if isinstance(gaussian_window, bool) or not isinstance(gaussian_window, int) or gaussian_window < 0:
            raise ValueError(f"`gaussian_window` must be an integer >= 0, got {gaussian_window!r}.")
        if gaussian_window == 1:
            raise ValueError("`gaussian_window` must be 0 (off) or >= 2: its std is `gaussian_window // 2`.")
        self.gaussian_window = gaussian_window

    def extra_repr(self) -> str:
        return f"nbins={self.nbins}, cell_size={self.cell_size}, gaussian_window={self.gaussian_window}"

    def _check_input(self, pixel_values: torch.Tensor) -> None:
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4:
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values)
            raise ValueError(f"`pixel_values` must be a [B, C, H, W] tensor, got {shape}.")
        height, width = pixel_values.shape[-2:]
        if height % self.cell_size or width % self.cell_size:
            raise ValueError(
                f"`pixel_values` height and width ({height}x{width}) must be divisible by cell_size={self.cell_size}."
            )
        if height < 2 or width < 2:
            raise ValueError(f"`pixel_values` must be at least 2x2 for reflect padding, got {height}x{width}.")
        window = self.gaussian_window
        if window and (height % window or width % window):
            raise ValueError(
                f"`pixel_values` height and width ({height}x{width}) must be divisible by gaussian_window={window}."
            )

    @staticmethod
    def gradients(pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sobel gradients of every channel after 1-pixel reflect padding.

        Cross-correlation with ``kx = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]`` and ``ky = kx^T``, written as the
        separable difference / smoothing pair, which is cheaper than a convolution on CPU.

        Returns:
            ``(gx, gy)``, each ``[B, C, H, W]`` float32.
        """
        x = F.pad(pixel_values.float(), (1, 1, 1, 1), mode="reflect")
        diff = x[..., :, :-2] - x[..., :, 2:]  # [B, C, H + 2, W]
        gx = diff[..., :-2, :] + 2 * diff[..., 1:-1, :] + diff[..., 2:, :]
        smooth = x[..., :, :-2] + 2 * x[..., :, 1:-1] + x[..., :, 2:]
        gy = smooth[..., :-2, :] - smooth[..., 2:, :]
        return gx, gy

    def _histograms(self, images: torch.Tensor, cell_index: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        """Un-normalised cell histograms ``[b, C, nbins, H / cell, W / cell]`` of a chunk of images."""
        batch, channels, height, width = images.shape
        num_cells = cell_index.numel() // (self.cell_size**2)
        gx, gy = self.gradients(images)
        magnitude = torch.hypot(gx, gy)
        if weight is not None:
            magnitude = magnitude * weight
        # bin = floor(atan2(gx, gy) / pi * nbins) mod nbins, kept in float until the final small-int cast
        bins = torch.atan2(gx, gy).div_(math.pi).mul_(self.nbins).floor_().remainder_(self.nbins)
        # flat histogram index of every pixel: ((b * C + c) * nbins + bin) * num_cells + cell
        plane = torch.arange(batch * channels, dtype=torch.int32, device=images.device).view(batch, channels, 1, 1)
        index = (bins.to(torch.int32) + plane * self.nbins).mul_(num_cells).add_(cell_index)
        hist = torch.zeros(batch * channels * self.nbins * num_cells, dtype=torch.float32, device=images.device)
        hist.index_add_(0, index.reshape(-1), magnitude.reshape(-1))
        return hist.view(batch, channels, self.nbins, height // self.cell_size, width // self.cell_size)

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Computes HOG features.

        Args:
            pixel_values: Normalised images ``[B, C, H, W]``, any float dtype, any device.

        Returns:
            ``[B, C, nbins, H / cell_size, W / cell_size]`` float32 histograms.
        """
        self._check_input(pixel_values)
        batch, channels, height, width = pixel_values.shape
        device = pixel_values.device
        cell = self.cell_size
        rows = torch.arange(height, device=device, dtype=torch.int32).div(cell, rounding_mode="floor")
        cols = torch.arange(width, device=device, dtype=torch.int32).div(cell, rounding_mode="floor")
        cell_index = rows[:, None] * (width // cell) + cols[None, :]  # [H, W]
        weight = None
        if self.gaussian_window:
            window = self.gaussian_window
            weight = _gaussian_kernel(window, device).repeat(height // window, width // window)
        # On CPU the elementwise chain is memory-bound: chunks of ~2**18 values stay in cache (about 10x faster
        # than one pass over a 64 x 3 x 224 x 224 batch). Accelerators prefer one launch per op.
        chunk = max(1, 2**18 // (channels * height * width)) if device.type == "cpu" else batch
        hist = torch.cat(
            [
                self._histograms(pixel_values[start : start + chunk], cell_index, weight)
                for start in range(0, batch, chunk)
            ]
        )
        return F.normalize(hist, p=2, dim=2, eps=1e-12)

    @torch.no_grad()
    def patch_targets(self, pixel_values: torch.Tensor, patch_size: int = 16) -> torch.Tensor:
        """HOG features grouped per patch, as MaskFeat's regression targets.

        Args:
            pixel_values: Normalised images ``[B, C, H, W]``.
            patch_size: The model's patch side; a multiple of ``cell_size`` dividing H and W.

        Returns:
            ``[B, num_patches, C * nbins * k * k]`` with ``k = patch_size / cell_size``, patches row-major and the
            feature index ``((c * nbins + bin) * k + cell_row) * k + cell_col``.
        """
        patch_size = _check_positive_int("patch_size", patch_size)
        if patch_size % self.cell_size:
            raise ValueError(f"`patch_size` ({patch_size}) must be a multiple of cell_size ({self.cell_size}).")
        height, width = pixel_values.shape[-2:]
        if height % patch_size or width % patch_size:
            raise ValueError(
                f"`pixel_values` height and width ({height}x{width}) must be divisible by patch_size={patch_size}."
            )
        hog = self(pixel_values)  # [B, C, nbins, h, w]
        batch, channels, nbins, cells_h, cells_w = hog.shape
        k = patch_size // self.cell_size
        hog = hog.reshape(batch, channels * nbins, cells_h // k, k, cells_w // k, k)
        hog = hog.permute(0, 2, 4, 1, 3, 5)  # [B, Hp, Wp, C*nbins, k, k]
        return hog.reshape(batch, (cells_h // k) * (cells_w // k), channels * nbins * k * k)

    def feature_dim(self, num_channels: int = 3, patch_size: int = 16) -> int:
        """Length of one patch's target vector."""
        return num_channels * self.nbins * (patch_size // self.cell_size) ** 2


def patchify(pixel_values: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Splits images into flattened patches in MAE's order.

    Args:
        pixel_values: ``[B, C, H, W]`` with H and W divisible by ``patch_size``.
        patch_size: Patch side in pixels.

    Returns:
        ``[B, L, patch_size**2 * C]``: patches row-major, ``(p, q, channel)`` inside a patch.
    """
    batch, channels, height, width = pixel_values.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"`pixel_values` ({height}x{width}) must be divisible by patch_size={patch_size}.")
    h, w = height // patch_size, width // patch_size
    x = pixel_values.reshape(batch, channels, h, patch_size, w, patch_size)
    x = x.permute(0, 2, 4, 3, 5, 1)  # [B, h, w, p, q, C]
    return x.reshape(batch, h * w, patch_size**2 * channels)


def unpatchify(
    patches: torch.Tensor, patch_size: int, image_size: tuple[int, int] | int | None = None
) -> torch.Tensor:
    """Inverse of :func:`patchify`.

    Args:
        patches: ``[B, L, patch_size**2 * C]``.
        patch_size: Patch side in pixels.
        image_size: ``(H, W)`` of the image; a square grid is assumed when omitted.

    Returns:
        ``[B, C, H, W]``.
    """
    batch, length, dim = patches.shape
    channels = dim // patch_size**2
    if channels * patch_size**2 != dim:
        raise ValueError(f"Patch dimension {dim} is not patch_size**2 * channels for patch_size={patch_size}.")
    if image_size is None:
        side = int(round(math.sqrt(length)))
        h = w = side
    else:
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        h, w = height // patch_size, width // patch_size
    if h * w != length:
        raise ValueError(f"{length} patches do not form a {h}x{w} grid.")
    x = patches.reshape(batch, h, w, patch_size, patch_size, channels)
    x = x.permute(0, 5, 1, 3, 2, 4)  # [B, C, h, p, w, q]
    return x.reshape(batch, channels, h * patch_size, w * patch_size)


def normalize_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """MAE's per-patch normalisation ``(x - mean) / sqrt(var + eps)`` over the last dimension.

    ``var`` is the unbiased variance, as ``torch.var`` in MAE's reference code.
    """
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps) ** 0.5


# ------------------------------------------------------------------------------------- target families

#: What MaskFeat and HPM can regress per masked patch (``config.target``): normalised pixels, HOG, both, or the
#: patch features of a frozen transformers vision model (MaskFeat's "deep features" rows; HPM's CLIP/DINO targets).
PATCH_TARGETS = ("pixel", "hog", "hog+pixel", "features")
FEATURE_LOSSES = ("l2", "smooth_l1", "cosine")


def _teacher_vision_config(name_or_path: str):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(name_or_path)
    return getattr(config, "vision_config", None) or config  # CLIP / SigLIP: the vision tower's config


def check_target_config(config, targets: tuple[str, ...] = PATCH_TARGETS) -> None:
    """Validates the target fields of a MaskFeat / HPM config, and records the teacher's width for ``features``
    (read once from the teacher's config; loading the student later needs neither)."""
    from .modeling_utils import check_choice

    check_choice("target", config.target, targets)
    if "hog" in config.target and (config.hog_cell_size < 1 or config.patch_size % config.hog_cell_size):
        raise ValueError(
            f"`patch_size` ({config.patch_size}) must be a multiple of `hog_cell_size` ({config.hog_cell_size})."
        )
    check_choice("feature_loss", config.feature_loss, FEATURE_LOSSES)
    if config.target == "features":
        if not config.teacher_name_or_path:
            raise ValueError("`target='features'` needs `teacher_name_or_path`: a transformers vision model (local "
                             "folder or Hub id) whose patch tokens are the targets.")  # fmt: skip
        if config.teacher_hidden_size is None:
            config.teacher_hidden_size = int(_teacher_vision_config(config.teacher_name_or_path).hidden_size)


def hog_cell_size_for(patch_size: int) -> int:
    """The HOG cell of a model whose patches (prediction units) are ``patch_size`` pixels: two cells per side, as the
    paper's 8 px cells in 16 px patches (14 px DINOv2 patches: 7 px cells; 32 px Swin outputs: 16 px), one cell for an
    odd size."""
    _check_positive_int("patch_size", patch_size)
    return patch_size // 2 if patch_size % 2 == 0 else patch_size


def target_dim(config, kind: str | None = None) -> int:
    """Length of one patch's target vector for ``kind`` (default: ``config.target``)."""
    pixels = config.patch_size**2 * config.num_channels
    hog = config.num_channels * config.hog_nbins * (config.patch_size // config.hog_cell_size) ** 2
    dims = {"pixel": pixels, "hog": hog, "hog+pixel": hog + pixels, "features": config.teacher_hidden_size}
    return dims[kind or config.target]


class FeatureTeacher:
    """A frozen transformers vision model whose patch tokens are regression targets.

    Loaded on first use with ``AutoModel.from_pretrained`` (CLIP-like models: their vision tower), kept in eval mode
    without gradients, moved to the input's device, and deliberately *not* an ``nn.Module`` attribute of the
    student: it is never in the student's ``state_dict`` (the config records its id).

    Args:
        name_or_path: Local folder or Hub id.
        image_mean, image_std: The student's input normalisation; inputs are re-normalised with the teacher's own
            image processor statistics when it has one.
    """

    def __init__(self, name_or_path: str, image_mean=None, image_std=None):
        self.name_or_path = name_or_path
        self.student_mean = tuple(image_mean or IMAGENET_DEFAULT_MEAN)
        self.student_std = tuple(image_std or IMAGENET_DEFAULT_STD)
        self.model = None

    def load(self):
        from transformers import AutoImageProcessor, AutoModel

        model = AutoModel.from_pretrained(self.name_or_path)
        model = getattr(model, "vision_model", model)
        self.model = model.eval().requires_grad_(False)
        try:
            processor = AutoImageProcessor.from_pretrained(self.name_or_path)
            self.teacher_mean, self.teacher_std = tuple(processor.image_mean), tuple(processor.image_std)
        except (OSError, ValueError, AttributeError, TypeError):
            self.teacher_mean, self.teacher_std = self.student_mean, self.student_std
        config = self.model.config
        size = config.image_size
        self.image_size = tuple(size) if isinstance(size, list | tuple) else (size, size)
        patch = config.patch_size
        self.patch_size = tuple(patch) if isinstance(patch, list | tuple) else (patch, patch)
        return self.model

    @torch.no_grad()
    def __call__(self, pixel_values: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``[B, C, H, W]`` student inputs -> ``[B, grid_h * grid_w, D_teacher]`` patch tokens (float32)."""
        model = self.model if self.model is not None else self.load()
        device = pixel_values.device
        if next(model.parameters()).device != device:
            model.to(device)
        x = pixel_values.float()
        if self.teacher_mean != self.student_mean or self.teacher_std != self.student_std:
            s_mean, s_std = (
                x.new_tensor(self.student_mean).view(1, -1, 1, 1),
                x.new_tensor(self.student_std).view(1, -1, 1, 1),
            )
            t_mean, t_std = (
                x.new_tensor(self.teacher_mean).view(1, -1, 1, 1),
                x.new_tensor(self.teacher_std).view(1, -1, 1, 1),
            )
            x = (x * s_std + s_mean - t_mean) / t_std
        if tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False, antialias=True)
        tokens = model(pixel_values=x).last_hidden_state.float()  # [B, prefix + h * w, D]
        h, w = self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1]
        patches = tokens[:, tokens.shape[1] - h * w :]  # [CLS] / register tokens come first
        if (h, w) != tuple(grid):
            maps = patches.transpose(1, 2).reshape(len(x), -1, h, w)
            maps = F.interpolate(maps, size=tuple(grid), mode="bilinear", align_corners=False)
            patches = maps.flatten(2).transpose(1, 2)
        return patches


class PatchTargets(nn.Module):
    """The per-patch regression targets of a MaskFeat / HPM config and their per-patch loss: the one place that
    defines each target family's layout and loss (MaskFeat and HPM both score their predictions here).

    - ``pixel``: patches in MAE's order, per-patch normalised when ``norm_pix_loss``; squared error.
    - ``hog``: :class:`HOGFeatures` per patch; squared error.
    - ``hog+pixel``: both, concatenated in that order (``[HOG | pixels]``, see :attr:`parts` and :meth:`split`);
      ``hog_loss_weight`` x HOG error + ``pixel_loss_weight`` x pixel error, each the squared error averaged over
      its own part.
    - ``features``: a frozen teacher's patch tokens (:class:`FeatureTeacher`), resized to the student's grid,
      layer-normalised per token (no affine) when ``feature_norm``; ``feature_loss`` ``l2`` (mean squared error),
      ``smooth_l1`` (torch's, beta 1.0) or ``cosine`` (1 - cosine similarity).

    Has no parameters and no state.

    Args:
        config: A MaskFeat / HPM config.
        kind: One of :data:`PATCH_TARGETS` instead of ``config.target``.
    """

    #: The parts of a composite target, in layout order, and the config field weighting each part's error.
    COMPOSITE_PARTS = {"hog+pixel": ("hog", "pixel")}
    LOSS_WEIGHTS = {"hog": "hog_loss_weight", "pixel": "pixel_loss_weight"}

    def __init__(self, config, kind: str | None = None):
        super().__init__()
        self.config = config
        self.kind = kind or config.target
        self.hog = (
            HOGFeatures(config.hog_nbins, config.hog_cell_size, getattr(config, "hog_gaussian_window", 0))
            if "hog" in self.parts
            else None
        )
        self.teacher = FeatureTeacher(config.teacher_name_or_path) if "features" in self.parts else None

    @property
    def parts(self) -> tuple[str, ...]:
        """The target's parts in layout order: ``("hog", "pixel")`` for ``hog+pixel``, else ``(kind,)``."""
        return self.COMPOSITE_PARTS.get(self.kind, (self.kind,))

    @property
    def dim(self) -> int:
        return target_dim(self.config, self.kind)

    @property
    def part_dims(self) -> tuple[int, ...]:
        """Length of each part of one patch's target vector, in layout order."""
        return tuple(target_dim(self.config, part) for part in self.parts)

    def split(self, values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``[..., dim]`` targets or predictions -> one ``[..., part_dim]`` view per part, in layout order."""
        if values.shape[-1] != self.dim:
            raise ValueError(f"Expected {self.dim} values per patch for target {self.kind!r}, got {values.shape[-1]}.")
        return tuple(values.split(self.part_dims, dim=-1))

    def join(self, *parts: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`split`: one ``[..., part_dim]`` tensor per part, in layout order -> ``[..., dim]``
        (e.g. the predictions of a model with one head per part)."""
        dims = tuple(part.shape[-1] for part in parts)
        if dims != self.part_dims:
            raise ValueError(f"Target {self.kind!r} has parts {self.parts} of sizes {self.part_dims}, got {dims}.")
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    @torch.no_grad()
    def compute_part(self, part: str, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` normalised images -> ``[B, L, part_dim]`` float32 targets of one part."""
        patch = self.config.patch_size
        if part == "hog":
            return self.hog.patch_targets(pixel_values, patch)
        if part == "pixel":
            pixels = patchify(pixel_values.float(), patch)
            return normalize_patches(pixels) if self.config.norm_pix_loss else pixels
        if part == "features":
            grid = (pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch)
            features = self.teacher(pixel_values, grid)
            return F.layer_norm(features, features.shape[-1:]) if self.config.feature_norm else features
        raise ValueError(f"Unknown target part {part!r}; target {self.kind!r} has parts {self.parts}.")

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` normalised images -> ``[B, L, dim]`` float32 targets (the parts joined)."""
        return self.join(*(self.compute_part(part, pixel_values) for part in self.parts))

    def _part_error(self, part: str, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if part == "features" and self.config.feature_loss == "cosine":
            return 1.0 - F.cosine_similarity(predictions, targets, dim=-1)
        if part == "features" and self.config.feature_loss == "smooth_l1":
            return F.smooth_l1_loss(predictions, targets, reduction="none", beta=1.0).mean(-1)
        return per_patch_mse(predictions, targets)

    def per_patch_terms(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[B, L, dim]`` predictions and targets -> ``{part: [B, L] unweighted error}``, one per part."""
        predictions, targets = predictions.float(), targets.float()
        return {
            part: self._part_error(part, pred, target)
            for part, pred, target in zip(self.parts, self.split(predictions), self.split(targets), strict=True)
        }

    def per_patch_loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``[B, L, dim]`` predictions and targets -> ``[B, L]`` loss per patch: the error of a single-part target,
        or the weighted sum of the parts' errors (``hog+pixel``: ``hog_loss_weight`` x HOG + ``pixel_loss_weight``
        x pixels)."""
        terms = self.per_patch_terms(predictions, targets)
        if len(terms) == 1:
            return next(iter(terms.values()))
        return sum(getattr(self.config, self.LOSS_WEIGHTS[part]) * error for part, error in terms.items())
