"""The engine from Python: ``Pretrainer`` on a ``datasets.Dataset`` writes what ``hf-mim pretrain`` writes, with the
same weights; callbacks see every step; the model's training hooks are called with the one progress rule."""

from __future__ import annotations

import json

import datasets
import pytest
import torch
from safetensors.torch import load_file
from transformers import set_seed

from hf_mim import MaskFeatConfig, MaskFeatForPreTraining
from hf_mim.cli import pretrain
from hf_mim.training import Pretrainer, PretrainerCallback, PretrainingArguments


def _images(photos, count: int = 24) -> datasets.Dataset:
    import PIL.Image

    rows = [PIL.Image.fromarray(image[i * 8 : i * 8 + 96, i * 8 : i * 8 + 96]) for i in range(count // 3)
            for image in photos.values()]  # fmt: skip
    return datasets.Dataset.from_dict({"image": rows}, features=datasets.Features({"image": datasets.Image()}))


def test_python_run_equals_the_command(photos, tmp_path):
    data = tmp_path / "images.parquet"
    _images(photos).to_parquet(str(data))
    common = dict(per_device_train_batch_size=4, max_steps=3, picture_steps=0, seed=3, cpu=True, learning_rate=1e-3)
    overrides = "image_size=32,patch_size=16"
    pretrain.main(["--method", "maskfeat", "--preset", "test", "--config_overrides", overrides, "--data_files",
                   str(data), "--output_dir", str(tmp_path / "cli"), "--per_device_train_batch_size", "4",
                   "--max_steps", "3", "--picture_steps", "0", "--seed", "3", "--cpu", "--learning_rate", "1e-3"])  # fmt: skip

    # the same run in a few lines of Python, without argv
    set_seed(3)
    model = MaskFeatForPreTraining(MaskFeatConfig.from_preset("test", image_size=32, patch_size=16))
    dataset = datasets.load_dataset("parquet", data_files=str(data), split="train")
    args = PretrainingArguments(output_dir=str(tmp_path / "py"), **common)  # a given model gets the main recipe
    metrics = Pretrainer(model, args, train_dataset=dataset).train()

    assert metrics["train_steps"] == 3
    cli, py = load_file(tmp_path / "cli" / "model.safetensors"), load_file(tmp_path / "py" / "model.safetensors")
    assert cli.keys() == py.keys()
    for key in cli:
        assert torch.equal(cli[key], py[key]), key
    for name in ("config.json", "preprocessor_config.json", "README.md", "all_results.json", "run.json",
                 "training_args.json", "reconstruction.png", "train_log.jsonl"):  # fmt: skip
        assert (tmp_path / "py" / name).is_file(), name
    assert {p.name for p in (tmp_path / "cli").iterdir()} == {p.name for p in (tmp_path / "py").iterdir()}
    for name in ("config.json", "preprocessor_config.json"):
        assert json.loads((tmp_path / "cli" / name).read_text()) == json.loads((tmp_path / "py" / name).read_text())
    run = json.loads((tmp_path / "py" / "run.json").read_text())
    assert run["run"]["recipe"] == "maskfeat-vit-b-1600ep" and run["run"]["values"]["max_steps"] == 3


class Recorder(PretrainerCallback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, pretrainer):
        self.events.append(("begin", pretrainer.global_step))

    def on_step_end(self, pretrainer, logs):
        self.events.append(("step", logs["step"]))

    def on_save(self, pretrainer, checkpoint):
        self.events.append(("save", checkpoint.name))

    def on_train_end(self, pretrainer, metrics):
        self.events.append(("end", metrics["train_steps"]))


class Hooked(MaskFeatForPreTraining):
    calls: list = []

    def on_train_step_begin(self, step, max_steps, num_epochs=None):
        self.calls.append(("begin", step, max_steps, num_epochs))

    def on_train_step_end(self):
        self.calls.append(("end",))


def test_callbacks_and_model_hooks_see_every_step(photos, tmp_path):
    model = Hooked(MaskFeatConfig.from_preset("test", image_size=32, patch_size=16))
    recorder = Recorder()
    args = PretrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2,
                                checkpointing_steps=1, picture_steps=0, cpu=True)  # fmt: skip
    Pretrainer(model, args, train_dataset=_images(photos), callbacks=[recorder]).train()
    assert recorder.events == [("begin", 0), ("step", 1), ("save", "step-1"), ("step", 2), ("save", "step-2"),
                               ("end", 2)]  # fmt: skip
    # 24 rows / batch 4 = 6 steps an epoch: 2 steps are 1/3 of an epoch
    assert Hooked.calls == [("begin", 0, 2, pytest.approx(2 / 6)), ("end",), ("begin", 1, 2, pytest.approx(2 / 6)),
                            ("end",)]  # fmt: skip


