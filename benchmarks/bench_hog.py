"""HOG target throughput: hf_mim's HOGFeatures vs a straightforward implementation vs scikit-image.

    python benchmarks/bench_hog.py [--batch 64] [--size 224] [--repeats 5]

The straightforward implementation is MaskFeat's reference layout (two grouped Sobel convolutions, a full
resolution [B, C, nbins, H, W] scatter, then cell pooling). scikit-image's `hog` works on one 2-D channel at a
time with its own (bilinear, signed-gradient) conventions, so it is timed for scale only. Prints a table and
writes JSON to benchmarks/results/hog.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hf_mim.targets import HOGFeatures


def straightforward_hog(x: torch.Tensor, nbins: int = 9, cell: int = 8) -> torch.Tensor:
    channels = x.shape[1]
    wx = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]).view(1, 1, 3, 3).repeat(channels, 1, 1, 1)
    wy = wx.transpose(2, 3)
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    gx = F.conv2d(x, wx, groups=channels)
    gy = F.conv2d(x, wy, groups=channels)
    norm = torch.stack([gx, gy], dim=-1).norm(dim=-1)
    phase = torch.atan2(gx, gy) / math.pi * nbins
    b, c, h, w = norm.shape
    out = torch.zeros((b, c, nbins, h, w))
    out.scatter_add_(2, phase.view(b, c, 1, h, w).floor().long() % nbins, norm.view(b, c, 1, h, w))
    out = out.unfold(3, cell, cell).unfold(4, cell, cell).sum(dim=[-1, -2])
    return F.normalize(out, p=2, dim=2)


def timeit(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skimage_images", type=int, default=8, help="images timed with skimage (it is slow)")
    parser.add_argument("--output", default="benchmarks/results/hog.json")
    args = parser.parse_args()

    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)
    hog = HOGFeatures()
    diff = (hog(x) - straightforward_hog(x)).abs().max().item()
    rows = {
        "hf_mim HOGFeatures": timeit(lambda: hog(x), args.repeats),
        "straightforward (full-res scatter)": timeit(lambda: straightforward_hog(x), args.repeats),
    }
    try:
        from skimage.feature import hog as skimage_hog

        images = x[: args.skimage_images].numpy()

        def run_skimage():
            for image in images:
                for channel in image:
                    skimage_hog(channel, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(1, 1))

        rows["skimage.feature.hog (per channel)"] = timeit(run_skimage, 1) * args.batch / len(images)
    except ImportError:
        pass

    base = rows["hf_mim HOGFeatures"]
    print(f"HOG on {args.batch}x3x{args.size}x{args.size}, {torch.get_num_threads()} threads, {platform.processor()}")
    print(f"{'implementation':38s} {'ms/batch':>10s} {'images/s':>10s} {'vs hf_mim':>10s}")
    for name, seconds in rows.items():
        print(f"{name:38s} {seconds * 1e3:10.1f} {args.batch / seconds:10.0f} {seconds / base:9.1f}x")
    print(f"max |hf_mim - straightforward| = {diff:.2e}")
    result = {
        "batch": args.batch,
        "size": args.size,
        "threads": torch.get_num_threads(),
        "seconds_per_batch": rows,
        "speedup_vs_straightforward": rows["straightforward (full-res scatter)"] / base,
        "max_abs_diff": diff,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
