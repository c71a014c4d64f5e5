"""Continued pretraining of released backbones (``hf_mim.backbones``): every supported pairing of a method and a
transformers encoder class starts from the backbone's features, trains, and exports back to the same class; the
others are refused naming what is supported."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import (
    AutoImageProcessor,
    AutoModel,
    BeitConfig,
    ConvNextConfig,
    DeiTConfig,
    Dinov2Config,
    Dinov2WithRegistersConfig,
    SwinConfig,
    ViTConfig,
    ViTMAEConfig,
)
from transformers import ViTImageProcessorPil as ViTImageProcessor

from hf_mim import get_model_spec, list_models
from hf_mim.backbones import BACKBONES, mean_patch_features
from hf_mim.export import export_backbone, export_image_processor

_VIT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "image_size": 32, "patch_size": 8, "layer_norm_eps": 1e-6}  # fmt: skip

#: A tiny config of every class hf_mim can wrap (32 px inputs).
SOURCES = {
    "vit": lambda: ViTConfig(**_VIT),
    "deit": lambda: DeiTConfig(**_VIT),
    "dinov2": lambda: Dinov2Config(**_VIT),
    "dinov2_with_registers": lambda: Dinov2WithRegistersConfig(**_VIT, num_register_tokens=2),
    "beit": lambda: BeitConfig(**_VIT, use_relative_position_bias=True, use_mean_pooling=False),
    "swin": lambda: SwinConfig(
        image_size=32, patch_size=2, embed_dim=16, depths=[1, 1, 2], num_heads=[2, 2, 4], window_size=4
    ),  # fmt: skip
    "vit_mae": lambda: ViTMAEConfig(**_VIT),
}
#: Tokens before the patches in each class's own last_hidden_state ([CLS], DeiT's distillation token, registers).
PREFIX = {"deit": 2, "dinov2_with_registers": 3, "swin": 0}
#: A small decoder where the method has one.
METHOD_KWARGS = {"hpm": {"decoder_hidden_size": 32, "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 2,
                         "decoder_intermediate_size": 64}}  # fmt: skip
PAIRINGS = [(method, kind) for method in list_models() for kind in get_model_spec(method).backbone_types]
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def save_source(kind: str, path, seed: int = 0):
    """A tiny backbone of class ``kind`` with random weights and its own image processor, saved to ``path``."""
    torch.manual_seed(seed)
    model = AutoModel.from_config(SOURCES[kind]()).eval()
    model.save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=MEAN, image_std=STD).save_pretrained(path)
    return model


@torch.no_grad()
def own_features(source, kind: str, pixel_values, **kwargs):
    """``([CLS] or None, patch tokens)`` of the source class's own forward (ViTMAE: a copy that masks nothing, with
    the patches in order)."""
    if kind == "vit_mae":
        config = copy.deepcopy(source.config)
        config.mask_ratio = 0.0
        state, source = source.state_dict(), type(source)(config).eval()
        source.load_state_dict(state)
        grid = (pixel_values.shape[-1] // config.patch_size) ** 2
        kwargs["noise"] = torch.arange(grid, dtype=torch.float).expand(len(pixel_values), -1)
    out = source(pixel_values, **kwargs).last_hidden_state
    prefix = PREFIX.get(kind, 1)
    return (out[:, 0] if prefix else None), out[:, prefix:]


@torch.no_grad()
def wrapped_features(model, pixel_values):
    """``([CLS] or None, patch tokens)`` of the hf_mim model's encoder, nothing masked."""
    encoder = getattr(model, model.base_model_prefix).encoder
    out = encoder(pixel_values)
    out = out[0] if isinstance(out, tuple) else out
    return (out[:, 0], out[:, 1:]) if encoder.has_cls_token else (None, out)


def max_difference(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b) if x is not None)


