"""SCALE-Sim configuration files (``configs/*.cfg`` of SCALE-Sim v2/v3) as hardware specs.

A SCALE-Sim config is an INI file that SCALE-Sim reads with :mod:`configparser`
(scale-sim-v3 ``scalesim/scale_config.py``, ``read_conf_file``, commit fab89b77, MIT licence).
:func:`read_scalesim_cfg` reads it the same way and builds a :class:`HardwareSpec` from the
``scalesim-32x32`` preset (SCALE-Sim's array: one MAC per PE, 8-bit words, ``fold_overlap =
"none"``, so every fold pays its weight load, fill and drain as in SCALE-Sim) with what the
config sets:

=================================  ==========================================================
SCALE-Sim key                      spec field
=================================  ==========================================================
``[general] run_name``             ``name``
``ArrayHeight`` / ``ArrayWidth``   ``rows`` / ``cols``
``IfmapSramSzkB``                  ``input_buffer_kib``
``FilterSramSzkB``                 ``weight_buffer_kib``
``OfmapSramSzkB``                  ``output_buffer_kib``
(SCALE-Sim's ``active_buf_frac``   ``double_buffer = true``: half of each buffer is filled
0.5, ``single_layer_sim.py``)      while the other half is in use, as in SCALE-Sim's
                                   double-buffered scratchpads
``Dataflow`` ``ws`` / ``os``       ``dataflow`` ``weight-stationary`` / ``output-stationary``
``InterfaceBandwidth = CALC``      ideal memory (``dram_bandwidth_gbps`` at the top of its
                                   bound, no latency): SCALE-Sim computes the bandwidth that
                                   never stalls the array
``InterfaceBandwidth = USER``,     ``dram_bandwidth_gbps = Bandwidth x 1 byte x clock_mhz /
``Bandwidth`` (words per cycle)    1000`` (SCALE-Sim's word is one byte, ``word_size = 1`` in
                                   ``single_layer_sim.py``), no latency (SCALE-Sim's DRAM
                                   model is bandwidth only)
=================================  ==========================================================

Every other field keeps the preset's value, ``max_k`` (4096: 28-bit accumulators) included:
a layer with a longer reduction is refused by the mapper with a hint to raise it (``--set
max_k=...``; wider accumulators hold fewer outputs per buffer). SCALE-Sim counts cycles
without a clock; the preset's 200 MHz (an ASSUMPTION, named in ``clock_source``) converts cycles to time and
``Bandwidth`` to GB/s.

What does not map is reported, one line per item, in :attr:`ScaleSimConfig.notes` (the CLI
prints them as ``sparseforge: note: ...``): address offsets, request-buffer depths, memory
banks and custom layouts, SCALE-Sim's sparse mode, Ramulator traces, a ``TopologyCsvLoc``,
unknown sections and keys, and where sparseforge's one shared DRAM interface differs from
SCALE-Sim's one interface per operand. A value that would change the results and has no
counterpart is an error: ``Dataflow = is`` (input stationary: sparseforge's engines are
weight- and output-stationary) and an ``InterfaceBandwidth`` other than CALC or USER.
"""

from __future__ import annotations

import configparser
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .base import SpecError, show
from .hardware import MAX_SPEC_FILE_BYTES, HardwareSpec, load_spec

__all__ = ["ScaleSimConfig", "read_scalesim_cfg", "is_scalesim_cfg", "BASE_PRESET"]

#: the preset a config's spec starts from
BASE_PRESET = "scalesim-32x32"

#: SCALE-Sim's dataflows -> the spec's
DATAFLOWS = {"ws": "weight-stationary", "os": "output-stationary"}

