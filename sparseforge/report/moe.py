"""The MoE report: ``sparseforge simulate --net m3vit-small ... --output report.html``.

Built from a multi-task MoE frame sequence simulated under one or more schedules
(:class:`~sparseforge.sim.moe.MoeSimResult`: ``naive`` token by token with every expert of a
layer on chip, ``cache`` token by token with a few cached experts, ``reorder`` expert by
expert from per-expert token queues) and the dense ViT of the same shape. It shows

- the first frame layer by layer (backbone GEMMs and MoE expert layers, in execution order)
  under the reordering schedule (or the only one simulated): stacked cycles (compute, expert
  loads the array waits for, memory stalls and output writes) and each layer's utilisation;
- a roofline of those layers -- the backbone's and each schedule's MoE layers -- against the
  spec's peak (``rows * cols * n`` MACs per cycle times the clock) and DRAM bandwidth;
- the energy per frame of each schedule: MAC, on-chip SRAM and DRAM of the backbone, the MoE
  layers' DRAM bytes, and the MoE layers' MAC and on-chip energy (which the simulator
  reports as one sum);
- the schedules against each other and the dense ViT: latency, on-chip memory, DRAM
  traffic, energy, expert loads and task-switch cost per frame;
- the MoE layers of the first frame under each schedule, with reordering's speedup;
- every frame's latency under each schedule (task switches show as steps);
- the per-schedule table.

Each picture is also written as ``<stem>-<picture>.png`` and ``.svg`` beside the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from sparseforge.models.moe import MoeVitConfig
from sparseforge.sim.moe import MoeLayerResult, MoeSimResult

from .base import ReportError
from .page import Section, facts_html, html_path, write_report
from .plots import (
    Picture, energy_picture, layer_bars_picture, layer_compare_picture, layer_segments, metric_panels_picture,
    roofline_left_out, roofline_picture, roofline_points,
)

__all__ = ["MOE_PICTURES", "moe_pictures", "write_moe_report", "frame_layers", "expert_layer_macs", "frame_energy"]

MOE_PICTURES = ("layers", "roofline", "energy", "schedules", "moe-layers", "frames")


def expert_layer_macs(cfg: MoeVitConfig) -> int:
    """Useful MACs of one MoE layer of a frame: each of the ``tokens`` goes to ``top_k``
    experts, each an ``embed -> expert_hidden -> embed`` MLP (:mod:`sparseforge.models.moe`)."""
    return cfg.tokens * cfg.top_k * 2 * cfg.embed * cfg.expert_hidden


def _shown(res: MoeSimResult) -> str:
    return "reorder" if "reorder" in res.schedules else next(iter(res.schedules))


def frame_layers(res: MoeSimResult, schedule: str, frame: int = 0) -> pd.DataFrame:
    """The layers of one frame in execution order -- the backbone's GEMMs and, after each
    MoE block's router, that block's expert layer under ``schedule`` -- with ``name``,
    ``kind`` (``backbone``/``moe``), ``cycles``, ``compute_cycles``, ``load_cycles`` (the
    array waiting for expert loads), ``stall_cycles`` (memory stalls; for an MoE layer the
    output write after its last expert), ``useful_macs``, ``dram_bytes`` and
    ``utilisation`` (useful MACs over multiplier-cycles)."""
    spec = res.spec
    moe_by_block: dict[int, MoeLayerResult] = {lay.block: lay for lay in res.schedules[schedule].frames[frame].layers}
    macs = expert_layer_macs(res.cfg)
    rows: list[dict[str, Any]] = []
    dense = list(res.dense_layers)
    for i, d in enumerate(dense):
        rows.append({"name": d.name, "kind": "backbone", "cycles": d.cycles, "compute_cycles": d.compute_cycles,
                     "load_cycles": 0, "stall_cycles": d.stall_cycles, "useful_macs": d.useful_macs,
                     "dram_bytes": d.dram_bytes, "utilisation": d.utilisation})
        block = d.name.split(".")[0]
        last_of_block = i + 1 == len(dense) or dense[i + 1].name.split(".")[0] != block
        b = int(block[5:]) if block.startswith("block") and block[5:].isdigit() else None
        if last_of_block and b in moe_by_block:
            m = moe_by_block.pop(b)
            rows.append({"name": f"block{b}.moe.experts", "kind": "moe", "cycles": m.cycles,
                         "compute_cycles": m.compute_cycles, "load_cycles": m.load_wait_cycles,
                         "stall_cycles": m.cycles - m.compute_cycles - m.load_wait_cycles, "useful_macs": macs,
                         "dram_bytes": m.dram_read_bytes + m.dram_write_bytes,
                         "utilisation": macs / (m.cycles * spec.multipliers)})
    if moe_by_block:
        raise ReportError(f"MoE blocks {sorted(moe_by_block)} have no backbone layers in the result: "
                          "give the MoeSimResult of simulate_moe")
    return pd.DataFrame(rows)


def frame_energy(res: MoeSimResult, schedule: str) -> dict[str, float]:
    """Mean energy per frame of ``schedule`` in pJ by part: the backbone's ``mac``, ``sram``
    and ``dram`` (the same every frame), plus the MoE layers' DRAM bytes x
    ``e_dram_pj_per_byte`` in ``dram`` and the rest of their energy (MACs and on-chip bytes)
    as ``experts``. The parts add up to the frames' mean ``energy_pj``."""
    spec = res.spec
    out = {"mac": 0.0, "sram": 0.0, "dram": 0.0}
    for d in res.dense_layers:
        for k, v in d.energy_pj.items():
            out[k] += v
    frames = res.schedules[schedule].frames
    moe_dram = sum(lay.dram_read_bytes + lay.dram_write_bytes for f in frames for lay in f.layers) / len(frames)
    moe_total = sum(lay.energy_pj for f in frames for lay in f.layers) / len(frames)
    out["dram"] += moe_dram * spec.e_dram_pj_per_byte
    out["experts"] = moe_total - moe_dram * spec.e_dram_pj_per_byte
    return out


