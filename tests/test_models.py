"""Fast tests of the models package (random data, fixed seeds; no MiniLM weights needed)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sparseforge.models.golden import gemm_dense_int, gemm_nm_int
from sparseforge.models.network import GemmLayer, Network
from sparseforge.models.prune import NMCompressed, compress, nm_mask, prune
from sparseforge.models.quant import dequantize, int_dtype, qmax, quantize_per_channel, quantize_per_tensor
from sparseforge.models.zoo import get_network, minilm_network, resnet50_network

# (n, m, K) cases; several with K not a multiple of m, and n == m (dense)
NM_CASES = [(2, 4, 16), (2, 4, 10), (1, 4, 9), (2, 4, 9), (3, 4, 13), (4, 4, 7), (1, 2, 5), (2, 8, 37),
            (4, 8, 64), (1, 1, 3), (3, 16, 33)]


# ------------------------------------------------------------------ network
def test_gemm_layer_macs_honour_count():
    """A layer's MACs are count * tokens * k * n_out, and Network.macs() sums them."""
    a = GemmLayer(name="a", tokens=3, k=5, n_out=7)
    b = GemmLayer(name="b", tokens=2, k=4, n_out=6, kind="attention", prunable=False, count=12)
    assert a.macs == 105
    assert b.macs == 12 * 2 * 4 * 6
    net = Network(name="toy", layers=[a, b])
    assert isinstance(net.layers, tuple)
    assert net.macs() == 105 + 576
    assert net.prunable_macs() == 105
    assert len(net) == 2 and [l.name for l in net] == ["a", "b"]
    assert net.layer("b") is b
    assert a.weight_shape == (7, 5) and a.input_shape == (3, 5) and a.output_shape == (3, 7)


def test_gemm_layer_accepts_numpy_ints_as_python_ints():
    """NumPy integer sizes are stored as Python ints, so MAC products cannot overflow."""
    layer = GemmLayer(name="big", tokens=np.int32(1 << 20), k=np.int32(1 << 20), n_out=np.int32(1 << 20))
    assert type(layer.tokens) is int
    assert layer.macs == 1 << 60


@pytest.mark.parametrize("field, value", [("tokens", 0), ("k", -3), ("n_out", 0), ("count", 0),
                                          ("tokens", 2.5), ("k", True)])
def test_gemm_layer_rejects_bad_sizes(field, value):
    """Non-positive or non-integer sizes raise ValueError naming the field and the value."""
    kw = dict(name="x", tokens=4, k=4, n_out=4)
    kw[field] = value
    with pytest.raises(ValueError, match=rf"{field} = {value!r}"):
        GemmLayer(**kw)


def test_gemm_layer_rejects_bad_kind_name_and_pruned_attention():
    """Unknown kinds, empty names and prunable attention GEMMs are rejected with clear messages."""
    with pytest.raises(ValueError, match=r"kind = 'fc'.*linear, conv, attention"):
        GemmLayer(name="x", tokens=1, k=1, n_out=1, kind="fc")
    with pytest.raises(ValueError, match="name"):
        GemmLayer(name="", tokens=1, k=1, n_out=1)
    with pytest.raises(ValueError, match="prunable = True.*attention"):
        GemmLayer(name="x", tokens=1, k=1, n_out=1, kind="attention")
    with pytest.raises(TypeError):  # keyword-only fields
        GemmLayer("x", 1, 1, 1)  # type: ignore[misc]


def test_network_rejects_duplicates_and_empty():
    """A network needs at least one layer and unique layer names; lookups of unknown names fail."""
    a = GemmLayer(name="a", tokens=1, k=1, n_out=1)
    with pytest.raises(ValueError, match="'a' is not allowed twice"):
        Network(name="n", layers=(a, a))
    with pytest.raises(ValueError, match="at least one layer"):
        Network(name="n", layers=())
    with pytest.raises(KeyError, match="no layer 'zz'"):
        Network(name="n", layers=(a,)).layer("zz")


