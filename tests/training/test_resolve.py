"""One precedence rule for every value: flag > --config_overrides > config file > preset / checkpoint config >
recipe > demo defaults (a recipe named with --recipe ranks above the preset); the parsed arguments never change."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import pytest

from hf_mim.training import PretrainingArguments, resolve_pretraining
from hf_mim.training.resolve import DEMO_DEFAULTS, RECIPE_CONFIG_KEYS, first_set

#: (method, recipe, key, the recipe's value, a value of our own, a small config without the key)
_VIT = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64}  # fmt: skip
_SIMMIM = {"backbone": "vit", "encoder_config": {**_VIT, "image_size": 64, "patch_size": 4}}
_HPM = {**_VIT, "decoder_hidden_size": 32, "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 2,
        "decoder_intermediate_size": 64}  # fmt: skip
CASES = [
    ("simmim", "simmim-vit-b-800ep", "mask_patch_size", 32, 8, _SIMMIM),
    ("simmim", "simmim-vit-b-800ep", "mask_ratio", 0.6, 0.3, _SIMMIM),
    ("maskfeat", "maskfeat-vit-b-1600ep", "mask_ratio", 0.4, 0.3, _VIT),
    ("hpm", "hpm-vit-b-800ep", "mask_ratio", 0.75, 0.5, _HPM),
    ("hpm", "hpm-vit-b-800ep", "norm_pix_loss", False, True, _HPM),
]


def test_the_cases_cover_every_recipe_config_key():
    from hf_mim.training import recipes

    covered = {(method, key) for method, _, key, *_ in CASES}
    for name in recipes.list_recipes("pretrain"):
        recipe = recipes.get_recipe(name)
        assert {(recipe.method, k) for k in RECIPE_CONFIG_KEYS if k in recipe.values} <= covered, name


def test_first_set_takes_the_most_specific_layer():
    layers = [("flag", {"a": None, "b": 1}), ("recipe", {"a": 2, "b": 3, "c": 0}), ("demo", {"d": 4})]
    assert first_set("a", layers) == (2, "recipe")
    assert first_set("b", layers) == (1, "flag")
    assert first_set("c", layers) == (0, "recipe")  # 0 / False are set values
    assert first_set("e", layers) == (None, None)


@pytest.mark.parametrize("method, recipe, key, recipe_value, mine, base", CASES)
@pytest.mark.parametrize("source", ["config_overrides", "config file", "preset", "none"])
@pytest.mark.parametrize("explicit_recipe", [False, True])
def test_every_source_against_every_recipe_config_key(method, recipe, key, recipe_value, mine, base, source,
                                                      explicit_recipe, tmp_path, monkeypatch):  # fmt: skip
    from hf_mim import get_model_spec

    presets = get_model_spec(method).config_class.presets
    monkeypatch.setitem(presets, "table-test", {**base, key: mine} if source == "preset" else base)
    kwargs = {"method": method, "recipe": recipe if explicit_recipe else None}
    if source == "config file":
        path = tmp_path / "config.json"
        path.write_text(json.dumps({**base, key: mine}))
        kwargs["config_file"] = str(path)
    else:
        kwargs["preset"] = "table-test"
    if source == "config_overrides":
        kwargs["config_overrides"] = f"{key}={str(mine).lower()}"
    plan = resolve_pretraining(PretrainingArguments(**kwargs), num_processes=1)
    assert plan.recipe == recipe  # explicit, or the main recipe of a named model
    value = plan.build_model().config.to_dict()[key]
    if source == "none" or (source == "preset" and explicit_recipe):
        assert value == recipe_value and plan.value_sources[key] == "recipe"
    else:
        assert value == mine and plan.value_sources[key] == source


@pytest.mark.parametrize("key", [k for k in DEMO_DEFAULTS if k not in ("warmup_epochs", "warmup_ratio")])
def test_a_flag_wins_over_the_recipe_which_wins_over_the_demo(key):
    demo = resolve_pretraining(PretrainingArguments(), num_processes=1)
    recipe = resolve_pretraining(PretrainingArguments(recipe="hpm-vit-b-800ep", preset="test"), num_processes=1)
    assert demo.values[key] == DEMO_DEFAULTS[key] and demo.value_sources[key] == "demo"
    assert recipe.value_sources[key] == "recipe"
    mine = {"per_device_train_batch_size": 3, "num_train_epochs": 7.0, "max_steps": 5, "weight_decay": 0.01,
            "adam_beta1": 0.8, "adam_beta2": 0.9, "adam_epsilon": 1e-6, "lr_scheduler_type": "multistep",
            "lr_milestones": [1.0], "lr_gamma": 0.5, "max_grad_norm": 1.0}[key]  # fmt: skip
    extra = {"lr_milestones": [1.0]} if key == "lr_scheduler_type" else {}
    flagged = resolve_pretraining(PretrainingArguments(recipe="hpm-vit-b-800ep", preset="test", **{key: mine},
                                                       **extra), num_processes=1)  # fmt: skip
    got = flagged.values[key]
    assert (list(got) if isinstance(got, tuple) else got) == mine and flagged.value_sources[key] == "flag"


def test_the_arguments_are_never_changed():
    args = PretrainingArguments(recipe="hpm-vit-b-800ep", num_train_epochs=80)
    before = dataclasses.asdict(args)
    plan = resolve_pretraining(args, num_processes=1)
    assert dataclasses.asdict(args) == before and args.preset is None and args.weight_decay is None
    assert plan.preset == "base" and plan.warmup_epochs == pytest.approx(4.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.recipe = "other"
    with pytest.raises(TypeError):
        plan.values["weight_decay"] = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.args.max_steps = 3
    assert isinstance(plan.values["lr_milestones"], tuple) and isinstance(plan.args.lr_milestones, tuple | None)
    files = PretrainingArguments(data_files=["a.parquet"], hub_token="secret")
    plan = resolve_pretraining(files, num_processes=1)
    files.data_files.append("b.parquet")  # the caller's list, not the plan's
    assert plan.args.data_files == ("a.parquet",)
    again = pickle.loads(pickle.dumps(plan))
    assert again.to_dict() == plan.to_dict() and copy.deepcopy(plan).values == plan.values
    assert "secret" not in json.dumps(plan.to_dict()) and plan.to_dict()["arguments"]["hub_token"] == "<redacted>"


def test_learning_rates_scale_with_the_processes():
    one = resolve_pretraining(PretrainingArguments(recipe="hpm-vit-b-800ep", per_device_train_batch_size=64), 1)
    four = resolve_pretraining(PretrainingArguments(recipe="hpm-vit-b-800ep", per_device_train_batch_size=64), 4)
    assert four.total_batch_size == 4 * one.total_batch_size
    assert four.learning_rates["learning_rate"] == pytest.approx(4 * one.learning_rates["learning_rate"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_steps": 0, "num_train_epochs": 0.0}, "nothing to train"),
        ({"warmup_epochs": 20.0, "num_train_epochs": 10.0}, "--warmup_epochs must be in"),
        ({"lr_scheduler_type": "multistep"}, "needs --lr_milestones"),
        ({"streaming": True, "max_steps": 0}, "--streaming needs --max_steps"),
        ({"recipe": "hpm-vit-b-ft"}, "finetune recipe"),
        ({"recipe": "hpm-vit-b-800ep", "method": "maskfeat"}, "is a hpm recipe"),
        ({"method": "simmim", "preset": "nope"}, "--preset must be one of"),
    ],
)
def test_bad_combinations_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resolve_pretraining(PretrainingArguments(**kwargs), num_processes=1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"per_device_train_batch_size": 0}, "--per_device_train_batch_size must be >= 1"),
        ({"adam_beta2": 1.0}, r"--adam_beta2 must be in \[0, 1\)"),
        ({"dataset_name": "a", "data_files": ["b"]}, "at most one of"),
        ({"push_to_hub": True}, "--hub_model_id"),
        ({"method": "beit"}, "--method must be one of"),
        ({"max_consecutive_nonfinite": 0}, "--max_consecutive_nonfinite must be >= 1"),
        ({"fsdp": True, "init_from": "org/vit"}, "--fsdp cannot shard a model started from a backbone"),
    ],
)
def test_arguments_are_checked_when_made(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PretrainingArguments(**kwargs)


# -------------------------------------------------------------------------------------- --init_from (a backbone)


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    """Configs of released backbones (a Swin, a ViTMAE and a ConvNeXt), saved as a checkpoint's config would be."""
    from transformers import ConvNextConfig, SwinConfig, ViTMAEConfig

    root = tmp_path_factory.mktemp("backbones")
    configs = {"swin": SwinConfig(image_size=32, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                                  window_size=4),  # fmt: skip
               "vit_mae": ViTMAEConfig(**_VIT), "convnext": ConvNextConfig()}  # fmt: skip
    for name, config in configs.items():
        config.save_pretrained(root / name)
    return root


