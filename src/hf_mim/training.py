"""Pieces shared by the training commands: models from presets, sharding, the embedded default data, seeded
datasets and picture grids (the optimizer pieces are in :mod:`hf_mim.optimization`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config_overrides import check_config_keys
from .optimization import (  # noqa: F401 - re-exported: the optimizer pieces used to live here
    NO_DECAY_KEYWORDS,
    layer_decay_param_groups,
    layer_ids,
    param_groups,
    scaled_learning_rate,
)
from .registry import get_model_spec
from .targets import patchify, unpatchify
from .visualization import denormalize, heatmap, hog_glyphs, image_grid, mask_overlay

__all__ = [
    "NO_DECAY_KEYWORDS",
    "build_config",
    "build_model",
    "build_image_processor",
    "param_groups",
    "shard_model",
    "scaled_learning_rate",
    "drop_corrupt_images",
    "truncate_log",
    "default_image_dataset",
    "load_image_dataset",
    "layer_decay_param_groups",
    "layer_ids",
    "SeededTransformDataset",
    "pretraining_picture",
]


def build_config(method: str, preset: str | None = None, config_file: str | None = None, **overrides: Any):
    """A method config from a named preset, a JSON file, or the defaults; ``overrides`` are applied on top."""
    spec = get_model_spec(method)
    cls = spec.config_class
    if preset and config_file:
        raise ValueError("Give either `preset` or `config_file`, not both.")
    if config_file:
        data = json.loads(Path(config_file).read_text())
        check_config_keys(method, data, config_file)
        data = {k: v for k, v in data.items() if k not in ("model_type", "auto_map")}
        for key, value in overrides.items():  # nested configs (encoder_config) merge field by field
            data[key] = (
                {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
            )
        return cls(**data)
    if preset:
        return cls.from_preset(preset, **overrides)
    return cls(**overrides)


def build_model(method: str, config=None, model_name_or_path: str | None = None, **kwargs):
    """The method's pretraining model, new from ``config`` or continued from a checkpoint (local or Hub id)."""
    spec = get_model_spec(method)
    if model_name_or_path:
        return spec.pretraining_class.from_pretrained(model_name_or_path, **kwargs)
    return spec.pretraining_class(config)


def build_image_processor(method: str, config, **overrides: Any):
    return get_model_spec(method).image_processor_class.from_model_config(config, **overrides)


def shard_model(model: nn.Module, mesh=None) -> nn.Module:
    """Applies torch's FSDP2 (``fully_shard``) to every block class in ``model._no_split_modules`` and then to the
    root, in place: parameters become DTensors sharded over ``mesh`` (default: all ranks). Build the optimizer
    (:func:`param_groups`) afterwards; names, and so the weight-decay groups, are unchanged. HPM's teacher is
    sharded like the student, so :meth:`~hf_mim.HPMForPreTraining.update_teacher` is a local lerp per shard.
    """
    from torch.distributed.fsdp import fully_shard

    names = set(getattr(model, "_no_split_modules", None) or ())
    for module in model.modules():
        if type(module).__name__ in names and module is not model:
            fully_shard(module, mesh=mesh)
    return fully_shard(model, mesh=mesh)


# ------------------------------------------------------------------------------------------------- data


def truncate_log(path: Path, step: int) -> None:
    """Keeps the lines of a ``train_log.jsonl`` up to ``step`` (all of them go for a new run, ``step == 0``)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _decode_error(dataset, index: int, column: str) -> Exception | None:
    """The error decoding row ``index``'s image raises, or None."""
    import PIL.Image

    try:
        value = dataset[int(index)][column]
        if isinstance(value, PIL.Image.Image):
            value.load()
        return None
    except Exception as err:  # noqa: BLE001 - any decoder error is what we report
        return err


def drop_corrupt_images(dataset, column: str = "image"):
    """Drops the rows whose image does not decode (``--skip_corrupt_images``); returns the dataset and the
    indices of the dropped rows."""
    bad = [i for i in range(len(dataset)) if _decode_error(dataset, i, column) is not None]
    keep = sorted(set(range(len(dataset))) - set(bad))
    return (dataset.select(keep) if bad else dataset), bad


