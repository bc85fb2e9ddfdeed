"""Exact cycle model of one run of the output-stationary engine (:mod:`hwgen.os_engine`).

A run computes ``token_tiles x ntiles`` output tiles, token tile outer, and streams all
``groups`` reduction groups of each tile through the array, one group per cycle. The
sequencer starts tile ``j`` at cycle ``j * P`` (cycle 0 = the first cycle after ``start``
is sampled) with the *tile period*

    P = max(groups, 2 * cols - 1)

-- ``groups`` cycles of issue, and at least ``2 * cols - 1`` so that a tile's results,
which leave each row through a left-shifting result chain two cycles apart, are out of the
way before the next tile's results are captured (``hwgen/os_array.py``). After the last
group of the last tile is issued at ``a = (tiles - 1) * P + groups - 1`` it takes

- 1 cycle: synchronous memory read (the group is at the array port at ``a + 1``);
- ``OS_PE_LATENCY + rows`` cycles: PE registers and pipeline, row skew and deskew, until
  output column 0 of the tile is at the array's output port (``a + 1 + 4 + rows``), where
  it is written to the output memory in the same cycle;
- ``2 * (cols - 1)`` cycles: the remaining output columns, one every other cycle;
- 1 cycle: ``done`` is a register set by the last write.

Counting the cycle that samples ``start`` as well::

    os_run_cycles = 1 + (tiles - 1) * P + groups - 1 + 1 + 4 + rows + 2 * (cols - 1) + 1
                  = (tiles - 1) * P + groups + rows + 2 * cols + 4

This is a closed form (no recurrence), so it is O(1) for any run.
"""

from __future__ import annotations

from sparseforge.spec import HardwareSpec

__all__ = ["os_tile_period", "os_run_cycles", "OS_PE_LATENCY"]

OS_PE_LATENCY = 4  # index mux, multiply, product sum, accumulate (hwgen.os_array.OS_PE_LATENCY)


def os_tile_period(spec: HardwareSpec, groups: int) -> int:
    """Cycles between the starts of consecutive tiles of a run."""
    return max(groups, 2 * spec.cols - 1)


def os_run_cycles(spec: HardwareSpec, *, token_tiles: int, ntiles: int, groups: int) -> int:
    """Cycles from the cycle in which ``start`` is high to the first cycle ``done`` is high
    for a run of ``token_tiles x ntiles`` tiles of ``groups`` groups each (exact)."""
    for name, v in (("token_tiles", token_tiles), ("ntiles", ntiles), ("groups", groups)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    tiles = token_tiles * ntiles
    last_issue = (tiles - 1) * os_tile_period(spec, groups) + groups - 1
    return 1 + last_issue + 1 + OS_PE_LATENCY + spec.rows + 2 * (spec.cols - 1) + 1
