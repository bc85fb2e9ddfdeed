"""The PE and the systolic array on their own, in Icarus Verilog, on real pruned MiniLM data.

``tests/test_rtl_engine.py`` checks whole GEMMs through the engine; here the two building
blocks are driven directly, cycle by cycle, so their timing contracts are pinned down where
they are defined:

- ``sf_pe`` (:class:`hwgen.pe.SparsePE`): what ``psum_out`` holds and exactly when, the
  one-cycle forwarding of ``x``/``first``, and the double-buffered weights;
- ``sf_array`` (:class:`hwgen.array.SparseArray`): ``spec.array_latency``, bit-exact
  outputs for one tile, and back-to-back tiles whose weights load while the previous tile
  streams.

The bench ``sparseforge/verify/cocotb_trace.py`` plays a schedule built
here and record every output in every cycle; all checks are made here on that trace.
Cycle convention (see the benches): ``cycles[j]`` is applied during cycle j (rising edge j
samples it); ``trace[j]`` is what the outputs hold during cycle j. A value applied in cycle
i that crosses k registers shows in ``trace[i + k]``.

Operands are real: ``x_q`` activations of real text through the pruned int8 MiniLM and its
``w_q`` weights pruned N:M by magnitude (or dense int8 for the 4:4 array). Each RTL run is
shared by the tests of its spec (module-scoped fixtures), so every spec is simulated once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from sparseforge.dataflow.layout import pack_words
from sparseforge.models.golden import gemm_dense_int, gemm_nm_int
from sparseforge.models.prune import NMCompressed
from sparseforge.spec import HardwareSpec
from sparseforge.verify.harness import run_bench

PE_PORTS = {"inputs": ["x_in", "first_in", "psum_in", "w_we", "w_data", "w_idx"],
            "outputs": ["x_out", "first_out", "psum_out"]}
ARRAY_PORTS = {"inputs": ["x_valid", "x_first", "x_data", "w_we", "w_row", "w_data", "w_idx"],
               "outputs": ["y_valid", "y_data"]}

pytestmark = [pytest.mark.rtl, pytest.mark.minilm]


# --------------------------------------------------------------------------- helpers
def _real_layer(n: int, m: int, layer: str):
    """A real layer of MiniLM pruned ``n:m`` (dense int8 when n == m)."""
    from tests.pruned_minilm import best_pruned_minilm
    try:
        model = best_pruned_minilm(n, m)
    except FileNotFoundError as exc:  # the weights package is missing on this machine
        pytest.skip(f"real MiniLM weights are not installed: {exc}")
    return model.layer(layer)


def _signed(v: int, width: int) -> int:
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


def _pack(fields, width: int) -> int:
    """One word of little-endian two's complement fields."""
    return pack_words(np.asarray(fields, dtype=np.int64).reshape(1, -1), width)[0]


