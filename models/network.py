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

from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = ["GemmLayer", "Network", "LAYER_KINDS"]

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
    """

    name: str
    tokens: int
    k: int
    n_out: int
    kind: str = "linear"
    prunable: bool = True
    group: str = ""
    count: int = 1

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

    ``layers`` may be given as any sequence; it is stored as a tuple.
    """

    name: str
    layers: tuple[GemmLayer, ...]

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
