"""Simulate multi-task MoE inference frame by frame under three schedules.

A frame is one single-task inference: the backbone's GEMMs (patch embedding, attention, dense
MLPs, the active task's routers; :func:`models.moe.m3vit_network`), simulated layer by layer
by :func:`sim.simulate.simulate_layer` exactly as for any network, and one MoE layer per odd
block, timed by the schedule. The design is layer-wise (M3ViT: one shared set of units runs
the layers one after another), so the on-chip expert memory serves one MoE layer at a time.
The schedules:

``naive``
    M3ViT's naive baseline: *all* experts of the running MoE layer live on chip (O(E) expert
    memory, papers.md section 4). When a layer starts and the memory holds another layer's
    experts, all ``E`` are loaded in one burst (the array waits); with a single MoE layer they
    are loaded once and stay. Tokens run one by one: each token's ``K`` experts run as
    one-token engine runs (every tile reloads the array's weights for a single token).
``cache``
    M3ViT's cache-based baseline: "a few experts cached, refilled on demand" (papers.md
    section 4): ``cached_experts`` slots shared by the MoE layers, kept across frames, least
    recently used replaced. Tokens run one by one; per token its cached experts run first,
    then each missing expert is loaded on demand (the array waits: ``load_cycles``) into the
    least recently used slot. A slot holds (layer, expert): the next layer's experts miss.
``reorder``
    M3ViT's computation reordering. The router output stage pushes every token into the queues
    of its ``K`` experts, one token per cycle (``T`` cycles). The expert scheduler then walks
    the non-empty queues in expert order: expert ``i`` loads into buffer ``i mod B``
    (``B = expert_buffers``, 2 = ping-pong) while expert ``i - 1`` computes, and computes its
    whole queue as two engine runs of ``n_i`` tokens. Its timing is the scheduler RTL's
    handshake recurrence (:func:`sim.units.moe.reorder_timeline`, checked cycle for cycle against
    ``hwgen.moe`` in ``tests/test_moe_rtl.py``). Expert memory is O(1) in the experts.

Energy of an MoE layer: issued multiplier operations x ``e_mac_pj``; on-chip bytes (expert
weights read at ``moe.expert_weight_width``, activation and output words, loaded experts
written into the expert memory) x ``e_sram_pj_per_byte``; DRAM bytes x ``e_dram_pj_per_byte``
-- the terms :func:`sim.simulate.simulate_layer` charges a backbone layer.

The dense baseline (``MoeSimResult.dense``) is :func:`models.moe.dense_vit_network`: the same
backbone with a dense MLP in every block, simulated layer by layer like the backbone.

Outputs: every schedule writes the layer's ``T x D`` outputs (accumulator width) to DRAM.
Token-by-token schedules write each token's output while the next token computes, so only the
last write adds time; the reordered layer accumulates out of order and writes at the end.

Task switches: a schedule's only state across frames is what its expert memory holds. The
cost of a switch is the frame's cycles (and DRAM bytes) from the state the previous, other-task
frame left, minus the same from the state the last frame of the *same* task left (or, for a
task's first frame, the state that frame itself leaves: its warm steady state). It is measured,
not assumed: it comes out 0 for ``naive`` and ``reorder`` because their state does not depend on
the task, and whatever the LRU contents make it for ``cache``.

Layers do not overlap (docs/timing.md): each starts when the previous has finished.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sparseforge.dataflow.mapper import MappingError, map_layer
from sparseforge.dataflow.moe import SCHEDULES, ExpertMapping, array_buffer_bytes, map_experts, onchip_bytes
from sparseforge.models.moe import MoeVitConfig, Routing, dense_vit_network, m3vit_network
from sparseforge.spec import HardwareSpec

from .simulate import LayerResult, simulate_layer
from .units.moe import Timeline, reorder_timeline

__all__ = ["SCHEDULES", "ReorderLayer", "reorder_layer", "MoeLayerResult", "FrameResult", "ScheduleResult",
           "MoeSimResult", "simulate_moe"]


# ============================================================================ results
@dataclass(frozen=True)
class MoeLayerResult:
    """One MoE layer of one frame under one schedule."""

    block: int
    cycles: int
    compute_cycles: int
    load_wait_cycles: int
    dram_read_bytes: int
    dram_write_bytes: int
    expert_loads: int
    experts_used: int
    max_queue: int
    queue_occupancy: float          # max_queue / queue_depth (reorder), 0 otherwise
    onchip_bytes: int
    energy_pj: float                # MACs + on-chip bytes + DRAM bytes of the layer (module doc)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FrameResult:
    """One frame under one schedule. ``cycles`` = backbone (``dense_cycles``) + MoE layers."""

    index: int
    task: str
    cycles: int
    time_ms: float
    dense_cycles: int
    moe_cycles: int
    dram_bytes: int
    expert_loads: int
    onchip_bytes: int
    max_queue_occupancy: float
    switch: bool                    # the previous frame ran another task
    switch_cycles: int              # cost of the switch (0 when not a switch)
    switch_dram_bytes: int
    layers: tuple[MoeLayerResult, ...]
    energy_pj: float                # backbone layers + MoE layers

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "layers"}
        d["layers"] = [lay.to_dict() for lay in self.layers]
        return d


@dataclass(frozen=True)
class ScheduleResult:
    schedule: str
    frames: tuple[FrameResult, ...]
    onchip: dict[str, int]          # MoE unit's on-chip bytes by part (peak over layers)
    onchip_total_bytes: int         # MoE unit + the array's buffers
    fits: bool                      # onchip_total_bytes <= moe.onchip_kib

    def total(self, name: str) -> float:
        return sum(getattr(f, name) for f in self.frames)

    def totals(self) -> dict:
        switches = [f for f in self.frames if f.switch]
        return {
            "cycles": int(self.total("cycles")), "time_ms": float(self.total("time_ms")),
            "mean_frame_ms": float(self.total("time_ms")) / len(self.frames),
            "dram_bytes": int(self.total("dram_bytes")), "expert_loads": int(self.total("expert_loads")),
            "energy_mj": float(self.total("energy_pj")) * 1e-9,
            "mean_frame_energy_mj": float(self.total("energy_pj")) * 1e-9 / len(self.frames),
            "onchip_bytes": self.onchip_total_bytes, "moe_onchip_bytes": self.onchip["total"], "fits": self.fits,
            "max_queue_occupancy": max(f.max_queue_occupancy for f in self.frames),
            "switches": len(switches),
            "mean_switch_cycles": float(np.mean([f.switch_cycles for f in switches])) if switches else 0.0,
            "mean_switch_dram_bytes": float(np.mean([f.switch_dram_bytes for f in switches])) if switches else 0.0,
        }

    def to_dict(self) -> dict:
        return {"schedule": self.schedule, "onchip": self.onchip, "totals": self.totals(),
                "frames": [f.to_dict() for f in self.frames]}


@dataclass(frozen=True)
class MoeSimResult:
    cfg: MoeVitConfig
    spec: HardwareSpec
    routing_source: str
    tasks: tuple[str, ...]
    expert: ExpertMapping
    dense_layers: tuple[LayerResult, ...]
    schedules: dict[str, ScheduleResult] = field(default_factory=dict)
    dense: dict = field(default_factory=dict)   # the dense ViT of the same shape, one frame

    def versus_dense(self, schedule: str) -> dict:
        """A schedule's mean frame against the dense ViT's frame: ``speedup`` (dense latency
        / schedule latency), ``energy_ratio`` (dense energy / schedule energy) and
        ``dram_ratio`` (dense DRAM bytes / schedule DRAM bytes); above 1 the MoE wins."""
        tot = self.schedules[schedule].totals()
        frames = len(self.schedules[schedule].frames)
        return {"speedup": self.dense["time_ms"] / tot["mean_frame_ms"],
                "energy_ratio": self.dense["energy_mj"] / tot["mean_frame_energy_mj"],
                "dram_ratio": self.dense["dram_bytes"] / (tot["dram_bytes"] / frames)}

    def to_dict(self) -> dict:
        return {
            "network": self.cfg.name, "tokens": self.cfg.tokens, "experts": self.cfg.experts,
            "top_k": self.cfg.top_k, "moe_blocks": list(self.cfg.moe_blocks), "tasks": list(self.tasks),
            "routing": self.routing_source,
            "expert": {"bytes": self.expert.bytes, "weight_width": self.spec.moe.expert_weight_width,
                       "load_cycles": self.expert.load_cycles, "token_cycles": self.expert.token_cycles},
            "dense_layers": [lay.to_dict() for lay in self.dense_layers],
            "schedules": {k: v.to_dict() for k, v in self.schedules.items()},
            "dense": self.dense,
            "versus_dense": {k: self.versus_dense(k) for k in self.schedules} if self.dense else {},
            **self.spec.record(),
        }


# ============================================================================ schedules
@dataclass(frozen=True)
class _LayerCost:
    cycles: int
    compute: int
    wait: int
    read: int
    loads: int
    issued: int             # multiplier operations
    sram: int               # on-chip bytes: expert weights read, activations, outputs, loads written


def _token_by_token(em: ExpertMapping, experts: np.ndarray) -> tuple[int, int, int]:
    """Compute cycles, issued multiplier operations and on-chip bytes of one-token expert runs."""
    n = experts.size
    return n * em.token_cycles, n * em.token_issued_macs, n * em.token_sram_bytes


def _naive_layer(em: ExpertMapping, cfg: MoeVitConfig, spec: HardwareSpec, state: int | None, layer: int,
                 experts: np.ndarray) -> tuple[_LayerCost, int | None]:
    """All ``E`` experts of the running layer on chip; ``state``: the layer whose experts the
    memory holds (``None``: nothing yet)."""
    compute, issued, sram = _token_by_token(em, experts)
    if state == layer:
        return _LayerCost(compute, compute, 0, 0, 0, issued, sram), state
    nbytes = cfg.experts * em.bytes
    load = spec.dram_latency_cycles + math.ceil(nbytes / spec.dram_bytes_per_cycle)
    return _LayerCost(compute + load, compute, load, nbytes, cfg.experts, issued, sram + nbytes), layer


def _cache_layer(em: ExpertMapping, cfg: MoeVitConfig, spec: HardwareSpec, state: tuple, layer: int,
                 experts: np.ndarray) -> tuple[_LayerCost, tuple]:
    """``cached_experts`` slots shared by the layers; ``state``: the cached ``(layer, expert)``
    pairs, least recently used first."""
    slots = spec.moe.cached_experts
    lru: OrderedDict = OrderedDict((key, None) for key in state)
    misses = 0
    for row in experts.tolist():
        for e in row:
            if (layer, e) in lru:
                lru.move_to_end((layer, e))
        for e in row:
            if (layer, e) in lru:
                continue
            misses += 1
            if len(lru) >= slots:
                lru.popitem(last=False)
            lru[(layer, e)] = None
    compute, issued, sram = _token_by_token(em, experts)
    wait = misses * em.load_cycles
    read = misses * em.bytes
    return _LayerCost(compute + wait, compute, wait, read, misses, issued, sram + read), tuple(lru)


@dataclass(frozen=True)
class ReorderLayer:
    """One MoE layer under the reordering schedule: ``order`` (non-empty experts in walk
    order), their queue lengths ``counts``, ``compute_cycles`` and ``load_cycles``, the
    scheduler's :class:`Timeline`, and ``cycles`` = ``T`` push cycles + ``timeline.done``."""

    order: np.ndarray
    counts: np.ndarray
    load_cycles: int
    compute_cycles: np.ndarray
    timeline: Timeline
    cycles: int


