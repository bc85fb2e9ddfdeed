"""Build generated Verilog and run a cocotb bench on it with Icarus Verilog.

Used by the pytest files; each call gets its own build folder. Icarus must be installed:
on a developer machine without it the RTL tests skip with that reason, under CI (``CI`` set)
they fail instead, so CI can never pass without running them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from sparseforge.hwgen.emit import emit_design
from sparseforge.spec import HardwareSpec

HERE = Path(__file__).resolve().parent


def require_icarus() -> None:
    if shutil.which("iverilog") and shutil.which("vvp"):
        return
    msg = "Icarus Verilog (iverilog, vvp) is not installed: run `make setup` (apt-get install iverilog)"
    if os.environ.get("CI"):
        pytest.fail(msg + " -- RTL tests must run in CI", pytrace=False)
    pytest.skip(msg)


def run_bench(spec: HardwareSpec, *, design: str, bench: str, case: dict[str, Any], workdir: Path,
              **depths: int) -> dict[str, Any]:
    """Emit ``design`` for ``spec``, run cocotb module ``bench`` on it with ``case`` (JSON),
    and return what the bench wrote as its result."""
    require_icarus()
    from cocotb_tools.runner import get_runner

    workdir.mkdir(parents=True, exist_ok=True)
    ddir = emit_design(spec, design=design, out_root=workdir, name="dut", **depths)
    manifest = json.loads((ddir / "manifest.json").read_text())
    case_file = workdir / "case.json"
    result_file = workdir / "result.json"
    case_file.write_text(json.dumps({**case, "spec": spec.to_dict()}))
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    runner = get_runner("icarus")
    runner.build(sources=[ddir / f for f in manifest["files"]], hdl_toplevel=manifest["top"],
                 build_dir=workdir / "build", always=True, timescale=("1ns", "1ps"))
    runner.test(test_module=bench, hdl_toplevel=manifest["top"], build_dir=workdir / "build",
                extra_env={"SF_CASE": str(case_file), "SF_RESULT": str(result_file)})
    return json.loads(result_file.read_text())
