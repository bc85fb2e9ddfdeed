"""The pruned MiniLM the RTL tests run on: real weights and real masks of the best method.

``sparseforge simulate --functional`` and the demo prune MiniLM with SparseGPT and the refit
(docs/pruning.md); the cocotb tests use SparseGPT too, so the RTL is verified on the masks and
weights the project recommends. To keep CI short (about 15 s per pattern on 2 cores instead of
minutes) they calibrate on :data:`TEST_CALIB` tokens instead of the default 8192 and leave the
refit out (:data:`TEST_RECOVER`); the weights are real SparseGPT output either way, only their
quality is lower. Each pattern is pruned once per test session, into a temporary folder (the
user's cache is not touched). Dense patterns (``n == m``) need no pruning: int8 only."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

#: calibration tokens of the test models (4 windows of 128)
TEST_CALIB = 512
#: the method of the test models: the default of simulate --functional
TEST_METHOD = "sparsegpt"
#: the refit is left out: on a few hundred tokens it overfits (docs/pruning.md), and it is the
#: costly step (a linear solve per output row); the masks are the method's either way
TEST_RECOVER = False

_folder: Path | None = None


def _tmp() -> Path:
    global _folder
    if _folder is None:
        _folder = Path(tempfile.mkdtemp(prefix="sparseforge-pruned-"))
        atexit.register(shutil.rmtree, _folder, True)
    return _folder


@functools.lru_cache(maxsize=None)
def pruned_weights(n: int, m: int) -> str:
    """An ``.npz`` of MiniLM's Linear tensors pruned ``n:m`` by SparseGPT + refit."""
    from sparseforge.sweep import accuracy

    rec = accuracy.measure("minilm", n, m, TEST_METHOD, calib=TEST_CALIB, recover=TEST_RECOVER, quality=False, cache=False)
    return str(accuracy.save_weights(_tmp() / f"minilm-{n}of{m}-{TEST_METHOD}.npz", rec["tensors"]))


def best_pruned_minilm(n: int, m: int):
    """:func:`sparseforge.models.pipeline.pruned_minilm` of the test model (n == m: dense int8).
    Raises FileNotFoundError when the MiniLM weights are not installed."""
    from sparseforge.models import minilm, pipeline

    if n >= m:
        return pipeline.pruned_minilm(n, m)
    minilm.model_dir()                       # FileNotFoundError before any work
    return pipeline.pruned_minilm(n, m, pruned_path=pruned_weights(n, m))
