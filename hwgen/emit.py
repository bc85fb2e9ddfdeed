"""Emit a design's Verilog and manifest into ``<out_root>/<name>/``.

Rules of a design folder (see :mod:`sparseforge.hwgen.outdir` for the mechanics):

* **One design per folder.** The folder records what it holds in ``manifest.json``: the
  design kind, the spec digest (:attr:`HardwareSpec.digest`) and the generation parameters.
  Generating into a folder that holds another design (another digest, kind or parameters)
  is refused with one line naming both, unless ``replace=True`` (the CLI's ``--replace``);
  ``name=`` (``--name``) picks another folder. A regular file or a link at the folder's
  place, or a folder without a readable manifest (not written by ``generate``), is never
  replaced or moved aside, not even with ``replace=True``: refused. A design folder holding
  files that ``generate``/``synth`` did not write is refused too, unless ``replace=True``.
* **Synthesis results follow the Verilog.** The manifest records ``rtl_sha256``, a hash of the
  emitted files (:func:`sparseforge.hwgen.outdir.rtl_sha256`). Regenerating a folder keeps its
  ``synth.json`` and ``synth/`` only when they were made from the same spec digest and from
  Verilog with the same hash; otherwise they describe other RTL and are dropped.
* **One step.** The new folder is written completely under a hidden temporary name beside the
  target and then swapped in atomically; an interrupted run (Ctrl-C, SIGKILL) leaves the
  previous design in place, complete. Concurrent runs on one folder take turns (a lock beside
  it); hidden leftovers of killed runs are removed by the next run.
* **An FPGA hand-off beside the Verilog.** Every folder also holds a FuseSoC core, clock
  constraints (XDC and LPF from ``spec.clock_mhz``), a Vivado non-project build script for the
  spec's ``part`` and a Yosys/nextpnr-ecp5 build script (:mod:`sparseforge.hwgen.handoff`,
  docs/handoff.md); the manifest lists them under ``handoff``. They are written into the new
  folder with the Verilog, before the swap.
* **Cost first.** Before any elaboration, :func:`estimate_cost` counts what the design needs
  (multipliers, delay registers and their bits, memory words and bits, SORE cells) and anything over
  :data:`COST_LIMITS` is refused with one line naming the count and the limit.

Errors a user can cause raise :class:`EmitError` (an :class:`~sparseforge.errors.InputError`)
with a one-line message.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib
import importlib.util
import json
import os
import re
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sparseforge import cache as diskcache
from sparseforge.errors import InputError
from sparseforge.progress import progress_task
from sparseforge.spec import HardwareSpec

from . import handoff, outdir
from .parts import fpga_part

__all__ = [
    "COST_LIMITS",
    "DESIGNS",
    "LOCK_TIMEOUT_S",
    "EmitError",
    "build_component",
    "check_cost",
    "default_name",
    "design_dir",
    "emit_design",
    "estimate_cost",
]

#: design name -> "module:function" building its Amaranth component from (spec, **params);
#: imported only when that design is generated
DESIGNS: dict[str, str] = {
    "engine": "sparseforge.hwgen.engine:build_engine",
    "os_engine": "sparseforge.hwgen.os_engine:build_os_engine",
    "array": "sparseforge.hwgen.array:build_array",
    "pe": "sparseforge.hwgen.pe:build_pe",
    "sore": "sparseforge.hwgen.sore:build_sore",
    "hashmerge": "sparseforge.hwgen.hashmerge:build_hashmerge",
    "moe_reorder": "sparseforge.hwgen.moe:build_reorder",
    "moe_router": "sparseforge.hwgen.moe:build_router",
    "moe_scheduler": "sparseforge.hwgen.moe:build_scheduler",
    "engine_axi": "sparseforge.hwgen.axi:build_engine_axi",
    "os_engine_axi": "sparseforge.hwgen.axi:build_os_engine_axi",
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")

#: Largest design :func:`emit_design` elaborates, per cost term of :func:`estimate_cost`.
#: Elaboration (Amaranth -> RTLIL -> Verilog) takes time and memory that grow with these
#: counts. Measured on this project's two-core machine (Python 3.11, Amaranth 0.5.10; peak
#: RSS including Amaranth's Yosys child): sf-32x32's array (2048 multipliers) 43 s and 0.6 GB,
#: about 0.3 MB and 20 ms per multiplier; a 512x1 array (261,632 skew registers) 280 s and
#: 3.7 GB, about 14 KB per register; a 4x4 engine with 35,576 memory words (4.3 Mibit) 20 s
#: and 0.55 GB, about 14 KB per memory word and 14 bytes per memory bit (Amaranth's RTLIL
#: backend builds one net object per bit of a memory's initial value, even for ``init=[]``);
#: sat-vcu1525's engine (27,602 words, 48 Mibit, the largest preset design in bits) 9 CPU-minutes and
#: 2.7 GB; a 512-lane SORE (4096 cells) 37 s and 0.4 GB. Each limit is a multiple of what the
#: largest built-in preset needs (:data:`_LIMIT_WHY`), so every preset generates every design
#: (``tests/test_emit_safety.py`` checks that), and costs at most a few GB at the limit (the
#: terms add up: a design at several limits at once needs their sum).
COST_LIMITS: dict[str, int] = {
    "multipliers": 8192,              # PE multipliers: rows x cols x n (about 2.4 GB at the limit)
    "delay_registers": 1 << 15,       # skew/deskew registers of the arrays, ~rows^2 (about 0.5 GB)
    "delay_register_bits": 1 << 22,   # their bits
    "memory_words": 1 << 17,          # words of all memories: engine buffers, MoE queues, hash table (1.9 GB)
    "memory_bits": 1 << 26,           # bits of those memories, 64 Mibit (0.9 GB)
    "sore_cells": 1 << 13,            # lanes x n x m of the SORE mask generator (0.8 GB)
}
_LIMIT_WHY: dict[str, str] = {
    "multipliers": "4x the 2048 of the largest presets, sf-32x32 and sat-vcu1525",
    "delay_registers": "11x the 2976 of the largest preset, sat-vcu1525's os_engine",
    "delay_register_bits": "38x the 110112 of the largest preset, sat-vcu1525's os_engine",
    "memory_words": "2.2x the 58514 of the largest preset, scalesim-32x32's engine; about 14 KB of RAM each",
    "memory_bits": "4/3 of the 48 Mibit of the largest preset, sat-vcu1525's engine, which takes 2.7 GB "
                   "of RAM to elaborate",
    "sore_cells": "16x the 512 of the largest presets",
}

#: Seconds a run waits for another run writing the same design folder before it refuses.
LOCK_TIMEOUT_S: float = 120.0

_SYNTH_ENTRIES = ("synth.json", "synth")
#: what `sparseforge verify --waves` writes into a design folder: dropped when the folder is
#: generated again (it shows the old Verilog)
_VERIFY_ENTRIES = ("waves.fst", "waves.vcd")


class EmitError(InputError):
    """Bad design name, parameters, size or output location (a user error: one clear line)."""


# ----------------------------------------------------------------------------- names
def default_name(spec: HardwareSpec, design: str) -> str:
    """The default folder name ``<spec name>-<design>``; characters a folder name may not
    hold become ``_`` (and a name not starting with a letter gets a ``d`` in front)."""
    stem = re.sub(r"[^A-Za-z0-9_\-]", "_", spec.name) or "design"
    if not stem[0].isalpha():
        stem = "d" + stem
    return f"{stem[:63 - len(design)]}-{design}"


def design_dir(out_root: Path | str, name: str) -> Path:
    """The folder for design ``name`` under ``out_root``; refuses names that would escape it
    and a link at that place."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise EmitError(f"design name {name!r} is not allowed: use letters, digits, '_' and '-', "
                        "starting with a letter (at most 64 characters)")
    root = Path(out_root).resolve()
    if (root / name).is_symlink():
        raise EmitError(f"{root / name} is a link: it is not replaced; remove it or choose another --name")
    target = (root / name).resolve()
    if target.parent != root:
        raise EmitError(f"output path {target} is outside the output folder {root}")
    return target


