"""cocotb bench for the GEMM engine (``sf_engine``): loads the memories from the case file,
runs one GEMM, checks every output word bit-exactly and records the measured cycles.

Driving and sampling happen on the falling clock edge, so every value read reflects the
state after the preceding rising edge. ``cycles`` counts rising edges from the one that
samples ``start`` up to the first state in which ``done`` is high -- the quantity that
:func:`sim.engine.run_cycles` predicts.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge


def _signed(v: int, width: int) -> int:
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


@cocotb.test()
async def gemm(dut):
    with open(os.environ["SF_CASE"]) as f:
        case = json.load(f)
    acc = case["acc_width"]
    cols = case["cols"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for sig in (dut.start, dut.act_we, dut.wgt_we):
        sig.value = 0
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    # a case is one or more phases; each loads its own memory contents and runs with its own
    # configuration; the output memory carries over, so later phases can accumulate onto it
    phases = case.get("phases") or [{k: case[k] for k in ("act", "wgt", "ktiles", "expected_cycles")}]
    results = []
    for phase in phases:
        for name in ("act", "wgt"):
            we, addr, wdata = getattr(dut, f"{name}_we"), getattr(dut, f"{name}_addr"), getattr(dut, f"{name}_wdata")
            for a, w in enumerate(phase[name]):
                we.value, addr.value, wdata.value = 1, a, int(w, 16)
                await FallingEdge(dut.clk)
            we.value = 0
        dut.cfg_tokens.value = case["tokens"]
        dut.cfg_ktiles.value = phase["ktiles"]
        dut.cfg_ntiles.value = case["ntiles"]
        dut.cfg_accumulate.value = phase.get("accumulate", 0)
        for run in range(case.get("runs", 1)):
            dut.start.value = 1
            await FallingEdge(dut.clk)
            dut.start.value = 0
            cycles = 1
            while not int(dut.done.value):
                await FallingEdge(dut.clk)
                cycles += 1
                assert cycles < case["timeout_cycles"], f"no done after {cycles} cycles"
            results.append(cycles)
    # read back and compare every output word
    expected = case["expected"]  # [ntiles][tokens][cols]
    mismatches = []
    for nt, tile in enumerate(expected):
        for t, row in enumerate(tile):
            dut.out_addr.value = nt * case["tokens"] + t
            await FallingEdge(dut.clk)
            raw = dut.out_rdata.value
            assert raw.is_resolvable, f"output word ({nt}, {t}) has X/Z bits: {raw}"
            word = raw.to_unsigned()
            got = [_signed(word >> (c * acc), acc) for c in range(cols)]
            if got != row:
                mismatches.append((nt, t, got, row))
    assert not mismatches, f"{len(mismatches)} output words differ, first: {mismatches[0]}"
    with open(os.environ["SF_RESULT"], "w") as f:
        json.dump({"cycles": results}, f)
    expected_cycles = [p["expected_cycles"] for p in phases for _ in range(case.get("runs", 1))]
    assert results == expected_cycles, f"measured {results} cycles, simulator predicts {expected_cycles}"
