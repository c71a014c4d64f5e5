"""Official HPM checkpoints (Haochen-Wang409/HPM) -> :class:`HPMForPreTraining`.

``main_pretrain.py:282-295`` writes ``{"epoch", "state_dict", "optimizer", "model" (architecture name),
"ema_state_dict", "loss_scaler"}`` (``util/misc.py``'s ``save_model`` is never called). ``state_dict`` is the
DDP-wrapped student (keys ``module.``; none on one GPU), ``ema_state_dict`` timm's ``ModelEma`` copy made before the
DDP wrap (main_pretrain.py:236, no prefix). Both are ``MaskedAutoencoderViT`` of models_mae_learn_loss.py:
``patch_embed.proj``, ``cls_token``, ``pos_embed`` (fixed sin-cos), ``blocks.i`` (timm blocks, fused qkv),
``norm``, ``decoder_embed``, ``mask_token``, ``decoder_pos_embed``, ``decoder_blocks.i``, ``decoder_norm``,
``decoder_pred`` (lines 49-77) and the loss predictor ``decoder_blocks_losspred.i``, ``decoder_norm_losspred``,
``decoder_pred_losspred`` (lines 80-84). The teacher only scores patches (encoder on all patches, decoder embedding,
loss-predictor branch), so the EMA copy's mask token and pixel decoder are dropped.

Training configuration reproduced (scripts/pretrain_base.sh, main_pretrain.py): ``norm_pix_loss`` off (argparse
default, lines 59-61; the scripts never pass it), mask ratio 0.75, ``--learning_loss --relative``.
"""

from __future__ import annotations

from typing import Any

import torch

from ...convert_utils import KeyMapper, OfficialCheckpointError, load_into, map_vit_block
from .configuration_hpm import HPMConfig
from .modeling_hpm import HPMForPreTraining

SOURCES = ("hpm",)

#: models_mae_learn_loss.py:330-352: (patch, width, depth, heads, decoder width, decoder depth, decoder heads)
ARCHITECTURES = {
    "mae_vit_base_patch16_dec512d8b": (16, 768, 12, 12, 512, 8, 16),
    "mae_vit_large_patch16_dec512d8b": (16, 1024, 24, 16, 512, 8, 16),
    "mae_vit_huge_patch14_dec512d8b": (14, 1280, 32, 16, 512, 8, 16),
}

_TRAINING_STATE = {"epoch", "optimizer", "loss_scaler", "model", "args", "scaler"}

_TEACHER_UNUSED = r"(mask_token|decoder_pos_embed|decoder_blocks\.\d+\..*|decoder_norm\..*|decoder_pred\..*)"


def _strip_module(state: dict) -> dict:
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module.") :]: value for key, value in state.items()}
    return dict(state)


def _map_encoder(keys: KeyMapper, dst: str) -> dict:
    state = {
        f"{dst}embeddings.patch_embeddings.projection.weight": keys.take("patch_embed.proj.weight"),
        f"{dst}embeddings.patch_embeddings.projection.bias": keys.take("patch_embed.proj.bias"),
        f"{dst}embeddings.cls_token": keys.take("cls_token"),
        f"{dst}embeddings.position_embeddings": keys.take("pos_embed"),
        f"{dst}layernorm.weight": keys.take("norm.weight"),
        f"{dst}layernorm.bias": keys.take("norm.bias"),
    }
    for i in keys.indices("blocks."):
        state.update(map_vit_block(keys, f"blocks.{i}.", f"{dst}layers.{i}."))
    return state


def _map_loss_predictor(keys: KeyMapper, dst: str) -> dict:
    state = {}
    for i in keys.indices("decoder_blocks_losspred."):
        state.update(map_vit_block(keys, f"decoder_blocks_losspred.{i}.", f"{dst}layers.{i}."))
    for ours, theirs in (("norm", "decoder_norm_losspred"), ("pred", "decoder_pred_losspred")):
        for kind in ("weight", "bias"):
            state[f"{dst}{ours}.{kind}"] = keys.take(f"{theirs}.{kind}")
    return state


