"""What pruning costs in accuracy, measured once and cached on disk (docs/pruning.md).

:func:`measure` prunes a network with a method at a pattern (:mod:`sparseforge.models.calibrate`),
measures its :class:`~sparseforge.models.calibrate.Quality` with int8 quantisation off and on,
and keeps the record and the pruned weights in the cache, so that ``sparseforge prune``,
``simulate --functional --prune`` and the sweeps' ``accuracy`` objective compute each
(network, pattern, method, recovery, calibration) once.

The cache folder is ``<sparseforge cache>/prune`` (``$SPARSEFORGE_CACHE_DIR``, else
``$XDG_CACHE_HOME/sparseforge``, else ``~/.cache/sparseforge``; see
:func:`sparseforge.cache.cache_dir`). An entry is ``<key>.npz`` (the pruned Linear
tensors under their Hugging Face names, compressed) and ``<key>.json`` (the record), each
written atomically, the weights first, so a record always has its weights. The key is
SHA-256 over the network, pattern, method, recovery, calibration size, the calibration
text (or the bundled corpus's digest), the sparseforge version and a fingerprint of the
pruning code (editing it invalidates every entry). A 2:4 entry takes about 25 MB.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import InputError
from ..fileio import write_atomic

__all__ = ["NETWORKS", "RECORD_FIELDS", "cache_folder", "cache_key", "measure", "dense_quality", "load_weights",
           "save_weights", "check_request", "PruneRequestError"]

#: networks with real weights to prune
NETWORKS = ("minilm",)
#: the code whose source decides a record (fingerprinted into the key)
_CODE = ("nm_methods", "calibrate", "minilm", "prune", "quant")

Progress = Callable[[float, str], None]


class PruneRequestError(InputError):
    """A bad pruning request: one line naming the argument, the value and what is allowed."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


#: the fields of a record, in order (docs/pruning.md)
RECORD_FIELDS = ("net", "sparsity", "method", "recover", "calib", "calib_text", "version", "float", "int8",
                 "layers", "prune_seconds", "eval_seconds", "weights_file", "key")


def cache_folder() -> Path:
    """The prune cache folder (not created here)."""
    from ..cache import cache_dir

    return cache_dir() / "prune"


@lru_cache(maxsize=1)
def _fingerprint() -> str:
    import sparseforge.models as models

    here = Path(models.__file__).resolve().parent
    h = hashlib.sha256()
    for mod in _CODE:
        h.update(mod.encode())
        h.update((here / f"{mod}.py").read_bytes())
    return h.hexdigest()[:16]


def _text_digest(text: str | None) -> str:
    from ..models import calibrate

    if text is None:
        return "corpus:" + calibrate.corpus_digest()
    return "text:" + hashlib.sha256(text.encode()).hexdigest()[:16]


@lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()[:16]


def _weights_digest(weights_path: str | None) -> str:
    if weights_path is None:
        return "packaged"
    st = Path(weights_path).stat()
    return _file_digest(str(Path(weights_path).resolve()), st.st_size, st.st_mtime_ns)