def reorder_layer(spec: HardwareSpec, cfg: MoeVitConfig, experts: np.ndarray, *,
                  mapping: ExpertMapping | None = None) -> ReorderLayer:
    """Time one MoE layer's routing ``experts[T, K]`` under the reordering schedule."""
    em = map_experts(spec, cfg) if mapping is None else mapping
    counts = np.bincount(np.asarray(experts).ravel().astype(np.int64), minlength=cfg.experts)
    order = np.flatnonzero(counts)
    comp = em.compute_cycles(counts[order])
    tl = reorder_timeline(np.full(len(order), em.load_cycles), comp, buffers=spec.moe.expert_buffers)
    return ReorderLayer(order=order, counts=counts[order], load_cycles=em.load_cycles, compute_cycles=comp,
                        timeline=tl, cycles=int(np.asarray(experts).shape[0] + tl.done))


def _reorder_layer(em: ExpertMapping, cfg: MoeVitConfig, spec: HardwareSpec, state: None, layer: int,
                   experts: np.ndarray) -> tuple[_LayerCost, None]:
    r = reorder_layer(spec, cfg, experts, mapping=em)
    n = len(r.order)
    events = [em.run_events(int(c)) for c in r.counts]
    issued = sum(e[0] for e in events)
    sram = sum(e[1] for e in events) + n * em.bytes
    return _LayerCost(r.cycles, int(r.compute_cycles.sum()), r.timeline.load_wait, n * em.bytes, n, issued, sram), None