def test_a_model_of_another_method_is_refused_before_work(tmp_path):
    model = MaskFeatForPreTraining(MaskFeatConfig.from_preset("test"))
    with pytest.raises(ValueError, match="'maskfeat' model, but --method is 'hpm'"):
        Pretrainer(model, PretrainingArguments(method="hpm", output_dir=str(tmp_path), cpu=True))
    assert not any(tmp_path.iterdir())


def test_skipping_nonfinite_batches_is_bounded(photos, tmp_path):
    model = MaskFeatForPreTraining(MaskFeatConfig.from_preset("test", image_size=32, patch_size=16))
    args = PretrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=4, cpu=True,
                                learning_rate=1e30, skip_nonfinite_loss=True, max_consecutive_nonfinite=3,
                                picture_steps=0)  # fmt: skip
    with pytest.raises(FloatingPointError, match="3 batches in a row"):
        Pretrainer(model, args, train_dataset=_images(photos)).train()


def test_a_handed_stream_is_streamed(photos, tmp_path):
    model = MaskFeatForPreTraining(MaskFeatConfig.from_preset("test", image_size=32, patch_size=16))
    stream = _images(photos).to_iterable_dataset()
    args = PretrainingArguments(output_dir=str(tmp_path / "a"), per_device_train_batch_size=4, max_steps=0,
                                num_train_epochs=1.0, picture_steps=0, cpu=True)  # fmt: skip
    with pytest.raises(ValueError, match="needs --max_steps"):
        Pretrainer(model, args, train_dataset=stream).train()
    args = PretrainingArguments(output_dir=str(tmp_path / "b"), per_device_train_batch_size=4, max_steps=2,
                                picture_steps=0, cpu=True)  # fmt: skip
    assert Pretrainer(model, args, train_dataset=stream).train()["train_steps"] == 2


def test_dataloader_workers_persist_and_prefetch(photos, tmp_path):
    model = MaskFeatForPreTraining(MaskFeatConfig.from_preset("test", image_size=32, patch_size=16))
    args = PretrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2, picture_steps=0,
                                cpu=True, dataloader_num_workers=2, dataloader_prefetch_factor=3)  # fmt: skip
    pretrainer = Pretrainer(model, args, train_dataset=_images(photos))
    assert pretrainer._loader_options() == {"num_workers": 2, "pin_memory": False, "persistent_workers": True,
                                            "prefetch_factor": 3}  # fmt: skip
    assert pretrainer.train()["train_steps"] == 2


def _losses(out) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("method", "backend"),
    [("maskfeat", "aot_eager"), ("simmim", "aot_eager"),
     ("hpm", "inductor")],  # HPM draws its masks inside the graph: inductor must draw them as eager mode does
)  # fmt: skip
def test_torch_compile_runs_three_steps_with_the_eager_losses(method, backend, tmp_path):
    """#24: `--torch_compile` (graph capture with dynamo and AOTAutograd, and for HPM inductor's generated code, for
    every method) gives the eager run's losses within 1e-4."""
    from ..cli.test_pretrain import run_args

    pretrain.main(run_args(method, tmp_path / "eager", "--max_steps", "3"))
    pretrain.main(run_args(method, tmp_path / "compiled", "--max_steps", "3", "--torch_compile_backend", backend))
    assert _losses(tmp_path / "compiled") == pytest.approx(_losses(tmp_path / "eager"), abs=1e-4)


def test_compile_flags_are_checked_by_name():
    with pytest.raises(ValueError, match="--torch_compile_mode must be one of"):
        PretrainingArguments(output_dir="x", torch_compile_mode="fastest")
    with pytest.raises(ValueError, match="--torch_compile_backend must be a torch.compile backend"):
        PretrainingArguments(output_dir="x", torch_compile_backend="nvfuser")
    assert PretrainingArguments(output_dir="x", torch_compile_backend="aot_eager").torch_compile
