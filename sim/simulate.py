"""Simulate a mapped network: cycles, stalls, utilisation, traffic and energy per layer.

Timing has two levels:

1. **Compute** -- each engine run (a token block x a weight block, see
   :mod:`dataflow.mapper`) takes exactly :func:`sim.engine.run_cycles` cycles: the tile
   sequencer's loader/streamer recurrence plus fill and drain, as the generated RTL
   behaves (checked against the RTL in ``tests/test_rtl_engine.py``); output-stationary
   mappings use :func:`sim.os_engine.os_run_cycles` instead (``tests/test_rtl_os.py``,
   docs/os_timing.md).
2. **Memory** -- runs' DRAM transfers overlap compute through the on-chip buffers. DRAM is
   one server of ``dram_bandwidth_gbps`` with ``dram_latency_ns`` per transfer, serving
   requests in program order: the fetch of run i+1, then the write-back of run i. With
   double buffering, the fetch for run i+1 may start once run i-1 has finished computing
   (its buffer half is free) and run i+1 may start once its data is in and the write-back
   of run i-1 has freed its output half; with single buffers nothing overlaps. The array
   *stalls* whenever it waits for memory.

Layers run one after another, each starting with empty buffers. Energy is event counts
times the spec's per-event energies: issued multiplier operations, on-chip buffer bytes
(reads by the engine, and the fills and drains of DRAM transfers), and DRAM bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sparseforge.dataflow.layout import word_widths
from sparseforge.dataflow.mapper import LayerMapping, map_network
from sparseforge.models.network import Network
from sparseforge.spec import HardwareSpec

from .engine import run_cycles
from .os_engine import os_run_cycles

__all__ = ["LayerResult", "NetworkResult", "DramTimeline", "run_compute_cycles", "simulate_layer", "simulate_network",
           "compare"]


@dataclass(frozen=True)
class LayerResult:
    name: str
    kind: str
    mode: str
    tokens: int
    k: int
    n_out: int
    count: int
    tiles: int
    runs: int
    loop_order: str
    cycles: int
    compute_cycles: int
    stall_cycles: int
    useful_macs: int
    issued_macs: int
    utilisation: float
    dram_read_bytes: int
    dram_write_bytes: int
    sram_bytes: int
    energy_pj: dict[str, float]
    dataflow: str = "weight-stationary"

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes

    @property
    def energy_total_pj(self) -> float:
        return float(sum(self.energy_pj.values()))

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["dram_bytes"] = self.dram_bytes
        d["energy_total_pj"] = self.energy_total_pj
        return d


@dataclass(frozen=True)
class NetworkResult:
    network: str
    spec: HardwareSpec
    sparsity: tuple[int, int] | None
    layers: tuple[LayerResult, ...]

    def total(self, field: str) -> float:
        return sum(getattr(lay, field) for lay in self.layers)

    @property
    def cycles(self) -> int:
        return int(self.total("cycles"))

    @property
    def time_s(self) -> float:
        return self.cycles / (self.spec.clock_mhz * 1e6)

    @property
    def utilisation(self) -> float:
        return self.total("useful_macs") / (self.cycles * self.spec.multipliers)

    @property
    def energy_pj(self) -> dict[str, float]:
        keys = self.layers[0].energy_pj.keys() if self.layers else ()
        return {k: float(sum(lay.energy_pj[k] for lay in self.layers)) for k in keys}

    def totals(self) -> dict:
        return {
            "cycles": self.cycles,
            "time_ms": self.time_s * 1e3,
            "compute_cycles": int(self.total("compute_cycles")),
            "stall_cycles": int(self.total("stall_cycles")),
            "useful_macs": int(self.total("useful_macs")),
            "issued_macs": int(self.total("issued_macs")),
            "utilisation": self.utilisation,
            "dram_read_bytes": int(self.total("dram_read_bytes")),
            "dram_write_bytes": int(self.total("dram_write_bytes")),
            "dram_bytes": int(self.total("dram_bytes")),
            "sram_bytes": int(self.total("sram_bytes")),
            "energy_pj": self.energy_pj,
            "energy_total_pj": float(sum(self.energy_pj.values())),
        }


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


def _memory_timeline(spec: HardwareSpec, compute: np.ndarray, fetch: np.ndarray, writeback: np.ndarray) -> int:
    """End cycle of a layer's runs under the buffering and DRAM model (see module doc)."""
    tl = DramTimeline(spec)
    for c, f, w in zip(compute, fetch, writeback):
        tl.add_run(int(c), int(f), int(w))
    return tl.finish()


