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


@pytest.mark.parametrize("method", list_models())
def test_eager_and_sdpa_attention_agree(method):
    """#24 (part): the kernels a model declares give the same loss and gradients (within 1e-5)."""
    spec = get_model_spec(method)
    config = spec.tiny_config()
    results = []
    for kernel in ("eager", "sdpa"):
        torch.manual_seed(0)
        model = spec.pretraining_class(config)
        model.set_attn_implementation(kernel)
        batch = {"pixel_values": torch.randn(2, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(1)),
                 **spec.pretraining_inputs(model.config, 2, torch.Generator().manual_seed(2))}  # fmt: skip
        loss = model(**batch).loss
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (eager, eager_grads), (sdpa, sdpa_grads) = results
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)
    assert eager_grads.keys() == sdpa_grads.keys()
    for name, grad in eager_grads.items():
        torch.testing.assert_close(sdpa_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_an_attention_kernel_that_cannot_run_is_refused_by_name(tmp_path):
    from hf_mim.training import Pretrainer, PretrainingArguments

    spec = get_model_spec("hpm")
    args = PretrainingArguments(output_dir=str(tmp_path), cpu=True, attn_implementation="flash_attention_2")
    with pytest.raises(ValueError, match="--attn_implementation flash_attention_2: HPMForPreTraining cannot use it"):
        Pretrainer(spec.pretraining_class(spec.tiny_config()), args, train_dataset=[])
    with pytest.raises(ValueError, match="--attn_implementation must be one of"):
        PretrainingArguments(attn_implementation="fast")


@pytest.mark.parametrize("method", list_models())
def test_flex_attention_gives_the_eager_loss(method):
    """#24: every method declares the kernels of transformers' ViT blocks (sdpa, flash, flex); flex runs forward on
    CPU (its backward needs a GPU) and gives eager mode's loss."""
    spec = get_model_spec(method)
    config = spec.tiny_config()
    losses = []
    for kernel in ("eager", "flex_attention"):
        torch.manual_seed(0)
        model = spec.pretraining_class(config).eval()
        model.set_attn_implementation(kernel)
        batch = {"pixel_values": torch.randn(2, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(1)),
                 **spec.pretraining_inputs(model.config, 2, torch.Generator().manual_seed(2))}  # fmt: skip
        with torch.no_grad():
            losses.append(model(**batch).loss)
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset", ["swin-test", "beit-test"])
def test_simmim_encoders_without_flex_refuse_it_by_name(preset):
    """SimMIM declares flex for its ViT; transformers' Swin and BEiT classes do not support it and say so."""
    from hf_mim import SimMIMConfig, SimMIMForMaskedImageModeling
    from hf_mim.training.builders import set_attention

    model = SimMIMForMaskedImageModeling(SimMIMConfig.from_preset(preset))
    with pytest.raises(ValueError, match=r"--attn_implementation flex_attention: .*(Swin|Beit)Model does not support"):
        set_attention(model, "flex_attention")
