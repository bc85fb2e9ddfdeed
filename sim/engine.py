"""Exact cycle model of one run of the GEMM engine (:mod:`hwgen.engine`).

A *run* is what the engine does between ``start`` and ``done``: it streams ``tokens``
activation vectors through the array for each of ``tiles`` weight tiles, loading each
tile's weights (``rows`` words, one per cycle) while the previous tile streams. The
loader and the streamer obey (cycle 0 = the first cycle after ``start`` is sampled)::

    L_0 = 0,  S_0 = 1
    L_j = max(L_{j-1} + rows, S_{j-1} + cols)   # shadow weights free once tile j-1 swapped in
    S_j = max(L_j + 1, S_{j-1} + tokens)        # weights of tile j started, streamer free

and the run ends when the last token of the last tile has passed the activation memory
read (1 cycle), the array (``spec.array_latency``) and the output accumulator (1 cycle),
plus the cycle that samples ``start`` and the one that raises ``done``.

The recurrence is max-plus linear with constant coefficients, so after at most a couple of
tiles it settles into a constant period; :func:`stream_starts` uses that to evaluate any
number of tiles in O(1) while staying exact.
"""

from __future__ import annotations

from sparseforge.spec import HardwareSpec

__all__ = ["stream_starts", "run_cycles", "START_CYCLES", "ACT_READ_CYCLES", "ACC_CYCLES", "DONE_CYCLES"]

START_CYCLES = 1      # the cycle in which ``start`` is sampled
ACT_READ_CYCLES = 1   # synchronous activation-memory read
ACC_CYCLES = 0        # accumulate-and-write happens in the cycle the result arrives
DONE_CYCLES = 1       # ``done`` is a register set by the last write


def _recurrence(rows: int, cols: int, tokens: int, count: int) -> list[tuple[int, int]]:
    L, S = 0, 1
    out = [(L, S)]
    for _ in range(count - 1):
        L = max(L + rows, S + cols)
        S = max(L + 1, S + tokens)
        out.append((L, S))
    return out


def stream_starts(rows: int, cols: int, tokens: int, tiles: int) -> int:
    """Cycle in which the streamer starts the last of ``tiles`` tiles (exact)."""
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, not {tiles}")
    # Once both L and S advance by the same period P = max(rows, cols + 1, tokens), they
    # keep doing so (the max-plus system has a single critical cycle). Iterate until the
    # increments are stable, then extrapolate.
    head = _recurrence(rows, cols, tokens, min(tiles, 6))
    if tiles <= 6:
        return head[-1][1]
    (l4, s4), (l5, s5) = head[-2], head[-1]
    pl, ps = l5 - l4, s5 - s4
    if pl != ps:  # not settled (cannot happen for this system, but stay exact if it did)
        return _recurrence(rows, cols, tokens, tiles)[-1][1]
    return s5 + ps * (tiles - 6)


def run_cycles(spec: HardwareSpec, *, tokens: int, tiles: int) -> int:
    """Cycles from the cycle in which ``start`` is high to the first cycle ``done`` is high,
    for a run of ``tiles`` tiles of ``tokens`` tokens each."""
    if tokens < 1:
        raise ValueError(f"tokens must be >= 1, not {tokens}")
    s_last = stream_starts(spec.rows, spec.cols, tokens, tiles)
    last_issue = s_last + tokens - 1
    return START_CYCLES + last_issue + ACT_READ_CYCLES + spec.array_latency + ACC_CYCLES + DONE_CYCLES
