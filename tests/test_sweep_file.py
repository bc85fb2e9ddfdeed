"""The sweep file and the search space (sparseforge.sweep.file, sparseforge.sweep.space).

Bad sweep files give one line naming the key, the value and what is allowed, exit 2 through
the command, and write nothing. The grid visits exactly the declared points; random and
NSGA-II searches give the requested number of distinct points, the same for the same seed.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from sparseforge.cli.sweep import main
from sparseforge.sweep import SweepError, parse_sweep, run_sweep
from sparseforge.sweep.space import grid_points, random_points

EXAMPLES = Path(__file__).parent.parent / "examples"
ERR = "sparseforge: error: "

HEAD = """\
[sweep]
name = "t"
base = "default"
"""
TAIL = """\
[[workloads]]
kind = "inference"
net = "minilm"
tokens = 16

[target]
part = "xczu7ev"
objectives = ["latency", "dsp"]
"""


def sweep_text(axes: str, *, head: str = HEAD, tail: str = TAIL, search: str = "") -> str:
    return f"{head}\n[axes]\n{axes}\n{tail}\n{search}"


def parse(axes: str, **kw):
    return parse_sweep(sweep_text(axes, **kw), source="t.toml")


def cli(argv: list[str]) -> int:
    """``sparseforge sweep ARGV`` through the command's own parser (``register`` on a fresh one)."""
    return main(argv)


# ------------------------------------------------------------------ the grid
def test_grid_visits_exactly_the_declared_points_with_links_and_ranges():
    """First declared axis slowest; a linked axis takes its target's value; ranges include
    their stop; nothing is left out or doubled."""
    sw = parse('rows = {start = 8, stop = 24, step = 8}\ncols = "rows"\nnm = ["2:4", "dense"]\n'
               'clock_mhz = [150.5, 300]\n"spgemm.pes" = {values = [4, 16]}')
    pts = list(grid_points(sw))
    expected = [{"rows": r, "cols": r, "nm": nm, "clock_mhz": c, "spgemm.pes": p}
                for r, nm, c, p in itertools.product([8, 16, 24], ["2:4", "dense"], [150.5, 300], [4, 16])]
    assert pts == expected
    assert sw.grid_size() == len(expected) == 24


def test_dotted_section_key_and_geometric_and_float_ranges():
    """``spgemm.pes = ...`` (a TOML dotted key) is the same axis as ``"spgemm.pes"``; a factor
    range is geometric; a float step does not accumulate rounding error."""
    sw = parse("spgemm.pes = {start = 2, stop = 64, factor = 2}\n"
               "dram_bandwidth_gbps = {start = 0.1, stop = 0.5, step = 0.1}")
    axes = {a.name: a.values for a in sw.axes}
    assert axes == {"spgemm.pes": (2, 4, 8, 16, 32, 64), "dram_bandwidth_gbps": (0.1, 0.2, 0.3, 0.4, 0.5)}


def test_chained_links_resolve_to_the_free_axis():
    sw = parse('input_buffer_kib = [64, 128]\nweight_buffer_kib = "input_buffer_kib"\n'
               'output_buffer_kib = "weight_buffer_kib"')
    assert [tuple(p.values()) for p in grid_points(sw)] == [(64, 64, 64), (128, 128, 128)]


def test_point_specs_follow_the_axes():
    """nm sets n and m ("dense": n = m = the base's m); a linked axis sets its own field."""
    from sparseforge.sweep.evaluate import make_task

    sw = parse('rows = [4]\ncols = "rows"\nnm = ["1:8", "dense"]\n"spgemm.pes" = [8]')
    t1, t2 = (make_task(sw, i, p) for i, p in enumerate(grid_points(sw)))
    assert (t1.spec.rows, t1.spec.cols, t1.spec.n, t1.spec.m, t1.spec.spgemm.pes) == (4, 4, 1, 8, 8)
    assert (t2.spec.n, t2.spec.m) == (4, 4)
    assert t1.digest == t1.spec.digest and t1.digest != t2.digest