def test_init_from_picks_the_recipe_of_the_backbone_and_leaves_its_masking_to_the_method(backbones):
    plan = resolve_pretraining(PretrainingArguments(method="simmim", init_from=str(backbones / "swin")), 1)
    assert plan.recipe == "simmim-swin-b-800ep" and plan.preset is None
    assert not plan.config_overrides  # the backbone sizes its model; the implicit recipe sets the optimisation only
    explicit = resolve_pretraining(PretrainingArguments(method="simmim", init_from=str(backbones / "swin"),
                                                        recipe="simmim-swin-b-800ep"), 1)  # fmt: skip
    assert explicit.config_overrides["mask_patch_size"] == 32  # an explicit recipe's masking wins


@pytest.mark.parametrize(
    "method, backbone, message",
    [
        ("hpm", "swin", r"HPM cannot start from a SwinModel \(--init_from .*ViTModel, DeiTModel, Dinov2Model"),
        ("maskfeat", "vit_mae", r"MaskFeat cannot start from a ViTMAEModel .*SwinModel\."),
        ("simmim", "convnext", r"SimMIM cannot start from a ConvNextModel"),
        ("maskfeat", "missing", r"--init_from .*missing: no checkpoint there"),
    ],
)
def test_init_from_refuses_a_pairing_that_makes_no_sense_before_any_work(method, backbone, message, backbones):
    with pytest.raises(ValueError, match=message):
        resolve_pretraining(PretrainingArguments(method=method, init_from=str(backbones / backbone)), 1)


def test_init_from_is_one_of_the_model_sources():
    with pytest.raises(ValueError, match="at most one of --preset, --config_file, --model_name_or_path, --init_from"):
        PretrainingArguments(preset="test", init_from="org/vit")
