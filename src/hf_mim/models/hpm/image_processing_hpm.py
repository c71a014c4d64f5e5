"""HPM / MAE image processor."""

from __future__ import annotations

from typing import Any

from ...image_processing import MaskedImageProcessor


class HPMImageProcessor(MaskedImageProcessor):
    """MAE augmentation: random-resized-crop scale (0.2, 1.0), bicubic, horizontal flip, ImageNet mean/std.

    With hard patches mining the model draws its own masks from the teacher, so by default no mask is produced;
    for plain MAE (``from_model_config`` of a config with mining off) a random 75% mask is.
    """

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        crop_scale=(0.2, 1.0),
        resample: str = "bicubic",
        mask_type: str | None = None,
        mask_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            image_size=image_size,
            patch_size=patch_size,
            crop_scale=crop_scale,
            resample=resample,
            mask_type=mask_type,
            mask_kwargs=mask_kwargs if mask_kwargs is not None else {"mask_ratio": 0.75},
            **kwargs,
        )

    @classmethod
    def from_model_config(cls, config, **kwargs: Any) -> HPMImageProcessor:
        defaults = {
            "image_size": config.image_size,
            "patch_size": config.patch_size,
            "mask_type": None if config.hard_patches_mining else "random",
            "mask_kwargs": {"mask_ratio": config.mask_ratio},
        }
        return cls(**{**defaults, **kwargs})
