"""Tests of the performance model and the functional datapath: the engine's cycle model
(sim.units.engine), the dataflow mapper (dataflow.mapper), the network simulator with its DRAM
timeline (sim.simulate) and the tile-by-tile functional GEMM (sim.functional)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparseforge.dataflow.layout import grouped_dense, grouped_sparse, tiling
from sparseforge.dataflow.mapper import MappingError, check_sparsity, map_layer, map_network, word_bytes
from sparseforge.models.network import GemmLayer, Network
from sparseforge.models.prune import compress, prune
from sparseforge.models.network import first_layers
from sparseforge.models.zoo import get_network
from sparseforge.sim.units.engine import _recurrence, run_cycles, stream_starts
from sparseforge.sim.functional import functional_gemm
from sparseforge.sim.simulate import compare, simulate_layer, simulate_network
from sparseforge.spec import HardwareSpec, load_spec

MINILM = get_network("minilm", tokens=128)
MINILM_SHORT = get_network("minilm", tokens=24)
RESNET = get_network("resnet50")


def _layer(tokens: int, k: int, n_out: int, *, name: str = "x", count: int = 1) -> GemmLayer:
    return GemmLayer(name=name, tokens=tokens, k=k, n_out=n_out, count=count)


# ====================================================================== sim.units.engine
def test_stream_starts_equals_the_recurrence():
    """The O(1) extrapolation of stream_starts equals the full loader/streamer recurrence
    for every tile count on a grid of array shapes and token counts."""
    for rows in (1, 2, 3, 4, 7, 16, 32):
        for cols in (1, 2, 3, 4, 8, 15, 16, 33):
            for tokens in (1, 2, 3, 5, 16, 17, 18, 31, 34, 64, 100):
                rec = _recurrence(rows, cols, tokens, 40)
                for tiles in range(1, 41):
                    assert stream_starts(rows, cols, tokens, tiles) == rec[tiles - 1][1], (rows, cols, tokens, tiles)


def test_stream_starts_large_tile_counts():
    """Extrapolation stays exact for thousands of tiles."""
    for rows, cols, tokens in ((16, 16, 5), (4, 9, 7), (8, 4, 300)):
        assert stream_starts(rows, cols, tokens, 3000) == _recurrence(rows, cols, tokens, 3000)[-1][1]


def test_stream_starts_rejects_zero_tiles():
    """A run has at least one tile."""
    with pytest.raises(ValueError, match=r"^tiles must be >= 1, not 0$"):
        stream_starts(4, 4, 4, 0)


def test_run_cycles_rejects_zero_tokens():
    """A run streams at least one token."""
    with pytest.raises(ValueError, match=r"^tokens must be >= 1, not 0$"):
        run_cycles(HardwareSpec(), tokens=0, tiles=1)


@pytest.mark.parametrize("rows, cols", [(1, 1), (4, 4), (16, 16), (8, 3), (3, 12)])
@pytest.mark.parametrize("tokens", [1, 2, 7, 128])
def test_run_cycles_single_tile(rows, cols, tokens):
    """One tile: start cycle + first stream cycle + T-1 more issues + activation read +
    array latency + the accumulator's sum register + done
    = 1 + 1 + (T-1) + 1 + array_latency + 1 + 1."""
    spec = HardwareSpec(rows=rows, cols=cols)
    assert run_cycles(spec, tokens=tokens, tiles=1) == 1 + 1 + (tokens - 1) + 1 + spec.array_latency + 1 + 1


@pytest.mark.parametrize("rows, cols", [(4, 4), (16, 16), (8, 3), (3, 12)])
def test_run_cycles_period_is_tokens_for_long_streams(rows, cols):
    """When T >= max(rows, cols + 1) each extra tile costs exactly T cycles (the weights of
    the next tile load in the shadow of the stream)."""
    spec = HardwareSpec(rows=rows, cols=cols)
    for tokens in (max(rows, cols + 1), max(rows, cols + 1) + 1, 100):
        cycles = [run_cycles(spec, tokens=tokens, tiles=j) for j in range(1, 30)]
        assert all(b - a == tokens for a, b in zip(cycles, cycles[1:]))


@pytest.mark.parametrize("rows, cols", [(4, 4), (16, 16), (8, 3), (3, 12), (16, 15)])
def test_run_cycles_period_for_short_streams(rows, cols):
    """When T < max(rows, cols + 1) the weight load bounds each tile: the period is
    max(rows, cols + 1)."""
    spec = HardwareSpec(rows=rows, cols=cols)
    period = max(rows, cols + 1)
    for tokens in range(1, period):
        cycles = [run_cycles(spec, tokens=tokens, tiles=j) for j in range(1, 30)]
        assert all(b - a == period for a, b in zip(cycles, cycles[1:])), tokens


# ====================================================================== dataflow.mapper
MAPPING_CASES = [
    ("default", MINILM, (2, 4)), ("default", MINILM, None), ("default", RESNET, (2, 4)), ("default", RESNET, None),
    ("tiny", MINILM, (2, 4)), ("tiny", MINILM, (1, 4)), ("tiny", MINILM, None),
    ("sf-32x32", RESNET, (2, 4)), ("dense-16x16", MINILM, None), ("dense-16x16", RESNET, None),
]


@pytest.mark.parametrize("preset, net, sparsity", MAPPING_CASES)
@pytest.mark.parametrize("double", [True, False])
def test_mapping_blocks_fit_buffers_and_cover_the_gemm(preset, net, sparsity, double):
    """Every layer's blocks fit the buffer halves (whole buffers when single-buffered),
    no run exceeds the blocks, and the runs cover tokens x n-tiles exactly (times count)."""
    spec = load_spec(preset).replace(double_buffer=double)
    wb = word_bytes(spec)
    half = 2 if double else 1
    act_cap = spec.input_buffer_kib * 1024 // half
    wgt_cap = spec.weight_buffer_kib * 1024 // half
    out_cap = spec.output_buffer_kib * 1024 // half
    for mp in map_network(spec, net, sparsity):
        lay = mp.layer
        assert mp.ktiles == math.ceil(math.ceil(lay.k / mp.group) / spec.rows)
        assert mp.ntiles == math.ceil(lay.n_out / spec.cols)
        assert mp.token_block * mp.ktiles * wb["act"] <= act_cap, lay.name
        assert mp.n_block * mp.ktiles * spec.rows * wb["wgt"] <= wgt_cap, lay.name
        assert mp.token_block * mp.n_block * wb["out"] <= out_cap, lay.name
        assert 1 <= mp.token_block <= lay.tokens and 1 <= mp.n_block <= mp.ntiles
        assert mp.run_tokens.max() <= mp.token_block and mp.run_ntiles.max() <= mp.n_block
        assert int((mp.run_tokens * mp.run_ntiles).sum()) == lay.tokens * mp.ntiles * lay.count
        tt, nb = math.ceil(lay.tokens / mp.token_block), math.ceil(mp.ntiles / mp.n_block)
        assert mp.runs == tt * nb * lay.count
        # every output element is written back once, as one accumulator
        assert int(mp.writeback_bytes.sum()) == lay.tokens * lay.n_out * wb["acc"] * lay.count
        assert int(mp.run_out_cols.max()) <= mp.n_block * spec.cols


@pytest.mark.parametrize("preset, net, sparsity", MAPPING_CASES)
def test_mapping_modes(preset, net, sparsity):
    """Prunable layers run sparse (group m) under an N:M pattern, everything else dense
    (group n); useful MACs scale by n/m for sparse layers."""
    spec = load_spec(preset)
    for mp in map_network(spec, net, sparsity):
        # the default rule keeps the stem (first_layers) dense (docs/sparsity.md)
        sparse = (bool(sparsity) and mp.layer.prunable and sparsity[0] < sparsity[1]
                  and mp.layer.name not in first_layers(net))
        assert mp.mode == ("sparse" if sparse else "dense")
        assert mp.group == (spec.m if sparse else spec.n)
        n, m = sparsity if sparse else (1, 1)
        assert mp.useful_macs == mp.layer.macs * n // m


def _order_traffic(spec: HardwareSpec, mp) -> dict[str, int]:
    """DRAM read bytes of one GEMM under each loop order, computed from first principles."""
    lay = mp.layer
    act = lay.tokens * lay.k * math.ceil(spec.act_width / 8)
    wgt = mp.ntiles * mp.ktiles * spec.rows * word_bytes(spec)["wgt"]
    tt, nb = math.ceil(lay.tokens / mp.token_block), math.ceil(mp.ntiles / mp.n_block)
    return {"tokens-outer": act + wgt * (1 if nb == 1 else tt),
            "weights-outer": wgt + act * (1 if tt == 1 else nb)}


@pytest.mark.parametrize("tokens, k, n_out, order", [
    (4096, 256, 64, "weights-outer"),     # many tokens, a small weight matrix: re-read activations
    (64, 2048, 2048, "tokens-outer"),     # few tokens, big weights: re-read weights per token block
])
def test_loop_order_minimises_dram_traffic(tokens, k, n_out, order):
    """The mapper picks the loop order with fewer DRAM bytes; both orders are a real choice
    here (several token blocks and several weight blocks) and the runs fetch exactly the
    predicted bytes."""
    spec = load_spec("tiny")
    mp = map_layer(spec, _layer(tokens, k, n_out), (2, 4))
    tt, nb = math.ceil(tokens / mp.token_block), math.ceil(mp.ntiles / mp.n_block)
    assert tt > 1 and nb > 1
    traffic = _order_traffic(spec, mp)
    assert mp.loop_order == order
    assert traffic[order] < traffic[next(o for o in traffic if o != order)]
    assert int((mp.fetch_act_bytes + mp.fetch_wgt_bytes).sum()) == traffic[order]


@pytest.mark.parametrize("preset, net, sparsity", MAPPING_CASES)
def test_loop_order_on_real_networks(preset, net, sparsity):
    """On every layer of the real networks the chosen order moves the fewest bytes and the
    runs fetch exactly that many (count times)."""
    spec = load_spec(preset)
    for mp in map_network(spec, net, sparsity):
        traffic = _order_traffic(spec, mp)
        assert traffic[mp.loop_order] == min(traffic.values()), mp.layer.name
        assert int((mp.fetch_act_bytes + mp.fetch_wgt_bytes).sum()) == traffic[mp.loop_order] * mp.layer.count


def test_count_repeats_the_runs():
    """A layer with count = c is c independent GEMMs: c times the runs and the bytes."""
    spec = load_spec("tiny")
    one = map_layer(spec, _layer(300, 200, 100), (2, 4))
    three = map_layer(spec, _layer(300, 200, 100, count=3), (2, 4))
    assert three.runs == 3 * one.runs
    for field in ("run_tokens", "run_ntiles", "fetch_act_bytes", "fetch_wgt_bytes", "writeback_bytes"):
        assert np.array_equal(getattr(three, field), np.tile(getattr(one, field), 3))


def test_weight_buffer_too_small():
    """A weight buffer that cannot hold one weight tile is a MappingError naming
    the layer, the bytes needed and the setting to raise."""
    spec = HardwareSpec().with_overrides(["weight_buffer_kib=1"])
    with pytest.raises(MappingError) as info:
        map_network(spec, RESNET, (2, 4))
    # one tile is 16 rows of 40-byte weight words
    assert str(info.value) == ("layer conv1: one weight tile needs 640 bytes but "
                               "weight_buffer_kib = 1 gives 512 per buffer: raise weight_buffer_kib")


def test_input_buffer_too_small_for_one_word():
    """An input buffer that cannot hold one activation word is a MappingError."""
    spec = HardwareSpec(rows=128, m=8, n=2, input_buffer_kib=1)
    with pytest.raises(MappingError) as info:
        map_layer(spec, _layer(8, 4096, 16, name="big"), (2, 8))
    assert str(info.value) == ("layer big: one activation word needs 1024 bytes but "
                               "input_buffer_kib = 1 gives 512 per buffer: raise input_buffer_kib")


def test_long_reduction_is_split_into_k_blocks():
    """When one token's activations do not fit an input-buffer half, the reduction is split
    into k-blocks: every (token, n-tile, k-tile) is still covered exactly once, every k-block
    after the first accumulates, outputs are written back once after the last k-block, and
    each k-slice of activations is fetched from DRAM."""
    spec = HardwareSpec(input_buffer_kib=1)                 # 512 B per half: 8 words of 64 B
    layer = _layer(8, 4096, 40, name="big")
    mp = map_layer(spec, layer, (2, 4))
    assert mp.ktiles == 64 and mp.k_block <= 8
    KB = -(-64 // mp.k_block)
    assert KB > 1
    assert int((mp.run_tokens * mp.run_ntiles * mp.run_ktiles).sum()) == 8 * mp.ntiles * 64
    first_k = np.arange(mp.runs) % KB == 0
    assert (mp.run_accumulate == ~first_k).all()
    assert (mp.writeback_bytes[np.arange(mp.runs) % KB != KB - 1] == 0).all()
    assert int(mp.writeback_bytes.sum()) == 8 * 40 * 4
    nb = -(-mp.ntiles // mp.n_block)
    assert int(mp.fetch_act_bytes.sum()) == 8 * 4096 * nb
    res = simulate_layer(spec, mp)
    assert res.cycles >= res.compute_cycles > 0


def test_k_block_search_never_loses_to_the_largest_block():
    """The k-block is chosen by costing candidates: the chosen mapping simulates no slower
    than the largest k-block that fits (here it is 8x smaller, so 8x more tokens per run)."""
    from sparseforge.dataflow import mapper
    spec = HardwareSpec(input_buffer_kib=1)
    layer = _layer(8, 4096, 40, name="big")
    chosen = map_layer(spec, layer, (2, 4))
    largest = mapper.plan(spec, layer, group=4, k_block=8)
    assert chosen.k_block == 1 and chosen.token_block == 8 and largest.token_block == 1
    assert mapper.plan_cost(spec, largest) > mapper.plan_cost(spec, mapper.plan(spec, layer, group=4, k_block=1))


def test_output_buffer_too_small():
    """An output buffer that cannot hold one output word is a MappingError."""
    spec = HardwareSpec(rows=1, cols=256, output_buffer_kib=1)
    with pytest.raises(MappingError) as info:
        map_layer(spec, _layer(8, 16, 256, name="wide"), (2, 4))
    # 256 accumulators of 8 + 8 + 14 = 30 bits = 960 bytes
    assert str(info.value) == ("layer wide: one token's accumulators need 960 bytes but "
                               "output_buffer_kib = 1 gives 512 per buffer")


def test_k_above_max_k():
    """A reduction longer than max_k is refused (the accumulator could overflow), in
    dense layers too."""
    spec = HardwareSpec(max_k=256)
    for sparsity in ((2, 4), None):
        with pytest.raises(MappingError) as info:
            map_layer(spec, _layer(4, 257, 8, name="long"), sparsity)
        assert str(info.value) == ("layer long: K = 257 exceeds max_k = 256 (the accumulator is sized for "
                                   "max_k products): raise it, e.g. --set max_k=512 or max_k in the spec file")
    assert map_layer(spec, _layer(4, 256, 8), (2, 4)).ktiles == 4


@pytest.mark.parametrize("spec_kw, sparsity, message", [
    ({}, (0, 4), "sparsity 0:4 is not allowed: need integers 1 <= n <= m <= 64"),
    ({}, (5, 4), "sparsity 5:4 is not allowed: need integers 1 <= n <= m <= 64"),
    ({}, (2, 128), "sparsity 2:128 is not allowed: need integers 1 <= n <= m <= 64"),
])
def test_check_sparsity_errors(spec_kw, sparsity, message):
    """check_sparsity refuses malformed patterns with one clear line."""
    with pytest.raises(MappingError) as info:
        check_sparsity(HardwareSpec(**spec_kw), sparsity)
    assert str(info.value) == message


def test_check_sparsity_accepts():
    """None and n == m mean dense; n <= spec.n with the array's m is sparse."""
    spec = HardwareSpec()
    assert check_sparsity(spec, None) is None
    assert check_sparsity(spec, (4, 4)) is None
    assert check_sparsity(spec, (8, 8)) is None
    assert check_sparsity(spec, (2, 4)) == (2, 4)
    assert check_sparsity(spec, (1, 4)) == (1, 4)
    assert check_sparsity(spec, (2, 8)) == (2, 8)      # runs; group_size decides the gain


