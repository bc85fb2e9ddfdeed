"""Simulate a mapped network: cycles, stalls, utilisation, traffic and energy per layer.

Timing has two levels:

1. **Compute** -- each engine run (a token block x a weight block, see
   :mod:`dataflow.mapper`) takes exactly :func:`sim.engine.run_cycles` cycles: the tile
   sequencer's loader/streamer recurrence plus fill and drain, as the generated RTL
   behaves (checked against the RTL in ``tests/test_rtl_engine.py``).
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

from dataflow.layout import word_widths
from dataflow.mapper import LayerMapping, map_network
from models.network import Network
from sparseforge.spec import HardwareSpec

from .engine import run_cycles

__all__ = ["LayerResult", "NetworkResult", "simulate_layer", "simulate_network", "compare"]


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


def _memory_timeline(spec: HardwareSpec, compute: np.ndarray, fetch: np.ndarray, writeback: np.ndarray) -> int:
    """End cycle of a layer's runs under the buffering and DRAM model (see module doc)."""
    bpc = spec.dram_bytes_per_cycle
    lat = spec.dram_latency_cycles

    def xfer(nbytes: int) -> int:
        return lat + math.ceil(nbytes / bpc) if nbytes > 0 else 0

    n = len(compute)
    double = spec.double_buffer
    c_end = [0] * n
    wb_end = [0] * n
    dram_free = 0
    # fetch of run 0
    f = xfer(int(fetch[0]))
    f_end_next = dram_free + f
    dram_free = f_end_next
    prev_end = 0
    for i in range(n):
        f_end = f_end_next
        out_free = (wb_end[i - 2] if i >= 2 else 0) if double else (wb_end[i - 1] if i >= 1 else 0)
        start = max(prev_end, f_end, out_free)
        c_end[i] = start + int(compute[i])
        prev_end = c_end[i]
        # prefetch for run i+1: its buffer half is free once run i-1 (double) / run i
        # (single) has finished
        if i + 1 < n:
            nb = int(fetch[i + 1])
            if nb:
                ready = (c_end[i - 1] if i >= 1 else 0) if double else c_end[i]
                s = max(dram_free, ready)
                f_end_next = s + xfer(nb)
                dram_free = f_end_next
            else:
                f_end_next = 0
        # write-back of run i
        wbytes = int(writeback[i])
        s = max(dram_free, c_end[i])
        wb_end[i] = s + xfer(wbytes)
        dram_free = max(dram_free, wb_end[i]) if wbytes else dram_free
    return max(c_end[-1], wb_end[-1])


def simulate_layer(spec: HardwareSpec, mp: LayerMapping) -> LayerResult:
    lay = mp.layer
    tiles = mp.run_ntiles * mp.run_ktiles
    compute = np.array([run_cycles(spec, tokens=int(t), tiles=int(j))
                        for t, j in zip(mp.run_tokens, tiles)], dtype=np.int64)
    fetch = mp.fetch_act_bytes + mp.fetch_wgt_bytes
    total = _memory_timeline(spec, compute, fetch, mp.writeback_bytes)
    compute_cycles = int(compute.sum())

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
        count=lay.count, tiles=mp.ktiles * mp.ntiles, runs=mp.runs, loop_order=mp.loop_order,
        cycles=int(total), compute_cycles=compute_cycles, stall_cycles=int(total - compute_cycles),
        useful_macs=useful, issued_macs=issued, utilisation=useful / (total * spec.multipliers),
        dram_read_bytes=dram_r, dram_write_bytes=dram_w, sram_bytes=sram_bytes, energy_pj=energy,
    )


def simulate_network(spec: HardwareSpec, network: Network, sparsity: tuple[int, int] | None) -> NetworkResult:
    """Map and simulate every layer; prunable layers run ``sparsity`` (``None``: dense)."""
    maps = map_network(spec, network, sparsity)
    layers = tuple(simulate_layer(spec, mp) for mp in maps)
    return NetworkResult(network=network.name, spec=spec, sparsity=sparsity, layers=layers)


def compare(spec: HardwareSpec, network: Network, sparsity: tuple[int, int] | None) -> tuple[NetworkResult, NetworkResult]:
    """The network at ``sparsity`` and the same layers dense on the same array."""
    return simulate_network(spec, network, sparsity), simulate_network(spec, network, None)
