"""The pretraining engine: :class:`Pretrainer` runs a resolved pretraining with accelerate.

    >>> from hf_mim.training import Pretrainer, PretrainingArguments
    >>> args = PretrainingArguments(output_dir="outputs/run", max_steps=100, cpu=True)
    >>> metrics = Pretrainer(model, args, train_dataset=dataset).train()   # doctest: +SKIP

It owns what ``hf-mim pretrain`` does: the optimizer and LR schedule of the resolved recipe, the run folder's lock
and fingerprint, exact resume from verified checkpoints, the non-finite-loss policy, pictures, the final save with
the model card and remote code, and the upload. Method-specific steps are the model's own training hooks
(``on_train_step_begin(step, max_steps, num_epochs)`` / ``on_train_step_end()``, e.g. HPM's progress and EMA
teacher), the same hooks ``Trainer`` callbacks call.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DataLoaderConfiguration, DistributedType, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..backbones import backbone_source
from ..evaluation import trivial_baseline
from ..export import bundle_remote_code
from ..hub import push_folder, render_model_card
from ..registry import get_model_spec
from . import checkpointing
from .arguments import PretrainingArguments
from .builders import compile_model, reconcile_normalization, set_attention
from .data import SeededTransformDataset, drop_corrupt_images, find_image_column, truncate_log
from .optimization import build_lr_scheduler, param_groups
from .pictures import pretraining_picture
from .resolve import ResolvedPretraining, resolve_pretraining
from .streaming import StreamBatches, StreamReader, prepare_stream, stream_split_warnings

__all__ = ["Pretrainer", "PretrainerCallback", "PicturesCallback", "run_fingerprint"]


class PretrainerCallback:
    """Hooks into :meth:`Pretrainer.train`; override what you need. Each hook gets the pretrainer (its ``model``,
    ``accelerator``, ``plan``, ``output_dir``, ``global_step``) and runs on every process."""

    def on_train_begin(self, pretrainer: Pretrainer) -> None: ...

    def on_step_end(self, pretrainer: Pretrainer, logs: dict[str, float]) -> None:
        """After each optimizer step; ``logs`` holds ``step``, ``loss`` (mean over processes) and ``lr``."""

    def on_save(self, pretrainer: Pretrainer, checkpoint: Path) -> None:
        """After a checkpoint is complete."""

    def on_train_end(self, pretrainer: Pretrainer, metrics: dict[str, Any]) -> None:
        """After the final outputs are written (not called when the run stops early to be resumed)."""


class PicturesCallback(PretrainerCallback):
    """Writes ``pictures/step-N.png`` every ``picture_steps`` steps (and to TensorBoard when it is the tracker)."""

    def on_step_end(self, pretrainer: Pretrainer, logs: dict[str, float]) -> None:
        steps = pretrainer.plan.args.picture_steps
        if steps and logs["step"] % steps == 0:
            pretrainer.write_picture(logs["step"])


def run_fingerprint(plan: ResolvedPretraining, config, description: str, num_processes: int) -> dict:
    """What a resumed run must share with the run that wrote the checkpoint."""
    skip = {"transformers_version", "architectures", "dtype", "output_hidden_states", "return_dict", "id2label",
            "label2id"}  # fmt: skip
    fingerprint = {"method": config.model_type, "config": {k: v for k, v in config.to_dict().items() if k not in skip},
                   "data": description, "seed": plan.args.seed,
                   "per_device_train_batch_size": plan.values["per_device_train_batch_size"],
                   "gradient_accumulation_steps": plan.args.gradient_accumulation_steps,
                   "num_processes": num_processes}  # fmt: skip
    # what selects and orders the rows; recorded only when set, so checkpoints of runs that predate them still match
    a = plan.args
    data = {"max_train_samples": a.max_train_samples,
            "shuffle_buffer_size": a.shuffle_buffer_size if a.streaming else None}  # fmt: skip
    fingerprint.update({key: value for key, value in data.items() if value is not None})
    return json.loads(json.dumps(fingerprint, default=str))  # as it reads back from run.json and checkpoints


class Pretrainer:
    """Pretrains an hf_mim model with accelerate.

    Args:
        model: The pretraining model; default: built from ``args`` (preset / config file / checkpoint).
        args: :class:`PretrainingArguments`, or a plan already resolved from them.
        train_dataset: A ``datasets.Dataset`` / ``IterableDataset`` with an image column (``args.image_column``, or
            found by :func:`~hf_mim.training.data.find_image_column`);
            default: loaded from ``args``' data flags (the embedded photos when none is given).
        image_processor: Preprocessing, augmentation and masks; default: the method's processor for the model's
            config with the recipe's crop scale.
        callbacks: :class:`PretrainerCallback` s, called after the built-in :class:`PicturesCallback`.
        dataset_description: Names the data in the fingerprint, card and logs (default: what was loaded, or
            ``"a datasets.Dataset of N rows"``).

    Raises:
        ValueError: When made: the model is not of the resolved method, or the plan was resolved for another number
            of processes. From :meth:`train`, before any step: the dataset has no image column, is smaller than a
            batch, or is a stream without ``max_steps``.
    """

    def __init__(
        self,
        model=None,
        args: PretrainingArguments | ResolvedPretraining | None = None,
        train_dataset=None,
        image_processor=None,
        callbacks: list[PretrainerCallback] | None = None,
        dataset_description: str | None = None,
    ):
        args = PretrainingArguments() if args is None else args
        if not torch.distributed.is_initialized():
            # several runs in one process (tests, notebooks): accelerate's state is a singleton
            AcceleratorState._reset_state(reset_partial_state=True)
        if isinstance(args, ResolvedPretraining):
            self.plan = args
        else:  # resolved for the processes of the launch (torchrun / accelerate launch set WORLD_SIZE)
            config = model.config if model is not None else None
            self.plan = resolve_pretraining(args, num_processes=int(os.environ.get("WORLD_SIZE", "1")),
                                            model_config=config)  # fmt: skip
        plan, a = self.plan, self.plan.args
        fsdp_plugin = None
        if a.fsdp:
            from accelerate.utils import FullyShardedDataParallelPlugin

            fsdp_plugin = FullyShardedDataParallelPlugin(
                fsdp_version=2, auto_wrap_policy="transformer_based_wrap", state_dict_type="SHARDED_STATE_DICT",
                transformer_cls_names_to_wrap=list(get_model_spec(plan.method).pretraining_class._no_split_modules),
            )  # fmt: skip
        self.accelerator = Accelerator(
            fsdp_plugin=fsdp_plugin, gradient_accumulation_steps=a.gradient_accumulation_steps,
            mixed_precision=a.mixed_precision, cpu=a.cpu, log_with=None if a.report_to == "none" else a.report_to,
            project_dir=plan.output_dir, dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True,
                                                                                   data_seed=a.seed),
        )  # fmt: skip
        n = self.accelerator.num_processes
        if plan.num_processes != n:
            raise ValueError(f"The plan was resolved for {plan.num_processes} process(es), but this run has {n}: "
                             f"resolve it with num_processes={n} (or let the Pretrainer resolve the arguments).")  # fmt: skip
        set_seed(a.seed)
        self.model = plan.build_model() if model is None else model
        if self.model.config.model_type != plan.method:
            raise ValueError(f"The model is a {self.model.config.model_type!r} model, but the arguments resolve to "
                             f"--method {plan.method!r}.")  # fmt: skip
        set_attention(self.model, a.attn_implementation)
        self.image_processor = image_processor or plan.build_image_processor(self.model.config)
        reconcile_normalization(self.model.config, self.image_processor)  # the model knows its inputs' statistics
        if train_dataset is None:
            train_dataset, description = self.plan.load_dataset()
        else:
            description = _describe(train_dataset)
        self.train_dataset, self.dataset_description = train_dataset, dataset_description or description
        # a stream: asked for with --streaming, or handed over as one
        self.streaming = a.streaming or isinstance(self.train_dataset, datasets.IterableDataset)
        self.callbacks = [PicturesCallback(), *(callbacks or [])]
        self.output_dir = Path(self.plan.output_dir)
        self.global_step = 0

    # -- data ----------------------------------------------------------------------------------------------
    def _build_loader(self):
        """The per-process DataLoader (seeded order and per-example seeded augmentation), and the picture images."""
        a, plan = self.plan.args, self.plan
        dataset = self.train_dataset
        column = find_image_column(dataset, a.image_column, self.dataset_description)
        if self.streaming and not plan.max_steps:
            raise ValueError("A streamed dataset needs --max_steps > 0 (the length of a stream is unknown).")
        if a.skip_corrupt_images and not self.streaming:
            dataset, skipped = drop_corrupt_images(dataset, column)
            if skipped:
                self.accelerator.print(f"Skipped {len(skipped)} undecodable image(s) (rows {skipped[:10]}...).")
        picture_images = [row[column] for _, row in zip(range(4), iter(dataset))]
        batch = plan.values["per_device_train_batch_size"]
        if self.streaming:
            return None, self._stream_reader(dataset, column, batch), picture_images
        needed = batch * self.accelerator.num_processes
        if len(dataset) < needed:
            raise ValueError(f"The dataset ({self.dataset_description}) has {len(dataset)} rows, fewer than one batch "
                             f"(--per_device_train_batch_size {batch} x {self.accelerator.num_processes} processes = "
                             f"{needed}); lower the batch size or add data.")  # fmt: skip
        dataset = SeededTransformDataset(dataset, self.image_processor, column, seed=a.seed,
                                         description=self.dataset_description)  # fmt: skip
        loader = DataLoader(
            dataset,
            batch_size=batch,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(a.seed),  # keeps the global RNG out of the order
            **self._loader_options(),
        )
        return dataset, loader, picture_images

    def _stream_reader(self, dataset, column: str, batch: int) -> StreamReader:
        """This process's part of the stream, shuffled, with per-example seeds and an exact state (see
        :mod:`hf_mim.training.streaming`)."""
        a, accelerator = self.plan.args, self.accelerator
        for note in stream_split_warnings(dataset.num_shards, accelerator.num_processes, a.dataloader_num_workers):
            accelerator.print(f"Warning: {note}")
        stream = prepare_stream(dataset, column, a.seed, a.shuffle_buffer_size, accelerator.process_index,
                                accelerator.num_processes)  # fmt: skip
        batches = StreamBatches(stream, self.image_processor, column, batch, seed=a.seed,
                                rank=accelerator.process_index, description=self.dataset_description)  # fmt: skip
        options = {k: v for k, v in self._loader_options().items() if k != "persistent_workers"}
        return StreamReader(batches, **options)  # a new DataLoader per epoch: its workers see the epoch

    def _loader_options(self) -> dict[str, Any]:
        """DataLoader speed settings: workers kept alive between epochs and prefetching when there are workers,
        pinned memory when training on a GPU."""
        a = self.plan.args
        options: dict[str, Any] = {"num_workers": a.dataloader_num_workers,
                                   "pin_memory": self.accelerator.device.type == "cuda"}  # fmt: skip
        if a.dataloader_num_workers > 0:
            options.update(persistent_workers=True, prefetch_factor=a.dataloader_prefetch_factor)
        return options

    # -- the run -------------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Runs (or resumes) the pretraining; returns the metrics written to ``all_results.json`` (or, for a run
        stopped early on purpose, ``{"step", "loss"}``)."""
        if self.plan.args.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        dataset, loader, picture_images = self._build_loader()
        fingerprint = run_fingerprint(self.plan, self.model.config, self.dataset_description,
                                      self.accelerator.num_processes)  # fmt: skip
        run_folder = checkpointing.RunFolder(
            self.output_dir, fingerprint, overwrite=self.plan.args.overwrite_output_dir,
            resume=bool(self.plan.args.resume_from_checkpoint), is_main_process=self.accelerator.is_main_process,
            record=self.plan.to_dict(),
        )  # fmt: skip
        with run_folder:
            self.accelerator.wait_for_everyone()
            return self._train(dataset, loader, picture_images, fingerprint)

    def _train(self, dataset, loader, picture_images, fingerprint) -> dict[str, Any]:
        plan, a, accelerator = self.plan, self.plan.args, self.accelerator
        main_process, output_dir = accelerator.is_main_process, self.output_dir
        set_seed(a.seed)  # the run starts from the seed, however the model was made (CLI and Python runs agree)
        lrs = plan.learning_rates
        learning_rate = lrs["learning_rate"]
        if a.tf32 and torch.cuda.is_available():  # TF32 matmuls and convolutions on Ampere and newer
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        optimizer = torch.optim.AdamW(
            param_groups(self.model, plan.weight_decay, plan.no_decay_keywords), lr=learning_rate,
            betas=(plan.adam_beta1, plan.adam_beta2), eps=plan.adam_epsilon,
            fused=accelerator.device.type == "cuda" or None,  # one kernel for all parameters on GPUs
        )  # fmt: skip
        model = self.model
        if a.torch_compile:
            model = compile_model(model, a.torch_compile_backend, a.torch_compile_mode)
        if self.streaming:  # each process reads its own part of the stream (see _stream_reader): nothing to dispatch
            model, optimizer = accelerator.prepare(model, optimizer)
        else:
            model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        accumulation = a.gradient_accumulation_steps
        steps_per_epoch = None if self.streaming else max(1, len(loader) // accumulation)
        max_steps = plan.max_steps if plan.max_steps > 0 else math.ceil(plan.num_train_epochs * steps_per_epoch)
        num_epochs = max_steps / steps_per_epoch if steps_per_epoch else plan.num_train_epochs
        warmup, milestones = plan.schedule_steps(max_steps)
        n = accelerator.num_processes  # accelerate steps a prepared scheduler once per process, hence the factor
        scheduler = accelerator.prepare(build_lr_scheduler(
            optimizer, max_steps * n, warmup * n, warmup_start_factor=min(1.0, lrs["warmup_start_lr"] / learning_rate),
            min_lr_factor=min(1.0, lrs["min_lr"] / learning_rate), schedule=plan.lr_scheduler_type,
            milestones=[m * n for m in milestones], gamma=plan.lr_gamma,
        ))  # fmt: skip
        unwrapped = self.model = accelerator.unwrap_model(model)
        hooks = unwrapped if hasattr(unwrapped, "on_train_step_begin") else None

        # -- resume ----------------------------------------------------------------------------------------
        global_step, last_loss, skipped_batches = 0, float("nan"), 0
        path = self._resume_checkpoint(fingerprint)
        if a.resume_from_checkpoint and path is None:
            accelerator.print(f"No complete checkpoint in {output_dir / 'checkpoints'}; starting from scratch.")
        if path is not None:
            accelerator.load_state(str(path))
            state = json.loads((path / "trainer_state.json").read_text())
            global_step, skipped_batches = state["step"], state.get("skipped_batches", 0)
            last_loss = state.get("loss") if state.get("loss") is not None else float("nan")
            accelerator.print(f"Resumed from {path} at step {global_step}.")
            if self.streaming:
                self._resume_stream(loader, path)
        self.global_step = global_step
        if a.report_to != "none":
            config = {"method": plan.method, "recipe": plan.recipe or "demo", "seed": a.seed,
                      **{k: v for k, v in plan.values.items() if isinstance(v, int | float | str | bool)}}  # fmt: skip
            accelerator.init_trackers("pretrain", config=config)
        # a fixed picture batch: deterministic preprocessing and masks, independent of the training RNG
        self._picture_batch = (
            self.image_processor(picture_images, augment=False, return_mask=True, seed=0) if main_process else None
        )
        log_path = output_dir / "train_log.jsonl"
        if main_process:
            truncate_log(log_path, global_step)  # a killed run may have logged past its last checkpoint
        for callback in self.callbacks:
            callback.on_train_begin(self)
        progress = tqdm(total=max_steps, initial=global_step, disable=not main_process, desc=f"pretrain {plan.method}")
        model.train()
        start_time, images_seen, consecutive_skips = time.perf_counter(), 0, 0
        epoch = global_step // steps_per_epoch if steps_per_epoch else loader.epoch
        stop_at = min(max_steps, a.stop_after_steps or max_steps)

        def checkpoint(step: int) -> None:
            state = {"epoch": epoch, "loss": last_loss, "skipped_batches": skipped_batches, "fingerprint": fingerprint}
            stream_state = loader.state_dict() if self.streaming else None
            if stream_state is not None:
                state["epoch"] = stream_state["epoch"]
            saved = checkpointing.save_checkpoint(accelerator, output_dir, step, state, keep=a.checkpoints_total_limit,
                                                  process_state=stream_state)  # fmt: skip
            for callback in self.callbacks:
                callback.on_save(self, saved)

        while global_step < stop_at:
            for source in (loader, dataset):
                if hasattr(source, "set_epoch"):
                    source.set_epoch(epoch)
            batches = loader  # a stream's reader runs through its epochs itself
            if steps_per_epoch and global_step > epoch * steps_per_epoch:  # resuming inside an epoch
                batches = accelerator.skip_first_batches(
                    loader, (global_step - epoch * steps_per_epoch) * accumulation
                )
            for batch in batches:
                if self.streaming:
                    batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
                if hooks is not None:
                    hooks.on_train_step_begin(global_step, max_steps, num_epochs)
                with accelerator.accumulate(model):
                    outputs = model(**batch)
                    # every process must take the same branch: decide on the gathered losses (logged below too)
                    losses = accelerator.gather(outputs.loss.detach().float()[None])
                    if not bool(losses.isfinite().all()):
                        optimizer.zero_grad()
                        skipped_batches += 1
                        consecutive_skips += 1
                        self._check_nonfinite(global_step, consecutive_skips)
                        accelerator.print(f"Skipped a batch with a non-finite loss at step {global_step + 1}.")
                        continue
                    consecutive_skips = 0
                    accelerator.backward(outputs.loss)
                    if accelerator.sync_gradients and plan.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), plan.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                images_seen += batch["pixel_values"].shape[0] * accelerator.num_processes
                if not accelerator.sync_gradients:
                    continue
                global_step = self.global_step = global_step + 1
                if hooks is not None:
                    hooks.on_train_step_end()
                last_loss = losses.mean().item()
                lr = scheduler.get_last_lr()[0]
                speed = images_seen / (time.perf_counter() - start_time)
                progress.update(1)
                progress.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}", img_s=f"{speed:.0f}")
                if main_process:
                    with log_path.open("a") as f:
                        f.write(json.dumps({"step": global_step, "loss": last_loss, "lr": lr}) + "\n")
                if global_step % a.logging_steps == 0 and a.report_to != "none":
                    accelerator.log(
                        {"train/loss": last_loss, "train/lr": lr, "train/images_per_second": speed}, step=global_step
                    )
                for callback in self.callbacks:
                    callback.on_step_end(self, {"step": global_step, "loss": last_loss, "lr": lr})
                if a.checkpointing_steps and global_step % a.checkpointing_steps == 0:
                    checkpoint(global_step)
                if global_step >= stop_at:
                    break
            epoch += 1
        progress.close()
        elapsed = time.perf_counter() - start_time

        if global_step < max_steps:  # stopped early on purpose: leave a checkpoint to resume from
            if not (a.checkpointing_steps and global_step % a.checkpointing_steps == 0):
                checkpoint(global_step)
            accelerator.print(
                f"Stopped at step {global_step}/{max_steps}; resume with --resume_from_checkpoint latest."
            )
            accelerator.end_training()
            return {"step": global_step, "loss": last_loss}

        metrics = {
            "train_loss": last_loss, "train_steps": global_step, "train_runtime_s": round(elapsed, 2),
            "train_images_per_second": round(images_seen / max(elapsed, 1e-9), 2),
            "total_batch_size": plan.total_batch_size, "learning_rate": learning_rate,
            "skipped_nonfinite_batches": skipped_batches,
        }  # fmt: skip
        self._save_final(model, metrics, warmup, elapsed)
        for callback in self.callbacks:
            callback.on_train_end(self, metrics)
        return metrics

    def _resume_stream(self, reader: StreamReader, path: Path) -> None:
        """Puts this process's stream where the checkpoint left it, or says that it restarts (older checkpoints)."""
        state_path = checkpointing.process_state_path(path, self.accelerator.process_index)
        if not state_path.is_file():
            self.accelerator.print(f"Note: {path} holds no stream position (an older checkpoint): the stream restarts "
                                   "from its beginning (model, optimizer, schedule and RNG resume exactly).")  # fmt: skip
            return
        state = json.loads(state_path.read_text())
        reader.load_state_dict(state)
        self.accelerator.print(f"Resumed the stream exactly: epoch {state['epoch']}, rows consumed per worker "
                               f"{state['positions'] or {}} (replayed without decoding).")  # fmt: skip

    def _check_nonfinite(self, global_step: int, consecutive: int) -> None:
        """The non-finite-loss policy: stop at the first one, or (``skip_nonfinite_loss``) after
        ``max_consecutive_nonfinite`` in a row -- no loop runs unbounded on broken weights."""
        a = self.plan.args
        advice = ("Lower the learning rate (or use bf16 instead of fp16)" + ("" if a.skip_nonfinite_loss else
                  ", or pass --skip_nonfinite_loss to skip such batches") + ".")  # fmt: skip
        if not a.skip_nonfinite_loss:
            raise FloatingPointError(f"Non-finite loss at step {global_step + 1}: training stopped before the update, "
                                     f"so the last checkpoint and the weights stay finite. {advice}")  # fmt: skip
        if consecutive >= a.max_consecutive_nonfinite:
            raise FloatingPointError(
                f"Non-finite loss in {consecutive} batches in a row at step {global_step + 1} "
                f"(--max_consecutive_nonfinite {a.max_consecutive_nonfinite}): the weights or the data are broken, "
                f"not one batch, so training stopped. {advice}"
            )

    def _resume_checkpoint(self, fingerprint: dict) -> Path | None:
        resume = self.plan.args.resume_from_checkpoint
        if not resume:
            return None
        if resume == "latest":
            return checkpointing.latest_checkpoint(self.output_dir, fingerprint)
        path = Path(resume)
        checkpointing.verify_checkpoint(path, fingerprint)  # an explicit damaged path is an error naming the file
        return path

    # -- outputs -------------------------------------------------------------------------------------------
    def write_picture(self, step: int | None) -> None:
        """The picture grid of the fixed picture batch: ``pictures/step-N.png``, or ``reconstruction.png`` at the end.
        Under FSDP a forward is a collective that one process alone would wait on forever: no pictures there."""
        accelerator = self.accelerator
        if not accelerator.is_main_process or accelerator.distributed_type == DistributedType.FSDP:
            return
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in self._picture_batch.items()}
        with torch.random.fork_rng(devices=[]):  # pictures must not shift the training RNG (exact resume)
            picture = pretraining_picture(self.model, batch, image_mean=self.image_processor.image_mean,
                                          image_std=self.image_processor.image_std)  # fmt: skip
        if step is None:
            picture.save(self.output_dir / "reconstruction.png")
            return
        folder = self.output_dir / "pictures"
        folder.mkdir(exist_ok=True)
        picture.save(folder / f"step-{step}.png")
        for tracker in accelerator.trackers:
            if tracker.name == "tensorboard":
                import numpy as np

                tracker.writer.add_image("pictures", np.asarray(picture), step, dataformats="HWC")

    def _save_final(self, model, metrics: dict, warmup: int, elapsed: float) -> None:
        """Everything first, ``all_results.json`` last (it marks the folder complete); then reload, print, push."""
        plan, a, accelerator = self.plan, self.plan.args, self.accelerator
        main_process, output_dir, unwrapped = accelerator.is_main_process, self.output_dir, self.model
        if main_process:
            (output_dir / checkpointing.COMPLETION_FILE).unlink(missing_ok=True)
        accelerator.wait_for_everyone()
        self.write_picture(None)
        if main_process and accelerator.distributed_type != DistributedType.FSDP:
            # what the model learned beyond predicting the mean target, on the fixed picture batch
            device = next(unwrapped.parameters()).device
            with torch.random.fork_rng(devices=[]):
                baseline = trivial_baseline(unwrapped, {k: v.to(device) for k, v in self._picture_batch.items()})
            metrics.update({f"picture_batch_{k}": round(v, 6) for k, v in baseline.items()})
        state_dict = accelerator.get_state_dict(model)  # a collective under FSDP: every process takes part
        if main_process:
            unwrapped.save_pretrained(output_dir, state_dict=state_dict, safe_serialization=True)
            self.image_processor.save_pretrained(output_dir)
            # the modeling code travels with the weights: loadable with trust_remote_code where hf_mim is not installed
            bundle_remote_code(unwrapped, output_dir)
            bundle_remote_code(self.image_processor, output_dir)
            checkpointing.write_json_atomic(output_dir / "training_args.json", plan.to_dict())
            lrs = plan.learning_rates
            hyper = {
                "total batch size": plan.total_batch_size,
                "learning rate": f"{lrs['learning_rate']:.3g} (AdamW, betas {plan.adam_beta1}/{plan.adam_beta2}, "
                f"weight decay {plan.weight_decay})",
                "recipe": plan.recipe or "the CPU demo's",
                "schedule": f"{warmup} warm-up steps from {lrs['warmup_start_lr']:.3g}, {plan.lr_scheduler_type} to "
                f"{lrs['min_lr']:.3g}, {metrics['train_steps']} steps, gradient clipping {plan.max_grad_norm or 'off'}",
                "mixed precision": a.mixed_precision,
            }
            source = backbone_source(unwrapped.config)
            if source:  # continued pretraining: the card's base_model is the backbone (when it is a Hub id)
                where = source.get("name_or_path") or (f"a local folder ({Path(a.init_from).name})" if a.init_from
                                                       else "a model object")  # fmt: skip
                hyper = {"started from": f"{source['class']} {where}", **hyper}
            card = render_model_card(plan.method, a.hub_model_id or output_dir.name, unwrapped.config, hyper,
                                     a.dataset_name or self.dataset_description,
                                     base_model=source.get("name_or_path"))  # fmt: skip
            card.save(output_dir / "README.md")
            checkpointing.write_json_atomic(output_dir / checkpointing.COMPLETION_FILE, metrics)
        accelerator.wait_for_everyone()
        accelerator.end_training()
        if not main_process:
            return
        from transformers import AutoModelForPreTraining

        reloaded = AutoModelForPreTraining.from_pretrained(output_dir)
        metrics["reloaded_class"] = type(reloaded).__name__
        size = sum(p.numel() for p in unwrapped.parameters()) / 1e6
        print(
            f"\nPretrained {plan.method} ({type(unwrapped).__name__}, {size:.2f}M parameters) for "
            f"{metrics['train_steps']} steps on {self.dataset_description}: final loss {metrics['train_loss']:.4f}, "
            f"{metrics['train_images_per_second']:.0f} images/s, {elapsed:.0f}s.\n"
            + (
                f"On the picture batch: loss {metrics['picture_batch_loss']:.4f} vs "
                f"{metrics['picture_batch_mean_target_loss']:.4f} for predicting the mean target (ratio "
                f"{metrics['picture_batch_loss_ratio']:.2f}); correlation of predictions and targets "
                f"{metrics['picture_batch_correlation']:.3f}.\n"
                if "picture_batch_loss" in metrics
                else ""
            )
            + f"Saved model, image processor, model card and pictures to {output_dir.resolve()}/ and reloaded it with "
            f"AutoModelForPreTraining.from_pretrained -> {type(reloaded).__name__}.\n"
            f"Picture: {(output_dir / 'reconstruction.png').resolve()}"
        )
        if a.push_to_hub:
            url = push_folder(output_dir, a.hub_model_id, private=a.hub_private, token=a.hub_token)
            print(f"Pushed to {url}")


def _describe(dataset) -> str:
    try:
        return f"a datasets.Dataset of {len(dataset)} rows"
    except TypeError:
        return "a streamed dataset"
