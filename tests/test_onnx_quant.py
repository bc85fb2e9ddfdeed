"""Quantized ONNX: the real all-MiniLM-L6-v2 encoder exported from PyTorch with its real
weights, quantized by onnxruntime to the QDQ form (quantize_static, calibrated on real text)
and to the QOperator form (quantize_dynamic: MatMulInteger), and a small CNN quantized to
QLinearConv / ConvInteger. The importer finds the same GEMMs as in the float model, reads the
int8 scales and zero points, and its dequantized weights compute what onnxruntime computes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")
from torch import nn  # noqa: E402

from sparseforge import api  # noqa: E402
from sparseforge.models import minilm  # noqa: E402
from sparseforge.models.onnx_import import OnnxError, read_onnx  # noqa: E402
from sparseforge.models.zoo import minilm_network  # noqa: E402

#: tokens of the exported encoder (kept short: the test quantizes and runs it)
T = 16


def _weights_or_skip():
    try:
        minilm.model_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"the real MiniLM weights are not installed: {exc}")
    return minilm.load_weights()


class Encoder(nn.Module):
    """The all-MiniLM-L6-v2 encoder (models.minilm.forward's computation) as a PyTorch module
    holding the real weights; input: the embedding output ``[batch, T, 384]``."""

    def __init__(self, w: dict[str, np.ndarray]):
        super().__init__()
        self.blocks = nn.ModuleList()
        for i in range(minilm.NUM_LAYERS):
            blk = nn.ModuleDict()
            for short, hf in minilm._HF_LINEAR.items():
                weight = torch.from_numpy(w[f"encoder.layer.{i}.{hf}.weight"])
                lin = nn.Linear(weight.shape[1], weight.shape[0])
                lin.weight.data.copy_(weight)
                lin.bias.data.copy_(torch.from_numpy(w[f"encoder.layer.{i}.{hf}.bias"]))
                blk[short.replace(".", "_")] = lin
            for key, ln in (("ln1", "attention.output.LayerNorm"), ("ln2", "output.LayerNorm")):
                norm = nn.LayerNorm(minilm.HIDDEN, eps=minilm.LAYER_NORM_EPS)
                norm.weight.data.copy_(torch.from_numpy(w[f"encoder.layer.{i}.{ln}.weight"]))
                norm.bias.data.copy_(torch.from_numpy(w[f"encoder.layer.{i}.{ln}.bias"]))
                blk[key] = norm
            self.blocks.append(blk)

    def forward(self, h):
        b, t, _ = h.shape
        heads, d = minilm.HEADS, minilm.HEAD_DIM
        for blk in self.blocks:
            q = blk["attn_q"](h).reshape(b, t, heads, d).transpose(1, 2)
            k = blk["attn_k"](h).reshape(b, t, heads, d).transpose(1, 2)
            v = blk["attn_v"](h).reshape(b, t, heads, d).transpose(1, 2)
            p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
            ctx = (p @ v).transpose(1, 2).reshape(b, t, heads * d)
            h = blk["ln1"](blk["attn_o"](ctx) + h)
            h = blk["ln2"](blk["ffn_down"](torch.nn.functional.gelu(blk["ffn_up"](h))) + h)
        return h


def _embedded(w, text: str) -> np.ndarray:
    """The encoder input (embedding output) of ``text`` at T tokens, ``[1, T, 384]``."""
    _, caps = minilm.forward(minilm.tokenize(text, max_tokens=T), w)
    return caps["layer0.attn.q"][None]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(weights, float path, QDQ path, MatMulInteger path, real encoder input)."""
    w = _weights_or_skip()
    d = tmp_path_factory.mktemp("minilm_q")
    words = minilm.sample_text().split()
    x = _embedded(w, " ".join(words[:60]))
    enc = Encoder(w).eval()
    with torch.no_grad():
        y = enc(torch.from_numpy(x)).numpy()[0]
    hidden, _ = minilm.forward(minilm.tokenize(" ".join(words[:60]), max_tokens=T), w)
    assert np.abs(y - hidden).max() < 1e-4        # the module is MiniLM
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(enc, (torch.from_numpy(x),), str(d / "minilm.onnx"), dynamo=False,
                          input_names=["hidden"], dynamic_axes={"hidden": {0: "batch"}})
    calib = [_embedded(w, " ".join(words[60 * j:60 * (j + 1)])) for j in (1, 2)]

    class Reader(quantization.CalibrationDataReader):   # real text, two sentences' windows
        def __init__(self):
            self.items = iter({"hidden": c} for c in calib)

        def get_next(self):
            return next(self.items, None)

    quantization.quantize_static(str(d / "minilm.onnx"), str(d / "minilm_qdq.onnx"), Reader(),
                                 quant_format=quantization.QuantFormat.QDQ,
                                 activation_type=quantization.QuantType.QInt8,
                                 weight_type=quantization.QuantType.QInt8)
    quantization.quantize_dynamic(str(d / "minilm.onnx"), str(d / "minilm_dyn.onnx"),
                                  weight_type=quantization.QuantType.QInt8)
    return w, d / "minilm.onnx", d / "minilm_qdq.onnx", d / "minilm_dyn.onnx", x


def _shapes(net):
    return [(l.tokens, l.k, l.n_out, l.count, l.kind, l.prunable) for l in net]


@pytest.mark.minilm
def test_float_export_is_minilm(models):
    """The float export lowers to exactly the built-in MiniLM's 48 GEMMs at T tokens."""
    _, fpath, *_ = models
    net = read_onnx(fpath, batch=1).network
    assert _shapes(net) == _shapes(minilm_network(tokens=T))


@pytest.mark.minilm
@pytest.mark.parametrize("form", ["qdq", "dyn"])
def test_quantized_gemms_equal_float(models, form):
    """QDQ (QuantizeLinear/DequantizeLinear around every MatMul) and QOperator
    (MatMulInteger behind DynamicQuantizeLinear): the same GEMM list as the float model; the
    36 Linear weights are read, as int8 with their scales, and dequantized lie within half a
    quantization step of the real MiniLM weights, in encoder order."""
    w, fpath, qdq, dyn, _ = models
    path = qdq if form == "qdq" else dyn
    import onnx as _onnx

    ops = {n.op_type for n in _onnx.load(path).graph.node}
    assert ({"QuantizeLinear", "DequantizeLinear"} <= ops) if form == "qdq" else ("MatMulInteger" in ops)
    res = read_onnx(path, batch=1)
    assert _shapes(res.network) == _shapes(read_onnx(fpath, batch=1).network)
    linear = [l.name for l in res.network if l.kind == "linear"]
    assert len(linear) == 36 and list(res.weights) == linear
    for lname, (_, real, _) in zip(linear, minilm.linear_layers(w)):
        q = res.quant[lname]
        assert q.form == ("QDQ" if form == "qdq" else "QOperator") and q.weight_dtype == "int8"
        scale = float(np.max(q.weight_scale))
        assert 0 < scale < 0.1 and np.all(q.weight_zero_point == 0)      # symmetric int8 weights
        err = np.abs(res.weights[lname] - real).max()
        assert err <= scale / 2 * (1 + 1e-5), (lname, err, scale)
    if form == "qdq":   # static activations: scales and zero points read on both sides
        q0 = res.quant[linear[0]]
        assert q0.input_scale > 0 and q0.output_scale > 0 and q0.input_zero_point.dtype == np.int8
        att = [l.name for l in res.network if l.kind == "attention"]
        assert len(att) == 12 and all(res.quant[a].input_scale > 0 for a in att)
    else:               # dynamic: the activation scale is computed at run time
        assert res.quant[linear[0]].input_scale is None


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _expose(path, tensors):
    model = onnx.load(path)
    model.graph.output.extend(onnx.ValueInfoProto(name=t) for t in tensors)
    return model


@pytest.mark.minilm
def test_qdq_gemm_matches_onnxruntime(models):
    """Layer 0's query and layer 5's FFN-down GEMM computed from the imported dequantized
    weights on the real activations onnxruntime feeds them agree with onnxruntime's own
    output of those MatMuls, within the output's int8 step (read from the file)."""
    _, _, qdq, _, x = models
    res = read_onnx(qdq, batch=1)
    linear = [l for l in res.network if l.kind == "linear"]
    graph = onnx.load(qdq).graph
    nodes = {n.name: n for n in graph.node}
    for layer in (linear[0], linear[-1]):
        node = nodes[layer.name]
        xa, y = node.input[0], node.output[0]
        xv, yv = _session(_expose(qdq, [xa, y])).run([xa, y], {"hidden": x})
        ours = xv.reshape(-1, layer.k) @ res.weights[layer.name].T
        step = float(res.quant[layer.name].output_scale)
        assert ours.shape == (T, layer.n_out)
        assert np.abs(ours - yv.reshape(ours.shape)).max() <= step, layer.name


@pytest.mark.minilm
def test_matmulinteger_gemm_matches_onnxruntime(models):
    """The MatMulInteger form: our GEMM on the float activation with the imported
    (dequantized) weight matches onnxruntime's scaled integer product within the int8
    activation rounding bound 0.5 * x_scale * sum_k |W[j, k]| (x_scale as
    DynamicQuantizeLinear computes it)."""
    _, _, _, dyn, x = models
    res = read_onnx(dyn, batch=1)
    linear = [l for l in res.network if l.kind == "linear"]
    graph = onnx.load(dyn).graph
    writer = {t: n for n in graph.node for t in n.output}
    readers = {}
    for n in graph.node:
        for t in n.input:
            readers.setdefault(t, []).append(n)
    for layer in (linear[0], linear[-1]):
        node = next(n for n in graph.node if n.name == layer.name)
        xf = writer[node.input[0]].input[0]                      # DynamicQuantizeLinear's float input
        cast = readers[node.output[0]][0]
        y = readers[cast.output[0]][0].output[0]                 # Mul(Cast(Y), x_scale * w_scale)
        xv, yv = _session(_expose(dyn, [xf, y])).run([xf, y], {"hidden": x})
        xv = xv.reshape(-1, layer.k)
        w = res.weights[layer.name]
        x_scale = (max(xv.max(), 0) - min(xv.min(), 0)) / 255
        bound = 0.5 * x_scale * np.abs(w).sum(axis=1) + 1e-4
        diff = np.abs(xv @ w.T - yv.reshape(-1, layer.n_out))
        assert np.all(diff <= bound[None, :]), layer.name


# ------------------------------------------------------------------ QLinearConv / ConvInteger
class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    d = tmp_path_factory.mktemp("cnn_q")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(SmallCNN().eval(), (torch.zeros(1, 3, 8, 8),), str(d / "cnn.onnx"), dynamo=False,
                          input_names=["x"])
    rng = np.random.default_rng(0)

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.items = iter({"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(4))

        def get_next(self):
            return next(self.items, None)

    for name, ops in (("cnn_qop.onnx", ["Conv"]), ("cnn_qgemm.onnx", ["Conv", "Gemm"])):
        quantization.quantize_static(str(d / "cnn.onnx"), str(d / name), Reader(),
                                     quant_format=quantization.QuantFormat.QOperator, op_types_to_quantize=ops)
    quantization.quantize_dynamic(str(d / "cnn.onnx"), str(d / "cnn_int.onnx"), op_types_to_quantize=["Conv"])
    return d


def test_qlinearconv_and_convinteger(cnn):
    """QLinearConv (static QOperator) and ConvInteger (dynamic): the float model's GEMMs,
    weights as int8 with per-tensor or per-channel scales, dequantized within half a step of
    the float weights."""
    fl = read_onnx(cnn / "cnn.onnx")
    for name, op in (("cnn_qop.onnx", "QLinearConv"), ("cnn_int.onnx", "ConvInteger")):
        ops = {n.op_type for n in onnx.load(cnn / name).graph.node}
        assert op in ops, (name, ops)
        res = read_onnx(cnn / name)
        assert _shapes(res.network) == _shapes(fl.network)
        for lq, lf in zip(res.network, fl.network):
            if lq.group != op:
                continue
            q = res.quant[lq.name]
            assert q.form == "QOperator" and q.weight_scale is not None
            step = np.asarray(q.weight_scale, dtype=np.float64).reshape(-1, 1)
            assert np.all(np.abs(res.weights[lq.name] - fl.weights[lf.name]) <= step / 2 * (1 + 1e-5) + 1e-7)


def test_qlinearconv_matches_onnxruntime(cnn):
    """The first QLinearConv as our im2col GEMM (imported dequantized weights on the
    dequantized input onnxruntime feeds it) against onnxruntime's int8 output, within one
    output step."""
    path = cnn / "cnn_qop.onnx"
    res = read_onnx(path)
    graph = onnx.load(path).graph
    node = next(n for n in graph.node if n.op_type == "QLinearConv")
    layer = res.network.layer(node.name or node.output[0])
    q = res.quant[layer.name]
    xq, yq = _session(_expose(path, [node.input[0], node.output[0]])).run(
        [node.input[0], node.output[0]], {"x": np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)})
    xf = (xq.astype(np.float32) - q.input_zero_point) * q.input_scale           # [1, 3, 8, 8]
    cols = torch.nn.functional.unfold(torch.from_numpy(xf), 3, padding=1)[0].T.numpy()   # [64, 27]: (c, kh, kw)
    ours = cols @ res.weights[layer.name].T
    conv_b = next(i for i in graph.initializer if i.name == node.input[8])     # int32, scale x_scale * w_scale
    bias = onnx.numpy_helper.to_array(conv_b).astype(np.float32) * q.input_scale * np.asarray(q.weight_scale)
    theirs = (yq.astype(np.float32) - q.output_zero_point) * q.output_scale      # [1, 8, 8, 8]
    ours = ours + bias
    assert np.abs(ours.T.reshape(theirs.shape) - theirs).max() <= float(q.output_scale) * 1.01


def test_contrib_quantized_op_is_one_line(cnn, capsys):
    """onnxruntime quantizes a Gemm to its contrib QGemm (domain com.microsoft), which is not
    an ONNX operator: refused in one line naming it, its domain and the way out (QDQ)."""
    path = cnn / "cnn_qgemm.onnx"
    assert "QGemm" in {n.op_type for n in onnx.load(path).graph.node}
    with pytest.raises(OnnxError) as exc:
        read_onnx(path)
    msg = str(exc.value)
    assert "\n" not in msg and "'QGemm' of domain 'com.microsoft'" in msg and "QDQ" in msg
    with pytest.raises(api.UserError, match=r"QGemm"):
        api.load_network(onnx=path)
    from sparseforge.cli import main

    assert main(["simulate", "--onnx", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sparseforge: error: --onnx") and "QGemm" in err