def convert(checkpoint: dict, source: str | None = None, total_epochs: int | None = None,
            **config_overrides: Any) -> tuple[HPMForPreTraining, dict]:  # fmt: skip
    """Converts a loaded official HPM pretraining checkpoint.

    Args:
        checkpoint: The dict ``torch.load`` returned.
        source: ``"hpm"`` (the only layout).
        total_epochs: Length of the official run, for the easy-to-hard schedule if pretraining continues; by
            default the checkpoint's own epoch (a finished run).
        config_overrides: :class:`HPMConfig` fields that win over what the checkpoint says.

    Returns:
        The model (eval mode) and a report: ``source``, ``dropped`` (key -> reason), ``epoch``.
    """
    if source not in (None, "hpm"):
        raise OfficialCheckpointError(f"`source` must be one of {SOURCES} for HPM, got {source!r}.")
    if "state_dict" not in checkpoint:
        raise OfficialCheckpointError(f"Not an HPM main_pretrain.py checkpoint (no `state_dict`); top-level keys: "
                                      f"{sorted(checkpoint)}.")  # fmt: skip
    unknown = set(checkpoint) - _TRAINING_STATE - {"state_dict", "ema_state_dict"}
    if unknown:
        raise OfficialCheckpointError(f"HPM checkpoint: unexpected top-level entries {sorted(unknown)}.")
    keys = KeyMapper(_strip_module(checkpoint["state_dict"]), "HPM state_dict")
    for unsupported in ("vis_mask_token", "saliency_model.conv1.weight"):
        if keys.has(unsupported):
            raise OfficialCheckpointError(f"HPM state_dict has {unsupported!r} (--vis_mask_ratio / saliency "
                                          "variants), which hf_mim's HPM does not implement.")  # fmt: skip
    mining = keys.has("decoder_pred_losspred.weight")
    patch_weight = keys.peek("patch_embed.proj.weight")
    hidden, channels, patch = (int(n) for n in patch_weight.shape[:3])
    decoder = int(keys.peek("decoder_embed.weight").shape[0])
    grid = round((keys.peek("pos_embed").shape[1] - 1) ** 0.5)
    name = checkpoint.get("model")
    arch = ARCHITECTURES.get(name) if isinstance(name, str) else None
    target_dim = int(keys.peek("decoder_pred.weight").shape[0])
    if target_dim != patch * patch * channels:
        raise OfficialCheckpointError(f"decoder_pred has {target_dim} outputs, not patch pixels "
                                      f"({patch}x{patch}x{channels}): a feature-target variant "
                                      "(models_mae_learn_feature_loss.py), not supported.")  # fmt: skip
    if arch is None:  # not recorded: MAE's standard head sizes (encoder 64 per head, decoder 32 per head)
        heads, decoder_heads = hidden // 64, decoder // 32
    else:
        heads, decoder_heads = arch[3], arch[6]
    kwargs: dict[str, Any] = {
        "image_size": grid * patch,
        "patch_size": patch,
        "num_channels": channels,
        "hidden_size": hidden,
        "num_hidden_layers": len(keys.indices("blocks.")),
        "num_attention_heads": heads,
        "intermediate_size": int(keys.peek("blocks.0.mlp.fc1.weight").shape[0]),
        "decoder_hidden_size": decoder,
        "decoder_num_hidden_layers": len(keys.indices("decoder_blocks.")),
        "decoder_num_attention_heads": decoder_heads,
        "decoder_intermediate_size": int(keys.peek("decoder_blocks.0.mlp.fc1.weight").shape[0]),
        "layer_norm_eps": 1e-6,
        "mask_ratio": 0.75,
        "norm_pix_loss": False,
        "hard_patches_mining": mining,
        "loss_predictor_loss": "relative",
    }
    kwargs.update(config_overrides)
    config = HPMConfig(**kwargs)

    state = _map_encoder(keys, "hpm.encoder.")
    state.update({
        "decoder.mask_token": keys.take("mask_token"),
        "decoder.decoder_pos_embed": keys.take("decoder_pos_embed"),
        "decoder.decoder_embed.weight": keys.take("decoder_embed.weight"),
        "decoder.decoder_embed.bias": keys.take("decoder_embed.bias"),
        "decoder.decoder_norm.weight": keys.take("decoder_norm.weight"),
        "decoder.decoder_norm.bias": keys.take("decoder_norm.bias"),
        "decoder.decoder_pred.weight": keys.take("decoder_pred.weight"),
        "decoder.decoder_pred.bias": keys.take("decoder_pred.bias"),
    })  # fmt: skip
    for i in keys.indices("decoder_blocks."):
        state.update(map_vit_block(keys, f"decoder_blocks.{i}.", f"decoder.decoder_layers.{i}."))
    if mining and config.hard_patches_mining:
        state.update(_map_loss_predictor(keys, "loss_predictor."))
    elif mining:
        keys.drop(r"decoder_(blocks|norm|pred)_losspred\..*", "loss predictor (hard_patches_mining=False)")
    keys.finish()

    dropped = {f"state_dict:{k}": v for k, v in keys.dropped.items()}
    has_teacher = False
    if "ema_state_dict" in checkpoint and config.hard_patches_mining:
        teacher = KeyMapper(_strip_module(checkpoint["ema_state_dict"]), "HPM ema_state_dict")
        # hf_mim's teacher reads the decoder positions of the student: both are the fixed sin-cos table
        # (requires_grad=False, models_mae_learn_loss.py:69-70), so the EMA copy's equals it up to the rounding of
        # timm's ModelEma updates (it averages every state entry, fixed ones included)
        if not torch.allclose(teacher.peek("decoder_pos_embed"), state["decoder.decoder_pos_embed"], atol=1e-5):
            raise OfficialCheckpointError("HPM ema_state_dict: decoder_pos_embed differs from the student's; the "
                                          "official one is fixed, so this file was not written by main_pretrain.py.")  # fmt: skip
        teacher.drop(_TEACHER_UNUSED, "the EMA copy's pixel decoder and mask token: the teacher only scores patches")
        state.update(_map_encoder(teacher, "teacher.encoder."))
        state["teacher.decoder_embed.weight"] = teacher.take("decoder_embed.weight")
        state["teacher.decoder_embed.bias"] = teacher.take("decoder_embed.bias")
        state.update(_map_loss_predictor(teacher, "teacher.loss_predictor."))
        teacher.finish()
        dropped.update({f"ema_state_dict:{k}": v for k, v in teacher.dropped.items()})
        has_teacher = True
    elif "ema_state_dict" in checkpoint:
        dropped["ema_state_dict"] = "teacher of a model converted with hard_patches_mining=False"

    model = HPMForPreTraining(config)
    load_into(model, state, allowed_missing=("training_epoch", "total_epochs", "teacher."))
    if model.teacher is not None and not has_teacher:
        model.reset_teacher()
    epoch = checkpoint.get("epoch")
    if isinstance(epoch, int) and epoch > 0:
        model.set_training_progress(epoch, max(epoch, total_epochs or epoch))
    report = {"source": "hpm", "dropped": dropped, "epoch": epoch, "teacher": "ema_state_dict" if has_teacher
              else ("copy of the student" if model.teacher is not None else None)}  # fmt: skip
    return model.eval(), report
