"""The generated output-stationary engine, run in Icarus Verilog on real pruned MiniLM operands.

Each case slices a real MiniLM Linear layer (weights pruned N:M by magnitude, int8
activations from real text), lays it out with :func:`dataflow.layout.os_memory_image`, runs it on the
emitted ``os_engine`` Verilog and checks

- every output word bit-exactly against the NumPy golden model (``models.golden``), and
- the measured cycles from ``start`` to ``done`` against :func:`sim.units.engine.os_run_cycles`,
  exactly, twice in a row (the second run checks the engine restarts cleanly).
"""

from __future__ import annotations

import numpy as np
import pytest

from sparseforge.dataflow.layout import group_size, grouped_dense, grouped_sparse, os_memory_image
from sparseforge.models.golden import gemm_dense_int, gemm_nm_int
from sparseforge.models.prune import compress
from sparseforge.sim.units.engine import os_run_cycles, os_tile_period
from sparseforge.spec import HardwareSpec
from sparseforge.verify.harness import run_bench
from tests.test_rtl_engine import _real_operands

pytestmark = [pytest.mark.rtl, pytest.mark.minilm]


def _phase(spec, x, gw, *, accumulate=0, runs=2):
    img = os_memory_image(spec, x, gw)
    til = img.tiling
    cycles = os_run_cycles(spec, token_tiles=til.token_tiles, ntiles=til.ntiles, groups=til.groups)
    phase = {"act": [f"{a:x}" for a in img.act], "wgt": [f"{b:x}" for b in img.wgt], "groups": til.groups,
             "accumulate": accumulate, "runs": runs}
    return img, phase, cycles


def _run(spec, tmp_path, phases, img, design_dir=None):
    til = img.tiling
    case = {"phases": phases, "token_tiles": til.token_tiles, "ntiles": til.ntiles, "rows": spec.rows,
            "acc_width": spec.acc_width, "expected": img.expected.tolist(), "timeout_cycles": 100000}
    depths = {"act_depth": max(len(p["act"]) for p in phases), "wgt_depth": max(len(p["wgt"]) for p in phases),
              "out_depth": til.tiles * spec.cols}
    return run_bench(spec, design="os_engine", bench="cocotb_os_engine", case=case, workdir=tmp_path,
                     design_dir=design_dir, **depths)


def _check_golden(img, x, golden):
    T, N = golden.shape
    til = img.tiling
    got = img.expected.transpose(0, 3, 1, 2).reshape(til.token_tiles * img.expected.shape[3], -1)
    assert np.array_equal(got[:T, :N], golden)


# (rows, cols, n, m, layer, tokens, k, n_out): 2:4, 1:4, 2:8; K never a multiple of the
# group; several token tiles and n-tiles; groups both above and below 2*cols - 1 (the
# period bound), and a one-column array (no result chain).
SPARSE_GRID = [
    (4, 4, 2, 4, "layer0.attn.q", 10, 50, 10),     # G = 13 >= 7: back-to-back tiles
    (3, 5, 1, 4, "layer1.ffn.up", 7, 30, 12),      # G = 8 < 9: period 2*cols - 1
    (2, 3, 2, 8, "layer2.ffn.down", 5, 45, 7),     # G = 6 >= 5
    (5, 1, 2, 4, "layer5.attn.o", 11, 18, 3),      # one column
]


@pytest.mark.parametrize("rows,cols,n,m,layer,tokens,k,n_out", SPARSE_GRID)
def test_os_sparse_gemm_matches_golden_and_cycles(tmp_path, rows, cols, n, m, layer, tokens, k, n_out):
    """A multi-tile N:M GEMM on real operands: every output equals the golden N:M product and
    the RTL's cycles equal ``os_run_cycles`` exactly, on two consecutive runs."""
    spec = HardwareSpec(rows=rows, cols=cols, n=n, m=m, max_k=4096)
    x, w = _real_operands(n, m, layer, tokens=tokens, k=k, n_out=n_out)
    comp = compress(w, n, m)
    assert np.array_equal(comp.to_dense(), w), "the real slice is N:M sparse"
    gw = grouped_sparse(comp.values, comp.indices, n=n, m=m, k=k, spec=spec)
    img, phase, cycles = _phase(spec, x, gw)
    assert k % gw.group != 0 and img.tiling.token_tiles > 1 and img.tiling.ntiles > 1
    _check_golden(img, x, gemm_nm_int(x, comp))
    result = _run(spec, tmp_path, [phase], img)
    assert result["cycles"] == [cycles, cycles]


