"""The SpGEMM report: ``sparseforge spgemm --output report.html``.

Built from the simulated dataflows of one product ``C = A x B``
(:class:`~sparseforge.sim.spgemm.SpgemmResult` each, every one checked against SciPy by
:func:`sparseforge.api.spgemm`). It shows

- per dataflow the stacked cycles: compute (the busiest PE, summed over the dataflow's
  phases) and memory (the cycles beyond it: DRAM transfers longer than the compute they
  overlap, and each phase's DRAM latency), with the PEs' mean utilisation (mean busy cycles
  per PE over the cycles);
- a roofline of the dataflows: multiplies per DRAM byte against multiplies per second, under
  the ``[spgemm]`` machine's peak (``spgemm.pes`` PEs, each issuing at most one operation, so
  at most one multiply, per cycle at the clock) and the DRAM bandwidth;
- the energy breakdown: multiplies x ``e_mac_pj``, DRAM bytes x ``e_dram_pj_per_byte`` and the
  rest, on-chip (scratchpad and B-cache bytes x ``e_sram_pj_per_byte``), as the simulator
  sums them;
- the DRAM traffic by operand (A, B, C, spilled and partial products);
- the dataflows against each other: time, speedup over the first, scratchpad accesses, hash
  collisions, atomic and bank conflicts and, with a B cache, its hit rate;
- the comparison table.

Each picture is also written as ``<stem>-<picture>.png`` and ``.svg`` beside the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from sparseforge.sim.spgemm import SpgemmResult
from sparseforge.spec import HardwareSpec

from .base import ReportError
from .page import Section, facts_html, html_path, write_report
from .plots import (
    COLORS, SERIES, Picture, energy_picture, layer_bars_picture, layer_segments, metric_panels_picture,
    roofline_picture, roofline_points, stacked_bars_picture,
)

__all__ = ["SPGEMM_PICTURES", "spgemm_pictures", "write_spgemm_report", "energy_parts"]

SPGEMM_PICTURES = ("dataflows", "roofline", "energy", "traffic", "comparison")
_TRAFFIC = (("a", "A", SERIES[0]), ("b", "B", SERIES[1]), ("c", "C", SERIES[2]),
            ("partial", "partial and spilled products", COLORS["stall"]))


def energy_parts(r: SpgemmResult, spec: HardwareSpec) -> dict[str, float]:
    """The energy of one dataflow in pJ by part: ``mac`` = multiplies x ``e_mac_pj``,
    ``dram`` = DRAM bytes x ``e_dram_pj_per_byte``, ``sram`` = the rest of the simulator's
    ``energy_pj`` (scratchpad and B-cache bytes x ``e_sram_pj_per_byte``, the third term of
    its sum, docs/spgemm.md)."""
    mac = r.macs * spec.e_mac_pj
    dram = r.dram_bytes * spec.e_dram_pj_per_byte
    return {"mac": mac, "sram": r.energy_pj - mac - dram, "dram": dram}


def _check(results: Sequence[SpgemmResult], spec: HardwareSpec) -> list[SpgemmResult]:
    results = list(results)
    if not results or not all(isinstance(r, SpgemmResult) for r in results):
        raise ReportError("results are not allowed: give the SpgemmResult of each simulated dataflow (at least one)")
    if not isinstance(spec, HardwareSpec):
        raise ReportError(f"spec = {type(spec).__name__} is not allowed: give the HardwareSpec that was simulated")
    shapes = {(r.shape, r.nnz_a, r.nnz_b) for r in results}
    if len(shapes) > 1:
        raise ReportError("the dataflows were not simulated on the same A and B: compare like with like")
    labels = [r.label for r in results]
    if len(set(labels)) != len(labels):
        raise ReportError(f"dataflow {labels!r} holds a dataflow twice: give each once")
    return results


def spgemm_pictures(results: Sequence[SpgemmResult], spec: HardwareSpec, *, product: str = "A x B") -> list[Picture]:
    """The pictures of the SpGEMM report, in page order."""
    results = _check(results, spec)
    s = spec.spgemm
    labels = [r.label for r in results]
    frame = pd.DataFrame({"name": labels, "cycles": [r.cycles for r in results],
                          "compute_cycles": [r.compute_cycles for r in results],
                          "stall_cycles": [r.cycles - r.compute_cycles for r in results],
                          "utilisation": [r.pe_cycles_mean / r.cycles if r.cycles else 0.0 for r in results]})
    pics = [layer_bars_picture(
        "dataflows", layer_segments(frame), title=f"Cycles and PE utilisation per dataflow: {product} on "
                                                  f"{spec.name} [{spec.digest}], {s.pes} PEs",
        caption="Compute: the busiest PE's cycles, summed over the dataflow's phases (outer has two: multiply, "
                "merge); memory stall: the cycles beyond that, where DRAM transfers outlast the compute they "
                "overlap, plus each phase's DRAM latency. Utilisation: the PEs' mean busy cycles over the cycles.")]
    clock_hz = spec.clock_mhz * 1e6
    pts = roofline_points(labels, [r.macs for r in results], [r.dram_bytes for r in results],
                          [r.cycles for r in results], clock_hz)
    pics.append(roofline_picture(
        "roofline", {"dataflows": pts}, peak_macs_per_s=s.pes * clock_hz,
        dram_bytes_per_s=spec.dram_bandwidth_gbps * 1e9, annotate=True,
        title=f"Roofline of the dataflows: {s.pes} PEs at {spec.clock_mhz:g} MHz, DRAM {spec.dram_bandwidth_gbps:g} GB/s",
        caption="Each marker is one dataflow: multiplies (partial products) per DRAM byte against multiplies per "
                "second. Peak: every PE issues at most one operation per cycle and every product takes at least "
                "one, so spgemm.pes x clock; the slanted roof is intensity x DRAM bandwidth. Dataflows far under "
                "the roof spend their cycles on merging (probes, conflicts, heap steps), not multiplying."))
    pics.append(energy_picture(
        "energy", {lab: {k: v / 1e6 for k, v in energy_parts(r, spec).items()} for lab, r in zip(labels, results)},
        unit="uJ", title=f"Energy per dataflow: {product}",
        caption=f"Multiplies x {spec.e_mac_pj:g} pJ; DRAM bytes x {spec.e_dram_pj_per_byte:g} pJ/B; on-chip: the "
                f"scratchpad (and B-cache) bytes x {spec.e_sram_pj_per_byte:g} pJ/B, the rest of the simulator's "
                "energy."))
    pics.append(stacked_bars_picture(
        "traffic", {lab: {"a": r.dram_bytes_a / 1e6, "b": r.dram_bytes_b / 1e6, "c": r.dram_bytes_c / 1e6,
                          "partial": r.dram_bytes_partial / 1e6} for lab, r in zip(labels, results)},
        _TRAFFIC, axis="DRAM traffic", unit="MB", what="traffic", title=f"DRAM traffic by operand: {product}",
        caption=f"Bytes moved in {s.dram_access_bytes}-byte units: A and C once (in the dataflow's format), B as "
                "often as the dataflow fetches it (or, with a B cache, the lines it misses), and the partial "
                "products outer writes and reads back or that spill from a full hash table."))
    first = results[0]
    panels: list[tuple[str, list[Any]]] = [
        ("time (us)", [r.time_us for r in results]),
        (f"speedup over {first.label}", [first.cycles / r.cycles for r in results]),
        ("scratchpad accesses", [r.scratchpad_accesses for r in results]),
        ("hash collisions", [r.collisions if r.dataflow == "rowwise-hash" else None for r in results]),
        ("atomic + bank conflicts", [r.atomic_conflicts + r.bank_conflicts if r.dataflow == "rowwise-hash" else None
                                     for r in results]),
    ]
    if any(r.cache_hit_rate is not None for r in results):
        panels.append(("B-cache hit rate (%)", [None if r.cache_hit_rate is None else 100 * r.cache_hit_rate
                                                for r in results]))
    pics.append(metric_panels_picture(
        "comparison", labels, panels, title=f"The dataflows against each other: {product}",
        caption="Collisions and conflicts apply to the hash dataflows only (a missing bar: not applicable)."
                + (f" B cache: {s.cache_bytes} B per PE, {s.cache_ways}-way, {s.cache_line_bytes} B lines, "
                   f"{s.cache_replacement.upper()}." if s.cache_bytes else "")))
    return pics


def _table(results: Sequence[SpgemmResult]) -> pd.DataFrame:
    rows = []
    for r in results:
        rows.append({"dataflow": r.label, "cycles": r.cycles, "time us": r.time_us, "compute": r.compute_cycles,
                     "DRAM cycles": r.dram_cycles, "utilisation %": 100 * r.pe_cycles_mean / r.cycles,
                     "multiplies": r.macs, "scratchpad": r.scratchpad_accesses, "probes": r.hash_probes,
                     "collisions": r.collisions, "atomic conflicts": r.atomic_conflicts,
                     "bank conflicts": r.bank_conflicts, "spilled": r.spilled_products,
                     "DRAM MB": r.dram_bytes / 1e6,
                     "B-cache hit %": None if r.cache_hit_rate is None else 100 * r.cache_hit_rate,
                     "energy uJ": r.energy_pj / 1e6})
    return pd.DataFrame(rows)


def write_spgemm_report(results: Sequence[SpgemmResult], spec: HardwareSpec, path: Path | str, *,
                        a: Mapping[str, Any], b: Mapping[str, Any], checks: Mapping[str, str]) -> list[Path]:
    """Write the SpGEMM report page ``path`` (``.html``) and each picture as
    ``<stem>-<picture>.png``/``.svg`` beside it; returns the paths written. ``a`` and ``b``
    describe the operands (``name``, ``shape``, ``nnz``, ``source``), ``checks`` the
    functional check of each dataflow against SciPy. Nothing is written when the arguments
    do not fit together (:class:`ReportError`)."""
    path = html_path(path)
    product = f"{a['name']} x {b['name']}"
    pics = spgemm_pictures(results, spec, product=product)
    s = spec.spgemm
    r0 = results[0]
    best = min(results, key=lambda r: r.cycles)
    facts = [
        ("A", f"{a['name']}: {a['shape'][0]}x{a['shape'][1]}, {a['nnz']:,} nonzeros ({a['source']})"),
        ("B", f"{b['name']}: {b['shape'][0]}x{b['shape'][1]}, {b['nnz']:,} nonzeros ({b['source']})"),
        ("C", f"{r0.nnz_c:,} nonzeros from {r0.macs:,} multiplies"),
        ("hardware", f"{spec.name} [{spec.digest}]: {s.pes} PEs, {s.scratchpad_kib} KiB scratchpad each, hash "
                     f"table {s.table_entries} entries in {s.banks} banks (SMASH {s.smash}), {spec.clock_mhz:g} MHz, "
                     f"DRAM {spec.dram_bandwidth_gbps:g} GB/s"
                     + (f"; B cache {s.cache_bytes} B/PE, {s.cache_ways}-way" if s.cache_bytes else "; no B cache")),
        ("fastest", f"{best.label}: {best.cycles:,} cycles = {best.time_us:.4g} us, "
                    f"{r0.cycles / best.cycles:.3g}x faster than {r0.label}"),
        ("functional check", "against SciPy's A @ B: " + ", ".join(f"{d} {c}" for d, c in checks.items())),
    ]
    sections = [Section("Summary").raw(facts_html(facts))]
    titles = {"dataflows": "Cycles per dataflow", "roofline": "Roofline", "energy": "Energy breakdown",
              "traffic": "DRAM traffic", "comparison": "Dataflows against each other"}
    for pic in pics:
        sections.append(Section(titles[pic.name]).picture(pic))
    sections.append(Section("Per-dataflow results").table(_table(results), text_columns=["dataflow"]))
    return write_report(path, f"sparseforge spgemm: {product} on {spec.name}",
                        f"{len(results)} dataflows; spec digest {spec.digest}; pictures also as {path.stem}-*.png/.svg",
                        sections, pics)
