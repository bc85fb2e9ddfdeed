"""Pruning all-MiniLM-L6-v2 N:M with calibration data, and measuring what it costs on real text.

**The text.** Everything comes from the CPython reference topics bundled with the
interpreter (``pydoc_data.topics``), grouped into the six domains the MoE routing already
uses (:data:`sparseforge.models.moe.TASKS`; named here by what they hold, :data:`DOMAINS`).
The split is by document (topic): inside each domain, in :data:`~sparseforge.models.moe.TASKS`
order, topic ``i`` goes to

* ``i % 3 == 0`` -- **calibration** (about 46 k word pieces with CPython 3.11's topics), the
  only text pruning ever sees;
* ``i % 3 == 1`` or ``2`` (parts ``train`` and ``test`` of :func:`split`) -- **evaluation**:
  up to :data:`SENTENCES_PER_TOPIC` prose sentences of each topic, alternately in half 0 (the
  topic's centroid) and half 1 (classified by nearest centroid), :func:`eval_sentences`.

So no evaluation sentence comes from a document pruning was calibrated on. The bundled
Darwin sample (:func:`~sparseforge.models.minilm.sample_text`) is never used for calibration
either: it is the out-of-domain text of :attr:`Quality.cosine_sample` (and the functional
check's text).

**Calibration** (:func:`calibration_batches`) cuts the calibration text's word pieces into
windows of :data:`SEQ_TOKENS` tokens (``[CLS]``, 126 pieces, ``[SEP]``; the last may be
shorter) until the requested number of tokens is reached.

**Sequential pruning** (:func:`prune_minilm`): the encoder runs on the whole calibration set
block by block, twice side by side: the dense network, and the network pruned so far. Each
block is pruned in four steps, in the order its Linear layers see data -- ``attn.q/k/v``
(one shared input), ``attn.o``, ``ffn.up``, ``ffn.down`` -- and each step's calibration
inputs are taken from the pruned stream after the steps before it were pruned (and refitted),
so every layer is calibrated on what it receives in the pruned network. The layer methods
are in :mod:`.nm_methods`.

**Quality** (:func:`evaluate`): the sentence embeddings of the evaluation sentences from the
pruned network, float or with int8 quantisation (weights per output channel, activations
per tensor of each sequence, as :mod:`.pipeline` and the accelerator do), against the dense
float network: the mean cosine, and nearest-centroid domain accuracy.

The encoder here runs a batch of equal-length sequences at once; block by block it is the
arithmetic of :func:`sparseforge.models.minilm.forward` (the same LayerNorm, GELU and softmax
functions, in the same order), which ``tests/test_prune.py`` checks to the bit.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np

from sparseforge.errors import InputError

from . import minilm, nm_methods
from .minilm import HEAD_DIM, HEADS, HIDDEN, NUM_LAYERS, _gelu, _layer_norm, _softmax
from .prune import _check_nm
from .quant import quantize_per_channel, quantize_per_tensor

__all__ = [
    "PruneError", "DOMAINS", "SEQ_TOKENS", "DEFAULT_CALIB", "MIN_CALIB", "MAX_CALIB", "split", "calibration_text",
    "calibration_batches", "eval_sentences", "encode", "PrunedLinear", "prune_minilm", "apply", "Quality",
    "evaluate", "corpus_digest", "check_pattern",
]


class PruneError(InputError):
    """A bad pruning request (pattern, method, calibration size or text): one line naming the
    value and what is allowed."""


#: tokens per calibration window (the simulator's MiniLM sequence length)
SEQ_TOKENS = 128
#: default calibration tokens: SparseGPT needs several times more tokens than a layer has
#: inputs (384 or 1536), so thousands (docs/pruning.md)
DEFAULT_CALIB = 8192
#: fewest calibration tokens: one window
MIN_CALIB = SEQ_TOKENS
#: most calibration tokens (the side-by-side streams hold about 85 KB per token)
MAX_CALIB = 1 << 16
#: evaluation sentences per topic (half of them make its centroid, half are classified)
SENTENCES_PER_TOPIC = 24
#: longest evaluation sentence, in tokens ([CLS] and [SEP] included)
MAX_SENTENCE_TOKENS = SEQ_TOKENS


def _domains() -> dict[str, tuple[str, ...]]:
    from .moe import TASKS

    names = {"seg": "statements", "parts": "expressions", "sal": "literals-and-strings",
             "normals": "built-in-types", "edges": "execution-model", "depth": "data-model"}
    return {names[t]: topics for t, topics in TASKS.items()}


#: domain -> its CPython reference topics (the MoE tasks' text domains, renamed by content)
DOMAINS: dict[str, tuple[str, ...]] = _domains()
_PARTS = ("calibration", "train", "test")


def split() -> dict[str, dict[str, tuple[str, ...]]]:
    """``{part: {domain: topics}}`` for the parts ``calibration``, ``train`` and ``test``."""
    return {part: {d: tuple(t for i, t in enumerate(topics) if i % 3 == p) for d, topics in DOMAINS.items()}
            for p, part in enumerate(_PARTS)}


def _topics() -> dict[str, str]:
    import pydoc_data.topics as topics

    return topics.topics


def calibration_text() -> str:
    """The calibration documents, joined (domain order, then topic order)."""
    texts = _topics()
    return "\n\n".join(texts[t] for topics in split()["calibration"].values() for t in topics)


def _sentences(text: str) -> list[str]:
    """Prose sentences of a reference topic: paragraphs joined, split after ``. ! ?``; kept
    when they have at least 6 words and mostly letters (grammar rules and code are dropped)."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        flat = " ".join(para.split())
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"(*])", flat):
            chars = [c for c in s if not c.isspace()]
            if len(s.split()) >= 6 and s[-1] in ".!?" and chars and \
                    sum(c.isalpha() for c in chars) / len(chars) >= 0.7:
                out.append(s)
    return out


