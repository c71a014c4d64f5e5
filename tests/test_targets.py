import numpy as np
import PIL.Image
import pytest
import torch

from hf_mim.image_processing import IMAGENET_MEAN, IMAGENET_STD
from hf_mim.targets import HOGFeatures, normalize_patches, patchify, unpatchify

from .reference import numpy_hog


def normalised_photos(photos, size=224):
    arrays = []
    for image in photos.values():
        resized = PIL.Image.fromarray(image).resize((size, size), PIL.Image.BICUBIC)
        array = (np.asarray(resized, np.float32) / 255.0 - np.array(IMAGENET_MEAN, np.float32)) / np.array(
            IMAGENET_STD, np.float32
        )
        arrays.append(array.transpose(2, 0, 1))
    return np.stack(arrays).astype(np.float32)


@pytest.mark.parametrize("gaussian_window", [0, 16])
def test_hog_matches_numpy_reference_on_real_photos(photos, gaussian_window):
    images = normalised_photos(photos)
    ours = HOGFeatures(nbins=9, cell_size=8, gaussian_window=gaussian_window)(torch.from_numpy(images)).numpy()
    ref, on_edge, flat = numpy_hog(images, gaussian_window=gaussian_window)
    assert ours.shape == (3, 3, 9, 28, 28) and ours.dtype == np.float32
    diff = np.abs(ours - ref).max(axis=2)  # [B, C, h, w]
    mismatched = diff > 1e-4
    # Every disagreement is explained by a flat cell or by a pixel on a bin edge: on 8-bit photos a purely
    # vertical gradient has gx = 0 in float64 but +-1e-7 in float32, which hard binning sends to bin 0 or 8.
    explained = flat | on_edge
    assert not (mismatched & ~explained).any(), f"max diff: {diff[~explained].max()}"
    assert flat.mean() < 0.05
    assert mismatched.mean() < 0.03
    # real photos have texture: the features are far from trivial
    assert ours.std() > 0.1


def test_hog_synthetic_edge_lands_in_known_bin():
    # vertical step edge (bright on the right): gx < 0, gy = 0 -> atan2(gx, 0) = -pi/2 -> -4.5 -> floor -5 -> bin 4
    image = torch.zeros(1, 3, 32, 32)
    image[..., 16:] = 1.0
    hog = HOGFeatures(nbins=9, cell_size=8)(image)
    assert hog.shape == (1, 3, 9, 4, 4)
    edge_cells = hog[0, :, :, :, 1:3]  # cells 1 and 2 along the width touch columns 15/16
    assert torch.allclose(edge_cells[:, 4], torch.ones_like(edge_cells[:, 4]))
    assert hog[0, :, :, :, 0].abs().sum() == 0 and hog[0, :, :, :, 3].abs().sum() == 0
    # horizontal edge (bright at the bottom): gy < 0, gx = 0 -> atan2(0, gy<0) = pi -> 9 -> bin 0
    image = torch.zeros(1, 1, 32, 32)
    image[..., 16:, :] = 1.0
    hog = HOGFeatures(nbins=9, cell_size=8)(image)
    assert torch.allclose(hog[0, 0, 0, 1:3], torch.ones(2, 4))


def test_patch_targets_feature_order():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 48)
    hog_module = HOGFeatures(nbins=9, cell_size=8)
    hog = hog_module(images)  # [B, C, nbins, 4, 6]
    targets = hog_module.patch_targets(images, patch_size=16)
    k = 2
    assert targets.shape == (2, 2 * 3, 3 * 9 * k * k) == (2, 6, 108)
    for patch in range(6):
        pr, pc = divmod(patch, 3)
        for c in range(3):
            for b in range(9):
                for r in range(k):
                    for col in range(k):
                        index = ((c * 9 + b) * k + r) * k + col
                        assert targets[1, patch, index] == hog[1, c, b, pr * k + r, pc * k + col]
    assert hog_module.feature_dim(3, 16) == 108


def test_hog_dtype_device_and_errors():
    images = torch.randn(2, 3, 32, 32)
    ref = HOGFeatures()(images)
    out = HOGFeatures()(images.to(torch.bfloat16))
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert not any(True for _ in HOGFeatures().parameters())
    with pytest.raises(ValueError, match="cell_size"):
        HOGFeatures()(torch.randn(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        HOGFeatures()(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="patch_size"):
        HOGFeatures().patch_targets(images, patch_size=12)
    with pytest.raises(ValueError, match="gaussian_window"):
        HOGFeatures(gaussian_window=-1)
    with pytest.raises(ValueError, match="nbins"):
        HOGFeatures(nbins=0)


def test_patchify_roundtrip_and_mae_order():
    x = torch.randn(2, 3, 32, 48)
    patches = patchify(x, 16)
    assert patches.shape == (2, 6, 16 * 16 * 3)
    # (p, q, channel) inside a patch, patches row-major
    assert patches[0, 4, (5 * 16 + 7) * 3 + 2] == x[0, 2, 16 + 5, 16 + 7]
    torch.testing.assert_close(unpatchify(patches, 16, (32, 48)), x, rtol=0, atol=0)
    with pytest.raises(ValueError, match="patch_size"):
        patchify(x, 7)


def test_normalize_patches_matches_mae():
    x = torch.randn(2, 5, 12) * 3 + 1
    out = normalize_patches(x)
    ref = (x - x.mean(-1, keepdim=True)) / (x.var(-1, unbiased=True, keepdim=True) + 1e-6) ** 0.5
    torch.testing.assert_close(out, ref)
