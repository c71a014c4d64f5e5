"""MaskFeat image processor: the paper's augmentation and block-wise masking."""

from __future__ import annotations

from typing import Any, ClassVar

from ...image_processing import MaskedImageProcessor, normalization_kwargs


class MaskFeatImageProcessor(MaskedImageProcessor):
    """MaskFeat defaults: 224 px, random-resized-crop scale (0.5, 1.0), ratio (3/4, 4/3), bicubic, horizontal
    flip, ImageNet mean/std, block-wise masking of 40% of the patches (78 of 196) with blocks of >= 15 patches.

    The mask size is given as a ratio so that other image / patch sizes keep 40%. ``hog_targets`` can be computed
    here (``return_hog_targets=True``), though :class:`MaskFeatForPreTraining` computes them on its own device
    when they are not passed, which is usually faster.
    """

    #: The paper's settings; explicit arguments (and saved configs) override them.
    PAPER_DEFAULTS: ClassVar[dict[str, Any]] = {
        "image_size": 224,
        "patch_size": 16,
        "crop_scale": (0.5, 1.0),
        "crop_ratio": (3 / 4, 4 / 3),
        "resample": "bicubic",
        "mask_type": "blockwise",
        "mask_kwargs": {"mask_ratio": 0.4, "min_num_patches": 15},
    }

    def __init__(self, **kwargs: Any):
        super().__init__(**{**self.PAPER_DEFAULTS, **kwargs})

    @classmethod
    def from_model_config(cls, config, **kwargs: Any) -> MaskFeatImageProcessor:
        """A processor matching a :class:`MaskFeatConfig` (image and patch size, HOG parameters, mask ratio)."""
        defaults = {
            "image_size": config.image_size,
            "patch_size": config.patch_size,
            "mask_kwargs": {"mask_ratio": config.mask_ratio, "min_num_patches": config.mask_min_num_patches},
            "hog_nbins": config.hog_nbins,
            "hog_cell_size": config.hog_cell_size,
            "hog_gaussian_window": config.hog_gaussian_window,
        }
        return cls(**{**defaults, **normalization_kwargs(config), **kwargs})
