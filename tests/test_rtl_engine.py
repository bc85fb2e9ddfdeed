"""The generated GEMM engine, run in Icarus Verilog on real pruned MiniLM operands.

Each case takes a slice of a real MiniLM Linear layer (weights pruned N:M by magnitude and
quantised to int8, activations from real text through the pruned int8 network), lays it out
with :mod:`dataflow.layout`, runs it on the emitted Verilog, and checks

- every output word bit-exactly against the NumPy golden model (``models.golden``), and
- the measured cycles from ``start`` to ``done`` against :func:`sim.units.engine.run_cycles`,
  exactly (the simulator models the same loader/streamer mechanism the RTL implements).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from sparseforge.dataflow.layout import grouped_dense, grouped_sparse, memory_image
from sparseforge.models.golden import gemm_dense_int, gemm_nm_int
from sparseforge.models.prune import compress
from sparseforge.hwgen.engine import OUT_BANK_WORDS, MemoryEngine
from sparseforge.sim.units.engine import _recurrence, run_cycles
from sparseforge.spec import HardwareSpec
from sparseforge.verify.harness import run_bench

pytestmark = [pytest.mark.rtl, pytest.mark.minilm]


def _real_operands(n: int, m: int, layer: str, *, tokens: int, k: int, n_out: int, k0: int = 0):
    """Slice ``[tokens, k]`` activations and ``[n_out, k]`` weights out of a real layer.
    The slice is re-compressed so groups are counted from its own first column."""
    from tests.pruned_minilm import best_pruned_minilm
    try:
        model = best_pruned_minilm(min(n, m), m)
    except FileNotFoundError as exc:  # the weights package is missing on this machine
        pytest.skip(str(exc))
    lay = model.layer(layer)
    assert k0 % m == 0, "slices start on a group boundary so the N:M pattern is kept"
    x = lay.x_q[:tokens, k0:k0 + k].astype(np.int64)
    w = lay.w_q[:n_out, k0:k0 + k].astype(np.int64)
    return x, w


def _case(spec: HardwareSpec, x, gw, golden):
    img = memory_image(spec, x, gw)
    til = img.tiling
    assert np.array_equal(img.expected.transpose(1, 0, 2).reshape(x.shape[0], -1)[:, : golden.shape[1]], golden)
    expected_cycles = run_cycles(spec, tokens=til.tokens, tiles=til.tiles)
    case = {
        "act": [f"{w:x}" for w in img.act],
        "wgt": [f"{w:x}" for w in img.wgt],
        "tokens": til.tokens, "ktiles": til.ktiles, "ntiles": til.ntiles,
        "cols": spec.cols, "acc_width": spec.acc_width,
        "expected": img.expected.tolist(),
        "expected_cycles": expected_cycles,
        "timeout_cycles": 10 * expected_cycles + 100,
        "runs": 2,
    }
    depths = {"act_depth": len(img.act), "wgt_depth": max(len(img.wgt), spec.rows),
              "out_depth": til.ntiles * til.tokens}
    return case, depths, expected_cycles


# (rows, cols, n, m, layer, tokens, k, n_out): N:M in 1:4, 2:4, 2:8 and dense; several
# array shapes; K never a multiple of the group size; T below and above rows + cols.
SPARSE_GRID = [
    (4, 4, 2, 4, "layer0.attn.q", 12, 50, 10),
    (3, 5, 1, 4, "layer1.ffn.up", 6, 30, 9),
    (2, 3, 2, 8, "layer2.ffn.down", 20, 45, 7),
    (8, 2, 2, 4, "layer5.attn.o", 1, 70, 3),
]


@pytest.mark.parametrize("rows,cols,n,m,layer,tokens,k,n_out", SPARSE_GRID)
def test_sparse_gemm_matches_golden_and_cycles(tmp_path, rows, cols, n, m, layer, tokens, k, n_out):
    """A multi-tile N:M GEMM on real operands: outputs equal the golden N:M product
    computed from the compressed form, and RTL cycles equal the simulator's, twice in a row
    (the second run checks the engine restarts cleanly)."""
    spec = HardwareSpec(rows=rows, cols=cols, n=n, m=m, max_k=4096)
    x, w = _real_operands(n, m, layer, tokens=tokens, k=k, n_out=n_out)
    comp = compress(w, n, m)
    assert np.array_equal(comp.to_dense(), w), "the real slice is N:M sparse"
    gw = grouped_sparse(comp.values, comp.indices, n=n, m=m, k=k, spec=spec)
    case, depths, expected = _case(spec, x, gw, gemm_nm_int(x, comp))
    result = run_bench(spec, design="engine", bench="cocotb_engine", case=case, workdir=tmp_path, **depths)
    assert result["cycles"] == [expected, expected]


DENSE_GRID = [
    # dense array (n == m) on int8 dense weights
    (4, 4, 4, 4, "layer3.attn.o", 6, 21, 8),
    # the dense baseline on a 2:4 array: groups of n = 2, two activation lanes idle
    (4, 4, 2, 4, "layer4.ffn.up", 10, 22, 6),
]


@pytest.mark.parametrize("rows,cols,n,m,layer,tokens,k,n_out", DENSE_GRID)
def test_dense_gemm_matches_golden_and_cycles(tmp_path, rows, cols, n, m, layer, tokens, k, n_out):
    """Dense weights (the int8 dense MiniLM) on a dense array and, in dense mode, on a
    sparse array: bit-exact against ``X @ W^T`` and cycle-exact against the simulator."""
    spec = HardwareSpec(rows=rows, cols=cols, n=n, m=m, max_k=4096)
    x, w = _real_operands(m, m, layer, tokens=tokens, k=k, n_out=n_out)
    gw = grouped_dense(w, spec)
    case, depths, expected = _case(spec, x, gw, gemm_dense_int(x, w))
    result = run_bench(spec, design="engine", bench="cocotb_engine", case=case, workdir=tmp_path, **depths)
    assert result["cycles"] == [expected, expected]


def test_single_tile_cycles(tmp_path):
    """One tile (K fits the array's rows, outputs fit its columns): the run is the fill,
    T streaming cycles and the drain, as the simulator says."""
    spec = HardwareSpec(rows=4, cols=4, n=2, m=4, max_k=4096)
    x, w = _real_operands(2, 4, "layer0.ffn.up", tokens=16, k=16, n_out=4)
    comp = compress(w, 2, 4)
    gw = grouped_sparse(comp.values, comp.indices, n=2, m=4, k=16, spec=spec)
    case, depths, expected = _case(spec, x, gw, gemm_nm_int(x, comp))
    assert case["ktiles"] == case["ntiles"] == 1
    result = run_bench(spec, design="engine", bench="cocotb_engine", case=case, workdir=tmp_path, **depths)
    assert result["cycles"] == [expected, expected]
    # the parts of a single-tile run, each from the RTL's structure: start, first issue,
    # 15 more, activation read, array, the accumulator's sum register, done
    assert expected == 1 + 1 + 16 - 1 + 1 + spec.array_latency + 1 + 1


@pytest.mark.parametrize("wn,wm,group", [(2, 4, 4), (1, 4, 8)])
def test_other_patterns_on_a_2of8_array(tmp_path, wn, wm, group):
    """Weights pruned wn:wm run on 2:8 PEs with the largest group the PEs can hold (2:4 in
    groups of 4 of the 8 lanes, 1:4 in groups of 8): bit-exact and cycle-exact in RTL."""
    from sparseforge.dataflow.layout import group_size
    spec = HardwareSpec(rows=3, cols=4, n=2, m=8, max_k=4096)
    assert group_size(spec, (wn, wm)) == group
    x, w = _real_operands(wn, wm, "layer2.attn.v", tokens=9, k=60, n_out=6)
    comp = compress(w, wn, wm)
    gw = grouped_sparse(comp.values, comp.indices, n=wn, m=wm, k=60, spec=spec)
    assert gw.group == group
    case, depths, expected = _case(spec, x, gw, gemm_nm_int(x, comp))
    result = run_bench(spec, design="engine", bench="cocotb_engine", case=case, workdir=tmp_path, **depths)
    assert result["cycles"] == [expected, expected]


def test_reduction_split_over_two_runs_accumulates(tmp_path):
    """A GEMM whose K is split into two blocks, run one after the other with cfg_accumulate set
    for the second: the output memory ends with the full product (bit-exact), and each run
    takes exactly the simulator's cycles for its own tiles."""
    spec = HardwareSpec(rows=4, cols=4, n=2, m=4, max_k=4096)
    x, w = _real_operands(2, 4, "layer1.attn.q", tokens=7, k=50, n_out=9)
    comp = compress(w, 2, 4)
    k1 = spec.rows * spec.m * 2                      # first block: two k-tiles
    phases = []
    for lo, hi, accumulate in ((0, k1, 0), (k1, 50, 1)):
        c = compress(w[:, lo:hi], 2, 4)
        gw = grouped_sparse(c.values, c.indices, n=2, m=4, k=hi - lo, spec=spec)
        img = memory_image(spec, x[:, lo:hi], gw)
        phases.append({"act": [f"{a:x}" for a in img.act], "wgt": [f"{b:x}" for b in img.wgt],
                       "ktiles": img.tiling.ktiles, "accumulate": accumulate,
                       "expected_cycles": run_cycles(spec, tokens=7, tiles=img.tiling.tiles)})
        ntiles = img.tiling.ntiles
    full = memory_image(spec, x, grouped_sparse(comp.values, comp.indices, n=2, m=4, k=50, spec=spec))
    assert np.array_equal(full.expected.transpose(1, 0, 2).reshape(7, -1)[:, :9], gemm_nm_int(x, comp))
    case = {"phases": phases, "tokens": 7, "ntiles": ntiles, "cols": spec.cols, "acc_width": spec.acc_width,
            "expected": full.expected.tolist(), "timeout_cycles": 10000}
    depths = {"act_depth": max(len(p["act"]) for p in phases), "wgt_depth": max(len(p["wgt"]) for p in phases),
              "out_depth": ntiles * 7}
    result = run_bench(spec, design="engine", bench="cocotb_engine", case=case, workdir=tmp_path, **depths)
    assert result["cycles"] == [p["expected_cycles"] for p in phases]


# --------------------------------------------------------------------------- scheduled sessions
class Session:
    """A cycle-by-cycle schedule for the generic trace bench (``cocotb_trace``): host writes,
    runs and output reads of an engine, with the trace of ``busy``, ``done``, ``error`` and
    ``out_rdata`` it records. ``cycles[j]`` is applied during cycle j; ``trace[j]`` is what
    the outputs hold during cycle j."""

    INPUTS = ["start", "cfg_accumulate", "act_we", "act_addr", "act_wdata", "wgt_we", "wgt_addr", "wgt_wdata",
              "out_addr"]
    OUTPUTS = ["busy", "done", "error", "out_rdata"]

    def __init__(self, spec: HardwareSpec, design: str, cfg_ports: list[str]):
        self.spec, self.design, self.cfg_ports = spec, design, cfg_ports
        self.cycles: list[dict] = []
        self.marks: dict[str, int] = {}
        self.reads: dict[str, int] = {}
        self.trace: list[dict] = []

    def step(self, **inputs) -> int:
        self.cycles.append(inputs)
        return len(self.cycles) - 1

    def load(self, act: list[int], wgt: list[int]) -> None:
        for a in range(max(len(act), len(wgt))):
            ins = {}
            if a < len(act):
                ins.update(act_we=1, act_addr=a, act_wdata=act[a])
            if a < len(wgt):
                ins.update(wgt_we=1, wgt_addr=a, wgt_wdata=wgt[a])
            self.step(**ins)

    def run(self, label: str, cfg: dict, *, accumulate: int = 0, wait: int) -> None:
        """Pulse ``start`` with ``cfg`` (held while the run lasts), then ``wait`` cycles."""
        held = {**cfg, "cfg_accumulate": accumulate}
        self.marks[label] = self.step(start=1, **held)
        for _ in range(wait):
            self.step(**held)

    def read(self, label: str, words: int) -> None:
        """Read output words 0 .. words - 1, one per cycle."""
        self.reads[label] = self.step(out_addr=0)
        for a in range(1, words):
            self.step(out_addr=a)
        for _ in range(MemoryEngine.OUT_READ_LATENCY):
            self.step()

    def play(self, workdir, **depths) -> None:
        from sparseforge.verify.harness import run_bench as _run
        ports = {"inputs": self.INPUTS + self.cfg_ports, "outputs": self.OUTPUTS}
        self.step()
        res = _run(self.spec, design=self.design, bench="cocotb_trace", case={"cycles": self.cycles, **ports},
                   workdir=workdir, **depths)
        self.trace = res["trace"]

    def at(self, label: str, k: int = 0) -> dict:
        return self.trace[self.marks[label] + k]

    def done_after(self, label: str) -> int | None:
        """Cycles from a run's ``start`` to the first cycle ``done`` is high (what the cycle
        models predict), or None."""
        j0 = self.marks[label]
        return next((j - j0 for j in range(j0 + 1, len(self.trace)) if self.trace[j]["done"] == 1), None)

    def words(self, label: str, words: int, fields: int) -> list[list[int]]:
        j0 = self.reads[label] + MemoryEngine.OUT_READ_LATENCY
        w = self.spec.acc_width
        out = []
        for a in range(words):
            raw = self.trace[j0 + a]["out_rdata"]
            assert raw is not None, f"{label}: output word {a} has X/Z bits"
            out.append([_signed(raw >> (i * w), w) for i in range(fields)])
        return out


def _signed(v: int, width: int) -> int:
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


def _min_gap(spec: HardwareSpec, tokens: int, tiles: int) -> int:
    """Fewest cycles between the streamer's starts of two consecutive tiles: the distance of
    two accesses of one output word by consecutive k-tiles."""
    starts = [s for _, s in _recurrence(spec.rows, spec.cols, tokens, tiles)]
    return min(b - a for a, b in zip(starts, starts[1:]))


# (rows, cols, n-tiles, token counts): tile periods of 2 and 3 cycles for T = 1..3, the
# shortest an array allows; the 1x1 array with 300 n-tiles has an output memory of banks
# (read latency 2, so writes up to 4 cycles ahead are forwarded; with a period of 2 two of
# them can hit), and with T = 6 its reads come from the banks (period 6: no forwarding)
FORWARD_SHAPES = [(2, 1, 2, (1, 2, 3)), (1, 2, 2, (1, 2, 3)), (1, 1, 300, (1, 2, 3, 6))]


@pytest.mark.parametrize("rows,cols,ntiles,token_counts", FORWARD_SHAPES)
def test_back_to_back_hits_on_one_output_word(tmp_path, rows, cols, ntiles, token_counts):
    """The accumulator reads a word before the array's result for it arrives and writes it
    back two cycles after, so a later k-tile's read of the same word a few cycles later
    misses that write (forwarding). On arrays whose tile period is 2 or 3 cycles
    (``max(T, rows, cols + 1)``, T = 1..3 tokens) several k-tiles of real N:M operands
    accumulate bit-exactly, and each run takes exactly :func:`run_cycles`."""
    spec = HardwareSpec(rows=rows, cols=cols, n=2, m=4, max_k=4096)
    k, n_out = 4 * rows * 5 - 2, ntiles * cols          # 5 k-tiles
    T_max = max(token_counts)
    x, w = _real_operands(2, 4, "layer3.ffn.up", tokens=T_max, k=k, n_out=n_out, k0=64)
    comp = compress(w, 2, 4)
    gw = grouped_sparse(comp.values, comp.indices, n=2, m=4, k=k, spec=spec)
    s = Session(spec, "engine", ["cfg_tokens", "cfg_ktiles", "cfg_ntiles"])
    runs = {}
    for T in token_counts:
        img = memory_image(spec, x[:T], gw)
        til = img.tiling
        assert til.ktiles == 5 and til.ntiles == ntiles
        assert _min_gap(spec, T, til.tiles) == max(T, rows, cols + 1) in ((2, 3) if T <= 3 else (T,))
        cycles = run_cycles(spec, tokens=T, tiles=til.tiles)
        s.load(img.act, img.wgt)
        s.run(f"T{T}", {"cfg_tokens": T, "cfg_ktiles": til.ktiles, "cfg_ntiles": til.ntiles}, wait=cycles + 1)
        s.read(f"T{T}", til.ntiles * T)
        runs[T] = (img, cycles, gemm_nm_int(x[:T], comp))
    depths = {"act_depth": 5 * T_max, "wgt_depth": ntiles * 5 * rows, "out_depth": ntiles * T_max}
    assert (depths["out_depth"] > OUT_BANK_WORDS) == (ntiles == 300)
    s.play(tmp_path, **depths)
    for T, (img, cycles, golden) in runs.items():
        got = s.words(f"T{T}", ntiles * T, cols)
        want = [row for tile in img.expected.tolist() for row in tile]
        assert np.array_equal(img.expected.transpose(1, 0, 2).reshape(T, -1)[:, :n_out], golden)
        assert got == want, f"T = {T}: outputs differ from the golden product"
        assert s.done_after(f"T{T}") == cycles, f"T = {T}: done after {s.done_after(f'T{T}')}, model {cycles}"
        assert s.at(f"T{T}", cycles)["error"] == 0


# --------------------------------------------------------------------------- run checks (error)
def extreme_nm(tokens: int, k: int, n_out: int, n: int, m: int):
    """The worst case of the accumulator bound: every activation and every kept weight
    -2^7, so every product is +2^14, the largest an int8 x int8 product can be; weights
    N:M with the first ``n`` of each ``m`` kept."""
    x = np.full((tokens, k), -128, dtype=np.int64)
    w = np.zeros((n_out, k), dtype=np.int64)
    for g in range(0, k, m):
        w[:, g:g + n] = -128
    return x, w


def refusal_session(s: Session, good: dict, bad: list[tuple[str, dict]], words: int, cycles: int) -> None:
    """A run of ``good``; then each refused configuration of ``bad`` with ``cfg_accumulate``
    set (a write would change the outputs), each started in the first cycle its
    predecessor shows ``done`` (so whatever a refused run left in flight meets the next);
    then ``good`` again; outputs read after each phase."""
    wait_refused = MemoryEngine.REFUSE_CYCLES
    s.run("good", good, wait=cycles + 1)
    s.read("good", words)
    for label, cfg in bad:
        s.run(label, cfg, accumulate=1, wait=wait_refused - 1)
    s.read("after_refused", words)
    for k in range(3):                                         # error stays until the next start
        s.step(**bad[-1][1])
    s.run("again", good, wait=cycles + 1)
    s.read("again", words)


def check_refusals(s: Session, bad: list[tuple[str, dict]], codes: dict[str, int], golden: list[list[int]],
                   fields: int, cycles: int) -> None:
    """Each refused run: busy for exactly ``REFUSE_CYCLES - 1`` cycles, then ``done`` with its
    cause; no output word written; the error held until the next start; the good run after
    the refused ones exact."""
    n = len(golden)
    assert s.words("good", n, fields) == golden
    assert s.done_after("good") == cycles and s.at("good", cycles)["error"] == 0
    for label, _ in bad:
        rc = MemoryEngine.REFUSE_CYCLES
        assert s.done_after(label) == rc, f"{label}: done after {s.done_after(label)} cycles, expected {rc}"
        assert [s.at(label, k)["busy"] for k in range(rc + 1)] == [0] + [1] * (rc - 1) + [0], label
        assert s.at(label, rc)["error"] == codes[label], f"{label}: error {s.at(label, rc)['error']}"
    assert s.words("after_refused", n, fields) == golden, "a refused run wrote the output memory"
    j = s.reads["after_refused"]
    last = bad[-1][0]
    assert all(s.trace[i]["error"] == codes[last] for i in range(s.marks[last] + MemoryEngine.REFUSE_CYCLES, j + n + 4))
    assert s.at("again", 1)["error"] == 0, "the error is cleared by the next start"
    assert s.done_after("again") == cycles
    assert s.words("again", n, fields) == golden


def test_engine_refuses_runs_that_do_not_fit(tmp_path):
    """A run whose configuration the hardware cannot hold is refused at start: the engine
    raises ``done`` with the cause in ``error`` ``REFUSE_CYCLES`` after ``start``, writes no
    output, and the next run is exact. Causes: more products per output than the
    accumulator holds (here ``acc_capacity`` = 15, 4 per k-tile: 3 k-tiles of the largest
    products are exact, 4 are refused; with 16 the sum would wrap), more weight tiles,
    activation or output words than the memories hold; two at once report the lower code."""
    from sparseforge.hwgen.engine import ERR_ACT, ERR_K, ERR_OUT, ERR_WGT
    from sparseforge.sim.units.engine import acc_capacity
    spec = HardwareSpec(rows=2, cols=2, n=2, m=4, max_k=8)
    assert acc_capacity(spec) == 15 and spec.acc_width == 19
    depths = {"act_depth": 8, "wgt_depth": 2 * 4, "out_depth": 6}     # 4 weight tiles
    x, w = extreme_nm(2, 3 * 2 * 4, 2, 2, 4)
    comp = compress(w, 2, 4)
    img = memory_image(spec, x, grouped_sparse(comp.values, comp.indices, n=2, m=4, k=x.shape[1], spec=spec))
    til = img.tiling
    golden = [row for tile in img.expected.tolist() for row in tile]
    # 12 largest products fit the 19-bit accumulator; 16 would not (2^18 > 2^18 - 1)
    assert til.ktiles == 3 and golden[0][0] == 12 * 2 ** 14 and 16 * 2 ** 14 > 2 ** (spec.acc_width - 1) - 1
    good = {"cfg_tokens": 2, "cfg_ktiles": 3, "cfg_ntiles": 1}
    bad = [("k", {"cfg_tokens": 2, "cfg_ktiles": 4, "cfg_ntiles": 1}),
           ("wgt", {"cfg_tokens": 1, "cfg_ktiles": 1, "cfg_ntiles": 5}),
           ("act", {"cfg_tokens": 3, "cfg_ktiles": 3, "cfg_ntiles": 1}),
           ("out", {"cfg_tokens": 4, "cfg_ktiles": 1, "cfg_ntiles": 2}),
           ("k_and_act", {"cfg_tokens": 3, "cfg_ktiles": 4, "cfg_ntiles": 1})]
    codes = {"k": ERR_K, "wgt": ERR_WGT, "act": ERR_ACT, "out": ERR_OUT, "k_and_act": ERR_K}
    cycles = run_cycles(spec, tokens=2, tiles=3)
    s = Session(spec, "engine", ["cfg_tokens", "cfg_ktiles", "cfg_ntiles"])
    s.load(img.act, img.wgt)
    refusal_session(s, good, bad, len(golden), cycles)
    s.play(tmp_path, **depths)
    check_refusals(s, bad, codes, golden, spec.cols, cycles)


# --------------------------------------------------------------------------- full-size arrays
# Issue 12, part 2: the same checks on the array sizes the presets use (16x16, 32x32), dense
# (1:1, one MAC per PE) and 2:4, on small real workloads: a few tokens and two folds of K and
# of N, each with a partial last fold, so every row and column of the array computes and the
# tile sequencer runs more than one tile. The 16x16 2:4 case writes more than OUT_BANK_WORDS
# output words (both banks of the output memory). One run each (restart is checked above).
# They run in Icarus. Most of their cost is the Amaranth conversion of the design (about 30 s
# for a 32x32 engine), so the session's full-size designs are emitted ahead in two worker
# processes (:func:`full_size_designs`) while the simulations run; Verilator's C++ build of a
# 32x32 engine would take minutes (docs/verify.md, "Full-size arrays", has the measurements).
FULL_SIZE_GRID = [
    # (rows, cols, n, m, layer, tokens, k, n_out)
    pytest.param(16, 16, 1, 1, "layer3.attn.o", 5, 21, 20, id="16x16-1of1"),
    pytest.param(32, 32, 1, 1, "layer3.attn.o", 4, 40, 40, id="32x32-1of1"),
    pytest.param(16, 16, 2, 4, "layer0.ffn.up", 17, 70, 490, id="16x16-2of4-banked"),
    pytest.param(32, 32, 2, 4, "layer0.ffn.up", 4, 200, 40, id="32x32-2of4"),
]


def full_size_operands(rows, cols, n, m, layer, tokens, k, n_out):
    """The spec, real operands, grouped weights and golden product of a full-size case."""
    spec = HardwareSpec(rows=rows, cols=cols, n=n, m=m, max_k=4096)
    x, w = _real_operands(n, m, layer, tokens=tokens, k=k, n_out=n_out)
    if spec.dense:
        return spec, x, grouped_dense(w, spec), gemm_dense_int(x, w)
    comp = compress(w, n, m)
    assert np.array_equal(comp.to_dense(), w), "the real slice is N:M sparse"
    return spec, x, grouped_sparse(comp.values, comp.indices, n=n, m=m, k=k, spec=spec), gemm_nm_int(x, comp)


def _ws_full_size(rows, cols, n, m, layer, tokens, k, n_out):
    spec, x, gw, golden = full_size_operands(rows, cols, n, m, layer, tokens, k, n_out)
    case, depths, expected = _case(spec, x, gw, golden)
    case["runs"] = 1
    return {"spec": spec, "gw": gw, "case": case, "depths": depths, "expected": expected}


_FULL_SIZE_DESIGNS: dict = {}


def prepare_full_size_designs(request, tmp_path_factory) -> dict:
    """The full-size cases of both engines that this session runs (this file's grid and
    tests/test_rtl_os.py's), prepared in this process, with their designs emitted ahead by
    two worker processes: ``{(design, id): (prepared case, Future of the design folder)}``.
    Both files' ``full_size_designs`` fixtures call it; the first call fills
    :data:`_FULL_SIZE_DESIGNS`, the second reuses it."""
    if _FULL_SIZE_DESIGNS:
        return _FULL_SIZE_DESIGNS
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from sparseforge.hwgen.emit import emit_design
    from sparseforge.verify.harness import require_simulator
    from tests.test_rtl_os import FULL_SIZE_GRID as OS_GRID
    from tests.test_rtl_os import os_full_size

    require_simulator(os.environ.get("SF_SIMULATOR") or "icarus")
    wanted = {("os_engine" if item.module.__name__.endswith("test_rtl_os") else "engine", item.callspec.id)
              for item in request.session.items if "full_size_designs" in getattr(item, "fixturenames", ())}
    grids = {"engine": (FULL_SIZE_GRID, _ws_full_size), "os_engine": (OS_GRID, os_full_size)}
    cases = {(d, p.id): prepare(*p.values) for d, (grid, prepare) in grids.items() for p in grid if (d, p.id) in wanted}
    root = tmp_path_factory.mktemp("full_size_designs")
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    # cheapest first, so the first simulations start while the 32x32 designs are converted
    for (design, cid), prep in sorted(cases.items(), key=lambda kv: kv[1]["spec"].rows):
        fut = pool.submit(emit_design, prep["spec"], design=design, out_root=root / design / cid, name="dut",
                          **prep["depths"])
        _FULL_SIZE_DESIGNS[(design, cid)] = (prep, fut)
    pool.shutdown(wait=False)
    return _FULL_SIZE_DESIGNS


@pytest.fixture(scope="session")
def full_size_designs(request, tmp_path_factory):
    return prepare_full_size_designs(request, tmp_path_factory)


@pytest.mark.parametrize("rows,cols,n,m,layer,tokens,k,n_out", FULL_SIZE_GRID)
def test_full_size_array_matches_golden_and_cycles(request, full_size_designs, tmp_path, rows, cols, n, m, layer,
                                                    tokens, k, n_out):
    """A 16x16 or 32x32 engine, dense (n == m == 1) or 2:4, on real pruned MiniLM operands:
    every output word bit-exact against the golden model and the RTL's cycles equal to
    :func:`run_cycles`; the workload fills every row and column and runs several tiles."""
    prep, design_dir = full_size_designs[("engine", request.node.callspec.id)]
    case, depths, expected, gw = prep["case"], prep["depths"], prep["expected"], prep["gw"]
    ktile = rows * gw.group                             # reduction indices of one k-tile
    assert k > ktile and k % ktile != 0, "the first k-tile fills every row, the last is partial"
    assert n_out > cols and n_out % cols != 0, "the first n-tile fills every column, the last is partial"
    assert case["ktiles"] >= 2 and case["ntiles"] >= 2
    assert (depths["out_depth"] > OUT_BANK_WORDS) == (n_out == 490)
    result = run_bench(prep["spec"], design="engine", bench="cocotb_engine", case=case, workdir=tmp_path,
                       design_dir=design_dir.result(), **depths)
    assert result["outputs"]["mismatched_words"] == 0
    assert result["cycles"] == [expected]


def test_run_bench_refuses_a_design_dir_of_another_spec_design_or_depths(tmp_path):
    """``run_bench(design_dir=...)`` runs a design emitted ahead only if its manifest names the
    spec digest, design and depths asked for: otherwise one line naming ``design_dir``."""
    from sparseforge.hwgen.emit import emit_design
    from sparseforge.verify.harness import VerifyError
    spec = HardwareSpec(rows=2, cols=2, n=2, m=4, max_k=64)
    depths = {"act_depth": 4, "wgt_depth": 4, "out_depth": 4}
    d = emit_design(spec, design="engine", out_root=tmp_path, name="d", **depths)
    other = HardwareSpec(rows=2, cols=3, n=2, m=4, max_k=64)
    for s, design, dep in ((other, "engine", depths), (spec, "os_engine", depths),
                           (spec, "engine", {**depths, "out_depth": 5})):
        with pytest.raises(VerifyError, match=r"^design_dir .* holds \(digest, design, depths\)"):
            run_bench(s, design=design, bench="cocotb_engine", case={}, workdir=tmp_path / "w", design_dir=d, **dep)
