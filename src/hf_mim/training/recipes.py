"""The papers' training recipes as data: one named recipe per official configuration, every value with the official
file and line it comes from.

    >>> from hf_mim.training.recipes import get_recipe
    >>> recipe = get_recipe("simmim-vit-b-800ep")
    >>> recipe["schedule"], recipe.source("schedule")
    ('multistep', 'microsoft/SimMIM configs/vit_base__800ep/simmim_pretrain__vit_base__img224__800ep.yaml:24')

``hf-mim pretrain --recipe NAME`` and ``hf-mim finetune --recipe NAME`` apply one (explicit flags still win;
``--dry_run`` prints what results). Learning rates are stored as the official *base* values together with the batch
they refer to (``lr_batch_divisor``): the absolute rate is ``base_learning_rate * total_batch / lr_batch_divisor``,
and so are the warm-up start and the floor where ``scale_lr_bounds`` says the official code scales them too.

Sources are files of facebookresearch/SlowFast, microsoft/SimMIM and Haochen-Wang409/HPM (their default branches);
"timm" refers to the timm version those repositories pin (0.3.2 / 0.4.12), whose defaults they inherit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Recipe", "RECIPES", "get_recipe", "list_recipes", "main_recipe", "absolute_learning_rates", "DEVIATIONS"]


@dataclass(frozen=True)
class Recipe:
    """A named recipe: ``values[key] = (value, source)``.

    Args:
        name: The recipe's name (``<method>-<arch>-<epochs>`` or ``<method>-<arch>-ft``).
        method: ``maskfeat``, ``simmim`` or ``hpm``.
        stage: ``pretrain`` or ``finetune``.
        values: Each hyper-parameter with the official ``file:line`` it comes from.
        notes: What the recipe does differently from the official code, and why.
    """

    name: str
    method: str
    stage: str
    values: dict[str, tuple[Any, str]]
    notes: tuple[str, ...] = field(default=())

    def __getitem__(self, key: str) -> Any:
        return self.values[key][0]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values[key][0] if key in self.values else default

    def source(self, key: str) -> str:
        return self.values[key][1]

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, (value, _) in self.values.items()}

    def sources(self) -> dict[str, str]:
        return {key: source for key, (_, source) in self.values.items()}


# ------------------------------------------------------------------------------------------------- MaskFeat

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

# ------------------------------------------------------------------------------------------------- SimMIM

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

# --------------------------------------------------------------------------------------------------- HPM

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

_SUPERSEDED = "the official code's own value"


def _pt(name: str, method: str, values: dict, notes: tuple[str, ...] = ()) -> Recipe:
    return Recipe(name, method, "pretrain", values, notes)


def _ft(name: str, method: str, values: dict, notes: tuple[str, ...] = ()) -> Recipe:
    return Recipe(name, method, "finetune", values, notes)


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        _pt("maskfeat-vit-b-300ep", "maskfeat", _MASKFEAT_PT),
        _pt(
            "maskfeat-vit-b-1600ep",
            "maskfeat",
            {
                **_MASKFEAT_PT,
                "epochs": (
                    1600,
                    _SF + "projects/maskfeat/README.md:20 (the released in1k_VIT_B_MaskFeat_PT_epoch_01600)",
                ),
            },
        ),  # fmt: skip
        _pt("simmim-vit-b-800ep", "simmim", _SIMMIM_VIT_PT),
        _pt(
            "simmim-swin-b-100ep",
            "simmim",
            {
                **_SIMMIM_SWIN_PT,
                "epochs": (100, f"{_SM_SWIN100}:15"),
                "warmup_epochs": (10, f"{_SM_SWIN100}:16"),
                "base_learning_rate": (2e-4, f"{_SM_SWIN100}:17"),
                "warmup_start_lr": (1e-6, f"{_SM_SWIN100}:18"),
                "min_lr": (1e-5, f"{_SM_SWIN100}:19"),
                "schedule": ("cosine", f"{_SM_CFG}:114 + {_SM}lr_scheduler.py:26-35"),
            },
        ),  # fmt: skip
        _pt(
            "simmim-swin-b-800ep",
            "simmim",
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
        ),  # fmt: skip
        _pt(
            "hpm-vit-b-200ep",
            "hpm",
            {
                **_HPM_PT_VALUES,
                "epochs": (200, _HPM + "README.md:51 (the 200-epoch row; scripts/pretrain_base.sh:9 otherwise)"),
            },
        ),  # fmt: skip
        _pt("hpm-vit-b-800ep", "hpm", {**_HPM_PT_VALUES, "epochs": (800, _HPM + "scripts/pretrain_base.sh:9")}),
        _ft("maskfeat-vit-b-ft", "maskfeat", _MASKFEAT_FT),
        _ft(
            "simmim-vit-b-ft",
            "simmim",
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
        ),  # fmt: skip
        _ft(
            "simmim-swin-b-ft",
            "simmim",
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
        ),  # fmt: skip
        _ft("hpm-vit-b-ft", "hpm", _HPM_FT_VALUES),
    )
}

#: What hf_mim does differently from the official code, on purpose (the README's recipe table lists them).
DEVIATIONS = {
    "augmentation library": "kornia's RandAugment (batched, on the training device) with timm's 15 operations and "
    "magnitude 9/10 of the range; kornia applies one draw of operations to a group of images and has no magnitude "
    "noise (mstd0.5), and its enhance operations move one way (timm's 'inc1' picks the direction at random).",
    "random erasing": "kornia's RandomErasing fills with 0 in normalised space (the mean colour); timm's 'pixel' "
    "mode fills with per-pixel normal noise.",
    "simmim cosine": "SimMIM's cosine (timm's CosineLRScheduler) runs over all steps and starts below the peak "
    "after warm-up; hf_mim's cosine starts at the peak after warm-up (SlowFast and MAE/HPM's form). Same start, "
    "peak and end; at most 2.5% apart right after warm-up.",
    "simmim vit relative bias": "SimMIM's fine-tuning copies the shared relative position table into every block; "
    "hf_mim keeps the pretrained checkpoint's layout (shared) -- the same function at the start of fine-tuning.",
    "mask counts": "block-wise and random masks mask exactly the configured number of patches per image (the "
    "official generators may mask slightly fewer), so every image of a batch weighs the same in the loss.",
    "precision": "fp32 on CPU (the official runs use fp16/AMP on GPUs); --mixed_precision bf16 on GPUs.",
    "max_steps": "--max_steps or --num_train_epochs shorten a recipe proportionally: warm-up and milestones keep "
    "their share of training (unless given explicitly).",
    "simmim swin fine-tuning size": "the official Swin-B fine-tuning runs at 224 px with window 7, interpolating the "
    "192 px / window 6 relative tables; hf_mim fine-tunes at the pretrained size and window.",
}


def list_recipes(stage: str | None = None, method: str | None = None) -> list[str]:
    """Recipe names, optionally only those of one ``stage`` (``pretrain`` / ``finetune``) and ``method``."""
    return [
        name
        for name, recipe in RECIPES.items()
        if (stage is None or recipe.stage == stage) and (method is None or recipe.method == method)
    ]


def get_recipe(name: str, stage: str | None = None, method: str | None = None) -> Recipe:
    """The recipe ``name``; ``stage`` / ``method`` check that it is the kind the caller can run."""
    if name not in RECIPES:
        raise ValueError(f"`recipe` must be one of {list_recipes(stage, method)}, got {name!r}.")
    recipe = RECIPES[name]
    if (stage and recipe.stage != stage) or (method and recipe.method != method):
        raise ValueError(
            f"`recipe` {name!r} is a {recipe.method} {recipe.stage} recipe; this needs one of "
            f"{list_recipes(stage, method)}."
        )
    return recipe


def main_recipe(method: str, stage: str, backbone: str | None = None) -> Recipe:
    """The recipe a named model gets without ``--recipe``: the released checkpoint's, as the method's registry entry
    names it (per backbone where the method has several)."""
    from ..registry import get_model_spec

    return RECIPES[get_model_spec(method).main_recipe(stage, backbone)]


def absolute_learning_rates(values: dict[str, Any], total_batch_size: int) -> dict[str, float]:
    """Peak, warm-up start and floor learning rates for ``total_batch_size`` from resolved recipe ``values``: the
    peak is ``base_learning_rate * total_batch / lr_batch_divisor``, and the warm-up start and floor scale alike
    where the official code scales them (``scale_lr_bounds``: SimMIM, SlowFast)."""
    scale = total_batch_size / values["lr_batch_divisor"]
    bound_scale = scale if values.get("scale_lr_bounds") else 1.0
    return {
        "learning_rate": values["base_learning_rate"] * scale,
        "warmup_start_lr": values["warmup_start_lr"] * bound_scale,
        "min_lr": values["min_lr"] * bound_scale,
    }