@pytest.mark.parametrize("hw, sparsity, group", [
    ((2, 4), None, 2), ((2, 4), (2, 4), 4), ((2, 4), (1, 4), 4), ((2, 4), (2, 8), 4), ((2, 4), (3, 4), 2),
    ((2, 8), (2, 8), 8), ((2, 8), (1, 4), 8), ((2, 8), (2, 4), 4), ((2, 8), (1, 8), 8), ((2, 8), None, 2),
    ((4, 8), (2, 4), 8), ((4, 8), (2, 8), 8), ((4, 4), (2, 4), 4), ((4, 4), None, 4),
])
def test_group_size_is_the_largest_group_the_pes_can_hold(hw, sparsity, group):
    """A PE with n multipliers and m lanes covers the largest g <= m such that no aligned
    window of g holds more than n nonzeros of the layer's pattern; dense weights get g = n."""
    from sparseforge.dataflow.layout import group_size
    assert group_size(HardwareSpec(n=hw[0], m=hw[1]), sparsity) == group


# ====================================================================== sim.simulate
def _fast_dram(spec: HardwareSpec, **kw) -> HardwareSpec:
    return spec.replace(dram_bandwidth_gbps=1e9, **kw)


@pytest.mark.parametrize("preset, net, sparsity", [("default", MINILM, (2, 4)), ("default", RESNET, None),
                                                   ("tiny", MINILM_SHORT, (2, 4))])
