"""A network as the accelerator sees it: an ordered list of GEMMs.

Every layer, whatever it was in the original model (a ``Linear``, a convolution lowered
by im2col, an attention score or context product), is described by the shape of one
matrix product, with one convention used everywhere in sparseforge::

    Y[T, n_out] = X[T, K] @ W[n_out, K]^T

``X`` holds activations (``T`` rows: batch * positions), ``W`` holds weights stored
``[out, in]`` like ``torch.nn.Linear``; N:M pruning acts along ``K``, the reduction
dimension of ``W``. A layer may stand for ``count`` identical, independent GEMMs (the
heads of multi-head attention), which share no operands. A ``"conv"`` layer with
``count > 1`` is a grouped convolution (``count`` groups; a depthwise conv has one group per
channel): its groups read and write the same positions (``tokens``) with their own channels,
which is what lets a mapper pack several groups into one block-diagonal GEMM.

This module knows nothing about hardware; it only checks that sizes make sense.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

__all__ = ["GemmLayer", "Network", "LAYER_KINDS", "LayerSparsity", "sparsity_plan", "is_depthwise",
           "first_layers", "dense_layer_patterns", "training_network", "REASONS"]

#: Allowed values of :attr:`GemmLayer.kind`.
LAYER_KINDS = ("linear", "conv", "attention")


def _positive_int(owner: str, field: str, value: object) -> int:
    """``value`` as a Python int if it is a positive integer (NumPy integers included);
    ValueError naming ``field`` and ``value`` otherwise."""
    # bool is an int subclass; True as a size is always a mistake.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{owner}: {field} = {value!r} is not allowed: must be a positive integer")
    if value < 1:
        raise ValueError(f"{owner}: {field} = {value} is not allowed: must be a positive integer")
    return int(value)


def _check_layer_nm(owner: str, nm: object, prunable: bool) -> tuple[int, int]:
    """``nm`` as a tuple of two Python ints ``(n, m)`` with ``0 < n < m``; ValueError otherwise."""
    ok = (isinstance(nm, (tuple, list)) and len(nm) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in nm))
    if not ok:
        raise ValueError(f"{owner}: nm = {nm!r} is not allowed: must be None or a pair of integers (n, m)")
    n, m = int(nm[0]), int(nm[1])
    if not 0 < n < m:
        raise ValueError(f"{owner}: nm = ({n}, {m}) is not allowed: an N:M pattern needs 0 < n < m")
    if not prunable:
        raise ValueError(f"{owner}: nm = ({n}, {m}) is not allowed with prunable = False: "
                         "only a layer with weights has a sparsity pattern")
    return (n, m)


@dataclass(frozen=True, kw_only=True)
class GemmLayer:
    """One (or ``count`` identical) GEMM ``Y[T, n_out] = X[T, K] @ W[n_out, K]^T``.

    Attributes:
        name: unique name within its network, e.g. ``"layer0.attn.q"``.
        tokens: ``T``, rows of the activation matrix (batch * positions).
        k: ``K``, the reduction length.
        n_out: output features (columns of ``Y``, rows of ``W``).
        kind: ``"linear"``, ``"conv"`` (im2col-lowered convolution) or ``"attention"``
            (activation x activation product; there is no weight to prune).
        prunable: whether ``W`` is a weight that N:M pruning may touch. Must be False for
            ``kind == "attention"``.
        group: free-form label for reports (e.g. ``"layer0"``).
        count: number of identical, independent GEMMs this entry stands for (e.g. 12
            attention heads, or the groups of a grouped ``"conv"``). Each has its own
            operands.
        nm: ``(n, m)``, the N:M pattern the layer's own weights already have (at most ``n``
            nonzeros in every group of ``m`` consecutive ``K`` entries of each row, as
            :func:`sparseforge.models.nm_detect.detect_nm` finds it in real masks), or None
            when unknown (the weights were not seen, or they are not N:M sparse). Only a
            prunable layer has weights, so only a prunable layer may carry a pattern.
    """

    name: str
    tokens: int
    k: int
    n_out: int
    kind: str = "linear"
    prunable: bool = True
    group: str = ""
    count: int = 1
    nm: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"GemmLayer: name = {self.name!r} is not allowed: must be a non-empty string")
        owner = f"GemmLayer {self.name!r}"
        for field in ("tokens", "k", "n_out", "count"):
            # frozen: store NumPy integers as plain ints so sizes never overflow
            object.__setattr__(self, field, _positive_int(owner, field, getattr(self, field)))
        if self.kind not in LAYER_KINDS:
            raise ValueError(
                f"{owner}: kind = {self.kind!r} is not allowed: choose one of {', '.join(LAYER_KINDS)}")
        if not isinstance(self.prunable, bool):
            raise ValueError(f"{owner}: prunable = {self.prunable!r} is not allowed: must be True or False")
        if self.kind == "attention" and self.prunable:
            raise ValueError(
                f"{owner}: prunable = True is not allowed with kind = 'attention': "
                "attention GEMMs multiply two activations and have no weight to prune")
        if not isinstance(self.group, str):
            raise ValueError(f"{owner}: group = {self.group!r} is not allowed: must be a string")
        if self.nm is not None:
            object.__setattr__(self, "nm", _check_layer_nm(owner, self.nm, self.prunable))

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all ``count`` GEMMs: ``count * tokens * k * n_out``."""
        return self.count * self.tokens * self.k * self.n_out

    @property
    def weight_shape(self) -> tuple[int, int]:
        """Shape ``(n_out, k)`` of the second operand ``W`` of one GEMM."""
        return (self.n_out, self.k)

    @property
    def input_shape(self) -> tuple[int, int]:
        """Shape ``(tokens, k)`` of the activation operand ``X`` of one GEMM."""
        return (self.tokens, self.k)

    @property
    def output_shape(self) -> tuple[int, int]:
        """Shape ``(tokens, n_out)`` of the result ``Y`` of one GEMM."""
        return (self.tokens, self.n_out)


