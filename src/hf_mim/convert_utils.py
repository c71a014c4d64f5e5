"""Shared pieces of the official-checkpoint converters: safe loading and strict key accounting.

Every converter reads the official file with :func:`load_official_checkpoint` (``torch.load(weights_only=True)``
with a short allow-list) and consumes its state dict through a :class:`KeyMapper`: each source key is either
taken into the hf_mim state dict or dropped with a stated reason; a key the converter expects but the file lacks,
and a key the file has but the converter does not know, are errors that name the key.
"""

from __future__ import annotations

import argparse
import collections
import os
import pickle
import re
from pathlib import Path

import torch

__all__ = [
    "OfficialCheckpointError",
    "KeyMapper",
    "heads_for",
    "load_into",
    "load_official_checkpoint",
    "map_vit_block",
]

#: What the official files need beyond tensors and plain containers, and why each is harmless:
#: - ``argparse.Namespace``: training arguments (main_pretrain.py / main_finetune.py style scripts).
#: - ``yacs.config.CfgNode``: microsoft/SimMIM's ``config`` entry (utils.py:50-55 saves the whole CfgNode). It is a
#:   ``dict`` subclass; it is read as an ``OrderedDict`` so that yacs need not be installed and no yacs code runs.
SAFE_GLOBALS = [argparse.Namespace, (collections.OrderedDict, "yacs.config.CfgNode"), set]


class OfficialCheckpointError(ValueError):
    """An official checkpoint that cannot be converted as it is (missing / unknown keys, unsafe pickle, ...)."""


def load_official_checkpoint(path: str | os.PathLike, trust_pickle: bool = False) -> dict:
    """Loads an official ``.pth`` / ``.pyth`` file on the CPU without running code from it.

    Args:
        path: The checkpoint file.
        trust_pickle: Fall back to full unpickling (``weights_only=False``, which can run arbitrary code) when
            the file needs more than the allow-list. Only for files from a source you trust.

    Raises:
        OfficialCheckpointError: The file is missing, or needs arbitrary unpickling and ``trust_pickle`` is False.
    """
    path = Path(path)
    if not path.is_file():
        raise OfficialCheckpointError(f"`checkpoint` {path} is not a file.")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not trust_pickle:
            found = re.search(r"GLOBAL (\S+)", str(err))
            reason = f"it references {found.group(1)}" if found else str(err).strip().splitlines()[-1]
            raise OfficialCheckpointError(
                f"`checkpoint` {path} needs arbitrary unpickling, which can run code hidden in the file "
                f"({reason}). Pass --trust_pickle (trust_pickle=True) only if you trust where the file comes from."
            ) from None
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict):
        raise OfficialCheckpointError(f"`checkpoint` {path} holds a {type(checkpoint).__name__}, not a dict.")
    return checkpoint


class KeyMapper:
    """Consumes a source state dict key by key (``take`` / ``drop``); :meth:`finish` fails on any leftover.

    Args:
        state: The official state dict.
        origin: How errors name the source (e.g. ``"SlowFast model_state"``).
    """

    def __init__(self, state: dict[str, torch.Tensor], origin: str):
        self.state = dict(state)
        self.origin = origin
        self.dropped: dict[str, str] = {}

    def has(self, key: str) -> bool:
        return key in self.state

    def peek(self, key: str) -> torch.Tensor:
        if key not in self.state:
            raise OfficialCheckpointError(f"{self.origin}: missing key {key!r}, which this converter needs.")
        return self.state[key]

    def take(self, key: str) -> torch.Tensor:
        """Removes and returns ``key``; a missing key is an error naming it."""
        value = self.peek(key)
        del self.state[key]
        return value

    def drop(self, pattern: str, reason: str) -> list[str]:
        """Drops every remaining key matching the regular expression ``pattern`` (full match), recording why."""
        regex = re.compile(pattern)
        matched = [key for key in self.state if regex.fullmatch(key)]
        for key in matched:
            del self.state[key]
            self.dropped[key] = reason
        return matched

    def indices(self, prefix: str) -> list[int]:
        """Sorted ``i`` of the keys ``{prefix}{i}.*`` (e.g. the block indices of ``blocks.``)."""
        regex = re.compile(re.escape(prefix) + r"(\d+)\.")
        return sorted({int(m.group(1)) for key in self.state if (m := regex.match(key))})

    def finish(self) -> None:
        """Raises if any source key was neither taken nor dropped."""
        if self.state:
            names = ", ".join(sorted(self.state)[:20]) + (" ..." if len(self.state) > 20 else "")
            raise OfficialCheckpointError(
                f"{self.origin}: {len(self.state)} unexpected key(s) this converter does not know: {names}. "
                "The file is not in the layout the official code writes for this method."
            )