def _weights(lay, spec: HardwareSpec, o: slice, g: slice):
    """Weights of outputs ``o`` and groups ``g`` as the PEs hold them: ``values``,
    ``indices`` ``[outs, groups, n]``. Sparse: the layer's N:M compressed form; dense: the
    ``m`` consecutive weights of each group with lane indices."""
    if spec.dense:
        m = spec.m
        w = lay.w_q.astype(np.int64)[o]
        gs = range(lay.w_q.shape[1] // m)[g]
        vals = np.stack([w[:, gi * m:(gi + 1) * m] for gi in gs], axis=1)
        idx = np.broadcast_to(np.arange(m, dtype=np.uint8), vals.shape).copy()
        return vals, idx
    assert lay.comp is not None and lay.comp.n == spec.n and lay.comp.m == spec.m
    return lay.comp.values[o, g].astype(np.int64), lay.comp.indices[o, g]


def _golden(x: np.ndarray, vals: np.ndarray, idx: np.ndarray, spec: HardwareSpec) -> np.ndarray:
    """``Y[T, outs]`` for activations ``x[T, groups*m]`` and grouped weights, from the golden
    models: :func:`gemm_nm_int` on the compressed form for sparse specs (cross-checked
    against :func:`gemm_dense_int` on the dense form), :func:`gemm_dense_int` for dense."""
    outs, groups, _ = vals.shape
    k = groups * spec.m
    if spec.dense:
        return gemm_dense_int(x, vals.reshape(outs, k))
    comp = NMCompressed(values=vals, indices=np.asarray(idx, dtype=np.uint8), n=spec.n, m=spec.m, k=k)
    y = gemm_nm_int(x, comp)
    assert np.array_equal(y, gemm_dense_int(x, comp.to_dense())), "golden models disagree"
    return y


def _junk_idx(spec: HardwareSpec) -> int:
    """For a dense spec, a ``w_idx`` word that is not the identity (a dense PE must ignore
    it): lanes in reverse order."""
    return _pack([spec.m - 1 - i for i in range(spec.n)], spec.idx_width)


# =========================================================================== the PE
# (n, m, real layer): 2:4, 1:4, 2:8 and a dense 4:4 PE
PE_GRID = [
    (2, 4, "layer0.attn.q"),
    (1, 4, "layer1.ffn.up"),
    (2, 8, "layer2.ffn.down"),
    (4, 4, "layer3.attn.o"),
]
PE_TILES = 6       # weight sets streamed one after another
PE_TOKENS = 8      # activation vectors per weight set
PE_START = 2       # cycle of the first activation vector (cycle 0 loads the shadow)
PSUM_IDLE = 0x5A5A5A5  # psum_in whenever no vector is due at the adder: junk, not zero


@dataclass
class PeVector:
    cycle: int          # cycle in which x_in carries it
    tile: int
    token: int
    psum_in: int        # applied in cycle `cycle + pe_latency`
    expected: int       # sum_i x[idx_i] * w_i + psum_in
    shadow: list = field(default_factory=list)  # (write cycle, value with the shadow's weights) for writes made earlier in its tile


@dataclass
class PeRun:
    spec: HardwareSpec
    cycles: list
    trace: list
    vectors: list
    writes: list        # (cycle, tile whose weights are written, label)


def _pe_tiles(lay, spec: HardwareSpec):
    """``PE_TILES + 1`` (output, group) pairs of the layer (the last one is the decoy), all
    weights nonzero, group >= 1 (so the incoming partial sum is a real partial dot product),
    covering as many distinct index patterns as the layer has, in a fixed pseudo-random
    order."""
    outs, K = lay.w_q.shape
    G = K // spec.m
    rng = np.random.default_rng(1234)
    cand = [(int(o), int(g)) for o, g in zip(rng.integers(0, outs, 4000), rng.integers(1, G, 4000))]
    picked, seen = [], set()
    for want_new in (True, False):
        for o, g in cand:
            if len(picked) == PE_TILES + 1:
                break
            vals, idx = _weights(lay, spec, slice(o, o + 1), slice(g, g + 1))
            pattern = tuple(idx.ravel())
            if (o, g) in picked or not np.all(vals != 0) or (want_new and pattern in seen):
                continue
            seen.add(pattern)
            picked.append((o, g))
    assert len(picked) == PE_TILES + 1
    return picked


def _pe_schedule(spec: HardwareSpec, layer: str):
    lay = _real_layer(spec.n, spec.m, layer)
    x_all = lay.x_q.astype(np.int64)
    w_all = lay.w_q.astype(np.int64)
    m, L = spec.m, spec.pe_latency
    tiles = _pe_tiles(lay, spec)
    words = []  # (w_data, w_idx, values, indices) per tile
    for o, g in tiles:
        vals, idx = _weights(lay, spec, slice(o, o + 1), slice(g, g + 1))
        wi = _junk_idx(spec) if spec.dense else _pack(idx.ravel(), spec.idx_width)
        words.append((_pack(vals.ravel(), spec.weight_width), wi, vals, idx))
    # a decoy: weights of another real group, written and then overwritten
    decoy = words.pop()
    tiles = tiles[:PE_TILES]

    n_cycles = PE_START + PE_TILES * PE_TOKENS + L + 3
    cycles = [dict(psum_in=PSUM_IDLE) for _ in range(n_cycles)]
    for c in range(n_cycles):  # x_in always carries real data, even when unused
        cycles[c]["x_in"] = _pack(x_all[100 + c % 20, :m], spec.act_width)
    writes = []

    def write(cycle, tile, label, word=None):
        wd, wi, _, _ = word if word is not None else words[tile]
        cycles[cycle].update(w_we=1, w_data=wd, w_idx=wi)
        writes.append((cycle, tile, label))

    write(0, 0, "initial load")
    vectors = []
    for k, (o, g) in enumerate(tiles):
        start = PE_START + k * PE_TOKENS
        toks = np.arange(k * PE_TOKENS, (k + 1) * PE_TOKENS)
        xg = x_all[toks, g * m:(g + 1) * m]
        _, _, vals, idx = words[k]
        psum = x_all[toks, :g * m] @ w_all[o, :g * m]  # real partial sums of the groups above
        y = _golden(xg, vals, idx, spec)[:, 0] + psum
        assert np.array_equal(y, x_all[toks, :(g + 1) * m] @ w_all[o, :(g + 1) * m])
        # the shadow for the next tile is written at varying points of this tile: in the
        # very cycle of this tile's first_in (the swap takes the *old* shadow), mid-tile after
        # a decoy write, or in the last cycle before the next first_in
        shadow_writes = []
        if k + 1 < PE_TILES:
            case = k % 3
            if case == 0:
                shadow_writes = [(start, k + 1, "next tile, same cycle as first_in", None)]
            elif case == 1:
                shadow_writes = [(start, None, "decoy", decoy),
                                 (start + PE_TOKENS // 2, k + 1, "next tile, mid-tile", None)]
            else:
                shadow_writes = [(start + PE_TOKENS - 1, k + 1, "next tile, last cycle of tile", None)]
        for cyc, tile, label, word in shadow_writes:
            write(cyc, tile, label, word)
        for t in range(PE_TOKENS):
            c = start + t
            cycles[c].update(x_in=_pack(xg[t], spec.act_width), first_in=int(t == 0))
            cycles[c + L]["psum_in"] = int(psum[t]) & ((1 << spec.acc_width) - 1)
            v = PeVector(cycle=c, tile=k, token=int(toks[t]), psum_in=int(psum[t]), expected=int(y[t]))
            for cyc, tile, label, word in shadow_writes:
                if cyc <= c:  # written at or before the edge that takes this vector into x_reg
                    _, _, sv, si = word if word is not None else words[tile]
                    v.shadow.append((cyc, label, int(_golden(xg[t:t + 1], sv, si, spec)[0, 0] + psum[t])))
            vectors.append(v)
    return cycles, vectors, writes


@pytest.fixture(scope="module", params=PE_GRID, ids=[f"{n}of{m}" for n, m, _ in PE_GRID])
def pe_run(request, tmp_path_factory) -> PeRun:
    n, m, layer = request.param
    spec = HardwareSpec(rows=1, cols=1, n=n, m=m, max_k=4096)
    cycles, vectors, writes = _pe_schedule(spec, layer)
    result = run_bench(spec, design="pe", bench="cocotb_trace", case={"cycles": cycles, **PE_PORTS},
                       workdir=tmp_path_factory.mktemp(f"pe_{n}of{m}"))
    return PeRun(spec=spec, cycles=cycles, trace=result["trace"], vectors=vectors, writes=writes)


def test_pe_psum_out_timing_and_value(pe_run):
    """``psum_out`` = sum_i x[idx_i] * w_i + psum_in, bit-exact, at an exact cycle.

    Precisely: for an activation group applied on ``x_in`` (with ``first_in`` on the first
    vector of each weight set) in cycle i, ``x_reg`` holds it from rising edge i, and after
    ``spec.pe_latency`` (= 4) more rising edges (index mux, multiply, product sum, add)
    ``psum_out`` holds the result: it is seen in cycle ``i + pe_latency + 1`` -- i.e.
    ``pe_latency`` cycles after ``x_out``, which shows the same vector in cycle i + 1. The
    ``psum_in`` added is the one applied in cycle ``i + pe_latency`` (the cycle whose closing
    edge loads the partial-sum register, when the PE above shows its own result). Every
    vector of 6 real weight sets x 8 real tokens is checked; ``psum_in`` carries real partial
    dot products that change every cycle (and junk when no vector is due), and the results
    of consecutive vectors differ, so a pipeline off by one cycle in either the activation or
    the partial-sum path would fail."""
    spec, trace = pe_run.spec, pe_run.trace
    L = spec.pe_latency
    bad = []
    for v in pe_run.vectors:
        raw = trace[v.cycle + L + 1]["psum_out"]
        got = None if raw is None else _signed(raw, spec.acc_width)
        if got != v.expected:
            near = {d: trace[v.cycle + L + 1 + d]["psum_out"] for d in (-1, 1)}
            bad.append(f"tile {v.tile} token {v.token} (x_in in cycle {v.cycle}): psum_out in cycle "
                       f"{v.cycle + L + 1} = {got}, expected {v.expected} (raw one cycle early/late: {near})")
    assert not bad, f"{len(bad)} of {len(pe_run.vectors)} results wrong, first: {bad[0]}"
    exp = [v.expected for v in pe_run.vectors]
    assert any(a != b for a, b in zip(exp, exp[1:])), "data cannot tell a one-cycle shift apart"


def test_pe_forwards_x_and_first_one_cycle_later(pe_run):
    """``x_out``/``first_out`` are ``x_in``/``first_in`` delayed by exactly one cycle, in
    every cycle of the run (idle cycles with junk activations included), and both are 0
    straight out of reset."""
    trace, cycles = pe_run.trace, pe_run.cycles
    assert trace[0]["x_out"] == 0 and trace[0]["first_out"] == 0, f"after reset: {trace[0]}"
    bad = [(i, c.get("x_in", 0), c.get("first_in", 0), trace[i + 1])
           for i, c in enumerate(cycles)
           if trace[i + 1]["x_out"] != c.get("x_in", 0) or trace[i + 1]["first_out"] != c.get("first_in", 0)]
    assert not bad, f"{len(bad)} cycles wrong, first (cycle, x_in, first_in, outputs next cycle): {bad[0]}"


def test_pe_weights_double_buffered(pe_run):
    """Weights written into the shadow (``w_we``) while a weight set streams do not touch its
    results; the next ``first_in`` makes them active for the vector that carries it.

    Covered write points: in the same cycle as the current set's ``first_in`` (the swap at
    that edge takes the old shadow, the write lands in the shadow), mid-set (after a decoy
    write that is then overwritten: only the shadow's value at the swap counts), and in the
    last cycle before the next ``first_in``. For every vector streamed after such a write,
    the result equals the old weights' and -- checked here so the test cannot pass vacuously --
    differs from what the shadow's weights would give for at least one vector per write; the
    following set's results (checked by the timing test too) use the newly written weights."""
    spec, trace = pe_run.spec, pe_run.trace
    L = spec.pe_latency
    by_write: dict[tuple, list] = {}
    for v in pe_run.vectors:
        got = trace[v.cycle + L + 1]["psum_out"]
        got = None if got is None else _signed(got, spec.acc_width)
        for cyc, label, with_shadow in v.shadow:
            by_write.setdefault((v.tile, cyc, label), []).append((v, got, with_shadow))
    labels = {label for (_, _, label) in by_write}
    assert {"next tile, same cycle as first_in", "decoy", "next tile, mid-tile",
            "next tile, last cycle of tile"} <= labels
    for (tile, cyc, label), rows in by_write.items():
        assert any(v.expected != ws for v, _, ws in rows), \
            f"tile {tile}: the {label!r} write in cycle {cyc} holds weights giving the same results"
        leaked = [(v.token, got, v.expected, ws) for v, got, ws in rows if got != v.expected]
        assert not leaked, (f"tile {tile}: shadow write ({label}) in cycle {cyc} changed results before "
                            f"the next first_in; first (token, got, expected, with shadow weights): {leaked[0]}")
    # the weight set after each write is the one written
    for k in range(1, PE_TILES):
        first = next(v for v in pe_run.vectors if v.tile == k)
        got = _signed(trace[first.cycle + L + 1]["psum_out"], spec.acc_width)
        assert got == first.expected, f"tile {k}: its first vector did not use the weights written for it"


# =========================================================================== the array
# (rows, cols, n, m, real layer)
ARRAY_GRID = [
    (4, 4, 2, 4, "layer0.attn.q"),
    (3, 5, 1, 4, "layer1.ffn.up"),
    (2, 6, 2, 8, "layer2.ffn.down"),
    (4, 4, 4, 4, "layer3.attn.o"),
]


@dataclass
class ArrayTile:
    name: str
    out0: int
    group0: int
    tokens: np.ndarray
    x: np.ndarray          # [T, rows*m]
    vals: np.ndarray       # [cols, rows, n]
    idx: np.ndarray
    y: np.ndarray          # [T, cols] golden
    cycles: list           # cycle in which each vector is applied (x_valid = 1)


@dataclass
class ArrayRun:
    spec: HardwareSpec
    cycles: list
    trace: list
    tiles: list
    bubbles: list          # cycles with x_valid = 0 and x_first = 1 inside the stream
    decoy_y: np.ndarray    # tile C's last vectors with the decoy weights
    loads: dict            # tile name -> [cycle of row r's load]


def _array_tile(lay, spec, name, out0, group0, tok0, T):
    R, C, m = spec.rows, spec.cols, spec.m
    vals, idx = _weights(lay, spec, slice(out0, out0 + C), slice(group0, group0 + R))
    toks = np.arange(tok0, tok0 + T)
    x = lay.x_q.astype(np.int64)[toks, group0 * m:(group0 + R) * m]
    y = _golden(x, vals, idx, spec)
    w = lay.w_q.astype(np.int64)[out0:out0 + C, group0 * m:(group0 + R) * m]
    assert np.array_equal(y, x @ w.T), "the tile's weights are the layer's"
    return ArrayTile(name, out0, group0, toks, x, vals, idx, y, [])


def _row_word(spec, tile, r):
    """Array row r's weight load: column c's n weights at [c*n*ww, (c+1)*n*ww) of w_data and
    its n indices at [c*n*iw, ...) of w_idx (the engine's weight word, split in two)."""
    wd = _pack(tile.vals[:, r, :].ravel(), spec.weight_width)
    wi = _junk_idx(spec) * sum(1 << (c * spec.n * spec.idx_width) for c in range(spec.cols)) \
        if spec.dense else _pack(tile.idx[:, r, :].ravel(), spec.idx_width)
    return wd, wi


def _array_schedule(spec: HardwareSpec, layer: str):
    """Three real tiles A, B, C and a decoy D:

    - A's rows load in cycles 0..rows-1; A streams ``cols`` vectors from cycle rows + 1;
    - B's row r loads in cycle ``first_A + cols + r`` -- the earliest cycle the rule allows
      (A's first vector reaches row r's last PE in that cycle's closing edge); B streams
      ``cols + 3`` vectors right after A's last, with no gap. With A only ``cols`` long,
      B's row r load is also the *latest* possible: B's first vector swaps row r's first PE
      at the closing edge of cycle ``first_B + r + 1``;
    - after B, two bubble cycles (x_valid = 0 with x_first = 1 and real junk data), then C:
      C's rows load from ``first_C_loads = first_B + cols``; C streams ``cols`` vectors, a
      bubble (x_first = 1, x_valid = 0), and 3 more; the decoy D's rows load into the shadow
      once C's first vector has passed each row, so a bubble whose x_first were not masked by
      x_valid would swap D in for C's last 3 vectors."""
    lay = _real_layer(spec.n, spec.m, layer)
    R, C = spec.rows, spec.cols
    x_all = lay.x_q.astype(np.int64)
    A = _array_tile(lay, spec, "A", 0, 0, 0, C)
    B = _array_tile(lay, spec, "B", 3 * C, 5 * R, 20, C + 3)
    Ct = _array_tile(lay, spec, "C", 7 * C + 1, 9 * R + 2, 50, C + 3)
    D = _array_tile(lay, spec, "D", 11 * C + 2, 13 * R + 1, 50, C + 3)

    first_A = R + 1
    first_B = first_A + C
    first_C = first_B + len(B.tokens) + 2
    n_cycles = first_C + len(Ct.tokens) + 1 + spec.array_latency + 3
    junk = lambda c: _pack(x_all[90 + c % 30, :R * spec.m], spec.act_width)  # noqa: E731
    cycles = [dict(x_data=junk(c)) for c in range(n_cycles)]
    loads = {}

    def load(tile, start):
        loads[tile.name] = []
        for r in range(R):
            wd, wi = _row_word(spec, tile, r)
            cyc = start + r
            assert "w_we" not in cycles[cyc]
            cycles[cyc].update(w_we=1, w_row=r, w_data=wd, w_idx=wi)
            loads[tile.name].append(cyc)

    def stream(tile, start, bubble_at=None):
        c = start
        for t in range(len(tile.tokens)):
            if t == bubble_at:
                cycles[c].update(x_valid=0, x_first=1)
                bubbles.append(c)
                c += 1
            cycles[c].update(x_valid=1, x_first=int(t == 0),
                             x_data=_pack(tile.x[t], spec.act_width))
            tile.cycles.append(c)
            c += 1
        return c

    bubbles: list[int] = []
    load(A, 0)
    end_A = stream(A, first_A)
    assert end_A == first_B
    load(B, first_A + C)
    end_B = stream(B, first_B)
    for c in (end_B, end_B + 1):
        cycles[c].update(x_valid=0, x_first=1)
        bubbles.append(c)
    load(Ct, first_B + C)
    stream(Ct, first_C, bubble_at=C)
    load(D, first_C + C)
    # the rule, checked on the schedule itself: row r of the next tile loads no earlier than
    # the previous tile's first vector + cols + r, and no later than its own first vector + r
    for prev, nxt in ((A, B), (B, Ct), (Ct, None)):
        for r in range(R):
            lc = loads[{"A": "B", "B": "C", "C": "D"}[prev.name]][r]
            assert lc >= prev.cycles[0] + C + r
            if nxt is not None:
                assert lc <= nxt.cycles[0] + r
    # D's weights on C's vectors after the in-tile bubble: must differ for the check to bite
    decoy_y = _golden(Ct.x, D.vals, D.idx, spec)
    assert not np.array_equal(decoy_y[C:], Ct.y[C:])
    return cycles, [A, B, Ct], bubbles, decoy_y, loads


@pytest.fixture(scope="module", params=ARRAY_GRID, ids=[f"{r}x{c}-{n}of{m}" for r, c, n, m, _ in ARRAY_GRID])
def array_run(request, tmp_path_factory) -> ArrayRun:
    rows, cols, n, m, layer = request.param
    spec = HardwareSpec(rows=rows, cols=cols, n=n, m=m, max_k=4096)
    cycles, tiles, bubbles, decoy_y, loads = _array_schedule(spec, layer)
    result = run_bench(spec, design="array", bench="cocotb_trace", case={"cycles": cycles, **ARRAY_PORTS},
                       workdir=tmp_path_factory.mktemp(f"array_{rows}x{cols}_{n}of{m}"))
    return ArrayRun(spec=spec, cycles=cycles, trace=result["trace"], tiles=tiles, bubbles=bubbles,
                    decoy_y=decoy_y, loads=loads)


def _y(run: ArrayRun, cycle: int):
    raw = run.trace[cycle]["y_data"]
    if raw is None:
        return None
    acc = run.spec.acc_width
    return [_signed(raw >> (c * acc), acc) for c in range(run.spec.cols)]


def _tile_mismatches(run: ArrayRun, tile: ArrayTile):
    L = run.spec.array_latency
    return [(t, c + L, _y(run, c + L), tile.y[t].tolist())
            for t, c in enumerate(tile.cycles) if _y(run, c + L) != tile.y[t].tolist()]


def test_array_latency(array_run):
    """``y_valid`` rises exactly ``spec.array_latency`` (rows + cols + 4) cycles after the
    first ``x_valid``: first vector applied in cycle i, ``y_valid`` first seen high in cycle
    i + array_latency. Beyond the first edge, ``y_valid`` is ``x_valid`` delayed by exactly
    that many cycles in every cycle of the run (bubbles included), and never X."""
    spec, trace, cycles = array_run.spec, array_run.trace, array_run.cycles
    L = spec.array_latency
    assert L == spec.rows + spec.cols + spec.pe_latency
    yv = [s["y_valid"] for s in trace]
    assert None not in yv, f"y_valid is X in cycle {yv.index(None)}"
    first_x = next(i for i, c in enumerate(cycles) if c.get("x_valid"))
    first_y = yv.index(1)
    assert first_y - first_x == L, f"y_valid rose {first_y - first_x} cycles after x_valid, spec says {L}"
    xv = [cycles[j - L].get("x_valid", 0) if j >= L else 0 for j in range(len(trace))]
    bad = [j for j in range(len(trace)) if yv[j] != xv[j]]
    assert not bad, f"y_valid differs from x_valid delayed {L} cycles in cycles {bad}"


def test_array_first_tile_bit_exact(array_run):
    """One tile of real weights loaded row by row (``w_we``/``w_row``, column c's n weights
    and indices at field c*n..), ``cols`` real activation vectors streamed one per cycle
    (``x_first`` on the first): every ``y_data`` vector, read ``array_latency`` cycles after
    its activation vector was applied, equals the golden NumPy product bit-exactly."""
    tile = array_run.tiles[0]
    bad = _tile_mismatches(array_run, tile)
    assert not bad, f"{len(bad)} of {len(tile.tokens)} output vectors wrong, first (t, cycle, got, golden): {bad[0]}"


def test_array_back_to_back_tile_no_gap(array_run):
    """A second tile streamed in the cycle right after the first tile's last vector, its rows
    loaded into the shadow while the first tile streams -- row r in cycle first + cols + r,
    the earliest the double-buffering rule allows (and, the first tile being ``cols``
    vectors long, also the latest before the second tile's first vector reaches row r). Its
    outputs are bit-exact and follow the first tile's with no gap: ``y_valid`` stays high
    over both tiles' outputs and the first tile's results are untouched by the load."""
    spec = array_run.spec
    L = spec.array_latency
    A, B = array_run.tiles[:2]
    assert B.cycles[0] == A.cycles[-1] + 1
    assert array_run.loads["B"][0] == A.cycles[0] + spec.cols
    span = range(A.cycles[0] + L, B.cycles[-1] + L + 1)
    assert all(array_run.trace[j]["y_valid"] == 1 for j in span), "gap between the tiles' outputs"
    for tile in (A, B):
        bad = _tile_mismatches(array_run, tile)
        assert not bad, (f"tile {tile.name}: {len(bad)} of {len(tile.tokens)} output vectors wrong, "
                         f"first (t, cycle, got, golden): {bad[0]}")


def test_array_first_needs_valid(array_run):
    """``x_first`` only counts with ``x_valid``: bubbles (x_valid = 0) carrying ``x_first = 1``
    and junk data come out with ``y_valid`` low, and the third tile's outputs are bit-exact
    across its in-tile bubble -- although by the time that bubble sweeps the array a decoy
    tile's weights sit in every shadow register, so an unmasked ``x_first`` would swap them
    in for the tile's last 3 vectors (their results with the decoy weights are checked to
    differ). The two bubbles between the second and third tile must not disturb either."""
    L = array_run.spec.array_latency
    tile = array_run.tiles[2]
    for b in array_run.bubbles:
        assert array_run.trace[b + L]["y_valid"] == 0, f"bubble of cycle {b} came out valid"
    bad = _tile_mismatches(array_run, tile)
    with_decoy = [t for t, _, got, _ in bad if got == array_run.decoy_y[t].tolist()]
    assert not bad, (f"tile C: {len(bad)} of {len(tile.tokens)} output vectors wrong "
                     f"({len(with_decoy)} equal the decoy weights' results), first (t, cycle, got, golden): {bad[0]}")
