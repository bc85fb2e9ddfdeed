"""Output safety of ``hwgen.emit``: one design per folder, synthesis results that follow
their Verilog, a folder replaced in one step (also when the run is killed), concurrent runs,
leftovers of killed runs, users' own files, and designs too large to elaborate.

The designs are the ``tiny`` preset's ``pe`` (elaborates in well under a second) and small
``hashmerge`` units; runs that must be killed go to a child process, stopped at a named
point of the run (``outdir._stage``, replaced in the child by a hook that signals and waits).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from sparseforge.hwgen import emit as emit_mod
from sparseforge.hwgen import outdir
from sparseforge.hwgen.emit import COST_LIMITS, DESIGNS, EmitError, check_cost, emit_design, estimate_cost
from sparseforge.hwgen.handoff import handoff_names
from sparseforge.spec import list_presets, load_spec

A = load_spec("tiny")
B = load_spec("tiny", ["weight_width=4"])
#: what a pe design folder holds: the Verilog, the manifest and the FPGA hand-off
PE_FILES = sorted(["manifest.json", "sf_pe.v", *handoff_names("sf_pe")])


def _snap(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` (hidden ones too) with its bytes (None for folders)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


def _hidden(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def _fake_synth(design: Path, *, rtl: str | None = None, digest: str | None = None) -> None:
    """Synthesis results as ``synth`` records them (without running the tools)."""
    m = json.loads((design / "manifest.json").read_text())
    (design / "synth" / "ecp5").mkdir(parents=True)
    (design / "synth" / "ecp5" / "nextpnr_25k_report.json").write_text("{}\n")
    (design / "synth.json").write_text(json.dumps({
        "top": m["top"], "files": m["files"], "digest": digest or m["digest"],
        "rtl_sha256": rtl or m["rtl_sha256"], "xilinx_xcup": None,
        "ecp5": {"device": "25k", "fits": True, "report": "synth/ecp5/nextpnr_25k_report.json"}}))


# ----------------------------------------------------------------------------- one design per folder
def test_other_spec_is_refused_and_the_folder_kept(tmp_path):
    """`generate --set weight_width=4 --name tiny-pe` next to a folder of the plain tiny spec:
    refused with one line naming both digests; the folder and its synthesis results stay."""
    d = emit_design(A, design="pe", out_root=tmp_path, name="tiny-pe")
    _fake_synth(d)
    before = _snap(tmp_path)
    with pytest.raises(EmitError) as ei:
        emit_design(B, design="pe", out_root=tmp_path, name="tiny-pe")
    msg = str(ei.value)
    assert "\n" not in msg
    assert A.digest in msg and B.digest in msg and "--replace" in msg
    with pytest.raises(EmitError, match="holds design 'pe' .* not design 'array'"):
        emit_design(A, design="array", out_root=tmp_path, name="tiny-pe")
    assert _snap(tmp_path) == before


def test_other_parameters_are_refused(tmp_path):
    """Same spec and kind, other generation parameters (a smaller hash table): another design."""
    emit_design(A, design="hashmerge", out_root=tmp_path, name="h", table_entries=16)
    before = _snap(tmp_path)
    with pytest.raises(EmitError, match=r"with parameters .*\"table_entries\": 16.*\"table_entries\": 32"):
        emit_design(A, design="hashmerge", out_root=tmp_path, name="h", table_entries=32)
    assert _snap(tmp_path) == before


def test_replace_takes_another_spec_and_drops_its_synthesis(tmp_path):
    """replace=True puts the other spec's design in; the old synthesis results described other
    Verilog and go with it."""
    d = emit_design(A, design="pe", out_root=tmp_path, name="x")
    _fake_synth(d)
    emit_design(B, design="pe", out_root=tmp_path, name="x", replace=True)
    m = json.loads((d / "manifest.json").read_text())
    assert m["digest"] == B.digest and m["spec"]["weight_width"] == 4
    assert sorted(os.listdir(d)) == PE_FILES
    assert os.listdir(tmp_path) == ["x"]


def test_same_design_keeps_synthesis_of_the_same_verilog_only(tmp_path):
    """Regenerating the same spec and design keeps synth.json and synth/ when they record the
    hash of the Verilog just written (and the spec digest); a synth.json of other Verilog or
    another digest is dropped with its reports."""
    d = emit_design(A, design="pe", out_root=tmp_path, name="x")
    m = json.loads((d / "manifest.json").read_text())
    assert m["rtl_sha256"] == outdir.rtl_sha256([("sf_pe.v", (d / "sf_pe.v").read_bytes())])
    _fake_synth(d)
    kept = _snap(d)
    emit_design(A, design="pe", out_root=tmp_path, name="x")
    assert _snap(d) == kept
    for bad in ({"rtl": "0" * 64}, {"digest": "0" * 16}):
        for p in ("synth.json", "synth"):
            outdir.remove_tree(d / p)
        _fake_synth(d, **bad)
        emit_design(A, design="pe", out_root=tmp_path, name="x")
        assert sorted(os.listdir(d)) == PE_FILES, bad
    assert os.listdir(tmp_path) == ["x"]


def test_foreign_files_folders_and_links_are_never_replaced(tmp_path):
    """A user's regular file at out/X, a link, or a folder without a manifest is refused with one
    line (even with replace=True) and left exactly as it was: nothing moved aside. A file of the
    user's inside a design folder is refused unless replace=True."""
    (tmp_path / "X").write_text("my notes")
    (tmp_path / "L").symlink_to(tmp_path / "X")
    (tmp_path / "D").mkdir()
    (tmp_path / "D" / "data.csv").write_text("1,2\n")
    before = _snap(tmp_path)
    for name, what in (("X", "is not a folder"), ("L", "is a link"), ("D", "no readable manifest")):
        for replace in (False, True):
            with pytest.raises(EmitError, match=what) as ei:
                emit_design(A, design="pe", out_root=tmp_path, name=name, replace=replace)
            assert "\n" not in str(ei.value)
    assert _snap(tmp_path) == before
    d = emit_design(A, design="pe", out_root=tmp_path, name="p")
    (d / "notes.txt").write_text("mine")
    with pytest.raises(EmitError, match="'notes.txt', which `sparseforge generate` did not write"):
        emit_design(A, design="pe", out_root=tmp_path, name="p")
    assert (d / "notes.txt").read_text() == "mine"
    emit_design(A, design="pe", out_root=tmp_path, name="p", replace=True)
    assert sorted(os.listdir(d)) == PE_FILES


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", ".hidden", "x/../../y", "", "a" * 65])
def test_names_that_escape_are_refused(tmp_path, name):
    out = tmp_path / "out"
    with pytest.raises(EmitError, match="is not allowed"):
        emit_design(A, design="pe", out_root=out, name=name)
    assert list(tmp_path.iterdir()) == []


