"""The training-iteration simulator (sim/train.py) and `sparseforge simulate --train`."""

from __future__ import annotations

import pytest

from sparseforge.models.network import GemmLayer, Network
from sparseforge.models.zoo_train import get_training_network
from sparseforge.dataflow.mapper import map_layer
from sparseforge.sim.simulate import simulate_layer
from sparseforge.sim.train import ideal_speedup, simulate_training
from sparseforge.cli import main
from sparseforge.spec import load_spec

SAT = load_spec("sat-vcu1525")


def _net(*layers: GemmLayer) -> Network:
    return Network(name="toy", layers=tuple(layers))


TOY = _net(GemmLayer(name="l0", tokens=256, k=64, n_out=128),
           GemmLayer(name="l1", tokens=256, k=128, n_out=128),
           GemmLayer(name="l2", tokens=256, k=128, n_out=64))


@pytest.fixture(scope="module")
def resnet18():
    return get_training_network("resnet18", batch=8)


def test_ideal_speedups_match_the_paper():
    """1 / (1/3 + 2/3 N/M): 1.5x for 2:4, 2x for 2:8 and 1:4 (BDWP); SR-STE prunes FF only."""
    assert ideal_speedup("bdwp", (2, 4)) == pytest.approx(1.5)
    assert ideal_speedup("bdwp", (2, 8)) == pytest.approx(2.0)
    assert ideal_speedup("bdwp", (1, 4)) == pytest.approx(2.0)
    assert ideal_speedup("srste", (2, 8)) == pytest.approx(1 / (2 / 3 + 1 / 12))
    assert ideal_speedup("dense", None) == 1.0


def test_bdwp_beats_srste_beats_dense(resnet18):
    """On ResNet-18, 2:8 BDWP (sparse FF and BP) is faster than SR-STE (sparse FF only), which is
    faster than dense; each stays below the ideal speedup times a small margin for memory effects."""
    dense = simulate_training(SAT, resnet18, method="dense", sparsity=None)
    srste = simulate_training(SAT, resnet18, method="srste", sparsity=(2, 8))
    bdwp = simulate_training(SAT, resnet18, method="bdwp", sparsity=(2, 8))
    assert dense.cycles > srste.cycles > bdwp.cycles
    assert dense.cycles / bdwp.cycles < ideal_speedup("bdwp", (2, 8)) * 1.05


def test_gemm_modes_per_method(resnet18):
    """Dense: every GEMM dense; SR-STE: FF sparse, BP dense; BDWP: FF and BP sparse; WG always
    dense; the first layer has no BP."""
    for method, ff, bp in (("dense", "dense", "dense"), ("srste", "sparse", "dense"), ("bdwp", "sparse", "sparse")):
        res = simulate_training(SAT, resnet18, method=method, sparsity=None if method == "dense" else (2, 8))
        assert res.layers[0].bp is None
        for lay in res.layers[1:]:
            if lay.kind == "attention":
                continue
            assert lay.ff.mode == ff and lay.bp.mode == bp and lay.wg.mode == "dense", (method, lay.name)


