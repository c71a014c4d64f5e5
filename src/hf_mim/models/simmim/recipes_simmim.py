"""SimMIM's official training recipes as data: every value with the microsoft/SimMIM file:line it comes from.

``RECIPES`` maps a recipe name to ``(stage, values)``; :mod:`hf_mim.training.recipes` serves them (``get_recipe``),
with the precedence and scaling rules that apply to every method. Values are ``(value, "file:line")``.
"""

from __future__ import annotations

_SM = "microsoft/SimMIM "
_SM_CFG = _SM + "config.py"
_SM_VIT_PT = _SM + "configs/vit_base__800ep/simmim_pretrain__vit_base__img224__800ep.yaml"
_SM_VIT_FT = _SM + "configs/vit_base__800ep/simmim_finetune__vit_base__img224__800ep.yaml"
_SM_SWIN100 = _SM + "configs/swin_base__100ep/simmim_pretrain__swin_base__img192_window6__100ep.yaml"
_SM_SWIN800 = _SM + "configs/swin_base__800ep/simmim_pretrain__swin_base__img192_window6__800ep.yaml"
_SM_SWIN_FT = _SM + "configs/swin_base__100ep/simmim_finetune__swin_base__img224_window7__100ep.yaml"
_SM_README = _SM + "README.md:119-120,132-133 (16 GPUs x --batch-size 128)"

_SIMMIM_COMMON = {
    "batch_size": (2048, _SM_README),
    "lr_batch_divisor": (512, _SM + "main_simmim.py:218-220"),
    "scale_lr_bounds": (True, _SM + "main_simmim.py:219-220 (warm-up and minimum LR scale like the LR)"),
    "optimizer": ("adamw", f"{_SM_CFG}:125"),
    "betas": ((0.9, 0.999), f"{_SM_CFG}:129"),
    "eps": (1e-8, f"{_SM_CFG}:127"),
    "max_grad_norm": (5.0, f"{_SM_CFG}:102 + {_SM}main_simmim.py:147-148"),
    "mask_patch_size": (32, f"{_SM_CFG}:38"),
    "mask_ratio": (0.6, f"{_SM_CFG}:40"),
    "crop_scale": ((0.67, 1.0), _SM + "data/data_simmim.py:52"),
}

_SIMMIM_VIT_PT = {
    **_SIMMIM_COMMON,
    "preset": ("beit-base", f"{_SM_VIT_PT}:2-12 (the official ViT: shared relative bias, no absolute position)"),
    "epochs": (800, f"{_SM_VIT_PT}:18"),
    "warmup_epochs": (10, f"{_SM_VIT_PT}:19"),
    "base_learning_rate": (1e-4, f"{_SM_VIT_PT}:20"),
    "warmup_start_lr": (5e-7, f"{_SM_VIT_PT}:21"),
    "min_lr": (5e-6, f"{_SM_CFG}:100 (unused by the multistep schedule)"),
    "schedule": ("multistep", f"{_SM_VIT_PT}:24"),
    "milestones": ((700,), f"{_SM_VIT_PT}:26"),
    "gamma": (0.1, f"{_SM_VIT_PT}:25"),
    "weight_decay": (0.05, f"{_SM_VIT_PT}:22"),
    # models/simmim.py:124-126 prefixes the encoder's names ('pos_embed', 'cls_token': vision_transformer.py:298-299)
    # with 'encoder.', which match; [MASK] and the shared relative table are decayed
    "no_weight_decay": (
        ("cls_token", "position_embeddings"),
        _SM + "models/simmim.py:124-126 + models/vision_transformer.py:298-299 + optimizer.py:56-57",
    ),  # fmt: skip
}

_SIMMIM_SWIN_PT = {
    **_SIMMIM_COMMON,
    "preset": ("swin-base", f"{_SM_SWIN100}:2-11 (Swin-B, window 6, 192 px)"),
    "weight_decay": (0.05, f"{_SM_SWIN100}:20"),
    # 'encoder.mask_token' and 'encoder.absolute_pos_embed' match exactly; the keyword
    # 'encoder.relative_position_bias_table' never matches 'encoder.layers.N.blocks.M.attn.relative_...', so the
    # relative tables are decayed
    "no_weight_decay": (
        ("mask_token", "position_embeddings"),
        _SM + "models/simmim.py:53-54,124-133 + models/swin_transformer.py:557-562 + optimizer.py:56-57",
    ),  # fmt: skip
}

_SIMMIM_FT_COMMON = {
    "batch_size": (2048, _SM_README),
    "lr_batch_divisor": (512, _SM + "main_finetune.py:322-324"),
    "scale_lr_bounds": (True, _SM + "main_finetune.py:323-324"),
    "optimizer": ("adamw", f"{_SM_CFG}:125"),
    "betas": ((0.9, 0.999), f"{_SM_CFG}:129"),
    "eps": (1e-8, f"{_SM_CFG}:127"),
    "max_grad_norm": (5.0, f"{_SM_CFG}:102 + {_SM}main_finetune.py:183-184"),
    "schedule": ("cosine", _SM + "config.py:114 (LR_SCHEDULER.NAME 'cosine') + lr_scheduler.py:26-35"),
    "label_smoothing": (0.1, f"{_SM_CFG}:59"),
    "mixup_alpha": (0.8, f"{_SM_CFG}:151"),
    "cutmix_alpha": (1.0, f"{_SM_CFG}:153"),
    "mixup_prob": (1.0, f"{_SM_CFG}:157"),
    "mixup_switch_prob": (0.5, f"{_SM_CFG}:159"),
    "rand_augment": ("rand-m9-mstd0.5-inc1", f"{_SM_CFG}:143"),
    "random_erasing_prob": (0.25, f"{_SM_CFG}:145"),
    "random_erasing_mode": ("pixel", f"{_SM_CFG}:147"),
    "crop_scale": ((0.08, 1.0), _SM + "data/data_finetune.py:81-89 (timm create_transform, default scale)"),
    "resample": ("bicubic", f"{_SM_CFG}:31"),
}


