"""Tests of the ONNX importer (models.onnx_import) on the real-shape "light" model zoo that
ships in the onnx wheel, and on small graphs built with onnx.helper."""

from __future__ import annotations

import collections
import glob
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from sparseforge.models.onnx_import import PASS_THROUGH_OPS, import_onnx  # noqa: E402
from sparseforge.models.zoo import resnet50_network  # noqa: E402

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"

# MACs of every light model at its stored shape (batch 1, 224x224).
LIGHT_MACS = {
    "light_bvlc_alexnet": 654_560_384,
    "light_densenet121": 2_834_161_664,
    "light_inception_v1": 1_431_556_352,
    "light_inception_v2": 2_018_851_840,
    "light_resnet50": 4_089_184_256,
    "light_shufflenet": 124_664_528,
    "light_squeezenet": 349_151_936,
    "light_vgg19": 19_632_062_464,
    "light_zfnet512": 1_481_727_008,
}


def _light(name: str) -> Path:
    path = LIGHT / f"{name}.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is not in this onnx wheel")
    return path


def test_light_resnet50_matches_builtin_resnet50():
    """The real ResNet-50 graph gives exactly the built-in ResNet-50's 54 GEMM shapes
    (as a multiset) and 4.09 GMACs: the importer and the zoo agree."""
    net = import_onnx(_light("light_resnet50"))
    ref = resnet50_network()
    assert len(net) == len(ref) == 54 and net.name == "light_resnet50"
    shapes = collections.Counter((l.tokens, l.k, l.n_out, l.count) for l in net)
    assert shapes == collections.Counter((l.tokens, l.k, l.n_out, l.count) for l in ref)
    assert net.macs() == ref.macs() == 4_089_184_256
    assert all(l.prunable for l in net)


def test_light_vgg19_layers():
    """VGG-19: 16 im2col convs (k = 9 * C_in) and 3 fully connected layers, 19.6 GMACs."""
    net = import_onnx(_light("light_vgg19"))
    convs = [l for l in net if l.kind == "conv"]
    fcs = [l for l in net if l.kind == "linear"]
    assert len(convs) == 16 and len(fcs) == 3
    assert [(l.tokens, l.k, l.n_out) for l in convs[:2]] == [(224 * 224, 27, 64), (224 * 224, 576, 64)]
    assert [(l.tokens, l.k, l.n_out) for l in fcs] == [(1, 25088, 4096), (1, 4096, 4096), (1, 4096, 1000)]
    assert net.macs() == LIGHT_MACS["light_vgg19"]