def test_cycles_cover_compute(preset, net, sparsity):
    """Each layer takes at least its compute cycles; the difference is the stall; layer
    compute is the sum of its runs' engine cycles."""
    spec = load_spec(preset)
    res = simulate_network(spec, net, sparsity)
    maps = map_network(spec, net, sparsity)
    for lay, mp in zip(res.layers, maps):
        assert lay.cycles >= lay.compute_cycles > 0
        assert lay.stall_cycles == lay.cycles - lay.compute_cycles
        assert lay.compute_cycles == sum(run_cycles(spec, tokens=int(t), tiles=int(j) * mp.ktiles)
                                         for t, j in zip(mp.run_tokens, mp.run_ntiles))
    assert res.cycles == sum(lay.cycles for lay in res.layers)
    assert res.totals()["stall_cycles"] == res.cycles - res.totals()["compute_cycles"]


@pytest.mark.parametrize("net", [MINILM, RESNET])
@pytest.mark.parametrize("latency_ns", [0.0, 100.0])
def test_stall_with_unlimited_bandwidth(net, latency_ns):
    """With (practically) unlimited bandwidth, every transfer takes its latency plus one
    cycle, and with double buffering only the first fetch and the last write-back of each
    layer are exposed: stall = 2 * (latency + 1) cycles per layer."""
    spec = _fast_dram(HardwareSpec(), dram_latency_ns=latency_ns)
    res = simulate_network(spec, net, (2, 4))
    lat = spec.dram_latency_cycles
    assert all(lay.stall_cycles == 2 * (lat + 1) for lay in res.layers)


