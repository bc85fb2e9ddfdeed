"""The SpGEMM B-row cache: the set-associative LRU model against hand-worked streams, the
access stream the dataflows issue, its effect on traffic and cycles, the report, and the
spec fields that configure it (see docs/spgemm.md, "The B cache")."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.sparse as sp

from sparseforge.dataflow.spgemm import functional_spgemm
from sparseforge.models.matrices import golden_spgemm, load_matrix
from tests.test_spgemm import _cli  # the spgemm command with its one-line errors
from sparseforge.sim.spgemm import ALL_VARIANTS, b_fetch_lines, compare_dataflows, simulate_spgemm
from sparseforge.sim.units.cache import lru_hits, scan_hits
from sparseforge.spec import HardwareSpec, SpecError, load_spec


def _spec(**spgemm) -> HardwareSpec:
    base = HardwareSpec()
    return base.replace(spgemm=dataclasses.replace(base.spgemm, **spgemm))


# ------------------------------------------------------------------ the LRU model
def test_lru_order_hand_worked():
    """One set of two ways, lines A B A C B A (A=10, B=20, C=30): A and B miss; A hits;
    C evicts the least recently used B (MRU would evict A, FIFO A); B misses and evicts A
    (used before C); A misses."""
    hits = lru_hits(np.zeros(6), np.array([10, 20, 10, 30, 20, 10]), sets=1, ways=2)
    assert hits.tolist() == [False, False, True, False, False, False]


def test_lru_keeps_recently_used_line():
    """Ways 3: A B C A D A B -- D evicts B (A was touched again), so B misses at the end;
    A stays and hits twice."""
    hits = lru_hits(np.zeros(7), np.array([1, 2, 3, 1, 4, 1, 2]) * 8, sets=1, ways=3)
    assert hits.tolist() == [False, False, False, True, False, True, False]


def test_associativity_conflict_misses():
    """Lines 0 and 2 share set 0 of a 2-set cache: direct-mapped (1 way) they evict each
    other every time, while line 1 (set 1) stays; with 2 ways and 1 set (same capacity)
    the same stream hits after the cold misses."""
    stream = np.array([0, 1, 2, 1, 0, 2, 0, 1])
    dm = lru_hits(np.zeros(8), stream, sets=2, ways=1)
    assert dm.tolist() == [False, False, False, True, False, False, False, True]
    fa = lru_hits(np.zeros(4), np.array([0, 2, 0, 2]), sets=1, ways=2)
    assert fa.tolist() == [False, False, True, True]


def test_set_index_uses_low_line_bits():
    """4 sets, 1 way: lines 0, 4, 8 all map to set 0 (line mod 4) and evict each other;
    lines 1, 2, 3 each sit alone in their set and hit on reuse."""
    stream = np.array([0, 1, 2, 3, 4, 1, 2, 3, 0, 8, 4])
    hits = lru_hits(np.zeros(stream.size), stream, sets=4, ways=1)
    assert hits.tolist() == [False, False, False, False, False, True, True, True, False, False, False]


def test_private_caches_do_not_share_lines():
    """Two caches (PEs) reading the same lines interleaved: each misses once per line."""
    hits = lru_hits(np.array([0, 1, 0, 1, 0, 1]), np.array([5, 5, 6, 6, 5, 6]), sets=2, ways=2)
    assert hits.tolist() == [False, False, False, False, True, True]


def test_repeats_and_empty_stream():
    """Back-to-back accesses to one line hit; an empty stream has no hits."""
    assert lru_hits(np.zeros(3), np.array([7, 7, 7]), sets=1, ways=1).tolist() == [False, True, True]
    assert lru_hits(np.zeros(0), np.zeros(0), sets=4, ways=2).size == 0


def test_lru_against_plain_python_on_random_streams():
    """The vectorised model equals a straightforward per-access LRU (an OrderedDict per set)."""
    from collections import OrderedDict

    rng = np.random.default_rng(1)
    for sets, ways in ((1, 1), (2, 3), (8, 2), (4, 4)):
        cache = rng.integers(0, 3, 400)
        line = rng.integers(0, 40, 400)
        got = lru_hits(cache, line, sets=sets, ways=ways)
        state: dict = {}
        want = []
        for c, x in zip(cache.tolist(), line.tolist()):
            s = state.setdefault((c, x % sets), OrderedDict())
            if x in s:
                s.move_to_end(x)
                want.append(True)
            else:
                if len(s) == ways:
                    s.popitem(last=False)
                s[x] = None
                want.append(False)
        assert got.tolist() == want, (sets, ways)


# ------------------------------------------------------------------ the access stream
#: B: 3 rows; row 0 has 4 entries, row 1 none, row 2 two (columns 0..6)
B_SMALL = sp.csr_matrix((np.arange(1, 7, dtype=np.int64), [0, 2, 4, 6, 1, 5], [0, 4, 4, 6]), shape=(3, 7))


def test_fetch_lines_hand_worked():
    """4-byte pointers and 8-byte entries, 16-byte lines: the 4 pointers fill line 0, the
    entries start at byte 16 (line 1), two per line. Fetching rows 0, 2, 1 reads the two
    pointers (line 0) and then the row's entries."""
    line, fetch = b_fetch_lines(B_SMALL.indptr, np.array([0, 2, 1]), kb=4, vb=4, line_bytes=16)
    assert line.tolist() == [0, 0, 1, 1, 2, 2, 0, 0, 3, 3, 0, 0]
    assert fetch.tolist() == [0] * 6 + [1] * 4 + [2] * 2
    # spatial hits: in a 4-way cache the second word of every line hits
    hits = lru_hits(np.zeros(line.size), line, sets=1, ways=4)
    assert int((~hits).sum()) == 4 and int(hits.sum()) == 8
    # 8-byte lines: one entry per line, so no spatial hits among entries
    line8, _ = b_fetch_lines(B_SMALL.indptr, np.array([0]), kb=4, vb=4, line_bytes=8)
    assert line8.tolist() == [0, 0, 2, 3, 4, 5]
    # 3 pointers (12 bytes): the entries start at the next line boundary (byte 16), so no
    # entry straddles two lines; a word that straddles a line touches both
    line2, _ = b_fetch_lines(np.array([0, 2, 3]), np.array([0]), kb=4, vb=4, line_bytes=16)
    assert line2.tolist() == [0, 0, 1, 1]
    line3, fetch3 = b_fetch_lines(np.array([0, 2, 3]), np.array([1, 0]), kb=8, vb=8, line_bytes=8)
    # 8-byte pointers, 16-byte entries in 8-byte lines: each entry touches two lines
    assert line3.tolist() == [1, 2, 7, 8, 0, 1, 3, 4, 5, 6] and fetch3.tolist() == [0] * 4 + [1] * 6


