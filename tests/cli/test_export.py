"""``hf-mim export``: the command's own refusals."""

from __future__ import annotations

import pytest

from hf_mim import get_model_spec


def test_export_refuses_to_overwrite_its_source(tmp_path, capsys):
    from hf_mim.cli import export

    spec = get_model_spec("maskfeat")
    spec.pretraining_class(spec.tiny_config()).save_pretrained(tmp_path)
    with pytest.raises(SystemExit):
        export.main(["--model_name_or_path", str(tmp_path), "--output_dir", str(tmp_path)])
    assert "would overwrite the checkpoint" in capsys.readouterr().err


def test_pretrain_init_from_then_export_gives_the_source_class_for_a_pipeline(tmp_path):
    """hf-mim pretrain --init_from a DINOv2 with 14 px patches (at another resolution), then hf-mim export: a
    Dinov2Model with the trained encoder's weights and a BitImageProcessor at the run's resolution, which transformers'
    image-feature-extraction pipeline runs without hf_mim's help."""
    import numpy as np
    import torch
    from huggingface_hub import ModelCard
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel, Dinov2Config, Dinov2Model, pipeline
    from transformers import BitImageProcessorPil as BitImageProcessor

    from hf_mim.cli import export, pretrain

    torch.manual_seed(0)
    source = AutoModel.from_config(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                intermediate_size=64, image_size=28, patch_size=14))  # fmt: skip
    source.save_pretrained(tmp_path / "dinov2")
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 28, "width": 28}).save_pretrained(
        tmp_path / "dinov2"
    )
    pretrain.main(["--method", "simmim", "--init_from", str(tmp_path / "dinov2"), "--config_overrides",
                   "encoder_config.image_size=56", "--output_dir", str(tmp_path / "run"), "--default_data_size", "16",
                   "--per_device_train_batch_size", "8", "--max_steps", "3", "--learning_rate", "1e-3",
                   "--picture_steps", "0", "--cpu"])  # fmt: skip
    export.main(["--model_name_or_path", str(tmp_path / "run"), "--output_dir", str(tmp_path / "export")])

    exported = AutoModel.from_pretrained(tmp_path / "export")
    assert type(exported) is Dinov2Model and exported.config.image_size == 56
    trained = pretrain.LAST_MODEL.simmim.encoder.model.state_dict()
    assert all(torch.equal(value, trained[key]) for key, value in exported.state_dict().items())
    processor = AutoImageProcessor.from_pretrained(tmp_path / "export")
    assert type(processor).__name__.startswith("BitImageProcessor")
    assert processor.crop_size == {"height": 56, "width": 56} and processor.size == {"shortest_edge": 64}
    features = pipeline("image-feature-extraction", model=str(tmp_path / "export"))(
        Image.fromarray(np.zeros((70, 90, 3), np.uint8))
    )
    assert np.asarray(features).shape == (1, 1 + 16, 32)  # [CLS] and the 4 x 4 patches of a 56 px crop
    for folder in ("run", "export"):
        card = ModelCard.load(tmp_path / folder / "README.md").data
        assert card.pipeline_tag == "image-feature-extraction" and card.base_model is None  # a local start
