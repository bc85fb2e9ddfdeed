"""The report of a sweep's run folder: load its results, axes and objectives from the store
(docs/sweep.md) and write the sweep report (:func:`~sparseforge.report.sweep.write_sweep_report`),
with the model-against-real section when the run's ``--confirm`` stored confirmations.

A run folder holds ``sweep.sqlite`` (table ``results`` and table ``meta`` with ``axes``,
``objectives`` and ``name``), read through :func:`sparseforge.sweep.load_results`. A folder
with only a ``results.parquet`` (a report's own copy of the results, e.g. mailed on its
own) works too; its axes are the columns between ``error`` and the first metric column,
as the store lays them out, and its objectives must be given.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .base import Objective, ReportError
from .sweep import write_sweep_report

__all__ = ["load_run", "write_run_report", "sweep_objective"]

STORE = "sweep.sqlite"
PARQUET = "results.parquet"


def _sweep_objectives() -> dict[str, tuple[str, str]]:
    from sparseforge.sweep import OBJECTIVES

    return OBJECTIVES


def sweep_objective(text: str) -> Objective:
    """An objective as a sweep file names it (``latency``, ``energy``, ``throughput``, ...:
    :data:`sparseforge.sweep.OBJECTIVES`) or as a results column with an optional
    direction (``latency_s``, ``clock_mhz_used:max``)."""
    if not isinstance(text, str) or not text.strip():
        raise ReportError(f"objective {text!r} is not allowed: write a sweep objective (latency, energy, ...) "
                          "or COLUMN:min|max")
    name, sep, direction = text.strip().partition(":")
    table = _sweep_objectives()
    if name in table:
        column, default = table[name]
        return Objective(column, direction.strip() if sep else default)
    return Objective.of(text.strip())


def _meta(path: Path) -> dict[str, str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise ReportError(f"{path}: cannot read its meta table ({exc}): not a sweep store") from None
    finally:
        db.close()


def _axes_by_position(df: pd.DataFrame) -> list[str]:
    cols = list(df.columns)
    if "error" in cols and "latency_s" in cols and cols.index("error") < cols.index("latency_s"):
        return cols[cols.index("error") + 1:cols.index("latency_s")]
    raise ReportError("the results do not lay out their axes between the error and latency_s columns: "
                      "give the axes")


def check_run_dir(run_dir: Path | str) -> Path:
    """``run_dir`` as a path, when it is a folder holding a sweep's store or its Parquet
    table; else :class:`ReportError` naming the folder and what is wrong. Reads nothing."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ReportError(f"run folder {str(run_dir)!r} does not exist: give the folder a sweep wrote (runs/NAME)")
    if not run_dir.is_dir():
        raise ReportError(f"run folder {str(run_dir)!r} is not a folder: give the folder a sweep wrote (runs/NAME)")
    if not (run_dir / STORE).is_file() and not (run_dir / PARQUET).is_file():
        raise ReportError(f"run folder {str(run_dir)!r} holds no {STORE} or {PARQUET}: give the folder a sweep wrote")
    return run_dir


def load_run(run_dir: Path | str) -> tuple[pd.DataFrame, list[str], list[Objective], str]:
    """The results of a run folder, its axes, its objectives (empty when the folder does
    not say) and its name."""
    run_dir = check_run_dir(run_dir)
    store = run_dir / STORE
    if store.is_file():
        from sparseforge.sweep import load_results

        df = load_results(run_dir)
        meta = _meta(store)
        try:
            axes = json.loads(meta["axes"]) if "axes" in meta else _axes_by_position(df)
            names = json.loads(meta.get("objectives", "[]"))
        except json.JSONDecodeError as exc:
            raise ReportError(f"{store}: meta table holds bad JSON ({exc.msg})") from None
        return df, list(axes), [sweep_objective(n) for n in names], str(meta.get("name", run_dir.name))
    parquet = run_dir / PARQUET
    if parquet.is_file():
        try:
            df = pd.read_parquet(parquet)
        except Exception as exc:            # pyarrow raises several types for a corrupt file
            raise ReportError(f"{parquet} cannot be read as Parquet: {str(exc).splitlines()[0]}") from None
        if "pareto" in df.columns:          # the report's own flag: recomputed, not read back
            df = df.drop(columns="pareto")
        return df, _axes_by_position(df), [], run_dir.name
    raise ReportError(f"run folder {str(run_dir)!r} holds no {STORE} or {PARQUET}: give the folder a sweep wrote")


def write_run_report(run_dir: Path | str, *, out_dir: Path | str | None = None,
                     objectives: Sequence[Any] | None = None, best: int = 3,
                     title: str | None = None) -> dict[str, Path]:
    """Write the sweep report of ``run_dir`` into ``out_dir`` (default: the run folder).
    ``objectives`` (sweep names or columns, see :func:`sweep_objective`) replace the
    run's own; returns the files written by name."""
    df, axes, objs, name = load_run(run_dir)
    if objectives:
        objs = [o if isinstance(o, Objective) else sweep_objective(str(o)) for o in objectives]
    if not objs:
        raise ReportError(f"run folder {str(run_dir)!r} names no objectives: give them, e.g. "
                          "--objective latency --objective energy")
    confirm = None
    if (Path(run_dir) / STORE).is_file():
        from sparseforge.sweep.store import load_confirm

        confirm = load_confirm(run_dir)
    return write_sweep_report(df, axes=axes, objectives=objs, out_dir=Path(out_dir) if out_dir else Path(run_dir),
                              title=title or f"sparseforge sweep: {name}", best=best, confirm=confirm)
