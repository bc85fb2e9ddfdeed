"""cocotb bench for the weight-stationary GEMM engine (``sf_engine``): loads the memories
from the case file, runs the GEMM (one or more phases, each optionally accumulating onto the
output memory), checks every output word bit-exactly and records the measured cycles, which
:func:`sparseforge.sim.units.engine.run_cycles` predicts. Output word (nt, t) is at address ``nt * tokens + t``.
"""

from __future__ import annotations

import cocotb

from sparseforge.verify.engine_driver import compare, load, read_case, read_outputs, reset, run, summary, write_result


@cocotb.test()
async def gemm(dut):
    case = read_case()
    await reset(dut)
    # a case is one or more phases; each loads its own memory contents and runs with its own
    # configuration; the output memory carries over, so later phases can accumulate onto it
    phases = case.get("phases") or [{k: case[k] for k in ("act", "wgt", "ktiles", "expected_cycles")}]
    results = []
    for phase in phases:
        await load(dut, phase)
        dut.cfg_tokens.value = case["tokens"]
        dut.cfg_ktiles.value = phase["ktiles"]
        dut.cfg_ntiles.value = case["ntiles"]
        dut.cfg_accumulate.value = phase.get("accumulate", 0)
        for _ in range(case.get("runs", 1)):
            results.append(await run(dut, timeout=case["timeout_cycles"]))
    expected = [row for tile in case["expected"] for row in tile]      # [ntiles][tokens][cols]
    got = await read_outputs(dut, words=len(expected), fields=case["cols"], width=case["acc_width"])
    write_result({"cycles": results, "outputs": summary(got, expected)})     # before the checks fail
    compare(got, expected)
    expected_cycles = [p["expected_cycles"] for p in phases for _ in range(case.get("runs", 1))]
    assert results == expected_cycles, f"measured {results} cycles, simulator predicts {expected_cycles}"
