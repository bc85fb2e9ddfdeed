"""Symmetric linear quantisation to signed integers.

A real value ``x`` maps to ``q = clip(round(x / scale), -qmax, qmax)`` with
``qmax = 2**(bits-1) - 1`` (the range is symmetric: ``-2**(bits-1)`` is never used) and
``scale = max|x| / qmax``, so the largest magnitude maps to ``+-qmax``. Rounding is
round-half-to-even (``np.rint``). ``x`` is recovered approximately as ``q * scale`` with
an error of at most ``scale / 2`` per element. An all-zero tensor (or channel) gets
``scale = 1.0``.

Integers come back in the narrowest signed dtype that holds ``bits`` bits: int8 for
``bits <= 8``, int16 for ``bits <= 16``, int32 up to 32.
"""

from __future__ import annotations

import numpy as np

__all__ = ["quantize_per_tensor", "quantize_per_channel", "dequantize", "qmax", "int_dtype"]


def _check_bits(bits: object) -> int:
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 32:
        raise ValueError(f"bits = {bits!r} is not allowed: must be an integer in 2..32")
    return int(bits)


def qmax(bits: int) -> int:
    """Largest quantised magnitude, ``2**(bits-1) - 1`` (127 for 8 bits)."""
    return (1 << (_check_bits(bits) - 1)) - 1


def int_dtype(bits: int) -> np.dtype:
    """The narrowest signed NumPy integer dtype holding ``bits``-bit values."""
    bits = _check_bits(bits)
    return np.dtype(np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32)


def _check_real(name: str, x: object) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} of type {type(x).__name__} is not allowed: must be a NumPy array")
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} of dtype {x.dtype} is not allowed: must be a real numeric array")
    if x.size == 0:
        raise ValueError(f"{name} of shape {x.shape} is not allowed: must not be empty")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} is not allowed to contain NaN or infinity")
    return x


def _quantize(x: np.ndarray, scale: np.ndarray | float, bits: int) -> np.ndarray:
    top = qmax(bits)
    return np.clip(np.rint(x / scale), -top, top).astype(int_dtype(bits))


def quantize_per_tensor(x: np.ndarray, *, bits: int = 8) -> tuple[np.ndarray, float]:
    """Quantise ``x`` with one scale for the whole tensor.

    Returns:
        ``(q, scale)``: ``q`` of ``x``'s shape in :func:`int_dtype` ``(bits)``, and the
        Python float ``scale`` with ``x ~= q * scale``.

    Raises:
        ValueError: ``bits`` not in 2..32; ``x`` empty, non-numeric or not finite.
    """
    bits = _check_bits(bits)
    xf = _check_real("x", x)
    peak = float(np.max(np.abs(xf)))
    scale = peak / qmax(bits) if peak > 0 else 1.0
    return _quantize(xf, scale, bits), scale


def quantize_per_channel(w: np.ndarray, *, bits: int = 8, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Quantise ``w`` with one scale per slice along ``axis`` (default 0: per output
    row of a ``W[out, K]`` weight).

    Returns:
        ``(q, scales)``: ``q`` of ``w``'s shape in :func:`int_dtype` ``(bits)``, and
        float64 ``scales`` of length ``w.shape[axis]`` with
        ``w ~= q * expand(scales)`` (see :func:`dequantize`).

    Raises:
        ValueError: ``bits`` not in 2..32; ``axis`` out of range; ``w`` empty,
            non-numeric or not finite.
    """
    bits = _check_bits(bits)
    wf = _check_real("W", w)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -wf.ndim <= axis < wf.ndim:
        raise ValueError(f"axis = {axis!r} is not allowed for an array of {wf.ndim} dimensions")
    axis = int(axis) % wf.ndim
    others = tuple(a for a in range(wf.ndim) if a != axis)
    peak = np.max(np.abs(wf), axis=others) if others else np.abs(wf)
    scales = np.where(peak > 0, peak / qmax(bits), 1.0)
    return _quantize(wf, _expand(scales, wf.ndim, axis), bits), scales


def _expand(scales: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return scales.reshape(shape)


def dequantize(q: np.ndarray, scale: float | np.ndarray, *, axis: int | None = None) -> np.ndarray:
    """Real values (float64) ``q * scale``; with ``axis`` given, ``scale`` is a per-channel
    vector along that axis (as returned by :func:`quantize_per_channel`).

    Raises:
        ValueError: ``axis`` is given and ``scale`` is not a vector of length ``q.shape[axis]``.
    """
    q = np.asarray(q)
    if axis is None:
        return q.astype(np.float64) * np.asarray(scale, dtype=np.float64)
    if not -q.ndim <= axis < q.ndim:
        raise ValueError(f"axis = {axis!r} is not allowed for an array of {q.ndim} dimensions")
    scale = np.asarray(scale, dtype=np.float64)
    if scale.shape != (q.shape[axis],):
        raise ValueError(
            f"scale of shape {scale.shape} is not allowed: must be ({q.shape[axis]},) for axis {axis}")
    return q.astype(np.float64) * _expand(scale, q.ndim, axis % q.ndim)
