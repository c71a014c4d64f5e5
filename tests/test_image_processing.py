import io

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import AutoImageProcessor

from hf_mim import MaskedImageProcessor
from hf_mim.image_processing import to_rgb_image


def test_outputs_shapes_dtypes_and_counts(photos):
    processor = MaskedImageProcessor(
        image_size=64, patch_size=16, mask_type="random", mask_kwargs={"mask_ratio": 0.75}
    )
    out = processor(list(photos.values()), augment=True, return_mask=True, return_hog_targets=True)
    assert out["pixel_values"].shape == (3, 3, 64, 64) and out["pixel_values"].dtype == torch.float32
    assert out["bool_masked_pos"].shape == (3, 16) and out["bool_masked_pos"].dtype == torch.bool
    assert (out["bool_masked_pos"].sum(1) == 16 - int(16 * 0.25)).all()
    assert out["hog_targets"].shape == (3, 16, 108) and out["hog_targets"].dtype == torch.float32


def test_eval_preprocessing_is_deterministic_and_normalised(photos):
    processor = MaskedImageProcessor(image_size=32, patch_size=8, mask_type=None)
    a = processor(photos["chelsea"], augment=False)["pixel_values"]
    b = processor(photos["chelsea"], augment=False)["pixel_values"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert "bool_masked_pos" not in processor(photos["chelsea"])
    # resize-shorter-side + center crop, then ImageNet normalisation, computed independently with PIL
    image = PIL.Image.fromarray(photos["chelsea"])
    w, h = image.size
    side = min(w, h) * 0.875
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    ref = np.asarray(image.resize((32, 32), PIL.Image.BICUBIC, box=box), np.float32) / 255.0
    ref = (ref - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    np.testing.assert_allclose(a[0].numpy(), ref.transpose(2, 0, 1), atol=1e-5)


def test_augmentation_is_random_but_seedable(photos):
    processor = MaskedImageProcessor(
        image_size=32,
        patch_size=8,
        mask_type="blockwise",
        mask_kwargs={"num_masking_patches": 6, "min_num_patches": 2},
    )
    a = processor([photos["coffee"]] * 4, augment=True, return_mask=True, seed=3)
    b = processor([photos["coffee"]] * 4, augment=True, return_mask=True, seed=3)
    torch.testing.assert_close(a["pixel_values"], b["pixel_values"])
    assert torch.equal(a["bool_masked_pos"], b["bool_masked_pos"])
    assert not torch.equal(a["pixel_values"][0], a["pixel_values"][1])  # crops differ within a batch
    torch.manual_seed(0)
    c = processor([photos["coffee"]] * 2, augment=True)
    torch.manual_seed(0)
    d = processor([photos["coffee"]] * 2, augment=True)
    torch.testing.assert_close(c["pixel_values"], d["pixel_values"])


@pytest.mark.parametrize(
    "image",
    [
        PIL.Image.new("L", (40, 30), 128),
        PIL.Image.new("P", (40, 30)),
        PIL.Image.new("RGBA", (40, 30), (10, 20, 30, 40)),
        np.zeros((30, 40), np.uint8),
        np.zeros((30, 40, 4), np.uint8),
        np.zeros((3, 30, 40), np.float32),
        torch.rand(3, 30, 40),
        PIL.Image.new("RGB", (5, 7)),  # smaller than the crop: resized up
    ],
)
def test_input_kinds_become_rgb(image):
    processor = MaskedImageProcessor(image_size=32, patch_size=8)
    for augment in (True, False):
        assert processor(image, augment=augment)["pixel_values"].shape == (1, 3, 32, 32)


def test_bad_inputs_raise_clear_errors():
    processor = MaskedImageProcessor(image_size=32, patch_size=8)
    with pytest.raises(ValueError, match="non-empty"):
        processor([])
    with pytest.raises(ValueError, match="shape"):
        processor(np.zeros((2, 2, 2, 2, 2)))
    with pytest.raises(ValueError, match="images"):
        processor(["not an image"])
    with pytest.raises(ValueError, match="mask_type"):
        MaskedImageProcessor(mask_type="checkerboard")
    with pytest.raises(ValueError, match="image_size"):
        MaskedImageProcessor(image_size=30, patch_size=8)
    with pytest.raises(ValueError, match="resample"):
        MaskedImageProcessor(resample="cubic")
    with pytest.raises(ValueError, match="num_masking_patches"):
        MaskedImageProcessor(
            image_size=32, patch_size=8, mask_type="blockwise", mask_kwargs={"num_masking_patches": 99}
        )
    with pytest.raises(ValueError, match="crop_scale"):
        MaskedImageProcessor(crop_scale=(1.0, 0.5))


def test_save_load_roundtrip(tmp_path, photos):
    processor = MaskedImageProcessor(
        image_size=48,
        patch_size=16,
        crop_scale=(0.3, 0.9),
        flip_prob=0.0,
        mask_type="simmim",
        mask_kwargs={"mask_patch_size": 16, "mask_ratio": 0.5},
        return_hog_targets=True,
        hog_gaussian_window=16,
    )
    processor.save_pretrained(tmp_path)
    for loaded in (MaskedImageProcessor.from_pretrained(tmp_path), AutoImageProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is MaskedImageProcessor
        assert loaded.to_dict() == processor.to_dict()
        a = processor(photos["astronaut"], augment=True, return_mask=True, seed=1)
        b = loaded(photos["astronaut"], augment=True, return_mask=True, seed=1)
        for key in ("pixel_values", "bool_masked_pos", "hog_targets"):
            assert torch.equal(a[key], b[key])


def test_datasets_pipeline_on_cifar10(cifar10_rows):
    from torch.utils.data import DataLoader

    ds = cifar10_rows.select(range(256))
    processor = MaskedImageProcessor(
        image_size=32,
        patch_size=4,
        crop_scale=(0.5, 1.0),
        mask_type="blockwise",
        mask_kwargs={"mask_ratio": 0.4, "min_num_patches": 4},
    )
    ds = ds.with_transform(processor.as_transform(label_column="label", return_hog_targets=False))
    loader = DataLoader(ds, batch_size=64, num_workers=2, shuffle=True)
    batches = list(loader)
    assert len(batches) == 4
    for batch in batches:
        assert set(batch) == {"pixel_values", "bool_masked_pos", "labels"}
        assert batch["pixel_values"].shape == (64, 3, 32, 32) and batch["pixel_values"].dtype == torch.float32
        assert batch["bool_masked_pos"].shape == (64, 64) and batch["bool_masked_pos"].dtype == torch.bool
        assert (batch["bool_masked_pos"].sum(1) == round(0.4 * 64)).all()
        assert batch["labels"].dtype == torch.int64 and batch["labels"].max() < 10
    # the two workers draw different augmentations: no duplicated crops across the epoch
    pixels = torch.cat([b["pixel_values"] for b in batches]).flatten(1)
    assert torch.unique(pixels, dim=0).shape[0] == 256
    # real images: normalised statistics in a sane range
    assert -1.0 < pixels.mean() < 1.0 and 0.5 < pixels.std() < 1.5


def test_as_transform_errors(cifar10_rows):
    processor = MaskedImageProcessor(image_size=32, patch_size=4)
    ds = cifar10_rows.select(range(4)).with_transform(processor.as_transform(image_column="img"))
    with pytest.raises(ValueError, match="image_column"):
        ds[0]


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


@pytest.mark.parametrize("method", ["maskfeat", "simmim", "hpm"])
def test_a_saved_processor_is_deterministic_inference_preprocessing(method, photos, tmp_path):
    """What every hf_mim output folder saves: the pipeline the model card declares gives the same features twice,
    equal to the encoder's on the deterministic preprocessing (no augmentation, no mask)."""
    from transformers import AutoImageProcessor, AutoModel, pipeline

    from hf_mim import get_model_spec
    from hf_mim.export import bundle_remote_code

    spec = get_model_spec(method)
    torch.manual_seed(0)
    model = spec.pretraining_class(spec.tiny_config())
    processor = spec.image_processor_class.from_model_config(model.config)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    bundle_remote_code(model, tmp_path)
    bundle_remote_code(processor, tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    image = PIL.Image.fromarray(photos["chelsea"])
    assert "bool_masked_pos" not in loaded(image) and not loaded.do_augment
    torch.testing.assert_close(loaded(image)["pixel_values"], loaded(image)["pixel_values"], rtol=0, atol=0)

    extractor = pipeline("image-feature-extraction", model=str(tmp_path), trust_remote_code=True)
    first, second = torch.tensor(extractor(image)), torch.tensor(extractor(image))
    assert torch.equal(first, second)
    encoder = AutoModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = encoder(**processor(image)).last_hidden_state
    torch.testing.assert_close(first, expected, rtol=1e-5, atol=1e-5)


def test_the_model_knows_its_normalisation(photos, tmp_path):
    """#23 item 2: colour bins and pictures un-normalise with the statistics the data were normalised with."""
    from hf_mim import SimMIMConfig, SimMIMForMaskedImageModeling, SimMIMImageProcessor
    from hf_mim.training import Pretrainer, PretrainingArguments

    half = [0.5] * 3
    config = SimMIMConfig.from_preset("vit-test", target="color_bins", num_color_bins=8, mask_patch_size=16)
    processor = SimMIMImageProcessor.from_model_config(config, image_mean=half, image_std=half)
    model = SimMIMForMaskedImageModeling(config)
    args = PretrainingArguments(output_dir=str(tmp_path), cpu=True, max_steps=1, picture_steps=0)
    Pretrainer(model, args, train_dataset=[], image_processor=processor)  # records the processor's statistics
    assert model.config.image_mean == half and model.config.image_std == half
    assert SimMIMImageProcessor.from_model_config(model.config).image_mean == half  # and a rebuilt processor agrees

    batch = processor(list(photos.values()), return_mask=True, seed=0)
    pixels = batch["pixel_values"]
    values = ((pixels * 0.5 + 0.5).clamp(0, 1) * 255).round()  # independent: the 8-bit values, then the bins
    bins = (values * 8 / 256).floor().long()
    perfect = torch.nn.functional.one_hot(bins, 8).permute(0, 1, 4, 2, 3).reshape(len(pixels), 24, 32, 32) * 50.0
    assert float(model.forward_loss(pixels, perfect, batch["bool_masked_pos"])) < 1e-6

    other = SimMIMImageProcessor.from_model_config(config, image_mean=[0.485, 0.456, 0.406])  # another mean
    with pytest.raises(ValueError, match="image_mean"):
        Pretrainer(model, args, train_dataset=[], image_processor=other)


def test_a_processor_saved_in_training_mode_loads_as_inference_preprocessing(tmp_path, photos, caplog):
    import json

    processor = MaskedImageProcessor(image_size=32, patch_size=8, mask_type="random")
    processor.save_pretrained(tmp_path)
    path = tmp_path / "preprocessor_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "do_augment": True}))  # as hf_mim used to save
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert not loaded.do_augment
    torch.testing.assert_close(loaded(photos["coffee"])["pixel_values"], processor(photos["coffee"])["pixel_values"])
