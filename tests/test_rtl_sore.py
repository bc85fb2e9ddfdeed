"""The SORE mask generator in Icarus Verilog on real weights, against models.prune.nm_mask.

BDWP needs two masks of the same dense weights: the FF mask groups W[out, in] along its
input dimension, the BP mask groups W^T along W's output dimension. The bench streams real
int8 MiniLM weights through the unit in both groupings, and the test checks every mask bit
against the golden ``nm_mask`` (ties keep the lower index) and the cycle in which the last
mask appears against :func:`sim.units.sore.sore_cycles`.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparseforge.sim.units.sore import sore_cycles
from sparseforge.models.prune import nm_mask
from sparseforge.spec import HardwareSpec
from sparseforge.verify.harness import run_bench

pytestmark = [pytest.mark.rtl, pytest.mark.minilm]

PORTS = {"inputs": ["in_valid", "in_data"], "outputs": ["out_valid", "out_mask"]}


def _real_int8_weights(rows: int, cols: int) -> np.ndarray:
    minilm = pytest.importorskip("sparseforge.models.minilm")
    quant = pytest.importorskip("sparseforge.models.quant")
    try:
        w = minilm.load_weights()["encoder.layer.1.attention.self.key.weight"]
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    q, _ = quant.quantize_per_channel(w[:rows, :cols], axis=0)
    return q.astype(np.int64)


def _run(tmp_path, *, n: int, m: int, lanes: int, groups: np.ndarray) -> tuple[np.ndarray, int]:
    """Stream ``groups[G, m]`` through a SORE with ``lanes`` lanes (G a multiple of lanes),
    one round of ``lanes`` groups every m cycles; return the masks and the cycle (counted
    from the first weight) in which the last mask was on the output."""
    G = len(groups)
    assert G % lanes == 0
    cycles = []
    for rnd in range(G // lanes):
        for j in range(m):
            word = 0
            for lane in range(lanes):
                word |= (int(groups[rnd * lanes + lane, j]) & 0xFF) << (8 * lane)
            cycles.append({"in_valid": 1, "in_data": word})
    cycles += [{}] * 3
    spec = HardwareSpec(n=n, m=m)
    result = run_bench(spec, design="sore", bench="cocotb_trace", case={"cycles": cycles, **PORTS},
                       workdir=tmp_path, lanes=lanes)
    trace = result["trace"]
    masks, last = [], None
    for cyc, out in enumerate(trace):
        assert out["out_valid"] is not None and out["out_mask"] is not None, f"X/Z in cycle {cyc}"
        if out["out_valid"]:
            word = out["out_mask"]
            masks += [[(word >> (lane * m + b)) & 1 for b in range(m)] for lane in range(lanes)]
            last = cyc
    return np.array(masks, dtype=bool), last


@pytest.mark.parametrize("n,m,lanes", [(2, 4, 4), (1, 4, 3), (2, 8, 2)])
def test_sore_ff_and_bp_masks_of_real_weights(tmp_path, n, m, lanes):
    """FF groups (along W's input dim) and BP groups (along W's output dim, i.e. rows of W^T)
    of real int8 weights: every mask equals nm_mask, and the last mask is valid in cycle
    ceil(G / lanes) * m counted from the first weight (the first sample is cycle 0 of the trace)."""
    w = _real_int8_weights(2 * m, lanes * m)          # [out, in]
    ff = w.reshape(-1, m)                             # groups along the input dimension
    bp = np.ascontiguousarray(w.T).reshape(-1, m)     # groups along the output dimension
    # ties: two groups of equal magnitudes, one all zero
    extra = np.array([[5, -5] * (m // 2), [0] * m] + [[3] * m] * (lanes - 2))[:lanes]
    groups = np.concatenate([ff, bp, extra])
    groups = groups[: len(groups) // lanes * lanes]
    masks, last = _run(tmp_path, n=n, m=m, lanes=lanes, groups=groups)
    assert np.array_equal(masks, nm_mask(groups, n, m))
    assert (masks.sum(axis=1) == n).all()
    # trace[j] holds the outputs during cycle j; the first weight is driven in cycle 0
    assert last == sore_cycles(groups=len(groups), lanes=lanes, m=m)
