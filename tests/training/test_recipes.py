"""Every named recipe, built the way the commands build it, against the official values written out here (read
from SlowFast, microsoft/SimMIM and Haochen-Wang409/HPM; the recipe module cites file:line for each)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForImageClassification, TrainingArguments

from hf_mim.cli import pretrain
from hf_mim.training import recipes
from hf_mim.training.augmentation import FinetuneAugmentation
from hf_mim.training.finetuner import FinetuneArguments, build_augmentation
from hf_mim.training.finetuning import RecipeTrainer, finetuning_config, init_classifier
from hf_mim.training.optimization import build_lr_scheduler, param_groups
from hf_mim.training.resolve import finetune_schedule, resolve_finetune_recipe

STEPS_PER_EPOCH = 2

# official values at the official total batch: LR at the start of warm-up, at its end, at the end of training
PRETRAIN = {
    "maskfeat-vit-b-300ep": dict(epochs=300, warmup=30, start=1e-6, peak=2e-4, end=1e-6, clip=0.02,
                                 betas=(0.9, 0.999), batch=256, crop=(0.5, 1.0), mask={"mask_ratio": 0.4}),
    "maskfeat-vit-b-1600ep": dict(epochs=1600, warmup=30, start=1e-6, peak=2e-4, end=1e-6, clip=0.02,
                                  betas=(0.9, 0.999), batch=256, crop=(0.5, 1.0), mask={"mask_ratio": 0.4}),
    # SimMIM scales all three by total batch / 512 (main_simmim.py:218-220): 2048 / 512 = 4
    "simmim-vit-b-800ep": dict(epochs=800, warmup=10, start=5e-7 * 4, peak=1e-4 * 4, end=1e-4 * 4 * 0.1, clip=5.0,
                               betas=(0.9, 0.999), batch=2048, crop=(0.67, 1.0),
                               mask={"mask_patch_size": 32, "mask_ratio": 0.6}),
    "simmim-swin-b-100ep": dict(epochs=100, warmup=10, start=1e-6 * 4, peak=2e-4 * 4, end=1e-5 * 4, clip=5.0,
                                betas=(0.9, 0.999), batch=2048, crop=(0.67, 1.0),
                                mask={"mask_patch_size": 32, "mask_ratio": 0.6}),
    "simmim-swin-b-800ep": dict(epochs=800, warmup=10, start=5e-7 * 4, peak=1e-4 * 4, end=1e-4 * 4 * 0.1, clip=5.0,
                                betas=(0.9, 0.999), batch=2048, crop=(0.67, 1.0),
                                mask={"mask_patch_size": 32, "mask_ratio": 0.6}),
    "hpm-vit-b-200ep": dict(epochs=200, warmup=40, start=0.0, peak=1.5e-4, end=0.0, clip=5.0, betas=(0.9, 0.95),
                            batch=256, crop=(0.2, 1.0), mask={"mask_ratio": 0.75, "norm_pix_loss": False}),
    "hpm-vit-b-800ep": dict(epochs=800, warmup=40, start=0.0, peak=1.5e-4, end=0.0, clip=5.0, betas=(0.9, 0.95),
                            batch=256, crop=(0.2, 1.0), mask={"mask_ratio": 0.75, "norm_pix_loss": False}),
}  # fmt: skip

# tiny models of the same families, and which of their special (>= 2-D) parameters the official code decays
TEST_PRESET = {"maskfeat": "test", "hpm": "test", "simmim-vit": "beit-test", "simmim-swin": "swin-test"}
SPECIAL_EXEMPT = {
    "maskfeat": set(),  # ZERO_DECAY_POS_CLS False
    "simmim-vit": {"cls_token"},  # pos_embed too, but the official ViT has none
    "simmim-swin": {"mask_token"},
    "hpm": set(),  # timm add_weight_decay without a skip list (position embeddings are frozen)
}
SPECIAL = ("cls_token", "mask_token", "position_embeddings", "relative_position_bias_table")


def family(name: str) -> str:
    return "simmim-swin" if "swin" in name else "simmim-vit" if name.startswith("simmim") else name.split("-")[0]


def lr_trace(optimizer, scheduler, steps: list[int]) -> dict[int, float]:
    out, step = {}, 0
    for target in sorted(steps):
        while step < target:
            optimizer.step()
            scheduler.step()
            step += 1
        out[target] = optimizer.param_groups[0]["lr"]
    return out


def check_decay(model, groups, fam):
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        special = next((s for s in SPECIAL if s in name), None)
        if param.ndim <= 1:
            expect = False
        elif special is not None:
            expect = special not in SPECIAL_EXEMPT[fam]
        else:
            expect = True
        assert (id(param) in decayed) == expect, name


@pytest.mark.parametrize("name", list(PRETRAIN))
def test_pretrain_recipe(name, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    official, fam = PRETRAIN[name], family(name)
    # SimMIM's 32 px mask cells need a test model larger than one cell (a mask must leave something visible)
    bigger = ["--config_overrides", "encoder_config.image_size=64"] if fam.startswith("simmim") else []
    args = pretrain.parse_args(["--recipe", name, "--preset", TEST_PRESET[fam], *bigger])
    assert args.method == name.split("-")[0]
    assert args.per_device_train_batch_size == official["batch"]
    assert (args.adam_beta1, args.adam_beta2) == official["betas"] and args.max_grad_norm == official["clip"]
    model = args.build_model()
    for key, value in official["mask"].items():
        assert getattr(model.config, key) == value, key
    processor = args.build_image_processor(model.config)
    assert tuple(processor.crop_scale) == official["crop"]

    assert args.total_batch_size == official["batch"]
    lrs = args.learning_rates
    groups = param_groups(model, args.weight_decay, args.no_decay_keywords)
    check_decay(model, groups, fam)
    optimizer = torch.optim.AdamW(groups, lr=lrs["learning_rate"], betas=(args.adam_beta1, args.adam_beta2))
    total = official["epochs"] * STEPS_PER_EPOCH
    warmup, milestones = args.schedule_steps(total)
    assert warmup == official["warmup"] * STEPS_PER_EPOCH
    scheduler = build_lr_scheduler(
        optimizer, total, warmup, lrs["warmup_start_lr"] / lrs["learning_rate"], lrs["min_lr"] / lrs["learning_rate"],
        args.lr_scheduler_type, milestones, args.lr_gamma,
    )  # fmt: skip
    got = lr_trace(optimizer, scheduler, [0, warmup, total])
    assert got[0] == pytest.approx(official["start"], rel=1e-6, abs=1e-12)
    assert got[warmup] == pytest.approx(official["peak"], rel=1e-6)
    assert got[total] == pytest.approx(official["end"], rel=1e-6, abs=1e-12)


def test_pretrain_schedule_matches_the_official_formulas():
    """SlowFast's lr_policy (linear warm-up from WARMUP_START_LR, cosine after the warm-up to COSINE_END_LR) and
    SimMIM's multistep, step by step."""
    peak, start, end, total, warm = 2e-4, 1e-6, 1e-6, 100, 10
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=peak)
    sched = build_lr_scheduler(opt, total, warm, start / peak, end / peak, "cosine")
    for t in range(total + 1):
        if t < warm:
            expect = start + (peak - start) * t / warm
        else:
            expect = end + (peak - end) * 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm)))
        assert opt.param_groups[0]["lr"] == pytest.approx(expect, rel=1e-6), t
        opt.step()
        sched.step()
    opt = torch.optim.AdamW([p], lr=peak)
    sched = build_lr_scheduler(opt, total, warm, start / peak, 0.0, "multistep", milestones=[70], gamma=0.1)
    for t in range(total):
        expect = start + (peak - start) * t / warm if t < warm else peak * (0.1 if t >= 70 else 1.0)
        assert opt.param_groups[0]["lr"] == pytest.approx(expect, rel=1e-6), t
        opt.step()
        sched.step()


