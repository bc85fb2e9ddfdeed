"""N:M pruning that keeps accuracy (issue 13): the layer methods (magnitude, Wanda, SparseGPT,
the least-squares refit), sequential calibration of the real MiniLM, the quality measures, the
cache, the ``prune`` command and ``simulate --functional --prune``.

The layer tests run on small synthetic layers; the MiniLM tests use a few hundred calibration
tokens, so each pruning takes seconds (the default of 8192 tokens is for users and the
benchmark, benchmarks/bench_prune.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sparseforge.models import nm_methods as nmm
from sparseforge.models.prune import nm_mask


# ============================================================================ synthetic layers
def _layer(seed: int = 0, *, k: int = 64, out: int = 12, tokens: int = 3000, correlated: bool = True):
    """A layer ``W[out, k]``, bias, and calibration inputs ``X[tokens, k]`` with correlated
    channels of very different scales (as real activations have)."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((k, k)) * 0.4 + np.eye(k) if correlated else np.eye(k)
    x = rng.standard_normal((tokens, k)) @ mix * np.exp(rng.standard_normal(k)) + rng.standard_normal(k)
    return rng.standard_normal((out, k)), rng.standard_normal(out), x


def _direct_error(w, b, x_p, w_d, b_d, x_d):
    y_d = x_d @ w_d.T + b_d
    return np.sum((x_p @ w.T + b - y_d) ** 2) / np.sum((y_d - y_d.mean(axis=0)) ** 2)