RECIPES: dict[str, tuple[str, dict]] = {
    "simmim-vit-b-800ep": (
        "pretrain",
        _SIMMIM_VIT_PT,
    ),
    "simmim-swin-b-100ep": (
        "pretrain",
        {
                **_SIMMIM_SWIN_PT,
                "epochs": (100, f"{_SM_SWIN100}:15"),
                "warmup_epochs": (10, f"{_SM_SWIN100}:16"),
                "base_learning_rate": (2e-4, f"{_SM_SWIN100}:17"),
                "warmup_start_lr": (1e-6, f"{_SM_SWIN100}:18"),
                "min_lr": (1e-5, f"{_SM_SWIN100}:19"),
                "schedule": ("cosine", f"{_SM_CFG}:114 + {_SM}lr_scheduler.py:26-35"),
            },
    ),
    "simmim-swin-b-800ep": (
        "pretrain",
        {
                **_SIMMIM_SWIN_PT,
                "epochs": (800, f"{_SM_SWIN800}:15"),
                "warmup_epochs": (10, f"{_SM_SWIN800}:16"),
                "base_learning_rate": (1e-4, f"{_SM_SWIN800}:17"),
                "warmup_start_lr": (5e-7, f"{_SM_SWIN800}:18"),
                "min_lr": (5e-6, f"{_SM_CFG}:100 (unused by the multistep schedule)"),
                "weight_decay": (0.05, f"{_SM_SWIN800}:19"),
                "schedule": ("multistep", f"{_SM_SWIN800}:21"),
                "milestones": ((700,), f"{_SM_SWIN800}:23"),
                "gamma": (0.1, f"{_SM_SWIN800}:22"),
            },
    ),
    "simmim-vit-b-ft": (
        "finetune",
        {
                **_SIMMIM_FT_COMMON,
                "epochs": (100, f"{_SM_VIT_FT}:16"),
                "warmup_epochs": (20, f"{_SM_VIT_FT}:17"),
                "base_learning_rate": (1.25e-3, f"{_SM_VIT_FT}:18"),
                "warmup_start_lr": (2.5e-7, f"{_SM_VIT_FT}:19"),
                "min_lr": (2.5e-7, f"{_SM_VIT_FT}:20"),
                "weight_decay": (0.05, f"{_SM_VIT_FT}:21"),
                "no_weight_decay": (
                    ("cls_token", "position_embeddings"),
                    _SM + "models/vision_transformer.py:298-299 + optimizer.py:146-147",
                ),  # fmt: skip
                "layer_decay": (0.65, f"{_SM_VIT_FT}:22"),
                "drop_path_rate": (0.1, f"{_SM_VIT_FT}:4"),
                "use_fc_norm": (True, f"{_SM_VIT_FT}:12 + {_SM}models/vision_transformer.py:255,323-325"),
                "fc_norm_init": ("fresh", _SM + "models/vision_transformer.py:255 (a new fc_norm; norm is Identity)"),
                "head_init": (("scale", 0.001), _SM + "models/vision_transformer.py:223,267-268"),
            },
    ),
    "simmim-swin-b-ft": (
        "finetune",
        {
                **_SIMMIM_FT_COMMON,
                "epochs": (100, f"{_SM_SWIN_FT}:13"),
                "warmup_epochs": (20, f"{_SM_SWIN_FT}:14"),
                "base_learning_rate": (1.25e-3, f"{_SM_SWIN_FT}:15"),
                "warmup_start_lr": (2.5e-7, f"{_SM_SWIN_FT}:16"),
                "min_lr": (2.5e-7, f"{_SM_SWIN_FT}:17"),
                "weight_decay": (0.05, f"{_SM_SWIN_FT}:18"),
                # fine-tuning calls the optimizer on the bare encoder: the keyword matches every relative table
                "no_weight_decay": (
                    ("position_embeddings", "relative_position_bias_table"),
                    _SM + "models/swin_transformer.py:557-562 + optimizer.py:146-147",
                ),  # fmt: skip
                "layer_decay": (0.9, f"{_SM_SWIN_FT}:19"),
                "drop_path_rate": (0.1, f"{_SM_SWIN_FT}:4"),
                "use_fc_norm": (
                    False,
                    _SM + "models/swin_transformer.py (norm, then average pooling: hf_mim's 'mean')",
                ),
                "head_init": (None, _SM + "models/swin_transformer.py (_init_weights: trunc_normal std 0.02)"),
                "image_size": (224, f"{_SM_SWIN_FT}:11"),
                "window_size": (7, f"{_SM_SWIN_FT}:9"),
            },
    ),
}  # fmt: skip
