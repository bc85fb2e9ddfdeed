"""Which layers are sparse (issue 11): existing N:M patterns found in weights, the per-layer
plan (masks, the default rule, --dense-layers), and a layer's mode, useful MACs and cycles
agreeing in inference, training, sweeps, the CLI and the reports (docs/sparsity.md)."""

from __future__ import annotations

import csv
import dataclasses
import doctest
import json
from pathlib import Path

import numpy as np
import pytest

import sparseforge as sf
from sparseforge.errors import InputError
from sparseforge.cli import main
from sparseforge.dataflow.mapper import map_layer, map_network
from sparseforge.models.network import (REASONS, GemmLayer, LayerSparsity, Network, first_layers, is_depthwise,
                                        sparsity_plan)
from sparseforge.models.nm_detect import detect_nm, fits, group_max_nonzeros
from sparseforge.models.prune import prune
from sparseforge.models.zoo import get_network
from sparseforge.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
ERR = "sparseforge: error: "
DEFAULT = load_spec("default")          # 16x16, 2:4 PEs
SAT = load_spec("sat-vcu1525")          # 32x32, 2:8 PEs


def _lin(name: str, k: int = 64, **kw) -> GemmLayer:
    return GemmLayer(name=name, tokens=32, k=k, n_out=32, **kw)


# ====================================================================== detect_nm
@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (1, 8), (2, 8), (3, 16), (1, 2)])
def test_detect_pruned_synthetic(n, m):
    """Weights pruned n:m by the project's own pruning are detected as exactly n:m."""
    w = np.random.default_rng(n * 100 + m).standard_normal((48, 256))
    assert detect_nm(w) is None                               # dense random weights
    assert detect_nm(prune(w, n, m)) == (n, m)


def test_detect_tie_keeps_smaller_m_and_loose_groups_widen():
    """2:4 weights are also 4:8 and 8:16: the tie goes to 2:4. One extra nonzero in one group
    breaks 2:4; the rule then reports the tightest pattern that still holds (9:16), which 2:4
    PEs are not promised."""
    w = prune(np.random.default_rng(1).standard_normal((16, 64)), 2, 4)
    assert detect_nm(w) == (2, 4) and fits((2, 4), 4, 8) and fits((2, 4), 8, 16)
    assert group_max_nonzeros(w, 8) == 4
    w2 = w.copy()
    zero = np.flatnonzero(w2[3, :4] == 0)[0]
    w2[3, zero] = 1.0                                        # row 3, group 0 now holds 3
    assert detect_nm(w2) == (9, 16)
    assert not fits(detect_nm(w2), 2, 4)


def test_detect_needs_k_divisible_and_int_weights():
    """A size that does not divide K is not tried; integer (int8) weights work; a dense
    matrix, a 1-D array and a bool array are refused or None."""
    w = np.zeros((4, 6), dtype=np.int8)
    w[:, ::2] = 5                                            # one nonzero in every pair
    assert detect_nm(w) == (1, 2)                            # 4 does not divide 6: 1:2 only
    q = prune(np.random.default_rng(2).integers(-127, 128, (8, 32)).astype(np.int8), 1, 4)
    assert detect_nm(q) == (1, 4)
    assert detect_nm(np.ones((3, 5))) is None                # K = 5: no size divides it
    assert detect_nm(np.zeros((4, 16))) is None              # all zeros: placeholder weights, no mask
    with pytest.raises(ValueError, match="2-D"):
        detect_nm(np.ones(8))
    with pytest.raises(ValueError, match="dtype bool"):
        detect_nm(np.ones((2, 4), dtype=bool))


def test_fits_matches_the_pe_group_rule():
    """fits() agrees with the mapper's group-size rule (dataflow.layout.group_size): n:m
    weights fit PEs of n_a:m_a exactly when a group of m_a lanes never needs more than n_a
    multipliers."""
    from sparseforge.dataflow.layout import group_size

    for nm in ((2, 4), (1, 4), (1, 8), (2, 8), (4, 8), (3, 16)):
        for n_a, m_a in ((2, 4), (2, 8), (1, 4), (4, 8)):
            expect = group_size(sf.load_spec("default", n=n_a, m=m_a), nm) == m_a
            assert fits(nm, n_a, m_a) == expect, (nm, n_a, m_a)


