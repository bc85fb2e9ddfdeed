"""Small helpers shared by the commands: the CLI's error type and its one-line messages,
progress lines, and the file writer (:mod:`sparseforge.fileio`)."""

from __future__ import annotations

import functools
import sys
from typing import Callable

from ..api import UserError
from ..errors import InputError
from ..fileio import os_reason, write_atomic

__all__ = ["UserError", "progress", "write_atomic", "command", "cli_message", "os_message", "read_prose", "OPTION_NAMES"]

#: API arguments whose command-line option is not ``--`` + the name with '-' for '_'
OPTION_NAMES = {"input_shapes": "--input-shape", "freq_mhz": "--freq"}


def progress(msg: str) -> None:
    """One progress line on stderr (stdout stays clean for reports and JSON)."""
    print(f"[sparseforge] {msg}", file=sys.stderr, flush=True)


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
