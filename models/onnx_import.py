"""Import a user's network from an ONNX file as a list of GEMMs (a :class:`Network`).

Needs the ``onnx`` and ``networkx`` packages (imported when :func:`import_onnx` is called,
so importing this module is free). Steps:

1. Reading (a path): the file must be a regular file of at most :data:`MAX_FILE_BYTES`
   (protobuf's limit) that parses as an ONNX ``ModelProto`` with graph nodes, an
   ``ir_version`` and (IR >= 3) an operator set for the default domain; a truncated file,
   random bytes or another format fail here. Tensors stored in external data files are
   checked: each file must lie inside the model's folder, exist, and hold the tensor's byte
   range. Only small external tensors (at most :data:`EXTERNAL_READ_BYTES`: shape tensors
   that shape inference may read) are loaded; the importer needs the weights' shapes only,
   so large weight files are never read into memory.
2. Graph inputs that are not initializers are the real inputs; every one of their dims
   must be static (``input_shapes`` can fix them), otherwise an error naming the tensor. No
   graph input may hold more than :data:`MAX_TENSOR_ELEMENTS` elements: checked before
   shape inference runs.
3. The dataflow graph (a ``networkx.DiGraph``: an edge from the node that writes a tensor
   to every node that reads it) gives a topological order of the nodes: the file's own
   order whenever that is one, so files whose nodes are out of order import too. A tensor
   that nothing defines, a tensor written twice and a cycle are errors naming the tensor
   or the nodes.
4. ONNX shape inference (strict, with data propagation) gives every tensor's shape; no
   tensor may exceed :data:`MAX_TENSOR_ELEMENTS` elements.
5. Constants are found by propagation: initializers (also when listed as graph inputs, as
   in IR < 4 models), ``Constant`` outputs, and outputs of any node whose inputs are all
   constant (e.g. ``ConstantOfShape`` in the onnx "light" test models, weight reshapes,
   batch-norm parameter arithmetic). Such nodes are folded away, whatever their type.
6. Every other node is either lowered to a GEMM or passed through if it is in
   :data:`PASS_THROUGH_OPS` (elementwise, normalisation, pooling, shape ops: they change
   shapes or values but are not GEMMs). Any other operator is an error naming the
   operator type and the node.

Lowering (sparseforge convention ``Y[T, n_out] = X[T, K] @ W[n_out, K]^T``):

* ``Conv`` (any spatial rank, strides, pads, dilations, auto_pad, groups): im2col GEMM,
  ``tokens = N * prod(output spatial)`` (taken from shape inference),
  ``k = C_in/group * prod(kernel)``, ``n_out = C_out/group``, ``count = group`` (a
  depthwise conv is ``count = C`` GEMMs of one output channel). Kind ``"conv"``, prunable
  when the weight is a constant. ``group`` must be a positive divisor of both channel
  counts, and the weight must have ``C_in/group`` input channels.
* ``Gemm`` (``transA``/``transB`` honoured) and ``MatMul`` (NumPy broadcasting, 1-D
  operands): with a constant right operand ``B[K, N]`` a ``"linear"`` layer with
  ``tokens`` = all rows of ``A``, ``k = K``, ``n_out = N``; with a constant left operand
  the transposed product (``Y^T = B^T A^T``: ``tokens = N``, ``n_out = M``); with two
  activations an ``"attention"`` layer (not prunable), ``count`` = broadcast batch size.
  No GEMM operand (the im2col matrix of a Conv included) may exceed
  :data:`MAX_TENSOR_ELEMENTS` elements.

Layer names are the node names (the first output name when a node has none), made unique
with a ``#i`` suffix; a layer's ``group`` is its operator type.

Errors: every problem with the model raises :class:`OnnxError` (an
:class:`~sparseforge.errors.InputError`, so a ``ValueError``), one line that starts with
the file's path (or ``ONNX model 'graph name'``) and says what is wrong; a missing file
raises :class:`OnnxFileNotFoundError`, which is also a ``FileNotFoundError``.
"""

from __future__ import annotations

import math
import os
from pathlib import PurePath
from typing import Any, Iterator, Mapping, Sequence

from sparseforge.errors import InputError

from .network import GemmLayer, Network

__all__ = ["import_onnx", "OnnxError", "OnnxFileNotFoundError", "PASS_THROUGH_OPS", "GEMM_OPS",
           "MAX_TENSOR_ELEMENTS", "MAX_FILE_BYTES", "EXTERNAL_READ_BYTES"]

