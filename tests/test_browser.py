"""The reports in a real browser: headless Chromium opens the sweep report and the
simulation report from disk with every host name unresolvable (so the page must work
offline), runs their scripts, and dumps the DOM. The tests check that no script error
reached the console, that every plot was drawn, and that the Pareto plot holds exactly one
marker per point that ran (the roofline one per layer and run). A screenshot of each page
is taken too and must not be blank.

Chromium comes from the set-up (Debian's ``chromium``). Without it the tests are skipped
on a developer's machine and fail when the environment variable ``CI`` is set, so CI
cannot pass without running them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sparseforge.report import pareto_mask, write_simulation_report, write_sweep_report
from sparseforge.sim.simulate import compare
from sparseforge.spec import load_spec

from .report_data import AXES, simulated_sweep, small_network

OBJECTIVES = ["latency_s:min", "dsp:min"]
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed but CI is set: the browser test must run in CI "
                    "(apt-get install -y --no-install-recommends chromium)")
    pytest.skip("chromium is not installed: apt-get install -y --no-install-recommends chromium to run the browser test")


class _Dom(HTMLParser):
    """Per element id of interest: how many ``class="point"`` elements it holds, and how
    many plotly ``main-svg`` layers (drawn plots)."""

    def __init__(self, ids: set[str]):
        super().__init__()
        self.ids = ids
        self.stack: list[str | None] = []      # per open element: the id of interest it opens, or None
        self.inside: list[str] = []
        self.points = {i: 0 for i in ids}
        self.svgs = {i: 0 for i in ids}
        self.seen: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if self.inside:
            here = self.inside[-1]
            self.points[here] += "point" in classes
            self.svgs[here] += tag == "svg" and "main-svg" in classes
        if tag in _VOID:
            return
        opened = a.get("id") if a.get("id") in self.ids else None
        if opened:
            self.seen.add(opened)
            self.inside.append(opened)
        self.stack.append(opened)

    def handle_startendtag(self, tag, attrs):
        if self.inside:
            classes = (dict(attrs).get("class") or "").split()
            self.points[self.inside[-1]] += "point" in classes

    def handle_endtag(self, tag):
        if tag in _VOID or not self.stack:
            return
        if self.stack.pop():
            self.inside.pop()


def open_in_browser(page: Path, tmp: Path, ids: set[str]) -> _Dom:
    """Load ``page`` in headless Chromium, offline; fail on a console error; return the
    parsed DOM after the scripts ran. A screenshot goes next to the page's name in ``tmp``."""
    chromium = _chromium()
    shot = tmp / f"{page.stem}-screenshot.png"
    cmd = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars", "--window-size=1280,2400",
           f"--screenshot={shot}", "--dump-dom", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert not [c for c in console if "Uncaught" in c or "Error" in c], "\n".join(console)
    assert "Uncaught" not in proc.stderr
    dom = _Dom(ids)
    dom.feed(proc.stdout)
    assert dom.seen == ids, f"plots missing from the DOM: {sorted(ids - dom.seen)}"
    for i in ids:
        assert dom.svgs[i] >= 1, f"plot {i} was not drawn"
    _not_blank(shot)
    return dom


def _not_blank(shot: Path) -> None:
    from PIL import Image

    assert shot.is_file(), "no screenshot"
    with Image.open(shot) as im:
        colours = im.convert("RGB").resize((320, 600)).getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50, "the screenshot is blank"


def test_sweep_report_in_a_browser(tmp_path):
    """No console error; the Pareto plot shows one marker per point that ran (failed points
    have no values to plot), as many as the results hold."""
    df = simulated_sweep(rows=(4, 8), cols=(4, 8), nms=("2:4", "dense"), tokens=8)
    files = write_sweep_report(df, axes=AXES, objectives=OBJECTIVES, out_dir=tmp_path / "run", best=1)
    ids = {"pareto-0-0"} | {f"sensitivity-0-{a}" for a in AXES}
    dom = open_in_browser(files["report.html"], tmp_path, ids)
    ran = int((df["status"] == "ok").sum())
    assert ran == len(df) - 1 and pareto_mask(df, OBJECTIVES).sum() >= 2
    assert dom.points["pareto-0-0"] == ran


def test_simulation_report_in_a_browser(tmp_path):
    """No console error; every picture drawn; the roofline holds one marker per layer of
    the sparse run and one per layer of the dense run."""
    spec = load_spec("default")
    sparse, dense = compare(spec, small_network(), (2, 4))
    page = tmp_path / "sim.html"
    write_simulation_report(sparse, dense, spec, page)
    dom = open_in_browser(page, tmp_path, {"layers", "roofline", "energy", "sparse-vs-dense"})
    assert dom.points["roofline"] == len(sparse.layers) + len(dense.layers)


def test_compare_page_in_a_browser(tmp_path):
    """`compare -o x.html`: no console error, both pictures drawn; the per-layer plot holds
    one bar per layer per spec, the energy plot one per spec for each of MAC, SRAM and DRAM."""
    from sparseforge.report import compare_specs, write_comparison

    specs = [load_spec("tiny"), load_spec("default")]
    cmp = compare_specs(specs, small_network())
    page = tmp_path / "cmp.html"
    write_comparison(cmp, page)
    dom = open_in_browser(page, tmp_path, {"compare-layers", "compare-energy"})
    assert dom.points["compare-layers"] == len(specs) * len(cmp.results[0].layers)
    assert dom.points["compare-energy"] == len(specs) * 3