@pytest.mark.parametrize("n,m,k", [(2, 4, 64), (1, 4, 64), (2, 8, 64), (3, 8, 48), (2, 4, 30), (1, 3, 31)])
@pytest.mark.parametrize("method", nmm.METHODS)
def test_every_method_keeps_exactly_n_of_every_m(method, n, m, k):
    """Each method's mask keeps exactly n weights of every group of m of every row (min(n, width)
    in a short last group), the pruned weights are zero, and refit keeps the mask."""
    w, b, x = _layer(1, k=k)
    stats = nmm.layer_stats(x)
    for recover in (False, True):
        wp, bp, mask = nmm.prune_layer(method, w, b, stats, n, m, recover=recover)
        g = -(-k // m)
        padded = np.zeros((w.shape[0], g * m), bool)
        padded[:, :k] = mask
        counts = padded.reshape(w.shape[0], g, m).sum(axis=2)
        want = np.full(g, n)
        want[-1] = min(n, k - (g - 1) * m)
        assert (counts == want[None, :]).all()
        assert np.all(wp[~mask] == 0)
        assert np.count_nonzero(wp) <= mask.sum()


def test_sparsegpt_beats_magnitude_and_wanda_on_a_known_hessian():
    """On correlated inputs SparseGPT's mask choice and compensation give a much smaller
    layer-wise reconstruction error than magnitude pruning (and than Wanda) -- the error
    measured directly on the data, not with the module's own formula."""
    for seed in range(3):
        w, b, x = _layer(seed)
        stats = nmm.layer_stats(x)
        err = {}
        for method in nmm.METHODS:
            wp, bp, _ = nmm.prune_layer(method, w, b, stats, 2, 4)
            err[method] = _direct_error(wp, bp, x, w, b, x)
        assert err["sparsegpt"] < 0.5 * err["magnitude"]
        assert err["sparsegpt"] < err["wanda"] < err["magnitude"]


def test_sparsegpt_compensates_and_is_exact_without_pruning():
    """With n = m nothing is pruned and SparseGPT returns W unchanged; with one output and two
    inputs its result is the OBS optimum worked out by hand: pruning w_0 moves w_1 by
    w_0 * H_01 / H_11 (the exact least-squares weight of x_1 alone). SparseGPT compensates only
    the columns to the right of a pruned one, so pruning the last column changes nothing else."""
    w, b, x = _layer(2, k=16)
    stats = nmm.layer_stats(x)
    same, mask = nmm.sparsegpt(w, stats.hessian(), 4, 4, damp=1e-9)
    assert mask.all() and np.allclose(same, w, rtol=1e-9, atol=1e-12)
    h = np.array([[2.0, 0.6], [0.6, 1.0]])
    # saliencies w_j^2 / U_jj^2 with U_00^2 = [H^-1]_00 = 1 / 1.64 and U_11^2 = 1 / H_11 = 1
    wp, mask = nmm.sparsegpt(np.array([[0.5, 1.0]]), h, 1, 2, damp=0.0)
    assert mask.tolist() == [[False, True]]                 # 0.25 * 1.64 = 0.41 < 1.0
    assert wp[0, 0] == 0 and wp[0, 1] == pytest.approx(1.0 + 0.5 * 0.6 / 1.0)
    wp, mask = nmm.sparsegpt(np.array([[1.0, 0.5]]), h, 1, 2, damp=0.0)
    assert mask.tolist() == [[True, False]]                 # 1.64 > 0.25
    assert wp.tolist() == [[1.0, 0.0]]


@pytest.mark.parametrize("seed", range(4))
def test_refit_never_increases_the_calibration_error(seed):
    """The refit (mask fixed) never makes the layer's calibration error larger, for any mask
    (here random N:M ones and every method's), with the dense target on other inputs; and the
    error computed from the moments equals the one computed on the data."""
    w, b, x_d = _layer(seed)
    rng = np.random.default_rng(seed + 10)
    x_p = x_d + 0.3 * rng.standard_normal(x_d.shape) * x_d.std(axis=0)    # upstream pruning error
    stats = nmm.layer_stats(x_p, x_d)
    masks = [nm_mask(rng.standard_normal(w.shape), 2, 4) for _ in range(3)]
    masks += [nmm.prune_layer(m_, w, b, stats, 2, 4)[2] for m_ in nmm.METHODS]
    for mask in masks:
        w0 = np.where(mask, w + 0.1 * rng.standard_normal(w.shape), 0.0)
        before = nmm.calibration_error(w0, b, stats, w, b)
        assert before == pytest.approx(_direct_error(w0, b, x_p, w, b, x_d), rel=1e-6)
        w1, b1 = nmm.refit(w0, b, mask, stats, w, b)
        after = nmm.calibration_error(w1, b1, stats, w, b)
        assert after == pytest.approx(_direct_error(w1, b1, x_p, w, b, x_d), rel=1e-6)
        assert after <= before * (1 + 1e-9)
        assert np.all(w1[~mask] == 0)
    # a real gain: refitting magnitude pruning's weights removes much of its error
    w0, b0, mask = nmm.prune_layer("magnitude", w, b, stats, 2, 4)
    w1, b1 = nmm.refit(w0, b0, mask, stats, w, b)
    assert nmm.calibration_error(w1, b1, stats, w, b) < 0.8 * nmm.calibration_error(w0, b0, stats, w, b)


def test_refit_without_damping_is_the_least_squares_solution():
    """With no damping the refit of each row is the ordinary least-squares fit of its kept
    columns and bias to the dense outputs (numpy.linalg.lstsq on the data)."""
    w, b, x = _layer(5, k=24, out=3)
    mask = nm_mask(w, 2, 4)
    w1, b1 = nmm.refit(np.where(mask, w, 0), b, mask, nmm.layer_stats(x), w, b, damp=0.0)
    y = x @ w.T + b
    for r in range(w.shape[0]):
        a = np.concatenate([x[:, mask[r]], np.ones((x.shape[0], 1))], axis=1)
        sol = np.linalg.lstsq(a, y[:, r], rcond=None)[0]
        assert np.allclose(w1[r, mask[r]], sol[:-1], rtol=1e-6, atol=1e-8)
        assert b1[r] == pytest.approx(sol[-1], rel=1e-6, abs=1e-8)


def test_wanda_equals_magnitude_when_activations_are_uniform():
    """When every input channel has the same norm, Wanda's score is |W| times a constant, so its
    mask is magnitude pruning's; with one loud channel the masks differ."""
    w, b, _ = _layer(3)
    rng = np.random.default_rng(3)
    signs = rng.choice([-1.0, 1.0], size=(500, w.shape[1]))       # every channel has norm sqrt(500)
    stats = nmm.layer_stats(signs)
    assert np.allclose(stats.column_norms(), np.sqrt(500))
    for n, m in ((2, 4), (1, 4), (2, 8)):
        assert np.array_equal(nmm.prune_layer("wanda", w, b, stats, n, m)[2], nm_mask(w, n, m))
    loud = signs.copy()
    loud[:, 1] *= 100.0
    assert not np.array_equal(nmm.wanda(w, nmm.layer_stats(loud).column_norms(), 2, 4), nm_mask(w, 2, 4))


def test_layer_methods_refuse_bad_arguments():
    w, b, x = _layer(4, k=16)
    stats = nmm.layer_stats(x)
    with pytest.raises(ValueError, match="method 'obs' is not allowed: choose one of magnitude, wanda, sparsegpt"):
        nmm.prune_layer("obs", w, b, stats, 2, 4)
    with pytest.raises(ValueError, match="must be \\[out, 16\\]"):
        nmm.prune_layer("wanda", w[:, :8], b, stats, 2, 4)
    with pytest.raises(ValueError, match="n = 5 is not allowed with m = 4"):
        nmm.prune_layer("sparsegpt", w, b, stats, 5, 4)


# ============================================================================ the real MiniLM
minilm = pytest.importorskip("sparseforge.models.minilm")
try:
    minilm.model_dir()
    HAVE_MINILM = True
except FileNotFoundError:
    HAVE_MINILM = False
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="the real MiniLM weights are not installed")

