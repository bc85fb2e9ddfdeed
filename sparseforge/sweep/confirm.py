"""``--confirm K``: real Yosys (and, on ECP5 targets, nextpnr) runs on the K best points of a
sweep, stored beside the resource model's figures so that the report shows model against
real (docs/sweep.md, "Model against real").

**Which points.** The points that ran and fit the target part (``fits`` true: so their
designs have a resource model), their Pareto front over the sweep's objectives
(:func:`sparseforge.report.pareto.pareto_mask`), ordered by the first objective (ties: lower
``point_id``); the first K. Each chosen point is confirmed once per design of the point that
the resource model covers (a weight-stationary point has one, ``engine``; a switchable one
two).

**What runs, per point and design** (:func:`confirm_point`, on a worker):

- the model: :func:`sparseforge.hwgen.cost.estimate_resources` (what the sweep stored) and
  the clock lookup :func:`sparseforge.hwgen.clocks.achievable_clock_mhz` without this spec's
  own measurement (``use_cache=False``: the stored calibration figures, what a sweep reports
  before anything was measured);
- Yosys ``synth_xilinx -family xcup`` (:func:`sparseforge.hwgen.synth_cache.xilinx_run`):
  real LUT, FF, DSP48E2, RAMB36 and LUT-RAM, in the model's units, checked against the part
  with :func:`sparseforge.hwgen.parts.fits`;
- on an ECP5 target whose design really fits: a place and route on the target's own device
  (:func:`sparseforge.hwgen.clocks.measure_clock_mhz`), its Fmax, and whether the RTL reaches
  the clock the point was simulated at. UltraScale+ targets have no Fmax: no place and route
  for them runs here (the clock lookup's reason is stored).

Both tools go through the synthesis cache, so a run already made (by an earlier confirm,
the calibration or ``clock_mhz = "synth"``) is read back, not repeated (``cached``).

**How.** One task per point and design, through the sweep's own executor (the local pool
by default, the Dask cluster with ``--scheduler``): workers run the tools, the driver writes
each row in its own transaction into table ``confirm`` of the store. A confirmation already
stored (ok or failed) is not run again, so ``--resume --confirm K`` continues. A tool that
fails is stored with ``status = "failed"`` and its one-line error; the others go on.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..errors import InputError
from ..spec import HardwareSpec
from .file import OBJECTIVES, Sweep, SweepError

__all__ = ["RESOURCES", "ConfirmSummary", "ConfirmTask", "check_k", "confirm_chunk", "confirm_point",
           "model_errors", "relative_error", "run_confirm", "select_points"]

#: the resources compared, as in the results table
RESOURCES = ("lut", "ff", "dsp", "bram36")
#: resources the model maps exactly (its DSP and memory mapping replay Yosys'; docs/cost.md)
EXACT = ("dsp", "bram36")


def check_k(k: Any) -> int:
    """``k`` if it is a whole number >= 1; :class:`SweepError` otherwise."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SweepError(f"--confirm {k!r} is not allowed: give how many of the best points to synthesise, "
                         "an integer >= 1")
    return k


# ============================================================================ choosing the points
def select_points(rows: Iterable[dict[str, Any]], objectives: Iterable[str], k: int) -> list[dict[str, Any]]:
    """The first ``k`` points of the Pareto front of ``objectives`` (sweep objective names)
    among ``rows`` (results rows: the objective columns, ``status``, ``fits``,
    ``point_id``) that ran and fit the part, best first by the first objective."""
    import numpy as np
    import pandas as pd

    from ..report.pareto import pareto_mask

    objs = [OBJECTIVES[o] for o in objectives]
    df = pd.DataFrame(list(rows))
    if df.empty:
        return []
    keep = df["fits"].map(lambda v: v is not None and not (isinstance(v, float) and math.isnan(v)) and bool(v))
    if "status" in df.columns:
        keep &= df["status"].astype(str) == "ok"
    df = df[keep.to_numpy(bool)].reset_index(drop=True)
    if df.empty:
        return []
    front = df[pareto_mask(df, objs)]
    col, direction = objs[0]
    key = pd.to_numeric(front[col], errors="coerce").to_numpy(float) * (1.0 if direction == "min" else -1.0)
    order = np.lexsort((front["point_id"].to_numpy(), key))
    return [front.iloc[i].to_dict() for i in order[:k]]


@dataclass(frozen=True)
class ConfirmTask:
    """One point and design to synthesise (picklable; runs on a worker)."""

    point_id: int
    digest: str
    workload_key: str
    design: str
    spec: HardwareSpec
    part: str
    clock_mhz: float           # the clock the point was simulated at


