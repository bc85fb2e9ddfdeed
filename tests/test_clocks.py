"""Honest clocks (issue 10, part 2): every preset names the part its clock is checked against,
and its clock is either one the RTL reaches there (the stored nextpnr-ecp5 measurements,
``hwgen.clocks.MEASURED``) or kept on purpose with a ``clock_source``; ``simulate`` warns,
on one stderr line naming both clocks, whenever the RTL is not shown to reach the clock; and
``--set clock_mhz=synth`` / ``=PATH/synth.json`` run at the synthesised Fmax.

Every expected figure here is read from the stored measurements (never typed in), so these
tests keep holding when the engines are pipelined and recalibrated, and point at the preset
lines that must follow the new figures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import sparseforge as sf
from sparseforge.cli import main
from sparseforge.errors import InputError
from sparseforge.hwgen import clocks, cost, parts
from sparseforge.spec import FPGA_PARTS, NO_PART, HardwareSpec, SpecError, list_presets, load_spec

ECP5_DATA = Path(__file__).parent / "data" / "synth_calib" / "ecp5"
DOCS = Path(__file__).parent.parent / "docs" / "spec.md"
PRESETS = sorted(list_presets())


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path, monkeypatch):
    """No test reads the user's synthesis cache: the figures are the stored ones."""
    monkeypatch.setenv("SPARSEFORGE_CACHE_DIR", str(tmp_path / "cache"))


def _measured(design: str, spec: HardwareSpec) -> clocks.FmaxPoint:
    """The stored measurement of exactly ``spec``'s ``design`` (it must exist)."""
    pts = [p for p in clocks.MEASURED if p.design == design and clocks._same_structure(p, spec, design)]
    assert len(pts) == 1, (design, spec.name)
    return pts[0]


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg
    return msg


# ------------------------------------------------------------------ the part list
def test_part_names_live_in_the_spec_and_the_table_takes_them():
    """One list of part names (the spec's FPGA_PARTS): the part table has a data-sheet row
    for each, in that order, and no other; ``none`` is not an FPGA part."""
    assert list(parts.PARTS) == list(FPGA_PARTS) == parts.list_parts()
    assert set(parts._ROWS) == set(FPGA_PARTS)
    assert NO_PART not in FPGA_PARTS
    with pytest.raises(parts.PartError):
        parts.fpga_part(NO_PART)


def test_part_is_validated_and_left_out_of_the_digest():
    """``part`` takes the listed names (exactly) or ``none``; it and ``clock_source`` name
    the target, not the hardware, so the digest (the synthesis cache and calibration key)
    does not move."""
    base = HardwareSpec()
    for name in FPGA_PARTS + (NO_PART,):
        assert base.replace(part=name).digest == base.digest
    assert base.replace(clock_source="why").digest == base.digest
    for bad in ("XC7A35T", "xczu7ev", "ZCU104", ""):
        with pytest.raises(SpecError) as info:
            base.replace(part=bad)
        assert _one_line(info.value) == (f"part = {bad!r} is not allowed: choose one of "
                                         f"{', '.join(FPGA_PARTS + (NO_PART,))}")


# ------------------------------------------------------------------ every preset
@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_names_a_part_its_design_fits(name):
    """Every preset names its target; an FPGA target holds the preset's engine design (the
    resource model's estimate fits the part)."""
    spec = load_spec(name)
    assert spec.part in FPGA_PARTS + (NO_PART,)
    assert (spec.part == NO_PART) == (name == "smash-piuma")   # the one machine that is not an FPGA
    if spec.part != NO_PART:
        for design in clocks.engine_designs(spec):
            ok, why = parts.fits(cost.estimate_resources(spec, design), spec.part)
            assert ok, f"{name}: {why}"


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_clock_is_reached_or_kept_with_a_reason(name):
    """The check of issue 10: clock_mhz <= the stored Fmax of the preset's engine design on
    its part, or a non-empty clock_source says why the preset keeps its clock (then the
    warning names it)."""
    spec = load_spec(name)
    check = clocks.spec_clock_check(spec, use_cache=False)
    assert check["designs"] == list(clocks.engine_designs(spec))
    if check["reaches"] is True:
        assert spec.clock_mhz <= check["achievable_mhz"] and check["warning"] is None
    else:
        assert spec.clock_source.strip(), f"{name}: clock_mhz = {spec.clock_mhz} is not reached and not explained"
        assert f"kept on purpose ({spec.clock_source})" in check["warning"] or \
            f"kept on purpose: {spec.clock_source}" in check["warning"]


