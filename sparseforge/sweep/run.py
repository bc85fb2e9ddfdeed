"""The sweep driver: points -> tasks -> an executor (serial, local process pool or Dask) ->
rows written to the store by the driver, with a progress bar and a summary.

The three executors run the same function (:func:`.evaluate.evaluate_chunk`) on chunks of
points and hand back rows as they complete; only the driver writes. ``--confirm K`` runs the
real tools on the K best points through the same executors (:mod:`.confirm`). A local worker that
dies takes its chunks with it: the pool is restarted and those chunks are submitted again
(a Dask cluster does the same by itself). A driver killed at any moment leaves the rows it
committed; ``--resume`` computes the rest.

Run folders (``OUT/<name>/``): a new folder is created; an existing one is continued only
with ``--resume`` and only if it holds the same sweep (the same canonical definition:
base spec digest, axes, workloads, part, objectives, search); anything else is refused with
one line, and nothing is written.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..fileio import write_atomic
from .accuracy import attach_quality
from .evaluate import PointTask, evaluate_chunk, failed_row, make_task
from .file import OBJECTIVES, Sweep, SweepError, load_sweep
from .space import Nsga2Search, grid_points, random_points
from .store import STORE_NAME, Store, read_meta

__all__ = ["DaskExecutor", "LocalExecutor", "SerialExecutor", "Summary", "prepare_run_dir", "run_sweep"]

_POOL_RESTARTS = 3
#: seconds to wait for a Dask scheduler to answer
CONNECT_TIMEOUT = 10.0


# ============================================================================ executors
def _watch_parent(parent: int) -> None:
    """In a pool worker: leave Ctrl-C to the driver (it cancels the pool), and exit when the
    driver is gone (a SIGKILLed driver leaves no orphans)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def loop() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=loop, daemon=True).start()


def _chunks(tasks: list[PointTask], size: int) -> list[list[PointTask]]:
    return [tasks[i:i + size] for i in range(0, len(tasks), size)]


def _chunk_size(n: int, workers: int) -> int:
    """About 8 chunks per worker (load balance), at most 64 points per chunk (progress)."""
    return max(1, min(64, math.ceil(n / (8 * max(1, workers)))))


class SerialExecutor:
    """Evaluate in the driver's process, one chunk at a time."""

    workers = 1
    label = "serial (in process)"

    def run(self, tasks: list, fn: Callable[[list], list[dict]] = evaluate_chunk,
            chunk: int | None = None) -> Iterator[list[dict]]:
        for c in _chunks(tasks, chunk or 8):
            yield fn(c)

    def close(self) -> None:
        pass


class LocalExecutor:
    """A local process pool (``concurrent.futures``) of ``workers`` processes."""

    def __init__(self, workers: int):
        self.workers = workers
        self.label = f"local pool, {workers} processes"
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, initializer=_watch_parent, initargs=(os.getpid(),))

    def run(self, tasks: list, fn: Callable[[list], list[dict]] = evaluate_chunk,
            chunk: int | None = None) -> Iterator[list[dict]]:
        pending = _chunks(tasks, chunk or _chunk_size(len(tasks), self.workers))
        restarts = 0
        while pending:
            if self._pool is None:
                self._pool = self._new_pool()
            futures = {self._pool.submit(fn, c): c for c in pending}
            pending = []
            broken = False
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for fut in done:
                    chunk = futures.pop(fut)
                    try:
                        rows = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        pending.append(chunk)
                        continue
                    yield rows
                if broken:
                    pending += list(futures.values())
                    futures = {}
            if broken:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                restarts += 1
                if restarts > _POOL_RESTARTS:
                    raise SweepError(f"local workers died {restarts} times; the store keeps every finished point: "
                                     "run again with --resume")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class DaskExecutor:
    """An existing Dask distributed cluster: ``client.map`` + ``as_completed``."""

    def __init__(self, address: str, *, timeout: float = 10.0):
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - dask is a dependency
            raise SweepError(f"--scheduler {address}: dask.distributed is not installed ({exc})") from None
        try:
            self.client = Client(address, timeout=f"{timeout}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"--scheduler {address!r}: cannot connect to a Dask scheduler "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'})") \
                from None
        self.workers = max(1, sum(self.client.nthreads().values()))
        self.label = f"Dask at {address}, {self.workers} worker threads"

    def run(self, tasks: list, fn: Callable[[list], list[dict]] = evaluate_chunk,
            chunk: int | None = None) -> Iterator[list[dict]]:
        from distributed import as_completed

        chunks = _chunks(tasks, chunk or _chunk_size(len(tasks), self.workers))
        futures = self.client.map(fn, chunks, pure=False)
        try:
            for fut in as_completed(futures, loop=self.client.loop):
                try:
                    yield fut.result()
                except Exception as exc:   # KilledWorker after repeated worker deaths, lost scheduler
                    raise SweepError(f"the Dask cluster lost work ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else ''}); the store keeps every "
                                     "finished point: run again with --resume") from None
        finally:
            self.client.cancel(futures)

    def close(self) -> None:
        self.client.close()


