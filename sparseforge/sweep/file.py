"""The sweep file: parse, validate and hold a co-design sweep's definition (docs/sweep.md).

A sweep file is TOML with five tables::

    [sweep]      name, base (preset or spec TOML), set = ["key=value", ...], description
    [axes]       spec fields -> lists, ranges, linked axes; the special "nm" axis
    [[workloads]] inference / training / spgemm / moe entries, each with a weight
    [target]     part (an FPGA part name) and objectives
    [search]     kind = "grid" | "random" (n, seed) | "nsga2" (n_trials, seed, population)

Every mistake raises :class:`SweepError` (an :class:`~sparseforge.errors.InputError`) with one
line naming the file, the key, the offending value and what is allowed. Validation uses the
spec's own field list (the dataclass fields of :class:`~sparseforge.spec.HardwareSpec` and of
its sections), so a field added to the spec is an axis at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..spec import NO_PART, HardwareSpec, SpecError, list_presets, load_spec
from ..spec.base import Section, field_types

__all__ = [
    "NM_AXIS",
    "PRUNE_AXIS",
    "PRUNE_KEYS",
    "OBJECTIVES",
    "SYNTH",
    "WORKLOAD_KINDS",
    "Axis",
    "Search",
    "Sweep",
    "SweepError",
    "Workload",
    "load_sweep",
    "parse_nm",
    "parse_sweep",
]


class SweepError(InputError):
    """A sweep file (or a sweep's run folder) is invalid: one line naming the file, the key,
    the value and what is allowed."""


#: objective name -> (results column, direction)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "latency": ("latency_s", "min"),
    "energy": ("energy_j", "min"),
    "dsp": ("dsp", "min"),
    "lut": ("lut", "min"),
    "bram": ("bram36", "min"),
    "edp": ("edp", "min"),
    "throughput": ("throughput", "max"),
    "perf_per_dsp": ("perf_per_dsp", "max"),
    "accuracy": ("accuracy", "max"),
}

#: the special axis setting the spec's ``n`` and ``m`` together ("2:4", "dense", ...)
NM_AXIS = "nm"
#: the special axis choosing how the weights are pruned (docs/pruning.md): it changes accuracy,
#: never cycles
PRUNE_AXIS = "prune"
#: optional keys of a MiniLM inference workload for its accuracy (docs/sweep.md "Accuracy"), with
#: their defaults; left out of the workload's parameters unless given
PRUNE_KEYS: dict[str, Any] = {"prune": "sparsegpt", "calib": 8192, "recover": True}
#: the clock value meaning "run at the design's achievable clock"
SYNTH = "synth"
#: the most points a grid may have (a larger space needs kind = "random" or "nsga2")
MAX_GRID = 10_000_000
_RANGE_KEYS = {"start", "stop", "step", "factor"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
#: spec fields no axis may name: the labels, and the target (``part`` comes from ``[target]
#: part``, which every point's spec takes, and ``clock_source`` is prose about the base clock)
_NON_HARDWARE = ("name", "description", "part", "clock_source")

# Metrics each workload kind produces (the resource metrics come from the resource model
# for every kind). MoE schedules are timed but have no energy model (sim.moe).
_KIND_METRICS = {
    "inference": {"latency", "energy", "edp", "throughput"},
    "training": {"latency", "energy", "edp", "throughput"},
    "spgemm": {"latency", "energy", "edp", "throughput"},
    "moe": {"latency", "throughput"},
}
_RESOURCE_METRICS = {"dsp", "lut", "bram"}

# Per kind: allowed keys with their defaults (None: required or derived).
_COMMON = {"kind": None, "name": None, "weight": 1.0}
WORKLOAD_KINDS: dict[str, dict[str, Any]] = {
    "inference": {"net": None, "onnx": None, "input_shapes": None, "sparsity": "array", "tokens": 128, "batch": 1},
    "training": {"net": None, "method": "bdwp", "sparsity": "array", "batch": 32, "interleave": True,
                 "pregenerate": True},
    "spgemm": {"a": None, "b": None, "dataflow": "rowwise-hash"},
    "moe": {"net": "m3vit-small", "tasks": ["seg", "depth", "seg", "normals"], "frames": None, "schedule": "reorder",
            "routing": "real", "seed": 0, "zipf": 1.0, "experts": None, "top_k": None, "tokens": None},
}


# ============================================================================ data
@dataclass(frozen=True)
class Axis:
    """One axis: a spec field (``rows``, ``spgemm.pes``) or ``nm``, with its values in
    declared order, or the name of the axis it follows (``link``)."""

    name: str
    values: tuple[Any, ...] = ()
    link: str | None = None


@dataclass(frozen=True)
class Workload:
    """One workload of the sweep; ``params`` holds its kind's keys with defaults filled in."""

    kind: str
    name: str
    weight: float
    params: tuple[tuple[str, Any], ...]

    def __getitem__(self, key: str) -> Any:
        return dict(self.params)[key]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "weight": self.weight, **dict(self.params)}


