"""A run owns its folder, checkpoints are verified, nothing is lost: regression tests of issue #10's findings."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from filelock import FileLock
from safetensors.torch import load_file

from hf_mim.cli import pretrain
from hf_mim.training.checkpointing import CheckpointError, checkpoint_dirs, latest_checkpoint, verify_checkpoint

from ..cli.test_pretrain import run_args


def weights(folder):
    return load_file(folder / "model.safetensors")


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 6-step run, checkpoints every 2 steps."""
    out = tmp_path_factory.mktemp("reference")
    pretrain.main(run_args("maskfeat", out, "--max_steps", "6", "--checkpointing_steps", "2"))
    return out


def test_a_new_run_refuses_another_runs_folder_and_overwrite_clears_it(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    with pytest.raises(RuntimeError, match="already holds another run's files"):
        pretrain.main(run_args("maskfeat", out, "--max_steps", "2"))
    pretrain.main(run_args("maskfeat", out, "--max_steps", "2", "--overwrite_output_dir"))
    assert not (out / "checkpoints").exists(), "the old run's checkpoints must not survive an overwrite"
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()] == [1, 2]


def test_resume_refuses_a_checkpoint_of_another_run(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    with pytest.raises(CheckpointError, match="seed: 0 -> 7"):
        pretrain.main(
            run_args("maskfeat", out, "--max_steps", "8", "--resume_from_checkpoint", "latest", "--seed", "7")
        )


def test_damaged_checkpoints_are_skipped_and_named(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    step4, step6 = out / "checkpoints" / "step-4", out / "checkpoints" / "step-6"
    flipped = out / "checkpoints" / "step-5"
    shutil.copytree(step4, flipped)
    with (step6 / "model.safetensors").open("r+b") as f:  # truncated weights
        f.truncate(100)
    data = bytearray((flipped / "optimizer.bin").read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    (flipped / "optimizer.bin").write_bytes(bytes(data))
    (out / "checkpoints" / "step-99").mkdir()  # an empty stray folder
    with pytest.raises(CheckpointError, match=r"step-6/model.safetensors has 100 bytes"):
        verify_checkpoint(step6)
    with pytest.raises(CheckpointError, match=r"step-5/optimizer.bin differs"):
        verify_checkpoint(flipped)
    with pytest.raises(CheckpointError, match="manifest.json is missing"):
        verify_checkpoint(out / "checkpoints" / "step-99")
    assert latest_checkpoint(out).name == "step-4"
    with pytest.raises(CheckpointError, match="model.safetensors has 100 bytes"):  # an explicit path: an error
        pretrain.main(run_args("maskfeat", out, "--max_steps", "6", "--resume_from_checkpoint", str(step6)))


def _crash(monkeypatch, target, name, when: str):
    """Makes ``target.name`` raise on its first call about ``when`` (a path part): a kill at a deterministic point
    of the second save."""
    original = getattr(target, name)

    def failing(*args, **kwargs):
        if any(when in str(a) for a in args):
            raise KeyboardInterrupt(f"injected crash in {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)


@pytest.mark.parametrize(
    "where",
    ["weights written, optimizer not (torch.save)", "files written, manifest not (sha256)", "before the rename"],
)
def test_fault_injection_in_saves_then_latest_resumes_bit_exactly(where, reference, tmp_path, monkeypatch):
    import hf_mim.training.checkpointing as ckpt

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        if where.startswith("weights"):
            _crash(
                patch, torch, "save", "tmp-step-4"
            )  # accelerate saves the optimizer with torch.save, after the weights
        elif where.startswith("files"):
            _crash(patch, ckpt, "_sha256", "tmp-step-4")  # inside the manifest of the second checkpoint
        else:
            _crash(patch, ckpt.os, "replace", "tmp-step-4")
        with pytest.raises(KeyboardInterrupt):
            pretrain.main(run_args("maskfeat", out, "--max_steps", "6", "--checkpointing_steps", "2"))
    assert [p.name for p in checkpoint_dirs(out)] == ["step-2"]
    pretrain.main(run_args("maskfeat", out, "--max_steps", "6", "--checkpointing_steps", "2",
                           "--resume_from_checkpoint", "latest"))  # fmt: skip
    assert same_weights(weights(out), weights(reference)), where
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6], "the log keeps one line per step after a kill"


def test_rotation_keeps_other_runs_checkpoints(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    foreign = out / "checkpoints" / "step-40"
    shutil.copytree(out / "checkpoints" / "step-4", foreign)
    state = json.loads((foreign / "trainer_state.json").read_text())
    state["fingerprint"]["seed"] = 123
    (foreign / "trainer_state.json").write_text(json.dumps(state))
    pretrain.main(run_args("maskfeat", out, "--max_steps", "10", "--checkpointing_steps", "2",
                           "--resume_from_checkpoint", "latest"))  # fmt: skip
    assert [p.name for p in checkpoint_dirs(out)] == ["step-8", "step-10", "step-40"]


def test_resuming_a_finished_run_keeps_valid_results(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    before = json.loads((out / "all_results.json").read_text())
    pretrain.main(run_args("maskfeat", out, "--max_steps", "6", "--checkpointing_steps", "2",
                           "--resume_from_checkpoint", "latest"))  # fmt: skip
    after = json.loads((out / "all_results.json").read_text())  # valid JSON, not NaN
    assert after["train_loss"] == before["train_loss"] and after["train_steps"] == 6


def test_a_locked_folder_is_refused(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    with FileLock(str(tmp_path / ".hf_mim.lock")), pytest.raises(RuntimeError, match="Another run is writing"):
        pretrain.main(run_args("maskfeat", tmp_path, "--max_steps", "1"))


def test_a_non_finite_loss_stops_before_the_update_or_is_skipped(tmp_path, monkeypatch):
    from hf_mim import MaskFeatForPreTraining

    original, calls = MaskFeatForPreTraining.forward_loss, []

    def nan_on_third(self, *args):
        calls.append(1)
        loss = original(self, *args)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(MaskFeatForPreTraining, "forward_loss", nan_on_third)
    with pytest.raises(FloatingPointError, match="Non-finite loss at step 3"):
        pretrain.main(run_args("maskfeat", tmp_path / "a", "--max_steps", "4", "--checkpointing_steps", "2"))
    assert all(torch.isfinite(v).all() for v in weights(tmp_path / "a" / "checkpoints" / "step-2").values())
    calls.clear()
    metrics = pretrain.main(run_args("maskfeat", tmp_path / "b", "--max_steps", "4", "--skip_nonfinite_loss"))
    assert metrics["skipped_nonfinite_batches"] == 1 and metrics["train_steps"] == 4


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--logging_steps", "0"], "--logging_steps must be >= 1"),
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be >= 1"),
        (["--max_steps", "0", "--num_train_epochs", "0"], "nothing to train"),
        (["--learning_rate", "0"], "--learning_rate must be > 0"),
        (["--adam_beta2", "1.5"], "--adam_beta2 must be in"),
        (["--streaming", "--max_steps", "2", "--skip_corrupt_images"], "--skip_corrupt_images needs a map-style"),
    ],
)
def test_arguments_are_validated_up_front(extra, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        pretrain.main(run_args("maskfeat", tmp_path, *extra))
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run.json").exists()


def test_fewer_rows_than_a_batch_and_a_checkpoint_of_another_method_fail_early(tmp_path, capsys):
    with pytest.raises(ValueError, match="fewer than one batch"):
        pretrain.main(run_args("maskfeat", tmp_path / "a", "--max_steps", "2", "--default_data_size", "4"))
    from hf_mim import get_model_spec

    spec = get_model_spec("simmim")
    spec.pretraining_class(spec.tiny_config()).save_pretrained(tmp_path / "simmim")
    args = ["--method", "maskfeat", "--model_name_or_path", str(tmp_path / "simmim"), "--output_dir",
            str(tmp_path / "b"), "--max_steps", "1", "--cpu"]  # fmt: skip
    with pytest.raises(SystemExit):  # found while resolving the run: a parser error, before any work
        pretrain.main(args)
    assert "is a 'simmim' checkpoint" in capsys.readouterr().err


def test_streaming_hpm_masks_ramp_with_the_steps(cifar10_rows, tmp_path):
    data = tmp_path / "rows.parquet"
    cifar10_rows.select(range(64)).to_parquet(str(data))
    pretrain.main(run_args("hpm", tmp_path / "out", "--max_steps", "4", "--streaming", "--data_files", str(data),
                           "--num_train_epochs", "10"))  # fmt: skip
    model = pretrain.LAST_MODEL
    assert float(model.training_epoch) == pytest.approx(7.5)  # step 3 of 4 on a 10-epoch scale
    assert model.num_hard_patches(model.config.num_masked) > 0


def test_a_full_disk_names_the_checkpoint_and_keeps_the_last_good_one(tmp_path, monkeypatch):
    from accelerate import Accelerator

    original = Accelerator.save_state

    def full_disk(self, output_dir=None, **kwargs):
        if "tmp-step-4" in str(output_dir):
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")  # torch's words
        return original(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", full_disk)
    with pytest.raises(OSError, match=r"Could not write checkpoint .*tmp-step-4 \(disk full or not writable\?\)"):
        pretrain.main(run_args("maskfeat", tmp_path, "--max_steps", "6", "--checkpointing_steps", "2"))
    assert latest_checkpoint(tmp_path).name == "step-2"