def make_executor(*, scheduler: str | None, workers: int | None):
    if scheduler:
        return DaskExecutor(scheduler, timeout=CONNECT_TIMEOUT)
    n = workers or os.cpu_count() or 1
    return SerialExecutor() if n == 1 else LocalExecutor(n)


# ============================================================================ run folder
def prepare_run_dir(sweep: Sweep, out: Path, *, resume: bool) -> tuple[Path, bool]:
    """Check the run folder against the rule in the module docstring. Returns the folder and
    whether it already holds this sweep. Writes nothing."""
    run_dir = Path(out) / sweep.name
    store = run_dir / STORE_NAME
    if run_dir.exists() and not run_dir.is_dir():
        raise SweepError(f"run folder {run_dir} is not allowed: it exists and is not a folder")
    if not store.is_file():
        if run_dir.is_dir() and any(run_dir.iterdir()):
            raise SweepError(f"run folder {run_dir} is not allowed: it exists and holds no {STORE_NAME} "
                             "(not a sweep run): choose another --out or [sweep] name")
        return run_dir, False
    digest = read_meta(store).get("definition_digest")
    if digest != sweep.definition_digest:
        raise SweepError(f"run folder {run_dir} holds a different sweep (its sweep.toml differs from {sweep.source}): "
                         "choose another --out or [sweep] name, or remove the folder")
    if not resume:
        raise SweepError(f"run folder {run_dir} already holds this sweep: add --resume to continue it, or remove "
                         "the folder to start again")
    return run_dir, True


def _open_store(sweep: Sweep, run_dir: Path) -> Store:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "sweep.toml", sweep.text, what="sweep.toml")
    store = Store(run_dir / STORE_NAME, axes=sweep.axis_names)
    import json

    store.set_meta({"name": sweep.name, "definition_digest": sweep.definition_digest,
                    "definition": json.dumps(sweep.canonical(), sort_keys=True, default=str),
                    "sweep_toml": sweep.text, "objectives": list(sweep.objectives), "part": sweep.part,
                    "axes": list(sweep.axis_names), "bool_axes": list(sweep.bool_axes),
                    "workload": sweep.workload_key, "version": __version__,
                    "base_spec": json.dumps(sweep.base_spec.record(), sort_keys=True),
                    "workloads": [w.to_dict() for w in sweep.workloads], "search": sweep.search.kind})
    return store


# ============================================================================ the driver
@dataclass
class Summary:
    name: str
    run_dir: str
    executor: str
    points: int = 0          # points the search declared (distinct hardware)
    computed: int = 0        # evaluated now, ok
    failed: int = 0          # evaluated now (or invalid spec), failed
    skipped: int = 0         # already in the store
    duplicates: int = 0      # declared points sharing another point's hardware
    seconds: float = 0.0
    best: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    confirm: Any = None      # a .confirm.ConfirmSummary when --confirm ran

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["confirm"] = self.confirm.to_dict() if self.confirm is not None else None
        return out

    def text(self) -> str:
        rate = (self.computed + self.failed) / self.seconds if self.seconds > 0 else 0.0
        lines = [f"sweep {self.name}: {self.points} points: {self.computed} computed, {self.failed} failed, "
                 f"{self.skipped} already in the store"
                 + (f", {self.duplicates} duplicates of other points" if self.duplicates else "")
                 + f"; {self.seconds:.1f} s ({rate:.1f} points/s, {self.executor})",
                 f"results: {Path(self.run_dir) / STORE_NAME}"]
        if self.note:
            lines.append(self.note)
        for obj, b in self.best.items():
            if b is None:
                lines.append(f"best {obj}: no point that ran and fits the part")
                continue
            axes = ", ".join(f"{k}={v}" for k, v in b["axes"].items())
            lines.append(f"best {obj}: {b['value']:.4g} ({OBJECTIVES[obj][0]}) at point {b['point_id']}: {axes}")
        if self.confirm is not None:
            lines.append(self.confirm.text())
        return "\n".join(lines)


class _Progress:
    def __init__(self, total: int, initial: int, show: bool, desc: str = "sweep"):
        self.bar = None
        if show:
            from tqdm import tqdm

            tqdm.monitor_interval = 0
            self.bar = tqdm(total=total, initial=initial, file=sys.stderr, unit="pt", dynamic_ncols=True,
                            desc=desc)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _best(sweep: Sweep, store: Store) -> dict[str, Any]:
    """Per objective, the best stored point that ran and fits the part (ties: lowest point_id)."""
    out: dict[str, Any] = {}
    bools = set(sweep.bool_axes)
    for obj in sweep.objectives:
        col, direction = OBJECTIVES[obj]
        row = store.best(col, "ASC" if direction == "min" else "DESC", sweep.workload_key, __version__)
        if row is None:
            out[obj] = None
            continue
        value, point_id, axes = row
        out[obj] = {"value": float(value), "point_id": int(point_id),
                    "axes": {a: (bool(v) if a in bools and v is not None else v) for a, v in axes.items()}}
    return out


