"""hf_mim.analysis against independent computations on hand-made attention maps, features and masks."""

import math

import numpy as np
import pytest
import torch

from hf_mim import get_model_spec
from hf_mim.analysis import attention_reductions, attention_statistics, avg_dist, layer_similarity, linear_cka


def centres_of(grid, patch):
    return torch.tensor([[(r + 0.5) * patch, (c + 0.5) * patch] for r in range(grid) for c in range(grid)])


def numpy_statistics(a: np.ndarray, centres: np.ndarray):
    """Loops over images, heads and queries, straight from the definitions."""
    b, h, t, _ = a.shape
    length = len(centres)
    prefix = t - length
    dist, ent, kl, n = np.zeros(h), np.zeros(h), 0.0, 0
    for img in range(b):
        for i in range(length):
            q = prefix + i
            n += 1
            for head in range(h):
                row = a[img, head, q]
                patch = row[prefix:] / row[prefix:].sum()
                dist[head] += sum(patch[j] * np.linalg.norm(centres[i] - centres[j]) for j in range(length))
                ent[head] -= sum(x * math.log(x) for x in row if x > 0)
                for g in range(h):
                    if g != head:
                        kl += sum(row[j] * math.log(row[j] / a[img, g, q, j]) for j in range(t))
    return dist / n, ent / n, kl / n / (h * (h - 1))


def test_one_hot_attention_has_zero_entropy_and_the_centre_distance():
    centres = centres_of(2, 8)  # patches at (4, 4), (4, 12), (12, 4), (12, 12)
    a = torch.full((1, 2, 5, 5), 1e-30)
    for q in range(1, 5):
        a[0, :, q, 4] = 1.0  # every patch query attends only to the last patch
    d, e, k, n = attention_reductions(a, centres)
    expected = np.mean([np.linalg.norm(centres[i].double().numpy() - centres[3].double().numpy()) for i in range(4)])
    np.testing.assert_allclose((d / n).numpy(), [expected] * 2, rtol=1e-9)
    np.testing.assert_allclose((e / n).numpy(), [0.0, 0.0], atol=1e-20)
    assert float(k) == pytest.approx(0.0, abs=1e-20)  # identical heads: KL 0


def test_random_attention_matches_loops():
    torch.manual_seed(0)
    a = torch.softmax(torch.randn(2, 3, 10, 10), -1)  # [CLS] + 9 patches
    centres = centres_of(3, 4)
    d, e, k, n = attention_reductions(a, centres)
    dist, ent, kl = numpy_statistics(a.double().numpy(), centres.double().numpy())
    np.testing.assert_allclose((d / n).numpy(), dist, rtol=1e-9)
    np.testing.assert_allclose((e / n).numpy(), ent, rtol=1e-9)
    assert float(k) / n / 6 == pytest.approx(kl, rel=1e-9)


@pytest.mark.parametrize("method", ["maskfeat", "simmim", "hpm"])
def test_attention_statistics_of_each_method_equal_loops_over_its_probabilities(method):
    torch.manual_seed(0)
    spec = get_model_spec(method)
    model = spec.pretraining_class(spec.tiny_config()).eval()
    x = torch.randn(3, 3, 32, 32)
    before = model.config._attn_implementation
    stats = attention_statistics(model, x, batch_size=2)
    assert model.config._attn_implementation == before  # eager only for the call
    assert stats["distance"].shape == (2, 2) and stats["head_kl"].shape == (2,)
    # the first block's probabilities, recomputed by hand from its q/k projections on the embedding output
    base = getattr(model, model.base_model_prefix)
    captured = {}
    encoder = base.encoder
    block = encoder.layers[0]
    handle = block.register_forward_pre_hook(lambda m, args: captured.setdefault("x", args[0]))
    with torch.no_grad():
        base(pixel_values=x)
        handle.remove()
        hidden = block.layernorm_before(captured["x"])
        att = block.attention
        q = att.q_proj(hidden).view(3, -1, 2, 16).transpose(1, 2)
        k = att.k_proj(hidden).view(3, -1, 2, 16).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) * 16**-0.5, -1)
    dist, ent, kl = numpy_statistics(probs.double().numpy(), centres_of(4, 8).double().numpy())
    np.testing.assert_allclose(stats["distance"][0], dist, rtol=1e-4)
    np.testing.assert_allclose(stats["entropy"][0], ent, rtol=1e-4)
    assert stats["head_kl"][0] == pytest.approx(kl, rel=1e-3, abs=1e-7)


def test_cka_identity_orthogonal_and_scale_invariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12))
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, x @ q) == pytest.approx(1.0)
    assert linear_cka(x, 3.5 * x) == pytest.approx(1.0)
    y = rng.normal(size=(200, 7))
    xc, yc = x - x.mean(0), y - y.mean(0)
    expected = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert linear_cka(x, y) == pytest.approx(expected)


