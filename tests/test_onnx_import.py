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
