"""A real pruned, quantised MiniLM: the operands every other part of sparseforge runs on.

:func:`pruned_minilm` loads the real all-MiniLM-L6-v2 weights, prunes every encoder Linear
layer N:M by magnitude along its input dimension, quantises weights per output channel and
activations per tensor to int8, and runs real text through the resulting integer network.
For every Linear layer it records the integer operands exactly as the accelerator sees them
(``x_q``, the compressed ``w``), so the RTL tests and the simulator's functional mode use the
same real data. The sentence embedding of the sparse int8 network is compared with the dense
float one to report what the pruning costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import minilm
from .golden import gemm_dense_int, gemm_nm_int
from .prune import NMCompressed, compress, prune
from .quant import quantize_per_channel, quantize_per_tensor

__all__ = ["QuantLinear", "PrunedModel", "pruned_minilm"]


@dataclass(frozen=True, eq=False)
class QuantLinear:
    """One Linear layer of the quantised network: ``y = (x_q @ w_q^T) * x_scale * w_scale + b``."""

    name: str
    x_q: np.ndarray            # [T, K] int8 activations (real, from the text)
    x_scale: float
    w_q: np.ndarray            # [out, K] int8 weights (pruned: zeros where masked)
    w_scale: np.ndarray        # [out]
    comp: NMCompressed | None  # N:M compressed form of w_q (None when dense)


@dataclass(frozen=True, eq=False)
class PrunedModel:
    n: int
    m: int
    tokens: int
    layers: tuple[QuantLinear, ...]
    cosine_to_dense: float     # sentence-embedding cosine similarity, sparse int8 vs dense float

    def layer(self, name: str) -> QuantLinear:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(f"no layer {name!r}: known layers are {', '.join(lay.name for lay in self.layers)}")


@lru_cache(maxsize=8)
def pruned_minilm(n: int = 2, m: int = 4, *, tokens: int = 128, text: str | None = None,
                  weights_path: str | None = None, pruned_path: str | None = None) -> PrunedModel:
    """Prune MiniLM ``n:m`` (``n == m``: dense, int8 only), quantise and run ``tokens`` real
    tokens of ``text`` (default: the bundled sample text) through it. ``weights_path``: a
    safetensors file of the same architecture instead of the packaged weights.

    ``pruned_path``: an ``.npz`` of Linear tensors already pruned ``n:m`` by a calibrated method
    (Hugging Face names, as ``sparseforge prune`` writes them, :mod:`.calibrate`); they replace
    the dense ones instead of one-shot magnitude pruning, and ``cosine_to_dense`` still compares
    with the dense float network of ``weights_path``."""
    weights = minilm.load_weights(weights_path)
    ids = minilm.tokenize(text if text is not None else minilm.sample_text(), max_tokens=tokens)
    dense_hidden, _ = minilm.forward(ids, weights)
    sparse = n < m
    records: list[QuantLinear] = []
    run_weights = weights if pruned_path is None else {**weights, **_load_pruned(pruned_path, weights, n, m)}

    def linear(name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        w_kept = prune(w, n, m) if sparse and pruned_path is None else w
        w_q, w_scale = quantize_per_channel(w_kept, axis=0)
        x_q, x_scale = quantize_per_tensor(x)
        comp = compress(w_q, n, m) if sparse else None
        acc = gemm_nm_int(x_q, comp) if sparse else gemm_dense_int(x_q, w_q)
        records.append(QuantLinear(name=name, x_q=x_q, x_scale=float(x_scale), w_q=w_q,
                                   w_scale=np.asarray(w_scale), comp=comp))
        return acc.astype(np.float64) * x_scale * np.asarray(w_scale)[None, :] + b

    hidden, _ = minilm.forward(ids, run_weights, linear=linear)
    e_dense = minilm.sentence_embedding(dense_hidden)
    e_sparse = minilm.sentence_embedding(hidden)
    cos = float(np.dot(e_dense, e_sparse) / (np.linalg.norm(e_dense) * np.linalg.norm(e_sparse)))
    return PrunedModel(n=n, m=m, tokens=len(ids), layers=tuple(records), cosine_to_dense=cos)


def _load_pruned(path: str, weights: dict[str, np.ndarray], n: int, m: int) -> dict[str, np.ndarray]:
    """The Linear tensors of a pruned-weights ``.npz``; each must replace a tensor of the same
    shape, and every weight matrix must keep at most ``n`` of every ``m`` (ValueError otherwise)."""
    with np.load(path, allow_pickle=False) as z:
        tensors = {k: z[k].astype(np.float32) for k in z.files}
    for name, _, _ in minilm.linear_layers(weights):
        layer, _, short = name.partition(".")
        key = f"encoder.layer.{int(layer[5:])}.{minilm._HF_LINEAR[short]}.weight"
        if key not in tensors:
            raise ValueError(f"pruned weights file {path!r} lacks tensor {key!r}")
    for key, t in tensors.items():
        if key not in weights or weights[key].shape != t.shape:
            raise ValueError(f"pruned weights file {path!r}: tensor {key!r} of shape {t.shape} is not allowed: "
                             "it must replace a MiniLM tensor of the same shape")
        if key.endswith(".weight") and n < m and (t.reshape(t.shape[0], -1, m) != 0).sum(axis=2).max() > n:
            raise ValueError(f"pruned weights file {path!r}: tensor {key!r} is not {n}:{m} sparse")
    return tensors

