"""The fine-tuning augmentation and its loss, against independent computations written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_mim.training.augmentation import FinetuneAugmentation, parse_rand_augment, soft_target_cross_entropy


def timm_style_loss(logits, labels_a, labels_b, lam, smoothing, num_classes):
    """timm's Mixup targets (smoothed one-hots mixed with lam) + SoftTargetCrossEntropy, in NumPy."""
    off, on = smoothing / num_classes, 1.0 - smoothing + smoothing / num_classes
    y1 = np.full((len(labels_a), num_classes), off)
    y1[np.arange(len(labels_a)), labels_a] = on
    y2 = np.full((len(labels_b), num_classes), off)
    y2[np.arange(len(labels_b)), labels_b] = on
    target = lam * y1 + (1 - lam) * y2
    z = logits - logits.max(-1, keepdims=True)
    log_softmax = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float((-target * log_softmax).sum(-1).mean())


def test_soft_target_cross_entropy_equals_timm_mixup_with_smoothing():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5))
    a, b, lam = rng.integers(0, 5, 6), rng.integers(0, 5, 6), 0.3
    soft = lam * np.eye(5)[a] + (1 - lam) * np.eye(5)[b]
    ours = soft_target_cross_entropy(torch.tensor(logits), torch.tensor(soft), label_smoothing=0.1)
    assert float(ours) == pytest.approx(timm_style_loss(logits, a, b, lam, 0.1, 5), rel=1e-6)
    # hard labels: plain label-smoothed cross-entropy, smoothing applied once
    hard = soft_target_cross_entropy(torch.tensor(logits), torch.tensor(a), label_smoothing=0.1)
    assert float(hard) == pytest.approx(timm_style_loss(logits, a, a, 1.0, 0.1, 5), rel=1e-6)


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mixed_targets_match_the_mixed_pixels(kind):
    """Images filled with their class id: a mixed image's mean pixel is the target-weighted mean class id, whatever
    the partner, the mixing weight or the box (mixup: blend; cutmix: area)."""
    torch.manual_seed(0)
    aug = FinetuneAugmentation(
        8, [0.0] * 3, [1.0] * 3, rand_augment=None, random_erasing_prob=0.0,
        mixup_alpha=0.8 if kind == "mixup" else 0.0, cutmix_alpha=1.0 if kind == "cutmix" else 0.0,
    )  # fmt: skip
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    images = labels.float().view(-1, 1, 1, 1).expand(-1, 3, 16, 16).contiguous()
    for _ in range(5):
        mixed, targets = aug(images, labels)
        torch.testing.assert_close(targets.sum(-1), torch.ones(8))
        expected = (targets * torch.arange(8.0)).sum(-1)
        torch.testing.assert_close(mixed.mean(dim=(1, 2, 3)), expected, atol=1e-5, rtol=1e-5)
        assert (targets.max(-1).values < 1).any()  # something was mixed


def test_no_mixing_gives_one_hot_targets():
    aug = FinetuneAugmentation(4, [0.0] * 3, [1.0] * 3, rand_augment=None, random_erasing_prob=0.0,
                               mixup_alpha=0.0, cutmix_alpha=0.0)  # fmt: skip
    x, y = torch.rand(3, 3, 8, 8), torch.tensor([3, 0, 1])
    out, targets = aug(x, y)
    assert torch.equal(out, x) and torch.equal(targets, torch.eye(4)[y])


def test_rand_augment_changes_images_and_keeps_the_normalised_range():
    torch.manual_seed(0)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    aug = FinetuneAugmentation(2, mean, std, random_erasing_prob=0.0, mixup_alpha=0.0, cutmix_alpha=0.0)
    images01 = torch.rand(8, 3, 32, 32)
    x = (images01 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    out, _ = aug(x, torch.zeros(8, dtype=torch.long))
    back = out * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert back.min() >= -1e-5 and back.max() <= 1 + 1e-5
    assert (out - x).abs().flatten(1).max(-1).values.gt(1e-3).sum() >= 6  # (almost) every image was changed


def test_random_erasing_erases_a_rectangle_in_a_quarter_of_the_images():
    torch.manual_seed(0)
    aug = FinetuneAugmentation(2, [0.0] * 3, [1.0] * 3, rand_augment=None, random_erasing_prob=0.25,
                               mixup_alpha=0.0, cutmix_alpha=0.0)  # fmt: skip
    x = torch.ones(400, 3, 32, 32)
    out, _ = aug(x, torch.zeros(400, dtype=torch.long))
    erased = (out == 0).flatten(1).float().mean(-1)
    share = float((erased > 0).float().mean())
    assert 0.18 < share < 0.32
    assert erased[erased > 0].min() >= 0.015 and erased.max() <= 0.34


def test_rand_augment_names_parse_like_timm():
    spec = parse_rand_augment("rand-m9-mstd0.5-inc1")
    assert (spec.num_ops, spec.magnitude, spec.magnitude_std, spec.increasing) == (2, 9.0, 0.5, True)
    assert spec.kornia_magnitude == 27
    assert parse_rand_augment("rand-m7-n3").num_ops == 3
    with pytest.raises(ValueError, match="rand_augment"):
        parse_rand_augment("auto-v0")
    with pytest.raises(ValueError, match="Unknown RandAugment option"):
        parse_rand_augment("rand-x3")
    with pytest.raises(ValueError, match="mixup_prob"):
        FinetuneAugmentation(2, [0.0] * 3, [1.0] * 3, mixup_prob=1.5)
