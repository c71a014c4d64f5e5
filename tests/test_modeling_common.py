"""Common checks for every method in the registry (timm's list_models() pattern)."""

import pytest
import torch

from hf_mim import get_model_spec, list_models

from .modeling_tester import ModelTesterMixin, RealDataTesterMixin


@pytest.fixture(params=list_models())
def spec(request):
    return get_model_spec(request.param)


class TestCommon(ModelTesterMixin, RealDataTesterMixin):
    @pytest.fixture(autouse=True)
    def _bind(self, spec):
        self.spec = spec


def test_registry_lists_methods():
    assert "maskfeat" in list_models()
    with pytest.raises(ValueError, match="available"):
        get_model_spec("beit")


@pytest.mark.parametrize("method,preset", [("maskfeat", "test"), ("hpm", "test"), ("simmim", "vit-test"),
                                           ("simmim", "beit-test")])  # fmt: skip
def test_fc_norm_head_is_layernorm_of_the_mean_pre_norm_patch_token(method, preset):
    """use_fc_norm: the pooled feature is the final LayerNorm applied to the mean of the patch tokens as they enter
    that LayerNorm (captured with a hook on the plain model), not the mean of the normalised tokens."""
    import torch.nn.functional as F

    from hf_mim import training

    torch.manual_seed(0)
    spec = get_model_spec(method)
    plain = spec.classification_class(training.build_config(method, preset=preset, num_labels=3)).eval()
    fc = spec.classification_class(training.build_config(method, preset=preset, num_labels=3, use_fc_norm=True))
    missing, unexpected = fc.load_state_dict(plain.state_dict(), strict=False)
    fc.eval()
    base = getattr(plain, plain.base_model_prefix)
    if preset == "beit-test":  # BEiT: final norm is Identity, the pooler's LayerNorm is new (identity at init)
        norm = getattr(fc, fc.base_model_prefix).encoder.pooler.layernorm
        captured = {}
        getattr(fc, fc.base_model_prefix).encoder.layernorm.register_forward_hook(
            lambda m, i, o: captured.setdefault("x", i[0])
        )
        x = torch.randn(2, 3, 32, 32)
        pooled = getattr(fc, fc.base_model_prefix)(pixel_values=x).pooler_output
    else:
        norm = base.encoder.layernorm
        captured = {}
        norm.register_forward_hook(lambda m, i, o: captured.setdefault("x", i[0]))
        x = torch.randn(2, 3, 32, 32)
        plain(pixel_values=x)
        pooled = getattr(fc, fc.base_model_prefix)(pixel_values=x).pooler_output
    expected = F.layer_norm(captured["x"][:, 1:].mean(1), norm.normalized_shape, norm.weight, norm.bias, norm.eps)
    torch.testing.assert_close(pooled, expected)
    with pytest.raises(ValueError, match="use_fc_norm"):
        training.build_config(method, preset=preset, use_fc_norm=True, pooling="cls")