# ------------------------------------------------------------------ zoo
def test_minilm_network_shapes_and_macs():
    """MiniLM: 6 x (6 prunable linears + 2 twelve-head attention GEMMs) with the exact
    shapes, and 1,434,451,968 MACs at T = 128."""
    net = minilm_network(tokens=128)
    assert net.name == "minilm" and len(net) == 48
    lin = [l for l in net if l.kind == "linear"]
    att = [l for l in net if l.kind == "attention"]
    assert len(lin) == 36 and len(att) == 12
    assert all(l.prunable for l in lin) and not any(l.prunable for l in att)
    assert [l.name for l in net.layers[:8]] == [
        "layer0.attn.q", "layer0.attn.k", "layer0.attn.v", "layer0.attn.scores", "layer0.attn.context",
        "layer0.attn.o", "layer0.ffn.up", "layer0.ffn.down"]
    assert (net.layer("layer3.ffn.up").k, net.layer("layer3.ffn.up").n_out) == (384, 1536)
    assert (net.layer("layer5.ffn.down").k, net.layer("layer5.ffn.down").n_out) == (1536, 384)
    scores, context = net.layer("layer2.attn.scores"), net.layer("layer2.attn.context")
    assert (scores.tokens, scores.k, scores.n_out, scores.count) == (128, 32, 128, 12)
    assert (context.tokens, context.k, context.n_out, context.count) == (128, 128, 32, 12)
    assert {l.group for l in net} == {f"layer{i}" for i in range(6)}
    per_token_linear = 4 * 384 * 384 + 2 * 384 * 1536
    attention = 2 * 12 * 128 * 128 * 32
    assert net.macs() == 6 * (128 * per_token_linear + attention) == 1_434_451_968
    assert minilm_network(tokens=16).layer("layer0.attn.scores").n_out == 16


def test_resnet50_network_matches_torchvision_shapes():
    """ResNet-50 v1.5 im2col shapes: 53 convs + fc, stride on the 3x3 conv, 1x1 downsample convs."""
    net = resnet50_network()
    convs = [l for l in net if l.kind == "conv"]
    assert len(convs) == 53 and len(net) == 54
    shape = lambda name: (net.layer(name).tokens, net.layer(name).k, net.layer(name).n_out)
    assert shape("conv1") == (112 * 112, 3 * 7 * 7, 64)
    assert shape("layer1.0.conv2") == (56 * 56, 64 * 9, 64)
    assert shape("layer1.0.downsample.0") == (56 * 56, 64, 256)
    assert shape("layer2.0.conv1") == (56 * 56, 256, 128)        # v1.5: 1x1 keeps resolution
    assert shape("layer2.0.conv2") == (28 * 28, 128 * 9, 128)    # ... the 3x3 strides
    assert shape("layer2.0.downsample.0") == (28 * 28, 256, 512)
    assert shape("layer3.5.conv3") == (14 * 14, 256, 1024)
    assert shape("layer4.0.conv2") == (7 * 7, 512 * 9, 512)
    assert shape("layer4.2.conv3") == (7 * 7, 512, 2048)
    assert shape("fc") == (1, 2048, 1000) and net.layer("fc").kind == "linear"
    assert sum(1 for l in net if "downsample" in l.name) == 4
    assert [sum(1 for l in net if l.group == f"layer{i}") for i in range(1, 5)] == [10, 13, 19, 10]


def test_resnet50_macs_are_the_known_4_1_gmacs():
    """ResNet-50 at 224x224 is the well-known ~4.1 GMACs (4.09 G conv+fc MACs, as fvcore
    reports); our exact count is 4,089,184,256, and MACs scale linearly with batch."""
    macs = resnet50_network().macs()
    assert macs == 4_089_184_256
    assert 4.05e9 < macs < 4.15e9
    assert resnet50_network(batch=3).macs() == 3 * macs
    assert resnet50_network(batch=2).layer("fc").tokens == 2


