"""Tests of the training-shape network zoo (models.zoo_train): MAC and weight counts
against published figures, batch scaling, the FF/BP/WG GEMM convention, step networks."""

from __future__ import annotations

import pytest

from sparseforge.models.network import GemmLayer
from sparseforge.models.zoo import minilm_network, resnet50_network
from sparseforge.models.zoo_train import (INPUT_LAYERS, TRAINING_NETWORKS, get_training_network, training_gemms,
                              training_step_network)

# Exact MACs at batch 1 (biases excluded) and the published figure each must round to.
MACS = {
    "resnet18": (1_814_073_344, 1.82e9),     # torchvision / ptflops "1.82 GMac"
    "resnet50": (4_089_184_256, 4.09e9),     # "4.09 GMac" (v1.5)
    "vgg16": (15_470_264_320, 15.5e9),       # "15.47 GMac"
    "mobilenetv2": (300_774_272, 0.30e9),    # "300 M multiply-adds" (paper, torchvision)
    "vit_s16": (4_598_882_304, 4.6e9),       # timm vit_small_patch16_224 "4.6 GMACs"
    "bert_base": (11_173_625_856, 11.2e9),   # seq 128 encoder: linear + attention products
}

# Weight parameters of the GEMM layers = published totals minus biases and norm parameters.
WEIGHTS = {
    "resnet18": 11_689_512 - 1_000 - 2 * 4_800,           # torchvision total - fc bias - BN
    "resnet50": 25_557_032 - 1_000 - 2 * 26_560,
    "vgg16": 138_357_544 - (4_224 + 4_096 + 4_096 + 1_000),  # total - conv and fc biases
    "mobilenetv2": 3_504_872 - 1_000 - 2 * 17_056,
    "vit_s16": 22_050_664 - 138_088,   # timm total - biases, LayerNorms, cls token, pos. embedding
}


def _weights(net) -> int:
    return sum(layer.n_out * layer.k * layer.count for layer in net if layer.kind != "attention")


@pytest.mark.parametrize("name", sorted(MACS))
def test_macs_match_published_figures(name):
    """Each network's batch-1 MACs equal our exact count and round to the published value."""
    exact, published = MACS[name]
    macs = get_training_network(name).macs()
    assert macs == exact
    assert abs(macs - published) / published < 0.01


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_weight_counts_match_published_parameter_totals(name):
    """Summed GEMM weight sizes reproduce the published parameter counts (minus biases and
    normalisation parameters), which pins every layer's k * n_out * count."""
    assert _weights(get_training_network(name)) == WEIGHTS[name]


def test_bert_and_minilm_structure():
    """BERT-base: 72 linear layers holding 84.9 M weights, 24 attention products of 12 heads;
    MiniLM at batch 1 is exactly models.zoo.minilm_network."""
    bert = get_training_network("bert_base")
    assert _weights(bert) == 12 * (4 * 768 * 768 + 2 * 768 * 3072)
    att = [layer for layer in bert if layer.kind == "attention"]
    assert len(att) == 24 and all(layer.count == 12 and not layer.prunable for layer in att)
    assert sum(layer.macs for layer in att) == 12 * 2 * 12 * 128 * 128 * 64
    ours, zoo = get_training_network("minilm", seq=64), minilm_network(tokens=64)
    assert ours.layers == zoo.layers


@pytest.mark.parametrize("name", sorted(TRAINING_NETWORKS))
def test_batch_scales_every_gemm(name):
    """batch multiplies tokens of weight GEMMs and count of per-sequence attention products,
    so MACs scale exactly; layer names and K / N do not change."""
    one, four = get_training_network(name, batch=1), get_training_network(name, batch=4)
    assert four.macs() == 4 * one.macs()
    for a, b in zip(one, four, strict=True):
        assert (a.name, a.k, a.n_out) == (b.name, b.k, b.n_out)
        if a.kind == "attention":
            assert (b.tokens, b.count) == (a.tokens, 4 * a.count)
        else:
            assert (b.tokens, b.count) == (4 * a.tokens, a.count)


