"""Common checks for every method in the registry (timm's list_models() pattern)."""

import pytest

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
