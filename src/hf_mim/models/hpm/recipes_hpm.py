"""HPM's official training recipes as data: every value with the Haochen-Wang409/HPM file:line it comes from.

``RECIPES`` maps a recipe name to ``(stage, values)``; :mod:`hf_mim.training.recipes` serves them (``get_recipe``),
with the precedence and scaling rules that apply to every method. Values are ``(value, "file:line")``.
"""

from __future__ import annotations

_HPM = "Haochen-Wang409/HPM "
_HPM_PT = _HPM + "main_pretrain.py"
_HPM_FT = _HPM + "main_finetune.py"

_HPM_PT_VALUES = {
    "preset": ("base", _HPM + "scripts/pretrain_base.sh:5 (mae_vit_base_patch16_dec512d8b)"),
    "warmup_epochs": (40, _HPM + "scripts/pretrain_base.sh:10"),
    "batch_size": (256, _HPM + "scripts/pretrain_base.sh:1,3 (8 GPUs x 32)"),
    "base_learning_rate": (1.5e-4, _HPM + "scripts/pretrain_base.sh:11"),
    "lr_batch_divisor": (256, f"{_HPM_PT}:241"),
    "warmup_start_lr": (0.0, _HPM + "util/lr_sched.py:14"),
    "min_lr": (0.0, f"{_HPM_PT}:97"),
    "scale_lr_bounds": (False, _HPM + "util/lr_sched.py:14-17"),
    "schedule": ("cosine", _HPM + "util/lr_sched.py:16-17 (cosine after the warm-up)"),
    "optimizer": ("adamw", f"{_HPM_PT}:255"),
    "betas": ((0.9, 0.95), f"{_HPM_PT}:255"),
    "eps": (1e-8, f"{_HPM_PT}:255 (torch.optim.AdamW default)"),
    "weight_decay": (0.05, _HPM + "scripts/pretrain_base.sh:11"),
    # timm's add_weight_decay(model, wd) with no skip list: [CLS] and [MASK] are decayed, 1-D and biases are not
    "no_weight_decay": ((), f"{_HPM_PT}:254 (timm optim_factory.add_weight_decay, skip_list=())"),
    "max_grad_norm": (
        5.0,
        _HPM + "util/misc.py:256 (clip_grad=5.) called without clip_grad at engine_pretrain.py:125",
    ),
    "mask_ratio": (0.75, _HPM + "scripts/pretrain_base.sh:8"),
    "norm_pix_loss": (False, f"{_HPM_PT}:59-61 (store_true, default False; the scripts do not pass it)"),
    "crop_scale": ((0.2, 1.0), _HPM + "mask_transform.py:87"),
}

_HPM_FT_VALUES = {
    "epochs": (100, _HPM + "scripts/finetune_base.sh:7"),
    "warmup_epochs": (5, _HPM + "scripts/finetune_base.sh:8"),
    "batch_size": (384, _HPM + "scripts/finetune_base.sh:1,3 (8 GPUs x 48)"),
    "base_learning_rate": (5e-4, _HPM + "scripts/finetune_base.sh:9"),
    "lr_batch_divisor": (256, f"{_HPM_FT}:280"),
    "warmup_start_lr": (0.0, _HPM + "util/lr_sched.py:14"),
    "min_lr": (1e-6, f"{_HPM_FT}:69"),
    "scale_lr_bounds": (False, _HPM + "util/lr_sched.py:14-17"),
    "schedule": ("cosine", _HPM + "util/lr_sched.py:16-17"),
    "optimizer": ("adamw", f"{_HPM_FT}:297"),
    "betas": ((0.9, 0.999), f"{_HPM_FT}:297 (torch.optim.AdamW default)"),
    "eps": (1e-8, f"{_HPM_FT}:297"),
    "weight_decay": (0.05, _HPM + "scripts/finetune_base.sh:9"),
    # models_vit.VisionTransformer.no_weight_decay (timm): pos_embed, cls_token
    "no_weight_decay": (("cls_token", "position_embeddings"), f"{_HPM_FT}:293-294 + util/lr_decay.py:31"),
    "max_grad_norm": (0.0, f"{_HPM_FT}:59 (clip_grad None)"),
    "layer_decay": (0.8, _HPM + "scripts/finetune_base.sh:9"),
    "drop_path_rate": (0.1, _HPM + "scripts/finetune_base.sh:10"),
    "use_fc_norm": (True, f"{_HPM_FT}:109-110 (global_pool: mean of the patch tokens, then fc_norm)"),
    "fc_norm_init": ("fresh", f"{_HPM_FT}:261-262 (fc_norm is new; the encoder's final norm is dropped)"),
    "head_init": (("std", 2e-5), f"{_HPM_FT}:267"),
    "label_smoothing": (0.1, f"{_HPM_FT}:79"),
    "mixup_alpha": (0.8, _HPM + "scripts/finetune_base.sh:10"),
    "cutmix_alpha": (1.0, _HPM + "scripts/finetune_base.sh:10"),
    "mixup_prob": (1.0, f"{_HPM_FT}:99"),
    "mixup_switch_prob": (0.5, f"{_HPM_FT}:101"),
    "rand_augment": ("rand-m9-mstd0.5-inc1", f"{_HPM_FT}:77"),
    "random_erasing_prob": (0.25, _HPM + "scripts/finetune_base.sh:10"),
    "random_erasing_mode": ("pixel", f"{_HPM_FT}:85"),
    "crop_scale": ((0.08, 1.0), _HPM + "util/datasets.py:66-72 (timm create_transform default scale)"),
    "resample": ("bicubic", _HPM + "util/datasets.py:71"),
}


RECIPES: dict[str, tuple[str, dict]] = {
    "hpm-vit-b-200ep": (
        "pretrain",
        {
                **_HPM_PT_VALUES,
                "epochs": (200, _HPM + "README.md:51 (the 200-epoch row; scripts/pretrain_base.sh:9 otherwise)"),
            },
    ),
    "hpm-vit-b-800ep": (
        "pretrain",
        {**_HPM_PT_VALUES, "epochs": (800, _HPM + "scripts/pretrain_base.sh:9")},
    ),
    "hpm-vit-b-ft": (
        "finetune",
        _HPM_FT_VALUES,
    ),
}  # fmt: skip
