"""cocotb bench for the hash-merge unit (``sf_hashmerge``).

Driver: sends each row's partial products back to back (``in_valid`` high whenever a
product is pending), the next row right after the previous row's ``done``. Monitor: records
the ``out`` and ``spill`` streams and ``done``. Scoreboard: every row's output and spill
streams must equal the expected ones exactly (order included), and the measured cycles and
input stalls per row are written to the result file for the pytest side to compare with the
simulator.

Inputs are driven on the falling edge; after ``ReadOnly`` the settled handshakes are sampled,
so a transfer seen there happens at the next rising edge. ``cycles`` of a row counts the
cycles from the one in which its first product is accepted to the one in which ``done`` is
high, both included. ``out_ready``/``spill_ready`` follow the case's ready patterns (always
high unless the case asks for back-pressure).
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly


def _signed(v: int, width: int) -> int:
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


@cocotb.test()
async def merge_rows(dut):
    with open(os.environ["SF_CASE"]) as f:
        case = json.load(f)
    vw = case["value_width"]
    mask = (1 << vw) - 1
    rows = case["rows"]                 # [[(col, val), ...], ...]
    out_ready_period = case.get("out_ready_period", 1)     # ready on cycles with cycle % period == 0
    spill_ready_period = case.get("spill_ready_period", 1)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for sig in (dut.in_valid, dut.in_last, dut.in_col, dut.in_val):
        sig.value = 0
    dut.out_ready.value = 1
    dut.spill_ready.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    results = []
    cycle = 0
    limit = case["timeout_cycles"]
    for r, row in enumerate(rows):
        outs, spills = [], []
        p = 0
        start = None
        stalls = 0
        while True:
            await FallingEdge(dut.clk)
            cycle += 1
            assert cycle < limit, f"row {r}: no done after {cycle} cycles in all"
            sending = p < len(row)
            dut.in_valid.value = int(sending)
            if sending:
                col, val = row[p]
                dut.in_col.value = col
                dut.in_val.value = val & mask
                dut.in_last.value = int(p == len(row) - 1)
            dut.out_ready.value = int(cycle % out_ready_period == 0)
            dut.spill_ready.value = int(cycle % spill_ready_period == 0)
            await ReadOnly()
            if sending:
                if int(dut.in_ready.value):
                    if p == 0:
                        start = cycle
                    p += 1
                elif start is not None:
                    stalls += 1
            if int(dut.out_valid.value) and int(dut.out_ready.value):
                outs.append([dut.out_col.value.to_unsigned(), _signed(dut.out_val.value.to_unsigned(), vw)])
            if int(dut.spill_valid.value) and int(dut.spill_ready.value):
                spills.append([dut.spill_col.value.to_unsigned(), _signed(dut.spill_val.value.to_unsigned(), vw)])
            if int(dut.done.value):
                assert p == len(row), f"row {r}: done before all {len(row)} products were accepted ({p})"
                results.append({"cycles": cycle - start + 1, "stalls": stalls, "out": outs, "spill": spills})
                break
    with open(os.environ["SF_RESULT"], "w") as f:
        json.dump({"rows": results}, f)
    for r, (res, exp) in enumerate(zip(results, case["expected"])):
        assert res["out"] == exp["out"], f"row {r}: output stream differs: {res['out'][:6]} vs {exp['out'][:6]}"
        assert res["spill"] == exp["spill"], f"row {r}: spill stream differs"