def test_every_light_model_imports():
    """All light_*.onnx models lower with only GEMMs and pass-through ops; MACs are pinned,
    and grouped convs (AlexNet's 2 groups, ShuffleNet's depthwise) become count > 1."""
    paths = sorted(glob.glob(str(LIGHT / "light_*.onnx")))
    if not paths:
        pytest.skip("no light models in this onnx wheel")
    for path in paths:
        stem = Path(path).stem
        net = import_onnx(path)
        if stem in LIGHT_MACS:
            assert net.macs() == LIGHT_MACS[stem], stem
    alex = import_onnx(_light("light_bvlc_alexnet"))
    assert [l.count for l in alex if l.kind == "conv"] == [1, 2, 1, 2, 2]
    shuffle = import_onnx(_light("light_shufflenet"))
    assert any(l.count > 1 and l.n_out == 1 and l.k == 9 for l in shuffle)


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _init(name, shape):
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def test_conv_stride_pad_dilation_groups_gemm_and_matmul_lowering():
    """Conv with stride/pads/dilations/groups becomes count=groups im2col GEMMs with the
    inferred output size; Gemm honours transB; MatMul with a constant weight folds batch
    dims into tokens; MatMul of two activations is a non-prunable attention GEMM."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8, 17, 17])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [3, 5, 16])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv_g", strides=[2, 2], pads=[2, 2, 2, 2],
                         dilations=[2, 2], group=4, kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wf"], ["y"], name="fc", transB=1),
        helper.make_node("MatMul", ["a", "wm"], ["m"], name="proj"),
        helper.make_node("Transpose", ["m"], ["mt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["m", "mt"], ["s"], name="scores"),
    ]
    inits = [_init("w1", (12, 2, 3, 3)), _init("wf", (10, 12)), _init("wm", (16, 24))]
    net = import_onnx(_model(nodes, [x, a], [y, s], inits), name="toy")
    conv, fc, proj, scores = net.layers
    # out = (17 + 4 - 2*(3-1) - 1) // 2 + 1 = 9
    assert (conv.name, conv.tokens, conv.k, conv.n_out, conv.count, conv.kind) == ("conv_g", 2 * 81, 18, 3, 4, "conv")
    assert (fc.tokens, fc.k, fc.n_out, fc.kind, fc.prunable) == (2, 12, 10, "linear", True)
    assert (proj.tokens, proj.k, proj.n_out, proj.count) == (15, 16, 24, 1)
    assert (scores.tokens, scores.k, scores.n_out, scores.count, scores.kind, scores.prunable) == (
        5, 24, 5, 3, "attention", False)
    assert net.name == "toy" and all(layer.group in ("Conv", "Gemm", "MatMul") for layer in net)


def test_unsupported_operator_names_type_and_node():
    """An operator that is neither a GEMM nor a pass-through op raises ValueError naming the
    operator type and the node."""
    assert "Cos" not in PASS_THROUGH_OPS
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
             helper.make_node("Cos", ["h"], ["y"], name="weird_cos")]
    with pytest.raises(ValueError, match=r"operator 'Cos' \(Cos node 'weird_cos'\) is not supported"):
        import_onnx(_model(nodes, [x], [y], [_init("w", (16, 8))]))


def test_dynamic_input_shape_is_rejected_unless_fixed():
    """A symbolic batch dim raises ValueError naming the input tensor; input_shapes makes it
    static; other errors (unknown input name, missing file, no GEMM) are clear."""
    x = helper.make_tensor_value_info("tokens_in", TensorProto.FLOAT, ["N", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = _model([helper.make_node("MatMul", ["tokens_in", "w"], ["y"], name="fc")], [x], [y],
                   [_init("w", (16, 8))])
    with pytest.raises(ValueError, match=r"tensor 'tokens_in' \(graph input\) has a dynamic shape \['N', 16\]"):
        import_onnx(model)
    net = import_onnx(model, input_shapes={"tokens_in": (32, 16)})
    assert [(l.tokens, l.k, l.n_out) for l in net] == [(32, 16, 8)]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"  # caller's model untouched
    with pytest.raises(ValueError, match="graph inputs are tokens_in"):
        import_onnx(model, input_shapes={"x": (1, 16)})
    with pytest.raises(FileNotFoundError):
        import_onnx("/nonexistent/model.onnx")
    relu_only = _model([helper.make_node("Relu", ["tokens_in"], ["y"])],
                       [helper.make_tensor_value_info("tokens_in", TensorProto.FLOAT, [2, 3])], [y])
    with pytest.raises(ValueError, match="nothing to lower"):
        import_onnx(relu_only)


# ------------------------------------------------------------------ bad files (issue 8, part 5)
import re  # noqa: E402

from sparseforge.errors import InputError  # noqa: E402
from sparseforge.models.onnx_import import (  # noqa: E402
    MAX_TENSOR_ELEMENTS, OnnxError, OnnxFileNotFoundError)


def _tiny(shape=(4, 2), n_out=3):
    """x[shape] @ w[shape[-1], n_out] -> y: the smallest model with one GEMM (about 130 bytes)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = _init("w", (2 if isinstance(shape[-1], str) else shape[-1], n_out))
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], [x], [y], [w])


