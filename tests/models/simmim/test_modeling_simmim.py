import dataclasses

import numpy as np
import pytest
import torch
from transformers import SwinConfig, SwinForMaskedImageModeling, ViTConfig, ViTForMaskedImageModeling

from hf_mim import SimMIMConfig, SimMIMForMaskedImageModeling, SimMIMImageProcessor, SimMIMModel, get_model_spec
from hf_mim.registry import _simmim_tiny

from ...modeling_tester import ModelTesterMixin, RealDataTesterMixin, upsampled_cifar_batch


class TestSwinBackbone(ModelTesterMixin, RealDataTesterMixin):
    """The common checks again, for SimMIM with a Swin encoder (the registry's tiny config is ViT)."""

    spec = dataclasses.replace(get_model_spec("simmim"), tiny_config=lambda **kw: _simmim_tiny("swin", **kw))

    def real_config(self):
        return self.spec.tiny_config(image_size=64, patch_size=4)


class TestBeitBackbone(ModelTesterMixin, RealDataTesterMixin):
    """The common checks again, for SimMIM's official ViT (transformers' BeitModel encoder)."""

    spec = dataclasses.replace(get_model_spec("simmim"), tiny_config=lambda **kw: _simmim_tiny("beit", **kw))
    # layer scale 0.1 (the official setting) shrinks every residual branch at first: slower early progress
    learn_ratio = 0.75


def test_beit_backbone_is_simmims_official_vit():
    from transformers import BeitModel

    config = SimMIMConfig.from_preset("beit-base")
    encoder = config.encoder_config
    assert (encoder.use_absolute_position_embeddings, encoder.use_shared_relative_position_bias,
            encoder.use_relative_position_bias, encoder.layer_scale_init_value) == (False, True, False, 0.1)  # fmt: skip
    model = SimMIMForMaskedImageModeling(config)
    assert isinstance(model.simmim.encoder, BeitModel) and config.encoder_stride == 16
    assert sum(p.numel() for p in model.simmim.encoder.parameters()) == pytest.approx(86e6, rel=0.01)
    assert model.simmim.encoder.config.use_mask_token is True  # the model's private copy has the token
    assert config.encoder_config.use_mask_token is False  # the saved config does not
    assert model.simmim.encoder.embeddings.mask_token.std().item() == pytest.approx(0.02, rel=0.15)
    assert SimMIMConfig.from_preset("beit-large").hidden_size == 1024


