"""Lay a GEMM out onto the array: groups, tiles, and the words of the engines' memories.

A GEMM ``Y[T, N] = X[T, K] @ W[N, K]^T`` runs on a ``rows x cols`` array of N:M PEs in one
of two modes:

- **sparse**: the weights are N:M along K with the array's ``m`` and at most its ``n``
  nonzeros per group; a PE covers one group of ``m`` reduction indices and holds the ``n``
  kept weights with their in-group indices;
- **dense**: any other weights (including the dense baseline); a PE covers ``n``
  consecutive reduction indices with indices ``0..n-1`` and the remaining ``m - n``
  activation lanes carry zeros.

Either way the weights become a *grouped* form: ``values[N, G, n]``, ``indices[N, G, n]``
with group size ``g`` (``m`` or ``n``). The word formats of each engine's memories are
:func:`sim.units.engine.word_widths` / :func:`~sim.units.engine.os_word_widths`.

**Weight-stationary engine** (:func:`memory_image`, ``hwgen.engine``): tile ``(nt, kt)``
covers output columns ``nt*cols .. +cols`` and groups ``kt*rows .. +rows``.

**Output-stationary engine** (:func:`os_memory_image`, ``hwgen.os_engine``): tile
``(tt, nt)`` covers tokens ``tt*rows .. +rows`` and outputs ``nt*cols .. +cols`` and streams
all ``G`` groups through the array, one per cycle. Memories (one word per address):

- activations: word ``tt * G + s`` holds group ``s`` of the ``rows`` tokens of token tile
  ``tt``: row ``r``'s ``m`` lanes at lane offset ``r * m`` (lanes past ``g`` are zero);
- weights: word ``nt * G + s`` holds group ``s`` of the ``cols`` outputs of n-tile ``nt``:
  ``cols * n`` values, then (sparse arrays only) ``cols * n`` in-group indices;
- outputs: word ``(tt * NT + nt) * cols + c`` holds output ``nt*cols + c`` for the
  ``rows`` tokens of token tile ``tt`` (token ``r`` at accumulator ``r``).

Anything past the GEMM's edge is zero padding.

**Packed groups** (:func:`pack_groups`, :func:`packed_group_size`; docs/training.md,
"Depthwise and grouped convolutions"). ``p`` independent GEMMs of the same shape
``Y_c[T, n] = X_c[T, k] @ W_c[n, k]^T`` -- the groups of a grouped convolution, ``p``
channels of a depthwise one -- run as one GEMM with a block-diagonal weight matrix::

    Y[T, p*n] = X[T, k*p] @ W[p*n, k*p]^T,  X[t, j*p + c] = X_c[t, j],
    W[c*n + o, j*p + c] = W_c[o, j] (zero elsewhere),  Y[t, c*n + o] = Y_c[t, o]

so each array column holds its own group's filter (output ``o`` of group ``c``), and the
reduction index interleaves the groups (group-minor: index ``j*p + c`` is tap ``j`` of group
``c``). With that order a column's nonzero weights are ``p`` apart along K, so an aligned
window of ``g`` reduction indices holds at most ``ceil(g / p)`` of them: on N:M PEs the
block-diagonal zeros are skipped by the PE's index multiplexers exactly as pruned weights are
(:func:`packed_group_size` picks the largest ``g`` that fits), and the engine runs the
packed GEMM unchanged.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from sparseforge.spec import HardwareSpec

__all__ = ["GroupedWeights", "group_size", "packed_group_size", "pack_groups", "grouped_pruned", "grouped_dense", "grouped_sparse", "Tiling", "tiling",
           "pack_words", "TileArrays", "tile_arrays", "padded_groups", "pack_weight_words", "MemoryImage",
           "memory_image", "OSTiling", "os_tiling", "OSMemoryImage", "os_memory_image"]


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


def group_size(spec: HardwareSpec, sparsity: tuple[int, int] | None) -> int:
    """Reduction indices one PE covers for weights with at most ``n_l`` nonzeros in every
    ``m_l`` consecutive ones (``None``: dense).

    A PE has ``spec.m`` activation lanes and ``spec.n`` multipliers, so a group of ``g``
    consecutive indices fits when no aligned window of ``g`` can hold more than ``spec.n``
    nonzeros: ``n_l * g / m_l`` when ``g`` is a multiple of ``m_l``, ``min(n_l, g)`` when
    ``g`` divides ``m_l``. The largest such ``g <= spec.m`` is used; dense weights get
    ``g = spec.n``. E.g. on 2:8 PEs: 2:8 and 1:4 weights use all 8 lanes, 2:4 weights 4.
    """
    best = spec.n
    if sparsity is None:
        return best
    n_l, m_l = sparsity
    for g in range(spec.n + 1, spec.m + 1):
        if g % m_l == 0:
            worst = n_l * (g // m_l)
        elif m_l % g == 0:
            worst = min(n_l, g)
        else:
            continue
        if worst <= spec.n:
            best = g
    return best


def packed_group_size(spec: HardwareSpec, pack: int, k: int) -> int:
    """Reduction indices one PE covers for ``pack`` groups of ``k`` reduction indices packed
    block-diagonally (:func:`pack_groups`): the largest ``g`` in ``spec.n..spec.m`` such that
    no aligned window of ``g`` indices of the packed reduction (length ``pack * k``) holds more
    than ``spec.n`` nonzeros of one column (one group's are the indices ``= c (mod pack)``);
    ``spec.n`` (dense) when none larger fits. Exact: the pattern of windows and groups repeats
    every ``lcm(g, pack)`` indices, and the last window is only shorter."""
    for name, v in (("pack", pack), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} = {v!r} is not allowed: must be a positive integer")
    return _packed_group(spec.n, spec.m, pack, k)


@functools.lru_cache(maxsize=4096)
def _packed_group(n: int, m: int, pack: int, k: int) -> int:
    best = n
    total = pack * k
    for g in range(n + 1, m + 1):
        length = min(total, math.lcm(g, pack))
        idx = np.arange(length)
        counts = np.zeros((math.ceil(length / g), pack), dtype=np.int64)
        np.add.at(counts, (idx // g, idx % pack), 1)
        if int(counts.max()) <= n:
            best = g
    return best


def pack_groups(X: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``p`` independent GEMMs ``X[c] @ W[c]^T`` (``X[p, T, k]``, ``W[p, n, k]``) as one
    block-diagonal GEMM ``Xp[T, k*p] @ Wp[p*n, k*p]^T`` with the groups interleaved along the
    reduction (index ``j*p + c``); output column ``c*n + o`` is output ``o`` of group ``c``.
    See the module docstring."""
    X, W = np.asarray(X), np.asarray(W)
    if X.ndim != 3 or W.ndim != 3 or X.shape[0] != W.shape[0] or X.shape[2] != W.shape[2]:
        raise ValueError(f"pack_groups needs X[p, T, k] and W[p, n, k], not X{list(X.shape)} and W{list(W.shape)}")
    p, T, k = X.shape
    n = W.shape[1]
    Xp = X.transpose(1, 2, 0).reshape(T, k * p)
    Wp = np.zeros((p, n, k, p), dtype=W.dtype)
    Wp[np.arange(p), :, :, np.arange(p)] = W
    return Xp, Wp.reshape(p * n, k * p)


def grouped_pruned(W: np.ndarray, spec: HardwareSpec, group: int) -> GroupedWeights:
    """Group a (pruned) ``W[n_out, K]`` into groups of ``group`` reduction indices, keeping
    each group's nonzeros (at most ``spec.n``; padding slots hold zero weights)."""
    if not spec.n <= group <= spec.m:
        raise ValueError(f"group = {group} is not allowed: a PE covers {spec.n}..{spec.m} reduction indices")
    W = np.asarray(W)
    n_out, k = W.shape
    G = math.ceil(k / group)
    padded = np.zeros((n_out, G * group), dtype=W.dtype)
    padded[:, :k] = W
    Wg = padded.reshape(n_out, G, group)
    nz = Wg != 0
    worst = int(nz.sum(axis=2).max(initial=0))
    if worst > spec.n:
        raise ValueError(f"a group of {group} reduction indices holds {worst} nonzero weights, "
                         f"more than the PE's {spec.n} multipliers")
    if group == spec.n:
        # every position has a multiplier: keep lane order (a dense PE ignores indices and
        # multiplier i always takes lane i)
        order = np.broadcast_to(np.arange(group), Wg.shape).copy()
    else:
        # nonzeros first (in index order), then zero positions as padding
        order = np.argsort(~nz, axis=2, kind="stable")[:, :, : spec.n]
    values = np.take_along_axis(Wg, order, axis=2)
    return GroupedWeights(values=values, indices=order.astype(np.uint8), group=group, k=k)


def grouped_dense(W: np.ndarray, spec: HardwareSpec) -> GroupedWeights:
    """Dense mode: groups of ``spec.n`` consecutive reduction indices."""
    return grouped_pruned(W, spec, spec.n)


def grouped_sparse(values: np.ndarray, indices: np.ndarray, *, n: int, m: int, k: int,
                   spec: HardwareSpec) -> GroupedWeights:
    """The grouped form of N:M compressed weights (``values``/``indices`` ``[n_out, G, n]``,
    groups of ``m``), with the largest group the PEs can hold (:func:`group_size`)."""
    values = np.asarray(values)
    indices = np.asarray(indices).astype(np.int64)
    n_out, G, _ = values.shape
    dense = np.zeros((n_out, G * m), dtype=values.dtype)
    cols = np.arange(G)[None, :, None] * m + indices
    np.put_along_axis(dense, cols.reshape(n_out, -1), values.reshape(n_out, -1), axis=1)
    return grouped_pruned(dense[:, :k], spec, group_size(spec, (n, m)))


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


def padded_groups(spec: HardwareSpec, gw: GroupedWeights, *, n_rows: int, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """``values``/``indices`` ``[n_rows, groups, n]`` (int64): the grouped weights padded
    with zero weights (indices ``0..n-1``) to whole tiles of outputs and groups."""
    vals = np.zeros((n_rows, groups, spec.n), dtype=np.int64)
    idx = np.zeros((n_rows, groups, spec.n), dtype=np.int64)
    idx[:] = np.arange(spec.n)
    vals[: gw.n_out, : gw.groups] = gw.values
    idx[: gw.n_out, : gw.groups] = gw.indices
    return vals, idx


def pack_weight_words(spec: HardwareSpec, values: np.ndarray, indices: np.ndarray) -> list[int]:
    """Weight words of ``cols * n`` values followed, on a sparse array, by their ``cols * n``
    in-group indices (``values``/``indices``: ``[words, cols * n]``) -- the weight-word format
    of both engines."""
    wv = pack_words(values, spec.weight_width)
    if spec.dense:
        return wv
    wi = pack_words(indices, spec.idx_width)
    shift = spec.cols * spec.n * spec.weight_width
    return [a | (b << shift) for a, b in zip(wv, wi)]


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
    vals, idx = padded_groups(spec, gw, n_rows=NT * C, groups=G)
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
    wgt = pack_weight_words(spec, ta.values.reshape(NT * KT * R, C * spec.n),
                            ta.indices.reshape(NT * KT * R, C * spec.n))
    Y = np.asarray(X, dtype=np.int64) @ gw.to_dense().astype(np.int64).T
    Yp = np.zeros((T, NT * C), dtype=np.int64)
    Yp[:, : gw.n_out] = Y
    expected = Yp.reshape(T, NT, C).transpose(1, 0, 2)
    return MemoryImage(tiling=til, act=act, wgt=wgt, expected=expected)


@dataclass(frozen=True)
class OSTiling:
    tokens: int
    token_tiles: int
    ntiles: int
    groups: int
    group: int

    @property
    def tiles(self) -> int:
        return self.token_tiles * self.ntiles


def os_tiling(spec: HardwareSpec, *, tokens: int, k: int, n_out: int, group: int) -> OSTiling:
    """Tile counts of a GEMM on the OS array with ``group`` reduction indices per group."""
    return OSTiling(tokens=tokens, token_tiles=math.ceil(tokens / spec.rows), ntiles=math.ceil(n_out / spec.cols),
                    groups=math.ceil(k / group), group=group)


@dataclass(frozen=True)
class OSMemoryImage:
    """The OS engine's memory contents for one GEMM; ``expected[tt, nt, c, r]`` is output
    word ``(tt * NT + nt) * cols + c``, accumulator ``r`` (int64)."""

    tiling: OSTiling
    act: list[int]
    wgt: list[int]
    expected: np.ndarray


def os_memory_image(spec: HardwareSpec, X: np.ndarray, gw: GroupedWeights) -> OSMemoryImage:
    """Memory words for ``X[T, K] @ gw^T`` on the OS engine and the expected output words."""
    X = np.asarray(X, dtype=np.int64)
    T, k = X.shape
    if k != gw.k:
        raise ValueError(f"activations have K = {k} but the weights have K = {gw.k}")
    R, C, g = spec.rows, spec.cols, gw.group
    til = os_tiling(spec, tokens=T, k=k, n_out=gw.n_out, group=g)
    TT, NT, G = til.token_tiles, til.ntiles, til.groups
    # activations: [TT*R, G*g] -> lanes [TT, G, R, m]
    Xp = np.zeros((TT * R, G * g), dtype=np.int64)
    Xp[:T, :k] = X
    lanes = np.zeros((TT, G, R, spec.m), dtype=np.int64)
    lanes[..., :g] = Xp.reshape(TT, R, G, g).transpose(0, 2, 1, 3)
    act = pack_words(lanes.reshape(TT * G, R * spec.m), spec.act_width)
    # weights: [NT*C, G, n] -> [NT, G, C, n]
    vals, idx = padded_groups(spec, gw, n_rows=NT * C, groups=G)
    v = vals.reshape(NT, C, G, spec.n).transpose(0, 2, 1, 3).reshape(NT * G, C * spec.n)
    i = idx.reshape(NT, C, G, spec.n).transpose(0, 2, 1, 3).reshape(NT * G, C * spec.n)
    wgt = pack_weight_words(spec, v, i)
    Y = np.zeros((TT * R, NT * C), dtype=np.int64)
    Y[:T, : gw.n_out] = X @ gw.to_dense().astype(np.int64).T
    expected = Y.reshape(TT, R, NT, C).transpose(0, 2, 3, 1)
    return OSMemoryImage(tiling=til, act=act, wgt=wgt, expected=expected)
