"""Import a user's network from an ONNX file as a list of GEMMs (a :class:`Network`).

Needs the ``onnx`` package (imported when :func:`import_onnx` is called, so importing
this module is free). Steps:

1. Graph inputs that are not initializers are the real inputs; every one of their dims
   must be static (``input_shapes`` can fix them), otherwise ValueError naming the tensor.
2. ONNX shape inference (strict, with data propagation) gives every tensor's shape.
3. Constants are found by propagation: initializers (also when listed as graph inputs, as
   in IR < 4 models), ``Constant`` outputs, and outputs of any node whose inputs are all
   constant (e.g. ``ConstantOfShape`` in the onnx "light" test models, weight reshapes,
   batch-norm parameter arithmetic). Such nodes are folded away, whatever their type.
4. Every other node is either lowered to a GEMM or passed through if it is in
   :data:`PASS_THROUGH_OPS` (elementwise, normalisation, pooling, shape ops: they change
   shapes or values but are not GEMMs). Any other operator raises ValueError naming the
   operator type and the node.

Lowering (sparseforge convention ``Y[T, n_out] = X[T, K] @ W[n_out, K]^T``):

* ``Conv`` (any spatial rank, strides, pads, dilations, auto_pad, groups): im2col GEMM,
  ``tokens = N * prod(output spatial)`` (taken from shape inference),
  ``k = C_in/group * prod(kernel)``, ``n_out = C_out/group``, ``count = group`` (a
  depthwise conv is ``count = C`` GEMMs of one output channel). Kind ``"conv"``, prunable
  when the weight is a constant.
* ``Gemm`` (``transA``/``transB`` honoured) and ``MatMul`` (NumPy broadcasting, 1-D
  operands): with a constant right operand ``B[K, N]`` a ``"linear"`` layer with
  ``tokens`` = all rows of ``A``, ``k = K``, ``n_out = N``; with a constant left operand
  the transposed product (``Y^T = B^T A^T``: ``tokens = N``, ``n_out = M``); with two
  activations an ``"attention"`` layer (not prunable), ``count`` = broadcast batch size.

Layer names are the node names (the first output name when a node has none), made unique
with a ``#i`` suffix; a layer's ``group`` is its operator type.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

from .network import GemmLayer, Network

__all__ = ["import_onnx", "PASS_THROUGH_OPS", "GEMM_OPS"]

#: Operators lowered to GEMMs.
GEMM_OPS = ("Conv", "Gemm", "MatMul")

#: Operators that are not GEMMs and are passed through (their shapes come from ONNX shape
#: inference; their cost is not modelled).
PASS_THROUGH_OPS = frozenset({
    # activations / elementwise
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Softplus", "Softsign", "Gelu", "Erf", "Clip", "Mish", "Swish",
    "Add", "Sub", "Mul", "Div", "Sum", "Mean", "Max", "Min", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Exp",
    "Log", "Cast", "Where", "Equal", "Less", "Greater", "Not",
    # normalisation
    "BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization", "LRN",
    # pooling and reductions
    "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "ReduceMean", "ReduceSum",
    "ReduceMax", "ReduceMin",
    # shape / data movement
    "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather",
    "Shape", "Expand", "Pad", "Resize", "Upsample", "Tile", "DepthToSpace", "SpaceToDepth",
    # outputs / no-ops
    "Softmax", "LogSoftmax", "Dropout", "Identity", "Constant", "ConstantOfShape",
})


def _load(model: Any):
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model, model.graph.name or "onnx"
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ONNX file {path!r} does not exist")
        stem = os.path.splitext(os.path.basename(path))[0]
        return onnx.load(path), stem
    raise ValueError(f"model of type {type(model).__name__} is not allowed: give a path or an onnx.ModelProto")


def _dims(vi) -> list[int | str | None]:
    out: list[int | str | None] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def _fix_inputs(model, input_shapes: Mapping[str, Sequence[int]] | None) -> None:
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    real = [i for i in graph.input if i.name not in inits]
    by_name = {i.name: i for i in real}
    for name, shape in (input_shapes or {}).items():
        if name not in by_name:
            raise ValueError(f"input_shapes: {name!r} is not allowed: the graph inputs are "
                             f"{', '.join(sorted(by_name)) or '(none)'}")
        shape = tuple(shape)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape):
            raise ValueError(f"input_shapes[{name!r}] = {shape!r} is not allowed: must be positive integers")
        tshape = by_name[name].type.tensor_type.shape
        if len(tshape.dim) not in (0, len(shape)):
            raise ValueError(f"input_shapes[{name!r}] = {shape!r} is not allowed: the input has rank {len(tshape.dim)}")
        del tshape.dim[:]
        for s in shape:
            tshape.dim.add().dim_value = s
    for vi in real:
        if not vi.type.HasField("tensor_type"):
            raise ValueError(f"graph input {vi.name!r} is not a tensor: not supported")
        dims = _dims(vi)
        if not vi.type.tensor_type.HasField("shape"):
            raise ValueError(f"tensor {vi.name!r} (graph input) has no static shape: "
                             f"pass input_shapes={{{vi.name!r}: (...)}}")
        bad = [i for i, d in enumerate(dims) if not isinstance(d, int) or d < 1]
        if bad:
            raise ValueError(
                f"tensor {vi.name!r} (graph input) has a dynamic shape {dims} (dim {bad[0]} is "
                f"{dims[bad[0]]!r}): only static shapes are supported; pass input_shapes={{{vi.name!r}: (...)}}")


def import_onnx(model: Any, *, name: str | None = None,
                input_shapes: Mapping[str, Sequence[int]] | None = None) -> Network:
    """Lower the ONNX model ``model`` (a path or an ``onnx.ModelProto``) to a :class:`Network`
    of its GEMMs, in graph order. ``name`` defaults to the file stem (or the graph name);
    ``input_shapes`` maps graph input names to static shapes, replacing what the file says.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an operator that is neither a GEMM nor in :data:`PASS_THROUGH_OPS` (the
            message names the operator type and the node), a dynamic or unknown shape (the
            message names the tensor), shape inference failing, or a model without GEMMs.
    """
    import onnx
    from onnx import shape_inference

    proto, stem = _load(model)
    proto_copy = onnx.ModelProto()
    proto_copy.CopyFrom(proto)
    _fix_inputs(proto_copy, input_shapes)
    try:
        inferred = shape_inference.infer_shapes(proto_copy, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError / ValidationError subclasses
        raise ValueError(f"ONNX shape inference failed: {exc}") from exc
    graph = inferred.graph
    shapes: dict[str, list] = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            shapes[vi.name] = _dims(vi)
    const: set[str] = set()
    for init in graph.initializer:
        const.add(init.name)
        shapes[init.name] = [int(d) for d in init.dims]

    def shape_of(tensor: str, node_desc: str) -> list[int]:
        dims = shapes.get(tensor)
        if dims is None:
            raise ValueError(f"tensor {tensor!r} (used by {node_desc}) has no inferred shape: only static "
                             "shapes are supported")
        if not all(isinstance(d, int) and d >= 1 for d in dims):
            raise ValueError(f"tensor {tensor!r} (used by {node_desc}) has a dynamic shape {dims}: only static "
                             "shapes are supported")
        return dims

    layers: list[GemmLayer] = []
    used: set[str] = set()

    def add(node, i: int, **kw) -> None:
        base = node.name or (node.output[0] if node.output else f"{node.op_type}_{i}")
        lname, j = base, 1
        while lname in used:
            lname, j = f"{base}#{j}", j + 1
        used.add(lname)
        layers.append(GemmLayer(name=lname, group=node.op_type, **kw))

    for i, node in enumerate(graph.node):
        op = node.op_type
        desc = f"{op} node {node.name or (node.output[0] if node.output else i)!r}"
        inputs = [t for t in node.input if t]
        if node.domain not in ("", "ai.onnx"):
            raise ValueError(f"operator {op!r} of domain {node.domain!r} ({desc}) is not supported")
        if op == "Constant" or (inputs and all(t in const for t in inputs)):
            const.update(t for t in node.output if t)  # folded: computes on constants only
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if op == "Conv":
            x, w = shape_of(node.input[0], desc), shape_of(node.input[1], desc)
            y = shape_of(node.output[0], desc)
            group = int(attrs.get("group", 1))
            c_out, c_in_g = w[0], w[1]
            if c_out % group:
                raise ValueError(f"{desc}: {c_out} output channels are not divisible by group = {group}")
            add(node, i, tokens=x[0] * math.prod(y[2:]), k=c_in_g * math.prod(w[2:]), n_out=c_out // group,
                count=group, kind="conv", prunable=node.input[1] in const)
        elif op in ("Gemm", "MatMul"):
            a_name, b_name = node.input[0], node.input[1]
            a, b = shape_of(a_name, desc), shape_of(b_name, desc)
            if op == "Gemm":
                if attrs.get("transA", 0):
                    a = a[::-1]
                if attrs.get("transB", 0):
                    b = b[::-1]
                batch = 1
                (m, k), (_, n) = a, b
            else:
                a2 = [1] + a if len(a) == 1 else a
                b2 = b + [1] if len(b) == 1 else b
                m, k, n = a2[-2], a2[-1], b2[-1]
                ba, bb = a2[:-2], b2[:-2]
                batch = math.prod(ba) if len(bb) == 0 else math.prod(_broadcast(ba, bb, desc))
                if len(bb) == 0 and b_name in const:  # X[..., M, K] @ W[K, N]: fold batch into rows
                    m, batch = m * batch, 1
            if b_name in const:
                add(node, i, tokens=m, k=k, n_out=n, count=batch, kind="linear", prunable=True)
            elif a_name in const:
                add(node, i, tokens=n, k=k, n_out=m, count=batch, kind="linear", prunable=True)
            else:
                add(node, i, tokens=m, k=k, n_out=n, count=batch, kind="attention", prunable=False)
        elif op in PASS_THROUGH_OPS:
            continue
        else:
            raise ValueError(
                f"operator {op!r} ({desc}) is not supported: sparseforge lowers {', '.join(GEMM_OPS)} to GEMMs "
                f"and passes through {len(PASS_THROUGH_OPS)} shape-only operators (see PASS_THROUGH_OPS)")
    if not layers:
        raise ValueError("the ONNX model has no Conv, Gemm or MatMul on activations: nothing to lower")
    return Network(name=name or stem, layers=tuple(layers))


def _broadcast(a: list[int], b: list[int], desc: str) -> list[int]:
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            raise ValueError(f"{desc}: batch dims {a} and {b} do not broadcast")
        out.append(max(x, y))
    return out[::-1]