def test_shapes_of_known_layers():
    """Spot checks: ResNet-50 equals models.zoo's; im2col shapes of stems; depthwise convs
    are count = C GEMMs with k = 9 and one output, not prunable; ViT has 197 tokens."""
    assert get_training_network("resnet50", batch=2).layers == resnet50_network(batch=2).layers
    r18 = get_training_network("resnet18", batch=8)
    conv1 = r18.layer("conv1")
    assert (conv1.tokens, conv1.k, conv1.n_out) == (8 * 112 * 112, 147, 64)
    assert r18.layer("layer2.0.downsample.0").k == 64 and "layer1.0.downsample.0" not in {l.name for l in r18}
    assert len(r18) == 21
    vgg = get_training_network("vgg16")
    assert len(vgg) == 16 and vgg.layer("classifier.0").k == 25088
    mb = get_training_network("mobilenetv2")
    dw = mb.layer("features.2.depthwise")
    assert (dw.tokens, dw.k, dw.n_out, dw.count, dw.prunable) == (56 * 56, 9, 1, 96, False)
    assert sum(1 for l in mb if l.count > 1) == 17
    vit = get_training_network("vit_s16")
    qkv, scores = vit.layer("blocks.0.attn.qkv"), vit.layer("blocks.0.attn.scores")
    assert (qkv.tokens, qkv.k, qkv.n_out) == (197, 384, 1152)
    assert (scores.tokens, scores.k, scores.n_out, scores.count) == (197, 64, 197, 6)
    assert vit.layer("patch_embed").tokens == 196 and vit.layer("head").tokens == 1


def test_training_gemms_convention():
    """FF (T, K, N), BP (T, N, K), WG (N, T, K): each the MACs of FF; FF/BP keep the layer's
    prunability, WG is dense; kind, group and count carry over."""
    layer = GemmLayer(name="l", tokens=6, k=10, n_out=4, kind="conv", group="g", count=3)
    ff, bp, wg = training_gemms(layer)
    assert [(g.name, g.tokens, g.k, g.n_out) for g in (ff, bp, wg)] == [
        ("l.ff", 6, 10, 4), ("l.bp", 6, 4, 10), ("l.wg", 4, 6, 10)]
    assert ff.macs == bp.macs == wg.macs == layer.macs
    assert (ff.prunable, bp.prunable, wg.prunable) == (True, True, False)
    assert all((g.kind, g.group, g.count) == ("conv", "g", 3) for g in (ff, bp, wg))
    assert bp.weight_shape == (10, 4) and wg.weight_shape == (10, 6)  # W^T[K, N] and X^T[K, T]
    with pytest.raises(ValueError, match="GemmLayer"):
        training_gemms("conv1")


def test_training_step_network_order_and_input_bp():
    """A step lists all FF in order, then BP/WG in reverse; the input layer has no BP, so a
    step costs 3x FF minus that one BP; BERT (embeddings are trained) keeps every BP."""
    net = get_training_network("resnet18", batch=2)
    step = training_step_network(net)
    names = [g.name for g in step]
    assert names[:len(net)] == [f"{l.name}.ff" for l in net]
    assert names[len(net):len(net) + 2] == ["fc.bp", "fc.wg"]
    assert names[-1] == "conv1.wg" and "conv1.bp" not in names
    assert step.macs() == 3 * net.macs() - net.layer("conv1").macs
    assert step.name == "resnet18.train"
    bert = get_training_network("bert_base")
    assert training_step_network(bert).macs() == 3 * bert.macs()
    assert len(training_step_network(net, skip_bp=())) == 3 * len(net)
    with pytest.raises(ValueError, match="nope"):
        training_step_network(net, skip_bp=("nope",))
    assert set(INPUT_LAYERS) == set(TRAINING_NETWORKS)