def test_detect_on_real_minilm_weights():
    """On the real MiniLM Linear weights: dense as shipped, and every layer pruned 2:4 or 1:8
    by models.prune (magnitude, as the project prunes) is detected as that pattern."""
    from sparseforge.models import minilm

    try:
        weights = minilm.load_weights()
    except FileNotFoundError:
        pytest.skip("MiniLM weights are not installed")
    layers = minilm.linear_layers(weights)
    assert len(layers) == 36
    for name, w, _ in layers[:12]:
        assert detect_nm(w) is None, name
        assert detect_nm(prune(w, 2, 4)) == (2, 4), name
        assert detect_nm(prune(w, 1, 8)) == (1, 8), name


# ====================================================================== GemmLayer.nm
def test_layer_nm_validated():
    """nm is (n, m) with 0 < n < m, integers, only on a layer with a weight."""
    assert _lin("a", nm=(np.int64(2), 4)).nm == (2, 4)
    assert type(_lin("a", nm=[1, 8]).nm) is tuple
    for bad in ((4, 4), (0, 4), (5, 4), (2.0, 4), "2:4", (2,), (True, 4)):
        with pytest.raises(ValueError, match=r"nm = .* is not allowed"):
            _lin("a", nm=bad)
    with pytest.raises(ValueError, match="only a layer with weights"):
        _lin("a", prunable=False, nm=(2, 4))


def test_network_input_layers_validated():
    with pytest.raises(ValueError, match="input_layers names 'nope'"):
        Network(name="n", layers=[_lin("a")], input_layers=("nope",))
    with pytest.raises(ValueError, match="input_layers = 'a'"):
        Network(name="n", layers=[_lin("a")], input_layers="a")


# ====================================================================== the plan
def _reasons(net: Network, sparsity=(2, 4), **kw) -> dict[str, str]:
    return {lay.name: ls.reason for lay, ls in zip(net.layers, sparsity_plan(net, sparsity, **kw))}


def test_plan_resnet50_first_layer_only():
    """ResNet-50 at 2:4: only conv1 stays dense (not the layer after it: off by one), fc too
    is sparse."""
    net = get_network("resnet50")
    plan = sparsity_plan(net, (2, 4))
    assert plan[0] == LayerSparsity(None, "rule:first") and net.layers[0].name == "conv1"
    assert all(ls == LayerSparsity((2, 4), "sparsity") for ls in plan[1:])


def test_plan_mobilenetv2_depthwise_and_stem():
    """MobileNetV2: features.0 (stem) and all 17 depthwise convs dense, everything else sparse."""
    net = get_network("mobilenetv2")
    r = _reasons(net)
    assert r["features.0"] == "rule:first"
    dw = [n for n in r if n.endswith(".depthwise")]
    assert len(dw) == 17 and all(r[n] == "rule:depthwise" for n in dw)
    assert all(v == "sparsity" for n, v in r.items() if n != "features.0" and n not in dw)


def test_plan_depthwise_detected_when_prunable():
    """An imported depthwise conv (ONNX marks it prunable) is found by shape; a grouped conv
    with several channels per group is not depthwise and runs sparse."""
    dw = GemmLayer(name="dw", tokens=64, k=9, n_out=1, kind="conv", count=32)
    grouped = GemmLayer(name="g", tokens=64, k=36, n_out=4, kind="conv", count=32)
    assert is_depthwise(dw) and not is_depthwise(grouped)
    net = Network(name="x", layers=[_lin("stem"), dw, grouped])
    assert _reasons(net) == {"stem": "rule:first", "dw": "rule:depthwise", "g": "sparsity"}


def test_plan_short_k_boundary():
    """K < M stays dense, K == M is sparse; M is the run's group size."""
    net = Network(name="x", layers=[_lin("in"), _lin("k3", k=3), _lin("k4", k=4), _lin("k7", k=7)], input_layers=())
    assert _reasons(net, (2, 4)) == {"in": "sparsity", "k3": "rule:short-k", "k4": "sparsity", "k7": "sparsity"}
    assert _reasons(net, (2, 8)) == {"in": "sparsity", "k3": "rule:short-k", "k4": "rule:short-k",
                                     "k7": "rule:short-k"}


def test_plan_first_layer_declared_or_first_weighted():
    """Without input_layers the first layer with a weight (not an attention product before
    it) is the stem; a network that declares () has none (MiniLM)."""
    att = GemmLayer(name="att", tokens=8, k=8, n_out=8, kind="attention", prunable=False)
    net = Network(name="x", layers=[att, _lin("a"), _lin("b")])
    assert first_layers(net) == ("a",)
    assert _reasons(net) == {"att": "no weights", "a": "rule:first", "b": "sparsity"}
    assert first_layers(dataclasses.replace(net, input_layers=("b",))) == ("b",)
    minilm = get_network("minilm", tokens=16)
    assert minilm.input_layers == () and all(
        v == ("no weights" if "attn.s" in n or "attn.c" in n else "sparsity") for n, v in _reasons(minilm).items())