#: The most elements one tensor (a graph input, any inferred tensor, an initializer) or one
#: GEMM operand (a Conv's im2col matrix included) may have: 2**32, i.e. 16 GiB in float32.
#: An assumption, not a hardware limit: it is over 1000x the largest activation of the
#: built-in networks (VGG-19's first conv output, 64 x 224 x 224 = 3.2 M elements per image)
#: and refuses absurd requests such as ``--input-shape X=1000000000000,16`` up front, before
#: shape inference or any simulator sizes anything from them.
MAX_TENSOR_ELEMENTS = 2**32

#: The largest ONNX file that is read: protobuf cannot parse a message of 2 GiB or more
#: (larger models keep their weights in external data files).
MAX_FILE_BYTES = 2**31 - 1

#: External-data tensors of at most this many bytes are read (shape inference may need
#: their values: Reshape targets, Slice bounds); larger ones are weights, whose shapes
#: alone matter here, and are only checked to be present.
EXTERNAL_READ_BYTES = 1 << 20


class OnnxError(InputError):
    """A malformed, unsupported or absurdly large ONNX model: one line that names the file
    (or the in-memory model) and what is wrong."""


class OnnxFileNotFoundError(OnnxError, FileNotFoundError):
    """The ONNX file does not exist (both an :class:`OnnxError` and a ``FileNotFoundError``)."""


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


