"""What every report writer shares: the error type, objectives, metric labels and atomic
file output.

A report is built completely in memory, then written: every file goes to a temporary file
in the destination folder and is moved into place with :func:`os.replace` only once all of
them are staged, so an interrupted or failed report never leaves a half-written file, and
an existing report is either kept whole or replaced whole, file by file. New files get the
mode an ordinary ``open()`` would give them (``0o666`` less the process umask). Temporary
names and the umask come from :mod:`sparseforge.fileio`, the project's one file writer.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from sparseforge.errors import InputError
from sparseforge.fileio import OutputPathError, current_umask, os_reason, remove_stale_temps, temp_prefix

__all__ = ["ReportError", "Objective", "objectives_of", "METRICS", "metric_label", "write_files_atomic",
           "fmt_value", "slug"]


class ReportError(InputError):
    """A report cannot be built from what it was given: a missing column, an unknown
    objective direction, an output path of the wrong kind. One line naming the field, the
    value and what is allowed."""


#: Known result columns: (label for axes and tables, unit, default direction as an objective).
#: The metric names are those of the sweep store (docs/sweep.md).
METRICS: dict[str, tuple[str, str, str]] = {
    "latency_s": ("latency", "s", "min"),
    "cycles": ("cycles", "", "min"),
    "energy_j": ("energy", "J", "min"),
    "edp": ("energy-delay product", "J s", "min"),
    "throughput": ("throughput", "1/s", "max"),
    "dsp": ("DSP", "", "min"),
    "lut": ("LUT", "", "min"),
    "ff": ("FF", "", "min"),
    "bram36": ("BRAM36", "", "min"),
    "clock_mhz": ("clock", "MHz", "max"),
    "clock_mhz_used": ("clock", "MHz", "max"),
    "fmax_mhz": ("achievable clock", "MHz", "max"),
    "perf_per_dsp": ("performance per DSP", "1/(s DSP)", "max"),
    "utilisation": ("utilisation", "", "max"),
    "accuracy": ("MiniLM topic accuracy (int8)", "", "max"),
    "cosine": ("MiniLM embedding cosine to dense", "", "max"),
}

DIRECTIONS = ("min", "max")


def metric_label(name: str) -> str:
    """``"latency (s)"`` for a known metric, the column name otherwise."""
    label, unit, _ = METRICS.get(name, (name, "", "min"))
    return f"{label} ({unit})" if unit else label


@dataclass(frozen=True)
class Objective:
    """One objective of a sweep: a result column and whether smaller (``"min"``) or larger
    (``"max"``) is better."""

    name: str
    direction: str = "min"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ReportError(f"objective name = {self.name!r} is not allowed: give a result column name")
        if self.direction not in DIRECTIONS:
            raise ReportError(f"objective {self.name!r}: direction = {self.direction!r} is not allowed: "
                              "choose min or max")

    @property
    def label(self) -> str:
        return metric_label(self.name)

    @property
    def sign(self) -> float:
        """+1 for min, -1 for max: ``sign * value`` is always to be minimised."""
        return 1.0 if self.direction == "min" else -1.0

    def __str__(self) -> str:
        return f"{self.direction} {self.name}"

    @classmethod
    def of(cls, item: Any) -> "Objective":
        """An :class:`Objective` from an Objective, ``"name"`` (the metric's usual
        direction), ``"name:min"``/``"name:max"``, a ``(name, direction)`` pair or a
        mapping with ``name`` and ``direction``."""
        if isinstance(item, Objective):
            return item
        if isinstance(item, str):
            name, sep, direction = item.partition(":")
            name = name.strip()
            if not sep:
                direction = METRICS.get(name, ("", "", "min"))[2]
            return cls(name, direction.strip())
        if isinstance(item, Mapping):
            if "name" not in item:
                raise ReportError(f"objective {dict(item)!r} is not allowed: give name and direction")
            return cls(str(item["name"]), str(item.get("direction", METRICS.get(str(item["name"]), ("", "", "min"))[2])))
        if isinstance(item, (tuple, list)) and len(item) == 2:
            return cls(str(item[0]), str(item[1]))
        raise ReportError(f"objective {item!r} is not allowed: write NAME, NAME:min or NAME:max")


def objectives_of(items: Iterable[Any]) -> list[Objective]:
    """Objectives from any of the forms :meth:`Objective.of` takes; at least one, no name twice."""
    if isinstance(items, (str, Objective, Mapping)):
        items = [items]
    objs = [Objective.of(o) for o in items]
    if not objs:
        raise ReportError("objectives = [] is not allowed: give at least one objective (e.g. latency_s:min)")
    names = [o.name for o in objs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ReportError(f"objective {dup[0]!r} is given twice: give each objective once")
    return objs


def fmt_value(v: Any) -> str:
    """A table cell: 4 significant digits for floats, integers in full, text as is."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if hasattr(v, "item") and not isinstance(v, str):      # NumPy scalars
        return fmt_value(v.item())
    return str(v)


def slug(text: str) -> str:
    """A name usable as an HTML id and a file name: lower case, ``[a-z0-9-]``."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s or "x"


# ------------------------------------------------------------------------ atomic files
def write_files_atomic(files: Mapping[Path, bytes | str]) -> list[Path]:
    """Write every ``path -> content`` so that each file is either its old self or wholly
    new: all contents go to hidden temporary files beside their targets first (named as
    :mod:`sparseforge.fileio` names them, so a killed writer's leftovers are recognised and
    removed later), then each is moved into place. On any failure the temporaries are
    removed and no target is touched (unless the failure strikes between two moves). Folders
    are created as needed; files get mode ``0o666 & ~umask``. A file-system error raises
    :class:`~sparseforge.fileio.OutputPathError` naming the path. Returns the paths in order."""
    mode = 0o666 & ~current_umask()
    staged: list[tuple[str, Path]] = []
    current = Path(".")
    try:
        for path, content in files.items():
            current = path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(path.parent)
            data = content.encode() if isinstance(content, str) else bytes(content)
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), dir=path.parent)
            staged.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), mode)
                f.write(data)
        for i, (tmp, path) in enumerate(staged):
            current = path
            os.replace(tmp, path)
            staged[i] = ("", path)
    except BaseException as exc:
        for tmp, _ in staged:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputPathError(f"report file {str(current)!r} cannot be written: {os_reason(exc)}") from None
        raise
    return [p for _, p in staged]
