"""Map a network's GEMMs onto the accelerator: modes, tiles, blocks, loop order, runs.

For each layer the mapper decides

- the **mode**: sparse (the layer's weights are N:M with the array's ``m`` and at most its
  ``n``) or dense (``n`` consecutive reduction indices per PE);
- the **tiling** over K and outputs, in the units of the engine's memories
  (:class:`sim.units.engine.Granules`): on the weight-stationary engine (``hwgen.engine``)
  ``ktiles`` k-tiles of ``rows`` groups and ``ntiles`` n-tiles of ``cols`` outputs, one
  token at a time; on the output-stationary engine (``hwgen.os_engine``) one group at a time
  and token tiles of ``rows`` tokens;
- the **blocks** that fit on chip: ``n_block`` n-tiles of weights (all their k units) in one
  weight-buffer half, ``token_block`` tokens of activations (all k units) in one
  input-buffer half and their ``n_block * cols`` accumulators in one output-buffer half
  (halves when the spec double-buffers, whole buffers otherwise);
- the **k-block**: the whole reduction unless one token's activations or one n-tile's
  weights would not fit a buffer; then the reduction is split (partial sums stay in the
  output buffer and later k-blocks accumulate onto them), and since longer k-blocks leave
  room for fewer tokens per run, candidates from the largest down by halves are costed
  (:func:`plan_cost`) and the cheapest kept;
- the **loop order** over blocks: tokens outer (activations fetched once, weights re-fetched
  per token block unless one weight block holds them all) or weights outer (the reverse),
  whichever moves fewer DRAM bytes.

**Which layers are sparse** is decided once per network by
:func:`sparseforge.models.network.sparsity_plan` (the layer's own masks, the default rule that
keeps the stem, depthwise convs and short reductions dense, ``--dense-layers``):
:func:`map_network` maps each layer with its plan entry and records why (``reason``). A
layer's mode, useful MACs and cycles always agree: a layer runs ``"sparse"`` exactly when it
has a pattern whose zeros the PEs skip (:func:`dataflow.layout.group_size` > ``spec.n``), and
only then are its useful MACs ``n/m`` of its MACs. A pattern the PEs cannot exploit at all
(e.g. 4:8 weights on 2:4 PEs, or any pattern on a dense array) runs dense: the same mapping,
cycles and useful MACs as the dense layer, its reason saying why.

Each (token block, weight block, k-block) is one *run* of the engine. The engine's cycle
model (:mod:`sim.units.engine`, chosen by ``spec.dataflow``) times runs exactly as the RTL
executes them; ``"switchable"`` maps each layer both ways and keeps the one whose layer runs
in fewer cycles alone (:func:`layer_cycles`; see :func:`map_layer` and docs/os_timing.md).
The simulator (``sim.simulate``) then overlaps the runs' DRAM transfers across layers.

**Grouped and depthwise convolutions** (a ``"conv"`` layer with ``count > 1``: its groups
share the output positions) may be *packed*: ``p`` groups side by side across the columns,
each column its own group's filter, as one block-diagonal GEMM
(:func:`dataflow.layout.pack_groups`) with the groups interleaved along the reduction, so that
N:M PEs skip the block-diagonal zeros with their index multiplexers
(:func:`dataflow.layout.packed_group_size`). ``p`` divides the group count, keeps
``p * k <= max_k``, and is the one whose packed GEMMs, each as one engine run, take the fewest
cycles (:func:`packing`). Only layers that run dense are packed (a pruned grouped conv keeps
its N:M groups along its own reduction); their mode is ``"packed"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from sparseforge.errors import InputError
from sparseforge.models.network import GemmLayer, LayerSparsity, Network, sparsity_plan
from sparseforge.sim.units.engine import OS, WS, EngineModel, engine_model
from sparseforge.sim.units.memory import memory_timeline
from sparseforge.spec import HardwareSpec

from .layout import group_size, packed_group_size

__all__ = ["MappingError", "LayerMapping", "Plan", "map_layer", "map_network", "plan", "plan_cost", "word_bytes",
           "check_sparsity", "run_compute_cycles", "layer_cycles", "packing", "Packing", "network_plan"]


class MappingError(InputError):
    """A layer cannot be mapped onto the hardware (one clear line, names the layer)."""


def word_bytes(spec: HardwareSpec, dataflow: str = WS) -> dict[str, int]:
    """Bytes of one word of each on-chip memory of ``dataflow``'s engine (rounded up), and of
    one accumulator."""
    bits = engine_model(dataflow).word_widths(spec)
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
    execution order (repeated ``layer.count`` times for independent identical GEMMs, or
    ``layer.count // pack`` times for a packed layer's block-diagonal GEMMs)."""

    layer: GemmLayer
    mode: str                 # "sparse" | "dense" | "packed" (groups packed block-diagonally)
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
    # output-stationary mappings: ``ktiles`` counts k-blocks, ``k_block`` is groups per
    # k-block, ``run_ktiles`` is 1 and ``run_groups`` the groups each run streams per tile;
    # ``token_block`` is a multiple of ``rows``
    dataflow: str = WS        # "weight-stationary" | "output-stationary"
    run_groups: np.ndarray | None = None
    # groups of a grouped/depthwise conv packed into one block-diagonal GEMM (1: not packed);
    # tiles, blocks and runs are those of the ``layer.count // pack`` packed GEMMs
    pack: int = 1
    # why the layer runs ``sparsity`` (a key of models.network.REASONS, plus a note when the
    # PEs cannot exploit the pattern it was given)
    reason: str = ""

    @property
    def runs(self) -> int:
        return len(self.run_tokens)

    @property
    def engine(self) -> EngineModel:
        """The cycle model of the engine the layer runs on."""
        return engine_model(self.dataflow)

    @property
    def run_kunits(self) -> np.ndarray:
        """k units each run streams per tile (:class:`sim.units.engine.Granules`)."""
        return self.run_groups if self.dataflow == OS else self.run_ktiles

    @property
    def useful_macs(self) -> int:
        """Multiply-accumulates with a kept weight (the work a dense GEMM would do, times
        n/m for an N:M layer); a packed layer's are its own, once (not the block-diagonal
        zeros)."""
        macs = self.layer.macs
        if self.sparsity:
            n, m = self.sparsity
            return macs * n // m
        return macs


