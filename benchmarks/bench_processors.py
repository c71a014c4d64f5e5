"""Image-processor throughput at 224 px: images/s on one CPU core per method, and through a DataLoader with workers.

    python benchmarks/bench_processors.py [--images 256] [--workers 2]

Inputs are real photos (random 256-512 px crops of scikit-image's photos, as PIL images), processed with the
training augmentation and masks of each method's processor. Also times MaskFeat's HOG targets computed in the
processor (`return_hog_targets=True`) and the share of a MaskFeat training step spent on HOG targets. Writes JSON
to benchmarks/results/processors.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from hf_mim import HPMImageProcessor, MaskFeatImageProcessor, SimMIMImageProcessor
from hf_mim.training import SeededTransformDataset, default_image_dataset

PROCESSORS = {
    "MaskFeatImageProcessor": lambda: MaskFeatImageProcessor(image_size=224, patch_size=16),
    "MaskFeatImageProcessor + HOG targets": lambda: MaskFeatImageProcessor(
        image_size=224, patch_size=16, return_hog_targets=True
    ),
    "SimMIMImageProcessor (ViT/16)": lambda: SimMIMImageProcessor(image_size=224, patch_size=16),
    "HPMImageProcessor": lambda: HPMImageProcessor(image_size=224, patch_size=16),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--output", default="benchmarks/results/processors.json")
    args = parser.parse_args()
    dataset = default_image_dataset(args.images, size_range=(256, 512), seed=0)
    images = list(dataset["image"])
    results = {}
    torch.set_num_threads(1)  # per-core numbers
    print(f"{args.images} photos (256-512 px) -> 224 px, training augmentation")
    print(f"{'processor':40s} {'img/s/core':>11s} {f'DataLoader {args.workers}w img/s':>22s}")
    for name, make in PROCESSORS.items():
        processor = make()
        processor(images[:8], augment=True, return_mask=True, seed=0)  # warm-up
        start = time.perf_counter()
        for i in range(0, len(images), args.batch):
            processor(images[i : i + args.batch], augment=True, return_mask=True, seed=i)
        per_core = len(images) / (time.perf_counter() - start)
        loader = DataLoader(
            SeededTransformDataset(dataset, processor), batch_size=args.batch, num_workers=args.workers
        )
        start = time.perf_counter()
        count = sum(batch["pixel_values"].shape[0] for batch in loader)
        loader_speed = count / (time.perf_counter() - start)
        results[name] = {
            "images_per_second_per_core": per_core,
            f"dataloader_{args.workers}_workers_images_per_second": loader_speed,
        }
        print(f"{name:40s} {per_core:11.1f} {loader_speed:22.1f}")
    torch.set_num_threads(torch.get_num_interop_threads() or 2)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
