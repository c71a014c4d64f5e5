"""How a command ends, for every entry point (``hf-mim`` subcommands and the studies): one clear line for what a
user can fix, the traceback only when asked for (``HF_MIM_DEBUG=1``)."""

from __future__ import annotations

import sys

__all__ = ["USER_ERRORS", "run_main"]


#: What a user can fix (a bad argument, a missing file, data that cannot be used, a run that diverged): these end a
#: command with one ``hf-mim COMMAND: error: ...`` line and exit code 2; set ``HF_MIM_DEBUG=1`` for the traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError, RuntimeError)
#: Never shortened: these are bugs, not bad input.
PROGRAMMING_ERRORS = (NotImplementedError, RecursionError)


def run_main(command_main, argv: list[str] | None = None, name: str | None = None) -> int:
    """Runs a command's ``main(argv)`` as a process would: exit code 2 with one line for a user error (the traceback
    with ``HF_MIM_DEBUG=1``), 1 (with the retry command) for a failed upload, and the process group closed at the
    end of a distributed run (gloo can abort at exit otherwise)."""
    import os

    import torch

    from .hub import PushToHubError

    name = name or command_main.__module__.rsplit(".", 1)[-1]
    try:
        command_main(argv)
        return 0
    except PushToHubError as err:
        print(f"\n{err}", file=sys.stderr)
        return 1
    except USER_ERRORS as err:
        if os.environ.get("HF_MIM_DEBUG", "") not in ("", "0") or isinstance(err, PROGRAMMING_ERRORS):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"hf-mim {name}: error: {message} (HF_MIM_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