def test_plan_masks_decide_and_dense_layers_override():
    """A layer's own masks win over the run's pattern and over the default rule; a
    --dense-layers glob wins over the masks; a dense run is dense everywhere."""
    net = Network(name="x", layers=[_lin("a", nm=(1, 8)), _lin("b"), _lin("c", nm=(2, 4)), _lin("d", k=2, nm=(1, 2))])
    plan = sparsity_plan(net, (2, 8))
    assert [(ls.pattern, ls.reason) for ls in plan] == [((1, 8), "mask"), ((2, 8), "sparsity"), ((2, 4), "mask"),
                                                        ((1, 2), "mask")]
    assert _reasons(net, (2, 8), dense_layers="c") == {"a": "mask", "b": "sparsity", "c": "--dense-layers", "d": "mask"}
    assert set(_reasons(net, None).values()) == {"dense run"}
    assert set(_reasons(net, (4, 4)).values()) == {"dense run"}


def test_dense_layers_globs():
    """Comma-separated and repeated globs; a glob that matches nothing names itself and some
    layers; a non-string is refused."""
    net = get_network("resnet50")
    r = _reasons(net, dense_layers="conv1,*.downsample*")
    dense = sorted(n for n, v in r.items() if v == "--dense-layers")
    assert dense == ["conv1", "layer1.0.downsample.0", "layer2.0.downsample.0", "layer3.0.downsample.0",
                     "layer4.0.downsample.0"]
    assert _reasons(net, dense_layers=["conv1", " *.downsample* "]) == r
    with pytest.raises(ValueError, match=r"pattern 'layer9\*' matches no layer of network 'resnet50' "
                                         r"\(layers are e.g. conv1, layer1.0.conv1"):
        sparsity_plan(net, (2, 4), dense_layers="conv1,layer9*")
    with pytest.raises(ValueError, match="item 3 is not allowed"):
        sparsity_plan(net, (2, 4), dense_layers=["conv1", 3])


def test_reasons_documented():
    """Every reason the plan gives is documented in REASONS and in docs/sparsity.md."""
    page = (ROOT / "docs" / "sparsity.md").read_text()
    for key in REASONS:
        assert f"`{key}`" in page


# ====================================================================== mode, useful MACs and cycles agree
def _check_agree(res, spec) -> None:
    for s, d in zip(res.sparse.layers, res.dense.layers):
        assert s.name == d.name
        macs = s.count * s.tokens * s.k * s.n_out
        assert (s.mode == "sparse") == (s.pattern != "dense"), s.name
        assert s.reason.split(" (")[0] in REASONS, s.reason
        if s.mode == "sparse":
            n, m = map(int, s.pattern.split(":"))
            assert s.useful_macs * m == macs * n, s.name
            assert s.compute_cycles <= d.compute_cycles and s.issued_macs <= d.issued_macs, s.name
        else:
            assert s.useful_macs == d.useful_macs == macs, s.name
            assert (s.cycles, s.compute_cycles, s.issued_macs, s.mode) == (d.cycles, d.compute_cycles,
                                                                          d.issued_macs, d.mode), s.name


@pytest.mark.parametrize("net", ["resnet50", "mobilenetv2"])
def test_mode_macs_cycles_agree_at_2_4(net):
    """Every layer of ResNet-50 and MobileNetV2 at 2:4: a sparse layer has n/m useful MACs and
    no more cycles than dense; a dense or packed layer is the dense run's layer exactly. The
    stem and depthwise convs are dense with all MACs useful (the issue's contradiction)."""
    res = sf.simulate(DEFAULT, net=net, sparsity="2:4")
    _check_agree(res, DEFAULT)
    by = {lay.name: lay for lay in res.sparse.layers}
    stem = by["conv1" if net == "resnet50" else "features.0"]
    assert (stem.mode, stem.pattern, stem.reason) == ("dense", "dense", "rule:first")
    if net == "mobilenetv2":
        dws = [lay for lay in res.sparse.layers if lay.name.endswith("depthwise")]
        assert dws and all((x.mode, x.reason) == ("packed", "rule:depthwise") for x in dws)
    assert sum(lay.mode == "sparse" for lay in res.sparse.layers) >= len(res.sparse.layers) - 18