def _tasks(sweep: Sweep, chosen: list[dict[str, Any]]) -> list[ConfirmTask]:
    from .hwcost import _covered

    covered = _covered()
    out = []
    for row in chosen:
        rec = json.loads(row["spec_json"])
        spec = HardwareSpec.from_mapping(rec["spec"], source=f"point {row['point_id']}")
        for d in rec.get("designs", []):
            if covered is None or d in covered:
                out.append(ConfirmTask(point_id=int(row["point_id"]), digest=row["digest"],
                                       workload_key=sweep.workload_key, design=d, spec=spec, part=sweep.part,
                                       clock_mhz=float(row["clock_mhz_used"])))
    return out


# ============================================================================ one run (on a worker)
def _msg(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, InputError) else f"{type(exc).__name__}: {text}"


def confirm_point(task: ConfirmTask) -> dict[str, Any]:
    """The model's and the real tools' figures for one point and design: a row of table
    ``confirm``. Never raises for a failing tool: the row says ``failed`` with the error,
    and keeps what was measured before the failure."""
    from sparseforge.hwgen import synth_cache
    from sparseforge.hwgen.clocks import _ECP5_DEVICE_OF, achievable_clock_mhz, measure_clock_mhz
    from sparseforge.hwgen.cost import Resources, estimate_resources
    from sparseforge.hwgen.parts import fits, fpga_part

    t0 = time.perf_counter()
    row: dict[str, Any] = {"point_id": task.point_id, "digest": task.digest, "workload": task.workload_key,
                           "version": __version__, "design": task.design, "status": "ok", "error": None,
                           "part": task.part, "clock_mhz": task.clock_mhz}

    def failed(stage: str, exc: BaseException) -> dict[str, Any]:
        row.update(status="failed", error=f"{stage}: {_msg(exc)}", seconds=time.perf_counter() - t0)
        return row

    try:
        part = fpga_part(task.part)
        model = estimate_resources(task.spec, task.design)
        model_fmax, model_src = achievable_clock_mhz(task.spec, task.design, part, use_cache=False)
    except Exception as exc:   # noqa: BLE001 -- a confirmation's failure is data
        return failed("resource model", exc)
    row.update({f"model_{k}": getattr(model, k) for k in (*RESOURCES, "lutram")})
    row["model_fmax_mhz"] = model_fmax
    try:
        rec, cached = synth_cache.xilinx_run(task.spec, task.design)
    except Exception as exc:   # noqa: BLE001
        return failed("yosys synth_xilinx", exc)
    real = rec["resources"]
    row.update({f"real_{k}": real[k] for k in (*RESOURCES, "lutram")})
    ok, reason = fits(Resources(lut=real["lut"], ff=real["ff"], dsp=real["dsp"], bram36=real["bram36"]), part)
    row.update(real_fits=bool(ok), real_fit_reason=reason, cached=bool(cached), tool=rec.get("tool"),
               tools_json=json.dumps(rec.get("tools", {}), sort_keys=True))
    if part.family != "ecp5":
        row["fmax_source"] = model_src                 # why there is no figure (no place and route here)
    elif not ok:
        row["fmax_source"] = f"nextpnr-ecp5 not run: the synthesised design does not fit ({reason})"
    else:
        device = _ECP5_DEVICE_OF[part.name]
        hit = synth_cache.cached_ecp5(task.spec, task.design, device=device)
        try:
            fmax, src = measure_clock_mhz(task.spec, task.design, device=device)
        except Exception as exc:   # noqa: BLE001
            return failed("nextpnr-ecp5", exc)
        row.update(real_fmax_mhz=fmax, fmax_source=src, rtl_reaches_clock=bool(task.clock_mhz <= fmax),
                   cached=bool(cached and hit is not None))
        after = synth_cache.cached_ecp5(task.spec, task.design, device=device)
        if after is not None:
            erec = after[0]
            row["tool"] = f"{row['tool']}; {erec.get('tool')} {device} speed {erec.get('speed')}"
            row["tools_json"] = json.dumps({**rec.get("tools", {}), **erec.get("tools", {})}, sort_keys=True)
    row["seconds"] = time.perf_counter() - t0
    return row


def confirm_chunk(tasks: list[ConfirmTask]) -> list[dict[str, Any]]:
    """Confirm a chunk of points (one worker call; the executors schedule one task per chunk)."""
    return [confirm_point(t) for t in tasks]


# ============================================================================ errors
def relative_error(model: Any, real: Any) -> float:
    """``(model - real) / real`` (a fraction); 0 when both are 0, ``inf`` when only the real
    figure is 0, NaN when one is missing."""
    try:
        m, r = float(model), float(real)
    except (TypeError, ValueError):
        return math.nan
    if math.isnan(m) or math.isnan(r):
        return math.nan
    if r == 0:
        return 0.0 if m == 0 else math.inf
    return (m - r) / r