# ----------------------------------------------------------------------------- cost
def _tri(k: int) -> int:
    """Registers of a skew of ``k`` lanes (lane i delayed by i): 0 + 1 + ... + (k - 1)."""
    return k * (k - 1) // 2


def _bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


def _int_param(design: str, params: dict[str, Any], key: str, default: int, low: int = 1) -> int:
    v = params.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise EmitError(f"design {design!r}: parameter {key} = {v!r} is not allowed: must be an integer >= {low}")
    return v


def _array_cost(s: HardwareSpec, os_array: bool) -> dict[str, tuple[int, str]]:
    gw = s.m * s.act_width
    if os_array:   # row skew (data, first, last), column skew (weights, indices), row deskew
        regs = 4 * _tri(s.rows) + 2 * _tri(s.cols)
        bits = (_tri(s.rows) * (gw + 2) + _tri(s.cols) * s.n * (s.weight_width + s.idx_width)
                + _tri(s.rows) * s.acc_width)
        how = f"row skew, column skew and row deskew of a {s.rows}x{s.cols} output-stationary array"
    else:          # input skew (data, first), output deskew
        regs = 2 * _tri(s.rows) + _tri(s.cols)
        bits = _tri(s.rows) * (gw + 1) + _tri(s.cols) * s.acc_width
        how = f"input skew and output deskew of a {s.rows}x{s.cols} array"
    return {
        "multipliers": (s.multipliers, f"rows x cols x n = {s.rows} x {s.cols} x {s.n}"),
        "delay_registers": (regs, how),
        "delay_register_bits": (bits, how),
    }


