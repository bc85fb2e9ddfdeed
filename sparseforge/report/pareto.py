"""Pareto extraction over any number of objectives.

Point ``a`` *dominates* point ``b`` when ``a`` is at least as good as ``b`` in every
objective and strictly better in at least one (better is smaller for ``min``, larger for
``max``). The Pareto set is every *eligible* point that no eligible point dominates.
Eligible means: the point ran (``status == "ok"`` where the column exists), it fits the
target device (``fits`` is not False where the column exists) and every objective value is
a finite number. Points that are not eligible are never on the front and never push a
point off it. Equal points do not dominate each other, so duplicates on the front are all
kept.

The algorithm sorts the eligible points lexicographically (all objectives turned into
minimisation); a point can only be dominated by one that sorts before it, and if any
earlier point dominates it, so does some point already on the front (dominance is
transitive), so one pass that compares each point against the current front is exact. It
costs O(n * front size * objectives).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from .base import Objective, ReportError, objectives_of

__all__ = ["pareto_mask", "eligible_mask", "objective_matrix", "is_false"]


def is_false(v: Any) -> bool:
    """A stored flag that says no: False, 0 (SQLite keeps booleans as integers) or
    "false"/"no"/"0"; missing values (None, NaN) are not a no."""
    if v is None:
        return False
    if isinstance(v, (bool, np.bool_)):
        return not bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return not np.isnan(v) and v == 0
    if isinstance(v, str):
        return v.strip().lower() in ("false", "no", "0")
    return False


def eligible_mask(df: pd.DataFrame, objectives: Iterable[Any]) -> np.ndarray:
    """The points that may be on the front: ran, fit the device, finite objective values."""
    objs = objectives_of(objectives)
    ok = np.ones(len(df), dtype=bool)
    if "status" in df.columns:
        ok &= (df["status"].astype(str) == "ok").to_numpy()
    if "fits" in df.columns:
        ok &= ~df["fits"].map(is_false).to_numpy(bool)
    return ok & np.isfinite(_values(df, objs)).all(axis=1)


def _values(df: pd.DataFrame, objs: list[Objective]) -> np.ndarray:
    if not isinstance(df, pd.DataFrame):
        raise ReportError(f"results = {type(df).__name__} is not allowed: give a pandas DataFrame")
    cols = []
    for o in objs:
        if o.name not in df.columns:
            raise ReportError(f"objective {o.name!r} is not a column of the results: columns are "
                              + ", ".join(map(str, df.columns)))
        cols.append(pd.to_numeric(df[o.name], errors="coerce").to_numpy(dtype=float, na_value=np.nan))
    return np.column_stack(cols) if cols else np.zeros((len(df), 0))


def objective_matrix(df: pd.DataFrame, objectives: Iterable[Any]) -> np.ndarray:
    """The objective values as an ``(n, k)`` float array, each column turned into
    minimisation (``max`` objectives negated); non-numbers become NaN."""
    objs = objectives_of(objectives)
    return _values(df, objs) * np.array([o.sign for o in objs])


def pareto_mask(df: pd.DataFrame, objectives: Iterable[Any]) -> np.ndarray:
    """A boolean array, True for the points of ``df`` on the Pareto front of
    ``objectives`` (names, ``"name:max"`` strings, ``(name, direction)`` pairs or
    :class:`Objective`). See the module docstring for the rules."""
    objs = objectives_of(objectives)
    vals = objective_matrix(df, objs)
    mask = np.zeros(len(df), dtype=bool)
    idx = np.flatnonzero(eligible_mask(df, objs))
    if idx.size == 0:
        return mask
    v = vals[idx]
    order = np.lexsort(v.T[::-1])            # first objective is the primary key
    front = np.empty_like(v)                 # the front so far, in its first ``nf`` rows
    nf = 0
    keep: list[int] = []
    for i in order:
        p = v[i]
        f = front[:nf]
        if nf and np.any(np.all(f <= p, axis=1) & np.any(f < p, axis=1)):
            continue
        front[nf] = p
        nf += 1
        keep.append(idx[i])
    mask[keep] = True
    return mask
