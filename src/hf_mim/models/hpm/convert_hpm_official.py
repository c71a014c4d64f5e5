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

facebookresearch/mae files (``source="mae"``, HPM with mining off is MAE): ``util/misc.py:save_model`` (lines
300-318) writes ``{"model", "optimizer", "epoch", "scaler", "args"}`` with the unwrapped ``MaskedAutoencoderViT`` of
models_mae.py (lines 31-68: the names above without the loss predictor) and the run's ``argparse.Namespace``
(``model``, ``mask_ratio``, ``norm_pix_loss``). The released ``mae_pretrain_vit_*.pth`` hold ``{"model"}`` with the
encoder only (trained with ``--norm_pix_loss``, PRETRAIN.md): the decoder is then freshly initialised, and the report
says so. ``mae_visualize_vit_*.pth`` hold the whole model, trained on raw pixels (``norm_pix_loss`` off: the
"pixels as targets for visualization" models of demo/mae_visualize.ipynb).
"""

from __future__ import annotations

from typing import Any

import torch

from ...convert_utils import KeyMapper, OfficialCheckpointError, load_into, map_vit_block
from .configuration_hpm import HPMConfig
from .modeling_hpm import HPMForPreTraining

SOURCES = ("hpm", "mae")

#: models_mae_learn_loss.py:330-352: (patch, width, depth, heads, decoder width, decoder depth, decoder heads)
ARCHITECTURES = {
    "mae_vit_base_patch16_dec512d8b": (16, 768, 12, 12, 512, 8, 16),
    "mae_vit_large_patch16_dec512d8b": (16, 1024, 24, 16, 512, 8, 16),
    "mae_vit_huge_patch14_dec512d8b": (14, 1280, 32, 16, 512, 8, 16),
}
#: the names runs record (``--model``, facebookresearch/mae models_mae.py:240-243): the same architectures
ARCHITECTURES.update({name.removesuffix("_dec512d8b"): sizes for name, sizes in list(ARCHITECTURES.items())})
#: encoder heads by width where no name is recorded (the released encoder files): ViT-B 12, ViT-L and ViT-H 16
HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 16}

_TRAINING_STATE = {"epoch", "optimizer", "loss_scaler", "model", "args", "scaler"}

#: facebookresearch/mae models_mae.py:222-243 (the same names and sizes as HPM's, without the loss predictor)
MAE_DECODER = {"decoder_hidden_size": 512, "decoder_num_hidden_layers": 8, "decoder_num_attention_heads": 16,
               "decoder_intermediate_size": 2048}  # fmt: skip

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
        source: ``"hpm"`` (HPM's main_pretrain.py) or ``"mae"`` (facebookresearch/mae); detected when None.
        total_epochs: Length of the official run, for the easy-to-hard schedule if pretraining continues; by
            default the checkpoint's own epoch (a finished run).
        config_overrides: :class:`HPMConfig` fields that win over what the checkpoint says.

    Returns:
        The model (eval mode) and a report: ``source``, ``dropped`` (key -> reason), ``epoch``.
    """
    layout = "mae" if isinstance(checkpoint.get("model"), dict) else "hpm"
    if source not in (None, *SOURCES):
        raise OfficialCheckpointError(f"`source` must be one of {SOURCES} for HPM, got {source!r}.")
    if source is not None and source != layout:
        raise OfficialCheckpointError(f"This file has the {layout!r} layout (top-level keys {sorted(checkpoint)}), not "
                                      f"{source!r}.")  # fmt: skip
    if layout == "mae":
        return _convert_mae(checkpoint, **config_overrides)
    if "state_dict" not in checkpoint:
        raise OfficialCheckpointError(f"Not an HPM main_pretrain.py checkpoint (no `state_dict`) nor a MAE one (no "
                                      f"`model` state); top-level keys: {sorted(checkpoint)}.")  # fmt: skip
    unknown = set(checkpoint) - _TRAINING_STATE - {"state_dict", "ema_state_dict"}
    if unknown:
        raise OfficialCheckpointError(f"HPM checkpoint: unexpected top-level entries {sorted(unknown)}.")
    keys = KeyMapper(_strip_module(checkpoint["state_dict"]), "HPM state_dict")
    for unsupported in ("vis_mask_token", "saliency_model.conv1.weight"):
        if keys.has(unsupported):
            raise OfficialCheckpointError(f"HPM state_dict has {unsupported!r} (--vis_mask_ratio / saliency "
                                          "variants), which hf_mim's HPM does not implement.")  # fmt: skip
    mining = keys.has("decoder_pred_losspred.weight")
    kwargs = _architecture(keys, checkpoint.get("model"))
    kwargs.update({"mask_ratio": 0.75, "norm_pix_loss": False, "hard_patches_mining": mining,
                   "loss_predictor_loss": "relative", **config_overrides})  # fmt: skip
    config = HPMConfig(**kwargs)

    state = _map_encoder(keys, "hpm.encoder.")
    state.update(_map_decoder(keys))
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