@pytest.mark.parametrize("net", [MINILM, RESNET])
def test_stall_decreases_with_bandwidth(net):
    """More DRAM bandwidth never adds stall, per layer and in total, and strictly reduces
    the total from a starved to a generous memory."""
    base = HardwareSpec(dram_latency_ns=0.0)
    prev = None
    totals = []
    for bw in (1.0, 4.8, 19.2, 38.4, 100.0, 1e4, 1e9):
        res = simulate_network(base.replace(dram_bandwidth_gbps=bw), net, (2, 4))
        stalls = [lay.stall_cycles for lay in res.layers]
        if prev is not None:
            assert all(s <= p for s, p in zip(stalls, prev)), bw
        prev = stalls
        totals.append(sum(stalls))
    assert totals[0] > totals[2] > totals[-1]


def test_stall_grows_with_latency():
    """More DRAM latency never removes stall."""
    prev = -1
    for lat in (0.0, 50.0, 100.0, 1000.0):
        stall = simulate_network(HardwareSpec(dram_latency_ns=lat), MINILM, (2, 4)).totals()["stall_cycles"]
        assert stall >= prev
        prev = stall


@pytest.mark.parametrize("net", [MINILM, get_network("minilm", tokens=512)])
def test_single_buffer_never_faster(net):
    """With buffers so large that single and double buffering give the same blocks (and so
    the same runs), the single-buffered spec is never faster, per layer, at any bandwidth.
    (With different blocks it can be: a single buffer holds blocks twice as large, so
    fewer runs pay the array's fill and drain and fewer bytes are re-fetched.)"""
    big = HardwareSpec(weight_buffer_kib=8192, input_buffer_kib=8192, output_buffer_kib=8192)
    maps_d = map_network(big, net, (2, 4))
    maps_s = map_network(big.replace(double_buffer=False), net, (2, 4))
    for a, b in zip(maps_d, maps_s):
        assert np.array_equal(a.run_tokens, b.run_tokens) and np.array_equal(a.run_ntiles, b.run_ntiles)
    for bw in (1.0, 4.8, 19.2, 1e9):
        spec = big.replace(dram_bandwidth_gbps=bw)
        double = simulate_network(spec, net, (2, 4))
        single = simulate_network(spec.replace(double_buffer=False), net, (2, 4))
        assert all(s.cycles >= d.cycles for s, d in zip(single.layers, double.layers)), bw
        assert single.cycles > double.cycles      # the 12-head attention layers run 12 runs each


