"""The training report (``simulate --train --output r.html``, sparseforge.report.train):
written through the CLI from a real ResNet-18 iteration (batch 2, 2:8 BDWP on the SAT preset),
every picture shows the simulator's own numbers (checked against the same run through the
API), the page and its PNG/SVG files are written whole, it renders in headless Chromium,
and bad arguments write nothing."""

from __future__ import annotations

import numpy as np
import pytest

from sparseforge import api
from sparseforge.report import ReportError
from sparseforge.report.train import TRAIN_PICTURES, gemm_rows, iteration_parts, write_training_report

from .report_pages import check_files, cli_page, text_of, traces
from .test_browser import open_in_browser

ARGS = ["simulate", "--train", "--net", "resnet18", "--batch", "2", "--hw", "sat-vcu1525", "--sparsity", "2:8",
        "--method", "bdwp"]


@pytest.fixture(scope="module")
def run():
    return api.simulate_training("sat-vcu1525", "resnet18", batch=2, method="bdwp", sparsity="2:8")


page = cli_page(ARGS, "train")


def test_cli_writes_the_page_and_each_picture(page):
    check_files(page[0], TRAIN_PICTURES)


def test_gemm_bars_are_the_simulated_gemms(run, page):
    """One bar per FF/BP/WG GEMM in layer order (the first layer has no BP); compute,
    stall and utilisation are the simulator's own."""
    tr = traces(page[1], "gemms")
    gemms = [(lay.name, ph, r) for lay in run.result.layers
             for ph, r in zip(("FF", "BP", "WG"), (lay.ff, lay.bp, lay.wg)) if r is not None]
    assert len(gemms) == 3 * len(run.result.layers) - 1
    assert tr["compute"]["x"] == [f"{n} {ph}" for n, ph, _ in gemms]
    np.testing.assert_array_equal(tr["compute"]["y"], [r.compute_cycles for _, _, r in gemms])
    np.testing.assert_array_equal(tr["memory stall"]["y"], [r.stall_cycles for _, _, r in gemms])
    np.testing.assert_allclose(tr["utilisation"]["y"], [100 * r.utilisation for _, _, r in gemms])


def test_roofline_has_every_gemm_by_phase_under_the_roof(run, page):
    spec = run.spec
    tr = traces(page[1], "roofline")
    peak = spec.multipliers * spec.clock_mhz * 1e6 / 1e9
    assert max(tr["roof"]["y"]) == pytest.approx(peak)
    g = gemm_rows(run.result)
    for ph in ("FF", "BP", "WG"):
        sel = g[g["phase"] == ph]
        pts = tr[f"bdwp 2:8 {ph}"]
        assert list(pts["text"]) == list(sel["name"])
        np.testing.assert_allclose(pts["x"], sel["useful_macs"] / sel["dram_bytes"])
        np.testing.assert_allclose(pts["y"], sel["useful_macs"] / (sel["cycles"] / (spec.clock_mhz * 1e6)) / 1e9)
        assert all(y <= min(peak, x * spec.dram_bandwidth_gbps) * (1 + 1e-9) for x, y in zip(pts["x"], pts["y"]))
    assert len(tr["dense (FF, BP, WG)"]["x"]) == len(g)


def test_energy_and_phases_are_the_totals(run, page):
    """Energy per part (SORE and weight update included) and the iteration's parts, for the
    method and for dense training; the caption gives the interleaving overlap."""
    text = page[1]
    energy = traces(text, "energy")
    labels = {"mac": "MAC", "sram": "on-chip SRAM", "dram": "DRAM", "sore": "SORE (mask generation)",
              "update": "weight-update engine"}
    t, d = run.result.totals(), run.dense.totals()
    for key, name in labels.items():
        assert energy[name]["y"] == pytest.approx([t["energy_pj"][key] / 1e9, d["energy_pj"][key] / 1e9])
    phases = traces(text, "phases")
    keys = (("ff_cycles", "FF GEMMs"), ("bp_cycles", "BP GEMMs"), ("wg_cycles", "WG GEMMs"),
            ("mask_wait_cycles", "waiting for masks"), ("update_tail_cycles", "weight-update tail"))
    for key, name in keys:
        assert phases[name]["y"] == pytest.approx([t[key], d[key]])
    over = sum(t[k] for k, _ in keys) - run.result.cycles
    assert f"{over:+,} cycles (bdwp 2:8)" in text_of(text)
    assert sum(iteration_parts(run.result).values()) - over == run.result.cycles


def test_method_against_dense(run, page):
    text = page[1]
    svd = traces(text, "sparse-vs-dense")
    want = [d.gemm_cycles / s.gemm_cycles for s, d in zip(run.result.layers, run.dense.layers)]
    assert svd["speedup (dense / method)"]["y"] == pytest.approx(want)
    body = text_of(text)
    assert f"{run.dense.cycles / run.result.cycles:.3f}x per iteration" in body
    assert f"{run.result.cycles:,} cycles" in body
    for opt, cycles in run.cycles_without.items():
        assert f"{cycles:,} cycles" in body, opt


def test_page_in_a_browser(run, page, tmp_path):
    """No console error, every picture drawn; the roofline holds one marker per GEMM of
    each run."""
    dom = open_in_browser(page[0], tmp_path, set(TRAIN_PICTURES))
    assert dom.points["roofline"] == 2 * len(gemm_rows(run.result))


def test_bad_arguments_write_nothing(run, tmp_path):
    other = api.simulate_training("sat-vcu1525", "resnet18", batch=2, method="dense", dense=False,
                                  ablations=False, sparsity="2:8")
    short = api.simulate_training("sat-vcu1525", "vgg16", batch=1, method="dense", dense=False, ablations=False)
    with pytest.raises(ReportError, match=r"^dense run of vgg16 \[\w+\] is not the same layers on the same hardware "
                                          r"as resnet18"):
        write_training_report(run.result, short.result, tmp_path / "r.html")
    with pytest.raises(ReportError, match=r"^--output '.*r\.png' is not allowed for the HTML report"):
        write_training_report(run.result, other.result, tmp_path / "r.png")
    assert list(tmp_path.iterdir()) == []