def numpy_simmim_loss(x: np.ndarray, rec: np.ndarray, mask: np.ndarray, patch: int) -> float:
    b, c, h, w = x.shape
    m = mask.reshape(b, h // patch, w // patch).repeat(patch, 1).repeat(patch, 2)[:, None].astype(np.float64)
    return float((np.abs(x - rec) * m).sum() / (m.sum() + 1e-5) / c)


@pytest.mark.parametrize("backbone", ["vit", "swin", "beit"])
def test_loss_equals_independent_computation(backbone):
    torch.manual_seed(0)
    model = SimMIMForMaskedImageModeling(_simmim_tiny(backbone)).eval()
    x = torch.randn(2, 3, 32, 32)
    num_patches = (32 // model.config.patch_size) ** 2
    mask = torch.rand(2, num_patches) < 0.6
    with torch.no_grad():
        out = model(pixel_values=x, bool_masked_pos=mask)
    assert out.reconstruction.shape == x.shape
    expected = numpy_simmim_loss(
        x.double().numpy(), out.reconstruction.double().numpy(), mask.numpy(), model.config.patch_size
    )
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)


def tiny_transformers_vit():
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        encoder_stride=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    return ViTForMaskedImageModeling(config)


def tiny_transformers_swin():
    config = SwinConfig(
        image_size=32,
        patch_size=2,
        embed_dim=16,
        depths=[1, 1, 2],
        num_heads=[2, 2, 4],
        window_size=4,
        encoder_stride=8,
        drop_path_rate=0.0,
    )
    return SwinForMaskedImageModeling(config)


@pytest.mark.parametrize("make", [tiny_transformers_vit, tiny_transformers_swin])
def test_from_transformers_equivalence(make):
    torch.manual_seed(0)
    reference = make().eval()
    with torch.no_grad():  # transformers initialises mask tokens to zero: make them matter
        for name, param in reference.named_parameters():
            if "mask_token" in name:
                param.normal_(0, 0.5)
    ours = SimMIMForMaskedImageModeling.from_transformers(reference, mask_patch_size=16)
    ref_params = dict(reference.named_parameters())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref_params.values())
    x = torch.randn(2, 3, 32, 32)
    num_patches = (32 // reference.config.patch_size) ** 2
    mask = torch.rand(2, num_patches) < 0.6
    with torch.no_grad():
        expected = reference(pixel_values=x, bool_masked_pos=mask)
        got = ours(pixel_values=x, bool_masked_pos=mask)
    torch.testing.assert_close(got.reconstruction, expected.reconstruction, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.loss, expected.loss, atol=1e-5, rtol=0)


def test_from_transformers_rejects_what_it_cannot_convert():
    with pytest.raises(ValueError, match="ViTForMaskedImageModeling or SwinForMaskedImageModeling"):
        SimMIMForMaskedImageModeling.from_transformers(torch.nn.Linear(2, 2))
    config = ViTConfig(
        image_size=32,
        patch_size=4,
        encoder_stride=16,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    with pytest.raises(ValueError, match="encoder_stride"):
        SimMIMForMaskedImageModeling.from_transformers(ViTForMaskedImageModeling(config), mask_patch_size=16)


def test_vit_patch_size_other_than_16_works_where_transformers_fails():
    # transformers keeps encoder_stride=16 when only the patch size changes and then cannot compute the loss
    config = ViTConfig(
        image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    x, mask = torch.randn(1, 3, 32, 32), torch.rand(1, 64) < 0.5
    with pytest.raises(ValueError):
        ViTForMaskedImageModeling(config)(pixel_values=x, bool_masked_pos=mask)
    ours = SimMIMForMaskedImageModeling(SimMIMConfig(encoder_config={**config.to_dict()}, mask_patch_size=16))
    assert ours.config.encoder_stride == 4
    out = ours(pixel_values=x, bool_masked_pos=mask)
    assert out.reconstruction.shape == x.shape and torch.isfinite(out.loss)
    with pytest.raises(ValueError, match="encoder_stride"):
        SimMIMConfig(encoder_config=config.to_dict(), encoder_stride=16)


@pytest.mark.parametrize("backbone, size", [("vit", (48, 64)), ("swin", (64, 64)), ("beit", (48, 64))])
def test_input_sizes_other_than_config(backbone, size):
    torch.manual_seed(0)
    model = SimMIMForMaskedImageModeling(_simmim_tiny(backbone)).eval()
    patch = model.config.patch_size
    mask = torch.rand(2, (size[0] // patch) * (size[1] // patch)) < 0.6
    x = torch.randn(2, 3, *size)
    out = model(pixel_values=x, bool_masked_pos=mask)
    assert out.reconstruction.shape == x.shape and torch.isfinite(out.loss)
    expected = numpy_simmim_loss(x.double().numpy(), out.reconstruction.detach().double().numpy(), mask.numpy(), patch)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="encoder_stride"):
        model(pixel_values=torch.randn(1, 3, 36, 36))


def test_swin_mask_token_after_patch_embedding_norm():
    torch.manual_seed(0)
    model = SimMIMModel(_simmim_tiny("swin")).eval()
    embeddings = model.encoder.embeddings
    x = torch.randn(1, 3, 32, 32)
    mask = torch.zeros(1, 256, dtype=torch.bool)
    mask[0, :40] = True
    with torch.no_grad():
        out, _ = embeddings(x, bool_masked_pos=mask)
        normed = embeddings.norm(embeddings.patch_embeddings(x)[0])
    torch.testing.assert_close(out[0, :40], embeddings.mask_token[0].expand(40, -1))
    torch.testing.assert_close(out[0, 40:], normed[0, 40:])
    assert embeddings.mask_token.abs().sum() > 0  # trunc-normal init, not transformers' zeros


def test_overfits_fixed_cifar_batch(cifar10_rows):
    torch.manual_seed(0)
    config = _simmim_tiny("vit")
    model = SimMIMForMaskedImageModeling(config).train()
    pixel_values = upsampled_cifar_batch(cifar10_rows, 32, count=8)
    mask = torch.from_numpy(SimMIMImageProcessor.from_model_config(config).mask_generator(0).generate(8))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = model(pixel_values=pixel_values, bool_masked_pos=mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.35 * losses[0], f"{losses[0]:.3f} -> {losses[-1]:.3f}"


def test_config_presets_and_errors():
    vit = SimMIMConfig.from_preset("vit-base")
    assert (vit.image_size, vit.patch_size, vit.encoder_stride, vit.mask_patch_size, vit.mask_ratio) == (
        224,
        16,
        16,
        32,
        0.6,
    )
    swin = SimMIMConfig.from_preset("swin-base")
    assert (swin.image_size, swin.encoder_config.window_size, swin.encoder_stride, swin.hidden_size) == (
        192,
        6,
        32,
        1024,
    )
    assert SimMIMConfig(encoder_config=SwinConfig(image_size=192, window_size=6)).backbone == "swin"
    with pytest.raises(ValueError, match="backbone"):
        SimMIMConfig(backbone="convnext")
    with pytest.raises(ValueError, match="backbone"):
        SimMIMConfig(backbone="vit", encoder_config=SwinConfig())
    with pytest.raises(ValueError, match="mask_patch_size"):
        SimMIMConfig(mask_patch_size=24)
    processor = SimMIMImageProcessor.from_model_config(swin)
    assert processor.crop_scale == [0.67, 1.0] and processor.mask_generator(0).num_patches == 48 * 48


def test_vit_encoder_uses_the_models_attention_implementation():
    model = SimMIMForMaskedImageModeling(_simmim_tiny("vit"))
    attention = model.simmim.encoder.layers[0].attention
    assert attention.config._attn_implementation == model.config._attn_implementation == "sdpa"
    eager = SimMIMForMaskedImageModeling(_simmim_tiny("vit", attn_implementation="eager"))
    assert eager.simmim.encoder.layers[0].attention.config._attn_implementation == "eager"


def test_swin_small_inputs_are_refused_without_breaking_the_model_and_any_dtype_works():
    spec = get_model_spec("simmim")
    model = spec.pretraining_class(spec.tiny_config(backbone="swin")).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = model(x).reconstruction
        with pytest.raises(ValueError, match="at least 32x32"):
            model(torch.randn(1, 3, 16, 16))
        assert torch.equal(model(x).reconstruction, before)
        for dtype in (torch.bfloat16, torch.float16):
            assert model(x.to(dtype)).reconstruction.shape == (1, 3, 32, 32)
        assert model(torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8)).reconstruction.dtype == torch.float32


def test_switching_attention_reaches_the_vit_encoder_without_transformers_warning():
    """SimMIM's own ViT encoder is a plain module; transformers set its config "in the dark" with a warning of undefined
    behaviour. The kernel now reaches every attention module, and nothing is logged."""
    import logging

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(handler)
    try:
        model = SimMIMForMaskedImageModeling(SimMIMConfig.from_preset("vit-test"))
        for kernel in ("eager", "sdpa"):
            model.set_attn_implementation(kernel)
            kernels = {m.config._attn_implementation for m in model.modules() if type(m).__name__ == "ViTAttention"}
            assert kernels == {kernel} and model.config.encoder_config._attn_implementation == kernel
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if "without finding the associated sub-model" in r.getMessage()]
