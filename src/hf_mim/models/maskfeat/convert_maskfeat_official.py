"""Official MaskFeat checkpoints -> :class:`MaskFeatForPreTraining`.

Sources (read from the official code; ``file:line`` at facebookresearch/SlowFast 287ec00 and open-mmlab/mmpretrain):

- ``slowfast``: ``in1k_VIT_{B,L}_MaskFeat_PT_epoch_01600.pyth`` as slowfast/utils/checkpoint.py:133-138 writes it:
  ``{"epoch", "model_state", "optimizer_state", "cfg" (YAML text)[, "scaler_state"]}``. ``model_state`` is
  ``MaskMViT`` (slowfast/models/masked.py) in its ViT configuration (configs/masked_ssl/in1k_VIT_B_MaskFeat_PT.yaml):
  ``patch_embed.proj``, ``cls_token``, ``pos_embed`` (video_model_builder.py:887-903), ``blocks.i`` with a fused
  ``attn.qkv`` (attention.py:193, split as ``[q; k; v]`` at :306-310), ``mask_token`` (masked.py:110), the
  prediction head ``pred_head.transforms.0.0`` (the final LayerNorm, head_helper.py:639; the encoder's own ``norm``
  is deleted, masked.py:30) + ``pred_head.projections.0`` (head_helper.py:641), and the HOG operator's Sobel
  buffers ``hogs.0.weight_{x,y}`` (operators.py:71-72; no Gaussian window: masked.py:53-56 uses the default 0).
- ``mmpretrain``: its released ``maskfeat_vit-base-p16_8xb256-amp-coslr-300e_in1k_*.pth``: ``{"meta", "state_dict"}``
  with ``backbone.`` (MaskFeatViT: mmpretrain ViT names ``layers.i.ln1 / attn.qkv / attn.proj / ln2 /
  ffn.layers.0.0 / ffn.layers.1``, final norm ``ln1``, ``mask_token``: models/selfsup/maskfeat.py:231-296),
  ``neck.fc`` (LinearNeck 768 -> 108, config line 50) and ``target_generator.`` buffers (HOGGenerator with
  ``gaussian_window=16``, config line 57, kernel buffer at maskfeat.py:52).
"""

from __future__ import annotations

from typing import Any

import yaml

from ...convert_utils import KeyMapper, OfficialCheckpointError, heads_for, load_into, map_vit_block
from .configuration_maskfeat import MaskFeatConfig
from .modeling_maskfeat import MaskFeatForPreTraining

SOURCES = ("slowfast", "mmpretrain")

#: Top-level entries of the official files that are training state, not weights.
_TRAINING_STATE = {"epoch", "optimizer_state", "scaler_state", "cfg", "optimizer", "meta", "message_hub",
                   "param_schedulers", "ema_state_dict"}  # fmt: skip


def detect_source(checkpoint: dict) -> str:
    if "model_state" in checkpoint:
        return "slowfast"
    if "state_dict" in checkpoint and any(k.startswith("backbone.") for k in checkpoint["state_dict"]):
        return "mmpretrain"
    raise OfficialCheckpointError(
        f"Not a MaskFeat checkpoint of SlowFast (`model_state`) or mmpretrain (`state_dict` with `backbone.` keys); "
        f"top-level keys: {sorted(checkpoint)}."
    )


def _slowfast_cfg(checkpoint: dict) -> dict:
    """The run's config from the checkpoint's YAML text (``yaml.safe_load``: data only)."""
    text = checkpoint.get("cfg")
    if not isinstance(text, str):
        return {}
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return cfg if isinstance(cfg, dict) else {}


