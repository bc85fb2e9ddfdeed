"""N:M pruning of one Linear layer from its calibration statistics: magnitude, Wanda,
SparseGPT, and a least-squares refit of the kept weights (docs/pruning.md has the formulas).

A Linear layer computes ``y = W x + b`` with ``W[out, K]``; N:M keeps ``n`` of every ``m``
consecutive weights of each output row along ``K`` (groups as in :mod:`.prune`). What the
calibration data says about a layer is held in :class:`LayerStats`: the second moments of
its inputs ``X_p[N, K]`` (the inputs it receives in the *pruned* network, the layers before it
already pruned) and of the inputs ``X_d`` it receives in the *dense* network, each augmented
with a column of ones for the bias (``X~ = [X, 1]``):

    H   = X~_p^T X~_p       (the Hessian of the layer-wise squared error, up to a factor 2)
    C   = X~_p^T X~_d       (the cross moment: how the pruned network's inputs see the dense ones)
    H_d = X~_d^T X~_d

The methods:

* **magnitude** -- keep the ``n`` largest ``|W_ij|`` of each group (:func:`.prune.nm_mask`).
* **Wanda** (Sun, Liu, Bair, Kolter, "A Simple and Effective Pruning Approach for Large
  Language Models", ICLR 2024, arXiv:2306.11695) -- keep the ``n`` largest
  ``S_ij = |W_ij| * ||X_j||_2`` of each group, ``||X_j||_2`` the L2 norm of input channel ``j``
  over the calibration tokens (``sqrt(H_jj)``); the kept weights are not changed.
* **SparseGPT** (Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately
  Pruned in One-Shot", ICML 2023, arXiv:2301.00774, Algorithm 1 and its N:M variant) -- an
  optimal-brain-surgeon sweep over the columns: with ``U`` the upper Cholesky factor of
  ``(X_p^T X_p + lambda I)^-1`` (``lambda`` = 1 % of the mean diagonal), columns are visited
  left to right in blocks of 128; at the first column of each group of ``m`` the mask of the
  group is chosen per row by the OBS saliency ``w_j^2 / U_jj^2`` (keep the ``n`` largest),
  and every pruned weight's error ``e = w_j / U_jj`` is compensated in the columns to its
  right, ``W[:, j:] -= e U[j, j:]`` (lazily across blocks).
* **refit** (the recovery step, the mask fixed) -- per output row ``i`` with kept columns
  ``S_i``, the kept weights and the bias solve the ridge least-squares problem
  ``min ||X~_p[:, S] v - X~_d [W_i, b_i]^T||^2 + lambda ||v - v0||^2``: the layer's outputs in
  the pruned network are fitted to the dense layer's outputs in the dense network (so the
  error of the layers before it is corrected as well), starting from the method's weights
  ``v0``. Closed form: ``(H_SS + lambda I) v = (C [W_i, b_i]^T)_S + lambda v0``. Since ``v0``
  is a candidate, the fitted error is never larger than the error of ``v0``.

Everything is float64 NumPy/SciPy. This module imports nothing of the project but
:mod:`.prune`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .prune import _check_nm, nm_mask

__all__ = ["METHODS", "DAMP", "BLOCK", "LayerStats", "layer_stats", "magnitude", "wanda", "sparsegpt", "refit",
           "calibration_error", "prune_layer"]

#: the one-shot methods, in the order of the issue (cheapest first)
METHODS = ("magnitude", "wanda", "sparsegpt")
#: dampening of the Hessian: ``lambda = DAMP * mean(diag(X^T X))`` (SparseGPT's default, 1 %)
DAMP = 0.01
#: columns per lazy-update block of SparseGPT (the paper's B = 128)
BLOCK = 128
#: rows of the refit solved together (bounds the memory of the stacked systems)
_REFIT_ROWS_BYTES = 32 << 20


@dataclass(frozen=True, eq=False)
class LayerStats:
    """Second moments of one layer's calibration inputs (module docstring), float64
    ``[K + 1, K + 1]`` each, the last row and column belonging to the bias's column of ones.
    ``cross`` (needed by :func:`refit`) and ``h_dense`` (by :func:`calibration_error`) may be
    None when the caller does not need them."""

    h: np.ndarray
    cross: np.ndarray | None
    h_dense: np.ndarray | None
    tokens: int

    @property
    def k(self) -> int:
        return self.h.shape[0] - 1

    def hessian(self) -> np.ndarray:
        """``X_p^T X_p`` of the weights alone (no bias column), ``[K, K]``."""
        return self.h[:-1, :-1]

    def column_norms(self) -> np.ndarray:
        """``||X_j||_2`` of every input channel over the calibration tokens (pruned network)."""
        return np.sqrt(np.maximum(np.diag(self.h)[:-1], 0.0))

    def damping(self) -> float:
        """``lambda = DAMP * mean(diag(X_p^T X_p))`` (1.0 for an all-zero input)."""
        d = float(np.mean(np.diag(self.h)[:-1]))
        return DAMP * d if d > 0 else 1.0


def _augment(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
    return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)


def layer_stats(x_pruned: np.ndarray, x_dense: np.ndarray | None = None) -> LayerStats:
    """The :class:`LayerStats` of calibration inputs ``x_pruned [..., K]`` (the layer's inputs in
    the pruned network) and ``x_dense`` (the same tokens' inputs in the dense network; default
    the same as ``x_pruned``: the target is then the dense layer on the pruned inputs).

    Raises:
        ValueError: the two do not have the same shape, or hold no token.
    """
    xp = _augment(x_pruned)
    xd = xp if x_dense is None else _augment(x_dense)
    if xd.shape != xp.shape or xp.shape[0] == 0:
        raise ValueError(f"calibration inputs of shapes {np.shape(x_pruned)} and {np.shape(x_dense)} are not "
                         "allowed: the pruned and dense inputs must be the same tokens, at least one")
    h = xp.T @ xp
    cross = h if x_dense is None else xp.T @ xd
    h_dense = h if x_dense is None else xd.T @ xd
    return LayerStats(h=h, cross=cross, h_dense=h_dense, tokens=xp.shape[0])


def _check_layer(w: np.ndarray, stats: LayerStats) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != stats.k:
        raise ValueError(f"W of shape {w.shape} is not allowed with calibration inputs of {stats.k} channels: "
                         f"must be [out, {stats.k}]")
    return w


# ============================================================================ masks
def magnitude(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """The magnitude mask: the ``n`` largest ``|W_ij|`` of every group of ``m``."""
    return nm_mask(np.asarray(w), n, m)


def wanda(w: np.ndarray, column_norms: np.ndarray, n: int, m: int) -> np.ndarray:
    """Wanda's mask: the ``n`` largest ``|W_ij| * ||X_j||_2`` of every group of ``m``
    (``column_norms``: ``||X_j||_2`` per input channel, ``[K]``)."""
    w = np.asarray(w, dtype=np.float64)
    norms = np.asarray(column_norms, dtype=np.float64)
    if norms.shape != (w.shape[1],):
        raise ValueError(f"column_norms of shape {norms.shape} is not allowed: must be [{w.shape[1]}]")
    return nm_mask(np.abs(w) * norms[None, :], n, m)


def _inverse_cholesky(h: np.ndarray, damp: float) -> np.ndarray:
    """Upper ``U`` with ``U^T U = (h + damp I)^-1`` (SparseGPT's ``Hinv``)."""
    from scipy.linalg import cho_factor, cho_solve, cholesky

    a = h + damp * np.eye(h.shape[0])
    hinv = cho_solve(cho_factor(a, lower=False), np.eye(h.shape[0]))
    return cholesky((hinv + hinv.T) / 2, lower=False)


def sparsegpt(w: np.ndarray, hessian: np.ndarray, n: int, m: int, *, damp: float | None = None,
              block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """SparseGPT's N:M pruning of ``w [out, K]`` given ``hessian = X^T X [K, K]``.

    ``damp`` is the absolute ``lambda`` (default ``DAMP * mean(diag(hessian))``). Blocks hold
    a whole number of groups (``block`` rounded to a multiple of ``m``). Input channels that
    are never active (``H_jj = 0``) have their weights zeroed first, as in the reference code.

    Returns:
        ``(w_pruned, mask)``: float64 weights with zeros outside the boolean ``mask``, which
        keeps exactly ``min(n, group width)`` entries of every group of each row.
    """
    n, m = _check_nm(n, m)
    w = np.array(w, dtype=np.float64)
    h = np.array(hessian, dtype=np.float64)
    rows, k = w.shape
    if h.shape != (k, k):
        raise ValueError(f"hessian of shape {h.shape} is not allowed with W of shape {w.shape}: must be [{k}, {k}]")
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    if damp is None:
        damp = DAMP * float(np.mean(np.diag(h)))
    u = _inverse_cholesky(h, damp)
    block = max(m, (block // m) * m)
    mask = np.zeros((rows, k), dtype=bool)
    for b0 in range(0, k, block):
        b1 = min(b0 + block, k)
        w1 = w[:, b0:b1].copy()
        u1 = u[b0:b1, b0:b1]
        err = np.zeros_like(w1)
        d = np.diag(u1)
        for i in range(b1 - b0):
            if i % m == 0:                                # the group's mask, from the updated weights
                g1 = min(i + m, b1 - b0)
                score = w1[:, i:g1] ** 2 / d[i:g1][None, :] ** 2
                keep = min(n, g1 - i)
                order = np.argsort(-score, axis=1, kind="stable")[:, :keep]
                np.put_along_axis(mask[:, b0 + i:b0 + g1], order, True, axis=1)
            col = w1[:, i]
            q = np.where(mask[:, b0 + i], col, 0.0)
            e = (col - q) / d[i]
            w1[:, i:] -= np.outer(e, u1[i, i:])
            w1[:, i] = q
            err[:, i] = e
        w[:, b0:b1] = w1
        w[:, b1:] -= err @ u[b0:b1, b1:]
    return np.where(mask, w, 0.0), mask


# ============================================================================ recovery
def _targets(w_dense: np.ndarray, b_dense: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(w_dense, np.float64), np.asarray(b_dense, np.float64)[:, None]], axis=1)


def refit(w: np.ndarray, b: np.ndarray, mask: np.ndarray, stats: LayerStats, w_dense: np.ndarray,
          b_dense: np.ndarray, *, damp: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The recovery step: refit the kept weights (and the bias) of ``w, b`` under the fixed
    ``mask`` to the dense layer ``w_dense, b_dense`` on its dense inputs (module docstring).

    Returns ``(w_new, b_new)`` (float64), ``w_new`` zero outside ``mask``.

    Raises:
        ValueError: shapes disagree, or the rows do not all keep the same number of weights.
    """
    w = _check_layer(w, stats)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != w.shape or np.shape(w_dense) != w.shape or np.shape(b) != (w.shape[0],):
        raise ValueError(f"refit: W {w.shape}, mask {mask.shape}, dense W {np.shape(w_dense)} and bias "
                         f"{np.shape(b)} are not allowed: they must agree")
    counts = mask.sum(axis=1)
    if counts.min() != counts.max():
        raise ValueError("refit: every row must keep the same number of weights (an N:M mask)")
    if stats.cross is None:
        raise ValueError("refit needs the cross moment X~_p^T X~_d of the calibration inputs (LayerStats.cross)")
    lam = stats.damping() if damp is None else float(damp)
    rows, k = w.shape
    s = int(counts[0]) + 1                                # the kept columns and the bias
    idx = np.empty((rows, s), dtype=np.int64)
    idx[:, :-1] = np.nonzero(mask)[1].reshape(rows, -1)
    idx[:, -1] = k
    rhs_all = stats.cross @ _targets(w_dense, b_dense).T  # [K + 1, out]: X~_p^T (dense outputs)
    v0 = np.concatenate([w, np.asarray(b, np.float64)[:, None]], axis=1)
    out_w = np.zeros_like(w)
    out_b = np.zeros(rows)
    chunk = max(1, _REFIT_ROWS_BYTES // (8 * s * s))
    eye = lam * np.eye(s)

    def solve(r0: int) -> None:
        r1 = min(rows, r0 + chunk)
        ix = idx[r0:r1]
        a = stats.h[ix[:, :, None], ix[:, None, :]] + eye
        r = np.arange(r0, r1)
        rhs = rhs_all[ix, r[:, None]] + lam * np.take_along_axis(v0[r0:r1], ix, axis=1)
        sol = np.linalg.solve(a, rhs[:, :, None])[:, :, 0]
        np.put_along_axis(out_w[r0:r1], ix[:, :-1], sol[:, :-1], axis=1)
        out_b[r0:r1] = sol[:, -1]

    # Many small systems: one BLAS thread per system and the chunks spread over the cores is
    # about twice as fast as threaded LAPACK on each (which mostly waits); NumPy releases the
    # GIL in the gathers and the solves. Each chunk writes its own rows.
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    starts = range(0, rows, chunk)
    workers = min(_cores(), len(starts))
    with threadpool_limits(limits=1, user_api="blas"):
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(solve, starts))
        else:
            for r0 in starts:
                solve(r0)
    return out_w, out_b


def _cores() -> int:
    """CPU cores this process may run on."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                               # not on Linux
        return max(1, os.cpu_count() or 1)


def calibration_error(w: np.ndarray, b: np.ndarray, stats: LayerStats, w_dense: np.ndarray,
                      b_dense: np.ndarray) -> float:
    """``||X~_p [w, b]^T - X~_d [W, b_dense]^T||_F^2 / ||Y_d - mean(Y_d)||_F^2``: the layer's
    squared output error in the pruned network against the dense layer in the dense network,
    relative to the variance of the dense outputs (0: perfect; 1: as bad as outputting the
    mean). Computed from the moments, without the data."""
    if stats.cross is None or stats.h_dense is None:
        raise ValueError("calibration_error needs the cross and dense moments (LayerStats.cross, .h_dense)")
    v = np.concatenate([np.asarray(w, np.float64), np.asarray(b, np.float64)[:, None]], axis=1)
    t = _targets(w_dense, b_dense)
    energy = np.sum((t @ stats.h_dense) * t)                    # ||Y_d||^2
    err = np.sum((v @ stats.h) * v) - 2.0 * np.sum((v @ stats.cross) * t) + energy
    mean_y = (t @ stats.h_dense[:, -1]) / stats.tokens          # the ones column sums the inputs
    var = energy - stats.tokens * float(mean_y @ mean_y)
    return max(float(err), 0.0) / var if var > 0 else float(max(err, 0.0))


def prune_layer(method: str, w: np.ndarray, b: np.ndarray, stats: LayerStats, n: int, m: int, *,
                recover: bool = False, damp: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prune one layer ``n:m`` with ``method`` (one of :data:`METHODS`), then, with
    ``recover``, :func:`refit` it to the dense layer (``w, b`` are the dense weights).

    Returns ``(w_pruned, b_new, mask)`` (float64; the bias changes only with ``recover``).

    Raises:
        ValueError: an unknown method, bad ``n``/``m``, shapes that disagree.
    """
    n, m = _check_nm(n, m)
    w = _check_layer(w, stats)
    b = np.asarray(b, dtype=np.float64)
    if method == "magnitude":
        mask = magnitude(w, n, m)
        wp = np.where(mask, w, 0.0)
    elif method == "wanda":
        mask = wanda(w, stats.column_norms(), n, m)
        wp = np.where(mask, w, 0.0)
    elif method == "sparsegpt":
        lam = stats.damping() if damp is None else damp
        wp, mask = sparsegpt(w, stats.hessian(), n, m, damp=lam)
    else:
        raise ValueError(f"method {method!r} is not allowed: choose one of {', '.join(METHODS)}")
    if recover:
        wp, b = refit(wp, b, mask, stats, w, b, damp=damp)
    return wp, b, mask
