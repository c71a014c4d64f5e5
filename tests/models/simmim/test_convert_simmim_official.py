"""microsoft/SimMIM checkpoints (utils.py save_checkpoint layout): the ViT (checked against SimMIM's ViT forward
written in tests/official_reference.py, BEiT relative position bias included) and the Swin (checked against
transformers' SwinForMaskedImageModeling, an independent Swin, whose weights the test writes in the official
layout); pretraining and fine-tuned checkpoints; the config stored as a yacs CfgNode loads without yacs."""

import operator
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    AutoModelForImageClassification,
    AutoModelForPreTraining,
    SwinConfig,
    SwinForMaskedImageModeling,
)

import hf_mim  # noqa: F401
from hf_mim.convert import convert_official_checkpoint
from hf_mim.convert_utils import OfficialCheckpointError

from ...official_reference import layer_norm, linear, rand, random_block, simmim_vit

DIM, HEADS, DEPTH, PATCH, GRID = 32, 2, 2, 8, 4


class CfgNode(dict):
    """Stands in for yacs.config.CfgNode when writing the test files (pickled under yacs's own name)."""


def with_yacs_config(values: dict) -> dict:
    """The checkpoint's ``config`` entry as SimMIM saves it: a yacs CfgNode tree."""
    module = types.ModuleType("yacs.config")
    module.CfgNode = CfgNode
    CfgNode.__module__ = "yacs.config"
    sys.modules.setdefault("yacs", types.ModuleType("yacs"))
    sys.modules["yacs.config"] = module

    def node(d):
        return CfgNode({k: node(v) if isinstance(v, dict) else v for k, v in d.items()})

    return node(values)


def vit_state(g, prefix, shared=True, finetuned=False):
    """VisionTransformerForSimMIM / VisionTransformer (models/vision_transformer.py) names."""
    n_rel = (2 * GRID - 1) ** 2 + 3
    sd = {f"{prefix}patch_embed.proj.weight": rand(g, DIM, 3, PATCH, PATCH), f"{prefix}patch_embed.proj.bias": rand(g, DIM),
          f"{prefix}cls_token": rand(g, 1, 1, DIM)}  # fmt: skip
    if not finetuned:
        sd[f"{prefix}mask_token"] = rand(g, 1, 1, DIM)
    if shared:
        sd[f"{prefix}rel_pos_bias.relative_position_bias_table"] = rand(g, n_rel, HEADS) * 5
        sd[f"{prefix}rel_pos_bias.relative_position_index"] = torch.zeros(GRID * GRID + 1, GRID * GRID + 1).long()
    for i in range(DEPTH):
        p = f"{prefix}blocks.{i}."
        random_block(sd, p, DIM, 4 * DIM, g, qkv_bias=False)
        sd.update({f"{p}attn.q_bias": rand(g, DIM), f"{p}attn.v_bias": rand(g, DIM), f"{p}gamma_1": rand(g, DIM),
                   f"{p}gamma_2": rand(g, DIM)})  # fmt: skip
        if not shared:
            sd[f"{p}attn.relative_position_bias_table"] = rand(g, n_rel, HEADS) * 5
            sd[f"{p}attn.relative_position_index"] = torch.zeros(GRID * GRID + 1, GRID * GRID + 1).long()
    name = "fc_norm" if finetuned else "norm"
    sd.update({f"{prefix}{name}.weight": rand(g, DIM, offset=1.0), f"{prefix}{name}.bias": rand(g, DIM)})
    return sd


def vit_pretraining_state(seed=0):
    """A whole SimMIM ViT pretraining model: ``encoder.`` + the 1x1-conv ``decoder.0``."""
    g = torch.Generator().manual_seed(seed)
    sd = vit_state(g, "encoder.")
    sd.update(
        {"decoder.0.weight": rand(g, PATCH * PATCH * 3, DIM, 1, 1), "decoder.0.bias": rand(g, PATCH * PATCH * 3)}
    )
    return sd


def save(path, model_state, config):
    torch.save({"model": model_state, "optimizer": {"state": {}, "param_groups": []},
                "lr_scheduler": {"decay_t": 700, "base_values": [1e-4]}, "max_accuracy": 0.0, "epoch": 799,
                "config": config}, path)  # fmt: skip


