"""cocotb bench for the output-stationary engine (``sf_os_engine``): loads the memories
from the case file, runs the GEMM (one or more phases, each optionally accumulating onto
the output memory), checks every output word bit-exactly and records the measured cycles.

Driving and sampling happen on the falling clock edge. ``cycles`` counts rising edges from
the one that samples ``start`` up to the first state in which ``done`` is high -- the
quantity :func:`sparseforge.sim.units.engine.os_run_cycles` predicts.
"""

from __future__ import annotations

import cocotb

from sparseforge.verify.engine_driver import compare, load, read_case, read_outputs, reset, run, summary, write_result


@cocotb.test()
async def os_gemm(dut):
    case = read_case()
    await reset(dut)
    results = []
    for phase in case["phases"]:
        await load(dut, phase)
        dut.cfg_groups.value = phase["groups"]
        dut.cfg_ttiles.value = case["token_tiles"]
        dut.cfg_ntiles.value = case["ntiles"]
        dut.cfg_accumulate.value = phase.get("accumulate", 0)
        for _ in range(phase.get("runs", 1)):
            results.append(await run(dut, timeout=case["timeout_cycles"]))
    # output words in address order: expected[tt][nt][c] holds one word of `rows` accumulators
    expected = [row for tt in case["expected"] for nt in tt for row in nt]
    got = await read_outputs(dut, words=len(expected), fields=case["rows"], width=case["acc_width"])
    write_result({"cycles": results, "outputs": summary(got, expected)})     # before the checks fail
    compare(got, expected)
    if "expected_cycles" in case:
        assert results == case["expected_cycles"], \
            f"measured {results} cycles, simulator predicts {case['expected_cycles']}"

