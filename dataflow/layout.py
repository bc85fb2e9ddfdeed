"""Lay a GEMM out onto the array: groups, tiles, and the words of the engine's memories.

A GEMM ``Y[T, N] = X[T, K] @ W[N, K]^T`` runs on a ``rows x cols`` array of N:M PEs in one
of two modes:

- **sparse**: the weights are N:M along K with the array's ``m`` and at most its ``n``
  nonzeros per group; a PE covers one group of ``m`` reduction indices and holds the ``n``
  kept weights with their in-group indices;
- **dense**: any other weights (including the dense baseline); a PE covers ``n``
  consecutive reduction indices with indices ``0..n-1`` and the remaining ``m - n``
  activation lanes carry zeros.

Either way the weights become a *grouped* form: ``values[N, G, n]``, ``indices[N, G, n]``
with group size ``g`` (``m`` or ``n``). Tile ``(nt, kt)`` covers output columns
``nt*cols .. +cols`` and groups ``kt*rows .. +rows``; anything past the GEMM's edge is
zero padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sparseforge.spec import HardwareSpec

__all__ = ["word_widths", "GroupedWeights", "grouped_dense", "grouped_sparse", "Tiling", "tiling", "pack_words",
           "TileArrays", "tile_arrays", "MemoryImage", "memory_image"]


def word_widths(spec: HardwareSpec) -> dict[str, int]:
    """Bits of one word of each engine memory: an activation word holds ``rows`` groups of
    ``m`` activations; a weight word holds one array row of ``cols * n`` weights followed
    by their in-group indices (none on a dense array); an output word ``cols``
    accumulators."""
    w = spec.cols * spec.n * spec.weight_width
    if not spec.dense:
        w += spec.cols * spec.n * spec.idx_width
    return {"act": spec.rows * spec.m * spec.act_width, "wgt": w, "out": spec.cols * spec.acc_width}


@dataclass(frozen=True)
class GroupedWeights:
    """Weights as the PEs hold them. ``values``/``indices``: ``[n_out, groups, n]``;
    ``group``: reduction indices covered by one group; ``k``: the true reduction length."""

    values: np.ndarray
    indices: np.ndarray
    group: int
    k: int

    @property
    def n_out(self) -> int:
        return self.values.shape[0]

    @property
    def groups(self) -> int:
        return self.values.shape[1]

    def to_dense(self) -> np.ndarray:
        """The ``[n_out, k]`` matrix these groups represent."""
        n_out, G, n = self.values.shape
        dense = np.zeros((n_out, G * self.group), dtype=self.values.dtype)
        cols = (np.arange(G)[:, None] * self.group + self.indices.astype(np.int64))
        np.put_along_axis(dense, cols.reshape(n_out, G * n), self.values.reshape(n_out, G * n), axis=1)
        return dense[:, : self.k]


def grouped_dense(W: np.ndarray, spec: HardwareSpec) -> GroupedWeights:
    """Dense mode: groups of ``spec.n`` consecutive reduction indices."""
    W = np.asarray(W)
    n_out, k = W.shape
    g = spec.n
    G = math.ceil(k / g)
    padded = np.zeros((n_out, G * g), dtype=W.dtype)
    padded[:, :k] = W
    idx = np.broadcast_to(np.arange(g, dtype=np.uint8), (n_out, G, g)).copy()
    return GroupedWeights(values=padded.reshape(n_out, G, g), indices=idx, group=g, k=k)


def grouped_sparse(values: np.ndarray, indices: np.ndarray, *, n: int, m: int, k: int,
                   spec: HardwareSpec) -> GroupedWeights:
    """Sparse mode from an N:M compressed form (``values``/``indices`` ``[n_out, G, n]``).
    Needs ``m == spec.m`` and ``n <= spec.n``; fewer than ``spec.n`` weights per group are
    padded with zero weights."""
    if spec.dense:
        raise ValueError(f"a dense array (n = m = {spec.m}) has no sparse mode: use grouped_dense")
    if m != spec.m or n > spec.n:
        raise ValueError(f"{n}:{m} weights do not fit the array's {spec.n}:{spec.m} PEs: "
                         f"need m == {spec.m} and n <= {spec.n}")
    values = np.asarray(values)
    indices = np.asarray(indices)
    if n < spec.n:
        n_out, G, _ = values.shape
        pad_v = np.zeros((n_out, G, spec.n - n), dtype=values.dtype)
        # padding slots point at lanes not already used so every index stays distinct
        free = np.array([[sorted(set(range(m)) - set(row))[: spec.n - n] for row in grp] for grp in indices])
        values = np.concatenate([values, pad_v], axis=2)
        indices = np.concatenate([indices, free.astype(indices.dtype).reshape(n_out, G, spec.n - n)], axis=2)
    return GroupedWeights(values=values, indices=indices.astype(np.uint8), group=m, k=k)


@dataclass(frozen=True)
class Tiling:
    tokens: int
    ktiles: int
    ntiles: int
    group: int

    @property
    def tiles(self) -> int:
        return self.ktiles * self.ntiles


def tiling(spec: HardwareSpec, *, tokens: int, k: int, n_out: int, group: int) -> Tiling:
    """Tile counts of a GEMM whose weights are grouped ``group`` reduction indices per PE."""
    return Tiling(tokens=tokens, ktiles=math.ceil(math.ceil(k / group) / spec.rows),
                  ntiles=math.ceil(n_out / spec.cols), group=group)


def pack_words(fields: np.ndarray, width: int) -> list[int]:
    """Pack ``fields[words, n]`` (two's complement, ``width`` bits each, field 0 in the
    least significant bits) into one Python int per word."""
    fields = np.asarray(fields, dtype=np.int64)
    words, n = fields.shape
    bits = ((fields[:, :, None] >> np.arange(width)) & 1).astype(np.uint8).reshape(words, n * width)
    pad = (-bits.shape[1]) % 8
    if pad:
        bits = np.concatenate([bits, np.zeros((words, pad), dtype=np.uint8)], axis=1)
    packed = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


@dataclass(frozen=True)
class TileArrays:
    """A GEMM as the engine holds it, unpacked: ``lanes[KT, T, rows, m]`` activations,
    ``values``/``indices`` ``[NT, KT, rows, cols, n]`` weights."""

    tiling: Tiling
    lanes: np.ndarray
    values: np.ndarray
    indices: np.ndarray


def tile_arrays(spec: HardwareSpec, X: np.ndarray, gw: GroupedWeights) -> TileArrays:
    X = np.asarray(X, dtype=np.int64)
    T, k = X.shape
    if k != gw.k:
        raise ValueError(f"activations have K = {k} but the weights have K = {gw.k}")
    R, C, g = spec.rows, spec.cols, gw.group
    til = tiling(spec, tokens=T, k=k, n_out=gw.n_out, group=g)
    KT, NT = til.ktiles, til.ntiles
    G = KT * R
    Xp = np.zeros((T, G * g), dtype=np.int64)
    Xp[:, :k] = X
    lanes = np.zeros((KT, T, R, spec.m), dtype=np.int64)
    lanes[..., :g] = Xp.reshape(T, KT, R, g).transpose(1, 0, 2, 3)
    vals = np.zeros((NT * C, G, spec.n), dtype=np.int64)
    idx = np.zeros((NT * C, G, spec.n), dtype=np.int64)
    idx[:] = np.arange(spec.n)
    vals[: gw.n_out, : gw.groups] = gw.values
    idx[: gw.n_out, : gw.groups] = gw.indices
    # [NT, C, KT, R, n] -> [NT, KT, R, C, n]
    v = vals.reshape(NT, C, KT, R, spec.n).transpose(0, 2, 3, 1, 4)
    i = idx.reshape(NT, C, KT, R, spec.n).transpose(0, 2, 3, 1, 4)
    return TileArrays(tiling=til, lanes=lanes, values=v, indices=i)


@dataclass(frozen=True)
class MemoryImage:
    """The engine's memory contents and configuration for one GEMM."""

    tiling: Tiling
    act: list[int]
    wgt: list[int]
    expected: np.ndarray  # out word (nt, t) -> expected[nt, t, :cols]


