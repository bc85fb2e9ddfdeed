"""The real pruned, quantised MiniLM pipeline and the functional datapath on it."""

from __future__ import annotations

import numpy as np
import pytest

from sparseforge.dataflow.layout import grouped_dense, grouped_sparse
from sparseforge.models.golden import gemm_dense_int, gemm_nm_int
from sparseforge.models.prune import nm_mask
from sparseforge.sim.functional import functional_gemm
from sparseforge.cli import main
from sparseforge.spec import HardwareSpec

pytestmark = pytest.mark.minilm
pipeline = pytest.importorskip("sparseforge.models.pipeline")
minilm = pytest.importorskip("sparseforge.models.minilm")


@pytest.fixture(scope="module")
def model_24():
    try:
        return pipeline.pruned_minilm(2, 4)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_every_linear_layer_is_pruned_and_quantised(model_24):
    """All 36 Linear layers are recorded in encoder order; weights are int8, exactly 2:4 along
    the input dimension, and the compressed form reproduces them; activations are the real
    128-token int8 inputs."""
    assert len(model_24.layers) == 36
    assert model_24.layers[0].name == "layer0.attn.q" and model_24.layers[-1].name == "layer5.ffn.down"
    for lay in model_24.layers:
        assert lay.w_q.dtype == np.int8 and lay.x_q.dtype == np.int8
        assert lay.x_q.shape == (128, lay.w_q.shape[1])
        nz = (lay.w_q != 0).reshape(lay.w_q.shape[0], -1, 4).sum(axis=2)
        assert nz.max() <= 2
        assert np.array_equal(lay.comp.to_dense(), lay.w_q)
        assert np.abs(lay.x_q).max() == 127   # per-tensor scale maps the largest |x| to 127


def test_functional_datapath_equals_golden_on_real_layers(model_24):
    """The simulator's tiled datapath (index muxes, k-tile accumulation) gives the golden N:M
    product bit-exactly on real layers of every shape, on arrays whose tiles do not divide them."""
    for rows, cols in ((16, 16), (5, 7)):
        spec = HardwareSpec(rows=rows, cols=cols, n=2, m=4)
        for name in ("layer0.attn.q", "layer3.ffn.up", "layer5.ffn.down"):
            lay = model_24.layer(name)
            gw = grouped_sparse(lay.comp.values, lay.comp.indices, n=2, m=4, k=lay.comp.k, spec=spec)
            assert np.array_equal(functional_gemm(spec, lay.x_q, gw), gemm_nm_int(lay.x_q, lay.comp))
            # dense mode on the same array computes the same pruned product
            gd = grouped_dense(lay.w_q, spec)
            assert np.array_equal(functional_gemm(spec, lay.x_q, gd), gemm_dense_int(lay.x_q, lay.w_q))


def test_pruning_keeps_the_largest_magnitudes(model_24):
    """The kept weights are the 2 largest |w| of every group of 4 of the real float weights."""
    weights = minilm.load_weights()
    w = weights["encoder.layer.0.attention.self.query.weight"]
    lay = model_24.layer("layer0.attn.q")
    assert np.array_equal(lay.w_q != 0, nm_mask(w, 2, 4) & (lay.w_q != 0))
    assert (nm_mask(w, 2, 4) & (lay.w_q == 0)).sum() < w.size * 0.01   # tiny weights quantise to 0


def test_pruning_cost_is_reported_honestly(model_24):
    """One-shot 2:4 magnitude pruning without fine-tuning moves the sentence embedding far
    from the dense model's (cosine well below 1); int8 alone keeps it close."""
    assert 0.2 < model_24.cosine_to_dense < 0.8
    assert pipeline.pruned_minilm(4, 4).cosine_to_dense > 0.95


def test_weights_file_of_the_wrong_shape_is_rejected(tmp_path, capsys):
    """A safetensors file whose tensors do not have MiniLM's shapes gets one line naming the
    tensor, its shape and the expected shape (exit 2)."""
    from safetensors.numpy import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"embeddings.word_embeddings.weight": np.zeros((10, 384), np.float32)}, str(bad))
    with pytest.raises(ValueError, match=r"has shape \(10, 384\), expected \(30522, 384\)"):
        minilm.load_weights(bad)
    assert main(["simulate", "--functional", "--weights", str(bad), "--no-dense"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"sparseforge: error: weights file {str(bad)!r}: tensor "
                       "'embeddings.word_embeddings.weight' has shape (10, 384), expected (30522, 384)")


def test_missing_weights_file_and_text_are_rejected(tmp_path, capsys):
    """A missing --weights or --text file is one clear line and exit 2."""
    assert main(["simulate", "--functional", "--weights", str(tmp_path / "none.safetensors")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("none.safetensors' does not exist")
    assert main(["simulate", "--functional", "--text", str(tmp_path / "none.txt")]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert main(["simulate", "--text", str(tmp_path / "none.txt")]) == 2
    assert "add --functional" in capsys.readouterr().err


def test_cli_functional_run_end_to_end(capsys):
    """`simulate --functional` (what `make demo` runs) loads the real weights, prunes, runs the
    real text through the functional datapath and reports every layer bit-exact, with the
    embedding cosine, in its JSON."""
    import json

    # --prune oneshot: magnitude without calibration, instant (the calibrated default, SparseGPT, is
    # exercised in tests/test_prune.py on a small calibration)
    assert main(["simulate", "--hw", "tiny", "--functional", "--tokens", "16", "--no-dense", "--json",
                 "--prune", "oneshot"]) == 0
    out = json.loads(capsys.readouterr().out)
    f = out["functional"]
    assert f["layers"] == 36 and f["layers_bit_exact"] == 36 and f["tokens"] == 16
    assert 0.0 < f["cosine_to_dense"] < 1.0