def _cache(cache_bytes, ways, line, **kw):
    return _spec(pes=1, window=8, cache_bytes=cache_bytes, cache_ways=ways, cache_line_bytes=line,
                 dram_access_bytes=8, **kw)


A_SMALL = sp.csr_matrix((np.array([1, 2, 3], dtype=np.int64), [0, 2, 0], [0, 2, 3]), shape=(2, 3))


@pytest.mark.parametrize("cache_bytes, ways, misses", [
    (64, 4, 4),     # everything fits: only cold misses; the second fetch of row 0 hits
    (32, 2, 7),     # 1 set x 2 ways: lines 0 1 2 0 3 0 1 2 -> only the second 0 after 3 hits
    (32, 1, 7),     # 2 sets x 1 way: set 0 sees 0 2 0 2, set 1 sees 1 3 1
])
def test_rowwise_stream_hand_worked(cache_bytes, ways, misses):
    """A = [[1,0,2],[3,0,0]] on one PE fetches B's rows 0, 2, 0 (16 word accesses, lines as
    in test_fetch_lines_hand_worked): the report's hits and misses are the hand count,
    B's DRAM traffic is one 16-byte line per miss, and every access costs the PE
    ``cache_cycles`` on top of the uncached cycles."""
    spec = _cache(cache_bytes, ways, 16, cache_cycles=3)
    r = simulate_spgemm(A_SMALL, B_SMALL, spec=spec, dataflow="rowwise-hash", variant="v2")
    assert (r.cache_accesses, r.cache_misses, r.cache_hits) == (16, misses, 16 - misses)
    assert r.cache_hit_rate == (16 - misses) / 16
    assert r.dram_bytes_b == 16 * misses
    plain = simulate_spgemm(A_SMALL, B_SMALL, spec=_spec(pes=1, window=8), dataflow="rowwise-hash", variant="v2")
    assert plain.cache_accesses == 0 and plain.cache_hit_rate is None
    assert r.compute_cycles == plain.compute_cycles + 16 * 3
    # the unit overlaps its row's loads with its merge: a row costs the larger of the two
    u = simulate_spgemm(A_SMALL, B_SMALL, spec=spec, dataflow="rowwise-hash", variant="unit")
    u0 = simulate_spgemm(A_SMALL, B_SMALL, spec=_spec(pes=1, window=8), dataflow="rowwise-hash", variant="unit")
    # row 0: 10 loads x 3 cycles outlast the unit's 15 cycles; row 1: 6 x 3 outlast its 11
    assert u0.compute_cycles == 15 + 11 and u.compute_cycles == 10 * 3 + 6 * 3