def vit_block_names(style: str) -> dict[str, str]:
    """Sub-module names of one pre-norm ViT block in an official layout (``timm``: timm / SlowFast / MAE /
    SimMIM; ``mmpretrain``: mmpretrain's TransformerEncoderLayer)."""
    if style == "timm":
        return {"norm1": "norm1", "qkv": "attn.qkv", "proj": "attn.proj", "norm2": "norm2", "fc1": "mlp.fc1",
                "fc2": "mlp.fc2"}  # fmt: skip
    return {"norm1": "ln1", "qkv": "attn.qkv", "proj": "attn.proj", "norm2": "ln2", "fc1": "ffn.layers.0.0",
            "fc2": "ffn.layers.1"}  # fmt: skip


def map_vit_block(keys: KeyMapper, src: str, dst: str, style: str = "timm", qkv_bias: bool = True) -> dict:
    """One official ViT block (fused ``qkv`` as ``[q; k; v]`` rows) -> transformers' ViTLayer names."""
    names = vit_block_names(style)
    out = {}
    for ours, theirs in (("layernorm_before", "norm1"), ("layernorm_after", "norm2"), ("mlp.fc1", "fc1"),
                         ("mlp.fc2", "fc2"), ("attention.o_proj", "proj")):  # fmt: skip
        for kind in ("weight", "bias"):
            out[f"{dst}{ours}.{kind}"] = keys.take(f"{src}{names[theirs]}.{kind}")
    q, k, v = keys.take(f"{src}{names['qkv']}.weight").chunk(3, dim=0)
    out.update({f"{dst}attention.q_proj.weight": q, f"{dst}attention.k_proj.weight": k,
                f"{dst}attention.v_proj.weight": v})  # fmt: skip
    if qkv_bias:
        qb, kb, vb = keys.take(f"{src}{names['qkv']}.bias").chunk(3, dim=0)
        out.update({f"{dst}attention.q_proj.bias": qb, f"{dst}attention.k_proj.bias": kb,
                    f"{dst}attention.v_proj.bias": vb})  # fmt: skip
    return out


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], allowed_missing: tuple[str, ...] = ()) -> None:
    """Loads ``state`` into ``model``; any hf_mim key left unset (outside ``allowed_missing`` prefixes), unknown
    key or shape mismatch is an error that names it."""
    expected = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (model: {tuple(expected[k].shape)})" for k, v in state.items()
             if k in expected and expected[k].shape != v.shape]  # fmt: skip
    if wrong:
        raise OfficialCheckpointError(f"Shape mismatch after conversion: {', '.join(wrong[:10])}. Pass "
                                      "--config_overrides if the architecture was inferred wrongly.")  # fmt: skip
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(allowed_missing)]
    if missing or unexpected:
        raise OfficialCheckpointError(f"Weights do not map 1:1; unset: {missing}, unknown: {unexpected}.")


def heads_for(width: int, head_dim: int = 64) -> int:
    """The standard head count for a width (head size 64), used where the checkpoint does not record it."""
    if width % head_dim:
        raise OfficialCheckpointError(f"Cannot infer the head count of width {width} (not a multiple of "
                                      f"{head_dim}); pass num_attention_heads in --config_overrides.")  # fmt: skip
    return width // head_dim
