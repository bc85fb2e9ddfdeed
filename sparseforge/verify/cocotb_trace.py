"""cocotb bench that plays a cycle-by-cycle input schedule and records every output.

The case file gives ``inputs`` and ``outputs`` (port names) and ``cycles``: one dict of
input values per cycle (missing ports are 0). The bench resets the design, then on each
falling edge records the outputs and drives that cycle's inputs, so ``trace[j]`` is what the
outputs hold during cycle j. X/Z values are recorded as ``None``. All checking happens in
pytest (``tests/test_rtl_units.py``, ``tests/test_rtl_sore.py``), against the golden models.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge


def _read(sig):
    v = sig.value
    return int(v) if v.is_resolvable else None  # Logic (1 bit) or LogicArray, unsigned


@cocotb.test()
async def trace(dut):
    with open(os.environ["SF_CASE"]) as f:
        case = json.load(f)
    inputs, outputs = case["inputs"], case["outputs"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for name in inputs:
        getattr(dut, name).value = 0
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    recorded = []
    for values in case["cycles"]:
        unknown = set(values) - set(inputs)
        assert not unknown, f"case drives unknown ports {sorted(unknown)}"
        recorded.append({name: _read(getattr(dut, name)) for name in outputs})
        for name in inputs:
            getattr(dut, name).value = int(values.get(name, 0))
        await FallingEdge(dut.clk)
    recorded.append({name: _read(getattr(dut, name)) for name in outputs})
    with open(os.environ["SF_RESULT"], "w") as f:
        json.dump({"trace": recorded}, f)