# keys SCALE-Sim reads (configparser lower-cases them), by section: key -> why it does not map
# (None: it maps to a spec field)
_ARCH = {
    "arrayheight": None, "arraywidth": None, "ifmapsramszkb": None, "filtersramszkb": None,
    "ofmapsramszkb": None, "dataflow": None, "bandwidth": None,
    "ifmapoffset": "address offsets only place the operands in SCALE-Sim's traces; sparseforge writes no traces",
    "filteroffset": "address offsets only place the operands in SCALE-Sim's traces; sparseforge writes no traces",
    "ofmapoffset": "address offsets only place the operands in SCALE-Sim's traces; sparseforge writes no traces",
    "readrequestbuffer": "SCALE-Sim's DRAM request-queue depth is not modelled; sparseforge's DRAM is a bandwidth "
                         "and a latency",
    "writerequestbuffer": "SCALE-Sim's DRAM request-queue depth is not modelled; sparseforge's DRAM is a bandwidth "
                          "and a latency",
    "memorybanks": "SRAM banks are not modelled; sparseforge's buffers have no bank conflicts",
    "onchipmemorybanks": "SRAM banks are not modelled; sparseforge's buffers have no bank conflicts",
    "onchipmemorybankports": "SRAM ports are not modelled; sparseforge's buffers have no bank conflicts",
}
_SECTIONS = {
    "general": {"run_name": None},
    "architecture_presets": _ARCH,
    "run_presets": {"interfacebandwidth": None, "useramulatortrace": None},
    "layout": {k: None for k in ("ifmapcustomlayout", "ifmapsrambankbandwidth", "ifmapsrambanknum",
                                 "ifmapsrambankport", "filtercustomlayout", "filtersrambankbandwidth",
                                 "filtersrambanknum", "filtersrambankport")},
    "sparsity": {k: None for k in ("sparsitysupport", "sparserep", "optimizedmapping", "blocksize",
                                   "randomnumbergeneratorseed", "nonzeroelems")},
    "network_presets": {"topologycsvloc": None},
}
#: SCALE-Sim's spelling of each key (configparser lower-cases them), for notes
_SPELLING = {k.lower(): k for k in (
    "run_name", "ArrayHeight", "ArrayWidth", "IfmapSramSzkB", "FilterSramSzkB", "OfmapSramSzkB", "Dataflow",
    "Bandwidth", "IfmapOffset", "FilterOffset", "OfmapOffset", "ReadRequestBuffer", "WriteRequestBuffer",
    "MemoryBanks", "OnChipMemoryBanks", "OnChipMemoryBankPorts")}
#: the keys SCALE-Sim's ``read_conf_file`` requires and this import needs (section, key as written)
_REQUIRED = (("architecture_presets", "ArrayHeight"), ("architecture_presets", "ArrayWidth"),
             ("architecture_presets", "IfmapSramSzkB"), ("architecture_presets", "FilterSramSzkB"),
             ("architecture_presets", "OfmapSramSzkB"), ("architecture_presets", "Dataflow"),
             ("run_presets", "InterfaceBandwidth"))


@dataclass(frozen=True)
class ScaleSimConfig:
    """A SCALE-Sim config read as a spec, with notes on what did not map (one line each)."""

    spec: HardwareSpec
    notes: tuple[str, ...] = ()


def is_scalesim_cfg(hw: object) -> bool:
    """Whether ``hw`` (a ``--hw`` value) names a SCALE-Sim config: a path ending in ``.cfg``."""
    return isinstance(hw, (str, os.PathLike)) and os.fspath(hw).lower().endswith(".cfg")


def _read(path: Path) -> str:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SpecError(f"--hw {show(str(path), 1000)}: no such file") from None
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(f"--hw {show(str(path), 1000)} cannot be read: {why}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(f"--hw {show(str(path), 1000)} is not a regular file: give a SCALE-Sim .cfg file")
    if st.st_size > MAX_SPEC_FILE_BYTES:
        raise SpecError(f"--hw {show(str(path), 1000)} is {st.st_size} bytes, which is not allowed: a config file is "
                        f"at most {MAX_SPEC_FILE_BYTES} bytes")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"--hw {show(str(path), 1000)} cannot be read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path} is not UTF-8 text (byte {exc.start} is {raw[exc.start]:#04x}): a SCALE-Sim "
                        "config is an INI text file") from None


def _get(cp: configparser.ConfigParser, section: str, key: str) -> str | None:
    if not cp.has_section(section) or not cp.has_option(section, key):
        return None
    return cp.get(section, key).strip()


def _int(path: Path, section: str, key: str, text: str) -> int:
    if not re.fullmatch(r"[+-]?\d{1,18}", text):
        raise SpecError(f"{path}: [{section}] {key} = {show(text)} is not allowed: must be an integer")
    return int(text)


