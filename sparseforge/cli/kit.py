"""Small helpers shared by the commands: the CLI's error type and its one-line messages,
progress lines, and the file writer (:mod:`sparseforge.fileio`)."""

from __future__ import annotations

import functools
import sys
from typing import Callable

from ..api import UserError
from ..errors import InputError
from ..fileio import os_reason, write_atomic

__all__ = ["UserError", "progress", "reporter", "Reporter", "write_atomic", "command", "cli_message", "os_message", "read_prose", "OPTION_NAMES"]

#: API arguments whose command-line option is not ``--`` + the name with '-' for '_'
OPTION_NAMES = {"input_shapes": "--input-shape", "freq_mhz": "--freq"}


def progress(msg: str) -> None:
    """One progress line on stderr (stdout stays clean for reports and JSON)."""
    print(f"[sparseforge] {msg}", file=sys.stderr, flush=True)


class Reporter:
    """The command line's progress: one-line messages (``[sparseforge] ...`` on stderr, as
    :func:`progress`) and, for long work (:func:`sparseforge.progress.progress_task`), a tqdm
    bar with the share done and the time left, drawn only when ``bars`` (stderr is a
    terminal and no ``--json``): in a pipe, a log or a CI job long work stays quiet."""

    def __init__(self, bars: bool):
        self.bars = bars
        self._open = 0

    def __call__(self, msg: str) -> None:
        if self._open:
            from tqdm import tqdm

            tqdm.write(f"[sparseforge] {msg}", file=sys.stderr)
        else:
            progress(msg)

    def task(self, label: str, *, total: float | None = None, unit: str = ""):
        from ..progress import NullTask

        if not self.bars:
            return NullTask()
        return _Bar(self, label, total, unit)


class _Bar:
    """A tqdm bar on stderr for one task of a :class:`Reporter`."""

    def __init__(self, owner: Reporter, label: str, total: float | None, unit: str):
        from tqdm import tqdm

        self.owner = owner
        owner._open += 1
        self.bar = tqdm(total=total, desc=f"[sparseforge] {label}", unit=f" {unit}" if unit else "it",
                        file=sys.stderr, dynamic_ncols=True, leave=False, mininterval=0.5,
                        unit_scale=bool(total and total > 10_000))

    def advance(self, n: float = 1, note: str = "") -> None:
        if note:
            self.bar.set_postfix_str(note, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.owner._open -= 1

    def __enter__(self) -> "_Bar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def reporter(args=None) -> Reporter:
    """The progress reporter of a command: bars when stderr is a terminal and the command
    was not asked for ``--json``."""
    return Reporter(bars=sys.stderr.isatty() and not getattr(args, "json", False))


def read_prose(path: str, option: str) -> str:
    """The UTF-8 prose of ``option FILE`` (``--text``, ``--calib-text``): unreadable, not UTF-8
    or empty files are refused in one line naming the option and the file."""
    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise UserError(f"{option} {path!r} cannot be read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{option} {path!r} is not UTF-8 text (byte {exc.start}): give a text file") from None
    if not text.strip():
        raise UserError(f"{option} {path!r} is empty: give a file with some prose")
    return text


def cli_message(exc: InputError) -> str:
    """The one line the CLI prints for a user error: the message's first line, with the API
    argument it starts with named as its option (``dataflow 'x' ...`` -> ``--dataflow 'x' ...``)."""
    text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    param = getattr(exc, "param", None)
    if param and text.startswith(param):
        text = OPTION_NAMES.get(param, "--" + param.replace("_", "-")) + text[len(param):]
    return text


def os_message(exc: OSError) -> str:
    """One line for a file-system error: the path(s) and the operating system's reason."""
    where = " -> ".join(repr(str(f)) for f in (exc.filename, exc.filename2) if f is not None)
    return f"{where}: {os_reason(exc)}" if where else os_reason(exc)


def command(func: Callable[..., int]) -> Callable[..., int]:
    """Make ``func`` (a command: arguments in, exit status out) raise every user mistake as
    a :class:`UserError` with the CLI's one-line message, whatever layer found it."""

    @functools.wraps(func)
    def run(*args, **kwargs) -> int:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            raise UserError(cli_message(exc)) from None

    return run
