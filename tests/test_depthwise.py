"""Depthwise (and grouped) convolutions mapped as packed block-diagonal GEMMs (docs/training.md,
"Depthwise and grouped convolutions"): the packing the mapper picks and its cycles on
hand-worked examples, MACs counted once, modes that agree with the MACs and cycles, and the
weight-stationary engine's RTL running a packed MobileNetV2 depthwise slice bit- and
cycle-exactly as the model says."""

from __future__ import annotations

import numpy as np
import pytest

from sparseforge.dataflow.layout import grouped_pruned, memory_image, pack_groups, packed_group_size
from sparseforge.dataflow.mapper import layer_cycles, map_layer, packing, run_compute_cycles
from sparseforge.models.network import GemmLayer
from sparseforge.models.zoo_train import mobilenetv2_network, training_gemms
from sparseforge.sim.simulate import compare
from sparseforge.sim.train import simulate_training
from sparseforge.sim.units.engine import run_cycles
from sparseforge.spec import HardwareSpec, load_spec

SMALL = HardwareSpec(rows=4, cols=4, n=2, m=8, max_k=4096)


def _dw(tokens: int, channels: int, *, k: int = 9, n_out: int = 1, name: str = "dw") -> GemmLayer:
    return GemmLayer(name=name, tokens=tokens, k=k, n_out=n_out, kind="conv", prunable=False, count=channels)


def test_packed_group_size_by_hand():
    """p groups interleaved along K put a column's weights p apart, so a window of g holds
    ceil(g/p) of them: on 2:8 PEs (2 multipliers) p = 1 -> 2 lanes, 2 -> 4, 3 -> 6, >= 4 -> 8;
    on 2:4 PEs p >= 2 -> 4; a dense array (n = m) keeps n."""
    assert [packed_group_size(SMALL, p, 9) for p in (1, 2, 3, 4, 32)] == [2, 4, 6, 8, 8]
    two_four = HardwareSpec(rows=4, cols=4, n=2, m=4)
    assert [packed_group_size(two_four, p, 9) for p in (1, 2, 3)] == [2, 4, 4]
    assert packed_group_size(HardwareSpec(rows=4, cols=4, n=4, m=4), 8, 9) == 4
    # K shorter than a window: 3 groups of one index each never put 2 weights of a column together
    assert packed_group_size(SMALL, 3, 1) == 8


def test_pack_groups_is_the_per_group_products():
    """The block-diagonal GEMM's output column c*n + o is group c's output o."""
    rng = np.random.default_rng(1)
    X = rng.integers(-8, 8, size=(5, 7, 9))
    W = rng.integers(-8, 8, size=(5, 2, 9))
    Xp, Wp = pack_groups(X, W)
    assert Xp.shape == (7, 45) and Wp.shape == (10, 45)
    want = np.stack([X[c] @ W[c].T for c in range(5)], axis=1).reshape(7, 10)
    assert np.array_equal(Xp @ Wp.T, want)
    assert int(np.count_nonzero(Wp)) == int(np.count_nonzero(W))      # only the diagonal blocks


def test_ff_cycles_by_hand():
    """4 channels of a 3x3 depthwise conv, 6 output pixels, on a 4x4 2:8 array: packed 4 per
    GEMM, K = 36 in groups of 8 -> 5 groups -> 2 k-tiles, 1 n-tile, one run. The sequencer
    (sim.units.engine): L0 = 0, S0 = 1; L1 = max(0 + 4, 1 + 4) = 5, S1 = max(6, 1 + 6) = 7;
    last token issued at 7 + 6 - 1 = 12; + start, activation read, array latency 12,
    accumulator, done = 1 + 12 + 1 + 12 + 1 + 1 = 28 cycles. Unpacked, each channel's GEMM
    (9 / 2 -> 5 groups -> 2 k-tiles) takes the same 28, four times."""
    assert SMALL.array_latency == 12
    lay = _dw(6, 4)
    mp = map_layer(SMALL, lay, None)
    assert (mp.pack, mp.group, mp.mode, mp.ktiles, mp.ntiles, mp.runs) == (4, 8, "packed", 2, 1, 1)
    assert run_compute_cycles(SMALL, mp).tolist() == [28]
    plain = map_layer(SMALL, GemmLayer(name="dw", tokens=6, k=9, n_out=1, kind="linear", prunable=False, count=4),
                      None)
    assert plain.pack == 1 and run_compute_cycles(SMALL, plain).tolist() == [28] * 4
    assert layer_cycles(SMALL, mp) < layer_cycles(SMALL, plain)


