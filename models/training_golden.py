"""Golden models of the three GEMMs of one training step of one layer (issue #3).

For a layer with activations ``X[T, K]``, dense master weights ``W[N, K]`` (stored
``[out, in]``) and output gradient ``dY[T, N]``, a training step runs::

    FF  Y[T, N]  = X  @ (W * mask_ff)^T        forward          (reduction over K)
    BP  dX[T, K] = dY @ (W * mask_bp)          backward data    (reduction over N)
    WG  dW[N, K] = dY^T @ X                    weight gradient  (reduction over T, dense)

(the paper writes the same products column-major: ``Y = W X``, ``dX = W^T dY``,
``dW = dY X^T``). In sparseforge's GEMM convention ``Y[T, n_out] = X[T, K] @ W[n_out, K]^T``
the three are:

* FF: activations ``X``, weights ``W * mask_ff`` (``[N, K]``, N:M groups along ``K``);
* BP: activations ``dY``, weights ``(W * mask_bp)^T`` (``[K, N]``, N:M groups along ``N``,
  i.e. along the output dimension of the original ``W``);
* WG: activations ``dY^T`` (``[N, T]``), "weights" ``X^T`` (``[K, T]``), dense: the
  stored activation ``X`` is the stationary operand.

``mask_ff`` and ``mask_bp`` are the two BDWP masks (``mask_bp = mask_ff`` is ordinary
SR-STE backprop, all-True masks are dense training). The integer versions are exact
(int64) and can be compared bit for bit with the simulator and RTL; the N:M version
(:func:`training_gemms_nm_int`) works from the compressed forms only, as N:M hardware does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .golden import gemm_dense_int, gemm_nm_int
from .prune import NMCompressed, compress

__all__ = ["TrainingGemms", "training_gemms", "training_gemms_nm_int", "ff_compressed", "bp_compressed",
           "is_nm_mask"]


@dataclass(frozen=True, kw_only=True, eq=False)
class TrainingGemms:
    """Results of the three GEMMs of one training step (read-only arrays).

    Attributes:
        ff: ``Y[T, N] = X @ (W * mask_ff)^T``.
        bp: ``dX[T, K] = dY @ (W * mask_bp)``.
        wg: ``dW[N, K] = dY^T @ X``.
    """

    ff: np.ndarray
    bp: np.ndarray
    wg: np.ndarray

    def __post_init__(self) -> None:
        for name in ("ff", "bp", "wg"):
            a = np.array(getattr(self, name))
            a.setflags(write=False)
            object.__setattr__(self, name, a)


def _matrix(name: str, a: object, shape: str) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.ndim != 2 or 0 in a.shape:
        got = a.shape if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(f"{name} = {got} is not allowed: must be a non-empty 2-D NumPy array {shape}")
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"{name} of dtype {a.dtype} is not allowed: must be integer or floating point")
    return a


def _mask(name: str, mask: object, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != shape:
        got = (mask.shape, mask.dtype) if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"{name} = {got} is not allowed: must be a boolean array of shape {shape} (W's shape)")
    return mask


def _operands(x, w, dy, mask_ff, mask_bp):
    x = _matrix("X", x, "[T, K]")
    w = _matrix("W", w, "[N, K]")
    dy = _matrix("dY", dy, "[T, N]")
    if x.shape[1] != w.shape[1] or dy.shape != (x.shape[0], w.shape[0]):
        raise ValueError(
            f"X {x.shape}, W {w.shape} and dY {dy.shape} are not allowed together: need X[T, K], "
            "W[N, K], dY[T, N]")
    return x, w, dy, _mask("mask_ff", mask_ff, w.shape), _mask("mask_bp", mask_bp, w.shape)


def is_nm_mask(mask: np.ndarray, *, n: int, m: int, axis: int = -1) -> bool:
    """Whether every group of ``m`` consecutive entries of the 2-D boolean ``mask`` along
    ``axis`` (``-1``/``1``: along ``K``, the FF rule; ``0``: along ``N``, the BP rule) holds
    at most ``n`` True values. A short last group is padded with False."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask of shape {mask.shape} is not allowed: must be 2-D")
    if axis in (0, -2):
        mask = mask.T
    elif axis not in (1, -1):
        raise ValueError(f"axis = {axis!r} is not allowed: use 0 or 1 (or -1)")
    rows, k = mask.shape
    g = -(-k // m)
    padded = np.zeros((rows, g * m), dtype=bool)
    padded[:, :k] = mask
    return bool(np.all(padded.reshape(rows, g, m).sum(axis=-1) <= n))


def training_gemms(x: np.ndarray, w: np.ndarray, dy: np.ndarray, mask_ff: np.ndarray | None = None,
                   mask_bp: np.ndarray | None = None) -> TrainingGemms:
    """FF, BP and WG of one layer computed from the masked matrices.

    With ``X``, ``W`` and ``dY`` all integer the results are exact int64 (via
    :func:`models.golden.gemm_dense_int`); otherwise float64. A mask of ``None`` keeps
    every weight (dense). Masks are used as given; they need not be N:M.

    Raises:
        ValueError: non-2-D or non-numeric operands, inconsistent shapes, or a mask that
            is not a boolean array of ``W``'s shape.
    """
    x, w, dy, mask_ff, mask_bp = _operands(x, w, dy, mask_ff, mask_bp)
    zero = np.zeros((), dtype=w.dtype)
    w_ff = np.where(mask_ff, w, zero)
    w_bp = np.where(mask_bp, w, zero)
    if all(np.issubdtype(a.dtype, np.integer) for a in (x, w, dy)):
        return TrainingGemms(ff=gemm_dense_int(x, w_ff), bp=gemm_dense_int(dy, w_bp.T),
                             wg=gemm_dense_int(dy.T, x.T))
    xf, dyf = x.astype(np.float64), dy.astype(np.float64)
    return TrainingGemms(ff=xf @ w_ff.astype(np.float64).T, bp=dyf @ w_bp.astype(np.float64),
                         wg=dyf.T @ xf)


def _compressed_masked(w: np.ndarray, mask: np.ndarray, n: int, m: int, axis: int, what: str) -> NMCompressed:
    if not is_nm_mask(mask, n=n, m=m, axis=axis):
        along = "K (W's input dimension)" if axis in (1, -1) else "N (W's output dimension)"
        raise ValueError(f"{what} is not allowed: it keeps more than {n} of {m} entries in some group along {along}")
    masked = np.where(mask, w, np.zeros((), dtype=w.dtype))
    # At most n nonzeros per group, so compress() keeps every kept weight: to_dense() == masked.
    return compress(masked if axis in (1, -1) else masked.T, n, m)


def ff_compressed(w: np.ndarray, mask_ff: np.ndarray, *, n: int, m: int) -> NMCompressed:
    """``W * mask_ff`` (``[N, K]``) in N:M compressed form, groups along ``K``.

    Raises:
        ValueError: ``mask_ff`` keeps more than ``n`` of some group of ``m`` along ``K``.
    """
    w = _matrix("W", w, "[N, K]")
    return _compressed_masked(w, _mask("mask_ff", mask_ff, w.shape), n, m, 1, "mask_ff")


def bp_compressed(w: np.ndarray, mask_bp: np.ndarray, *, n: int, m: int) -> NMCompressed:
    """``(W * mask_bp)^T`` (``[K, N]``) in N:M compressed form: the BP weight operand,
    groups along ``N`` (the reduction dimension of ``dX = dY @ W``).

    Raises:
        ValueError: ``mask_bp`` keeps more than ``n`` of some group of ``m`` along ``N``.
    """
    w = _matrix("W", w, "[N, K]")
    return _compressed_masked(w, _mask("mask_bp", mask_bp, w.shape), n, m, 0, "mask_bp")


def training_gemms_nm_int(x_q: np.ndarray, w_q: np.ndarray, dy_q: np.ndarray, *, mask_ff: np.ndarray,
                          mask_bp: np.ndarray, n: int, m: int) -> TrainingGemms:
    """The three GEMMs in int64 the way N:M hardware runs them: FF from
    :func:`ff_compressed`, BP from :func:`bp_compressed` (both through
    :func:`models.golden.gemm_nm_int`), WG dense. Equals
    ``training_gemms(x_q, w_q, dy_q, mask_ff, mask_bp)`` bit for bit.

    Raises:
        ValueError: as :func:`training_gemms`, non-integer operands, or masks that are not
            N:M along their dimension.
    """
    x, w, dy, mask_ff, mask_bp = _operands(x_q, w_q, dy_q, mask_ff, mask_bp)
    for name, a in (("X", x), ("W", w), ("dY", dy)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} of dtype {a.dtype} is not allowed: must be integer (quantise first)")
    return TrainingGemms(ff=gemm_nm_int(x, ff_compressed(w, mask_ff, n=n, m=m)),
                         bp=gemm_nm_int(dy, bp_compressed(w, mask_bp, n=n, m=m)),
                         wg=gemm_dense_int(dy.T, x.T))