DENSE_GRID = [
    (4, 4, 4, 4, "layer3.attn.o", 6, 21, 8),       # dense array
    (4, 4, 2, 4, "layer4.ffn.up", 10, 23, 6),      # dense mode on a 2:4 array (groups of 2)
]


@pytest.mark.parametrize("rows,cols,n,m,layer,tokens,k,n_out", DENSE_GRID)
def test_os_dense_gemm_matches_golden_and_cycles(tmp_path, rows, cols, n, m, layer, tokens, k, n_out):
    """Dense int8 weights on a dense array and, in dense mode, on a sparse array: bit-exact
    against ``X @ W^T`` and cycle-exact against ``os_run_cycles``."""
    spec = HardwareSpec(rows=rows, cols=cols, n=n, m=m, max_k=4096)
    x, w = _real_operands(m, m, layer, tokens=tokens, k=k, n_out=n_out)
    gw = grouped_dense(w, spec)
    img, phase, cycles = _phase(spec, x, gw)
    assert k % gw.group != 0 and img.tiling.token_tiles > 1 and img.tiling.ntiles > 1
    _check_golden(img, x, gemm_dense_int(x, w))
    result = _run(spec, tmp_path, [phase], img)
    assert result["cycles"] == [cycles, cycles]


@pytest.mark.parametrize("wn,wm,group", [(2, 4, 4), (1, 4, 8)])
def test_os_other_patterns_on_a_2of8_array(tmp_path, wn, wm, group):
    """2:4 and 1:4 weights on 2:8 PEs use the largest group the PEs hold (4 and 8 lanes):
    bit-exact and cycle-exact on the OS engine."""
    spec = HardwareSpec(rows=3, cols=4, n=2, m=8, max_k=4096)
    assert group_size(spec, (wn, wm)) == group
    x, w = _real_operands(wn, wm, "layer2.attn.v", tokens=8, k=60, n_out=6)
    comp = compress(w, wn, wm)
    gw = grouped_sparse(comp.values, comp.indices, n=wn, m=wm, k=60, spec=spec)
    assert gw.group == group
    img, phase, cycles = _phase(spec, x, gw)
    _check_golden(img, x, gemm_nm_int(x, comp))
    result = _run(spec, tmp_path, [phase], img)
    assert result["cycles"] == [cycles, cycles]


def test_os_single_tile_cycles(tmp_path):
    """One tile: the run is the start cycle, the last issue at cycle G - 1, the memory read,
    the PE pipeline with row skew/deskew, the result chain (every other cycle per column),
    the writer's sum register and ``done``."""
    spec = HardwareSpec(rows=4, cols=4, n=2, m=4, max_k=4096)
    x, w = _real_operands(2, 4, "layer0.ffn.up", tokens=4, k=40, n_out=4)
    comp = compress(w, 2, 4)
    gw = grouped_sparse(comp.values, comp.indices, n=2, m=4, k=40, spec=spec)
    img, phase, cycles = _phase(spec, x, gw)
    assert img.tiling.tiles == 1 and img.tiling.groups == 10
    result = _run(spec, tmp_path, [phase], img)
    assert result["cycles"] == [cycles, cycles]
    assert cycles == 1 + (10 - 1) + 1 + 4 + spec.rows + 2 * (spec.cols - 1) + 1 + 1