def test_bp_cycles_by_hand():
    """The depthwise BP (im2col space: per channel tokens 9, K = 1, 9 outputs) of 4 channels:
    packing all 4 gives K = 4 (one group of 8 lanes, 1 k-tile) and 36 outputs = 9 n-tiles, one
    run; tile period max(rows 4, cols + 1 = 5, tokens 9) = 9, so the last tile streams from
    1 + 8 * 9 = 73 and the run takes 1 + (73 + 8) + 1 + 12 + 1 + 1 = 97 cycles. Unpacked, each
    channel is 3 n-tiles: 1 + (19 + 8) + 16 = 43 cycles, four times (172)."""
    mp = map_layer(SMALL, _dw(9, 4, k=1, n_out=9, name="bp"), None)
    assert (mp.pack, mp.group, mp.ktiles, mp.ntiles, mp.runs) == (4, 8, 1, 9, 1)
    assert run_compute_cycles(SMALL, mp).tolist() == [97] == [run_cycles(SMALL, tokens=9, tiles=9)]
    assert run_cycles(SMALL, tokens=9, tiles=3) == 43


def test_packing_choice_on_mobilenetv2():
    """On sat-vcu1525 (32x32, 2:8 PEs) features.1's depthwise FF (32 channels, 112x112) packs
    all 32 channels: K = 288 in groups of 8 = 36 groups = 2 k-tiles (16 channels in 1 k-tile
    would need two GEMMs of one tile each: more fill and drain). 96 channels pack 24 per GEMM
    (216 / 8 = 27 groups, 1 k-tile: 4 GEMMs of one tile beat 3 of two); 144 channels too (6
    GEMMs; 32 per GEMM would not divide 144)."""
    sat = load_spec("sat-vcu1525")
    net = mobilenetv2_network(batch=1)
    pk = packing(sat, net.layer("features.1.depthwise"), None)
    assert (pk.pack, pk.group, pk.gemm.k, pk.gemm.n_out, pk.gemm.count) == (32, 8, 288, 32, 1)
    pk = packing(sat, net.layer("features.2.depthwise"), None)          # 96 channels
    assert (pk.pack, pk.group, pk.gemm.count) == (24, 8, 4)
    pk = packing(sat, net.layer("features.3.depthwise"), None)          # 144 channels
    assert (pk.pack, pk.group, pk.gemm.k, pk.gemm.count) == (24, 8, 216, 6)


def test_only_dense_grouped_convs_are_packed():
    """A pruned grouped conv keeps its own N:M groups; attention products and single GEMMs
    are never packed; a packed GEMM stays within max_k."""
    pruned = GemmLayer(name="g", tokens=64, k=64, n_out=8, kind="conv", prunable=True, count=4)
    mp = map_layer(SMALL, pruned, (2, 8))
    assert mp.pack == 1 and mp.mode == "sparse"
    assert map_layer(SMALL, pruned, None).pack > 1                       # the same layer run dense
    att = GemmLayer(name="a", tokens=8, k=9, n_out=1, kind="attention", prunable=False, count=4)
    assert map_layer(SMALL, att, None).pack == 1
    assert map_layer(SMALL, _dw(8, 1), None).pack == 1
    tight = SMALL.replace(max_k=20)
    assert packing(tight, _dw(8, 8), None).pack == 2                    # 2 * 9 <= 20 < 4 * 9


@pytest.fixture(scope="module")
def mobilenet_inference():
    sat = load_spec("sat-vcu1525")
    return compare(sat, mobilenetv2_network(batch=1), (2, 8))


def test_depthwise_macs_counted_once(mobilenet_inference):
    """Useful MACs of every layer are its own (the network's 300,774,272 at batch 1), the packed
    zeros not among them; a depthwise layer's are channels x pixels x 9, and it issues more
    multiplier operations than it uses."""
    _, dense = mobilenet_inference
    assert sum(lay.useful_macs for lay in dense.layers) == 300_774_272
    for lay in dense.layers:
        if lay.name.endswith("depthwise"):
            assert lay.useful_macs == lay.count * lay.tokens * 9 == lay.count * lay.tokens * lay.k * lay.n_out
            assert lay.issued_macs > lay.useful_macs and 0 < lay.utilisation < 1


