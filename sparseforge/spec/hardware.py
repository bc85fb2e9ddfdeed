"""The hardware spec: one typed, frozen, validated description of an accelerator.

Every part of sparseforge reads its hardware parameters from a :class:`HardwareSpec`:
the dataflow mapper (tile sizes, buffer residency), the simulator (cycles, traffic,
energy) and the RTL generator (array shape, operand widths, pipeline). Nothing keeps a
second copy of a parameter; derived values (accumulator width, index width, pipeline
latency) are properties computed from the fields.

A spec comes from a preset TOML file (``sparseforge/spec/presets/*.toml``), a user's TOML file,
and ``--set key=value`` overrides, in that order. Bad values raise :class:`SpecError`,
which names the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Mapping

from .base import Bound, Section, SpecError, Text, check_bounds, check_type, field_types, parse_value, show
from .moe import MoeSpec
from .spgemm import SpgemmSpec
from .train import TrainSpec

__all__ = ["SpecError", "HardwareSpec", "SpgemmSpec", "MoeSpec", "TrainSpec", "load_spec", "list_presets",
           "preset_path", "mark_overridden", "spec_bounds", "MAX_SPEC_FILE_BYTES", "FPGA_PARTS", "NO_PART"]


DATAFLOWS = ("weight-stationary", "output-stationary", "switchable")
#: how the engines overlap consecutive tiles (folds): ``pipelined`` (double-buffered weights
#: loaded under the previous tile, results drained under the next), or ``none`` (SCALE-Sim's
#: array: every fold pays its weight load, fill and drain; docs/timing.md)
FOLD_OVERLAPS = ("pipelined", "none")

#: The FPGA parts a spec may target (``part``): the devices whose capacities
#: ``sparseforge.hwgen.parts`` holds, in its table order. This is the one list of their names;
#: the part table takes its names from here (tests/test_clocks.py checks the two agree).
FPGA_PARTS = ("XCVU9P", "XCZU7EV", "LFE5U-25F", "LFE5U-45F", "LFE5U-85F")
#: ``part`` of a spec that models a machine that is not an FPGA (smash-piuma's PIUMA-like
#: cores): no synthesised clock applies, so its clock needs a ``clock_source``
NO_PART = "none"

# Fields that name or describe a spec but do not change the hardware: left out of the
# digest so two presets describing the same machine share a digest.
_NON_HARDWARE = ("name", "description")
# Fields that say where the hardware is meant to run and why it assumes its clock: they
# change neither the generated Verilog nor a simulated number, so they stay out of the
# digest too (the synthesis cache and the calibration records key on the digest).
_TARGET = ("part", "clock_source")


@dataclass(frozen=True, kw_only=True)
class HardwareSpec:
    """An N:M structured-sparse systolic accelerator.

    The array has ``rows x cols`` processing elements (PEs). Each PE holds, for one output
    column and one group of ``m`` consecutive reduction indices, up to ``n`` nonzero weights
    with their in-group indices, and owns ``n`` multipliers that pick their activations out
    of the ``m`` activations of its group. ``n == m`` is a dense array.

    Energy defaults are 45 nm figures from M. Horowitz, "Computing's energy problem",
    ISSCC 2014: 8-bit multiply 0.2 pJ + 32-bit add 0.1 pJ per MAC; 64-bit read of an
    8 KiB SRAM 10 pJ (1.25 pJ/byte); DRAM 640 pJ per 32-bit access (160 pJ/byte).

    ``part`` names the target the clock is checked against (one of :data:`FPGA_PARTS`, or
    ``none`` for a machine that is not an FPGA); the default is the LFE5U-85F, the part whose
    Fmax the project measures. ``clock_source`` says where ``clock_mhz`` comes from when the
    RTL is not shown to reach it on ``part`` (a published clock, or an assumption and why):
    ``sparseforge simulate`` warns, naming it, whenever the clock is above the synthesised
    Fmax or has none (docs/spec.md, "Which clock the simulator assumes").
    """

    name: str = "custom"
    description: str = ""
    # -- compute array
    rows: int = 16
    cols: int = 16
    n: int = 2
    m: int = 4
    act_width: int = 8
    weight_width: int = 8
    max_k: int = 16384
    dataflow: str = "weight-stationary"
    fold_overlap: str = "pipelined"
    clock_mhz: float = 200.0
    # -- target: the part the clock is checked against, and why the clock is what it is
    part: str = "LFE5U-85F"
    clock_source: str = ""
    # -- on-chip buffers
    weight_buffer_kib: int = 256
    input_buffer_kib: int = 256
    output_buffer_kib: int = 256
    double_buffer: bool = True
    # -- off-chip memory
    dram_bandwidth_gbps: float = 19.2
    dram_latency_ns: float = 100.0
    # -- energy per event
    e_mac_pj: float = 0.3
    e_sram_pj_per_byte: float = 1.25
    e_dram_pj_per_byte: float = 160.0
    # -- nested sections of the other accelerator units
    spgemm: SpgemmSpec = field(default_factory=SpgemmSpec)
    moe: MoeSpec = field(default_factory=MoeSpec)
    train: TrainSpec = field(default_factory=TrainSpec)

    #: field -> its :class:`~.base.Bound` or :class:`~.base.Text` (docs/spec.md lists them): every
    #: bound keeps cycles, times, traffic and energy finite and every structure allocatable
    BOUNDS: ClassVar[Mapping[str, Bound | Text]] = {
        "name": Text(1, 512, why="printed on one line; design folders are named after it"),
        "description": Text(0, 8192, why="printed on one line"),
        "rows": Bound(1, 512, "PEs", why="twice TPU v1's 256 x 256"),
        "cols": Bound(1, 512, "PEs", why="twice TPU v1's 256 x 256"),
        "n": Bound(1, 64, note="and n <= m", why="N:M keeps n of every m weights"),
        "m": Bound(1, 64, why="an in-group index of at most 6 bits"),
        "act_width": Bound(2, 32, "bits", why="signed operands; products fit the 64-bit accumulator"),
        "weight_width": Bound(2, 32, "bits", why="signed operands; products fit the 64-bit accumulator"),
        "max_k": Bound(1, 1 << 60, note="and acc_width <= 64 bits",
                       why="the accumulator is sized for max_k products and has at most 64 bits"),
        "dataflow": Text(choices=DATAFLOWS, why="the two engines, or the faster one per GEMM"),
        "fold_overlap": Text(choices=FOLD_OVERLAPS,
                             why="the engines' tile overlap, or none as in SCALE-Sim's array (docs/timing.md)"),
        "clock_mhz": Bound(1, 5000, "MHz", why="1 MHz (slow FPGA designs) to 5 GHz (the fastest CPUs)"),
        "part": Text(choices=FPGA_PARTS + (NO_PART,),
                     why="the FPGA parts whose capacities the project holds (hwgen/parts.py), or none for a "
                         "machine that is not an FPGA"),
        "clock_source": Text(0, 512, why="printed on one line, in the clock warning"),
        "weight_buffer_kib": Bound(1, 1 << 20, "KiB", why="1 GiB: more than any FPGA's on-chip memory"),
        "input_buffer_kib": Bound(1, 1 << 20, "KiB", why="1 GiB: more than any FPGA's on-chip memory"),
        "output_buffer_kib": Bound(1, 1 << 20, "KiB", why="1 GiB: more than any FPGA's on-chip memory"),
        "dram_bandwidth_gbps": Bound(0.001, 1e9, "GB/s",
                                     why="from 1 MB/s; the top (HBM3 gives about 1000) stands in for unlimited "
                                         "bandwidth in ideal-memory studies"),
        "dram_latency_ns": Bound(0, 1_000_000, "ns", why="up to 1 ms (DDR4: about 100 ns)"),
        "e_mac_pj": Bound(0, 1_000_000, "pJ", why="1 uJ per event: far above any published figure"),
        "e_sram_pj_per_byte": Bound(0, 1_000_000, "pJ", why="1 uJ per event: far above any published figure"),
        "e_dram_pj_per_byte": Bound(0, 1_000_000, "pJ", why="1 uJ per event: far above any published figure"),
    }

    def __post_init__(self) -> None:
        for name, typ in field_types(type(self)).items():
            value = getattr(self, name)
            if isinstance(typ, type) and issubclass(typ, Section) and isinstance(value, Mapping):
                # a section given as a table (as in TOML or to_dict()) is built and validated
                object.__setattr__(self, name, typ.from_mapping(value, source="spec"))
                continue
            check_type(name, value, typ)
        check_bounds(self, self.BOUNDS)
        if self.n > self.m:
            raise SpecError(f"n = {self.n} is not allowed with m = {self.m}: N:M sparsity needs 1 <= n <= m")
        if self.acc_width > 64:
            raise SpecError(
                f"max_k = {self.max_k} is not allowed with {self.act_width}-bit activations and "
                f"{self.weight_width}-bit weights: the accumulator would need {self.acc_width} > 64 bits")

    # ---------------------------------------------------------------- derived values
    @property
    def dense(self) -> bool:
        """True when the array has no sparsity support (n == m)."""
        return self.n == self.m

    @property
    def idx_width(self) -> int:
        """Bits of one in-group index (log2 m, at least 1 so ports never vanish)."""
        return max(1, math.ceil(math.log2(self.m)))

    @property
    def acc_width(self) -> int:
        """Accumulator bits so that a dot product of ``max_k`` products cannot overflow.

        A product of two signed ``a``- and ``w``-bit integers fits ``a + w`` signed bits
        (the extreme is (-2^(a-1)) * (-2^(w-1)) = 2^(a+w-2)); a sum of ``K`` of them needs
        ``ceil(log2 K)`` more.
        """
        return self.act_width + self.weight_width + (self.max_k - 1).bit_length()  # ceil(log2 max_k)

    @property
    def multipliers(self) -> int:
        return self.rows * self.cols * self.n

    @property
    def pe_latency(self) -> int:
        """Pipeline stages of a PE from its activation register to its partial-sum
        register: index mux, multiply, product sum, add of the incoming partial sum."""
        return 4

    @property
    def array_latency(self) -> int:
        """Cycles from an activation vector at the array's input port to its output vector
        at the output port: the input register, ``rows - 1`` input-skew registers, the PE
        activation register, ``cols - 1`` hops along a row, the PE pipeline, and the
        output deskew (which brings every column level with the last, so it adds nothing
        to the last column's path). See docs/timing.md."""
        return self.rows + self.cols + self.pe_latency

    @property
    def cycle_ns(self) -> float:
        return 1000.0 / self.clock_mhz

    @property
    def dram_bytes_per_cycle(self) -> float:
        return self.dram_bandwidth_gbps * 1e9 / (self.clock_mhz * 1e6)

    @property
    def dram_latency_cycles(self) -> int:
        return math.ceil(self.dram_latency_ns / self.cycle_ns)

    # ---------------------------------------------------------------- records
    def to_dict(self) -> dict[str, Any]:
        """All fields; sections become nested dicts (as in a TOML file)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, Section) else v
        return out

    def hardware_dict(self) -> dict[str, Any]:
        """The fields the digest covers: all but the name, the description, the target
        ``part`` and the ``clock_source`` (none of them changes the Verilog or a simulated
        number)."""
        return {k: v for k, v in self.to_dict().items() if k not in _NON_HARDWARE + _TARGET}

    @property
    def digest(self) -> str:
        """16 hex digits of SHA-256 over the canonical JSON of the hardware fields
        (:meth:`hardware_dict`)."""
        blob = json.dumps(self.hardware_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def record(self) -> dict[str, Any]:
        """What every artifact stores: the full spec, its digest and derived values."""
        return {
            "spec": self.to_dict(),
            "digest": self.digest,
            "derived": {
                "idx_width": self.idx_width,
                "acc_width": self.acc_width,
                "multipliers": self.multipliers,
                "pe_latency": self.pe_latency,
                "array_latency": self.array_latency,
            },
        }

    def replace(self, **changes: Any) -> "HardwareSpec":
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "spec") -> "HardwareSpec":
        types = field_types(cls)
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in types:
                raise SpecError(f"unknown field {show(key)} in {source}: allowed fields are {_allowed(cls)}")
            section = types[key]
            if isinstance(section, type) and issubclass(section, Section) and not isinstance(value, Section):
                value = section.from_mapping(value, source=source)
            kwargs[key] = value
        return cls(**kwargs)

    def with_overrides(self, assignments: list[str] | tuple[str, ...]) -> "HardwareSpec":
        """Apply ``key=value`` strings (the CLI's ``--set``), parsed by each field's type."""
        types = field_types(type(self))
        changes: dict[str, Any] = {}
        section_changes: dict[str, dict[str, Any]] = {}
        for item in assignments:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep:
                raise SpecError(f"--set {show(item)} is not allowed: write key=value")
            head, dot, sub = key.partition(".")
            section = types.get(head)
            is_section = isinstance(section, type) and issubclass(section, Section)
            if dot and is_section:
                sub_types = field_types(section)
                if sub not in sub_types:
                    raise SpecError(f"unknown field {show(key)} in --set: allowed fields are "
                                    + ", ".join(f"{head}.{k}" for k in sorted(sub_types)))
                section_changes.setdefault(head, {})[sub] = parse_value(key, raw.strip(), sub_types[sub])
                continue
            if key not in types or is_section:
                raise SpecError(f"unknown field {show(key)} in --set: allowed fields are {_allowed(type(self))}")
            changes[key] = parse_value(key, raw.strip(), types[key])
        for head, sub in section_changes.items():
            changes[head] = dataclasses.replace(getattr(self, head), **sub)
        return self.replace(**changes)


# -------------------------------------------------------------------- helpers
def _allowed(cls: type) -> str:
    """The field list of an unknown-field message: plain fields, then the sections."""
    types = field_types(cls)
    plain = sorted(k for k, t in types.items() if not (isinstance(t, type) and issubclass(t, Section)))
    sections = sorted(k for k in types if k not in plain)
    return ", ".join(plain) + "; sections " + ", ".join(f"{k}.*" for k in sections)


def list_presets() -> dict[str, str]:
    """Built-in preset names mapped to their one-line descriptions."""
    out = {}
    for entry in sorted(resources.files("sparseforge.spec.presets").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text())
            out[entry.name[:-5]] = str(data.get("description", ""))
    return out


def preset_path(name: str) -> Path:
    return Path(str(resources.files("sparseforge.spec.presets").joinpath(f"{name}.toml")))


def spec_bounds() -> dict[str, Bound | Text]:
    """Every bounded field of the spec, top level first, then each section's as
    ``section.field``: its :class:`~.base.Bound` (numbers) or :class:`~.base.Text` (text and
    choices). Booleans and the sections themselves have none. docs/spec.md lists the same
    table; the bad-input tests are generated from it."""
    out: dict[str, Bound | Text] = dict(HardwareSpec.BOUNDS)
    for name, typ in field_types(HardwareSpec).items():
        if isinstance(typ, type) and issubclass(typ, Section):
            out.update({f"{name}.{k}": b for k, b in typ.BOUNDS.items()})
    return out


#: largest spec file :func:`load_spec` reads (the presets are below 3 KiB)
MAX_SPEC_FILE_BYTES = 1 << 20


def _read_spec_file(hw: str) -> str:
    """The text of the spec file ``hw``; :class:`SpecError` naming the file and what is wrong
    when it is missing, a folder or another non-file, unreadable, too large, or not UTF-8."""
    import os
    import stat

    try:
        st = os.stat(hw)
    except FileNotFoundError:
        raise SpecError(f"--hw {show(hw, 1000)}: no such file") from None
    except (OSError, ValueError) as exc:     # too long, a component is a file, embedded NUL ...
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(f"--hw {show(hw, 1000)} cannot be read: {why}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SpecError(f"--hw {show(hw, 1000)} is a folder, not a TOML file: give a .toml file or a preset name")
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(f"--hw {show(hw, 1000)} is not a regular file: give a .toml file or a preset name")
    if st.st_size > MAX_SPEC_FILE_BYTES:
        raise SpecError(f"--hw {show(hw, 1000)} is {st.st_size} bytes, which is not allowed: a spec file is at most "
                        f"{MAX_SPEC_FILE_BYTES} bytes")
    try:
        with open(hw, "rb") as f:
            raw = f.read(MAX_SPEC_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"--hw {show(hw, 1000)} cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_SPEC_FILE_BYTES:
        raise SpecError(f"--hw {show(hw, 1000)} is larger than {MAX_SPEC_FILE_BYTES} bytes, which is not allowed "
                        "for a spec file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"--hw {show(hw, 1000)} is not UTF-8 text (byte {exc.start} is {raw[exc.start]:#04x}): "
                        "a TOML spec file is UTF-8") from None


def load_spec(hw: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> HardwareSpec:
    """Resolve ``--hw`` (a preset name or a TOML file path; the default preset when None)
    and apply ``--set`` overrides; a spec they change is renamed and its description
    extended (:func:`mark_overridden`)."""
    if hw is None:
        hw = "default"
    if not isinstance(hw, str) or not hw.strip() or not hw.isprintable():
        raise SpecError(f"--hw {show(hw)} is not allowed: give a preset name (see `sparseforge presets`) "
                        "or a .toml file")
    if hw.endswith(".toml") or "/" in hw or Path(hw).suffix:
        source, text = str(Path(hw)), _read_spec_file(hw)
    else:
        presets = list_presets()
        if hw not in presets:
            raise SpecError(f"--hw {show(hw)} is not a known preset: choose one of {', '.join(presets)} "
                            "or give a .toml file")
        source = f"preset {hw}"
        text = preset_path(hw).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source} is not valid TOML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise SpecError(f"{source} is not allowed: its tables or arrays are nested too deeply for a spec "
                        "(a spec has one level of sections)") from None
    except ValueError as exc:               # e.g. an integer of more than 4300 digits
        raise SpecError(f"{source} is not valid TOML: {str(exc).splitlines()[0]}") from None
    data.setdefault("name", Path(hw).stem)
    spec = HardwareSpec.from_mapping(data, source=source)
    return mark_overridden(spec, spec.with_overrides(overrides)) if overrides else spec


# -------------------------------------------------------------------- overridden specs
#: longest name :func:`mark_overridden` builds from field names and values; longer ones
#: become ``<base>-set-<digest[:8]>`` (design folders are named ``<spec name>-<design>``
#: and allow 64 characters)
_MARKED_NAME_MAX = 40


def _flat(spec: HardwareSpec) -> dict[str, Any]:
    """Every field as ``key`` or ``section.key`` -> value."""
    out: dict[str, Any] = {}
    for key, value in spec.to_dict().items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _name_part(text: str) -> str:
    """``text`` with only letters, digits and '_' (a '.' in a number becomes 'p': 2.5 -> 2p5)."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "p" if c == "." else "_" for c in text)


def _value_text(value: Any) -> str:
    """A value as the name shows it: floats without a trailing '.0' (250.0 -> 250)."""
    text = repr(value) if isinstance(value, float) else str(value)
    return text[:-2] if isinstance(value, float) and text.endswith(".0") else text


def mark_overridden(base: HardwareSpec, spec: HardwareSpec) -> HardwareSpec:
    """Mark ``spec``, made from ``base`` by overrides (``--set`` or keyword overrides), as
    overridden. The rule: every hardware field whose value differs from ``base`` is listed,
    in field order, in

    - the name: ``<base name>-<field><value>-...`` with only letters, digits, '_' and '-'
      (a section's '.' becomes '_', a number's '.' becomes 'p'), e.g. ``tiny-rows2``,
      ``default-clock_mhz250p5``, ``default-spgemm_pes8``; if that is longer than 40
      characters, ``<base name>-set-<first 8 digits of the digest>``;
    - the description: ``<base description> [overridden: rows=2, clock_mhz=250.5]``.

    A name or description that the overrides set themselves is kept as given. A spec whose
    hardware fields equal ``base``'s keeps ``base``'s name and description. The digest does
    not change (it leaves out name and description).

    ``clock_source`` is not listed (it is prose). The base's ``clock_source`` explains the
    base's clock on the base's part, so overrides that change ``clock_mhz`` or ``part``
    without setting ``clock_source`` themselves drop it (it becomes empty)."""
    old, new = _flat(base), _flat(spec)
    changed = [k for k in new if k not in _NON_HARDWARE + ("clock_source",) and new[k] != old[k]]
    if not changed:
        return spec
    changes: dict[str, Any] = {}
    if spec.clock_source and spec.clock_source == base.clock_source and (
            spec.clock_mhz != base.clock_mhz or spec.part != base.part):
        changes["clock_source"] = ""
    if spec.name == base.name:
        name = base.name + "".join(f"-{_name_part(k.replace('.', '_'))}{_name_part(_value_text(new[k]))}"
                                   for k in changed)
        changes["name"] = name if len(name) <= _MARKED_NAME_MAX else f"{base.name}-set-{spec.digest[:8]}"
    if spec.description == base.description:
        listed = ", ".join(f"{k}={new[k]!r}" if isinstance(new[k], str) else f"{k}={new[k]}" for k in changed)
        changes["description"] = f"{base.description} [overridden: {listed}]".lstrip()
    return spec.replace(**changes) if changes else spec