def test_os_reduction_split_accumulates(tmp_path):
    """K split into two blocks run one after the other, the second with ``cfg_accumulate``:
    the output memory ends with the full product (bit-exact) and each run takes exactly
    ``os_run_cycles`` for its own groups (the first below the period bound, the second above)."""
    spec = HardwareSpec(rows=3, cols=4, n=2, m=4, max_k=4096)
    x, w = _real_operands(2, 4, "layer1.attn.q", tokens=7, k=50, n_out=9)
    comp = compress(w, 2, 4)
    k1 = 20                                             # 5 groups, then 8
    phases, periods = [], []
    for lo, hi, accumulate in ((0, k1, 0), (k1, 50, 1)):
        c = compress(w[:, lo:hi], 2, 4)
        gw = grouped_sparse(c.values, c.indices, n=2, m=4, k=hi - lo, spec=spec)
        img, phase, cycles = _phase(spec, x[:, lo:hi], gw, accumulate=accumulate, runs=1)
        phases.append(phase | {"expected_cycles": cycles})
        periods.append(os_tile_period(spec, img.tiling.groups))
    assert periods == [2 * spec.cols - 1, 8]
    full = os_memory_image(spec, x, grouped_sparse(comp.values, comp.indices, n=2, m=4, k=50, spec=spec))
    _check_golden(full, x, gemm_nm_int(x, comp))
    result = _run(spec, tmp_path, phases, full)
    assert result["cycles"] == [p["expected_cycles"] for p in phases]


def test_os_engine_refuses_runs_that_do_not_fit(tmp_path):
    """A run the hardware cannot hold is refused at start (``done`` and ``error``
    ``REFUSE_CYCLES`` after ``start``, nothing written, the next run exact): more products
    per output than the accumulator holds (``acc_capacity`` = 15, 2 per group: 7 groups of
    the largest products are exact, 8 are refused), more weight, activation or output words
    than the memories hold; two at once report the lower code."""
    from sparseforge.hwgen.engine import ERR_ACT, ERR_K, ERR_OUT, ERR_WGT
    from sparseforge.sim.units.engine import acc_capacity
    from tests.test_rtl_engine import Session, check_refusals, extreme_nm, refusal_session
    spec = HardwareSpec(rows=2, cols=2, n=2, m=4, max_k=8)
    assert acc_capacity(spec) == 15
    depths = {"act_depth": 8, "wgt_depth": 8, "out_depth": 6}         # 3 output tiles
    x, w = extreme_nm(2, 7 * 4, 2, 2, 4)
    comp = compress(w, 2, 4)
    img = os_memory_image(spec, x, grouped_sparse(comp.values, comp.indices, n=2, m=4, k=x.shape[1], spec=spec))
    til = img.tiling
    golden = [row for tt in img.expected.tolist() for nt in tt for row in nt]
    assert (til.groups, til.tiles) == (7, 1) and golden[0][0] == 14 * 2 ** 14 < 2 ** (spec.acc_width - 1)
    good = {"cfg_groups": 7, "cfg_ttiles": 1, "cfg_ntiles": 1}
    bad = [("k", {"cfg_groups": 8, "cfg_ttiles": 1, "cfg_ntiles": 1}),
           ("wgt", {"cfg_groups": 3, "cfg_ttiles": 1, "cfg_ntiles": 3}),
           ("act", {"cfg_groups": 3, "cfg_ttiles": 3, "cfg_ntiles": 1}),
           ("out", {"cfg_groups": 1, "cfg_ttiles": 2, "cfg_ntiles": 2}),
           ("k_and_wgt", {"cfg_groups": 8, "cfg_ttiles": 1, "cfg_ntiles": 2})]
    codes = {"k": ERR_K, "wgt": ERR_WGT, "act": ERR_ACT, "out": ERR_OUT, "k_and_wgt": ERR_K}
    cycles = os_run_cycles(spec, token_tiles=1, ntiles=1, groups=7)
    s = Session(spec, "os_engine", ["cfg_groups", "cfg_ttiles", "cfg_ntiles"])
    s.load(img.act, img.wgt)
    refusal_session(s, good, bad, len(golden), cycles)
    s.play(tmp_path, **depths)
    check_refusals(s, bad, codes, golden, spec.rows, cycles)


def test_os_banked_output_memory_accumulates(tmp_path):
    """An output memory of more than ``OUT_BANK_WORDS`` words is built of banks (the
    writer's read then takes two cycles): a reduction split over two runs, the second
    accumulating onto outputs in both banks, is bit-exact and each run takes exactly
    ``os_run_cycles``."""
    from sparseforge.hwgen.engine import OUT_BANK_WORDS
    spec = HardwareSpec(rows=2, cols=2, n=2, m=4, max_k=4096)
    x, w = _real_operands(2, 4, "layer4.attn.k", tokens=32, k=16, n_out=34)
    comp = compress(w, 2, 4)
    phases = []
    for lo, hi, accumulate in ((0, 8, 0), (8, 16, 1)):
        c = compress(w[:, lo:hi], 2, 4)
        gw = grouped_sparse(c.values, c.indices, n=2, m=4, k=hi - lo, spec=spec)
        img, phase, cycles = _phase(spec, x[:, lo:hi], gw, accumulate=accumulate, runs=1)
        phases.append(phase | {"expected_cycles": cycles})
    full = os_memory_image(spec, x, grouped_sparse(comp.values, comp.indices, n=2, m=4, k=16, spec=spec))
    assert full.tiling.tiles * spec.cols > OUT_BANK_WORDS
    _check_golden(full, x, gemm_nm_int(x, comp))
    result = _run(spec, tmp_path, phases, full)
    assert result["cycles"] == [p["expected_cycles"] for p in phases]


