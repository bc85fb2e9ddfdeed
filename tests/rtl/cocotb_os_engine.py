"""cocotb bench for the output-stationary engine (``sf_os_engine``): loads the memories
from the case file, runs the GEMM (one or more phases, each optionally accumulating onto
the output memory), checks every output word bit-exactly and records the measured cycles.

Driving and sampling happen on the falling clock edge. ``cycles`` counts rising edges from
the one that samples ``start`` up to the first state in which ``done`` is high -- the
quantity :func:`sim.os_engine.os_run_cycles` predicts.
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
async def os_gemm(dut):
    with open(os.environ["SF_CASE"]) as f:
        case = json.load(f)
    acc = case["acc_width"]
    rows = case["rows"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for sig in (dut.start, dut.act_we, dut.wgt_we, dut.cfg_accumulate):
        sig.value = 0
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    results = []
    for phase in case["phases"]:
        for name in ("act", "wgt"):
            we, addr, wdata = getattr(dut, f"{name}_we"), getattr(dut, f"{name}_addr"), getattr(dut, f"{name}_wdata")
            for a, w in enumerate(phase[name]):
                we.value, addr.value, wdata.value = 1, a, int(w, 16)
                await FallingEdge(dut.clk)
            we.value = 0
        dut.cfg_groups.value = phase["groups"]
        dut.cfg_ttiles.value = case["token_tiles"]
        dut.cfg_ntiles.value = case["ntiles"]
        dut.cfg_accumulate.value = phase.get("accumulate", 0)
        for _ in range(phase.get("runs", 1)):
            dut.start.value = 1
            await FallingEdge(dut.clk)
            dut.start.value = 0
            cycles = 1
            while not int(dut.done.value):
                await FallingEdge(dut.clk)
                cycles += 1
                assert cycles < case["timeout_cycles"], f"no done after {cycles} cycles"
            results.append(cycles)
    # read back every output word: expected[tt][nt][c][r]
    mismatches = []
    addr = 0
    for tt in case["expected"]:
        for nt in tt:
            for row in nt:
                dut.out_addr.value = addr
                await FallingEdge(dut.clk)
                raw = dut.out_rdata.value
                assert raw.is_resolvable, f"output word {addr} has X/Z bits: {raw}"
                word = raw.to_unsigned()
                got = [_signed(word >> (r * acc), acc) for r in range(rows)]
                if got != row:
                    mismatches.append((addr, got, row))
                addr += 1
    assert not mismatches, f"{len(mismatches)} output words differ, first: {mismatches[0]}"
    with open(os.environ["SF_RESULT"], "w") as f:
        json.dump({"cycles": results}, f)