def _fails(path_or_model, match, cls=OnnxError, **kw):
    """import_onnx raises ``cls`` (an InputError) with a one-line message matching ``match``."""
    with pytest.raises(cls) as info:
        import_onnx(path_or_model, **kw)
    msg = str(info.value)
    assert isinstance(info.value, InputError) and "\n" not in msg, msg
    assert re.search(match, msg), msg
    return msg


def test_random_truncated_and_foreign_files_are_one_line_errors(tmp_path):
    """Random bytes, text, JSON, an empty file, a folder and every strict prefix of a valid
    file give an OnnxError that starts with the path; the whole file still imports."""
    good = tmp_path / "good.onnx"
    onnx.save(_tiny(), str(good))
    data = good.read_bytes()
    assert [(l.tokens, l.k, l.n_out) for l in import_onnx(good)] == [(4, 2, 3)]
    rng = np.random.default_rng(0)
    cases = {"random.onnx": rng.bytes(4096), "text.onnx": b"hello, this is not a model\n",
             "json.onnx": b'{"graph": {"node": []}}', "png.onnx": b"\x89PNG\r\n\x1a\n" + rng.bytes(64),
             "empty.onnx": b""}
    for fname, content in cases.items():
        path = tmp_path / fname
        path.write_bytes(content)
        msg = _fails(path, r"not an ONNX model")
        assert msg.startswith(f"{path}: ")
    bad = tmp_path / "cut.onnx"
    for n in range(len(data)):  # a file cut anywhere: protobuf error, no graph, or no opset
        bad.write_bytes(data[:n])
        _fails(bad, rf"^{re.escape(str(bad))}: (not an ONNX model|no opset_import)")
    _fails(tmp_path, r"a folder, not an ONNX file")
    msg = _fails(tmp_path / "missing.onnx", r"missing\.onnx: no such file", cls=OnnxFileNotFoundError)
    assert isinstance(OnnxFileNotFoundError(msg), FileNotFoundError)


def test_external_weight_file_missing_truncated_or_outside(tmp_path):
    """Weights in an external file: a missing file, a file too short for the tensor and a
    location outside the model's folder are errors naming the tensor and the file; a
    complete one imports, and a large weight file is checked, not read."""
    model = _tiny((4, 600))
    model.graph.initializer[0].CopyFrom(_init("w", (600, 700)))  # 1.68 MB: over EXTERNAL_READ_BYTES
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.weights", size_threshold=0)
    weights = tmp_path / "ext.weights"
    assert weights.stat().st_size == 600 * 700 * 4
    assert [(l.tokens, l.k, l.n_out) for l in import_onnx(path)] == [(4, 600, 700)]
    weights.write_bytes(b"\0" * 1000)
    _fails(path, r"tensor 'w': its external data file 'ext\.weights' has 1000 bytes, but the tensor needs "
                 r"bytes 0 to 1680000")
    weights.unlink()
    _fails(path, rf"^{re.escape(str(path))}: tensor 'w': its external data file 'ext\.weights' is missing")
    proto = onnx.load(str(path), load_external_data=False)
    for entry in proto.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../outside.weights"
    onnx.save(proto, str(path))
    _fails(path, r"external data location '\.\./outside\.weights' is not allowed: it must be a relative path "
                 r"inside the model's folder")


def _conv(group, c_in=8, w_shape=(12, 2, 3, 3)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, 9, 9])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", group=group)
    return _model([node], [x], [y], [_init("w", w_shape)])


