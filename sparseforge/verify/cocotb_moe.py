"""cocotb bench for the MoE reordering unit (``sf_moe_reorder``): plays the router output of
each layer of the case into the queues, starts the expert scheduler, and plays the DRAM side
(``load_done`` exactly ``load_cycles`` after each ``load_req``) and the array side
(``comp_done`` exactly ``compute_cycles[expert]`` after each ``comp_start``), as the simulator
times them. It records, per layer, the queue lengths after the pushes, every handshake with its
cycle, the gathered ``(token, gate)`` stream of each expert and the cycle ``done`` rises. All
checks are made by the pytest file against the golden model and the simulator.

Cycle convention: the scheduler's ``start`` is applied in cycle 0; ``trace`` cycle ``c`` is
what the outputs hold during cycle ``c`` (read on the falling edge); an input applied in cycle
``c`` is set on that cycle's falling edge, before the rising edge that samples it. Pushes take
the ``T`` cycles before ``start``.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge


def _pack(values, width):
    word = 0
    for i, v in enumerate(values):
        word |= int(v) << (i * width)
    return word


@cocotb.test()
async def reorder(dut):
    with open(os.environ["SF_CASE"]) as f:
        case = json.load(f)
    ew, gw, cw = case["expert_width"], case["gate_width"], case["count_width"]
    E = case["experts"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for sig in (dut.clear, dut.in_valid, dut.start, dut.load_done, dut.comp_done):
        sig.value = 0
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    results = []
    for layer in case["layers"]:
        dut.clear.value = 1
        await FallingEdge(dut.clk)
        dut.clear.value = 0
        # router output: one token per cycle
        tokens = layer.get("tokens", range(len(layer["experts"])))
        for t, experts, gates in zip(tokens, layer["experts"], layer["gates"]):
            dut.in_valid.value = 1
            dut.in_token.value = t
            dut.in_experts.value = _pack(experts, ew)
            dut.in_gates.value = _pack(gates, gw)
            await FallingEdge(dut.clk)
        dut.in_valid.value = 0
        counts_raw = dut.counts.value
        assert counts_raw.is_resolvable, f"queue counts have X/Z bits: {counts_raw}"
        word = counts_raw.to_unsigned()
        counts = [(word >> (e * cw)) & ((1 << cw) - 1) for e in range(E)]
        overflow = int(dut.overflow.value)
        dut.start.value = 1                                    # cycle 0
        await FallingEdge(dut.clk)
        dut.start.value = 0
        cycle = 1
        loads, computes, streams = [], [], []
        load_at, comp_at = None, None
        done_cycle = None
        while True:
            for name in ("load_req", "comp_start", "tok_valid", "done"):
                v = getattr(dut, name).value
                assert v.is_resolvable, f"cycle {cycle}: {name} is {v}"
            if int(dut.load_req.value):
                e = int(dut.load_expert.value)
                loads.append([cycle, e, int(dut.load_buf.value)])
                assert load_at is None, f"cycle {cycle}: a second load request while one is in flight"
                load_at = cycle + layer["load_cycles"]
            if int(dut.comp_start.value):
                e = int(dut.comp_expert.value)
                computes.append([cycle, e, int(dut.comp_buf.value), int(dut.comp_count.value)])
                assert comp_at is None, f"cycle {cycle}: a second compute start while one is running"
                comp_at = cycle + layer["compute_cycles"][e]
                streams.append([])
            if int(dut.tok_valid.value):
                streams[-1].append([int(dut.tok_id.value), int(dut.tok_gate.value)])
            if int(dut.done.value):
                done_cycle = cycle
                break
            dut.load_done.value = int(load_at == cycle)
            dut.comp_done.value = int(comp_at == cycle)
            if load_at == cycle:
                loads[-1].append(cycle)
                load_at = None
            if comp_at == cycle:
                computes[-1].append(cycle)
                comp_at = None
            await FallingEdge(dut.clk)
            dut.load_done.value = 0
            dut.comp_done.value = 0
            cycle += 1
            assert cycle < case["timeout_cycles"], f"no done after {cycle} cycles"
        results.append({"counts": counts, "overflow": overflow, "loads": loads, "computes": computes,
                        "streams": streams, "done": done_cycle})
    with open(os.environ["SF_RESULT"], "w") as f:
        json.dump({"layers": results}, f)
