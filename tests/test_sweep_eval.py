"""One point's evaluation (sparseforge.sweep.evaluate, sparseforge.sweep.workloads) and the
rows it leaves in the store: the shared-shape inference simulation equals the simulator's own,
combined metrics follow their definitions, the clock a point runs at and whether the RTL
reaches it come from the clock lookup, points that do not fit or fail stay in the store.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from sparseforge.hwgen.clocks import achievable_clock_mhz
from sparseforge.hwgen.cost import estimate_resources
from sparseforge.models.zoo import get_network
from sparseforge.sim.simulate import simulate_network

from sparseforge.spec import load_spec
from sparseforge.sweep import load_results, parse_sweep, run_sweep
from sparseforge.sweep.evaluate import evaluate_point, make_task
from sparseforge.sweep.space import grid_points
from sparseforge.sweep.workloads import simulate_inference


@pytest.mark.parametrize("hw,sets,net,sp", [
    ("default", [], "resnet50", (2, 4)),
    ("default", ["rows=8", "cols=32", "input_buffer_kib=16"], "resnet50", (1, 4)),
    ("default", ["dataflow=output-stationary"], "resnet50", None),
    ("default", ["dataflow=switchable", "double_buffer=false"], "minilm", (2, 4)),
    ("sf-32x32", [], "minilm", (2, 4)),
])
def test_shared_shape_simulation_equals_simulate_network(hw, sets, net, sp):
    """Simulating each distinct layer shape once and naming the copies gives the simulator's
    result, layer for layer and field for field."""
    spec = load_spec(hw, sets)
    nw = get_network(net)
    ref = simulate_network(spec, nw, sp)
    got = simulate_inference(spec, nw, sp)
    assert got.network == ref.network and got.sparsity == ref.sparsity and got.spec == ref.spec
    assert len(got.layers) == len(ref.layers)
    for a, b in zip(got.layers, ref.layers):
        assert dataclasses.asdict(a) == dataclasses.asdict(b)


SWEEP = """\
[sweep]
name = "ev"
base = "default"
[axes]
rows = [8, 16]
cols = "rows"
clock_mhz = {clocks}
{extra_axes}
[[workloads]]
kind = "inference"
net = "minilm"
tokens = 32
weight = 2.0
[[workloads]]
kind = "inference"
net = "resnet50"
batch = 2
weight = 0.5
[target]
part = "{part}"
objectives = ["latency", "dsp"]
"""


def _sweep(clocks="[200, 300]", part="xczu7ev", extra_axes=""):
    return parse_sweep(SWEEP.format(clocks=clocks, part=part, extra_axes=extra_axes), source="ev.toml")


def test_point_metrics_follow_their_definitions():
    """latency/energy/cycles are weighted sums over the workloads, throughput is items per
    second of the weighted mix, edp = energy x latency, perf_per_dsp = throughput / DSP; the
    resources are the resource model's for the point's designs."""
    sw = _sweep()
    task = make_task(sw, 0, next(grid_points(sw)))
    row = evaluate_point(task)
    assert row["status"] == "ok", row["error"]
    m = row["metrics"]
    spec = task.spec
    lm = simulate_network(spec, get_network("minilm", tokens=32), (2, 4))
    rn = simulate_network(spec, get_network("resnet50", batch=2), (2, 4))
    lat = 2.0 * lm.time_s + 0.5 * rn.time_s
    energy = (2.0 * lm.totals()["energy_total_pj"] + 0.5 * rn.totals()["energy_total_pj"]) * 1e-12
    assert m["latency_s"] == pytest.approx(lat, rel=1e-12)
    assert m["energy_j"] == pytest.approx(energy, rel=1e-12)
    assert m["cycles"] == round(2.0 * lm.cycles + 0.5 * rn.cycles)
    assert m["edp"] == pytest.approx(energy * lat, rel=1e-12)
    assert m["throughput"] == pytest.approx((2.0 * 1 + 0.5 * 2) / lat, rel=1e-12)
    res = estimate_resources(spec, design="engine")
    assert (m["dsp"], m["lut"], m["ff"], m["bram36"]) == (res.dsp, res.lut, res.ff, res.bram36)
    assert m["perf_per_dsp"] == pytest.approx(m["throughput"] / m["dsp"], rel=1e-12)
    layers = json.loads(row["layers_json"])
    assert len(layers) == len(lm.layers) + len(rn.layers)
    assert layers[0] == {"workload": "minilm", "name": lm.layers[0].name, "cycles": lm.layers[0].cycles,
                         "utilisation": lm.layers[0].utilisation, "stall_cycles": lm.layers[0].stall_cycles}
    assert [w["name"] for w in json.loads(row["workloads_json"])] == ["minilm", "resnet50"]


def test_clock_without_a_figure_is_reported_not_invented():
    """On a part with no clock figure (UltraScale+: no place and route here) a point runs at
    its spec's clock, and says the achievable clock is unknown and why."""
    sw = _sweep(clocks="[250]")
    row = evaluate_point(make_task(sw, 0, next(grid_points(sw))))
    m = row["metrics"]
    mhz, why = achievable_clock_mhz(make_task(sw, 0, next(grid_points(sw))).spec, "engine", "XCZU7EV")
    assert mhz is None
    assert (m["clock_mhz_used"], m["clock_source"], m["fmax_mhz"], m["rtl_reaches_clock"]) == (250.0, "spec", None, None)
    assert m["fmax_source"] == f"engine: {why}"


