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
from typing import Any, Mapping

from .base import Section, SpecError, check_type, field_types, parse_value
from .moe import MoeSpec
from .spgemm import SpgemmSpec
from .train import TrainSpec

__all__ = ["SpecError", "HardwareSpec", "SpgemmSpec", "MoeSpec", "TrainSpec", "load_spec", "list_presets", "preset_path"]


DATAFLOWS = ("weight-stationary", "output-stationary", "switchable")

# Fields that name or describe a spec but do not change the hardware: left out of the
# digest so two presets describing the same machine share a digest.
_NON_HARDWARE = ("name", "description")


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
    clock_mhz: float = 200.0
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

    def __post_init__(self) -> None:
        for name, typ in field_types(type(self)).items():
            value = getattr(self, name)
            if isinstance(typ, type) and issubclass(typ, Section) and isinstance(value, Mapping):
                # a section given as a table (as in TOML or to_dict()) is built and validated
                object.__setattr__(self, name, typ.from_mapping(value, source="spec"))
                continue
            check_type(name, value, typ)
        _positive_int(self, "rows", "cols", "n", "m", "max_k")
        _positive_int(self, "weight_buffer_kib", "input_buffer_kib", "output_buffer_kib")
        for name in ("act_width", "weight_width"):
            v = getattr(self, name)
            if not 2 <= v <= 32:
                raise SpecError(f"{name} = {v} is not allowed: operand widths must be 2..32 bits")
        if self.n > self.m:
            raise SpecError(f"n = {self.n} is not allowed with m = {self.m}: N:M sparsity needs 1 <= n <= m")
        if self.m > 64:
            raise SpecError(f"m = {self.m} is not allowed: group size must be at most 64")
        if self.dataflow not in DATAFLOWS:
            raise SpecError(f"dataflow = {self.dataflow!r} is not allowed: choose one of {', '.join(DATAFLOWS)}")
        for name in ("clock_mhz", "dram_bandwidth_gbps"):
            if not getattr(self, name) > 0:
                raise SpecError(f"{name} = {getattr(self, name)} is not allowed: must be > 0")
        for name in ("dram_latency_ns", "e_mac_pj", "e_sram_pj_per_byte", "e_dram_pj_per_byte"):
            if not getattr(self, name) >= 0:
                raise SpecError(f"{name} = {getattr(self, name)} is not allowed: must be >= 0")
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
        return {k: v for k, v in self.to_dict().items() if k not in _NON_HARDWARE}

    @property
    def digest(self) -> str:
        """16 hex digits of SHA-256 over the canonical JSON of the hardware fields."""
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
                raise SpecError(f"unknown field {key!r} in {source}: allowed fields are {_allowed(cls)}")
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
                raise SpecError(f"--set {item!r} is not allowed: write key=value")
            head, dot, sub = key.partition(".")
            section = types.get(head)
            is_section = isinstance(section, type) and issubclass(section, Section)
            if dot and is_section:
                sub_types = field_types(section)
                if sub not in sub_types:
                    raise SpecError(f"unknown field {key!r} in --set: allowed fields are "
                                    + ", ".join(f"{head}.{k}" for k in sorted(sub_types)))
                section_changes.setdefault(head, {})[sub] = parse_value(key, raw.strip(), sub_types[sub])
                continue
            if key not in types or is_section:
                raise SpecError(f"unknown field {key!r} in --set: allowed fields are {_allowed(type(self))}")
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


def _positive_int(spec: HardwareSpec, *names: str) -> None:
    for name in names:
        v = getattr(spec, name)
        if v < 1:
            raise SpecError(f"{name} = {v} is not allowed: must be a positive integer")


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


def load_spec(hw: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> HardwareSpec:
    """Resolve ``--hw`` (a preset name or a TOML file path; the default preset when None)
    and apply ``--set`` overrides."""
    hw = hw or "default"
    if hw.endswith(".toml") or "/" in hw or Path(hw).suffix:
        path = Path(hw)
        if not path.is_file():
            raise SpecError(f"--hw {hw!r}: no such file")
        source = str(path)
        text = path.read_text()
    else:
        presets = list_presets()
        if hw not in presets:
            raise SpecError(f"--hw {hw!r} is not a known preset: choose one of {', '.join(presets)} or give a .toml file")
        source = f"preset {hw}"
        text = preset_path(hw).read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source} is not valid TOML: {exc}") from None
    data.setdefault("name", Path(hw).stem)
    spec = HardwareSpec.from_mapping(data, source=source)
    return spec.with_overrides(overrides) if overrides else spec
