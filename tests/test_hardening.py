"""Regression tests of issue #10's findings outside the checkpoint logic: initialisation, typed config overrides,
image bit depths, Swin inputs, config validation, bad data, fine-tuning labels, HPM progress under Trainer."""

from __future__ import annotations

import io
import math

import numpy as np
import PIL.Image
import pytest
import torch

from hf_mim import HPMConfig, HPMForPreTraining, get_model_spec
from hf_mim.config_overrides import parse_config_overrides
from hf_mim.image_processing import to_rgb_image


def xavier_std(fan_in: int, fan_out: int) -> float:
    return math.sqrt(2.0 / (fan_in + fan_out))


def test_fresh_hpm_matches_maes_initialisation():
    """MAE (official main_pretrain / models_mae): xavier-uniform Linear and patch embedding (as a Linear), [CLS] and
    [MASK] normal(0.02), fixed sin-cos positions. Per-parameter std within 10%."""
    torch.manual_seed(0)
    model = HPMForPreTraining(HPMConfig.from_preset("small"))
    emb = model.hpm.encoder.embeddings
    w = emb.patch_embeddings.projection.weight
    assert w.std().item() == pytest.approx(xavier_std(w[0].numel(), w.shape[0]), rel=0.1)
    assert emb.cls_token.std().item() == pytest.approx(0.02, rel=0.1) and emb.cls_token.abs().sum() > 0
    assert model.decoder.mask_token.std().item() == pytest.approx(0.02, rel=0.1)
    fc1 = model.hpm.encoder.layers[0].mlp.fc1.weight
    assert fc1.std().item() == pytest.approx(xavier_std(fc1.shape[1], fc1.shape[0]), rel=0.1)
    assert torch.equal(model.teacher.encoder.embeddings.cls_token, emb.cls_token)  # the teacher starts as a copy


@pytest.mark.parametrize("method", ["maskfeat", "simmim"])
def test_fresh_maskfeat_and_simmim_match_their_truncated_normal_init(method):
    """MaskFeat (SlowFast) and SimMIM: truncated normal std 0.02 on Linear / patch embedding and the tokens."""
    spec = get_model_spec(method)
    config = spec.config_class.from_preset("base" if method == "maskfeat" else "vit-base")
    torch.manual_seed(0)
    model = spec.pretraining_class(config)
    encoder = getattr(model, model.base_model_prefix).encoder
    for name, tensor in [("patch", encoder.embeddings.patch_embeddings.projection.weight),
                         ("fc1", encoder.layers[0].mlp.fc1.weight), ("cls", encoder.embeddings.cls_token),
                         ("mask", encoder.embeddings.mask_token), ("pos", encoder.embeddings.position_embeddings)]:  # fmt: skip
        # as timm's trunc_normal_(std=0.02): the bounds (+-2) are absolute, so the std stays 0.02
        assert tensor.std().item() == pytest.approx(0.02, rel=0.1), name


def test_config_overrides_are_typed_and_checked():
    assert parse_config_overrides("hard_patches_mining=False,norm_pix_loss=0,mask_ratio=0.6", "hpm") == {
        "hard_patches_mining": False, "norm_pix_loss": False, "mask_ratio": 0.6}  # fmt: skip
    with pytest.raises(ValueError, match="Did you mean 'hidden_size'"):
        parse_config_overrides("hiden_size=64", "maskfeat")
    with pytest.raises(ValueError, match="boolean"):
        parse_config_overrides("norm_pix_loss=maybe", "hpm")
    nested = parse_config_overrides("encoder_config.window_size=6,encoder_config.depths=[2,2,6,2]", "simmim")
    assert nested == {"encoder_config": {"window_size": 6, "depths": [2, 2, 6, 2]}}
    with pytest.raises(ValueError, match="Did you mean 'window_size'"):
        parse_config_overrides("encoder_config.windw_size=6", "simmim")
    from hf_mim.training import build_config

    config = build_config(
        "simmim", preset="swin-test", **parse_config_overrides("encoder_config.window_size=2", "simmim")
    )
    assert config.encoder_config.window_size == 2 and config.encoder_config.embed_dim == 16


def test_config_file_with_unknown_keys_is_refused(tmp_path):
    from hf_mim.training import build_config

    (tmp_path / "c.json").write_text('{"hidden_size": 64, "hiden_size": 64}')
    with pytest.raises(ValueError, match="Unknown maskfeat config .*hiden_size.*Did you mean 'hidden_size'"):
        build_config("maskfeat", config_file=str(tmp_path / "c.json"))


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


def test_images_are_converted_by_bit_depth():
    gradient16 = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # up to 65472
    png = io.BytesIO()
    PIL.Image.fromarray(gradient16).save(png, "PNG")
    decoded = PIL.Image.open(png)
    assert decoded.mode.startswith("I")
    expected = np.rint(gradient16 / 65535 * 255).astype(np.uint8)
    assert np.array_equal(np.asarray(to_rgb_image(decoded))[..., 0], expected)  # not all white
    assert np.array_equal(np.asarray(to_rgb_image(gradient16))[..., 0], expected)
    assert np.array_equal(np.asarray(to_rgb_image(gradient16.astype(np.int32)))[..., 0], expected)
    half = PIL.Image.fromarray(np.full((4, 4), 0.5, np.float32))  # mode F
    assert np.asarray(to_rgb_image(half))[0, 0, 0] == 128  # not black
    assert np.asarray(to_rgb_image(np.full((4, 4, 3), 200.0)))[0, 0, 0] == 200  # 0..255 floats do not saturate
    assert np.asarray(to_rgb_image(np.full((4, 4, 3), 100, np.int64)))[0, 0, 0] == 100  # 8-bit values in int64
    with pytest.raises(ValueError, match="normalised already"):
        to_rgb_image(np.full((4, 4, 3), -0.5))


