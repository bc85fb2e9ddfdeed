"""The three GEMMs of a BDWP training step, on real trained operands, in generated RTL.

A small MLP is trained here on the MNIST subset with BDWP (``models.train``). For one real
minibatch, the hidden layer's FF input ``x``, output gradient ``dy`` and dense master weights
``w`` (with their FF mask along the input dimension and BP mask along the output dimension)
are quantised to int8, and the engine runs

- FF: ``y = x (w * mask_ff)^T`` -- N:M along K;
- BP: ``dx = dy (w * mask_bp)`` -- the weights transposed, N:M along W's output dimension;
- WG: ``dw = dy^T x`` -- dense, with ``x^T`` as the stationary operand;

each compared bit-exactly with the NumPy product and cycle-exactly with the simulator.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparseforge.dataflow.layout import grouped_dense, grouped_sparse, memory_image
from sparseforge.models.prune import compress
from sparseforge.models.quant import quantize_per_channel, quantize_per_tensor
from sparseforge.sim.units.engine import run_cycles
from sparseforge.spec import HardwareSpec
from sparseforge.verify.harness import run_bench

pytestmark = pytest.mark.rtl


@pytest.fixture(scope="module", params=[(2, 8), (2, 4)], ids=["2of8", "2of4"])
def trained(request):
    train = pytest.importorskip("sparseforge.models.train")
    n, m = request.param
    try:
        res = train.train(train.TrainConfig(model="mlp", method="bdwp", n=n, m=m, epochs=1, n_train=500, n_test=100))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    ops = {o.name: o for o in train.minibatch_operands(res, batch=12)}
    return n, m, ops["fc2"]


def _engine(tmp_path, spec, x, gw, golden):
    img = memory_image(spec, x, gw)
    til = img.tiling
    got_layout = img.expected.transpose(1, 0, 2).reshape(x.shape[0], -1)[:, : golden.shape[1]]
    assert np.array_equal(got_layout, golden)
    expected = run_cycles(spec, tokens=til.tokens, tiles=til.tiles)
    case = {"act": [f"{a:x}" for a in img.act], "wgt": [f"{b:x}" for b in img.wgt], "tokens": til.tokens,
            "ktiles": til.ktiles, "ntiles": til.ntiles, "cols": spec.cols, "acc_width": spec.acc_width,
            "expected": img.expected.tolist(), "expected_cycles": expected, "timeout_cycles": 10 * expected + 100}
    depths = {"act_depth": len(img.act), "wgt_depth": max(len(img.wgt), spec.rows), "out_depth": til.ntiles * til.tokens}
    result = run_bench(spec, design="engine", bench="cocotb_engine", case=case, workdir=tmp_path, **depths)
    assert result["cycles"] == [expected]


def test_ff_bp_wg_of_a_bdwp_step(tmp_path, trained):
    """FF (N:M along K), BP (W^T with its own N:M mask along W's output dimension) and WG
    (dense) of a real BDWP-trained layer and a real minibatch: bit-exact and cycle-exact."""
    n, m, op = trained
    spec = HardwareSpec(rows=4, cols=4, n=n, m=m, max_k=4096)
    K, N = 5 * m, 2 * m                      # slices on group boundaries keep both masks N:M
    x, _ = quantize_per_tensor(op.x[:, :K])
    dy, _ = quantize_per_tensor(op.dy[:, :N])
    w, _ = quantize_per_channel(op.w[:N, :K], axis=0)
    x, dy, w = (a.astype(np.int64) for a in (x, dy, w))
    w_ff = w * op.mask_ff[:N, :K]
    w_bp = w * op.mask_bp[:N, :K]
    # the two masks differ (BDWP) and each is N:M along its own dimension
    assert not np.array_equal(op.mask_ff, op.mask_bp)
    c_ff = compress(w_ff, n, m)
    c_bp = compress(np.ascontiguousarray(w_bp.T), n, m)
    assert np.array_equal(c_ff.to_dense(), w_ff) and np.array_equal(c_bp.to_dense(), w_bp.T)

    gff = grouped_sparse(c_ff.values, c_ff.indices, n=n, m=m, k=K, spec=spec)
    _engine(tmp_path / "ff", spec, x, gff, x @ w_ff.T)
    gbp = grouped_sparse(c_bp.values, c_bp.indices, n=n, m=m, k=N, spec=spec)
    _engine(tmp_path / "bp", spec, dy, gbp, dy @ w_bp)
    gwg = grouped_dense(np.ascontiguousarray(x.T), spec)          # stationary x^T [K, T]
    _engine(tmp_path / "wg", spec, np.ascontiguousarray(dy.T), gwg, dy.T @ x)
