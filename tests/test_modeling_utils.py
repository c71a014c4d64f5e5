"""Fresh models start from their papers' initialisation (checked on statistics: transformers' init guard skips
branches for modules without direct parameters)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hf_mim import HPMConfig, HPMForPreTraining, get_model_spec


def xavier_std(fan_in: int, fan_out: int) -> float:
    return math.sqrt(2.0 / (fan_in + fan_out))


def test_fresh_hpm_matches_maes_initialisation():
    """MAE (official main_pretrain / models_mae): xavier-uniform Linear and patch embedding (as a Linear), [CLS] and
    [MASK] normal(0.02), fixed sin-cos positions. Per-parameter std within 10%."""
    torch.manual_seed(0)
    model = HPMForPreTraining(HPMConfig.from_preset("small"))
    emb = model.hpm.encoder.embeddings
    w = emb.patch_embeddings.projection.weight
    assert w.std().item() == pytest.approx(xavier_std(w[0].numel(), w.shape[0]), rel=0.1)
    assert emb.cls_token.std().item() == pytest.approx(0.02, rel=0.1) and emb.cls_token.abs().sum() > 0
    assert model.decoder.mask_token.std().item() == pytest.approx(0.02, rel=0.1)
    fc1 = model.hpm.encoder.layers[0].mlp.fc1.weight
    assert fc1.std().item() == pytest.approx(xavier_std(fc1.shape[1], fc1.shape[0]), rel=0.1)
    assert torch.equal(model.teacher.encoder.embeddings.cls_token, emb.cls_token)  # the teacher starts as a copy


@pytest.mark.parametrize("method", ["maskfeat", "simmim"])
def test_fresh_maskfeat_and_simmim_match_their_truncated_normal_init(method):
    """MaskFeat (SlowFast) and SimMIM: truncated normal std 0.02 on Linear / patch embedding and the tokens."""
    spec = get_model_spec(method)
    config = spec.config_class.from_preset("base" if method == "maskfeat" else "vit-base")
    torch.manual_seed(0)
    model = spec.pretraining_class(config)
    encoder = getattr(model, model.base_model_prefix).encoder
    for name, tensor in [("patch", encoder.embeddings.patch_embeddings.projection.weight),
                         ("fc1", encoder.layers[0].mlp.fc1.weight), ("cls", encoder.embeddings.cls_token),
                         ("mask", encoder.embeddings.mask_token), ("pos", encoder.embeddings.position_embeddings)]:  # fmt: skip
        # as timm's trunc_normal_(std=0.02): the bounds (+-2) are absolute, so the std stays 0.02
        assert tensor.std().item() == pytest.approx(0.02, rel=0.1), name


# -- another resolution: every interpolated tensor against an interpolation written here -------------------------


def _bicubic(grid_tensor, size):
    """[C, h, w] -> [C, H, W], PyTorch's bicubic (a = -0.75), align_corners=False."""
    return torch.nn.functional.interpolate(grid_tensor[None].float(), size=size, mode="bicubic", align_corners=False)[
        0
    ]


def _sincos(grid: int, dim: int) -> np.ndarray:
    """MAE's util/pos_embed.py: 2-D sin-cos table with a zero [CLS] row, written out here (its "h" half is the
    column index: np.meshgrid(grid_w, grid_h)[0])."""
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
    ys, xs = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")
    halves = []
    for pos in (xs.reshape(-1), ys.reshape(-1)):
        out = np.einsum("m,d->md", pos, omega)
        halves.append(np.concatenate([np.sin(out), np.cos(out)], axis=1))
    return np.concatenate([np.zeros((1, dim)), np.concatenate(halves, axis=1)], axis=0)  # the column index first


def test_learned_positions_are_resized_with_cls_kept(tmp_path):
    from hf_mim import MaskFeatForImageClassification, MaskFeatForPreTraining

    spec = get_model_spec("maskfeat")
    pretrained = MaskFeatForPreTraining(spec.tiny_config())  # 32 px, patch 8: a 4 x 4 grid
    pretrained.save_pretrained(tmp_path)
    model = MaskFeatForImageClassification.from_pretrained(tmp_path, num_labels=3, image_size=64)
    table = pretrained.maskfeat.encoder.embeddings.position_embeddings.detach()[0]  # [17, D]
    expected = _bicubic(table[1:].T.reshape(-1, 4, 4), (8, 8)).reshape(table.shape[1], 64).T
    got = model.maskfeat.encoder.embeddings.position_embeddings.detach()[0]
    assert model.config.image_size == 64 and model.config.num_labels == 3
    torch.testing.assert_close(got[0], table[0])  # [CLS] as it was
    torch.testing.assert_close(got[1:], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.maskfeat.encoder.layers[0].mlp.fc1.weight,
                               pretrained.maskfeat.encoder.layers[0].mlp.fc1.weight)  # fmt: skip
    assert model(pixel_values=torch.randn(1, 3, 64, 64)).logits.shape == (1, 3)


