"""One point: its spec from the axis values, and its evaluation (a pure function).

:func:`make_task` turns a point's axis values into a :class:`PointTask` (the validated spec,
or the error that makes it invalid, and the store key); the driver does this for every
point. :func:`evaluate_chunk` / :func:`evaluate_point` run on the workers (local processes or
Dask): they take tasks and return result rows, touching no file and no shared state except
per-process caches of what points share (:mod:`.workloads`). The driver writes the rows.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..errors import InputError
from ..spec import HardwareSpec
from .file import NM_AXIS, PRUNE_AXIS, SYNTH, Sweep, Workload, parse_nm

__all__ = ["METRIC_COLUMNS", "PointTask", "evaluate_chunk", "evaluate_point", "failed_row", "make_task"]

#: the metric columns of a row (docs/sweep.md), in table order
METRIC_COLUMNS = ("latency_s", "cycles", "energy_j", "edp", "throughput", "dsp", "lut", "ff", "bram36", "lutram",
                  "clock_mhz_used", "clock_source", "fmax_mhz", "fmax_source", "rtl_reaches_clock", "fits",
                  "fit_reason", "uncosted", "perf_per_dsp", "accuracy", "cosine")


@dataclass(frozen=True)
class PointTask:
    """Everything a worker needs for one point (picklable)."""

    point_id: int
    digest: str
    values: tuple[tuple[str, Any], ...]      # axis name -> declared value, in axis order
    spec: HardwareSpec | None                # None: the point's spec is invalid (see error)
    error: str | None
    clock_synth: bool
    workloads: tuple[Workload, ...]
    workload_key: str
    part: str
    #: measured by the driver before the point runs (:mod:`.accuracy`): {"accuracy", "cosine"},
    #: or None when the sweep does not ask for accuracy
    quality: dict[str, float] | None = None


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def overrides(sweep: Sweep, values: dict[str, Any]) -> tuple[list[str], bool]:
    """``key=value`` overrides of the base spec for a point, and whether its clock is "synth"."""
    out: list[str] = []
    synth = sweep.base_clock_synth
    for name, v in values.items():
        if name == NM_AXIS:
            nm = parse_nm(v)
            n, m = nm if nm else (sweep.base_spec.m, sweep.base_spec.m)
            out += [f"n={n}", f"m={m}"]
        elif name == PRUNE_AXIS:
            continue                  # how the weights are pruned: not a spec field
        elif name == "clock_mhz":
            synth = v == SYNTH
            if not synth:
                out.append(f"clock_mhz={_text(v)}")
        else:
            out.append(f"{name}={_text(v)}")
    return out, synth


def _mark(base: HardwareSpec, spec: HardwareSpec) -> HardwareSpec:
    try:
        from ..spec.hardware import mark_overridden
    except ImportError:
        return spec
    return mark_overridden(base, spec)


def make_task(sweep: Sweep, point_id: int, values: dict[str, Any]) -> PointTask:
    """The task of one point. A point whose spec is invalid carries its one-line error and a
    digest made from its axis values."""
    sets, synth = overrides(sweep, values)
    vals = tuple(values.items())
    common = dict(point_id=point_id, values=vals, clock_synth=synth, workloads=sweep.workloads,
                  workload_key=sweep.workload_key, part=sweep.part)
    try:
        spec = _mark(sweep.base_spec, sweep.base_spec.with_overrides(sets)) if sets else sweep.base_spec
    except InputError as exc:
        blob = json.dumps([sweep.base_spec.digest, vals, synth], sort_keys=True, default=str)
        digest = hashlib.sha256(("invalid:" + blob).encode()).hexdigest()[:16]
        return PointTask(digest=digest, spec=None, error=str(exc).splitlines()[0], **common)
    digest = spec.digest
    if synth:
        digest = hashlib.sha256(f"{digest}:clock_mhz={SYNTH}".encode()).hexdigest()[:16]
    if PRUNE_AXIS in values:          # the same hardware with other weights is another point
        digest = hashlib.sha256(f"{digest}:prune={values[PRUNE_AXIS]}".encode()).hexdigest()[:16]
    return PointTask(digest=digest, spec=spec, error=None, **common)


def _base_row(task: PointTask) -> dict[str, Any]:
    return {"point_id": task.point_id, "digest": task.digest, "workload": task.workload_key, "version": __version__,
            "values": dict(task.values)}


def failed_row(task: PointTask, error: str, seconds: float = 0.0) -> dict[str, Any]:
    """The row of a point that failed: its key, axis values, status and error."""
    return {**_base_row(task), "status": "failed", "error": error, "metrics": {}, "spec_json": None,
            "layers_json": None, "workloads_json": None, "seconds": seconds}


def evaluate_point(task: PointTask) -> dict[str, Any]:
    """Evaluate one point: resources and clock on the part, then every workload at the
    point's clock. Never raises for a point's own failure: the row says ``failed``."""
    t0 = time.perf_counter()
    if task.spec is None:
        return failed_row(task, task.error or "invalid spec")
    try:
        return _evaluate(task, t0)
    except Exception as exc:   # noqa: BLE001 -- a point's failure is data, the sweep goes on
        msg = str(exc).splitlines()[0] if str(exc) else ""
        if not isinstance(exc, InputError):
            msg = f"{type(exc).__name__}: {msg}"
        return failed_row(task, msg, time.perf_counter() - t0)


def _evaluate(task: PointTask, t0: float) -> dict[str, Any]:
    from .hwcost import point_cost
    from .workloads import designs_for, simulate_workload

    spec = task.spec
    designs = tuple(dict.fromkeys(d for w in task.workloads for d in designs_for(spec, w)))
    cost = point_cost(spec, designs, task.part)
    fmax = cost["fmax_mhz"]
    if task.clock_synth:
        if fmax is None:
            raise ValueError(f"clock_mhz = synth is not allowed here: no clock model for {cost['uncosted']}")
        spec = spec.replace(clock_mhz=fmax)
    results = [(w, simulate_workload(spec, w)) for w in task.workloads]
    lat = sum(w.weight * r.latency_s for w, r in results)
    energies = [r.energy_j for _, r in results]
    energy = sum(w.weight * r.energy_j for w, r in results) if all(e is not None for e in energies) else None
    throughput = sum(w.weight * r.items for w, r in results) / lat
    res = cost["resources"]
    dsp = res.get("dsp")
    metrics = {
        "latency_s": lat,
        "cycles": round(sum(w.weight * r.cycles for w, r in results)),
        "energy_j": energy,
        "edp": energy * lat if energy is not None else None,
        "throughput": throughput,
        **{k: res.get(k) for k in ("dsp", "lut", "ff", "bram36", "lutram")},
        "clock_mhz_used": spec.clock_mhz,
        "clock_source": SYNTH if task.clock_synth else "spec",
        "fmax_mhz": fmax,
        "fmax_source": cost["fmax_source"],
        "rtl_reaches_clock": None if fmax is None else bool(spec.clock_mhz <= fmax),
        "fits": cost["fits"],
        "fit_reason": cost["fit_reason"],
        "uncosted": cost["uncosted"],
        "perf_per_dsp": throughput / dsp if dsp else None,
        "accuracy": task.quality["accuracy"] if task.quality else None,
        "cosine": task.quality["cosine"] if task.quality else None,
    }
    layers = [{"workload": w.name, **row} for w, r in results for row in r.layers]
    wl = [{"name": w.name, "kind": w.kind, "weight": w.weight, "items": r.items, "cycles": r.cycles,
           "latency_s": r.latency_s, "energy_j": r.energy_j, **r.extra} for w, r in results]
    return {**_base_row(task), "status": "ok", "error": None, "metrics": metrics,
            "spec_json": json.dumps({**spec.record(), "designs": list(designs)}, sort_keys=True),
            "layers_json": json.dumps(layers), "workloads_json": json.dumps(wl),
            "seconds": time.perf_counter() - t0}


def evaluate_chunk(tasks: list[PointTask]) -> list[dict[str, Any]]:
    """Evaluate a chunk of points (one worker call); the unit the executors schedule."""
    return [evaluate_point(t) for t in tasks]