@pytest.mark.parametrize("bw", [1.0, 19.2, 1e9])
def test_single_buffer_timeline_on_the_same_runs(bw):
    """With identical runs (a double-buffer mapping, which also fits single buffers) the
    single-buffered timeline is never shorter and computes the same cycles."""
    spec = HardwareSpec(dram_bandwidth_gbps=bw)
    single_spec = spec.replace(double_buffer=False)
    for mp in map_network(spec, RESNET, (2, 4)):
        d, s = simulate_layer(spec, mp), simulate_layer(single_spec, mp)
        assert s.compute_cycles == d.compute_cycles
        assert s.cycles >= d.cycles, mp.layer.name


def test_sparse_minilm_is_faster_than_dense():
    """2:4 MiniLM beats dense on the same array, by at most 2x in compute cycles: a
    sparse layer has at most half the tiles, and the attention layers are identical."""
    spec = HardwareSpec()
    sparse, dense = compare(spec, MINILM, (2, 4))
    assert sparse.cycles < dense.cycles
    ratio = dense.totals()["compute_cycles"] / sparse.totals()["compute_cycles"]
    assert 1.0 < ratio <= 2.0
    for s, d in zip(sparse.layers, dense.layers):
        assert s.name == d.name
        assert d.tiles <= 2 * s.tiles
        if s.kind == "attention":
            assert {**s.to_dict(), "reason": ""} == {**d.to_dict(), "reason": ""}   # why differs
        else:
            assert (s.mode, d.mode) == ("sparse", "dense") and s.tiles < d.tiles


