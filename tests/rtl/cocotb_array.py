"""cocotb bench for the N:M sparse systolic array (``sf_array``): plays a cycle-by-cycle
input schedule (weight-row loads and activation vectors) from the case file and records
``y_valid``/``y_data`` in every cycle.

The checking is done by ``tests/test_rtl_units.py`` on the recorded trace, against the
NumPy golden model. Same timing convention as ``cocotb_pe.py``: ``case["cycles"][j]`` is
driven at the falling edge that starts cycle j (rising edge j samples it); ``trace[j]`` is
read at that falling edge before driving, i.e. what the outputs hold during cycle j. A
vector applied in cycle i whose result appears L cycles later is seen in ``trace[i + L]``.
Outputs with X/Z bits are recorded as ``None``.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

INPUTS = ("x_valid", "x_first", "x_data", "w_we", "w_row", "w_data", "w_idx")
OUTPUTS = ("y_valid", "y_data")


def _read(sig):
    v = sig.value
    return int(v) if v.is_resolvable else None  # Logic (1 bit) or LogicArray, unsigned


@cocotb.test()
async def array_trace(dut):
    with open(os.environ["SF_CASE"]) as f:
        case = json.load(f)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for name in INPUTS:
        getattr(dut, name).value = 0
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    trace = []
    for inputs in case["cycles"]:
        unknown = set(inputs) - set(INPUTS)
        assert not unknown, f"case drives unknown ports {sorted(unknown)}"
        trace.append({name: _read(getattr(dut, name)) for name in OUTPUTS})
        for name in INPUTS:
            getattr(dut, name).value = int(inputs.get(name, 0))
        await FallingEdge(dut.clk)
    trace.append({name: _read(getattr(dut, name)) for name in OUTPUTS})
    with open(os.environ["SF_RESULT"], "w") as f:
        json.dump({"trace": trace}, f)
