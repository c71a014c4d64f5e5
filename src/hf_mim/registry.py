"""One list of the methods hf_mim provides.

It drives both the registration with transformers' Auto classes (done once, on ``import hf_mim``) and the
parametrised common tests (``tests/test_modeling_common.py``), in the spirit of timm's ``list_models()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForMaskedImageModeling,
    AutoModelForPreTraining,
)
from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

from .image_processing import MaskedImageProcessor

__all__ = ["ModelSpec", "MODELS", "list_models", "get_model_spec", "register_auto_classes"]


@dataclass(frozen=True)
class ModelSpec:
    """Everything the Auto classes and the common tests need to know about one method.

    Attributes:
        name: The method's name, also its ``model_type``.
        config_class: Its ``PreTrainedConfig`` subclass.
        model_class: The bare encoder (``AutoModel``).
        pretraining_class: The pretraining model (``AutoModelForPreTraining``).
        classification_class: The classifier (``AutoModelForImageClassification``).
        image_processor_class: Its ``MaskedImageProcessor`` subclass.
        tiny_config: Builds a small config for tests and smoke runs.
        pretraining_inputs: Builds the extra pretraining inputs (e.g. a mask) for a tiny batch:
            ``(config, batch_size, generator) -> dict``.
        paper: The paper's title (model cards).
        demo_preset: The preset of the CPU demo (``hf-mim pretrain`` without a model).
        lr_scale_batch: The batch the official code's base learning rate refers to (``base * total / this``).
        recipes: Its official recipes as data, ``name -> (stage, {key: (value, "file:line")})``
            (``models/<name>/recipes_<name>.py``).
        main_recipes: The recipe a named model gets without ``--recipe``, per stage (``pretrain`` / ``finetune``);
            ``"<stage>/<backbone>"`` keys override it for a config's ``backbone``.
        official_sources: The released checkpoints' layouts its converter (``models/<name>/convert_<name>_official``)
            reads, the default first, each with the model-card text of the release (paper results and files).
        official_converter_options: Extra keyword arguments its official converter takes (``hf-mim convert``).
        picture_panels: Draws its panels of the pretraining picture,
            ``(model, out, pixel_values, mask, index, mean, std) -> [(title, [H, W, 3] uint8)]``
            (``models/<name>/visualization_<name>.py``).
        transformers_loader: The Auto class that loads its transformers counterpart for ``from_transformers``
            (None: transformers has none).
    """

    name: str
    config_class: type
    model_class: type
    pretraining_class: type
    classification_class: type
    image_processor_class: type
    tiny_config: Callable[..., Any]
    pretraining_inputs: Callable[..., dict] = field(default=lambda config, batch_size, generator: {})
    paper: str = ""
    demo_preset: str = "demo"
    lr_scale_batch: int = 256
    recipes: dict[str, tuple[str, dict]] = field(default_factory=dict)
    main_recipes: dict[str, str] = field(default_factory=dict)
    official_sources: dict[str, str] = field(default_factory=dict)
    official_converter_options: tuple[str, ...] = ()
    transformers_loader: Any = None
    picture_panels: Callable[..., list] | None = None

    @property
    def backbone_types(self) -> tuple[str, ...]:
        """The transformers encoder classes (``model_type`` s) the method can start from (``from_backbone``,
        ``--init_from``): its config class's ``backbone_types``, declared in the method package."""
        return tuple(getattr(self.config_class, "backbone_types", ()))

    def main_recipe(self, stage: str, backbone: str | None = None) -> str:
        """The name of the recipe a named model of this method gets at ``stage`` without ``--recipe``."""
        if backbone and f"{stage}/{backbone}" in self.main_recipes:
            return self.main_recipes[f"{stage}/{backbone}"]
        if stage not in self.main_recipes:
            raise ValueError(f"Method {self.name!r} has no main {stage} recipe; pass one explicitly.")
        return self.main_recipes[stage]


MODELS: dict[str, ModelSpec] = {}


def _collect() -> None:
    for spec in _specs():
        MODELS[spec.name] = spec


