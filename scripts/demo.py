"""Main-job placeholder until the pretraining script lands: HOG targets of real photos, as a picture.

python scripts/demo.py [--output_dir outputs]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import PIL.Image
from skimage import data

from hf_mim import HOGFeatures, MaskedImageProcessor
from hf_mim.visualization import denormalize, hog_glyphs, image_grid, mask_overlay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", default="outputs")
    args = parser.parse_args()
    processor = MaskedImageProcessor(
        image_size=224,
        patch_size=16,
        mask_type="blockwise",
        mask_kwargs={"num_masking_patches": 78, "min_num_patches": 15},
    )
    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    batch = processor(photos, augment=False, return_hog_targets=True, seed=0)
    hog = HOGFeatures()(batch["pixel_values"])
    rows = []
    for i in range(len(photos)):
        image = denormalize(batch["pixel_values"][i])
        glyphs = np.asarray(PIL.Image.fromarray(hog_glyphs(hog[i], cell_px=8)).resize((224, 224)))
        rows.append([image, mask_overlay(image, batch["bool_masked_pos"][i], (14, 14)), glyphs])
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    image_grid(rows).save(out / "hog_maps.png")
    print(
        f"pixel_values {tuple(batch['pixel_values'].shape)}, bool_masked_pos {tuple(batch['bool_masked_pos'].shape)}"
        f", hog_targets {tuple(batch['hog_targets'].shape)}"
    )
    print(f"wrote {out / 'hog_maps.png'} (input | block-wise mask | HOG map)")


if __name__ == "__main__":
    main()
