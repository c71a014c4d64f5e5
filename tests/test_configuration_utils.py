"""Config validation: bad values name the field and the allowed values."""

from __future__ import annotations

import pytest

from hf_mim import get_model_spec


@pytest.mark.parametrize(
    "method, kwargs, message",
    [("maskfeat", {"layer_norm_eps": -1.0}, "layer_norm_eps"), ("maskfeat", {"mask_ratio": 0.001}, "masks no patch"),
     ("maskfeat", {"num_attention_heads": 0}, "num_attention_heads")],
)  # fmt: skip
def test_bad_config_values_are_refused(method, kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_model_spec(method).tiny_config(**kwargs)


@pytest.mark.parametrize(
    "encoder, message",
    [({"window_size": 0}, "window_size"), ({"layer_norm_eps": -1.0}, "layer_norm_eps"),
     ({"num_heads": [2, 0, 4]}, "num_heads")],
)  # fmt: skip
def test_bad_swin_and_mask_patch_values_are_refused(encoder, message):
    from hf_mim import SimMIMConfig

    with pytest.raises(ValueError, match=message):
        SimMIMConfig.from_preset("swin-test", encoder_config=encoder)
    with pytest.raises(ValueError, match="mask_patch_size"):
        SimMIMConfig.from_preset("vit-test", mask_patch_size=0)