def test_get_network_dispatch_and_errors():
    """get_network builds by name with keyword sizes; unknown names list the known ones."""
    assert get_network("minilm", tokens=64).layer("layer0.attn.q").tokens == 64
    assert get_network("resnet50", batch=2).layer("conv1").tokens == 2 * 112 * 112
    with pytest.raises(ValueError, match="'bert'.*bert_base, minilm, mobilenetv2, resnet18, resnet50, vgg16, vit_m3vit, vit_s16"):
        get_network("bert")
    with pytest.raises(ValueError, match="tokens = 0"):
        get_network("minilm", tokens=0)
    with pytest.raises(ValueError, match="tokens = 513"):
        minilm_network(tokens=513)
    with pytest.raises(ValueError, match="batch = 0"):
        resnet50_network(batch=0)


# ------------------------------------------------------------------ pruning
def _rand_w(rng, out, k, dtype=np.float32):
    if np.issubdtype(dtype, np.integer):
        return rng.integers(-127, 128, size=(out, k)).astype(dtype)
    return rng.standard_normal((out, k)).astype(dtype)


@pytest.mark.parametrize("n, m, k", NM_CASES)
def test_nm_mask_keeps_n_largest_per_group(n, m, k):
    """Every full group keeps exactly n entries, a short last group min(n, its size), and
    every kept |w| is >= every dropped |w| of the same group."""
    rng = np.random.default_rng(1000 * n + 10 * m + k)
    w = _rand_w(rng, 7, k)
    mask = nm_mask(w, n, m)
    assert mask.shape == w.shape and mask.dtype == np.bool_
    for g0 in range(0, k, m):
        grp_mask, grp_mag = mask[:, g0:g0 + m], np.abs(w[:, g0:g0 + m])
        size = grp_mask.shape[1]
        assert np.all(grp_mask.sum(axis=1) == min(n, size))
        for r in range(w.shape[0]):
            kept, dropped = grp_mag[r][grp_mask[r]], grp_mag[r][~grp_mask[r]]
            if dropped.size:
                assert kept.min() >= dropped.max()


