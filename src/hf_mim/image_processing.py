"""The base image processor of hf_mim: augmentation, normalisation, masks and (optionally) HOG targets."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from .masking import MASK_GENERATORS, MaskGenerator, build_mask_generator
from .modeling_utils import default_statistics, encoder_config
from .targets import HOGFeatures

__all__ = ["MaskedImageProcessor", "IMAGENET_MEAN", "IMAGENET_STD", "normalization_kwargs", "to_channel_array"]

#: ImageNet's per-channel statistics: transformers' own constants (the same objects, one source), kept under these
#: names for hf_mim's public API. Inside hf_mim, import ``transformers.image_utils.IMAGENET_DEFAULT_*`` instead.
IMAGENET_MEAN = IMAGENET_DEFAULT_MEAN
IMAGENET_STD = IMAGENET_DEFAULT_STD
_RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def _pair(name: str, value: Any, lower: float = 0.0) -> tuple[float, float]:
    if not (isinstance(value, list | tuple) and len(value) == 2) or not all(
        isinstance(v, int | float) and v > lower for v in value
    ):
        raise ValueError(f"`{name}` must be a (min, max) pair of numbers > {lower}, got {value!r}.")
    if value[0] > value[1]:
        raise ValueError(f"`{name}` must be ordered (min, max), got {value!r}.")
    return float(value[0]), float(value[1])


def _unit_scale(array: np.ndarray) -> float:
    """The divisor that brings an image array to [0, 1], by its type and bit depth: 255 for 8-bit data (and floats
    beyond 1), 65535 for 16-bit data, 1 for floats in [0, 1]; refuses ranges that could mean two things."""
    if array.dtype == np.bool_:
        return 1.0
    if array.size == 0:
        raise ValueError("Got an empty image.")
    if array.dtype == np.uint8:
        return 255.0
    low, high = float(array.min()), float(array.max())
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("Float images must be finite; this one holds NaN or inf values.")
        if low >= 0.0 and high <= 1.0:
            return 1.0  # the usual [0, 1] convention
        if low >= 0.0 and high <= 255.0:
            return 255.0  # values beyond 1 can only mean the 0..255 scale
        raise ValueError(
            f"A float image must hold values in [0, 1] (or 0..255), got the range [{low:g}, {high:g}]; "
            "it looks normalised already: undo the normalisation or pass uint8 / [0, 1] images."
        )
    if np.issubdtype(array.dtype, np.integer):
        if low < 0:
            raise ValueError(f"Integer images must be non-negative, got values down to {low:g}.")
        if array.dtype == np.uint16 or high > 255:
            if high > 65535:
                raise ValueError(f"Integer image values up to {high:g} fit neither 8 nor 16 bits: scale them first.")
            return 65535.0  # 16-bit
        return 255.0  # an 8-bit image stored in a wider type
    raise ValueError(f"Unsupported image dtype {array.dtype}.")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scales an image array to 8 bits by its type and bit depth (:func:`_unit_scale`)."""
    if array.dtype == np.uint8:
        return array
    scale = _unit_scale(array)
    return np.clip(np.rint(array.astype(np.float64) * (255.0 / scale)), 0, 255).astype(np.uint8)


def to_channel_array(image: Any, num_channels: int) -> np.ndarray:
    """Turns an image with ``num_channels`` bands into a float32 ``[H, W, num_channels]`` array in [0, 1], keeping
    its bit depth (16-bit PNG / TIFF values are not rounded to 8 bits).

    Accepts single-band PIL images (``L``, ``I;16``, ``I``, ``F``), multi-band PIL images whose band count is
    ``num_channels`` (e.g. ``RGBA`` for 4), colour images for ``num_channels=1`` (converted to grey), and
    ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` arrays and tensors.

    Raises:
        ValueError: The image has another number of channels than ``num_channels`` (both named).
    """
    if isinstance(image, PIL.Image.Image):
        bands = len(image.getbands())
        if num_channels == 1 and (bands > 1 or image.mode in ("P", "PA", "1")):
            image = image.convert("L")
        elif image.mode in ("P", "PA"):
            image = image.convert("RGBA" if num_channels == 4 else "RGB")
        image = np.asarray(image)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"`images` must be PIL images, numpy arrays or torch tensors (or lists of them), got {type(image).__name__}."
        )
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim == 3 and image.shape[-1] != num_channels and image.shape[0] == num_channels:
        image = np.moveaxis(image, 0, -1)  # channels-first -> channels-last
    if image.ndim != 3 or image.shape[-1] != num_channels:
        raise ValueError(f"The image has shape {image.shape}: {image.shape[-1] if image.ndim == 3 else '?'} "
                         f"channel(s), but the processor's `num_channels` is {num_channels} (the model's).")  # fmt: skip
    return (image.astype(np.float32) / np.float32(_unit_scale(image))).astype(np.float32)


