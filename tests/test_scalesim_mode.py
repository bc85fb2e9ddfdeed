"""SCALE-Sim's array as a sparseforge configuration: ``fold_overlap = "none"`` (sim.units.engine).

The closed forms are checked on hand-worked examples. The SCALE-Sim figures below were measured
with PyPI ``scalesim`` 3.0.0 (CALC bandwidth, an 8 x 8 array, GEMM topology rows
``g1, 5, 3, 4`` / ``g2, 20, 17, 30`` / ``g3, 1, 1, 1`` as M, N, K; benchmarks/bench_scalesim.py
runs the same comparison at 32 x 32): its ``Total Cycles`` is the 0-based index of the last
cycle, ``folds * period - 1``.
"""

from __future__ import annotations

import math

import pytest

from sparseforge.models.network import GemmLayer, Network
from sparseforge.sim.simulate import simulate_network
from sparseforge.sim.units.engine import (OS, WS, fold_period, fold_tail_cycles, os_run_cycles, os_tile_period,
                                          run_cycles)
from sparseforge.spec import HardwareSpec, SpecError, load_spec

#: (M, N, K) -> SCALE-Sim 3.0.0 Total Cycles on an 8 x 8 array, weight- and output-stationary
SCALESIM_8X8 = {(5, 3, 4): (26, 17), (20, 17, 30): (503, 395), (1, 1, 1): (22, 14)}


def _none(rows=8, cols=8, **kw) -> HardwareSpec:
    return HardwareSpec(rows=rows, cols=cols, n=1, m=1, max_k=4096, fold_overlap="none", **kw)


def test_the_field_defaults_to_pipelined_and_refuses_other_values():
    assert HardwareSpec().fold_overlap == "pipelined"
    with pytest.raises(SpecError) as info:
        HardwareSpec(fold_overlap="partial")
    assert str(info.value) == "fold_overlap = 'partial' is not allowed: choose one of pipelined, none"
    assert HardwareSpec().replace(fold_overlap="none").digest != HardwareSpec().digest


def test_ws_fold_period_and_run_by_hand():
    """8 x 8, T = 20: load 8 + stream 20 + fill/drain 8 + 8 - 2 = 42 cycles a fold; a run of
    12 folds starts its last tile at 8 + 11 * 42 = 470 and ends 20 - 1 + 1 (read) + 20 (array:
    8 + 8 + 4) + 1 (sum) + 1 (done) after it, counting the start cycle: 513 = 12 * 42 + 9."""
    s = _none()
    assert fold_period(s, 20) == 42
    assert run_cycles(s, tokens=20, tiles=12) == 1 + 470 + 19 + 1 + 20 + 1 + 1 == 513
    assert fold_tail_cycles(s, WS) == 9
    # one tile, one token: 1 + 8 (load) + 0 + 1 + 20 + 1 + 1
    assert run_cycles(s, tokens=1, tiles=1) == 32 == fold_period(s, 1) + 9


def test_os_tile_period_and_run_by_hand():
    """8 x 8, K = 30 groups: 30 + 8 + 8 - 2 = 44 a tile; 9 tiles: the last issue at 8 * 44 + 29,
    then read 1, PE 4 + rows 8, the other 7 columns 2 cycles each, write 1, done 1, and the start
    cycle: 1 + 381 + 1 + 12 + 14 + 1 + 1 = 411 = 9 * 44 + 8 + 7."""
    s = _none()
    assert os_tile_period(s, 30) == 44
    assert os_run_cycles(s, token_tiles=3, ntiles=3, groups=30) == 1 + 381 + 1 + 12 + 14 + 1 + 1 == 411
    assert fold_tail_cycles(s, OS) == 15
    # the result chain still bounds the period: 2 x 6 with one group, 1 + 2 + 6 - 2 = 7 < 11
    narrow = _none(rows=2, cols=6)
    assert os_tile_period(narrow, 1) == 11


def test_pipelined_mode_keeps_its_own_schedule():
    """The default mode's periods are unchanged: max(rows, cols + 1, T) and max(G, 2C - 1)."""
    s = HardwareSpec(rows=8, cols=8, n=1, m=1, max_k=4096)
    assert run_cycles(s, tokens=20, tiles=12) == 1 + (1 + 11 * 20) + 19 + 1 + 20 + 1 + 1
    assert os_tile_period(s, 30) == 30 and os_tile_period(s, 3) == 15


@pytest.mark.parametrize("mnk", sorted(SCALESIM_8X8))
def test_runs_are_scalesim_folds_plus_the_rtl_tail(mnk):
    """For SCALE-Sim's measured layers: sparseforge's run = SCALE-Sim's folds * period (its
    Total Cycles + 1) + the tail, on both engines, with SCALE-Sim's fold counts."""
    M, N, K = mnk
    ws_ss, os_ss = SCALESIM_8X8[mnk]
    s = _none()
    folds_ws = math.ceil(K / 8) * math.ceil(N / 8)
    assert run_cycles(s, tokens=M, tiles=folds_ws) == ws_ss + 1 + fold_tail_cycles(s, WS)
    assert folds_ws * fold_period(s, M) == ws_ss + 1
    assert os_run_cycles(s, token_tiles=math.ceil(M / 8), ntiles=math.ceil(N / 8), groups=K) == \
        os_ss + 1 + fold_tail_cycles(s, OS)


@pytest.mark.parametrize("dataflow", [WS, OS])
def test_simulated_layers_on_the_scalesim_spec(dataflow):
    """Through the mapper and simulator: each measured layer is one run whose compute cycles are
    SCALE-Sim's plus one plus the tail."""
    s = _none(input_buffer_kib=64, weight_buffer_kib=64, output_buffer_kib=64, dataflow=dataflow)
    layers = [GemmLayer(name=f"g{i}", tokens=M, k=K, n_out=N) for i, (M, N, K) in enumerate(sorted(SCALESIM_8X8))]
    res = simulate_network(s, Network(name="g", layers=layers), None)
    for (mnk, lay) in zip(sorted(SCALESIM_8X8), res.layers):
        ss = SCALESIM_8X8[mnk][0 if dataflow == WS else 1]
        assert lay.runs == 1
        assert lay.compute_cycles == ss + 1 + fold_tail_cycles(s, dataflow)


def test_the_preset_is_scalesims_array():
    s = load_spec("scalesim-32x32")
    assert (s.rows, s.cols, s.n, s.m, s.fold_overlap) == (32, 32, 1, 1, "none")
    assert s.dram_latency_ns == 0
    # a 32 x 32 weight-stationary fold: T + 2 * 32 + 32 - 2
    assert fold_period(s, 3025) == 3025 + 94
