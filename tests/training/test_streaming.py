"""Streams at scale (#24): split across processes and DataLoader workers, shuffled, and resumed exactly."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hf_mim.cli import pretrain
from hf_mim.training.streaming import StreamBatches, StreamReader, prepare_stream, stream_split_warnings

from ..cli.test_pretrain import REPO, run_args


class RowIds:
    """A stand-in processor: the 'images' are row ids, returned as they come (what each batch holds)."""

    def __call__(self, images, augment, return_mask, seeds):
        return {"pixel_values": torch.tensor(images), "seeds": torch.tensor(seeds)}


def _ids(num_rows: int, num_shards: int):
    import datasets

    return datasets.Dataset.from_dict({"image": list(range(num_rows))}).to_iterable_dataset(num_shards=num_shards)


def _reader(stream, rank, num_processes, num_workers, batch_size=4, buffer_size=16):
    part = prepare_stream(stream, "image", seed=0, buffer_size=buffer_size, rank=rank, num_processes=num_processes)
    return StreamReader(StreamBatches(part, RowIds(), "image", batch_size, seed=0, rank=rank), num_workers=num_workers)


def _epoch(reader, num_batches):
    batches = [batch for _, batch in zip(range(num_batches), reader)]
    return [int(i) for batch in batches for i in batch["pixel_values"]], batches


@pytest.mark.parametrize("num_shards", [8, 3])  # whole shards per process; and fewer shards than processes x workers
def test_two_processes_with_two_workers_see_disjoint_rows_covering_the_data_once_per_epoch(num_shards):
    stream = _ids(48, num_shards)
    seen = {}
    for rank in (0, 1):
        reader = _reader(stream, rank, 2, num_workers=2)
        rows = []
        for batch in reader:
            if reader.epoch:  # the reader has moved on to the next epoch: this batch belongs to it
                break
            rows += [int(i) for i in batch["pixel_values"]]
        seen[rank] = rows
    assert not set(seen[0]) & set(seen[1]), "processes share rows"
    assert sorted(seen[0] + seen[1]) == list(range(48)), "an epoch must cover every row once"


def test_each_epoch_is_reshuffled_and_each_example_has_its_own_seed():
    reader = _reader(_ids(32, 4), 0, 1, num_workers=2)
    epoch0, batches = _epoch(reader, 8)
    epoch1, _ = _epoch(reader, 8)
    assert sorted(epoch0) == sorted(epoch1) == list(range(32)) and epoch0 != epoch1
    seeds = [tuple(s.tolist()) for b in batches for s in b["seeds"]]
    assert len(set(seeds)) == len(seeds) and all(s[:3] == (0, 0, 0) for s in seeds)  # (seed, epoch, rank, ...)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_reader_restored_from_its_state_continues_exactly(num_workers):
    stream = _ids(40, 5)  # uneven: with 2 workers one has 3 shards, the other 2 (an epoch ends unevenly)
    reference = _reader(stream, 0, 1, num_workers)
    expected, _ = _epoch(reference, 16)  # crosses into the second epoch
    for stop in (3, 7, 10):
        first = _reader(stream, 0, 1, num_workers)
        head, _ = _epoch(first, stop)
        state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint stores it
        resumed = _reader(stream, 0, 1, num_workers)
        resumed.load_state_dict(state)
        tail, _ = _epoch(resumed, 16 - stop)
        assert head + tail == expected, f"stopped after {stop} batches"


def test_a_stream_state_refuses_another_worker_count():
    reader = _reader(_ids(16, 2), 0, 1, num_workers=2)
    _epoch(reader, 1)
    other = _reader(_ids(16, 2), 0, 1, num_workers=1)
    with pytest.raises(ValueError, match="--dataloader_num_workers 2"):
        other.load_state_dict(reader.state_dict())


def test_an_empty_stream_is_an_error_not_an_endless_loop():
    reader = _reader(_ids(1, 1), rank=1, num_processes=2, num_workers=0)  # process 1 of 2 gets no row
    with pytest.raises(ValueError, match="got no rows"):
        next(iter(reader))


def test_uneven_splits_are_explained():
    assert stream_split_warnings(8, 2, 2) == []
    notes = stream_split_warnings(3, 2, 4)
    assert "every 2-th example" in notes[0] and "idle" in notes[1]
    assert stream_split_warnings(1, 1, 4)[0].startswith("Each process has 1 shard(s) for 4 DataLoader workers")


# --------------------------------------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def sorted_parquet(cifar10_rows, tmp_path_factory):
    """80 CIFAR-10 rows stored in class order, in 10 row groups (10 shards once resharded)."""
    path = tmp_path_factory.mktemp("data") / "sorted.parquet"
    cifar10_rows.select(range(80)).sort("label").to_parquet(str(path), batch_size=8)
    return path


def _stream_args(out, data, *extra):
    return run_args("maskfeat", out, "--streaming", "--data_files", str(data), "--per_device_train_batch_size", "4",
                    "--dataloader_num_workers", "2", *extra)  # fmt: skip


def test_a_streamed_run_stopped_and_resumed_equals_an_uninterrupted_one(sorted_parquet, tmp_path):
    """Two workers, 12 steps over a 10-shard stream of 80 rows (10 batches an epoch): stopped at step 7 (inside
    the first epoch), resumed with `latest`, the final weights equal an uninterrupted run's bit for bit."""
    full, split = tmp_path / "full", tmp_path / "split"
    pretrain.main(_stream_args(full, sorted_parquet, "--max_steps", "12"))
    pretrain.main(_stream_args(split, sorted_parquet, "--max_steps", "12", "--stop_after_steps", "7"))
    state = json.loads((split / "checkpoints" / "step-7" / "stream_state_0.json").read_text())
    assert state["epoch"] == 0 and sum(state["positions"].values()) == 28
    pretrain.main(_stream_args(split, sorted_parquet, "--max_steps", "12", "--resume_from_checkpoint", "latest"))
    a, b = load_file(full / "model.safetensors"), load_file(split / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [json.loads(line)["loss"] for line in (full / "train_log.jsonl").read_text().splitlines()]
    assert losses == [json.loads(line)["loss"] for line in (split / "train_log.jsonl").read_text().splitlines()]


def test_a_resume_with_another_shuffle_buffer_or_row_limit_is_refused(sorted_parquet, tmp_path):
    """Another buffer reorders the stream, another row limit changes it: replaying the saved row counts would then
    repeat or skip rows, so the run fingerprint refuses, naming what differs."""
    from hf_mim.training.checkpointing import CheckpointError

    out = tmp_path / "run"
    pretrain.main(_stream_args(out, sorted_parquet, "--max_steps", "4", "--stop_after_steps", "1"))
    for extra, changed in ((["--shuffle_buffer_size", "5"], "shuffle_buffer_size: 10000 -> 5"),
                           (["--max_train_samples", "40"], "max_train_samples: None -> 40")):  # fmt: skip
        with pytest.raises(CheckpointError, match=changed):
            pretrain.main(_stream_args(out, sorted_parquet, "--max_steps", "4", "--resume_from_checkpoint", "latest",
                                       *extra))  # fmt: skip


def test_two_gloo_processes_stream_their_own_shards_and_resume_exactly(sorted_parquet, tmp_path):
    """`torchrun --nproc_per_node 2` with 2 workers each: an uninterrupted run and a run stopped at step 3 and resumed
    end with the same weights on both processes; each process saved its own stream state."""

    def torchrun(out, *extra):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_MIM_DDP_REPORT_DIR": str(out.parent / f"{out.name}-reports")}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO / "tests" / "ddp_check.py"), *_stream_args(out, sorted_parquet, "--max_steps", "6", *extra)]  # fmt: skip
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return [json.loads((out.parent / f"{out.name}-reports" / f"rank-{r}.json").read_text()) for r in (0, 1)]

    full = torchrun(tmp_path / "full")
    torchrun(tmp_path / "split", "--stop_after_steps", "3")
    states = [json.loads((tmp_path / "split" / "checkpoints" / "step-3" / f"stream_state_{r}.json").read_text())
              for r in (0, 1)]  # fmt: skip
    assert [s["rank"] for s in states] == [0, 1] and all(sum(s["positions"].values()) == 12 for s in states)
    resumed = torchrun(tmp_path / "split", "--resume_from_checkpoint", "latest")
    assert full[0]["weights_sha256"] == full[1]["weights_sha256"] == resumed[0]["weights_sha256"]
    assert resumed[1]["weights_sha256"] == resumed[0]["weights_sha256"]


# --------------------------------------------------------------------------------------------- WebDataset


def _webdataset_shards(folder, num_shards=3, per_shard=8, kind="jpg"):
    import PIL.Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for s in range(num_shards):
        with tarfile.open(folder / f"shard-{s:05d}.tar", "w") as tar:
            for i in range(per_shard):
                buffer = io.BytesIO()
                pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                PIL.Image.fromarray(pixels).save(buffer, format={"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[kind])
                key = f"{s:05d}{i:04d}"
                for name, data in ((f"{key}.{kind}", buffer.getvalue()), (f"{key}.cls", str(i % 3).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return str(folder / "*.tar")


@pytest.mark.parametrize("kind", ["jpg", "png", "webp"])
def test_webdataset_shards_load_with_their_image_and_class_keys(kind, tmp_path):
    from hf_mim.training.data import find_label_column, load_image_dataset

    pattern = _webdataset_shards(tmp_path / "shards", kind=kind)
    rows, name = load_image_dataset(data_files=[pattern])
    assert len(rows) == 24 and "shard-00000.tar" in name
    assert find_label_column(rows) == "cls" and rows[0][kind].size == (48, 40)
    stream, _ = load_image_dataset(data_files=[pattern], streaming=True)
    assert stream.num_shards == 3


@pytest.mark.parametrize("streaming", [False, True])
def test_pretraining_on_webdataset_shards(streaming, tmp_path):
    pattern = _webdataset_shards(tmp_path / "shards")
    extra = ["--streaming", "--dataloader_num_workers", "2"] if streaming else []
    metrics = pretrain.main(run_args("simmim", tmp_path / "out", "--max_steps", "2", "--data_files", pattern,
                                     "--per_device_train_batch_size", "4", *extra))  # fmt: skip
    assert metrics["train_steps"] == 2


def test_data_files_that_match_nothing_or_mix_formats_are_named(tmp_path):
    from hf_mim.training.data import data_file_format, expand_data_files

    with pytest.raises(FileNotFoundError, match=r"shards/\*.tar"):
        expand_data_files([str(tmp_path / "shards" / "*.tar")])
    with pytest.raises(ValueError, match=r"one of \['.arrow', '.parquet', '.tar'\]"):
        data_file_format(["a.parquet", "b.tar"])


# --------------------------------------------------------------------------------------------- the guide's commands


def guide_commands() -> list[list[str]]:
    """The `pretrain` arguments of every command in the scale guide's bash blocks and in the README's "Pretraining at
    scale" section (launchers and continuation lines folded)."""
    import re
    import shlex

    guide = (REPO / "docs" / "guides" / "pretrain-at-scale.md").read_text()
    readme = (REPO / "README.md").read_text().split("## Pretraining at scale")[1].split("\n## ")[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", guide + readme, flags=re.S):
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = line.split(" #")[0].strip()
            match = re.search(r"(?:hf-mim|-m hf_mim) pretrain (.*)", line)
            if match and not line.startswith("#"):
                commands.append(shlex.split(match.group(1)))
    return commands


def miniature(argv: list[str], out, shards: str) -> list[str]:
    """A guide command at test size: a tiny model, local WebDataset shards, 2 steps of batch 4, CPU, fp32, and
    torch.compile's quick aot_eager backend; every other flag is kept as the guide writes it."""
    replace = {"--preset": None, "--dataset_name": None, "--data_files": None, "--output_dir": None,
               "--max_steps": "2", "--per_device_train_batch_size": "4", "--dataloader_num_workers": "2",
               "--mixed_precision": "no", "--checkpointing_steps": "1"}  # fmt: skip
    args, i = [], 0
    while i < len(argv):
        flag = argv[i]
        takes_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
        value = argv[i + 1] if takes_value else None
        if flag in replace:
            if replace[flag] is not None:
                args += [flag, replace[flag]]
        elif flag == "--torch_compile":
            args += ["--torch_compile_backend", "aot_eager"]
        else:
            args += [flag] + ([value] if takes_value else [])
        i += 2 if takes_value else 1
    method = args[args.index("--method") + 1]
    tiny = run_args(method, out)[2:]  # run_args without its --method: preset, overrides, output, seed, --cpu
    return ["--method", method, *args[2:], *tiny, "--data_files", shards]


def test_the_scale_guide_commands_run_in_miniature(tmp_path):
    commands = guide_commands()
    assert len(commands) >= 5 and all("--streaming" in c for c in commands)
    shards = _webdataset_shards(tmp_path / "shards", num_shards=4)
    for n, argv in enumerate(commands):
        out = tmp_path / f"run-{n}"
        if "--resume_from_checkpoint" in argv:  # the resume command continues the previous command's run
            out = tmp_path / f"run-{n - 1}"
            argv = [a for a in argv if a not in ("--resume_from_checkpoint", "latest")]
            pretrain.main(miniature(argv, out, shards) + ["--stop_after_steps", "1", "--overwrite_output_dir"])
            argv += ["--resume_from_checkpoint", "latest"]
        metrics = pretrain.main(miniature(argv, out, shards))
        assert metrics["train_steps"] == 2, argv