def test_swin_small_inputs_are_refused_without_breaking_the_model_and_any_dtype_works():
    spec = get_model_spec("simmim")
    model = spec.pretraining_class(spec.tiny_config(backbone="swin")).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = model(x).reconstruction
        with pytest.raises(ValueError, match="at least 32x32"):
            model(torch.randn(1, 3, 16, 16))
        assert torch.equal(model(x).reconstruction, before)
        for dtype in (torch.bfloat16, torch.float16):
            assert model(x.to(dtype)).reconstruction.shape == (1, 3, 32, 32)
        assert model(torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8)).reconstruction.dtype == torch.float32


def _parquet(path, images, labels=None, raw=False):
    import datasets

    if raw:
        data = {"image": images}
        features = datasets.Features({"image": datasets.Value("binary")})
    else:
        data = {"image": images, **({"label": labels} if labels is not None else {})}
        features = None
    datasets.Dataset.from_dict(data, features=features).to_parquet(str(path))
    return path


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    array = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    PIL.Image.fromarray(array).save(buf, "JPEG")
    return buf.getvalue()


def test_bad_data_is_named(tmp_path):
    import datasets

    from hf_mim.cli import pretrain

    from .cli.test_pretrain import run_args

    rows = [_jpeg(i) for i in range(16)]
    rows[5] = b"\xff\xd8 not a jpeg"
    bad = _parquet(tmp_path / "bad.parquet", rows, raw=True)  # raw bytes: cast to images automatically
    with pytest.raises(ValueError, match="Row 5 of .*cannot be decoded.*--skip_corrupt_images"):
        pretrain.main(run_args("maskfeat", tmp_path / "a", "--max_steps", "2", "--data_files", str(bad)))
    metrics = pretrain.main(run_args("maskfeat", tmp_path / "b", "--max_steps", "2", "--data_files", str(bad),
                                     "--skip_corrupt_images"))  # fmt: skip
    assert metrics["train_steps"] == 2
    empty = tmp_path / "empty.parquet"
    datasets.Dataset.from_dict({"image": []}, features=datasets.Features({"image": datasets.Image()})).to_parquet(
        str(empty)
    )
    with pytest.raises(ValueError, match="has no rows"):
        pretrain.main(run_args("maskfeat", tmp_path / "c", "--max_steps", "2", "--data_files", str(empty)))


@pytest.mark.parametrize(
    "labels, message",
    [([0, 1, None, 1] * 4, "empty label"), ([0, 1, 2.5, 1] * 4, "non-integer"), ([0, 1, -1, 1] * 4, "negative"),
     ([3] * 16, "single class")],
)  # fmt: skip
def test_finetuning_labels_are_validated(labels, message, tmp_path):
    from hf_mim.cli import finetune

    spec = get_model_spec("maskfeat")
    model = spec.pretraining_class(spec.tiny_config())
    model.save_pretrained(tmp_path / "ckpt")
    images = [PIL.Image.open(io.BytesIO(_jpeg(i))) for i in range(16)]
    data = _parquet(tmp_path / "labelled.parquet", images, labels)
    with pytest.raises(ValueError, match=message):
        finetune.main(["--model_name_or_path", str(tmp_path / "ckpt"), "--data_files", str(data), "--output_dir",
                       str(tmp_path / "ft"), "--max_steps", "1", "--use_cpu", "--report_to", "none",
                       "--validation_split_percentage", "25"])  # fmt: skip


def test_export_refuses_to_overwrite_its_source(tmp_path, capsys):
    from hf_mim.cli import export

    spec = get_model_spec("maskfeat")
    spec.pretraining_class(spec.tiny_config()).save_pretrained(tmp_path)
    with pytest.raises(SystemExit):
        export.main(["--model_name_or_path", str(tmp_path), "--output_dir", str(tmp_path)])
    assert "would overwrite the checkpoint" in capsys.readouterr().err


def test_hpm_callback_ramps_on_an_iterable_dataset(cifar10_rows, tmp_path):
    from transformers import Trainer, TrainingArguments

    from hf_mim import HPMImageProcessor, HPMTrainerCallback

    config = get_model_spec("hpm").tiny_config()
    processor = HPMImageProcessor.from_model_config(config)
    stream = (
        cifar10_rows.select(range(64))
        .to_iterable_dataset()
        .map(processor.as_transform(), batched=True, remove_columns=["image", "label"])
    )
    model = HPMForPreTraining(config)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=4, use_cpu=True,
                             report_to=[], save_strategy="no", remove_unused_columns=False)  # fmt: skip
    Trainer(model=model, args=args, train_dataset=stream, callbacks=[HPMTrainerCallback()]).train()
    nominal = HPMTrainerCallback.NOMINAL_EPOCHS
    assert float(model.total_epochs) == nominal and float(model.training_epoch) == pytest.approx(0.75 * nominal)
    assert model.num_hard_patches(config.num_masked) > 0