class SeededTransformDataset(torch.utils.data.Dataset):
    """A map-style ``datasets.Dataset`` passed through an image processor with per-example seeds.

    Example ``i`` of epoch ``e`` is augmented and masked from the seed ``(seed, e, i)`` only, so a run resumed from a
    checkpoint, or run with another number of DataLoader workers, sees exactly the same inputs as an uninterrupted
    one (the global RNG, which DataLoaders and accelerate's look-ahead advance at their own pace, is not used).
    Call :meth:`set_epoch` at the start of every epoch.

    Args:
        dataset: Rows with an image column (and optionally a label column).
        processor: A :class:`~hf_mim.MaskedImageProcessor`.
        image_column: The image column.
        label_column: Copied to ``labels`` when given.
        seed: Base seed.
        augment: Training augmentation (default: the processor's ``do_augment``).
        description: Where the rows come from, for error messages.
    """

    def __init__(
        self,
        dataset,
        processor,
        image_column: str = "image",
        label_column: str | None = None,
        seed: int = 0,
        augment: bool | None = None,
        description: str = "the dataset",
    ):
        self.dataset, self.processor, self.description = dataset, processor, description
        self.image_column, self.label_column = image_column, label_column
        self.seed, self.augment, self.epoch = seed, augment, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices: list[int]) -> list[dict]:
        try:
            rows = self.dataset[list(indices)]
        except Exception as err:  # noqa: BLE001 - name the row that breaks decoding
            errors = ((i, _decode_error(self.dataset, i, self.image_column)) for i in indices)
            bad, cause = next(((i, e) for i, e in errors if e is not None), (None, None))
            if bad is None:
                raise
            raise ValueError(f"Row {bad} of {self.description}: its {self.image_column!r} cannot be decoded "
                             f"({type(cause).__name__}: {cause}). Pass --skip_corrupt_images to skip undecodable "
                             "rows.") from err  # fmt: skip
        seeds = [[self.seed, self.epoch, int(i)] for i in indices]
        out = self.processor(rows[self.image_column], augment=self.augment, seeds=seeds)
        if self.label_column is not None:
            out["labels"] = torch.as_tensor(rows[self.label_column])
        return [{key: value[j] for key, value in out.items()} for j in range(len(indices))]

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]


# --------------------------------------------------------------------------------------------- default data

#: Colour and grey photos that ship inside scikit-image (no download).
DEFAULT_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "cat",
    "immunohistochemistry",
    "hubble_deep_field",
    "colorwheel",
    "stereo_motorcycle",
    "retina",
    "camera",
    "coins",
    "moon",
    "brick",
    "grass",
    "gravel",
    "clock",
)


def _load_photos() -> list[np.ndarray]:
    try:
        from skimage import data
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The embedded default data are the photos shipped with scikit-image: `pip install scikit-image` "
            "(a dependency of hf_mim), or pass --dataset_name / --train_dir / --data_files."
        ) from err
    photos = []
    for name in DEFAULT_PHOTOS:
        image = getattr(data, name)()
        if isinstance(image, tuple):
            image = image[0]
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        photos.append(np.ascontiguousarray(image[..., :3]).astype(np.uint8))
    return photos


def default_image_dataset(num_images: int = 2048, size_range: tuple[int, int] = (64, 256), seed: int = 0):
    """Random crops of the photos shipped with scikit-image, as a ``datasets.Dataset`` with an ``image`` column.

    Args:
        num_images: Number of crops.
        size_range: Crop side range in pixels (clipped to each photo).
        seed: Seed of the crop positions and sizes.
    """
    import datasets
    import PIL.Image

    rng = np.random.default_rng(seed)
    photos = _load_photos()
    images = []
    for i in range(num_images):
        photo = photos[i % len(photos)]
        height, width = photo.shape[:2]
        side = int(rng.integers(size_range[0], min(size_range[1], height, width) + 1))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        images.append(PIL.Image.fromarray(photo[top : top + side, left : left + side]))
    features = datasets.Features({"image": datasets.Image()})
    return datasets.Dataset.from_dict({"image": images}, features=features)