def run_sweep(sweep: Sweep | str | Path, *, out: str | Path = "runs", resume: bool = False,
              scheduler: str | None = None, workers: int | None = None, progress: bool = True,
              confirm: int | None = None) -> Summary:
    """Run (or continue) a sweep; returns its :class:`Summary`. With ``confirm = K``, then
    run the real tools on the K best points (:mod:`.confirm`). Bad input raises
    :class:`SweepError` before anything is written."""
    t0 = time.perf_counter()
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SweepError(f"--workers {workers!r} is not allowed: must be an integer >= 1")
    if confirm is not None:
        from .confirm import check_k

        check_k(confirm)
    run_dir, _ = prepare_run_dir(sweep, Path(out), resume=resume)
    executor = make_executor(scheduler=scheduler, workers=workers)     # connects before writing anything
    summary = Summary(name=sweep.name, run_dir=str(run_dir), executor=executor.label)
    try:
        store = _open_store(sweep, run_dir)
    except BaseException:
        executor.close()
        raise
    show = progress and sys.stderr.isatty()
    try:
        if sweep.search.kind == "nsga2":
            _run_nsga2(sweep, store, executor, summary, show)
        else:
            points = list(grid_points(sweep)) if sweep.search.kind == "grid" else random_points(sweep)
            tasks = _distinct_tasks(sweep, enumerate(points), summary)
            present = store.present(sweep.workload_key, __version__)
            todo = attach_quality(sweep, [t for t in tasks if t.digest not in present], show=show)
            summary.points = len(tasks)
            summary.skipped = len(tasks) - len(todo)
            bar = _Progress(len(tasks), summary.skipped, show)
            try:
                _execute(todo, store, executor, summary, bar.update)
            finally:
                bar.close()
        summary.best = _best(sweep, store)
        summary.seconds = time.perf_counter() - t0               # the sweep's time, without --confirm
        if confirm:
            from .confirm import run_confirm

            summary.confirm = run_confirm(sweep, store, executor, confirm, show)
    finally:
        executor.close()
        store.close()
    return summary


def _distinct_tasks(sweep: Sweep, points: Iterable[tuple[int, dict]], summary: Summary) -> list[PointTask]:
    """Tasks of the points, the first of several points with the same hardware kept."""
    seen: set[str] = set()
    out = []
    for i, values in points:
        task = make_task(sweep, i, values)
        if task.digest in seen:
            summary.duplicates += 1
            continue
        seen.add(task.digest)
        out.append(task)
    return out


def _execute(todo: list[PointTask], store: Store, executor, summary: Summary,
             advance: Callable[[int], None]) -> list[dict]:
    """Evaluate ``todo``; write rows as they come. Invalid specs are failed rows at once."""
    invalid = [t for t in todo if t.spec is None]
    if invalid:
        store.write([failed_row(t, t.error or "invalid spec") for t in invalid])
        summary.failed += len(invalid)
        advance(len(invalid))
    valid = [t for t in todo if t.spec is not None]
    rows_all: list[dict] = [failed_row(t, t.error or "invalid spec") for t in invalid]
    if valid:
        for rows in executor.run(valid):
            store.write(rows)
            for r in rows:
                if r["status"] == "ok":
                    summary.computed += 1
                else:
                    summary.failed += 1
            rows_all += rows
            advance(len(rows))
    return rows_all


def _run_nsga2(sweep: Sweep, store: Store, executor, summary: Summary, show: bool) -> None:
    """Generations of NSGA-II until ``n_trials`` distinct points are evaluated (points the
    sampler proposes again are told their stored result and not counted)."""
    search = Nsga2Search(sweep)
    want = sweep.search.n
    grid = sweep.grid_size()
    known = store.rows(sweep.workload_key, __version__)      # digest -> row (resume: replayed, not recomputed)
    distinct: dict[str, int] = {}                              # digest -> point_id
    asks, cap = 0, 20 * want + 10 * search.population
    bar = _Progress(want, 0, show)
    try:
        while len(distinct) < want and asks < cap and len(distinct) < grid:
            generation = search.ask()
            asks += len(generation)
            tasks: list[PointTask] = []
            new_tasks: list[PointTask] = []
            for _, values in generation:
                task = make_task(sweep, len(distinct), values)
                if task.digest not in distinct and len(distinct) < want:
                    distinct[task.digest] = len(distinct)
                    if task.digest in known:
                        summary.skipped += 1
                        bar.update(1)
                    else:
                        new_tasks.append(task)
                elif task.digest not in distinct:
                    task = None                                # beyond n_trials: not evaluated
                tasks.append(task)
            for r in _execute(attach_quality(sweep, new_tasks, show=show), store, executor, summary, bar.update):
                known[r["digest"]] = r
            for (trial, _), task in zip(generation, tasks):
                search.tell(trial, known.get(task.digest) if task is not None else None)
    finally:
        bar.close()
    summary.points = len(distinct)
    if len(distinct) < want:
        summary.note = (f"nsga2 proposed only {len(distinct)} distinct points in {asks} trials "
                        f"(the axes span {grid} points)")
