"""Forward passes written from the official code's definitions, on state dicts in the official key layouts.

They let the converter tests check a converted model against outputs computed without hf_mim or transformers:
a pre-norm ViT with a fused ``qkv`` (timm / SlowFast / MAE / mmpretrain names), SimMIM's ViT (q/v biases, layer
scale, BEiT's relative position bias with its three [CLS] entries) and MAE's encoder / decoder / loss predictor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TIMM = {"norm1": "norm1", "qkv": "attn.qkv", "proj": "attn.proj", "norm2": "norm2", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}
MMPRETRAIN = {"norm1": "ln1", "qkv": "attn.qkv", "proj": "attn.proj", "norm2": "ln2", "fc1": "ffn.layers.0.0",
              "fc2": "ffn.layers.1"}  # fmt: skip


def layer_norm(x, sd, name, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"], eps)


def linear(x, sd, name):
    return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))


def block(x, sd, p, heads, names=TIMM, rel_bias=None, eps=1e-6):
    """One pre-norm transformer block; ``qkv`` rows are [q; k; v]; SimMIM's bias is [q_bias; 0; v_bias]."""
    b, n, d = x.shape
    h = layer_norm(x, sd, p + names["norm1"], eps)
    bias = sd.get(f"{p}{names['qkv']}.bias")
    if f"{p}attn.q_bias" in sd:
        bias = torch.cat([sd[f"{p}attn.q_bias"], torch.zeros_like(sd[f"{p}attn.v_bias"]), sd[f"{p}attn.v_bias"]])
    qkv = F.linear(h, sd[f"{p}{names['qkv']}.weight"], bias).reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn = (q * (d // heads) ** -0.5) @ k.transpose(-2, -1)
    if rel_bias is not None:
        attn = attn + rel_bias
    out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
    out = linear(out, sd, p + names["proj"])
    if f"{p}gamma_1" in sd:
        out = sd[f"{p}gamma_1"] * out
    x = x + out
    mlp = linear(
        F.gelu(linear(layer_norm(x, sd, p + names["norm2"], eps), sd, p + names["fc1"])), sd, p + names["fc2"]
    )
    if f"{p}gamma_2" in sd:
        mlp = sd[f"{p}gamma_2"] * mlp
    return x + mlp


def patch_embed(x, sd, name):
    return (
        F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], stride=sd[f"{name}.weight"].shape[-1])
        .flatten(2)
        .transpose(1, 2)
    )


def masked_vit(x, mask, sd, prefix, heads, names=TIMM, patch="patch_embed.proj", depth_prefix="blocks."):
    """MaskFeat's encoder (SlowFast masked.py _maskfeat_forward / mmpretrain MaskFeatViT.forward): mask tokens
    replace masked patch embeddings, [CLS] prepended, learned positions added, blocks. Returns ``[B, 1 + L, D]``
    before the final norm."""
    t = patch_embed(x, sd, prefix + patch)
    w = mask.unsqueeze(-1).float()
    t = t * (1 - w) + sd[prefix + "mask_token"] * w
    t = torch.cat([sd[prefix + "cls_token"].expand(t.shape[0], -1, -1), t], dim=1) + sd[prefix + "pos_embed"]
    i = 0
    while f"{prefix}{depth_prefix}{i}.{names['fc1']}.weight" in sd:
        t = block(t, sd, f"{prefix}{depth_prefix}{i}.", heads, names)
        i += 1
    return t


def beit_relative_position_bias(table: torch.Tensor, grid: int) -> torch.Tensor:
    """SimMIM vision_transformer.py RelativePositionBias: ``[heads, 1 + N, 1 + N]`` with the three extra entries
    (cls->token, token->cls, cls->cls) at the end of the table."""
    num_relative = (2 * grid - 1) ** 2 + 3
    coords = torch.stack(torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel[:, :, 0] += grid - 1
    rel[:, :, 1] += grid - 1
    rel[:, :, 0] *= 2 * grid - 1
    index = torch.zeros(grid * grid + 1, grid * grid + 1, dtype=torch.long)
    index[1:, 1:] = rel.sum(-1)
    index[0, 0:] = num_relative - 3
    index[0:, 0] = num_relative - 2
    index[0, 0] = num_relative - 1
    n = grid * grid + 1
    return table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)


