"""HPM / MAE image processor."""

from __future__ import annotations

from typing import Any, ClassVar

from ...image_processing import MaskedImageProcessor, normalization_kwargs


class HPMImageProcessor(MaskedImageProcessor):
    """MAE augmentation: random-resized-crop scale (0.2, 1.0), bicubic, horizontal flip, ImageNet mean/std.

    With hard patches mining the model draws its own masks from the teacher, so by default no mask is produced;
    for plain MAE (``from_model_config`` of a config with mining off) a random 75% mask is.
    """

    #: MAE's settings; explicit arguments (and saved configs) override them.
    PAPER_DEFAULTS: ClassVar[dict[str, Any]] = {
        "image_size": 224,
        "patch_size": 16,
        "crop_scale": (0.2, 1.0),
        "resample": "bicubic",
        "mask_type": None,
        "mask_kwargs": {"mask_ratio": 0.75},
    }

    def __init__(self, **kwargs: Any):
        super().__init__(**{**self.PAPER_DEFAULTS, **kwargs})

    @classmethod
    def from_model_config(cls, config, **kwargs: Any) -> HPMImageProcessor:
        defaults = {
            "image_size": config.image_size,
            "patch_size": config.patch_size,
            "mask_type": None if config.hard_patches_mining else "random",
            "mask_kwargs": {"mask_ratio": config.mask_ratio},
        }
        return cls(**{**defaults, **normalization_kwargs(config), **kwargs})
