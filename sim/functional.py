"""Functional mode: execute a GEMM the way the engine's datapath does, in NumPy.

Works on the engine's tile arrays (:func:`dataflow.layout.tile_arrays`): for every tile each
PE selects its ``n`` activations out of its group by index, multiplies by its weights, the
column sums the rows, and the output accumulates over k-tiles -- the PE, array and
accumulator semantics of :mod:`hwgen`, not a dense matrix product. Tests and the demo
compare it with the golden models of :mod:`models.golden`, which know nothing of tiles.
"""

from __future__ import annotations

import numpy as np

from sparseforge.dataflow.layout import GroupedWeights, tile_arrays
from sparseforge.spec import HardwareSpec

__all__ = ["functional_gemm"]


def functional_gemm(spec: HardwareSpec, X: np.ndarray, gw: GroupedWeights) -> np.ndarray:
    """``Y[T, n_out]`` (int64) computed tile by tile through the index muxes."""
    ta = tile_arrays(spec, X, gw)
    til = ta.tiling
    KT, NT, T = til.ktiles, til.ntiles, til.tokens
    R, C = spec.rows, spec.cols
    out = np.zeros((T, NT * C), dtype=np.int64)
    rows = np.arange(R)[:, None, None]                 # [R, 1, 1] broadcasts over [R, C, n]
    for nt in range(NT):
        acc = np.zeros((T, C), dtype=np.int64)
        for kt in range(KT):
            lanes = ta.lanes[kt]                        # [T, R, m]
            sel = lanes[:, rows, ta.indices[nt, kt]]    # [T, R, C, n]: the index muxes
            acc += np.einsum("trcn,rcn->tc", sel, ta.values[nt, kt])
        out[:, nt * C:(nt + 1) * C] = acc
    return out[:, : gw.n_out]