def test_sparse_tiles_at_most_halve():
    """On every prunable layer of both networks, dense tiles <= 2 x sparse tiles."""
    spec = HardwareSpec()
    for net in (MINILM, RESNET):
        sparse, dense = compare(spec, net, (2, 4))
        assert all(d.tiles <= 2 * s.tiles for s, d in zip(sparse.layers, dense.layers))


@pytest.mark.parametrize("preset, net, sparsity", [("default", MINILM, (2, 4)), ("default", RESNET, None),
                                                   ("tiny", MINILM_SHORT, (1, 4)), ("dense-16x16", MINILM, None)])
def test_energy_and_utilisation(preset, net, sparsity):
    """Energy components are non-negative event counts times the spec's per-event energies
    (DRAM energy = DRAM bytes * e_dram_pj_per_byte); utilisation is in (0, 1]; issued
    MACs cover the useful ones."""
    spec = load_spec(preset)
    res = simulate_network(spec, net, sparsity)
    for lay in res.layers:
        e = lay.energy_pj
        assert set(e) == {"mac", "sram", "dram"}
        assert all(v >= 0 for v in e.values())
        assert e["dram"] == (lay.dram_read_bytes + lay.dram_write_bytes) * spec.e_dram_pj_per_byte
        assert e["mac"] == lay.issued_macs * spec.e_mac_pj
        assert e["sram"] == lay.sram_bytes * spec.e_sram_pj_per_byte
        assert lay.energy_total_pj == pytest.approx(sum(e.values()))
        assert 0.0 < lay.utilisation <= 1.0
        assert lay.issued_macs >= lay.useful_macs > 0
        assert lay.utilisation == lay.useful_macs / (lay.cycles * spec.multipliers)
    t = res.totals()
    assert 0.0 < t["utilisation"] <= 1.0
    assert t["energy_pj"]["dram"] == pytest.approx(t["dram_bytes"] * spec.e_dram_pj_per_byte)
    assert t["dram_bytes"] == t["dram_read_bytes"] + t["dram_write_bytes"]
    assert t["time_ms"] == pytest.approx(res.cycles / (spec.clock_mhz * 1e3))


def test_zero_energies():
    """With all per-event energies 0 every energy figure is 0."""
    spec = HardwareSpec(e_mac_pj=0.0, e_sram_pj_per_byte=0.0, e_dram_pj_per_byte=0.0)
    res = simulate_network(spec, MINILM_SHORT, (2, 4))
    assert res.totals()["energy_total_pj"] == 0.0


def test_useful_macs_of_the_network():
    """Useful MACs are the prunable MACs times n/m plus the rest."""
    res = simulate_network(HardwareSpec(), MINILM, (2, 4))
    assert res.totals()["useful_macs"] == MINILM.prunable_macs() // 2 + (MINILM.macs() - MINILM.prunable_macs())