@dataclass(frozen=True)
class Search:
    kind: str = "grid"
    n: int | None = None            # random: points; nsga2: trials (distinct points)
    seed: int = 0
    population: int | None = None   # nsga2: population per generation


@dataclass(frozen=True)
class Sweep:
    """A validated sweep definition."""

    name: str
    description: str
    source: str                      # the file it came from (for messages)
    text: str                        # the file's text
    base: str                        # preset name or resolved TOML path
    base_set: tuple[str, ...]        # the [sweep] set overrides (without clock_mhz=synth)
    base_clock_synth: bool           # [sweep] set has clock_mhz=synth
    base_spec: HardwareSpec = field(compare=False)
    axes: tuple[Axis, ...]
    workloads: tuple[Workload, ...]
    part: str
    objectives: tuple[str, ...]
    search: Search

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def free_axes(self) -> tuple[Axis, ...]:
        """The axes with their own values (not linked)."""
        return tuple(a for a in self.axes if a.link is None)

    @property
    def bool_axes(self) -> tuple[str, ...]:
        """Axes of boolean fields (SQLite stores them as 0/1; the results table gives bools)."""
        fields = _spec_fields()
        return tuple(a.name for a in self.axes if fields.get(a.name) is bool)

    def grid_size(self) -> int:
        return math.prod(len(a.values) for a in self.free_axes)

    def canonical(self) -> dict[str, Any]:
        """What defines the run (formatting, comments and the description left out): two
        files with the same canonical form describe the same sweep."""
        return {
            "name": self.name, "base_digest": self.base_spec.digest, "base_set": list(self.base_set),
            "base_clock_synth": self.base_clock_synth,
            "axes": [{"name": a.name, "values": list(a.values), "link": a.link} for a in self.axes],
            "workloads": [w.to_dict() for w in self.workloads], "part": self.part,
            "objectives": list(self.objectives),
            "search": {"kind": self.search.kind, "n": self.search.n, "seed": self.search.seed,
                       "population": self.search.population},
        }

    @property
    def definition_digest(self) -> str:
        return _digest(self.canonical())

    @property
    def workload_key(self) -> str:
        """16 hex digits identifying the workload list (kinds, parameters, weights)."""
        return _digest([w.to_dict() for w in self.workloads])


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ============================================================================ helpers
def parse_nm(text: Any) -> tuple[int, int] | None:
    """``"2:4"`` -> (2, 4); ``"dense"`` -> None; ValueError otherwise."""
    if text == "dense":
        return None
    if not isinstance(text, str):
        raise ValueError(text)
    n, sep, m = text.partition(":")
    if not sep or not n.strip().isdigit() or not m.strip().isdigit():
        raise ValueError(text)
    n_, m_ = int(n), int(m)
    if not 1 <= n_ <= m_ <= 64:
        raise ValueError(text)
    return (n_, m_)


