"""Small helpers shared by the command-line front ends."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from ..errors import InputError

__all__ = ["UserError", "progress", "write_atomic", "emit_report"]


class UserError(InputError):
    """A mistake in the command line or its inputs: the CLI prints the message as one line
    (``sparseforge: error: ...``) and exits with status 2. Name the field or option, the
    value and what is allowed."""


def progress(msg: str) -> None:
    """One progress line on stderr (stdout stays clean for reports and JSON)."""
    print(f"[sparseforge] {msg}", file=sys.stderr, flush=True)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, so a failure
    never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def emit_report(text: str, output: str | None) -> int:
    """Print a command's report, or write it atomically to ``output`` (``--output``);
    returns the command's exit status (0)."""
    if output:
        write_atomic(Path(output), text + "\n")
        progress(f"wrote {output}")
    else:
        print(text)
    return 0
