"""Times hf_mim.analysis on CPU: attention statistics and layer CKA over 256 images for the demo-size ViT
(96 px, patch 16 = 36 tokens, 192 wide, 6 blocks, 3 heads), and AvgDist of 1000 SimMIM masks.

    python benchmarks/bench_analysis.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from hf_mim import MaskFeatConfig, MaskFeatForPreTraining, SimMIMImageProcessor
from hf_mim.analysis import attention_statistics, layer_similarity, mask_statistics


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> dict:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = MaskFeatForPreTraining(MaskFeatConfig.from_preset("demo")).eval()
    images = torch.randn(256, 3, 96, 96)
    results = {
        "attention_statistics_256_images_s": best_of(lambda: attention_statistics(model, images, batch_size=64)),
        "layer_similarity_256_images_s": best_of(lambda: layer_similarity(model, images, batch_size=64)),
        "forward_only_256_images_s": best_of(
            lambda: [model.maskfeat(pixel_values=images[i : i + 64]) for i in range(0, 256, 64)]
        ),  # fmt: skip
        "avg_dist_1000_simmim_masks_s": best_of(lambda: mask_statistics(SimMIMImageProcessor(), 1000), repeats=1),
    }
    for key, value in results.items():
        print(f"{key:40s} {value:8.3f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "analysis.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    with torch.no_grad():
        main()