def cache_key(net: str, n: int, m: int, method: str, *, recover: bool, calib: int, text: str | None = None,
              weights_path: str | None = None) -> str:
    """32 hex digits naming one record (module docstring)."""
    blob = json.dumps({"net": net, "n": n, "m": m, "method": method, "recover": bool(recover), "calib": calib,
                       "text": _text_digest(text), "weights": _weights_digest(weights_path), "version": __version__,
                       "code": _fingerprint()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def check_request(net: str, n: int, m: int, method: str, calib: Any) -> None:
    """Refuse a request the models cannot serve, before any work: one line naming the
    argument (``net``, ``sparsity``, ``method``, ``calib``)."""
    from ..models import calibrate, nm_methods

    if net not in NETWORKS:
        raise PruneRequestError(f"net {net!r} is not allowed: pruning needs real weights, which only "
                                f"{', '.join(NETWORKS)} has", param="net")
    if method not in nm_methods.METHODS:
        raise PruneRequestError(f"method {method!r} is not allowed: choose one of {', '.join(nm_methods.METHODS)}",
                                param="method")
    if isinstance(calib, bool) or not isinstance(calib, int) or not calibrate.MIN_CALIB <= calib <= calibrate.MAX_CALIB:
        raise PruneRequestError(f"calib {calib!r} is not allowed: must be an integer in {calibrate.MIN_CALIB}.."
                                f"{calibrate.MAX_CALIB} (calibration tokens)", param="calib")
    try:
        calibrate.check_pattern(n, m)
    except InputError as exc:
        raise PruneRequestError(str(exc), param="sparsity") from None


def save_weights(path: Path | str, tensors: dict[str, Any], *, what: str = "pruned weights") -> Path:
    """Write the tensors atomically as ``.npz`` (compressed) or ``.safetensors`` (by the
    extension)."""
    import numpy as np

    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.numpy import save

        blob = save({k: np.ascontiguousarray(v) for k, v in tensors.items()})
    else:
        buf = io.BytesIO()
        np.savez_compressed(buf, **tensors)
        blob = buf.getvalue()
    return write_atomic(path, blob, what=what)


def load_weights(path: Path | str) -> dict[str, Any]:
    """The tensors of a file written by :func:`save_weights`."""
    import numpy as np

    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.numpy import load_file

        return dict(load_file(str(path)))
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _read(key: str) -> dict[str, Any] | None:
    folder = cache_folder()
    try:
        rec = json.loads((folder / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("key") != key or not (folder / f"{key}.npz").is_file():
        return None
    rec["weights_file"] = str(folder / f"{key}.npz")
    return rec


def _write(rec: dict[str, Any]) -> None:
    rec = {k: v for k, v in rec.items() if k not in ("tensors", "weights_file")}
    write_atomic(cache_folder() / f"{rec['key']}.json", json.dumps(rec, indent=1, sort_keys=True),
                 what="prune cache entry")


def _dense_weights(weights_path: str | None) -> dict[str, Any]:
    from ..models import minilm

    return minilm.load_weights(weights_path)


def dense_quality(*, cache: bool = True, weights_path: str | None = None) -> dict[str, Any]:
    """The dense network's quality, float (cosine 1 by definition) and int8, cached like a record."""
    from ..models import calibrate

    key = cache_key("minilm", 0, 0, "dense", recover=False, calib=0, weights_path=weights_path)
    path = cache_folder() / f"dense-{key}.json"
    if cache:
        try:
            rec = json.loads(path.read_text())
            if rec.get("key") == key:
                return rec
        except (OSError, ValueError):
            pass
    t0 = time.perf_counter()
    weights = _dense_weights(weights_path)
    rec = {"net": "minilm", "sparsity": "dense", "method": "dense", "recover": False, "calib": 0,
           "version": __version__, "float": calibrate.evaluate(None, weights=weights).to_dict(),
           "int8": calibrate.evaluate(None, int8=True, weights=weights).to_dict(),
           "eval_seconds": time.perf_counter() - t0, "key": key}
    if cache:
        write_atomic(path, json.dumps(rec, indent=1, sort_keys=True), what="prune cache entry")
    return rec


def _label(n: int, m: int, method: str, recover: bool) -> str:
    return f"{n}:{m} {method}{' + refit' if recover else ''}"


def measure(net: str, n: int, m: int, method: str, *, calib: int, recover: bool = True, text: str | None = None,
            weights_path: str | None = None, quality: bool = True, cache: bool = True,
            progress: Progress | None = None) -> dict[str, Any]:
    """The record of ``net`` pruned ``n:m`` with ``method`` (and, with ``recover``, the refit),
    calibrated on ``calib`` tokens of ``text`` (default the bundled calibration documents) of
    the dense weights ``weights_path`` (default the packaged ones): per-layer calibration
    errors, times, the weights file (None with ``cache = False``: ``record["tensors"]`` holds
    the weights) and, with ``quality``, its :class:`~sparseforge.models.calibrate.Quality`
    float and int8 (else None unless cached). From the cache when there.
    ``progress(fraction, message)``."""
    from ..models import calibrate

    check_request(net, n, m, method, calib)
    label = _label(n, m, method, recover)
    key = cache_key(net, n, m, method, recover=recover, calib=calib, text=text, weights_path=weights_path)
    rec = _read(key) if cache else None
    weights = None
    if rec is None:
        weights = _dense_weights(weights_path)
        pruned = calibrate.prune_minilm(n, m, method, calib=calib, recover=recover, text=text, weights=weights,
                                        progress=(lambda f, msg: progress(0.8 * f, f"{label}: {msg}"))
                                        if progress else None)
        rec = {"net": net, "sparsity": f"{n}:{m}", "method": method, "recover": bool(recover), "calib": calib,
               "calib_text": "bundled" if text is None else "user", "version": __version__, "float": None,
               "int8": None, "layers": list(pruned.layers), "prune_seconds": pruned.seconds, "eval_seconds": None,
               "weights_file": None, "key": key, "tensors": pruned.weights}
        if cache:
            folder = cache_folder()
            save_weights(folder / f"{key}.npz", pruned.weights, what="prune cache entry")
            _write(rec)
            rec["weights_file"] = str(folder / f"{key}.npz")
    elif progress:
        progress(0.8, f"{label}: pruned weights from the cache")
    if quality and rec.get("float") is None:
        if progress:
            progress(0.8, f"{label}: measuring quality on held-out text (float and int8)")
        weights = _dense_weights(weights_path) if weights is None else weights
        tensors = rec["tensors"] if "tensors" in rec else load_weights(rec["weights_file"])
        t0 = time.perf_counter()
        rec["float"] = calibrate.evaluate(tensors, weights=weights).to_dict()
        rec["int8"] = calibrate.evaluate(tensors, int8=True, weights=weights).to_dict()
        rec["eval_seconds"] = time.perf_counter() - t0
        if cache:
            _write(rec)
    if progress:
        progress(1.0, f"{label}: done")
    return rec


# ============================================================================ sweeps
def _point_pattern(spec: Any, sparsity: str) -> tuple[int, int] | None:
    from .file import parse_nm

    if sparsity == "array":
        return None if spec.n >= spec.m else (spec.n, spec.m)
    return parse_nm(sparsity)


def attach_quality(sweep: Any, tasks: list[Any], *, show: bool = False) -> list[Any]:
    """The tasks with their accuracy and cosine (:attr:`~.evaluate.PointTask.quality`), measured
    here in the driver once per (pattern, method, calibration, recovery) and cached on disk,
    when the sweep asks for accuracy (an ``accuracy`` objective or a ``prune`` axis). A point
    is the weighted mean of its MiniLM inference workloads' int8 figures (the accelerator runs
    int8). A point whose pattern MiniLM cannot take fails with the reason."""
    import dataclasses
    import sys

    from .file import PRUNE_AXIS, PRUNE_KEYS, _workload_metrics

    if "accuracy" not in sweep.objectives and PRUNE_AXIS not in sweep.axis_names:
        return tasks
    wls = [w for w in sweep.workloads if "accuracy" in _workload_metrics(w)]
    memo: dict[tuple, dict[str, float]] = {}

    def say(frac: float, msg: str) -> None:
        if show:
            print(f"[sweep] accuracy: {msg} ({100 * frac:.0f}%)", file=sys.stderr, flush=True)

    def quality(pattern: tuple[int, int] | None, method: str, calib: int, recover: bool) -> dict[str, float]:
        key = (pattern, method if pattern else None, calib if pattern else None, recover if pattern else None)
        if key not in memo:
            rec = dense_quality() if pattern is None else \
                measure("minilm", *pattern, method, calib=calib, recover=recover, progress=say)
            memo[key] = {"accuracy": rec["int8"]["accuracy"], "cosine": rec["int8"]["cosine"]}
        return memo[key]

    out = []
    for task in tasks:
        if task.spec is None or not wls:
            out.append(task)
            continue
        values = dict(task.values)
        try:
            acc = cos = 0.0
            total = sum(w.weight for w in wls)
            for w in wls:
                p = dict(w.params)
                method = values.get(PRUNE_AXIS, p.get("prune", PRUNE_KEYS["prune"]))
                q = quality(_point_pattern(task.spec, p["sparsity"]), method, p.get("calib", PRUNE_KEYS["calib"]),
                            p.get("recover", PRUNE_KEYS["recover"]))
                acc += w.weight * q["accuracy"] / total
                cos += w.weight * q["cosine"] / total
        except InputError as exc:
            out.append(dataclasses.replace(task, spec=None, error=f"accuracy: {str(exc).splitlines()[0]}"))
            continue
        out.append(dataclasses.replace(task, quality={"accuracy": acc, "cosine": cos}))
    return out