def test_unknown_name_and_bad_sizes():
    """Unknown names list the known networks; bad batch / seq values are rejected."""
    with pytest.raises(ValueError, match="bert_base, minilm, mobilenetv2, resnet18, resnet50, vgg16, vit_m3vit, vit_s16"):
        get_training_network("alexnet")
    with pytest.raises(ValueError, match="batch"):
        get_training_network("resnet18", batch=0)
    with pytest.raises(ValueError, match="seq"):
        get_training_network("bert_base", seq=1024)
    with pytest.raises(TypeError):
        get_training_network("vit_s16", seq=128)


def test_one_zoo_for_inference_and_training(capsys):
    """Every training network also simulates for inference (one zoo, the same GEMMs): its
    inference network is the training network's forward pass at batch 1 (BERT-base's tokens
    are its sequence length), and `simulate --net NAME` runs it from the CLI."""
    import json

    from sparseforge.cli.main import main
    from sparseforge.models.zoo import NETWORKS, get_network

    assert sorted(NETWORKS) == sorted(TRAINING_NETWORKS)
    for name in NETWORKS:
        if name == "minilm":
            got, want = get_network(name, tokens=64), get_training_network(name, seq=64)
        elif name == "bert_base":
            got, want = get_network(name, tokens=64), get_training_network(name, seq=64)
        else:
            got, want = get_network(name, batch=2), get_training_network(name, batch=2)
        assert [(x.name, x.tokens, x.k, x.n_out, x.prunable) for x in got.layers] == \
               [(x.name, x.tokens, x.k, x.n_out, x.prunable) for x in want.layers], name
    assert main(["simulate", "--net", "vgg16", "--batch", "2", "--set", "max_k=32768", "--sparsity", "dense",
                 "--no-dense", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["totals"]["useful_macs"] == get_network("vgg16", batch=2).macs()
    assert main(["simulate", "--net", "bert_base", "--tokens", "32", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["layers"]) == len(get_network("bert_base", tokens=32).layers)


def test_dense_vit_at_m3vit_shape_is_the_moe_baseline():
    """vit_m3vit is M3ViT's dense ViT-small backbone (12 heads of 32, 1025 tokens, MLP 1536):
    the same GEMM shapes and MACs as the MoE simulator's dense baseline
    (models.moe.dense_vit_network), for inference and training, and it simulates from the CLI."""
    from sparseforge.api import simulate, simulate_training
    from sparseforge.models import moe
    from sparseforge.models.zoo import get_network

    vit = get_network("vit_m3vit")
    base = moe.dense_vit_network(moe.get_config("m3vit-small"))
    assert vit.macs() == base.macs()
    shapes = sorted((l.tokens, l.k, l.n_out, l.count) for l in vit)
    assert shapes == sorted((l.tokens, l.k, l.n_out, l.count) for l in base)
    qkv, scores = vit.layer("blocks.0.attn.qkv"), vit.layer("blocks.0.attn.scores")
    assert (qkv.tokens, qkv.k, qkv.n_out) == (1025, 384, 1152)
    assert (scores.tokens, scores.k, scores.n_out, scores.count) == (1025, 32, 1025, 12)
    assert vit.input_layers == ("patch_embed",) and vit.layer("patch_embed").tokens == 1024
    assert get_training_network("vit_m3vit", batch=2).macs() == 2 * vit.macs()
    res = simulate("default", "vit_m3vit", sparsity="2:4")
    assert res.sparse.totals()["useful_macs"] < vit.macs() == res.dense.totals()["useful_macs"]   # linears 2:4
    tr = simulate_training("default", "vit_m3vit", batch=2, sparsity="2:4", ablations=False)
    assert tr.speedup > 1.0


def test_every_zoo_network_is_a_sweep_workload():
    """Sweeps build every network of the zoo, sized by tokens (MiniLM, BERT-base) or batch."""
    from sparseforge.models.zoo import NETWORKS, get_network
    from sparseforge.sweep import workloads

    for name in NETWORKS:
        nw, _ = workloads._network(name, None, None, 32, 2, None)
        size = {"tokens": 32} if name in workloads.TOKEN_NETWORKS else {"batch": 2}
        assert nw.layers == get_network(name, **size).layers, name
