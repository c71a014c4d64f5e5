"""``hf-mim pretrain``: pretrain MaskFeat, SimMIM or HPM with accelerate.

    hf-mim pretrain                                              # the demo: small MaskFeat ViT, embedded photos
    accelerate launch -m hf_mim pretrain --method simmim --preset vit-base --dataset_name <hub id>
    torchrun --standalone --nproc_per_node 2 -m hf_mim pretrain --cpu ...   # 2-rank DDP on CPU (gloo)

Data: --dataset_name (+ --dataset_config, --streaming), --train_dir (imagefolder) or --data_files (parquet /
arrow); none of them means random crops of the photos that ship with scikit-image. Checkpoints go to
OUTPUT_DIR/checkpoints/step-N (complete or absent, never half-written); --resume_from_checkpoint latest continues
with the same data order, schedule and RNG state. At the end the model, image processor, model card, training
arguments and metrics are saved to OUTPUT_DIR (and pushed with --push_to_hub).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DataLoaderConfiguration, DistributedType, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoModelForPreTraining

from .. import checkpointing, recipes, training
from ..config_overrides import parse_config_overrides
from ..evaluation import trivial_baseline
from ..export import bundle_remote_code
from ..hub import push_folder, render_model_card
from ..optimization import SCHEDULES, build_lr_scheduler, param_groups
from ..registry import get_model_spec, list_models
from . import run_main
from .recipe_args import (
    DEMO_PRESETS,
    RECIPE_CONFIG_KEYS,
    dry_run_report,
    learning_rates,
    no_decay_keywords,
    recipe_of,
    resolve_recipe_args,
    schedule_steps,
)

LAST_MODEL = None  # the trained (unwrapped) model of the last main() call, for in-process checks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="hf-mim pretrain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--method", choices=list_models(), help="default: the recipe's method, else maskfeat")
    model = p.add_argument_group("model")
    model.add_argument("--preset", help="named config (default: the method's small demo config)")
    model.add_argument("--config_file", help="JSON file of config arguments")
    model.add_argument("--config_overrides", default="", help='e.g. "image_size=64,drop_path_rate=0.1"')
    model.add_argument("--model_name_or_path", help="continue pretraining from a checkpoint (local or Hub id)")
    data = p.add_argument_group("data")
    data.add_argument("--dataset_name")
    data.add_argument("--dataset_config")
    data.add_argument("--streaming", action="store_true", help="stream the dataset instead of downloading it")
    data.add_argument("--train_dir", help="an imagefolder directory")
    data.add_argument("--data_files", nargs="+", help="parquet / arrow files")
    data.add_argument("--image_column", default="image")
    data.add_argument("--split", default="train")
    data.add_argument("--max_train_samples", type=int)
    data.add_argument("--default_data_size", type=int, default=2048, help="crops in the embedded default data")
    data.add_argument("--dataloader_num_workers", type=int, default=0)
    data.add_argument("--skip_corrupt_images", action="store_true", help="skip (and count) undecodable rows")
    opt = p.add_argument_group("optimisation (unset values come from the recipe, else the CPU demo's defaults)")
    opt.add_argument("--recipe", choices=recipes.list_recipes("pretrain"),
                     help="a paper recipe (hf_mim.recipes); default with --preset/--config_file/--model_name_or_path: "
                          "the method's main recipe")  # fmt: skip
    opt.add_argument("--dry_run", action="store_true", help="print the resolved hyper-parameters as JSON and exit")
    opt.add_argument("--per_device_train_batch_size", type=int, help="default: recipe batch / processes, demo 32")
    opt.add_argument("--gradient_accumulation_steps", type=int, default=1)
    opt.add_argument("--num_train_epochs", type=float)
    opt.add_argument("--max_steps", type=int,
                     help="overrides the epochs when > 0 (the schedule keeps its shape); demo default 400")  # fmt: skip
    opt.add_argument("--base_learning_rate", type=float, help="scaled by total batch / 256 (/ 512 for SimMIM)")
    opt.add_argument("--learning_rate", type=float, help="absolute peak learning rate (no scaling)")
    opt.add_argument("--weight_decay", type=float)
    opt.add_argument("--adam_beta1", type=float)
    opt.add_argument("--adam_beta2", type=float)
    opt.add_argument("--adam_epsilon", type=float)
    opt.add_argument("--lr_scheduler_type", choices=SCHEDULES)
    opt.add_argument("--warmup_epochs", type=float, help="warm-up length in epochs (recipes)")
    opt.add_argument("--warmup_ratio", type=float, help="warm-up share of the steps (the demo's 0.05)")
    opt.add_argument("--warmup_lr", type=float, help="absolute learning rate at the start of the warm-up")
    opt.add_argument("--min_lr", type=float, help="absolute learning rate at the end of the cosine")
    opt.add_argument("--lr_milestones", type=float, nargs="+", help="multistep: epochs where the LR drops")
    opt.add_argument("--lr_gamma", type=float, help="multistep: factor at each milestone")
    opt.add_argument("--max_grad_norm", type=float, help="0 disables clipping")
    opt.add_argument("--mixed_precision", default="no", choices=["no", "bf16", "fp16"])
    opt.add_argument("--gradient_checkpointing", action="store_true")
    opt.add_argument("--torch_compile", action="store_true")
    opt.add_argument("--seed", type=int, default=42)
    opt.add_argument("--cpu", action="store_true", help="train on CPU even when a GPU is present")
    opt.add_argument("--fsdp", action="store_true",
                     help="shard with accelerate's FSDP2 plugin (GPUs; the blocks of _no_split_modules are the units)")  # fmt: skip
    out = p.add_argument_group("output")
    out.add_argument("--output_dir", help="default: outputs/<method>")
    out.add_argument("--checkpointing_steps", type=int, default=0, help="save a checkpoint every N steps (0: never)")
    out.add_argument("--checkpoints_total_limit", type=int, default=2)
    out.add_argument("--resume_from_checkpoint", help='"latest" or a checkpoint folder')
    out.add_argument("--overwrite_output_dir", action="store_true", help="replace another run's files in --output_dir")
    out.add_argument("--skip_nonfinite_loss", action="store_true",
                     help="skip batches whose loss is NaN/inf (default: stop at the first one)")  # fmt: skip
    out.add_argument(
        "--stop_after_steps", type=int, help="stop (with a checkpoint) after this step, e.g. before a time limit"
    )
    out.add_argument("--logging_steps", type=int, default=10)
    out.add_argument(
        "--picture_steps", type=int, default=100, help="write a picture grid every N steps (0: only at the end)"
    )
    out.add_argument("--report_to", default="none", choices=["none", "tensorboard"])
    out.add_argument("--push_to_hub", action="store_true")
    out.add_argument("--hub_model_id")
    out.add_argument("--hub_private", action="store_true")
    out.add_argument("--hub_token")
    args = p.parse_args(argv)
    if args.push_to_hub and not args.hub_model_id:
        p.error("--push_to_hub needs --hub_model_id")
    if sum(bool(x) for x in (args.dataset_name, args.train_dir, args.data_files)) > 1:
        p.error("give at most one of --dataset_name, --train_dir, --data_files")
    if sum(bool(x) for x in (args.preset, args.config_file, args.model_name_or_path)) > 1:
        p.error("give at most one of --preset, --config_file, --model_name_or_path")
    try:
        resolve_recipe_args(args)
    except ValueError as err:
        p.error(str(err))
    args.output_dir = args.output_dir or os.path.join("outputs", args.method)
    validate_args(p, args)
    return args


#: argument -> (lowest allowed value, whether the lowest value itself is allowed)
_MINIMA = {"per_device_train_batch_size": (1, True), "gradient_accumulation_steps": (1, True),
           "logging_steps": (1, True), "checkpointing_steps": (0, True), "checkpoints_total_limit": (0, True),
           "picture_steps": (0, True), "dataloader_num_workers": (0, True), "default_data_size": (1, True),
           "max_train_samples": (1, True), "stop_after_steps": (1, True), "max_grad_norm": (0.0, True),
           "weight_decay": (0.0, True), "learning_rate": (0.0, False), "base_learning_rate": (0.0, False),
           "max_steps": (0, True), "num_train_epochs": (0.0, True)}  # fmt: skip


def validate_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every numeric argument in its range, before any work starts (``parser.error`` names it)."""
    for name, (low, inclusive) in _MINIMA.items():
        value = getattr(args, name)
        if value is None:
            continue
        if (value < low) if inclusive else (value <= low):
            parser.error(f"--{name} must be {'>=' if inclusive else '>'} {low}, got {value}")
    if args.max_steps == 0 and args.num_train_epochs <= 0:
        parser.error("nothing to train: give --max_steps > 0 or --num_train_epochs > 0")
    for name in ("adam_beta1", "adam_beta2"):
        if not 0.0 <= getattr(args, name) < 1.0:
            parser.error(f"--{name} must be in [0, 1), got {getattr(args, name)}")
    if args.warmup_ratio is not None and not 0.0 <= args.warmup_ratio < 1.0:
        parser.error(f"--warmup_ratio must be in [0, 1), got {args.warmup_ratio}")
    if args.warmup_epochs is not None and not 0.0 <= args.warmup_epochs <= max(args.num_train_epochs, 0.0):
        parser.error(
            f"--warmup_epochs must be in [0, --num_train_epochs={args.num_train_epochs}], got {args.warmup_epochs}"
        )
    if args.adam_epsilon <= 0:
        parser.error(f"--adam_epsilon must be > 0, got {args.adam_epsilon}")
    for name in ("warmup_lr", "min_lr"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            parser.error(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.lr_scheduler_type == "multistep" and not args.lr_milestones:
        parser.error("--lr_scheduler_type multistep needs --lr_milestones (epochs)")
    if not 0.0 < args.lr_gamma <= 1.0:
        parser.error(f"--lr_gamma must be in (0, 1], got {args.lr_gamma}")
    if args.fsdp and (args.cpu or not torch.cuda.is_available()):
        parser.error("--fsdp needs GPUs: accelerate enables FSDP only on GPU-like devices and would silently run "
                     "DDP on CPU; leave --fsdp out on CPU (DDP), or shard with hf_mim.training.shard_model yourself")  # fmt: skip
    if args.skip_corrupt_images and args.streaming:
        parser.error("--skip_corrupt_images needs a map-style dataset: it checks every row before training, which "
                     "a stream cannot do (leave out --streaming)")  # fmt: skip
    if args.streaming and not args.max_steps:
        parser.error("--streaming needs --max_steps > 0 (the length of a stream is unknown)")


def build_model(args):
    """The model, new from a preset / config file (+ typed overrides) or continued from a checkpoint of the same
    method (checked before any weights are read)."""
    overrides = parse_config_overrides(args.config_overrides, args.method)
    if args.model_name_or_path:
        from transformers import AutoConfig

        found = AutoConfig.from_pretrained(args.model_name_or_path).model_type
        if found != args.method:
            raise ValueError(f"--model_name_or_path {args.model_name_or_path} is a {found!r} checkpoint, but "
                             f"--method is {args.method!r}; pass --method {found} or another checkpoint.")  # fmt: skip
        if overrides:
            raise ValueError("--config_overrides cannot change a checkpoint's architecture (--model_name_or_path).")
        return training.build_model(args.method, model_name_or_path=args.model_name_or_path)
    recipe = recipe_of(args)
    # the recipe's loss and mask settings, where --config_file and --config_overrides are silent
    if recipe is not None:
        written = set(json.loads(Path(args.config_file).read_text())) if args.config_file else set()
        keys = [k for k in RECIPE_CONFIG_KEYS if k in recipe.values and k not in written]
        overrides = {**{k: recipe[k] for k in keys}, **overrides}
    preset = args.preset or (None if args.config_file else DEMO_PRESETS[args.method])
    config = training.build_config(args.method, preset=preset, config_file=args.config_file, **overrides)
    return training.build_model(args.method, config)


def build_processor(args, config):
    """The method's image processor for ``config``; a recipe sets the crop scale of its official pipeline."""
    recipe = recipe_of(args)
    overrides = {"crop_scale": recipe["crop_scale"]} if recipe is not None and "crop_scale" in recipe.values else {}
    return training.build_image_processor(args.method, config, **overrides)


def build_data(args, processor, accelerator):
    """Dataset (checked: not empty, decodable images), the picture batch's images and the DataLoader."""
    dataset, description = training.load_image_dataset(
        dataset_name=args.dataset_name, dataset_config=args.dataset_config, train_dir=args.train_dir,
        data_files=args.data_files, split=args.split, streaming=args.streaming, image_column=args.image_column,
        max_samples=args.max_train_samples, default_data_size=args.default_data_size,
    )  # fmt: skip
    if args.skip_corrupt_images and not args.streaming:
        dataset, skipped = training.drop_corrupt_images(dataset, args.image_column)
        if skipped:
            accelerator.print(f"Skipped {len(skipped)} undecodable image(s) (rows {skipped[:10]}...).")
    picture_images = [row[args.image_column] for _, row in zip(range(4), iter(dataset))]
    batch = args.per_device_train_batch_size
    if args.streaming:
        transform = processor.as_transform(image_column=args.image_column)
        dataset = dataset.map(transform, batched=True, batch_size=batch, remove_columns=dataset.column_names)
        loader = DataLoader(dataset, batch_size=batch, num_workers=args.dataloader_num_workers)
        return dataset, loader, description, picture_images
    needed = batch * accelerator.num_processes
    if len(dataset) < needed:
        raise ValueError(f"The dataset ({description}) has {len(dataset)} rows, fewer than one batch "
                         f"(--per_device_train_batch_size {batch} x {accelerator.num_processes} processes = {needed}); "
                         "lower the batch size or add data.")  # fmt: skip
    dataset = training.SeededTransformDataset(dataset, processor, args.image_column, seed=args.seed,
                                              description=description)  # fmt: skip
    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=args.dataloader_num_workers,
        generator=torch.Generator().manual_seed(args.seed),
    )  # keeps the global RNG out of the order
    return dataset, loader, description, picture_images


def run_fingerprint(args, config, description: str, num_processes: int) -> dict:
    """What a resumed run must share with the run that wrote the checkpoint."""
    skip = {"transformers_version", "architectures", "dtype", "output_hidden_states", "return_dict", "id2label",
            "label2id"}  # fmt: skip
    fingerprint = {"method": args.method, "config": {k: v for k, v in config.to_dict().items() if k not in skip},
            "data": description, "seed": args.seed, "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps, "num_processes": num_processes}  # fmt: skip
    return json.loads(json.dumps(fingerprint, default=str))  # as it reads back from run.json and checkpoints


def find_resume_checkpoint(args, output_dir: Path, fingerprint: dict) -> Path | None:
    if not args.resume_from_checkpoint:
        return None
    if args.resume_from_checkpoint == "latest":
        return checkpointing.latest_checkpoint(output_dir, fingerprint)
    path = Path(args.resume_from_checkpoint)
    checkpointing.verify_checkpoint(path, fingerprint)  # an explicit damaged path is an error naming the file
    return path


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.dry_run:  # what would run, resolved; nothing is trained or written
        model = build_model(args)
        report = dry_run_report(
            args, model, build_processor(args, model.config), int(os.environ.get("WORLD_SIZE", "1"))
        )
        print(json.dumps(report, indent=2))
        return report
    if not torch.distributed.is_initialized():
        # main() may run several times in one process (tests, notebooks): accelerate's state is a singleton
        AcceleratorState._reset_state(reset_partial_state=True)
    fsdp_plugin = None
    if args.fsdp:
        from accelerate.utils import FullyShardedDataParallelPlugin

        spec = get_model_spec(args.method)
        fsdp_plugin = FullyShardedDataParallelPlugin(
            fsdp_version=2, auto_wrap_policy="transformer_based_wrap", state_dict_type="SHARDED_STATE_DICT",
            transformer_cls_names_to_wrap=list(spec.pretraining_class._no_split_modules),
        )  # fmt: skip
    accelerator = Accelerator(
        fsdp_plugin=fsdp_plugin,
        gradient_accumulation_steps=args.gradient_accumulation_steps, mixed_precision=args.mixed_precision,
        cpu=args.cpu, log_with=None if args.report_to == "none" else args.report_to, project_dir=args.output_dir,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )  # fmt: skip
    set_seed(args.seed)
    main_process = accelerator.is_main_process
    output_dir = Path(args.output_dir)

    # -- model and data ------------------------------------------------------------------------------------
    model = build_model(args)
    config = model.config
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    processor = build_processor(args, config)
    dataset, loader, dataset_description, picture_images = build_data(args, processor, accelerator)
    fingerprint = run_fingerprint(args, config, dataset_description, accelerator.num_processes)
    run_folder = checkpointing.RunFolder(output_dir, fingerprint, overwrite=args.overwrite_output_dir,
                                         resume=bool(args.resume_from_checkpoint), is_main_process=main_process)  # fmt: skip
    with run_folder:
        accelerator.wait_for_everyone()
        return train(args, accelerator, model, processor, dataset, loader, dataset_description, picture_images,
                     fingerprint)  # fmt: skip


def train(args, accelerator, model, processor, dataset, loader, dataset_description, picture_images, fingerprint):
    main_process = accelerator.is_main_process
    output_dir = Path(args.output_dir)
    total_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * accelerator.num_processes
    lrs = learning_rates(args, total_batch)
    learning_rate = lrs["learning_rate"]
    optimizer = torch.optim.AdamW(
        param_groups(model, args.weight_decay, no_decay_keywords(args)), lr=learning_rate,
        betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
    )  # fmt: skip
    if args.torch_compile:
        model = torch.compile(model)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = None if args.streaming else max(1, len(loader) // args.gradient_accumulation_steps)
    max_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    num_epochs = max_steps / steps_per_epoch if steps_per_epoch else args.num_train_epochs
    warmup, milestones = schedule_steps(args, max_steps)
    # accelerate steps a prepared scheduler once per process, hence the factor
    n = accelerator.num_processes
    scheduler = build_lr_scheduler(
        optimizer, max_steps * n, warmup * n, warmup_start_factor=min(1.0, lrs["warmup_start_lr"] / learning_rate),
        min_lr_factor=min(1.0, lrs["min_lr"] / learning_rate), schedule=args.lr_scheduler_type,
        milestones=[m * n for m in milestones], gamma=args.lr_gamma,
    )  # fmt: skip
    scheduler = accelerator.prepare(scheduler)
    global LAST_MODEL
    unwrapped = LAST_MODEL = accelerator.unwrap_model(model)
    hpm_model = unwrapped if hasattr(unwrapped, "update_teacher") else None

    # -- resume --------------------------------------------------------------------------------------------
    global_step, last_loss, skipped_batches = 0, float("nan"), 0
    path = find_resume_checkpoint(args, output_dir, fingerprint)
    if args.resume_from_checkpoint and path is None:
        accelerator.print(f"No complete checkpoint in {output_dir / 'checkpoints'}; starting from scratch.")
    if path is not None:
        accelerator.load_state(str(path))
        state = json.loads((path / "trainer_state.json").read_text())
        global_step, skipped_batches = state["step"], state.get("skipped_batches", 0)
        last_loss = state.get("loss") if state.get("loss") is not None else float("nan")
        accelerator.print(f"Resumed from {path} at step {global_step}.")
        if args.streaming:
            accelerator.print("Note: a streamed dataset restarts from its beginning on resume (model, optimizer, "
                              "schedule and RNG resume exactly; the stream position does not).")  # fmt: skip

    if args.report_to != "none":
        accelerator.init_trackers(
            "pretrain", config={k: v for k, v in vars(args).items() if isinstance(v, int | float | str | bool)}
        )
    # a fixed picture batch: deterministic preprocessing and masks, independent of the training RNG
    picture_batch = processor(picture_images, augment=False, seed=0) if main_process else None

    log_path = output_dir / "train_log.jsonl"
    if main_process:
        training.truncate_log(log_path, global_step)  # a killed run may have logged past its last checkpoint
    progress = tqdm(total=max_steps, initial=global_step, disable=not main_process, desc=f"pretrain {args.method}")
    model.train()
    start_time, images_seen = time.perf_counter(), 0
    epoch = global_step // steps_per_epoch if steps_per_epoch else 0
    stop_at = min(max_steps, args.stop_after_steps or max_steps)

    def checkpoint(step: int) -> None:
        state = {"epoch": epoch, "loss": last_loss, "skipped_batches": skipped_batches, "fingerprint": fingerprint}
        checkpointing.save_checkpoint(accelerator, output_dir, step, state, keep=args.checkpoints_total_limit)

    while global_step < stop_at:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        batches = loader
        if steps_per_epoch and global_step > epoch * steps_per_epoch:  # resuming inside an epoch
            batches = accelerator.skip_first_batches(
                loader, (global_step - epoch * steps_per_epoch) * args.gradient_accumulation_steps
            )
        for batch in batches:
            if hpm_model is not None:
                # streams have no epochs: progress is the share of the optimizer steps, on the nominal epoch scale
                done = global_step / steps_per_epoch if steps_per_epoch else global_step / max_steps * num_epochs
                hpm_model.set_training_progress(min(done, num_epochs), num_epochs)
            with accelerator.accumulate(model):
                outputs = model(**batch)
                # every process must take the same branch: decide on the gathered losses (logged below too)
                losses = accelerator.gather(outputs.loss.detach().float()[None])
                if not bool(losses.isfinite().all()):
                    optimizer.zero_grad()
                    if not args.skip_nonfinite_loss:
                        raise FloatingPointError(
                            f"Non-finite loss at step {global_step + 1}: training stopped before the update, so the "
                            "last checkpoint and the weights stay finite. Lower the learning rate (or use bf16 "
                            "instead of fp16), or pass --skip_nonfinite_loss to skip such batches."
                        )
                    skipped_batches += 1
                    accelerator.print(f"Skipped a batch with a non-finite loss at step {global_step + 1}.")
                    continue
                accelerator.backward(outputs.loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            images_seen += batch["pixel_values"].shape[0] * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            if hpm_model is not None:
                hpm_model.update_teacher()
            last_loss = losses.mean().item()
            lr = scheduler.get_last_lr()[0]
            speed = images_seen / (time.perf_counter() - start_time)
            progress.update(1)
            progress.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}", img_s=f"{speed:.0f}")
            if main_process:
                with log_path.open("a") as f:
                    f.write(json.dumps({"step": global_step, "loss": last_loss, "lr": lr}) + "\n")
            if global_step % args.logging_steps == 0 and args.report_to != "none":
                accelerator.log(
                    {"train/loss": last_loss, "train/lr": lr, "train/images_per_second": speed}, step=global_step
                )
            if args.picture_steps and global_step % args.picture_steps == 0:
                _write_picture(accelerator, unwrapped, picture_batch, output_dir, global_step)
            if args.checkpointing_steps and global_step % args.checkpointing_steps == 0:
                checkpoint(global_step)
            if global_step >= stop_at:
                break
        epoch += 1
    progress.close()
    elapsed = time.perf_counter() - start_time

    if global_step < max_steps:  # stopped early on purpose: leave a checkpoint to resume from
        if not (args.checkpointing_steps and global_step % args.checkpointing_steps == 0):
            checkpoint(global_step)
        accelerator.print(f"Stopped at step {global_step}/{max_steps}; resume with --resume_from_checkpoint latest.")
        accelerator.end_training()
        return {"step": global_step, "loss": last_loss}

    # -- final outputs: everything first, all_results.json last (it marks the folder complete) ---------------
    metrics = {
        "train_loss": last_loss, "train_steps": global_step, "train_runtime_s": round(elapsed, 2),
        "train_images_per_second": round(images_seen / max(elapsed, 1e-9), 2), "total_batch_size": total_batch,
        "learning_rate": learning_rate, "skipped_nonfinite_batches": skipped_batches,
    }  # fmt: skip
    if main_process:
        (output_dir / checkpointing.COMPLETION_FILE).unlink(missing_ok=True)
    accelerator.wait_for_everyone()
    _write_picture(accelerator, unwrapped, picture_batch, output_dir, None)
    if main_process and accelerator.distributed_type != DistributedType.FSDP:
        # what the model learned beyond predicting the mean target, on the fixed picture batch
        device = next(unwrapped.parameters()).device
        with torch.random.fork_rng(devices=[]):
            baseline = trivial_baseline(unwrapped, {k: v.to(device) for k, v in picture_batch.items()})
        metrics.update({f"picture_batch_{k}": round(v, 6) for k, v in baseline.items()})
    state_dict = accelerator.get_state_dict(model)  # a collective under FSDP: every process takes part
    if main_process:
        unwrapped.save_pretrained(output_dir, state_dict=state_dict, safe_serialization=True)
        processor.save_pretrained(output_dir)
        # the modeling code travels with the weights: loadable with trust_remote_code where hf_mim is not installed
        bundle_remote_code(unwrapped, output_dir)
        bundle_remote_code(processor, output_dir)
        checkpointing.write_json_atomic(output_dir / "training_args.json", vars(args))
        hyper = {
            "total batch size": total_batch,
            "learning rate": f"{learning_rate:.3g} (AdamW, betas {args.adam_beta1}/{args.adam_beta2}, weight decay {args.weight_decay})",
            "recipe": args.recipe or "the CPU demo's",
            "schedule": f"{warmup} warm-up steps from {lrs['warmup_start_lr']:.3g}, {args.lr_scheduler_type} to "
            f"{lrs['min_lr']:.3g}, {global_step} steps, gradient clipping {args.max_grad_norm or 'off'}",
            "mixed precision": args.mixed_precision,
        }
        card = render_model_card(args.method, args.hub_model_id or output_dir.name, unwrapped.config, hyper,
                                 args.dataset_name or dataset_description)  # fmt: skip
        card.save(output_dir / "README.md")
        checkpointing.write_json_atomic(output_dir / checkpointing.COMPLETION_FILE, metrics)
    accelerator.wait_for_everyone()
    accelerator.end_training()

    if main_process:
        reloaded = AutoModelForPreTraining.from_pretrained(output_dir)
        metrics["reloaded_class"] = type(reloaded).__name__
        print(
            f"\nPretrained {args.method} ({type(unwrapped).__name__}, {sum(p.numel() for p in unwrapped.parameters()) / 1e6:.2f}M "
            f"parameters) for {global_step} steps on {dataset_description}: final loss {last_loss:.4f}, "
            f"{metrics['train_images_per_second']:.0f} images/s, {elapsed:.0f}s.\n"
            + (
                f"On the picture batch: loss {metrics['picture_batch_loss']:.4f} vs {metrics['picture_batch_mean_target_loss']:.4f} "
                f"for predicting the mean target (ratio {metrics['picture_batch_loss_ratio']:.2f}); correlation of "
                f"predictions and targets {metrics['picture_batch_correlation']:.3f}.\n"
                if "picture_batch_loss" in metrics
                else ""
            )
            + f"Saved model, image processor, model card and pictures to {output_dir.resolve()}/ and reloaded it with "
            f"AutoModelForPreTraining.from_pretrained -> {type(reloaded).__name__}.\n"
            f"Picture: {(output_dir / 'reconstruction.png').resolve()}"
        )
        if args.push_to_hub:
            url = push_folder(output_dir, args.hub_model_id, private=args.hub_private, token=args.hub_token)
            print(f"Pushed to {url}")
    return metrics


def _write_picture(accelerator, model, batch, output_dir: Path, step: int | None) -> None:
    # under FSDP a forward is a collective: one process alone would wait forever, so sharded runs draw no pictures
    if not accelerator.is_main_process or accelerator.distributed_type == DistributedType.FSDP:
        return
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    with torch.random.fork_rng(devices=[]):  # pictures must not shift the training RNG (exact resume)
        picture = training.pretraining_picture(model, batch)
    if step is None:
        picture.save(output_dir / "reconstruction.png")
        return
    folder = output_dir / "pictures"
    folder.mkdir(exist_ok=True)
    picture.save(folder / f"step-{step}.png")
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            import numpy as np

            tracker.writer.add_image("pictures", np.asarray(picture), step, dataformats="HWC")


def run(argv: list[str] | None = None) -> int:
    """Console entry point (exit code 1 for a failed upload)."""
    return run_main(main, argv)