from sparseforge.models import calibrate  # noqa: E402


@pytest.fixture(scope="module")
def weights():
    return minilm.load_weights()


@pytest.fixture
def small_eval(monkeypatch):
    """Evaluate on 4 sentences per topic (two centroid sentences, two to classify) instead of 24
    (the figures of the docs use 24), so that a test's quality measurement takes seconds."""
    monkeypatch.setattr(calibrate, "SENTENCES_PER_TOPIC", 4)
    for f in (calibrate.eval_sentences, calibrate._eval_ids):
        f.cache_clear()
    calibrate._REFERENCE.clear()
    yield
    for f in (calibrate.eval_sentences, calibrate._eval_ids):
        f.cache_clear()
    calibrate._REFERENCE.clear()


@needs_minilm
def test_batched_encoder_is_minilm_forward(weights):
    """The batched encoder of the calibration equals the reference forward pass
    (sparseforge.models.minilm.forward) sequence by sequence, float and int8 (the int8 one
    against the pipeline's integer arithmetic: weights per channel, activations per tensor)."""
    from sparseforge.models.quant import quantize_per_channel, quantize_per_tensor

    tok = minilm.tokenize(minilm.sample_text(), max_tokens=80)
    ids = np.stack([tok[:40], tok[40:80]])
    ids[:, 0], ids[:, -1] = tok[0], tok[-1]
    got = calibrate.encode(ids, weights)
    got8 = calibrate.encode(ids, weights, int8=True)

    def int8(name, x, w, b):
        xq, xs = quantize_per_tensor(x)
        wq, ws = quantize_per_channel(w, axis=0)
        return (xq.astype(np.int64) @ wq.astype(np.int64).T) * xs * ws[None, :] + b

    for s in range(2):
        ref, _ = minilm.forward(ids[s], weights)
        assert np.allclose(got[s], ref, atol=2e-5)
        ref8, _ = minilm.forward(ids[s], weights, linear=int8)
        assert np.allclose(got8[s], ref8, atol=2e-3)
        assert not np.allclose(got8[s], ref, atol=2e-3)          # int8 really quantises


@needs_minilm
def test_calibration_and_evaluation_text_are_apart():
    """Calibration documents and evaluation documents are different reference topics, every
    domain gives some of each, the calibration text holds far more than the default 8192 tokens,
    and no evaluation sentence is found in the calibration text (beyond a few stock phrases)."""
    parts = calibrate.split()
    calib = {t for ts in parts["calibration"].values() for t in ts}
    evaluated = {t for part in ("train", "test") for ts in parts[part].values() for t in ts}
    assert calib and evaluated and not calib & evaluated
    assert all(parts["calibration"][d] and parts["test"][d] for d in calibrate.DOMAINS)
    rows = calibrate.eval_sentences()
    assert {t for t, *_ in rows} <= evaluated and {h for _, _, h, _ in rows} == {0, 1}
    text = calibrate.calibration_text()
    assert sum(s in text for *_, s in rows) <= 0.02 * len(rows)
    assert len(calibrate._body_ids(text)) > 4 * calibrate.DEFAULT_CALIB


