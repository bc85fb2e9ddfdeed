"""The single-simulation report: ``sparseforge simulate --output report.html``.

Built from the simulator's :class:`~sparseforge.sim.simulate.NetworkResult` of a network
run at its sparsity and, when given, the same layers run dense on the same array. It shows

- per-layer stacked cycles (compute, weight load where the results give it, memory stalls)
  with each layer's utilisation;
- a roofline: every layer at its arithmetic intensity (useful MACs per DRAM byte) and
  achieved useful MAC rate, under the spec's peak (``rows * cols * n`` MACs per cycle times
  the clock) and its DRAM bandwidth (``dram_bandwidth_gbps``);
- the energy breakdown (MAC, on-chip SRAM, DRAM) of the sparse and dense runs;
- the sparse-against-dense comparison per layer (cycles and speedup);
- the per-layer table.

Each picture is also written beside the page as ``<stem>-<picture>.png`` and ``.svg``.
The same figure builders (:mod:`.plots`) draw the sweep report.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sparseforge.sim.simulate import NetworkResult
from sparseforge.spec import HardwareSpec

from .base import ReportError
from .page import Section, facts_html, html_path, write_report
from .plots import (
    Picture, energy_picture, layer_bars_picture, layer_segments, roofline_left_out, roofline_picture,
    roofline_points, speedup_picture,
)

__all__ = ["write_simulation_report", "simulation_pictures", "SIM_PICTURES", "sparsity_label"]

#: Picture names of the simulation report (HTML ids and file-name suffixes); the last two
#: need the dense run.
SIM_PICTURES = ("layers", "roofline", "energy", "sparse-vs-dense")


def sparsity_label(res: NetworkResult) -> str:
    return f"{res.sparsity[0]}:{res.sparsity[1]}" if res.sparsity else "dense"


def _layers_frame(res: NetworkResult) -> pd.DataFrame:
    return pd.DataFrame([lay.to_dict() for lay in res.layers])


def _roofline_points(res: NetworkResult) -> pd.DataFrame:
    lay = _layers_frame(res)
    return roofline_points(lay["name"], lay["useful_macs"], lay["dram_bytes"], lay["cycles"],
                           res.spec.clock_mhz * 1e6)


def _check(sparse: NetworkResult, dense: NetworkResult | None, spec: HardwareSpec) -> None:
    if not isinstance(sparse, NetworkResult):
        raise ReportError(f"sparse = {type(sparse).__name__} is not allowed: give the NetworkResult of simulate_network")
    if not isinstance(spec, HardwareSpec):
        raise ReportError(f"spec = {type(spec).__name__} is not allowed: give the HardwareSpec that was simulated")
    if sparse.spec.digest != spec.digest:
        raise ReportError(f"spec {spec.name} [{spec.digest}] is not the spec the results were simulated on "
                          f"({sparse.spec.name} [{sparse.spec.digest}])")
    if dense is not None:
        if not isinstance(dense, NetworkResult):
            raise ReportError(f"dense = {type(dense).__name__} is not allowed: give a NetworkResult or None")
        if dense.spec.digest != spec.digest or [x.name for x in dense.layers] != [x.name for x in sparse.layers]:
            raise ReportError(f"dense run of {dense.network} [{dense.spec.digest}] is not the same layers on the same "
                              f"array as {sparse.network} [{spec.digest}]: compare like with like")


def simulation_pictures(sparse: NetworkResult, dense: NetworkResult | None, spec: HardwareSpec) -> list[Picture]:
    """The pictures of the simulation report, in page order."""
    _check(sparse, dense, spec)
    sp = sparsity_label(sparse)
    what = f"{sparse.network}, weights {sp}, on {spec.name} [{spec.digest}]"
    pics = [layer_bars_picture("layers", layer_segments(_layers_frame(sparse)),
                               title=f"Cycles and utilisation per layer: {what}",
                               caption="Compute: the engine busy (weight loading and pipeline fill included); memory "
                                       "stall: the array waiting for DRAM transfers that the double buffers could not "
                                       "hide. Utilisation: useful MACs over multiplier-cycles.")]
    series = {f"{sp} ({sparse.network})": _roofline_points(sparse)}
    if dense is not None:
        series[f"dense ({dense.network})"] = _roofline_points(dense)
    left_out = roofline_left_out(series)
    peak = spec.multipliers * spec.clock_mhz * 1e6
    pics.append(roofline_picture(
        "roofline", series, peak_macs_per_s=peak, dram_bytes_per_s=spec.dram_bandwidth_gbps * 1e9,
        title=f"Roofline: {spec.rows}x{spec.cols} PEs x {spec.n} multipliers at {spec.clock_mhz:g} MHz, "
              f"DRAM {spec.dram_bandwidth_gbps:g} GB/s",
        caption="Each marker is one layer. Peak: rows x cols x n multipliers x clock (useful MACs per second); "
                "the slanted roof is intensity x DRAM bandwidth. Layers left of the ridge are bound by memory, "
                "right of it by compute; the gap under the roof is pipeline fill, tile edges and stalls."
                + (f" {left_out} layer runs with no DRAM traffic cannot be placed and are left out." if left_out else "")))
    bars = {f"{sp}": {k: v / 1e6 for k, v in sparse.energy_pj.items()}}
    if dense is not None:
        bars["dense"] = {k: v / 1e6 for k, v in dense.energy_pj.items()}
    pics.append(energy_picture("energy", bars, title=f"Energy per inference: {sparse.network}", unit="uJ",
                               caption="Event counts times the spec's energies per event: issued multiplier operations "
                                       f"({spec.e_mac_pj:g} pJ), on-chip buffer bytes ({spec.e_sram_pj_per_byte:g} pJ/B) "
                                       f"and DRAM bytes ({spec.e_dram_pj_per_byte:g} pJ/B)."))
    if dense is not None:
        pics.append(speedup_picture(
            "sparse-vs-dense", [x.name for x in sparse.layers], (sp, [x.cycles for x in sparse.layers]),
            ("dense", [x.cycles for x in dense.layers]), ratio_name="speedup (dense / sparse)", unit="cycles",
            title=f"Sparse {sp} against dense on the same array: {dense.cycles / sparse.cycles:.2f}x in total",
            caption="Cycles per layer of both runs; the line is each layer's speedup. Layers that are not pruned "
                    "(attention products) or that are memory bound gain little."))
    return pics


def _layer_table(sparse: NetworkResult, dense: NetworkResult | None) -> pd.DataFrame:
    rows = []
    dense_by = {x.name: x for x in dense.layers} if dense is not None else {}
    for x in sparse.layers:
        r = {"layer": x.name, "mode": x.mode, "dataflow": x.dataflow, "T": x.tokens, "K": x.k, "N": x.n_out,
             "count": x.count, "cycles": x.cycles, "compute": x.compute_cycles, "stall": x.stall_cycles,
             "utilisation %": 100 * x.utilisation, "DRAM KiB": x.dram_bytes / 1024,
             "energy uJ": x.energy_total_pj / 1e6}
        if dense is not None:
            d = dense_by[x.name]
            r["dense cycles"] = d.cycles
            r["speedup"] = d.cycles / x.cycles
        rows.append(r)
    return pd.DataFrame(rows)


def write_simulation_report(sparse: NetworkResult, dense: NetworkResult | None, spec: HardwareSpec,
                            path: Path | str, workload: str | None = None) -> list[Path]:
    """Write the report page ``path`` (``.html``) and each picture as
    ``<stem>-<picture>.png``/``.svg`` beside it; returns the paths written. Nothing is
    written when the arguments do not fit together (:class:`ReportError`). ``workload``
    names the run in the title (e.g. ``"minilm (128 tokens)"``; default the network's name)."""
    path = html_path(path)
    workload = workload or sparse.network
    pics = simulation_pictures(sparse, dense, spec)
    t = sparse.totals()
    sp = sparsity_label(sparse)
    facts = [
        ("network", f"{workload}, {len(sparse.layers)} GEMM layers, weights {sp}"),
        ("hardware", f"{spec.name} [{spec.digest}]: {spec.rows}x{spec.cols} PEs, {spec.n}:{spec.m}, "
                     f"{spec.multipliers} multipliers, {spec.act_width}-bit x {spec.weight_width}-bit, "
                     f"{spec.dataflow}"),
        ("clock and memory", f"{spec.clock_mhz:g} MHz; DRAM {spec.dram_bandwidth_gbps:g} GB/s, "
                             f"{spec.dram_latency_ns:g} ns; buffers {spec.weight_buffer_kib}/{spec.input_buffer_kib}/"
                             f"{spec.output_buffer_kib} KiB (weights/inputs/outputs)"
                             + (", double-buffered" if spec.double_buffer else "")),
        ("total", f"{t['cycles']:,} cycles = {t['time_ms']:.4g} ms; utilisation {t['utilisation']:.1%}; "
                  f"stalls {t['stall_cycles'] / t['cycles']:.1%} of cycles"),
        ("energy", ", ".join(f"{k} {v / 1e6:.4g} uJ" for k, v in t["energy_pj"].items())
                   + f" = {t['energy_total_pj'] / 1e6:.4g} uJ"),
    ]
    if dense is not None:
        d = dense.totals()
        facts.append(("against dense", f"{d['cycles']:,} cycles dense: speedup {d['cycles'] / t['cycles']:.2f}x, "
                                       f"energy {d['energy_total_pj'] / t['energy_total_pj']:.2f}x lower"))
    sections = [Section("Summary").raw(facts_html(facts))]
    titles = {"layers": "Cycles per layer", "roofline": "Roofline", "energy": "Energy breakdown",
              "sparse-vs-dense": "Sparse against dense"}
    for pic in pics:
        sections.append(Section(titles[pic.name]).picture(pic))
    sections.append(Section("Per-layer results").table(_layer_table(sparse, dense),
                                                       text_columns=["layer", "mode", "dataflow"]))
    return write_report(path, f"sparseforge simulate: {workload} on {spec.name}",
                        f"weights {sp}; spec digest {spec.digest}; pictures also as {path.stem}-*.png/.svg",
                        sections, pics)
