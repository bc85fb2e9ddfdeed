"""cocotb bench for one N:M sparse PE (``sf_pe``): plays a cycle-by-cycle input schedule
from the case file and records every output in every cycle.

The checking is done by ``tests/test_rtl_units.py`` on the recorded trace, against the
NumPy golden model. Timing convention (shared with ``cocotb_array.py``):

- *cycle j* is the clock period that starts at falling edge j (counted from the end of
  reset) and contains rising edge j;
- ``case["cycles"][j]`` (a dict of input port -> unsigned int; missing ports are 0) is
  driven at the start of cycle j, so rising edge j samples it;
- ``trace[j]`` is read at the start of cycle j, before cycle j's inputs are driven: the
  values the outputs hold *during* cycle j (all outputs of the PE are registers, so this is
  the state after rising edge j - 1). ``trace[0]`` is the state straight out of reset.

An input applied in cycle i that passes through k registers is therefore seen in
``trace[i + k]``. Outputs with X/Z bits are recorded as ``None``.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

INPUTS = ("x_in", "first_in", "psum_in", "w_we", "w_data", "w_idx")
OUTPUTS = ("x_out", "first_out", "psum_out")


def _read(sig):
    v = sig.value
    return int(v) if v.is_resolvable else None  # Logic (1 bit) or LogicArray, unsigned


@cocotb.test()
async def pe_trace(dut):
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