def _fmt(v: Any) -> str:
    """A value as it would be written in TOML (for messages)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_fmt(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _spec_fields() -> dict[str, Any]:
    """Every hardware field an axis may name: plain fields, and ``section.field``."""
    out: dict[str, Any] = {}
    for name, typ in field_types(HardwareSpec).items():
        if name in _NON_HARDWARE:
            continue
        if isinstance(typ, type) and issubclass(typ, Section):
            for sub, st in field_types(typ).items():
                out[f"{name}.{sub}"] = st
        else:
            out[name] = typ
    return out


def _sections() -> set[str]:
    return {n for n, t in field_types(HardwareSpec).items() if isinstance(t, type) and issubclass(t, Section)}


def _type_ok(value: Any, typ: Any) -> bool:
    if typ is bool:
        return isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, typ)


def _type_word(typ: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(typ, typ.__name__)


# ============================================================================ the parser
class _Parser:
    def __init__(self, source: str, folder: Path):
        self.source = source
        self.folder = folder

    def fail(self, msg: str) -> SweepError:
        return SweepError(f"{self.source}: {msg}")

    def table(self, data: Mapping[str, Any], key: str, *, required: bool = False) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(f"[{key}] is missing: a sweep file needs [sweep], [axes], [[workloads]] and [target]")
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"{key} = {_fmt(value)} is not allowed: [{key}] must be a table")
        return value

    def keys(self, table: Mapping[str, Any], where: str, allowed: Mapping[str, Any] | set[str]) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(f"unknown key {key!r} in {where}: allowed keys are {', '.join(sorted(allowed))}")

    # ---------------------------------------------------------------- [sweep]
    def sweep_table(self, data: Mapping[str, Any], default_name: str):
        t = self.table(data, "sweep", required=True)
        self.keys(t, "[sweep]", {"name", "base", "set", "description"})
        name = t.get("name", default_name)
        if not isinstance(name, str) or not _NAME.match(name):
            raise self.fail(f"[sweep] name = {_fmt(name)} is not allowed: use letters, digits, '_' and '-', "
                            "starting with a letter (at most 64 characters); it names the run folder")
        desc = t.get("description", "")
        if not isinstance(desc, str):
            raise self.fail(f"[sweep] description = {_fmt(desc)} is not allowed: must be a string")
        base = t.get("base", "default")
        if not isinstance(base, str) or not base:
            raise self.fail(f"[sweep] base = {_fmt(base)} is not allowed: give a preset name or a spec .toml path")
        presets = list_presets()
        if base.endswith(".toml") or "/" in base:
            path = Path(base) if Path(base).is_absolute() else self.folder / base
            if not path.is_file():
                raise self.fail(f"[sweep] base = {_fmt(base)} is not allowed: no such file {path}")
            base = str(path.resolve())
        elif base not in presets:
            raise self.fail(f"[sweep] base = {_fmt(base)} is not allowed: choose a preset ({', '.join(presets)}) "
                            "or a spec .toml path")
        sets = t.get("set", [])
        if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
            raise self.fail(f"[sweep] set = {_fmt(sets)} is not allowed: give a list of \"key=value\" strings")
        synth = False
        kept = []
        for s in sets:
            key, _, value = s.partition("=")
            if key.strip() == "clock_mhz" and value.strip() == SYNTH:
                synth = True
            else:
                kept.append(s)
        try:
            spec = load_spec(base, kept)
        except SpecError as exc:
            raise self.fail(f"[sweep] base = {_fmt(t.get('base', 'default'))}, set = {_fmt(sets)}: {exc}") from None
        return name, desc, base, tuple(kept), synth, spec

    # ---------------------------------------------------------------- [axes]
    def axes_table(self, data: Mapping[str, Any]) -> tuple[Axis, ...]:
        t = self.table(data, "axes", required=True)
        fields = _spec_fields()
        sections = _sections()
        flat: list[tuple[str, Any]] = []
        for key, value in t.items():
            if key in sections and isinstance(value, dict) and not (set(value) <= _RANGE_KEYS or "values" in value):
                flat += [(f"{key}.{sub}", v) for sub, v in value.items()]   # spgemm.pes = ... (dotted key)
            else:
                flat.append((key, value))
        if not flat:
            raise self.fail("[axes] is empty: declare at least one axis, e.g. rows = [8, 16, 32]")
        names = [k for k, _ in flat]
        allowed = f"{NM_AXIS}, " + ", ".join(sorted(fields)) + f", and {PRUNE_AXIS} (the pruning method)"
        for key in names:
            if key not in (NM_AXIS, PRUNE_AXIS) and key not in fields:
                raise self.fail(f"unknown field {key!r} in [axes]: allowed fields are {allowed}")
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise self.fail(f"[axes] {dup} is declared twice")
        if NM_AXIS in names and ({"n", "m"} & set(names)):
            raise self.fail(f"[axes] {NM_AXIS} is not allowed with an n or m axis: nm sets both n and m")
        axes: list[Axis] = []
        for key, value in flat:
            typ = str if key in (NM_AXIS, PRUNE_AXIS) else fields[key]
            if isinstance(value, str) and value in names and value != key:
                axes.append(Axis(key, link=value))
                continue
            values = self.axis_values(key, value, typ)
            for v in values:
                self.check_value(key, v, typ, names)
            if len(set(map(_fmt, values))) != len(values):
                raise self.fail(f"[axes] {key} = {_fmt(list(values))} is not allowed: values must be distinct")
            axes.append(Axis(key, values=tuple(values)))
        # links: resolve chains, refuse cycles and links to nm, check types
        by_name = {a.name: a for a in axes}
        for a in axes:
            if a.link is None:
                continue
            seen = [a.name]
            cur = a
            while cur.link is not None:
                if cur.link in seen:
                    raise self.fail(f"[axes] {a.name} = {_fmt(a.link)} is not allowed: the links "
                                    f"{' -> '.join(seen + [cur.link])} form a cycle")
                seen.append(cur.link)
                cur = by_name[cur.link]
            for special in (NM_AXIS, PRUNE_AXIS):
                if special in (a.name, cur.name):
                    raise self.fail(f"[axes] {a.name} = {_fmt(a.link)} is not allowed: the {special} axis cannot "
                                    "be linked")
            for v in cur.values:
                if not _type_ok(v, fields[a.name]) or v == SYNTH:
                    raise self.fail(f"[axes] {a.name} = {_fmt(a.link)} is not allowed: {cur.name}'s value {_fmt(v)} "
                                    f"is not valid for {a.name} (must be {_type_word(fields[a.name])})")
        return tuple(axes)

    def axis_values(self, key: str, value: Any, typ: Any) -> list[Any]:
        if isinstance(value, list):
            if not value:
                raise self.fail(f"[axes] {key} = [] is not allowed: an axis needs at least one value")
            return list(value)
        if isinstance(value, dict):
            if "values" in value:
                if set(value) != {"values"} or not isinstance(value["values"], list):
                    raise self.fail(f"[axes] {key} = {_fmt(value)} is not allowed: write {{values = [...]}} alone")
                return self.axis_values(key, value["values"], typ)
            return self.range_values(key, value, typ)
        return [value]          # a single fixed value

    def range_values(self, key: str, r: dict[str, Any], typ: Any) -> list[Any]:
        shown = f"[axes] {key} = {_fmt(r)}"
        extra = set(r) - _RANGE_KEYS
        if extra:
            raise self.fail(f"{shown} is not allowed: unknown range key {sorted(extra)[0]!r} "
                            "(a range is {start, stop, step} or {start, stop, factor}, or write {values = [...]})")
        if "start" not in r or "stop" not in r or ("step" in r) == ("factor" in r):
            raise self.fail(f"{shown} is not allowed: a range needs start, stop and exactly one of step or factor")
        for k in r:
            if not _type_ok(r[k], float):
                raise self.fail(f"{shown} is not allowed: {k} must be a number")
        if typ not in (int, float):
            raise self.fail(f"{shown} is not allowed: a range needs a numeric field, {key} is {_type_word(typ)}")
        start, stop = r["start"], r["stop"]
        if stop < start:
            raise self.fail(f"{shown} is not allowed: stop must be >= start")
        ints = all(isinstance(v, int) for v in r.values())
        if typ is int and not ints:
            raise self.fail(f"{shown} is not allowed: {key} is an integer field, so start, stop and "
                            f"{'step' if 'step' in r else 'factor'} must be integers")
        out: list[Any] = []
        if "step" in r:
            step = r["step"]
            if step <= 0:
                raise self.fail(f"{shown} is not allowed: step must be > 0")
            count = math.floor((stop - start) / step + 1e-9) + 1
            if count > 100_000:
                raise self.fail(f"{shown} is not allowed: it has {count} values (at most 100000)")
            out = [start + i * step if ints else round(start + i * step, 12) for i in range(count)]
        else:
            factor = r["factor"]
            if factor <= 1 or start <= 0:
                raise self.fail(f"{shown} is not allowed: a geometric range needs factor > 1 and start > 0")
            v = start
            while v <= stop * (1 + 1e-12) and len(out) <= 100_000:
                out.append(v if ints else round(v, 12))
                v = v * factor
        return out

    def check_value(self, key: str, v: Any, typ: Any, names: list[str]) -> None:
        if key == PRUNE_AXIS:
            from ..models.nm_methods import METHODS

            if v not in METHODS:
                raise self.fail(f"[axes] prune value {_fmt(v)} is not allowed: choose pruning methods from "
                                f"{', '.join(METHODS)}")
            return
        if key == NM_AXIS:
            try:
                parse_nm(v)
            except ValueError:
                raise self.fail(f"[axes] nm value {_fmt(v)} is not allowed: write \"N:M\" with 1 <= N <= M <= 64 "
                                "or \"dense\"") from None
            return
        if key == "clock_mhz" and v == SYNTH:
            return
        if isinstance(v, (list, dict)):
            raise self.fail(f"[axes] {key} value {_fmt(v)} is not allowed: values must be scalars")
        if not _type_ok(v, typ):
            extra = ' or "synth" (the achievable clock)' if key == "clock_mhz" else ""
            link = f", or the name of another axis ({', '.join(n for n in names if n != key)})" \
                if isinstance(v, str) and len(names) > 1 else ""
            raise self.fail(f"[axes] {key} value {_fmt(v)} is not allowed: {key} must be {_type_word(typ)}{extra}{link}")

    # ---------------------------------------------------------------- [[workloads]]
    def workloads_table(self, data: Mapping[str, Any]) -> tuple[Workload, ...]:
        wl = data.get("workloads")
        if wl is None:
            raise self.fail("[[workloads]] is missing: declare at least one workload "
                            "(kind = inference, training, spgemm or moe)")
        if not isinstance(wl, list) or not wl or not all(isinstance(w, dict) for w in wl):
            raise self.fail(f"workloads = {_fmt(wl)} is not allowed: write one [[workloads]] table per workload")
        out: list[Workload] = []
        for i, w in enumerate(wl):
            out.append(self.workload(i, w))
        names = [w.name for w in out]
        for i, n in enumerate(names):
            if names.count(n) > 1:
                raise self.fail(f"workloads[{i}].name = {_fmt(n)} is not allowed: workload names must be distinct")
        return tuple(out)

    def workload(self, i: int, w: dict[str, Any]) -> Workload:
        where = f"workloads[{i}]"
        kind = w.get("kind")
        if kind not in WORKLOAD_KINDS:
            raise self.fail(f"{where}.kind = {_fmt(kind)} is not allowed: choose one of {', '.join(WORKLOAD_KINDS)}")
        allowed = {**_COMMON, **WORKLOAD_KINDS[kind], **(PRUNE_KEYS if kind == "inference" else {})}
        self.keys(w, f"{where} (kind {kind})", allowed)
        params = {k: w.get(k, v) for k, v in WORKLOAD_KINDS[kind].items()}
        prune = {k: w[k] for k in PRUNE_KEYS if kind == "inference" and k in w}
        weight = w.get("weight", 1.0)
        if not _type_ok(weight, float) or weight <= 0:
            raise self.fail(f"{where}.weight = {_fmt(weight)} is not allowed: must be a number > 0")
        from .workloads import check_workload, default_name

        try:
            params = check_workload(kind, params, folder=self.folder)
            if prune:
                params.update(_check_prune_keys(params, prune))
        except _Bad as bad:
            raise self.fail(f"{where}.{bad.key} = {_fmt(bad.value)} is not allowed: {bad.allowed}") from None
        name = w.get("name", default_name(kind, params))
        if not isinstance(name, str) or not name:
            raise self.fail(f"{where}.name = {_fmt(name)} is not allowed: must be a non-empty string")
        return Workload(kind=kind, name=name, weight=float(weight), params=tuple(params.items()))

    # ---------------------------------------------------------------- [target], [search]
    def target_table(self, data: Mapping[str, Any], workloads: tuple[Workload, ...],
                     spec: HardwareSpec) -> tuple[str, tuple[str, ...]]:
        t = self.table(data, "target", required=True)
        self.keys(t, "[target]", {"part", "objectives"})
        if "part" not in t and spec.part == NO_PART:
            raise self.fail(f"[target] part is missing: the base spec {spec.name!r} names no FPGA part "
                            f"(part = {NO_PART!r}); give one, e.g. part = \"XCZU7EV\"")
        part = t.get("part", spec.part)   # default: the part the base spec names
        from .hwcost import check_part

        try:
            part = check_part(part)
        except _Bad as bad:
            raise self.fail(f"[target] part = {_fmt(part)} is not allowed: {bad.allowed}") from None
        objectives = t.get("objectives", ["latency", "dsp"])
        if not isinstance(objectives, list) or not objectives:
            raise self.fail(f"[target] objectives = {_fmt(objectives)} is not allowed: give a non-empty list of "
                            f"{', '.join(OBJECTIVES)}")
        for o in objectives:
            if o not in OBJECTIVES:
                raise self.fail(f"[target] objectives: {_fmt(o)} is not allowed: choose from {', '.join(OBJECTIVES)}")
        if len(set(objectives)) != len(objectives):
            raise self.fail(f"[target] objectives = {_fmt(objectives)} is not allowed: each objective once")
        produced = set(_RESOURCE_METRICS)
        common = set.intersection(*(_workload_metrics(w) for w in workloads))
        produced |= common
        if "throughput" in common:
            produced.add("perf_per_dsp")
        for o in objectives:
            if o not in produced:
                lacking = [w.name for w in workloads if o not in _workload_metrics(w) | _RESOURCE_METRICS
                           and not (o == "perf_per_dsp" and "throughput" in _KIND_METRICS[w.kind])]
                raise self.fail(f"[target] objectives: {_fmt(o)} is not allowed: workload "
                                f"{', '.join(repr(n) for n in lacking)} does not produce it "
                                f"(available: {', '.join(x for x in OBJECTIVES if x in produced)})")
        return part, tuple(objectives)

    def check_synth(self, base_synth: bool, axes: tuple[Axis, ...], spec: HardwareSpec,
                    workloads: tuple[Workload, ...], part: str) -> None:
        """``clock_mhz = "synth"`` needs a clock figure for the designs on the part."""
        axis = next((a for a in axes if a.name == "clock_mhz"), None)
        if not (SYNTH in (axis.values if axis else ()) or (base_synth and axis is None)):
            return
        from .hwcost import synth_clock_refusal
        from .workloads import designs_for

        designs = tuple(dict.fromkeys(d for w in workloads for d in designs_for(spec, w)))
        why = synth_clock_refusal(spec, designs, part)
        if why:
            where = "[axes] clock_mhz" if axis else "[sweep] set clock_mhz"
            raise self.fail(f"{where} = \"synth\" is not allowed with part {part}: {why}")

    def search_table(self, data: Mapping[str, Any], grid: int) -> Search:
        t = self.table(data, "search")
        kind = t.get("kind", "grid")
        allowed = {"grid": {"kind"}, "random": {"kind", "n", "seed"}, "nsga2": {"kind", "n_trials", "seed", "population"}}
        if kind not in allowed:
            raise self.fail(f"[search] kind = {_fmt(kind)} is not allowed: choose grid, random or nsga2")
        self.keys(t, f"[search] (kind {kind})", allowed[kind])
        seed = t.get("seed", 0)
        if not _type_ok(seed, int) or seed < 0:
            raise self.fail(f"[search] seed = {_fmt(seed)} is not allowed: must be an integer >= 0")
        if kind == "grid":
            if grid > MAX_GRID:
                raise self.fail(f"[search] kind = \"grid\" is not allowed: the axes span {grid} points (at most "
                                f"{MAX_GRID}); use kind = \"random\" or \"nsga2\"")
            return Search("grid", seed=seed)
        key = "n" if kind == "random" else "n_trials"
        n = t.get(key)
        if not _type_ok(n, int) or n < 1:
            raise self.fail(f"[search] {key} = {_fmt(n)} is not allowed: {kind} needs {key}, an integer >= 1")
        if n > grid:
            raise self.fail(f"[search] {key} = {n} is not allowed: the axes span only {grid} points "
                            "(use kind = \"grid\" to visit them all)")
        pop = t.get("population")
        if pop is not None and (not _type_ok(pop, int) or pop < 2):
            raise self.fail(f"[search] population = {_fmt(pop)} is not allowed: must be an integer >= 2")
        if kind == "nsga2" and pop is None:
            pop = min(50, max(4, n // 4))
        return Search(kind, n=n, seed=seed, population=pop)


def _workload_metrics(w: Workload) -> set[str]:
    """The objectives workload ``w`` produces: its kind's, and ``accuracy`` for the real
    MiniLM (the only network with weights to prune)."""
    extra = {"accuracy"} if w.kind == "inference" and w["net"] == "minilm" else set()
    return _KIND_METRICS[w.kind] | extra


def _check_prune_keys(params: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The optional pruning keys of an inference workload (:data:`PRUNE_KEYS`), checked."""
    from ..models.calibrate import MAX_CALIB, MIN_CALIB
    from ..models.nm_methods import METHODS

    if params["net"] != "minilm":
        key = next(iter(given))
        raise _Bad(key, given[key], "only the real MiniLM (net = \"minilm\") has weights to prune")
    if "prune" in given and given["prune"] not in METHODS:
        raise _Bad("prune", given["prune"], f"choose one of {', '.join(METHODS)}")
    calib = given.get("calib")
    if "calib" in given and (isinstance(calib, bool) or not isinstance(calib, int)
                             or not MIN_CALIB <= calib <= MAX_CALIB):
        raise _Bad("calib", calib, f"must be an integer in {MIN_CALIB}..{MAX_CALIB} (calibration tokens)")
    if "recover" in given and not isinstance(given["recover"], bool):
        raise _Bad("recover", given["recover"], "must be true or false")
    return dict(given)


