"""Streamed training data at scale: shuffled, split across processes and DataLoader workers, resumed exactly.

A ``datasets.IterableDataset`` goes through three layers:

1. :func:`prepare_stream` (every process): the image column alone, kept encoded (decoded later, in the workers),
   shuffled with a seeded shuffle buffer (shards reshuffled every epoch with ``seed + epoch``), and split across
   processes with ``datasets.distributed.split_dataset_by_node``: whole shards when their number is a multiple of the
   number of processes, else every process reads the whole stream and keeps every n-th example (a warning says so).
2. :class:`StreamBatches` (in each DataLoader worker): ``datasets`` gives every worker its own shards; the worker
   decodes, augments and masks its examples, each from the seed ``(seed, epoch, process, worker, position)`` only,
   and yields whole batches tagged with the worker and how many rows of its stream they end at.
3. :class:`StreamReader` (in the training loop): batches in a fixed order -- the workers in turn, as a DataLoader
   serves them -- across epochs without end, and a ``state_dict`` with the epoch and the rows each worker has
   consumed. A checkpoint stores it once per process (``stream_state_<rank>.json``).

Resuming rebuilds the stream of the saved epoch and each worker skips the rows it had consumed, reading them
encoded without decoding. The shuffle buffer is refilled by replaying those rows, so it holds what it held at the
checkpoint: the resumed run sees the same examples, in the same order, with the same augmentations and masks as an
uninterrupted run (datasets' own ``state_dict`` drops the buffer's content, datasets#7901; accelerate's stateful
DataLoader keeps one state for all processes, accelerate#4165, and mis-splits with workers, accelerate#4204; so
neither is used). The cost is reading the consumed part of the current epoch again, without decoding it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

__all__ = ["StreamBatches", "StreamReader", "prepare_stream", "stream_split_warnings"]

#: Keys a worker adds to each batch; :class:`StreamReader` removes them before the batch reaches the model.
WORKER_KEY, POSITION_KEY, END_KEY = "stream_worker", "stream_position", "stream_end"


def stream_split_warnings(num_shards: int, num_processes: int, num_workers: int) -> list[str]:
    """What is uneven about reading ``num_shards`` shards with ``num_processes`` processes of ``num_workers``
    DataLoader workers each (empty when each process and worker reads whole shards of its own)."""
    notes = []
    if num_processes > 1 and num_shards % num_processes:
        notes.append(
            f"The stream has {num_shards} shard(s), not a multiple of the {num_processes} processes: every process "
            f"reads the whole stream and keeps every {num_processes}-th example (datasets' split_dataset_by_node). "
            f"Store the data as a multiple of {num_processes} files (or parquet row groups) to read each row once."
        )
    per_process = num_shards // num_processes if num_shards % num_processes == 0 else num_shards
    if num_workers > per_process:
        notes.append(
            f"Each process has {per_process} shard(s) for {num_workers} DataLoader workers: "
            f"{num_workers - per_process} worker(s) per process stay idle. Lower --dataloader_num_workers or store "
            "the data in more files."
        )
    return notes


def prepare_stream(stream, image_column: str, seed: int, buffer_size: int, rank: int = 0, num_processes: int = 1):
    """The part of ``stream`` one process trains on: its image column, still encoded, shuffled and split across
    processes.

    Args:
        stream: A ``datasets.IterableDataset``.
        image_column: The image column.
        seed: The shuffle seed; epoch ``e`` shuffles with ``seed + e``.
        buffer_size: Size of the shuffle buffer (``--shuffle_buffer_size``) of each worker; 0: no buffer, and the
            stored order in the first epoch (``datasets`` still reorders the shards from the second epoch on).
        rank: This process's index.
        num_processes: The number of processes.
    """
    import datasets
    from datasets.distributed import split_dataset_by_node

    stream = stream.select_columns([image_column])
    if isinstance((stream.features or {}).get(image_column), datasets.Image):
        stream = stream.cast_column(image_column, datasets.Image(decode=False))  # decoded in the workers
    if buffer_size:
        stream = stream.shuffle(seed=seed, buffer_size=buffer_size)
    if num_processes > 1:
        stream = split_dataset_by_node(stream, rank=rank, world_size=num_processes)
    return stream


def _decode(value):
    """An image from a stream row: encoded ``{"bytes", "path"}`` values are decoded, images pass through."""
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        import datasets

        image = datasets.Image().decode_example(value)
        image.load()
        return image
    return value


class StreamBatches(torch.utils.data.IterableDataset):
    """One process's stream as augmented, masked batches, each from one DataLoader worker.

    Iterated in a worker (or in the main process without workers), it reads that worker's shards of epoch
    :attr:`epoch`, skips the first ``start[worker]`` rows (encoded, not decoded), and yields batches of
    ``batch_size`` examples (the last one of the epoch may be smaller) with two extra keys: ``stream_worker`` and
    ``stream_position`` (rows of this worker's stream read once the batch is consumed); then one ``{"stream_end":
    worker}`` item. Workers in :attr:`ended` yield only that item.

    Args:
        stream: The process's stream from :func:`prepare_stream`.
        processor: A :class:`~hf_mim.MaskedImageProcessor`.
        image_column: The image column.
        batch_size: Examples per batch.
        seed: Base seed of the per-example seeds ``(seed, epoch, rank, worker, position)``.
        rank: The process index (part of every example's seed).
        description: Where the rows come from, for error messages.
    """

    def __init__(self, stream, processor, image_column: str, batch_size: int, seed: int = 0, rank: int = 0,
                 description: str = "the stream"):  # fmt: skip
        super().__init__()
        self.stream, self.processor, self.image_column = stream, processor, image_column
        self.batch_size, self.seed, self.rank, self.description = batch_size, seed, rank, description
        self.epoch, self.start, self.ended = 0, {}, set()

    def _batch(self, images: list, seeds: list, worker: int, position: int) -> dict[str, Any]:
        out = dict(self.processor(images, augment=True, return_mask=True, seeds=seeds))
        return {**out, WORKER_KEY: worker, POSITION_KEY: position}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        if worker in self.ended:
            yield {END_KEY: worker}
            return
        self.stream.set_epoch(self.epoch)
        skip = self.start.get(worker, 0)
        images, seeds, position = [], [], 0
        for position, row in enumerate(self.stream, start=1):
            if position <= skip:
                continue
            try:
                images.append(_decode(row[self.image_column]))
            except Exception as err:  # noqa: BLE001 - name the row whatever the decoder raised
                raise ValueError(f"Row {position} of worker {worker}'s stream (epoch {self.epoch}, process "
                                 f"{self.rank}) of {self.description}: its {self.image_column!r} cannot be decoded "
                                 f"({type(err).__name__}: {err}).") from err  # fmt: skip
            seeds.append([self.seed, self.epoch, self.rank, worker, position])
            if len(images) == self.batch_size:
                yield self._batch(images, seeds, worker, position)
                images, seeds = [], []
        if images:
            yield self._batch(images, seeds, worker, position)
        yield {END_KEY: worker}


class StreamReader:
    """Batches of a :class:`StreamBatches` in a fixed order across epochs, with an exact ``state_dict``.

    The order is the workers in turn (worker 0, 1, ..., skipping those whose stream has ended), which is how a
    DataLoader serves them; batches that arrive early are held (at most one per worker). Iteration never ends:
    each epoch reshuffles the stream; an epoch without a single row is an error.

    Args:
        batches: The process's :class:`StreamBatches`.
        num_workers: DataLoader worker processes (0: read in the main process).
        loader_options: Further DataLoader arguments (``pin_memory``, ``prefetch_factor``).
    """

    def __init__(self, batches: StreamBatches, num_workers: int = 0, **loader_options):
        self.batches, self.num_workers, self.loader_options = batches, num_workers, loader_options
        self.epoch, self.positions, self.ended, self.next_worker = 0, {}, set(), 0

    @property
    def _workers(self) -> int:
        return max(1, self.num_workers)

    def state_dict(self) -> dict[str, Any]:
        """Where the stream stands: the epoch, the rows each worker has consumed, the workers done with the epoch,
        the worker whose batch comes next, and what must match on resume."""
        return {"epoch": self.epoch, "positions": {str(w): n for w, n in sorted(self.positions.items())},
                "ended": sorted(self.ended), "next_worker": self.next_worker, "num_workers": self.num_workers,
                "rank": self.batches.rank, "seed": self.batches.seed,
                "batch_size": self.batches.batch_size}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continues from :meth:`state_dict`'s output.

        Raises:
            ValueError: The state was saved with another number of DataLoader workers, another batch size, seed or
                process index (the resumed stream would differ); names the flag.
        """
        for key, flag in (("num_workers", "--dataloader_num_workers"), ("batch_size", "--per_device_train_batch_size"),
                          ("seed", "--seed"), ("rank", "the process index")):  # fmt: skip
            mine = self.num_workers if key == "num_workers" else getattr(self.batches, key)
            if state[key] != mine:
                raise ValueError(f"The stream state was saved with {flag} {state[key]}, this run has {mine}: resume "
                                 f"with {flag} {state[key]} to continue the stream exactly.")  # fmt: skip
        self.epoch, self.next_worker = int(state["epoch"]), int(state["next_worker"])
        self.positions = {int(w): int(n) for w, n in state["positions"].items()}
        self.ended = set(state["ended"])

    def _advance(self, worker: int) -> None:
        active = [w for w in range(self._workers) if w not in self.ended]
        later = [w for w in active if w > worker]
        self.next_worker = (later or active or [0])[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            self.batches.epoch, self.batches.start, self.batches.ended = (
                self.epoch,
                dict(self.positions),
                set(self.ended),
            )
            loader = DataLoader(self.batches, batch_size=None, num_workers=self.num_workers,
                                generator=torch.Generator().manual_seed(self.batches.seed),  # global RNG untouched
                                **self.loader_options)  # fmt: skip
            held: dict[int, deque] = {w: deque() for w in range(self._workers)}
            served, items = 0, iter(loader)
            while len(self.ended) < self._workers:
                worker = self.next_worker
                while not held[worker]:
                    item = next(items)  # every worker ends with an END_KEY item, so this never runs dry early
                    held[item.get(WORKER_KEY, item.get(END_KEY))].append(item)
                item = held[worker].popleft()
                if END_KEY in item:
                    self.ended.add(worker)
                    self._advance(worker)
                    continue
                self.positions[worker] = item.pop(POSITION_KEY)
                item.pop(WORKER_KEY)
                self._advance(worker)
                served += 1
                yield item
            if not served and not self.positions:
                raise ValueError(f"Process {self.batches.rank} got no rows from {self.batches.description} in epoch "
                                 f"{self.epoch}: the stream is empty or has fewer rows than processes.")  # fmt: skip
            self.epoch, self.positions, self.ended, self.next_worker = self.epoch + 1, {}, set(), 0