def _engine_cost(s: HardwareSpec, design: str, params: dict[str, Any],
                 extra: tuple[str, ...] = ()) -> dict[str, tuple[int, str]]:
    allowed = ("act_depth", "wgt_depth", "out_depth")
    _only(design, params, allowed + extra)
    # the depths and word widths the engine modules themselves build with
    if design.removesuffix("_axi") == "engine":
        from sparseforge.hwgen import engine as mod

        depths_of, widths_of = mod.engine_depths, mod.word_widths
    else:
        from sparseforge.hwgen import os_engine as mod

        depths_of, widths_of = mod.os_engine_depths, mod.os_word_widths
    depths = depths_of(s)
    depths = {k: _int_param(design, params, k, depths[k]) for k in allowed}
    widths = widths_of(s)
    words = sum(depths.values())
    bits = sum(depths[f"{k}_depth"] * widths[k] for k in ("act", "wgt", "out"))
    mem = " + ".join(f"{depths[f'{k}_depth']} x {widths[k]}" for k in ("act", "wgt", "out"))
    return {
        **_array_cost(s, design.removesuffix("_axi") == "os_engine"),
        "memory_words": (words, f"act + wgt + out buffer words = {' + '.join(str(d) for d in depths.values())}"),
        "memory_bits": (bits, f"act, wgt, out buffers: {mem} bits (from *_buffer_kib)"),
    }


