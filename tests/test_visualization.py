"""Pictures show only what the model predicted: a model that predicts nothing must look wrong (lightly's habit:
the rule checked against a computation written here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_mim import HPMConfig, HPMForPreTraining, get_model_spec, list_models
from hf_mim.targets import patchify
from hf_mim.training.pictures import pretraining_picture
from hf_mim.visualization import image_grid, patch_reconstruction


def _photo_batch(photos, size: int = 32) -> torch.Tensor:
    import PIL.Image

    images = [np.asarray(PIL.Image.fromarray(p).resize((size, size))) for p in photos.values()]
    x = torch.tensor(np.stack(images), dtype=torch.float32).permute(0, 3, 1, 2) / 255
    return (x - 0.45) / 0.25


def test_a_zero_prediction_is_drawn_with_visible_statistics_only(photos):
    pixel_values = _photo_batch(photos)[0]  # [3, 32, 32]
    mask = torch.zeros(16, dtype=torch.bool)
    mask[::2] = True
    image = patch_reconstruction(pixel_values, torch.zeros(16, 192), mask, 8, norm_pix_loss=True)
    patches, truth = patchify(image[None], 8)[0], patchify(pixel_values[None], 8)[0]
    assert torch.equal(patches[~mask], truth[~mask])  # visible patches as they are
    # every masked patch is one flat value, the visible patches' mean: no masked patch's own brightness leaks
    visible = truth[~mask]
    torch.testing.assert_close(patches[mask], torch.full_like(patches[mask], float(visible.mean(-1).mean())))
    error = (patches[mask] - truth[mask]).abs().mean()
    assert error > 0.3 * truth.std()  # it looks wrong, as it should
    # a perfect normalised prediction is drawn close to (not at) the truth: only the masked patch's own
    # mean and variance are missing
    perfect = (truth - truth.mean(-1, keepdim=True)) / (truth.var(-1, keepdim=True) + 1e-6) ** 0.5
    drawn = patchify(patch_reconstruction(pixel_values, perfect, mask, 8, norm_pix_loss=True)[None], 8)[0]
    assert torch.corrcoef(torch.stack([drawn[mask].flatten(), truth[mask].flatten()]))[0, 1] > 0.5


def test_the_hpm_picture_of_a_model_that_predicts_nothing_looks_wrong(photos):
    config = HPMConfig.from_preset("test", image_size=32, patch_size=8, norm_pix_loss=True, hard_patches_mining=False)
    model = HPMForPreTraining(config)
    torch.nn.init.zeros_(model.decoder.decoder_pred.weight)
    torch.nn.init.zeros_(model.decoder.decoder_pred.bias)
    pixel_values = _photo_batch(photos)
    picture = np.asarray(pretraining_picture(model, {"pixel_values": pixel_values}, max_images=1, image_mean=[0.45] * 3,
                                             image_std=[0.25] * 3)).astype(float)  # fmt: skip
    # columns: input | masked input | reconstruction, each 128 px (upscaled 4x) after a 2 px pad
    header = picture.shape[0] - (128 + 4)
    row = picture[header + 2 : header + 130]
    original, reconstruction = row[:, 2:130], row[:, 2 * 130 + 2 : 2 * 130 + 130]
    assert np.abs(reconstruction - original).mean() > 0.3 * original.std()


@pytest.mark.parametrize("method", list_models())
def test_every_method_draws_titled_panels(method):
    spec = get_model_spec(method)
    model = spec.pretraining_class(spec.tiny_config())
    size = model.config.image_size
    batch = {"pixel_values": torch.randn(2, 3, size, size),
             **spec.pretraining_inputs(model.config, 2, torch.Generator().manual_seed(0))}  # fmt: skip
    picture = pretraining_picture(model, batch)
    tile = size * max(1, 128 // size)
    assert picture.width >= 3 * tile  # input, masked input and at least one panel of the method's


def test_titles_add_a_header():
    tile = np.zeros((8, 8, 3), np.uint8)
    plain, titled = image_grid([[tile, tile]]), image_grid([[tile, tile]], titles=["a long title here", "b"])
    assert titled.width == plain.width and titled.height > plain.height