def _spread(items: list, k: int) -> list:
    """``k`` items evenly spread over ``items`` (all of them when there are fewer)."""
    if len(items) <= k:
        return list(items)
    return [items[int(i * len(items) / k)] for i in range(k)]


@lru_cache(maxsize=1)
def eval_sentences() -> tuple[tuple[str, str, int, str], ...]:
    """The evaluation sentences, ``(topic, domain, half, sentence)``: from every topic of the
    evaluation documents (parts ``train`` and ``test`` of :func:`split`), up to
    :data:`SENTENCES_PER_TOPIC` of its prose sentences, evenly spread over it, alternately in
    half 0 (the centroids) and half 1 (classified). Topics with fewer than 4 sentences are
    left out (each half needs two)."""
    texts = _topics()
    rows = []
    for part in ("train", "test"):
        for d, topics in split()[part].items():
            for t in topics:
                sents = _spread(_sentences(texts[t]), SENTENCES_PER_TOPIC)
                if len(sents) >= 4:
                    rows += [(t, d, j % 2, s) for j, s in enumerate(sents)]
    return tuple(rows)


def corpus_digest() -> str:
    """16 hex digits of the calibration and evaluation text (they come with the interpreter,
    so they can change with the CPython version): part of every cache key."""
    h = hashlib.sha256(calibration_text().encode())
    for row in eval_sentences():
        h.update(("\0".join(map(str, row)) + "\0").encode())
    h.update(minilm.sample_text().encode())
    return h.hexdigest()[:16]


def _body_ids(text: str) -> list[int]:
    return minilm._tokenizer().encode(text, add_special_tokens=False).ids