def test_depthwise_mode_macs_and_cycles_agree(mobilenet_inference):
    """Depthwise weights are not pruned: in the 2:8 run each depthwise layer is the same
    packed mapping as in the dense run (mode, useful MACs, cycles, traffic), while every
    pointwise layer runs sparse with 2/8 of its MACs useful."""
    sparse, dense = mobilenet_inference
    for s, d in zip(sparse.layers, dense.layers):
        if s.name.endswith("depthwise"):
            assert s.mode == d.mode == "packed" and s.pack > 1
            assert {**s.to_dict(), "reason": ""} == {**d.to_dict(), "reason": ""}   # why differs
        elif s.name != "features.0":
            assert s.mode == "sparse" and s.useful_macs * 4 == d.useful_macs
    dw = sum(lay.cycles for lay in sparse.layers if lay.name.endswith("depthwise"))
    assert dw < 0.6 * sparse.cycles       # before packing, depthwise was 93% of the cycles
    assert dense.cycles / sparse.cycles > 1.15


def test_training_keeps_depthwise_dense_but_updates_it():
    """In a 2:8 BDWP iteration a depthwise layer's FF, BP and WG are packed, identical to
    dense training's, get no SORE mask, and its dense weights are still updated."""
    sat = load_spec("sat-vcu1525")
    net = mobilenetv2_network(batch=2, image=64)
    bdwp = simulate_training(sat, net, method="bdwp", sparsity=(2, 8))
    dense = simulate_training(sat, net, method="dense", sparsity=None)
    for b, d in zip(bdwp.layers, dense.layers):
        if b.name.endswith("depthwise"):
            for r in (b.ff, b.bp, b.wg):
                assert r.mode == "packed"
            assert (b.ff.cycles, b.bp.cycles, b.wg.cycles) == (d.ff.cycles, d.bp.cycles, d.wg.cycles)
            assert b.mask_cycles == 0 and b.update_cycles > 0 and d.update_cycles == b.update_cycles
    assert dense.cycles > bdwp.cycles