def simmim_vit(x, mask, sd, heads, grid, prefix="encoder."):
    """VisionTransformerForSimMIM.forward (models/simmim.py) -> feature map before the decoder, ``[B, D, g, g]``."""
    t = patch_embed(x, sd, prefix + "patch_embed.proj")
    if mask is not None:
        w = mask.unsqueeze(-1).float()
        t = t * (1 - w) + sd[prefix + "mask_token"] * w
    t = torch.cat([sd[prefix + "cls_token"].expand(t.shape[0], -1, -1), t], dim=1)
    if prefix + "pos_embed" in sd:
        t = t + sd[prefix + "pos_embed"]
    shared = sd.get(prefix + "rel_pos_bias.relative_position_bias_table")
    i = 0
    while f"{prefix}blocks.{i}.mlp.fc1.weight" in sd:
        table = sd.get(f"{prefix}blocks.{i}.attn.relative_position_bias_table", shared)
        bias = beit_relative_position_bias(table, grid) if table is not None else None
        t = block(t, sd, f"{prefix}blocks.{i}.", heads, rel_bias=bias)
        i += 1
    return t


def mae_forward(x, mask, sd, heads, decoder_heads, patch):
    """models_mae_learn_loss.py forward_encoder / forward_decoder: returns the pixel predictions and predicted losses
    in the official token order ([visible..., masked...], each in index order), ``[B, L, p*p*C]`` and ``[B, L]``."""
    b = x.shape[0]
    t = patch_embed(x, sd, "patch_embed.proj") + sd["pos_embed"][:, 1:]
    d = t.shape[-1]
    t = t[~mask].reshape(b, -1, d)
    t = torch.cat([(sd["cls_token"] + sd["pos_embed"][:, :1]).expand(b, -1, -1), t], dim=1)
    i = 0
    while f"blocks.{i}.mlp.fc1.weight" in sd:
        t = block(t, sd, f"blocks.{i}.", heads)
        i += 1
    latent = layer_norm(t, sd, "norm")
    y = linear(latent, sd, "decoder_embed")
    dd = y.shape[-1]
    pos = sd["decoder_pos_embed"][:, 1:].expand(b, -1, -1)
    tokens = torch.cat([y[:, 1:] + pos[~mask].reshape(b, -1, dd), sd["mask_token"] + pos[mask].reshape(b, -1, dd)], 1)
    y = torch.cat([y[:, :1] + sd["decoder_pos_embed"][:, :1], tokens], dim=1)
    pred, loss_pred = y, y.clone()
    i = 0
    while f"decoder_blocks.{i}.mlp.fc1.weight" in sd:
        pred = block(pred, sd, f"decoder_blocks.{i}.", decoder_heads)
        loss_pred = block(loss_pred, sd, f"decoder_blocks_losspred.{i}.", decoder_heads)
        i += 1
    pred = linear(layer_norm(pred, sd, "decoder_norm"), sd, "decoder_pred")[:, 1:]
    loss_pred = linear(layer_norm(loss_pred, sd, "decoder_norm_losspred"), sd, "decoder_pred_losspred")[:, 1:]
    return pred, loss_pred.mean(-1)


def rand(generator, *shape, offset=0.0):
    """Random weights with std 0.2 (so that every weight matters), plus ``offset`` (1 for norm scales)."""
    return torch.randn(*shape, generator=generator) * 0.2 + offset


def random_block(sd, p, dim, mlp, generator, names=TIMM, qkv_bias=True):
    """Adds one official-layout block's random weights to ``sd`` under the prefix ``p``."""
    for key, shape in ((names["norm1"], (dim,)), (names["norm2"], (dim,)), (names["proj"], (dim, dim)),
                       (names["fc1"], (mlp, dim)), (names["fc2"], (dim, mlp))):  # fmt: skip
        sd[f"{p}{key}.weight"] = rand(generator, *shape, offset=1.0 if len(shape) == 1 else 0.0)
        sd[f"{p}{key}.bias"] = rand(generator, shape[0])
    sd[f"{p}{names['qkv']}.weight"] = rand(generator, 3 * dim, dim)
    if qkv_bias:
        sd[f"{p}{names['qkv']}.bias"] = rand(generator, 3 * dim)