@pytest.mark.parametrize("name", [n for n in PRESETS if not load_spec(n).clock_source])
def test_a_preset_without_a_reason_runs_at_the_measured_clock_of_its_own_design(name):
    """A preset with no clock_source was lowered to what the RTL reaches: the measured Fmax
    of exactly its engine on its part, rounded down to whole MHz (after a recalibration this
    names the preset whose clock_mhz must follow)."""
    spec = load_spec(name)
    (design,) = clocks.engine_designs(spec)
    point = _measured(design, spec)
    assert spec.clock_mhz == math.floor(point.fmax_mhz), \
        f"{name}: clock_mhz = {spec.clock_mhz}, but the {design} measures {point.fmax_mhz} MHz ({point.point})"


def test_the_lowered_preset_is_tiny_on_the_ecp5():
    """The presets split as documented: tiny is the ECP5 preset and runs at its engine's
    Fmax; every UltraScale+ preset and smash-piuma keep their clock with a reason."""
    lowered = [n for n in PRESETS if not load_spec(n).clock_source]
    assert lowered == ["tiny"] and load_spec("tiny").part == "LFE5U-85F"
    assert {load_spec(n).part for n in PRESETS if n not in lowered} == {"XCZU7EV", "XCVU9P", NO_PART}


def test_the_check_reads_the_stored_figures(monkeypatch):
    """The figure comes from clocks.MEASURED (what the recalibration rewrites): a lower
    stored Fmax for tiny's engine makes tiny's clock too fast, and the warning says so."""
    tiny = load_spec("tiny")
    point = _measured("engine", tiny)
    slower = [p if p is not point else clocks.FmaxPoint(**{**point.__dict__, "fmax_mhz": tiny.clock_mhz - 5.0})
              for p in clocks.MEASURED]
    monkeypatch.setattr(clocks, "MEASURED", tuple(slower))
    check = clocks.spec_clock_check(tiny, use_cache=False)
    assert check["reaches"] is False and check["achievable_mhz"] == tiny.clock_mhz - 5.0
    assert check["warning"].startswith(f"clock_mhz = {tiny.clock_mhz:g} MHz is above the {tiny.clock_mhz - 5.0:.1f} MHz")


def test_docs_list_every_preset_s_clock_and_part():
    """docs/spec.md's "Which clock the simulator assumes" table is the presets', row for row."""
    text = DOCS.read_text()
    for name in PRESETS:
        spec = load_spec(name)
        assert f"| `{name}` | {spec.clock_mhz:g} | {spec.part} |" in text, name


# ------------------------------------------------------------------ the warning
def test_warning_when_the_clock_is_above_the_fmax():
    """The issue's example line: both clocks, the part, the tool and date, what to do."""
    spec = load_spec("tiny").replace(clock_mhz=200.0)
    p = _measured("engine", spec)
    check = clocks.spec_clock_check(spec)
    assert check["reaches"] is False and check["achievable_mhz"] == p.fmax_mhz
    assert check["warning"] == (f"clock_mhz = 200 MHz is above the {p.fmax_mhz:.1f} MHz the engine reaches on "
                                f"LFE5U-85F (nextpnr-ecp5, measured {p.date}); times are optimistic; use --set "
                                "clock_mhz=synth")
    kept = spec.replace(clock_source="the board's oscillator")
    assert clocks.spec_clock_check(kept)["warning"].endswith("; kept on purpose: the board's oscillator")


def test_warning_on_a_part_without_a_figure_names_the_reason_and_the_ecp5_clock():
    """On an UltraScale+ part there is no figure: the warning says the clock is kept (and
    why) or not checked (and what to do), and quotes the ECP5 figure beside it."""
    m3 = load_spec("m3vit-zcu104")
    check = clocks.spec_clock_check(m3)
    ref, _ = clocks.achievable_clock_mhz(m3, "engine", "LFE5U-85F")
    assert check["achievable_mhz"] is None and check["reaches"] is None
    w = check["warning"]
    assert w.startswith(f"clock_mhz = 300 MHz is kept on purpose ({m3.clock_source}) and not checked: "
                        "no UltraScale+ place and route runs here for XCZU7EV; ")
    assert f"the engine reaches {ref:.1f} MHz on the ECP5 LFE5U-85F" in w and "UltraScale+ is faster" in w
    bare = m3.replace(clock_source="")
    assert clocks.spec_clock_check(bare)["warning"].endswith(
        "; say why in clock_source, or set part = LFE5U-85F and clock_mhz = synth")
    piuma = clocks.spec_clock_check(load_spec("smash-piuma"))["warning"]
    assert "not checked: part = none names no FPGA" in piuma and "UltraScale+" not in piuma


def test_a_switchable_spec_is_limited_by_the_slower_engine():
    """dataflow = switchable builds both engines: the slower one's Fmax is the check."""
    spec = load_spec("tiny", ["dataflow=switchable"])
    slow = min((_measured(d, spec) for d in ("engine", "os_engine")), key=lambda p: p.fmax_mhz)
    check = clocks.spec_clock_check(spec)
    assert check["designs"] == ["engine", "os_engine"]
    assert (check["design"], check["achievable_mhz"]) == (slow.design, slow.fmax_mhz)