# fine-tuning: peak at the official batch, warm-up start, floor; layer decay; head init; augmentation
FINETUNE = {
    "maskfeat-vit-b-ft": dict(ckpt="maskfeat", epochs=100, warmup=20, start=1e-8, peak=2e-3, end=1e-6, clip=0.0,
                              layer_decay=0.65, drop_path=0.1, head=("scale", 1e-3), fc_norm="pretrained", batch=512),
    "simmim-vit-b-ft": dict(ckpt="simmim-vit", epochs=100, warmup=20, start=2.5e-7 * 4, peak=1.25e-3 * 4,
                            end=2.5e-7 * 4, clip=5.0, layer_decay=0.65, drop_path=0.1, head=("scale", 1e-3),
                            fc_norm="fresh", batch=2048),
    "simmim-swin-b-ft": dict(ckpt="simmim-swin", epochs=100, warmup=20, start=2.5e-7 * 4, peak=1.25e-3 * 4,
                             end=2.5e-7 * 4, clip=5.0, layer_decay=0.9, drop_path=0.1, head=None, fc_norm=None,
                             batch=2048),
    "hpm-vit-b-ft": dict(ckpt="hpm", epochs=100, warmup=5, start=0.0, peak=5e-4 * 384 / 256, end=1e-6, clip=0.0,
                         layer_decay=0.8, drop_path=0.1, head=("std", 2e-5), fc_norm="fresh", batch=384),
}  # fmt: skip
FT_DECAY_EXEMPT = {"maskfeat": (), "simmim-vit": ("cls_token", "position_embeddings"),
                   "simmim-swin": ("position_embeddings", "relative_position_bias_table"),
                   "hpm": ("cls_token", "position_embeddings")}  # fmt: skip


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from hf_mim import training

    root = tmp_path_factory.mktemp("ckpt")
    out = {}
    for fam, preset in TEST_PRESET.items():
        method = fam.split("-")[0]
        config = training.build_config(method, preset=preset)
        training.build_model(method, config).save_pretrained(root / fam)
        out[fam] = root / fam
    return out