def _check(res: MoeSimResult) -> None:
    if not isinstance(res, MoeSimResult):
        raise ReportError(f"result = {type(res).__name__} is not allowed: give the MoeSimResult of simulate_moe")
    if not res.schedules:
        raise ReportError("the MoE result holds no schedule: simulate at least one (naive, cache, reorder)")


def moe_pictures(res: MoeSimResult) -> list[Picture]:
    """The pictures of the MoE report, in page order."""
    _check(res)
    spec, cfg = res.spec, res.cfg
    shown = _shown(res)
    names = list(res.schedules)
    clock_hz = spec.clock_mhz * 1e6
    what = f"{cfg.name} ({cfg.tokens} tokens, {cfg.experts} experts, top-{cfg.top_k}) on {spec.name} [{spec.digest}]"
    layers = frame_layers(res, shown)
    pics = [layer_bars_picture(
        "layers", layer_segments(layers), title=f"Cycles and utilisation per layer, frame 0 ({res.tasks[0]}), "
                                                f"schedule {shown}: {what}",
        caption="Backbone GEMMs and, after each MoE block's router, the block's expert layer. Compute: the array "
                "busy; weight load: the array waiting for expert weights from DRAM; memory stall: waiting for DRAM "
                "transfers the buffers could not hide (for an expert layer, its output write). Utilisation: useful "
                "MACs over multiplier-cycles (an expert layer's useful MACs: tokens x top-k x 2 x embed x hidden).")]
    back = layers[layers["kind"] == "backbone"]
    series = {"backbone layers": roofline_points(back["name"], back["useful_macs"], back["dram_bytes"],
                                                 back["cycles"], clock_hz)}
    for s in names:
        m = frame_layers(res, s)
        m = m[m["kind"] == "moe"]
        series[f"MoE layers, {s}"] = roofline_points(m["name"], m["useful_macs"], m["dram_bytes"], m["cycles"], clock_hz)
    left_out = roofline_left_out(series)
    pics.append(roofline_picture(
        "roofline", series, peak_macs_per_s=spec.multipliers * clock_hz, dram_bytes_per_s=spec.dram_bandwidth_gbps * 1e9,
        title=f"Roofline of frame 0: {spec.rows}x{spec.cols} PEs x {spec.n} multipliers at {spec.clock_mhz:g} MHz, "
              f"DRAM {spec.dram_bandwidth_gbps:g} GB/s",
        caption="Each marker is one layer of the first frame: the backbone's GEMMs (the same under every schedule) "
                "and the MoE expert layers under each schedule. Expert layers read every expert they use from DRAM, "
                "so their intensity is low; token-by-token schedules also run far below the roof because each "
                "token's expert runs fill the array for one token."
                + (f" {left_out} layers with no DRAM traffic cannot be placed and are left out." if left_out else "")))
    pics.append(energy_picture(
        "energy", {s: {k: v / 1e9 for k, v in frame_energy(res, s).items()} for s in names}, unit="mJ",
        title=f"Energy per frame by schedule: {cfg.name}",
        caption=f"Mean over the {len(res.schedules[names[0]].frames)} frames. Backbone GEMMs: issued multiplier "
                f"operations ({spec.e_mac_pj:g} pJ), on-chip bytes ({spec.e_sram_pj_per_byte:g} pJ/B) and DRAM "
                f"bytes ({spec.e_dram_pj_per_byte:g} pJ/B); the MoE layers' DRAM bytes are in DRAM, their MAC and "
                "on-chip energy (one sum in the simulator) in the MoE experts part."))
    tot = {s: res.schedules[s].totals() for s in names}
    nframes = {s: len(res.schedules[s].frames) for s in names}
    cats = names + (["dense ViT"] if res.dense else [])
    dn = res.dense

    def row(fn, dense_value=None) -> list:
        return [fn(s) for s in names] + ([dense_value] if res.dense else [])

    panels = [
        ("mean frame latency (ms)", row(lambda s: tot[s]["mean_frame_ms"], dn.get("time_ms"))),
        ("MoE on-chip memory (KiB)", row(lambda s: tot[s]["moe_onchip_bytes"] / 1024)),
        ("DRAM per frame (MB)", row(lambda s: tot[s]["dram_bytes"] / nframes[s] / 1e6,
                                    dn["dram_bytes"] / 1e6 if dn else None)),
        ("energy per frame (mJ)", row(lambda s: tot[s]["mean_frame_energy_mj"], dn.get("energy_mj"))),
        ("expert loads per frame", row(lambda s: tot[s]["expert_loads"] / nframes[s])),
        ("mean task-switch cost (cycles)", row(lambda s: tot[s]["mean_switch_cycles"])),
    ]
    pics.append(metric_panels_picture(
        "schedules", cats, panels, title=f"Schedules against each other and the dense ViT: {cfg.name}, "
                                         f"{len(res.tasks)} frames",
        caption="naive: every expert of a layer on chip, tokens one by one; cache: "
                f"{spec.moe.cached_experts} cached experts refilled on demand (LRU), tokens one by one; reorder: "
                "tokens queued per expert, each used expert loaded once (ping-pong buffers) and run on its whole "
                "queue. dense ViT: the same backbone with a dense MLP in every block (no MoE memory, loads or "
                "switches: no bar). Task-switch cost: a frame's extra cycles after a frame of another task."))
    f0 = {s: res.schedules[s].frames[0].layers for s in names}
    blocks = [f"block{lay.block}" for lay in f0[names[0]]]
    ratios = None
    if "reorder" in names and len(names) > 1:
        ratios = {f"reorder speedup over {s}": [a.cycles / b.cycles for a, b in zip(f0[s], f0["reorder"])]
                  for s in names if s != "reorder"}
    pics.append(layer_compare_picture(
        "moe-layers", blocks, {s: [lay.cycles for lay in f0[s]] for s in names}, unit="cycles",
        ratios=ratios, ratio_label="speedup", title=f"MoE layers of frame 0 ({res.tasks[0]}) under each schedule",
        caption="Cycles of each MoE block's expert layer (expert loads, compute, output write)"
                + ("; the lines are reordering's speedup over each token-by-token schedule." if ratios else ".")))
    frame_names = [f"{i} {t}" for i, t in enumerate(res.tasks)]
    pics.append(layer_compare_picture(
        "frames", frame_names, {s: [f.time_ms for f in res.schedules[s].frames] for s in names}, unit="ms",
        title=f"Latency of every frame under each schedule ({res.routing_source} routing)",
        caption="Frames in order with their task. A frame after one of another task pays the switch cost: what "
                "its schedule's expert memory holds from the other task (only the cache depends on it)."))
    return pics


