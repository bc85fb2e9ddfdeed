"""Pure-Python tests of the output-stationary model: the closed-form run cycles against a
cycle-by-cycle replay of the sequencer/writer mechanism, the period bound, argument checks,
and the OS memory layout against a direct matrix product."""

from __future__ import annotations

import numpy as np
import pytest

from sparseforge.dataflow.layout import grouped_pruned, os_memory_image, os_tiling
from sparseforge.sim.units.engine import OS_PE_LATENCY, OS_WRITE_CYCLES, os_run_cycles, os_tile_period, os_word_widths
from sparseforge.spec import HardwareSpec


def _replay(rows: int, cols: int, tiles: int, groups: int) -> int:
    """Step the RTL's sequencer and writer cycle by cycle (as hwgen/os_engine.py describes
    them) and return start-to-done cycles; also check no write overlaps another tile's."""
    period = max(groups, 2 * cols - 1)
    cycle, cnt, tile, writes = 0, 0, 0, []
    while tile < tiles:                                  # the sequencer
        if cnt == groups - 1:                            # a tile's last issue: its columns reach
            w0 = cycle + 1 + OS_PE_LATENCY + rows        # the port from here, every other cycle,
            writes.extend((w0 + 2 * c + OS_WRITE_CYCLES, tile) for c in range(cols))  # then the sum register
        cnt += 1
        if cnt == period:
            cnt, tile = 0, tile + 1
        cycle += 1
    times = [t for t, _ in writes]
    assert len(set(times)) == len(times), "two writes in one cycle"
    assert times == sorted(times), "a tile's writes interleave with the next tile's"
    return 1 + max(times) + 1                            # start cycle, ..., done register


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 5), (4, 4), (32, 32), (8, 2)])
@pytest.mark.parametrize("tiles,groups", [(1, 1), (1, 13), (5, 2), (7, 9), (3, 70)])
def test_closed_form_matches_replay(rows, cols, tiles, groups):
    """``os_run_cycles`` equals a cycle-by-cycle replay of the sequencer for runs in both
    regimes (groups above and below the ``2 * cols - 1`` period bound)."""
    spec = HardwareSpec(rows=rows, cols=cols, n=2, m=4)
    for tt, nt in ((tiles, 1), (1, tiles)):
        assert os_run_cycles(spec, token_tiles=tt, ntiles=nt, groups=groups) == _replay(rows, cols, tiles, groups)


def test_period_and_increments():
    """A tile costs ``max(groups, 2 * cols - 1)`` cycles in steady state; each extra tile
    adds exactly one period, and a run's fill/drain is ``groups + rows + 2 * cols + 5``."""
    spec = HardwareSpec(rows=4, cols=6, n=2, m=4)
    assert os_tile_period(spec, 3) == 11 and os_tile_period(spec, 40) == 40
    for g in (3, 11, 40):
        one = os_run_cycles(spec, token_tiles=1, ntiles=1, groups=g)
        assert one == g + spec.rows + 2 * spec.cols + 5
        assert os_run_cycles(spec, token_tiles=3, ntiles=2, groups=g) - one == 5 * os_tile_period(spec, g)


@pytest.mark.parametrize("bad", [{"token_tiles": 0}, {"ntiles": -1}, {"groups": 0}, {"groups": 2.5}, {"ntiles": True}])
def test_rejects_bad_arguments(bad):
    """Non-positive or non-integer counts are refused with a ValueError naming the argument."""
    args = {"token_tiles": 1, "ntiles": 1, "groups": 1} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        os_run_cycles(HardwareSpec(), **args)


@pytest.mark.parametrize("dense", [False, True])
def test_memory_image_round_trip(dense):
    """Unpacking the OS memory words gives back X and the grouped weights in the documented
    layout, and the expected output words are ``X @ W^T`` (padding zero)."""
    rng = np.random.default_rng(1)
    spec = HardwareSpec(rows=3, cols=2, n=4 if dense else 2, m=4, max_k=1024)
    T, K, N = 7, 13, 5
    x = rng.integers(-128, 128, (T, K))
    w = rng.integers(-128, 128, (N, K))
    if not dense:
        w[:, 1::2] = 0
    gw = grouped_pruned(w, spec, 4)
    img = os_memory_image(spec, x, gw)
    til = img.tiling
    assert til == os_tiling(spec, tokens=T, k=K, n_out=N, group=4)
    assert (til.token_tiles, til.ntiles, til.groups) == (3, 3, 4)
    assert len(img.act) == til.token_tiles * til.groups and len(img.wgt) == til.ntiles * til.groups
    ww = os_word_widths(spec)
    assert max(img.act).bit_length() <= ww["act"] and max(img.wgt).bit_length() <= ww["wgt"]
    # activation word tt*G + s, row r, lane l == X[tt*R + r, s*g + l]
    aw = spec.act_width
    for tt in range(til.token_tiles):
        for s in range(til.groups):
            word = img.act[tt * til.groups + s]
            for r in range(spec.rows):
                for lane in range(4):
                    v = (word >> ((r * spec.m + lane) * aw)) & ((1 << aw) - 1)
                    v -= (1 << aw) if v >> (aw - 1) else 0
                    t, k = tt * spec.rows + r, s * 4 + lane
                    assert v == (x[t, k] if t < T and k < K else 0)
    Y = np.zeros((til.token_tiles * spec.rows, til.ntiles * spec.cols), dtype=np.int64)
    Y[:T, :N] = x @ w.T
    for tt in range(til.token_tiles):
        for nt in range(til.ntiles):
            for c in range(spec.cols):
                assert list(img.expected[tt, nt, c]) == list(Y[tt * spec.rows:(tt + 1) * spec.rows, nt * spec.cols + c])