@pytest.mark.parametrize("method, kind", PAIRINGS)
def test_init_train_export_gives_the_source_class_with_the_trained_weights(method, kind, tmp_path):
    source = save_source(kind, tmp_path / "source")
    spec = get_model_spec(method)
    model = spec.pretraining_class.from_backbone(str(tmp_path / "source"), **METHOD_KWARGS.get(method, {}))
    assert model.config.image_mean == MEAN and model.config.image_std == STD  # the backbone's normalisation

    # before any step: the wrapped encoder's features are the source's
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert max_difference(wrapped_features(model, x), own_features(source, kind, x)) <= 1e-5

    # three pretraining steps on the method's own inputs
    processor = spec.image_processor_class.from_model_config(model.config)
    images = list(np.random.default_rng(0).integers(0, 255, (4, 40, 40, 3), dtype=np.uint8))
    batch = processor(images, augment=True, return_mask=True, seed=0)
    if "bool_masked_pos" not in batch:  # a method that draws its own masks (HPM)
        batch.update(spec.pretraining_inputs(model.config, 4, torch.Generator().manual_seed(0)))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for step in range(3):
        loss = model(**batch).loss
        assert torch.isfinite(loss), (step, loss)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    # export: AutoModel gives the source class with exactly the encoder's weights, and the source's processor
    export_backbone(model, tmp_path / "export")
    export_image_processor(model).save_pretrained(tmp_path / "export")
    exported = AutoModel.from_pretrained(tmp_path / "export")
    assert type(exported) is type(source)
    trained = getattr(model, model.base_model_prefix).encoder.model.state_dict()
    state = exported.state_dict()
    assert state.keys() == source.state_dict().keys()
    assert all(torch.equal(value, trained[key]) for key, value in state.items())
    assert any(not torch.equal(value, source.state_dict()[key]) for key, value in state.items())
    processor = AutoImageProcessor.from_pretrained(tmp_path / "export")
    assert type(processor).__name__.startswith("ViTImageProcessor") and list(processor.image_mean) == MEAN


UNSUPPORTED = [(method, kind) for method in list_models() for kind in BACKBONES
               if kind not in get_model_spec(method).backbone_types]  # fmt: skip


@pytest.mark.parametrize("method, kind", UNSUPPORTED)
def test_pairings_that_make_no_sense_are_refused_naming_the_supported_classes(method, kind):
    spec = get_model_spec(method)
    source = AutoModel.from_config(SOURCES[kind]())
    with pytest.raises(ValueError, match="the encoders it supports") as error:
        spec.pretraining_class.from_backbone(source)
    assert type(source).__name__ in str(error.value)
    assert all(AutoModel.from_config(SOURCES[k]()).__class__.__name__ in str(error.value)
               for k in spec.backbone_types)  # fmt: skip


def test_a_class_hf_mim_cannot_wrap_is_refused(tmp_path):
    AutoModel.from_config(ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"ConvNextModel .*the encoders it supports: ViTModel, DeiTModel"):
        get_model_spec("maskfeat").pretraining_class.from_backbone(str(tmp_path))


def test_patch_14_sizes_hog_cells_masks_heads_and_interpolates_positions():
    torch.manual_seed(0)
    source = AutoModel.from_config(Dinov2Config(**{**_VIT, "patch_size": 14, "image_size": 28})).eval()
    x = torch.randn(2, 3, 56, 56)
    maskfeat = get_model_spec("maskfeat").pretraining_class.from_backbone(source, image_size=56)
    assert (maskfeat.config.patch_size, maskfeat.config.hog_cell_size) == (14, 7)  # two HOG cells per patch side
    assert maskfeat.head.out_features == 3 * 9 * 2 * 2 and maskfeat.config.num_patches == 16
    # positions interpolated once to the 4 x 4 grid, as DINOv2 interpolates them on the fly
    assert maskfeat.maskfeat.encoder.model.embeddings.position_embeddings.shape[1] == 1 + 16
    assert max_difference(wrapped_features(maskfeat, x), own_features(source, "dinov2", x)) <= 1e-5
    simmim = get_model_spec("simmim").pretraining_class.from_backbone(source, image_size=56)
    assert (simmim.config.mask_patch_size, simmim.config.encoder_stride) == (28, 14)
    hpm = get_model_spec("hpm").pretraining_class.from_backbone(source, image_size=56, **METHOD_KWARGS["hpm"])
    assert hpm.config.target_dim == 14 * 14 * 3
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :7] = True
    for model, inputs in ((maskfeat, {"bool_masked_pos": mask}), (simmim, {"bool_masked_pos": torch.ones(2, 16) > 0}),
                          (hpm, {"bool_masked_pos": get_model_spec("hpm").pretraining_inputs(
                              hpm.config, 2, torch.Generator().manual_seed(0))["bool_masked_pos"]})):  # fmt: skip
        assert torch.isfinite(model(pixel_values=x, **inputs).loss)
    with pytest.raises(ValueError, match="multiple of the Dinov2Model's output stride 14"):
        get_model_spec("maskfeat").pretraining_class.from_backbone(source, image_size=64)