def memory_image(spec: HardwareSpec, X: np.ndarray, gw: GroupedWeights) -> MemoryImage:
    """Memory words for ``X[T, K] @ gw^T`` and the expected output words (int64)."""
    ta = tile_arrays(spec, X, gw)
    til = ta.tiling
    KT, NT, T, R, C = til.ktiles, til.ntiles, til.tokens, spec.rows, spec.cols
    act = pack_words(ta.lanes.reshape(KT * T, R * spec.m), spec.act_width)
    v = ta.values.reshape(NT * KT * R, C * spec.n)
    i = ta.indices.reshape(NT * KT * R, C * spec.n)
    wv = pack_words(v, spec.weight_width)
    if spec.dense:
        wgt = wv
    else:
        wi = pack_words(i, spec.idx_width)
        shift = C * spec.n * spec.weight_width
        wgt = [a | (b << shift) for a, b in zip(wv, wi)]
    Y = np.asarray(X, dtype=np.int64) @ gw.to_dense().astype(np.int64).T
    Yp = np.zeros((T, NT * C), dtype=np.int64)
    Yp[:, : gw.n_out] = Y
    expected = Yp.reshape(T, NT, C).transpose(1, 0, 2)
    return MemoryImage(tiling=til, act=act, wgt=wgt, expected=expected)
