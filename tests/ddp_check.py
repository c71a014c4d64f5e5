"""Runs `hf-mim pretrain` (hf_mim.cli.pretrain) under torchrun and records, per rank, a digest of the trained weights and the files
the rank wrote under the output folder.

    HF_MIM_DDP_REPORT_DIR=reports torchrun --standalone --nproc_per_node 2 tests/ddp_check.py --cpu --max_steps 3

Each rank writes REPORT_DIR/rank-N.json (outside the training output): identical digests mean the ranks stayed in
sync, and ranks other than 0 should list no written files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from hf_mim.cli import pretrain


def main() -> None:
    argv = sys.argv[1:]
    output_dir = Path(pretrain.parse_args(argv).output_dir).resolve()
    report_dir = Path(os.environ.get("HF_MIM_DDP_REPORT_DIR", "ddp_reports")).resolve()
    rank = int(os.environ.get("RANK", "0"))
    written: list[str] = []

    def audit(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
            path = Path(os.fsdecode(args[0])).resolve()
            if any(flag in mode for flag in "wax+") and output_dir in path.parents:
                written.append(str(path.relative_to(output_dir)))
        elif event in ("os.rename", "os.replace", "os.mkdir", "shutil.rmtree", "os.remove"):
            path = Path(os.fsdecode(args[0])).resolve()
            if event == "os.mkdir" and path.exists():
                return  # makedirs(exist_ok=True) on a folder rank 0 made: nothing is written
            if output_dir in path.parents or path == output_dir:
                written.append(f"{event}:{path.name}")

    sys.addaudithook(audit)
    _record_native_writers(output_dir, written)  # torch.save / safetensors write from C++, unseen by audit hooks
    pretrain.main(argv)
    digest = hashlib.sha256()
    for name, param in sorted(pretrain.LAST_MODEL.state_dict().items()):
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().numpy().tobytes())
    report_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "rank": rank,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "weights_sha256": digest.hexdigest(),
        "files_written": sorted(set(written)),
    }
    (report_dir / f"rank-{rank}.json").write_text(json.dumps(report, indent=2))


def _record_native_writers(output_dir: Path, written: list[str]) -> None:
    import safetensors.torch
    import torch

    def wrap(module, name: str, path_arg: int) -> None:
        original = getattr(module, name)

        def recording(*args, **kwargs):
            target = args[path_arg] if len(args) > path_arg else kwargs.get("f", kwargs.get("filename"))
            if isinstance(target, str | os.PathLike):
                path = Path(target).resolve()
                if output_dir in path.parents:
                    written.append(str(path.relative_to(output_dir)))
            return original(*args, **kwargs)

        setattr(module, name, recording)

    wrap(torch, "save", 1)
    wrap(safetensors.torch, "save_file", 1)


if __name__ == "__main__":
    main()