def _table(res: MoeSimResult) -> pd.DataFrame:
    rows = []
    for s, sr in res.schedules.items():
        t = sr.totals()
        r = {"schedule": s, "frames": len(sr.frames), "mean frame ms": t["mean_frame_ms"], "total ms": t["time_ms"],
             "MoE on-chip KiB": t["moe_onchip_bytes"] / 1024, "on-chip KiB (with array)": t["onchip_bytes"] / 1024,
             "fits": t["fits"], "DRAM MB": t["dram_bytes"] / 1e6, "expert loads": t["expert_loads"],
             "energy mJ": t["energy_mj"], "max queue %": 100 * t["max_queue_occupancy"],
             "switches": t["switches"], "mean switch cycles": t["mean_switch_cycles"]}
        if res.dense:
            vs = res.versus_dense(s)
            r["speedup over dense ViT"] = vs["speedup"]
            r["energy ratio to dense ViT"] = vs["energy_ratio"]
        rows.append(r)
    return pd.DataFrame(rows)


def write_moe_report(res: MoeSimResult, path: Path | str, *, routing: Mapping[str, Any] | None = None) -> list[Path]:
    """Write the MoE report page ``path`` (``.html``) and each picture as
    ``<stem>-<picture>.png``/``.svg`` beside it; returns the paths written. ``routing``
    (:meth:`sparseforge.results.MoeResult.routing_summary`) goes into the summary. Nothing
    is written when the arguments do not fit together (:class:`ReportError`)."""
    path = html_path(path)
    pics = moe_pictures(res)
    spec, cfg = res.spec, res.cfg
    backbone = sum(d.cycles for d in res.dense_layers)
    facts = [
        ("network", f"{cfg.name}: {cfg.tokens} tokens per frame, {cfg.depth} blocks, MoE blocks "
                    f"{list(cfg.moe_blocks)} with {cfg.experts} experts ({cfg.embed} -> {cfg.expert_hidden} -> "
                    f"{cfg.embed}), top-{cfg.top_k}"),
        ("frames", f"{len(res.tasks)}: {', '.join(res.tasks)}"),
        ("routing", str(res.routing_source) + (" (SYNTHETIC, not measured)" if res.routing_source == "synthetic" else "")
         + (f"; load skew max/mean {routing['mean_max_over_mean_load']:.2f}, experts used per layer "
            f"{routing['mean_experts_used']:.1f} of {cfg.experts}" if routing else "")),
        ("hardware", f"{spec.name} [{spec.digest}]: {spec.rows}x{spec.cols} PEs, {spec.n}:{spec.m}, "
                     f"{spec.multipliers} multipliers, {spec.clock_mhz:g} MHz, DRAM {spec.dram_bandwidth_gbps:g} GB/s; "
                     f"MoE memory {spec.moe.onchip_kib} KiB, {spec.moe.expert_buffers} expert buffers"),
        ("expert", f"{res.expert.bytes / 1024:.0f} KiB of weights, loaded in {res.expert.load_cycles:,} cycles; "
                   f"one token {res.expert.token_cycles:,} cycles; backbone without MoE {backbone:,} cycles per frame"),
    ]
    for s, sr in res.schedules.items():
        t = sr.totals()
        line = (f"{t['mean_frame_ms']:.4g} ms per frame, {t['moe_onchip_bytes'] / 1024:.0f} KiB MoE memory"
                f"{'' if t['fits'] else ' (does NOT fit)'}, {t['dram_bytes'] / len(sr.frames) / 1e6:.4g} MB DRAM "
                f"and {t['mean_frame_energy_mj']:.4g} mJ per frame")
        if res.dense:
            line += f"; {res.versus_dense(s)['speedup']:.3g}x the dense ViT's speed"
        facts.append((f"schedule {s}", line))
    if res.dense:
        facts.append(("dense ViT", f"{res.dense['time_ms']:.4g} ms, {res.dense['dram_bytes'] / 1e6:.4g} MB DRAM, "
                                   f"{res.dense['energy_mj']:.4g} mJ per frame"))
    sections = [Section("Summary").raw(facts_html(facts))]
    titles = {"layers": "Cycles per layer", "roofline": "Roofline", "energy": "Energy breakdown",
              "schedules": "Schedules against each other", "moe-layers": "MoE layers by schedule",
              "frames": "Frame by frame"}
    for pic in pics:
        sections.append(Section(titles[pic.name]).picture(pic))
    sections.append(Section("Per-schedule results").table(_table(res), text_columns=["schedule"]))
    return write_report(path, f"sparseforge simulate: {cfg.name} multi-task MoE on {spec.name}",
                        f"schedules {', '.join(res.schedules)}; spec digest {spec.digest}; pictures also as "
                        f"{path.stem}-*.png/.svg", sections, pics)