def test_simulate_custom_network():
    """Any Network simulates; results keep layer order and shapes."""
    net = Network(name="two", layers=(_layer(10, 100, 30, name="a"), _layer(3, 30, 7, name="b")))
    res = simulate_network(load_spec("tiny"), net, (2, 4))
    assert [(lay.name, lay.tokens, lay.k, lay.n_out) for lay in res.layers] == [("a", 10, 100, 30), ("b", 3, 30, 7)]
    assert res.network == "two" and res.sparsity == (2, 4)


# ====================================================================== sim.functional
RNG_SEED = 1234
SHAPES = [(1, 1), (3, 5), (4, 4), (8, 2), (16, 16)]
GEMMS = [(1, 1, 1), (3, 7, 5), (5, 37, 17), (9, 130, 33)]  # (T, K, n_out): K % 4 != 0, n_out % cols != 0


def _int8(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)


@pytest.mark.parametrize("rows, cols", SHAPES)
@pytest.mark.parametrize("T, K, N", GEMMS)
def test_functional_sparse_matches_golden(rows, cols, T, K, N):
    """Sparse mode through the index muxes equals X @ prune(W, 2, 4)^T exactly (int64)."""
    rng = np.random.default_rng([RNG_SEED, rows, cols, T, K, N])
    spec = HardwareSpec(rows=rows, cols=cols)
    X, W = _int8(rng, (T, K)), _int8(rng, (N, K))
    comp = compress(W, 2, 4)
    gw = grouped_sparse(comp.values, comp.indices, n=2, m=4, k=K, spec=spec)
    Y = functional_gemm(spec, X, gw)
    assert Y.dtype == np.int64 and Y.shape == (T, N)
    assert np.array_equal(Y, X.astype(np.int64) @ prune(W, 2, 4).astype(np.int64).T)


@pytest.mark.parametrize("rows, cols", SHAPES)
@pytest.mark.parametrize("T, K, N", GEMMS)
def test_functional_dense_matches_golden(rows, cols, T, K, N):
    """Dense mode (n consecutive reduction indices per PE) equals X @ W^T exactly (int64)."""
    rng = np.random.default_rng([RNG_SEED + 1, rows, cols, T, K, N])
    spec = HardwareSpec(rows=rows, cols=cols)
    X, W = _int8(rng, (T, K)), _int8(rng, (N, K))
    Y = functional_gemm(spec, X, grouped_dense(W, spec))
    assert np.array_equal(Y, X.astype(np.int64) @ W.astype(np.int64).T)


@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 5), (4, 4)])
def test_functional_1_of_4_on_a_2_of_4_array(rows, cols):
    """1:4 weights on a 2:4 array: grouped_sparse pads every group with a zero weight at a
    free lane, and the result is exact."""
    rng = np.random.default_rng([RNG_SEED + 2, rows, cols])
    spec = HardwareSpec(rows=rows, cols=cols)
    T, K, N = 6, 45, 11
    X, W = _int8(rng, (T, K)), _int8(rng, (N, K))
    comp = compress(W, 1, 4)
    gw = grouped_sparse(comp.values, comp.indices, n=1, m=4, k=K, spec=spec)
    assert gw.values.shape == (N, math.ceil(K / 4), 2)
    assert np.all(gw.values[:, :, 1] == 0)
    assert np.all(gw.indices[:, :, 0] != gw.indices[:, :, 1])
    assert np.array_equal(functional_gemm(spec, X, gw), X.astype(np.int64) @ prune(W, 1, 4).astype(np.int64).T)


@pytest.mark.parametrize("n, m", [(1, 8), (2, 8), (3, 8)])
def test_functional_other_group_sizes(n, m):
    """Arrays with other N:M shapes (here 3:8 PEs) run n:8 weights exactly."""
    rng = np.random.default_rng([RNG_SEED + 3, n, m])
    spec = HardwareSpec(rows=3, cols=4, n=3, m=8)
    X, W = _int8(rng, (5, 61)), _int8(rng, (9, 61))
    comp = compress(W, n, m)
    gw = grouped_sparse(comp.values, comp.indices, n=n, m=m, k=61, spec=spec)
    assert np.array_equal(functional_gemm(spec, X, gw), X.astype(np.int64) @ prune(W, n, m).astype(np.int64).T)


