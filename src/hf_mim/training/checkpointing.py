"""Nothing is lost: a run owns its folder, checkpoints are verified before they are trusted, outputs are complete.

- :class:`RunFolder`: a lock on the output folder for the whole run (``filelock``), refusal to start over another
  run's files unless told to overwrite them, and a run fingerprint (method, config, data, seed, batch) that every
  checkpoint carries and a resume must match.
- :func:`save_checkpoint`: ``accelerator.save_state`` into a temporary folder; a ``manifest.json`` with every file's
  size and SHA-256 is written last, then the folder is renamed into place. Rotation removes only this run's
  checkpoints.
- :func:`latest_checkpoint`: the newest checkpoint that is complete and verifies; damaged ones are skipped with a
  warning naming the file.
- :func:`write_json_atomic` and :data:`COMPLETION_FILE`: final outputs end with ``all_results.json``, written last
  and atomically, which is what marks a folder as finished (``hf-mim push`` refuses a folder without it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "COMPLETION_FILE",
    "CheckpointError",
    "RunFolder",
    "checkpoint_dirs",
    "fingerprint_diff",
    "latest_checkpoint",
    "process_state_path",
    "save_checkpoint",
    "verify_checkpoint",
    "write_json_atomic",
    "write_text_atomic",
]

#: Written last by every command that produces a final output folder: its presence means the folder is complete.
COMPLETION_FILE = "all_results.json"
MANIFEST = "manifest.json"
STATE = "trainer_state.json"
#: What one run writes into its output folder (removed by ``--overwrite_output_dir``, nothing else is touched).
RUN_FILES = ("checkpoints", "pictures", "runs", "train_log.jsonl", "run.json", COMPLETION_FILE, "training_args.json",
             "config.json", "model.safetensors", "preprocessor_config.json", "README.md", "reconstruction.png")  # fmt: skip
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint is damaged, incomplete or belongs to another run."""


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to a temporary file beside ``path``, then renames it into place (a reader never sees half)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Writes valid JSON (non-finite floats become null) atomically (:func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(_json_safe(data), indent=2, allow_nan=False, default=str))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- run folder


def fingerprint_diff(saved: dict, current: dict) -> list[str]:
    """The keys whose values differ between two run fingerprints, as readable lines."""
    lines = []
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            a, b = saved.get(key), current.get(key)
            if isinstance(a, dict) and isinstance(b, dict):
                inner = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
                lines.append(f"{key}: " + ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in inner))
            else:
                lines.append(f"{key}: {a!r} -> {b!r}")
    return lines


class RunFolder:
    """The output folder of one run: locked while the run lives, never shared with another run's files.

    Args:
        path: The output folder.
        fingerprint: What identifies the run (method, config, data, seed, batch); saved in ``run.json`` and in
            every checkpoint.
        overwrite: Remove another run's files first (only the files a run writes, see ``RUN_FILES``).
        resume: The run continues from a checkpoint of this folder: its files are expected.
        is_main_process: Only the main process locks, checks and writes.
        record: The resolved run description, stored in ``run.json`` beside the fingerprint (``"run"``).
    """

    def __init__(self, path, fingerprint: dict, overwrite: bool = False, resume: bool = False,
                 is_main_process: bool = True, record: dict | None = None):  # fmt: skip
        self.path = Path(path)
        self.fingerprint, self.record = fingerprint, record
        self.overwrite, self.resume, self.main = overwrite, resume, is_main_process
        self._lock = None

    def __enter__(self) -> RunFolder:
        if not self.main:
            return self
        from filelock import FileLock, Timeout

        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path / ".hf_mim.lock"))
        try:
            self._lock.acquire(timeout=0)
        except Timeout as err:
            raise RuntimeError(
                f"Another run is writing to {self.path} (it holds {self.path / '.hf_mim.lock'}); use another "
                "--output_dir or wait for that run to end."
            ) from err
        try:
            self._claim()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.release()

    def _claim(self) -> None:
        existing = [name for name in RUN_FILES if (self.path / name).exists()]
        if existing and not self.resume:
            if not self.overwrite:
                raise RuntimeError(
                    f"--output_dir {self.path} already holds another run's files ({', '.join(existing)}). Pass "
                    "--overwrite_output_dir to replace them, --resume_from_checkpoint latest to continue that run, "
                    "or choose another --output_dir."
                )
            for name in existing:
                target = self.path / name
                shutil.rmtree(target) if target.is_dir() else target.unlink()
        run_file = self.path / "run.json"
        if self.resume and run_file.is_file():
            saved = json.loads(run_file.read_text()).get("fingerprint", {})
            diff = fingerprint_diff(saved, self.fingerprint)
            if diff:
                raise CheckpointError(
                    f"--resume_from_checkpoint: {self.path} holds a different run; what differs:\n  "
                    + "\n  ".join(diff)
                    + "\nUse the same settings, or --overwrite_output_dir to start a new run there."
                )
        write_json_atomic(run_file, {"fingerprint": self.fingerprint, **({"run": self.record} if self.record else {})})


