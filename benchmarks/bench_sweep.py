"""Points per second of a 1,000-point ResNet-50 inference sweep (issue 9's goal: >= 50 on 2 cores).

    .venv/bin/python benchmarks/bench_sweep.py              # 1000 points
    .venv/bin/python benchmarks/bench_sweep.py --rows 5     # 500 points (rows x 10 x 10)

One run measures, on the same grid (rows x cols x clock_mhz on the default preset, ResNet-50
batch 1 at the array's 2:4, part XCZU7EV):

1. baseline: what a point cost before the sweep engine, as the CLI simulates one spec --
   ``load_spec`` with ``--set`` overrides, ``get_network``, ``simulate_network`` -- on the
   first 100 points;
2. serial: the sweep's point evaluation (:func:`sparseforge.sweep.evaluate.evaluate_chunk`)
   in one process over every point, no store;
3. local pool: ``run_sweep`` with ``--workers 2`` (two processes, store, everything);
4. Dask: ``run_sweep --scheduler`` against a real ``dask scheduler`` and two
   ``dask worker`` processes (1 thread each) started here on 127.0.0.1.

Wall-clock times; the machine's other load counts too, so run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = """\
[sweep]
name = "bench_r50"
base = "default"
[axes]
rows = {{start = 8, stop = {stop}, step = 8}}
cols = {{start = 8, stop = 80, step = 8}}
clock_mhz = {{start = 100, stop = 325, step = 25}}
[[workloads]]
kind = "inference"
net = "resnet50"
batch = 1
[target]
part = "xczu7ev"
objectives = ["latency", "dsp"]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_cluster(workers: int):
    port = _free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env)]
    for _ in range(workers):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}",
                                       "--nthreads", "1", "--no-dashboard"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, env=env))
    from distributed import Client

    with Client(f"tcp://127.0.0.1:{port}", timeout="30s") as c:
        c.wait_for_workers(workers, timeout=60)
    return f"tcp://127.0.0.1:{port}", procs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10, help="rows values (8, 16, ...): points = rows x 100")
    ap.add_argument("--workers", type=int, default=2, help="local processes and Dask workers (default 2)")
    ap.add_argument("--no-dask", action="store_true")
    args = ap.parse_args()

    from sparseforge.models.zoo import get_network
    from sparseforge.sim.simulate import simulate_network

    from sparseforge.spec import load_spec
    from sparseforge.sweep import load_sweep, run_sweep
    from sparseforge.sweep.evaluate import evaluate_chunk, make_task
    from sparseforge.sweep.space import grid_points

    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    path = tmp / "bench.toml"
    path.write_text(GRID.format(stop=8 * args.rows))
    sweep = load_sweep(path)
    points = list(grid_points(sweep))
    n = len(points)
    print(f"grid: {n} points (rows {args.rows} x cols 10 x clock 10), ResNet-50 batch 1, 2:4, part {sweep.part}; "
          f"{os.cpu_count()} CPUs")
    res: dict[str, float] = {}

    cpu: dict[str, float] = {}
    base = points[:100]
    t, c = time.perf_counter(), time.process_time()
    for p in base:
        spec = load_spec("default", [f"{k}={v}" for k, v in p.items()])
        simulate_network(spec, get_network("resnet50", batch=1), (spec.n, spec.m))
    key = "baseline (per-point set-up, CLI-style), 100 points"
    res[key] = len(base) / (time.perf_counter() - t)
    cpu[key] = (time.process_time() - c) / len(base)

    t, c = time.perf_counter(), time.process_time()
    tasks = [make_task(sweep, i, p) for i, p in enumerate(points)]
    rows = evaluate_chunk(tasks)
    key = "serial loop (sweep evaluation, one process)"
    res[key] = n / (time.perf_counter() - t)
    cpu[key] = (time.process_time() - c) / n
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows if r["status"] != "ok"][:3]

    t, c = time.perf_counter(), time.process_time()
    s = run_sweep(sweep, out=tmp / "local", workers=args.workers, progress=False)
    key = f"local pool ({args.workers} processes, with store)"
    res[key] = n / (time.perf_counter() - t)
    cpu[key] = (time.process_time() - c) / n            # the driver's own share
    assert s.computed == n, s.text()

    if not args.no_dask:
        address, procs = _dask_cluster(args.workers)
        try:
            t = time.perf_counter()
            s = run_sweep(sweep, out=tmp / "dask", scheduler=address, progress=False)
            res[f"Dask ({args.workers} local workers x 1 thread, with store)"] = n / (time.perf_counter() - t)
            assert s.computed == n, s.text()
        finally:
            for p in procs[::-1]:
                p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()

    ref = res["baseline (per-point set-up, CLI-style), 100 points"]
    width = max(len(k) for k in res)
    for k, v in res.items():
        what = "driver CPU" if k.startswith("local") else "CPU"
        extra = f"; {cpu[k] * 1e3:.1f} ms {what} per point" if k in cpu else ""
        print(f"{k:<{width}}  {v:7.1f} points/s  ({v / ref:4.1f}x baseline{extra})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(load average at the end: {load:.1f} on {os.cpu_count()} CPUs; CPU ms per point do not depend on "
          "other load, points/s do)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
