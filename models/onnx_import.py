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
   must be static (``input_shapes`` can fix them, ``batch`` sets a free dimension 0: a
   symbolic, 0 or -1 one; ``batch`` is refused when no input has one), otherwise an error
   naming the tensor and how to give its shape (``--input-shape`` on the command line,
   ``input_shapes`` in the API). No graph input may hold more than
   :data:`MAX_TENSOR_ELEMENTS` elements: checked before shape inference runs.
3. The dataflow graph (a ``networkx.DiGraph``: an edge from the node that writes a tensor
   to every node that reads it) gives a topological order of the nodes: the file's own
   order whenever that is one, so files whose nodes are out of order import too. A tensor
   that nothing defines, a tensor written twice and a cycle are errors naming the tensor
   or the nodes.
4. Constant folding: ONNX shape inference alternates with computing every default-domain
   node whose inputs are all known values (and ``Shape``/``Size`` of a tensor whose shape is
   known) with onnx's reference evaluator (``onnx.reference.ReferenceEvaluator``); each
   computed node becomes initializers, until a round folds nothing (at most
   :data:`FOLD_ROUNDS`). So the Pad amounts, Reshape targets and Slice bounds a PyTorch
   export computes with ``ConstantOfShape/Concat/Slice/Reshape`` and ``Shape/Gather/
   Unsqueeze/Concat`` chains become constants and shape inference sees through them. Only
   results of at most :data:`FOLD_MAX_ELEMENTS` elements are computed; random operators and
   QuantizeLinear/DequantizeLinear are never folded. Then ONNX shape inference (strict,
   with data propagation) gives every tensor's shape; no tensor may exceed
   :data:`MAX_TENSOR_ELEMENTS` elements.
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

* Quantized models. QDQ form: ``QuantizeLinear``/``DequantizeLinear`` pass through on
  activations, and a ``DequantizeLinear`` of an int8 initializer is a constant, so the GEMM
  behind it is found (prunable) and its weight is read dequantized. QOperator form:
  ``QLinearConv`` and ``ConvInteger`` lower as ``Conv``, ``QLinearMatMul`` and
  ``MatMulInteger`` as ``MatMul`` (operand positions in :data:`_OPERANDS`); their weights are
  dequantized ``(q - zero_point) * scale``, per tensor or per output channel (a
  ``MatMulInteger``/``ConvInteger`` weight scale is the constant factor of the
  ``Mul(Cast(Y), Mul(x_scale, w_scale))`` onnxruntime writes after it). Scales and zero
  points are reported per layer (:class:`QuantInfo`). Operators of other domains (e.g.
  onnxruntime's ``com.microsoft`` ``QGemm``) are errors naming the operator and domain.

Weights and N:M: each GEMM's constant weight of at most :data:`WEIGHT_MAX_ELEMENTS` elements
with data in the file is computed (lazily, on the reference evaluator) as ``W[n_out, K]``:
a conv weight ``[out, in/group, kh, kw]`` reshaped row-major to ``[out, in/group*kh*kw]`` (the
im2col order channel, row, column), a MatMul's ``B[K, N]`` transposed. A prunable layer's
``GemmLayer.nm`` is :func:`~sparseforge.models.nm_detect.detect_nm` of it (skipped when fewer
than ``1/max(STANDARD_M)`` of the entries are zero: an ``n:m`` pattern zeroes at least
``1/m`` of them). :func:`read_onnx` returns the weights and :class:`QuantInfo` too.

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
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Iterator, Mapping, Sequence

from sparseforge.errors import InputError

from .network import GemmLayer, Network

__all__ = ["import_onnx", "read_onnx", "OnnxImport", "QuantInfo", "OnnxError", "OnnxFileNotFoundError",
           "PASS_THROUGH_OPS", "GEMM_OPS", "QUANT_GEMM_OPS", "QDQ_OPS", "MAX_TENSOR_ELEMENTS", "MAX_FILE_BYTES",
           "EXTERNAL_READ_BYTES", "FOLD_MAX_ELEMENTS", "WEIGHT_MAX_ELEMENTS", "FOLD_ROUNDS"]

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

#: Constant folding computes a constant node (one whose inputs are all known values, or a
#: ``Shape``/``Size`` of a tensor with a static shape) when each of its outputs has at most
#: this many elements: shape tensors (Pad amounts, Reshape targets, Slice bounds) are tiny,
#: so the limit keeps large constant weights (``ConstantOfShape`` fills, weight arithmetic)
#: out of memory. An assumption sized 1000x above the longest shape chain of the light zoo.
FOLD_MAX_ELEMENTS = 1 << 16

#: A GEMM's constant weight (an initializer, or a constant subgraph such as the
#: ``DequantizeLinear`` of an int8 weight) is computed for N:M detection and
#: :attr:`OnnxImport.weights` when it has at most this many elements (64 MiB in float32:
#: every weight of BERT-base and ResNet-50; VGG's 102 M-element first FC is left out).
WEIGHT_MAX_ELEMENTS = 1 << 24

#: Constant folding alternates with shape inference at most this many rounds (each round
#: folds every node that became computable; a PyTorch export needs two or three).
FOLD_ROUNDS = 16


class OnnxError(InputError):
    """A malformed, unsupported or absurdly large ONNX model: one line that names the file
    (or the in-memory model) and what is wrong."""


class OnnxFileNotFoundError(OnnxError, FileNotFoundError):
    """The ONNX file does not exist (both an :class:`OnnxError` and a ``FileNotFoundError``)."""


#: Quantized operators lowered to GEMMs (the ONNX "QOperator" form): the operand positions
#: are those of the ONNX operator definitions.
QUANT_GEMM_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger")

#: Operators lowered to GEMMs.
GEMM_OPS = ("Conv", "Gemm", "MatMul") + QUANT_GEMM_OPS

#: The quantize / dequantize operators of the ONNX "QDQ" form: passed through on
#: activations, folded on constant weights (so a weight is seen dequantized).
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")

#: (activation input, weight input) positions of every GEMM operator
_OPERANDS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3), "Gemm": (0, 1), "MatMul": (0, 1),
             "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}

