"""The sweep's workloads: checks at parse time, per-process caches of what points share, and
one simulation of one workload on one spec.

What points have in common is built once per process and cached by the workload's
parameters: the network (layer list, and which layers share a shape), the ONNX import, the
SpGEMM operands and their partial products, the MoE configuration and routing. A point then
only maps and simulates.

Within one network, layers with the same GEMM shape (tokens, K, outputs, kind, prunability,
count) map and simulate identically -- the mapper and the simulator read a layer's name only
for error messages -- so :func:`simulate_inference` simulates each shape once and names the
copies (ResNet-50: 54 layers, 21 shapes). ``tests/test_sweep_eval.py`` checks the result is
equal, field for field, to :func:`sparseforge.sim.simulate.simulate_network`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec import HardwareSpec
from .file import Workload, _Bad, parse_nm

__all__ = [
    "WorkloadResult",
    "check_workload",
    "default_name",
    "designs_for",
    "prepare",
    "simulate_inference",
    "simulate_workload",
]


# ============================================================================ parse-time checks
def _sparsity_ok(key: str, v: Any) -> None:
    if v == "array":
        return
    try:
        parse_nm(v)
    except ValueError:
        raise _Bad(key, v, 'write "array" (the point\'s own n:m), "dense" or "N:M" with 1 <= N <= M <= 64') from None


def _int(key: str, v: Any, low: int = 1) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise _Bad(key, v, f"must be an integer >= {low}")


def _bool(key: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise _Bad(key, v, "must be true or false")


def check_workload(kind: str, p: dict[str, Any], *, folder: Path) -> dict[str, Any]:
    """Check one workload's parameters (defaults filled in); return them canonical (paths
    absolute). Builds what it can cheaply (the network, the matrices) so that a bad name
    fails here, before anything is written. Raises ``_Bad(key, value, allowed)``."""
    p = dict(p)
    if kind == "inference":
        from ..models.zoo import NETWORKS

        if (p["net"] is None) == (p["onnx"] is None):
            raise _Bad("net", p["net"], f"give exactly one of net ({', '.join(NETWORKS)}) or onnx (a file)")
        if p["net"] is not None and p["net"] not in NETWORKS:
            raise _Bad("net", p["net"], f"choose one of {', '.join(NETWORKS)}, or give onnx = \"model.onnx\"")
        if p["onnx"] is not None:
            if not isinstance(p["onnx"], str):
                raise _Bad("onnx", p["onnx"], "must be a path to an .onnx file")
            path = Path(p["onnx"]) if Path(p["onnx"]).is_absolute() else folder / p["onnx"]
            if not path.is_file():
                raise _Bad("onnx", p["onnx"], f"no such file {path}")
            p["onnx"] = str(path.resolve())
            p["onnx_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            shapes = p["input_shapes"]
            if shapes is not None and (not isinstance(shapes, dict) or not all(
                    isinstance(v, list) and v and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                                                      for d in v) for v in shapes.values())):
                raise _Bad("input_shapes", shapes, "write a table NAME = [d0, d1, ...] of positive sizes")
        elif p["input_shapes"] is not None:
            raise _Bad("input_shapes", p["input_shapes"], "applies to onnx models only")
        _sparsity_ok("sparsity", p["sparsity"])
        _int("tokens", p["tokens"])
        _int("batch", p["batch"])
        try:
            network(p)
        except (ValueError, FileNotFoundError) as exc:
            key = "onnx" if p["onnx"] else ("tokens" if p["net"] in TOKEN_NETWORKS else "batch")
            raise _Bad(key, p[key], str(exc).splitlines()[0]) from None
    elif kind == "training":
        from ..models.zoo_train import TRAINING_NETWORKS
        from ..sim.train import METHODS

        if p["net"] not in TRAINING_NETWORKS:
            raise _Bad("net", p["net"], f"choose one of {', '.join(sorted(TRAINING_NETWORKS))}")
        if p["method"] not in METHODS:
            raise _Bad("method", p["method"], f"choose one of {', '.join(METHODS)}")
        _sparsity_ok("sparsity", p["sparsity"])
        if p["method"] != "dense" and p["sparsity"] == "dense":
            raise _Bad("sparsity", p["sparsity"], f"method {p['method']} needs an N:M sparsity (or \"array\")")
        _int("batch", p["batch"])
        _bool("interleave", p["interleave"])
        _bool("pregenerate", p["pregenerate"])
    elif kind == "spgemm":
        from ..dataflow.spgemm import DATAFLOWS
        from ..models.matrices import MatrixError

        if p["dataflow"] not in DATAFLOWS:
            raise _Bad("dataflow", p["dataflow"], f"choose one of {', '.join(DATAFLOWS)}")
        for key in ("a", "b"):
            v = p[key]
            if v is None and key == "b":
                continue
            if not isinstance(v, str) or not v:
                raise _Bad(key, v, "give a built-in matrix name or a .mtx/.npz/.graph file")
            if Path(v).suffix.lower() in (".mtx", ".npz", ".graph", ".metis", ".mm", ".gz"):
                path = Path(v) if Path(v).is_absolute() else folder / v
                p[key] = str(path.resolve())
        try:
            a, b = matrices(p["a"], p["b"])
        except MatrixError as exc:
            raise _Bad("a", p["a"], str(exc)) from None
        if a.shape[1] != b.shape[0]:
            raise _Bad("b", p["b"], f"A is {a.shape[0]}x{a.shape[1]} and B {b.shape[0]}x{b.shape[1]}: "
                                    "A's columns must equal B's rows")
    elif kind == "moe":
        from ..dataflow.moe import SCHEDULES
        from ..models.moe import CONFIGS, TASKS, MoeError

        if p["net"] not in CONFIGS:
            raise _Bad("net", p["net"], f"choose one of {', '.join(CONFIGS)}")
        tasks = p["tasks"]
        if isinstance(tasks, str):
            tasks = [t.strip() for t in tasks.split(",")]
        if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) and t in TASKS for t in tasks):
            raise _Bad("tasks", p["tasks"], f"give a list of tasks from {', '.join(TASKS)}")
        p["tasks"] = list(tasks)
        if p["frames"] is None:
            p["frames"] = len(tasks)
        _int("frames", p["frames"])
        if p["schedule"] not in SCHEDULES:
            raise _Bad("schedule", p["schedule"], f"choose one of {', '.join(SCHEDULES)}")
        if p["routing"] not in ("real", "synthetic"):
            raise _Bad("routing", p["routing"], "choose real (MoEfied MiniLM on real text) or synthetic")
        _int("seed", p["seed"], 0)
        if isinstance(p["zipf"], bool) or not isinstance(p["zipf"], (int, float)) or p["zipf"] < 0:
            raise _Bad("zipf", p["zipf"], "must be a number >= 0")
        for key in ("experts", "top_k", "tokens"):
            if p[key] is not None:
                _int(key, p[key])
        try:
            moe_config(p["net"], p["experts"], p["top_k"], p["tokens"])
        except MoeError as exc:
            raise _Bad("net", p["net"], str(exc)) from None
    return p


def default_name(kind: str, p: dict[str, Any]) -> str:
    if kind == "inference":
        return p["net"] if p["net"] else Path(p["onnx"]).stem
    if kind == "training":
        return f"{p['net']}-train-{p['method']}"
    if kind == "spgemm":
        return f"{Path(p['a']).stem}x{Path(p['b'] or p['a']).stem}-{p['dataflow']}"
    return f"{p['net']}-{p['schedule']}"


# ============================================================================ shared, per process
def _key(p: dict[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in p.items()
                        if not isinstance(v, dict)))


#: the inference networks sized by their sequence length (``tokens``); the others take ``batch``
TOKEN_NETWORKS = ("minilm", "bert_base")


def network(p: dict[str, Any]):
    """The inference network of a workload (cached per process)."""
    shapes = p.get("input_shapes")
    return _network(p["net"], p["onnx"], p.get("onnx_sha256"), p["tokens"], p["batch"],
                    tuple(sorted((k, tuple(v)) for k, v in shapes.items())) if shapes else None)


@functools.lru_cache(maxsize=32)
def _network(net: str | None, onnx: str | None, onnx_sha: str | None, tokens: int, batch: int, shapes):
    if onnx is not None:
        from ..models.onnx_import import import_onnx

        nw = import_onnx(onnx, input_shapes={k: list(v) for k, v in shapes} if shapes else None)
    else:
        from ..models.zoo import get_network

        nw = get_network(net, **({"tokens": tokens} if net in TOKEN_NETWORKS else {"batch": batch}))
    return nw, _shape_groups(nw)


def _shape_groups(nw) -> tuple[int, ...]:
    """For each layer, the index of the first layer with the same GEMM shape."""
    first: dict[tuple, int] = {}
    out = []
    for i, lay in enumerate(nw.layers):
        out.append(first.setdefault((lay.tokens, lay.k, lay.n_out, lay.kind, lay.prunable, lay.count), i))
    return tuple(out)


@functools.lru_cache(maxsize=16)
def _training_network(net: str, batch: int):
    from ..models.zoo_train import get_training_network

    return get_training_network(net, batch=batch)


@functools.lru_cache(maxsize=8)
def matrices(a: str, b: str | None):
    """The SpGEMM operands (cached per process)."""
    from ..models.matrices import load_matrix

    ma = load_matrix(a)
    return ma.matrix, (load_matrix(b).matrix if b else ma.matrix)


@functools.lru_cache(maxsize=8)
def _products(a: str, b: str | None):
    from ..dataflow.spgemm import expand_products

    ma, mb = matrices(a, b)
    return expand_products(ma, mb)


@functools.lru_cache(maxsize=8)
def moe_config(net: str, experts: int | None, top_k: int | None, tokens: int | None):
    from ..models import moe

    changes = {k: v for k, v in (("experts", experts), ("top_k", top_k), ("tokens", tokens)) if v is not None}
    return moe.get_config(net, **changes)


@functools.lru_cache(maxsize=8)
def _routing(net: str, experts, top_k, tokens, tasks: tuple[str, ...], frames: int, routing: str, seed: int,
             zipf: float):
    from ..models import moe

    cfg = moe_config(net, experts, top_k, tokens)
    seq = tuple(tasks[i % len(tasks)] for i in range(frames))
    if routing == "synthetic":
        return moe.synthetic_routing(seq, moe_layers=cfg.moe_layers, tokens=cfg.tokens, num_experts=cfg.experts,
                                     top_k=cfg.top_k, zipf=zipf, seed=seed)
    return moe.minilm_routing(seq, tokens=cfg.tokens, num_experts=cfg.experts, top_k=cfg.top_k,
                              moe_layers=cfg.moe_layers)


def prepare(w: Workload) -> None:
    """Build (and cache in this process) what every point of workload ``w`` shares."""
    p = dict(w.params)
    if w.kind == "inference":
        network(p)
    elif w.kind == "training":
        _training_network(p["net"], p["batch"])
    elif w.kind == "spgemm":
        _products(p["a"], p["b"])
    else:
        _routing(p["net"], p["experts"], p["top_k"], p["tokens"], tuple(p["tasks"]), p["frames"], p["routing"],
                 p["seed"], float(p["zipf"]))


# ============================================================================ simulation
@dataclass(frozen=True)
class WorkloadResult:
    """One workload simulated on one spec."""

    cycles: int
    latency_s: float
    energy_j: float | None         # None: the workload has no energy model (MoE)
    items: int                     # samples / products / frames of one run
    layers: tuple[dict, ...]       # per-layer rows: name, cycles, utilisation, stall_cycles
    extra: dict


def _sparsity(spec: HardwareSpec, text: str) -> tuple[int, int] | None:
    if text == "array":
        return None if spec.dense else (spec.n, spec.m)
    return parse_nm(text)


def simulate_inference(spec: HardwareSpec, nw, sparsity: tuple[int, int] | None, groups: tuple[int, ...] | None = None):
    """:func:`sparseforge.sim.simulate.simulate_network`, each distinct layer shape simulated
    once (``groups[i]``: the first layer with layer i's shape, see :func:`_shape_groups`)."""
    from ..dataflow.mapper import map_layer, network_plan
    from ..sim.simulate import NetworkResult, simulate_layer

    groups = _shape_groups(nw) if groups is None else groups
    plan = network_plan(spec, nw, sparsity)          # which layers are sparse: the default rule
    done: dict[tuple, Any] = {}
    layers = []
    for i, lay in enumerate(nw.layers):
        key = (groups[i], plan[i])                   # same shape and same plan entry: same result
        if key not in done:
            done[key] = simulate_layer(spec, map_layer(spec, lay, plan[i].pattern, reason=plan[i].reason))
            layers.append(done[key])
        else:
            layers.append(dataclasses.replace(done[key], name=lay.name))
    return NetworkResult(network=nw.name, spec=spec, sparsity=sparsity, layers=tuple(layers))


def simulate_workload(spec: HardwareSpec, w: Workload) -> WorkloadResult:
    """Simulate workload ``w`` on ``spec`` (its clock is the one the point runs at)."""
    p = dict(w.params)
    if w.kind == "inference":
        nw, groups = network(p)
        res = simulate_inference(spec, nw, _sparsity(spec, p["sparsity"]), groups)
        t = res.totals()
        rows = tuple({"name": lay.name, "cycles": lay.cycles, "utilisation": lay.utilisation,
                      "stall_cycles": lay.stall_cycles} for lay in res.layers)
        items = p["batch"] if (p["onnx"] is None and p["net"] != "minilm") else 1
        return WorkloadResult(cycles=res.cycles, latency_s=res.time_s, energy_j=t["energy_total_pj"] * 1e-12,
                              items=items, layers=rows, extra={"utilisation": t["utilisation"]})
    if w.kind == "training":
        from ..sim.train import simulate_training

        nw = _training_network(p["net"], p["batch"])
        sp = _sparsity(spec, p["sparsity"])
        if p["method"] != "dense" and sp is not None:   # the default rule: stem, depthwise, K < M dense
            from ..models.network import sparsity_plan, training_network

            nw = training_network(nw, sparsity_plan(nw, sp))
        res = simulate_training(spec, nw, method=p["method"], sparsity=sp,
                                interleave=p["interleave"], pregenerate=p["pregenerate"])
        t = res.totals()
        rows = []
        for lay in res.layers:
            gemms = [g for g in (lay.ff, lay.bp, lay.wg) if g is not None]
            useful = sum(g.useful_macs for g in gemms)
            rows.append({"name": lay.name, "cycles": lay.gemm_cycles,
                         "utilisation": useful / (lay.gemm_cycles * spec.multipliers) if lay.gemm_cycles else 0.0,
                         "stall_cycles": sum(g.stall_cycles for g in gemms)})
        return WorkloadResult(cycles=res.cycles, latency_s=res.time_s, energy_j=t["energy_total_pj"] * 1e-12,
                              items=p["batch"], layers=tuple(rows), extra={})
    if w.kind == "spgemm":
        from ..dataflow.spgemm import place_rows
        from ..sim.spgemm import simulate_spgemm

        a, b = matrices(p["a"], p["b"])
        prod = _products(p["a"], p["b"])
        pl = place_rows(prod, spec) if p["dataflow"] == "rowwise-hash" else None
        r = simulate_spgemm(a, b, spec=spec, dataflow=p["dataflow"], products=prod, placement=pl)
        row = {"name": r.label, "cycles": r.cycles,
               "utilisation": r.pe_cycles_mean / r.cycles if r.cycles else 0.0,
               "stall_cycles": r.cycles - r.compute_cycles}
        return WorkloadResult(cycles=r.cycles, latency_s=r.time_us * 1e-6, energy_j=r.energy_pj * 1e-12, items=1,
                              layers=(row,), extra={"dram_bytes": r.dram_bytes})
    from ..sim.moe import simulate_moe

    cfg = moe_config(p["net"], p["experts"], p["top_k"], p["tokens"])
    routing = _routing(p["net"], p["experts"], p["top_k"], p["tokens"], tuple(p["tasks"]), p["frames"], p["routing"],
                       p["seed"], float(p["zipf"]))
    res = simulate_moe(spec, cfg, routing, schedules=(p["schedule"],))
    sch = res.schedules[p["schedule"]]
    t = sch.totals()
    frames = len(sch.frames)
    rows = [{"name": d.name, "cycles": d.cycles * frames, "utilisation": d.utilisation,
             "stall_cycles": d.stall_cycles * frames} for d in res.dense_layers]
    for i, block in enumerate(cfg.moe_blocks):
        lays = [f.layers[i] for f in sch.frames]
        cyc = sum(x.cycles for x in lays)
        rows.append({"name": f"block{block}.experts", "cycles": cyc, "utilisation": None,
                     "stall_cycles": sum(x.load_wait_cycles for x in lays)})
    return WorkloadResult(cycles=t["cycles"], latency_s=t["time_ms"] * 1e-3, energy_j=None, items=frames,
                          layers=tuple(rows), extra={"moe_onchip_fits": t["fits"]})


def designs_for(spec: HardwareSpec, w: Workload) -> tuple[str, ...]:
    """The generated designs (``sparseforge generate --design``) a workload runs on, whose
    resources and clock the point reports. A switchable spec builds both engines."""
    engines = {"weight-stationary": ("engine",), "output-stationary": ("os_engine",),
               "switchable": ("engine", "os_engine")}[spec.dataflow]
    if w.kind == "inference":
        return engines
    if w.kind == "training":
        return engines + (("sore",) if w["method"] != "dense" else ())
    if w.kind == "spgemm":
        return ("hashmerge",)
    return engines + (("moe_reorder", "moe_router", "moe_scheduler") if w["schedule"] == "reorder" else ())