@needs_minilm
def test_calibration_windows_and_their_errors():
    """calib tokens become windows of 128 ([CLS] ... [SEP]) and one shorter last window; too
    few tokens, a last window of 1 or 2 tokens and a text too short are refused in one line."""
    batches = calibrate.calibration_batches(300)
    assert [b.shape for b in batches] == [(2, 128), (1, 44)]
    cls, sep = batches[0][0, 0], batches[0][0, -1]
    assert all((b[:, 0] == cls).all() and (b[:, -1] == sep).all() for b in batches)
    assert not np.array_equal(batches[0][0, 1:-1], batches[0][1, 1:-1])           # consecutive text
    for bad, match in ((0, "calib = 0 is not allowed: must be an integer in 128..65536"),
                       (129, "the last window would have 1 tokens"),
                       (10 ** 6, "calib = 1000000 is not allowed")):
        with pytest.raises(calibrate.PruneError, match=match):
            calibrate.calibration_batches(bad)
    with pytest.raises(calibrate.PruneError, match="too short to calibrate 8192 tokens: it has 3 word pieces, "
                                                   "not one window"):
        calibrate.calibration_batches(8192, text="a regular file\n")
    with pytest.raises(calibrate.PruneError, match="it has 2500 word pieces, enough for calib <= 2432"):
        calibrate.calibration_batches(8192, text="word " * 2500)


@needs_minilm
def test_sequential_calibration_feeds_pruned_inputs(weights, monkeypatch):
    """Every layer is calibrated on what it receives in the pruned network: the inputs each
    step recorded equal the reference forward pass (minilm.forward) of the final pruned and
    refitted network, and differ from the dense network's inputs from the first pruned layer
    on. A calibration that used the dense inputs would fail here."""
    seen = []
    real_stats = calibrate._stats
    monkeypatch.setattr(calibrate, "_stats", lambda xp, xd, cross: seen.append(xp[:128, :-1].copy()) or
                        real_stats(xp, xd, cross=cross))
    pl = calibrate.prune_minilm(1, 8, "sparsegpt", calib=128, recover=True, weights=weights)
    ids = calibrate.calibration_batches(128)[0][0]
    _, pruned_in = minilm.forward(ids, calibrate.apply(pl.weights, weights))
    _, dense_in = minilm.forward(ids, weights)
    steps = [n for i in range(6) for n in (f"layer{i}.attn.q", f"layer{i}.attn.o", f"layer{i}.ffn.up",
                                           f"layer{i}.ffn.down")]
    assert len(seen) == len(steps)
    for x, name in zip(seen, steps):
        assert np.allclose(x, pruned_in[name], rtol=1e-4, atol=1e-4), name
        if name != "layer0.attn.q":                 # the embeddings are the same in both networks
            assert not np.allclose(x, dense_in[name], rtol=1e-2, atol=1e-2), name
    # every layer kept 1 of 8, and the refit never made a layer's calibration error worse
    for name, mask in pl.masks.items():
        assert (mask.reshape(mask.shape[0], -1, 8).sum(axis=2) == 1).all(), name
    assert all(lay["error"] <= lay["error_oneshot"] * (1 + 1e-5) for lay in pl.layers)
    assert len(pl.weights) == 72 and all(v.dtype == np.float32 for v in pl.weights.values())


@needs_minilm
def test_quality_of_the_dense_network(weights, small_eval):
    """The dense float network scores cosine 1 against itself; int8 alone stays close (above
    0.95); nearest-centroid topic accuracy is far above chance (one in ~50 topics)."""
    q = calibrate.evaluate(None, weights=weights)
    assert q.cosine == pytest.approx(1.0, abs=1e-6) and q.cosine_sample == pytest.approx(1.0, abs=1e-6)
    q8 = calibrate.evaluate(None, int8=True, weights=weights)
    assert 0.95 < q8.cosine < 1.0 and 0.95 < q8.cosine_sample < 1.0
    topics = len({t for t, *_ in calibrate.eval_sentences()})
    assert q.accuracy > 5.0 / topics and q.sentences[1] > 0