def vit_config():
    return with_yacs_config({"MODEL": {"TYPE": "vit", "DROP_PATH_RATE": 0.1, "VIT": {"INIT_VALUES": 0.1}},
                             "DATA": {"IMG_SIZE": 32, "MASK_PATCH_SIZE": 16, "MASK_RATIO": 0.6}})  # fmt: skip


def test_official_simmim_vit_pretraining_matches(tmp_path):
    sd = vit_pretraining_state()
    save(tmp_path / "vit.pth", sd, vit_config())
    model, report = convert_official_checkpoint("simmim", tmp_path / "vit.pth", return_report=True)
    encoder = model.config.encoder_config
    assert model.config.backbone == "beit" and model.config.mask_patch_size == 16
    assert (encoder.use_shared_relative_position_bias, encoder.use_absolute_position_embeddings) == (True, False)
    assert encoder.num_attention_heads == HEADS and encoder.image_size == 32
    assert set(report["dropped"]) == {"encoder.rel_pos_bias.relative_position_index"}
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    mask = (torch.rand(2, 2, 2) < 0.6).repeat_interleave(2, 1).repeat_interleave(2, 2).flatten(1)
    with torch.no_grad():
        out = model(pixel_values=x, bool_masked_pos=mask)
        tokens = layer_norm(simmim_vit(x, mask, sd, HEADS, GRID), sd, "encoder.norm")[:, 1:]
        feature = tokens.transpose(1, 2).reshape(2, DIM, GRID, GRID)
        rec = F.pixel_shuffle(F.conv2d(feature, sd["decoder.0.weight"], sd["decoder.0.bias"]), PATCH)
    torch.testing.assert_close(out.reconstruction, rec, atol=1e-4, rtol=1e-4)
    m = mask.view(2, GRID, GRID).repeat_interleave(PATCH, 1).repeat_interleave(PATCH, 2).unsqueeze(1).float()
    expected = (F.l1_loss(x, rec, reduction="none") * m).sum() / (m.sum() + 1e-5) / 3  # models/simmim.py
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_official_simmim_vit_finetuned_matches(tmp_path):
    g = torch.Generator().manual_seed(1)
    sd = vit_state(g, "", shared=False, finetuned=True)
    sd.update({"head.weight": rand(g, 5, DIM), "head.bias": rand(g, 5)})
    save(tmp_path / "ft.pth", sd, vit_config())
    model = convert_official_checkpoint("simmim", tmp_path / "ft.pth")
    assert type(model).__name__ == "SimMIMForImageClassification" and model.config.num_labels == 5
    assert model.config.encoder_config.use_relative_position_bias and model.config.encoder_config.use_mean_pooling
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = simmim_vit(x, None, sd, HEADS, GRID, prefix="")
        logits = linear(layer_norm(tokens[:, 1:].mean(1), sd, "fc_norm"), sd, "head")  # forward_features + head
        torch.testing.assert_close(model(pixel_values=x).logits, logits, atol=1e-4, rtol=1e-4)


def tiny_swin(classification=False):
    config = SwinConfig(image_size=32, patch_size=2, embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=4,
                        encoder_stride=4, drop_path_rate=0.0, num_labels=3)  # fmt: skip
    torch.manual_seed(0)
    if classification:
        from transformers import SwinForImageClassification

        model = SwinForImageClassification(config)
    else:
        model = SwinForMaskedImageModeling(config)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    return model.eval()


