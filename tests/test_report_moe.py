"""The MoE report (``simulate --net m3vit-small ... --output r.html``, sparseforge.report.moe):
written through the CLI from real routing (the saved MiniLM routing of tests/data/moe, 4
frames of 48 tokens) under the naive, cache and reorder schedules; every picture shows the
simulator's own numbers (checked against the same run through the API), the files are written
whole, it renders in headless Chromium, and bad arguments write nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparseforge import api
from sparseforge.report import ReportError
from sparseforge.report.moe import MOE_PICTURES, expert_layer_macs, frame_energy, frame_layers, write_moe_report

from .report_pages import check_files, cli_page, text_of, traces
from .test_browser import open_in_browser

ROUTING = Path(__file__).parent / "data" / "moe" / "minilm_t48.npz"
ARGS = ["simulate", "--net", "m3vit-small", "--hw", "m3vit-zcu104", "--routing-file", str(ROUTING), "--tokens", "48"]


@pytest.fixture(scope="module")
def run():
    return api.simulate_moe("m3vit-zcu104", "m3vit-small", routing=ROUTING, tokens=48)


page = cli_page(ARGS, "moe")


def test_cli_writes_the_page_and_each_picture(page):
    check_files(page[0], MOE_PICTURES)


def test_layer_bars_are_frame_zero_under_reordering(run, page):
    """Backbone GEMMs in order, each MoE block's expert layer after its router; an expert
    layer's bar is its compute, the expert loads the array waits for and its output write,
    adding up to its cycles; utilisation = useful expert MACs over multiplier-cycles."""
    res = run.result
    tr = traces(page[1], "layers")
    names = tr["compute"]["x"]
    assert len(names) == len(res.dense_layers) + len(res.cfg.moe_blocks)
    assert [n for n in names if "experts" not in n] == [d.name for d in res.dense_layers]
    for lay in res.schedules["reorder"].frames[0].layers:
        i = names.index(f"block{lay.block}.moe.experts")
        assert names[i - 1] == f"block{lay.block}.moe.router"
        assert tr["compute"]["y"][i] == lay.compute_cycles and tr["weight load"]["y"][i] == lay.load_wait_cycles
        assert tr["compute"]["y"][i] + tr["weight load"]["y"][i] + tr["memory stall"]["y"][i] == lay.cycles
        want = 48 * 4 * 2 * 384 * 384 / (lay.cycles * res.spec.multipliers)
        assert tr["utilisation"]["y"][i] == pytest.approx(100 * want)
    assert expert_layer_macs(res.cfg) == 48 * 4 * 2 * 384 * 384


def test_roofline_backbone_and_each_schedule(run, page):
    res, spec = run.result, run.spec
    tr = traces(page[1], "roofline")
    assert max(tr["roof"]["y"]) == pytest.approx(spec.multipliers * spec.clock_mhz * 1e3 / 1e6)
    assert len(tr["backbone layers"]["x"]) == len(res.dense_layers)
    for s in ("naive", "cache", "reorder"):
        layers = res.schedules[s].frames[0].layers
        pts = tr[f"MoE layers, {s}"]
        np.testing.assert_allclose(pts["x"], [expert_layer_macs(res.cfg) / (m.dram_read_bytes + m.dram_write_bytes)
                                              for m in layers])


def test_energy_schedules_and_frames(run, page):
    """Energy parts add up to each schedule's mean frame energy; the comparison panels are
    the schedules' totals and the dense ViT's frame; per MoE layer, reordering's speedup;
    every frame's latency."""
    res = run.result
    text = page[1]
    energy = traces(text, "energy")
    parts = ["MAC", "on-chip SRAM", "DRAM", "MoE experts: MAC + on-chip"]
    for i, s in enumerate(("naive", "cache", "reorder")):
        assert sum(energy[p]["y"][i] for p in parts) == pytest.approx(res.schedules[s].totals()["mean_frame_energy_mj"])
        assert sum(frame_energy(res, s).values()) * 1e-9 == pytest.approx(
            res.schedules[s].totals()["mean_frame_energy_mj"])
    panels = traces(text, "schedules")
    tot = {s: r.totals() for s, r in res.schedules.items()}
    assert panels["mean frame latency (ms)"]["x"] == ["naive", "cache", "reorder", "dense ViT"]
    assert panels["mean frame latency (ms)"]["y"] == pytest.approx(
        [tot[s]["mean_frame_ms"] for s in tot] + [res.dense["time_ms"]])
    assert panels["MoE on-chip memory (KiB)"]["y"] == pytest.approx([tot[s]["moe_onchip_bytes"] / 1024 for s in tot])
    assert panels["energy per frame (mJ)"]["y"][-1] == pytest.approx(res.dense["energy_mj"])
    moe = traces(text, "moe-layers")
    f0 = {s: res.schedules[s].frames[0].layers for s in tot}
    assert moe["reorder speedup over naive"]["y"] == pytest.approx(
        [a.cycles / b.cycles for a, b in zip(f0["naive"], f0["reorder"])])
    frames = traces(text, "frames")
    assert frames["cache"]["x"] == [f"{i} {t}" for i, t in enumerate(res.tasks)]
    assert frames["cache"]["y"] == pytest.approx([f.time_ms for f in res.schedules["cache"].frames])
    assert f"{tot['reorder']['mean_frame_ms']:.4g} ms per frame" in text_of(text)


def test_page_in_a_browser(run, page, tmp_path):
    """No console error, every picture drawn; the roofline holds the backbone's layers and
    each schedule's MoE layers of the first frame."""
    dom = open_in_browser(page[0], tmp_path, set(MOE_PICTURES))
    res = run.result
    assert dom.points["roofline"] == len(res.dense_layers) + 3 * len(res.cfg.moe_blocks)


def test_one_schedule_and_bad_arguments(run, tmp_path):
    """With one schedule the per-layer picture shows it; a result that is not a MoE result,
    or a path that is not .html, writes nothing."""
    one = api.simulate_moe("m3vit-zcu104", "m3vit-small", routing=ROUTING, tokens=48, schedule="cache")
    lay = frame_layers(one.result, "cache")
    assert lay[lay["kind"] == "moe"]["cycles"].tolist() == [m.cycles for m in one.schedules["cache"].frames[0].layers]
    with pytest.raises(ReportError, match="^result = MoeResult is not allowed: give the MoeSimResult"):
        write_moe_report(one, tmp_path / "r.html")
    with pytest.raises(ReportError, match=r"^--output '.*r\.txt' is not allowed for the HTML report"):
        write_moe_report(one.result, tmp_path / "r.txt")
    assert list(tmp_path.iterdir()) == []