@pytest.mark.parametrize("name", list(FINETUNE))
def test_finetune_recipe(name, checkpoints, tmp_path):
    official = FINETUNE[name]
    path = str(checkpoints[official["ckpt"]])
    args = FinetuneArguments(model_name_or_path=path, recipe=name)
    train_args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    given = (args, train_args)
    args, train_args, recipe = resolve_finetune_recipe(args, train_args, name.split("-")[0],
                                                       "swin" if "swin" in name else None, explicit=set())  # fmt: skip
    assert given[1].learning_rate == TrainingArguments.learning_rate and given[0].layer_decay is None  # unchanged
    assert train_args.per_device_train_batch_size == official["batch"]
    assert train_args.learning_rate == pytest.approx(official["peak"], rel=1e-9)
    assert (train_args.adam_beta1, train_args.adam_beta2, train_args.max_grad_norm) == (0.9, 0.999, official["clip"])
    assert train_args.label_smoothing_factor == 0.1 and args.layer_decay == official["layer_decay"]

    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, num_labels=10)
    finetuning_config(config, args.drop_path_rate, args.use_fc_norm)
    model = AutoModelForImageClassification.from_pretrained(path, config=config)
    encoder_config = getattr(model.config, "encoder_config", None) or model.config
    assert encoder_config.drop_path_rate == official["drop_path"]
    assert getattr(model.config, "use_fc_norm", False) == (official["fc_norm"] is not None)
    before = model.classifier.weight.detach().clone()
    init_classifier(model, recipe.get("head_init"), recipe.get("fc_norm_init"))
    weight = model.classifier.weight.detach()
    if official["head"] is None:
        assert torch.equal(weight, before)
    elif official["head"][0] == "scale":
        torch.testing.assert_close(weight, before * official["head"][1])
    else:
        std = official["head"][1]
        assert weight.abs().max() <= 2 * std and 0.7 * std < weight.std() < 1.2 * std

    augmentation = build_augmentation(args, 10, [0.5] * 3, [0.25] * 3)
    described = augmentation.describe()
    assert described["rand_augment"]["num_ops"] == 2 and described["rand_augment"]["kornia_magnitude_of_30"] == 27
    assert described["random_erasing"]["prob"] == 0.25
    assert (described["mixup_alpha"], described["cutmix_alpha"], described["switch_prob"]) == (0.8, 1.0, 0.5)

    trainer = RecipeTrainer(model=model, args=train_args, schedule=finetune_schedule(args, train_args, recipe),
                            layer_decay=args.layer_decay, no_decay_keywords=recipe["no_weight_decay"],
                            augmentation=augmentation, label_smoothing=train_args.label_smoothing_factor)  # fmt: skip
    total = official["epochs"] * STEPS_PER_EPOCH
    trainer.create_optimizer_and_scheduler(num_training_steps=total)
    optimizer = trainer.optimizer
    head = next(g for g in optimizer.param_groups if any(p is model.classifier.weight for p in g["params"]))
    peaks = [g["initial_lr"] for g in optimizer.param_groups]  # the scheduler has set "lr" to the warm-up start
    assert head["initial_lr"] == pytest.approx(official["peak"])
    depth = max(round(math.log(lr / official["peak"], official["layer_decay"])) for lr in peaks)
    lowest = min(peaks)
    assert lowest == pytest.approx(official["peak"] * official["layer_decay"] ** depth)
    exempt = FT_DECAY_EXEMPT[official["ckpt"]]
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for n, p in model.named_parameters():
        assert (id(p) in decayed) == (p.ndim > 1 and not any(k in n for k in exempt)), n
    warm = official["warmup"] * STEPS_PER_EPOCH
    trace = {}
    for step in range(total + 1):
        if step in (0, warm, total):
            trace[step] = head["lr"]
        optimizer.step()
        trainer.lr_scheduler.step()
    assert trace[0] == pytest.approx(official["start"], rel=1e-6, abs=1e-7 * official["peak"])
    assert trace[warm] == pytest.approx(official["peak"], rel=1e-6)
    assert trace[total] == pytest.approx(official["end"], rel=1e-6)