def test_masks_only_where_the_method_needs_them(resnet18):
    """No SORE work in dense training; one mask per layer for SR-STE; two (FF and BP, except the
    first layer's BP) for BDWP, each taking the SORE's cycle model or its DRAM time."""
    from sparseforge.sim.units.sore import sore_cycles
    dense = simulate_training(SAT, resnet18, method="dense", sparsity=None)
    srste = simulate_training(SAT, resnet18, method="srste", sparsity=(2, 8))
    bdwp = simulate_training(SAT, resnet18, method="bdwp", sparsity=(2, 8))
    assert dense.sore_busy == 0 and all(lay.mask_cycles == 0 for lay in dense.layers)
    fc = resnet18.layers[-1]
    groups = -(-fc.k // 8) * fc.n_out
    assert srste.layers[-1].mask_cycles >= sore_cycles(groups=groups, lanes=SAT.train.sore_lanes, m=8)
    assert bdwp.layers[-1].mask_cycles > srste.layers[-1].mask_cycles
    assert bdwp.layers[0].mask_cycles == srste.layers[0].mask_cycles      # no BP mask for layer 0


def test_pregeneration_hides_mask_generation():
    """With pre-generation the SORE works ahead and the array waits for masks at most for the
    first one; without it every mask is made while the array waits (DRAM prefetch for the next
    GEMM still proceeds meanwhile, so part of the wait overlaps), and the iteration is longer."""
    on = simulate_training(SAT, TOY, method="bdwp", sparsity=(2, 8))
    off = simulate_training(SAT, TOY, method="bdwp", sparsity=(2, 8), pregenerate=False)
    first = on.layers[0].mask_cycles
    assert sum(lay.mask_wait_cycles for lay in on.layers) <= first
    assert sum(lay.mask_wait_cycles for lay in off.layers) == off.sore_busy
    assert off.cycles > on.cycles


def test_interleave_overlaps_gemm_boundaries():
    """Sharing one DRAM timeline across GEMMs is never slower than restarting each GEMM with
    empty buffers, and is faster when transfers are slow."""
    slow = SAT.replace(dram_bandwidth_gbps=2.0)
    on = simulate_training(slow, TOY, method="bdwp", sparsity=(2, 8))
    off = simulate_training(slow, TOY, method="bdwp", sparsity=(2, 8), interleave=False)
    assert on.cycles < off.cycles


def test_wg_takes_the_faster_orientation():
    """WG may stream either operand: the simulator keeps whichever of dW = dY^T X and
    dW^T = X^T dY runs faster, so WG is never slower than the plain orientation."""
    res = simulate_training(SAT, TOY, method="dense", sparsity=None)
    for lay, src in zip(res.layers, TOY.layers):
        plain = simulate_layer(SAT, map_layer(SAT, GemmLayer(name=src.name, tokens=src.n_out, k=src.tokens,
                                                               n_out=src.k, prunable=False), None))
        assert lay.wg.compute_cycles <= plain.compute_cycles


def test_bad_training_inputs():
    """A reduction shorter than M, an unknown method, and a sparse method without a pattern
    are clear errors."""
    short = _net(GemmLayer(name="tiny", tokens=8, k=4, n_out=8))
    with pytest.raises(ValueError, match=r"^layer tiny: reduction K = 4 is shorter than the group size M = 8"):
        simulate_training(SAT, short, method="bdwp", sparsity=(2, 8))
    with pytest.raises(ValueError, match=r"^method 'fast' is not allowed"):
        simulate_training(SAT, TOY, method="fast", sparsity=(2, 8))
    with pytest.raises(ValueError, match=r"needs an N:M sparsity"):
        simulate_training(SAT, TOY, method="bdwp", sparsity=None)


def test_cli_train(capsys):
    """`simulate --train` prints per-layer FF/BP/WG cycles and the speedup over dense training;
    --json carries the same numbers; user mistakes exit 2 with one line."""
    assert main(["simulate", "--train", "--net", "resnet18", "--batch", "4", "--hw", "sat-vcu1525",
                 "--sparsity", "2:8", "--method", "bdwp"]) == 0
    out = capsys.readouterr().out
    assert "speedup" in out and "(ideal for bdwp 2.000x)" in out and "layer4.1.conv2" in out
    assert main(["simulate", "--train", "--net", "resnet18", "--batch", "4", "--hw", "sat-vcu1525",
                 "--sparsity", "2:8", "--json"]) == 0
    import json
    data = json.loads(capsys.readouterr().out)
    assert data["method"] == "bdwp" and data["speedup_over_dense"] > 1 and data["digest"] == SAT.digest
    assert main(["simulate", "--train", "--net", "nosuch"]) == 2
    assert capsys.readouterr().err.strip().startswith("sparseforge: error: training network 'nosuch' is not known")
    assert main(["simulate", "--train", "--sparsity", "dense", "--method", "srste"]) == 2
    assert "needs an N:M --sparsity" in capsys.readouterr().err


def test_cli_onnx_network(tmp_path, capsys):
    """--onnx simulates the GEMMs of a user's ONNX file: the real-shape light ResNet-50 from the
    onnx wheel gives the same cycles as the built-in ResNet-50; an unsupported operator is one
    clear line (exit 2) naming the operator and the node."""
    onnx = pytest.importorskip("onnx")
    import os
    from onnx import TensorProto, helper
    light = os.path.join(os.path.dirname(onnx.__file__), "backend/test/data/light/light_resnet50.onnx")
    assert main(["simulate", "--onnx", light, "--no-dense", "--json"]) == 0
    import json
    via_onnx = json.loads(capsys.readouterr().out)["totals"]["cycles"]
    assert main(["simulate", "--net", "resnet50", "--no-dense", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["cycles"] == via_onnx
    assert main(["simulate", "--train", "--onnx", light, "--hw", "sat-vcu1525", "--sparsity", "2:8",
                 "--no-dense"]) == 0
    assert "without pre-generation" in capsys.readouterr().out
    node = helper.make_node("NonMaxSuppression", ["x"], ["y"], name="nms0")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 3])])
    bad = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph), str(bad))
    assert main(["simulate", "--onnx", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sparseforge: error: --onnx {bad}: ")
    assert "NonMaxSuppression" in err[0]
    assert main(["simulate", "--onnx", light, "--input-shape", "x=0,3"]) == 2
    assert "--input-shape 'x=0,3' is not allowed" in capsys.readouterr().err