def test_pattern_the_pes_cannot_skip_runs_dense():
    """4:8 weights on 2:4 PEs: no window of the PE's lanes is guaranteed to hold <= 2
    nonzeros, so every layer runs dense, as the dense layer, and says why."""
    net = get_network("resnet50")
    sp = sf.simulate(DEFAULT, net=net, sparsity="4:8")
    _check_agree(sp, DEFAULT)
    assert {lay.mode for lay in sp.sparse.layers} == {"dense"}
    assert sp.sparse.layers[1].reason == "sparsity (4:8 unsupported by the 2:4 PEs: runs dense)"
    assert sp.sparse.cycles == sp.dense.cycles


def test_masks_run_their_own_pattern():
    """A 2:4-masked layer runs 2:4 on 2:8 PEs (4 indices per PE), a 1:8 one uses all 8 lanes,
    whatever --sparsity says; a 4:8 mask on 2:4 PEs runs dense with the reason."""
    net = Network(name="masked", layers=[_lin("in"), _lin("a", k=256, nm=(2, 4)), _lin("b", k=256, nm=(1, 8)),
                                         _lin("c", k=256)])
    maps = {mp.layer.name: mp for mp in map_network(SAT, net, (2, 8))}
    assert (maps["a"].sparsity, maps["a"].group, maps["a"].reason) == ((2, 4), 4, "mask")
    assert (maps["b"].sparsity, maps["b"].group, maps["b"].reason) == ((1, 8), 8, "mask")
    assert (maps["c"].sparsity, maps["c"].group, maps["c"].reason) == ((2, 8), 8, "sparsity")
    assert maps["in"].mode == "dense" and maps["in"].reason == "rule:first"
    assert maps["a"].useful_macs * 2 == maps["a"].layer.macs and maps["b"].useful_macs * 8 == maps["b"].layer.macs
    res = sf.simulate(SAT, net, sparsity="1:8")
    assert [(x.pattern, x.reason) for x in res.sparse.layers] == [
        ("dense", "rule:first"), ("2:4", "mask"), ("1:8", "mask"), ("1:8", "sparsity")]
    _check_agree(res, SAT)
    on24 = sf.simulate(DEFAULT, Network(name="m48", layers=[_lin("in"), _lin("a", k=256, nm=(4, 8))]))
    a = on24.sparse.layers[1]
    assert (a.mode, a.pattern, a.reason) == ("dense", "dense", "mask (4:8 unsupported by the 2:4 PEs: runs dense)")


def test_real_pruned_minilm_masks_end_to_end():
    """Real MiniLM weights pruned 2:4 (models.prune), detected layer by layer, set as nm: on
    2:8 PEs (whose own pattern is the default --sparsity) every Linear runs its 2:4 masks."""
    from sparseforge.models import minilm

    try:
        weights = minilm.load_weights()
    except FileNotFoundError:
        pytest.skip("MiniLM weights are not installed")
    nm = {name: detect_nm(prune(w, 2, 4)) for name, w, _ in minilm.linear_layers(weights)}
    base = get_network("minilm", tokens=16)
    net = dataclasses.replace(base, layers=tuple(dataclasses.replace(lay, nm=nm[lay.name]) if lay.prunable else lay
                                                 for lay in base.layers))
    res = sf.simulate(SAT, net)
    assert res.sparsity == "2:8"
    for lay in res.sparse.layers:
        assert (lay.pattern, lay.reason) == (("2:4", "mask") if lay.kind == "linear" else ("dense", "no weights"))
    _check_agree(res, SAT)
    res24 = sf.simulate(SAT, base, sparsity="2:4")
    assert res.sparse.cycles == res24.sparse.cycles               # masks == running the same pattern