def to_rgb_image(image: Any) -> PIL.Image.Image:
    """Turns a PIL image, an ``(H, W[, C])`` / ``(C, H, W)`` array or tensor into an 8-bit RGB PIL image.

    Grayscale, palette and RGBA inputs become RGB. Values are scaled by bit depth: 16-bit PNGs (PIL modes ``I;16``,
    ``I``) and ``uint16`` arrays by 255 / 65535, float images from ``[0, 1]`` (or, when above 1, from 0..255);
    an integer image whose values exceed 255 is read as 16-bit. Negative or otherwise ambiguous ranges are an error.
    """
    if isinstance(image, PIL.Image.Image):
        if image.mode in ("RGB", "L", "P", "RGBA", "LA", "CMYK", "YCbCr", "1", "PA", "La", "RGBa", "LAB", "HSV"):
            return image if image.mode == "RGB" else image.convert("RGB")
        image = np.asarray(image)  # I;16*, I (int32) and F (float32): scaled by their range, not saturated
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"`images` must be PIL images, numpy arrays or torch tensors (or lists of them), got {type(image).__name__}."
        )
    if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
        image = np.moveaxis(image, 0, -1)  # channels-first -> channels-last
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise ValueError(
            f"Each image array must be (H, W), (H, W, C) or (C, H, W) with C in {{1, 3, 4}}, got shape {image.shape}."
        )
    return PIL.Image.fromarray(_to_uint8(np.ascontiguousarray(image))).convert("RGB")


def normalization_kwargs(config) -> dict[str, Any]:
    """The channel count and the ``image_mean`` / ``image_std`` a model config records, as processor arguments
    (statistics only when it records them: else the processor's defaults for that channel count)."""
    values = {name: getattr(config, name, None) for name in ("image_mean", "image_std")}
    return {"num_channels": encoder_config(config).num_channels,
            **{name: list(value) for name, value in values.items() if value is not None}}  # fmt: skip