def test_fixed_sincos_tables_are_recomputed_and_the_teacher_kept(tmp_path):
    from hf_mim import HPMForPreTraining

    spec = get_model_spec("hpm")
    pretrained = HPMForPreTraining(spec.tiny_config())
    with torch.no_grad():
        pretrained.teacher.encoder.layers[0].mlp.fc1.weight.add_(1.0)  # a teacher unlike the student
    pretrained.save_pretrained(tmp_path)
    model = HPMForPreTraining.from_pretrained(tmp_path, image_size=64)
    dim, decoder_dim = model.config.hidden_size, model.config.decoder_hidden_size
    for got, width in ((model.hpm.encoder.embeddings.position_embeddings, dim),
                       (model.teacher.encoder.embeddings.position_embeddings, dim),
                       (model.decoder.decoder_pos_embed, decoder_dim)):  # fmt: skip
        np.testing.assert_allclose(got.detach()[0].numpy(), _sincos(8, width), atol=1e-6)
    torch.testing.assert_close(model.teacher.encoder.layers[0].mlp.fc1.weight,
                               pretrained.teacher.encoder.layers[0].mlp.fc1.weight)  # fmt: skip


def test_a_wrapped_encoder_decides_which_of_its_tables_are_fixed(tmp_path):
    """HPM calls its positions fixed (MAE's sin-cos); the learned table of a ViT it wraps is still resized, and the
    fixed table of a wrapped ViTMAE recomputed."""
    from transformers import AutoModel, ViTConfig, ViTMAEConfig

    from hf_mim import HPMModel

    sizes = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
             "image_size": 32, "patch_size": 8}  # fmt: skip
    decoder = {"decoder_hidden_size": 32, "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 2,
               "decoder_intermediate_size": 64}  # fmt: skip
    for name, config in (("vit", ViTConfig(**sizes)), ("vit_mae", ViTMAEConfig(**sizes))):
        torch.manual_seed(0)
        backbone = AutoModel.from_config(config)
        HPMForPreTraining.from_backbone(backbone, **decoder).save_pretrained(tmp_path / name)
        model = HPMModel.from_pretrained(tmp_path / name, image_size=64)
        got = model.encoder.model.embeddings.position_embeddings.detach()[0]
        table = backbone.embeddings.position_embeddings.detach()[0]
        if name == "vit":
            expected = _bicubic(table[1:].T.reshape(-1, 4, 4), (8, 8)).reshape(32, 64).T
            torch.testing.assert_close(got[1:], expected, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_allclose(got.numpy(), _sincos(8, 32), atol=1e-6)


def test_beit_and_swin_relative_tables_are_resized(tmp_path):
    spec = get_model_spec("simmim")
    beit = spec.pretraining_class(spec.tiny_config(backbone="beit"))  # 4 x 4 grid: (2*4-1)^2 + 3 rows
    beit.save_pretrained(tmp_path / "beit")
    resized = spec.classification_class.from_pretrained(tmp_path / "beit", num_labels=2, image_size=64)
    table = beit.simmim.encoder.shared_position_bias.relative_position_bias_table.detach()  # [52, heads]
    got = resized.simmim.encoder.shared_position_bias.relative_position_bias_table.detach()  # [228, heads]
    expected = _bicubic(table[:49].T.reshape(-1, 7, 7), (15, 15)).reshape(table.shape[1], 225).T
    torch.testing.assert_close(got[:225], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[225:], table[49:])  # the three [CLS] rows as they were

    swin = spec.pretraining_class(spec.tiny_config(backbone="swin"))  # window 4
    swin.save_pretrained(tmp_path / "swin")
    resized = spec.classification_class.from_pretrained(tmp_path / "swin", num_labels=2, image_size=64, window_size=8)
    before, after = swin.state_dict(), resized.state_dict()
    tables = [k for k in before if k.endswith("relative_position_bias_table")]
    assert tables and resized.config.encoder_config.window_size == 8
    for key in tables:
        side = round(before[key].shape[0] ** 0.5)
        new_side = round(after[key].shape[0] ** 0.5)
        expected = _bicubic(before[key].T.reshape(-1, side, side), (new_side, new_side)).reshape(-1, new_side**2).T
        torch.testing.assert_close(after[key], expected, rtol=1e-5, atol=1e-6)
    assert resized(pixel_values=torch.randn(1, 3, 64, 64)).logits.shape == (1, 2)


def test_loading_arguments_still_apply_at_another_resolution(tmp_path):
    from hf_mim import MaskFeatForPreTraining

    spec = get_model_spec("maskfeat")
    MaskFeatForPreTraining(spec.tiny_config()).save_pretrained(tmp_path)
    model, info = MaskFeatForPreTraining.from_pretrained(tmp_path, image_size=64, dtype=torch.float64,
                                                         output_loading_info=True)  # fmt: skip
    assert model.dtype == torch.float64 and model.config.image_size == 64 and not info["missing_keys"]
    assert model.maskfeat.encoder.embeddings.position_embeddings.shape == (1, 65, model.config.hidden_size)