def test_default_name_is_a_valid_folder_name():
    """A spec name with characters a folder name may not hold still gives a usable default."""
    assert emit_mod.default_name(A, "pe") == "tiny-pe"
    odd = A.replace(name="9 my/accel+rows=2")
    name = emit_mod.default_name(odd, "moe_scheduler")
    assert name == "d9_my_accel_rows_2-moe_scheduler"
    emit_mod.design_dir(Path("out"), emit_mod.default_name(A.replace(name="x" * 200), "moe_scheduler"))


def test_modes_follow_the_umask(tmp_path):
    """The design folder and its files get the modes a plain mkdir/open would give."""
    for mask, modes in ((0o002, (0o775, 0o664, 0o664)), (0o077, (0o700, 0o600, 0o600))):
        old = os.umask(mask)
        try:
            d = emit_design(A, design="pe", out_root=tmp_path, name=f"u{mask}")
        finally:
            os.umask(old)
        assert (d.stat().st_mode & 0o777, (d / "sf_pe.v").stat().st_mode & 0o777,
                (d / "manifest.json").stat().st_mode & 0o777) == modes


# ----------------------------------------------------------------------------- cost limits
@pytest.mark.parametrize("design, sets, term", [
    ("array", ["rows=128", "cols=128"], "multipliers = 32768"),
    ("array", ["rows=512", "cols=1", "n=1", "m=1", "act_width=2"], "delay registers = 261632"),
    ("engine", ["rows=128", "cols=2", "n=1", "m=64", "act_width=32"], "delay register bits"),
    ("os_engine", ["input_buffer_kib=1048576"], "memory words"),
    ("engine", ["rows=32", "cols=32", "input_buffer_kib=9000"], "memory bits = "),
    ("moe_reorder", ["moe.queue_depth=65536"], "memory words = 1048576 (16 expert queues x moe.queue_depth 65536)"),
    ("moe_router", ["moe.queue_depth=65536"], "memory words"),
    ("hashmerge", ["spgemm.table_entries=8388608", "spgemm.scratchpad_kib=65536"], "memory words"),
    ("sore", ["train.sore_lanes=1024", "m=8"], "sore cells = 16384"),
])
def test_huge_designs_are_refused_before_elaboration(tmp_path, monkeypatch, design, sets, term):
    """Sizes the spec allows but no elaboration should attempt: one line naming the count and
    the limit, raised before anything is built or written."""
    spec = load_spec("tiny", sets)
    monkeypatch.setattr(emit_mod, "build_component", lambda *a, **k: pytest.fail("elaborated"))
    with pytest.raises(EmitError, match="too large to generate") as ei:
        emit_design(spec, design=design, out_root=tmp_path / "out")
    msg = str(ei.value)
    assert term in msg and "exceeds the limit" in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()