#: most array runs one layer may be mapped to (token blocks x weight blocks x k-blocks x the
#: layer's ``count``): a mapping keeps a dozen numbers per run. The shipped workloads need at most
#: ~34,000 (MiniLM at 512 tokens on the tiny preset); a layer past the limit is refused before
#: any per-run array is built, and a k-block candidate past it is not considered.
MAX_RUNS = 1 << 20


def _runs(geo: "_Geometry", k_block: int) -> int:
    """Array runs of ``geo``'s layer with ``k_block`` k units per run (all ``count`` copies),
    as :func:`_plan` would lay them out, computed without building them."""
    KB = math.ceil(geo.KU / k_block)
    n_block = min(geo.NT, geo.wgt_cap // (k_block * geo.wgt), geo.out_cap // geo.out)
    t_block = min(geo.TU, geo.act_cap // (k_block * geo.act), geo.out_cap // (n_block * geo.out))
    return math.ceil(geo.TU / t_block) * math.ceil(geo.NT / n_block) * KB * geo.layer.count


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


@dataclass(frozen=True)
class _Geometry:
    """A layer in the units of one engine's memories: ``TU`` token units of ``tu`` tokens,
    ``KU`` k units of ``ku`` reduction indices, ``NT`` n-tiles; bytes of one token unit's
    activations per k unit (``act``), of one n-tile's weights per k unit (``wgt``) and of one
    token unit's outputs per n-tile (``out``), and the buffer (half) capacities."""

    model: EngineModel
    layer: GemmLayer
    group: int
    TU: int
    KU: int
    NT: int
    tu: int
    ku: int
    act: int
    wgt: int
    out: int
    acc: int
    act_cap: int
    wgt_cap: int
    out_cap: int
    k_block_floor: int


def _geometry(spec: HardwareSpec, layer: GemmLayer, group: int, dataflow: str) -> _Geometry:
    model = engine_model(dataflow)
    gr = model.granules(spec)
    wb = word_bytes(spec, dataflow)
    half = 2 if spec.double_buffer else 1
    return _Geometry(
        model=model, layer=layer, group=group, TU=math.ceil(layer.tokens / gr.tokens),
        KU=math.ceil(math.ceil(layer.k / group) / gr.groups), NT=math.ceil(layer.n_out / spec.cols),
        tu=gr.tokens, ku=gr.groups * group, act=gr.act_words * wb["act"], wgt=gr.wgt_words * wb["wgt"],
        out=gr.out_words * wb["out"], acc=wb["acc"], act_cap=spec.input_buffer_kib * 1024 // half,
        wgt_cap=spec.weight_buffer_kib * 1024 // half, out_cap=spec.output_buffer_kib * 1024 // half,
        k_block_floor=max(1, gr.k_block_floor))


@dataclass(frozen=True, eq=False)
class Plan:
    """Blocks, loop order and per-run arrays of a layer for one choice of k-block (``k_block``
    k units per run, ``kblocks`` k-blocks); ``token_block`` counts tokens."""

    dataflow: str
    k_block: int
    kblocks: int
    n_block: int
    token_block: int
    loop_order: str
    run_tokens: np.ndarray
    run_ntiles: np.ndarray
    run_kunits: np.ndarray
    run_accumulate: np.ndarray
    run_out_cols: np.ndarray
    fetch_act: np.ndarray
    fetch_wgt: np.ndarray
    writeback: np.ndarray


def _plan(spec: HardwareSpec, geo: _Geometry, k_block: int) -> Plan:
    lay = geo.layer
    T = lay.tokens
    KB = math.ceil(geo.KU / k_block)
    n_block = min(geo.NT, geo.wgt_cap // (k_block * geo.wgt), geo.out_cap // geo.out)
    t_block = min(geo.TU, geo.act_cap // (k_block * geo.act), geo.out_cap // (n_block * geo.out))
    token_block = t_block * geo.tu
    TB = math.ceil(geo.TU / t_block)
    NB = math.ceil(geo.NT / n_block)
    act_dram = math.ceil(spec.act_width / 8)                                # compact [T, K] in DRAM
    order = _loop_order(act_bytes=T * lay.k * act_dram, wgt_bytes=geo.NT * geo.KU * geo.wgt, TT=TB, NB=NB, KB=KB)

    tok_sizes = np.minimum(token_block, T - np.arange(TB) * token_block).astype(np.int64)
    nb_sizes = _block_sizes(geo.NT, n_block)
    col_sizes = np.minimum(nb_sizes * spec.cols, lay.n_out - np.arange(NB) * n_block * spec.cols)
    kb_sizes = _block_sizes(geo.KU, k_block)
    kb_k = np.minimum(kb_sizes * geo.ku, lay.k - np.arange(KB) * k_block * geo.ku)   # real K of each k-block

    ti, bi, ki, new_act, new_wgt = _run_grid(order, TB, NB, KB)
    run_tokens, run_ntiles, run_kunits, run_cols = tok_sizes[ti], nb_sizes[bi], kb_sizes[ki], col_sizes[bi]
    return Plan(
        dataflow=geo.model.dataflow, k_block=k_block, kblocks=KB, n_block=n_block, token_block=token_block,
        loop_order=order, run_tokens=run_tokens, run_ntiles=run_ntiles, run_kunits=run_kunits,
        run_accumulate=ki > 0, run_out_cols=run_cols,
        fetch_act=np.where(new_act, run_tokens * kb_k[ki] * act_dram, 0),
        fetch_wgt=np.where(new_wgt, run_ntiles * run_kunits * geo.wgt, 0),
        writeback=np.where(ki == KB - 1, run_tokens * run_cols * geo.acc, 0))


def plan(spec: HardwareSpec, layer: GemmLayer, *, group: int, k_block: int, dataflow: str = WS) -> Plan:
    """The :class:`Plan` of ``layer`` with ``group`` reduction indices per PE and ``k_block``
    k units per run on ``dataflow``'s engine (no check that its words fit the buffers)."""
    return _plan(spec, _geometry(spec, layer, group, dataflow), k_block)


def plan_cost(spec: HardwareSpec, p: Plan) -> float:
    """Cycles of a plan if compute and DRAM overlapped perfectly: the larger of the engine
    cycles of its runs (exact) and its DRAM transfer time."""
    compute = int(engine_model(p.dataflow).run_cycles(spec, p.run_tokens, p.run_ntiles, p.run_kunits).sum())
    nbytes = int(p.fetch_act.sum() + p.fetch_wgt.sum() + p.writeback.sum())
    dram = nbytes / spec.dram_bytes_per_cycle + len(p.run_tokens) * spec.dram_latency_cycles
    return max(compute, dram)


def run_compute_cycles(spec: HardwareSpec, mp: LayerMapping) -> np.ndarray:
    """Engine cycles of each run of a mapped layer (exact, see :mod:`sim.units.engine`)."""
    return mp.engine.run_cycles(spec, mp.run_tokens, mp.run_ntiles, mp.run_kunits)


def layer_cycles(spec: HardwareSpec, mp: LayerMapping) -> int:
    """Cycles of a mapped layer alone: its runs from empty buffers at cycle 0 to its last
    write-back (:func:`sim.units.memory.memory_timeline`), what ``sim.simulate.simulate_layer``
    reports for it."""
    return memory_timeline(spec, run_compute_cycles(spec, mp), mp.fetch_act_bytes + mp.fetch_wgt_bytes,
                           mp.writeback_bytes)


#: what does not fit when a buffer cannot hold the smallest piece a run needs, per engine:
#: (buffer key, the piece, a hint)
_PIECES = {
    WS: (("wgt", "one weight tile needs", ": raise weight_buffer_kib"),
         ("act", "one activation word needs", ": raise input_buffer_kib"),
         ("out", "one token's accumulators need", "")),
    OS: (("act", "one output-stationary act word needs", ""), ("wgt", "one output-stationary wgt word needs", ""),
         ("out", "one output-stationary tile's accumulators need", "")),
}
_BUFFERS = {"act": "input_buffer_kib", "wgt": "weight_buffer_kib", "out": "output_buffer_kib"}


def map_layer(spec: HardwareSpec, layer: GemmLayer, sparsity: tuple[int, int] | None, *,
              reason: str | None = None) -> LayerMapping:
    """Map one layer with the spec's dataflow: weight-stationary (the default),
    output-stationary, or ``switchable``: both, keeping the one whose layer runs in fewer
    cycles alone (:func:`layer_cycles`; ties keep weight-stationary), or the only one that
    fits the buffers. A prunable layer runs ``sparsity`` unless the PEs cannot exploit it
    (then dense, see the module docstring); ``reason`` (default ``"sparsity"``, or
    ``"dense run"``/``"no weights"``) is recorded with the mapping."""
    if spec.dataflow != "switchable":
        mp = _map_layer(spec, layer, sparsity, spec.dataflow)
    else:
        fits, errors = [], []
        for dataflow in (WS, OS):
            try:
                fits.append(_map_layer(spec, layer, sparsity, dataflow))
            except MappingError as e:
                errors.append(e)
        if not fits:
            raise errors[0] from None
        mp = min(fits, key=lambda mp: layer_cycles(spec, mp))
    return replace(mp, reason=_reason(spec, layer, sparsity, mp, reason))


def _reason(spec: HardwareSpec, layer: GemmLayer, asked: tuple[int, int] | None, mp: LayerMapping,
            reason: str | None) -> str:
    if reason is None:
        reason = "no weights" if layer.kind == "attention" else \
            "dense run" if asked is None or asked[0] == asked[1] else "sparsity" if layer.prunable else "no weights"
    if layer.prunable and asked is not None and asked[0] < asked[1] and mp.sparsity is None:
        reason += f" ({asked[0]}:{asked[1]} unsupported by the {spec.n}:{spec.m} PEs: runs dense)"
    return reason


def check_layers(spec: HardwareSpec, layers: "list[tuple[GemmLayer, tuple[int, int] | None]]") -> None:
    """Refuse, before any layer is simulated, a workload the mapper would refuse part way:
    every ``(layer, sparsity)`` pair gets the checks of :func:`map_layer` (sparsity, ``max_k``,
    buffer pieces, the :data:`MAX_RUNS` limit) without building its plan. Raises the same
    :class:`MappingError` the mapping would. (``switchable``: either dataflow may take it.)"""
    flows = (WS, OS) if spec.dataflow == "switchable" else (spec.dataflow,)
    for layer, sparsity in layers:
        errors = []
        for dataflow in flows:
            try:
                _check_layer(spec, layer, sparsity, dataflow)
                break
            except MappingError as e:
                errors.append(e)
        else:
            raise errors[0] from None


@dataclass(frozen=True)
class Packing:
    """How a layer's GEMMs are packed: ``gemm`` (``count`` packed GEMMs) is what the engine
    runs, ``pack`` groups each, ``group`` reduction indices per PE."""

    gemm: GemmLayer
    pack: int
    group: int


def packing(spec: HardwareSpec, layer: GemmLayer, sparsity: tuple[int, int] | None,
            dataflow: str = WS) -> Packing:
    """The packing of ``layer`` (already-checked ``sparsity``) on ``dataflow``'s engine.

    A ``"conv"`` layer with ``count > 1`` groups that runs dense may be packed ``p`` groups
    per GEMM (see the module docstring): ``p`` a divisor of ``count`` with ``p * k <= max_k``
    (a run's products per output, zeros included, stay within what the accumulator holds,
    :func:`sim.units.engine.acc_capacity`), PE group ``packed_group_size(p, k)``. A packed
    GEMM may span several n-tiles (each streams the whole packed reduction: worth it when
    ``k`` is short, as in a depthwise conv's BP).
    Of these (and ``p = 1``, unpacked) the one whose ``count // p`` GEMMs take the fewest
    engine cycles, each GEMM as a single run (``EngineModel.run_cycles``: exact for one run;
    buffer blocking is not costed here), is kept; ties keep the larger ``p`` (fewer runs).
    Anything else is not packed (``pack = 1``, the group of :func:`group_size`)."""
    plain = Packing(gemm=layer, pack=1, group=group_size(spec, sparsity))
    if not (sparsity is None and layer.kind == "conv" and layer.count > 1):
        return plain
    model = engine_model(dataflow)
    gr = model.granules(spec)
    T = np.array([layer.tokens])

    def cost(p: int, g: int) -> int:
        ku = math.ceil(math.ceil(p * layer.k / g) / gr.groups)
        nt = math.ceil(p * layer.n_out / spec.cols)
        return (layer.count // p) * int(model.run_cycles(spec, T, np.array([nt]), np.array([ku]))[0])

    best, best_cost = plain, cost(1, plain.group)
    for p in range(2, layer.count + 1):
        if layer.count % p or p * layer.k > spec.max_k:
            continue
        g = packed_group_size(spec, p, layer.k)
        c = cost(p, g)
        if c <= best_cost:
            gemm = GemmLayer(name=layer.name, tokens=layer.tokens, k=p * layer.k, n_out=p * layer.n_out,
                             kind=layer.kind, prunable=False, group=layer.group, count=layer.count // p)
            best, best_cost = Packing(gemm=gemm, pack=p, group=g), c
    return best


def _check_layer(spec: HardwareSpec, layer: GemmLayer, sparsity: tuple[int, int] | None,
                 dataflow: str) -> tuple["_Geometry", int, tuple[int, int] | None, int]:
    """The checks of one layer's mapping: its geometry (of the packed GEMM where the layer is
    packed), the largest k-block, its sparsity, its packing."""
    sparsity = check_sparsity(spec, sparsity) if layer.prunable else None
    if sparsity is not None and group_size(spec, sparsity) <= spec.n:
        sparsity = None             # the PEs cannot skip any of its zeros: the layer runs dense
    if layer.k > spec.max_k:
        raise MappingError(f"layer {layer.name}: K = {layer.k} exceeds max_k = {spec.max_k} "
                           "(the accumulator is sized for max_k products): raise it, e.g. "
                           f"--set max_k={1 << (layer.k - 1).bit_length()} or max_k in the spec file")
    pk = packing(spec, layer, sparsity, dataflow)
    layer = pk.gemm
    geo = _geometry(spec, layer, pk.group, dataflow)
    for key, piece, hint in _PIECES[dataflow]:
        need, cap = getattr(geo, key), getattr(geo, f"{key}_cap")
        if need > cap:
            buf = _BUFFERS[key]
            raise MappingError(f"layer {layer.name}: {piece} {need} bytes but {buf} = {getattr(spec, buf)} "
                               f"gives {cap} per buffer{hint}")
    k_max = min(geo.KU, geo.act_cap // geo.act, geo.wgt_cap // geo.wgt)
    runs = _runs(geo, k_max)
    if runs > MAX_RUNS:
        raise MappingError(f"layer {layer.name}: {runs} array runs ({layer.tokens} tokens, K = {layer.k}, "
                           f"{layer.n_out} outputs, x {layer.count}) are more than the {MAX_RUNS} one layer may "
                           "take: lower the batch or tokens, or raise the buffers")
    return geo, k_max, sparsity, pk.pack


def _map_layer(spec: HardwareSpec, layer: GemmLayer, sparsity: tuple[int, int] | None, dataflow: str) -> LayerMapping:
    geo, k_max, sparsity, pack = _check_layer(spec, layer, sparsity, dataflow)
    group = geo.group
    best = _plan(spec, geo, k_max)
    if k_max < geo.KU:
        cost = plan_cost(spec, best)
        k = k_max // 2
        while k >= geo.k_block_floor:
            if _runs(geo, k) <= MAX_RUNS:            # a candidate past the limit is not built
                cand = _plan(spec, geo, k)
                c = plan_cost(spec, cand)
                if c < cost:
                    best, cost = cand, c
            k //= 2

    def rep(a: np.ndarray) -> np.ndarray:
        return np.tile(a, geo.layer.count)          # the (packed) GEMMs, one after another

    if dataflow == OS:      # ``ktiles`` counts k-blocks; a run streams ``run_groups`` groups per tile
        ktiles, run_ktiles, run_groups = best.kblocks, np.ones_like(best.run_kunits), rep(best.run_kunits)
    else:
        ktiles, run_ktiles, run_groups = geo.KU, best.run_kunits, None
    return LayerMapping(
        layer=layer, mode="packed" if pack > 1 else "sparse" if group > spec.n else "dense", sparsity=sparsity,
        group=group, ktiles=ktiles,
        ntiles=geo.NT, token_block=int(best.token_block), n_block=int(best.n_block), k_block=int(best.k_block),
        loop_order=best.loop_order, run_tokens=rep(best.run_tokens), run_ntiles=rep(best.run_ntiles),
        run_ktiles=rep(run_ktiles), run_accumulate=rep(best.run_accumulate), run_out_cols=rep(best.run_out_cols),
        fetch_act_bytes=rep(best.fetch_act), fetch_wgt_bytes=rep(best.fetch_wgt), writeback_bytes=rep(best.writeback),
        dataflow=dataflow, run_groups=run_groups, pack=pack,
    )


def network_plan(spec: HardwareSpec, network: Network, sparsity: tuple[int, int] | None,
                 plan: "tuple[LayerSparsity, ...] | None" = None) -> tuple[LayerSparsity, ...]:
    """The checked per-layer plan of a run: ``plan`` (one entry per layer) or, without one,
    :func:`sparseforge.models.network.sparsity_plan` of the run's ``sparsity`` with the default
    rule. Every pattern is checked (:func:`check_sparsity`)."""
    sparsity = check_sparsity(spec, sparsity)
    if plan is None:
        plan = sparsity_plan(network, sparsity)
    plan = tuple(plan)
    if len(plan) != len(network.layers):
        raise MappingError(f"plan of {len(plan)} entries is not allowed for network {network.name!r} of "
                           f"{len(network.layers)} layers: give one per layer")
    for layer, ls in zip(network.layers, plan):
        if ls.pattern is not None:
            try:
                check_sparsity(spec, ls.pattern)
            except MappingError as exc:
                raise MappingError(f"layer {layer.name}: {exc}") from None
    return plan


def map_network(spec: HardwareSpec, network: Network, sparsity: tuple[int, int] | None,
                plan: "tuple[LayerSparsity, ...] | None" = None) -> list[LayerMapping]:
    """Map every layer as the run's plan says (:func:`network_plan`: by default the rule of
    :func:`sparseforge.models.network.sparsity_plan` at ``sparsity``; ``None``: all dense)."""
    plan = network_plan(spec, network, sparsity, plan)
    return [map_layer(spec, layer, ls.pattern, reason=ls.reason) for layer, ls in zip(network.layers, plan)]