def test_one_part_the_target_default_and_every_point_spec():
    """[target] part defaults to the base spec's part; a given part becomes every point's spec
    part (the preset's clock reason, written for its own part, is dropped); part and
    clock_source are not axes; a base spec naming no part needs [target] part."""
    from sparseforge.spec import load_spec
    from sparseforge.sweep.evaluate import make_task

    base = load_spec("default")
    no_part = TAIL.replace('part = "xczu7ev"\n', "")
    sw = parse("rows = [4]", tail=no_part)
    assert sw.part == base.part
    assert make_task(sw, 0, next(grid_points(sw))).spec.part == base.part
    sw = parse("rows = [4]", tail=TAIL.replace('"xczu7ev"', '"LFE5U-45F"'))
    spec = make_task(sw, 0, next(grid_points(sw))).spec
    assert (sw.part, spec.part, spec.clock_source) == ("LFE5U-45F", "LFE5U-45F", "")
    for axis in ('part = ["XCVU9P"]', 'clock_source = ["x"]'):
        with pytest.raises(SweepError, match=axis.split(" ")[0]):
            parse(axis)
    with pytest.raises(SweepError, match=r"\[target\] part is missing"):
        parse("rows = [4]", head=HEAD.replace('"default"', '"smash-piuma"'), tail=no_part)


# ------------------------------------------------------------------ random and nsga2
def test_random_gives_n_distinct_grid_points_deterministic_by_seed():
    axes = "rows = [4, 8, 16, 32]\ncols = [4, 8, 16, 32]\nnm = [\"2:4\", \"1:4\", \"2:8\"]"
    a = random_points(parse(axes, search='[search]\nkind = "random"\nn = 20\nseed = 3'))
    b = random_points(parse(axes, search='[search]\nkind = "random"\nn = 20\nseed = 3'))
    c = random_points(parse(axes, search='[search]\nkind = "random"\nn = 20\nseed = 4'))
    grid = list(grid_points(parse(axes)))
    assert a == b and a != c
    assert len(a) == 20 and len({tuple(p.values()) for p in a}) == 20
    assert all(p in grid for p in a)


def test_nsga2_gives_n_trials_distinct_points_deterministic_by_seed(tmp_path):
    """NSGA-II (Optuna, ask/tell) evaluates n_trials distinct points through the same store;
    the same seed gives the same points and the same rows."""
    from sparseforge.sweep import load_results

    axes = 'rows = [2, 4, 8, 16]\ncols = [2, 4, 8, 16]\nnm = ["2:4", "1:4"]'
    text = sweep_text(axes, search='[search]\nkind = "nsga2"\nn_trials = 10\npopulation = 4\nseed = 7')
    (tmp_path / "s.toml").write_text(text)
    frames = []
    for out in ("a", "b"):
        s = run_sweep(tmp_path / "s.toml", out=tmp_path / out, workers=1, progress=False)
        assert s.points == 10 and s.computed + s.failed == 10
        frames.append(load_results(tmp_path / out / "t").drop(columns=["seconds"]))
    assert len(frames[0]) == 10 and frames[0]["digest"].is_unique
    assert frames[0].equals(frames[1])


# ------------------------------------------------------------------ bad files: one line, exit 2, nothing written
BAD = [
    ("unknown field", sweep_text("rowz = [8]"), "unknown field 'rowz' in [axes]: allowed fields are nm, act_width"),
    ("unknown section field", sweep_text("spgemm.pez = [8]"), "unknown field 'spgemm.pez' in [axes]"),
    ("empty axis", sweep_text("rows = []"), "[axes] rows = [] is not allowed: an axis needs at least one value"),
    ("bad range: step", sweep_text("rows = {start = 8, stop = 32, step = 0}"),
     "[axes] rows = {start = 8, stop = 32, step = 0} is not allowed: step must be > 0"),
    ("bad range: order", sweep_text("rows = {start = 32, stop = 8, step = 8}"),
     "[axes] rows = {start = 32, stop = 8, step = 8} is not allowed: stop must be >= start"),
    ("bad range: keys", sweep_text("rows = {start = 8, stop = 32}"),
     "is not allowed: a range needs start, stop and exactly one of step or factor"),
    ("bad range: float on int", sweep_text("rows = {start = 8, stop = 32, step = 0.5}"),
     "rows is an integer field, so start, stop and step must be integers"),
    ("wrong type", sweep_text('rows = ["eight"]'), "[axes] rows value \"eight\" is not allowed: rows must be an integer"),
    ("bad nm", sweep_text('nm = ["4:2"]'), "[axes] nm value \"4:2\" is not allowed"),
    ("nm with n", sweep_text('nm = ["2:4"]\nn = [2]'), "[axes] nm is not allowed with an n or m axis"),
    ("link cycle", sweep_text('rows = "cols"\ncols = "rows"'), "form a cycle"),
    ("unknown part", sweep_text("rows = [8]", tail=TAIL.replace("xczu7ev", "xc7notapart")),
     "[target] part = \"xc7notapart\" is not allowed: FPGA part 'xc7notapart' is not known: choose one of"),
    ("unknown objective", sweep_text("rows = [8]", tail=TAIL.replace('"dsp"]', '"speed"]')),
     "[target] objectives: \"speed\" is not allowed: choose from latency, energy"),
    ("objective on a missing metric", sweep_text(
        "rows = [8]", tail='[[workloads]]\nkind = "moe"\nrouting = "synthetic"\n\n[target]\npart = "xczu7ev"\n'
                          'objectives = ["latency", "energy"]\n'),
     "[target] objectives: \"energy\" is not allowed: workload 'm3vit-small-reorder' does not produce it"),
    ("synth clock without a clock figure", sweep_text('rows = [8]\nclock_mhz = [200, "synth"]'),
     "[axes] clock_mhz = \"synth\" is not allowed with part XCZU7EV: no clock for XCZU7EV"),
    ("malformed TOML", "[sweep\nname = 1", "not valid TOML"),
    ("unknown key", sweep_text("rows = [8]", head=HEAD + "colour = 1\n"), "unknown key 'colour' in [sweep]"),
    ("bad workload kind", sweep_text("rows = [8]", tail=TAIL.replace('"inference"', '"serving"')),
     "workloads[0].kind = \"serving\" is not allowed: choose one of inference, training, spgemm, moe"),
    ("bad workload net", sweep_text("rows = [8]", tail=TAIL.replace('"minilm"', '"lenet"')),
     "workloads[0].net = \"lenet\" is not allowed: choose one of minilm, resnet50, resnet18, vgg16, "
     "mobilenetv2, vit_s16, vit_m3vit, bert_base"),
    ("random n > grid", sweep_text("rows = [8, 16]", search='[search]\nkind = "random"\nn = 3'),
     "[search] n = 3 is not allowed: the axes span only 2 points"),
    ("missing workloads", sweep_text("rows = [8]", tail='[target]\npart = "xczu7ev"\n'), "[[workloads]] is missing"),
]