@pytest.mark.parametrize("kind", ["vit", "deit", "dinov2"])
def test_positions_resized_to_the_pretraining_resolution_match_the_class_own_interpolation(kind):
    torch.manual_seed(0)
    source = AutoModel.from_config(SOURCES[kind]()).eval()
    model = get_model_spec("simmim").pretraining_class.from_backbone(source, image_size=48)
    x = torch.randn(2, 3, 48, 48)
    options = {} if kind.startswith("dinov2") else {"interpolate_pos_encoding": True}
    assert max_difference(wrapped_features(model, x), own_features(source, kind, x, **options)) <= 1e-5
    assert torch.allclose(mean_patch_features(source, x), model.simmim(x).pooler_output, atol=1e-5)


def test_continued_pretraining_starts_from_the_backbone_knn_accuracy_not_from_scratch(cifar10_rows, tmp_path):
    """On real images (CIFAR-10): a backbone that knows these images' classes (a tiny ViT trained with their labels
    on its mean patch token, a stand-in for a released supervised backbone) is continued with MaskFeat through
    ``--init_from``; its kNN accuracy starts exactly at the backbone's and stays there after three steps, while the
    same model from scratch, pretrained the same way, is near chance (10 classes)."""
    from transformers import ViTModel

    from hf_mim import MaskedImageProcessor
    from hf_mim.evaluation import extract_features, knn_accuracy
    from hf_mim.training import Pretrainer, PretrainingArguments

    bank, queries = cifar10_rows.select(range(384)), cifar10_rows.select(range(384, 512))
    evaluation = MaskedImageProcessor(image_size=32, patch_size=8, mask_type=None, image_mean=MEAN, image_std=STD)

    def knn(model) -> float:
        train = extract_features(model, bank, evaluation, batch_size=128)
        test = extract_features(model, queries, evaluation, batch_size=128)
        return knn_accuracy(train, list(bank["label"]), test, list(queries["label"]), k=20)

    # the "released" backbone: supervised on the labels, saved as a plain ViTModel with its image processor
    torch.manual_seed(0)
    backbone = ViTModel(ViTConfig(**{**_VIT, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128}))
    head = torch.nn.Linear(64, 10)
    pixels = evaluation(list(cifar10_rows["image"]), augment=False)["pixel_values"]
    labels = torch.tensor(list(cifar10_rows["label"]))
    optimizer = torch.optim.AdamW([*backbone.parameters(), *head.parameters()], lr=2e-3, weight_decay=0.05)
    for _ in range(30):
        for batch in torch.randperm(len(labels)).split(64):
            logits = head(backbone(pixels[batch]).last_hidden_state[:, 1:].mean(1))
            torch.nn.functional.cross_entropy(logits, labels[batch]).backward()
            optimizer.step()
            optimizer.zero_grad()
    backbone.save_pretrained(tmp_path / "backbone")
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=MEAN, image_std=STD).save_pretrained(
        tmp_path / "backbone"
    )

    images = cifar10_rows.remove_columns("label")
    options = {"method": "maskfeat", "max_steps": 3, "learning_rate": 1e-4, "per_device_train_batch_size": 32,
               "picture_steps": 0, "cpu": True}  # fmt: skip
    scores = {"backbone": knn(backbone.eval())}
    continued = Pretrainer(args=PretrainingArguments(init_from=str(tmp_path / "backbone"), **options,
                                                     output_dir=str(tmp_path / "continued")), train_dataset=images)  # fmt: skip
    scores["continued, before any step"] = knn(continued.model)
    continued.train()
    scores["continued, 3 steps"] = knn(continued.model)
    torch.manual_seed(0)
    scratch = get_model_spec("maskfeat").pretraining_class(continued.model.config)  # the same model, new weights
    Pretrainer(
        scratch, PretrainingArguments(**options, output_dir=str(tmp_path / "scratch")), train_dataset=images
    ).train()
    scores["scratch, 3 steps"] = knn(scratch)
    print(scores)
    assert scores["continued, before any step"] == scores["backbone"]
    assert abs(scores["continued, 3 steps"] - scores["backbone"]) <= 0.05
    assert scores["continued, 3 steps"] - scores["scratch, 3 steps"] >= 0.2
