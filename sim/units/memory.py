"""DRAM and the on-chip buffers around the GEMM engine: when runs may start.

Runs' DRAM transfers overlap compute through the on-chip buffers. DRAM is one server of
``dram_bandwidth_gbps`` with ``dram_latency_ns`` per transfer, serving requests in program
order: the fetch of run i+1, then the write-back of run i. With double buffering, the fetch
for run i+1 may start once run i-1 has finished computing (its buffer half is free) and run
i+1 may start once its data is in and the write-back of run i-1 has freed its output half;
with single buffers nothing overlaps. The array *stalls* whenever it waits for memory.

This is a model of the board's memory system, not of generated RTL (the engines' host
interface is loaded by the host); docs/timing.md states what it assumes. The mapper uses it
to cost a layer alone (:func:`memory_timeline`), the simulator to chain layers
(:class:`DramTimeline`); ``tests/test_sim.py`` checks its overlap rules.
"""

from __future__ import annotations

import math

import numpy as np

from sparseforge.spec import HardwareSpec

__all__ = ["DramTimeline", "memory_timeline"]


class DramTimeline:
    """The buffering and DRAM model of the module docstring, one run at a time.

    ``add_run`` schedules a run with its compute cycles, the bytes it must fetch before it
    starts and the bytes it writes back after it ends (optionally not before cycle
    ``ready``); DRAM serves, in order, the fetch of each run and then the write-back of the
    run before it. ``finish`` schedules the last write-back and returns the end cycle. Runs
    of consecutive GEMMs added to one timeline overlap across the GEMM boundary.
    """

    def __init__(self, spec: HardwareSpec, *, start: int = 0):
        self._bpc = spec.dram_bytes_per_cycle
        self._lat = spec.dram_latency_cycles
        self._double = spec.double_buffer
        self.dram_free = start
        self.c_end: list[int] = []
        self.wb_end: list[int] = []
        self._origin = start
        self._pending_wb: int | None = None     # bytes of the last run's write-back

    def _xfer(self, nbytes: int) -> int:
        return self._lat + math.ceil(nbytes / self._bpc) if nbytes > 0 else 0

    def _end(self, i: int) -> int:
        return self.c_end[i] if i >= 0 else self._origin

    def _flush_wb(self) -> None:
        if self._pending_wb is None:
            return
        i = len(self.c_end) - 1
        nbytes = self._pending_wb
        s = max(self.dram_free, self.c_end[i])
        self.wb_end.append(s + self._xfer(nbytes))
        if nbytes:
            self.dram_free = max(self.dram_free, self.wb_end[i])
        self._pending_wb = None

    def add_run(self, compute: int, fetch: int, writeback: int, *, ready: int = 0) -> tuple[int, int]:
        """Schedule one run; return its (start, end) compute cycles."""
        i = len(self.c_end)
        # fetch of run i: its buffer half is free once run i-2 (double) / i-1 (single) ended
        slot_free = self._end(i - 2) if self._double else self._end(i - 1)
        if fetch:
            f_start = max(self.dram_free, slot_free)
            f_end = f_start + self._xfer(fetch)
            self.dram_free = f_end
        else:
            f_end = self._origin
        # then the write-back of run i-1
        self._flush_wb()
        out_free = ((self.wb_end[i - 2] if i >= 2 else self._origin) if self._double
                    else (self.wb_end[i - 1] if i >= 1 else self._origin))
        start = max(self._end(i - 1), f_end, out_free, ready)
        self.c_end.append(start + int(compute))
        self._pending_wb = int(writeback)
        return start, self.c_end[i]

    def finish(self) -> int:
        """Schedule the pending write-back; the cycle at which everything is done."""
        self._flush_wb()
        ends = [self._origin] + self.c_end[-1:] + self.wb_end[-1:]
        return max(ends)


def memory_timeline(spec: HardwareSpec, compute: np.ndarray, fetch: np.ndarray, writeback: np.ndarray) -> int:
    """End cycle of runs (their compute cycles, fetched and written-back bytes) that start
    with empty buffers at cycle 0."""
    tl = DramTimeline(spec)
    for c, f, w in zip(compute, fetch, writeback):
        tl.add_run(int(c), int(f), int(w))
    return tl.finish()