def _architecture(keys: KeyMapper, name: Any) -> dict[str, Any]:
    """HPMConfig sizes read from the state dict (heads from the recorded architecture name, else MAE's 64 / 32 per
    head); the decoder's only when the file has one."""
    hidden, channels, patch = (int(n) for n in keys.peek("patch_embed.proj.weight").shape[:3])
    grid = round((keys.peek("pos_embed").shape[1] - 1) ** 0.5)
    arch = ARCHITECTURES.get(name) if isinstance(name, str) else None
    kwargs: dict[str, Any] = {
        "image_size": grid * patch, "patch_size": patch, "num_channels": channels, "hidden_size": hidden,
        "num_hidden_layers": len(keys.indices("blocks.")),
        "num_attention_heads": arch[3] if arch else HEADS_BY_WIDTH.get(hidden, hidden // 64),
        "intermediate_size": int(keys.peek("blocks.0.mlp.fc1.weight").shape[0]), "layer_norm_eps": 1e-6,
    }  # fmt: skip
    if not keys.has("decoder_embed.weight"):
        return kwargs
    decoder = int(keys.peek("decoder_embed.weight").shape[0])
    target_dim = int(keys.peek("decoder_pred.weight").shape[0])
    if target_dim != patch * patch * channels:
        raise OfficialCheckpointError(f"decoder_pred has {target_dim} outputs, not patch pixels "
                                      f"({patch}x{patch}x{channels}): a feature-target variant "
                                      "(models_mae_learn_feature_loss.py), not supported.")  # fmt: skip
    kwargs.update({
        "decoder_hidden_size": decoder, "decoder_num_hidden_layers": len(keys.indices("decoder_blocks.")),
        "decoder_num_attention_heads": arch[6] if arch else decoder // 32,
        "decoder_intermediate_size": int(keys.peek("decoder_blocks.0.mlp.fc1.weight").shape[0]),
    })  # fmt: skip
    return kwargs


def _map_decoder(keys: KeyMapper) -> dict:
    state = {
        "decoder.mask_token": keys.take("mask_token"),
        "decoder.decoder_pos_embed": keys.take("decoder_pos_embed"),
        "decoder.decoder_embed.weight": keys.take("decoder_embed.weight"),
        "decoder.decoder_embed.bias": keys.take("decoder_embed.bias"),
        "decoder.decoder_norm.weight": keys.take("decoder_norm.weight"),
        "decoder.decoder_norm.bias": keys.take("decoder_norm.bias"),
        "decoder.decoder_pred.weight": keys.take("decoder_pred.weight"),
        "decoder.decoder_pred.bias": keys.take("decoder_pred.bias"),
    }
    for i in keys.indices("decoder_blocks."):
        state.update(map_vit_block(keys, f"decoder_blocks.{i}.", f"decoder.decoder_layers.{i}."))
    return state


def _convert_mae(checkpoint: dict, **config_overrides: Any) -> tuple[HPMForPreTraining, dict]:
    """A facebookresearch/mae file (training layout, or a released encoder-only / visualisation model) -> HPM with
    hard patches mining off, which is MAE."""
    unknown = set(checkpoint) - _TRAINING_STATE
    if unknown:
        raise OfficialCheckpointError(f"MAE checkpoint: unexpected top-level entries {sorted(unknown)}.")
    keys = KeyMapper(_strip_module(checkpoint["model"]), "MAE model")
    if keys.has("decoder_pred_losspred.weight"):
        raise OfficialCheckpointError("This `model` state has a loss predictor: an HPM model saved with MAE's "
                                      "save_model; convert it with source='hpm' after renaming `model` to "
                                      "`state_dict`.")  # fmt: skip
    args = checkpoint.get("args")
    with_decoder = keys.has("decoder_embed.weight")
    kwargs = _architecture(keys, getattr(args, "model", None))
    if not with_decoder:  # a released encoder: MAE's decoder sizes, trained afresh
        kwargs.update(MAE_DECODER)
    # the run's own settings when recorded; else the release's: encoders were trained with --norm_pix_loss, the
    # visualisation models on raw pixels
    norm_pix = getattr(args, "norm_pix_loss", None)
    kwargs.update({"mask_ratio": float(getattr(args, "mask_ratio", 0.75)),
                   "norm_pix_loss": (not with_decoder) if norm_pix is None else bool(norm_pix),
                   "hard_patches_mining": False, **config_overrides})  # fmt: skip
    config = HPMConfig(**kwargs)
    state = _map_encoder(keys, "hpm.encoder.")
    if with_decoder:
        state.update(_map_decoder(keys))
    keys.finish()
    model = HPMForPreTraining(config)
    load_into(
        model, state, allowed_missing=("training_epoch", "total_epochs") + (() if with_decoder else ("decoder.",))
    )
    epoch = checkpoint.get("epoch")
    report = {"source": "mae", "dropped": {f"model:{k}": v for k, v in keys.dropped.items()}, "epoch": epoch,
              "teacher": None, "decoder": "from the file" if with_decoder else
              "freshly initialised (the file holds the encoder only)"}  # fmt: skip
    return model.eval(), report