def _axi_cost(s: HardwareSpec, design: str, params: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """An engine behind the AXI wrapper: the engine's cost (the wrapper adds registers only)."""
    from sparseforge.hwgen.axi import check_stream_width

    if "stream_width" in params:
        try:
            check_stream_width(params["stream_width"])
        except ValueError as exc:
            raise EmitError(f"design {design!r}: {exc}") from None
    return _engine_cost(s, design, params, extra=("stream_width",))


def _only(design: str, params: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in params:
        if key not in allowed:
            raise EmitError(f"design {design!r} has no parameter {key!r}: allowed are "
                            + (", ".join(allowed) if allowed else "none"))


def _moe_cost(s: HardwareSpec, design: str, params: dict[str, Any]) -> dict[str, tuple[int, str]]:
    _only(design, params, ("experts",) if design == "moe_scheduler" else ("experts", "top_k"))
    experts = _int_param(design, params, "experts", 16)
    if design == "moe_scheduler":  # counters and addresses only: no queue memory
        return {}
    depth = s.moe.queue_depth
    words = experts * depth
    return {
        "memory_words": (words, f"{experts} expert queues x moe.queue_depth {depth}"),
        "memory_bits": (words * (_bits(depth) + s.moe.gate_width),
                        f"{words} queue entries x (token id {_bits(depth)} + moe.gate_width {s.moe.gate_width}) bits"),
    }


def _hashmerge_cost(s: HardwareSpec, design: str, params: dict[str, Any]) -> dict[str, tuple[int, str]]:
    _only(design, params, ("table_entries", "key_width", "value_width", "hash_multiplier", "hash_bits"))
    t = _int_param(design, params, "table_entries", s.spgemm.table_entries, 2)
    kw = _int_param(design, params, "key_width", s.spgemm.key_width)
    vw = _int_param(design, params, "value_width", s.spgemm.value_width)
    return {
        "memory_words": (2 * t - 1, f"hash table {t} + touched list {t - 1} (spgemm.table_entries {t})"),
        "memory_bits": (t * (kw + vw + 1) + (t - 1) * _bits(t),
                        f"{t} table entries x {kw + vw + 1} bits + touched list"),
    }


def _sore_cost(s: HardwareSpec, design: str, params: dict[str, Any]) -> dict[str, tuple[int, str]]:
    _only(design, params, ("lanes",))
    lanes = _int_param(design, params, "lanes", s.train.sore_lanes)
    return {"sore_cells": (lanes * s.n * s.m, f"lanes x n x m = {lanes} x {s.n} x {s.m}")}


_COST: dict[str, Callable[[HardwareSpec, str, dict[str, Any]], dict[str, tuple[int, str]]]] = {
    "array": lambda s, d, p: (_only(d, p, ()), _array_cost(s, False))[1],
    "pe": lambda s, d, p: (_only(d, p, ()), {"multipliers": (s.n, f"n = {s.n}")})[1],
    "engine": _engine_cost,
    "os_engine": _engine_cost,
    "moe_router": _moe_cost,
    "moe_reorder": _moe_cost,
    "moe_scheduler": _moe_cost,
    "hashmerge": _hashmerge_cost,
    "sore": _sore_cost,
    "engine_axi": _axi_cost,
    "os_engine_axi": _axi_cost,
}


def estimate_cost(spec: HardwareSpec, design: str, **params: Any) -> dict[str, tuple[int, str]]:
    """What generating ``design`` for ``spec`` takes, before anything is built: cost term ->
    (count, how it was counted). Terms are those of :data:`COST_LIMITS`; a design without an
    estimator (one registered in :data:`DESIGNS` by a test) gives ``{}``. Unknown or bad
    parameters raise :class:`EmitError`."""
    if design not in DESIGNS:
        raise EmitError(f"design = {design!r} is not allowed: choose one of {', '.join(DESIGNS)}")
    fn = _COST.get(design)
    return fn(spec, design, dict(params)) if fn else {}


def check_cost(spec: HardwareSpec, design: str, **params: Any) -> dict[str, tuple[int, str]]:
    """:func:`estimate_cost`, refusing with one line when a term exceeds :data:`COST_LIMITS`."""
    cost = estimate_cost(spec, design, **params)
    for term, (count, how) in cost.items():
        limit = COST_LIMITS[term]
        if count > limit:
            raise EmitError(f"design {design!r} for spec {spec.name} [{spec.digest}] is too large to generate: "
                            f"{term.replace('_', ' ')} = {count} ({how}) exceeds the limit {limit} "
                            f"({_LIMIT_WHY[term]})")
    return cost


# ----------------------------------------------------------------------------- build
def build_component(spec: HardwareSpec, design: str, **params: Any):
    """The Amaranth component of ``design`` for ``spec`` (see :data:`DESIGNS`)."""
    if design not in DESIGNS:
        raise EmitError(f"design = {design!r} is not allowed: choose one of {', '.join(DESIGNS)}")
    module, func = DESIGNS[design].split(":")
    try:
        return getattr(importlib.import_module(module), func)(spec, **params)
    except ValueError as exc:  # the builders validate their parameters with ValueError
        if isinstance(exc, InputError):
            raise
        raise EmitError(f"design {design!r}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None


def _ports(component) -> list[dict[str, Any]]:
    from amaranth import Shape
    from amaranth.lib import wiring

    return [
        {
            "name": name,
            "direction": "input" if member.flow == wiring.In else "output",
            "width": Shape.cast(member.shape).width,
        }
        for name, member in component.signature.members.items()
    ]


def _clocking(component) -> tuple[str, str, bool]:
    """The top module's clock and reset ports, and whether the reset is active low: Amaranth's
    ``clk``/``rst`` unless the component names its own (``clock_port``, ``reset_port``,
    ``reset_active_low``: the AXI wrappers' ``ap_clk``/``ap_rst_n``)."""
    return (getattr(component, "clock_port", "clk"), getattr(component, "reset_port", "rst"),
            bool(getattr(component, "reset_active_low", False)))


def _instantiation(top: str, ports: list[dict[str, Any]], clock: str = "clk", reset: str = "rst") -> str:
    lines = [f"{top} u_{top} ("]
    named = [p for p in ports if p["name"] not in (clock, reset)]
    conns = [f"  .{clock}({clock})", f"  .{reset}({reset})"] + [f"  .{p['name']}({p['name']})" for p in named]
    lines.append(",\n".join(conns))
    lines.append(");")
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


# ----------------------------------------------------------------------------- existing folder
def _existing(target: Path, spec: HardwareSpec, design: str, replace: bool,
              params: dict[str, Any] | None) -> dict[str, Any] | None:
    """The manifest of the design now at ``target`` (None when there is none). Refuses what
    must not be replaced; ``params``: the new design's parameters (None: not known yet)."""
    if not os.path.lexists(target):
        return None
    if target.is_symlink() or not target.is_dir():
        what = "a link" if target.is_symlink() else "not a folder"
        raise EmitError(f"{target} is {what} (not a design folder): it is not replaced; "
                        "remove it or choose another --name")
    manifest = outdir.read_json(target / "manifest.json")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("digest"), str) or "kind" not in manifest:
        raise EmitError(f"{target} exists and is not a design folder written by `sparseforge generate` "
                        "(no readable manifest.json): it is not replaced; remove it or choose another --name")
    if replace:
        return manifest
    old_digest, old_kind = manifest.get("digest"), manifest.get("kind")
    if old_kind != design or old_digest != spec.digest:
        raise EmitError(f"{target} holds design {old_kind!r} of spec digest {old_digest}, not design {design!r} "
                        f"of spec {spec.name} [{spec.digest}]: choose another --name, or --replace to replace it")
    if params is not None and manifest.get("params") != params:
        raise EmitError(f"{target} holds design {design!r} of spec digest {spec.digest} with parameters "
                        f"{json.dumps(manifest.get('params'), sort_keys=True)}, not "
                        f"{json.dumps(params, sort_keys=True)}: choose another --name, or --replace to replace it")
    files = manifest.get("files")
    ours = {"manifest.json", *_SYNTH_ENTRIES, *_VERIFY_ENTRIES}
    bundled = manifest.get("handoff", {}).get("files") if isinstance(manifest.get("handoff"), dict) else None
    for listed in (files, bundled):
        if isinstance(listed, list):
            ours |= {f.split("/")[0] for f in listed if isinstance(f, str)}
    foreign = sorted(set(os.listdir(target)) - ours)
    if foreign:
        raise EmitError(f"{target} holds {foreign[0]!r}, which `sparseforge generate` did not write: "
                        "move it out of the design folder, or --replace to replace the folder")
    return manifest


def _keep_synth(target: Path, new_rtl: str, spec: HardwareSpec, top: str) -> bool:
    """True when ``target``'s synthesis results describe the Verilog about to be written."""
    res = outdir.read_json(target / "synth.json")
    return (isinstance(res, dict) and res.get("rtl_sha256") == new_rtl and res.get("digest") == spec.digest
            and res.get("top") == top)


# ----------------------------------------------------------------------------- emit
#: the packages and modules whose source decides the emitted Verilog
_GENERATOR_SOURCES = ("sparseforge.hwgen", "sparseforge.sim.units", "sparseforge.dataflow.layout", "sparseforge.spec")


@functools.lru_cache(maxsize=1)
def generator_fingerprint() -> str:
    """SHA-256 (16 hex digits) over the source of every module the RTL generators read: the
    generators, the units' constants, the memory layout and the spec. Editing any of them
    invalidates the cached Verilog."""
    h = hashlib.sha256()
    for mod in _GENERATOR_SOURCES:
        found = importlib.util.find_spec(mod)
        if found is None or found.origin is None:
            h.update(f"{mod}: missing".encode())
            continue
        origin = Path(found.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for f in files:
            h.update(f"{mod}/{f.relative_to(origin.parent).as_posix()}".encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def emit_design(spec: HardwareSpec, *, design: str = "engine", out_root: Path | str = "rtl_out",
                name: str | None = None, replace: bool = False, lock_timeout_s: float = LOCK_TIMEOUT_S,
                progress: Any = None, part: str | None = None, cache: bool = False, **params: Any) -> Path:
    """Generate ``design`` for ``spec`` and write ``<out_root>/<name>/{<top>.v, manifest.json}``
    and the FPGA hand-off (:func:`sparseforge.hwgen.handoff.bundle`) for the spec's ``part``
    (``part``: a :mod:`~sparseforge.hwgen.parts` name or board that replaces it; the digest
    does not change) (``name`` defaults to :func:`default_name`). Returns the design folder.

    See the module docstring for the rules: a folder holding another design is refused unless
    ``replace``; synthesis results are kept only for identical Verilog; the folder is
    replaced in one step under a lock (waiting up to ``lock_timeout_s``); designs over
    :data:`COST_LIMITS` are refused before elaboration. ``progress`` (a function taking one
    line, or a :mod:`sparseforge.progress` reporter) is told when the checks have passed and
    the elaboration starts. With ``cache``, the Verilog (and the ports the manifest lists) is
    read from the disk cache (:mod:`sparseforge.cache`) when it holds this spec digest, design,
    parameters, generator source (:func:`generator_fingerprint`) and Amaranth version, and
    stored there after a conversion. Raises :class:`EmitError`."""
    if not isinstance(spec, HardwareSpec):
        raise TypeError(f"spec must be a HardwareSpec, not {spec!r}")
    if design not in DESIGNS:
        raise EmitError(f"design = {design!r} is not allowed: choose one of {', '.join(DESIGNS)}")
    name = default_name(spec, design) if name is None else name
    target = design_dir(out_root, name)
    if part is not None:
        try:
            spec = spec.replace(part=fpga_part(part).name)
        except InputError as exc:   # PartError: names the part and the allowed ones
            raise EmitError(str(exc)) from None
    fpga = handoff.resolve_part(spec)
    check_cost(spec, design, **params)
    _existing(target, spec, design, replace, None)  # fail fast, before the elaboration
    top = f"sf_{design}"
    t0 = time.monotonic()
    key = diskcache.make_key("verilog", {"digest": spec.digest, "design": design, "params": _jsonable(params),
                                         "code": generator_fingerprint(),
                                         "versions": diskcache.versions("sparseforge", "amaranth")})
    entry = diskcache.lookup("verilog", key, (f"{top}.v.gz", "component.json")) if cache else None
    try:
        cached = None if entry is None else (gzip.decompress(entry.read(f"{top}.v.gz")),
                                             json.loads(entry.read("component.json")))
    except (OSError, EOFError, ValueError, zlib.error):
        cached = None                                     # a damaged entry is a miss
    if cached is not None:
        text_bytes, comp = cached
        ports, (clock, reset, active_low), new_params = comp["ports"], comp["clocking"], comp["params"]
        if progress is not None:
            progress(diskcache.saved_line(f"{design} Verilog", entry, time.monotonic() - t0))
    else:
        if progress is not None:
            progress(f"generating {design} for {spec.name} [{spec.digest}] (Amaranth -> Verilog)")
        with progress_task(progress, f"{design}: Amaranth -> Verilog", total=2, unit="steps") as bar:
            from amaranth.back import verilog

            component = build_component(spec, design, **params)
            bar.advance(1, "elaborated; converting (the longest step)")
            text = verilog.convert(component, name=top, emit_src=False)
            finish = getattr(component, "finish_verilog", None)   # e.g. the AXI wrappers' Vivado attributes
            text_bytes = (finish(text, top) if finish else text).encode()
            bar.advance(1, "converted")
        ports = _ports(component)
        clock, reset, active_low = _clocking(component)
        new_params = _jsonable(getattr(component, "params", {}))
        if cache:
            comp = {"ports": ports, "clocking": [clock, reset, active_low], "params": new_params}
            diskcache.store("verilog", key, {f"{top}.v.gz": gzip.compress(text_bytes, 6),
                                             "component.json": json.dumps(comp).encode()},
                            {"seconds": round(time.monotonic() - t0, 3), "design": design, "spec": spec.name})
    files = {f"{top}.v": text_bytes}
    rtl = outdir.rtl_sha256(files.items())
    bundled, record = handoff.bundle(spec, kind=design, name=name, top=top, sources=list(files), clock=clock,
                                     part=fpga)
    manifest = {
        "design": name,
        "kind": design,
        "top": top,
        "files": list(files),
        "rtl_sha256": rtl,
        "clock": f"{clock} (rising edge)",
        "reset": f"{reset} (synchronous, active {'low' if active_low else 'high'})",
        "ports": ports,
        "instantiate": _instantiation(top, ports, clock, reset),
        "notes": "All ports are unsigned in Verilog; data fields are two's complement and "
                 "packed little-endian (field 0 in the least significant bits).",
        **spec.record(),
        "params": new_params,
        "handoff": record,
    }
    try:
        return _write(target, {**files, **bundled}, manifest, spec, design, replace, lock_timeout_s)
    except OSError as exc:
        where = exc.filename or target
        raise EmitError(f"cannot write design folder {target}: {where}: {exc.strerror or exc}") from None


def _write(target: Path, files: dict[str, bytes], manifest: dict[str, Any], spec: HardwareSpec, design: str,
           replace: bool, lock_timeout_s: float) -> Path:
    if os.path.lexists(target.parent) and not target.parent.is_dir():
        raise EmitError(f"output folder {target.parent} is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    leftovers: list[Path] = []
    try:
        with outdir.lock_folder(target, timeout_s=lock_timeout_s, error=EmitError):
            outdir._stage("locked")
            outdir.clean_stale(target)
            _existing(target, spec, design, replace, manifest["params"])
            tmp = outdir.make_temp_dir(target, "tmp")
            leftovers.append(tmp)
            for fname, data in files.items():
                (tmp / fname).write_bytes(data)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            if target.is_dir() and _keep_synth(target, manifest["rtl_sha256"], spec, manifest["top"]):
                for entry in _SYNTH_ENTRIES:
                    if (target / entry).exists():
                        outdir.link_tree(target / entry, tmp / entry)
            outdir._stage("built")
            outdir.swap_in(tmp, target, leftovers)
    finally:
        for path in leftovers:  # the new folder if it never went in, else the old design
            outdir.remove_tree(path)
    return target
