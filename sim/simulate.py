"""Simulate a mapped network: cycles, stalls, utilisation, traffic and energy per layer.

The simulator composes the hardware units' models (:mod:`sim.units`) over the mapper's runs
(:mod:`dataflow.mapper`). Timing has two levels:

1. **Compute** -- each engine run (a token block x a weight block x a k-block) takes
   exactly the cycles of the engine's model (:mod:`sim.units.engine`: the weight-stationary
   tile sequencer's loader/streamer recurrence plus fill and drain, checked against the RTL
   in ``tests/test_rtl_engine.py``, or the output-stationary tile period, checked in
   ``tests/test_rtl_os.py`` and docs/os_timing.md).
2. **Memory** -- runs' DRAM transfers overlap compute through the on-chip buffers
   (:mod:`sim.units.memory`: DRAM serves fetches and write-backs in program order; with
   double buffering a run's fetch overlaps the run before). The array *stalls* whenever it
   waits for memory.

A grouped or depthwise convolution runs as the mapper packs it (``mode = "packed"``,
:mod:`dataflow.mapper`): its runs, tiles and issued multiplier operations are those of the
packed block-diagonal GEMMs, its useful MACs its own (each counted once).

Which layers run sparse is the run's plan (:func:`dataflow.mapper.network_plan`: the layer's
own masks, the default rule, ``--dense-layers``); each layer's result names the pattern it ran
(``pattern``) and why (``reason``).

Layers run one after another, each starting with empty buffers. Energy is event counts
times the spec's per-event energies: issued multiplier operations, on-chip buffer bytes
(reads by the engine, and the fills and drains of DRAM transfers), and DRAM bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparseforge.dataflow.mapper import LayerMapping, check_layers, map_network, run_compute_cycles, word_bytes
from sparseforge.models.network import LayerSparsity, Network
from sparseforge.spec import HardwareSpec

from .units.memory import DramTimeline, memory_timeline

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
    dataflow: str = "weight-stationary"
    pack: int = 1           # groups of a grouped/depthwise conv per packed GEMM (mode "packed")
    pattern: str = "dense"  # the N:M pattern the layer runs ("2:4") or "dense"
    reason: str = ""        # why (models.network.REASONS: "mask", "rule:first", "--dense-layers", ...)
    # per operand: on-chip reads of activations and weights, output reads and writes, and the
    # DRAM bytes fetched of activations and weights (the outputs' are dram_write_bytes)
    sram_act_bytes: int = 0
    sram_wgt_bytes: int = 0
    sram_out_bytes: int = 0
    dram_act_bytes: int = 0
    dram_wgt_bytes: int = 0

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


def simulate_layer(spec: HardwareSpec, mp: LayerMapping, *, timeline: DramTimeline | None = None,
                   ready: int = 0) -> LayerResult:
    """Simulate one mapped layer. Alone (``timeline=None``) it starts with empty buffers at
    cycle 0 and its cycles run to its last write-back. Given a shared ``timeline``, its runs
    continue that timeline (overlapping the previous GEMM's last runs), its first run starts
    no earlier than ``ready``, and its cycles run from the end of the previous work on the
    timeline to the end of its own last run."""
    lay = mp.layer
    compute = run_compute_cycles(spec, mp)
    fetch = mp.fetch_act_bytes + mp.fetch_wgt_bytes
    if timeline is None:
        total = memory_timeline(spec, compute, fetch, mp.writeback_bytes)
    else:
        before = timeline.c_end[-1] if timeline.c_end else timeline.dram_free
        end = before
        for i, (c, f, w) in enumerate(zip(compute, fetch, mp.writeback_bytes)):
            _, end = timeline.add_run(int(c), int(f), int(w), ready=ready if i == 0 else 0)
        total = end - before
    compute_cycles = int(compute.sum())

    engine = mp.engine
    ev = engine.run_events(spec, mp.run_tokens, mp.run_ntiles, mp.run_kunits, mp.run_accumulate)
    wbytes = word_bytes(spec, mp.dataflow)
    sram = {
        "act_read": ev.act_words * wbytes["act"],
        "wgt_read": ev.wgt_words * wbytes["wgt"],
        "out_rw": ev.out_words * wbytes["out"],
        "fill_drain": int(fetch.sum() + mp.writeback_bytes.sum()),
    }
    issued = ev.steps * spec.rows * spec.cols * spec.n                 # multiplier operations
    n_tiles = engine.gemm_tiles(spec, tokens=lay.tokens, ktiles=mp.ktiles, ntiles=mp.ntiles)
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
        dataflow=mp.dataflow, pack=mp.pack,
        pattern=f"{mp.sparsity[0]}:{mp.sparsity[1]}" if mp.sparsity else "dense", reason=mp.reason,
        sram_act_bytes=int(sram["act_read"]), sram_wgt_bytes=int(sram["wgt_read"]), sram_out_bytes=int(sram["out_rw"]),
        dram_act_bytes=int(mp.fetch_act_bytes.sum()), dram_wgt_bytes=int(mp.fetch_wgt_bytes.sum()),
    )


def simulate_network(spec: HardwareSpec, network: Network, sparsity: tuple[int, int] | None,
                     plan: "tuple[LayerSparsity, ...] | None" = None) -> NetworkResult:
    """Map and simulate every layer as the run's plan says (``plan``, one
    :class:`~sparseforge.models.network.LayerSparsity` per layer, or by default the rule of
    :func:`~sparseforge.models.network.sparsity_plan` at ``sparsity``; ``None``: all dense).
    Every layer is mapped (and so checked) before the first is simulated."""
    maps = map_network(spec, network, sparsity, plan)
    layers = tuple(simulate_layer(spec, mp) for mp in maps)
    return NetworkResult(network=network.name, spec=spec, sparsity=sparsity, layers=layers)


def compare(spec: HardwareSpec, network: Network, sparsity: tuple[int, int] | None,
            plan: "tuple[LayerSparsity, ...] | None" = None) -> tuple[NetworkResult, NetworkResult]:
    """The network at ``sparsity`` (as ``plan`` says, see :func:`simulate_network`) and the
    same layers dense on the same array. The dense layers are checked (:func:`check_layers`)
    before the sparse run is simulated, so a dense layer the mapper refuses costs no sparse
    simulation first."""
    check_layers(spec, [(lay, None) for lay in network.layers])
    return simulate_network(spec, network, sparsity, plan), simulate_network(spec, network, None)
