"""The engines' SCALE-Sim mode (``fold_overlap = "none"``) in Icarus Verilog, on real MiniLM operands.

With ``fold_overlap = "none"`` the sequencers overlap no tiles (SCALE-Sim v3's array:
every fold pays its weight load, fill and drain; ``sim.units.engine``, "No fold overlap").
Each case runs a multi-tile GEMM on the emitted Verilog of that mode and checks every output
word bit-exactly against the golden model and the measured cycles against the model
exactly, on two consecutive runs; each also checks that the cycles are the mode's closed
form (``tiles * period + tail``) and differ from the pipelined mode's, so a sequencer that
ignored the mode would fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparseforge.dataflow.layout import grouped_dense, grouped_sparse
from sparseforge.models.golden import gemm_dense_int, gemm_nm_int
from sparseforge.models.prune import compress
from sparseforge.sim.units.engine import fold_period, fold_tail_cycles, os_run_cycles, os_tile_period, run_cycles
from sparseforge.spec import HardwareSpec
from sparseforge.verify.harness import run_bench
from tests.test_rtl_engine import _case as _ws_case  # the grids' case builders
from tests.test_rtl_engine import _real_operands
from tests.test_rtl_os import _check_golden, _phase, _run

pytestmark = [pytest.mark.rtl, pytest.mark.minilm]




def _os_run(spec: HardwareSpec, tmp_path, x, gw, golden):
    """Run the OS engine twice on the GEMM; the image, the model's cycles and the measured ones."""
    img, phase, cycles = _phase(spec, x, gw)
    _check_golden(img, x, golden)
    return img, cycles, _run(spec, tmp_path, [phase], img)


def _spec(rows, cols, n, m):
    return HardwareSpec(rows=rows, cols=cols, n=n, m=m, max_k=4096, fold_overlap="none")


def _operands(spec, layer, tokens, k, n_out):
    """Dense int8 weights on a dense array, N:M weights on a sparse one, and their golden product."""
    if spec.dense:
        x, w = _real_operands(4, 4, layer, tokens=tokens, k=k, n_out=n_out)
        return x, grouped_dense(w, spec), gemm_dense_int(x, w)
    x, w = _real_operands(spec.n, spec.m, layer, tokens=tokens, k=k, n_out=n_out)
    comp = compress(w, spec.n, spec.m)
    assert np.array_equal(comp.to_dense(), w), "the real slice is N:M sparse"
    return x, grouped_sparse(comp.values, comp.indices, n=spec.n, m=spec.m, k=k, spec=spec), gemm_nm_int(x, comp)


# (rows, cols, n, m, layer, tokens, k, n_out): one MAC per PE (1:1, as SCALE-Sim's), several
# k-tiles and n-tiles. (Also run once by hand, passing: a 3 x 5 2:4 array with one token, and
# a 1 x 3 1:1 array; kept out of CI for time.)
WS_GRID = [
    (4, 4, 1, 1, "layer3.attn.o", 6, 21, 9),
]


@pytest.mark.parametrize("rows,cols,n,m,layer,tokens,k,n_out", WS_GRID)
def test_ws_no_overlap_matches_golden_and_cycles(tmp_path, rows, cols, n, m, layer, tokens, k, n_out):
    spec = _spec(rows, cols, n, m)
    x, gw, golden = _operands(spec, layer, tokens, k, n_out)
    case, depths, expected = _ws_case(spec, x, gw, golden)
    tiles = case["ktiles"] * case["ntiles"]
    assert tiles > 1
    assert expected == tiles * fold_period(spec, tokens) + fold_tail_cycles(spec, "weight-stationary")
    assert expected != run_cycles(spec.replace(fold_overlap="pipelined"), tokens=tokens, tiles=tiles)
    result = run_bench(spec, design="engine", bench="cocotb_engine", case=case, workdir=tmp_path, **depths)
    assert result["cycles"] == [expected, expected]


# OS: a 2:4 array, several token tiles and n-tiles, groups (8) below the pipelined period's
# result-chain bound (2C - 1 = 9). (Also run once by hand, passing: 4 x 4 1:1, 21 groups.)
OS_GRID = [
    (3, 5, 2, 4, "layer1.ffn.up", 7, 30, 12),
]


@pytest.mark.parametrize("rows,cols,n,m,layer,tokens,k,n_out", OS_GRID)
def test_os_no_overlap_matches_golden_and_cycles(tmp_path, rows, cols, n, m, layer, tokens, k, n_out):
    spec = _spec(rows, cols, n, m)
    x, gw, golden = _operands(spec, layer, tokens, k, n_out)
    img, cycles, result = _os_run(spec, tmp_path, x, gw, golden)
    til = img.tiling
    assert til.tiles > 1
    period = os_tile_period(spec, til.groups)
    assert period == til.groups + rows + cols - 2 > 2 * cols - 1
    assert cycles == til.tiles * period + fold_tail_cycles(spec, "output-stationary")
    assert cycles != os_run_cycles(spec.replace(fold_overlap="pipelined"), token_tiles=til.token_tiles,
                                   ntiles=til.ntiles, groups=til.groups)
    assert result["cycles"] == [cycles, cycles]