def test_every_preset_design_is_within_the_limits():
    """Every built-in preset still generates every design: no estimate reaches a limit. The
    largest counts are those the limits' documentation (emit._LIMIT_WHY) quotes."""
    largest: dict[str, int] = {}
    for preset in list_presets():
        spec = load_spec(preset)
        for design in DESIGNS:
            for term, (count, _) in check_cost(spec, design).items():
                assert 0 <= count <= COST_LIMITS[term], (preset, design, term)
                largest[term] = max(largest.get(term, 0), count)
    assert largest == {"multipliers": 2048, "delay_registers": 2976, "delay_register_bits": 110112,
                       "memory_words": 58514, "memory_bits": 50331520, "sore_cells": 512}
    for term in ("multipliers", "delay_registers", "delay_register_bits", "memory_words", "sore_cells"):
        assert f"the {largest[term]} of the largest" in emit_mod._LIMIT_WHY[term]
    assert round(largest["memory_bits"] / 2**20) == 48 and "48 Mibit" in emit_mod._LIMIT_WHY["memory_bits"]


def test_estimate_counts_what_the_design_builds():
    """The memory estimate of the engine is the built engine's own depths x word widths, and
    explicit depths are counted; unknown or bad parameters are refused."""
    spec = load_spec("tiny")
    for design in ("engine", "os_engine"):
        comp = emit_mod.build_component(spec, design, act_depth=100)
        comp._MustUse__silence = True          # built to read its parameters, never elaborated
        p = comp.params
        cost = estimate_cost(spec, design, act_depth=100)
        assert cost["memory_words"][0] == p["act_depth"] + p["wgt_depth"] + p["out_depth"]
        assert cost["memory_bits"][0] == sum(p[f"{k}_depth"] * p["word_widths"][k] for k in ("act", "wgt", "out"))
    assert estimate_cost(spec, "array")["multipliers"][0] == 4 * 4 * 2
    assert estimate_cost(spec, "array")["delay_registers"][0] == 2 * 6 + 6
    assert estimate_cost(spec, "array")["delay_register_bits"][0] == 6 * (4 * 8 + 1) + 6 * spec.acc_width
    with pytest.raises(EmitError, match="has no parameter 'depth'"):
        estimate_cost(spec, "engine", depth=3)
    with pytest.raises(EmitError, match="act_depth = 0 is not allowed"):
        estimate_cost(spec, "engine", act_depth=0)
    with warnings.catch_warnings():      # the refused unit is never elaborated: Amaranth warns on collection
        warnings.simplefilter("ignore")
        with pytest.raises(EmitError, match="table_entries must be a power of two"):
            emit_design(spec, design="hashmerge", out_root="/nonexistent", name="h", table_entries=12)
        gc.collect()