# ----------------------------------------------------------------------------- RTL
def _depthwise_slice(rng: np.random.Generator, channels: int, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A slice of MobileNetV2 features.1.depthwise (3x3, stride 1, 32 channels on 112x112):
    ``channels`` channels, an ``out x out`` patch of output pixels away from the border. int8
    activations and weights from a seeded generator (no pretrained MobileNetV2 ships offline).
    Returns the input patch ``[channels, out + 2, out + 2]``, the filters ``[channels, 3, 3]``
    and the direct convolution ``[out * out, channels]`` (no im2col)."""
    x = rng.integers(-128, 128, size=(channels, out + 2, out + 2))
    w = rng.integers(-128, 128, size=(channels, 3, 3))
    y = np.zeros((out, out, channels), dtype=np.int64)
    for i in range(out):
        for j in range(out):
            y[i, j] = (x[:, i:i + 3, j:j + 3] * w).sum(axis=(1, 2))
    return x, w, y.reshape(out * out, channels)


def _im2col(x: np.ndarray, out: int) -> np.ndarray:
    """``[channels, tokens, 9]``: each channel's 3x3 windows, taps in (kh, kw) order."""
    c = x.shape[0]
    cols = np.stack([x[:, i:i + out, j:j + out] for i in range(3) for j in range(3)], axis=-1)
    return cols.reshape(c, out * out, 9)


def _run_engine(tmp_path, spec, mp, X, W, golden):
    """Pack, lay out and run one packed GEMM on the engine; check the layout's expectation
    against ``golden`` and the measured cycles against the mapper's run."""
    from sparseforge.verify.harness import run_bench

    assert mp.runs == 1
    Xp, Wp = pack_groups(X, W)
    gw = grouped_pruned(Wp, spec, mp.group)            # refuses a window with more than n weights
    img = memory_image(spec, Xp, gw)
    til = img.tiling
    assert (til.ktiles, til.ntiles) == (mp.ktiles, mp.ntiles)
    assert np.array_equal(img.expected.transpose(1, 0, 2).reshape(Xp.shape[0], -1)[:, : golden.shape[1]], golden)
    expected = int(run_compute_cycles(spec, mp)[0])
    case = {"act": [f"{a:x}" for a in img.act], "wgt": [f"{b:x}" for b in img.wgt], "tokens": til.tokens,
            "ktiles": til.ktiles, "ntiles": til.ntiles, "cols": spec.cols, "acc_width": spec.acc_width,
            "expected": img.expected.tolist(), "expected_cycles": expected, "timeout_cycles": 10 * expected + 100}
    depths = {"act_depth": len(img.act), "wgt_depth": max(len(img.wgt), spec.rows),
              "out_depth": til.ntiles * til.tokens}
    result = run_bench(spec, design="engine", bench="cocotb_engine", case=case, workdir=tmp_path, **depths)
    assert result["cycles"] == [expected]


@pytest.mark.rtl
def test_rtl_runs_a_packed_mobilenetv2_depthwise_slice(tmp_path):
    """FF and BP of 4 channels x 3x3 output pixels of features.1.depthwise on a 4x4 2:8 engine:
    the mapper packs the 4 channels into one block-diagonal GEMM each (FF: K = 36 in groups of
    8 lanes, 2 k-tiles; BP: K = 4, 36 outputs in 9 n-tiles); the RTL's outputs equal the
    direct depthwise convolution (FF) and ``dY x W`` per channel (BP, im2col space), and its
    cycles equal the model's."""
    rng = np.random.default_rng(12)
    C, out = 4, 3
    x, w, y = _depthwise_slice(rng, C, out)
    layer = _dw(out * out, C, name="features.1.depthwise")
    ff, bp, _ = training_gemms(layer)

    mp = map_layer(SMALL, ff, None)
    assert (mp.pack, mp.group, mp.mode) == (C, 8, "packed")
    _run_engine(tmp_path / "ff", SMALL, mp, _im2col(x, out), w.reshape(C, 1, 9), y)

    dy = rng.integers(-128, 128, size=(out * out, C))
    mp = map_layer(SMALL, bp, None)
    assert (mp.pack, mp.group, mp.ntiles) == (C, 8, 9)
    dxcol = (dy[:, :, None] * w.reshape(1, C, 9)).reshape(out * out, C * 9)     # column c*9 + tap
    _run_engine(tmp_path / "bp", SMALL, mp, dy.T[:, :, None], w.reshape(C, 9, 1), dxcol)


@pytest.mark.rtl
def test_rtl_os_engine_runs_the_packed_slice(tmp_path):
    """The same packed FF on the output-stationary engine (4x4, 2:8 PEs): 3 token tiles of the
    9 pixels, 5 groups of 8 lanes each; bit-exact against the direct depthwise convolution and
    cycle-exact against the mapper's run."""
    from sparseforge.dataflow.layout import os_memory_image
    from sparseforge.verify.harness import run_bench

    spec = SMALL.replace(dataflow="output-stationary")
    rng = np.random.default_rng(12)
    C, out = 4, 3
    x, w, y = _depthwise_slice(rng, C, out)
    ff, _, _ = training_gemms(_dw(out * out, C, name="features.1.depthwise"))
    mp = map_layer(spec, ff, None)
    assert (mp.pack, mp.group, mp.mode, mp.runs, mp.run_groups.tolist()) == (C, 8, "packed", 1, [5])
    Xp, Wp = pack_groups(_im2col(x, out), w.reshape(C, 1, 9))
    img = os_memory_image(spec, Xp, grouped_pruned(Wp, spec, mp.group))
    til = img.tiling
    got = img.expected.transpose(0, 3, 1, 2).reshape(til.token_tiles * spec.rows, -1)
    assert np.array_equal(got[: out * out, :C], y)
    expected = int(run_compute_cycles(spec, mp)[0])
    phase = {"act": [f"{a:x}" for a in img.act], "wgt": [f"{b:x}" for b in img.wgt], "groups": til.groups,
             "accumulate": 0, "runs": 1}
    case = {"phases": [phase], "token_tiles": til.token_tiles, "ntiles": til.ntiles, "rows": spec.rows,
            "acc_width": spec.acc_width, "expected": img.expected.tolist(), "expected_cycles": [expected],
            "timeout_cycles": 10 * expected + 100}
    depths = {"act_depth": len(img.act), "wgt_depth": len(img.wgt), "out_depth": til.tiles * spec.cols}
    result = run_bench(spec, design="os_engine", bench="cocotb_os_engine", case=case, workdir=tmp_path, **depths)
    assert result["cycles"] == [expected]
