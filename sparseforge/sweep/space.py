"""The points of a sweep: a full grid, distinct random points, or NSGA-II (Optuna) trials.

A point is a dict axis name -> value in the sweep file's axis order, linked axes resolved.
The grid runs through the free axes with the first declared axis slowest (like nested
loops written in file order). Random points are distinct grid points drawn with NumPy's
``default_rng(seed)``. NSGA-II asks Optuna's ``NSGAIISampler(seed=...)`` for one generation
at a time (ask/tell) over the same axis values; the driver evaluates a generation with the
same executor and store as a grid, then tells the sampler.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .file import OBJECTIVES, Sweep

__all__ = ["Nsga2Search", "grid_points", "random_points", "resolve"]


def resolve(sweep: Sweep, free: dict[str, Any]) -> dict[str, Any]:
    """A point from the free axes' values: linked axes take their target's value."""
    by_name = {a.name: a for a in sweep.axes}

    def value(name: str) -> Any:
        a = by_name[name]
        return free[name] if a.link is None else value(a.link)

    return {a.name: value(a.name) for a in sweep.axes}


def grid_points(sweep: Sweep) -> Iterator[dict[str, Any]]:
    free = sweep.free_axes
    for combo in itertools.product(*(a.values for a in free)):
        yield resolve(sweep, {a.name: v for a, v in zip(free, combo)})


def _decode(sweep: Sweep, index: int) -> dict[str, Any]:
    """The grid point at ``index`` in grid order (mixed radix, first axis most significant)."""
    free = sweep.free_axes
    digits = []
    for a in reversed(free):
        index, d = divmod(index, len(a.values))
        digits.append(d)
    return resolve(sweep, {a.name: a.values[d] for a, d in zip(free, reversed(digits))})


def random_points(sweep: Sweep) -> list[dict[str, Any]]:
    """``search.n`` distinct grid points, drawn with ``default_rng(search.seed)``."""
    n, size = sweep.search.n, sweep.grid_size()
    rng = np.random.default_rng(sweep.search.seed)
    if size < 2 ** 62:
        picks = [int(i) for i in rng.choice(size, size=n, replace=False)]
    else:                                   # too large to index: draw tuples until n distinct
        seen: set[int] = set()
        picks = []
        while len(picks) < n:
            i = 0
            for a in sweep.free_axes:
                i = i * len(a.values) + int(rng.integers(len(a.values)))
            if i not in seen:
                seen.add(i)
                picks.append(i)
    return [_decode(sweep, i) for i in picks]


class Nsga2Search:
    """Optuna's NSGA-II over the sweep's axes, driven one generation at a time.

    ``ask()`` returns a generation of ``(trial, point)``; ``tell(trial, row)`` reports a
    point's stored row (``None`` or a failed row: the trial failed). Points that do not fit
    the part are told as infeasible through the sampler's constraints."""

    def __init__(self, sweep: Sweep):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.sweep = sweep
        self.objectives = [OBJECTIVES[o] for o in sweep.objectives]
        self.population = sweep.search.population

        # points that do not fit the part are infeasible: Trial.set_constraint (Optuna >= 5),
        # or the sampler's constraints_func reading the same value (older Optuna)
        self._set_constraint = hasattr(optuna.trial.Trial, "set_constraint")
        kw = {} if self._set_constraint else {
            "constraints_func": lambda t: [float(t.user_attrs.get("violation", 0.0))]}
        sampler = optuna.samplers.NSGAIISampler(seed=sweep.search.seed, population_size=self.population, **kw)
        self.study = optuna.create_study(directions=["minimize" if d == "min" else "maximize"
                                                     for _, d in self.objectives], sampler=sampler)

    def ask(self) -> list[tuple[Any, dict[str, Any]]]:
        out = []
        for _ in range(self.population):
            trial = self.study.ask()
            free = {a.name: trial.suggest_categorical(a.name, list(a.values)) for a in self.sweep.free_axes}
            out.append((trial, resolve(self.sweep, free)))
        return out

    def tell(self, trial, row: dict[str, Any] | None) -> None:
        import optuna

        if row is None or row["status"] != "ok":
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        m = row["metrics"]
        values = [m.get(col) for col, _ in self.objectives]
        if any(v is None or not math.isfinite(float(v)) for v in values):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        violation = 0.0 if m.get("fits") else 1.0
        if self._set_constraint:
            trial.set_constraint("fits_part", violation)
        else:
            trial.set_user_attr("violation", violation)
        self.study.tell(trial, [float(v) for v in values])