# --------------------------------------------------------------------------- full-size arrays
# Issue 12, part 2 (see tests/test_rtl_engine.py, FULL_SIZE_GRID): 16x16 and 32x32, dense
# (1:1) and 2:4, two token tiles and two or more n-tiles, each with a partial last one, so every
# row (token) and column (output) of the array computes; the 16x16 dense case has more groups
# than the period bound 2 * cols - 1, the others fewer; the 16x16 2:4 case writes more than
# OUT_BANK_WORDS output words (both banks). One run each, in Icarus, on designs emitted ahead
# (``full_size_designs``, docs/verify.md).
FULL_SIZE_GRID = [
    # (rows, cols, n, m, layer, tokens, k, n_out)
    pytest.param(16, 16, 1, 1, "layer3.attn.o", 20, 40, 20, id="16x16-1of1"),
    pytest.param(32, 32, 1, 1, "layer3.attn.o", 40, 45, 40, id="32x32-1of1"),
    pytest.param(16, 16, 2, 4, "layer0.ffn.up", 20, 50, 260, id="16x16-2of4-banked"),
    pytest.param(32, 32, 2, 4, "layer0.ffn.up", 40, 70, 40, id="32x32-2of4"),
]


def os_full_size(rows, cols, n, m, layer, tokens, k, n_out):
    """A full-size OS case prepared for ``full_size_designs``: spec, layout, phase, depths."""
    from tests.test_rtl_engine import full_size_operands
    spec, x, gw, golden = full_size_operands(rows, cols, n, m, layer, tokens, k, n_out)
    img, phase, cycles = _phase(spec, x, gw, runs=1)
    _check_golden(img, x, golden)
    til = img.tiling
    depths = {"act_depth": len(phase["act"]), "wgt_depth": len(phase["wgt"]), "out_depth": til.tiles * spec.cols}
    return {"spec": spec, "img": img, "phase": phase, "cycles": cycles, "depths": depths}


@pytest.fixture(scope="session")
def full_size_designs(request, tmp_path_factory):
    from tests.test_rtl_engine import prepare_full_size_designs
    return prepare_full_size_designs(request, tmp_path_factory)


@pytest.mark.parametrize("rows,cols,n,m,layer,tokens,k,n_out", FULL_SIZE_GRID)
def test_os_full_size_array_matches_golden_and_cycles(request, full_size_designs, tmp_path, rows, cols, n, m, layer,
                                                       tokens, k, n_out):
    """A 16x16 or 32x32 output-stationary engine, dense (n == m == 1) or 2:4, on real pruned
    MiniLM operands: bit-exact against the golden model and cycle-exact against
    ``os_run_cycles``."""
    from sparseforge.hwgen.engine import OUT_BANK_WORDS
    prep, design_dir = full_size_designs[("os_engine", request.node.callspec.id)]
    spec, img, cycles = prep["spec"], prep["img"], prep["cycles"]
    til = img.tiling
    assert tokens > rows and tokens % rows != 0, "the first token tile fills every row, the last is partial"
    assert n_out > cols and n_out % cols != 0, "the first n-tile fills every column, the last is partial"
    assert til.token_tiles >= 2 and til.ntiles >= 2
    assert (til.groups > 2 * cols - 1) == ((rows, n) == (16, 1))
    assert (til.tiles * cols > OUT_BANK_WORDS) == (n_out == 260)
    result = _run(spec, tmp_path, [prep["phase"]], img, design_dir=design_dir.result())
    assert result["outputs"]["mismatched_words"] == 0
    assert result["cycles"] == [cycles]