def test_every_named_recipe_exists_with_sources():
    names = {"maskfeat-vit-b-300ep", "maskfeat-vit-b-1600ep", "simmim-vit-b-800ep", "simmim-swin-b-100ep",
             "simmim-swin-b-800ep", "hpm-vit-b-200ep", "hpm-vit-b-800ep", "maskfeat-vit-b-ft", "simmim-vit-b-ft",
             "simmim-swin-b-ft", "hpm-vit-b-ft"}  # fmt: skip
    assert names <= set(recipes.RECIPES)
    for recipe in recipes.RECIPES.values():
        for key, source in recipe.sources().items():
            assert ":" in source and any(repo in source for repo in ("SlowFast", "SimMIM", "HPM")), (recipe.name, key)


def test_bad_recipe_names_the_allowed_values():
    with pytest.raises(ValueError, match="simmim-vit-b-800ep"):
        recipes.get_recipe("simmim-vit-b-801ep")
    with pytest.raises(ValueError, match="finetune recipe"):
        recipes.get_recipe("hpm-vit-b-ft", stage="pretrain")
    with pytest.raises(SystemExit):
        pretrain.parse_args(["--recipe", "hpm-vit-b-ft"])
    with pytest.raises(SystemExit):
        pretrain.parse_args(["--recipe", "hpm-vit-b-800ep", "--method", "maskfeat"])


def test_augmentation_runs_on_a_batch():
    aug = FinetuneAugmentation(10, [0.5] * 3, [0.25] * 3)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    images, targets = aug(x, y)
    assert images.shape == x.shape and targets.shape == (4, 10)
    torch.testing.assert_close(targets.sum(-1), torch.ones(4))
