"""The training report: ``sparseforge simulate --train --output report.html``.

Built from one simulated training iteration (:class:`~sparseforge.sim.train.TrainResult`) and,
when given, the same iteration trained dense on the same hardware. It shows

- per GEMM (every layer's forward FF, backward-data BP and weight-gradient WG GEMM, in
  layer order) the stacked cycles (compute, memory stall) and the GEMM's utilisation;
- a roofline of the FF, BP and WG GEMMs (and the dense run's GEMMs) against the spec's peak
  (``rows * cols * n`` MACs per cycle times the clock) and its DRAM bandwidth;
- the energy breakdown of the iteration: MAC, on-chip SRAM and DRAM of the GEMMs, the SORE's
  mask generation and the weight-update engine, for the method and for dense training;
- where the iteration's array time goes, per run: the FF, BP and WG GEMMs, the waits for
  masks and the weight-update tail;
- the method against dense training per layer (cycles of its three GEMMs, and the speedup);
- the per-layer table.

Each picture is also written beside the page as ``<stem>-<picture>.png`` and ``.svg``
(:func:`~sparseforge.report.page.write_report`, atomically). The figure builders are the
shared ones of :mod:`.plots`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from sparseforge.sim.train import TrainResult, ideal_speedup
from sparseforge.spec import HardwareSpec

from .base import ReportError
from .page import Section, facts_html, html_path, write_report
from .plots import (
    COLORS, SERIES, Picture, energy_picture, layer_bars_picture, layer_segments, roofline_left_out,
    roofline_picture, roofline_points, speedup_picture, stacked_bars_picture,
)

__all__ = ["TRAIN_PICTURES", "training_pictures", "write_training_report", "gemm_rows", "iteration_parts"]

#: Picture names of the training report (HTML ids and file-name suffixes); the last one
#: needs the dense run.
TRAIN_PICTURES = ("gemms", "roofline", "energy", "phases", "sparse-vs-dense")
PHASES = ("FF", "BP", "WG")
#: The parts of an iteration's array time (:func:`iteration_parts`): key, legend, colour.
_PARTS = (("ff", "FF GEMMs", SERIES[0]), ("bp", "BP GEMMs", SERIES[1]), ("wg", "WG GEMMs", SERIES[2]),
          ("mask_wait", "waiting for masks", COLORS["stall"]), ("update_tail", "weight-update tail", COLORS["update"]))


def _label(res: TrainResult) -> str:
    sp = f" {res.sparsity[0]}:{res.sparsity[1]}" if res.sparsity else ""
    return f"{res.method}{sp}"


def gemm_rows(res: TrainResult) -> pd.DataFrame:
    """One row per GEMM of the iteration, layer by layer (FF, BP, WG; a layer without BP
    -- the first -- has two): ``name`` (``"<layer> <phase>"``), ``layer``, ``phase`` and the
    simulator's :class:`~sparseforge.sim.simulate.LayerResult` fields."""
    rows = []
    for lay in res.layers:
        for phase, r in zip(PHASES, (lay.ff, lay.bp, lay.wg)):
            if r is None:
                continue
            d = r.to_dict()
            d.update(name=f"{lay.name} {phase}", layer=lay.name, phase=phase)
            rows.append(d)
    return pd.DataFrame(rows)


def iteration_parts(res: TrainResult) -> dict[str, float]:
    """The array's time in the iteration, in cycles: the FF, BP and WG GEMMs' own cycles,
    the array waiting for masks, and the weight-update tail after the array finished (from
    :meth:`TrainResult.totals`)."""
    t = res.totals()
    return {"ff": t["ff_cycles"], "bp": t["bp_cycles"], "wg": t["wg_cycles"], "mask_wait": t["mask_wait_cycles"],
            "update_tail": t["update_tail_cycles"]}


def _overlap(res: TrainResult) -> int:
    """Cycles by which the parts of :func:`iteration_parts` exceed the iteration (negative:
    fall short of it). With interleaving the GEMMs share one DRAM timeline, and their own
    cycle counts overlap or leave out the final write-back."""
    return int(sum(iteration_parts(res).values())) - res.cycles


def _check(res: TrainResult, dense: TrainResult | None) -> HardwareSpec:
    if not isinstance(res, TrainResult):
        raise ReportError(f"result = {type(res).__name__} is not allowed: give the TrainResult of simulate_training")
    if dense is not None:
        if not isinstance(dense, TrainResult):
            raise ReportError(f"dense = {type(dense).__name__} is not allowed: give a TrainResult or None")
        if dense.spec.digest != res.spec.digest or [x.name for x in dense.layers] != [x.name for x in res.layers]:
            raise ReportError(f"dense run of {dense.network} [{dense.spec.digest}] is not the same layers on the same "
                              f"hardware as {res.network} [{res.spec.digest}]: compare like with like")
    return res.spec