@dataclass(frozen=True, kw_only=True)
class Network:
    """A named, ordered sequence of :class:`GemmLayer` with unique names.

    ``layers`` may be given as any sequence; it is stored as a tuple. ``input_layers``
    names the layers that read the network's raw input (the image: a CNN's stem conv, a
    ViT's patch embedding); ``()`` says none does (a transformer encoder reads an embedding
    lookup, which is no GEMM); ``None`` (the default) says it is not known, and
    :func:`first_layers` then takes the first layer with a weight.
    """

    name: str
    layers: tuple[GemmLayer, ...]
    input_layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Network: name = {self.name!r} is not allowed: must be a non-empty string")
        layers = tuple(self.layers)
        if not layers:
            raise ValueError(f"Network {self.name!r}: layers = () is not allowed: needs at least one layer")
        seen: set[str] = set()
        for i, layer in enumerate(layers):
            if not isinstance(layer, GemmLayer):
                raise ValueError(
                    f"Network {self.name!r}: layers[{i}] = {layer!r} is not allowed: must be a GemmLayer")
            if layer.name in seen:
                raise ValueError(
                    f"Network {self.name!r}: layer name {layer.name!r} is not allowed twice: names must be unique")
            seen.add(layer.name)
        object.__setattr__(self, "layers", layers)
        if self.input_layers is not None:
            if isinstance(self.input_layers, str) or not all(isinstance(n, str) for n in self.input_layers):
                raise ValueError(f"Network {self.name!r}: input_layers = {self.input_layers!r} is not allowed: "
                                 "must be None or a tuple of layer names")
            for n in self.input_layers:
                if n not in seen:
                    raise ValueError(f"Network {self.name!r}: input_layers names {n!r}, which is not allowed: "
                                     "no layer has that name")
            object.__setattr__(self, "input_layers", tuple(self.input_layers))

    def macs(self) -> int:
        """Total multiply-accumulates of all layers (honouring each layer's ``count``)."""
        return sum(layer.macs for layer in self.layers)

    def prunable_macs(self) -> int:
        """Multiply-accumulates of the layers whose weights N:M pruning may touch."""
        return sum(layer.macs for layer in self.layers if layer.prunable)

    def layer(self, name: str) -> GemmLayer:
        """The layer called ``name``; KeyError listing a few known names otherwise."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        known = ", ".join(layer.name for layer in self.layers[:5])
        raise KeyError(f"network {self.name!r} has no layer {name!r} (layers are e.g. {known}, ...)")

    def __iter__(self) -> Iterator[GemmLayer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)


# ============================================================================ which layers are sparse
#: Why a layer runs the pattern it runs (:attr:`LayerSparsity.reason`):
REASONS = {
    "mask": "the layer's own weights are N:M (GemmLayer.nm, from real masks)",
    "sparsity": "the run's sparsity (--sparsity) prunes the layer",
    "dense run": "the run is dense (--sparsity dense, or a dense array)",
    "no weights": "the layer has no weight to prune (an attention product, or prunable = False)",
    "rule:first": "default rule: the layer reads the network's raw input (stem conv, patch embedding)",
    "rule:depthwise": "default rule: a depthwise conv (one channel per group)",
    "rule:short-k": "default rule: the reduction K is shorter than one group of M",
    "--dense-layers": "a --dense-layers pattern (dense_layers=) names the layer",
}


@dataclass(frozen=True)
class LayerSparsity:
    """The N:M pattern one layer's weights run (``None``: dense) and why (a key of
    :data:`REASONS`)."""

    pattern: tuple[int, int] | None
    reason: str

    @property
    def label(self) -> str:
        """``"2:4"`` or ``"dense"``."""
        return f"{self.pattern[0]}:{self.pattern[1]}" if self.pattern else "dense"


def is_depthwise(layer: GemmLayer) -> bool:
    """A depthwise convolution: a ``"conv"`` of ``count > 1`` groups with one output channel
    each (``n_out == 1``; the network convention of docs, one entry per channel group)."""
    return layer.kind == "conv" and layer.count > 1 and layer.n_out == 1


def first_layers(network: Network) -> tuple[str, ...]:
    """The layers that read the network's raw input: ``network.input_layers`` when the
    network declares them, else the first layer that has a weight (``prunable``), if any."""
    if network.input_layers is not None:
        return network.input_layers
    for layer in network.layers:
        if layer.prunable:
            return (layer.name,)
    return ()


def training_network(network: Network, plan: Sequence[LayerSparsity]) -> Network:
    """``network`` with ``prunable = False`` on every layer ``plan`` keeps dense, for the
    training simulator (:mod:`sim.train`), which gives every prunable layer the method's
    pattern and its SORE masks. A training step regenerates its masks at the method's
    pattern every iteration, so a layer's ``nm`` only says that it is sparse."""
    from dataclasses import replace

    if len(plan) != len(network.layers):
        raise ValueError(f"plan of {len(plan)} entries is not allowed for network {network.name!r} of "
                         f"{len(network.layers)} layers: give one per layer")
    layers = tuple(replace(layer, prunable=False, nm=None) if (layer.prunable and ls.pattern is None) else layer
                   for layer, ls in zip(network.layers, plan))
    return replace(network, layers=layers)


