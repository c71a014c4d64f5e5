"""Training data: a Hub dataset, an imagefolder, parquet / arrow / WebDataset files or the embedded photos, checked
before any work starts, and the per-example seeded transform that makes resumed runs see exactly the same inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "IMAGE_COLUMN_NAMES",
    "LABEL_COLUMN_NAMES",
    "SeededTransformDataset",
    "find_image_column",
    "find_label_column",
    "default_image_dataset",
    "drop_corrupt_images",
    "data_file_format",
    "expand_data_files",
    "load_image_dataset",
    "truncate_log",
]


#: Image column names tried when no column has the ``datasets.Image`` type (transformers' run_mim.py: image, img;
#: WebDataset's keys).
IMAGE_COLUMN_NAMES = ("image", "img", "jpg", "png", "webp")
#: Label column names tried when no column is a ``datasets.ClassLabel`` (CIFAR-100's Hub copy: fine_label).
LABEL_COLUMN_NAMES = ("label", "labels", "fine_label", "cls")


def _columns(dataset) -> tuple[list[str], dict]:
    features = dataset.features or {}
    return list(dataset.column_names or features), dict(features)


def _find_column(dataset, given: str | None, feature_type, names: tuple[str, ...], flag: str, what: str,
                 description: str) -> str:  # fmt: skip
    """The one column rule: ``given`` when set (checked), else the one column of ``feature_type`` (of several, the
    first of ``names`` among them: CIFAR-100's ``fine_label`` beside ``coarse_label``), else the first of ``names``
    present; ambiguity and absence name ``flag``."""
    columns, features = _columns(dataset)
    if given is not None:
        if columns and given not in columns:
            raise ValueError(f"{flag} {given!r} is not a column of {description}: {columns}")
        return given
    typed = [name for name, feature in features.items() if isinstance(feature, feature_type)]
    if len(typed) == 1:
        return typed[0]
    named = [name for name in names if name in (typed or columns)]  # several typed: the usual name decides
    if named:
        return named[0]
    if len(typed) > 1:
        raise ValueError(f"{description} has several {what} columns {typed}; choose one with {flag}")
    raise ValueError(f"{description} has no {what} column (columns: {columns}); name it with {flag}")


def find_image_column(dataset, image_column: str | None = None, description: str = "the dataset") -> str:
    """The column holding the images: ``image_column`` when given (checked), else the one column of
    ``datasets.Image`` type, else the first of :data:`IMAGE_COLUMN_NAMES` present.

    Raises:
        ValueError: Naming ``--image_column``: the given column is missing, several columns are images (listed), or
            none is.
    """
    import datasets

    return _find_column(dataset, image_column, datasets.Image, IMAGE_COLUMN_NAMES, "--image_column", "image",
                        description)  # fmt: skip


def find_label_column(dataset, label_column: str | None = None, description: str = "the dataset") -> str:
    """The column holding the class labels: ``label_column`` when given (checked), else the one
    ``datasets.ClassLabel`` column, else the first of :data:`LABEL_COLUMN_NAMES` present.

    Raises:
        ValueError: Naming ``--label_column``: the given column is missing, several columns are class labels
            (listed), or none is.
    """
    import datasets

    return _find_column(dataset, label_column, datasets.ClassLabel, LABEL_COLUMN_NAMES, "--label_column",
                        "class-label", description)  # fmt: skip


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
        augment: Training augmentation (default) or the deterministic preprocessing; masks are always drawn (when
            the processor has a ``mask_type``).
        description: Where the rows come from, for error messages.
    """

    def __init__(
        self,
        dataset,
        processor,
        image_column: str = "image",
        label_column: str | None = None,
        seed: int = 0,
        augment: bool = True,
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
        out = self.processor(rows[self.image_column], augment=self.augment, return_mask=True, seeds=seeds)
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


#: ``--data_files`` formats by file suffix (``datasets``' packaged builders).
DATA_FILE_FORMATS = {".parquet": "parquet", ".arrow": "arrow", ".tar": "webdataset"}


def expand_data_files(data_files: list[str]) -> list[str]:
    """``--data_files`` with glob patterns (``shards/*.tar``, ``data/**/*.parquet``) expanded, sorted.

    Raises:
        FileNotFoundError: A file or pattern matches nothing (named).
    """
    import glob

    files, missing = [], []
    for entry in data_files:
        entry = str(entry)
        matches = sorted(glob.glob(entry, recursive=True)) if glob.has_magic(entry) else [entry]
        matches = [m for m in matches if Path(m).is_file()]
        (files.extend(matches) if matches else missing.append(entry))
    if missing:
        raise FileNotFoundError(f"--data_files not found: {missing}")
    return files


def data_file_format(files: list[str]) -> str:
    """The ``datasets`` builder of ``files`` from their suffix (:data:`DATA_FILE_FORMATS`).

    Raises:
        ValueError: The files mix formats or have another suffix, naming the allowed ones.
    """
    kinds = {DATA_FILE_FORMATS.get(Path(f).suffix.lower()) for f in files}
    if len(kinds) != 1 or None in kinds:
        raise ValueError(f"--data_files must all be one of {sorted(DATA_FILE_FORMATS)} files; got "
                         f"{sorted({Path(f).suffix or Path(f).name for f in files})}.")  # fmt: skip
    return kinds.pop()


def load_image_dataset(
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    train_dir: str | None = None,
    data_files: list[str] | None = None,
    split: str = "train",
    streaming: bool = False,
    image_column: str | None = None,
    max_samples: int | None = None,
    default_data_size: int = 2048,
):
    """Images as a ``datasets`` (Iterable)Dataset: a Hub dataset, an imagefolder, parquet / arrow / WebDataset
    ``.tar`` files (:func:`expand_data_files`: glob patterns allowed), or (none given) :func:`default_image_dataset`.
    A stream is resharded (``IterableDataset.reshard``: parquet row groups become shards) so that processes and
    DataLoader workers can read whole shards of their own.

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
        files = expand_data_files(data_files)
        kind = data_file_format(files)
        name = ", ".join(Path(f).name for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        try:
            ds = datasets.load_dataset(kind, data_files=files, split=split, streaming=streaming)
        except ValueError as err:
            if "no data" not in str(err):
                raise
            raise ValueError(f"The dataset ({name}) has no rows ({err}).") from err
    else:
        ds = default_image_dataset(default_data_size, seed=0)
        name = f"{default_data_size} random crops of the photos shipped with scikit-image"
        image_column = "image"
    image_column = find_image_column(ds, image_column, name)
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
    if streaming:
        ds = ds.reshard()  # parquet: a shard per row group, so processes and workers read whole shards of their own
    if max_samples:
        ds = ds.take(max_samples) if streaming else ds.select(range(min(max_samples, len(ds))))
    return ds, name
