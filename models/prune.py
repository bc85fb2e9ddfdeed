"""N:M structured magnitude pruning of weight matrices ``W[out, K]``.

The reduction dimension ``K`` of every output row is cut into groups of ``m``
consecutive entries (group ``g`` covers ``K`` positions ``g*m .. g*m + m - 1``); in each
group the ``n`` entries of largest magnitude ``|w|`` are kept and the rest set to zero.
Ties are broken towards the lower index, so the result is deterministic. When ``K`` is
not a multiple of ``m`` the last group is conceptually padded with zeros up to ``m``
entries: a real entry always wins a tie against padding, so padding is chosen only when
the group has fewer than ``n`` real entries.

:func:`compress` stores the kept entries the way N:M hardware does: exactly ``n``
``(value, in-group index)`` pairs per group, indices ascending. Some values may be zero
(a group with fewer than ``n`` nonzeros, or padding). :meth:`NMCompressed.to_dense`
inverts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["nm_mask", "prune", "compress", "NMCompressed", "MAX_M"]

#: Largest group size: in-group indices are stored as uint8.
MAX_M = 256


def _check_nm(n: object, m: object) -> tuple[int, int]:
    for field, value in (("m", m), ("n", n)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{field} = {value!r} is not allowed: must be an integer")
    n, m = int(n), int(m)
    if not 1 <= m <= MAX_M:
        raise ValueError(f"m = {m} is not allowed: the group size must be in 1..{MAX_M}")
    if not 1 <= n <= m:
        raise ValueError(f"n = {n} is not allowed with m = {m}: N:M sparsity needs 1 <= n <= m")
    return n, m


def _check_weights(w: object) -> np.ndarray:
    if not isinstance(w, np.ndarray):
        raise ValueError(f"W of type {type(w).__name__} is not allowed: must be a 2-D NumPy array [out, K]")
    if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
        raise ValueError(f"W of shape {w.shape} is not allowed: must be a non-empty 2-D array [out, K]")
    if w.dtype == np.bool_ or not (np.issubdtype(w.dtype, np.integer) or np.issubdtype(w.dtype, np.floating)):
        raise ValueError(f"W of dtype {w.dtype} is not allowed: must be an integer or floating-point array")
    if np.issubdtype(w.dtype, np.floating) and not np.all(np.isfinite(w)):
        raise ValueError("W is not allowed to contain NaN or infinity: magnitudes would not be ordered")
    return w


def _groups(w: np.ndarray, m: int) -> np.ndarray:
    """``w`` zero-padded along K to a multiple of ``m`` and reshaped to [out, G, m]."""
    out, k = w.shape
    g = -(-k // m)
    if g * m != k:
        w = np.concatenate([w, np.zeros((out, g * m - k), dtype=w.dtype)], axis=1)
    return w.reshape(out, g, m)


def _kept_indices(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """In-group indices [out, G, n] of the kept entries, ascending within each group."""
    groups = _groups(w, m)
    # Integers are widened first: abs(int8(-128)) would overflow back to -128.
    mag = np.abs(groups.astype(np.int64) if np.issubdtype(groups.dtype, np.integer) else groups)
    # A stable sort of -|w| puts larger magnitudes first and keeps equal magnitudes in
    # index order, so ties go to the lower index (and real entries beat padding).
    order = np.argsort(-mag, axis=-1, kind="stable")[..., :n]
    return np.sort(order, axis=-1)


def nm_mask(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """Boolean mask ``[out, K]`` of the entries N:M magnitude pruning keeps.

    In every group of ``m`` consecutive ``K`` entries of each row exactly ``n`` positions
    are chosen (largest ``|w|``, ties to the lower index); in a last, short group the
    mask holds ``min(n, real entries)`` True values.

    Raises:
        ValueError: ``w`` is not a finite, non-empty 2-D numeric array, ``m`` is not in
            ``1..256`` or ``n`` is not in ``1..m``.
    """
    n, m = _check_nm(n, m)
    w = _check_weights(w)
    out, k = w.shape
    idx = _kept_indices(w, n, m)
    mask = np.zeros(idx.shape[:2] + (m,), dtype=bool)
    np.put_along_axis(mask, idx, True, axis=-1)
    return mask.reshape(out, -1)[:, :k]


def prune(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """``w`` with the entries :func:`nm_mask` drops set to zero (same shape and dtype)."""
    mask = nm_mask(w, n, m)
    return np.where(mask, w, np.zeros((), dtype=w.dtype))


@dataclass(frozen=True, kw_only=True, eq=False)
class NMCompressed:
    """An N:M-pruned ``W[out, k]`` in compressed form.

    Attributes:
        values: ``[out, G, n]`` kept weights, ``G = ceil(k / m)``; dtype of the source.
        indices: ``[out, G, n]`` uint8 in-group positions ``0..m-1``, strictly ascending
            within each group. Weight ``values[o, g, j]`` sits at column
            ``g * m + indices[o, g, j]`` of the dense matrix; positions ``>= k`` (padding
            of a short last group) must hold zero values.
        n, m: the sparsity pattern (``n`` of every ``m``).
        k: the original reduction length ``K``.

    The arrays are stored read-only. Instances compare by identity (``eq=False``), as
    element-wise array comparison has no single truth value; compare ``to_dense()``.
    """

    values: np.ndarray
    indices: np.ndarray
    n: int
    m: int
    k: int

    def __post_init__(self) -> None:
        n, m = _check_nm(self.n, self.m)
        if isinstance(self.k, (bool, np.bool_)) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValueError(f"NMCompressed: k = {self.k!r} is not allowed: must be a positive integer")
        k = int(self.k)
        values = np.asarray(self.values)
        indices = np.asarray(self.indices)
        g = -(-k // m)
        if values.ndim != 3 or values.shape[0] < 1 or values.shape[1:] != (g, n):
            raise ValueError(
                f"NMCompressed: values of shape {values.shape} is not allowed: must be [out, {g}, {n}] "
                f"for k = {k}, m = {m}, n = {n}")
        if indices.shape != values.shape:
            raise ValueError(
                f"NMCompressed: indices of shape {indices.shape} is not allowed: must equal the "
                f"values shape {values.shape}")
        if indices.dtype != np.uint8:
            raise ValueError(f"NMCompressed: indices of dtype {indices.dtype} is not allowed: must be uint8")
        if indices.size and int(indices.max()) >= m:
            raise ValueError(
                f"NMCompressed: index {int(indices.max())} is not allowed: in-group indices must be in 0..{m - 1}")
        if n > 1 and not np.all(np.diff(indices.astype(np.int16), axis=-1) > 0):
            raise ValueError("NMCompressed: indices are not allowed to repeat or descend within a group: "
                             "they must be strictly ascending")
        pad = g * m - k
        if pad:
            beyond = indices[:, -1, :] >= m - pad
            if np.any(values[:, -1, :][beyond] != 0):
                raise ValueError(
                    f"NMCompressed: nonzero values at positions >= k = {k} are not allowed: padding must be zero")
        values = values.copy()
        indices = indices.copy()
        values.setflags(write=False)
        indices.setflags(write=False)
        for name, value in (("values", values), ("indices", indices), ("n", n), ("m", m), ("k", k)):
            object.__setattr__(self, name, value)

    @property
    def out(self) -> int:
        """Rows of the dense matrix (output features)."""
        return self.values.shape[0]

    @property
    def groups(self) -> int:
        """Groups per row, ``G = ceil(k / m)``."""
        return self.values.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        """Shape ``(out, k)`` of the dense matrix."""
        return (self.out, self.k)

    def columns(self) -> np.ndarray:
        """``[out, G, n]`` int64 dense column of each stored value (``g * m + index``);
        may be ``>= k`` for padding entries."""
        return np.arange(self.groups, dtype=np.int64)[None, :, None] * self.m + self.indices.astype(np.int64)

    def to_dense(self) -> np.ndarray:
        """The dense ``[out, k]`` matrix (dtype of ``values``), zeros where pruned."""
        dense = np.zeros((self.out, self.groups * self.m), dtype=self.values.dtype)
        np.put_along_axis(dense, self.columns().reshape(self.out, -1), self.values.reshape(self.out, -1), axis=1)
        return dense[:, : self.k]


def compress(w: np.ndarray, n: int, m: int) -> NMCompressed:
    """N:M-prune ``w`` (as :func:`prune`) and store exactly ``n`` entries per group.

    ``compress(w, n, m).to_dense()`` equals ``prune(w, n, m)`` exactly.

    Raises:
        ValueError: as :func:`nm_mask`.
    """
    n, m = _check_nm(n, m)
    w = _check_weights(w)
    idx = _kept_indices(w, n, m)
    values = np.take_along_axis(_groups(w, m), idx, axis=-1)
    return NMCompressed(values=values, indices=idx.astype(np.uint8), n=n, m=m, k=w.shape[1])
