"""Pareto extraction (sparseforge.report.pareto): the fast one-pass front must agree with
the definition, checked point against point by brute force, on random data full of ties
and duplicates, with min and max objectives, failed points and points that do not fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sparseforge.errors import InputError
from sparseforge.report import Objective, ReportError, pareto_mask


def brute_force(df: pd.DataFrame, objectives: list[tuple[str, str]]) -> np.ndarray:
    """The definition, literally: an eligible point is on the front unless some eligible
    point is at least as good in every objective and strictly better in one."""
    rows = df.to_dict("records")

    def eligible(r) -> bool:
        if r.get("status", "ok") != "ok" or r.get("fits", True) is False:
            return False
        return all(np.isfinite(r[name]) for name, _ in objectives)

    def better_eq(a, b, name, d):
        return a[name] <= b[name] if d == "min" else a[name] >= b[name]

    def strictly(a, b, name, d):
        return a[name] < b[name] if d == "min" else a[name] > b[name]

    out = []
    for p in rows:
        if not eligible(p):
            out.append(False)
            continue
        dominated = any(eligible(q) and all(better_eq(q, p, n, d) for n, d in objectives)
                        and any(strictly(q, p, n, d) for n, d in objectives) for q in rows)
        out.append(not dominated)
    return np.array(out, dtype=bool)


@pytest.mark.parametrize("seed", range(12))
def test_front_agrees_with_brute_force(seed):
    """Random data from a few distinct values (many ties, exact duplicates), 1 to 4
    objectives with random directions, some failed, unfit and NaN points."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 70))
    k = 1 + seed % 4
    names = [f"o{i}" for i in range(k)]
    df = pd.DataFrame({name: rng.integers(0, 4, n).astype(float) for name in names})
    dup = rng.integers(0, n, n // 4)
    df = pd.concat([df, df.iloc[dup]], ignore_index=True)               # exact duplicates
    m = len(df)
    df["status"] = np.where(rng.random(m) < 0.1, "failed", "ok")
    df["fits"] = rng.random(m) > 0.15
    df.loc[rng.random(m) < 0.05, names[0]] = np.nan
    objectives = [(name, "min" if rng.random() < 0.5 else "max") for name in names]
    got = pareto_mask(df, objectives)
    want = brute_force(df, objectives)
    assert got.dtype == bool and got.shape == (m,)
    np.testing.assert_array_equal(got, want)


def test_duplicates_on_the_front_are_all_kept():
    """Two identical best points do not dominate each other: both are on the front."""
    df = pd.DataFrame({"lat": [1.0, 1.0, 2.0, 1.0], "dsp": [5.0, 5.0, 1.0, 6.0]})
    assert pareto_mask(df, ["lat", "dsp"]).tolist() == [True, True, True, False]


def test_direction_max_is_honoured():
    """throughput is maximised: the point with more throughput at equal cost wins."""
    df = pd.DataFrame({"throughput": [10.0, 20.0, 20.0], "dsp": [4.0, 4.0, 8.0]})
    assert pareto_mask(df, [Objective("throughput", "max"), "dsp:min"]).tolist() == [False, True, False]
    # the metric's usual direction when none is given (throughput: max)
    assert pareto_mask(df, ["throughput", "dsp"]).tolist() == [False, True, False]
    # and reversed when asked
    assert pareto_mask(df, ["throughput:min", "dsp:min"]).tolist() == [True, False, False]


def test_failed_and_unfit_points_never_dominate():
    """A failed or unfitting point with the best values neither joins the front nor
    pushes the others off it; SQLite's 0 counts as not fitting, None as unknown."""
    df = pd.DataFrame({"lat": [0.1, 0.1, 1.0, 2.0], "energy": [0.1, 0.1, 2.0, 1.0],
                       "status": ["failed", "ok", "ok", "ok"], "fits": [True, 0, None, True]})
    assert pareto_mask(df, ["lat", "energy"]).tolist() == [False, False, True, True]


def test_no_eligible_point_gives_an_empty_front():
    df = pd.DataFrame({"lat": [np.nan, 1.0], "status": ["ok", "failed"]})
    assert not pareto_mask(df, ["lat"]).any()


@pytest.mark.parametrize("objectives, message", [
    (["latency_s"], "objective 'latency_s' is not a column of the results: columns are lat, energy"),
    (["lat:fastest"], "objective 'lat': direction = 'fastest' is not allowed: choose min or max"),
    ([], "objectives = [] is not allowed: give at least one objective (e.g. latency_s:min)"),
    (["lat", "lat:max"], "objective 'lat' is given twice: give each objective once"),
])
def test_bad_objectives_are_one_line_errors(objectives, message):
    df = pd.DataFrame({"lat": [1.0], "energy": [2.0]})
    with pytest.raises(ReportError) as info:
        pareto_mask(df, objectives)
    assert str(info.value) == message
    assert isinstance(info.value, InputError)