def test_nm_mask_ties_go_to_lower_index_and_real_entries_beat_padding():
    """Equal magnitudes keep the lowest indices (sign ignored); zeros in a short last group
    are kept before padding."""
    w = np.array([[1.0, -1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    mask = nm_mask(w, 2, 4)
    assert mask.tolist() == [[True, True, False, False, True, True, False, False, True, True]]
    w2 = np.array([[0.0, 3.0, -3.0, 2.0]])
    assert nm_mask(w2, 1, 4).tolist() == [[False, True, False, False]]


def test_nm_mask_int8_minimum_is_largest_magnitude():
    """int8 -128 counts as magnitude 128 (no abs overflow)."""
    w = np.array([[5, -128, 127, 0]], dtype=np.int8)
    assert nm_mask(w, 1, 4).tolist() == [[False, True, False, False]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.int32])
def test_prune_zeroes_dropped_entries_and_keeps_dtype(dtype):
    """prune(W) == W * mask, same shape and dtype; n == m leaves W unchanged."""
    rng = np.random.default_rng(5)
    w = _rand_w(rng, 6, 22, dtype)
    p = prune(w, 2, 4)
    assert p.dtype == w.dtype and p.shape == w.shape
    np.testing.assert_array_equal(p, w * nm_mask(w, 2, 4))
    np.testing.assert_array_equal(prune(w, 4, 4), w)


@pytest.mark.parametrize("n, m, k", NM_CASES)
def test_compress_round_trips_to_pruned_matrix(n, m, k):
    """compress stores [out, ceil(K/m), n] values and ascending uint8 in-group indices, and
    to_dense() equals prune() bit-exactly, including K not a multiple of m."""
    rng = np.random.default_rng(7 + n + m + k)
    for dtype in (np.float32, np.int8):
        w = _rand_w(rng, 5, k, dtype)
        comp = compress(w, n, m)
        g = -(-k // m)
        assert comp.values.shape == comp.indices.shape == (5, g, n)
        assert comp.indices.dtype == np.uint8 and comp.values.dtype == w.dtype
        assert (comp.n, comp.m, comp.k, comp.shape, comp.groups) == (n, m, k, (5, k), g)
        assert np.all(comp.indices < m)
        assert np.all(np.diff(comp.indices.astype(int), axis=-1) > 0)
        dense = comp.to_dense()
        assert dense.dtype == w.dtype
        np.testing.assert_array_equal(dense, prune(w, n, m))


def test_compress_pads_short_last_group_with_zero_entries():
    """With K = 9, m = 4, n = 2 the last group has one real entry: it stores that entry and
    one zero-valued padding slot (index 1, column 9 >= K)."""
    w = np.arange(1, 19, dtype=np.float32).reshape(2, 9)
    comp = compress(w, 2, 4)
    assert comp.indices[:, 2].tolist() == [[0, 1], [0, 1]]
    assert comp.values[:, 2].tolist() == [[9.0, 0.0], [18.0, 0.0]]
    assert comp.columns()[0, 2].tolist() == [8, 9]
    np.testing.assert_array_equal(comp.to_dense(), prune(w, 2, 4))


def test_compressed_is_read_only():
    """NMCompressed arrays cannot be modified in place (the dataclass is frozen)."""
    comp = compress(np.ones((2, 8), dtype=np.float32), 2, 4)
    with pytest.raises(ValueError):
        comp.values[0, 0, 0] = 5.0
    with pytest.raises(AttributeError):
        comp.n = 3  # type: ignore[misc]


def test_nmcompressed_validates_its_fields():
    """Hand-built NMCompressed objects with bad indices, shapes or padding are rejected."""
    vals = np.ones((1, 2, 2), dtype=np.int8)
    good = np.array([[[0, 2], [1, 3]]], dtype=np.uint8)
    NMCompressed(values=vals, indices=good, n=2, m=4, k=8)
    with pytest.raises(ValueError, match="must be uint8"):
        NMCompressed(values=vals, indices=good.astype(np.int64), n=2, m=4, k=8)
    with pytest.raises(ValueError, match="index 4"):
        NMCompressed(values=vals, indices=np.array([[[0, 4], [1, 3]]], dtype=np.uint8), n=2, m=4, k=8)
    with pytest.raises(ValueError, match="strictly ascending"):
        NMCompressed(values=vals, indices=np.array([[[2, 0], [1, 3]]], dtype=np.uint8), n=2, m=4, k=8)
    with pytest.raises(ValueError, match=r"must be \[out, 3, 2\]"):
        NMCompressed(values=vals, indices=good, n=2, m=4, k=9)
    with pytest.raises(ValueError, match="padding must be zero"):
        NMCompressed(values=vals, indices=good, n=2, m=4, k=6)  # column 7 >= 6 holds a 1


@pytest.mark.parametrize("n, m, message", [(3, 2, "n = 3 is not allowed with m = 2"),
                                           (0, 4, "n = 0 is not allowed"),
                                           (1, 0, "m = 0 is not allowed"),
                                           (1, 257, "m = 257 is not allowed"),
                                           (2.0, 4, "n = 2.0 is not allowed")])
def test_pruning_rejects_bad_n_m(n, m, message):
    """Bad N:M patterns raise ValueError naming the field, the value and what is allowed."""
    w = np.ones((2, 8), dtype=np.float32)
    for fn in (nm_mask, prune, compress):
        with pytest.raises(ValueError, match=message):
            fn(w, n, m)


def test_pruning_rejects_bad_weights():
    """Weights must be a finite, non-empty 2-D numeric array."""
    with pytest.raises(ValueError, match="shape"):
        nm_mask(np.ones(8), 2, 4)
    with pytest.raises(ValueError, match="NaN"):
        nm_mask(np.array([[1.0, np.nan, 0.0, 2.0]]), 2, 4)
    with pytest.raises(ValueError, match="type list"):
        compress([[1.0, 2.0]], 1, 2)  # type: ignore[arg-type]


# ------------------------------------------------------------------ quantisation
def test_quantize_per_tensor_range_and_error():
    """Per-tensor int8: the peak maps to +-127, values stay in [-127, 127], and the
    reconstruction error is at most scale / 2."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((64, 48)).astype(np.float32) * 3
    q, scale = quantize_per_tensor(x)
    assert q.dtype == np.int8 and q.shape == x.shape and isinstance(scale, float)
    assert q.min() >= -127 and q.max() <= 127
    assert np.abs(q).max() == 127
    assert np.isclose(scale, np.abs(x).max() / 127)
    assert np.max(np.abs(dequantize(q, scale) - x)) <= scale / 2 + 1e-9


def test_quantize_other_widths_and_zero_tensor():
    """bits picks the dtype and range (4 -> int8 in [-7, 7], 12 -> int16); all-zero input gets
    scale 1 and zeros; bad bits are rejected."""
    x = np.linspace(-1, 1, 101)
    q4, s4 = quantize_per_tensor(x, bits=4)
    assert q4.dtype == np.int8 and q4.min() == -7 and q4.max() == 7 and np.isclose(s4, 1 / 7)
    q12, _ = quantize_per_tensor(x, bits=12)
    assert q12.dtype == np.int16 and q12.max() == 2047 == qmax(12)
    assert int_dtype(32) == np.int32
    qz, sz = quantize_per_tensor(np.zeros((3, 3)))
    assert sz == 1.0 and not qz.any()
    for bits in (1, 33, 8.0):
        with pytest.raises(ValueError, match=f"bits = {bits!r}"):
            quantize_per_tensor(x, bits=bits)
    with pytest.raises(ValueError, match="NaN"):
        quantize_per_tensor(np.array([1.0, np.inf]))


def test_quantize_per_channel_scales_each_row():
    """Per-channel: one scale per slice along axis, every non-zero channel reaches +-qmax,
    an all-zero channel gets scale 1, and dequantize(axis=...) reconstructs within scale/2."""
    rng = np.random.default_rng(12)
    w = rng.standard_normal((8, 20)) * np.arange(1, 9)[:, None]
    w[3] = 0
    q, scales = quantize_per_channel(w)
    assert q.dtype == np.int8 and scales.shape == (8,)
    assert scales[3] == 1.0 and not q[3].any()
    rows = [r for r in range(8) if r != 3]
    assert np.all(np.abs(q[rows]).max(axis=1) == 127)
    np.testing.assert_allclose(scales[rows], np.abs(w[rows]).max(axis=1) / 127)
    err = np.abs(dequantize(q, scales, axis=0) - w)
    assert np.all(err <= scales[:, None] / 2 + 1e-12)
    q1, s1 = quantize_per_channel(w, axis=1)
    assert s1.shape == (20,)
    assert np.all(np.abs(dequantize(q1, s1, axis=1) - w) <= s1[None, :] / 2 + 1e-12)
    with pytest.raises(ValueError, match="axis = 2"):
        quantize_per_channel(w, axis=2)
    with pytest.raises(ValueError, match=r"scale of shape \(3,\)"):
        dequantize(q, np.ones(3), axis=0)


# ------------------------------------------------------------------ golden models
def test_gemm_dense_int_is_exact_int64():
    """gemm_dense_int equals an exact (Python integer) X @ W.T and never overflows int8."""
    rng = np.random.default_rng(21)
    x = rng.integers(-127, 128, size=(5, 300)).astype(np.int8)
    w = rng.integers(-127, 128, size=(4, 300)).astype(np.int8)
    y = gemm_dense_int(x, w)
    assert y.dtype == np.int64 and y.shape == (5, 4)
    ref = [[sum(int(a) * int(b) for a, b in zip(xr, wr)) for wr in w] for xr in x]
    assert y.tolist() == ref
    full = gemm_dense_int(np.full((1, 1000), 127, np.int8), np.full((1, 1000), -127, np.int8))
    assert full[0, 0] == -127 * 127 * 1000


@pytest.mark.parametrize("n, m, k", NM_CASES)
def test_gemm_nm_int_matches_dense_bit_exactly(n, m, k):
    """The N:M golden model, computed from the compressed form only, equals the dense golden
    model on the decompressed weights bit for bit (K multiple of m or not)."""
    rng = np.random.default_rng(100 + 7 * n + m + k)
    x = rng.integers(-128, 128, size=(9, k)).astype(np.int8)
    w = rng.integers(-128, 128, size=(11, k)).astype(np.int8)
    comp = compress(w, n, m)
    y = gemm_nm_int(x, comp)
    assert y.dtype == np.int64 and y.shape == (9, 11)
    np.testing.assert_array_equal(y, gemm_dense_int(x, comp.to_dense()))
    np.testing.assert_array_equal(y, gemm_dense_int(x, prune(w, n, m)))


def test_gemm_nm_int_blocks_large_outputs(monkeypatch):
    """Results do not depend on the output blocking used to bound memory."""
    import sparseforge.models.golden as golden

    rng = np.random.default_rng(31)
    x = rng.integers(-128, 128, size=(16, 50)).astype(np.int8)
    comp = compress(rng.integers(-128, 128, size=(37, 50)).astype(np.int8), 2, 4)
    expected = gemm_dense_int(x, comp.to_dense())
    monkeypatch.setattr(golden, "_BLOCK_ELEMENTS", 16 * 13 * 2 * 3)  # blocks of 3 outputs
    np.testing.assert_array_equal(golden.gemm_nm_int(x, comp), expected)


def test_golden_models_reject_bad_operands():
    """Float operands, mismatched K and non-integer compressed values raise ValueError."""
    xi = np.ones((2, 8), dtype=np.int8)
    with pytest.raises(ValueError, match="dtype float32"):
        gemm_dense_int(xi.astype(np.float32), xi)
    with pytest.raises(ValueError, match="reduction lengths"):
        gemm_dense_int(xi, np.ones((3, 9), dtype=np.int8))
    with pytest.raises(ValueError, match="k = 8"):
        gemm_nm_int(np.ones((2, 9), dtype=np.int8), compress(xi, 2, 4))
    with pytest.raises(ValueError, match="comp.values of dtype float32"):
        gemm_nm_int(xi, compress(xi.astype(np.float32), 2, 4))


def test_quantised_sparse_pipeline_approximates_float_gemm():
    """prune W 2:4, quantise X per tensor and W per channel, compress, run the integer golden
    model, rescale: the result is within 2 % of the float GEMM with the pruned weights."""
    rng = np.random.default_rng(41)
    x = rng.standard_normal((32, 96)).astype(np.float32)
    wp = prune(rng.standard_normal((24, 96)).astype(np.float32), 2, 4)
    xq, sx = quantize_per_tensor(x)
    wq, sw = quantize_per_channel(wp)
    comp = compress(wq, 2, 4)
    np.testing.assert_array_equal(comp.to_dense(), wq)  # quantising keeps the 2:4 pattern
    y = gemm_nm_int(xq, comp).astype(np.float64) * sx * sw[None, :]
    ref = x.astype(np.float64) @ wp.astype(np.float64).T
    rel = np.linalg.norm(y - ref) / np.linalg.norm(ref)
    assert rel < 0.02


def test_package_attributes_are_the_submodules():
    """`import sparseforge.models.prune as p` gives the module (no re-exported name shadows a submodule)."""
    import importlib
    import types

    from sparseforge import models

    for sub in ("network", "zoo", "prune", "quant", "golden"):
        assert isinstance(getattr(models, sub), types.ModuleType), sub
        assert getattr(models, sub) is importlib.import_module(f"sparseforge.models.{sub}")
    assert models.compress is compress and models.GemmLayer is GemmLayer


def test_importing_models_is_light():
    """`import sparseforge.models` pulls in neither safetensors, tokenizers nor scipy (only NumPy)."""
    code = "import sys, sparseforge.models; print(sorted(m for m in ('safetensors', 'tokenizers', 'scipy', 'sparseforge.models.minilm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