def test_outer_reads_each_row_once():
    """Outer product: rows 0, 1, 2 of B fetched once each (lines 0 0 1 1 2 2 | 0 0 | 0 0 3 3)."""
    r = simulate_spgemm(A_SMALL, B_SMALL, spec=_cache(64, 4, 16), dataflow="outer")
    assert (r.cache_accesses, r.cache_misses) == (12, 4)
    assert r.dram_bytes_b == 4 * 16


def test_inner_closed_form_equals_lru_on_the_repeated_scan():
    """Inner product re-reads all of B (CSC) per live row of A: the closed form
    (scan_hits) equals the LRU model run on the explicit repeated stream, for a cache in
    which some sets hold their lines and some do not."""
    rng = np.random.default_rng(3)
    a = sp.random(12, 9, density=0.3, format="csr", random_state=rng, dtype=np.float64)
    a.data[:] = 1.0
    b = sp.random(9, 10, density=0.35, format="csr", random_state=rng, dtype=np.float64)
    b.data[:] = 2.0
    a.sort_indices(), b.sort_indices()
    for cache_bytes, ways, line in ((64, 2, 16), (128, 4, 8), (256, 2, 16), (1024, 8, 32)):
        spec = _spec(pes=2, window=2, cache_bytes=cache_bytes, cache_ways=ways, cache_line_bytes=line)
        r = simulate_spgemm(a, b, spec=spec, dataflow="inner")
        bc = sp.csc_matrix(b)
        words = np.concatenate([np.arange(bc.shape[1] + 1) * 4,
                                -(-((bc.shape[1] + 1) * 4) // line) * line + np.arange(bc.nnz) * 8])
        one_pass = np.concatenate([np.arange(w // line, (w + (4 if i <= bc.shape[1] else 8) - 1) // line + 1)
                                   for i, w in enumerate(words)])
        live = np.flatnonzero(np.diff(a.indptr) > 0)
        pe = (live // 2) % 2
        stream_pe = np.repeat(pe, one_pass.size)
        stream_line = np.tile(one_pass, live.size)
        hits = lru_hits(stream_pe, stream_line, sets=spec.spgemm.cache_sets, ways=ways)
        assert (r.cache_hits, r.cache_misses) == (int(hits.sum()), int((~hits).sum())), (cache_bytes, ways, line)


def test_scan_closed_form():
    """scan_hits: sets within the ways hit after the first pass; larger ones always miss."""
    assert scan_hits(np.array([2, 3, 0]), np.array([4, 0]), ways=2) == (6, 4 * 3 + 2)


# ------------------------------------------------------------------ on real matrices
@pytest.fixture(scope="module")
def elt():
    """The METIS 4elt graph (libmetis-doc), or a skip where it is not installed."""
    from sparseforge.models.matrices import builtin_available

    if not builtin_available("4elt"):
        pytest.skip("libmetis-doc's 4elt is not installed here")
    return load_matrix("4elt").matrix


def test_cache_keeps_functional_result_and_counts(elt):
    """On 4elt with smash-piuma's cache: every dataflow's functional C is SciPy's, the
    counts the cache does not touch (multiplies, nnz C, probes, A and C traffic) are the
    uncached ones, hits + misses = accesses, and B traffic is misses x line."""
    from sparseforge.models.matrices import canonical

    a = canonical(elt[:600][:, :600].tocsr(), what="A")
    spec = load_spec("smash-piuma")
    assert spec.spgemm.cache_bytes > 0
    nocache = spec.replace(spgemm=dataclasses.replace(spec.spgemm, cache_bytes=0))
    golden = golden_spgemm(a, a)
    for d in ("inner", "outer", "rowwise-dense", "rowwise-hash"):
        c = functional_spgemm(a, a, spec=spec, dataflow=d)
        assert (c != golden).nnz == 0
    with_c = compare_dataflows(a, a, spec=spec)
    without = compare_dataflows(a, a, spec=nocache)
    for r, r0 in zip(with_c, without):
        assert (r.macs, r.nnz_c, r.hash_probes, r.dram_bytes_a, r.dram_bytes_c) == \
               (r0.macs, r0.nnz_c, r0.hash_probes, r0.dram_bytes_a, r0.dram_bytes_c)
        assert r.cache_hits + r.cache_misses == r.cache_accesses > 0
        assert r.dram_bytes_b == r.cache_misses * spec.spgemm.cache_line_bytes
        assert r0.cache_accesses == 0
    rowwise = [r for r in with_c if r.dataflow.startswith("rowwise")]
    assert len({(r.cache_hits, r.cache_misses) for r in rowwise}) == 1     # one stream for all
    assert [r.label for r in with_c] == [f"{d}-{v}" if v else d for d, v in ALL_VARIANTS]


# ------------------------------------------------------------------ spec and report
@pytest.mark.parametrize("override, message", [
    ("spgemm.cache_bytes=1000", "spgemm.cache_bytes = 1000 is not allowed: must be 0 (no cache) or cache_ways x "
                                "cache_line_bytes = 4 x 64 = 256 bytes times a power of two (the number of sets)"),
    ("spgemm.cache_bytes=768", "spgemm.cache_bytes = 768 is not allowed: must be 0 (no cache) or cache_ways"),
    ("spgemm.cache_bytes=-1", "spgemm.cache_bytes = -1 is not allowed: must be 0..1073741824 bytes"),
    ("spgemm.cache_line_bytes=48", "spgemm.cache_line_bytes = 48 is not allowed: must be a power of two in "
                                   "1..4096 bytes (a multiple of dram_access_bytes)"),
    ("spgemm.cache_ways=0", "spgemm.cache_ways = 0 is not allowed: must be 1..256"),
    ("spgemm.cache_cycles=0", "spgemm.cache_cycles = 0 is not allowed: must be 1..1024 cycles"),
    ("spgemm.cache_replacement=mru", "spgemm.cache_replacement = 'mru' is not allowed: choose one of lru"),
])
def test_bad_cache_fields_are_refused_in_one_line(override, message):
    with pytest.raises(SpecError) as info:
        HardwareSpec().with_overrides([override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_line_must_be_whole_dram_accesses_and_state_bounded():
    with pytest.raises(SpecError, match=r"^spgemm.cache_line_bytes = 8 is not allowed: must be a multiple of "
                                        r"spgemm.dram_access_bytes = 64 \(a miss moves whole DRAM accesses\)$"):
        HardwareSpec().with_overrides(["spgemm.dram_access_bytes=64", "spgemm.cache_bytes=1024",
                                       "spgemm.cache_line_bytes=8"])
    with pytest.raises(SpecError, match=r"^spgemm.cache_bytes = 1073741824 is not allowed: must hold at most "):
        HardwareSpec().with_overrides(["spgemm.pes=65536", "spgemm.cache_bytes=1073741824"])
    # without a cache the line size is not checked against the DRAM access
    assert HardwareSpec().with_overrides(["spgemm.dram_access_bytes=128"]).spgemm.cache_sets == 0
    assert HardwareSpec().with_overrides(["spgemm.cache_bytes=8192"]).spgemm.cache_sets == 32


def test_presets():
    """default (the FPGA card: the RTL unit has no cache) has none; smash-piuma has one."""
    assert load_spec("default").spgemm.cache_bytes == 0
    s = load_spec("smash-piuma").spgemm
    assert (s.cache_bytes, s.cache_ways, s.cache_line_bytes, s.cache_replacement) == (32768, 4, 8, "lru")
    assert s.cache_line_bytes % s.dram_access_bytes == 0




def test_cli_reports_hits_misses_and_rate(capsys, tmp_path):
    """The text report has the cache columns and the cache in its title; --json has the
    hits, misses and hit rate of every variant; a bad cache field exits 2 in one line."""
    f = tmp_path / "r.txt"
    argv = ["spgemm", "--a", "illc1850", "--b", "illc1850.T", "--hw", "smash-piuma"]
    assert _cli(argv + ["--dataflow", "rowwise-hash", "-o", str(f)]) == 0
    text = f.read_text()
    assert "B cache 32768 B/PE, 4-way, 8 B lines, LRU, 2 cycles" in text
    assert "B$_hits" in text and "B$_miss" in text and "B$_hit%" in text
    capsys.readouterr()
    assert _cli(argv + ["--json", "--set", "spgemm.cache_bytes=65536"]) == 0
    out = json.loads(capsys.readouterr().out)
    for r in out["results"]:
        assert r["cache_hits"] + r["cache_misses"] == r["cache_accesses"] > 0
        assert r["cache_hit_rate"] == pytest.approx(r["cache_hits"] / r["cache_accesses"])
    assert _cli(argv + ["--json", "--set", "spgemm.cache_bytes=1000"]) == 2
    text = capsys.readouterr().out
    assert text.count("\n") == 1 and "spgemm.cache_bytes = 1000 is not allowed" in text
