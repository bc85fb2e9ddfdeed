"""The sweep report (sparseforge.report.sweep and .run): its files, what the page holds,
atomic writing, and one-line errors. The results come from the real simulator
(tests/report_data.py)."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparseforge.fileio import OutputPathError
from sparseforge.report import ReportError, pareto_mask, write_sweep_report
from sparseforge.report import sweep as sweep_mod
from sparseforge.report.run import load_run, write_run_report

from .report_data import AXES, simulated_sweep

OBJECTIVES = ["latency_s:min", "dsp:min"]


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    return simulated_sweep(rows=(4, 8, 16), cols=(4, 8), nms=("2:4", "dense"), tokens=8)


@pytest.fixture(scope="module")
def report(results, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    write_sweep_report(results, axes=AXES, objectives=OBJECTIVES, out_dir=out, title="test sweep")
    return out


def _plain(v):
    """A trace attribute as a list: plotly stores NumPy arrays as base64 typed arrays."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return v


def _figure_data(page: str, div_id: str) -> list[dict]:
    """The plotly traces of the figure in ``div_id``, read back from the page."""
    m = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*(\[.*?\]),\s*\{"', page, re.S)
    assert m, f"no figure {div_id}"
    return [{k: _plain(v) for k, v in t.items()} for t in json.loads(m.group(1))]


def test_writes_every_file(report):
    assert sorted(p.name for p in report.iterdir()) == sorted(sweep_mod.SWEEP_FILES)
    assert (report / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (report / "pareto.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and "DSP against latency" in svg


def test_page_is_self_contained(report):
    """One file that works offline: plotly.js inline, no script or stylesheet fetched."""
    from plotly.offline import get_plotlyjs

    page = (report / "report.html").read_text()
    library = get_plotlyjs()
    assert page.count(library) == 1                       # the library inside, once
    rest = page.replace(library, "")
    assert "<script src" not in rest and "<link" not in rest
    assert not re.search(r"https?://", rest)              # nothing outside the library names a URL


def test_pareto_plot_has_one_marker_per_point_and_greys_the_dominated(results, report):
    """Every point that ran is one marker; the front's markers are the Pareto points, and
    each marker's hover text names its point, digest and axis values."""
    page = (report / "report.html").read_text()
    traces = _figure_data(page, "pareto-0-0")
    markers = [t for t in traces if t.get("mode") == "markers"]
    ok = results[results["status"] == "ok"]
    assert sum(len(t["x"]) for t in markers) == len(ok)
    front = next(t for t in markers if t["name"] == "Pareto front")
    mask = pareto_mask(results, OBJECTIVES)
    assert sorted(front["x"]) == sorted(results.loc[mask, "latency_s"])
    grey = next(t for t in markers if t["name"] == "dominated")
    assert grey["marker"]["color"] != front["marker"]["color"]
    hover = " ".join(t for tr in markers for t in tr["text"])
    for rec in ok.to_dict("records"):
        assert f"point {rec['point_id']}</b> [{rec['digest']}]" in hover
    assert "nm = 2:4" in hover and "rows = 16" in hover


def test_page_has_sensitivity_per_axis_table_and_layer_bars(results, report):
    page = (report / "report.html").read_text()
    for axis in AXES:
        assert f'id="sensitivity-0-{axis}"' in page
    best = results[pareto_mask(results, OBJECTIVES)].sort_values("latency_s").head(3)
    for pid in best["point_id"]:
        traces = _figure_data(page, f"layers-0-{pid}")
        names = [t["name"] for t in traces]
        assert names[:2] == ["compute", "memory stall"] and names[-1] == "utilisation"
        lay = json.loads(results.loc[results["point_id"] == pid, "layers_json"].iloc[0])
        # compute + stall bars add up to each layer's stored cycles
        total = np.add(traces[0]["y"], traces[1]["y"])
        np.testing.assert_allclose(total, [x["cycles"] for x in lay])
    # the failed point is listed with its validator message
    assert "rows = 0 is not allowed: must be 1..512 PEs" in page


def test_tables_match_the_front(results, report):
    mask = pareto_mask(results, OBJECTIVES)
    pareto = pd.read_csv(report / "pareto.csv")
    assert sorted(pareto["point_id"]) == sorted(results.loc[mask, "point_id"])
    assert list(pareto["latency_s"]) == sorted(pareto["latency_s"])           # best first
    res = pd.read_csv(report / "results.csv")
    assert len(res) == len(results) and res["pareto"].tolist() == mask.tolist()
    pq = pd.read_parquet(report / "results.parquet")
    assert pq["digest"].tolist() == results["digest"].tolist()
    np.testing.assert_array_equal(pq["latency_s"].to_numpy(), results["latency_s"].to_numpy())


def test_more_than_two_objectives_one_plot_per_pair(results, tmp_path):
    files = write_sweep_report(results.head(6), axes=["rows"], objectives=["latency_s", "energy_j", "dsp"],
                               out_dir=tmp_path, best=0)
    page = files["report.html"].read_text()
    ids = re.findall(r'id="(pareto-\d+-\d+)"', page)
    assert ids == ["pareto-0-0", "pareto-0-1", "pareto-0-2"]
    for i in ids:   # the front of all three objectives, the same points in every pair
        front = next(t for t in _figure_data(page, i) if t["name"] == "Pareto front")
        assert len(front["x"]) == pareto_mask(results.head(6), ["latency_s", "energy_j", "dsp"]).sum()


def test_a_failed_report_leaves_the_old_one_whole(results, tmp_path, monkeypatch):
    """Files get the umask's mode. An error while building, or while moving the files into
    place, leaves no temporary file and no half-written file: every file is the old one or
    a whole new one."""
    small = results.head(3)
    old = os.umask(0o027)
    try:
        write_sweep_report(small, axes=["rows"], objectives=OBJECTIVES, out_dir=tmp_path, best=0)
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {oct(0o640)}
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    with pytest.raises(ReportError):
        write_sweep_report(small, axes=["rows", "colz"], objectives=OBJECTIVES, out_dir=tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sweep_mod, "pareto_grid_png_svg", boom)
    with pytest.raises(OSError):
        write_sweep_report(small.iloc[::-1], axes=["rows"], objectives=OBJECTIVES, out_dir=tmp_path, best=0)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.undo()

    real_replace = os.replace
    calls = []

    def replace_then_fail(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_fail)
    with pytest.raises(OutputPathError, match=r"^report file '.*/results\.csv' cannot be written: Input/output error$"):
        write_sweep_report(small.iloc[:2], axes=["rows"], objectives=OBJECTIVES, out_dir=tmp_path, best=0)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(after) == sorted(before)                 # no temporary file left behind
    for name, data in after.items():
        assert data == before[name] or name in ("report.html", "pareto.csv")   # moved before the failure


@pytest.mark.parametrize("kwargs, message", [
    (dict(axes=["rows", "colz"]), "axis 'colz' is not a column of the results: columns are "),
    (dict(objectives=["latency"]), "objective 'latency' is not a column of the results: columns are "),
    (dict(best=-1), "best = -1 is not allowed: give how many Pareto points get per-layer bars (>= 0)"),
])
def test_bad_arguments_are_one_line_errors(results, tmp_path, kwargs, message):
    args = dict(axes=AXES, objectives=OBJECTIVES, out_dir=tmp_path / "out")
    args.update(kwargs)
    with pytest.raises(ReportError) as info:
        write_sweep_report(results, **args)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_empty_results_are_refused(tmp_path):
    with pytest.raises(ReportError, match=r"^results have no rows: there is nothing to report"):
        write_sweep_report(pd.DataFrame({"latency_s": []}), axes=[], objectives=["latency_s"], out_dir=tmp_path)


def _store(run_dir: Path, df: pd.DataFrame, axes: list[str], objectives: list[str]) -> None:
    """A run folder laid out as docs/sweep.md describes the store: table results (the
    columns in their order) and table meta."""
    run_dir.mkdir()
    db = sqlite3.connect(run_dir / "sweep.sqlite")
    df.to_sql("results", db, index=False)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("axes", json.dumps(axes)), ("objectives", json.dumps(objectives)),
                                                      ("name", "tiny_grid"), ("version", "test")])
    db.commit()
    db.close()


def test_report_of_a_run_folder_reads_the_store(results, tmp_path):
    """A store's axes, objectives (sweep names: latency -> latency_s) and name are used."""
    pytest.importorskip("sparseforge.sweep")
    from sparseforge.sweep.store import FIXED_HEAD, FIXED_TAIL

    df = results.copy()
    for c in list(FIXED_HEAD) + list(FIXED_TAIL):
        if c not in df.columns:
            df[c] = None
    df = df[list(FIXED_HEAD) + AXES + list(FIXED_TAIL)]
    _store(tmp_path / "run", df, AXES, ["latency", "dsp"])
    loaded, axes, objs, name = load_run(tmp_path / "run")
    assert axes == AXES and name == "tiny_grid" and len(loaded) == len(results)
    assert [(o.name, o.direction) for o in objs] == [("latency_s", "min"), ("dsp", "min")]
    files = write_run_report(tmp_path / "run", out_dir=tmp_path / "rep", best=1)
    assert files["report.html"].parent == tmp_path / "rep"
    page = files["report.html"].read_text()
    assert "<title>sparseforge sweep: tiny_grid</title>" in page
    assert pd.read_csv(files["pareto.csv"])["point_id"].tolist() == \
        results[pareto_mask(results, OBJECTIVES)].sort_values("latency_s")["point_id"].tolist()


def test_report_of_a_parquet_needs_objectives(results, report, tmp_path):
    """A folder holding only results.parquet: axes from the column layout, objectives given."""
    folder = tmp_path / "mailed"
    folder.mkdir()
    (folder / "results.parquet").write_bytes((report / "results.parquet").read_bytes())
    with pytest.raises(ReportError, match=r"names no objectives: give them, e.g. --objective latency"):
        write_run_report(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["results.parquet"]
    files = write_run_report(folder, objectives=["latency_s", "dsp"], best=0)
    assert pd.read_csv(files["pareto.csv"])["point_id"].tolist() == \
        pd.read_csv(report / "pareto.csv")["point_id"].tolist()


def test_run_folder_errors(tmp_path):
    with pytest.raises(ReportError, match=r"^run folder '.*nope' does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(ReportError, match=r"holds no sweep.sqlite or results.parquet"):
        load_run(tmp_path)