class MaskedImageProcessor(BaseImageProcessor):
    r"""Prepares images for masked image modeling.

    Turns PIL images / arrays (or lists of them) into a :class:`~transformers.BatchFeature` with

    - ``pixel_values``: float32 ``[B, 3, image_size, image_size]``, normalised;
    - ``bool_masked_pos``: bool ``[B, num_patches]`` (row-major over the patch grid) when ``mask_type`` is set;
    - ``hog_targets``: float32 ``[B, num_patches, 3 * nbins * (patch_size / cell_size)^2]`` when asked.

    Calling the processor gives deterministic inference preprocessing (resize the shorter side to
    ``image_size / crop_pct``, center-crop, normalise) and no mask, as every transformers image processor does, so a
    saved processor serves ``AutoImageProcessor`` and ``pipeline("image-feature-extraction")`` users as is.
    Training asks for its augmentation (random-resized-crop + horizontal flip) and masks explicitly:
    ``processor(images, augment=True, return_mask=True)``, or :meth:`as_transform`, the training transform. All randomness (crops, flips, masks) is drawn from torch's
    global generator, so ``torch.manual_seed``, DataLoader worker seeding and accelerate's RNG checkpoints make it
    reproducible; pass ``seed=`` to a call to fix one call's draws.

    Args:
        image_size: Output side in pixels.
        patch_size: The model's patch side (defines the mask grid and HOG patches).
        do_augment: Default for the ``augment`` call argument (False: evaluation preprocessing; training passes
            ``augment=True``).
        crop_scale: Random-resized-crop area range, as fractions of the image.
        crop_ratio: Random-resized-crop aspect-ratio range.
        flip_prob: Horizontal-flip probability during augmentation.
        crop_pct: Evaluation center-crop fraction.
        resample: PIL resampling filter name (``"bicubic"``, ``"bilinear"``, ...).
        do_normalize: Whether to normalise with ``image_mean`` / ``image_std``.
        image_mean: Per-channel mean (default: ImageNet's for 3 channels, 0.5 otherwise).
        image_std: Per-channel std (default: ImageNet's for 3 channels, 0.5 otherwise).
        num_channels: Channels of the model's input: 3 takes any image as RGB; other counts keep the image's own
            bands (grey, RGB-NIR, multispectral; 8- or 16-bit, or float arrays) and refuse another band count.
        mask_type: ``"random"``, ``"simmim"``, ``"blockwise"``, ``"square"`` or ``None`` (no mask).
        mask_kwargs: Mask generator arguments other than the grid, which is derived from image and patch size.
        return_hog_targets: Default for the ``return_hog_targets`` call argument.
        hog_nbins: HOG orientation bins.
        hog_cell_size: HOG cell side in pixels.
        hog_gaussian_window: HOG Gaussian window (0 = off).
    """

    model_input_names = ["pixel_values", "bool_masked_pos"]

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        do_augment: bool = False,
        crop_scale: Sequence[float] = (0.08, 1.0),
        crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip_prob: float = 0.5,
        crop_pct: float = 0.875,
        resample: str = "bicubic",
        do_normalize: bool = True,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        num_channels: int = 3,
        mask_type: str | None = "random",
        mask_kwargs: dict[str, Any] | None = None,
        return_hog_targets: bool = False,
        hog_nbins: int = 9,
        hog_cell_size: int = 8,
        hog_gaussian_window: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        for name, value in (("image_size", image_size), ("patch_size", patch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if image_size % patch_size:
            raise ValueError(f"`image_size` ({image_size}) must be divisible by `patch_size` ({patch_size}).")
        if resample not in _RESAMPLE:
            raise ValueError(f"`resample` must be one of {sorted(_RESAMPLE)}, got {resample!r}.")
        if mask_type is not None and mask_type not in MASK_GENERATORS:
            raise ValueError(f"`mask_type` must be one of {sorted(MASK_GENERATORS)} or None, got {mask_type!r}.")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"`flip_prob` must be in [0, 1], got {flip_prob!r}.")
        if not 0.0 < crop_pct <= 1.0:
            raise ValueError(f"`crop_pct` must be in (0, 1], got {crop_pct!r}.")
        if isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f"`num_channels` must be a positive integer, got {num_channels!r}.")
        default_mean, default_std = default_statistics(num_channels)
        image_mean = default_mean if image_mean is None else image_mean
        image_std = default_std if image_std is None else image_std
        for name, value in (("image_mean", image_mean), ("image_std", image_std)):
            if len(value) != num_channels:
                raise ValueError(f"`{name}` must have one value per channel (`num_channels`={num_channels}), got "
                                 f"{value!r}.")  # fmt: skip
        if any(s <= 0 for s in image_std):
            raise ValueError(f"`image_std` must be positive, got {image_std!r}.")
        self.image_size = image_size
        self.patch_size = patch_size
        self.do_augment = bool(do_augment)
        self.crop_scale = list(_pair("crop_scale", crop_scale))
        self.crop_ratio = list(_pair("crop_ratio", crop_ratio))
        self.flip_prob = float(flip_prob)
        self.crop_pct = float(crop_pct)
        self.resample = resample
        self.do_normalize = bool(do_normalize)
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.num_channels = num_channels
        self.mask_type = mask_type
        self.mask_kwargs = dict(mask_kwargs or {})
        self.return_hog_targets = bool(return_hog_targets)
        self.hog_nbins = hog_nbins
        self.hog_cell_size = hog_cell_size
        self.hog_gaussian_window = hog_gaussian_window
        self._hog = HOGFeatures(hog_nbins, hog_cell_size, hog_gaussian_window)
        if self.return_hog_targets and patch_size % hog_cell_size:
            raise ValueError(f"`patch_size` ({patch_size}) must be a multiple of `hog_cell_size` ({hog_cell_size}).")
        # fail now, not at the first batch, if the mask arguments do not fit the grid
        self.mask_generator(rng=0)

    # ------------------------------------------------------------------ config

    @classmethod
    def from_dict(cls, image_processor_dict: dict[str, Any], **kwargs: Any):
        """As transformers' ``from_dict``; a processor saved in training mode (``do_augment: true``, written by
        hf_mim before saved processors became inference preprocessing) loads as inference preprocessing, with a
        warning (training passes ``augment=True``)."""
        if image_processor_dict.get("do_augment") and "do_augment" not in kwargs:
            from transformers.utils import logging

            logging.get_logger(__name__).warning(
                "This image processor was saved in training mode (do_augment=True); it is loaded as deterministic "
                "inference preprocessing. Pass augment=True (and return_mask=True) to a call for training inputs."
            )
            image_processor_dict = {**image_processor_dict, "do_augment": False}
        return super().from_dict(image_processor_dict, **kwargs)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        return {k: v for k, v in output.items() if not k.startswith("_")}

    def mask_generator(self, rng: np.random.Generator | int | None = None) -> MaskGenerator | None:
        """The configured mask generator over this processor's patch grid (``None`` when ``mask_type`` is None)."""
        if self.mask_type is None:
            return None
        kwargs = dict(self.mask_kwargs)
        if self.mask_type == "random":
            kwargs["num_patches"] = self.num_patches
        elif self.mask_type == "blockwise":
            kwargs["input_size"] = self.grid_size
            if "mask_ratio" in kwargs:  # convenience: a ratio instead of a patch count
                kwargs["num_masking_patches"] = int(round(kwargs.pop("mask_ratio") * self.num_patches))
        elif self.mask_type == "simmim":
            kwargs["input_size"] = self.image_size
            kwargs["model_patch_size"] = self.patch_size
        elif self.mask_type == "square":
            kwargs["input_size"] = self.grid_size
        return build_mask_generator(self.mask_type, rng=rng, **kwargs)

    # ------------------------------------------------------------ transforms

    def _random_resized_crop_box(self, width: int, height: int, rng: np.random.Generator) -> tuple[int, ...]:
        """torchvision's RandomResizedCrop box ``(left, top, right, bottom)``: 10 tries, then a center crop."""
        area = width * height
        log_ratio = (math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(*self.crop_scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return left, top, left + w, top + h
        in_ratio = width / height
        if in_ratio < self.crop_ratio[0]:
            w, h = width, int(round(width / self.crop_ratio[0]))
        elif in_ratio > self.crop_ratio[1]:
            w, h = int(round(height * self.crop_ratio[1])), height
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
        return left, top, left + w, top + h

    def _center_crop_box(self, width: int, height: int) -> tuple[int, ...]:
        """Box that, resized to ``image_size``, equals resizing the short side to ``image_size / crop_pct`` and
        center-cropping ``image_size``."""
        short = min(width, height)
        side = short * self.crop_pct
        left, top = (width - side) / 2, (height - side) / 2
        return left, top, left + side, top + side

    def transform_image(self, image: Any, augment: bool, rng: np.random.Generator) -> np.ndarray:
        """One image to a normalised float32 ``[num_channels, image_size, image_size]`` array."""
        if self.num_channels != 3:
            return self._transform_bands(to_channel_array(image, self.num_channels), augment, rng)
        image = to_rgb_image(image)
        width, height = image.size
        if width < 1 or height < 1:
            raise ValueError(f"Got an empty image of size {width}x{height}.")
        if augment:
            box = self._random_resized_crop_box(width, height, rng)
        else:
            box = self._center_crop_box(width, height)
        size = (self.image_size, self.image_size)
        image = image.resize(size, resample=_RESAMPLE[self.resample], box=box)
        if augment and rng.random() < self.flip_prob:
            image = image.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT)
        array = np.asarray(image, dtype=np.float32) * (1.0 / 255.0)
        if self.do_normalize:
            array = (array - np.asarray(self.image_mean, np.float32)) / np.asarray(self.image_std, np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1))

    def _transform_bands(self, array: np.ndarray, augment: bool, rng: np.random.Generator) -> np.ndarray:
        """:meth:`transform_image` for any band count: the same crop, resize (each band as a float image, so 16-bit
        precision survives) and flip, drawn from ``rng`` in the same order as for RGB."""
        height, width = array.shape[:2]
        if width < 1 or height < 1:
            raise ValueError(f"Got an empty image of size {width}x{height}.")
        box = self._random_resized_crop_box(width, height, rng) if augment else self._center_crop_box(width, height)
        size = (self.image_size, self.image_size)
        bands = [np.asarray(PIL.Image.fromarray(np.ascontiguousarray(array[..., c], dtype=np.float32)).resize(
            size, resample=_RESAMPLE[self.resample], box=box)) for c in range(array.shape[-1])]  # fmt: skip
        out = np.stack(bands, axis=-1)
        if augment and rng.random() < self.flip_prob:
            out = out[:, ::-1]
        if self.do_normalize:
            out = (out - np.asarray(self.image_mean, np.float32)) / np.asarray(self.image_std, np.float32)
        return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)

    # ---------------------------------------------------------------- calls

    def preprocess(
        self,
        images: Any,
        augment: bool | None = None,
        return_hog_targets: bool | None = None,
        return_mask: bool = False,
        seed: int | None = None,
        seeds: Sequence[int] | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Processes one image or a list of images.

        Args:
            images: A PIL image / array / tensor, or a list of them.
            augment: Training augmentation (default: ``do_augment``) or deterministic evaluation preprocessing.
            return_hog_targets: Also compute ``hog_targets`` (default: the config's value).
            return_mask: Include ``bool_masked_pos`` (when a ``mask_type`` is configured); off by default, so that
                inference never masks.
            seed: Fixes this call's random draws; by default they come from torch's global generator.
            seeds: One seed per image instead: each image's crop, flip and mask depend on its seed only (what makes
                a data pipeline reproducible whatever the batching, workers or resumption point).
            return_tensors: Only ``"pt"`` (or None, which also gives torch tensors) is supported.

        Returns:
            BatchFeature with ``pixel_values`` and, as configured, ``bool_masked_pos`` and ``hog_targets``.
        """
        if kwargs:
            raise ValueError(
                f"Unexpected arguments {sorted(kwargs)}; allowed: augment, return_hog_targets, "
                "return_mask, seed, return_tensors."
            )
        if return_tensors not in (None, "pt"):
            raise ValueError(f"`return_tensors` must be 'pt' or None, got {return_tensors!r}.")
        if isinstance(images, PIL.Image.Image | np.ndarray | torch.Tensor) and not (
            isinstance(images, np.ndarray | torch.Tensor) and images.ndim == 4
        ):
            images = [images]
        if isinstance(images, np.ndarray | torch.Tensor):
            images = list(images)
        if not isinstance(images, list | tuple) or len(images) == 0:
            raise ValueError("`images` must be an image or a non-empty list of images.")
        augment = self.do_augment if augment is None else augment
        return_hog_targets = self.return_hog_targets if return_hog_targets is None else return_hog_targets
        if seeds is not None:
            if len(seeds) != len(images):
                raise ValueError(f"`seeds` must have one seed per image ({len(images)}), got {len(seeds)}.")
            rngs = [np.random.default_rng(s) for s in seeds]
        else:
            if seed is None:
                seed = int(torch.randint(0, 2**62, (1,)).item())
            rngs = [np.random.default_rng(seed)] * len(images)

        pixel_values = torch.from_numpy(
            np.stack([self.transform_image(img, augment, rng) for img, rng in zip(images, rngs)])
        )
        data: dict[str, torch.Tensor] = {"pixel_values": pixel_values}
        if return_mask and self.mask_type is not None:
            if seeds is not None:
                masks = np.stack([self.mask_generator(rng)() for rng in rngs])
            else:
                masks = self.mask_generator(rngs[0]).generate(len(images))
            data["bool_masked_pos"] = torch.from_numpy(masks)
        if return_hog_targets:
            if self.patch_size % self.hog_cell_size:
                raise ValueError(
                    f"HOG targets need `patch_size` ({self.patch_size}) to be a multiple of `hog_cell_size` "
                    f"({self.hog_cell_size})."
                )
            data["hog_targets"] = self._hog.patch_targets(pixel_values, self.patch_size)
        return BatchFeature(data=data)

    def as_transform(
        self,
        image_column: str = "image",
        label_column: str | None = None,
        augment: bool = True,
        return_hog_targets: bool | None = None,
        return_mask: bool = True,
    ) -> Callable[[dict[str, list]], dict[str, Any]]:
        """The training transform for ``datasets``: ``ds.with_transform(processor.as_transform())`` gives augmented
        images and masks; ``augment=False`` (and ``return_mask=False``) for evaluation.

        Args:
            image_column: Column holding the images.
            label_column: Optional column copied to ``labels`` (for classification fine-tuning).
            augment: Training augmentation (default) or the deterministic preprocessing.
            return_hog_targets: See :meth:`preprocess`.
            return_mask: Include ``bool_masked_pos`` when a ``mask_type`` is configured (default).

        Returns:
            A function mapping a batch dict to ``pixel_values`` / ``bool_masked_pos`` / ``hog_targets`` /
            ``labels`` (other columns are dropped), which a torch ``DataLoader`` collates as is.
        """

        def transform(batch: dict[str, list]) -> dict[str, Any]:
            if image_column not in batch:
                raise ValueError(f"`image_column` {image_column!r} is not in the batch; columns: {sorted(batch)}.")
            out = dict(self.preprocess(batch[image_column], augment=augment, return_hog_targets=return_hog_targets,
                                       return_mask=return_mask))  # fmt: skip
            if label_column is not None:
                if label_column not in batch:
                    raise ValueError(f"`label_column` {label_column!r} is not in the batch; columns: {sorted(batch)}.")
                out["labels"] = torch.as_tensor(batch[label_column])
            return out

        return transform
