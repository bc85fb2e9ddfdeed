"""The output-stationary dataflow in the mapper, the layer simulator and the training
simulator: spec values, OS mappings that cover the GEMM and are timed by the RTL-checked
run model, ``switchable`` keeping the faster dataflow per GEMM, and weight-stationary
results left exactly as they were."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sparseforge.dataflow.layout import grouped_pruned, os_memory_image
from sparseforge.dataflow.mapper import map_layer, run_compute_cycles
from sparseforge.models.network import GemmLayer
from sparseforge.models.zoo_train import get_training_network, training_gemms
from sparseforge.sim.simulate import simulate_layer
from sparseforge.sim.train import simulate_training
from sparseforge.sim.units.engine import os_run_cycles
from sparseforge.spec import HardwareSpec, SpecError, load_spec

OS, WS = "output-stationary", "weight-stationary"


def test_spec_dataflow_values():
    """``dataflow`` accepts weight-stationary (the default), output-stationary and
    switchable, and refuses anything else."""
    assert HardwareSpec().dataflow == WS
    for df in (WS, OS, "switchable"):
        assert HardwareSpec(dataflow=df).dataflow == df
    with pytest.raises(SpecError) as info:
        HardwareSpec(dataflow="row-stationary")
    assert str(info.value) == ("dataflow = 'row-stationary' is not allowed: choose one of "
                               "weight-stationary, output-stationary, switchable")


@pytest.mark.parametrize("tokens,k,n_out,sparsity", [(50, 300, 70, (2, 4)), (7, 45, 5, None), (130, 1000, 40, (1, 4))])
def test_os_mapping_covers_the_gemm_and_uses_the_run_model(tokens, k, n_out, sparsity):
    """An OS mapping's runs cover every token, output column and group exactly once per
    (token block, weight block), later k-blocks accumulate, only the last writes back, and
    each run's compute cycles are ``os_run_cycles`` of its tiles."""
    spec = HardwareSpec(rows=4, cols=3, n=2, m=4, max_k=4096, dataflow=OS, input_buffer_kib=1, weight_buffer_kib=1,
                        output_buffer_kib=1)
    lay = GemmLayer(name="g", tokens=tokens, k=k, n_out=n_out)
    mp = map_layer(spec, lay, sparsity)
    assert mp.dataflow == OS
    G = math.ceil(k / mp.group)
    kb = mp.ktiles                                            # k-blocks
    assert int((mp.run_groups * mp.run_tokens * mp.run_out_cols).sum()) == G * tokens * n_out
    assert (mp.run_accumulate == (np.arange(mp.runs) % kb != 0)).all()   # k-blocks innermost
    assert ((mp.writeback_bytes > 0) == (np.arange(mp.runs) % kb == kb - 1)).all()
    assert (kb > 1) == (G > 32)     # 1 KiB buffers: a 512-byte half holds 32 activation words
    assert int(mp.writeback_bytes.sum()) == tokens * n_out * math.ceil(spec.acc_width / 8)
    assert int(mp.fetch_act_bytes.sum()) >= tokens * k
    expect = [os_run_cycles(spec, token_tiles=-(-int(t) // spec.rows), ntiles=int(n), groups=int(g))
              for t, n, g in zip(mp.run_tokens, mp.run_ntiles, mp.run_groups)]
    assert run_compute_cycles(spec, mp).tolist() == expect
    res = simulate_layer(spec, mp)
    assert res.dataflow == OS and res.cycles >= res.compute_cycles == sum(expect)


def test_single_run_os_mapping_matches_the_rtl_layout():
    """A GEMM that fits on chip is one OS run whose tiling is the one :func:`dataflow.layout.os_memory_image`
    gives the RTL (tests/test_rtl_os.py checks those cycles against Icarus)."""
    spec = HardwareSpec(rows=4, cols=4, n=2, m=4, max_k=4096, dataflow=OS)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (10, 50))
    w = rng.integers(-128, 128, (10, 50))
    w[:, 1::2] = 0
    til = os_memory_image(spec, x, grouped_pruned(w, spec, 4)).tiling
    mp = map_layer(spec, GemmLayer(name="g", tokens=10, k=50, n_out=10), (2, 4))
    assert mp.runs == 1 and mp.group == 4
    assert run_compute_cycles(spec, mp).tolist() == [
        os_run_cycles(spec, token_tiles=til.token_tiles, ntiles=til.ntiles, groups=til.groups)]


def test_switchable_keeps_the_faster_and_leaves_ws_unchanged():
    """On sat-vcu1525, ``switchable`` maps each GEMM to whichever dataflow runs it faster
    alone (weight-stationary on ties), and where it keeps weight-stationary the result is
    identical to the weight-stationary spec's."""
    ws = load_spec("sat-vcu1525")
    os_ = ws.replace(dataflow=OS)
    sw = ws.replace(dataflow="switchable")
    net = get_training_network("resnet18", batch=4)
    picked = set()
    for lay in net.layers:
        for g in training_gemms(lay):
            sp = (2, 8) if g.prunable else None
            r_ws = simulate_layer(ws, map_layer(ws, g, sp))
            r_os = simulate_layer(os_, map_layer(os_, g, sp))
            r_sw = simulate_layer(sw, map_layer(sw, g, sp))
            assert r_ws.dataflow == WS and r_os.dataflow == OS
            assert r_sw.cycles == min(r_ws.cycles, r_os.cycles)
            assert r_sw.dataflow == (OS if r_os.cycles < r_ws.cycles else WS)
            if r_sw.dataflow == WS:
                assert dataclasses.asdict(r_sw) == dataclasses.asdict(r_ws)
            picked.add(r_sw.dataflow)
    assert picked == {WS, OS}


def _best_standalone(spec: HardwareSpec, g: GemmLayer) -> int:
    """Fastest standalone cycles of a WG GEMM over both orientations (as sim.train picks)."""
    flipped = GemmLayer(name=g.name, tokens=g.n_out, k=g.k, n_out=g.tokens, kind=g.kind, prunable=False,
                        group=g.group, count=g.count)
    return min(simulate_layer(spec, map_layer(spec, x, None)).cycles for x in (g, flipped))


def test_resnet18_training_switchable_no_slower_and_wg_picks_os():
    """A ResNet-18 BDWP 2:8 training iteration (batch 32) on sat-vcu1525 with
    ``dataflow=switchable`` takes no more cycles than weight-stationary; each WG GEMM runs
    output-stationary exactly where OS (best orientation) beats WS alone, and some do."""
    ws = load_spec("sat-vcu1525")
    sw = load_spec("sat-vcu1525", ["dataflow=switchable"])
    os_ = ws.replace(dataflow=OS)
    net = get_training_network("resnet18", batch=32)
    r_ws = simulate_training(ws, net, method="bdwp", sparsity=(2, 8))
    r_sw = simulate_training(sw, net, method="bdwp", sparsity=(2, 8))
    assert r_sw.cycles <= r_ws.cycles
    assert all(lay.wg.dataflow == WS for lay in r_ws.layers)
    wg_os = 0
    for lay, res in zip(net.layers, r_sw.layers):
        wg = training_gemms(lay)[2]
        os_faster = _best_standalone(os_, wg) < _best_standalone(ws, wg)
        assert (res.wg.dataflow == OS) == os_faster, lay.name
        wg_os += os_faster
    assert wg_os > 0