#: Operators never folded: their outputs are random
_NONDETERMINISTIC = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                               "Bernoulli", "Multinomial"})

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
    # more shape ops and arithmetic seen in PyTorch exports
    "Range", "Size", "NonZero", "ScatterND", "GatherElements", "Floor", "Ceil", "Round", "Mod", "And", "Or",
    "Trilu", "CumSum", "ReduceProd", "ReduceL2", "ArgMax", "ArgMin", "TopK",
    # the QDQ form of quantized models (see QDQ_OPS)
    *QDQ_OPS,
})


@dataclass(frozen=True)
class QuantInfo:
    """The int8 quantization of one imported GEMM layer, as the ONNX file states it.

    ``form`` is ``"QDQ"`` (QuantizeLinear/DequantizeLinear around a float GEMM) or
    ``"QOperator"`` (QLinearConv, QLinearMatMul, MatMulInteger, ConvInteger). Scales and
    zero points are NumPy arrays (a scalar, or one per output channel); ``None`` where the
    file does not fix them (a dynamically quantized activation, a MatMulInteger weight whose
    scale is not applied by a following ``Mul``)."""

    form: str
    weight_dtype: str | None = None
    weight_scale: Any = None
    weight_zero_point: Any = None
    input_scale: Any = None
    input_zero_point: Any = None
    output_scale: Any = None
    output_zero_point: Any = None


@dataclass(frozen=True)
class OnnxImport:
    """What :func:`read_onnx` reads from an ONNX model.

    Attributes:
        network: the GEMMs (:func:`import_onnx` returns only this).
        weights: layer name -> its constant weight as float32 ``W[n_out_total, k]`` in the
            sparseforge convention (a Conv's ``[out, in/group, kh, kw]`` reshaped row-major to
            ``[out, in/group * kh * kw]``, i.e. the im2col order channel, row, column; a
            MatMul's ``B[K, N]`` transposed), dequantized for quantized models. Only layers whose
            weight is a constant of at most :data:`WEIGHT_MAX_ELEMENTS` elements with data in
            the file.
        quant: layer name -> :class:`QuantInfo`, for the quantized layers.
        batch: the batch size ``batch`` set on the inputs' free dimension 0 (None if not asked).
    """

    network: Network
    weights: Mapping[str, Any]
    quant: Mapping[str, QuantInfo]
    batch: int | None = None


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