_LAYER_FN = {"naive": _naive_layer, "cache": _cache_layer, "reorder": _reorder_layer}


def _initial_state(schedule: str, cfg: MoeVitConfig):
    return {"naive": None, "cache": (), "reorder": None}[schedule]


def _frame(schedule: str, em: ExpertMapping, cfg: MoeVitConfig, spec: HardwareSpec, state, experts: np.ndarray):
    """Run one frame's MoE layers (``experts[L, T, K]``) from ``state``."""
    fn = _LAYER_FN[schedule]
    costs = []
    for layer in range(cfg.moe_layers):
        cost, state = fn(em, cfg, spec, state, layer, experts[layer])
        costs.append(cost)
    return costs, state


def simulate_moe(spec: HardwareSpec, cfg: MoeVitConfig, routing: Routing, *,
                 schedules: tuple[str, ...] = SCHEDULES,
                 progress: Callable[[str], None] | None = None) -> MoeSimResult:
    """Simulate every frame of ``routing`` under each of ``schedules``.

    Raises:
        MappingError: an expert does not fit ``moe.expert_buffer_kib``, a queue would overflow
            ``moe.queue_depth``, or a backbone layer cannot be mapped.
        MoeError: the routing does not match ``cfg`` (layers, tokens, top_k, experts).
    """
    for s in schedules:
        if s not in SCHEDULES:
            raise ValueError(f"schedule = {s!r} is not allowed: choose one of {', '.join(SCHEDULES)}")
    routing.check(moe_layers=cfg.moe_layers, tokens=cfg.tokens, top_k=cfg.top_k, num_experts=cfg.experts)
    em = map_experts(spec, cfg)
    loads = routing.loads()                                        # [F, L, E]
    worst = np.unravel_index(np.argmax(loads), loads.shape)
    if "reorder" in schedules and loads.max() > spec.moe.queue_depth:
        f, l, e = (int(v) for v in worst)
        raise MappingError(f"moe.queue_depth = {spec.moe.queue_depth} is too small: expert {e} of MoE layer {l} "
                           f"receives {int(loads.max())} tokens in frame {f}: raise moe.queue_depth")
    dense = tuple(simulate_layer(spec, map_layer(spec, lay, None)) for lay in m3vit_network(cfg))
    dense_cycles = sum(d.cycles for d in dense)
    dense_bytes = sum(d.dram_bytes for d in dense)
    dense_energy = sum(d.energy_total_pj for d in dense)
    vit = tuple(simulate_layer(spec, map_layer(spec, lay, None)) for lay in dense_vit_network(cfg))
    vit_cycles = sum(d.cycles for d in vit)
    acc = math.ceil(spec.acc_width / 8)
    write = cfg.tokens * cfg.embed * acc
    write_cycles = spec.dram_latency_cycles + math.ceil(write / spec.dram_bytes_per_cycle)
    tok_write_cycles = spec.dram_latency_cycles + math.ceil(cfg.embed * acc / spec.dram_bytes_per_cycle)
    longest = int(loads.max())
    used = (loads > 0).sum(-1)                                     # [F, L]
    clock_hz = spec.clock_mhz * 1e6
    result = MoeSimResult(
        cfg=cfg, spec=spec, routing_source=routing.source, tasks=routing.tasks, expert=em, dense_layers=dense,
        dense={"network": f"{cfg.name}-dense", "cycles": vit_cycles, "time_ms": vit_cycles / (spec.clock_mhz * 1e3),
               "dram_bytes": sum(d.dram_bytes for d in vit), "useful_macs": sum(d.useful_macs for d in vit),
               "energy_mj": sum(d.energy_total_pj for d in vit) * 1e-9})
    for schedule in schedules:
        mem = onchip_bytes(spec, cfg, schedule, longest_queue=longest)
        total_mem = mem["total"] + array_buffer_bytes(spec)
        state = _initial_state(schedule, cfg)
        last_of_task: dict[str, object] = {}
        frames = []
        for f in range(routing.frames):
            task = routing.tasks[f]
            ex = routing.experts[f]
            costs, new_state = _frame(schedule, em, cfg, spec, state, ex)
            switch = f > 0 and routing.tasks[f - 1] != task
            sw_cycles = sw_bytes = 0
            if switch:
                ref_state = last_of_task.get(task)
                if ref_state is None:                               # the task's own warm state
                    ref_state = new_state
                ref, _ = _frame(schedule, em, cfg, spec, ref_state, ex)
                sw_cycles = sum(c.cycles for c in costs) - sum(c.cycles for c in ref)
                sw_bytes = (sum(c.read for c in costs) - sum(c.read for c in ref))
            state = new_state
            last_of_task[task] = new_state
            layers = []
            for l, c in enumerate(costs):
                tail = write_cycles if schedule == "reorder" else tok_write_cycles
                q = int(loads[f, l].max()) if schedule == "reorder" else 0
                energy = (c.issued * spec.e_mac_pj + c.sram * spec.e_sram_pj_per_byte
                          + (c.read + write) * spec.e_dram_pj_per_byte)
                layers.append(MoeLayerResult(
                    block=cfg.moe_blocks[l], cycles=c.cycles + tail, compute_cycles=c.compute,
                    load_wait_cycles=c.wait, dram_read_bytes=c.read, dram_write_bytes=write,
                    expert_loads=c.loads, experts_used=int(used[f, l]), max_queue=q,
                    queue_occupancy=q / spec.moe.queue_depth, onchip_bytes=mem["total"], energy_pj=float(energy)))
            moe_cycles = sum(lay.cycles for lay in layers)
            cycles = dense_cycles + moe_cycles
            frames.append(FrameResult(
                index=f, task=task, cycles=cycles, time_ms=cycles / clock_hz * 1e3, dense_cycles=dense_cycles,
                moe_cycles=moe_cycles,
                dram_bytes=dense_bytes + sum(lay.dram_read_bytes + lay.dram_write_bytes for lay in layers),
                expert_loads=sum(lay.expert_loads for lay in layers), onchip_bytes=total_mem,
                max_queue_occupancy=max(lay.queue_occupancy for lay in layers), switch=switch,
                switch_cycles=int(sw_cycles), switch_dram_bytes=int(sw_bytes), layers=tuple(layers),
                energy_pj=float(dense_energy + sum(lay.energy_pj for lay in layers))))
        if progress:
            progress(f"simulated {routing.frames} frames, schedule {schedule}")
        result.schedules[schedule] = ScheduleResult(
            schedule=schedule, frames=tuple(frames), onchip=mem, onchip_total_bytes=total_mem,
            fits=total_mem <= spec.moe.onchip_kib * 1024)
    return result
