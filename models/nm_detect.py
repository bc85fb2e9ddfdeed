"""Find the N:M pattern that a weight matrix already has (its real masks).

Rule (:func:`detect_nm`). ``w`` is ``[n_out, K]``; like :mod:`sparseforge.models.prune`, every
row's ``K`` entries are cut into groups of ``m`` consecutive entries (group ``g`` covers
``K`` positions ``g*m .. g*m + m - 1``). For each standard group size ``m`` in
:data:`STANDARD_M` (2, 4, 8, 16) that divides ``K``, ``n(m)`` is the largest number of nonzero
entries in any group of any row: the weights satisfy ``n(m):m`` (every group has at most
``n(m)`` nonzeros). Patterns with ``n(m) == m`` say nothing (the weights are dense at that
size) and are dropped. Of those left, the tightest wins: the smallest density ``n/m``; on a
tie the smaller ``m`` wins, because ``n:m`` implies ``kn:km`` but not the other way round
(2:4 weights are also 4:8, while 4:8 weights need not be 2:4). ``None`` when no ``m`` is left:
``K`` is divisible by none of the sizes, or every size sees a full group (dense weights), or
the matrix is all zeros (placeholder weights, as in a shapes-only export, say nothing of masks).

Only exact zeros count as pruned: a weight that is merely small is a kept weight. A matrix
whose last group is short (``K`` not a multiple of ``m``) is not called ``n:m`` at that
``m``; :func:`sparseforge.models.prune.prune` pads such a group, but an exporter's layout of
a short group is not known here, so the rule does not guess.

:func:`fits` says whether weights known to be ``n:m`` can run on hardware built for another
pattern without dropping a kept weight.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STANDARD_M", "detect_nm", "group_max_nonzeros", "fits"]

#: Group sizes :func:`detect_nm` tries: the sizes N:M hardware and recipes use (2:4 on NVIDIA
#: A100 sparse tensor cores; 4:8, 1:4, 2:8 in SR-STE's ImageNet results; 1:8 ... 7:8 in
#: Progressive Gradient Flow's schedules; docs/sparsity.md). 16 is the largest, an assumption
#: that covers every pattern the project's presets and training recipes use.
STANDARD_M = (2, 4, 8, 16)


def _check(w: object) -> np.ndarray:
    if not isinstance(w, np.ndarray):
        raise ValueError(f"W of type {type(w).__name__} is not allowed: must be a 2-D NumPy array [n_out, K]")
    if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
        raise ValueError(f"W of shape {w.shape} is not allowed: must be a non-empty 2-D array [n_out, K]")
    if w.dtype == np.bool_ or not (np.issubdtype(w.dtype, np.integer) or np.issubdtype(w.dtype, np.floating)):
        raise ValueError(f"W of dtype {w.dtype} is not allowed: must be an integer or floating-point array")
    return w


def group_max_nonzeros(w: np.ndarray, m: int) -> int:
    """Largest number of nonzero entries in any group of ``m`` consecutive ``K`` entries of any
    row of ``w`` ``[n_out, K]``; ``K`` must be a multiple of ``m``."""
    w = _check(w)
    n_out, k = w.shape
    if m < 1 or k % m:
        raise ValueError(f"m = {m} is not allowed for K = {k}: the group size must divide K")
    return int(np.count_nonzero(w.reshape(n_out, k // m, m), axis=-1).max())


def detect_nm(w: np.ndarray) -> tuple[int, int] | None:
    """The tightest standard ``(n, m)`` that ``w`` ``[n_out, K]`` satisfies, or None (see the
    module docstring for the rule).

    Raises:
        ValueError: ``w`` is not a non-empty 2-D integer or floating-point array.
    """
    w = _check(w)
    if not np.any(w):
        return None             # all zeros: a placeholder (a shapes-only export), not a mask
    k = w.shape[1]
    best: tuple[int, int] | None = None
    for m in STANDARD_M:
        if k % m:
            continue
        n = group_max_nonzeros(w, m)
        if n >= m:
            continue
        n = max(n, 1)           # some other row has a nonzero in a group of this size
        if best is None or n * best[1] < best[0] * m:   # strictly tighter; ties keep the smaller m
            best = (n, m)
    return best


def fits(nm: tuple[int, int], n: int, m: int) -> bool:
    """Whether weights known to satisfy ``nm`` (at most ``nm[0]`` nonzeros per group of
    ``nm[1]``) also satisfy ``n:m``, so N:M hardware built for ``n:m`` runs them without
    dropping a kept weight. Provable cases only: ``m`` a multiple of ``nm[1]`` (a group of
    ``m`` holds ``m / nm[1]`` whole groups: ``n >= nm[0] * m / nm[1]``) or ``nm[1]`` a
    multiple of ``m`` (a group of ``m`` lies inside one group of ``nm[1]``:
    ``n >= min(nm[0], m)``); any other pair of sizes is not known to fit."""
    ln, lm = nm
    if m % lm == 0:
        return n * lm >= ln * m
    if lm % m == 0:
        return n >= min(ln, m)
    return False
