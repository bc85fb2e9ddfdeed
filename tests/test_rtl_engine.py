"""The generated GEMM engine, run in Icarus Verilog on real pruned MiniLM operands.

Each case takes a slice of a real MiniLM Linear layer (weights pruned N:M by magnitude and
quantised to int8, activations from real text through the pruned int8 network), lays it out
with :mod:`dataflow.layout`, runs it on the emitted Verilog, and checks

- every output word bit-exactly against the NumPy golden model (``models.golden``), and
- the measured cycles from ``start`` to ``done`` against :func:`sim.units.engine.run_cycles`,
  exactly (the simulator models the same loader/streamer mechanism the RTL implements).
"""

from __future__ import annotations

import numpy as np
import pytest

from sparseforge.dataflow.layout import grouped_dense, grouped_sparse, memory_image
from sparseforge.models.golden import gemm_dense_int, gemm_nm_int
from sparseforge.models.prune import compress
from sparseforge.sim.units.engine import run_cycles
from sparseforge.spec import HardwareSpec
from tests.rtl.harness import run_bench

pytestmark = [pytest.mark.rtl, pytest.mark.minilm]


def _real_operands(n: int, m: int, layer: str, *, tokens: int, k: int, n_out: int, k0: int = 0):
    """Slice ``[tokens, k]`` activations and ``[n_out, k]`` weights out of a real layer.
    The slice is re-compressed so groups are counted from its own first column."""
    pipeline = pytest.importorskip("sparseforge.models.pipeline")
    try:
        model = pipeline.pruned_minilm(min(n, m), m)
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
    # the parts of a single-tile run, each from the RTL's structure
    assert expected == 1 + 1 + 16 - 1 + 1 + spec.array_latency + 1


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