def _one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (ONNX and protobuf messages may span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _elements_ok(what: str, dims: Sequence[int]) -> None:
    n = math.prod(dims)
    if n > MAX_TENSOR_ELEMENTS:
        raise OnnxError(f"{what} has shape {list(dims)}: {n} elements is more than the {MAX_TENSOR_ELEMENTS} "
                        "allowed for one tensor (MAX_TENSOR_ELEMENTS)")


def _read(path: str):
    """The ``ModelProto`` in the file ``path`` (step 1 of the module docstring)."""
    import onnx
    from google.protobuf.message import DecodeError

    if not os.path.lexists(path):
        raise OnnxFileNotFoundError("no such file")
    if os.path.isdir(path):
        raise OnnxError("a folder, not an ONNX file")
    if not os.path.isfile(path):  # a fifo or device would block or never end
        raise OnnxError("not a regular file (a device, a fifo or a broken link): give an .onnx file")
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise OnnxError(f"{size} bytes: more than the {MAX_FILE_BYTES} bytes protobuf can parse "
                        "(keep large weights in external data files)")
    try:
        proto = onnx.load(path, load_external_data=False)
    except DecodeError as exc:
        raise OnnxError(f"not an ONNX model: protobuf cannot parse it ({_one_line(exc)}); "
                        "is it truncated or in another format?") from None
    except OSError as exc:
        raise OnnxError(f"cannot read it: {exc.strerror or _one_line(exc)}") from None
    _check_model(proto)
    _external_data(proto, os.path.dirname(os.path.abspath(path)))
    return proto


def _check_model(proto) -> None:
    if not proto.HasField("graph") or not proto.graph.node:
        raise OnnxError("not an ONNX model: it has no graph nodes (an empty, truncated or foreign file?)")
    if proto.ir_version < 1:
        raise OnnxError("not an ONNX model: it has no ir_version")
    if proto.ir_version >= 3 and not any(o.domain in ("", "ai.onnx") for o in proto.opset_import):
        raise OnnxError(f"no opset_import for the default ONNX domain (IR version {proto.ir_version} "
                        "needs one): is the file truncated?")


def _all_tensors(graph) -> Iterator[Any]:
    """Every TensorProto stored in ``graph``: initializers, attribute tensors, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def _external_data(proto, base: str) -> None:
    """Check every external-data tensor's file and byte range; load the small ones."""
    import numpy as np
    from onnx import external_data_helper as edh
    from onnx import helper

    for tensor in _all_tensors(proto.graph):
        if not edh.uses_external_data(tensor):
            continue
        what = f"tensor {tensor.name!r}"
        _elements_ok(what, tensor.dims)
        try:
            info = edh.ExternalDataInfo(tensor)
        except ValueError as exc:
            raise OnnxError(f"{what}: its external data entry is not valid: {_one_line(exc)}") from None
        loc = info.location
        if not loc or os.path.isabs(loc) or ".." in PurePath(loc).parts or "\\" in loc:
            raise OnnxError(f"{what}: external data location {loc!r} is not allowed: it must be a "
                            "relative path inside the model's folder")
        file = os.path.join(base, loc)
        if not os.path.isfile(file):
            raise OnnxError(f"{what}: its external data file {loc!r} is missing (looked in {base})")
        offset = info.offset or 0
        try:
            nbytes = math.prod(tensor.dims) * np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
        except (KeyError, TypeError, ValueError):  # string or unknown element type: trust the entry
            nbytes = None
        length = info.length if info.length is not None else nbytes
        have = os.path.getsize(file)
        if length is not None and offset + length > have:
            raise OnnxError(f"{what}: its external data file {loc!r} has {have} bytes, but the tensor needs "
                            f"bytes {offset} to {offset + length}: the file is truncated or the wrong one")
        if length is not None and length <= EXTERNAL_READ_BYTES:
            try:
                edh.load_external_data_for_tensor(tensor, base)
            except Exception as exc:  # onnx raises ValueError, OSError or its ValidationError here
                raise OnnxError(f"{what}: its external data in {loc!r} cannot be read: {_one_line(exc)}") from None


def _load(model: Any) -> tuple[Any, str, str]:
    """``(proto, default name, where)``: ``where`` starts every error message."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        where = f"ONNX model {model.graph.name or '(unnamed)'!r}"
        try:
            _check_model(model)
        except OnnxError as exc:
            raise OnnxError(f"{where}: {exc}") from None
        return model, model.graph.name or "onnx", where
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not isinstance(path, str) or not path:
            raise OnnxError(f"ONNX file {path!r} is not allowed: give a non-empty path")
        try:
            proto = _read(path)
        except OnnxError as exc:
            raise type(exc)(f"{path}: {exc}") from None
        stem = os.path.splitext(os.path.basename(path))[0] or "onnx"
        return proto, stem, path
    raise OnnxError(f"model of type {type(model).__name__} is not allowed: give a path or an onnx.ModelProto")


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
            raise OnnxError(f"input_shapes: {name!r} is not allowed: the graph inputs are "
                            f"{', '.join(sorted(by_name)) or '(none)'}")
        shape = tuple(shape)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape):
            raise OnnxError(f"input_shapes[{name!r}] = {shape!r} is not allowed: must be positive integers")
        _elements_ok(f"input_shapes[{name!r}]", shape)  # before any dim reaches protobuf or shape inference
        tshape = by_name[name].type.tensor_type.shape
        if len(tshape.dim) not in (0, len(shape)):
            raise OnnxError(f"input_shapes[{name!r}] = {shape!r} is not allowed: the input has rank {len(tshape.dim)}")
        del tshape.dim[:]
        for s in shape:
            tshape.dim.add().dim_value = s
    for vi in real:
        if not vi.type.HasField("tensor_type"):
            raise OnnxError(f"graph input {vi.name!r} is not a tensor: not supported")
        dims = _dims(vi)
        if not vi.type.tensor_type.HasField("shape"):
            raise OnnxError(f"tensor {vi.name!r} (graph input) has no static shape: "
                            f"pass input_shapes={{{vi.name!r}: (...)}}")
        bad = [i for i, d in enumerate(dims) if not isinstance(d, int) or d < 1]
        if bad:
            raise OnnxError(
                f"tensor {vi.name!r} (graph input) has a dynamic shape {dims} (dim {bad[0]} is "
                f"{dims[bad[0]]!r}): only static shapes are supported; pass input_shapes={{{vi.name!r}: (...)}}")
        _elements_ok(f"graph input {vi.name!r}", dims)


def _node_desc(node, i: int) -> str:
    return f"{node.op_type} node {node.name or (node.output[0] if node.output else i)!r}"


def _topological_order(graph) -> list[int]:
    """Indices of ``graph.node`` in a topological order of the dataflow graph (a
    ``networkx.DiGraph``, an edge per tensor from its writer to each reader); among the
    nodes that are ready, the earliest in the file comes first, so a file already in
    topological order keeps its order."""
    import networkx as nx

    outside = ({t.name for t in graph.input} | {t.name for t in graph.initializer}
               | {s.values.name for s in graph.sparse_initializer})
    writer: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for t in node.output:
            if not t:
                continue
            if t in writer:
                raise OnnxError(f"tensor {t!r} is written by both {_node_desc(graph.node[writer[t]], writer[t])} "
                                f"and {_node_desc(node, i)}: every tensor must have one writer")
            if t in outside:
                raise OnnxError(f"tensor {t!r} is a graph input or initializer and also written by "
                                f"{_node_desc(node, i)}: every tensor must have one writer")
            writer[t] = i
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(graph.node)))
    for i, node in enumerate(graph.node):
        for t in node.input:
            if not t or t in outside:
                continue
            if t not in writer:
                raise OnnxError(f"{_node_desc(node, i)} reads tensor {t!r}, which no node, graph input or "
                                "initializer defines")
            dag.add_edge(writer[t], i)
    for out in graph.output:
        if out.name not in writer and out.name not in outside:
            raise OnnxError(f"graph output {out.name!r} is not written by any node")
    try:
        return list(nx.lexicographical_topological_sort(dag))
    except nx.NetworkXUnfeasible:
        cycle = [_node_desc(graph.node[u], u) for u, _ in nx.find_cycle(dag)]
        raise OnnxError(f"the graph has a cycle: {' -> '.join(cycle + cycle[:1])}") from None


def import_onnx(model: Any, *, name: str | None = None,
                input_shapes: Mapping[str, Sequence[int]] | None = None) -> Network:
    """Lower the ONNX model ``model`` (a path or an ``onnx.ModelProto``) to a :class:`Network`
    of its GEMMs, in a topological order of the graph (the file's order when it is one).
    ``name`` defaults to the file stem (or the graph name); ``input_shapes`` maps graph
    input names to static shapes, replacing what the file says.

    Raises:
        OnnxFileNotFoundError: no such file (also a ``FileNotFoundError``).
        OnnxError: (a ``ValueError``) a file that is not a complete ONNX model, missing
            external data, a tensor that nothing defines or a cycle, an operator that is
            neither a GEMM nor in :data:`PASS_THROUGH_OPS` (the message names the operator
            type and the node), a dynamic or unknown shape (the message names the tensor),
            a Conv whose ``group`` does not divide its channels, a tensor over
            :data:`MAX_TENSOR_ELEMENTS`, shape inference failing, or a model without GEMMs.
            The message is one line that starts with the path (or ``ONNX model 'name'``).
    """
    proto, stem, where = _load(model)
    try:
        return Network(name=name or stem, layers=_lower(proto, input_shapes))
    except OnnxError as exc:
        raise OnnxError(f"{where}: {exc}") from None


def _lower(proto, input_shapes: Mapping[str, Sequence[int]] | None) -> tuple[GemmLayer, ...]:
    import onnx
    from onnx import shape_inference

    proto_copy = onnx.ModelProto()
    proto_copy.CopyFrom(proto)
    _fix_inputs(proto_copy, input_shapes)
    order = _topological_order(proto_copy.graph)
    if order != sorted(order):  # out of order in the file: shape inference needs writers first
        nodes = [proto_copy.graph.node[i] for i in order]
        sorted_nodes = [onnx.NodeProto() for _ in nodes]
        for dst, src in zip(sorted_nodes, nodes):
            dst.CopyFrom(src)
        del proto_copy.graph.node[:]
        proto_copy.graph.node.extend(sorted_nodes)
    try:
        inferred = shape_inference.infer_shapes(proto_copy, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError / ValidationError subclasses
        raise OnnxError(f"ONNX shape inference failed: {_one_line(exc)}") from None
    graph = inferred.graph
    shapes: dict[str, list] = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            shapes[vi.name] = _dims(vi)
    const: set[str] = set()
    for init in graph.initializer:
        const.add(init.name)
        shapes[init.name] = [int(d) for d in init.dims]
    for tname, dims in shapes.items():
        if all(isinstance(d, int) and d >= 1 for d in dims):
            _elements_ok(f"tensor {tname!r}", dims)

    def shape_of(tensor: str, node_desc: str) -> list[int]:
        dims = shapes.get(tensor)
        if dims is None:
            raise OnnxError(f"tensor {tensor!r} (used by {node_desc}) has no inferred shape: only static "
                            "shapes are supported")
        if not all(isinstance(d, int) and d >= 1 for d in dims):
            raise OnnxError(f"tensor {tensor!r} (used by {node_desc}) has shape {dims}: only static shapes with "
                            "positive sizes are supported")
        return dims

    layers: list[GemmLayer] = []
    used: set[str] = set()

    def add(node, i: int, desc: str, **kw) -> None:
        count, tokens, k, n_out = kw["count"], kw["tokens"], kw["k"], kw["n_out"]
        for operand, rows, cols in (("X", tokens, k), ("W", n_out, k), ("Y", tokens, n_out)):
            if count * rows * cols > MAX_TENSOR_ELEMENTS:
                raise OnnxError(
                    f"{desc}: its GEMM operand {operand} ({count} x {rows} x {cols}) has {count * rows * cols} "
                    f"elements, more than the {MAX_TENSOR_ELEMENTS} allowed for one tensor (MAX_TENSOR_ELEMENTS)")
        base = node.name or (node.output[0] if node.output else f"{node.op_type}_{i}")
        if not isinstance(base, str):  # protobuf hands back bytes for a name that is not UTF-8
            raise OnnxError(f"{desc}: its name {base!r} is not valid UTF-8")
        lname, j = base, 1
        while lname in used:
            lname, j = f"{base}#{j}", j + 1
        used.add(lname)
        layers.append(GemmLayer(name=lname, group=node.op_type, **kw))

    def attr(node, key: str, default: int, desc: str) -> Any:
        for a in node.attribute:
            if a.name == key:
                try:
                    return onnx.helper.get_attribute_value(a)
                except Exception as exc:  # an attribute of an unknown type
                    raise OnnxError(f"{desc}: attribute {key!r} cannot be read: {_one_line(exc)}") from None
        return default

    for i, node in enumerate(graph.node):
        op = node.op_type
        desc = _node_desc(node, i)
        inputs = [t for t in node.input if t]
        if node.domain not in ("", "ai.onnx"):
            raise OnnxError(f"operator {op!r} of domain {node.domain!r} ({desc}) is not supported")
        if op == "Constant" or (inputs and all(t in const for t in inputs)):
            const.update(t for t in node.output if t)  # folded: computes on constants only
            continue
        if op == "Conv":
            x, w = shape_of(node.input[0], desc), shape_of(node.input[1], desc)
            y = shape_of(node.output[0], desc)
            group = attr(node, "group", 1, desc)
            c_in, c_out, c_in_g = x[1], w[0], w[1]
            if isinstance(group, bool) or not isinstance(group, int) or group < 1:
                raise OnnxError(f"{desc}: group = {group!r} is not allowed: must be a positive divisor of the "
                                f"{c_in} input and {c_out} output channels")
            if c_in % group:
                raise OnnxError(f"{desc}: group = {group} is not allowed: the input's {c_in} channels are not "
                                "divisible by it")
            if c_out % group:
                raise OnnxError(f"{desc}: group = {group} is not allowed: the weight's {c_out} output channels "
                                "are not divisible by it")
            if c_in_g != c_in // group:
                raise OnnxError(f"{desc}: the weight {node.input[1]!r} has {c_in_g} input channels per group, but "
                                f"the input's {c_in} channels in {group} groups are {c_in // group} per group")
            add(node, i, desc, tokens=x[0] * math.prod(y[2:]), k=c_in_g * math.prod(w[2:]), n_out=c_out // group,
                count=group, kind="conv", prunable=node.input[1] in const)
        elif op in ("Gemm", "MatMul"):
            a_name, b_name = node.input[0], node.input[1]
            a, b = shape_of(a_name, desc), shape_of(b_name, desc)
            if op == "Gemm":
                if attr(node, "transA", 0, desc):
                    a = a[::-1]
                if attr(node, "transB", 0, desc):
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
                add(node, i, desc, tokens=m, k=k, n_out=n, count=batch, kind="linear", prunable=True)
            elif a_name in const:
                add(node, i, desc, tokens=n, k=k, n_out=m, count=batch, kind="linear", prunable=True)
            else:
                add(node, i, desc, tokens=m, k=k, n_out=n, count=batch, kind="attention", prunable=False)
        elif op in PASS_THROUGH_OPS:
            continue
        else:
            raise OnnxError(
                f"operator {op!r} ({desc}) is not supported: sparseforge lowers {', '.join(GEMM_OPS)} to GEMMs "
                f"and passes through {len(PASS_THROUGH_OPS)} shape-only operators (see PASS_THROUGH_OPS)")
    if not layers:
        raise OnnxError("the ONNX model has no Conv, Gemm or MatMul on activations: nothing to lower")
    return tuple(layers)


def _broadcast(a: list[int], b: list[int], desc: str) -> list[int]:
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            raise OnnxError(f"{desc}: batch dims {a} and {b} do not broadcast")
        out.append(max(x, y))
    return out[::-1]