def training_pictures(res: TrainResult, dense: TrainResult | None) -> list[Picture]:
    """The pictures of the training report, in page order."""
    spec = _check(res, dense)
    lab = _label(res)
    clock_hz = spec.clock_mhz * 1e6
    gemms = gemm_rows(res)
    pics = [layer_bars_picture(
        "gemms", layer_segments(gemms),
        title=f"Cycles and utilisation per GEMM: {res.network}, {lab}, on {spec.name} [{spec.digest}]",
        caption="Every layer's forward (FF), backward-data (BP) and weight-gradient (WG) GEMM in layer order (the "
                "first layer has no BP). Compute: the array busy, weight loading and pipeline fill included; memory "
                "stall: waiting for DRAM transfers the double buffers could not hide. Utilisation: useful MACs over "
                "multiplier-cycles.")]
    series = {}
    for ph in PHASES:
        g = gemms[gemms["phase"] == ph]
        if len(g):
            series[f"{lab} {ph}"] = roofline_points(g["name"], g["useful_macs"], g["dram_bytes"], g["cycles"], clock_hz)
    if dense is not None:
        dg = gemm_rows(dense)
        series["dense (FF, BP, WG)"] = roofline_points(dg["name"], dg["useful_macs"], dg["dram_bytes"], dg["cycles"],
                                                       clock_hz)
    left_out = roofline_left_out(series)
    pics.append(roofline_picture(
        "roofline", series, peak_macs_per_s=spec.multipliers * clock_hz,
        dram_bytes_per_s=spec.dram_bandwidth_gbps * 1e9,
        title=f"Roofline of the training GEMMs: {spec.rows}x{spec.cols} PEs x {spec.n} multipliers at "
              f"{spec.clock_mhz:g} MHz, DRAM {spec.dram_bandwidth_gbps:g} GB/s",
        caption="Each marker is one GEMM, coloured by phase. Peak: rows x cols x n multipliers x clock (useful MACs "
                "per second); the slanted roof is intensity x DRAM bandwidth. The N:M GEMMs do fewer useful MACs in "
                "fewer cycles; the WG GEMMs stay dense."
                + (f" {left_out} GEMMs with no DRAM traffic cannot be placed and are left out." if left_out else "")))
    bars = {lab: {k: v / 1e9 for k, v in res.totals()["energy_pj"].items()}}
    if dense is not None:
        bars["dense"] = {k: v / 1e9 for k, v in dense.totals()["energy_pj"].items()}
    pics.append(energy_picture(
        "energy", bars, unit="mJ", title=f"Energy per training iteration: {res.network}",
        caption=f"GEMMs: issued multiplier operations ({spec.e_mac_pj:g} pJ), on-chip buffer bytes "
                f"({spec.e_sram_pj_per_byte:g} pJ/B), DRAM bytes ({spec.e_dram_pj_per_byte:g} pJ/B); SORE: ranked "
                f"weights ({spec.train.e_sore_pj:g} pJ each) and its DRAM traffic; weight update: updated weights "
                f"({spec.train.e_update_pj:g} pJ each) and the master weights, momentum and gradients it moves."))
    runs = {lab: res} | ({"dense": dense} if dense is not None else {})
    overlap = {k: _overlap(r) for k, r in runs.items()}
    pics.append(stacked_bars_picture(
        "phases", {k: iteration_parts(r) for k, r in runs.items()}, _PARTS, axis="cycles", unit="cycles",
        what="iteration",
        title="Iteration breakdown: " + ", ".join(f"{k} {r.cycles:,} cycles" for k, r in runs.items()),
        caption="The FF, BP and WG GEMMs' own cycles, the array waiting for the SORE's masks, and the weight-update "
                "engine's tail after the array finished. Bar minus iteration: "
                + ", ".join(f"{v:+,} cycles ({k})" for k, v in overlap.items())
                + ". With interleaving the GEMMs share one DRAM timeline, so a GEMM's own cycles can overlap the "
                  "previous GEMM's, or leave out the last write-back, which ends the array's time."))
    if dense is not None:
        pics.append(speedup_picture(
            "sparse-vs-dense", [x.name for x in res.layers], (lab, [x.gemm_cycles for x in res.layers]),
            ("dense", [x.gemm_cycles for x in dense.layers]), ratio_name="speedup (dense / method)",
            unit="GEMM cycles", title=f"{lab} against dense training: {dense.cycles / res.cycles:.3f}x per iteration "
                  f"(ideal {ideal_speedup(res.method, res.sparsity):.3f}x)",
            caption="Cycles of each layer's FF + BP + WG GEMMs under both recipes; the line is each layer's speedup. "
                    "The ideal assumes FF, BP and WG cost the same and scale with density; WG stays dense, and "
                    "memory-bound GEMMs gain less."))
    return pics


