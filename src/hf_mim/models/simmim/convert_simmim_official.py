"""Official SimMIM checkpoints (microsoft/SimMIM) -> :class:`SimMIMForMaskedImageModeling` /
:class:`SimMIMForImageClassification`.

utils.py:49-61 (``save_checkpoint``, used by main_simmim.py and main_finetune.py) writes ``{"model", "optimizer",
"lr_scheduler", "max_accuracy", "epoch", "config" (the yacs CfgNode)[, "amp"]}``.

- Pretraining (``model`` = ``SimMIM``, models/simmim.py): ``encoder.`` + ``decoder.0`` (the 1x1 conv; the
  PixelShuffle has no weights).
  - ViT (``VisionTransformerForSimMIM``, models/vision_transformer.py): ``patch_embed.proj``, ``cls_token``,
    ``mask_token``, ``pos_embed`` only with ``USE_APE``, the shared ``rel_pos_bias.relative_position_bias_table``
    (lines 179-206) or one table per block (``USE_RPB``), ``blocks.i.{norm1, attn.qkv.weight, attn.q_bias,
    attn.v_bias, attn.proj, gamma_1, gamma_2, norm2, mlp.fc1, mlp.fc2}`` (lines 38-143; the qkv bias is
    ``[q_bias; 0; v_bias]``, line 96), ``norm`` (or ``fc_norm`` with ``USE_MEAN_POOLING``, lines 253-254) ->
    backbone ``beit`` (transformers' BeitModel with the same switches).
  - Swin (``SwinTransformerForSimMIM``, models/swin_transformer.py): ``patch_embed.{proj,norm}``, ``mask_token``,
    ``layers.i.blocks.j.{norm1, attn.relative_position_bias_table, attn.qkv, attn.proj, norm2, mlp.fc1,
    mlp.fc2}``, ``layers.i.downsample.{reduction,norm}`` (x0..x3 order at lines 319-322, as transformers' Swin),
    ``norm`` -> backbone ``swin``.
- Fine-tuned (main_finetune.py; ``model`` without the ``encoder.`` prefix, plus ``head``): ViT with per-block
  tables, ``fc_norm`` and mean pooling (configs/vit_base__800ep/simmim_finetune__vit_base__img224__800ep.yaml),
  Swin with ``norm`` + average pooling -> ``SimMIMForImageClassification``.

Buffers recomputed by transformers (``relative_position_index``, Swin's ``attn_mask``) are dropped.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import BeitConfig, SwinConfig

from ...convert_utils import KeyMapper, OfficialCheckpointError, heads_for, load_into, map_vit_block
from .configuration_simmim import SimMIMConfig
from .modeling_simmim import SimMIMForImageClassification, SimMIMForMaskedImageModeling

SOURCES = ("simmim",)

_TRAINING_STATE = {"optimizer", "lr_scheduler", "max_accuracy", "epoch", "config", "amp", "scaler"}


def _cfg(checkpoint: dict, *path: str):
    node = checkpoint.get("config")
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _linear(keys: KeyMapper, src: str, dst: str, bias: bool = True) -> dict:
    out = {f"{dst}.weight": keys.take(f"{src}.weight")}
    if bias:
        out[f"{dst}.bias"] = keys.take(f"{src}.bias")
    return out


def _vit(keys: KeyMapper, src: str, checkpoint: dict, classification: bool) -> tuple[BeitConfig, dict]:
    blocks = keys.indices(f"{src}blocks.")
    shared = keys.has(f"{src}rel_pos_bias.relative_position_bias_table")
    per_block = keys.has(f"{src}blocks.0.attn.relative_position_bias_table")
    patch_weight = keys.peek(f"{src}patch_embed.proj.weight")  # [D, C, p, p]
    hidden, channels, patch = (int(n) for n in patch_weight.shape[:3])
    table_key = (f"{src}rel_pos_bias.relative_position_bias_table" if shared
                 else f"{src}blocks.0.attn.relative_position_bias_table" if per_block else None)  # fmt: skip
    if keys.has(f"{src}pos_embed"):
        grid = round((keys.peek(f"{src}pos_embed").shape[1] - 1) ** 0.5)
    elif table_key:  # (2 * grid - 1)^2 + 3 rows, vision_transformer.py:61
        grid = (round(math.sqrt(keys.peek(table_key).shape[0] - 3)) + 1) // 2
    else:
        raise OfficialCheckpointError("SimMIM ViT without position embedding or relative position bias: cannot "
                                      "infer its image size; pass encoder_config.image_size.")  # fmt: skip
    heads = int(keys.peek(table_key).shape[1]) if table_key else (_cfg(checkpoint, "MODEL", "VIT", "NUM_HEADS")
                                                                  or heads_for(hidden))  # fmt: skip
    layer_scale = keys.has(f"{src}blocks.0.gamma_1")
    mean_pooling = keys.has(f"{src}fc_norm.weight")
    encoder = BeitConfig(
        image_size=int(_cfg(checkpoint, "DATA", "IMG_SIZE") or grid * patch),
        patch_size=patch,
        num_channels=channels,
        hidden_size=hidden,
        num_hidden_layers=len(blocks),
        num_attention_heads=heads,
        intermediate_size=int(keys.peek(f"{src}blocks.0.mlp.fc1.weight").shape[0]),
        use_absolute_position_embeddings=keys.has(f"{src}pos_embed"),
        use_relative_position_bias=per_block,
        use_shared_relative_position_bias=shared,
        layer_scale_init_value=float(_cfg(checkpoint, "MODEL", "VIT", "INIT_VALUES") or 0.1) if layer_scale else 0.0,
        use_mean_pooling=mean_pooling,
        layer_norm_eps=1e-6,
        drop_path_rate=float(_cfg(checkpoint, "MODEL", "DROP_PATH_RATE") or 0.1),
    )
    dst = "simmim.encoder."
    state = {
        f"{dst}embeddings.cls_token": keys.take(f"{src}cls_token"),
        **_linear(keys, f"{src}patch_embed.proj", f"{dst}embeddings.patch_embeddings.projection"),
    }
    if not classification:
        state[f"{dst}embeddings.mask_token"] = keys.take(f"{src}mask_token")
    if keys.has(f"{src}pos_embed"):
        state[f"{dst}embeddings.position_embeddings"] = keys.take(f"{src}pos_embed")
    if shared:
        state[f"{dst}shared_position_bias.relative_position_bias_table"] = keys.take(table_key)
    keys.drop(rf"{src}(rel_pos_bias\.|blocks\.\d+\.attn\.)relative_position_index",
              "BEiT relative position index buffer (recomputed by transformers' BeitModel)")  # fmt: skip
    for i in blocks:
        s, d = f"{src}blocks.{i}.", f"{dst}layers.{i}."
        state.update(map_vit_block(keys, s, d, qkv_bias=False))  # SimMIM's qkv bias is separate q / v vectors
        if keys.has(f"{s}attn.q_bias"):
            state[f"{d}attention.q_proj.bias"] = keys.take(f"{s}attn.q_bias")
            state[f"{d}attention.v_proj.bias"] = keys.take(f"{s}attn.v_bias")
        else:  # QKV_BIAS False: BEiT's q / v projections always have a bias; zero is the same function
            state[f"{d}attention.q_proj.bias"] = state[f"{d}attention.q_proj.weight"].new_zeros(encoder.hidden_size)
            state[f"{d}attention.v_proj.bias"] = state[f"{d}attention.v_proj.weight"].new_zeros(encoder.hidden_size)
        if per_block:
            state[f"{d}relative_position_bias.relative_position_bias_table"] = keys.take(
                f"{s}attn.relative_position_bias_table"
            )
        if layer_scale:
            state[f"{d}lambda_1"] = keys.take(f"{s}gamma_1")
            state[f"{d}lambda_2"] = keys.take(f"{s}gamma_2")
    if mean_pooling:
        state.update(_linear(keys, f"{src}fc_norm", f"{dst}pooler.layernorm"))
    else:
        state.update(_linear(keys, f"{src}norm", f"{dst}layernorm"))
    return encoder, state


def _swin(keys: KeyMapper, src: str, checkpoint: dict, classification: bool) -> tuple[SwinConfig, dict]:
    stages = keys.indices(f"{src}layers.")
    depths = [len(keys.indices(f"{src}layers.{i}.blocks.")) for i in stages]
    heads = [int(keys.peek(f"{src}layers.{i}.blocks.0.attn.relative_position_bias_table").shape[1]) for i in stages]
    table = keys.peek(f"{src}layers.0.blocks.0.attn.relative_position_bias_table")
    window = (round(math.sqrt(table.shape[0])) + 1) // 2  # (2 * window - 1)^2 rows
    patch_weight = keys.peek(f"{src}patch_embed.proj.weight")
    embed, channels, patch = (int(n) for n in patch_weight.shape[:3])
    image_size = _cfg(checkpoint, "DATA", "IMG_SIZE")
    if image_size is None and keys.has(f"{src}layers.0.blocks.1.attn_mask"):  # [windows, N, N] of stage 0
        image_size = round(math.sqrt(keys.peek(f"{src}layers.0.blocks.1.attn_mask").shape[0])) * window * patch
    if image_size is None:
        raise OfficialCheckpointError("SimMIM Swin checkpoint without its config or a shifted-window mask: cannot "
                                      "infer its image size; pass encoder_config.image_size.")  # fmt: skip
    encoder = SwinConfig(
        image_size=int(image_size),
        patch_size=patch,
        num_channels=channels,
        embed_dim=embed,
        depths=depths,
        num_heads=heads,
        window_size=int(_cfg(checkpoint, "MODEL", "SWIN", "WINDOW_SIZE") or window),
        mlp_ratio=keys.peek(f"{src}layers.0.blocks.0.mlp.fc1.weight").shape[0] / embed,
        qkv_bias=keys.has(f"{src}layers.0.blocks.0.attn.qkv.bias"),
        use_absolute_embeddings=keys.has(f"{src}absolute_pos_embed"),
        layer_norm_eps=1e-5,
        drop_path_rate=float(_cfg(checkpoint, "MODEL", "DROP_PATH_RATE") or 0.0),
    )
    dst = "simmim.encoder."
    state = {
        **_linear(keys, f"{src}patch_embed.proj", f"{dst}embeddings.patch_embeddings.projection"),
        **_linear(keys, f"{src}patch_embed.norm", f"{dst}embeddings.norm"),
        **_linear(keys, f"{src}norm", f"{dst}layernorm"),
    }
    if not classification:
        state[f"{dst}embeddings.mask_token"] = keys.take(f"{src}mask_token")
    if keys.has(f"{src}absolute_pos_embed"):
        state[f"{dst}embeddings.position_embeddings"] = keys.take(f"{src}absolute_pos_embed")
    keys.drop(rf"{src}layers\.\d+\.blocks\.\d+\.attn\.relative_position_index",
              "Swin relative position index buffer (recomputed by transformers' SwinModel)")  # fmt: skip
    keys.drop(rf"{src}layers\.\d+\.blocks\.\d+\.attn_mask", "Swin shifted-window mask buffer (recomputed)")
    for i, depth in zip(stages, depths):
        for j in range(depth):
            s, d = f"{src}layers.{i}.blocks.{j}.", f"{dst}encoder.layers.{i}.blocks.{j}."
            state.update(map_vit_block(keys, s, d, qkv_bias=encoder.qkv_bias))
            state[f"{d}attention.relative_position_bias.relative_position_bias_table"] = keys.take(
                f"{s}attn.relative_position_bias_table"
            )
        if keys.has(f"{src}layers.{i}.downsample.reduction.weight"):
            state.update(_linear(keys, f"{src}layers.{i}.downsample.reduction",
                                 f"{dst}encoder.layers.{i}.downsample.reduction", bias=False))  # fmt: skip
            state.update(_linear(keys, f"{src}layers.{i}.downsample.norm", f"{dst}encoder.layers.{i}.downsample.norm"))
    return encoder, state


def convert(checkpoint: dict, source: str | None = None, **config_overrides: Any):
    """Converts a loaded official SimMIM checkpoint (pretraining or fine-tuned; ViT or Swin).

    Args:
        checkpoint: The dict ``torch.load`` returned.
        source: ``"simmim"`` (the only layout).
        config_overrides: :class:`SimMIMConfig` fields (``encoder_config`` a dict of encoder fields) that win over
            what the checkpoint says.

    Returns:
        The model (``SimMIMForMaskedImageModeling`` for pretraining checkpoints, ``SimMIMForImageClassification``
        for fine-tuned ones; eval mode) and a report: ``source``, ``dropped``, ``epoch``.
    """
    if source not in (None, "simmim"):
        raise OfficialCheckpointError(f"`source` must be one of {SOURCES} for SimMIM, got {source!r}.")
    if "model" not in checkpoint or not isinstance(checkpoint["model"], dict):
        raise OfficialCheckpointError(f"Not a microsoft/SimMIM checkpoint (no `model` state dict); top-level keys: "
                                      f"{sorted(checkpoint)}.")  # fmt: skip
    unknown = set(checkpoint) - _TRAINING_STATE - {"model"}
    if unknown:
        raise OfficialCheckpointError(f"SimMIM checkpoint: unexpected top-level entries {sorted(unknown)}.")
    state_in = checkpoint["model"]
    pretraining = any(key.startswith("encoder.") for key in state_in)
    keys = KeyMapper(state_in, "SimMIM model")
    src = "encoder." if pretraining else ""
    is_swin = keys.has(f"{src}layers.0.blocks.0.attn.qkv.weight")
    if not is_swin and not keys.has(f"{src}blocks.0.attn.qkv.weight"):
        raise OfficialCheckpointError("SimMIM model state is neither its ViT (`blocks.`) nor its Swin (`layers.`).")
    encoder, state = (_swin if is_swin else _vit)(keys, src, checkpoint, classification=not pretraining)
    kwargs: dict[str, Any] = {
        "backbone": "swin" if is_swin else "beit",
        "mask_patch_size": int(_cfg(checkpoint, "DATA", "MASK_PATCH_SIZE") or 32),
        "mask_ratio": float(_cfg(checkpoint, "DATA", "MASK_RATIO") or 0.6),
    }
    encoder_overrides = config_overrides.pop("encoder_config", {}) or {}
    for key, value in encoder_overrides.items():
        setattr(encoder, key, value)
    kwargs.update(config_overrides)
    if pretraining:
        state.update(_linear(keys, "decoder.0", "decoder.0"))
        model_class = SimMIMForMaskedImageModeling
    else:
        head = keys.peek("head.weight")
        kwargs["num_labels"] = int(head.shape[0])
        state.update(_linear(keys, "head", "classifier"))
        model_class = SimMIMForImageClassification
    keys.finish()
    config = SimMIMConfig(encoder_config=encoder, **kwargs)
    model = model_class(config)
    load_into(model, state)
    report = {"source": "simmim", "dropped": keys.dropped, "epoch": checkpoint.get("epoch"),
              "kind": "pretraining" if pretraining else "fine-tuned classifier"}  # fmt: skip
    return model.eval(), report
