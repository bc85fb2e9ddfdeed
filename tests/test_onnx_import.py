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
