"""SimMIM image processor: the paper's light augmentation and coarse-grid random masking."""

from __future__ import annotations

from typing import Any, ClassVar

from ...image_processing import MaskedImageProcessor, normalization_kwargs


class SimMIMImageProcessor(MaskedImageProcessor):
    """SimMIM defaults: 192 px (Swin-B), random-resized-crop scale (0.67, 1.0), ratio (3/4, 4/3), horizontal flip,
    ImageNet mean/std, and :class:`~hf_mim.masking.SimMIMMaskGenerator` masking 60% of 32 px cells over the
    model's patch grid."""

    #: The paper's settings; explicit arguments (and saved configs) override them.
    PAPER_DEFAULTS: ClassVar[dict[str, Any]] = {
        "image_size": 192,
        "patch_size": 4,
        "crop_scale": (0.67, 1.0),
        "crop_ratio": (3 / 4, 4 / 3),
        "resample": "bilinear",
        "mask_type": "simmim",
        "mask_kwargs": {"mask_patch_size": 32, "mask_ratio": 0.6},
    }

    def __init__(self, **kwargs: Any):
        super().__init__(**{**self.PAPER_DEFAULTS, **kwargs})

    @classmethod
    def from_model_config(cls, config, **kwargs: Any) -> SimMIMImageProcessor:
        """A processor matching a :class:`SimMIMConfig` (image and patch size, masking cells and ratio)."""
        strategy = getattr(config, "mask_strategy", "random")
        if strategy == "square":
            mask = {"mask_type": "square", "mask_kwargs": {"mask_ratio": config.mask_ratio}}
        elif strategy == "blockwise":  # BEiT's blocks of at least 16 patches (fewer on tiny grids)
            masked = round(config.mask_ratio * (config.image_size // config.patch_size) ** 2)
            mask = {"mask_type": "blockwise", "mask_kwargs": {"mask_ratio": config.mask_ratio,
                                                             "min_num_patches": max(1, min(16, masked // 4))}}  # fmt: skip
        else:
            mask = {"mask_type": "simmim",
                    "mask_kwargs": {"mask_patch_size": config.mask_patch_size, "mask_ratio": config.mask_ratio}}  # fmt: skip
        defaults = {"image_size": config.image_size, "patch_size": config.patch_size, **mask}
        return cls(**{**defaults, **normalization_kwargs(config), **kwargs})