def to_official_swin(model, prefix):
    """transformers Swin -> models/swin_transformer.py names (q, k, v rows concatenated into ``qkv``)."""
    sd, out = model.state_dict(), {}
    base = "swin."
    for key, value in sd.items():
        if not key.startswith(base):
            continue
        k = key[len(base) :]
        k = (k.replace("embeddings.patch_embeddings.projection", "patch_embed.proj")
              .replace("embeddings.norm", "patch_embed.norm").replace("embeddings.mask_token", "mask_token")
              .replace("encoder.layers", "layers").replace("layernorm_before", "norm1")
              .replace("layernorm_after", "norm2").replace("attention.o_proj", "attn.proj")
              .replace("attention.relative_position_bias.", "attn."))  # fmt: skip
        if k == "layernorm.weight" or k == "layernorm.bias":
            k = "norm." + k.split(".")[1]
        if ".attention.q_proj." in k:
            kind = k.rsplit(".", 1)[1]
            stem = key.rsplit(".attention.q_proj.", 1)[0]
            k = k.replace("attention.q_proj", "attn.qkv")
            value = torch.cat([sd[f"{stem}.attention.{p}_proj.{kind}"] for p in "qkv"])
        elif ".attention.k_proj." in k or ".attention.v_proj." in k:
            continue
        out[prefix + k] = value
    for i, depth in enumerate(model.config.depths):  # buffers the official Swin saves
        for j in range(depth):
            window = model.config.window_size
            out[f"{prefix}layers.{i}.blocks.{j}.attn.relative_position_index"] = torch.zeros(
                window**2, window**2
            ).long()
    out[f"{prefix}layers.0.blocks.1.attn_mask"] = torch.zeros(16 // 4 * 16 // 4, 16, 16)  # 16x16 tokens, 4x4 windows
    return out


def test_official_simmim_swin_pretraining_matches_an_independent_swin(tmp_path):
    reference = tiny_swin()
    sd = to_official_swin(reference, "encoder.")
    sd["decoder.0.weight"], sd["decoder.0.bias"] = reference.decoder[0].weight, reference.decoder[0].bias
    save(tmp_path / "swin.pth", sd, with_yacs_config({"MODEL": {"TYPE": "swin"}, "DATA": {"MASK_PATCH_SIZE": 8}}))
    model, report = convert_official_checkpoint("simmim", tmp_path / "swin.pth", return_report=True)
    encoder = model.config.encoder_config
    assert (model.config.backbone, encoder.image_size, encoder.window_size, encoder.num_heads) == (
        "swin",
        32,
        4,
        [2, 4],
    )
    assert any(k.endswith("attn_mask") for k in report["dropped"])
    x = torch.randn(2, 3, 32, 32)
    mask = torch.rand(2, 16 * 16) < 0.6
    with torch.no_grad():
        want, got = reference(pixel_values=x, bool_masked_pos=mask), model(pixel_values=x, bool_masked_pos=mask)
    torch.testing.assert_close(got.reconstruction, want.reconstruction, atol=1e-4, rtol=1e-4)


def test_official_simmim_swin_finetuned_and_auto_loading(tmp_path):
    from hf_mim.cli.convert import main

    reference = tiny_swin(classification=True)
    sd = to_official_swin(reference, "")
    sd["head.weight"], sd["head.bias"] = reference.classifier.weight, reference.classifier.bias
    save(tmp_path / "ft.pth", sd, None)  # no config: the image size comes from the shifted-window mask
    out = main(["--method", "simmim", "--checkpoint", str(tmp_path / "ft.pth"), "--output_dir", str(tmp_path / "o"),
                "--config_overrides", "mask_patch_size=8"])  # fmt: skip
    model = AutoModelForImageClassification.from_pretrained(out)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            model(pixel_values=x).logits, reference(pixel_values=x).logits, atol=1e-4, rtol=1e-4
        )
    assert "image-classification" in (out / "README.md").read_text()


def test_converted_vit_folder_loads_with_auto_classes(tmp_path):
    sd = vit_pretraining_state()
    save(tmp_path / "vit.pth", sd, vit_config())
    from hf_mim.cli.convert import main

    out = main(["--method", "simmim", "--checkpoint", str(tmp_path / "vit.pth"), "--output_dir", str(tmp_path / "o")])
    assert type(AutoModelForPreTraining.from_pretrained(out)).__name__ == "SimMIMForMaskedImageModeling"
    assert type(AutoModelForImageClassification.from_pretrained(out, num_labels=2)).__name__ == (
        "SimMIMForImageClassification")  # fmt: skip


def test_unsafe_pickle_is_refused_unless_trusted(tmp_path):
    class Payload:  # unpickling calls an arbitrary function (here a harmless one)
        def __reduce__(self):
            return (operator.add, (1, 2))

    sd = vit_pretraining_state()
    torch.save({"model": sd, "config": vit_config(), "amp": {"x": Payload()}}, tmp_path / "p.pth")
    sys.modules.pop("yacs.config")  # loading needs no yacs
    with pytest.raises(OfficialCheckpointError, match=r"arbitrary unpickling.*--trust_pickle"):
        convert_official_checkpoint("simmim", tmp_path / "p.pth")
    vit_config()  # the trusted path unpickles the real classes again
    model = convert_official_checkpoint("simmim", tmp_path / "p.pth", trust_pickle=True)
    assert model.config.backbone == "beit"