def test_dense_layers_api_inference_and_training():
    """dense_layers keeps the named layers dense in simulate and simulate_training (no SORE
    masks); the default rule alone keeps the stem and depthwise convs without masks."""
    res = sf.simulate(DEFAULT, net="resnet50", dense_layers="conv1,*.downsample*", dense=False)
    by = {lay.name: lay for lay in res.sparse.layers}
    assert by["layer2.0.downsample.0"].reason == "--dense-layers" and by["layer2.0.downsample.0"].mode == "dense"
    assert by["layer2.0.conv1"].mode == "sparse"
    with pytest.raises(InputError, match=r"^dense_layers pattern 'nope' matches no layer"):
        sf.simulate(DEFAULT, net="resnet50", dense_layers="nope")
    tr = sf.simulate_training(SAT, net="mobilenetv2", batch=2, sparsity="2:8", ablations=False, dense=False,
                              dense_layers="features.1.project")
    lays = {lay.name: lay for lay in tr.result.layers}
    assert (lays["features.0"].ff.reason, lays["features.0"].mask_cycles) == ("rule:first", 0)
    assert (lays["features.1.depthwise"].ff.mode, lays["features.1.depthwise"].mask_cycles) == ("packed", 0)
    proj = lays["features.1.project"]
    assert (proj.ff.mode, proj.ff.reason, proj.mask_cycles) == ("dense", "--dense-layers", 0)
    assert lays["features.2.expand"].ff.mode == "sparse" and lays["features.2.expand"].mask_cycles > 0
    row = {r["name"]: r for r in tr.to_dict()["layers"]}["features.1.project"]
    assert (row["ff_pattern"], row["ff_reason"]) == ("dense", "--dense-layers")
    with pytest.raises(InputError, match="dense_layers pattern 'zz'"):
        sf.simulate_training(SAT, net="mobilenetv2", batch=2, method="dense", dense_layers="zz")


def test_sweep_inference_uses_the_plan():
    """The sweep's shape-deduplicating inference simulation equals simulate_network field for
    field, the stem dense by the rule."""
    from sparseforge.sim.simulate import simulate_network
    from sparseforge.sweep.workloads import simulate_inference

    net = get_network("mobilenetv2")
    a = simulate_inference(DEFAULT, net, (2, 4))
    b = simulate_network(DEFAULT, net, (2, 4))
    assert [x.to_dict() for x in a.layers] == [x.to_dict() for x in b.layers]
    assert a.layers[0].reason == "rule:first"


# ====================================================================== CLI and reports
def test_cli_dense_layers_json_csv_text(capsys, tmp_path):
    """--dense-layers on the command line reaches every report: JSON, CSV and the text table."""
    assert main(["simulate", "--net", "resnet50", "--sparsity", "2:4", "--dense-layers", "conv1,*.downsample*",
                 "--dense-layers", "fc", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in data["layers"]}
    assert rows["conv1"]["reason"] == rows["fc"]["reason"] == "--dense-layers"
    assert (rows["layer3.0.downsample.0"]["mode"], rows["layer3.0.downsample.0"]["pattern"]) == ("dense", "dense")
    assert (rows["layer3.0.conv2"]["pattern"], rows["layer3.0.conv2"]["reason"]) == ("2:4", "sparsity")
    out = tmp_path / "r.csv"
    assert main(["simulate", "--net", "mobilenetv2", "--sparsity", "2:4", "-o", str(out)]) == 0
    capsys.readouterr()
    with out.open() as f:
        got = {r["name"]: (r["pattern"], r["reason"]) for r in csv.DictReader(f)}
    assert got["features.0"] == ("dense", "rule:first") and got["features.3.depthwise"] == ("dense", "rule:depthwise")
    assert main(["simulate", "--net", "resnet50", "--sparsity", "2:4", "--no-dense"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].rstrip().endswith("N:M   why")
    assert lines[5].startswith("conv1") and lines[5].rstrip().endswith("dense rule:first")


@pytest.mark.parametrize("argv, msg", [
    (["simulate", "--net", "resnet50", "--dense-layers", "conv1,layer9*"],
     "--dense-layers pattern 'layer9*' matches no layer of network 'resnet50' (layers are e.g. conv1, "),
    (["simulate", "--train", "--net", "mobilenetv2", "--hw", "sat-vcu1525", "--batch", "2", "--dense-layers", "x"],
     "--dense-layers pattern 'x' matches no layer of network 'mobilenetv2'"),
    (["simulate", "--net", "m3vit-small", "--dense-layers", "x"], "--dense-layers is not allowed with --net m3vit-small"),
    (["simulate", "--functional", "--dense-layers", "layer0.*"], "--dense-layers is not allowed with functional"),
])
def test_cli_dense_layers_bad_input(capsys, tmp_path, argv, msg):
    """A bad --dense-layers is one line naming the pattern and what exists; exit 2; no output file."""
    out = tmp_path / "r.json"
    assert main(argv + ["-o", str(out)]) == 2
    o, err = capsys.readouterr()
    assert o == "" and err.count("\n") == 1 and err.startswith(ERR + msg), err
    assert not out.exists()


def test_docs_sparsity_examples():
    """The >>> example of docs/sparsity.md runs as written."""
    res = doctest.testfile(str(ROOT / "docs" / "sparsity.md"), module_relative=False)
    assert res.attempted >= 4 and res.failed == 0