def calibration_batches(tokens: int = DEFAULT_CALIB, *, text: str | None = None) -> list[np.ndarray]:
    """``tokens`` calibration tokens of ``text`` (default :func:`calibration_text`) as batches of
    equal-length windows ``[B, T]`` (``T = SEQ_TOKENS``; a last, shorter window alone).

    Raises:
        PruneError: ``tokens`` out of ``MIN_CALIB..MAX_CALIB``, or the text has too few tokens.
    """
    if isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer)) or not MIN_CALIB <= tokens <= MAX_CALIB:
        raise PruneError(f"calib = {tokens!r} is not allowed: must be an integer in {MIN_CALIB}..{MAX_CALIB} "
                         f"(calibration tokens; at least one window of {SEQ_TOKENS})")
    tokens = int(tokens)
    where = "the bundled calibration text" if text is None else "the calibration text"
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise PruneError("calibration text is empty: give some prose")
    body = _body_ids(calibration_text() if text is None else text)
    per = SEQ_TOKENS - 2
    full, rest = divmod(tokens, SEQ_TOKENS)
    need = full * per + max(rest - 2, 0) + (1 if 0 < rest < 3 else 0)
    if rest and rest < 3:                         # a window needs [CLS], a piece and [SEP]
        raise PruneError(f"calib = {tokens} is not allowed: the last window would have {rest} tokens; "
                         f"use a multiple of {SEQ_TOKENS} or leave at least 3 over")
    if len(body) < need:
        most = (len(body) // per) * SEQ_TOKENS
        room = f"enough for calib <= {most}" if most else f"not one window of {per} pieces and [CLS], [SEP]"
        raise PruneError(f"{where} is too short to calibrate {tokens} tokens: it has {len(body)} word pieces, "
                         f"{room}")
    tok = minilm._tokenizer()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    windows = [[cls, *body[i * per:(i + 1) * per], sep] for i in range(full)]
    batches = [np.array(windows, dtype=np.int64)] if windows else []
    if rest:
        batches.append(np.array([[cls, *body[full * per: full * per + rest - 2], sep]], dtype=np.int64))
    return batches


def check_pattern(n: int, m: int) -> tuple[int, int]:
    """``n:m`` must be a sparse pattern whose groups tile MiniLM's reductions (384 and 1536)."""
    try:
        n, m = _check_nm(n, m)
    except ValueError as exc:
        raise PruneError(f"sparsity {n}:{m} is not allowed: {exc}") from None
    if n >= m:
        raise PruneError(f"sparsity {n}:{m} is not allowed: pruning needs n < m (n:m = {n}:{m} is dense)")
    if HIDDEN % m:
        raise PruneError(f"sparsity {n}:{m} is not allowed for minilm: m must divide its reductions of "
                         f"{HIDDEN} and 4 x {HIDDEN} inputs (m in 2, 3, 4, 6, 8, 12, 16, ...)")
    return n, m


# ============================================================================ the encoder, batched
#: ``lin(name, x[B, T, K]) -> y[B, T, out]``
Lin = Callable[[str, np.ndarray], np.ndarray]


def _embed(ids: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    t = ids.shape[1]
    h = (weights["embeddings.word_embeddings.weight"][ids]
         + weights["embeddings.position_embeddings.weight"][:t]
         + weights["embeddings.token_type_embeddings.weight"][0])
    return _layer_norm(h, weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])


def _context(h: np.ndarray, i: int, lin: Lin) -> np.ndarray:
    """Self-attention of block ``i`` up to the context vectors (the input of ``attn.o``)."""
    b, t, _ = h.shape

    def heads(x: np.ndarray) -> np.ndarray:                 # [B, T, 384] -> [B, 12, T, 32]
        return x.reshape(b, t, HEADS, HEAD_DIM).transpose(0, 2, 1, 3)

    n = f"layer{i}."
    q, k, v = (heads(lin(n + s, h)) for s in ("attn.q", "attn.k", "attn.v"))
    scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / math.sqrt(HEAD_DIM))
    return (_softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(b, t, HIDDEN)


def _attn_out(ctx: np.ndarray, h: np.ndarray, i: int, weights: dict, lin: Lin) -> np.ndarray:
    p = f"encoder.layer.{i}.attention.output.LayerNorm."
    return _layer_norm(lin(f"layer{i}.attn.o", ctx) + h, weights[p + "weight"], weights[p + "bias"])


def _ffn_in(h1: np.ndarray, i: int, lin: Lin) -> np.ndarray:
    return _gelu(lin(f"layer{i}.ffn.up", h1))


def _ffn_out(u: np.ndarray, h1: np.ndarray, i: int, weights: dict, lin: Lin) -> np.ndarray:
    p = f"encoder.layer.{i}.output.LayerNorm."
    return _layer_norm(lin(f"layer{i}.ffn.down", u) + h1, weights[p + "weight"], weights[p + "bias"])


def _float_lin(weights: dict[str, np.ndarray]) -> Lin:
    def lin(name: str, x: np.ndarray) -> np.ndarray:
        pre = _hf(name)
        y = x.reshape(-1, x.shape[-1]) @ weights[pre + ".weight"].T + weights[pre + ".bias"]
        return y.astype(np.float32, copy=False).reshape(x.shape[:-1] + (-1,))

    return lin


def _int8_lin(weights: dict[str, np.ndarray]) -> Lin:
    """int8 weights per output channel and activations per tensor of each sequence
    (:mod:`.quant`, as :func:`.pipeline.pruned_minilm` and the accelerator); the integer
    products are summed in float32 (a relative rounding below 1e-6, far below the int8
    error) and rescaled."""
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def lin(name: str, x: np.ndarray) -> np.ndarray:
        pre = _hf(name)
        if name not in cache:
            w_q, w_scale = quantize_per_channel(weights[pre + ".weight"], axis=0)
            cache[name] = (w_q.astype(np.float32), np.asarray(w_scale, dtype=np.float32))
        w_q, w_scale = cache[name]
        pairs = [quantize_per_tensor(x[s]) for s in range(x.shape[0])]
        x_q = np.stack([q for q, _ in pairs]).astype(np.float32)
        x_scale = np.array([sc for _, sc in pairs], dtype=np.float32)[:, None, None]
        acc = (x_q.reshape(-1, x.shape[-1]) @ w_q.T).reshape(x.shape[:-1] + (-1,))
        return (acc * x_scale * w_scale + weights[pre + ".bias"]).astype(np.float32, copy=False)

    return lin


def _hf(name: str) -> str:
    layer, _, short = name.partition(".")
    return f"encoder.layer.{int(layer[5:])}.{minilm._HF_LINEAR[short]}"


def encode(ids: np.ndarray, weights: dict[str, np.ndarray], *, int8: bool = False, lin: Lin | None = None) -> np.ndarray:
    """The last hidden state ``[B, T, 384]`` (float32) of a batch of equal-length sequences
    ``ids [B, T]``; with ``int8``, every Linear layer quantised as in :func:`_int8_lin`
    (``lin``: that function made once for many batches, :func:`_int8_lin` or :func:`_float_lin`)."""
    ids = np.asarray(ids)
    if lin is None:
        lin = _int8_lin(weights) if int8 else _float_lin(weights)
    h = _embed(ids, weights)
    for i in range(NUM_LAYERS):
        h1 = _attn_out(_context(h, i, lin), h, i, weights, lin)
        h = _ffn_out(_ffn_in(h1, i, lin), h1, i, weights, lin)
    return h.astype(np.float32, copy=False)


# ============================================================================ sequential pruning
@dataclass(frozen=True, eq=False)
class PrunedLinear:
    """The pruned Linear layers of MiniLM and what pruning measured.

    ``weights``: Hugging Face name -> float32 tensor, the 36 pruned weights and their biases
    (the biases change only with recovery). ``layers``: per layer, in encoder order, its name,
    its relative calibration error after the method (``error_oneshot``) and after recovery
    (``error``; equal without recovery): :func:`.nm_methods.calibration_error`, measured on
    the calibration outputs.
    """

    n: int
    m: int
    method: str
    recover: bool
    calib: int
    weights: dict[str, np.ndarray]
    layers: tuple[dict, ...]
    seconds: float
    masks: dict[str, np.ndarray] = field(repr=False, default_factory=dict)


def _stage_layers(i: int) -> tuple[tuple[str, ...], ...]:
    n = f"layer{i}."
    return ((n + "attn.q", n + "attn.k", n + "attn.v"), (n + "attn.o",), (n + "ffn.up",), (n + "ffn.down",))


def _augmented(xs: list[np.ndarray]) -> np.ndarray:
    """The inputs of one step over every batch as ``[N, K + 1]`` float32, with the bias's
    column of ones."""
    k = xs[0].shape[-1]
    x = np.concatenate([a.reshape(-1, k) for a in xs]).astype(np.float32, copy=False)
    return np.concatenate([x, np.ones((x.shape[0], 1), np.float32)], axis=1)


def _stats(xp: np.ndarray, xd: np.ndarray, *, cross: bool) -> nm_methods.LayerStats:
    """:class:`.nm_methods.LayerStats` of one step's augmented inputs: the products in float32
    (as SparseGPT's reference accumulates) kept in float64; the cross moment only for the
    refit, and no dense moment (the errors are measured on the outputs, :func:`_error`)."""
    h = (xp.T @ xp).astype(np.float64)
    return nm_methods.LayerStats(h=h, cross=(xp.T @ xd).astype(np.float64) if cross else None, h_dense=None,
                                 tokens=xp.shape[0])


def _error(xp: np.ndarray, w: np.ndarray, b: np.ndarray, y_dense: np.ndarray, var: float) -> float:
    """The relative calibration error of :func:`.nm_methods.calibration_error`, on the data:
    ``||X~_p [w, b]^T - Y_d||^2 / ||Y_d - mean(Y_d)||^2`` (outputs in float32, sums in float64)."""
    v = np.concatenate([w, b[:, None]], axis=1).astype(np.float32)
    diff = xp @ v.T - y_dense
    return float(np.einsum("ij,ij->", diff, diff, dtype=np.float64)) / var


def prune_minilm(n: int, m: int, method: str, *, calib: int = DEFAULT_CALIB, recover: bool = True,
                 text: str | None = None, weights: dict[str, np.ndarray] | None = None,
                 progress: Callable[[float, str], None] | None = None) -> PrunedLinear:
    """Prune every Linear layer of MiniLM ``n:m`` with ``method`` (:data:`.nm_methods.METHODS`),
    sequentially (module docstring), calibrated on ``calib`` tokens of ``text`` (default: the
    calibration documents); with ``recover``, each layer is refitted (:func:`.nm_methods.refit`)
    before the next one is calibrated. ``progress(fraction_done, message)`` after each step.

    Raises:
        PruneError: a bad pattern, method, calibration size or text.
    """
    n, m = check_pattern(n, m)
    if method not in nm_methods.METHODS:
        raise PruneError(f"method {method!r} is not allowed: choose one of {', '.join(nm_methods.METHODS)}")
    batches = calibration_batches(calib, text=text)
    t0 = time.perf_counter()
    weights = minilm.load_weights() if weights is None else weights
    dense = _float_lin(weights)
    cur: dict[str, np.ndarray] = {}
    pruned = _float_lin(_Overlay(weights, cur))
    # cost of each step, for the progress fraction: multiply-adds of its layers
    cost = {name: w.size for name, w, _ in minilm.linear_layers(weights)}
    total, done = float(sum(cost.values())), 0.0
    reports: list[dict] = []
    masks: dict[str, np.ndarray] = {}

    def prune_step(names: tuple[str, ...], xs_p: list[np.ndarray], xs_d: list[np.ndarray]) -> None:
        nonlocal done
        xp, xd = _augmented(xs_p), _augmented(xs_d)
        stats = _stats(xp, xd, cross=recover)
        for name in names:
            pre = _hf(name)
            w, b = weights[pre + ".weight"], weights[pre + ".bias"]
            y_dense = xd @ np.concatenate([w, b[:, None]], axis=1).T        # the dense layer, dense inputs
            centred = y_dense - y_dense.mean(axis=0, dtype=np.float64).astype(np.float32)
            var = max(float(np.einsum("ij,ij->", centred, centred, dtype=np.float64)), 1e-30)
            del centred
            wp, bp, mask = nm_methods.prune_layer(method, w, b, stats, n, m, recover=False)
            err1 = _error(xp, wp, bp, y_dense, var)
            if recover:
                wp, bp = nm_methods.refit(wp, bp, mask, stats, w, b)
            err = _error(xp, wp, bp, y_dense, var) if recover else err1
            cur[pre + ".weight"] = wp.astype(np.float32)
            cur[pre + ".bias"] = np.asarray(bp, dtype=np.float32)
            masks[name] = mask
            reports.append({"name": name, "error_oneshot": err1, "error": err})
            done += cost[name]
            if progress:
                progress(done / total, f"{name}: calibration error {err1:.4f}"
                         + (f" -> {err:.4f} after refit" if recover else ""))

    hp = [_embed(b, weights) for b in batches]
    hd = hp
    for i in range(NUM_LAYERS):
        qkv, o, up, down = _stage_layers(i)
        prune_step(qkv, hp, hd)
        cp = [_context(h, i, pruned) for h in hp]
        cd = [_context(h, i, dense) for h in hd]
        prune_step(o, cp, cd)
        h1p = [_attn_out(c, h, i, weights, pruned) for c, h in zip(cp, hp)]
        h1d = [_attn_out(c, h, i, weights, dense) for c, h in zip(cd, hd)]
        del cp, cd
        prune_step(up, h1p, h1d)
        up_p = [_ffn_in(h, i, pruned) for h in h1p]
        up_d = [_ffn_in(h, i, dense) for h in h1d]
        prune_step(down, up_p, up_d)
        hp = [_ffn_out(u, h, i, weights, pruned) for u, h in zip(up_p, h1p)]
        hd = [_ffn_out(u, h, i, weights, dense) for u, h in zip(up_d, h1d)]
    return PrunedLinear(n=n, m=m, method=method, recover=bool(recover), calib=int(calib), weights=dict(cur),
                        layers=tuple(reports), seconds=time.perf_counter() - t0, masks=masks)


class _Overlay(dict):
    """The dense weights with the pruned tensors laid over them (a read-only view)."""

    def __init__(self, base: dict, top: dict):
        super().__init__()
        self.base, self.top = base, top

    def __getitem__(self, key: str) -> np.ndarray:
        return self.top[key] if key in self.top else self.base[key]

    def __contains__(self, key: object) -> bool:
        return key in self.top or key in self.base


def apply(pruned: dict[str, np.ndarray] | None, weights: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The full MiniLM weights with the pruned Linear tensors of ``pruned`` in place of the
    dense ones (``pruned = None``: the dense weights)."""
    weights = minilm.load_weights() if weights is None else weights
    return {**weights, **(pruned or {})}


# ============================================================================ quality
@dataclass(frozen=True)
class Quality:
    """What a network keeps, on text pruning never saw.

    ``cosine``: mean sentence-embedding cosine to the dense float network over the evaluation
    sentences (:func:`eval_sentences`); ``cosine_min``: the worst sentence; ``cosine_sample``:
    the same on the Darwin sample (128 tokens, out of domain, the functional check's text);
    ``accuracy``: nearest-centroid topic accuracy: each sentence of half 1 is given the topic
    whose centroid (the normalised mean embedding of the topic's half-0 sentences, in the
    network's own embedding space) is nearest in cosine; ``sentences``: the two halves' sizes."""

    cosine: float
    cosine_min: float
    cosine_sample: float
    accuracy: float
    sentences: tuple[int, int]

    def to_dict(self) -> dict:
        return {"cosine": self.cosine, "cosine_min": self.cosine_min, "cosine_sample": self.cosine_sample,
                "accuracy": self.accuracy, "centroid_sentences": self.sentences[0],
                "test_sentences": self.sentences[1]}


@lru_cache(maxsize=1)
def _eval_ids() -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray, np.ndarray]:
    """The evaluation sentences tokenised (``[CLS]`` pieces ``[SEP]``, at most
    :data:`MAX_SENTENCE_TOKENS`, as :func:`.minilm.tokenize` with ``fill=False``) and grouped by
    length, ``[(rows, ids[B, T])]``; every sentence's topic index and half; the Darwin window."""
    rows = eval_sentences()
    tok = minilm._tokenizer()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    ids = [[cls, *e.ids[:MAX_SENTENCE_TOKENS - 2], sep]
           for e in tok.encode_batch([s for *_, s in rows], add_special_tokens=False)]
    groups: dict[int, list[int]] = {}
    for r, x in enumerate(ids):
        groups.setdefault(len(x), []).append(r)
    batched = [(np.array(rs), np.array([ids[r] for r in rs], dtype=np.int64)) for _, rs in sorted(groups.items())]
    topics = list(dict.fromkeys(t for t, *_ in rows))
    labels = np.array([topics.index(t) for t, *_ in rows])
    halves = np.array([h for _, _, h, _ in rows])
    sample = minilm.tokenize(minilm.sample_text(), max_tokens=SEQ_TOKENS)
    return batched, labels, halves, sample


def _embeddings(weights: dict[str, np.ndarray], int8: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sentence embeddings ``[S, 384]`` of the evaluation sentences, and the Darwin window's."""
    batched, labels, _, sample = _eval_ids()
    out = np.empty((labels.size, HIDDEN), dtype=np.float32)
    lin = _int8_lin(weights) if int8 else _float_lin(weights)
    for rows, ids in batched:
        h = encode(ids, weights, lin=lin)
        e = h.mean(axis=1)
        out[rows] = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    hs = encode(sample[None, :], weights, lin=lin)[0]
    return out, minilm.sentence_embedding(hs)


_REFERENCE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def evaluate(pruned: dict[str, np.ndarray] | None, *, int8: bool = False,
             weights: dict[str, np.ndarray] | None = None) -> Quality:
    """The :class:`Quality` of MiniLM with the pruned Linear tensors ``pruned`` (None: dense),
    float or ``int8``, against the dense float network (``weights``: the dense weights)."""
    weights = minilm.load_weights() if weights is None else weights
    key = id(weights)
    if key not in _REFERENCE or _REFERENCE[key][0] is not weights:
        _REFERENCE.clear()
        _REFERENCE[key] = (weights, _embeddings(weights, False))
    ref, ref_sample = _REFERENCE[key][1]
    emb, sample = (ref, ref_sample) if pruned is None and not int8 else _embeddings(apply(pruned, weights), int8)
    _, labels, halves, _ = _eval_ids()
    cos = np.sum(emb * ref, axis=1)
    train, test = halves == 0, halves == 1
    cents = np.stack([emb[train & (labels == c)].mean(axis=0) for c in range(labels.max() + 1)])
    cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    pred = np.argmax(emb[test] @ cents.T, axis=1)
    return Quality(cosine=float(cos.mean()), cosine_min=float(cos.min()),
                   cosine_sample=float(np.dot(sample, ref_sample)),
                   accuracy=float(np.mean(pred == labels[test])), sentences=(int(train.sum()), int(test.sum())))