def test_unwritable_output_folder_is_one_line(tmp_path):
    """An output folder that is a regular file, or lies under one, is refused with one line."""
    (tmp_path / "f").write_text("x")
    for out, what in ((tmp_path / "f", "is not a folder"), (tmp_path / "f" / "sub", "Not a directory")):
        with pytest.raises(EmitError, match=what) as ei:
            emit_design(A, design="pe", out_root=out, name="p")
        assert "\n" not in str(ei.value)
    assert os.listdir(tmp_path) == ["f"]


# ----------------------------------------------------------------------------- leftovers, lock
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_leftovers_of_killed_runs_are_cleaned(tmp_path):
    """Hidden entries of dead runs are removed by the next run (a stranded old folder beside a
    present design too); those of a live process stay."""
    d = emit_design(A, design="pe", out_root=tmp_path, name="x")
    dead = _dead_pid()
    for kind in ("tmp", "synth", "old"):
        (tmp_path / f".x.{kind}.{dead}.ab12").mkdir()
        (tmp_path / f".x.{kind}.{dead}.ab12" / "f.v").write_text("half")
    (tmp_path / ".x.old").mkdir()                        # what older versions stranded
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f".x.tmp.{live.pid}.cd34").mkdir()
        (tmp_path / f".y.tmp.{dead}.ab12").mkdir()       # another design's: not ours to clean
        emit_design(A, design="pe", out_root=tmp_path, name="x")
        assert _hidden(tmp_path) == [f".x.tmp.{live.pid}.cd34", f".y.tmp.{dead}.ab12"]
    finally:
        live.kill()
        live.wait()
    assert sorted(os.listdir(d)) == PE_FILES


def test_stranded_old_design_is_put_back(tmp_path):
    """The fallback swap killed between its two renames leaves no design at out/x and the
    old one at .x.old.<pid>.*: the next run puts it back (its synthesis results with it)."""
    d = emit_design(A, design="pe", out_root=tmp_path, name="x")
    _fake_synth(d)
    kept = _snap(d)
    os.rename(d, tmp_path / f".x.old.{_dead_pid()}.ab12")
    emit_design(A, design="pe", out_root=tmp_path, name="x")
    assert _snap(d) == kept
    assert _hidden(tmp_path) == []


def test_a_held_lock_is_waited_for_then_refused(tmp_path):
    """While another run holds the folder's lock, a run waits (here 0.3 s) and then refuses with
    one line naming the folder and the holder; nothing changes."""
    d = emit_design(A, design="pe", out_root=tmp_path, name="x")
    before = _snap(d)
    with outdir.lock_folder(d, timeout_s=1, error=EmitError):
        t0 = time.monotonic()
        with pytest.raises(EmitError, match=rf"{d} is being written by another sparseforge run \(pid {os.getpid()}"):
            emit_design(A, design="pe", out_root=tmp_path, name="x", lock_timeout_s=0.3)
        assert time.monotonic() - t0 >= 0.3
    assert _snap(d) == before
    assert _hidden(tmp_path) == []          # the lock file goes with its last holder


# ----------------------------------------------------------------------------- interrupted and concurrent runs
DRIVER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from sparseforge.hwgen import outdir
    from sparseforge.hwgen.emit import emit_design
    from sparseforge.spec import load_spec
    out, stage, wait_s, fallback, sets = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1", sys.argv[5:]
    def hook(name):
        if name == stage:
            Path(out, "..", f"reached-{stage}-{__import__('os').getpid()}").write_text(name)
            time.sleep(wait_s)
    outdir._stage = hook
    if fallback:
        outdir._exchange = lambda a, b: False
    emit_design(load_spec("tiny", sets), design="pe", out_root=out, name="x", replace=True)
