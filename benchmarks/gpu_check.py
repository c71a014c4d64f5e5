"""The prepared GPU check: what one GPU does with hf_mim, in one run that fits in 8 minutes.

    python benchmarks/gpu_check.py                  # on a GPU: ViT-B/16, 224 px, bf16; writes benchmarks/gpu_check/
    python benchmarks/gpu_check.py --cpu            # the tiny CPU mode the test suite runs (so the script cannot rot)

Parts (each skipped, and said so, when the time budget ``--budget_s`` runs out):

1. **Training steps.** Forward + backward + AdamW of MaskFeat, SimMIM and HPM (mining on, and off = MAE) next to
   transformers' nearest classes at equal size (``ViTForMaskedImageModeling``, ``ViTMAEForPreTraining``), under
   bf16 autocast (float32 on CPU): median ms / step, images / s, peak memory, and MFU. FLOPs are counted, not estimated:
   ``torch.utils.flop_counter.FlopCounterMode`` over one forward + backward step (matmuls, convolutions and
   attention; elementwise ops, norms and the optimizer are not counted, so MFU is slightly understated), divided
   by the step time and the GPU's dense bf16 peak (``--peak_tflops``, else looked up by device name). Variants:
   eager and sdpa attention, flash_attention_2 (where the ``flash_attn`` package and the GPU allow), and
   ``torch.compile`` with sdpa.
2. **HOG share**: the time of MaskFeat's HOG targets as a share of its step.
3. **Data pipeline**: images / s of the streamed input pipeline (decode, random resized crop, flip, normalise,
   mask) per DataLoader worker on JPEG-encoded photos of ImageNet size (500 x 375), and with all workers.
4. **Checkpoint and exact resume**: a short pretraining (2 DataLoader workers), stopped and resumed from its
   checkpoint, against an uninterrupted run (final weights compared; on GPUs with deterministic algorithms on).
   Streamed resume is covered by the test suite on CPU.

Targets (a missed one says by how much, with a profiler table of where the step's time goes): MaskFeat ViT-B/16
bf16 >= 40% MFU with HOG <= 2% of the step; each method at least as fast as transformers' nearest class; >= 125
images / s per data worker. Writes ``gpu_check.json`` and ``gpu_check.md`` to ``--output_dir``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_step import SIZES, build, step_fn  # noqa: E402

from hf_mim.training.builders import compile_model  # noqa: E402  (the Pretrainer's compile: eager's random numbers)

#: The tiny CPU mode's models: small enough that the whole check runs in seconds.
SIZES = {**SIZES, "micro-32": dict(image=32, patch=8, hidden=64, layers=2, heads=2, dec_hidden=32, dec_layers=1,
                                   dec_heads=2, batch=8, cell=8)}  # fmt: skip

#: Dense bf16 tensor-core peak in TFLOP/s by device-name fragment (vendor data sheets, SXM parts without sparsity).
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H200 NVL", 835.0), ("H100", 989.0), ("H200", 989.0),
                    ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10G", 70.0))  # fmt: skip
#: Which transformers class each hf_mim model is compared with (bench_train_step's names).
REFERENCE = {
    "hf_mim MaskFeatForPreTraining": "transformers ViTForMaskedImageModeling",
    "hf_mim SimMIMForMaskedImageModeling": "transformers ViTForMaskedImageModeling",
    "hf_mim HPMForPreTraining (MAE)": "transformers ViTMAEForPreTraining",
}
METHODS = ("hf_mim MaskFeatForPreTraining", "hf_mim SimMIMForMaskedImageModeling", "hf_mim HPMForPreTraining (HPM)")
VARIANTS = ("eager", "sdpa", "flash_attention_2", "compile")
TARGETS = {"maskfeat_mfu": 0.40, "hog_share": 0.02, "data_images_per_second_per_worker": 125.0}


class Budget:
    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_time(step, device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _step_flops(model, pixel_values, extra, dtype) -> int:
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(pixel_values.device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = model(pixel_values=pixel_values, **extra).loss
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def _peak_tflops(device, given: float | None) -> float | None:
    if given or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((tflops for key, tflops in PEAK_BF16_TFLOPS if key in name), None)  # the first match is the closest


def _profile_table(step, device, rows: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(2):
            step()
        _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def check_steps(args, device, dtype, budget: Budget) -> dict:
    """Part 1 and 2: step time, images / s, memory and MFU per model and attention variant; the HOG share."""
    size = dict(SIZES[args.size])
    batch = args.batch or size["batch"]
    torch.manual_seed(0)
    entries = build(size)
    pixel_values = torch.randn(batch, 3, size["image"], size["image"], device=device)
    peak = _peak_tflops(device, args.peak_tflops)
    results, steps, flops = {}, {}, {}
    extras = {}
    for name, (model, make_extra) in entries.items():
        model.to(device).train()
        if hasattr(model, "set_training_progress"):
            model.set_training_progress(50, 100)
        extras[name] = make_extra(batch, device)
        # FLOPs once per model, with sdpa (flop_counter has no formula for flash_attn's own ops): every variant
        # computes the same step
        model.set_attn_implementation("sdpa")
        flops[name] = _step_flops(model, pixel_values, extras[name], dtype)
    for variant in VARIANTS:  # every model's plain variants first: compilation may use up the time budget
        for name, (model, _) in entries.items():
            if variant != "sdpa" and name not in METHODS and "MAE)" not in name:
                continue  # transformers' classes: sdpa only
            key, extra = f"{name} [{variant}]", extras[name]
            if budget.left() < (args.compile_reserve_s if variant == "compile" else args.reserve_s):
                results[key] = {"skipped": "time budget"}
                continue
            try:
                if variant == "flash_attention_2" and device.type != "cuda":
                    raise RuntimeError("flash attention needs a CUDA GPU")
                copy = deepcopy(model)  # one model per variant: their timings can then be interleaved
                copy.set_attn_implementation("sdpa" if variant == "compile" else variant)
                runnable = compile_model(copy, args.compile_backend) if variant == "compile" else copy
                optimizer = torch.optim.AdamW([p for p in copy.parameters() if p.requires_grad], lr=1e-4,
                                              fused=device.type == "cuda" or None)  # fmt: skip
                step = step_fn(runnable, optimizer, pixel_values, extra, dtype)
                start = time.perf_counter()
                step()  # warm-up (and compilation)
                _sync(device)
                warmup_s = time.perf_counter() - start
                memory = None
                if device.type == "cuda":  # the step's own peak, above what is resident (weights, other models)
                    resident = torch.cuda.memory_allocated()
                    torch.cuda.reset_peak_memory_stats()
                    step()
                    memory = (torch.cuda.max_memory_allocated() - resident) / 2**20
            except Exception as err:  # noqa: BLE001 - a variant this machine cannot run is reported, not fatal
                results[key] = {"unavailable": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"}
                continue
            results[key] = {"peak_memory_mib": memory, "first_step_s": warmup_s}
            steps[key] = step
    times = {key: [] for key in steps}
    for _ in range(args.repeats):  # interleaved: machine noise hits every model and variant alike
        for key, step in steps.items():
            times[key].append(_median_time(step, device, 1))
    for key, seconds in ((k, statistics.median(t)) for k, t in times.items()):
        name = key.rsplit(" [", 1)[0]
        results[key].update(ms_per_step=1e3 * seconds, images_per_second=batch / seconds,
                            tflops_per_step=flops[name] / 1e12,
                            mfu=flops[name] / seconds / (peak * 1e12) if peak else None)  # fmt: skip

    maskfeat = entries["hf_mim MaskFeatForPreTraining"][0]
    hog_seconds = _median_time(lambda: maskfeat.forward_targets(pixel_values), device, args.repeats)
    maskfeat_ms = results.get("hf_mim MaskFeatForPreTraining [sdpa]", {}).get("ms_per_step")
    hog = {
        "ms_per_batch": 1e3 * hog_seconds,
        "share_of_step": hog_seconds / (maskfeat_ms / 1e3) if maskfeat_ms else None,
    }

    comparisons, missed = {}, []
    for name, reference in REFERENCE.items():
        ours, theirs = results.get(f"{name} [sdpa]", {}), results.get(f"{reference} [sdpa]", {})
        if "ms_per_step" in ours and "ms_per_step" in theirs:
            ratio = ours["ms_per_step"] / theirs["ms_per_step"]
            comparisons[name] = {"reference": reference, "time_ratio": ratio, "met": ratio <= 1.0}
            if ratio > 1.0:
                missed.append((f"{name} [sdpa]", f"{100 * (ratio - 1):.1f}% slower than {reference}"))
    best_maskfeat = max((r.get("mfu") or 0.0 for k, r in results.items() if k.startswith(METHODS[0])), default=0.0)
    if peak and best_maskfeat < TARGETS["maskfeat_mfu"]:
        missed.append(
            (f"{METHODS[0]} [sdpa]", f"MFU {100 * best_maskfeat:.1f}% < {100 * TARGETS['maskfeat_mfu']:.0f}%")
        )
    profiled = [key for key, _ in missed if key in steps][: 1 if args.cpu else None]
    profiles = {key: _profile_table(steps[key], device) for key in profiled if budget.left() > args.reserve_s}
    del steps, entries
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"size": args.size, "batch": batch, "peak_bf16_tflops": peak, "models": results, "hog": hog,
            "comparisons": comparisons, "missed": [f"{k}: {why}" for k, why in missed],
            "profiles": profiles}  # fmt: skip


def _jpeg_photos(folder: Path, count: int, size=(500, 375)) -> Path:
    """``count`` JPEG photos of ImageNet size (random crops of scikit-image's photos) in a parquet file."""
    import datasets
    import PIL.Image

    from hf_mim.training.data import _load_photos

    rng = np.random.default_rng(0)
    rows = []
    for i, photo in enumerate(_load_photos() * (count // 17 + 1)):
        if i == count:
            break
        image = PIL.Image.fromarray(photo).resize(
            (size[0] + int(rng.integers(0, 64)), size[1] + int(rng.integers(0, 48)))
        )
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        rows.append({"bytes": buffer.getvalue(), "path": None})
    path = folder / "photos.parquet"
    features = datasets.Features({"image": datasets.Image()})
    datasets.Dataset.from_dict({"image": rows}, features=features).to_parquet(
        str(path), batch_size=max(1, count // 16)
    )
    return path


def check_data(args, budget: Budget, folder: Path) -> dict:
    """Part 3: images / s of the streamed pipeline with 1 worker and with all workers."""
    from hf_mim import MaskFeatImageProcessor
    from hf_mim.training.data import load_image_dataset
    from hf_mim.training.streaming import StreamBatches, StreamReader, prepare_stream

    path = _jpeg_photos(folder, args.data_images)
    stream, _ = load_image_dataset(data_files=[str(path)], streaming=True)
    processor = MaskFeatImageProcessor(image_size=224, patch_size=16)
    result = {"images": args.data_images, "image_size": "500x375 JPEG (q90), to 224 px"}
    for workers in sorted({1, args.data_workers}):
        if budget.left() < args.part_reserve_s:
            result[f"{workers}_workers"] = {"skipped": "time budget"}
            continue
        # no shuffle buffer: datasets pauses 5 s when a shuffled parquet stream's shards run out (a guard against
        # apache/arrow#45214), once per epoch in training but inside the timing of a short run
        reader = StreamReader(StreamBatches(prepare_stream(stream, "image", 0, 0), processor, "image", 32),
                              num_workers=workers)  # fmt: skip
        start, seen = time.perf_counter(), 0
        for batch in reader:
            if reader.epoch or seen >= args.data_images:
                break
            seen += batch["pixel_values"].shape[0]
            seconds = time.perf_counter() - start  # with the workers' start, without datasets' pause at epoch end
        result[f"{workers}_workers"] = {"images_per_second": seen / seconds,
                                        "images_per_second_per_worker": seen / seconds / workers}  # fmt: skip
    return result


def check_resume(args, budget: Budget, folder: Path, device) -> dict:
    """Part 4: a short pretraining stopped at half and resumed equals an uninterrupted one."""
    from safetensors.torch import load_file

    from hf_mim.cli import pretrain

    if budget.left() < args.part_reserve_s:
        return {"skipped": "time budget"}
    if device.type == "cuda":  # (CUBLAS_WORKSPACE_CONFIG is set in main, before cuBLAS starts)
        torch.use_deterministic_algorithms(True, warn_only=True)
    data = _jpeg_photos(folder / "resume", 64)
    preset = ["--preset", "test", "--config_overrides", "image_size=32,patch_size=16"] if args.cpu else []
    common = ["--method", "maskfeat", *preset, "--data_files", str(data), "--max_steps",
              str(args.resume_steps), "--per_device_train_batch_size", "8", "--picture_steps", "0",
              "--dataloader_num_workers", "2", "--mixed_precision", "no" if args.cpu else "bf16",
              "--attn_implementation", "eager",  # sdpa's fused GPU backward kernels are not deterministic
              *(["--cpu"] if args.cpu else [])]  # fmt: skip
    full, split = folder / "full", folder / "split"
    start = time.perf_counter()
    try:
        pretrain.main([*common, "--output_dir", str(full)])
        pretrain.main([*common, "--output_dir", str(split), "--stop_after_steps", str(args.resume_steps // 2)])
        pretrain.main([*common, "--output_dir", str(split), "--resume_from_checkpoint", "latest"])
    finally:
        torch.use_deterministic_algorithms(False)
    a, b = load_file(full / "model.safetensors"), load_file(split / "model.safetensors")
    difference = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    return {"steps": args.resume_steps, "stopped_at": args.resume_steps // 2, "bitwise_equal": difference == 0.0,
            "max_abs_weight_difference": difference, "seconds": time.perf_counter() - start}  # fmt: skip


def markdown(result: dict) -> str:
    steps = result.get("steps", {})
    lines = [f"# GPU check: {result['device']}", "",
             f"{steps.get('size')} batch {steps.get('batch')}, {result['dtype']}; torch {result['torch']}; "
             f"FLOPs counted with torch.utils.flop_counter (matmuls, convolutions, attention); peak "
             f"{steps.get('peak_bf16_tflops')} TFLOP/s.", "",
             "| model [variant] | ms / step | images / s | peak MiB | TFLOP / step | MFU |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    for key, row in steps.get("models", {}).items():
        if "ms_per_step" not in row:
            lines.append(f"| {key} | {row.get('skipped') or row.get('unavailable')} | | | | |")
            continue
        lines.append(f"| {key} | {row['ms_per_step']:.1f} | {row['images_per_second']:.1f} | "
                     f"{num(row['peak_memory_mib'], '.0f')} | {row['tflops_per_step']:.3f} | "
                     f"{num(row['mfu'] and 100 * row['mfu'], '.1f')}{'%' if row['mfu'] else ''} |")  # fmt: skip
    if "failed" in steps:
        lines += ["", f"The step check failed: {steps['failed']}"]
    if "hog" in steps:
        hog = steps["hog"]
        share = "-" if hog["share_of_step"] is None else f"{100 * hog['share_of_step']:.1f}%"
        lines += ["", f"HOG targets: {hog['ms_per_batch']:.1f} ms per batch, {share} of a MaskFeat step.", ""]
        for name, c in steps["comparisons"].items():
            lines.append(f"- {name}: {c['time_ratio']:.3f}x the time of {c['reference']}")
    data = result.get("data", {})
    lines += ["", f"Data pipeline ({data.get('image_size')}):", ""]
    for key, row in data.items():
        if key.endswith("_workers"):
            lines.append(f"- {key.replace('_', ' ')}: " + (f"{row['images_per_second']:.0f} images/s, "
                         f"{row['images_per_second_per_worker']:.0f} per worker" if "images_per_second" in row
                         else row["skipped"]))  # fmt: skip
    if "failed" in data:
        lines.append(f"- failed: {data['failed']}")
    resume = result.get("resume", {})
    lines += ["", "Checkpoint and resume: " + (resume.get("skipped") or resume.get("failed") or (
        f"{resume['steps']} steps stopped at {resume['stopped_at']} and resumed: final weights "
        + ("bitwise equal" if resume["bitwise_equal"] else f"differ by {resume['max_abs_weight_difference']:.2e}")
        + " to an uninterrupted run's."))]  # fmt: skip
    lines += ["", "Targets missed: " + ("; ".join(result["missed"]) if result["missed"] else "none")]
    for key, table in steps.get("profiles", {}).items():
        lines += ["", f"Where the time of {key} goes:", "", "```", table, "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="the tiny CPU mode (what the test suite runs)")
    parser.add_argument("--size", choices=sorted(SIZES), help="model size (default vit-b16-224; micro-32 with --cpu)")
    parser.add_argument("--batch", type=int, help="batch size (default: the size's)")
    parser.add_argument("--repeats", type=int, help="timed steps per model (default 10; 2 with --cpu)")
    parser.add_argument("--compile_backend", help="torch.compile backend (default inductor; aot_eager with --cpu)")
    parser.add_argument("--peak_tflops", type=float, help="the GPU's dense bf16 peak (default: by device name)")
    parser.add_argument("--data_images", type=int, help="JPEG photos for the data check (default 2048; 32 with --cpu)")
    parser.add_argument("--data_workers", type=int, help="workers for the all-workers data row (default: CPUs)")
    parser.add_argument("--resume_steps", type=int, help="steps of the resume check (default 20; 4 with --cpu)")
    parser.add_argument("--budget_s", type=float, default=450.0, help="time budget; later parts are skipped")
    parser.add_argument(
        "--reserve_s", type=float, help="seconds a plain step variant needs (default 20; 1 with --cpu)"
    )
    parser.add_argument("--compile_reserve_s", type=float, help="... a compiled variant (default 150; 1 with --cpu)")
    parser.add_argument("--part_reserve_s", type=float, help="... the data or resume part (default 90; 1 with --cpu)")
    parser.add_argument("--output_dir", help="default benchmarks/gpu_check (benchmarks/results with --cpu)")
    args = parser.parse_args(argv)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS for the resume check
    if not args.cpu and not torch.cuda.is_available():
        parser.error("no CUDA GPU here: run with --cpu for the tiny CPU mode")
    tiny = args.cpu
    args.size = args.size or ("micro-32" if tiny else "vit-b16-224")
    args.repeats = args.repeats or (2 if tiny else 10)
    args.compile_backend = args.compile_backend or ("aot_eager" if tiny else "inductor")
    args.data_images = args.data_images or (32 if tiny else 2048)
    args.data_workers = args.data_workers or (1 if tiny else min(16, os.cpu_count() or 1))
    args.resume_steps = args.resume_steps or (4 if tiny else 20)
    for name, default in (("reserve_s", 20.0), ("compile_reserve_s", 150.0), ("part_reserve_s", 90.0)):
        if getattr(args, name) is None:
            setattr(args, name, 1.0 if tiny else default)
    output = Path(args.output_dir or (Path(__file__).parent / ("results" if tiny else "gpu_check")))
    device = torch.device("cpu" if tiny else "cuda")
    dtype = torch.float32 if tiny else torch.bfloat16
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    budget = Budget(args.budget_s)
    result = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({platform.machine()})",
              "dtype": str(dtype).removeprefix("torch."), "torch": torch.__version__, "cpu_count": os.cpu_count(),
              "arguments": vars(args)}  # fmt: skip
    output.mkdir(parents=True, exist_ok=True)
    parts = {"steps": lambda scratch: check_steps(args, device, dtype, budget),
             "data": lambda scratch: check_data(args, budget, scratch),
             "resume": lambda scratch: check_resume(args, budget, scratch, device)}  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        for part, check in parts.items():
            try:
                result[part] = check(Path(scratch))
            except Exception as err:  # noqa: BLE001 - one broken part must not lose the others' numbers
                if tiny:
                    raise  # the test suite wants to see it
                result[part] = {"failed": f"{type(err).__name__}: {err}"}
            (output / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str))  # after every part
    steps = result["steps"] if "failed" not in result["steps"] else {"missed": [], "hog": {"share_of_step": None}}
    missed = list(steps["missed"])
    if (steps["hog"]["share_of_step"] or 0) > TARGETS["hog_share"]:
        missed.append(f"HOG {100 * steps['hog']['share_of_step']:.1f}% of the MaskFeat step > 2%")
    per_worker = result["data"].get("1_workers", {}).get("images_per_second_per_worker")
    if per_worker is not None and per_worker < TARGETS["data_images_per_second_per_worker"]:
        missed.append(f"data pipeline {per_worker:.0f} images/s per worker < 125 "
                      f"({100 * (1 - per_worker / 125):.0f}% short)")  # fmt: skip
    result["missed"] = missed if not tiny else [f"(tiny CPU mode, not a target) {m}" for m in missed]
    result["seconds"] = round(args.budget_s - budget.left(), 1)
    (output / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str))
    (output / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