def _layer_table(res: TrainResult, dense: TrainResult | None) -> pd.DataFrame:
    rows = []
    dense_by = {x.name: x for x in dense.layers} if dense is not None else {}
    for x in res.layers:
        d = x.to_dict()
        r = {"layer": x.name, "kind": x.kind, "FF mode": d["ff_mode"], "BP mode": d["bp_mode"] or "",
             "FF cycles": d["ff_cycles"], "BP cycles": d["bp_cycles"], "WG cycles": d["wg_cycles"],
             "stall": d["stall_cycles"], "mask": d["mask_cycles"], "mask wait": d["mask_wait_cycles"],
             "update": d["update_cycles"], "DRAM MiB": d["dram_bytes"] / 2**20,
             "energy uJ": sum(d["energy_pj"].values()) / 1e6}
        if dense is not None:
            r["dense GEMM cycles"] = dense_by[x.name].gemm_cycles
            r["speedup"] = dense_by[x.name].gemm_cycles / x.gemm_cycles
        rows.append(r)
    return pd.DataFrame(rows)


def write_training_report(res: TrainResult, dense: TrainResult | None, path: Path | str, *,
                          batch: int | str | None = None,
                          cycles_without: Mapping[str, int] | None = None) -> list[Path]:
    """Write the training report page ``path`` (``.html``) and each picture as
    ``<stem>-<picture>.png``/``.svg`` beside it; returns the paths written. ``batch`` and
    ``cycles_without`` (the iteration with a dataflow option switched off) go into the
    summary. Nothing is written when the arguments do not fit together (:class:`ReportError`)."""
    path = html_path(path)
    pics = training_pictures(res, dense)
    spec = res.spec
    t = res.totals()
    lab = _label(res)
    facts = [
        ("network", f"{res.network}" + (f", batch {batch}" if batch is not None else "")
         + f", {len(res.layers)} layers, {len(gemm_rows(res))} GEMMs"),
        ("method", f"{lab}; interleave {'on' if res.interleave else 'off'}, "
                   f"pre-generation {'on' if res.pregenerate else 'off'}"),
        ("hardware", f"{spec.name} [{spec.digest}]: {spec.rows}x{spec.cols} PEs, {spec.n}:{spec.m}, "
                     f"{spec.multipliers} multipliers, {spec.clock_mhz:g} MHz, DRAM {spec.dram_bandwidth_gbps:g} GB/s"),
        ("iteration", f"{t['cycles']:,} cycles = {t['time_ms']:.4g} ms; GEMMs FF {t['ff_cycles']:,}, "
                      f"BP {t['bp_cycles']:,}, WG {t['wg_cycles']:,} cycles (memory stalls {t['gemm_stall_cycles']:,}); "
                      f"waiting for masks {t['mask_wait_cycles']:,}; update tail {t['update_tail_cycles']:,}"),
        ("units", f"SORE busy {t['sore_busy_cycles']:,} cycles, update engine busy {t['update_busy_cycles']:,} "
                  f"cycles; DRAM {t['dram_bytes'] / 2**20:.4g} MiB"),
        ("energy", ", ".join(f"{k} {v / 1e9:.4g} mJ" for k, v in t["energy_pj"].items())
                   + f" = {t['energy_total_pj'] / 1e9:.4g} mJ"),
    ]
    if dense is not None:
        d = dense.totals()
        facts.append(("against dense", f"{d['cycles']:,} cycles dense: speedup {d['cycles'] / t['cycles']:.3f}x "
                                       f"(ideal {ideal_speedup(res.method, res.sparsity):.3f}x), energy "
                                       f"{d['energy_total_pj'] / t['energy_total_pj']:.2f}x lower"))
    names = {"pregenerate": "pre-generation", "interleave": "interleave"}
    for opt, cycles in (cycles_without or {}).items():
        facts.append((f"without {names.get(opt, opt)}", f"{cycles:,} cycles ({cycles / res.cycles - 1:+.2%}): "
                                                        f"it saves {cycles - res.cycles:,} cycles"))
    sections = [Section("Summary").raw(facts_html(facts))]
    titles = {"gemms": "Cycles per GEMM", "roofline": "Roofline", "energy": "Energy breakdown",
              "phases": "Iteration breakdown", "sparse-vs-dense": "Method against dense training"}
    for pic in pics:
        sections.append(Section(titles[pic.name]).picture(pic))
    sections.append(Section("Per-layer results").table(_layer_table(res, dense),
                                                       text_columns=["layer", "kind", "FF mode", "BP mode"]))
    return write_report(path, f"sparseforge simulate --train: {res.network} on {spec.name}",
                        f"{lab}; spec digest {spec.digest}; pictures also as {path.stem}-*.png/.svg", sections, pics)
