"""Bit-exact integer golden models of the accelerator's GEMM.

Both compute ``Y[T, out] = X[T, K] @ W[out, K]^T`` in int64 (no overflow for any
realistic operand width and ``K``: two 8-bit operands and ``K < 2**48``), so the
simulator and the generated RTL can be checked against them for exact equality.

:func:`gemm_nm_int` works from the compressed N:M form only -- it gathers, for every
stored weight, the activation at column ``g * m + index`` -- which is what an N:M
processing element does; :func:`gemm_dense_int` is the plain reference.
"""

from __future__ import annotations

import numpy as np

from .prune import NMCompressed

__all__ = ["gemm_dense_int", "gemm_nm_int"]

# Elements of the gathered activation block [T, B, G*n] materialised at once.
_BLOCK_ELEMENTS = 1 << 22


def _check_int_matrix(name: str, a: object, shape: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} of type {type(a).__name__} is not allowed: must be a 2-D integer NumPy array {shape}")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} of dtype {a.dtype} is not allowed: must be an integer array (quantise first)")
    if a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"{name} of shape {a.shape} is not allowed: must be a non-empty 2-D array {shape}")
    if a.dtype == np.uint64 and a.size and int(a.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds values beyond int64 and is not allowed")
    return a.astype(np.int64, copy=False)


def gemm_dense_int(x_q: np.ndarray, w_q: np.ndarray) -> np.ndarray:
    """``X @ W.T`` in int64 for integer ``X[T, K]`` and ``W[out, K]``.

    Raises:
        ValueError: an operand is not a non-empty 2-D integer array, or the K's differ.
    """
    x = _check_int_matrix("X", x_q, "[T, K]")
    w = _check_int_matrix("W", w_q, "[out, K]")
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"X of shape {x.shape} and W of shape {w.shape} are not allowed together: "
            "their reduction lengths K (second dimensions) must match")
    # NumPy's integer matmul is exact (no BLAS, no floating point).
    return x @ w.T


def gemm_nm_int(x_q: np.ndarray, comp: NMCompressed) -> np.ndarray:
    """``X @ W.T`` in int64 where ``W`` is given only in N:M compressed form.

    For output ``o`` and row ``t``: ``Y[t, o] = sum over groups g and slots j of
    values[o, g, j] * X[t, g*m + indices[o, g, j]]``, with ``X`` zero-padded to ``G*m``
    columns when ``K`` is not a multiple of ``m``. Equals
    ``gemm_dense_int(X, comp.to_dense())`` bit for bit. Vectorised; outputs are processed
    in blocks so memory stays bounded.

    Raises:
        ValueError: ``X`` is not a non-empty 2-D integer array with ``comp.k`` columns, or
            ``comp.values`` is not integer.
    """
    if not isinstance(comp, NMCompressed):
        raise ValueError(f"comp of type {type(comp).__name__} is not allowed: must be an NMCompressed")
    x = _check_int_matrix("X", x_q, "[T, K]")
    if x.shape[1] != comp.k:
        raise ValueError(
            f"X of shape {x.shape} is not allowed with a compressed W of k = {comp.k}: K must match")
    if comp.values.dtype == np.bool_ or not np.issubdtype(comp.values.dtype, np.integer):
        raise ValueError(
            f"comp.values of dtype {comp.values.dtype} is not allowed: must be integer (quantise W first)")
    t = x.shape[0]
    out, g, n, m = comp.out, comp.groups, comp.n, comp.m
    padded = g * m
    if padded != comp.k:
        x = np.concatenate([x, np.zeros((t, padded - comp.k), dtype=np.int64)], axis=1)
    cols = comp.columns().reshape(out, g * n)          # [out, G*n] dense column per stored weight
    vals = comp.values.astype(np.int64).reshape(out, g * n)
    y = np.empty((t, out), dtype=np.int64)
    block = max(1, _BLOCK_ELEMENTS // max(1, t * g * n))
    for start in range(0, out, block):
        stop = min(out, start + block)
        gathered = x[:, cols[start:stop]]                # [T, B, G*n] activations each weight meets
        y[:, start:stop] = np.einsum("tbj,bj->tb", gathered, vals[start:stop])
    return y