def test_layer_similarity_equals_cka_of_the_hidden_states():
    torch.manual_seed(0)
    spec = get_model_spec("maskfeat")
    model = spec.pretraining_class(spec.tiny_config()).eval()
    x = torch.randn(5, 3, 32, 32)
    cka = layer_similarity(model, x, batch_size=2)  # accumulated over 3 batches
    with torch.no_grad():
        _, hidden = model.maskfeat.encoder(x, output_hidden_states=True)
    feats = [h[:, 1:].reshape(-1, h.shape[-1]).numpy() for h in hidden]
    assert cka.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            assert cka[i, j] == pytest.approx(linear_cka(feats[i], feats[j]), rel=1e-6), (i, j)


def test_avg_dist_of_hand_drawn_masks():
    # one masked cell of 2x2 pixels on a 1x2 grid: each masked pixel is 1 px from the visible column (the nearest
    # visible pixel centre) for the column next to it and 2 px for the far column: mean 1.5
    assert avg_dist(np.array([[[True, False]]]), 2) == pytest.approx(1.5)
    # 3x3 grid, centre cell masked, 1 px cells: distance 1
    centre = np.zeros((1, 3, 3), bool)
    centre[0, 1, 1] = True
    assert avg_dist(centre, 1) == pytest.approx(1.0)
    # a masked corner 2x2 block of 1 px cells in a 3x3 grid: distances 1, 1, 1, sqrt(2)... brute force
    block = np.zeros((3, 3), bool)
    block[:2, :2] = True
    visible = np.argwhere(~block)
    brute = np.mean([min(np.hypot(*(p - v)) for v in visible) for p in np.argwhere(block)])
    assert avg_dist(block[None], 1) == pytest.approx(brute)
    assert avg_dist(np.stack([centre[0], block]), 1) == pytest.approx((1.0 + brute) / 2)
    with pytest.raises(ValueError, match="no visible"):
        avg_dist(np.ones((1, 2, 2), bool), 4)


def test_swin_and_wrong_sizes_are_refused():
    spec = get_model_spec("simmim")
    swin = spec.pretraining_class(spec.tiny_config(backbone="swin"))
    with pytest.raises(ValueError, match="Swin"):
        attention_statistics(swin, torch.randn(1, 3, 32, 32))
    vit = get_model_spec("maskfeat").pretraining_class(get_model_spec("maskfeat").tiny_config())
    with pytest.raises(ValueError, match="32x32"):
        attention_statistics(vit, torch.randn(1, 3, 48, 48))


def test_hpm_loss_maps_are_the_models_own_outputs():
    from hf_mim.analysis import hpm_loss_maps

    torch.manual_seed(0)
    spec = get_model_spec("hpm")
    model = spec.pretraining_class(spec.tiny_config()).eval()
    x = torch.randn(2, 3, 32, 32)
    mask = spec.pretraining_inputs(model.config, 2, torch.Generator().manual_seed(0))["bool_masked_pos"]
    predicted, true, masks, picture = hpm_loss_maps(model, x, mask)
    with torch.no_grad():
        out = model(pixel_values=x, bool_masked_pos=mask)
    np.testing.assert_allclose(predicted, out.predicted_patch_loss.view(2, 4, 4).numpy(), rtol=1e-6)
    np.testing.assert_allclose(true, out.patch_loss.view(2, 4, 4).numpy(), rtol=1e-6)
    assert np.array_equal(masks, mask.view(2, 4, 4).numpy()) and picture.size[0] > picture.size[1]
    mae = spec.pretraining_class(spec.tiny_config(hard_patches_mining=False))
    with pytest.raises(ValueError, match="loss predictor"):
        hpm_loss_maps(mae, x, mask)


def test_transformers_vit_mae_equals_its_hpm_conversion_and_beit_matches_its_own_attentions():
    from transformers import BeitConfig, BeitModel, ViTMAEConfig, ViTMAEForPreTraining

    from hf_mim import HPMForPreTraining

    x = torch.randn(3, 3, 32, 32)
    mae_config = ViTMAEConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
                              decoder_num_attention_heads=2, decoder_intermediate_size=64)  # fmt: skip
    torch.manual_seed(0)
    mae = ViTMAEForPreTraining(mae_config).eval()
    ours, theirs = attention_statistics(HPMForPreTraining.from_transformers(mae), x), attention_statistics(mae.vit, x)
    for key in ours:  # ViTMAEModel masks 75% in its forward: all patches, in order, must have been kept
        np.testing.assert_allclose(theirs[key], ours[key], rtol=1e-6, atol=1e-9)
    assert mae.vit.config.mask_ratio == 0.75  # restored

    beit = BeitModel(BeitConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, use_shared_relative_position_bias=True,
                                use_absolute_position_embeddings=False, layer_scale_init_value=0.1)).eval()  # fmt: skip
    stats = attention_statistics(beit, x)
    beit.config._attn_implementation = "eager"
    with torch.no_grad():
        probs = beit(pixel_values=x, output_attentions=True).attentions  # relative position bias included
    for layer in range(2):
        dist, ent, kl = numpy_statistics(probs[layer].double().numpy(), centres_of(4, 8).double().numpy())
        np.testing.assert_allclose(stats["distance"][layer], dist, rtol=1e-4)
        np.testing.assert_allclose(stats["entropy"][layer], ent, rtol=1e-4)
        assert stats["head_kl"][layer] == pytest.approx(kl, rel=1e-3, abs=1e-7)