def _bool(path: Path, section: str, key: str, text: str | None) -> bool:
    if text is None:
        return False
    low = text.lower()
    if low in ("1", "yes", "true", "on"):
        return True
    if low in ("0", "no", "false", "off"):
        return False
    raise SpecError(f"{path}: [{section}] {key} = {show(text)} is not allowed: must be True or False")


def read_scalesim_cfg(path: str | os.PathLike) -> ScaleSimConfig:
    """Read a SCALE-Sim ``.cfg`` as a :class:`ScaleSimConfig` (spec and notes; the module's
    docstring has the mapping). :class:`SpecError` naming the file, section, key and value for
    a malformed file, a missing required key, or a value with no counterpart that changes results."""
    path = Path(os.fspath(path))
    text = _read(path)
    cp = configparser.ConfigParser(interpolation=None)
    try:
        cp.read_string(text, source=str(path))
    except configparser.Error as exc:
        msg = " ".join(str(exc).split())
        raise SpecError(f"{path} is not a valid SCALE-Sim config (INI): {msg[:300]}") from None
    for section, key in _REQUIRED:
        if _get(cp, section, key) is None:
            raise SpecError(f"{path}: [{section}] {key} is missing: SCALE-Sim requires it (see its configs/scale.cfg)")
    notes: list[str] = []
    arch = "architecture_presets"
    source: dict[str, str] = {}               # spec field -> the key it came from (for messages)

    def field(name: str, key: str, value: int) -> int:
        source[name] = f"[{arch}] {key} = {value}"
        return value

    rows = field("rows", "ArrayHeight", _int(path, arch, "ArrayHeight", _get(cp, arch, "arrayheight")))
    cols = field("cols", "ArrayWidth", _int(path, arch, "ArrayWidth", _get(cp, arch, "arraywidth")))
    bufs = {f: field(f, key, _int(path, arch, key, _get(cp, arch, key.lower())))
            for f, key in (("input_buffer_kib", "IfmapSramSzkB"), ("weight_buffer_kib", "FilterSramSzkB"),
                           ("output_buffer_kib", "OfmapSramSzkB"))}
    df_text = _get(cp, arch, "dataflow")
    df = df_text.lower()
    if df == "is":
        raise SpecError(f"{path}: [{arch}] Dataflow = {df_text} is not allowed: sparseforge's engines are weight- and "
                        "output-stationary (input stationary has no counterpart and would change every cycle count); "
                        "set Dataflow to ws or os")
    if df not in DATAFLOWS:
        raise SpecError(f"{path}: [{arch}] Dataflow = {show(df_text)} is not allowed: choose ws or os (SCALE-Sim's "
                        "is has no counterpart here)")
    base = load_spec(BASE_PRESET)
    changes: dict[str, object] = {"rows": rows, "cols": cols, **bufs, "dataflow": DATAFLOWS[df],
                                  "double_buffer": True, "dram_latency_ns": 0.0}
    mode_text = _get(cp, "run_presets", "interfacebandwidth")
    mode = mode_text.upper()
    if mode not in ("CALC", "USER"):
        raise SpecError(f"{path}: [run_presets] InterfaceBandwidth = {show(mode_text)} is not allowed: choose CALC "
                        "or USER (as SCALE-Sim does)")
    bw_text = _get(cp, arch, "bandwidth")
    if mode == "USER":
        if bw_text is None:
            raise SpecError(f"{path}: [{arch}] Bandwidth is missing: InterfaceBandwidth = USER needs it (words per "
                            "cycle)")
        parts = [p.strip() for p in bw_text.split(",") if p.strip()]
        if not parts:
            raise SpecError(f"{path}: [{arch}] Bandwidth = {show(bw_text)} is not allowed: give words per cycle, "
                            "e.g. 10")
        words = _int(path, arch, "Bandwidth", parts[0])
        if words < 1:
            raise SpecError(f"{path}: [{arch}] Bandwidth = {words} is not allowed: must be at least 1 word per cycle")
        gbps = words * 1 * base.clock_mhz / 1000.0     # SCALE-Sim's word is 1 byte (single_layer_sim.py)
        changes["dram_bandwidth_gbps"] = gbps
        source["dram_bandwidth_gbps"] = f"[{arch}] Bandwidth = {bw_text}"
        notes.append(f"Bandwidth = {words} words/cycle -> dram_bandwidth_gbps = {gbps:g} (1-byte words at the "
                     f"ASSUMED {base.clock_mhz:g} MHz); SCALE-Sim gives each operand its own interface of this width "
                     "(v3 takes the IFMAP and filter ones from [layout] *SRAMBankBandwidth), sparseforge shares one "
                     "among all operands, so DRAM-bound layers stall more here")
        if len(parts) > 1:
            notes.append(f"Bandwidth = {bw_text}: only the first value ({words}) is used, as SCALE-Sim uses it")
    else:
        changes["dram_bandwidth_gbps"] = base.dram_bandwidth_gbps
        if bw_text is not None:
            notes.append(f"Bandwidth = {bw_text} is not used with InterfaceBandwidth = CALC (SCALE-Sim ignores it "
                         "too): memory is ideal")
    notes.append(f"SRAM sizes {bufs['input_buffer_kib']}/{bufs['weight_buffer_kib']}/{bufs['output_buffer_kib']} KiB "
                 "bound each array run here: a layer whose operands do not fit is cut into runs that each pay their "
                 "folds' weight load, fill and drain, where SCALE-Sim streams every fold whole whatever its SRAMs, so "
                 "such layers take more cycles than in SCALE-Sim (raise them with --set input_buffer_kib=... to compare "
                 "compute cycles; docs/import.md)")
    run_name = _get(cp, "general", "run_name")
    name = run_name if run_name and run_name.isprintable() and len(run_name) <= 64 else path.stem
    changes["name"] = name
    changes["description"] = (f"SCALE-Sim config {path.name}: {rows}x{cols} {df}, SRAMs {bufs['input_buffer_kib']}/"
                              f"{bufs['weight_buffer_kib']}/{bufs['output_buffer_kib']} KiB (ifmap/filter/ofmap), "
                              f"{mode} bandwidth")
    # what does not map, in file order
    unused: dict[str, list[str]] = {}
    for section in cp.sections():
        known = _SECTIONS.get(section)
        for key, value in cp.items(section, raw=True):
            if known is None:
                notes.append(f"[{section}] {key} = {value.strip()[:40]}: unknown section, ignored")
            elif key not in known:
                notes.append(f"[{section}] {key} = {value.strip()[:40]}: unknown key, ignored")
            elif known[key] is not None:
                unused.setdefault(known[key], []).append(_SPELLING.get(key, key))
    for why, keys in unused.items():
        notes.append(f"[{arch}] {', '.join(keys)}: not used ({why})")
    lay = "layout"
    if any(_bool(path, lay, k, _get(cp, lay, k.lower())) for k in ("IfmapCustomLayout", "FilterCustomLayout")):
        notes.append("[layout] custom SRAM layouts are not modelled: sparseforge's buffers have no bank conflicts, so "
                     "SCALE-Sim's layout stalls are absent here")
    if _bool(path, "sparsity", "SparsitySupport", _get(cp, "sparsity", "sparsitysupport")):
        notes.append(f"[sparsity] SparsitySupport = true is not mapped: SCALE-Sim's sparse mode (SparseRep "
                     f"{_get(cp, 'sparsity', 'sparserep')}) differs from sparseforge's N:M array; this spec is a "
                     "dense 1:1 array (for N:M hardware add --set n=2 --set m=4 and --sparsity 2:4)")
    if _bool(path, "run_presets", "UseRamulatorTrace", _get(cp, "run_presets", "useramulatortrace")):
        notes.append("[run_presets] UseRamulatorTrace = True is not mapped: sparseforge writes no DRAM traces")
    if _get(cp, "network_presets", "topologycsvloc") is not None:
        notes.append("[network_presets] TopologyCsvLoc is not read: give the topology with --net FILE.csv")
    try:
        spec = base.replace(**changes)
    except SpecError as exc:
        msg = str(exc)
        where = next((src for f, src in source.items() if msg.startswith(f"{f} =")), None)
        raise SpecError(f"{path}: {msg}" + (f" (from {where})" if where else "")) from None
    return ScaleSimConfig(spec=spec, notes=tuple(notes))
