"""Progress on long work (:mod:`sparseforge.progress`, the CLI's tqdm reporter) and the disk
cache (:mod:`sparseforge.cache`) of generated Verilog, synthesis runs and MoE routing."""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from sparseforge import api
from sparseforge import cache as diskcache
from sparseforge.cli.kit import Reporter, reporter
from sparseforge.hwgen import emit, synth
from sparseforge.progress import LineTask, NullTask, progress_task

from .test_synth import FakeTools, _design


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private, empty cache folder for the test."""
    d = tmp_path / "cache"
    monkeypatch.setenv("SPARSEFORGE_CACHE_DIR", str(d))
    return d


# ------------------------------------------------------------------------------ progress
class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_line_task_reports_share_and_time_left_at_most_every_few_seconds():
    lines: list[str] = []
    clock = Clock()
    t = LineTask(lines.append, "routing", 100, "tokens", every=5.0, clock=clock)
    assert lines == ["routing (0/100 tokens)"]
    clock.t = 1.0
    t.advance(10)                       # within 5 s of the start: no line
    assert len(lines) == 1
    clock.t = 6.0
    t.advance(10, "task seg")           # 20 % in 6 s: 24 s left
    assert lines[-1] == "routing: task seg (20/100 tokens, 20%, about 24 s left)"
    clock.t = 7.0
    t.advance(80)                       # the end is always reported, without a time left
    assert lines[-1] == "routing (100/100 tokens, 100%)"
    assert len(lines) == 3


def test_progress_task_delegates_and_stays_quiet_for_none():
    assert isinstance(progress_task(None, "x", total=3), NullTask)
    lines: list[str] = []
    assert isinstance(progress_task(lines.append, "x", total=3), LineTask) and lines == ["x (0/3)"]

    class Own:
        def __call__(self, msg):
            raise AssertionError("a reporter with task() is not sent lines for a task")

        def task(self, label, *, total=None, unit=""):
            return ("own", label, total, unit)

    assert progress_task(Own(), "gen", total=2, unit="steps") == ("own", "gen", 2, "steps")


def test_reporter_draws_a_bar_only_when_asked(capsys):
    quiet = Reporter(bars=False)
    assert isinstance(quiet.task("x", total=4), NullTask)
    loud = Reporter(bars=True)
    with loud.task("simulating", total=4, unit="GEMMs") as bar:
        bar.advance(2, "FF layer0")
        loud("a message while the bar is open")
        bar.advance(2)
    err = capsys.readouterr().err
    assert "[sparseforge] simulating" in err and "GEMMs" in err
    assert "[sparseforge] a message while the bar is open" in err
    assert loud._open == 0


def test_reporter_is_quiet_with_json_or_without_a_terminal(monkeypatch):
    class Args:
        json = True

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert reporter(Args()).bars is False
    assert reporter(None).bars is True
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert reporter(None).bars is False


def test_cli_in_a_pipe_prints_no_bar(tmp_path):
    """A long command run in a pipe (CI, a log) prints its [sparseforge] lines and no bar."""
    a = tmp_path / "a.mtx"
    import scipy.io
    import scipy.sparse as sp

    scipy.io.mmwrite(str(a), sp.random(60, 60, density=0.05, random_state=1, format="csr"))
    r = subprocess.run([sys.executable, "-c", "import sys; from sparseforge.cli import main; sys.exit(main())",
                        "spgemm", "--a", str(a)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "it/s" not in r.stderr and "steps" not in r.stderr
    assert all(line.startswith("[sparseforge] ") for line in r.stderr.splitlines()), r.stderr


# ------------------------------------------------------------------------------ the cache
def test_cache_round_trip_and_keys(cache_dir):
    k = diskcache.make_key("x", {"a": 1, "b": [1, 2]})
    assert k == diskcache.make_key("x", {"b": [1, 2], "a": 1})          # order of keys does not matter
    assert k != diskcache.make_key("x", {"a": 2, "b": [1, 2]}) != diskcache.make_key("y", {"a": 1, "b": [1, 2]})
    assert diskcache.lookup("x", k) is None
    e = diskcache.store("x", k, {"data.bin": b"\x00\x01"}, {"seconds": 2.5})
    got = diskcache.lookup("x", k, ("data.bin",))
    assert got is not None and got.read("data.bin") == b"\x00\x01" and got.seconds == 2.5 and got.path == e.path
    assert diskcache.lookup("x", k, ("other.bin",)) is None              # incomplete for this reader
    line = diskcache.saved_line("thing", got, 0.5)
    assert "saved 2.0 s" in line and "--no-cache" in line
    # a damaged entry is a miss; storing again replaces it
    (e.path / "meta.json").write_text("{not json")
    assert diskcache.lookup("x", k) is None
    diskcache.store("x", k, {"data.bin": b"new"}, {"seconds": 1})
    assert diskcache.lookup("x", k, ("data.bin",)).read("data.bin") == b"new"
    with pytest.raises(ValueError):
        diskcache.store("x", k, {"../evil": b""}, {})
    assert not any(p.name.startswith(".") for p in (cache_dir / "x").iterdir())   # no temporary left


def test_cache_writers_racing_for_one_entry_both_succeed(cache_dir):
    k = diskcache.make_key("race", {"n": 1})
    out = []
    ts = [threading.Thread(target=lambda: out.append(diskcache.store("race", k, {"f": b"same"}, {"seconds": 1})))
          for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(out) == 8 and all(e is not None for e in out)
    assert diskcache.lookup("race", k, ("f",)).read("f") == b"same"
    assert [p.name for p in (cache_dir / "race").iterdir()] == [k]


def test_cache_that_cannot_be_written_never_fails_the_work(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SPARSEFORGE_CACHE_DIR", str(blocker))
    assert diskcache.store("x", "k", {"f": b""}, {}) is None


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEFORGE_CACHE_DIR", str(tmp_path / "c"))
    assert diskcache.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SPARSEFORGE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert diskcache.cache_dir() == tmp_path / "xdg" / "sparseforge"


# ------------------------------------------------------------------------------ generate
class CountConvert:
    """Counts Amaranth conversions (the expensive step the cache saves)."""

    def __init__(self, monkeypatch):
        from amaranth.back import verilog

        self.calls = 0
        real = verilog.convert

        def convert(*a, **kw):
            self.calls += 1
            return real(*a, **kw)

        monkeypatch.setattr(verilog, "convert", convert)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_reads_the_verilog_from_the_cache(tmp_path, cache_dir, monkeypatch):
    conv = CountConvert(monkeypatch)
    spec = api.load_spec("default")
    lines: list[str] = []
    a = api.generate(spec, "pe", out=tmp_path / "a", progress=lines.append)
    assert conv.calls == 1 and not any("from the cache" in s for s in lines)
    lines.clear()
    b = api.generate(spec, "pe", out=tmp_path / "b", progress=lines.append)
    assert conv.calls == 1, "the second generation converted again"
    assert any("pe Verilog: from the cache" in s and "saved" in s for s in lines), lines
    assert _tree(a.path) == _tree(b.path)                 # byte for byte, manifest included
    # --no-cache converts, and neither reads nor writes the cache
    before = _tree(cache_dir)
    api.generate(spec, "pe", out=tmp_path / "c", cache=False)
    assert conv.calls == 2 and _tree(cache_dir) == before
    # another spec (digest) is another entry
    api.generate(spec.replace(act_width=spec.act_width // 2), "pe", out=tmp_path / "d")
    assert conv.calls == 3


def test_damaged_verilog_entry_is_regenerated(tmp_path, cache_dir, monkeypatch):
    conv = CountConvert(monkeypatch)
    spec = api.load_spec("default")
    a = api.generate(spec, "pe", out=tmp_path / "a")
    (entry,) = (cache_dir / "verilog").iterdir()
    (entry / "sf_pe.v.gz").write_bytes(gzip.compress(b"x")[:5])      # truncated
    b = api.generate(spec, "pe", out=tmp_path / "b")
    assert conv.calls == 2 and _tree(a.path) == _tree(b.path)


def test_generator_fingerprint_follows_the_generator_source(monkeypatch, tmp_path):
    """Editing a generator module changes the fingerprint (and so every cache key)."""
    import importlib.util

    before = emit.generator_fingerprint()
    src = Path(importlib.util.find_spec("sparseforge.hwgen.pe").origin)
    copy = tmp_path / "hwgen"
    import shutil

    shutil.copytree(src.parent, copy)
    (copy / "pe.py").write_text((copy / "pe.py").read_text() + "\n# edited\n")

    class Spec:
        def __init__(self, origin):
            self.origin = str(origin)

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: Spec(copy / "__init__.py") if name == "sparseforge.hwgen" else real(name, *a))
    emit.generator_fingerprint.cache_clear()
    try:
        assert emit.generator_fingerprint() != before
    finally:
        monkeypatch.undo()
        emit.generator_fingerprint.cache_clear()
    assert emit.generator_fingerprint() == before


# ------------------------------------------------------------------------------ synth
def test_synth_restores_each_tools_results_from_the_cache(tmp_path, cache_dir, monkeypatch):
    tools = FakeTools(monkeypatch)
    d = _design(tmp_path / "d")
    first = synth.synth_design(d, ecp5_device="25k", cache=True)
    assert tools.calls == 2 and "cached" not in first["xilinx_xcup"]
    reports = {p: (d / first[p]["report"]).read_bytes() for p in ("xilinx_xcup", "ecp5")}
    lines: list[str] = []
    again = synth.synth_design(d, ecp5_device="25k", cache=True, progress=lines.append)
    assert tools.calls == 2, "a cached tool ran again"
    for tool in ("xilinx_xcup", "ecp5"):
        assert again[tool] == {**first[tool], "cached": True}
        assert (d / again[tool]["report"]).read_bytes() == reports[tool]
    assert sum("from the cache (" in s and "saved" in s for s in lines) == 2, lines
    # other settings (target clock) rerun only the tool they concern
    other = synth.synth_design(d, ecp5_device="25k", freq_mhz=50.0, cache=True)
    assert tools.calls == 3 and other["xilinx_xcup"].get("cached") and not other["ecp5"].get("cached")
    # other Verilog is a miss for both
    (d / "mac.v").write_text((d / "mac.v").read_text() + "\n// changed\n")
    synth.synth_design(d, ecp5_device="25k", cache=True)
    assert tools.calls == 5
    # without cache the tools always run and nothing is stored
    before = _tree(cache_dir)
    synth.synth_design(d, ecp5_device="25k", cache=False)
    assert tools.calls == 7 and _tree(cache_dir) == before


def test_a_failed_tool_is_not_cached(tmp_path, cache_dir, monkeypatch):
    tools = FakeTools(monkeypatch)
    d = _design(tmp_path / "d")
    tools.fail = synth.SynthError
    with pytest.raises(synth.SynthError):
        synth.synth_design(d, run_ecp5=False, cache=True)
    tools.fail = None
    synth.synth_design(d, run_ecp5=False, cache=True)
    assert tools.calls == 2


# ------------------------------------------------------------------------------ MoE routing
@pytest.mark.minilm
def test_real_routing_comes_from_the_cache_the_second_time(cache_dir, monkeypatch):
    from sparseforge.models import moe

    calls = []
    real = moe.minilm_routing
    monkeypatch.setattr(moe, "minilm_routing", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    kw = dict(tasks="seg,depth", tokens=16, experts=8, top_k=2, schedule="reorder")
    lines: list[str] = []
    a = api.simulate_moe("m3vit-zcu104", "m3vit-tiny", progress=lines.append, **kw)
    assert len(calls) == 1
    assert any(s.startswith("real routing (0/") for s in lines), lines          # the task's first line
    lines.clear()
    b = api.simulate_moe("m3vit-zcu104", "m3vit-tiny", progress=lines.append, **kw)
    assert len(calls) == 1, "the routing was computed again"
    assert any("real routing: from the cache" in s and "saved" in s for s in lines), lines
    assert np.array_equal(a.routing.experts, b.routing.experts) and np.array_equal(a.routing.gates, b.routing.gates)
    assert a.routing.tasks == b.routing.tasks and a.routing.meta == b.routing.meta
    assert a.to_dict() == b.to_dict()
    # another task sequence is another entry; cache=False recomputes
    api.simulate_moe("m3vit-zcu104", "m3vit-tiny", **{**kw, "tasks": "depth,seg"})
    api.simulate_moe("m3vit-zcu104", "m3vit-tiny", cache=False, **kw)
    assert len(calls) == 3


def test_no_cache_is_refused_outside_moe(capsys):
    from sparseforge.cli import main

    assert main(["simulate", "--net", "resnet50", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sparseforge: error: --no-cache is for the MoE networks") and "resnet50" in err
    assert len(err.strip().splitlines()) == 1

