"""A set-associative LRU cache, driven by a recorded access stream, vectorised across sets.

The stream is a sequence of accesses, each ``(cache, line)``: which of several private
caches (one per PE) it goes to and the line address (byte address // line size). Within a
cache, line ``x`` maps to set ``x mod sets``; a set holds ``ways`` lines. An access *hits*
when its line is in its set; otherwise it *misses* and the line is filled, evicting the
least recently used line of the set (an empty way first). Every access, hit or miss, makes
its line the set's most recently used.

LRU state is per set and sets never interact, so each (cache, set) queue of accesses is
simulated on its own, all queues side by side in NumPy: step ``t`` processes the ``t``-th
access of every queue that has one (queues sorted by length, so the live ones are a
prefix). An access to the line the same queue accessed just before is a hit that changes
nothing (that line is already the most recent), so such repeats are counted as hits and
dropped before the steps run. The work is ``O(total accesses x ways)`` and the number of
steps is the longest queue after that reduction.

:func:`lru_hits` is the model; :func:`scan_hits` is the closed form for one stream scanned
again and again (the inner-product dataflow's re-fetch of B), which
``tests/test_spgemm_cache.py`` checks against :func:`lru_hits`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lru_hits", "scan_hits"]


def lru_hits(cache: np.ndarray, line: np.ndarray, *, sets: int, ways: int) -> np.ndarray:
    """Per access of the stream (in order): True where it hits (see the module docstring).

    ``cache``: the private cache each access goes to (non-negative ints); ``line``: its line
    address (non-negative ints); ``sets`` (a power of two) and ``ways`` per cache; every
    cache starts empty."""
    cache = np.asarray(cache, dtype=np.int64)
    line = np.asarray(line, dtype=np.int64)
    n = line.size
    hits = np.zeros(n, dtype=bool)
    if n == 0:
        return hits
    queue = cache * np.int64(sets) + (line & np.int64(sets - 1))
    order = np.argsort(queue, kind="stable")           # per queue, in stream order
    q, x = queue[order], line[order]
    start = np.concatenate([[True], q[1:] != q[:-1]])
    # a repeat of the queue's previous line is a hit that leaves the set as it is
    repeat = ~start & np.concatenate([[False], x[1:] == x[:-1]])
    hits[order[repeat]] = True
    keep = ~repeat
    q, x, idx = q[keep], x[keep], order[keep]
    start = start[keep]
    q_start = np.flatnonzero(start)
    lens = np.diff(np.append(q_start, q.size))
    by_len = np.argsort(-lens, kind="stable")
    lens, q_start = lens[by_len], q_start[by_len]
    nq = lens.size
    tags = np.full((nq, ways), -1, dtype=np.int64)
    stamp = np.full((nq, ways), -1, dtype=np.int64)   # last use; -1: empty (evicted first)
    neg = -lens
    rows = np.arange(nq)
    for t in range(int(lens[0])):
        k = int(np.searchsorted(neg, -t, side="left"))   # queues with more than t accesses
        pos = q_start[:k] + t
        xt = x[pos]
        match = tags[:k] == xt[:, None]
        hit = match.any(axis=1)
        way = np.where(hit, match.argmax(axis=1), stamp[:k].argmin(axis=1))
        r = rows[:k]
        tags[r, way] = xt
        stamp[r, way] = t
        hits[idx[pos]] = hit
    return hits


def scan_hits(lines_per_set: np.ndarray, passes: np.ndarray, *, ways: int) -> tuple[int, int]:
    """(hits, misses) of a cache that sees the same access sequence ``passes`` times over,
    nothing else in between, under LRU: a set whose sequence touches ``L`` distinct lines,
    each once per pass, misses ``L`` times on the first pass and then hits every time if
    ``L <= ways``; if ``L > ways`` every access misses (each line was evicted ``ways``
    distinct lines after its use, before it comes round again).

    ``lines_per_set``: distinct lines per set in one pass, shape (sets,); ``passes``: the
    number of passes of each cache, shape (caches,)."""
    L = np.asarray(lines_per_set, dtype=np.int64)
    p = np.asarray(passes, dtype=np.int64)
    per_pass = int(L.sum())
    fits = int(L[L <= ways].sum())
    total = int(p.sum()) * per_pass
    misses = int(p.sum()) * (per_pass - fits) + int((p > 0).sum()) * fits
    return total - misses, misses
