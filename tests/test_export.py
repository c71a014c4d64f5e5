import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import BeitModel, SwinModel, ViTModel

from hf_mim import get_model_spec
from hf_mim.export import export_backbone
from hf_mim.registry import _simmim_tiny

REPO = Path(__file__).resolve().parents[1]


def encoder_hidden(model, pixel_values):
    base = getattr(model, model.base_model_prefix)
    if model.config.model_type == "hpm":
        return base.encoder(pixel_values)
    if model.config.model_type == "simmim" and model.config.backbone in ("swin", "beit"):
        return base.encoder(pixel_values).last_hidden_state
    return base.encoder(pixel_values)[0]


@pytest.mark.parametrize(
    "method, backbone",
    [("maskfeat", "vit"), ("simmim", "vit"), ("simmim", "swin"), ("simmim", "beit"), ("hpm", "vit")],
)
def test_exported_backbone_gives_the_same_hidden_states(method, backbone, tmp_path):
    torch.manual_seed(0)
    spec = get_model_spec(method)
    config = _simmim_tiny(backbone) if method == "simmim" else spec.tiny_config()
    model = spec.pretraining_class(config).eval()
    export_backbone(model, tmp_path)
    cls = {"swin": SwinModel, "beit": BeitModel}.get(backbone, ViTModel)
    exported = cls.from_pretrained(tmp_path).eval()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == backbone
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = encoder_hidden(model, x)
        theirs = exported(pixel_values=x).last_hidden_state
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)


def test_export_script_then_plain_transformers_in_a_process_without_hf_mim(tmp_path):
    torch.manual_seed(0)
    spec = get_model_spec("maskfeat")
    model = spec.pretraining_class(spec.tiny_config()).eval()
    model.save_pretrained(tmp_path / "ckpt")
    spec.image_processor_class.from_model_config(model.config).save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "vit"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "export_backbone.py"), "--model_name_or_path",
                             str(tmp_path / "ckpt"), "--output_dir", str(out)], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    x = torch.randn(1, 3, 32, 32)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(model.maskfeat.encoder(x)[0], tmp_path / "ref.pt")
    code = (
        "import sys, torch\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'hf_mim': raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from transformers import AutoImageProcessor, ViTModel\n"
        f"m = ViTModel.from_pretrained({str(out)!r}).eval()\n"
        f"AutoImageProcessor.from_pretrained({str(out)!r})\n"
        f"x, ref = torch.load({str(tmp_path / 'x.pt')!r}), torch.load({str(tmp_path / 'ref.pt')!r})\n"
        "torch.testing.assert_close(m(pixel_values=x).last_hidden_state, ref, atol=1e-5, rtol=1e-5)\n"
        "print('OK')\n"
    )
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert check.returncode == 0 and "OK" in check.stdout, check.stderr[-2000:]


def test_model_card_metadata_is_valid():
    import yaml
    from huggingface_hub import ModelCard

    from hf_mim.hub import render_model_card

    for method in ("maskfeat", "simmim", "hpm"):
        spec = get_model_spec(method)
        card = render_model_card(
            method, f"org/{method}-test", spec.tiny_config(), {"learning rate": 1e-3}, "cifar10",
            results=[{"dataset": "cifar10", "metric": "accuracy", "value": 0.42, "split": "test"}],
            pipeline_tag="image-classification",
        )  # fmt: skip
        meta = yaml.safe_load(str(card).split("---")[1])
        assert meta["library_name"] == "transformers" and meta["license"] == "apache-2.0"
        assert meta["pipeline_tag"] == "image-classification" and method in meta["tags"]
        assert meta["model-index"][0]["results"][0]["metrics"][0] == {"type": "accuracy", "value": 0.42}
        text = str(card)
        assert "@inproceedings" in text and f"org/{method}-test" in text and "Trainer" in text
        reparsed = ModelCard(text)  # huggingface_hub parses its own output back
        assert reparsed.data.eval_results[0].metric_value == 0.42
    with pytest.raises(ValueError, match="template"):
        render_model_card("beit", "x", spec.tiny_config())
