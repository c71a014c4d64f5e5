"""#23 item 1: grey (16-bit) and 4-band (RGB-NIR-like) images through pretrain -> finetune -> export, for every
method; channel mismatches are errors before any work."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import AutoModel

from hf_mim import get_model_spec, list_models
from hf_mim.cli import main

SMALL = {"maskfeat": ["--preset", "test"], "hpm": ["--preset", "test"],
         "simmim": ["--preset", "vit-test", "--config_overrides", "mask_patch_size=16"]}  # fmt: skip


def _parquet(path, channels: int, count: int = 24):
    import datasets

    rng = np.random.default_rng(channels)
    rows = []
    for _ in range(count):
        if channels == 1:  # 16-bit grey PNG, as medical and microscopy data come
            array = (rng.random((40, 44)) * 65535).astype(np.uint16)
            image = PIL.Image.fromarray(array)
        else:  # 4 bands as an RGBA PNG
            image = PIL.Image.fromarray((rng.random((40, 44, 4)) * 255).astype(np.uint8), mode="RGBA")
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        rows.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    datasets.Dataset.from_dict({"image": rows, "label": [i % 2 for i in range(count)]}, features=features).to_parquet(
        str(path)
    )
    return path


@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("method", list_models())
def test_pretrain_finetune_export_with_other_channel_counts(method, channels, tmp_path):
    data = _parquet(tmp_path / "data.parquet", channels)
    channel_override = ("encoder_config." if method == "simmim" else "") + f"num_channels={channels}"
    extra = list(SMALL[method])
    if "--config_overrides" in extra:
        extra[-1] += "," + channel_override
    else:
        extra += ["--config_overrides", channel_override]
    assert main(["pretrain", "--method", method, *extra, "--data_files", str(data), "--output_dir",
                 str(tmp_path / "pt"), "--max_steps", "2", "--per_device_train_batch_size", "4", "--picture_steps",
                 "0", "--cpu"]) == 0  # fmt: skip
    config = AutoModel.from_pretrained(tmp_path / "pt").config
    assert (getattr(config, "encoder_config", None) or config).num_channels == channels
    assert len(config.image_mean) == channels
    assert main(["finetune", "--model_name_or_path", str(tmp_path / "pt"), "--data_files", str(data),
                 "--output_dir", str(tmp_path / "ft"), "--max_steps", "2", "--per_device_train_batch_size", "4",
                 "--use_cpu", "--report_to", "none", "--save_strategy", "no"]) == 0  # fmt: skip
    assert main(["export", "--model_name_or_path", str(tmp_path / "ft"), "--output_dir", str(tmp_path / "ex")]) == 0
    exported = AutoModel.from_pretrained(tmp_path / "ex").eval()
    with torch.no_grad():
        features = exported(pixel_values=torch.randn(1, channels, config.image_size, config.image_size))
    assert torch.isfinite(features.last_hidden_state).all()


def test_a_channel_mismatch_is_refused_before_work(tmp_path, capsys):
    data = _parquet(tmp_path / "rgba.parquet", 4)
    code = main(["pretrain", "--method", "maskfeat", "--preset", "test", "--config_overrides", "num_channels=1",
                 "--data_files", str(data), "--output_dir", str(tmp_path / "a"), "--max_steps", "1", "--cpu",
                 "--per_device_train_batch_size", "4"])  # fmt: skip
    assert code == 0  # colour images are made grey for a one-channel model
    code = main(["pretrain", "--method", "maskfeat", "--preset", "test", "--config_overrides", "num_channels=2",
                 "--data_files", str(data), "--output_dir", str(tmp_path / "b"), "--max_steps", "1", "--cpu",
                 "--per_device_train_batch_size", "4"])  # fmt: skip
    assert code == 2 and "4 channel(s), but the processor's `num_channels` is 2" in capsys.readouterr().err
    assert not (tmp_path / "b" / "checkpoints").exists()
    spec = get_model_spec("hpm")
    processor = spec.image_processor_class.from_model_config(spec.tiny_config())  # 3 channels
    from hf_mim.training import Pretrainer, PretrainingArguments

    with pytest.raises(ValueError, match="3-channel inputs, but the model takes 4"):
        Pretrainer(spec.pretraining_class(spec.tiny_config(num_channels=4)), PretrainingArguments(cpu=True),
                   train_dataset=[], image_processor=processor)  # fmt: skip


def test_thirteen_bands_keep_their_16_bit_values():
    from hf_mim import MaskedImageProcessor

    processor = MaskedImageProcessor(image_size=16, patch_size=8, num_channels=13, mask_type=None, do_normalize=False,
                                     crop_pct=1.0, resample="nearest")  # fmt: skip
    bands = np.arange(16 * 16 * 13, dtype=np.uint16).reshape(16, 16, 13) * 3
    out = processor(bands)["pixel_values"][0]  # [13, 16, 16], the whole image: values / 65535
    np.testing.assert_allclose(out.numpy(), np.moveaxis(bands, -1, 0) / 65535, rtol=1e-6)
    with pytest.raises(ValueError, match="one value per channel"):
        MaskedImageProcessor(num_channels=13, image_mean=[0.5] * 3)