def _random_mask(config, batch_size: int, generator: torch.Generator) -> dict:
    num_patches = (config.image_size // config.patch_size) ** 2
    return {"bool_masked_pos": torch.rand(batch_size, num_patches, generator=generator) < 0.5}


def _specs() -> list[ModelSpec]:
    from .models import hpm, maskfeat, simmim
    from .models.hpm import recipes_hpm, visualization_hpm
    from .models.maskfeat import recipes_maskfeat, visualization_maskfeat
    from .models.simmim import recipes_simmim, visualization_simmim

    return [
        ModelSpec(
            name="maskfeat",
            config_class=maskfeat.MaskFeatConfig,
            model_class=maskfeat.MaskFeatModel,
            pretraining_class=maskfeat.MaskFeatForPreTraining,
            classification_class=maskfeat.MaskFeatForImageClassification,
            image_processor_class=maskfeat.MaskFeatImageProcessor,
            tiny_config=lambda **kw: maskfeat.MaskFeatConfig.from_preset("test", **kw),
            pretraining_inputs=_random_mask,
            paper="Masked Feature Prediction for Self-Supervised Visual Pre-Training",
            recipes=recipes_maskfeat.RECIPES,
            picture_panels=visualization_maskfeat.picture_panels,
            main_recipes={"pretrain": "maskfeat-vit-b-1600ep", "finetune": "maskfeat-vit-b-ft"},
            official_sources={
                "slowfast": "facebookresearch/SlowFast (projects/maskfeat/README.md: in1k_VIT_B_MaskFeat_PT_epoch_01600"
                ".pyth 84.0 top-1 after fine-tuning, ViT-L 85.7)",
                "mmpretrain": "open-mmlab/mmpretrain (configs/maskfeat/metafile.yml: maskfeat_vit-base-p16_8xb256-amp-"
                "coslr-300e_in1k, 83.4 top-1 after its 100-epoch fine-tuning)",
            },
        ),
        ModelSpec(
            name="simmim",
            config_class=simmim.SimMIMConfig,
            model_class=simmim.SimMIMModel,
            pretraining_class=simmim.SimMIMForMaskedImageModeling,
            classification_class=simmim.SimMIMForImageClassification,
            image_processor_class=simmim.SimMIMImageProcessor,
            tiny_config=_simmim_tiny,
            pretraining_inputs=_random_mask,
            paper="SimMIM: A Simple Framework for Masked Image Modeling",
            recipes=recipes_simmim.RECIPES,
            picture_panels=visualization_simmim.picture_panels,
            demo_preset="vit-demo",
            lr_scale_batch=512,  # microsoft/SimMIM main_simmim.py:218-220 (LR x total batch / 512)
            main_recipes={
                "pretrain": "simmim-vit-b-800ep",
                "finetune": "simmim-vit-b-ft",
                "pretrain/swin": "simmim-swin-b-800ep",
                "finetune/swin": "simmim-swin-b-ft",
            },  # fmt: skip
            official_sources={
                "simmim": "microsoft/SimMIM (README.md model tables: ViT-B 800 ep 83.8; Swin-B 100 ep 82.8 at 192 px / "
                "83.5 at 224 px; Swin-B 800 ep 84.0; Swin-L 800 ep 85.4 top-1 after fine-tuning)",
            },
            transformers_loader=AutoModelForMaskedImageModeling,
        ),
        ModelSpec(
            name="hpm",
            config_class=hpm.HPMConfig,
            model_class=hpm.HPMModel,
            pretraining_class=hpm.HPMForPreTraining,
            classification_class=hpm.HPMForImageClassification,
            image_processor_class=hpm.HPMImageProcessor,
            tiny_config=lambda **kw: hpm.HPMConfig.from_preset("test", **kw),
            pretraining_inputs=_exact_mask,
            paper="Hard Patches Mining for Masked Image Modeling",
            recipes=recipes_hpm.RECIPES,
            picture_panels=visualization_hpm.picture_panels,
            main_recipes={"pretrain": "hpm-vit-b-800ep", "finetune": "hpm-vit-b-ft"},
            official_sources={
                "hpm": "Haochen-Wang409/HPM (README.md: ViT-B/16 800 ep 84.2, ViT-L/16 800 ep 85.8 top-1 after "
                "fine-tuning)",
                "mae": "facebookresearch/mae (README.md: the pre-trained encoders mae_pretrain_vit_base / large / "
                "huge.pth, 83.6 / 85.9 / 86.9 top-1 after fine-tuning; demo/mae_visualize.ipynb: the whole models "
                "mae_visualize_vit_*.pth, trained on raw pixels)",
            },
            official_converter_options=("total_epochs",),
            transformers_loader=AutoModelForPreTraining,
        ),
    ]


def _exact_mask(config, batch_size: int, generator: torch.Generator) -> dict:
    # MAE / HPM take masks with exactly L - int(L * (1 - mask_ratio)) patches
    length = (config.image_size // config.patch_size) ** 2
    num_masked = length - int(length * (1 - config.mask_ratio))
    order = torch.argsort(torch.rand(batch_size, length, generator=generator), dim=1)
    mask = torch.zeros(batch_size, length, dtype=torch.bool).scatter_(1, order[:, :num_masked], True)
    return {"bool_masked_pos": mask}


def _simmim_tiny(backbone: str = "vit", image_size: int | None = None, patch_size: int | None = None, **kwargs):
    from .models.simmim import SimMIMConfig

    encoder = {}
    if image_size is not None:
        encoder["image_size"] = image_size
    if patch_size is not None:
        encoder["patch_size"] = patch_size
    return SimMIMConfig.from_preset(f"{backbone}-test", encoder_config=encoder, **kwargs)


def list_models() -> list[str]:
    """Names of the available methods, e.g. ``["maskfeat", ...]``."""
    return sorted(MODELS)


def get_model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"Unknown method {name!r}; available: {list_models()}.")
    return MODELS[name]


_REGISTERED = False


def register_auto_classes() -> None:
    """Registers every method's config, models and image processor with transformers' Auto classes (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    _collect()
    # The base processor is tied to no model; registering it under its own class lets AutoImageProcessor
    # resolve a saved ``"image_processor_type": "MaskedImageProcessor"`` by name.
    IMAGE_PROCESSOR_MAPPING.register(
        MaskedImageProcessor, {"pil": MaskedImageProcessor, "torchvision": MaskedImageProcessor}, exist_ok=True
    )
    for spec in MODELS.values():
        AutoConfig.register(spec.name, spec.config_class, exist_ok=True)
        AutoModel.register(spec.config_class, spec.model_class, exist_ok=True)
        AutoModelForPreTraining.register(spec.config_class, spec.pretraining_class, exist_ok=True)
        AutoModelForImageClassification.register(spec.config_class, spec.classification_class, exist_ok=True)
        processor = spec.image_processor_class
        AutoImageProcessor.register(
            spec.config_class, image_processor_classes={"pil": processor, "torchvision": processor}, exist_ok=True
        )
    _REGISTERED = True
