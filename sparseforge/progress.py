"""Progress of long work: one small protocol that every layer may use.

Long work (Verilog generation, synthesis, MoE routing extraction, training epochs, a
large SpGEMM) reports through the ``progress`` argument its caller passed, which is either

* ``None``: say nothing;
* a plain function taking one line of text (the API's documented ``progress=``): the
  work's start, then at most one line every few seconds with the share done and the time
  left (:class:`LineTask`);
* an object with a ``task(label, total, unit)`` method, such as the command line's
  :class:`sparseforge.cli.kit.Reporter`, which draws a progress bar with the time left on a
  terminal and stays quiet otherwise.

Code that does long work writes::

    with progress_task(progress, "routing MiniLM", total=n, unit="batch") as t:
        for batch in ...:
            ...
            t.advance(1, f"task {name}")

This module sits at the bottom of the package (beside :mod:`sparseforge.errors`), so the
models and the RTL generators may report without importing anything above them.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Protocol

__all__ = ["Task", "LineTask", "NullTask", "progress_task", "line"]


class Task(Protocol):
    """What :func:`progress_task` returns."""

    def advance(self, n: float = 1, note: str = "") -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> "Task": ...

    def __exit__(self, *exc: Any) -> None: ...


class NullTask:
    """A task nobody watches."""

    def advance(self, n: float = 1, note: str = "") -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "NullTask":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LineTask:
    """A task reported as lines through a one-line ``progress`` function: the label when it
    starts, then at most one line every ``every`` seconds (and one at the end) with the
    share done and, once it can be estimated, the time left."""

    def __init__(self, emit: Callable[[str], None], label: str, total: float | None, unit: str = "",
                 every: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.emit, self.label, self.total, self.unit, self.every = emit, label, total, unit, every
        self.clock = clock
        self.done = 0.0
        self.t0 = self.last = clock()
        emit(label if not total else f"{label} ({self._of(0)})")

    def advance(self, n: float = 1, note: str = "") -> None:
        self.done += n
        now = self.clock()
        finished = bool(self.total) and self.done >= self.total
        if now - self.last < self.every and not finished:
            return
        self.last = now
        self.emit(self._line(now, note))

    def _of(self, done: float) -> str:
        """``"20/100 tokens"`` (``"20 tokens"`` when the total is unknown)."""
        amount = f"{_count(done)}/{_count(self.total)}" if self.total else _count(done)
        return f"{amount} {self.unit}" if self.unit else amount

    def _line(self, now: float, note: str) -> str:
        spent = now - self.t0
        head = f"{self.label}: {note}" if note else self.label
        if not self.total:
            return f"{head} ({self._of(self.done)}, {spent:.0f} s)"
        frac = min(1.0, self.done / self.total)
        eta = f", about {spent * (1 - frac) / frac:.0f} s left" if 0.0 < frac < 1.0 else ""
        return f"{head} ({self._of(self.done)}, {100 * frac:.0f}%{eta})"

    def close(self) -> None:
        pass                    # the last line was said by the advance that finished the task

    def __enter__(self) -> "LineTask":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _count(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and float(x).is_integer() else f"{x:.1f}"


def progress_task(progress: Any, label: str, *, total: float | None = None, unit: str = "") -> Task:
    """A task of ``total`` units (``None``: unknown) reported through ``progress`` (see the
    module docstring): the reporter's own ``task`` when it has one, lines for a plain
    function, nothing for ``None``."""
    if progress is None:
        return NullTask()
    task = getattr(progress, "task", None)
    if callable(task):
        return task(label, total=total, unit=unit)
    return LineTask(progress, label, total, unit)


def line(progress: Any, msg: str) -> None:
    """One line through ``progress`` (nothing for ``None``)."""
    if progress is not None:
        progress(msg)
