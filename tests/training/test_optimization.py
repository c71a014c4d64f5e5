"""Optimizer pieces (hf_mim.training.optimization): weight-decay groups, layer ids and decay, schedules, against
rules written out here."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hf_mim.training.optimization import (
    build_lr_scheduler,
    layer_decay_param_groups,
    layer_ids,
    no_weight_decay_names,
    param_groups,
    scaled_learning_rate,
)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = nn.Linear(2, 2)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 2))
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([nn.Linear(2, 2), nn.LayerNorm(2)])
        self.head = nn.Linear(2, 3)


def test_decay_groups_exempt_1d_biases_and_keywords():
    model = Tiny()
    assert set(no_weight_decay_names(model, ())) == {
        "embeddings.bias", "encoder.layers.0.bias", "encoder.layers.1.weight", "encoder.layers.1.bias", "head.bias"
    }  # fmt: skip
    assert "cls_token" in no_weight_decay_names(model, ("cls_token",))
    decay, no_decay = param_groups(model, 0.05, ("cls_token",))
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_layer_ids_and_decay_follow_depth():
    names = [n for n, _ in Tiny().named_parameters()]
    ids, depth = layer_ids(names)
    assert depth == 2 and ids["cls_token"] == 0 and ids["embeddings.weight"] == 0
    assert ids["encoder.layers.0.weight"] == 1 and ids["encoder.layers.1.weight"] == 2 and ids["head.weight"] == 3
    groups = layer_decay_param_groups(Tiny(), 1.0, 0.05, 0.5)
    rates = {round(g["lr"], 6) for g in groups}
    assert rates == {0.5**3, 0.5**2, 0.5**1, 1.0}  # lr * decay ** (L + 1 - depth)


def test_scaled_learning_rate_uses_the_methods_reference_batch():
    assert scaled_learning_rate(1e-4, 2048, "simmim") == pytest.approx(4e-4)  # / 512
    assert scaled_learning_rate(1.5e-4, 4096, "hpm") == pytest.approx(2.4e-3)  # / 256
    with pytest.raises(ValueError, match="Unknown method"):
        scaled_learning_rate(1e-4, 256, "beit")


def test_cosine_with_warmup_from_a_start_value_step_by_step():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    sched = build_lr_scheduler(opt, 10, 2, warmup_start_factor=0.1, min_lr_factor=0.2, schedule="cosine")
    got = []
    for _ in range(10):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.1, 0.55] + [0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
    assert got == pytest.approx(expected, rel=1e-6)


def test_bad_schedules_are_refused_by_name():
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="schedule"):
        build_lr_scheduler(opt, 10, schedule="linear")
    with pytest.raises(ValueError, match="warmup_steps <= total_steps"):
        build_lr_scheduler(opt, 10, 11)