def dense_layer_patterns(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``--dense-layers`` / ``dense_layers=`` as a tuple of fnmatch globs: a string of
    comma-separated globs, or a sequence of such strings (a repeated option). Empty items are
    dropped, but a value with no glob at all is a ValueError, as is anything but strings."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"dense_layers item {item!r} is not allowed: give layer-name globs as strings, "
                             "e.g. 'conv1,*.downsample*'")
        out += [p.strip() for p in item.split(",") if p.strip()]
    if not out:
        raise ValueError(f"dense_layers {value!r} is not allowed: it holds no glob; give one or more layer-name "
                         "globs, e.g. 'conv1,*.downsample*'")
    return tuple(out)


def sparsity_plan(network: Network, sparsity: tuple[int, int] | None, *,
                  dense_layers: str | Sequence[str] | None = None) -> tuple[LayerSparsity, ...]:
    """Which layers of ``network`` run N:M, and which pattern: one :class:`LayerSparsity` per
    layer, in order. The rule, first match wins:

    1. an attention product (two activations, no weight): dense (``"no weights"``);
    2. ``sparsity`` is None (a dense run): every other layer dense (``"dense run"``);
    3. a layer a ``dense_layers`` glob matches (fnmatch on the layer name): dense
       (``"--dense-layers"``);
    4. a layer whose own weights are N:M (``layer.nm``, from real masks): that pattern
       (``"mask"``), whatever ``sparsity`` is (the masks are what the weights are; the
       mapper decides how much of them the array can exploit);
    5. otherwise the default rule keeps dense: depthwise convs (:func:`is_depthwise`,
       ``"rule:depthwise"``, whether or not the network marks them prunable), any other layer
       marked ``prunable = False`` (``"no weights"``), the layers that read the raw input
       (:func:`first_layers`, ``"rule:first"``) and a layer whose reduction ``K`` cannot hold
       one group of the run's ``M`` (``K < M``, ``"rule:short-k"``);
    6. every other layer runs ``sparsity`` (``"sparsity"``).

    Rules 5 follow pruning practice: NVIDIA's ASP and the N:M training papers leave the first
    convolution (3 input channels) and depthwise convs (9 weights per channel) dense
    (docs/sparsity.md).

    Raises:
        ValueError: a ``dense_layers`` glob matches no layer of the network (the message names
            the glob and a few layer names).
    """
    globs = dense_layer_patterns(dense_layers)
    names = [layer.name for layer in network.layers]
    for glob in globs:
        if not any(fnmatch.fnmatchcase(name, glob) for name in names):
            few = ", ".join(names[:4])
            raise ValueError(f"dense_layers pattern {glob!r} matches no layer of network {network.name!r} "
                             f"(layers are e.g. {few}, ...; use fnmatch globs such as '*.downsample*')")
    if sparsity is not None and sparsity[0] == sparsity[1]:
        sparsity = None                                 # n == m keeps every weight: dense
    first = set(first_layers(network))
    plan = []
    for layer in network.layers:
        if layer.kind == "attention":
            plan.append(LayerSparsity(None, "no weights"))
        elif sparsity is None:
            plan.append(LayerSparsity(None, "dense run"))
        elif any(fnmatch.fnmatchcase(layer.name, g) for g in globs):
            plan.append(LayerSparsity(None, "--dense-layers"))
        elif layer.nm is not None:
            plan.append(LayerSparsity(layer.nm, "mask"))
        elif is_depthwise(layer):
            plan.append(LayerSparsity(None, "rule:depthwise"))
        elif not layer.prunable:
            plan.append(LayerSparsity(None, "no weights"))
        elif layer.name in first:
            plan.append(LayerSparsity(None, "rule:first"))
        elif layer.k < sparsity[1]:
            plan.append(LayerSparsity(None, "rule:short-k"))
        else:
            plan.append(LayerSparsity(tuple(sparsity), "sparsity"))
    return tuple(plan)
