"""Behaviours that breaking the RTL and the cycle models by hand showed to be untested
(issue 10, part 6, items a-d), each now checked on the generated Verilog in Icarus Verilog
against the golden models and the simulator's cycle models, on real data:

(a) a weight-stationary run whose tile period is set by the ``cols`` term of the loader
    rule ``L_j = max(L_{j-1} + rows, S_{j-1} + cols)`` (period ``cols + 1``);
(b) the hash-merge unit drops entries whose partial products sum to exactly zero;
(c) an engine run with zero tokens / groups or zero tiles (both engines), and an MoE layer
    with no routed token, end cleanly: ``done``, no memory written, ``busy`` low, and the
    next normal run is exact;
(d) host writes into the activation and weight memories are ignored while an engine is busy.

No cycle count is written down here: every expected cycle comes from the cycle models
(:mod:`sim.units.engine`, :mod:`sim.units.hashmerge`, :mod:`sim.moe`), so the tests hold as
the pipelines change. The engine and MoE sessions of (c) and (d) are cycle-by-cycle input
schedules played by the generic trace bench (``cocotb_trace``), which records ``busy``,
``done`` and the output-memory read port in every cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from sparseforge.dataflow.layout import grouped_sparse, memory_image, os_memory_image
from sparseforge.models.golden import gemm_nm_int
from sparseforge.models.prune import compress
from sparseforge.sim.units.engine import START_CYCLES, os_run_cycles, run_cycles, stream_starts
from sparseforge.spec import HardwareSpec
from sparseforge.verify.harness import run_bench
from tests.test_moe_rtl import FIXTURE as MOE_ROUTING
from tests.test_moe_rtl import _cfg as _moe_cfg
from tests.test_moe_rtl import _check_layer as _check_moe_layer
from tests.test_moe_rtl import _spec as _moe_spec
from tests.test_rtl_engine import _case as _engine_case
from tests.test_spgemm_rtl import _case as _hashmerge_case
from tests.test_spgemm_rtl import _merged
from tests.test_spgemm_rtl import _spec as _spgemm_spec

rtl = pytest.mark.rtl


def _signed(v: int, width: int) -> int:
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


def _pack(values, width: int) -> int:
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & ((1 << width) - 1)) << (i * width)
    return word


def _layer(n: int, m: int, name: str):
    """A real layer of MiniLM pruned ``n:m`` and quantised to int8 (weights and the
    activations of real text)."""
    pipeline = pytest.importorskip("sparseforge.models.pipeline")
    try:
        model = pipeline.pruned_minilm(n, m)
    except FileNotFoundError as exc:  # the weights package is missing on this machine
        pytest.skip(f"real MiniLM weights are not installed: {exc}")
    return model.layer(name)


def _operands(lay, *, tok0: int, tokens: int, out0: int, n_out: int, k: int):
    """``[tokens, k]`` activations and ``[n_out, k]`` (N:M pruned) weights of a real layer,
    from token ``tok0`` and output ``out0`` (column 0, so its groups are the layer's)."""
    x = lay.x_q[tok0:tok0 + tokens, :k].astype(np.int64)
    w = lay.w_q[out0:out0 + n_out, :k].astype(np.int64)
    return x, w


# =========================================================================== (a)
@rtl
@pytest.mark.minilm
def test_ws_period_set_by_cols_term(tmp_path):
    """(a) A 5x7 3:8 array, 3 tokens, K = 203 (6 k-tiles x 2 n-tiles) of a real 3:8 MiniLM
    layer: the tile period is set by the loader's ``S_{j-1} + cols`` term alone (checked on
    the model's recurrence: neither ``rows`` nor ``tokens`` binds, and one more column
    lengthens the period by one cycle, one fewer shortens the run). The RTL is bit-exact
    against the golden N:M product and takes exactly :func:`run_cycles`, twice in a row."""
    R, C, T, K, N = 5, 7, 3, 203, 14
    spec = HardwareSpec(rows=R, cols=C, n=3, m=8, max_k=4096)
    lay = _layer(3, 8, "layer4.attn.k")
    x, w = _operands(lay, tok0=0, tokens=T, out0=0, n_out=N, k=K)
    comp = compress(w, 3, 8)
    assert np.array_equal(comp.to_dense(), w), "the real slice is 3:8 sparse"
    gw = grouped_sparse(comp.values, comp.indices, n=3, m=8, k=K, spec=spec)
    case, depths, expected = _engine_case(spec, x, gw, gemm_nm_int(x, comp))
    tiles = case["ktiles"] * case["ntiles"]
    assert case["ktiles"] > 1 and case["ntiles"] > 1 and tiles >= 8

    # the case covers the cols term: the steady period P is above rows and tokens, follows
    # cols one for one, and a cols term one cycle shorter would predict a shorter run
    starts = [stream_starts(R, C, T, j) for j in range(1, tiles + 1)]
    steps = np.diff(starts)
    period = int(steps[-1])
    assert np.all(steps[len(steps) // 2:] == period), f"no steady period: {steps}"
    assert period > max(R, T), f"period {period} is set by rows ({R}) or tokens ({T}), not by cols"
    wider = stream_starts(R, C + 1, T, tiles) - stream_starts(R, C + 1, T, tiles - 1)
    assert wider == period + 1, "the period does not follow the cols term"
    assert stream_starts(R, C - 1, T, tiles) < starts[-1]

    result = run_bench(spec, design="engine", bench="cocotb_engine", case=case, workdir=tmp_path, **depths)
    assert result["cycles"] == [expected, expected]
    assert expected == run_cycles(spec, tokens=T, tiles=tiles)


# =========================================================================== (b)
#: rows of MiniLM ffn.down x GELU activations with an output entry that sums to exactly zero
#: in token column 31, 85, 113 or 115 (found by summing every (row, column) key's products)
ZERO_SUM_ROWS = [68, 79, 130, 168, 235, 290]
#: those columns and columns 0..9
ZERO_SUM_COLS = sorted({31, 85, 113, 115} | set(range(10)))


def _zero_sum_case():
    """The rows of A, the token columns of B (both canonical CSR) and a spec whose 16-entry
    table holds every row without overflow."""
    from sparseforge.models.matrices import canonical, load_matrix

    a = load_matrix("minilm-ffn-down").matrix
    b = load_matrix("minilm-gelu-acts").matrix
    spec = _spgemm_spec(table_entries=16, key_width=16, value_width=32, hash_multiplier=40503)
    return canonical(a[ZERO_SUM_ROWS]), canonical(b[:, ZERO_SUM_COLS]), spec


@rtl
def test_hashmerge_drops_zero_sums(tmp_path):
    """(b) Rows of the real MiniLM ``ffn.down`` (int8) x GELU activations product, cut to 14
    of its 128 token columns, each with one output entry whose 9 to 25 partial products
    cancel to exactly zero (natural cancellation in the real data), through a 16-entry table
    with collisions and no overflow. The zero-sum key holds its slot while the row merges but
    is not emitted: every output stream equals the non-zero sums in insertion order (checked
    by the bench), no emitted value is zero, the number of emitted entries equals SciPy's
    nonzeros of the row (= inserted keys - zero sums), and cycles and stalls equal
    :func:`unit_row_cycles` / :func:`unit_row_stalls` (the drain still visits the entry)."""
    from sparseforge.dataflow.spgemm import expand_products, place_rows
    from sparseforge.models.matrices import golden_spgemm

    sub, bs, spec = _zero_sum_case()
    rows = ZERO_SUM_ROWS
    prod = expand_products(sub, bs)
    pl = place_rows(prod, spec)
    assert not pl.spilled.any() and pl.collisions > 0
    golden = golden_spgemm(sub, bs)
    zero_keys = []
    for r in range(len(rows)):
        lo, hi = prod.row_ptr[r], prod.row_ptr[r + 1]
        ids = pl.key_id[lo:hi] - pl.key_id[lo:hi].min()
        sums = np.zeros(int(ids.max()) + 1, dtype=np.int64)
        np.add.at(sums, ids, prod.val[lo:hi])
        zero_keys.append(int((sums == 0).sum()))
    assert all(z >= 1 for z in zero_keys), f"every chosen row has a zero sum in its table: {zero_keys}"
    nnz = np.diff(golden.indptr)
    assert nnz.tolist() == (pl.inserted - np.array(zero_keys)).tolist()

    case, _, cycles, stalls, _ = _hashmerge_case(sub, bs, list(range(len(rows))), spec)
    result = run_bench(spec, design="hashmerge", bench="cocotb_hashmerge", case=case, workdir=tmp_path)
    got = result["rows"]
    for r, row in enumerate(got):
        assert all(v != 0 for _, v in row["out"]), f"row {rows[r]}: a zero sum was emitted: {row['out']}"
        assert len(row["out"]) == nnz[r], f"row {rows[r]}: {len(row['out'])} entries emitted, SciPy has {nnz[r]}"
        assert row["spill"] == []
        assert np.array_equal(_merged(row, bs.shape[1]), golden[r].toarray().ravel())
    assert [g["cycles"] for g in got] == cycles
    assert [g["stalls"] for g in got] == stalls


def test_spgemm_unit_model_counts_emitted_entries():
    """(b) The SpGEMM simulator's entries of C for the hash-merge unit (``rowwise-hash``,
    variant ``unit``), which size its C write-back, are the entries the unit emits: SciPy's
    nonzeros when no row overflows (the RTL test above shows the unit emits exactly those),
    on the same real rows with zero sums."""
    from sparseforge.models.matrices import golden_spgemm
    from sparseforge.sim.spgemm import simulate_spgemm

    sub, bs, spec = _zero_sum_case()
    res = simulate_spgemm(sub, bs, spec=spec, dataflow="rowwise-hash", variant="unit")
    assert res.spilled_products == 0
    assert res.nnz_c == golden_spgemm(sub, bs).nnz


# =========================================================================== (c), (d): engines
@dataclass
class EngineCase:
    """A real GEMM on one engine, two operand sets A and B of the same shape."""

    design: str
    spec: HardwareSpec
    cfg: dict             # the configuration ports of a normal run
    empties: list         # configuration changes that make a run empty
    cycles: int           # the cycle model's cycles of one normal run
    act: tuple            # (A's words, B's words)
    wgt: tuple
    out: tuple            # expected output words (lists of signed fields) of A and B
    fields: int
    mixed: tuple          # expected output words with (B's activations, A's weights), (A's, B's)
    depths: dict


def _images(spec: HardwareSpec, image, lay, *, tokens: int, k: int, n_out: int):
    """Memory images of A (tokens 0.., outputs 0..) and B (tokens 40.., outputs 100..), and of
    the two mixes, from a real layer."""
    ops = {}
    for name, tok0, out0 in (("A", 0, 0), ("B", 40, 100)):
        x, w = _operands(lay, tok0=tok0, tokens=tokens, out0=out0, n_out=n_out, k=k)
        comp = compress(w, spec.n, spec.m)
        gw = grouped_sparse(comp.values, comp.indices, n=spec.n, m=spec.m, k=k, spec=spec)
        ops[name] = (x, gw)
    img = {name: image(spec, *ops[name]) for name in ops}
    mixed = (image(spec, ops["B"][0], ops["A"][1]), image(spec, ops["A"][0], ops["B"][1]))
    return img["A"], img["B"], mixed


def _ws_case() -> EngineCase:
    spec = HardwareSpec(rows=4, cols=4, n=2, m=4, max_k=4096)
    lay = _layer(2, 4, "layer0.attn.q")
    a, b, mixed = _images(spec, memory_image, lay, tokens=9, k=40, n_out=7)
    til = a.tiling
    assert til.ktiles > 1 and til.ntiles > 1
    words = lambda img: img.expected.reshape(-1, spec.cols).tolist()  # word nt*T + t
    return EngineCase(
        design="engine", spec=spec,
        cfg={"cfg_tokens": til.tokens, "cfg_ktiles": til.ktiles, "cfg_ntiles": til.ntiles},
        empties=[{"cfg_tokens": 0}, {"cfg_ktiles": 0}, {"cfg_ntiles": 0}],
        cycles=run_cycles(spec, tokens=til.tokens, tiles=til.tiles),
        act=(a.act, b.act), wgt=(a.wgt, b.wgt), out=(words(a), words(b)), fields=spec.cols,
        mixed=tuple(words(i) for i in mixed),
        depths={"act_depth": len(a.act), "wgt_depth": max(len(a.wgt), spec.rows),
                "out_depth": til.ntiles * til.tokens})


def _os_case() -> EngineCase:
    spec = HardwareSpec(rows=4, cols=4, n=2, m=4, max_k=4096)
    lay = _layer(2, 4, "layer1.attn.v")
    a, b, mixed = _images(spec, os_memory_image, lay, tokens=7, k=40, n_out=8)
    til = a.tiling
    assert til.token_tiles > 1 and til.ntiles > 1
    words = lambda img: img.expected.reshape(-1, spec.rows).tolist()  # word (tt*NT + nt)*C + c
    return EngineCase(
        design="os_engine", spec=spec,
        cfg={"cfg_groups": til.groups, "cfg_ttiles": til.token_tiles, "cfg_ntiles": til.ntiles},
        empties=[{"cfg_groups": 0}, {"cfg_ttiles": 0}, {"cfg_ntiles": 0}],
        cycles=os_run_cycles(spec, token_tiles=til.token_tiles, ntiles=til.ntiles, groups=til.groups),
        act=(a.act, b.act), wgt=(a.wgt, b.wgt), out=(words(a), words(b)), fields=spec.rows,
        mixed=tuple(words(i) for i in mixed),
        depths={"act_depth": len(a.act), "wgt_depth": len(a.wgt), "out_depth": til.tiles * spec.cols})


class _Program:
    """A cycle-by-cycle input schedule for ``cocotb_trace``: ``held`` inputs (the
    configuration of the current run) go into every cycle; ``marks`` name cycles."""

    def __init__(self):
        self.cycles: list[dict] = []
        self.held: dict = {}
        self.marks: dict[str, int] = {}

    def step(self, **inputs) -> int:
        self.cycles.append({**self.held, **inputs})
        return len(self.cycles) - 1


#: idle cycles after an empty run's ``start``
EMPTY_WAIT = 4


def _engine_program(ec: EngineCase) -> _Program:
    """(c) Load A; an empty run straight after reset; a normal run; read; the three kinds of
    empty run, each with ``cfg_accumulate`` set; read; a normal accumulating run; read.
    (d) A normal run during which the host writes B's words into every activation and
    weight address; read; a normal accumulating run on the memories as they are; read; load
    B while idle, a normal run, read."""
    p = _Program()
    n_out = len(ec.out[0])

    def load(i):
        for a in range(max(len(ec.act[i]), len(ec.wgt[i]))):
            ins = {}
            if a < len(ec.act[i]):
                ins.update(act_we=1, act_addr=a, act_wdata=ec.act[i][a])
            if a < len(ec.wgt[i]):
                ins.update(wgt_we=1, wgt_addr=a, wgt_wdata=ec.wgt[i][a])
            p.step(**ins)

    def run(label, cfg, *, accumulate, wait, during=None):
        p.held = {**cfg, "cfg_accumulate": accumulate}
        p.marks[label] = p.step(start=1)
        for k in range(1, wait + 1):
            p.step(**(during(k) if during else {}))

    def read(label):
        p.held = {}
        p.marks[label] = p.step(out_addr=0)
        for a in range(1, n_out):
            p.step(out_addr=a)
        p.step()

    def host_writes(k):
        """B's words, one per memory per cycle, into every address in turn, while the model
        says the engine is busy (cycles 1 .. cycles - 1 of the run)."""
        if k >= ec.cycles:
            return {}
        i = k - 1
        na, nw = len(ec.act[1]), len(ec.wgt[1])
        return {"act_we": 1, "act_addr": i % na, "act_wdata": ec.act[1][i % na],
                "wgt_we": 1, "wgt_addr": i % nw, "wgt_wdata": ec.wgt[1][i % nw]}

    wait = ec.cycles + 3
    # (c)
    load(0)
    run("empty_after_reset", {**ec.cfg, **ec.empties[0]}, accumulate=0, wait=EMPTY_WAIT)
    run("c_run1", ec.cfg, accumulate=0, wait=wait)
    read("c_out1")
    for i, empty in enumerate(ec.empties):
        run(f"empty{i}", {**ec.cfg, **empty}, accumulate=1, wait=EMPTY_WAIT)
    read("c_out2")
    run("c_run2", ec.cfg, accumulate=1, wait=wait)
    read("c_out3")
    # (d)
    run("d_run1", ec.cfg, accumulate=0, wait=wait, during=host_writes)
    read("d_out1")
    run("d_run2", ec.cfg, accumulate=1, wait=wait)
    read("d_out2")
    load(1)
    run("d_run3", ec.cfg, accumulate=0, wait=wait)
    read("d_out3")
    return p


@dataclass
class EngineSession:
    case: EngineCase
    program: _Program
    trace: list

    def at(self, label: str, k: int = 0) -> dict:
        return self.trace[self.program.marks[label] + k]

    def done_after(self, label: str) -> int | None:
        """Cycles from a run's ``start`` to the first cycle ``done`` is high (the quantity
        the cycle models predict), or None."""
        j0 = self.program.marks[label]
        end = next((j for j in range(j0 + 1, len(self.trace)) if j in self.program.marks.values()), len(self.trace))
        return next((j - j0 for j in range(j0 + 1, end) if self.trace[j]["done"] == 1), None)

    def words(self, label: str) -> list[list[int]]:
        j0 = self.program.marks[label]
        s = self.case.spec
        out = []
        for a in range(len(self.case.out[0])):
            raw = self.trace[j0 + 1 + a]["out_rdata"]
            assert raw is not None, f"{label}: output word {a} has X/Z bits"
            out.append([_signed(raw >> (i * s.acc_width), s.acc_width) for i in range(self.case.fields)])
        return out


@pytest.fixture(scope="module", params=["weight-stationary", "output-stationary"])
def engine_session(request, tmp_path_factory) -> EngineSession:
    ec = _ws_case() if request.param == "weight-stationary" else _os_case()
    p = _engine_program(ec)
    ports = {"inputs": ["start", *ec.cfg, "cfg_accumulate", "act_we", "act_addr", "act_wdata",
                        "wgt_we", "wgt_addr", "wgt_wdata", "out_addr"],
             "outputs": ["busy", "done", "out_rdata"]}
    result = run_bench(ec.spec, design=ec.design, bench="cocotb_trace", case={"cycles": p.cycles, **ports},
                       workdir=tmp_path_factory.mktemp(ec.design), **ec.depths)
    return EngineSession(case=ec, program=p, trace=result["trace"])


def _model_empty_cycles(ec: EngineCase, empty: dict) -> int | None:
    """What the engine's cycle model says of an empty run: its cycles, or None when the model
    refuses such a run (then the mapper must never ask for one: see
    :func:`test_mapper_never_plans_an_empty_run`)."""
    cfg = {**ec.cfg, **empty}
    try:
        if ec.design == "engine":
            return run_cycles(ec.spec, tokens=cfg["cfg_tokens"], tiles=cfg["cfg_ktiles"] * cfg["cfg_ntiles"])
        return os_run_cycles(ec.spec, token_tiles=cfg["cfg_ttiles"], ntiles=cfg["cfg_ntiles"],
                             groups=cfg["cfg_groups"])
    except ValueError:
        return None


def _check_normal_run(s: EngineSession, label: str) -> None:
    n = s.case.cycles
    assert s.done_after(label) == n, f"{label}: done after {s.done_after(label)} cycles, the model says {n}"
    busy = [s.at(label, k)["busy"] for k in range(n + 1)]
    assert busy == [0] + [1] * (n - 1) + [0], f"{label}: busy over the run {busy}"


@rtl
@pytest.mark.minilm
def test_empty_runs_end_cleanly(engine_session):
    """(c) A run with zero tokens (WS) or groups (OS), zero k-tiles / token tiles, or zero
    n-tiles: ``done`` is high ``START_CYCLES`` after ``start`` (straight after reset it
    rises from low; after a run it stays high), ``busy`` never rises, the output memory is
    untouched although each empty run had ``cfg_accumulate`` set, and the next normal run
    (accumulating onto the first run's results) is bit-exact and takes the model's cycles.
    The cycle models refuse empty runs (or agree with the RTL if they ever time them)."""
    s = engine_session
    ec = s.case
    assert s.at("empty_after_reset")["done"] == 0
    for i, empty in enumerate([ec.empties[0], *ec.empties]):
        label = "empty_after_reset" if i == 0 else f"empty{i - 1}"
        assert s.done_after(label) == START_CYCLES, f"{label} {empty}: done after {s.done_after(label)} cycles"
        window = [s.at(label, k) for k in range(EMPTY_WAIT + 1)]
        assert [c["busy"] for c in window] == [0] * len(window), f"{label} {empty}: busy rose"
        assert all(c["done"] == 1 for c in window[START_CYCLES:]), f"{label} {empty}: done fell"
        model = _model_empty_cycles(ec, empty)
        assert model is None or model == START_CYCLES, f"{empty}: model says {model} cycles"
    _check_normal_run(s, "c_run1")
    assert s.words("c_out1") == ec.out[0], "the run after an empty run is wrong"
    assert s.words("c_out2") == ec.out[0], "an empty run wrote the output memory"
    _check_normal_run(s, "c_run2")
    assert s.words("c_out3") == (2 * np.array(ec.out[0])).tolist()


@rtl
@pytest.mark.minilm
def test_host_writes_ignored_while_busy(engine_session):
    """(d) During a run the host writes another real operand set B into every activation and
    weight address (each memory's writes alone would change the result: checked with the
    golden model). The run is bit-exact on A in the model's cycles; a second run without
    reloading still computes A (accumulated: 2A), so the memories kept A; B, loaded while
    idle, then gives B's product -- so the writes themselves work."""
    s = engine_session
    ec = s.case
    assert ec.mixed[0] != ec.out[0] and ec.mixed[1] != ec.out[0], "B's activations / weights would not show"
    assert ec.out[1] != ec.out[0]
    writes = [k for k in range(1, ec.cycles) if s.program.cycles[s.program.marks["d_run1"] + k].get("act_we")]
    assert len(writes) >= max(len(ec.act[1]), len(ec.wgt[1])), "not every address was written"
    assert all(s.at("d_run1", k)["busy"] == 1 for k in writes), "a host write fell outside the busy window"
    _check_normal_run(s, "d_run1")
    assert s.words("d_out1") == ec.out[0], "host writes during the run changed its result"
    _check_normal_run(s, "d_run2")
    assert s.words("d_out2") == (2 * np.array(ec.out[0])).tolist(), "host writes during a run reached the memories"
    _check_normal_run(s, "d_run3")
    assert s.words("d_out3") == ec.out[1]


def test_mapper_never_plans_an_empty_run():
    """(c) The cycle models refuse empty runs, so the mapper must never plan one: every run of
    every layer of MiniLM (1 and 130 tokens) on both engines streams at least one token, one
    n-tile and one k unit; a GEMM with no token is refused up front."""
    from sparseforge.dataflow.mapper import map_network
    from sparseforge.models.network import GemmLayer
    from sparseforge.models.zoo import minilm_network

    for dataflow in ("weight-stationary", "output-stationary"):
        spec = HardwareSpec(rows=8, cols=8, n=2, m=4, max_k=4096, dataflow=dataflow)
        for tokens in (1, 130):
            for mp in map_network(spec, minilm_network(tokens=tokens), (2, 4)):
                for name in ("run_tokens", "run_ntiles", "run_kunits"):
                    v = getattr(mp, name)
                    assert len(v) and v.min() >= 1, f"{dataflow}, {mp.layer.name}: {name} {v.min()}"
    with pytest.raises(ValueError, match="tokens"):
        GemmLayer(name="empty", tokens=0, k=8, n_out=8)


# =========================================================================== (c): MoE
MOE_INPUTS = ["clear", "in_valid", "in_token", "in_experts", "in_gates", "start", "load_done", "comp_done"]
MOE_OUTPUTS = ["busy", "done", "counts", "overflow", "load_req", "load_expert", "load_buf", "comp_start",
               "comp_expert", "comp_buf", "comp_count", "tok_valid", "tok_id", "tok_gate"]
MOE_TAIL = 3      # cycles recorded after the model's done


@rtl
def test_moe_layer_without_tokens_ends_cleanly(tmp_path):
    """(c) ``sf_moe_reorder`` plays three MoE layers: one with no routed token, 8 real tokens
    of the MoEfied-MiniLM routing (``tests/data/moe``), and again none. The DRAM and array
    sides answer when :func:`sim.moe.reorder_layer`'s timeline says (open loop, so any drift
    of the RTL shows). For the empty layers ``done`` rises at the model's ``done`` (its
    "no queue is non-empty" case), no load, compute or gather handshake happens, ``busy`` is
    low from then on and ``done`` stays high; the real layer in between (queues, walk order,
    buffers, every handshake cycle, the gathered tokens and gates) equals the golden model and
    the simulator, as ``tests/test_moe_rtl.py`` checks it."""
    from sparseforge.dataflow.moe import map_experts, quantize_gates
    from sparseforge.models.moe import load_routing
    from sparseforge.sim.moe import reorder_layer

    routing = load_routing(MOE_ROUTING)
    spec, cfg = _moe_spec(buffers=2), _moe_cfg(tokens=8)
    E, K = cfg.experts, routing.experts.shape[-1]
    ew, gw, cw = max(1, (E - 1).bit_length()), spec.moe.gate_width, spec.moe.queue_depth.bit_length()
    empty = (np.zeros((0, K), dtype=routing.experts.dtype), np.zeros((0, K)))
    layers = [empty, (routing.experts[1, 2][:8], routing.gates[1, 2][:8]), empty]
    em = map_experts(spec, cfg)

    p = _Program()
    plans = []
    for e, g in layers:
        model = reorder_layer(spec, cfg, e)
        tl = model.timeline
        p.step(clear=1)
        qg = quantize_gates(g, gw)
        for t in range(len(e)):
            p.step(in_valid=1, in_token=t, in_experts=_pack(e[t], ew), in_gates=_pack(qg[t], gw))
        j0 = p.step(start=1)
        load_done, comp_done = set(tl.load_done.tolist()), set(tl.comp_done.tolist())
        for c in range(1, tl.done + MOE_TAIL + 1):
            p.step(load_done=int(c in load_done), comp_done=int(c in comp_done))
        plans.append((j0, model))
    res = run_bench(spec, design="moe_reorder", bench="cocotb_trace",
                    case={"cycles": p.cycles, "inputs": MOE_INPUTS, "outputs": MOE_OUTPUTS}, workdir=tmp_path)
    trace = res["trace"]

    for (e, g), (j0, model) in zip(layers, plans):
        window = trace[j0:j0 + model.timeline.done + MOE_TAIL + 1]     # window[c]: cycle c of the layer
        assert all(v is not None for c in window for v in c.values()), "X/Z on an output"
        word = window[0]["counts"]
        got = {"counts": [(word >> (x * cw)) & ((1 << cw) - 1) for x in range(E)], "overflow": window[0]["overflow"],
               "loads": [], "computes": [], "streams": [], "done": None}
        for c, out in enumerate(window):
            if c == 0:
                continue
            if out["load_req"]:
                got["loads"].append([c, out["load_expert"], out["load_buf"], c + em.load_cycles])
            if out["comp_start"]:
                ex = out["comp_expert"]
                n_ex = int(np.count_nonzero(e == ex))
                got["computes"].append([c, ex, out["comp_buf"], out["comp_count"],
                                        c + int(em.compute_cycles(np.array([n_ex]))[0])])
                got["streams"].append([])
            if out["tok_valid"]:
                assert got["streams"], f"cycle {c}: a token gathered before any compute started"
                got["streams"][-1].append([out["tok_id"], out["tok_gate"]])
            if out["done"] and got["done"] is None:
                got["done"] = c
        _check_moe_layer(spec, cfg, e, g, got)
        assert window[0]["busy"] == 0 and window[0]["done"] == 0, "not idle before start"
        after = window[model.timeline.done:]
        assert all(c["busy"] == 0 and c["done"] == 1 for c in after), "busy high or done low after done"
        if len(e) == 0:
            assert not any(c["load_req"] or c["comp_start"] or c["tok_valid"] for c in window), \
                "a layer without tokens loaded, computed or gathered"
            assert model.cycles == model.timeline.done, "the simulator's layer time is the scheduler's alone"