def test_clock_assumed_synth_and_reached(monkeypatch):
    """A number runs the point at that clock and says whether the RTL reaches it; "synth"
    runs it at the achievable clock, which it reaches by definition. The clock lookup is
    replaced here by one that answers 187.5 MHz for every design (the real one answers only
    where a measurement is stored), so the test pins the sweep's handling of the figure."""
    from sparseforge.sweep import hwcost

    real = hwcost._function

    def lookup(name):
        if name == "achievable_clock_mhz":
            return lambda spec, design, part: (187.5, f"test figure for {design}")
        return real(name)

    monkeypatch.setattr(hwcost, "_function", lookup)
    sw = _sweep(clocks='[1000, 150, "synth"]', part="LFE5U-85F")
    fast, slow, synth = (evaluate_point(make_task(sw, i, p)) for i, p in list(enumerate(grid_points(sw)))[:3])
    spec = make_task(sw, 0, next(grid_points(sw))).spec
    f, lo, s = fast["metrics"], slow["metrics"], synth["metrics"]
    assert (f["clock_mhz_used"], f["clock_source"], f["fmax_mhz"], f["rtl_reaches_clock"]) == (1000.0, "spec", 187.5, False)
    assert (lo["clock_mhz_used"], lo["rtl_reaches_clock"]) == (150.0, True)
    assert f["fmax_source"] == "engine: test figure for engine"
    assert (s["clock_mhz_used"], s["clock_source"], s["rtl_reaches_clock"]) == (187.5, "synth", True)
    at_fmax = spec.replace(clock_mhz=187.5)
    lat = (2.0 * simulate_network(at_fmax, get_network("minilm", tokens=32), (2, 4)).time_s
           + 0.5 * simulate_network(at_fmax, get_network("resnet50", batch=2), (2, 4)).time_s)
    assert s["latency_s"] == pytest.approx(lat, rel=1e-12)
    assert json.loads(synth["spec_json"])["spec"]["clock_mhz"] == 187.5
    assert len({fast["digest"], slow["digest"], synth["digest"]}) == 3


def test_designs_the_model_does_not_cover_are_named():
    """Training adds the SORE; a design the resource model does not cover is listed in
    ``uncosted`` and the resources are those of the covered designs."""
    sw = parse_sweep(SWEEP.format(clocks="[200]", part="xczu7ev", extra_axes="max_k = [65536]").split("[[workloads]]")[0]
                     + '[[workloads]]\nkind = "training"\nnet = "resnet18"\nbatch = 2\nsparsity = "2:4"\n'
                     '[target]\npart = "xczu7ev"\nobjectives = ["latency", "dsp"]\n', source="tr.toml")
    task = make_task(sw, 0, next(grid_points(sw)))
    row = evaluate_point(task)
    assert row["status"] == "ok", row["error"]
    from sparseforge.hwgen.cost import MODEL_DESIGNS

    assert row["metrics"]["uncosted"] == ("" if "sore" in MODEL_DESIGNS else "sore")
    assert row["metrics"]["dsp"] == sum(estimate_resources(task.spec, design=d).dsp
                                        for d in ("engine", "sore") if d in MODEL_DESIGNS)


def test_failed_and_unfit_points_stay_in_the_store(tmp_path):
    """A point whose spec is invalid is stored failed with its one-line error; a point that
    does not fit the part is stored with fits = false and is never the best point."""
    sw = _sweep(extra_axes='n = [2, 8]\nm = [4]')          # n = 8 > m = 4: invalid spec
    path = tmp_path / "ev.toml"
    path.write_text(sw.text)
    s = run_sweep(path, out=tmp_path, workers=1, progress=False)
    assert (s.points, s.computed, s.failed) == (8, 4, 4)
    df = load_results(tmp_path / "ev")
    bad = df[df["status"] == "failed"]
    assert len(bad) == 4 and (bad["n"] == 8).all()
    assert bad["error"].str.fullmatch(r"n = 8 is not allowed with m = 4: N:M sparsity needs 1 <= n <= m").all()
    assert bad["latency_s"].isna().all()
    ok = df[df["status"] == "ok"]
    assert ok["error"].isna().all() and ok["fits"].notna().all()


def test_points_that_do_not_fit_are_never_best(tmp_path):
    big = parse_sweep(SWEEP.format(clocks="[200]", part="xczu7ev", extra_axes="").replace("rows = [8, 16]",
                                                                                      "rows = [8, 128]"),
                      source="big.toml")
    (tmp_path / "big.toml").write_text(big.text)
    s = run_sweep(tmp_path / "big.toml", out=tmp_path, workers=1, progress=False)
    df = load_results(tmp_path / "ev")
    assert not df.loc[df["rows"] == 128, "fits"].any()           # 128x128x2 multipliers > 1728 DSPs
    assert df.loc[df["rows"] == 8, "fits"].all()
    assert s.best["latency"]["axes"]["rows"] == 8
    fit = df[(df["status"] == "ok") & df["fits"].fillna(False)]
    for obj, col in (("latency", "latency_s"), ("dsp", "dsp")):
        i = fit[col].idxmin()
        assert (s.best[obj]["point_id"], s.best[obj]["value"]) == (fit.loc[i, "point_id"], fit.loc[i, col])