def test_conv_with_impossible_group_is_refused():
    """group must be a positive divisor of the input and output channels, and the weight
    must have C_in / group input channels; a valid grouped conv still lowers."""
    (ok,) = import_onnx(_conv(4)).layers
    assert (ok.count, ok.k, ok.n_out) == (4, 18, 3)
    _fails(_conv(0), r"Conv node 'c': group = 0 is not allowed: must be a positive divisor of the 8 input")
    _fails(_conv(-2), r"group = -2 is not allowed")
    _fails(_conv(3, w_shape=(12, 3, 3, 3)), r"group = 3 is not allowed: the input's 8 channels are not divisible")
    _fails(_conv(16, w_shape=(16, 1, 3, 3)), r"group = 16 is not allowed: the input's 8 channels are not divisible")
    _fails(_conv(8, w_shape=(12, 1, 3, 3)), r"group = 8 is not allowed: the weight's 12 output channels")
    _fails(_conv(4, w_shape=(12, 3, 3, 3)),
           r"the weight 'w' has 3 input channels per group, but the input's 8 channels in 4 groups are 2 per group")


def test_huge_shapes_are_refused_before_shape_inference(monkeypatch):
    """An --input-shape of 10^12 x 16 is refused before shape inference runs; so is a tensor
    inside the graph or a Conv's im2col operand over MAX_TENSOR_ELEMENTS."""
    from onnx import shape_inference

    model = _tiny(("N", 2))

    def no_inference(*a, **k):
        raise AssertionError("shape inference ran on a huge shape")

    with monkeypatch.context() as m:
        m.setattr(shape_inference, "infer_shapes", no_inference)
        _fails(model, r"input_shapes\['x'\] has shape \[1000000000000, 16\]: 16000000000000 elements is more than "
                      r"the 4294967296 allowed", input_shapes={"x": (10**12, 16)})
        _fails(_tiny((2**31, 3)), r"graph input 'x' has shape \[2147483648, 3\]: 6442450944 elements")
    assert MAX_TENSOR_ELEMENTS == 2**32
    (at_limit,) = import_onnx(_tiny(("N", 2), n_out=2), input_shapes={"x": (2**31, 2)})  # X and Y: 2**32
    assert (at_limit.tokens, at_limit.k, at_limit.n_out) == (2**31, 2, 2)
    # a 1x1 input tiled into a huge tensor inside the graph
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    reps = numpy_helper.from_array(np.array([2**20, 2**13], np.int64), "reps")
    tiled = _model([helper.make_node("Tile", ["x", "reps"], ["t"]), helper.make_node("MatMul", ["t", "w"], ["y"])],
                   [x], [y], [reps, _init("w", (2**13, 2))])
    _fails(tiled, r"tensor 't' has shape \[1048576, 8192\]: 8589934592 elements is more than the 4294967296")
    # a conv whose input is within the limit but whose im2col matrix is not (k = 64 * 11 * 11)
    xc = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 1024, 1024])
    conv = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="big", pads=[5, 5, 5, 5])], [xc], [y],
                  [_init("w", (1, 64, 11, 11))])
    _fails(conv, r"Conv node 'big': its GEMM operand X \(1 x 1048576 x 7744\) has 8120172544 elements")