class _Bad(Exception):
    """Raised by the workload and part checkers: (key, value, what is allowed)."""

    def __init__(self, key: str, value: Any, allowed: str):
        super().__init__(allowed)
        self.key, self.value, self.allowed = key, value, allowed


def parse_sweep(text: str, *, source: str = "<sweep>", folder: Path | str = ".") -> Sweep:
    """Validate the text of a sweep file; relative paths resolve against ``folder``."""
    p = _Parser(source, Path(folder))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise p.fail(f"not valid TOML: {exc}") from None
    p.keys(data, "the sweep file", {"sweep", "axes", "workloads", "target", "search"})
    default_name = Path(source).stem if source != "<sweep>" else "sweep"
    name, desc, base, base_set, synth, spec = p.sweep_table(data, default_name)
    axes = p.axes_table(data)
    workloads = p.workloads_table(data)
    part, objectives = p.target_table(data, workloads, spec)
    if part != spec.part:   # one part: the points' specs name the part the sweep costs them on
        spec = spec.replace(part=part, clock_source="")
    if PRUNE_AXIS in [a.name for a in axes] and not any("accuracy" in _workload_metrics(w) for w in workloads):
        raise p.fail(f"[axes] {PRUNE_AXIS} is not allowed: no workload has weights to prune (it needs an inference "
                     "workload with net = \"minilm\")")
    grid = math.prod(len(a.values) for a in axes if a.link is None)
    search = p.search_table(data, grid)
    p.check_synth(synth, axes, spec, workloads, part)
    return Sweep(name=name, description=desc, source=source, text=text, base=base, base_set=base_set,
                 base_clock_synth=synth, base_spec=spec, axes=axes, workloads=workloads, part=part,
                 objectives=objectives, search=search)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SweepError(f"sweep file {str(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"sweep file {str(path)!r} cannot be read: {exc}") from None
    return parse_sweep(text, source=str(path), folder=path.parent)