@pytest.mark.parametrize("what,text,message", BAD, ids=[b[0] for b in BAD])
def test_bad_sweep_file_one_line_exit_2_nothing_written(tmp_path, capsys, what, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "runs"
    assert cli([str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(ERR + str(path) + ": "), lines[0]
    assert message in lines[0], lines[0]
    assert not out.exists()
    with pytest.raises(SweepError):
        parse_sweep(text, source=str(path))


def test_missing_file_one_line(tmp_path, capsys):
    assert cli([str(tmp_path / "none.toml"), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "no such file" in err[0]


def test_examples_are_valid():
    from sparseforge.sweep import load_sweep

    for f in sorted(EXAMPLES.glob("*.toml")):
        sw = load_sweep(f)
        assert sw.grid_size() >= 1, f


# ------------------------------------------------------------------ run folders
def test_run_folder_rule(tmp_path, capsys):
    """A finished run is not silently rerun; --resume of the same sweep computes nothing new;
    a different sweep in the same folder is refused, with or without --resume."""
    path = tmp_path / "s.toml"
    path.write_text(sweep_text('rows = [4, 8]\nnm = ["2:4"]'))
    out = str(tmp_path / "runs")
    assert cli([str(path), "--out", out, "--workers", "1", "--json", "--no-report"]) == 0
    capsys.readouterr()
    assert cli([str(path), "--out", out, "--workers", "1", "--no-report"]) == 2
    assert "already holds this sweep: add --resume" in capsys.readouterr().err
    s = run_sweep(path, out=out, resume=True, workers=1, progress=False)
    assert (s.points, s.computed, s.skipped) == (2, 0, 2)
    path.write_text(sweep_text('rows = [4, 8, 16]\nnm = ["2:4"]'))
    before = (tmp_path / "runs" / "t" / "sweep.sqlite").read_bytes()
    for extra in ([], ["--resume"]):
        assert cli([str(path), "--out", out, "--workers", "1", "--no-report", *extra]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "holds a different sweep" in err[0]
    assert (tmp_path / "runs" / "t" / "sweep.sqlite").read_bytes() == before


def test_bool_axis_round_trips_through_the_store(tmp_path):
    """A boolean field's axis comes back from the store as booleans, not SQLite's 0/1."""
    from sparseforge.sweep import load_results

    path = tmp_path / "s.toml"
    path.write_text(sweep_text("rows = [4]\ndouble_buffer = [true, false]"))
    run_sweep(path, out=tmp_path, workers=1, progress=False)
    df = load_results(tmp_path / "t")
    assert list(df["double_buffer"]) == [True, False]
    assert df["status"].eq("ok").all()