# ============================================================================ cache, API, CLI
@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("prune-cache")


@pytest.fixture
def cached(cache_dir, monkeypatch, small_eval):
    """A private sparseforge cache (never the user's) and the small evaluation set."""
    monkeypatch.setenv("SPARSEFORGE_CACHE_DIR", str(cache_dir))
    return cache_dir


@needs_minilm
def test_prune_table_of_methods_and_patterns_from_the_cli(cached, capsys, monkeypatch, tmp_path):
    """`prune --sparsity A,B --method X,Y` prints one row per pattern, method and step next to the
    dense network, each row's weights are cached, and asking again computes nothing (the
    pruning code is replaced by one that fails)."""
    from sparseforge.cli import main

    argv = ["prune", "--sparsity", "2:8,1:4", "--method", "magnitude,wanda", "--calib", "128", "--recover", "none"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    rows = [line.split() for line in out.splitlines() if line[:4] in ("2:8 ", "1:4 ")]
    assert [(r[0], r[1], r[2]) for r in rows] == [("2:8", "magnitude", "one-shot"), ("2:8", "wanda", "one-shot"),
                                                    ("1:4", "magnitude", "one-shot"), ("1:4", "wanda", "one-shot")]
    assert "[1/5]" in err and "[5/5]" in err
    assert len(list((cached / "prune").glob("*.npz"))) == 4

    def boom(*a, **k):
        raise AssertionError("pruned again although cached")

    monkeypatch.setattr(calibrate, "prune_minilm", boom)
    monkeypatch.setattr(calibrate, "evaluate", boom)
    assert main(argv + ["--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""                                     # --json: no progress
    data = json.loads(out)
    assert data["dense"]["float"]["cosine"] == pytest.approx(1.0)
    by = {(r["sparsity"], r["method"]): r["steps"][0] for r in data["runs"]}
    for (sp, meth), step in by.items():
        for q in ("float", "int8"):
            assert 0.0 < step[q]["cosine"] < 1.0 and 0.0 <= step[q]["accuracy"] <= 1.0
        assert len(step["layers"]) == 36
    # Wanda's calibrated mask keeps more of the network than magnitude at both patterns
    for sp in ("2:8", "1:4"):
        assert by[(sp, "wanda")]["float"]["cosine"] > by[(sp, "magnitude")]["float"]["cosine"]
    # the weights of one (pattern, method) written to a file, from the cache
    target = tmp_path / "w.npz"
    assert main(["prune", "--sparsity", "1:4", "--method", "wanda", "--calib", "128", "--recover", "none",
                 "--output", str(target), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == str(target)
    with np.load(target) as z:
        tensors = {k: z[k] for k in z.files}
    assert len(tensors) == 72
    w = tensors["encoder.layer.3.intermediate.dense.weight"]
    assert w.shape == (1536, 384) and ((w.reshape(1536, -1, 4) != 0).sum(axis=2) <= 1).all()


@needs_minilm
def test_simulated_cycles_do_not_depend_on_the_pruning_method(cached, capsys):
    """`simulate --functional --prune METHOD`: every layer bit-exact through the datapath on the
    method's real weights and masks, the JSON reports cosine_to_dense and the held-out quality,
    and the simulated cycles at a given N:M are the same whatever the method (they depend on
    the pattern, not on which weights survive)."""
    import sparseforge as sf
    from sparseforge.cli import main

    spec = sf.load_spec("tiny")
    one = sf.simulate(spec, "minilm", sparsity="1:8", tokens=16, dense=False, functional=True, prune=None)
    assert main(["simulate", "--hw", "tiny", "--sparsity", "1:8", "--tokens", "16", "--no-dense", "--functional",
                 "--prune", "wanda", "--calib", "128", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    f = out["functional"]
    assert f["layers_bit_exact"] == f["layers"] == 36 and f["prune"] == "wanda" and f["calib"] == 128
    assert 0.0 < f["cosine_to_dense"] < 1.0 and f["cosine_to_dense"] != one.functional["cosine_to_dense"]
    assert 0.0 < f["quality"]["cosine"] < 1.0 and 0.0 < f["quality"]["dense_accuracy"] <= 1.0
    two = sf.simulate(spec, "minilm", sparsity="1:8", tokens=16, dense=False, functional=True, prune="wanda",
                      calib=128)
    assert two.total.cycles == one.total.cycles
    assert [lay.cycles for lay in two.layers] == [lay.cycles for lay in one.layers]
    assert out["totals"]["cycles"] == one.total.cycles
    assert "wanda + refit, calibrated on 128 tokens" in two.to_text()


@needs_minilm
def test_sweep_measures_accuracy_once_per_pattern_and_method(cached, tmp_path, monkeypatch):
    """A sweep with a prune axis and objectives latency and accuracy: every point has the
    accuracy of its (pattern, method) -- measured once each, whatever the hardware -- points
    differing only in the method have the same latency, and the report draws the
    latency-against-accuracy front."""
    from sparseforge.report.run import write_run_report
    from sparseforge.sweep import load_results, run_sweep
    from sparseforge.sweep import accuracy as acc

    (tmp_path / "s.toml").write_text("""[sweep]
name = "acc"
base = "tiny"
[axes]
rows = [2, 4]
nm = ["2:8", "dense"]
prune = ["magnitude", "wanda"]
[[workloads]]
kind = "inference"
net = "minilm"
tokens = 16
calib = 128
recover = false
[target]
part = "xczu7ev"
objectives = ["latency", "accuracy"]
""")
    calls = []
    real = acc.measure
    monkeypatch.setattr(acc, "measure", lambda *a, **k: calls.append(a) or real(*a, **k))
    summary = run_sweep(tmp_path / "s.toml", out=tmp_path / "runs", workers=1, progress=False)
    assert summary.computed == 8 and summary.failed == 0
    assert sorted(calls) == [("minilm", 2, 8, "magnitude"), ("minilm", 2, 8, "wanda")]
    df = load_results(summary.run_dir)
    assert df["accuracy"].notna().all() and df["cosine"].notna().all()
    for (rows, nm), g in df.groupby(["rows", "nm"]):
        assert g["latency_s"].nunique() == 1                        # the method never changes cycles
        if nm == "dense":
            assert g["accuracy"].nunique() == 1 and g["cosine"].iloc[0] > 0.95
        else:
            assert g["cosine"].nunique() == 2
    sparse = df[df["nm"] == "2:8"]
    assert set(sparse.groupby("prune")["accuracy"].nunique()) == {1}    # once per method, not per point
    files = write_run_report(summary.run_dir)
    assert "MiniLM topic accuracy (int8) against latency" in files["report.html"].read_text()
    front = pd.read_csv(files["pareto.csv"])
    assert {"latency_s", "accuracy"} <= set(front.columns) and len(front) >= 2
    # the front trades latency for accuracy: its fastest point is not its most accurate one
    assert front["latency_s"].idxmin() != front["accuracy"].idxmax()
    # the page in a real headless browser: drawn, no script error, one marker per point
    from tests.test_browser import open_in_browser

    dom = open_in_browser(files["report.html"], tmp_path, {"pareto-0-0"})
    assert dom.points["pareto-0-0"] == len(df)


def test_simulate_prunes_with_the_best_method_by_default():
    """simulate(functional=True) and `simulate --functional` (what `make demo` runs) use SparseGPT
    + refit unless told otherwise; `oneshot` (or None) is the uncalibrated magnitude pruning, and
    the API's list of methods is the layer module's. An unknown method is refused up front."""
    import inspect

    import sparseforge as sf
    from sparseforge import api
    from sparseforge.cli.main import build_parser

    assert api.PRUNE_METHODS == nmm.METHODS and api.DEFAULT_PRUNE == "sparsegpt"
    assert inspect.signature(api.simulate).parameters["prune"].default == "sparsegpt"
    args = build_parser().parse_args(["simulate", "--functional"])
    assert args.prune == "sparsegpt"
    with pytest.raises(api.UserError, match="prune = 'obs' is not allowed: choose one of magnitude, wanda, "
                                            "sparsegpt or 'oneshot'"):
        sf.simulate("tiny", "minilm", functional=True, prune="obs")