def test_graph_order_comes_from_the_dataflow_graph():
    """Nodes stored out of order import like the sorted file (same layers, same order);
    a cycle, a tensor nobody writes and a tensor written twice are errors naming them."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [_init("w1", (8, 16)), _init("w2", (16, 8)), _init("w3", (8, 8))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="up"),
             helper.make_node("Relu", ["h"], ["r"], name="act"),
             helper.make_node("MatMul", ["r", "w2"], ["d"], name="down"),
             helper.make_node("Add", ["d", "x"], ["s"], name="residual"),
             helper.make_node("MatMul", ["s", "w3"], ["y"], name="head")]
    ref = import_onnx(_model(nodes, [x], [y], inits))
    assert [l.name for l in ref] == ["up", "down", "head"]
    for perm in ([4, 3, 2, 1, 0], [2, 4, 0, 3, 1]):
        net = import_onnx(_model([nodes[i] for i in perm], [x], [y], inits))
        assert net.layers == ref.layers
    loop = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="up"),
            helper.make_node("Add", ["h", "back"], ["a"], name="mix"),
            helper.make_node("MatMul", ["a", "w2"], ["back"], name="down"),
            helper.make_node("MatMul", ["back", "w3"], ["y"], name="head")]
    inits2 = [_init("w1", (8, 8)), _init("w2", (8, 8)), _init("w3", (8, 8))]
    _fails(_model(loop, [x], [y], inits2),
           r"the graph has a cycle: (Add node 'mix' -> MatMul node 'down' -> Add node 'mix'|"
           r"MatMul node 'down' -> Add node 'mix' -> MatMul node 'down')")
    _fails(_model(nodes[:3] + [helper.make_node("MatMul", ["ghost", "w3"], ["y"], name="head")], [x], [y], inits),
           r"MatMul node 'head' reads tensor 'ghost', which no node, graph input or initializer defines")
    _fails(_model(nodes + [helper.make_node("Relu", ["x"], ["h"], name="again")], [x], [y], inits),
           r"tensor 'h' is written by both MatMul node 'up' and Relu node 'again'")


# ------------------------------------------------------------------ issue 11: folding, batch, N:M
from sparseforge.models import onnx_import as _oi  # noqa: E402
from sparseforge.models.onnx_import import read_onnx  # noqa: E402


def _i64(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _folding_model():
    """The two chains PyTorch writes: Pad amounts from ConstantOfShape/Concat/Reshape/Slice/
    Transpose/Reshape (F.pad), and a Reshape target from Shape/Gather/Unsqueeze/Concat
    (x.view(x.size(0), -1)); the batch dimension is symbolic."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("ConstantOfShape", ["four"], ["zeros4"], value=numpy_helper.from_array(np.array([0], np.int64))),
        helper.make_node("Concat", ["pads_hw", "zeros4"], ["pads8"], axis=0),
        helper.make_node("Reshape", ["pads8", "shape_42"], ["p42"]),
        helper.make_node("Slice", ["p42", "start", "end", "axis0", "step"], ["p42r"]),
        helper.make_node("Transpose", ["p42r"], ["p24"], perm=[1, 0]),
        helper.make_node("Reshape", ["p24", "minus1"], ["pads"]),
        helper.make_node("Pad", ["x", "pads"], ["xp"], name="same_pad"),
        helper.make_node("Conv", ["xp", "w"], ["c"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("Shape", ["c"], ["cs"]),
        helper.make_node("Gather", ["cs", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["c", "flat_shape"], ["f"]),
        helper.make_node("MatMul", ["f", "wfc"], ["y"], name="fc"),
    ]
    inits = [_i64("four", [4]), _i64("pads_hw", [1, 2, 1, 0]), _i64("shape_42", [4, 2]), _i64("start", [-1]),
             _i64("end", [-(2**63)]), _i64("axis0", [0]), _i64("step", [-1]), _i64("minus1", [-1]),
             _i64("zero", 0), _i64("axes0", [0]), _init("w", (5, 4, 3, 3)), _init("wfc", (5 * 5 * 7, 7))]
    return _model(nodes, [x], [y], inits)


def test_constant_folding_computes_pad_and_reshape_chains(monkeypatch):
    """The torch-order amounts (1, 2, 1, 0) (width left 1, right 2; height top 1) pad 6 x 6
    to 7 x 9: the conv gives 5 x 7 positions and the Shape chain flattens 5*5*7 = 175
    features; the same shapes as onnx's reference evaluator running the graph. Without
    folding the Pad's output shape is unknown and the import fails."""
    from onnx.reference import ReferenceEvaluator

    model = _folding_model()
    net = import_onnx(model, input_shapes={"x": (2, 4, 6, 6)})
    assert [(l.name, l.tokens, l.k, l.n_out, l.count) for l in net] == [
        ("conv", 2 * 5 * 7, 36, 5, 1), ("fc", 2, 175, 7, 1)]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.ValueInfoProto(name=t) for t in ("pads", "c"))
    _, pads, c = ReferenceEvaluator(probe).run(None, {"x": np.zeros((2, 4, 6, 6), np.float32)})
    assert list(pads) == [0, 0, 1, 1, 0, 0, 0, 2] and c.shape == (2, 5, 5, 7)
    assert import_onnx(model, batch=3).layers[0].tokens == 3 * 5 * 7
    monkeypatch.setattr(_oi, "FOLD_ROUNDS", 0)
    with pytest.raises(OnnxError, match=r"tensor 'xp' \(used by Conv node 'conv'\) has shape .*only static"):
        import_onnx(model, input_shapes={"x": (2, 4, 6, 6)})


def test_fold_limit_keeps_large_constants_out(monkeypatch):
    """Only outputs of at most FOLD_MAX_ELEMENTS elements are folded: the chain above still
    imports with the limit at its largest shape tensor (8 elements), and not below it."""
    monkeypatch.setattr(_oi, "FOLD_MAX_ELEMENTS", 8)
    assert import_onnx(_folding_model(), batch=1).macs() == 35 * 36 * 5 + 175 * 7
    monkeypatch.setattr(_oi, "FOLD_MAX_ELEMENTS", 7)
    with pytest.raises(OnnxError, match="only static"):
        import_onnx(_folding_model(), batch=1)


@pytest.mark.parametrize("dim", ["N", -1, 0, None])
def test_batch_fills_a_free_dimension_zero(dim):
    """--batch sets dim 0 when the file leaves it free: symbolic, -1, 0 or absent."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [dim, 16])
    if dim is None:
        x.type.tensor_type.shape.dim[0].Clear()
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], [x],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [_init("w", (16, 8))])
    assert [(l.tokens, l.k, l.n_out) for l in import_onnx(model, batch=5)] == [(5, 16, 8)]
    with pytest.raises(OnnxError, match=r"has a dynamic shape .*--input-shape x=d0,d1,\.\.\. \(API: "
                                        r"input_shapes=\{'x': \(d0, d1, \.\.\.\)\}\) or set the batch \(--batch N"):
        import_onnx(model)


def test_batch_refused_for_fixed_or_bad_batch():
    model = _tiny()
    with pytest.raises(OnnxError, match=r"batch = 2 is not allowed: no graph input has a free batch dimension"):
        import_onnx(model, batch=2)
    for bad in (0, True, 1.5):
        with pytest.raises(OnnxError, match=r"batch = .* is not allowed: must be a positive integer"):
            import_onnx(_folding_model(), batch=bad)


def _nm_weight(n, m, rows, k, seed=0):
    """A random [rows, k] weight with exactly n nonzeros in every group of m along k."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, k)).astype(np.float32) + 3.0
    groups = w.reshape(rows, k // m, m)
    drop = np.argsort(rng.random(groups.shape), axis=-1)[..., : m - n]
    np.put_along_axis(groups, drop, 0.0, axis=-1)
    return groups.reshape(rows, k)


def test_nm_patterns_in_the_weights_are_detected():
    """GemmLayer.nm comes from the weights' own zeros, read in the sparseforge [n_out, K]
    layout: a MatMul's B[K, N] is transposed (a pattern along N is not along K), a Gemm with
    transB reads B as is, a conv weight [out, in, kh, kw] flattens in the order in, kh, kw;
    dense weights have none; attention GEMMs carry no weight."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])
    img = helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 8, 5, 5])
    outs = [helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in ("y", "z", "s", "c")]
    w_mm = _nm_weight(2, 4, 16, 32)          # [n_out, K]: stored as B = W^T [32, 16]
    b_along_n = _nm_weight(1, 4, 32, 16)     # B[K=32, N=16] whose zeros run along N: not along K
    w_gemm = _nm_weight(1, 8, 16, 32)        # Gemm transB: B is [N, K] = W
    w_conv = _nm_weight(2, 8, 6, 8 * 9).reshape(6, 8, 3, 3)
    nodes = [helper.make_node("MatMul", ["x", "b_mm"], ["y"], name="mm"),
             helper.make_node("MatMul", ["x", "b_n"], ["z0"], name="along_n"),
             helper.make_node("Gemm", ["x", "b_g"], ["z"], name="gemm", transB=1),
             helper.make_node("Gemm", ["y", "dense"], ["s"], name="dense_fc"),
             helper.make_node("Conv", ["img", "w_c"], ["c"], name="conv", kernel_shape=[3, 3])]
    inits = [numpy_helper.from_array(w_mm.T.copy(), "b_mm"), numpy_helper.from_array(b_along_n, "b_n"),
             numpy_helper.from_array(w_gemm, "b_g"), numpy_helper.from_array(w_conv, "w_c"),
             numpy_helper.from_array(np.ones((16, 16), np.float32), "dense")]
    res = read_onnx(_model(nodes, [x, img], outs, inits))
    from sparseforge.models.nm_detect import detect_nm

    got = {l.name: l.nm for l in res.network}
    assert got.pop("along_n") != (1, 4) and detect_nm(b_along_n) == (1, 4)   # read untransposed it would be
    assert got == {"mm": (2, 4), "gemm": (1, 8), "dense_fc": None, "conv": (2, 8)}
    np.testing.assert_array_equal(res.weights["mm"], w_mm)
    np.testing.assert_array_equal(res.weights["conv"], w_conv.reshape(6, -1))


def test_dequantized_weights_feed_detection():
    """A QDQ weight (int8 with a zero point, DequantizeLinear) is seen dequantized: pruned
    entries (q == zero point) are exact zeros, so its 2:4 pattern is found; the scale and
    zero point are reported."""
    w = _nm_weight(2, 4, 8, 16, seed=3)
    scale, zp = np.float32(0.05), np.int8(3)
    q = (np.clip(np.round(w.T / scale), -100, 100) + zp).astype(np.int8)     # B[K, N]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])
    nodes = [helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["b"]),
             helper.make_node("MatMul", ["x", "b"], ["y"], name="fc")]
    inits = [numpy_helper.from_array(q, "q"), numpy_helper.from_array(np.array(scale), "s"),
             numpy_helper.from_array(np.array(zp), "zp")]
    res = read_onnx(_model(nodes, [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits))
    layer = res.network.layer("fc")
    assert layer.nm == (2, 4) and layer.prunable
    np.testing.assert_allclose(res.weights["fc"], (q.astype(np.float32) - zp).T * scale)
    qi = res.quant["fc"]
    assert qi.form == "QDQ" and qi.weight_dtype == "int8" and qi.weight_scale == scale and qi.weight_zero_point == zp


def test_matmulinteger_and_qlinearmatmul_weights_use_zero_point_and_scale():
    """QOperator weights: MatMulInteger's B minus its zero point, times the constant scale of
    the Mul that follows (onnxruntime's dynamic form); QLinearMatMul's b with b_scale and
    b_zero_point per column. Pruned entries (q == zero point) are zeros: 2:4 is found."""
    w = _nm_weight(2, 4, 8, 16, seed=5)                              # [n_out, K]
    scale, zp = np.float32(0.02), np.int8(-7)
    q = (np.clip(np.round(w.T / scale), -100, 100) + zp).astype(np.int8)   # B[K, N]
    a = helper.make_tensor_value_info("a", TensorProto.UINT8, [3, 16])
    a_scale = helper.make_tensor_value_info("a_scale", TensorProto.FLOAT, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("MatMulInteger", ["a", "b", "a_zp", "b_zp"], ["acc"], name="mmi"),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["a_scale", "b_scale"], ["s"]),
             helper.make_node("Mul", ["accf", "s"], ["y"])]
    inits = [numpy_helper.from_array(q, "b"), numpy_helper.from_array(np.array(zp), "b_zp"),
             numpy_helper.from_array(np.array(128, np.uint8), "a_zp"), numpy_helper.from_array(np.array(scale), "b_scale")]
    res = read_onnx(_model(nodes, [a, a_scale], [y], inits))
    layer = res.network.layer("mmi")
    assert (layer.tokens, layer.k, layer.n_out, layer.nm) == (3, 16, 8, (2, 4))
    np.testing.assert_allclose(res.weights["mmi"], (q.astype(np.float32) - zp).T * scale, rtol=1e-6)
    assert res.quant["mmi"].weight_scale == scale and res.quant["mmi"].weight_zero_point == zp

    scales = np.linspace(0.01, 0.02, 8).astype(np.float32)               # per column of B
    zps = np.arange(-4, 4).astype(np.int8)
    qb = (np.clip(np.round(w.T / scales), -100, 100) + zps).astype(np.int8)
    x8 = helper.make_tensor_value_info("x8", TensorProto.INT8, [3, 16])
    nodes = [helper.make_node("QLinearMatMul", ["x8", "xs", "xz", "qb", "bs", "bz", "ys", "yz"], ["y8"], name="qmm")]
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "xs"), numpy_helper.from_array(np.array(0, np.int8), "xz"),
             numpy_helper.from_array(qb, "qb"), numpy_helper.from_array(scales, "bs"),
             numpy_helper.from_array(zps, "bz"), numpy_helper.from_array(np.array(0.5, np.float32), "ys"),
             numpy_helper.from_array(np.array(0, np.int8), "yz")]
    res = read_onnx(_model(nodes, [x8], [helper.make_tensor_value_info("y8", TensorProto.INT8, None)], inits, opset=21))
    np.testing.assert_allclose(res.weights["qmm"], ((qb.astype(np.float32) - zps) * scales).T, rtol=1e-6)
    assert res.network.layer("qmm").nm == (2, 4) and res.quant["qmm"].output_scale == np.float32(0.5)


def test_input_layers_are_the_gemms_fed_by_the_raw_input():
    """The layers that read a graph input through weight-free operators (pads, normalisation
    by constants) are the network's input layers, which the default sparsity rule keeps dense;
    a transformer fed token ids through an embedding table (Gather of a constant) has none."""
    from sparseforge.models.network import sparsity_plan

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    cnn = _model([helper.make_node("Sub", ["x", "mean"], ["xn"]),
                  helper.make_node("Pad", ["xn", "pads"], ["xp"]),
                  helper.make_node("Conv", ["xp", "w1"], ["c1"], name="stem"),
                  helper.make_node("Relu", ["c1"], ["r1"]),
                  helper.make_node("Conv", ["r1", "w2"], ["y"], name="body", pads=[1, 1, 1, 1])],
                 [x], [y], [_init("mean", [1, 3, 1, 1]), numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1]),
                                                                                  "pads"),
                            _init("w1", [8, 3, 3, 3]), _init("w2", [8, 8, 3, 3])])
    net = import_onnx(cnn)
    assert [l.name for l in net] == ["stem", "body"] and net.input_layers == ("stem",)
    assert [ls.reason for ls in sparsity_plan(net, (2, 4))] == ["rule:first", "sparsity"]

    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 16])
    bert = _model([helper.make_node("Gather", ["table", "ids"], ["e"]),
                   helper.make_node("MatMul", ["e", "wq"], ["q"], name="layer0.q"),
                   helper.make_node("MatMul", ["q", "wo"], ["y"], name="layer0.o")],
                  [ids], [y], [_init("table", [100, 32]), _init("wq", [32, 32]), _init("wo", [32, 32])])
    net = import_onnx(bert)
    assert net.input_layers == ()
    assert [ls.reason for ls in sparsity_plan(net, (2, 4))] == ["sparsity", "sparsity"]