# ------------------------------------------------------------------------------------------- checkpoints


def checkpoint_dirs(output_dir: str | os.PathLike) -> list[Path]:
    """``step-N`` folders under ``output_dir/checkpoints``, oldest first (temporary folders are ignored)."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def verify_checkpoint(path: str | os.PathLike, fingerprint: dict | None = None) -> dict:
    """Checks a checkpoint against its manifest (every file present, same size and SHA-256) and, given, the run
    fingerprint. Returns its ``trainer_state.json``.

    Raises:
        CheckpointError: naming the missing, truncated or altered file, or what differs in the fingerprint.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"Checkpoint {path} is incomplete: {MANIFEST} is missing (an interrupted save?).")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"Checkpoint {path}: {manifest_path} is not valid JSON ({err}).") from err
    for name, entry in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"Checkpoint {path} is damaged: {file} is missing.")
        if file.stat().st_size != entry["size"]:
            raise CheckpointError(
                f"Checkpoint {path} is damaged: {file} has {file.stat().st_size} bytes, {entry['size']} were saved."
            )
        if _sha256(file) != entry["sha256"]:
            raise CheckpointError(f"Checkpoint {path} is damaged: {file} differs from what was saved (SHA-256).")
    try:
        state = json.loads((path / STATE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"Checkpoint {path}: cannot read {path / STATE} ({err}).") from err
    if fingerprint is not None:
        diff = fingerprint_diff(state.get("fingerprint", {}), fingerprint)
        if diff:
            raise CheckpointError(f"Checkpoint {path} belongs to another run; what differs:\n  " + "\n  ".join(diff))
    return state


def latest_checkpoint(output_dir: str | os.PathLike, fingerprint: dict | None = None) -> Path | None:
    """The newest checkpoint that is complete and verifies; damaged ones are skipped with a warning."""
    for path in reversed(checkpoint_dirs(output_dir)):
        try:
            verify_checkpoint(path, fingerprint)
            return path
        except CheckpointError as err:
            logger.warning("Skipping checkpoint %s: %s", path.name, err)
    return None


def save_checkpoint(accelerator, output_dir: str | os.PathLike, step: int, state: dict, keep: int = 2,
                    process_state: dict | None = None) -> Path:  # fmt: skip
    """``accelerator.save_state`` into ``tmp-step-N``, then ``trainer_state.json`` and ``manifest.json`` (every
    file's size and SHA-256) last, then an atomic rename to ``step-N``.

    ``process_state`` (each process's own, e.g. where its data stream stands) is written by every process to
    ``stream_state_<rank>.json`` (:func:`process_state_path`), like accelerate's per-process RNG states.

    An interrupted save leaves at most a ``tmp-*`` folder and never touches a finished checkpoint. Rotation keeps
    the newest ``keep`` checkpoints of this run (same fingerprint) and never deletes another run's. Call on every
    process; only the main process writes its files and renames.
    """
    root = Path(output_dir) / "checkpoints"
    final = root / f"step-{step}"
    tmp = root / f"tmp-step-{step}"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
    except (OSError, RuntimeError) as err:
        raise OSError(f"Could not write checkpoint {tmp} (disk full or not writable?): {err}") from err
    if process_state is not None:
        process_state_path(tmp, accelerator.process_index).write_text(json.dumps(_json_safe(process_state), indent=2))
    # every rank writes its own RNG state into tmp: finish only once all of them are done
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE).write_text(json.dumps(_json_safe({"step": step, **state}), indent=2, allow_nan=False))
        files = {
            p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir()) if p.is_file()
        }
        (tmp / MANIFEST).write_text(json.dumps({"files": files}, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fingerprint = state.get("fingerprint")
        ours = [p for p in checkpoint_dirs(output_dir) if _fingerprint_of(p) == fingerprint]
        for old in ours[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def process_state_path(checkpoint: str | os.PathLike, process_index: int) -> Path:
    """Where a checkpoint keeps one process's own state (:func:`save_checkpoint`'s ``process_state``)."""
    return Path(checkpoint) / f"stream_state_{process_index}.json"


def _fingerprint_of(path: Path) -> dict | None:
    try:
        return json.loads((path / STATE).read_text()).get("fingerprint")
    except (OSError, json.JSONDecodeError):
        return None