""")


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C as a terminal delivers it. A test runner started in the
    background of a non-interactive shell inherits SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler, so the SIGINT cases would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(out: Path, stage: str, wait_s: float, fallback: bool = False, sets=("weight_width=4",)):
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(out), stage, str(wait_s), "1" if fallback else "0",
                             *sets], stderr=subprocess.PIPE, preexec_fn=_default_sigint)


def _wait_reached(proc: subprocess.Popen, out: Path, stage: str) -> None:
    marker = out.parent / f"reached-{stage}-{proc.pid}"
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, f"stage {stage} not reached"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    """Snapshots of folder x holding design A (with synthesis results) and design B."""
    root = tmp_path_factory.mktemp("ref")
    a = emit_design(A, design="pe", out_root=root / "a", name="x")
    _fake_synth(a)
    b = emit_design(B, design="pe", out_root=root / "b", name="x")
    return root / "a" / "x", _snap(a), _snap(b)


@pytest.mark.parametrize("stage, sig, fallback, expect", [
    ("locked", signal.SIGKILL, False, "A"),
    ("built", signal.SIGKILL, False, "A"),
    ("swapped", signal.SIGKILL, False, "B"),
    ("deleting", signal.SIGKILL, False, "B"),
    ("built", signal.SIGINT, False, "A"),
    ("swapped", signal.SIGINT, False, "B"),       # Ctrl-C is held back during the swap
    ("moved-aside", signal.SIGINT, True, "B"),
    ("moved-aside", signal.SIGKILL, True, None),   # fallback: put back by the next run
], ids=lambda v: v.name if isinstance(v, signal.Signals) else ("fallback" if v is True else None))
def test_interrupted_generate_leaves_a_complete_design(tmp_path, designs, stage, sig, fallback, expect):
    """generate (design B replacing A) killed at each point of its run: the folder holds the
    complete old or the complete new design, never a mix, and nothing is stranded once the next
    run has cleaned up. With Ctrl-C, which is held back during the swap, not even that is needed."""
    a_dir, snap_a, snap_b = designs
    out = tmp_path / "out"
    out.mkdir()
    shutil.copytree(a_dir, out / "x")
    held = sig == signal.SIGINT and stage in ("swapped", "moved-aside")
    proc = _start(out, stage, 1.0 if held else 60, fallback)
    _wait_reached(proc, out, stage)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    if expect is None:    # fallback killed between its renames: the old design waits beside
        assert not (out / "x").exists()
        stranded = [n for n in _hidden(out) if n.startswith(".x.old.")]
        assert len(stranded) == 1 and _snap(out / stranded[0]) == snap_a
        outdir.clean_stale(out / "x")
        expect = "A"
    else:
        assert not [n for n in _hidden(out) if n.startswith(".x.old")]
    assert _snap(out / "x") == {"A": snap_a, "B": snap_b}[expect]
    if sig == signal.SIGINT:
        assert _hidden(out) == []
    emit_design(B if expect == "B" else A, design="pe", out_root=out, name="x")   # the next run
    assert _snap(out / "x") == {"A": snap_a, "B": snap_b}[expect]
    assert _hidden(out) == []


def test_concurrent_generates_take_turns(tmp_path, designs):
    """Two generate runs of the same design at once: the second waits for the first's lock
    (held here for a second), both succeed, and the folder is complete with nothing left over."""
    _, _, snap_b = designs
    out = tmp_path / "out"
    first = _start(out, "locked", 1.0)
    _wait_reached(first, out, "locked")
    second = _start(out, "never", 0)
    for p in (first, second):
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    assert _snap(out / "x") == snap_b
    assert _hidden(out) == []
