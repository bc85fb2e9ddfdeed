"""Map MoE layers onto the accelerator: expert sizes, expert GEMM cycles, queues, on-chip memory.

An expert ``W2 GELU(W1 x)`` runs on the same weight-stationary array as every other GEMM
(:mod:`hwgen.engine`), as its two GEMMs over the tokens it serves: ``[n, D] x [D -> H]`` then
``[n, H] x [H -> D]``, in dense mode (the M3ViT weights are dense), mapped by
:func:`dataflow.mapper.map_layer` (token blocks that fit the array's input and output
buffers; the weights are read from the expert buffer) and timed run by run by
:func:`sim.units.engine.run_cycles` -- the RTL's exact count: the whole queue of the expert when the
layer runs expert by expert, one token when it runs token by token.
Expert weights come from an expert buffer, so a run's weights never wait for DRAM; the
schedules (:mod:`sim.moe`) decide when an expert's weights are loaded.

On-chip memory of each schedule (bytes; the array's own weight/input/output buffers are
shared by all and reported separately). The design is layer-wise (M3ViT: one shared set of
units runs the layers one after another), so only the running MoE layer's experts need be on
chip; M3ViT's naive baseline holds *all experts* of that layer on chip, O(N) in the experts
(papers.md section 4), the cache holds a few, the reordering two:

===============  ===========================  ======================  ==========================
part             naive (token by token)       cache (token by token)  reorder (expert by expert)
===============  ===========================  ======================  ==========================
expert weights   the ``E`` experts of one     ``cached_experts``      ``expert_buffers`` in all
                 MoE layer                    slots in all
token queues     --                           --                      ``E x queue_depth`` entries
token buffer     one token in, one out        one token in, one out   the layer's ``T`` tokens in
                                                                      (gather) and ``T`` outputs
                                                                      (scatter-add)
expert hidden    one token                    one token               the longest queue, up to a
                                                                      run's token block
===============  ===========================  ======================  ==========================

Every expert slot is ``moe.expert_buffer_kib``. An expert's weights are
``2 D H x moe.expert_weight_width`` bits, packed (:func:`expert_bytes`): that is what a load
moves from DRAM and what the expert buffer holds.

Tokens are held at activation width, outputs at accumulator width (the engine has no
requantiser, see docs/timing.md), hidden values at activation width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sparseforge.models.moe import MoeVitConfig
from sparseforge.spec import HardwareSpec

from sparseforge.models.network import GemmLayer

from .mapper import MappingError, map_layer, run_compute_cycles, word_bytes

__all__ = ["SCHEDULES", "ExpertMapping", "map_experts", "expert_bytes", "queue_entry_bits",
           "onchip_bytes", "array_buffer_bytes", "quantize_gates"]

#: The three schedules, in report order.
SCHEDULES = ("naive", "cache", "reorder")


@dataclass(frozen=True)
class ExpertMapping:
    """How one expert of ``cfg`` runs on ``spec``.

    Attributes:
        bytes: weights of one expert (``W1`` and ``W2`` at ``moe.expert_weight_width`` bits,
            packed; biases are not modelled).
        tiles1, tiles2: array tiles of the two GEMMs (``ktiles * ntiles``).
        token_block: most tokens one engine run takes (the mapper's token block: activations
            and accumulators of a run must fit the array's input and output buffers).
        load_cycles: DRAM latency plus ``bytes`` at the DRAM bandwidth, in clock cycles.
        token_cycles: compute cycles of one token through the expert (two one-token runs).
        token_issued_macs, token_sram_bytes: multiplier operations and on-chip bytes moved
            (:meth:`run_events`) of one token through the expert (two one-token runs).
    """

    bytes: int
    tiles1: int
    tiles2: int
    token_block: int
    load_cycles: int
    token_cycles: int
    token_issued_macs: int
    token_sram_bytes: int
    spec: HardwareSpec
    cfg: MoeVitConfig

    def compute_cycles(self, tokens: np.ndarray | int) -> np.ndarray:
        """Compute cycles of an expert serving ``tokens`` tokens in one go; 0 for an empty
        queue. Vectorised over an array of queue lengths."""
        n = np.asarray(tokens, dtype=np.int64)
        out = np.zeros(n.shape, dtype=np.int64)
        for v in np.unique(n[n > 0]):
            out[n == v] = _expert_cycles(self.spec, self.cfg, int(v))
        return out

    def run_events(self, tokens: int) -> tuple[int, int]:
        """``(issued multiplier operations, on-chip bytes moved)`` of the expert serving
        ``tokens`` tokens in one go (its two GEMMs, as the engine runs them): weight words
        read from the expert buffer at ``moe.expert_weight_width``, activation words read and
        output words read and written at the array's word widths."""
        return _expert_events(self.spec, self.cfg, int(tokens)) if tokens > 0 else (0, 0)


def _expert_spec(spec: HardwareSpec) -> HardwareSpec:
    """The spec the mapper sees for an expert GEMM: its weights sit in the expert buffer (each
    GEMM's half of the expert in one half of it), not in the array's weight buffer, and the
    array runs weight-stationary -- the expert's weights held while its token queue streams
    past is what the reordered schedule (and its RTL scheduler) is built on, whatever
    ``spec.dataflow`` says for the other layers."""
    return spec.replace(weight_buffer_kib=spec.moe.expert_buffer_kib, dataflow="weight-stationary")


def expert_bytes(spec: HardwareSpec, cfg: MoeVitConfig) -> int:
    """Bytes of one expert's weights (``W1`` ``[H, D]`` and ``W2`` ``[D, H]``) at
    ``moe.expert_weight_width`` bits, packed: what one expert load moves from DRAM."""
    return math.ceil(2 * cfg.embed * cfg.expert_hidden * spec.moe.expert_weight_width / 8)


@lru_cache(maxsize=8192)
def _expert_events(spec: HardwareSpec, cfg: MoeVitConfig, tokens: int) -> tuple[int, int]:
    """Issued multiplier operations and on-chip bytes of the expert's two GEMMs over
    ``tokens`` tokens: the engine's run events (as :func:`sim.simulate.simulate_layer`
    counts them), each weight word (``cols x n`` weights) read at ``moe.expert_weight_width``."""
    es = _expert_spec(spec)
    wb = word_bytes(es)
    issued = wread = other = 0
    for name, k, n_out in (("expert.fc1", cfg.embed, cfg.expert_hidden), ("expert.fc2", cfg.expert_hidden, cfg.embed)):
        mp = map_layer(es, GemmLayer(name=name, tokens=tokens, k=k, n_out=n_out, prunable=False), None)
        ev = mp.engine.run_events(es, mp.run_tokens, mp.run_ntiles, mp.run_kunits, mp.run_accumulate)
        issued += ev.steps * spec.rows * spec.cols * spec.n
        wread += ev.wgt_words
        other += ev.act_words * wb["act"] + ev.out_words * wb["out"]
    word = math.ceil(spec.cols * spec.n * spec.moe.expert_weight_width / 8)
    return issued, wread * word + other


@lru_cache(maxsize=8192)
def _expert_cycles(spec: HardwareSpec, cfg: MoeVitConfig, tokens: int) -> int:
    """Engine cycles of the expert's two GEMMs over ``tokens`` tokens, mapped by
    :func:`dataflow.mapper.map_layer` and timed run by run by :func:`sim.units.engine.run_cycles`
    (exactly the compute cycles :func:`sim.simulate.simulate_layer` reports)."""
    es = _expert_spec(spec)
    total = 0
    for name, k, n_out in (("expert.fc1", cfg.embed, cfg.expert_hidden), ("expert.fc2", cfg.expert_hidden, cfg.embed)):
        mp = map_layer(es, GemmLayer(name=name, tokens=tokens, k=k, n_out=n_out, prunable=False), None)
        total += int(run_compute_cycles(es, mp).sum())
    return total


def map_experts(spec: HardwareSpec, cfg: MoeVitConfig) -> ExpertMapping:
    """Map one expert of ``cfg`` onto ``spec``; :class:`MappingError` if it does not fit an
    expert buffer."""
    ew = spec.moe.expert_weight_width
    if ew > spec.weight_width:
        raise MappingError(f"moe.expert_weight_width = {ew} is not allowed with weight_width = {spec.weight_width}: "
                           f"the array multiplies {spec.weight_width}-bit weights (need moe.expert_weight_width <= "
                           "weight_width)")
    nbytes = expert_bytes(spec, cfg)
    cap = spec.moe.expert_buffer_kib * 1024
    if nbytes > cap:
        raise MappingError(
            f"an expert ({cfg.embed} -> {cfg.expert_hidden} -> {cfg.embed}, {ew}-bit weights) needs "
            f"{nbytes} bytes ({nbytes / 1024:.0f} KiB) but moe.expert_buffer_kib = {spec.moe.expert_buffer_kib} "
            f"holds {cap}: raise moe.expert_buffer_kib to at least {math.ceil(nbytes / 1024)}")
    es = _expert_spec(spec)
    m1 = map_layer(es, GemmLayer(name="expert.fc1", tokens=cfg.tokens, k=cfg.embed, n_out=cfg.expert_hidden,
                                 prunable=False), None)
    m2 = map_layer(es, GemmLayer(name="expert.fc2", tokens=cfg.tokens, k=cfg.expert_hidden, n_out=cfg.embed,
                                 prunable=False), None)
    load = spec.dram_latency_cycles + math.ceil(nbytes / spec.dram_bytes_per_cycle)
    one = _expert_events(spec, cfg, 1)
    return ExpertMapping(bytes=nbytes, tiles1=m1.ktiles * m1.ntiles, tiles2=m2.ktiles * m2.ntiles,
                         token_block=min(m1.token_block, m2.token_block), load_cycles=load,
                         token_cycles=_expert_cycles(spec, cfg, 1), token_issued_macs=one[0], token_sram_bytes=one[1],
                         spec=spec, cfg=cfg)


def queue_entry_bits(spec: HardwareSpec, cfg: MoeVitConfig) -> int:
    """Bits of one queue entry: a token id (enough bits for ``queue_depth`` tokens) and its
    gate value (``moe.gate_width`` bits)."""
    return max(1, (max(cfg.tokens, spec.moe.queue_depth) - 1).bit_length()) + spec.moe.gate_width


def onchip_bytes(spec: HardwareSpec, cfg: MoeVitConfig, schedule: str, *, longest_queue: int) -> dict[str, int]:
    """On-chip memory of the MoE unit under ``schedule`` (see the module table), by part.
    ``longest_queue``: the most tokens any expert serves in one layer (sizes the reorder
    schedule's hidden buffer, up to one engine run's token block)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule = {schedule!r} is not allowed: choose one of {', '.join(SCHEDULES)}")
    wb = word_bytes(spec)
    act = math.ceil(spec.act_width / 8)
    slot = spec.moe.expert_buffer_kib * 1024
    d, h, t = cfg.embed, cfg.expert_hidden, cfg.tokens
    if schedule == "naive":
        experts = cfg.experts * slot
    elif schedule == "cache":
        experts = spec.moe.cached_experts * slot
    else:
        experts = spec.moe.expert_buffers * slot
    if schedule == "reorder":
        queues = math.ceil(cfg.experts * spec.moe.queue_depth * queue_entry_bits(spec, cfg) / 8)
        tokens = t * d * act + t * d * wb["acc"]
        hidden = min(longest_queue, map_experts(spec, cfg).token_block) * h * act
    else:
        queues = 0
        tokens = d * act + d * wb["acc"]
        hidden = h * act
    return {"experts": experts, "queues": queues, "tokens": tokens, "hidden": hidden,
            "total": experts + queues + tokens + hidden}


def array_buffer_bytes(spec: HardwareSpec) -> int:
    """The array's own weight, input and output buffers (shared by every layer)."""
    return (spec.weight_buffer_kib + spec.input_buffer_kib + spec.output_buffer_kib) * 1024


def quantize_gates(gates: np.ndarray, width: int) -> np.ndarray:
    """Gate probabilities as the queues store them: unsigned fixed point with ``width``
    fraction bits, rounded to nearest and saturated at ``2**width - 1``."""
    q = np.rint(np.asarray(gates, dtype=np.float64) * (1 << width))
    return np.minimum(q, (1 << width) - 1).astype(np.int64)
