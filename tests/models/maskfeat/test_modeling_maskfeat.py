import numpy as np
import pytest
import torch

from hf_mim import MaskFeatConfig, MaskFeatForPreTraining, MaskFeatImageProcessor, MaskFeatModel

from ...reference import numpy_hog_patch_targets, numpy_masked_mse


def tiny(**kwargs):
    return MaskFeatConfig.from_preset("test", **kwargs)


def test_loss_equals_independent_numpy_computation():
    torch.manual_seed(0)
    config = tiny(image_size=32, patch_size=16)  # 4 patches, 2x2 HOG cells each -> 108-d targets
    model = MaskFeatForPreTraining(config).eval()
    pixel_values = torch.randn(3, 3, 32, 32)
    mask = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 0]], dtype=torch.bool)
    with torch.no_grad():
        out = model(pixel_values=pixel_values, bool_masked_pos=mask)
    targets = numpy_hog_patch_targets(pixel_values.numpy(), patch_size=16)
    assert out.hog_targets.shape == (3, 4, 108)
    np.testing.assert_allclose(out.hog_targets.numpy(), targets, atol=1e-5)
    expected = numpy_masked_mse(out.logits.numpy().astype(np.float64), targets, mask.numpy())
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert torch.equal(out.mask, mask)


def test_mask_token_replaces_patch_embedding_before_position_embedding():
    torch.manual_seed(0)
    model = MaskFeatModel(tiny()).eval()
    embeddings = model.encoder.embeddings
    pixel_values = torch.randn(1, 3, 32, 32)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, [0, 5, 15]] = True
    with torch.no_grad():
        out = embeddings(pixel_values, bool_masked_pos=mask)
        patch = embeddings.patch_embeddings(pixel_values)
    pos = embeddings.position_embeddings[0]
    torch.testing.assert_close(out[0, 0], embeddings.cls_token[0, 0] + pos[0])
    for i in range(16):
        expected = (embeddings.mask_token[0, 0] if mask[0, i] else patch[0, i]) + pos[1 + i]
        torch.testing.assert_close(out[0, 1 + i], expected)
    # the mask token is learnable and initialised from a truncated normal (std 0.02), not zeros
    assert embeddings.mask_token.requires_grad and 0.005 < embeddings.mask_token.std() < 0.05


def test_no_masked_patch_gives_zero_loss_not_nan():
    model = MaskFeatForPreTraining(tiny()).train()
    out = model(pixel_values=torch.randn(2, 3, 32, 32), bool_masked_pos=torch.zeros(2, 16, dtype=torch.bool))
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bad_mask_raises_clear_errors():
    model = MaskFeatForPreTraining(tiny())
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"shape \(batch_size, num_patches\) = \(2, 16\)"):
        model(pixel_values=x, bool_masked_pos=torch.zeros(2, 15, dtype=torch.bool))
    with pytest.raises(ValueError, match="torch.bool"):
        model(pixel_values=x, bool_masked_pos=torch.zeros(2, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="required"):
        model(pixel_values=x)
    with pytest.raises(ValueError, match="hog_targets"):
        model(pixel_values=x, bool_masked_pos=torch.ones(2, 16, dtype=torch.bool), hog_targets=torch.zeros(2, 16, 5))


def test_given_hog_targets_from_processor_match_on_device_targets(photos):
    config = tiny(image_size=64, patch_size=16)
    processor = MaskFeatImageProcessor.from_model_config(config, return_hog_targets=True)
    batch = processor(list(photos.values()), augment=True, return_mask=True, seed=0)
    model = MaskFeatForPreTraining(config).eval()
    with torch.no_grad():
        given = model(**batch)
        computed = model(pixel_values=batch["pixel_values"], bool_masked_pos=batch["bool_masked_pos"])
    assert torch.equal(given.hog_targets, computed.hog_targets) and torch.equal(given.loss, computed.loss)


def test_multitask_hog_plus_pixels():
    torch.manual_seed(0)
    config = tiny(target="hog+pixel", hog_loss_weight=1.0, pixel_loss_weight=0.5)
    model = MaskFeatForPreTraining(config).eval()
    x, mask = torch.randn(2, 3, 32, 32), torch.rand(2, 16) < 0.5
    out = model(pixel_values=x, bool_masked_pos=mask)
    assert out.pixel_logits.shape == (2, 16, 8 * 8 * 3)
    torch.testing.assert_close(out.loss, out.hog_loss + 0.5 * out.pixel_loss)
    patches = x.reshape(2, 3, 4, 8, 4, 8).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, -1)
    norm = (patches - patches.mean(-1, keepdim=True)) / (patches.var(-1, keepdim=True) + 1e-6).sqrt()
    torch.testing.assert_close(out.pixel_targets, norm)


def test_other_input_sizes_interpolate_position_embeddings():
    model = MaskFeatForPreTraining(tiny()).eval()
    out = model(pixel_values=torch.randn(1, 3, 48, 64), bool_masked_pos=torch.rand(1, 48) < 0.4)
    assert out.logits.shape == (1, 48, 27) and torch.isfinite(out.loss)


def test_hidden_states_and_pooling():
    model = MaskFeatModel(tiny(pooling="cls")).eval()
    out = model(torch.randn(2, 3, 32, 32), output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 17, 32) and len(out.hidden_states) == 3
    assert torch.equal(out.pooler_output, out.last_hidden_state[:, 0])
    model = MaskFeatModel(tiny()).eval()
    out = model(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state[:, 1:].mean(1))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"patch_size": 12, "image_size": 36}, "hog_cell_size"),
        ({"image_size": 36}, "image_size"),
        ({"target": "pixels"}, "target"),
        ({"pooling": "max"}, "pooling"),
        ({"hidden_size": 33}, "num_attention_heads"),
        ({"drop_path_rate": 1.5}, "drop_path_rate"),
    ],
)
def test_config_rejects_invalid_combinations(kwargs, name):
    with pytest.raises(ValueError, match=name):
        tiny(**kwargs)


def test_presets_and_processor_defaults():
    base = MaskFeatConfig.from_preset("base")
    assert (base.hidden_size, base.num_hidden_layers, base.layer_norm_eps, base.hog_dim) == (768, 12, 1e-6, 108)
    with pytest.raises(ValueError, match="preset"):
        MaskFeatConfig.from_preset("huge")
    processor = MaskFeatImageProcessor()
    assert processor.crop_scale == [0.5, 1.0] and processor.resample == "bicubic" and processor.flip_prob == 0.5
    generator = processor.mask_generator(rng=0)
    assert generator.num_masking_patches == 78 and generator.min_num_patches == 15
    assert MaskFeatImageProcessor.from_model_config(base).mask_generator(0)().sum() == 78


def test_drop_path_is_active_only_in_training():
    model = MaskFeatForPreTraining(tiny(drop_path_rate=0.5))
    x, mask = torch.randn(2, 3, 32, 32), torch.rand(2, 16) < 0.5
    model.eval()
    assert torch.equal(
        model(pixel_values=x, bool_masked_pos=mask).loss, model(pixel_values=x, bool_masked_pos=mask).loss
    )
    model.train()
    losses = {model(pixel_values=x, bool_masked_pos=mask).loss.item() for _ in range(5)}
    assert len(losses) > 1
