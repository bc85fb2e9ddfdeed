"""The single-simulation report (sparseforge.report.sim, for ``simulate --output x.html``)
and the shared figure builders it uses (sparseforge.report.plots): every picture shows the
simulator's own numbers, the page and its PNG/SVG files are written whole, and bad
arguments are one-line errors that write nothing."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from sparseforge.models.zoo import get_network
from sparseforge.report import ReportError, write_simulation_report
from sparseforge.report.plots import layer_segments
from sparseforge.report.sim import SIM_PICTURES
from sparseforge.sim.simulate import compare, simulate_network
from sparseforge.spec import load_spec

from .report_data import small_network


def _plain(v):
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return v


def _traces(page: str, div_id: str) -> list[dict]:
    m = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*(\[.*?\]),\s*\{"', page, re.S)
    assert m, f"no figure {div_id}"
    return [{k: _plain(v) for k, v in t.items()} for t in json.loads(m.group(1))]


@pytest.fixture(scope="module")
def run():
    spec = load_spec("default")
    sparse, dense = compare(spec, small_network(), (2, 4))
    return spec, sparse, dense


@pytest.fixture(scope="module")
def page(run, tmp_path_factory):
    spec, sparse, dense = run
    out = tmp_path_factory.mktemp("sim") / "report.html"
    written = write_simulation_report(sparse, dense, spec, out)
    return out, written


def test_writes_the_page_and_each_picture_as_png_and_svg(page):
    out, written = page
    expect = [out] + [out.with_name(f"report-{n}.{ext}") for n in SIM_PICTURES for ext in ("png", "svg")]
    assert written == expect
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(p.name for p in expect)
    for p in expect[1:]:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" if p.suffix == ".png" else data.startswith(b"<?xml")


def test_layer_bars_add_up_to_the_simulated_cycles(run, page):
    spec, sparse, _ = run
    traces = _traces(page[0].read_text(), "layers")
    by = {t["name"]: t for t in traces}
    np.testing.assert_array_equal(by["compute"]["y"], [x.compute_cycles for x in sparse.layers])
    np.testing.assert_array_equal(by["memory stall"]["y"], [x.stall_cycles for x in sparse.layers])
    np.testing.assert_allclose(by["utilisation"]["y"], [100 * x.utilisation for x in sparse.layers])
    assert by["compute"]["x"] == [x.name for x in sparse.layers]


def test_roofline_places_every_layer_under_the_spec_roof(run, page):
    """Peak = rows * cols * n MACs per cycle at the clock; the slope is the DRAM bandwidth;
    each layer at (useful MACs / DRAM bytes, useful MACs per second), none above the roof."""
    spec, sparse, dense = run
    traces = _traces(page[0].read_text(), "roofline")
    roof, sp, dn = traces
    peak = spec.rows * spec.cols * spec.n * spec.clock_mhz * 1e6 / 1e9
    assert max(roof["y"]) == pytest.approx(peak)
    assert roof["y"][0] == pytest.approx(roof["x"][0] * spec.dram_bandwidth_gbps)     # GB/s x MAC/B = GMAC/s
    assert len(sp["x"]) == len(sparse.layers) and len(dn["x"]) == len(dense.layers)
    for lay, x, y in zip(sparse.layers, sp["x"], sp["y"]):
        assert x == pytest.approx(lay.useful_macs / lay.dram_bytes)
        assert y == pytest.approx(lay.useful_macs / (lay.cycles / (spec.clock_mhz * 1e6)) / 1e9)
        assert y <= min(peak, x * spec.dram_bandwidth_gbps) * (1 + 1e-9)


def test_energy_and_sparse_against_dense(run, page):
    spec, sparse, dense = run
    text = page[0].read_text()
    energy = {t["name"]: t["y"] for t in _traces(text, "energy")}
    for key, name in (("mac", "MAC"), ("sram", "on-chip SRAM"), ("dram", "DRAM")):
        assert energy[name] == pytest.approx([sparse.energy_pj[key] / 1e6, dense.energy_pj[key] / 1e6])
    svd = {t["name"]: t["y"] for t in _traces(text, "sparse-vs-dense")}
    speed = svd["speedup (dense / sparse)"]
    assert speed == pytest.approx([d.cycles / s.cycles for s, d in zip(sparse.layers, dense.layers)])
    assert f"{dense.cycles / sparse.cycles:.2f}x in total" in text


def test_without_dense_run(run, tmp_path):
    spec, sparse, _ = run
    written = write_simulation_report(sparse, None, spec, tmp_path / "x.html")
    assert sorted(p.name for p in written) == sorted(
        ["x.html"] + [f"x-{n}.{e}" for n in ("layers", "roofline", "energy") for e in ("png", "svg")])
    assert 'id="sparse-vs-dense"' not in (tmp_path / "x.html").read_text()


@pytest.mark.parametrize("case, message", [
    ("suffix", "--output '{p}' is not allowed for the HTML report: give a file ending in .html"),
    ("spec", "spec sf-32x32 [{d}] is not the spec the results were simulated on (default [{d0}])"),
    ("dense", "dense run of minilm [{d0}] is not the same layers on the same array as mini [{d0}]: "
              "compare like with like"),
])
def test_bad_arguments_write_nothing(run, tmp_path, case, message):
    spec, sparse, dense = run
    path = tmp_path / ("r.png" if case == "suffix" else "r.html")
    other = load_spec("sf-32x32")
    args = [sparse, dense, spec, path]
    if case == "spec":
        args[2] = other
    if case == "dense":
        args[1] = simulate_network(spec, get_network("minilm", tokens=8), None)
    with pytest.raises(ReportError) as info:
        write_simulation_report(*args)
    assert str(info.value) == message.format(p=path, d=other.digest, d0=spec.digest)
    assert list(tmp_path.iterdir()) == []


def test_layer_segments_split_load_inside_or_beside_compute():
    """load_cycles counted inside compute is taken out of it; counted beside it, it is
    stacked as is; a breakdown that does not add up is refused; without compute_cycles
    compute is cycles - stall (the store keeps no more)."""
    base = {"name": ["a"], "cycles": [100], "stall_cycles": [10], "utilisation": [0.5]}
    inside = layer_segments(pd.DataFrame({**base, "compute_cycles": [90], "load_cycles": [30]}))
    assert inside[["compute", "load", "stall"]].iloc[0].tolist() == [60, 30, 10]
    beside = layer_segments(pd.DataFrame({**base, "compute_cycles": [60], "load_cycles": [30]}))
    assert beside[["compute", "load", "stall"]].iloc[0].tolist() == [60, 30, 10]
    store = layer_segments(pd.DataFrame({**base, "utilization": [0.5]}).drop(columns="utilisation"))
    assert store[["compute", "load", "stall", "utilisation"]].iloc[0].tolist() == [90, 0, 10, 0.5]
    with pytest.raises(ReportError, match=r"^layer 'a': cycles = 100 is not compute \+ stall \(80 \+ 10\)"):
        layer_segments(pd.DataFrame({**base, "compute_cycles": [80]}))
    with pytest.raises(ReportError, match=r"^per-layer results lack stall_cycles"):
        layer_segments(pd.DataFrame({"name": ["a"], "cycles": [1], "utilisation": [1.0]}))
