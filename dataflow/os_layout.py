"""Lay a GEMM out for the output-stationary engine (:mod:`hwgen.os_engine`).

``Y[T, N] = X[T, K] @ W[N, K]^T`` with ``W`` in the grouped form of
:class:`dataflow.layout.GroupedWeights` (``G`` groups of ``g`` reduction indices). Tile
``(tt, nt)`` covers tokens ``tt*rows .. +rows`` and outputs ``nt*cols .. +cols`` and streams
all ``G`` groups through the array, one per cycle. Memories (one word per address):

- activations: word ``tt * G + s`` holds group ``s`` of the ``rows`` tokens of token tile
  ``tt``: row ``r``'s ``m`` lanes at lane offset ``r * m`` (lanes past ``g`` are zero);
- weights: word ``nt * G + s`` holds group ``s`` of the ``cols`` outputs of n-tile ``nt``:
  ``cols * n`` values, then (sparse arrays only) ``cols * n`` in-group indices;
- outputs: word ``(tt * NT + nt) * cols + c`` holds output ``nt*cols + c`` for the
  ``rows`` tokens of token tile ``tt`` (token ``r`` at accumulator ``r``).

Tokens and outputs past the GEMM's edge are zero padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sparseforge.spec import HardwareSpec

from .layout import GroupedWeights, pack_weight_words, pack_words, padded_groups, word_widths

__all__ = ["os_word_widths", "OSTiling", "os_tiling", "OSMemoryImage", "os_memory_image"]


def os_word_widths(spec: HardwareSpec) -> dict[str, int]:
    """Bits of one word of each OS-engine memory (see the module docstring): activation and
    weight words as the weight-stationary engine's, an output word ``rows`` accumulators."""
    return {**word_widths(spec), "out": spec.rows * spec.acc_width}


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
