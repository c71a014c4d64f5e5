"""One registry drives everything method-specific: every method package has a complete entry, and what the entry
names exists (presets, recipes of the right stage, converters, model-card template, Auto classes)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

from hf_mim import get_model_spec, list_models
from hf_mim.training import recipes

PACKAGES = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "src" / "hf_mim" / "models").iterdir()
                  if (p / "__init__.py").is_file())  # fmt: skip


def test_every_method_package_has_an_entry():
    assert list_models() == PACKAGES


@pytest.mark.parametrize("method", PACKAGES)
def test_the_entry_is_complete_and_what_it_names_exists(method):
    spec = get_model_spec(method)
    assert spec.name == method == spec.config_class.model_type
    assert spec.paper and spec.demo_preset in spec.config_class.presets and spec.lr_scale_batch > 0
    assert spec.recipes, "a method ships its official recipes"
    for name, (stage, values) in spec.recipes.items():
        assert stage in ("pretrain", "finetune") and recipes.get_recipe(name).method == method
        assert all(isinstance(source, str) and source for _, source in values.values()), name
    for stage in ("pretrain", "finetune"):
        assert recipes.get_recipe(spec.main_recipe(stage), stage=stage, method=method)
    for key, name in spec.main_recipes.items():
        assert recipes.get_recipe(name, stage=key.split("/")[0], method=method)
    if spec.official_sources:
        module = importlib.import_module(f"hf_mim.models.{method}.convert_{method}_official")
        assert callable(module.convert)
    template = Path(importlib.import_module("hf_mim.hub").TEMPLATES_DIR) / f"{method}.md"
    assert template.is_file()


@pytest.mark.parametrize("method", PACKAGES)
def test_auto_classes_resolve_every_method(method):
    spec = get_model_spec(method)
    config = spec.tiny_config()
    assert type(AutoConfig.for_model(method)) is spec.config_class
    assert type(AutoModel.from_config(config)) is spec.model_class
    assert type(AutoModelForPreTraining.from_config(config)) is spec.pretraining_class
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

    assert spec.image_processor_class in IMAGE_PROCESSOR_MAPPING[spec.config_class].values()


def test_an_unknown_method_names_the_known_ones():
    with pytest.raises(ValueError, match="available"):
        get_model_spec("beit")