def convert(
    checkpoint: dict, source: str | None = None, **config_overrides: Any
) -> tuple[MaskFeatForPreTraining, dict]:
    """Converts a loaded official MaskFeat checkpoint.

    Args:
        checkpoint: The dict ``torch.load`` returned.
        source: ``"slowfast"`` or ``"mmpretrain"``; detected from the layout when None.
        config_overrides: :class:`MaskFeatConfig` fields that win over what the checkpoint says.

    Returns:
        The model (eval mode) and a report: ``source``, ``dropped`` (key -> reason), ``epoch`` when recorded.
    """
    source = source or detect_source(checkpoint)
    if source not in SOURCES:
        raise OfficialCheckpointError(f"`source` must be one of {SOURCES} for MaskFeat, got {source!r}.")
    unknown = set(checkpoint) - _TRAINING_STATE - {"model_state", "state_dict"}
    if unknown:
        raise OfficialCheckpointError(f"MaskFeat {source} checkpoint: unexpected top-level entries {sorted(unknown)}.")
    if source == "slowfast":
        keys = KeyMapper(checkpoint["model_state"], "SlowFast MaskMViT model_state")
        names = {"patch": "patch_embed.proj", "cls": "cls_token", "pos": "pos_embed", "mask": "mask_token",
                 "blocks": "blocks.", "norm": "pred_head.transforms.0.0", "head": "pred_head.projections.0"}  # fmt: skip
        style = "timm"
        if keys.indices("pred_head.projections.") != [0] or keys.indices("pred_head.transforms.0.") != [0]:
            raise OfficialCheckpointError("SlowFast MaskMViT with several prediction depths or a transformer head "
                                          "(MASK.PRETRAIN_DEPTH / HEAD_TYPE) is not the paper's image MaskFeat.")  # fmt: skip
        keys.drop(r"hogs\.\d+\.weight_[xy]", "the HOG operator's fixed Sobel filters (recomputed by hf_mim)")
        cfg = _slowfast_cfg(checkpoint)
        mvit, aug = cfg.get("MVIT", {}), cfg.get("AUG", {})
        window = 0
        mask_ratio = float(aug.get("MASK_RATIO", 0.4))
        heads = mvit.get("NUM_HEADS")
        image_size = cfg.get("DATA", {}).get("TRAIN_CROP_SIZE")
    else:
        keys = KeyMapper(checkpoint["state_dict"], "mmpretrain MaskFeat state_dict")
        names = {"patch": "backbone.patch_embed.projection", "cls": "backbone.cls_token",
                 "pos": "backbone.pos_embed", "mask": "backbone.mask_token", "blocks": "backbone.layers.",
                 "norm": "backbone.ln1", "head": "neck.fc"}  # fmt: skip
        style = "mmpretrain"
        window = 0
        if keys.has("target_generator.gaussian_kernel"):
            window = int(keys.peek("target_generator.gaussian_kernel").shape[-1])
        keys.drop(r"target_generator\..*", "the HOG generator's fixed buffers (recomputed by hf_mim)")
        mask_ratio = 0.4  # BEiTMaskGenerator(num_masking_patches=78 of 196), config lines 23-24
        heads, image_size = None, None

    patch_weight = keys.peek(f"{names['patch']}.weight")  # [D, C, p, p]
    hidden, channels, patch = patch_weight.shape[0], patch_weight.shape[1], patch_weight.shape[-1]
    grid = round((keys.peek(names["pos"]).shape[1] - 1) ** 0.5)
    blocks = keys.indices(names["blocks"])
    fc1 = "mlp.fc1" if style == "timm" else "ffn.layers.0.0"
    head_dim = keys.peek(f"{names['head']}.weight").shape[0]
    kwargs: dict[str, Any] = {
        "image_size": int(image_size or grid * patch),
        "patch_size": int(patch),
        "num_channels": int(channels),
        "hidden_size": int(hidden),
        "num_hidden_layers": len(blocks),
        "num_attention_heads": int(heads or config_overrides.get("num_attention_heads") or heads_for(hidden)),
        "intermediate_size": int(keys.peek(f"{names['blocks']}0.{fc1}.weight").shape[0]),
        "layer_norm_eps": 1e-6,
        "hog_nbins": 9,
        "hog_cell_size": 8,
        "hog_gaussian_window": window,
        "mask_ratio": mask_ratio,
        "mask_min_num_patches": 15,
    }
    kwargs.update(config_overrides)
    config = MaskFeatConfig(**kwargs)
    if config.hog_dim != head_dim:
        raise OfficialCheckpointError(f"The prediction head has {head_dim} outputs but HOG with these settings has "
                                      f"{config.hog_dim}; check hog_nbins / hog_cell_size.")  # fmt: skip

    prefix = "maskfeat.encoder."
    state = {
        f"{prefix}embeddings.patch_embeddings.projection.weight": keys.take(f"{names['patch']}.weight"),
        f"{prefix}embeddings.patch_embeddings.projection.bias": keys.take(f"{names['patch']}.bias"),
        f"{prefix}embeddings.cls_token": keys.take(names["cls"]),
        f"{prefix}embeddings.position_embeddings": keys.take(names["pos"]),
        f"{prefix}embeddings.mask_token": keys.take(names["mask"]),
        f"{prefix}layernorm.weight": keys.take(f"{names['norm']}.weight"),
        f"{prefix}layernorm.bias": keys.take(f"{names['norm']}.bias"),
        "head.weight": keys.take(f"{names['head']}.weight"),
        "head.bias": keys.take(f"{names['head']}.bias"),
    }
    for i in blocks:
        state.update(map_vit_block(keys, f"{names['blocks']}{i}.", f"{prefix}layers.{i}.", style, config.qkv_bias))
    keys.finish()
    model = MaskFeatForPreTraining(config)
    load_into(model, state)
    report = {"source": source, "dropped": keys.dropped}
    if isinstance(checkpoint.get("epoch"), int):
        report["epoch"] = checkpoint["epoch"]
    return model.eval(), report
