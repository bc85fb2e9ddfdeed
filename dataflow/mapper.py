"""Map a network's GEMMs onto the accelerator: modes, tiles, blocks, loop order, runs.

For each layer the mapper decides

- the **mode**: sparse (the layer's weights are N:M with the array's ``m`` and at most its
  ``n``) or dense (``n`` consecutive reduction indices per PE);
- the **tiling** over K (``ktiles`` of ``rows`` groups) and outputs (``ntiles`` of ``cols``);
- the **blocks** that fit on chip: ``n_block`` n-tiles of weights (all their k-tiles) in one
  weight-buffer half, ``token_block`` tokens of activations (all k-tiles) in one
  input-buffer half and their ``n_block * cols`` accumulators in one output-buffer half
  (halves when the spec double-buffers, whole buffers otherwise);
- the **loop order** over blocks: tokens outer (activations fetched once, weights re-fetched
  per token block unless one weight block holds them all) or weights outer (the reverse),
  whichever moves fewer DRAM bytes.

Each (token block, weight block) pair is one *run* of the engine (``hwgen.engine``): it
streams ``tokens`` vectors for each of ``ktiles * ntiles`` tiles. The simulator times runs
exactly as the engine executes them and overlaps their DRAM transfers (``sim.simulate``).

With ``spec.dataflow = "output-stationary"`` layers map onto the output-stationary engine
(``hwgen.os_engine``, :func:`_map_layer_os`) instead; ``"switchable"`` maps each layer both
ways and keeps the faster (see :func:`map_layer` and docs/os_timing.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sparseforge.models.network import GemmLayer, Network

from sparseforge.errors import InputError
from sparseforge.spec import HardwareSpec

from .layout import group_size, tiling, word_widths

__all__ = ["MappingError", "LayerMapping", "map_layer", "map_network", "word_bytes", "check_sparsity"]


class MappingError(InputError):
    """A layer cannot be mapped onto the hardware (one clear line, names the layer)."""


def word_bytes(spec: HardwareSpec) -> dict[str, int]:
    """Bytes of one word of each on-chip memory (rounded up), and of one accumulator."""
    bits = word_widths(spec)
    return {
        "act": math.ceil(bits["act"] / 8),
        "wgt": math.ceil(bits["wgt"] / 8),
        "out": math.ceil(bits["out"] / 8),
        "acc": math.ceil(spec.acc_width / 8),
    }


def check_sparsity(spec: HardwareSpec, sparsity: tuple[int, int] | None) -> tuple[int, int] | None:
    """Validate a requested N:M pattern; ``None`` (or ``n == m``) means dense. Any pattern
    runs on any array: :func:`dataflow.layout.group_size` decides how much of it the PEs
    can exploit."""
    if sparsity is None:
        return None
    n, m = sparsity
    if not (isinstance(n, int) and isinstance(m, int) and 1 <= n <= m <= 64):
        raise MappingError(f"sparsity {n}:{m} is not allowed: need integers 1 <= n <= m <= 64")
    if n == m:
        return None
    return (n, m)


@dataclass(frozen=True)
class LayerMapping:
    """How one layer runs. Per-run quantities are arrays with one entry per engine run, in
    execution order (repeated ``layer.count`` times for independent identical GEMMs)."""

    layer: GemmLayer
    mode: str                 # "sparse" | "dense"
    sparsity: tuple[int, int] | None
    group: int                # reduction indices per PE
    ktiles: int
    ntiles: int
    token_block: int
    n_block: int
    k_block: int              # k-tiles per run (== ktiles unless the reduction is split)
    loop_order: str           # "tokens-outer" | "weights-outer"
    run_tokens: np.ndarray    # tokens streamed per tile in each run
    run_ntiles: np.ndarray    # n-tiles in each run
    run_ktiles: np.ndarray    # k-tiles in each run (its k-block)
    run_accumulate: np.ndarray  # the run adds onto partial sums of earlier k-blocks
    run_out_cols: np.ndarray  # real output columns written back by each run
    fetch_act_bytes: np.ndarray
    fetch_wgt_bytes: np.ndarray
    writeback_bytes: np.ndarray
    # output-stationary mappings (see _map_layer_os): ``ktiles`` counts k-blocks, ``k_block``
    # is groups per k-block, ``run_ktiles`` is 1 and ``run_groups`` the groups each run
    # streams per tile; ``token_block`` is a multiple of ``rows``
    dataflow: str = "weight-stationary"   # "weight-stationary" | "output-stationary"
    run_groups: np.ndarray | None = None

    @property
    def runs(self) -> int:
        return len(self.run_tokens)

    @property
    def useful_macs(self) -> int:
        """Multiply-accumulates with a kept weight (the work a dense GEMM would do, times
        n/m for an N:M layer)."""
        macs = self.layer.macs
        if self.sparsity:
            n, m = self.sparsity
            return macs * n // m
        return macs


def _block_sizes(total: int, block: int) -> np.ndarray:
    """Sizes of the blocks that cover ``total`` in blocks of ``block`` (the last may be short)."""
    count = math.ceil(total / block)
    sizes = np.full(count, block, dtype=np.int64)
    sizes[-1] = total - block * (count - 1)
    return sizes


def _loop_order(*, act_bytes: int, wgt_bytes: int, TT: int, NB: int, KB: int) -> str:
    """The loop order over token blocks and weight blocks (k-blocks always innermost) that
    moves fewer DRAM bytes: a block stays resident across the other loop only when it is the
    only one of its kind and the reduction is not split."""
    one_k = KB == 1
    tokens_outer = act_bytes * (1 if one_k else NB) + wgt_bytes * (1 if (NB == 1 and one_k) else TT)
    weights_outer = wgt_bytes * (1 if one_k else TT) + act_bytes * (1 if (TT == 1 and one_k) else NB)
    return "tokens-outer" if tokens_outer <= weights_outer else "weights-outer"


def _run_grid(order: str, TT: int, NB: int, KB: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Token-block, weight-block and k-block index of every run in execution order (k-blocks
    innermost, the two other loops as ``order`` says), and which runs need a new activation
    block / weight block from DRAM (the one the previous run used differs)."""
    if order == "tokens-outer":
        ti, bi, ki = np.meshgrid(np.arange(TT), np.arange(NB), np.arange(KB), indexing="ij")
    else:
        bi, ti, ki = np.meshgrid(np.arange(NB), np.arange(TT), np.arange(KB), indexing="ij")
    ti, bi, ki = ti.ravel(), bi.ravel(), ki.ravel()
    new_act = np.ones(len(ti), dtype=bool)
    new_wgt = np.ones(len(bi), dtype=bool)
    new_act[1:] = (ti[1:] != ti[:-1]) | (ki[1:] != ki[:-1])
    new_wgt[1:] = (bi[1:] != bi[:-1]) | (ki[1:] != ki[:-1])
    return ti, bi, ki, new_act, new_wgt