def test_overriding_the_clock_drops_the_preset_s_reason():
    """A preset's clock_source explains its own clock on its own part: --set clock_mhz or
    part without a clock_source drops it (so no stale reason is printed)."""
    assert load_spec("m3vit-zcu104", ["clock_mhz=250"]).clock_source == ""
    assert load_spec("m3vit-zcu104", ["part=XCVU9P"]).clock_source == ""
    assert load_spec("m3vit-zcu104", ["rows=8"]).clock_source == load_spec("m3vit-zcu104").clock_source
    mine = load_spec("m3vit-zcu104", ["clock_mhz=250", "clock_source=my board"])
    assert mine.clock_source == "my board" and mine.name == "m3vit-zcu104-clock_mhz250"


# ------------------------------------------------------------------ clock_mhz = synth
def test_set_clock_synth_runs_at_the_stored_fmax():
    """--set clock_mhz=synth resolves, before the spec is built, to the engine's Fmax on
    the part (rounded down to 0.1 MHz), with its provenance in clock_source; the last
    clock_mhz given wins, as for any field; the keyword form works too."""
    tiny = load_spec("tiny")
    p = _measured("engine", tiny)
    spec = sf.load_spec("tiny", ["rows=4", "clock_mhz=synth"])
    assert spec.clock_mhz == math.floor(p.fmax_mhz * 10) / 10
    assert spec.clock_source.startswith("clock_mhz = synth: the engine's synthesised Fmax on LFE5U-85F: nextpnr-ecp5")
    assert p.date in spec.clock_source and spec.name == f"tiny-clock_mhz{spec.clock_mhz:g}".replace(".", "p")
    assert clocks.spec_clock_check(spec)["warning"] is None
    assert sf.load_spec("tiny", clock_mhz="synth") == spec
    assert sf.load_spec("tiny", ["clock_mhz=synth", "clock_mhz=100"]).clock_mhz == 100.0
    assert sf.load_spec("tiny", ["clock_mhz=100", "clock_mhz=synth"]).clock_mhz == spec.clock_mhz
    assert sf.load_spec("tiny", ["clock_mhz=synth"], clock_mhz=90).clock_mhz == 90.0
    osf = sf.load_spec("tiny", ["dataflow=output-stationary", "clock_mhz=synth"])
    assert osf.clock_mhz == math.floor(_measured("os_engine", tiny).fmax_mhz * 10) / 10


@pytest.mark.parametrize("hw, part", [("default", "XCZU7EV"), ("sat-vcu1525", "XCVU9P"), ("smash-piuma", NO_PART)])
def test_set_clock_synth_without_a_figure_is_one_line_saying_why(hw, part):
    with pytest.raises(InputError) as info:
        sf.load_spec(hw, ["clock_mhz=synth"])
    msg = _one_line(info.value)
    assert msg.startswith(f"clock_mhz = synth is not allowed with part = {part}: ")
    assert "give clock_mhz in MHz" in msg and ("LFE5U-85F" in msg)


# ------------------------------------------------------------------ clock_mhz = PATH/synth.json
def _synth_json(folder: Path, spec: HardwareSpec, design: str = "engine", *, ecp5: object = "stored") -> Path:
    """A synth.json as ``sparseforge synth`` writes it, whose ECP5 entry is the stored real
    nextpnr-ecp5 run of ``spec``'s design (tests/data/synth_calib/ecp5)."""
    rec = json.loads((ECP5_DATA / f"{_measured(design, spec).point}.json").read_text())
    entry = {"device": rec["device"], "fits": True, "nodsp": False, "freq_target_mhz": 100.0,
             "fmax_mhz": rec["fmax_mhz"], "tools": rec["tools"]} if ecp5 == "stored" else ecp5
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "synth.json"
    path.write_text(json.dumps({"top": f"sf_{design}", "files": [f"sf_{design}.v"], **spec.record(),
                                "rtl_sha256": "0" * 64, "tools": {}, "xilinx_xcup": None, "ecp5": entry}))
    return path


def test_set_clock_from_a_synth_json(tmp_path):
    """--set clock_mhz=PATH/synth.json (or its design folder) runs at the slowest ECP5 clock
    it records, named in clock_source; a synth.json made at another clock_mhz is the same
    design (the clock does not change the Verilog)."""
    tiny = load_spec("tiny")
    rec = json.loads((ECP5_DATA / f"{_measured('engine', tiny).point}.json").read_text())
    path = _synth_json(tmp_path / "d", tiny.replace(clock_mhz=123.0))
    spec = sf.load_spec("tiny", [f"clock_mhz={path}"])
    assert spec.clock_mhz == math.floor(min(rec["fmax_mhz"].values()) * 10) / 10
    assert spec.clock_source.startswith(f"clock_mhz = {path}: the engine's Fmax from {path}: nextpnr-ecp5")
    assert sf.load_spec("tiny", [f"clock_mhz={tmp_path / 'd'}"]).clock_mhz == spec.clock_mhz