def _shape_hint(name: str) -> str:
    """How to give an input's shape, for CLI and API users alike."""
    return f"give it with --input-shape {name}=d0,d1,... (API: input_shapes={{{name!r}: (d0, d1, ...)}})"


def _free(d: int | str | None) -> bool:
    """A dimension the file leaves open: symbolic, missing, or 0 / -1 (exporters' "any")."""
    return not isinstance(d, int) or d < 1


def _fix_inputs(model, input_shapes: Mapping[str, Sequence[int]] | None, batch: int | None = None) -> None:
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
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise OnnxError(f"batch = {batch!r} is not allowed: must be a positive integer")
        free = [vi for vi in real if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape")
                and vi.type.tensor_type.shape.dim and _free(_dims(vi)[0])]
        if not free:
            listed = "; ".join(f"{vi.name!r} {_dims(vi)}" for vi in real) or "(none)"
            raise OnnxError(f"batch = {batch} is not allowed: no graph input has a free batch dimension (a symbolic, "
                            f"0 or -1 dim 0) to set, the inputs are {listed}: export the model with a dynamic batch "
                            "dimension, or drop batch")
        for vi in free:
            vi.type.tensor_type.shape.dim[0].Clear()
            vi.type.tensor_type.shape.dim[0].dim_value = batch
    for vi in real:
        if not vi.type.HasField("tensor_type"):
            raise OnnxError(f"graph input {vi.name!r} is not a tensor: not supported")
        dims = _dims(vi)
        if not vi.type.tensor_type.HasField("shape"):
            raise OnnxError(f"tensor {vi.name!r} (graph input) has no static shape: {_shape_hint(vi.name)}")
        bad = [i for i, d in enumerate(dims) if _free(d)]
        if bad:
            raise OnnxError(
                f"tensor {vi.name!r} (graph input) has a dynamic shape {dims} (dim {bad[0]} is "
                f"{dims[bad[0]]!r}): only static shapes are supported; {_shape_hint(vi.name)}"
                + ("" if bad[0] or batch is not None else " or set the batch (--batch N, API: batch=N)"))
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
                input_shapes: Mapping[str, Sequence[int]] | None = None, batch: int | None = None) -> Network:
    """Lower the ONNX model ``model`` (a path or an ``onnx.ModelProto``) to a :class:`Network`
    of its GEMMs, in a topological order of the graph (the file's order when it is one).
    ``name`` defaults to the file stem (or the graph name); ``input_shapes`` maps graph
    input names to static shapes, replacing what the file says; ``batch`` sets dimension 0
    of every graph input where the file leaves it free (symbolic, 0 or -1) and is refused
    when no input has a free dimension 0. :func:`read_onnx` also returns the weights and the
    int8 quantization.

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
    return read_onnx(model, name=name, input_shapes=input_shapes, batch=batch).network


def read_onnx(model: Any, *, name: str | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None,
              batch: int | None = None) -> OnnxImport:
    """:func:`import_onnx`, with each layer's constant weight (dequantized) and int8
    quantization (:class:`OnnxImport`). Layers whose weight holds an N:M pattern (found by
    :func:`~sparseforge.models.nm_detect.detect_nm`) carry it in ``GemmLayer.nm``. The network's
    ``input_layers`` are the GEMMs that read a graph input through weight-free operators only
    (a CNN's stem, a ViT's patch embedding; none for a transformer fed token ids through an
    embedding table), which the default sparsity rule keeps dense."""
    proto, stem, where = _load(model)
    try:
        layers, weights, quant, inputs = _lower(proto, input_shapes, batch)
        return OnnxImport(network=Network(name=name or stem, layers=layers, input_layers=inputs), weights=weights,
                          quant=quant, batch=batch)
    except OnnxError as exc:
        raise OnnxError(f"{where}: {exc}") from None


def _opsets(proto) -> dict[str, int]:
    ops = {o.domain or "": o.version for o in proto.opset_import}
    if "" not in ops and "ai.onnx" in ops:
        ops[""] = ops["ai.onnx"]
    return ops


def _has_data(tensor) -> bool:
    from onnx import TensorProto

    return tensor.data_location != TensorProto.EXTERNAL


def _static(dims: Any) -> bool:
    return dims is not None and all(isinstance(d, int) and d >= 0 for d in dims)


def _infer_shapes(model, strict: bool) -> Any:
    from onnx import shape_inference

    return shape_inference.infer_shapes(model, strict_mode=strict, data_prop=True)


def _shape_map(graph) -> dict[str, list]:
    shapes: dict[str, list] = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            shapes[vi.name] = _dims(vi)
    for init in graph.initializer:
        shapes[init.name] = [int(d) for d in init.dims]
    return shapes


def _run_node(node, inputs: list, opsets: dict[str, int]) -> list | None:
    """The outputs of one default-domain node on NumPy inputs (onnx's reference evaluator),
    or None when it cannot be evaluated."""
    from onnx.reference import ReferenceEvaluator

    try:
        ev = ReferenceEvaluator(node, opsets=opsets)
        feeds = {t: v for t, v in zip(node.input, inputs) if t}
        return list(ev.run(None, feeds))
    except Exception:  # an operator the evaluator lacks or rejects: the node stays unfolded
        return None


def _fold(model, opsets: dict[str, int]) -> None:
    """Constant folding (in place): alternate ONNX shape inference with computing every node
    whose inputs are known values (or a ``Shape``/``Size`` of a statically shaped tensor),
    until nothing new folds; each folded node becomes initializers. Only outputs of at most
    :data:`FOLD_MAX_ELEMENTS` elements are computed."""
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    for _ in range(FOLD_ROUNDS):
        try:
            shapes = _shape_map(_infer_shapes(model, strict=False).graph)
        except Exception:  # the strict run after folding reports the problem
            return
        values: dict[str, Any] = {}
        for init in graph.initializer:
            if _has_data(init) and math.prod(init.dims) <= FOLD_MAX_ELEMENTS:
                try:
                    values[init.name] = numpy_helper.to_array(init)
                except Exception:  # an element type NumPy lacks: not a shape tensor
                    pass
        folded: list[int] = []
        for i, node in enumerate(graph.node):
            op = node.op_type
            outs = [t for t in node.output if t]
            if node.domain not in ("", "ai.onnx") or not outs or op in _NONDETERMINISTIC or op in QDQ_OPS:
                continue  # Q/DQ stay: their inputs are the scales and zero points the importer reports
            inputs = [t for t in node.input if t]
            result = None
            if op in ("Shape", "Size") and len(inputs) == 1 and _static(shapes.get(inputs[0])):
                dims = shapes[inputs[0]]
                if op == "Size":
                    result = [np.array(math.prod(dims), dtype=np.int64)]
                else:
                    start, end = 0, len(dims)
                    for a in node.attribute:
                        if a.name == "start":
                            start = a.i
                        elif a.name == "end":
                            end = a.i
                    result = [np.array(dims[slice(start, end)], dtype=np.int64)]
            elif (op == "Constant" or inputs) and all(t in values for t in inputs):
                if all(_static(shapes.get(t)) and math.prod(shapes[t]) <= FOLD_MAX_ELEMENTS for t in outs):
                    result = _run_node(node, [values.get(t) if t else None for t in node.input], opsets)
            if result is None or len(result) < len(outs):
                continue
            arrays = [np.asarray(r) for r in result[:len(node.output)]]
            if any(a.size > FOLD_MAX_ELEMENTS for a in arrays):
                continue
            for t, a in zip(node.output, arrays):
                if t:
                    values[t] = a
            folded.append(i)
        if not folded:
            return
        new_inits = []
        for i in folded:
            for t in graph.node[i].output:
                if t:
                    new_inits.append(numpy_helper.from_array(values[t], name=t))
        keep = [n for i, n in enumerate(graph.node) if i not in set(folded)]
        kept = [type(n)() for n in keep]
        for dst, src in zip(kept, keep):
            dst.CopyFrom(src)
        del graph.node[:]
        graph.node.extend(kept)
        graph.initializer.extend(new_inits)
        if model.ir_version < 4:  # IR < 4: every initializer must also be a graph input
            from onnx import helper

            graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in new_inits)
        # a folded tensor may have a stale value_info of the first inference: drop them all
        del graph.value_info[:]


class _Values:
    """Lazily computed values of constant tensors (weights), at most
    :data:`WEIGHT_MAX_ELEMENTS` elements each: initializers with data in the file, and
    outputs of default-domain nodes on such values."""

    def __init__(self, graph, shapes: dict[str, list], opsets: dict[str, int]) -> None:
        self.inits = {i.name: i for i in graph.initializer}
        self.writer = {t: n for n in graph.node for t in n.output if t}
        self.shapes, self.opsets = shapes, opsets
        self.memo: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        try:
            return self._get(name)
        except RecursionError:
            return None

    def _get(self, name: str) -> Any:
        from onnx import numpy_helper

        if name in self.memo:
            return self.memo[name]
        self.memo[name] = None  # guards against cycles
        value = None
        dims = self.shapes.get(name)
        if name in self.inits:
            init = self.inits[name]
            if _has_data(init) and math.prod(init.dims) <= WEIGHT_MAX_ELEMENTS:
                try:
                    value = numpy_helper.to_array(init)
                except Exception:
                    value = None
        elif name in self.writer and _static(dims) and math.prod(dims) <= WEIGHT_MAX_ELEMENTS:
            node = self.writer[name]
            if node.domain in ("", "ai.onnx") and node.op_type not in _NONDETERMINISTIC:
                ins = [self._get(t) if t else None for t in node.input]
                if all(v is not None for t, v in zip(node.input, ins) if t):
                    out = _run_node(node, ins, self.opsets)
                    if out is not None:
                        value = out[list(node.output).index(name)]
        self.memo[name] = value
        return value


def _detector():
    """(``detect_nm``, the largest group size it tries) of :mod:`~sparseforge.models.nm_detect`,
    or None while that module or ``GemmLayer.nm`` is missing."""
    import dataclasses

    if "nm" not in {f.name for f in dataclasses.fields(GemmLayer)}:
        return None
    try:
        from .nm_detect import STANDARD_M, detect_nm
    except ImportError:
        return None
    return detect_nm, max(STANDARD_M)


def _lower(proto, input_shapes: Mapping[str, Sequence[int]] | None,
           batch: int | None = None) -> tuple[tuple[GemmLayer, ...], dict[str, Any], dict[str, QuantInfo],
                                               tuple[str, ...]]:
    import numpy as np
    import onnx

    proto_copy = onnx.ModelProto()
    proto_copy.CopyFrom(proto)
    _fix_inputs(proto_copy, input_shapes, batch)
    order = _topological_order(proto_copy.graph)
    if order != sorted(order):  # out of order in the file: shape inference needs writers first
        nodes = [proto_copy.graph.node[i] for i in order]
        sorted_nodes = [onnx.NodeProto() for _ in nodes]
        for dst, src in zip(sorted_nodes, nodes):
            dst.CopyFrom(src)
        del proto_copy.graph.node[:]
        proto_copy.graph.node.extend(sorted_nodes)
    opsets = _opsets(proto_copy)
    _fold(proto_copy, opsets)
    try:
        inferred = _infer_shapes(proto_copy, strict=True)
    except Exception as exc:  # onnx raises InferenceError / ValidationError subclasses
        raise OnnxError(f"ONNX shape inference failed: {_one_line(exc)}") from None
    graph = inferred.graph
    shapes = _shape_map(graph)
    const: set[str] = {init.name for init in graph.initializer}
    for tname, dims in shapes.items():
        if all(isinstance(d, int) and d >= 1 for d in dims):
            _elements_ok(f"tensor {tname!r}", dims)
    values = _Values(graph, shapes, opsets)
    writer = values.writer
    readers: dict[str, list] = {}
    for n in graph.node:
        for t in n.input:
            if t:
                readers.setdefault(t, []).append(n)
    detect = _detector()

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
    weights: dict[str, Any] = {}
    quant: dict[str, QuantInfo] = {}
    used: set[str] = set()
    # tensors that carry the raw network input: a graph input, and what weight-free operators
    # (pads, reshapes, casts, normalisation by constants, Q/DQ) make of it. A GEMM that reads one
    # is an input layer (the stem of a CNN, a ViT's patch embedding); a table lookup (Gather of a
    # constant, the token embeddings of a transformer) and every GEMM output end the chain.
    raw: set[str] = {v.name for v in graph.input} - const
    input_layers: list[str] = []

    def add(node, i: int, desc: str, w: Any = None, q: QuantInfo | None = None, **kw) -> None:
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
        if w is not None:
            w = np.ascontiguousarray(np.asarray(w, dtype=np.float32))
            if w.shape != (count * n_out, k):  # a batched constant operand: not one weight matrix
                w = None
        if w is not None:
            weights[lname] = w
            # an n:m pattern (n < m <= max m) leaves at least one zero in every group of m, so a
            # weight with fewer than size / max m zeros has none: skip the group counts
            if detect is not None and kw.get("prunable") and (w.size - np.count_nonzero(w)) * detect[1] >= w.size:
                kw["nm"] = detect[0](w)
        if q is not None:
            quant[lname] = q
        if kw.get("kind") != "attention" and any(t in raw for t in node.input if t not in const):
            input_layers.append(lname)
        layers.append(GemmLayer(name=lname, group=node.op_type, **kw))

    def attr(node, key: str, default: int, desc: str) -> Any:
        for a in node.attribute:
            if a.name == key:
                try:
                    return onnx.helper.get_attribute_value(a)
                except Exception as exc:  # an attribute of an unknown type
                    raise OnnxError(f"{desc}: attribute {key!r} cannot be read: {_one_line(exc)}") from None
        return default

    def val(node, pos: int) -> Any:
        """The constant value of ``node``'s input ``pos`` (None when absent or not constant)."""
        if len(node.input) <= pos or not node.input[pos] or node.input[pos] not in const:
            return None
        return values.get(node.input[pos])

    def dequantize(q: Any, scale: Any, zp: Any, axis: int) -> Any:
        """``(q - zp) * scale`` with per-channel ``scale``/``zp`` along ``axis``."""
        if q is None:
            return None
        x = q.astype(np.float32)

        def along(v):
            v = np.asarray(v)
            if v.ndim == 0 or v.size == 1:
                return v.reshape(())
            shape = [1] * x.ndim
            shape[axis] = v.size
            return v.reshape(shape)

        if zp is not None:
            x = x - along(zp).astype(np.float32)
        if scale is not None:
            x = x * along(scale).astype(np.float32)
        return x

    def qdq_info(a_name: str, w_name: str, y_name: str) -> QuantInfo | None:
        """The QDQ form around a float GEMM: DequantizeLinear writing the weight and/or the
        activation, QuantizeLinear reading the output."""
        def dq(t):
            n = writer.get(t)
            return n if n is not None and n.op_type == "DequantizeLinear" else None

        wq, aq = dq(w_name), dq(a_name)
        yq = next((n for n in readers.get(y_name, ()) if n.op_type == "QuantizeLinear"), None)
        if wq is None and aq is None:
            return None
        wv = val(wq, 0) if wq is not None else None
        return QuantInfo(form="QDQ", weight_dtype=None if wv is None else str(wv.dtype),
                         weight_scale=val(wq, 1) if wq else None, weight_zero_point=val(wq, 2) if wq else None,
                         input_scale=val(aq, 1) if aq else None, input_zero_point=val(aq, 2) if aq else None,
                         output_scale=val(yq, 1) if yq else None, output_zero_point=val(yq, 2) if yq else None)

    def integer_scale(y_name: str) -> Any:
        """The weight scale of a MatMulInteger / ConvInteger, as onnxruntime's dynamic
        quantization applies it: ``Mul(Cast(Y), Mul(x_scale, w_scale))`` with a constant
        ``w_scale`` (None if the graph does it another way)."""
        t = y_name
        for _ in range(2):
            nxt = readers.get(t, [])
            if len(nxt) != 1:
                return None
            n = nxt[0]
            if n.op_type == "Cast":
                t = n.output[0]
                continue
            if n.op_type != "Mul":
                return None
            other = n.input[1] if n.input[0] == t else n.input[0]
            if other in const:
                return values.get(other)
            m = writer.get(other)
            if m is not None and m.op_type == "Mul":
                cs = [x for x in m.input if x in const]
                if len(cs) == 1:
                    return values.get(cs[0])
            return None
        return None

    for i, node in enumerate(graph.node):
        op = node.op_type
        desc = _node_desc(node, i)
        inputs = [t for t in node.input if t]
        if node.domain not in ("", "ai.onnx"):
            hint = (" (an onnxruntime contrib operator: quantize with the QDQ format, or with "
                    "quantize_dynamic/quantize_static without fused contrib operators)") if node.domain == "com.microsoft" else ""
            raise OnnxError(f"operator {op!r} of domain {node.domain!r} ({desc}) is not supported{hint}")
        if op == "Constant" or (inputs and all(t in const for t in inputs)):
            const.update(t for t in node.output if t)  # folded: computes on constants only
            continue
        if op in ("Conv", "ConvInteger", "QLinearConv"):
            xi, wi = _OPERANDS[op]
            if len(node.input) <= wi or not node.input[wi]:
                raise OnnxError(f"{desc} has no weight input (input {wi})")
            x, w = shape_of(node.input[xi], desc), shape_of(node.input[wi], desc)
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
                raise OnnxError(f"{desc}: the weight {node.input[wi]!r} has {c_in_g} input channels per group, but "
                                f"the input's {c_in} channels in {group} groups are {c_in // group} per group")
            wv, q = val(node, wi), None
            if op == "QLinearConv":
                q = QuantInfo(form="QOperator", weight_dtype=None if wv is None else str(wv.dtype),
                              weight_scale=val(node, 4), weight_zero_point=val(node, 5), input_scale=val(node, 1),
                              input_zero_point=val(node, 2), output_scale=val(node, 6), output_zero_point=val(node, 7))
                wv = dequantize(wv, q.weight_scale, q.weight_zero_point, 0)
            elif op == "ConvInteger":
                scale = integer_scale(node.output[0])
                q = QuantInfo(form="QOperator", weight_dtype=None if wv is None else str(wv.dtype),
                              weight_scale=scale, weight_zero_point=val(node, 3), input_zero_point=val(node, 2))
                wv = dequantize(wv, scale, q.weight_zero_point, 0)
            else:
                q = qdq_info(node.input[xi], node.input[wi], node.output[0])
            add(node, i, desc, w=None if wv is None else wv.reshape(c_out, -1), q=q,
                tokens=x[0] * math.prod(y[2:]), k=c_in_g * math.prod(w[2:]), n_out=c_out // group,
                count=group, kind="conv", prunable=node.input[wi] in const)
        elif op in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"):
            ai, bi = _OPERANDS[op]
            a_name, b_name = node.input[ai], node.input[bi]
            a, b = shape_of(a_name, desc), shape_of(b_name, desc)
            ta = tb = 0
            if op == "Gemm":
                ta, tb = attr(node, "transA", 0, desc), attr(node, "transB", 0, desc)
                if ta:
                    a = a[::-1]
                if tb:
                    b = b[::-1]
                batch_n = 1
                (m, k), (_, n) = a, b
            else:
                a2 = [1] + a if len(a) == 1 else a
                b2 = b + [1] if len(b) == 1 else b
                m, k, n = a2[-2], a2[-1], b2[-1]
                ba, bb = a2[:-2], b2[:-2]
                batch_n = math.prod(ba) if len(bb) == 0 else math.prod(_broadcast(ba, bb, desc))
                if len(bb) == 0 and b_name in const:  # X[..., M, K] @ W[K, N]: fold batch into rows
                    m, batch_n = m * batch_n, 1
            q = None
            if op == "QLinearMatMul":
                q = QuantInfo(form="QOperator", input_scale=val(node, 1), input_zero_point=val(node, 2),
                              weight_scale=val(node, 4), weight_zero_point=val(node, 5),
                              output_scale=val(node, 6), output_zero_point=val(node, 7))
            elif op == "MatMulInteger":
                q = QuantInfo(form="QOperator", input_zero_point=val(node, 2), weight_zero_point=val(node, 3),
                              weight_scale=integer_scale(node.output[0]) if b_name in const else None)
            if b_name in const:
                bv = val(node, bi)
                if op == "QLinearMatMul" or op == "MatMulInteger":
                    q = QuantInfo(**{**q.__dict__, "weight_dtype": None if bv is None else str(bv.dtype)})
                    bv = dequantize(bv, q.weight_scale, q.weight_zero_point, -1)  # per column of B[K, N]
                elif q is None:
                    q = qdq_info(a_name, b_name, node.output[0])
                w = None if bv is None else (bv if tb else (bv.reshape(1, -1) if bv.ndim == 1 else np.swapaxes(bv, -1, -2)))
                add(node, i, desc, w=w, q=q, tokens=m, k=k, n_out=n, count=batch_n, kind="linear", prunable=True)
            elif a_name in const:
                av = val(node, ai)
                if op == "QLinearMatMul":
                    q = QuantInfo(**{**q.__dict__, "weight_scale": q.input_scale, "weight_zero_point": q.input_zero_point,
                                     "input_scale": q.weight_scale, "input_zero_point": q.weight_zero_point,
                                     "weight_dtype": None if av is None else str(av.dtype)})
                    av = dequantize(av, q.weight_scale, q.weight_zero_point, -2)  # per row of A[M, K]
                elif op == "MatMulInteger":
                    q = QuantInfo(form="QOperator", weight_zero_point=val(node, 2), input_zero_point=val(node, 3),
                                  weight_dtype=None if av is None else str(av.dtype))
                    av = dequantize(av, None, q.weight_zero_point, -2)
                elif q is None:
                    q = qdq_info(b_name, a_name, node.output[0])
                w = None if av is None else (av.T if ta else av)
                add(node, i, desc, w=w, q=q, tokens=n, k=k, n_out=m, count=batch_n, kind="linear", prunable=True)
            else:
                if q is None:
                    q = qdq_info(a_name, b_name, node.output[0])
                add(node, i, desc, q=q, tokens=m, k=k, n_out=n, count=batch_n, kind="attention", prunable=False)
        elif op in PASS_THROUGH_OPS:
            lookup = op in ("Gather", "GatherElements", "GatherND") and node.input[0] in const
            if not lookup and any(t in raw for t in inputs):
                raw.update(t for t in node.output if t)
            continue
        else:
            raise OnnxError(
                f"operator {op!r} ({desc}) is not supported: sparseforge lowers {', '.join(GEMM_OPS)} to GEMMs "
                f"and passes through {len(PASS_THROUGH_OPS)} shape-only operators (see PASS_THROUGH_OPS)")
    if not layers:
        raise OnnxError("the ONNX model has no Conv, Gemm or MatMul on activations: nothing to lower")
    return tuple(layers), weights, quant, tuple(input_layers)


def _broadcast(a: list[int], b: list[int], desc: str) -> list[int]:
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            raise OnnxError(f"{desc}: batch dims {a} and {b} do not broadcast")
        out.append(max(x, y))
    return out[::-1]
