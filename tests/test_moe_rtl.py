"""The MoE reordering RTL (``hwgen.moe``) in Icarus Verilog, fed real routing decisions.

The routing is the real MoEfied-MiniLM routing of ``tests/data/moe/minilm_t48.npz`` (48
tokens per frame, 16 experts, top-4; regenerated from MiniLM in ``tests/test_moe.py``). Each
bench run (:mod:`sparseforge.verify.cocotb_moe`) plays several MoE layers through ``sf_moe_reorder``,
with the DRAM and array sides answering after exactly the simulator's ``load_cycles`` and
``compute_cycles``. Checked here against the golden model and the simulator:

- queue lengths and queue contents (token ids and quantised gates, in push order) equal
  :func:`models.moe.expert_queues` and :func:`dataflow.moe.quantize_gates`;
- experts are loaded and computed in the walk order (ascending non-empty experts), each into
  buffer ``i mod expert_buffers``;
- every handshake cycle and the ``done`` cycle equal :func:`sim.units.moe.reorder_timeline`, and
  ``T + done`` equals the layer cycles :func:`sim.moe.simulate_moe` reports.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import sparseforge.hwgen.emit as emit
from sparseforge.dataflow.moe import map_experts, quantize_gates
from sparseforge.models.moe import Routing, expert_queues, get_config, load_routing
from sparseforge.sim.moe import reorder_layer, simulate_moe
from sparseforge.spec import HardwareSpec, MoeSpec
from sparseforge.verify.harness import run_bench

pytestmark = [pytest.mark.rtl]

FIXTURE = Path(__file__).parent / "data" / "moe" / "minilm_t48.npz"
MOE_DESIGNS = {"moe_reorder": "sparseforge.hwgen.moe:build_reorder", "moe_router": "sparseforge.hwgen.moe:build_router",
               "moe_scheduler": "sparseforge.hwgen.moe:build_scheduler"}


@pytest.fixture(autouse=True)
def _designs(monkeypatch):
    """Register the MoE designs (until they are wired into hwgen.emit.DESIGNS)."""
    monkeypatch.setattr(emit, "DESIGNS", {**emit.DESIGNS, **MOE_DESIGNS})


@pytest.fixture(scope="module")
def routing() -> Routing:
    return load_routing(FIXTURE)


def _spec(*, buffers: int, depth: int = 48) -> HardwareSpec:
    """A small array whose expert loads (276 cycles) fall between the compute times of short
    and long queues, so both load-bound and compute-bound stretches occur."""
    return HardwareSpec(rows=4, cols=4, n=4, m=4, max_k=4096, clock_mhz=200.0, dram_bandwidth_gbps=1.6,
                        dram_latency_ns=100.0,
                        moe=MoeSpec(expert_buffers=buffers, expert_buffer_kib=4, queue_depth=depth, gate_width=16))


def _cfg(tokens: int = 48):
    return get_config("m3vit-small", embed=32, heads=4, expert_hidden=32, tokens=tokens)


def _case(spec: HardwareSpec, cfg, layers: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    em = map_experts(spec, cfg)
    out = []
    for e, g in layers:
        counts = np.bincount(e.ravel().astype(np.int64), minlength=cfg.experts)
        out.append({"experts": e.tolist(), "gates": quantize_gates(g, spec.moe.gate_width).tolist(),
                    "load_cycles": em.load_cycles,
                    "compute_cycles": [int(c) for c in em.compute_cycles(counts)]})
    return {"layers": out, "experts": cfg.experts, "expert_width": max(1, (cfg.experts - 1).bit_length()),
            "gate_width": spec.moe.gate_width, "count_width": spec.moe.queue_depth.bit_length(),
            "timeout_cycles": 200_000}


def _check_layer(spec: HardwareSpec, cfg, e: np.ndarray, g: np.ndarray, got: dict) -> None:
    """One layer's RTL record against the golden queues and the simulator's timeline."""
    queues = expert_queues(e, cfg.experts)
    qg = quantize_gates(g, spec.moe.gate_width)
    assert got["counts"] == [len(q) for q in queues]
    assert got["overflow"] == 0
    model = reorder_layer(spec, cfg, e)
    tl = model.timeline
    B = spec.moe.expert_buffers
    # order and buffers
    assert [ld[1] for ld in got["loads"]] == model.order.tolist()
    assert [c[1] for c in got["computes"]] == model.order.tolist()
    assert [ld[2] for ld in got["loads"]] == [i % B for i in range(len(model.order))]
    assert [c[2] for c in got["computes"]] == [i % B for i in range(len(model.order))]
    assert [c[3] for c in got["computes"]] == model.counts.tolist()
    # queue contents: token ids and gates, in push order
    for i, ex in enumerate(model.order):
        q = queues[ex]
        slot = np.argmax(e[q] == ex, axis=1)
        assert got["streams"][i] == [[int(t), int(qg[t, s])] for t, s in zip(q, slot)], f"queue of expert {ex}"
    # cycles
    assert [ld[0] for ld in got["loads"]] == tl.load_req.tolist()
    assert [ld[3] for ld in got["loads"]] == tl.load_done.tolist()
    assert [c[0] for c in got["computes"]] == tl.comp_start.tolist()
    assert [c[4] for c in got["computes"]] == tl.comp_done.tolist()
    assert got["done"] == tl.done


def test_reorder_pingpong_real_routing(tmp_path, routing):
    """Ping-pong (2 buffers) on all six MoE layers of a real frame plus the first layer of the
    next frame (another task): queues, walk order, buffer swaps and every handshake cycle equal
    the golden model and the simulator; per layer ``T + done`` is the simulator's layer time."""
    spec, cfg = _spec(buffers=2), _cfg()
    layers = [(routing.experts[0, l], routing.gates[0, l]) for l in range(6)]
    layers.append((routing.experts[1, 0], routing.gates[1, 0]))
    res = run_bench(spec, design="moe_reorder", bench="cocotb_moe", case=_case(spec, cfg, layers), workdir=tmp_path)
    for (e, g), got in zip(layers, res["layers"]):
        _check_layer(spec, cfg, e, g, got)
    # the whole-frame simulator agrees with the RTL, layer by layer
    sim = simulate_moe(spec, cfg, Routing(tasks=routing.tasks[:1], experts=routing.experts[:1],
                                          gates=routing.gates[:1], num_experts=16, source=routing.source),
                       schedules=("reorder",))
    acc = math.ceil(spec.acc_width / 8)
    tail = spec.dram_latency_cycles + math.ceil(cfg.tokens * cfg.embed * acc / spec.dram_bytes_per_cycle)
    for lay, got in zip(sim.schedules["reorder"].frames[0].layers, res["layers"][:6]):
        assert lay.cycles == cfg.tokens + got["done"] + tail


