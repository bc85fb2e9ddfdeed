"""Running sweeps for real (sparseforge.sweep.run): a driver SIGKILLed at a random moment
resumes to every point exactly once with the results of an uninterrupted run; a real Dask
scheduler with two worker processes on 127.0.0.1 gives the same store as the local run, also
when one worker is SIGKILLed mid-sweep."""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sparseforge.sweep import load_results, run_sweep

SWEEP = """\
[sweep]
name = "{name}"
base = "default"
[axes]
rows = [8, 16, 32, 64]
cols = [8, 16, 32, 64]
clock_mhz = [200, 400]
[[workloads]]
kind = "inference"
net = "resnet50"
[target]
part = "xczu7ev"
objectives = ["latency", "dsp"]
"""
POINTS = 32
TIMEOUT = 120


def _write(tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(SWEEP.format(name=name))
    return path


def _rows(run_dir: Path):
    """The store as a DataFrame, without the wall-time column, indexed by point."""
    return load_results(run_dir).drop(columns=["seconds"])


def _stored(run_dir: Path) -> int:
    path = run_dir / "sweep.sqlite"
    if not path.is_file():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:
        return 0


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sparseforge.cli.sweep", *args, "--json", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, in this process (serial)."""
    tmp = tmp_path_factory.mktemp("ref")
    s = run_sweep(_write(tmp, "r"), out=tmp, workers=1, progress=False)
    assert (s.points, s.computed, s.failed) == (POINTS, POINTS, 0)
    return _rows(tmp / "r")


def _same_as_reference(run_dir: Path, reference) -> None:
    df = _rows(run_dir)
    assert list(df["point_id"]) == list(range(POINTS))               # every point, exactly once
    assert df["digest"].is_unique
    assert df.equals(reference)


def test_resume_after_sigkill_of_the_driver(tmp_path, reference):
    """SIGKILL the driver (two local workers) at a random moment, then --resume: every point
    once, equal to the uninterrupted run; the orphaned workers exit by themselves."""
    path = _write(tmp_path, "r")
    target = random.randrange(1, POINTS - 8)           # kill once this many points are stored
    proc = _cli(str(path), "--out", str(tmp_path), "--workers", "2")
    deadline = time.monotonic() + TIMEOUT
    while _stored(tmp_path / "r") < max(target, 1) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT)
    at_kill = _stored(tmp_path / "r")
    print(f"killed at {target} points wanted, {at_kill} of {POINTS} stored")
    assert at_kill < POINTS, "the driver finished before it was killed"
    end = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < end:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "pool workers outlived the killed driver"
    s = run_sweep(path, out=tmp_path, resume=True, workers=2, progress=False)
    assert s.skipped == at_kill and s.computed == POINTS - at_kill
    _same_as_reference(tmp_path / "r", reference)


def test_local_worker_killed_mid_sweep(tmp_path, reference):
    """SIGKILL one local pool worker once rows are stored: the driver replaces the pool,
    submits the lost chunks again and ends with every point once."""
    path = _write(tmp_path, "r")
    proc = _cli(str(path), "--out", str(tmp_path), "--workers", "2")
    deadline = time.monotonic() + TIMEOUT
    while _stored(tmp_path / "r") == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    victims = _children(proc.pid)
    assert victims, "no pool workers"
    os.kill(victims[0], signal.SIGKILL)
    at_kill = _stored(tmp_path / "r")
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert at_kill < POINTS, "the sweep finished before the worker was killed"
    _same_as_reference(tmp_path / "r", reference)


# ------------------------------------------------------------------ Dask
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dask_cluster():
    """A real scheduler and two single-thread workers (no nanny: a killed worker stays dead)."""
    distributed = pytest.importorskip("distributed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], **quiet)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                           "--nthreads", "1", "--no-nanny", "--no-dashboard"], **quiet))
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs[1:]
    finally:
        for p in procs[::-1]:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def test_dask_gives_the_local_store_also_when_a_worker_dies(tmp_path, reference, dask_cluster):
    """Run on the cluster (same store as the local run); then run again in a new folder and
    SIGKILL one worker once the first rows are stored: the other finishes, nothing is lost
    or doubled."""
    address, workers = dask_cluster
    path = _write(tmp_path, "r")
    s = run_sweep(path, out=tmp_path / "a", scheduler=address, progress=False)
    assert (s.computed, s.failed) == (POINTS, 0)
    _same_as_reference(tmp_path / "a" / "r", reference)

    result: dict = {}

    def drive() -> None:
        try:
            result["summary"] = run_sweep(path, out=tmp_path / "b", scheduler=address, progress=False)
        except BaseException as exc:       # noqa: BLE001 -- reported by the main thread
            result["error"] = exc

    driver = threading.Thread(target=drive)
    driver.start()
    deadline = time.monotonic() + TIMEOUT
    while _stored(tmp_path / "b" / "r") == 0 and driver.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    at_kill = _stored(tmp_path / "b" / "r")
    workers[0].send_signal(signal.SIGKILL)
    driver.join(TIMEOUT)
    assert not driver.is_alive() and "error" not in result, result.get("error")
    assert 0 < at_kill < POINTS, f"the worker was not killed mid-sweep ({at_kill} points stored)"
    assert workers[0].wait(10) == -signal.SIGKILL
    _same_as_reference(tmp_path / "b" / "r", reference)


def test_unreachable_scheduler_one_line_nothing_written(tmp_path, capsys, monkeypatch):
    from sparseforge.cli.sweep import main
    from sparseforge.sweep import run as sweep_run

    monkeypatch.setattr(sweep_run, "CONNECT_TIMEOUT", 1.0)
    path = _write(tmp_path, "r")
    assert main([str(path), "--out", str(tmp_path / "runs"), "--scheduler", f"tcp://127.0.0.1:{_free_port()}"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "cannot connect to a Dask scheduler" in err[0], err
    assert not (tmp_path / "runs").exists()