def run_compute_cycles(spec: HardwareSpec, mp: LayerMapping) -> np.ndarray:
    """Engine cycles of each run of a mapped layer (exact, see :mod:`sim.engine`, or
    :mod:`sim.os_engine` for an output-stationary mapping)."""
    if mp.dataflow == "output-stationary":
        tt = -(-mp.run_tokens // spec.rows)
        return np.array([os_run_cycles(spec, token_tiles=int(a), ntiles=int(b), groups=int(g))
                         for a, b, g in zip(tt, mp.run_ntiles, mp.run_groups)], dtype=np.int64)
    tiles = mp.run_ntiles * mp.run_ktiles
    return np.array([run_cycles(spec, tokens=int(t), tiles=int(j)) for t, j in zip(mp.run_tokens, tiles)],
                    dtype=np.int64)


def simulate_layer(spec: HardwareSpec, mp: LayerMapping, *, timeline: DramTimeline | None = None,
                   ready: int = 0) -> LayerResult:
    """Simulate one mapped layer. Alone (``timeline=None``) it starts with empty buffers at
    cycle 0 and its cycles run to its last write-back. Given a shared ``timeline``, its runs
    continue that timeline (overlapping the previous GEMM's last runs), its first run starts
    no earlier than ``ready``, and its cycles run from the end of the previous work on the
    timeline to the end of its own last run."""
    lay = mp.layer
    tiles = mp.run_ntiles * mp.run_ktiles
    compute = run_compute_cycles(spec, mp)
    fetch = mp.fetch_act_bytes + mp.fetch_wgt_bytes
    if timeline is None:
        total = _memory_timeline(spec, compute, fetch, mp.writeback_bytes)
    else:
        before = timeline.c_end[-1] if timeline.c_end else timeline.dram_free
        end = before
        for i, (c, f, w) in enumerate(zip(compute, fetch, mp.writeback_bytes)):
            _, end = timeline.add_run(int(c), int(f), int(w), ready=ready if i == 0 else 0)
        total = end - before
    compute_cycles = int(compute.sum())

    if mp.dataflow == "output-stationary":
        sram, issued, n_tiles = _os_sram(spec, mp)
    else:
        bits = word_widths(spec)
        wbytes = {k: math.ceil(v / 8) for k, v in bits.items()}
        vectors = int((mp.run_tokens * tiles).sum())                 # activation words streamed
        issued = vectors * spec.rows * spec.cols * spec.n            # multiplier operations
        # out-word writes + reads: every k-tile writes, all but a fresh run's first k-tile read
        acc_rmw = int((mp.run_tokens * mp.run_ntiles * (2 * mp.run_ktiles - 1 + mp.run_accumulate)).sum())
        sram = {
            "act_read": vectors * wbytes["act"],
            "wgt_read": int(tiles.sum()) * spec.rows * wbytes["wgt"],
            "out_rw": acc_rmw * wbytes["out"],
            "fill_drain": int(fetch.sum() + mp.writeback_bytes.sum()),
        }
        n_tiles = mp.ktiles * mp.ntiles
    sram_bytes = int(sum(sram.values()))
    dram_r, dram_w = int(fetch.sum()), int(mp.writeback_bytes.sum())
    useful = mp.useful_macs
    energy = {
        "mac": issued * spec.e_mac_pj,
        "sram": sram_bytes * spec.e_sram_pj_per_byte,
        "dram": (dram_r + dram_w) * spec.e_dram_pj_per_byte,
    }
    return LayerResult(
        name=lay.name, kind=lay.kind, mode=mp.mode, tokens=lay.tokens, k=lay.k, n_out=lay.n_out,
        count=lay.count, tiles=n_tiles, runs=mp.runs, loop_order=mp.loop_order,
        cycles=int(total), compute_cycles=compute_cycles, stall_cycles=int(total - compute_cycles),
        useful_macs=useful, issued_macs=issued, utilisation=useful / (total * spec.multipliers),
        dram_read_bytes=dram_r, dram_write_bytes=dram_w, sram_bytes=sram_bytes, energy_pj=energy,
        dataflow=mp.dataflow,
    )


def _os_sram(spec: HardwareSpec, mp: LayerMapping) -> tuple[dict[str, int], int, int]:
    """On-chip buffer bytes, issued multiplier operations and tiles of an output-stationary
    mapping: per tile and group one activation and one weight word are read; every tile
    writes ``cols`` output words and reads them too when its run accumulates."""
    from sparseforge.dataflow.os_layout import os_word_widths

    wbytes = {k: math.ceil(v / 8) for k, v in os_word_widths(spec).items()}
    tile_count = -(-mp.run_tokens // spec.rows) * mp.run_ntiles       # tiles of each run
    steps = int((tile_count * mp.run_groups).sum())                    # group steps issued
    out_words = int((tile_count * spec.cols * (1 + mp.run_accumulate)).sum())
    fetch = mp.fetch_act_bytes + mp.fetch_wgt_bytes
    sram = {
        "act_read": steps * wbytes["act"],
        "wgt_read": steps * wbytes["wgt"],
        "out_rw": out_words * wbytes["out"],
        "fill_drain": int(fetch.sum() + mp.writeback_bytes.sum()),
    }
    one = -(-mp.layer.tokens // spec.rows) * mp.ntiles * mp.ktiles       # tiles of one GEMM
    return sram, steps * spec.rows * spec.cols * spec.n, int(one)


def simulate_network(spec: HardwareSpec, network: Network, sparsity: tuple[int, int] | None) -> NetworkResult:
    """Map and simulate every layer; prunable layers run ``sparsity`` (``None``: dense)."""
    maps = map_network(spec, network, sparsity)
    layers = tuple(simulate_layer(spec, mp) for mp in maps)
    return NetworkResult(network=network.name, spec=spec, sparsity=sparsity, layers=layers)


def compare(spec: HardwareSpec, network: Network, sparsity: tuple[int, int] | None) -> tuple[NetworkResult, NetworkResult]:
    """The network at ``sparsity`` and the same layers dense on the same array."""
    return simulate_network(spec, network, sparsity), simulate_network(spec, network, None)
