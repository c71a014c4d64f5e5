"""Fresh models start from their papers' initialisation (checked on statistics: transformers' init guard skips
branches for modules without direct parameters)."""

from __future__ import annotations

import math

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
