"""MaskFeat's official training recipes as data: every value with the facebookresearch/SlowFast file:line it comes from.

``RECIPES`` maps a recipe name to ``(stage, values)``; :mod:`hf_mim.training.recipes` serves them (``get_recipe``),
with the precedence and scaling rules that apply to every method. Values are ``(value, "file:line")``.
"""

from __future__ import annotations

_SF = "facebookresearch/SlowFast "
_SF_PT = _SF + "configs/masked_ssl/in1k_VIT_B_MaskFeat_PT.yaml"
_SF_FT = _SF + "configs/masked_ssl/in1k_VIT_B_MaskFeat_FT.yaml"
_SF_DEFAULTS = _SF + "slowfast/config/defaults.py"
_SF_OPT = _SF + "slowfast/models/optimizer.py"

_MASKFEAT_PT = {
    "preset": ("base", f"{_SF_PT}:29-34 (ViT-B/16: EMBED_DIM 768, NUM_HEADS 12, DEPTH 12)"),
    "epochs": (300, f"{_SF_PT}:54"),
    "warmup_epochs": (30, f"{_SF_PT}:57"),
    "batch_size": (256, f"{_SF_PT}:5 (one shard)"),
    "base_learning_rate": (2e-4, f"{_SF_PT}:52"),
    "lr_batch_divisor": (256, f"{_SF_PT}:52 ('# bs256'; scaled with the shards, {_SF_DEFAULTS}:1281-1284)"),
    "warmup_start_lr": (1e-6, f"{_SF_PT}:58"),
    "min_lr": (1e-6, f"{_SF_PT}:61"),
    "scale_lr_bounds": (True, f"{_SF_DEFAULTS}:1283-1284 (warm-up start and end LR scale with the shards too)"),
    "schedule": ("cosine", f"{_SF_PT}:53,60 (cosine after the warm-up)"),
    "optimizer": ("adamw", f"{_SF_PT}:59"),
    "betas": ((0.9, 0.999), f"{_SF_DEFAULTS}:881 (SOLVER.BETAS default)"),
    "eps": (1e-8, f"{_SF_OPT}:126"),
    "weight_decay": (0.05, f"{_SF_PT}:56"),
    # ZERO_DECAY_POS_CLS False: position embedding, [CLS] and [MASK] are decayed; 1-D and biases are not
    "no_weight_decay": ((), f"{_SF_PT}:23,62 + {_SF_OPT}:49-54"),
    "max_grad_norm": (0.02, f"{_SF_PT}:63"),
    "mask_ratio": (0.4, f"{_SF_PT}:47"),
    "crop_scale": ((0.5, 1.0), f"{_SF_PT}:10"),
}

_MASKFEAT_FT = {
    "epochs": (100, f"{_SF_FT}:59"),
    "warmup_epochs": (20, f"{_SF_FT}:62"),
    "batch_size": (512, f"{_SF_FT}:5"),
    "base_learning_rate": (2e-3, f"{_SF_FT}:57"),
    "lr_batch_divisor": (512, f"{_SF_FT}:5,55 (BASE_LR is for the config's batch of one shard)"),
    "warmup_start_lr": (1e-8, f"{_SF_FT}:63"),
    "min_lr": (1e-6, f"{_SF_FT}:66"),
    "scale_lr_bounds": (True, f"{_SF_DEFAULTS}:1283-1284"),
    "schedule": ("cosine", f"{_SF_FT}:58,65"),
    "optimizer": ("adamw", f"{_SF_FT}:64"),
    "betas": ((0.9, 0.999), f"{_SF_DEFAULTS}:881"),
    "eps": (1e-8, f"{_SF_OPT}:126"),
    "weight_decay": (0.05, f"{_SF_FT}:61"),
    "no_weight_decay": ((), f"{_SF_FT}:22,67 + {_SF_OPT}:188-191"),
    "max_grad_norm": (0.0, f"{_SF_DEFAULTS}:872 (CLIP_GRAD_L2NORM None)"),
    "layer_decay": (0.65, f"{_SF_FT}:56"),
    "drop_path_rate": (0.1, f"{_SF_FT}:32"),
    "use_fc_norm": (True, f"{_SF_FT}:37 (USE_MEAN_POOLING: mean of the patch tokens, then the final norm)"),
    "fc_norm_init": ("pretrained", _SF + "slowfast/models/video_model_builder.py:1232-1236 (reuses self.norm)"),
    "head_init": (("scale", 0.001), f"{_SF_FT}:36 + {_SF}slowfast/models/video_model_builder.py:1080-1081"),
    "label_smoothing": (0.1, f"{_SF_FT}:53"),
    "mixup_alpha": (0.8, f"{_SF_FT}:49"),
    "cutmix_alpha": (1.0, f"{_SF_FT}:50"),
    "mixup_prob": (1.0, f"{_SF_FT}:51"),
    "mixup_switch_prob": (0.5, f"{_SF_FT}:52"),
    "rand_augment": ("rand-m9-mstd0.5-inc1", f"{_SF_FT}:41"),
    "random_erasing_prob": (0.25, f"{_SF_FT}:43"),
    "random_erasing_mode": ("pixel", f"{_SF_FT}:44"),
    "crop_scale": (
        (0.08, 1.0),
        _SF + "slowfast/datasets/imagenet.py:132-136 (transforms_imagenet_train, default scale)",
    ),
    "resample": ("bicubic", f"{_SF_FT}:42"),
}


RECIPES: dict[str, tuple[str, dict]] = {
    "maskfeat-vit-b-300ep": (
        "pretrain",
        _MASKFEAT_PT,
    ),
    "maskfeat-vit-b-1600ep": (
        "pretrain",
        {
                **_MASKFEAT_PT,
                "epochs": (
                    1600,
                    _SF + "projects/maskfeat/README.md:20 (the released in1k_VIT_B_MaskFeat_PT_epoch_01600)",
                ),
            },
    ),
    "maskfeat-vit-b-ft": (
        "finetune",
        _MASKFEAT_FT,
    ),
}  # fmt: skip