def model_errors(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per resource (and ``fmax_mhz`` where ECP5 runs measured one), over the confirmations
    with real figures: ``n`` runs, ``exact`` (model == real), ``mean_abs_pct`` and
    ``max_abs_pct`` (|model - real| / real in %) and ``max_pct`` (the signed error of largest
    magnitude)."""
    rows = list(rows)
    out: dict[str, dict[str, Any]] = {}
    for res in (*RESOURCES, "fmax_mhz"):
        pairs = [(r.get(f"model_{res}"), r.get(f"real_{res}")) for r in rows]
        pairs = [(m, x) for m, x in pairs if _num(m) and _num(x)]
        if not pairs:
            continue
        errs = [relative_error(m, x) for m, x in pairs]
        worst = max(errs, key=abs)
        out[res] = {"n": len(pairs), "exact": sum(float(m) == float(x) for m, x in pairs),
                    "mean_abs_pct": 100.0 * sum(abs(e) for e in errs) / len(errs),
                    "max_abs_pct": 100.0 * abs(worst), "max_pct": 100.0 * worst}
    return out


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


# ============================================================================ the driver
@dataclass
class ConfirmSummary:
    k: int
    front: int = 0           # points on the Pareto front that fit the part
    points: int = 0          # points chosen (min(k, front))
    runs: int = 0            # point x design confirmations chosen
    computed: int = 0        # run now, ok
    failed: int = 0          # run now, failed
    skipped: int = 0         # already stored
    seconds: float = 0.0
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)     # the chosen confirmations, as stored

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "rows"}
        out["runs_stored"] = [{c: r.get(c) for c in ("point_id", "digest", "design", "status", "error",
                                                     *(f"{p}_{x}" for x in (*RESOURCES, "fmax_mhz")
                                                       for p in ("model", "real")),
                                                     "rtl_reaches_clock", "cached")} for r in self.rows]
        return out

    def text(self) -> str:
        head = (f"confirm: the {self.points} best of {self.front} Pareto points that fit"
                + (f" (--confirm {self.k})" if self.points < self.k else "")
                + f", {self.runs} design runs: {self.computed} run now, {self.failed} failed, "
                  f"{self.skipped} already stored; {self.seconds:.1f} s")
        lines = [head]
        if self.errors:
            parts = []
            for res, e in self.errors.items():
                name = {"bram36": "BRAM36", "fmax_mhz": "Fmax"}.get(res, res.upper())
                parts.append(f"{name} mean |error| {e['mean_abs_pct']:.1f} %, max {e['max_pct']:+.1f} %"
                             f" ({e['exact']}/{e['n']} exact)")
            lines.append("  model against real: " + "; ".join(parts))
        for r in self.rows:
            tag = f"  point {r['point_id']} {r['design']}"
            if r["status"] != "ok":
                lines.append(f"{tag}: failed: {r['error']}")
            elif r.get("real_fmax_mhz") is not None:
                reach = "reaches" if r.get("rtl_reaches_clock") else "does not reach"
                lines.append(f"{tag}: real Fmax {r['real_fmax_mhz']:.1f} MHz (model {_fmt(r.get('model_fmax_mhz'))}):"
                             f" {reach} its {r['clock_mhz']:g} MHz clock")
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.1f} MHz" if _num(v) else "none"


def run_confirm(sweep: Sweep, store, executor, k: int, show: bool) -> ConfirmSummary:
    """Confirm the ``k`` best points of the sweep in ``store`` on ``executor`` (see the module
    docstring); returns the summary."""
    from .run import _Progress

    t0 = time.perf_counter()
    check_k(k)
    objective_cols = list(dict.fromkeys(OBJECTIVES[o][0] for o in sweep.objectives))
    rows = store.select(["point_id", "digest", "status", "fits", "clock_mhz_used", "spec_json", *objective_cols],
                        sweep.workload_key, __version__)
    front = select_points(rows, sweep.objectives, len(rows) or 1)
    chosen = front[:k]
    tasks = _tasks(sweep, chosen)
    summary = ConfirmSummary(k=k, front=len(front), points=len(chosen), runs=len(tasks))
    done = store.confirmed(sweep.workload_key, __version__)
    todo = [t for t in tasks if (t.digest, t.design) not in done]
    summary.skipped = len(tasks) - len(todo)
    bar = _Progress(len(tasks), summary.skipped, show, desc="confirm")
    try:
        if todo:
            for out in executor.run(todo, fn=confirm_chunk, chunk=1):
                store.write_confirm(out)
                for r in out:
                    if r["status"] == "ok":
                        summary.computed += 1
                    else:
                        summary.failed += 1
                bar.update(len(out))
    finally:
        bar.close()
    wanted = {(t.digest, t.design) for t in tasks}
    summary.rows = [r for r in store.confirm_rows(sweep.workload_key, __version__)
                    if (r["digest"], r["design"]) in wanted]
    summary.errors = model_errors(r for r in summary.rows if r["status"] == "ok")
    summary.seconds = time.perf_counter() - t0
    return summary