def _plan(spec: HardwareSpec, layer: GemmLayer, *, group: int, KT: int, NT: int, k_block: int,
          wb: dict[str, int], tile_wgt: int, act_cap: int, wgt_cap: int, out_cap: int) -> dict:
    """Blocks, loop order and per-run arrays for one choice of k-block (k-tiles per run)."""
    T = layer.tokens
    KB = math.ceil(KT / k_block)
    n_block = min(NT, wgt_cap // (k_block * tile_wgt), out_cap // wb["out"])
    token_block = min(T, act_cap // (k_block * wb["act"]), out_cap // (n_block * wb["out"]))

    TT = math.ceil(T / token_block)
    NB = math.ceil(NT / n_block)
    act_bytes_total = T * layer.k * math.ceil(spec.act_width / 8)        # compact [T, K] in DRAM
    wgt_bytes_total = NT * KT * tile_wgt
    order = _loop_order(act_bytes=act_bytes_total, wgt_bytes=wgt_bytes_total, TT=TT, NB=NB, KB=KB)

    tok_sizes = _block_sizes(T, token_block)
    nb_sizes = _block_sizes(NT, n_block)
    col_sizes = np.minimum(nb_sizes * spec.cols, layer.n_out - np.arange(NB) * n_block * spec.cols)
    kb_sizes = _block_sizes(KT, k_block)
    # reduction indices (of the real K) each k-block covers
    k_per_tile = spec.rows * group
    kb_k = np.minimum(kb_sizes * k_per_tile, layer.k - np.arange(KB) * k_block * k_per_tile)

    ti, bi, ki, new_act, new_wgt = _run_grid(order, TT, NB, KB)
    run_tokens = tok_sizes[ti]
    run_ntiles = nb_sizes[bi]
    run_ktiles = kb_sizes[ki]
    run_cols = col_sizes[bi]
    fetch_act = np.where(new_act, run_tokens * kb_k[ki] * math.ceil(spec.act_width / 8), 0)
    fetch_wgt = np.where(new_wgt, run_ntiles * run_ktiles * tile_wgt, 0)
    last_k = ki == KB - 1
    writeback = np.where(last_k, run_tokens * run_cols * wb["acc"], 0)

    return {"k_block": k_block, "n_block": n_block, "token_block": token_block, "order": order,
            "run_tokens": run_tokens, "run_ntiles": run_ntiles, "run_ktiles": run_ktiles,
            "run_accumulate": ki > 0, "run_cols": run_cols, "fetch_act": fetch_act, "fetch_wgt": fetch_wgt,
            "writeback": writeback}


def _plan_cost(spec: HardwareSpec, plan: dict) -> float:
    """Cycles of a plan if compute and DRAM overlapped perfectly: the larger of the engine
    cycles of its runs (exact) and its DRAM transfer time."""
    from sparseforge.sim.engine import run_cycles

    shapes, counts = np.unique(np.stack([plan["run_tokens"], plan["run_ntiles"] * plan["run_ktiles"]]),
                               axis=1, return_counts=True)
    compute = sum(int(c) * run_cycles(spec, tokens=int(t), tiles=int(j)) for (t, j), c in zip(shapes.T, counts))
    nbytes = int(plan["fetch_act"].sum() + plan["fetch_wgt"].sum() + plan["writeback"].sum())
    runs = len(plan["run_tokens"])
    dram = nbytes / spec.dram_bytes_per_cycle + runs * spec.dram_latency_cycles
    return max(compute, dram)


def map_layer(spec: HardwareSpec, layer: GemmLayer, sparsity: tuple[int, int] | None) -> LayerMapping:
    """Map one layer with the spec's dataflow: weight-stationary (the default),
    output-stationary (:func:`_map_layer_os`), or ``switchable``: both, keeping the one whose
    layer runs in fewer cycles alone (:func:`sim.simulate.simulate_layer`; ties keep
    weight-stationary), or the only one that fits the buffers."""
    if spec.dataflow == "weight-stationary":
        return _map_layer_ws(spec, layer, sparsity)
    if spec.dataflow == "output-stationary":
        return _map_layer_os(spec, layer, sparsity)
    from sparseforge.sim.simulate import simulate_layer

    try:
        ws = _map_layer_ws(spec, layer, sparsity)
    except MappingError as ws_error:
        try:
            return _map_layer_os(spec, layer, sparsity)
        except MappingError:
            raise ws_error from None
    try:
        os_ = _map_layer_os(spec, layer, sparsity)
    except MappingError:
        return ws
    return os_ if simulate_layer(spec, os_).cycles < simulate_layer(spec, ws).cycles else ws


def _map_layer_ws(spec: HardwareSpec, layer: GemmLayer, sparsity: tuple[int, int] | None) -> LayerMapping:
    sparsity = check_sparsity(spec, sparsity) if layer.prunable else None
    if layer.k > spec.max_k:
        raise MappingError(f"layer {layer.name}: K = {layer.k} exceeds max_k = {spec.max_k} "
                           "(the accumulator is sized for max_k products): raise max_k")
    group = group_size(spec, sparsity)
    mode = "sparse" if group > spec.n else "dense"
    til = tiling(spec, tokens=layer.tokens, k=layer.k, n_out=layer.n_out, group=group)
    KT, NT = til.ktiles, til.ntiles
    wb = word_bytes(spec)
    half = 2 if spec.double_buffer else 1
    wgt_cap = spec.weight_buffer_kib * 1024 // half
    act_cap = spec.input_buffer_kib * 1024 // half
    out_cap = spec.output_buffer_kib * 1024 // half

    tile_wgt = spec.rows * wb["wgt"]                 # one tile's weight words
    if tile_wgt > wgt_cap:
        raise MappingError(f"layer {layer.name}: one weight tile needs {tile_wgt} bytes but weight_buffer_kib = "
                           f"{spec.weight_buffer_kib} gives {wgt_cap} per buffer: raise weight_buffer_kib")
    if wb["act"] > act_cap:
        raise MappingError(f"layer {layer.name}: one activation word needs {wb['act']} bytes but input_buffer_kib = "
                           f"{spec.input_buffer_kib} gives {act_cap} per buffer: raise input_buffer_kib")
    if wb["out"] > out_cap:
        raise MappingError(f"layer {layer.name}: one token's accumulators need {wb['out']} bytes but "
                           f"output_buffer_kib = {spec.output_buffer_kib} gives {out_cap} per buffer")
    # k-block: the k-tiles of one run; the whole reduction unless one token's activations or
    # one column of weight tiles would not fit a buffer. Then the reduction is split (partial
    # sums stay in the output buffer and later k-blocks accumulate onto them), and the
    # k-block is a trade-off -- longer blocks leave room for fewer tokens per run -- so the
    # candidates from the largest down by halves are costed and the cheapest kept.
    k_max = min(KT, act_cap // wb["act"], wgt_cap // tile_wgt)
    kw = dict(group=group, KT=KT, NT=NT, wb=wb, tile_wgt=tile_wgt, act_cap=act_cap, wgt_cap=wgt_cap, out_cap=out_cap)
    plan = _plan(spec, layer, k_block=k_max, **kw)
    if k_max < KT:
        k = k_max // 2
        best = _plan_cost(spec, plan)
        while k >= 1:
            cand = _plan(spec, layer, k_block=k, **kw)
            cost = _plan_cost(spec, cand)
            if cost < best:
                plan, best = cand, cost
            k //= 2
    k_block, n_block, token_block, order = plan["k_block"], plan["n_block"], plan["token_block"], plan["order"]
    run_tokens, run_ntiles, run_ktiles = plan["run_tokens"], plan["run_ntiles"], plan["run_ktiles"]
    run_cols, fetch_act, fetch_wgt, writeback = plan["run_cols"], plan["fetch_act"], plan["fetch_wgt"], plan["writeback"]
    accumulate = plan["run_accumulate"]

    reps = layer.count

    def rep(a: np.ndarray) -> np.ndarray:
        return np.tile(a, reps)

    return LayerMapping(
        layer=layer, mode=mode, sparsity=sparsity, group=group, ktiles=KT, ntiles=NT,
        token_block=int(token_block), n_block=int(n_block), k_block=int(k_block), loop_order=order,
        run_tokens=rep(run_tokens), run_ntiles=rep(run_ntiles), run_ktiles=rep(run_ktiles),
        run_accumulate=rep(accumulate), run_out_cols=rep(run_cols),
        fetch_act_bytes=rep(fetch_act), fetch_wgt_bytes=rep(fetch_wgt), writeback_bytes=rep(writeback),
    )


def _os_word_bytes(spec: HardwareSpec) -> dict[str, int]:
    from .os_layout import os_word_widths

    bits = os_word_widths(spec)
    return {"act": math.ceil(bits["act"] / 8), "wgt": math.ceil(bits["wgt"] / 8), "out": math.ceil(bits["out"] / 8),
            "acc": math.ceil(spec.acc_width / 8)}


def _plan_os(spec: HardwareSpec, layer: GemmLayer, *, group: int, G: int, TT: int, NT: int, g_block: int,
             wb: dict[str, int], act_cap: int, wgt_cap: int, out_cap: int) -> dict:
    """Blocks, loop order and per-run arrays of an output-stationary mapping with ``g_block``
    groups per k-block. A run covers ``tt_block`` token tiles (``rows`` tokens each) and
    ``n_block`` n-tiles (``cols`` outputs each) and streams ``g_block`` groups per tile; its
    buffers hold ``tt_block * g_block`` activation words, ``n_block * g_block`` weight words
    and ``tt_block * n_block * cols`` output words. Same DRAM rules as :func:`_plan`."""
    T, R, C = layer.tokens, spec.rows, spec.cols
    KB = math.ceil(G / g_block)
    n_block = min(NT, wgt_cap // (g_block * wb["wgt"]), out_cap // (C * wb["out"]))
    tt_block = min(TT, act_cap // (g_block * wb["act"]), out_cap // (n_block * C * wb["out"]))
    token_block = tt_block * R
    TB = math.ceil(TT / tt_block)
    NB = math.ceil(NT / n_block)
    act_bytes_total = T * layer.k * math.ceil(spec.act_width / 8)
    wgt_bytes_total = NT * G * wb["wgt"]
    order = _loop_order(act_bytes=act_bytes_total, wgt_bytes=wgt_bytes_total, TT=TB, NB=NB, KB=KB)

    tok_sizes = np.minimum(token_block, T - np.arange(TB) * token_block).astype(np.int64)
    nb_sizes = _block_sizes(NT, n_block)
    col_sizes = np.minimum(nb_sizes * C, layer.n_out - np.arange(NB) * n_block * C)
    kb_sizes = _block_sizes(G, g_block)
    kb_k = np.minimum(kb_sizes * group, layer.k - np.arange(KB) * g_block * group)
    ti, bi, ki, new_act, new_wgt = _run_grid(order, TB, NB, KB)
    run_tokens, run_ntiles, run_groups, run_cols = tok_sizes[ti], nb_sizes[bi], kb_sizes[ki], col_sizes[bi]
    fetch_act = np.where(new_act, run_tokens * kb_k[ki] * math.ceil(spec.act_width / 8), 0)
    fetch_wgt = np.where(new_wgt, run_ntiles * run_groups * wb["wgt"], 0)
    writeback = np.where(ki == KB - 1, run_tokens * run_cols * wb["acc"], 0)
    return {"k_block": g_block, "KB": KB, "n_block": n_block, "token_block": token_block, "order": order,
            "run_tokens": run_tokens, "run_ntiles": run_ntiles, "run_groups": run_groups,
            "run_accumulate": ki > 0, "run_cols": run_cols, "fetch_act": fetch_act, "fetch_wgt": fetch_wgt,
            "writeback": writeback}


def _plan_cost_os(spec: HardwareSpec, plan: dict) -> float:
    """As :func:`_plan_cost`, with :func:`sim.os_engine.os_run_cycles` runs."""
    from sparseforge.sim.os_engine import os_run_cycles

    tt = -(-plan["run_tokens"] // spec.rows)
    shapes, counts = np.unique(np.stack([tt, plan["run_ntiles"], plan["run_groups"]]), axis=1, return_counts=True)
    compute = sum(int(c) * os_run_cycles(spec, token_tiles=int(a), ntiles=int(b), groups=int(g))
                  for (a, b, g), c in zip(shapes.T, counts))
    nbytes = int(plan["fetch_act"].sum() + plan["fetch_wgt"].sum() + plan["writeback"].sum())
    dram = nbytes / spec.dram_bytes_per_cycle + len(plan["run_tokens"]) * spec.dram_latency_cycles
    return max(compute, dram)


def _map_layer_os(spec: HardwareSpec, layer: GemmLayer, sparsity: tuple[int, int] | None) -> LayerMapping:
    """Output-stationary mapping (``hwgen.os_engine``): tiles of ``rows`` tokens x ``cols``
    outputs, each streaming all its groups (one per cycle) unless one token tile's or one
    n-tile's groups do not fit a buffer; then the reduction is split into k-blocks of
    ``g_block`` groups (later k-blocks accumulate onto the output memory), ``g_block`` chosen
    from the largest that fits down by halves (not below ``2 * cols - 1``, the tile period
    floor) by the cost of :func:`_plan_cost_os`."""
    sparsity = check_sparsity(spec, sparsity) if layer.prunable else None
    if layer.k > spec.max_k:
        raise MappingError(f"layer {layer.name}: K = {layer.k} exceeds max_k = {spec.max_k} "
                           "(the accumulator is sized for max_k products): raise max_k")
    group = group_size(spec, sparsity)
    mode = "sparse" if group > spec.n else "dense"
    R, C, T = spec.rows, spec.cols, layer.tokens
    G = math.ceil(layer.k / group)
    TT, NT = math.ceil(T / R), math.ceil(layer.n_out / C)
    wb = _os_word_bytes(spec)
    half = 2 if spec.double_buffer else 1
    caps = {"act_cap": spec.input_buffer_kib * 1024 // half, "wgt_cap": spec.weight_buffer_kib * 1024 // half,
            "out_cap": spec.output_buffer_kib * 1024 // half}
    for key, buf in (("act", "input_buffer_kib"), ("wgt", "weight_buffer_kib")):
        if wb[key] > caps[f"{key}_cap"]:
            raise MappingError(f"layer {layer.name}: one output-stationary {key} word needs {wb[key]} bytes but "
                               f"{buf} = {getattr(spec, buf)} gives {caps[f'{key}_cap']} per buffer")
    if C * wb["out"] > caps["out_cap"]:
        raise MappingError(f"layer {layer.name}: one output-stationary tile's accumulators need {C * wb['out']} bytes "
                           f"but output_buffer_kib = {spec.output_buffer_kib} gives {caps['out_cap']} per buffer")
    g_max = min(G, caps["act_cap"] // wb["act"], caps["wgt_cap"] // wb["wgt"])
    kw = dict(group=group, G=G, TT=TT, NT=NT, wb=wb, **caps)
    plan = _plan_os(spec, layer, g_block=g_max, **kw)
    if g_max < G:
        best = _plan_cost_os(spec, plan)
        g = g_max // 2
        while g >= max(1, 2 * C - 1):
            cand = _plan_os(spec, layer, g_block=g, **kw)
            cost = _plan_cost_os(spec, cand)
            if cost < best:
                plan, best = cand, cost
            g //= 2
    reps = layer.count

    def rep(a: np.ndarray) -> np.ndarray:
        return np.tile(a, reps)

    nruns = len(plan["run_tokens"])
    return LayerMapping(
        layer=layer, mode=mode, sparsity=sparsity, group=group, ktiles=plan["KB"], ntiles=NT,
        token_block=int(plan["token_block"]), n_block=int(plan["n_block"]), k_block=int(plan["k_block"]),
        loop_order=plan["order"], run_tokens=rep(plan["run_tokens"]), run_ntiles=rep(plan["run_ntiles"]),
        run_ktiles=rep(np.ones(nruns, dtype=np.int64)), run_accumulate=rep(plan["run_accumulate"]),
        run_out_cols=rep(plan["run_cols"]), fetch_act_bytes=rep(plan["fetch_act"]),
        fetch_wgt_bytes=rep(plan["fetch_wgt"]), writeback_bytes=rep(plan["writeback"]),
        dataflow="output-stationary", run_groups=rep(plan["run_groups"]),
    )


def map_network(spec: HardwareSpec, network: Network, sparsity: tuple[int, int] | None) -> list[LayerMapping]:
    """Map every layer; prunable layers get ``sparsity`` (``None``: all dense)."""
    sparsity = check_sparsity(spec, sparsity)
    return [map_layer(spec, layer, sparsity) for layer in network.layers]
