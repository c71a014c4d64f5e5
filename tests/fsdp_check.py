"""2-rank check of hf_mim's models under torch's FSDP2 (``hf_mim.training.shard_model``) on gloo / CPU.

    HF_MIM_FSDP_REPORT=report.json torchrun --standalone --nproc_per_node 2 tests/fsdp_check.py

For each method: the sharded model trains 3 steps on a global batch of 8 (4 per rank) and is compared with the
same model trained unsharded on all 8 images in each process (losses, every weight, HPM's EMA teacher); the
weight-decay groups built on the sharded model equal the unsharded ones; a distributed checkpoint
(torch.distributed.checkpoint) of step 2, loaded into a fresh sharded model and optimizer, continues to exactly the
uninterrupted step 3. Rank 0 writes the report.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from hf_mim import get_model_spec
from hf_mim.training import param_groups, shard_model

STEPS = 3


def batch(method: str, config):
    generator = torch.Generator().manual_seed(1)
    pixel_values = torch.randn(8, 3, config.image_size, config.image_size, generator=generator)
    # the same number of masked patches in every image: the mean of the per-rank losses is then the global one;
    # HPM's count is its own (the teacher still scores and updates)
    length = config.num_patches if hasattr(config, "num_patches") else (config.image_size // config.patch_size) ** 2
    count = config.num_masked if method == "hpm" else length // 2
    order = torch.argsort(torch.rand(8, length, generator=generator), dim=1)
    mask = torch.zeros(8, length, dtype=torch.bool).scatter_(1, order[:, :count], True)
    return pixel_values, {"bool_masked_pos": mask}


def optimizer_for(model):
    return torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3, betas=(0.9, 0.95))


def step(model, optimizer, pixel_values, extra):
    if hasattr(model, "set_training_progress"):
        model.set_training_progress(1, 10)
    loss = model(pixel_values=pixel_values, **extra).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()
    if hasattr(model, "update_teacher"):
        model.update_teacher()
    return loss.detach()


def no_decay_names(model, optimizer) -> list[str]:
    names = {id(p): n for n, p in model.named_parameters()}
    return sorted(names[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"])


def full_state(model) -> dict:
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))


def check(method: str, rank: int, world: int, folder: str) -> dict:
    spec = get_model_spec(method)
    config = spec.tiny_config()
    torch.manual_seed(0)
    reference = spec.pretraining_class(config).train()
    initial = copy.deepcopy(reference.state_dict())
    pixel_values, extra = batch(method, config)
    ref_optimizer = optimizer_for(reference)
    ref_losses = [step(reference, ref_optimizer, pixel_values, extra).item() for _ in range(STEPS)]

    def sharded_model():
        model = spec.pretraining_class(config).train()
        model.load_state_dict(initial)
        shard_model(model)
        return model, optimizer_for(model)

    local = slice(rank * 4, rank * 4 + 4)
    local_extra = {k: v[local] for k, v in extra.items()}
    model, optimizer = sharded_model()
    report = {"no_decay_equal": no_decay_names(model, optimizer) == no_decay_names(reference, ref_optimizer)}
    losses = []
    for index in range(STEPS):
        loss = step(model, optimizer, pixel_values[local], local_extra)
        dist.all_reduce(loss)
        losses.append(loss.item() / world)
        if index == 1:  # checkpoint after step 2
            dcp.save({"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)},
                     checkpoint_id=folder)  # fmt: skip
    final = full_state(model)
    ref_state = reference.state_dict()
    report["max_loss_diff"] = max(abs(a - b) for a, b in zip(losses, ref_losses))
    report["max_weight_diff"] = max((final[k] - ref_state[k]).abs().max().item() for k in final)
    teacher = [k for k in final if k.startswith("teacher.")]
    report["teacher_keys"] = len(teacher)
    report["max_teacher_diff"] = max(((final[k] - ref_state[k]).abs().max().item() for k in teacher), default=0.0)
    report["teacher_moved"] = any(not torch.equal(final[k], initial[k]) for k in teacher)

    resumed, resumed_optimizer = sharded_model()
    state = {"model": get_model_state_dict(resumed), "optim": get_optimizer_state_dict(resumed, resumed_optimizer)}
    dcp.load(state, checkpoint_id=folder)
    set_model_state_dict(resumed, state["model"])
    set_optimizer_state_dict(resumed, resumed_optimizer, state["optim"])
    step(resumed, resumed_optimizer, pixel_values[local], local_extra)
    after = full_state(resumed)
    report["resume_exact"] = all(torch.equal(after[k], final[k]) for k in final)
    return report


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    reports = {}
    for method in ("maskfeat", "simmim", "hpm"):
        folder = [tempfile.mkdtemp(prefix=f"fsdp-{method}-") if rank == 0 else None]
        dist.broadcast_object_list(folder)
        reports[method] = check(method, rank, world, folder[0])
    if rank == 0:
        with open(os.environ.get("HF_MIM_FSDP_REPORT", "fsdp_report.json"), "w") as f:
            json.dump({"world_size": world, "torch": torch.__version__, "methods": reports}, f, indent=2)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
