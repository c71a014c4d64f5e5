"""The papers' fine-tuning augmentation, batched on the training device with kornia: RandAugment, random erasing,
and mixup / cutmix with soft targets; plus the soft-target cross-entropy that goes with them.

The official code uses timm's per-image PIL pipeline (``create_transform(auto_augment="rand-m9-mstd0.5-inc1",
re_prob=0.25)`` + ``Mixup``). timm needs torchvision, which does not run on our machines; kornia is pure torch,
maintained, and runs the same operations on whole batches wherever the model runs. Differences that remain are listed
in :data:`hf_mim.training.recipes.DEVIATIONS`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FinetuneAugmentation", "parse_rand_augment", "soft_target_cross_entropy", "RandAugmentSpec"]

#: timm's RandAugment operations (timm/data/auto_augment.py _RAND_INCREASING_TRANSFORMS) with their ranges at full
#: magnitude, in kornia's policy format: rotate 30 degrees, shear 0.3, translate 45% of the side, enhance 0.1..1.9,
#: posterize 4..8 bits, solarize, solarize-add 110/255.
TIMM_POLICY = [
    [("auto_contrast", 0, 1)],
    [("equalize", 0, 1)],
    [("invert", 0, 1)],
    [("rotate", -30.0, 30.0)],
    [("posterize", 4.0, 8.0)],
    [("solarize", 0.0, 1.0)],
    [("solarize_add", 0.0, 0.43)],
    [("color", 0.1, 1.9)],
    [("contrast", 0.1, 1.9)],
    [("brightness", 0.1, 1.9)],
    [("sharpness", 0.1, 1.9)],
    [("shear_x", -0.3, 0.3)],
    [("shear_y", -0.3, 0.3)],
    [("translate_x", -0.45, 0.45)],
    [("translate_y", -0.45, 0.45)],
]


@dataclass(frozen=True)
class RandAugmentSpec:
    """A timm RandAugment name (``rand-m9-mstd0.5-inc1``): ``num_ops`` operations per image at magnitude
    ``magnitude`` of 10, magnitude noise ``magnitude_std``, increasing-severity variants when ``increasing``."""

    num_ops: int = 2
    magnitude: float = 9.0
    magnitude_std: float = 0.0
    increasing: bool = False

    @property
    def kornia_magnitude(self) -> int:
        """kornia's magnitude scale is (0, 30): timm's m of 10 at the same share of the range."""
        return min(29, max(1, round(self.magnitude * 3)))


def parse_rand_augment(name: str) -> RandAugmentSpec:
    """Parses timm's RandAugment string (``rand-m9-mstd0.5-inc1``, ``rand-m7-n3``), with timm's defaults (2 ops)."""
    parts = name.split("-")
    if not parts or parts[0] != "rand":
        raise ValueError(
            f"`rand_augment` must be a timm RandAugment string like 'rand-m9-mstd0.5-inc1', got {name!r}."
        )
    values = {"num_ops": 2, "magnitude": 9.0, "magnitude_std": 0.0, "increasing": False}
    keys = {"m": "magnitude", "n": "num_ops", "mstd": "magnitude_std", "inc": "increasing"}
    for part in parts[1:]:
        match = re.fullmatch(r"(mstd|inc|m|n)([0-9.]+)", part)
        if match is None:
            raise ValueError(f"Unknown RandAugment option {part!r} in {name!r}; known: m<magnitude>, n<ops>, "
                             "mstd<std>, inc<0|1>.")  # fmt: skip
        key, value = keys[match.group(1)], float(match.group(2))
        values[key] = int(value) if key == "num_ops" else bool(value) if key == "increasing" else value
    return RandAugmentSpec(**values)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0):
    """Cross-entropy of ``logits [B, C]`` against class ids ``[B]`` or probabilities ``[B, C]`` (mixup / cutmix),
    with label smoothing applied once: ``targets * (1 - eps) + eps / C``, which equals timm's Mixup of smoothed
    one-hot targets followed by its SoftTargetCrossEntropy."""
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


class FinetuneAugmentation(nn.Module):
    """RandAugment -> random erasing -> mixup / cutmix on a normalised batch, in timm's order.

    Args:
        num_classes: Classes of the soft targets.
        image_mean, image_std: The normalisation of ``pixel_values`` (RandAugment works on [0, 1] images).
        rand_augment: timm RandAugment string, or None for none.
        random_erasing_prob: Probability of erasing one random rectangle (2%..33% of the image) per image.
        mixup_alpha, cutmix_alpha: Beta parameters (0 disables that one).
        mixup_prob: Probability that a batch is mixed at all.
        mixup_switch_prob: Probability of cutmix instead of mixup when both are on.
        rand_augment_group: Images that share one draw of operations (kornia draws per call; 1 = per image, as
            timm).
    """

    def __init__(
        self,
        num_classes: int,
        image_mean: Sequence[float],
        image_std: Sequence[float],
        rand_augment: str | None = "rand-m9-mstd0.5-inc1",
        random_erasing_prob: float = 0.25,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        mixup_prob: float = 1.0,
        mixup_switch_prob: float = 0.5,
        rand_augment_group: int = 1,
    ):
        super().__init__()
        import kornia.augmentation as K
        from kornia.augmentation.auto import RandAugment

        for name, value in (("random_erasing_prob", random_erasing_prob), ("mixup_prob", mixup_prob),
                            ("mixup_switch_prob", mixup_switch_prob)):  # fmt: skip
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {value}.")
        if mixup_alpha < 0 or cutmix_alpha < 0 or num_classes < 1 or rand_augment_group < 1:
            raise ValueError("`mixup_alpha` and `cutmix_alpha` must be >= 0, `num_classes` and `rand_augment_group` "
                             f">= 1; got {mixup_alpha}, {cutmix_alpha}, {num_classes}, {rand_augment_group}.")  # fmt: skip
        self.num_classes = num_classes
        self.register_buffer("mean", torch.tensor(image_mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(image_std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.spec = parse_rand_augment(rand_augment) if rand_augment else None
        self.rand_augment = (
            RandAugment(n=self.spec.num_ops, m=self.spec.kornia_magnitude, policy=TIMM_POLICY) if self.spec else None
        )
        self.rand_augment_group = rand_augment_group
        self.erasing = K.RandomErasing(p=random_erasing_prob, value=0.0) if random_erasing_prob > 0 else None
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.mixup_prob, self.mixup_switch_prob = mixup_prob, mixup_switch_prob
        self._mixup_class, self._cutmix_class = K.RandomMixUpV2, K.RandomCutMixV2

    def describe(self) -> dict:
        """The operations and their parameters (``--dry_run``)."""
        return {
            "library": "kornia",
            "rand_augment": None if self.spec is None else {
                "num_ops": self.spec.num_ops, "magnitude_of_10": self.spec.magnitude,
                "kornia_magnitude_of_30": self.spec.kornia_magnitude, "policy": [op[0] for op in TIMM_POLICY],
                "images_per_draw": self.rand_augment_group,
            },
            "random_erasing": None if self.erasing is None else {
                "prob": self.erasing.p, "scale": [0.02, 0.33], "ratio": [0.3, 3.3], "fill": 0.0,
            },
            "mixup_alpha": self.mixup_alpha, "cutmix_alpha": self.cutmix_alpha, "mix_prob": self.mixup_prob,
            "switch_prob": self.mixup_switch_prob,
        }  # fmt: skip

    def _rand_augment(self, pixel_values: torch.Tensor) -> torch.Tensor:
        images = (pixel_values.float() * self.std + self.mean).clamp(0, 1)  # [B, C, H, W] in [0, 1]
        group = self.rand_augment_group
        images = torch.cat([self.rand_augment(images[i : i + group]) for i in range(0, len(images), group)])
        return (images.clamp(0, 1) - self.mean) / self.std

    def mix(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup or cutmix (timm's Mixup switching) -> ``(images, soft targets [B, num_classes])``."""
        one_hot = F.one_hot(labels.long(), self.num_classes).float()  # [B, C]
        use_mix = (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and float(torch.rand(())) < self.mixup_prob
        if not use_mix:
            return pixel_values, one_hot
        cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or float(torch.rand(())) < self.mixup_switch_prob)
        if cutmix:
            op = self._cutmix_class(num_mix=1, beta=self.cutmix_alpha, p=1.0, data_keys=["input", "class"],
                                    use_correct_lambda=True)  # fmt: skip
            mixed, info = op(pixel_values, labels)
            info = info[0]  # [B, 3]: (label, partner label, share of the image's own area)
            keep = info[:, 2:3].to(one_hot.dtype)
        else:
            lam = float(torch.distributions.Beta(self.mixup_alpha, self.mixup_alpha).sample())
            op = self._mixup_class(lambda_val=(lam, lam), p=1.0, data_keys=["input", "class"])
            mixed, info = op(pixel_values, labels)  # info [B, 3]: (label, partner label, partner's weight)
            keep = 1.0 - info[:, 2:3].to(one_hot.dtype)
        partner = F.one_hot(info[:, 1].long(), self.num_classes).to(one_hot.dtype)
        return mixed, keep * one_hot + (1.0 - keep) * partner

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``pixel_values [B, C, H, W]`` (normalised), ``labels [B]`` -> augmented images and soft targets
        ``[B, num_classes]``."""
        dtype = pixel_values.dtype
        x = pixel_values.float()
        if self.rand_augment is not None:
            x = self._rand_augment(x)
        if self.erasing is not None:
            x = self.erasing(x)
        x, targets = self.mix(x, labels)
        return x.to(dtype), targets
