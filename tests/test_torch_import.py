"""The ONNX importer's constant folding on real PyTorch exports, and the PyTorch front end
(models.torch_import, api.load_network / simulate with an nn.Module, ``simulate --torch``).

The CNNs are built here and exported with torch's own exporter, as a user would: "same"
padding with ``nn.ZeroPad2d``, ``F.pad`` and timm's ``Conv2dSame`` (TensorFlow SAME padding
computed from the input size, which exports as Shape/Gather/Div/Sub/Concat chains)."""

from __future__ import annotations

import collections
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.nn.utils import prune as torch_prune  # noqa: E402

from sparseforge import api  # noqa: E402
from sparseforge.cli import main  # noqa: E402
from sparseforge.models import onnx_import  # noqa: E402
from sparseforge.models.onnx_import import import_onnx  # noqa: E402
from sparseforge.models.torch_import import TorchError, import_torch, load_module  # noqa: E402


# the example's CNN (examples/torch_cnn.py, also what docs/import.md runs): timm's Conv2dSame stem,
# ZeroPad2d + depthwise, pointwise, F.pad + 3x3, SAME downsampling, global pool, classifier
from examples.torch_cnn import SameCNN  # noqa: E402


def same_cnn_layers(batch: int, hw: int) -> list[tuple[str, int, int, int, int]]:
    """(name, tokens, k, n_out, count) of SameCNN on ``batch`` images of hw x hw, from the
    architecture: SAME with stride 2 gives ceil(hw / 2) outputs, the padded 3x3 convs keep size."""
    h1 = -(-hw // 2)
    h2 = -(-h1 // 2)
    t1, t2 = batch * h1 * h1, batch * h2 * h2
    return [("/stem/Conv", t1, 3 * 9, 16, 1), ("/dw/Conv", t1, 9, 1, 16), ("/pw/Conv", t1, 16, 32, 1),
            ("/mid/Conv", t1, 32 * 9, 32, 1), ("/down/Conv", t2, 32 * 9, 32, 1), ("/fc/Gemm", batch, 32, 10, 1)]


def _export(module, path, shape, dynamic_batch=True, dynamic_hw=False):
    axes = {**({0: "n"} if dynamic_batch else {}), **({2: "h", 3: "w"} if dynamic_hw else {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(*shape),), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": axes} if axes else None)
    return path


@pytest.fixture(scope="module")
def same_onnx(tmp_path_factory):
    torch.manual_seed(0)
    return _export(SameCNN(), tmp_path_factory.mktemp("cnn") / "same_cnn.onnx", (1, 3, 32, 32))


def test_export_really_has_pad_chains(same_onnx):
    """The file is what the issue describes: Pads whose amounts come from Shape/Gather and
    ConstantOfShape/Concat/Slice/Reshape chains, not stored constants."""
    import onnx

    ops = collections.Counter(n.op_type for n in onnx.load(same_onnx).graph.node)
    assert ops["Pad"] == 4 and ops["Shape"] >= 2 and ops["ConstantOfShape"] >= 1 and ops["Slice"] >= 1


@pytest.mark.parametrize("batch,hw", [(1, 32), (3, 32)])
def test_same_padding_cnn_imports_exactly(same_onnx, batch, hw):
    """Constant folding computes every Pad amount: exact layers and MACs, at any batch."""
    net = import_onnx(same_onnx, input_shapes={"x": (batch, 3, hw, hw)})
    got = [(l.name, l.tokens, l.k, l.n_out, l.count) for l in net]
    want = same_cnn_layers(batch, hw)
    assert got == want
    assert net.macs() == sum(t * k * n * c for _, t, k, n, c in want)
    assert [l.kind for l in net] == ["conv"] * 5 + ["linear"] and all(l.prunable for l in net)


def test_tokens_match_onnxruntime_at_another_size(tmp_path):
    """Exported with free height and width, run at 27 x 27: every conv GEMM's tokens equal
    batch x the spatial size of the conv output onnxruntime computes on the same file (the
    file's padding arithmetic, not the architecture, decides), and the fc's rows the batch."""
    import onnx
    ort = pytest.importorskip("onnxruntime")

    path = _export(SameCNN(), tmp_path / "hw.onnx", (1, 3, 32, 32), dynamic_hw=True)
    net = import_onnx(path, input_shapes={"x": (2, 3, 27, 27)})
    model = onnx.load(path)
    convs = [n.output[0] for n in model.graph.node if n.op_type == "Conv"]
    model.graph.output.extend(onnx.ValueInfoProto(name=t) for t in convs)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(convs, {"x": np.zeros((2, 3, 27, 27), np.float32)})
    assert [l.tokens for l in net if l.kind == "conv"] == [o.shape[0] * o.shape[2] * o.shape[3] for o in outs]
    assert net.layers[-1].tokens == 2


def test_without_folding_the_export_does_not_import(same_onnx, monkeypatch):
    """The folding is what makes it import: with no folding rounds, shape inference stops at
    the first Pad (the error the issue quotes)."""
    monkeypatch.setattr(onnx_import, "FOLD_ROUNDS", 0)
    with pytest.raises(onnx_import.OnnxError, match=r"Pad_output_0.*only static shapes"):
        import_onnx(same_onnx, input_shapes={"x": (1, 3, 32, 32)})


def test_batch_sets_the_free_dimension(same_onnx, tmp_path):
    """--batch fills a free batch dimension; a fixed one is refused in one line."""
    assert [(l.tokens, l.k) for l in import_onnx(same_onnx, batch=4)] == \
        [(t, k) for _, t, k, _, _ in same_cnn_layers(4, 32)]
    fixed = _export(SameCNN(), tmp_path / "fixed.onnx", (1, 3, 32, 32), dynamic_batch=False)
    with pytest.raises(onnx_import.OnnxError, match=r"batch = 4 is not allowed: no graph input has a free batch "
                                                    r"dimension .*'x' \[1, 3, 32, 32\]"):
        import_onnx(fixed, batch=4)
    assert import_onnx(fixed).macs() == sum(t * k * n * c for _, t, k, n, c in same_cnn_layers(1, 32))


def test_cli_batch_title_and_dynamic_hint(same_onnx, capsys):
    """simulate --onnx: --batch applies to the free dimension and shows in the title (never
    "tokens"); without it the error names --input-shape and --batch for CLI users."""
    assert main(["simulate", "--onnx", str(same_onnx), "--batch", "2", "--no-dense"]) == 0
    out = capsys.readouterr().out
    title = out.splitlines()[0]
    assert title.startswith("sparseforge simulate: same_cnn (batch 2)") and "tokens" not in title
    page = same_onnx.parent / "report.html"
    assert main(["simulate", "--onnx", str(same_onnx), "--batch", "2", "--no-dense", "-o", str(page)]) == 0
    html = page.read_text()
    assert "<title>sparseforge simulate: same_cnn (batch 2) on default</title>" in html and "tokens)" not in html
    capsys.readouterr()
    assert main(["simulate", "--onnx", str(same_onnx)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--input-shape x=d0,d1,..." in err and "--batch N" in err and "input_shapes={'x'" in err


def test_api_batch_with_fixed_onnx_is_refused(tmp_path):
    fixed = _export(SameCNN(), tmp_path / "fixed.onnx", (1, 3, 16, 16), dynamic_batch=False)
    with pytest.raises(api.UserError, match=r"batch = 2 is not allowed: no graph input has a free batch"):
        api.load_network(onnx=fixed, batch=2)
    with pytest.raises(api.UserError, match=r"batch = 0 is not allowed"):
        api.load_network(onnx=fixed, batch=0)
    with pytest.raises(api.UserError, match=r"tokens is not allowed with onnx"):
        api.load_network(onnx=fixed, tokens=16)


# ------------------------------------------------------------------ N:M masks in the weights
class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, padding=1)
        self.up = nn.Linear(16, 64)
        self.down = nn.Linear(64, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = F.relu(self.conv(x)).mean((2, 3))
        return self.head(F.relu(self.down(F.relu(self.up(x)))))


def _nm_mask(w: torch.Tensor, n: int, m: int, gen: torch.Generator) -> torch.Tensor:
    """A random n:m mask along K of ``w`` viewed as [out, K] (K in the order channel, row,
    column of a conv weight, as im2col reads it): n random kept entries per group of m."""
    out = w.shape[0]
    k = w[0].numel()
    scores = torch.rand(out, k // m, m, generator=gen)
    keep = scores.argsort(dim=-1, descending=True)[..., :n]
    mask = torch.zeros(out, k // m, m).scatter_(-1, keep, 1.0)
    return mask.reshape(w.shape)


def test_pruned_module_masks_are_detected():
    """torch.nn.utils.prune masks: a 2:4 conv (K order channel, kh, kw), a 1:4 and a 2:8
    Linear are found as such; the dense head has no pattern; the imported weights equal the
    masked module weights in the sparseforge [n_out, K] layout."""
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(2)
    model = Mlp()
    for mod, (n, m) in ((model.conv, (2, 4)), (model.up, (1, 4)), (model.down, (2, 8))):
        torch_prune.custom_from_mask(mod, "weight", _nm_mask(mod.weight, n, m, gen))
    res = import_torch(model, torch.randn(2, 8, 6, 6))
    net = res.network
    assert [(l.name, l.nm) for l in net] == [("/conv/Conv", (2, 4)), ("/up/Gemm", (1, 4)),
                                             ("/down/Gemm", (2, 8)), ("/head/Gemm", None)]
    assert [(l.tokens, l.k, l.n_out) for l in net] == [(72, 72, 16), (2, 16, 64), (2, 64, 16), (2, 16, 4)]
    np.testing.assert_array_equal(res.weights["/conv/Conv"], model.conv.weight.detach().reshape(16, -1).numpy())
    np.testing.assert_array_equal(res.weights["/up/Gemm"], model.up.weight.detach().numpy())
    # the same masks read in another K order (kh, kw, channel) are not 2:4: the order matters
    from sparseforge.models.nm_detect import detect_nm

    other = model.conv.weight.detach().permute(0, 2, 3, 1).reshape(16, -1).numpy()
    assert detect_nm(other) != (2, 4)


def test_simulate_uses_the_modules_masks():
    """api.simulate with an nn.Module: the layer pruned 1:4 runs its own pattern ("mask"),
    whatever --sparsity says; the others follow the run's 2:4 and the default rule."""
    gen = torch.Generator().manual_seed(3)
    model = Mlp()
    torch_prune.custom_from_mask(model.up, "weight", _nm_mask(model.up.weight, 1, 4, gen))
    res = api.simulate("default", model, example_inputs=torch.randn(1, 8, 6, 6), sparsity="2:4", dense=False)
    got = {l.name: (l.pattern, l.reason) for l in res.sparse.layers}
    assert got == {"/conv/Conv": ("dense", "rule:first"), "/up/Gemm": ("1:4", "mask"),
                   "/down/Gemm": ("2:4", "sparsity"), "/head/Gemm": ("2:4", "sparsity")}
    assert res.workload == "Mlp"


def test_load_network_module_and_batch():
    net = api.load_network(SameCNN(), input_shapes={"img": (1, 3, 32, 32)}, batch=2)
    assert [(l.name, l.tokens, l.k, l.n_out, l.count) for l in net] == same_cnn_layers(2, 32)
    net = api.load_network(SameCNN(), example_inputs=torch.zeros(1, 3, 32, 32))
    assert net.name == "SameCNN" and net.macs() == sum(t * k * n * c for _, t, k, n, c in same_cnn_layers(1, 32))


@pytest.mark.parametrize("kwargs,msg", [
    ({}, r"a PyTorch module needs example inputs: give example_inputs .* --input-shape NAME=d0,d1"),
    ({"example_inputs": "x"}, r"example_inputs of type str is not allowed"),
    ({"input_shapes": {"x": (0, 3)}}, r"input_shapes\['x'\] = \(0, 3\) is not allowed"),
    ({"tokens": 4, "input_shapes": {"x": (1, 3, 8, 8)}}, r"tokens is not allowed with a PyTorch module"),
])
def test_module_bad_input(kwargs, msg):
    with pytest.raises(api.UserError, match=msg):
        api.load_network(SameCNN(), **kwargs)


def test_example_inputs_without_module():
    with pytest.raises(api.UserError, match=r"example_inputs is only for a PyTorch nn.Module net"):
        api.load_network("resnet50", example_inputs=torch.zeros(1))


def test_unsupported_op_in_module_is_one_line():
    class Loop(nn.Module):
        def forward(self, x):
            return torch.fft.rfft(x).abs()

    with pytest.raises(api.UserError) as exc:
        api.load_network(Loop(), example_inputs=torch.zeros(1, 8))
    assert "\n" not in str(exc.value)


# ------------------------------------------------------------------ CLI: --torch
MODEL_PY = '''
import torch.nn as nn
class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 8)
    def forward(self, x):
        return self.fc2(self.fc1(x).relu())
def build():
    return Tiny()
'''


def test_cli_torch_sources(tmp_path, capsys, monkeypatch):
    """--torch takes file.py:factory, a TorchScript file and a torch.save'd module; all give
    the same GEMMs; a state_dict and a missing factory are one-line errors."""
    (tmp_path / "tiny_models.py").write_text(MODEL_PY)
    src = f"{tmp_path / 'tiny_models.py'}:build"
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = load_module("tiny_models:build")      # importable: torch.save pickles its class by name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(mod), str(tmp_path / "tiny.ts.pt"))
    torch.save(mod, str(tmp_path / "tiny_full.pt"))
    torch.save(mod.state_dict(), str(tmp_path / "tiny_sd.pt"))
    (tmp_path / "tiny.pt2").write_bytes(b"PK")           # refused by its extension, before reading
    rows = []
    for source in (src, str(tmp_path / "tiny.ts.pt"), str(tmp_path / "tiny_full.pt")):
        assert main(["simulate", "--torch", source, "--input-shape", "x=5,32", "--json", "--no-dense"]) == 0, source
        out = capsys.readouterr().out
        import json

        layers = json.loads(out)["layers"]
        rows.append([(l["tokens"], l["k"], l["n_out"]) for l in layers])
    assert rows[0] == rows[1] == rows[2] == [(5, 32, 64), (5, 64, 8)]
    for source, msg in ((str(tmp_path / "tiny_sd.pt"), "holds a state_dict"),
                        (f"{tmp_path / 'tiny_models.py'}:nothing", "has no attribute 'nothing'"),
                        (str(tmp_path / "missing.pt"), "no such file"),
                        (str(tmp_path / "tiny.pt2"), "torch.export programs (.pt2) are not supported"),
                        (src + "x", "has no attribute")):
        assert main(["simulate", "--torch", source, "--input-shape", "x=5,32"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err and err.startswith("sparseforge: error: --torch"), err
    assert main(["simulate", "--torch", src, "--net", "minilm", "--input-shape", "x=5,32"]) == 2
    assert "--torch is not allowed with --net" in capsys.readouterr().err


def test_torch_missing_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(TorchError, match=r"PyTorch is not installed: pip install 'sparseforge\[torch\]'"):
        load_module("x:y")


def test_simulate_training_takes_a_module():
    """simulate_training with an nn.Module: the module's GEMMs at the asked minibatch (its
    dimension 0 exported free), labelled with it."""
    tr = api.simulate_training("default", SameCNN(), input_shapes={"x": (1, 3, 32, 32)}, batch=4, sparsity="2:4",
                               dense=False, ablations=False)
    assert tr.batch == 4 and tr.result.network == "SameCNN"
    want = same_cnn_layers(4, 32)
    assert [(r.name, r.ff.tokens, r.ff.k, r.ff.n_out, r.ff.count) for r in tr.result.layers] == want


def test_docs_example_factory(capsys):
    """docs/import.md's command: examples/torch_cnn.py:build_pruned runs its torch.nn.utils.prune
    2:4 masks (why = mask) and keeps the stem and the depthwise conv dense."""
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "torch_cnn.py"
    assert main(["simulate", "--torch", f"{example}:build_pruned", "--input-shape", "x=1,3,32,32", "--json",
                 "--no-dense"]) == 0
    import json

    layers = json.loads(capsys.readouterr().out)["layers"]
    assert [(l["name"], l["pattern"], l["reason"]) for l in layers] == [
        ("/stem/Conv", "dense", "rule:first"), ("/dw/Conv", "dense", "rule:depthwise"), ("/pw/Conv", "2:4", "mask"),
        ("/mid/Conv", "2:4", "mask"), ("/down/Conv", "2:4", "mask"), ("/fc/Gemm", "2:4", "mask")]