@pytest.mark.parametrize("buffers", [1, 3])
def test_reorder_other_buffer_counts(tmp_path, routing, buffers):
    """One buffer (load and compute strictly alternate) and three buffers (two loads ahead):
    the same recurrence with ``B`` = 1 or 3 predicts every cycle of the RTL."""
    spec, cfg = _spec(buffers=buffers), _cfg()
    layers = [(routing.experts[2, l], routing.gates[2, l]) for l in (0, 3)]
    res = run_bench(spec, design="moe_reorder", bench="cocotb_moe", case=_case(spec, cfg, layers), workdir=tmp_path)
    for (e, g), got in zip(layers, res["layers"]):
        _check_layer(spec, cfg, e, g, got)


def test_queue_overflow_flag(tmp_path, routing):
    """A queue pushed past its depth: the RTL drops the extra push, caps the count at the depth
    and raises ``overflow`` (the simulator refuses such routing with a clear error instead)."""
    depth = 16
    spec, cfg = _spec(buffers=2, depth=depth), _cfg(tokens=depth)
    e, g = routing.experts[0, 0][:depth].copy(), routing.gates[0, 0][:depth]
    # every token also goes to expert 3 (replacing its last choice when 3 is not among them)
    e[:, -1] = np.where((e[:, :-1] == 3).any(axis=1), e[:, -1], 3)
    assert np.bincount(e.ravel(), minlength=16)[3] == depth
    # a 17th push (token 0 again) to expert 3 and three others overflows queue 3 only
    extra = np.array([[3, 0, 1, 2]])
    case = _case(spec, cfg, [(np.concatenate([e, extra]), np.concatenate([g, g[:1]]))])
    case["layers"][0]["tokens"] = list(range(depth)) + [0]
    res = run_bench(spec, design="moe_reorder", bench="cocotb_moe", case=case, workdir=tmp_path)
    got = res["layers"][0]
    want = np.bincount(np.concatenate([e, extra]).ravel(), minlength=16)
    assert want[3] == depth + 1
    assert got["overflow"] == 1
    assert got["counts"] == np.minimum(want, depth).tolist()


def test_router_and_scheduler_emit(tmp_path):
    """The router stage and the scheduler also emit on their own (``moe_router``,
    ``moe_scheduler``), with the spec's queue depth and gate width in the manifest."""
    import json

    spec = _spec(buffers=2)
    for design in ("moe_router", "moe_scheduler"):
        path = emit.emit_design(spec, design=design, out_root=tmp_path)
        man = json.loads((path / "manifest.json").read_text())
        assert man["params"]["depth"] == 48
        assert man["top"] == f"sf_{design}"