def test_functional_dense_array():
    """A dense array (n == m) runs dense weights exactly."""
    rng = np.random.default_rng(RNG_SEED + 4)
    spec = HardwareSpec(rows=4, cols=3, n=4, m=4)
    X, W = _int8(rng, (7, 50)), _int8(rng, (10, 50))
    assert np.array_equal(functional_gemm(spec, X, grouped_dense(W, spec)), X.astype(np.int64) @ W.astype(np.int64).T)


def test_functional_extreme_values_do_not_overflow():
    """All operands at -128: every output is K * 2^14 exactly."""
    spec = HardwareSpec(rows=4, cols=4)
    K = 1000
    X = np.full((2, K), -128, dtype=np.int8)
    W = np.full((5, K), -128, dtype=np.int8)
    assert np.all(functional_gemm(spec, X, grouped_dense(W, spec)) == K * 2**14)
    comp = compress(W, 2, 4)
    gw = grouped_sparse(comp.values, comp.indices, n=2, m=4, k=K, spec=spec)
    assert np.all(functional_gemm(spec, X, gw) == K // 2 * 2**14)


def test_functional_tiling_matches_the_mapper():
    """The functional datapath and the mapper agree on the tile counts of a layer."""
    spec = HardwareSpec(rows=4, cols=4)
    mp = map_layer(spec, _layer(3, 37, 17), (2, 4))
    til = tiling(spec, tokens=3, k=37, n_out=17, group=spec.m)
    assert (til.ktiles, til.ntiles) == (mp.ktiles, mp.ntiles) == (3, 5)


def test_grouped_forms_of_other_patterns():
    """2:8 weights on 2:4 PEs use groups of 4; on a dense array any pattern uses groups of n;
    the grouped form always reproduces the weights, and a group with more nonzeros than the
    PE has multipliers is refused."""
    from sparseforge.dataflow.layout import grouped_pruned
    rng = np.random.default_rng(5)
    W = rng.integers(-9, 10, (3, 16))
    c28 = compress(W, 2, 8)
    gw = grouped_sparse(c28.values, c28.indices, n=2, m=8, k=16, spec=HardwareSpec())
    assert gw.group == 4 and np.array_equal(gw.to_dense(), c28.to_dense())
    c24 = compress(W, 2, 4)
    gd = grouped_sparse(c24.values, c24.indices, n=2, m=4, k=16, spec=HardwareSpec(n=4, m=4))
    assert gd.group == 4 and np.array_equal(gd.to_dense(), c24.to_dense())
    with pytest.raises(ValueError, match=r"^a group of 4 reduction indices holds 3 nonzero weights, "
                                         r"more than the PE's 2 multipliers$"):
        grouped_pruned(np.array([[1, 1, 1, 0]]), HardwareSpec(), 4)


@pytest.mark.parametrize("which", ["network", "compare", "training"])
def test_a_layer_the_mapper_refuses_is_refused_before_any_layer_is_simulated(which, monkeypatch):
    """A workload whose LAST layer exceeds ``max_k`` is refused up front: no layer before it
    is simulated first (a huge request must not run for minutes before its refusal)."""
    import sparseforge.sim.simulate as simulate_mod
    import sparseforge.sim.train as train_mod

    spec = load_spec("tiny")
    ok = [GemmLayer(name=f"ok{i}", tokens=8, k=64, n_out=8) for i in range(2)]
    huge = GemmLayer(name="huge", tokens=8, k=spec.max_k + 1, n_out=8)
    net = Network(name="n", layers=(*ok, huge))
    calls = []
    monkeypatch.setattr(simulate_mod, "simulate_layer", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(train_mod, "simulate_layer", lambda *a, **k: calls.append(1))
    with pytest.raises(MappingError, match="huge"):
        if which == "network":
            simulate_network(spec, net, (2, 4))
        elif which == "compare":
            # 1,000 copies of a layer: 1,024,000 array runs sparse (within MAX_RUNS), 1,536,000
            # dense (beyond it): only the dense run is refused, and before the sparse one runs
            many = GemmLayer(name="huge", tokens=64, k=4096, n_out=64, count=1000)
            compare(spec, Network(name="n", layers=(*ok, many)), (2, 4))
        else:
            train_mod.simulate_training(spec, Network(name="n", layers=(*ok, GemmLayer(
                name="huge", tokens=spec.max_k + 1, k=64, n_out=8))), method="bdwp", sparsity=(2, 4))
    assert calls == []
