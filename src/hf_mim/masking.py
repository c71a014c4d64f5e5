"""Mask generators for masked image modeling.

Every generator returns a boolean NumPy array of shape ``(num_patches,)`` laid out row-major over the model's
patch grid (``True`` = masked) when called, and ``(batch_size, num_patches)`` from :meth:`generate`. They draw
from a ``numpy.random.Generator`` so that a seed reproduces the same masks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "MaskGenerator",
    "RandomMaskGenerator",
    "SimMIMMaskGenerator",
    "BlockwiseMaskGenerator",
    "SquareMaskGenerator",
    "MASK_GENERATORS",
    "build_mask_generator",
]


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, int | np.integer):
        return np.random.default_rng(rng)
    raise ValueError(f"`rng` must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}.")


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_ratio(name: str, value: Any, allow_one: bool = False) -> float:
    upper = "1]" if allow_one else "1)"
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0.0
    ok = ok and (value <= 1.0 if allow_one else value < 1.0)
    if not ok:
        raise ValueError(f"`{name}` must be a float in [0, {upper}, got {value!r}.")
    return float(value)


def _as_hw(name: str, value: Any) -> tuple[int, int]:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError(f"`{name}` must be an int or a (height, width) pair, got {value!r}.")
        return _check_int(name, value[0]), _check_int(name, value[1])
    size = _check_int(name, value)
    return size, size


class MaskGenerator:
    """Base class: subclasses implement :meth:`__call__` for one image."""

    #: Name used in configs (``mask_type``) and by :func:`build_mask_generator`.
    mask_type: str = ""

    def __init__(self, rng: np.random.Generator | int | None = None):
        self.rng = _as_rng(rng)

    @property
    def num_patches(self) -> int:
        raise NotImplementedError

    def __call__(self) -> np.ndarray:
        raise NotImplementedError

    def generate(self, batch_size: int) -> np.ndarray:
        """Draws ``batch_size`` independent masks.

        Returns:
            Boolean array of shape ``(batch_size, num_patches)``.
        """
        batch_size = _check_int("batch_size", batch_size)
        return np.stack([self() for _ in range(batch_size)])

    def to_dict(self) -> dict[str, Any]:
        """The constructor arguments (without ``rng``), so that a processor config can rebuild the generator."""
        raise NotImplementedError


class RandomMaskGenerator(MaskGenerator):
    """MAE-style uniform random masking.

    MAE keeps ``int(num_patches * (1 - mask_ratio))`` patches, so exactly
    ``num_patches - int(num_patches * (1 - mask_ratio))`` patches are masked.

    Args:
        num_patches: Number of patches of the model's grid.
        mask_ratio: Fraction of patches to mask, in ``[0, 1)``.
        rng: Generator or seed.
    """

    mask_type = "random"

    def __init__(self, num_patches: int, mask_ratio: float = 0.75, rng: np.random.Generator | int | None = None):
        super().__init__(rng)
        self._num_patches = _check_int("num_patches", num_patches)
        self.mask_ratio = _check_ratio("mask_ratio", mask_ratio)
        self.num_masked = self._num_patches - int(self._num_patches * (1 - self.mask_ratio))

    @property
    def num_patches(self) -> int:
        return self._num_patches

    def __call__(self) -> np.ndarray:
        mask = np.zeros(self._num_patches, dtype=bool)
        mask[self.rng.permutation(self._num_patches)[: self.num_masked]] = True
        return mask

    def generate(self, batch_size: int) -> np.ndarray:
        batch_size = _check_int("batch_size", batch_size)
        # argsort of uniform noise gives an independent permutation per row in one vectorised call
        ranks = np.argsort(self.rng.random((batch_size, self._num_patches)), axis=1)
        mask = np.zeros((batch_size, self._num_patches), dtype=bool)
        np.put_along_axis(mask, ranks[:, : self.num_masked], True, axis=1)
        return mask

    def to_dict(self) -> dict[str, Any]:
        return {"num_patches": self._num_patches, "mask_ratio": self.mask_ratio}


class SimMIMMaskGenerator(MaskGenerator):
    """SimMIM masking: random cells of a coarse grid, upsampled to the model's patch grid.

    ``ceil(coarse_patches * mask_ratio)`` cells of the ``input_size // mask_patch_size`` grid are masked; each
    covers ``(mask_patch_size // model_patch_size) ** 2`` model patches.

    Args:
        input_size: Image side in pixels (int or ``(height, width)``).
        mask_patch_size: Side of a masking cell in pixels; must divide ``input_size``.
        model_patch_size: The model's patch side in pixels; must divide ``mask_patch_size``.
        mask_ratio: Fraction of cells to mask, in ``[0, 1)``.
        rng: Generator or seed.
    """

    mask_type = "simmim"

    def __init__(
        self,
        input_size: int | tuple[int, int] = 192,
        mask_patch_size: int = 32,
        model_patch_size: int = 4,
        mask_ratio: float = 0.6,
        rng: np.random.Generator | int | None = None,
    ):
        super().__init__(rng)
        self.input_size = _as_hw("input_size", input_size)
        self.mask_patch_size = _check_int("mask_patch_size", mask_patch_size)
        self.model_patch_size = _check_int("model_patch_size", model_patch_size)
        self.mask_ratio = _check_ratio("mask_ratio", mask_ratio)
        for side in self.input_size:
            if side % self.mask_patch_size:
                raise ValueError(
                    f"`input_size` ({side}) must be divisible by `mask_patch_size` ({self.mask_patch_size})."
                )
        if self.mask_patch_size % self.model_patch_size:
            raise ValueError(
                f"`mask_patch_size` ({self.mask_patch_size}) must be divisible by `model_patch_size` "
                f"({self.model_patch_size})."
            )
        self.coarse_grid = (self.input_size[0] // self.mask_patch_size, self.input_size[1] // self.mask_patch_size)
        self.scale = self.mask_patch_size // self.model_patch_size
        self.coarse_patches = self.coarse_grid[0] * self.coarse_grid[1]
        self.num_masked_cells = int(math.ceil(self.coarse_patches * self.mask_ratio))
        if self.hides_every_cell(self.input_size, self.mask_patch_size, self.mask_ratio):
            raise ValueError(
                f"`mask_patch_size` ({self.mask_patch_size}) and `mask_ratio` ({self.mask_ratio}) mask all "
                f"{self.coarse_patches} cell(s) of a {self.input_size[0]}x{self.input_size[1]} input, leaving the "
                "encoder nothing to see; use a smaller `mask_patch_size` or `mask_ratio`."
            )

    @staticmethod
    def hides_every_cell(input_size: int | tuple[int, int], mask_patch_size: int, mask_ratio: float) -> bool:
        """Whether ``ceil(cells * mask_ratio)`` is every cell of the grid (nothing left visible); such masks are
        refused by the constructor."""
        height, width = _as_hw("input_size", input_size)
        cells = (height // mask_patch_size) * (width // mask_patch_size)
        return math.ceil(cells * mask_ratio) >= cells

    @property
    def num_patches(self) -> int:
        return self.coarse_patches * self.scale**2

    def __call__(self) -> np.ndarray:
        cells = np.zeros(self.coarse_patches, dtype=bool)
        cells[self.rng.permutation(self.coarse_patches)[: self.num_masked_cells]] = True
        cells = cells.reshape(self.coarse_grid)
        return cells.repeat(self.scale, axis=0).repeat(self.scale, axis=1).reshape(-1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": list(self.input_size),
            "mask_patch_size": self.mask_patch_size,
            "model_patch_size": self.model_patch_size,
            "mask_ratio": self.mask_ratio,
        }


class BlockwiseMaskGenerator(MaskGenerator):
    """BEiT / MaskFeat block-wise masking.

    Rectangular blocks of at least ``min_num_patches`` patches with a log-uniform aspect ratio are placed at random
    (up to 10 placement attempts per block) until ``num_masking_patches`` patches are masked. The reference
    implementation stops early when no block fits; this one then keeps adding smaller blocks and, on a nearly full
    grid, single patches, so that every mask has exactly ``num_masking_patches`` patches.

    Args:
        input_size: Patch grid side (int or ``(height, width)``), e.g. 14 for 224 px images and 16 px patches.
        num_masking_patches: Exact number of masked patches per mask.
        min_num_patches: Smallest block area.
        max_num_patches: Largest block area (defaults to ``num_masking_patches``).
        min_aspect: Smallest block aspect ratio (height / width).
        max_aspect: Largest block aspect ratio (defaults to ``1 / min_aspect``).
        rng: Generator or seed.
    """

    mask_type = "blockwise"

    def __init__(
        self,
        input_size: int | tuple[int, int] = 14,
        num_masking_patches: int = 78,
        min_num_patches: int = 15,
        max_num_patches: int | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = 1 / 0.3,
        rng: np.random.Generator | int | None = None,
    ):
        super().__init__(rng)
        self.height, self.width = _as_hw("input_size", input_size)
        total = self.height * self.width
        self.num_masking_patches = _check_int("num_masking_patches", num_masking_patches, minimum=0)
        if self.num_masking_patches > total:
            raise ValueError(
                f"`num_masking_patches` ({num_masking_patches}) must be <= the number of patches ({total})."
            )
        self.min_num_patches = _check_int("min_num_patches", min_num_patches)
        self.max_num_patches = (
            self.num_masking_patches
            if max_num_patches is None
            else _check_int("max_num_patches", max_num_patches, minimum=self.min_num_patches)
        )
        if not (isinstance(min_aspect, int | float) and min_aspect > 0):
            raise ValueError(f"`min_aspect` must be a positive number, got {min_aspect!r}.")
        max_aspect = 1.0 / min_aspect if max_aspect is None else max_aspect
        if not (isinstance(max_aspect, int | float) and max_aspect >= min_aspect):
            raise ValueError(f"`max_aspect` must be a number >= min_aspect ({min_aspect}), got {max_aspect!r}.")
        self.min_aspect, self.max_aspect = float(min_aspect), float(max_aspect)
        self.log_aspect_ratio = (math.log(self.min_aspect), math.log(self.max_aspect))

    @property
    def num_patches(self) -> int:
        return self.height * self.width

    def _place_block(self, mask: np.ndarray, min_patches: int, max_patches: int) -> int:
        """Tries up to 10 times to mask one block adding 1..max_patches new patches; returns how many it added."""
        for _ in range(10):
            target_area = self.rng.uniform(min_patches, max_patches)
            aspect_ratio = math.exp(self.rng.uniform(*self.log_aspect_ratio))
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if 0 < w < self.width and 0 < h < self.height:
                top = int(self.rng.integers(0, self.height - h + 1))
                left = int(self.rng.integers(0, self.width - w + 1))
                block = mask[top : top + h, left : left + w]
                new = h * w - int(block.sum())
                if 0 < new <= max_patches:
                    block[:] = True
                    return new
        return 0

    def __call__(self) -> np.ndarray:
        mask = np.zeros((self.height, self.width), dtype=bool)
        count = 0
        min_patches = self.min_num_patches
        stalls = 0
        while count < self.num_masking_patches:
            budget = min(self.num_masking_patches - count, self.max_num_patches)
            added = self._place_block(mask, min(min_patches, budget), budget)
            count += added
            if added == 0:
                # The reference stops here and returns fewer patches; shrink the blocks instead.
                stalls += 1
                min_patches = 1
                if stalls > 3:
                    break
        if count < self.num_masking_patches:
            free = np.flatnonzero(~mask)
            pick = self.rng.choice(free, size=self.num_masking_patches - count, replace=False)
            mask.reshape(-1)[pick] = True
        return mask.reshape(-1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": [self.height, self.width],
            "num_masking_patches": self.num_masking_patches,
            "min_num_patches": self.min_num_patches,
            "max_num_patches": self.max_num_patches,
            "min_aspect": self.min_aspect,
            "max_aspect": self.max_aspect,
        }


class SquareMaskGenerator(MaskGenerator):
    """One random square per image (SimMIM's "square" masking ablation): side ``round(sqrt(mask_ratio * L))``
    patches of the ``input_size`` patch grid, placed uniformly.

    Args:
        input_size: Patch grid side (int or ``(height, width)``).
        mask_ratio: Fraction of the grid's area the square covers, in ``(0, 1)``.
        rng: Generator or seed.
    """

    mask_type = "square"

    def __init__(
        self,
        input_size: int | tuple[int, int] = 14,
        mask_ratio: float = 0.6,
        rng: np.random.Generator | int | None = None,
    ):
        super().__init__(rng)
        self.height, self.width = _as_hw("input_size", input_size)
        self.mask_ratio = _check_ratio("mask_ratio", mask_ratio)
        side = int(round(math.sqrt(self.mask_ratio * self.height * self.width)))
        self.side = max(1, min(side, self.height, self.width))

    @property
    def num_patches(self) -> int:
        return self.height * self.width

    def __call__(self) -> np.ndarray:
        mask = np.zeros((self.height, self.width), dtype=bool)
        top = int(self.rng.integers(0, self.height - self.side + 1))
        left = int(self.rng.integers(0, self.width - self.side + 1))
        mask[top : top + self.side, left : left + self.side] = True
        return mask.reshape(-1)

    def to_dict(self) -> dict[str, Any]:
        return {"input_size": [self.height, self.width], "mask_ratio": self.mask_ratio}


MASK_GENERATORS: dict[str, type[MaskGenerator]] = {
    cls.mask_type: cls
    for cls in (RandomMaskGenerator, SimMIMMaskGenerator, BlockwiseMaskGenerator, SquareMaskGenerator)
}


def build_mask_generator(mask_type: str, rng: np.random.Generator | int | None = None, **kwargs: Any) -> MaskGenerator:
    """Builds a generator from its config name (``"random"``, ``"simmim"``, ``"blockwise"`` or ``"square"``) and
    arguments."""
    if mask_type not in MASK_GENERATORS:
        raise ValueError(f"`mask_type` must be one of {sorted(MASK_GENERATORS)}, got {mask_type!r}.")
    try:
        return MASK_GENERATORS[mask_type](rng=rng, **kwargs)
    except TypeError as err:
        raise ValueError(f"Invalid arguments for mask_type={mask_type!r}: {err}") from err