def load_image_dataset(
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    train_dir: str | None = None,
    data_files: list[str] | None = None,
    split: str = "train",
    streaming: bool = False,
    image_column: str = "image",
    max_samples: int | None = None,
    default_data_size: int = 2048,
):
    """Images as a ``datasets`` (Iterable)Dataset: a Hub dataset, an imagefolder, parquet / arrow files, or (none
    given) :func:`default_image_dataset`.

    Returns:
        ``(dataset, description)``.
    """
    import datasets

    if sum(bool(x) for x in (dataset_name, train_dir, data_files)) > 1:
        raise ValueError("Give at most one of `dataset_name`, `train_dir`, `data_files`.")
    if dataset_name:
        ds = datasets.load_dataset(dataset_name, dataset_config, split=split, streaming=streaming)
        name = dataset_name
    elif train_dir:
        ds = datasets.load_dataset("imagefolder", data_dir=train_dir, split=split, streaming=streaming)
        name = f"imagefolder {train_dir}"
    elif data_files:
        kind = "arrow" if all(str(f).endswith(".arrow") for f in data_files) else "parquet"
        name = ", ".join(Path(f).name for f in data_files)
        missing = [str(f) for f in data_files if not Path(f).exists()]
        if missing:
            raise FileNotFoundError(f"--data_files not found: {missing}.")
        try:
            ds = datasets.load_dataset(kind, data_files=[str(f) for f in data_files], split=split, streaming=streaming)
        except ValueError as err:
            if "no data" not in str(err):
                raise
            raise ValueError(f"The dataset ({name}) has no rows ({err}).") from err
    else:
        ds = default_image_dataset(default_data_size, seed=0)
        name = f"{default_data_size} random crops of the photos shipped with scikit-image"
        image_column = "image"
    columns = ds.column_names
    if columns is not None and image_column not in columns:
        raise ValueError(f"`image_column` {image_column!r} is not a column of the dataset: {columns}.")
    feature = ds.features[image_column] if ds.features is not None else None
    if feature is not None and not isinstance(feature, datasets.Image):
        if getattr(feature, "dtype", None) in ("binary", "large_binary"):
            ds = ds.cast_column(image_column, datasets.Image())  # encoded image bytes: decode them as images
        else:
            raise ValueError(
                f"Column {image_column!r} of {name} holds {feature}, not images; cast it with "
                f"`dataset.cast_column({image_column!r}, datasets.Image())` or pick another --image_column."
            )
    if not streaming and len(ds) == 0:
        raise ValueError(f"The dataset ({name}) has no rows.")
    if max_samples:
        ds = ds.take(max_samples) if streaming else ds.select(range(min(max_samples, len(ds))))
    return ds, name


# ------------------------------------------------------------------------------------------------ pictures


@torch.no_grad()
def pretraining_picture(model, batch: dict, max_images: int = 4):
    """A picture grid of what the model sees and predicts, one row per image.

    MaskFeat: input | masked input | HOG target | HOG prediction (masked patches). SimMIM: input | masked input | reconstruction.
    HPM / MAE: input | masked input | reconstruction (visible patches pasted back) | predicted-loss heat map.
    Pixel targets (either method) show the reconstruction; teacher-feature targets only input and mask.
    """
    was_training = model.training
    model.eval()
    model_type = model.config.model_type
    pixel_values = batch["pixel_values"][:max_images]
    inputs = {"pixel_values": pixel_values}
    if batch.get("bool_masked_pos") is not None:
        inputs["bool_masked_pos"] = batch["bool_masked_pos"][:max_images]
    out = model(**inputs)
    if was_training:
        model.train()
    patch = model.config.patch_size
    height, width = pixel_values.shape[-2:]
    grid = (height // patch, width // patch)
    mask = out.mask if out.mask is not None else inputs["bool_masked_pos"]
    rows = []
    for i in range(len(pixel_values)):
        image = denormalize(pixel_values[i])
        row = [image, mask_overlay(image, mask[i], grid)]
        target_kind = getattr(model.config, "target", "pixel")
        if model_type == "maskfeat" and target_kind in ("hog", "hog+pixel"):
            nbins, cells = model.config.hog_nbins, patch // model.config.hog_cell_size
            # the prediction is drawn on masked patches only (the loss ignores the others), normalised per
            # (channel, cell) like the targets so that orientations, not magnitudes, are compared
            prediction = out.logits[i].float().clamp(min=0) * mask[i, :, None]
            for feats in (out.hog_targets[i], prediction):
                hog = feats.float().reshape(grid[0], grid[1], 3, nbins, cells, cells)
                hog = hog.permute(2, 3, 0, 4, 1, 5).reshape(3, nbins, grid[0] * cells, grid[1] * cells)
                hog = torch.nn.functional.normalize(hog, dim=1)
                glyphs = hog_glyphs(hog, cell_px=16)
                row.append(np.asarray(_resize(glyphs, (height, width))))
        elif model_type == "simmim":
            row.append(denormalize(out.reconstruction[i]))
        else:
            prediction = out.logits[i : i + 1].float()
            if target_kind == "pixel":
                target = patchify(pixel_values[i : i + 1].float(), patch)
                if model.config.norm_pix_loss:  # undo the per-patch normalisation with the true statistics
                    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
                    prediction = prediction * (var + 1e-6) ** 0.5 + mean
                merged = torch.where(mask[i : i + 1, :, None], prediction, target)
                row.append(denormalize(unpatchify(merged, patch, (height, width))[0]))
            if getattr(out, "predicted_patch_loss", None) is not None:
                row.append(heatmap(out.predicted_patch_loss[i], grid, (height, width)))
        rows.append(row)
    return image_grid(rows, upscale=max(1, 128 // height))


def _resize(array: np.ndarray, size: tuple[int, int]):
    import PIL.Image

    return PIL.Image.fromarray(array).resize((size[1], size[0]), PIL.Image.BILINEAR)
