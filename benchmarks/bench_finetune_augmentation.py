"""What the fine-tuning recipes' augmentation costs per training step.

    python benchmarks/bench_finetune_augmentation.py                 # ViT-S/16, 224 px, batch 32, CPU
    python benchmarks/bench_finetune_augmentation.py --device cuda --batch 128

One step = forward + backward + AdamW step of MaskFeatForImageClassification (mean + fc_norm head, drop path 0.1)
with the soft-target loss; "augmented" adds hf_mim.training.augmentation.FinetuneAugmentation as the recipes configure it
(kornia RandAugment rand-m9-mstd0.5-inc1 per image, random erasing 0.25, mixup 0.8 / cutmix 1.0). Steps with and
without augmentation alternate, so machine noise hits both alike; medians are reported. Writes
benchmarks/results/finetune_augmentation_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from hf_mim import MaskFeatConfig, MaskFeatForImageClassification
from hf_mim.image_processing import IMAGENET_MEAN, IMAGENET_STD
from hf_mim.training.augmentation import FinetuneAugmentation, soft_target_cross_entropy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    config = MaskFeatConfig.from_preset("small", num_labels=1000, drop_path_rate=0.1, use_fc_norm=True)
    model = MaskFeatForImageClassification(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    augmentation = FinetuneAugmentation(1000, IMAGENET_MEAN, IMAGENET_STD).to(device)
    images = torch.randn(args.batch, 3, 224, 224, device=device)
    labels = torch.randint(0, 1000, (args.batch,), device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step(augment: bool) -> tuple[float, float]:
        sync()
        start = time.perf_counter()
        x, targets = augmentation(images, labels) if augment else (images, labels)
        sync()
        augmented = time.perf_counter()
        loss = soft_target_cross_entropy(model(pixel_values=x).logits, targets, label_smoothing=0.1)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - start, augmented - start

    for _ in range(2):  # warm-up
        step(False), step(True)
    plain, augmented, aug_only = [], [], []
    for _ in range(args.repeats):
        plain.append(step(False)[0])
        total, aug = step(True)
        augmented.append(total)
        aug_only.append(aug)
    plain_ms, aug_ms = statistics.median(plain) * 1e3, statistics.median(augmented) * 1e3
    result = {
        "model": "MaskFeatForImageClassification ViT-S/16 224 px (fc_norm, drop path 0.1)",
        "batch": args.batch, "device": str(device), "threads": args.threads, "repeats": args.repeats,
        "step_ms_without_augmentation": round(plain_ms, 1), "step_ms_with_augmentation": round(aug_ms, 1),
        "augmentation_ms": round(statistics.median(aug_only) * 1e3, 1),
        "augmentation_share_of_step": round((aug_ms - plain_ms) / plain_ms, 4),
        "machine": platform.platform(), "torch": torch.__version__,
    }  # fmt: skip
    print(f"{'':24s}{'ms / step':>12s}{'images / s':>12s}")
    print(f"{'without augmentation':24s}{plain_ms:12.1f}{args.batch / plain_ms * 1e3:12.1f}")
    print(f"{'with augmentation':24s}{aug_ms:12.1f}{args.batch / aug_ms * 1e3:12.1f}")
    print(f"augmentation alone: {result['augmentation_ms']} ms ({100 * result['augmentation_share_of_step']:.1f}% "
          "of a step)")  # fmt: skip
    out = Path(__file__).resolve().parent / "results" / f"finetune_augmentation_{device.type}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
