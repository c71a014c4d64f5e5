"""Fine-tuning pieces (hf_mim.training.finetuning): the architecture switches and the classifier initialisation of
the recipes, checked on tiny models of every method."""

from __future__ import annotations

import pytest
import torch

from hf_mim import get_model_spec, list_models
from hf_mim.training.finetuning import finetuning_config, init_classifier


@pytest.mark.parametrize("method", list_models())
def test_drop_path_and_fc_norm_land_where_the_encoder_reads_them(method):
    config = finetuning_config(get_model_spec(method).tiny_config(), drop_path_rate=0.1, use_fc_norm=True)
    encoder = getattr(config, "encoder_config", None) or config
    assert encoder.drop_path_rate == 0.1 and config.use_fc_norm is True


@pytest.mark.parametrize("method", list_models())
def test_head_scale_and_std_init(method):
    spec = get_model_spec(method)
    torch.manual_seed(0)
    model = spec.classification_class(spec.tiny_config(num_labels=3))
    weight, bias = model.classifier.weight.clone(), model.classifier.bias.clone()
    init_classifier(model, ("scale", 0.001))
    torch.testing.assert_close(model.classifier.weight, weight * 0.001)
    torch.testing.assert_close(model.classifier.bias, bias * 0.001)
    init_classifier(model, ("std", 2e-5))
    assert model.classifier.weight.abs().max() <= 4e-5 and 0 < model.classifier.weight.std() < 4e-5
    with pytest.raises(ValueError, match="head_init"):
        init_classifier(model, ("zeros", 0))
    with pytest.raises(ValueError, match="fc_norm_init"):
        init_classifier(model, None, "random")


def test_bad_resolution_arguments_are_refused_by_name():
    from hf_mim.training.finetuner import FinetuneArguments

    with pytest.raises(ValueError, match="--image_size must be a positive integer"):
        FinetuneArguments(model_name_or_path="x", image_size=0)
    with pytest.raises(ValueError, match="--window_size must be a positive integer"):
        FinetuneArguments(model_name_or_path="x", window_size=-7)
    with pytest.raises(ValueError, match="--attn_implementation must be one of"):
        FinetuneArguments(model_name_or_path="x", attn_implementation="fast")
    with pytest.raises(ValueError, match="--image_size must be a multiple of the patch size 8"):
        finetuning_config(get_model_spec("maskfeat").tiny_config(), image_size=50)
    with pytest.raises(ValueError, match="--window_size is for Swin encoders"):
        finetuning_config(get_model_spec("maskfeat").tiny_config(), window_size=7)