@pytest.mark.parametrize("case", ["other-spec", "missing", "not-json", "array", "no-ecp5", "did-not-fit",
                                  "xilinx-part", "switchable"])
def test_a_synth_json_that_does_not_apply_is_refused(case, tmp_path):
    tiny = load_spec("tiny")
    hw, sets, path = "tiny", [], tmp_path / "d" / "synth.json"
    if case == "other-spec":
        other = tiny.replace(rows=2, cols=2, weight_buffer_kib=4, input_buffer_kib=4, output_buffer_kib=4)
        _synth_json(tmp_path / "d", other)
        expect = f"is of spec tiny [{other.digest}], not of this spec tiny [{tiny.digest}]"
    elif case == "missing":
        expect = f"{path} does not exist"
    elif case == "not-json":
        path.parent.mkdir()
        path.write_text("{truncated")
        expect = "is not valid JSON"
    elif case == "array":
        _synth_json(tmp_path / "d", tiny, "array")
        expect = "is of the design 'sf_array', but this spec (dataflow = weight-stationary) runs the engine"
    elif case == "no-ecp5":
        _synth_json(tmp_path / "d", tiny, ecp5=None)
        expect = "has no ECP5 result"
    elif case == "did-not-fit":
        _synth_json(tmp_path / "d", tiny, ecp5={"device": "25k", "fits": False, "error": "too big"})
        expect = "did not fit the ECP5 25k"
    elif case == "xilinx-part":
        _synth_json(tmp_path / "d", tiny)
        sets = ["part=XCZU7EV"]
        expect = "part = XCZU7EV is not an ECP5 part; set part = LFE5U-85F"
    else:
        _synth_json(tmp_path / "d", tiny.replace(dataflow="switchable"))
        sets = ["dataflow=switchable"]
        expect = "runs both engines"
    with pytest.raises(InputError) as info:
        sf.load_spec(hw, [*sets, f"clock_mhz={path}"])
    msg = _one_line(info.value)
    assert msg.startswith(f"clock_mhz = {str(path)!r} is not allowed: ") and expect in msg, msg


# ------------------------------------------------------------------ the command line and the API
def test_simulate_warns_on_stderr_and_the_json_carries_the_check(capsys):
    """simulate prints the warning as one stderr line after the report (with --json too)
    and the JSON result carries the check; a clock the RTL reaches prints nothing."""
    argv = ["simulate", "--hw", "tiny", "--tokens", "16", "--no-dense", "--json"]
    assert main([*argv, "--set", "clock_mhz=200"]) == 0
    out, err = capsys.readouterr()
    check = json.loads(out)["clock"]
    assert err.splitlines() == [f"sparseforge: warning: {check['warning']}"]
    assert (check["assumed_mhz"], check["reaches"], check["part"]) == (200.0, False, "LFE5U-85F")
    assert check["achievable_mhz"] == _measured("engine", load_spec("tiny")).fmax_mhz
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err == "" and json.loads(out)["clock"]["reaches"] is True


def test_simulate_with_clock_synth_says_where_the_clock_came_from(capsys):
    assert main(["simulate", "--hw", "tiny", "--tokens", "16", "--no-dense", "--set", "clock_mhz=synth"]) == 0
    out, err = capsys.readouterr()
    spec = sf.load_spec("tiny", ["clock_mhz=synth"])
    assert f"{spec.clock_mhz:g} MHz" in out.splitlines()[1]
    assert err.splitlines() == [f"[sparseforge] ran at {spec.clock_mhz:g} MHz ({spec.clock_source})"]


def test_training_and_moe_results_carry_the_check_too(capsys):
    """The engine clock applies to training and MoE simulations as well."""
    res = sf.simulate_training("sat-vcu1525", "minilm", batch=1, dense=False, ablations=False)
    assert res.clock == sf.clock_check("sat-vcu1525") and res.to_dict()["clock"]["part"] == "XCVU9P"
    assert main(["simulate", "--net", "m3vit-tiny", "--hw", "m3vit-zcu104", "--routing", "synthetic", "--tokens", "17",
                 "--frames", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    check = json.loads(out)["clock"]
    assert check["clock_source"] == load_spec("m3vit-zcu104").clock_source
    assert err.splitlines()[-1] == f"sparseforge: warning: {check['warning']}"
