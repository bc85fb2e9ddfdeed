"""The SpGEMM report (``spgemm --output r.html``, sparseforge.report.spgemm): written through
the CLI from a real product (SciPy's illc1850 times its transpose, every dataflow, with a B
cache), every picture shows the simulator's own numbers (checked against the same run through
the API), the files are written whole, it renders in headless Chromium, and bad arguments
write nothing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sparseforge import api
from sparseforge.report import ReportError
from sparseforge.report.spgemm import SPGEMM_PICTURES, energy_parts, spgemm_pictures, write_spgemm_report
from sparseforge.spec import load_spec

from .report_pages import check_files, cli_page, text_of, traces
from .test_browser import open_in_browser

ARGS = ["spgemm", "--a", "illc1850", "--b", "illc1850.T", "--dataflow", "all", "--set", "spgemm.cache_bytes=4096"]


@pytest.fixture(scope="module")
def run():
    base = load_spec("default")
    spec = base.replace(spgemm=dataclasses.replace(base.spgemm, cache_bytes=4096))
    return api.spgemm(spec, "illc1850", "illc1850.T")


page = cli_page(ARGS, "spgemm")


def test_cli_writes_the_page_and_each_picture(page):
    check_files(page[0], SPGEMM_PICTURES)


def test_dataflow_bars_add_up_to_the_simulated_cycles(run, page):
    """One bar per dataflow: compute (the busiest PE per phase) and memory (the rest of the
    cycles) add up to the cycles; utilisation is the PEs' mean busy share."""
    tr = traces(page[1], "dataflows")
    res = run.results
    assert len(res) == 7 and tr["compute"]["x"] == [r.label for r in res]
    np.testing.assert_array_equal(tr["compute"]["y"], [r.compute_cycles for r in res])
    np.testing.assert_array_equal(np.add(tr["compute"]["y"], tr["memory stall"]["y"]), [r.cycles for r in res])
    np.testing.assert_allclose(tr["utilisation"]["y"], [100 * r.pe_cycles_mean / r.cycles for r in res])


def test_roofline_places_each_dataflow_under_the_machine_roof(run, page):
    """Peak: spgemm.pes multiplies per cycle at the clock; each dataflow at (multiplies per
    DRAM byte, multiplies per second), none above the roof, each labelled."""
    spec = run.spec
    tr = traces(page[1], "roofline")
    peak = spec.spgemm.pes * spec.clock_mhz * 1e6 / 1e9
    assert max(tr["roof"]["y"]) == pytest.approx(peak)
    pts = tr["dataflows"]
    assert list(pts["text"]) == [r.label for r in run.results] and pts["mode"] == "markers+text"
    for r, x, y in zip(run.results, pts["x"], pts["y"]):
        assert x == pytest.approx(r.macs / r.dram_bytes)
        assert y == pytest.approx(r.macs / r.time_us / 1e3)
        assert y <= min(peak, x * spec.dram_bandwidth_gbps) * (1 + 1e-9)


def test_energy_traffic_and_comparison(run, page):
    """The energy parts add up to the simulator's energy (MAC and DRAM by their counts); the
    traffic bars are the bytes per operand; the comparison panels hold the speedups over the
    first dataflow, collisions for the hash dataflows only, and the B-cache hit rates."""
    spec, res = run.spec, run.results
    text = page[1]
    energy = traces(text, "energy")
    for r, mac, sram, dram in zip(res, energy["MAC"]["y"], energy["on-chip SRAM"]["y"], energy["DRAM"]["y"]):
        assert mac + sram + dram == pytest.approx(r.energy_pj / 1e6)
        assert mac == pytest.approx(r.macs * spec.e_mac_pj / 1e6) and sram > 0
        assert dram == pytest.approx(r.dram_bytes * spec.e_dram_pj_per_byte / 1e6)
    traffic = traces(text, "traffic")
    assert traffic["B"]["y"] == pytest.approx([r.dram_bytes_b / 1e6 for r in res])
    assert traffic["partial and spilled products"]["y"] == pytest.approx([r.dram_bytes_partial / 1e6 for r in res])
    panels = traces(text, "comparison")
    assert panels["speedup over inner"]["y"] == pytest.approx([res[0].cycles / r.cycles for r in res])
    assert panels["hash collisions"]["x"] == [r.label for r in res if r.dataflow == "rowwise-hash"]
    assert panels["B-cache hit rate (%)"]["y"] == pytest.approx([100 * r.cache_hit_rate for r in res])
    best = min(res, key=lambda r: r.cycles)
    assert f"{best.label}: {best.cycles:,} cycles" in text_of(text)


def test_without_a_cache_there_is_no_hit_rate(run):
    base = load_spec("default")
    plain = api.spgemm(base, "illc1850", "illc1850.T", dataflow="rowwise-hash")
    comparison = spgemm_pictures(plain.results, plain.spec)[-1]
    assert [t.name for t in comparison.figure.data] == ["time (us)", "speedup over rowwise-hash-v3",
                                                        "scratchpad accesses", "hash collisions",
                                                        "atomic + bank conflicts"]
    assert sum(energy_parts(plain.results[0], base).values()) == pytest.approx(plain.results[0].energy_pj)


def test_page_in_a_browser(run, page, tmp_path):
    """No console error, every picture drawn; one roofline marker per dataflow."""
    dom = open_in_browser(page[0], tmp_path, set(SPGEMM_PICTURES))
    assert dom.points["roofline"] == len(run.results)


def test_bad_arguments_write_nothing(run, tmp_path):
    other = api.spgemm("default", "illc1850.T", "illc1850", dataflow="inner")
    side = {"name": "A", "shape": (1, 1), "nnz": 1, "source": "x"}
    with pytest.raises(ReportError, match="^the dataflows were not simulated on the same A and B"):
        write_spgemm_report([*run.results, *other.results], run.spec, tmp_path / "r.html", a=side, b=side, checks={})
    with pytest.raises(ReportError, match="holds a dataflow twice"):
        write_spgemm_report([run.results[0]] * 2, run.spec, tmp_path / "r.html", a=side, b=side, checks={})
    assert list(tmp_path.iterdir()) == []
