"""Driving the GEMM engines from cocotb: the host interface they share (``sparseforge.hwgen.engine.MemoryEngine``).

Driving and sampling happen on the falling clock edge, so every value read reflects the
state after the preceding rising edge. :func:`run` counts rising edges from the one that
samples ``start`` up to the first state in which ``done`` is high -- the quantity the
simulator's run models predict.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge


def signed(v: int, width: int) -> int:
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


def read_case() -> dict:
    with open(os.environ["SF_CASE"]) as f:
        return json.load(f)


def write_result(result: dict) -> None:
    with open(os.environ["SF_RESULT"], "w") as f:
        json.dump(result, f)


async def reset(dut) -> None:
    """Start the clock and hold reset for two cycles with every control input low."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for sig in (dut.start, dut.act_we, dut.wgt_we, dut.cfg_accumulate):
        sig.value = 0
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def load(dut, phase: dict) -> None:
    """Write a phase's activation and weight words (hex strings) into the memories."""
    for name in ("act", "wgt"):
        we, addr, wdata = getattr(dut, f"{name}_we"), getattr(dut, f"{name}_addr"), getattr(dut, f"{name}_wdata")
        for a, w in enumerate(phase[name]):
            we.value, addr.value, wdata.value = 1, a, int(w, 16)
            await FallingEdge(dut.clk)
        we.value = 0


async def run(dut, *, timeout: int) -> int:
    """Pulse ``start`` and return the cycles until ``done`` reads high."""
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    cycles = 1
    while not int(dut.done.value):
        await FallingEdge(dut.clk)
        cycles += 1
        assert cycles < timeout, f"no done after {cycles} cycles"
    return cycles


async def read_outputs(dut, *, words: int, fields: int, width: int) -> list[list[int]]:
    """Read output words 0 .. words-1, each split into ``fields`` signed ``width``-bit values."""
    out = []
    for addr in range(words):
        dut.out_addr.value = addr
        await FallingEdge(dut.clk)
        raw = dut.out_rdata.value
        assert raw.is_resolvable, f"output word {addr} has X/Z bits: {raw}"
        word = raw.to_unsigned()
        out.append([signed(word >> (i * width), width) for i in range(fields)])
    return out


def mismatches(got: list[list[int]], expected: list[list[int]]) -> list[tuple[int, list[int], list[int]]]:
    """(address, got, expected) of every output word that differs."""
    assert len(got) == len(expected), f"read {len(got)} output words, expected {len(expected)}"
    return [(i, g, e) for i, (g, e) in enumerate(zip(got, expected)) if g != e]


def summary(got: list[list[int]], expected: list[list[int]]) -> dict:
    """What a bench records of its outputs: words compared, words that differ, the first one."""
    bad = mismatches(got, expected)
    return {"words": len(expected), "values": sum(len(e) for e in expected), "mismatched_words": len(bad),
            "first_mismatch": list(bad[0]) if bad else None}


def compare(got: list[list[int]], expected: list[list[int]]) -> None:
    bad = mismatches(got, expected)
    assert not bad, f"{len(bad)} output words differ, first (addr, got, expected): {bad[0]}"
