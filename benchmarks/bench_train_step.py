"""Training-step throughput of hf_mim's models against transformers' own, interleaved in one process.

    python benchmarks/bench_train_step.py --size tiny-32      # ViT-Ti-like, 32 px, patch 4 (CPU)
    python benchmarks/bench_train_step.py --size vit-s16-224  # ViT-S/16 at 224 px (CPU)
    python benchmarks/bench_train_step.py --size vit-b16-224 --bf16   # GPU

A step is forward + backward + AdamW step. Every repeat times one step of each model in turn, so machine noise
hits all of them alike; the table reports medians and ratios. Pairs: MaskFeat (HOG targets computed inside the
step) and SimMIM (ViT) against transformers' ViTForMaskedImageModeling with the same encoder; HPM with mining off
(MAE) against ViTMAEForPreTraining with the same encoder and decoder; HPM with mining on against MAE, next to
their FLOP ratio (torch.utils.flop_counter over one step). Memory: peak CUDA memory on GPU; on CPU, the bytes of
tensors saved for backward (activation memory), which torch can count exactly. Writes JSON to
benchmarks/results/train_step_<size>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import ViTConfig, ViTForMaskedImageModeling, ViTMAEConfig, ViTMAEForPreTraining

from hf_mim import (
    HPMConfig,
    HPMForPreTraining,
    MaskFeatConfig,
    MaskFeatForPreTraining,
    SimMIMConfig,
    SimMIMForMaskedImageModeling,
)

SIZES = {
    "tiny-32": dict(
        image=32, patch=4, hidden=192, layers=6, heads=3, dec_hidden=128, dec_layers=2, dec_heads=4, batch=64, cell=4
    ),
    "vit-s16-224": dict(
        image=224,
        patch=16,
        hidden=384,
        layers=12,
        heads=6,
        dec_hidden=512,
        dec_layers=8,
        dec_heads=16,
        batch=16,
        cell=8,
    ),
    "vit-b16-224": dict(
        image=224,
        patch=16,
        hidden=768,
        layers=12,
        heads=12,
        dec_hidden=512,
        dec_layers=8,
        dec_heads=16,
        batch=64,
        cell=8,
    ),
}


def build(size: dict) -> dict[str, tuple[torch.nn.Module, callable]]:
    vit = dict(hidden_size=size["hidden"], num_hidden_layers=size["layers"], num_attention_heads=size["heads"],
               intermediate_size=4 * size["hidden"], image_size=size["image"], patch_size=size["patch"],
               layer_norm_eps=1e-6, qkv_bias=True)  # fmt: skip
    decoder = dict(decoder_hidden_size=size["dec_hidden"], decoder_num_hidden_layers=size["dec_layers"],
                   decoder_num_attention_heads=size["dec_heads"], decoder_intermediate_size=4 * size["dec_hidden"])  # fmt: skip
    length = (size["image"] // size["patch"]) ** 2
    models = {
        "transformers ViTForMaskedImageModeling": ViTForMaskedImageModeling(
            ViTConfig(**vit, encoder_stride=size["patch"])
        ),
        "hf_mim MaskFeatForPreTraining": MaskFeatForPreTraining(MaskFeatConfig(**vit, hog_cell_size=size["cell"])),
        "hf_mim SimMIMForMaskedImageModeling": SimMIMForMaskedImageModeling(
            SimMIMConfig(encoder_config=vit, mask_patch_size=2 * size["patch"])
        ),
        "transformers ViTMAEForPreTraining": ViTMAEForPreTraining(ViTMAEConfig(**vit, **decoder, norm_pix_loss=True)),
        "hf_mim HPMForPreTraining (MAE)": HPMForPreTraining(HPMConfig(**vit, **decoder, hard_patches_mining=False)),
        "hf_mim HPMForPreTraining (HPM)": HPMForPreTraining(HPMConfig(**vit, **decoder)),
    }
    num_masked = length - int(length * 0.25)

    def mim_inputs(batch, device):
        return {"bool_masked_pos": torch.rand(batch, length, device=device) < 0.5}

    def mae_inputs(batch, device):
        order = torch.rand(batch, length, device=device).argsort(1)
        return {
            "bool_masked_pos": torch.zeros(batch, length, dtype=torch.bool, device=device).scatter_(
                1, order[:, :num_masked], True
            )
        }

    def none(batch, device):
        return {}

    extra = {name: (mim_inputs if "Masked" in name or "MaskFeat" in name else none) for name in models}
    extra["hf_mim HPMForPreTraining (MAE)"] = mae_inputs
    return {name: (model, extra[name]) for name, model in models.items()}


def step_fn(model, optimizer, pixel_values, extra, dtype):
    def step():
        with torch.autocast(pixel_values.device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = model(pixel_values=pixel_values, **extra).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if hasattr(model, "update_teacher"):
            model.update_teacher()

    return step


def saved_activation_bytes(model, pixel_values, extra) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(pixel_values=pixel_values, **extra).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny-32", choices=sorted(SIZES))
    parser.add_argument("--batch", type=int)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output_dir", default="benchmarks/results")
    args = parser.parse_args()
    size = SIZES[args.size]
    batch = args.batch or size["batch"]
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    torch.manual_seed(0)
    entries = build(size)
    pixel_values = torch.randn(batch, 3, size["image"], size["image"], device=device)
    steps, memory, flops = {}, {}, {}
    for name, (model, make_extra) in entries.items():
        model.to(device).train()
        if hasattr(model, "set_training_progress"):
            model.set_training_progress(50, 100)  # mid-training: half the scheduled hard patches
        extra = make_extra(batch, device)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        steps[name] = step_fn(model, optimizer, pixel_values, extra, dtype)
        steps[name]()  # warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            steps[name]()
            torch.cuda.synchronize()
            memory[name] = torch.cuda.max_memory_allocated() / 2**20
        else:
            memory[name] = saved_activation_bytes(model, pixel_values, extra) / 2**20
        if "HPM" in name:
            with FlopCounterMode(display=False) as counter:
                loss = model(pixel_values=pixel_values, **extra).loss
                loss.backward()
            model.zero_grad(set_to_none=True)
            flops[name] = counter.get_total_flops()
    times: dict[str, list[float]] = {name: [] for name in entries}
    for _ in range(args.repeats):
        for name, step in steps.items():  # interleaved: noise hits every model alike
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    vit_mim, mae = median["transformers ViTForMaskedImageModeling"], median["hf_mim HPMForPreTraining (MAE)"]
    reference = {
        "hf_mim MaskFeatForPreTraining": vit_mim,
        "hf_mim SimMIMForMaskedImageModeling": vit_mim,
        "hf_mim HPMForPreTraining (MAE)": median["transformers ViTMAEForPreTraining"],
        "hf_mim HPMForPreTraining (HPM)": mae,
    }
    flop_ratio = flops["hf_mim HPMForPreTraining (HPM)"] / flops["hf_mim HPMForPreTraining (MAE)"]
    title = (
        f"{args.size}, batch {batch}, {device.type}{' bf16' if args.bf16 else ''}, {torch.get_num_threads()} threads"
    )
    print(title)
    mem_label = "peak MiB" if device.type == "cuda" else "saved-act MiB"
    print(f"{'model':40s} {'ms/step':>9s} {'img/s':>8s} {mem_label:>14s} {'vs ref':>8s}")
    rows = {}
    for name in entries:
        ratio = median[name] / reference[name] if name in reference else None
        rows[name] = {"ms_per_step": median[name] * 1e3, "images_per_second": batch / median[name],
                      "memory_mib": memory[name], "time_ratio_vs_reference": ratio}  # fmt: skip
        print(f"{name:40s} {median[name] * 1e3:9.1f} {batch / median[name]:8.1f} {memory[name]:14.1f} "
              + (f"{ratio:7.3f}x" if ratio else "       -"))  # fmt: skip
    maskfeat = entries["hf_mim MaskFeatForPreTraining"][0]
    hog_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        maskfeat.forward_targets(pixel_values)
        if device.type == "cuda":
            torch.cuda.synchronize()
        hog_times.append(time.perf_counter() - start)
    hog_share = statistics.median(hog_times) / median["hf_mim MaskFeatForPreTraining"]
    print(
        f"HOG targets: {statistics.median(hog_times) * 1e3:.1f} ms/batch = {100 * hog_share:.1f}% of a MaskFeat step"
    )
    hpm_ratio = median["hf_mim HPMForPreTraining (HPM)"] / mae
    print(
        f"HPM / MAE: time {hpm_ratio:.2f}x, FLOPs {flop_ratio:.2f}x -> time / FLOP ratio {hpm_ratio / flop_ratio:.3f}"
    )
    result = {"size": args.size, "batch": batch, "device": device.type, "bf16": args.bf16, "threads": torch.get_num_threads(),
              "machine": platform.machine(), "repeats": args.repeats, "models": rows, "hpm_flop_ratio": flop_ratio,
              "hpm_time_ratio": hpm_ratio, "hog_ms_per_batch": statistics.median(hog_times) * 1e3,
              "hog_share_of_maskfeat_step": hog_share}  # fmt: skip
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"train_step_{args.size}{'_bf16' if args.bf16 else ''}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
