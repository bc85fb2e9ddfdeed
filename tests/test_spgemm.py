"""SpGEMM: loaders, golden product, the four dataflows' functional results, the hash
placement, the SMASH timing model, the spec section and the ``spgemm`` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from sparseforge.dataflow.spgemm import (
    DATAFLOWS, SpgemmError, expand_products, functional_spgemm, hash_slots, pe_of_rows, place_rows,
)
from sparseforge.models.matrices import (
    MatrixError, canonical, check_product_shapes, golden_spgemm, load_matrix, read_metis,
)
from sparseforge.sim.spgemm import ALL_VARIANTS, _bank_recursion, compare_dataflows, simulate_spgemm, smash_row_timing
from sparseforge.sim.units.hashmerge import unit_row_cycles
from sparseforge.spec import HardwareSpec, SpecError

DATA = Path(__file__).parent / "data" / "spgemm"


def _spec(**spgemm) -> HardwareSpec:
    base = HardwareSpec()
    return base.replace(spgemm=dataclasses.replace(base.spgemm, **spgemm))


@pytest.fixture(scope="module")
def illc():
    """illc1850 (float) and its transpose: the always-available real matrix."""
    a = load_matrix("illc1850").matrix
    return a, canonical(a.T)


@pytest.fixture(scope="module")
def minilm():
    """Pruned int8 MiniLM ffn.down weights and the ReLU'd real GELU activations."""
    pytest.importorskip("safetensors")
    try:
        return load_matrix("minilm-ffn-down").matrix, load_matrix("minilm-gelu-acts").matrix
    except MatrixError as exc:
        pytest.skip(str(exc))


# ------------------------------------------------------------------ loaders
def test_illc1850_builtin_is_the_scipy_test_matrix():
    """The built-in illc1850 is SciPy's PROPACK test matrix: 1850 x 712, 8636 nonzeros,
    float64, canonical CSR (sorted indices, no duplicates)."""
    m = load_matrix("illc1850")
    assert m.shape == (1850, 712) and m.nnz == 8636 and not m.is_integer
    assert m.matrix.has_sorted_indices and m.matrix.has_canonical_format


def test_transpose_suffix():
    """``NAME.T`` is the transpose of a built-in."""
    a, t = load_matrix("illc1850").matrix, load_matrix("illc1850.T").matrix
    assert t.shape == (712, 1850) and (t != a.T).nnz == 0


def test_matrix_market_and_npz_round_trip(tmp_path, illc):
    """A matrix written with scipy.io.mmwrite and scipy.sparse.save_npz loads back equal."""
    a, _ = illc
    scipy.io.mmwrite(str(tmp_path / "m.mtx"), a)
    sp.save_npz(tmp_path / "m.npz", a)
    for f in ("m.mtx", "m.npz"):
        b = load_matrix(str(tmp_path / f)).matrix
        assert (b != a).nnz == 0, f


def test_matrix_market_integer_rectangular():
    """An integer MatrixMarket file keeps int64 values and its shape."""
    m = load_matrix(str(DATA / "rect.mtx"))
    assert m.is_integer and m.shape == (2, 3)
    assert m.matrix.toarray().tolist() == [[2, 0, -1], [0, 5, 0]]


def test_metis_weighted_graph():
    """A METIS file with edge weights (fmt 1) becomes its symmetric weighted adjacency."""
    adj = read_metis(DATA / "weighted.graph").toarray()
    assert adj.tolist() == [[0, 3, 2, 1], [3, 0, 5, 0], [2, 5, 0, 7], [1, 0, 7, 0]]


@pytest.mark.parametrize("name,message", [
    ("bad_index.mtx", "bad_index.mtx: malformed MatrixMarket file: Line 4: Row index out of bounds"),
    ("truncated.mtx", "truncated.mtx: malformed MatrixMarket file: Truncated file"),
    ("no_banner.mtx", "no_banner.mtx: not a MatrixMarket file: line 1 must start with '%%MatrixMarket'"),
    ("bad_neighbour.graph", "bad_neighbour.graph:5: vertex 4 lists neighbour 5, outside 1..4"),
    ("bad_edge_count.graph", "METIS header says 5 edges but the adjacency lists hold 8 neighbours"),
    ("bad_header.graph", "bad_header.graph:1: METIS header '3 x' must be integers"),
    ("not_npz.npz", "not_npz.npz: not a scipy.sparse.save_npz file"),
    ("missing.mtx", "matrix file"),
])
def test_malformed_files_give_one_line_errors(name, message):
    """Malformed or missing files raise MatrixError: one line naming the file (and line)."""
    with pytest.raises(MatrixError) as exc:
        load_matrix(str(DATA / name))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_asymmetric_metis_graph_is_rejected(tmp_path):
    """A METIS graph whose edge appears at only one endpoint is rejected."""
    f = tmp_path / "asym.graph"
    f.write_text("3 2\n2 3\n1\n2\n")     # 1-3 listed at 1, but 3 lists 2
    with pytest.raises(MatrixError, match="not symmetric"):
        read_metis(f)


def test_shape_checks():
    """A x A needs a square A (the message suggests --b A.T); A x B needs matching inner
    dimensions."""
    a = load_matrix("illc1850")
    with pytest.raises(MatrixError, match=r"illc1850 is 1850x712, not square, so A x A is undefined: give --b"):
        check_product_shapes(a, a, b_given=False)
    with pytest.raises(MatrixError, match="shape mismatch: A = illc1850 is 1850x712 and B = illc1850 is 1850x712"):
        check_product_shapes(a, a, b_given=True)
    check_product_shapes(a, a.transpose(), b_given=True)


# ------------------------------------------------------------------ functional
@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_functional_float_matches_scipy(dataflow, illc):
    """Every dataflow's functional mode on illc1850 x illc1850^T (float64) has SciPy's
    pattern and values within the stated tolerance rtol 1e-12 (they add in SciPy's order,
    so they are in fact equal)."""
    a, b = illc
    g = golden_spgemm(a, b)
    c = functional_spgemm(a, b, spec=HardwareSpec(), dataflow=dataflow)
    assert np.array_equal(c.indptr, g.indptr) and np.array_equal(c.indices, g.indices)
    assert np.allclose(c.data, g.data, rtol=1e-12, atol=0)
    assert np.array_equal(c.data, g.data)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_functional_int_matches_scipy_exactly(dataflow, minilm):
    """Pruned int8 MiniLM weights x real ReLU activations: every dataflow equals SciPy
    exactly, including the hash dataflow through a 64-entry table that overflows and spills."""
    a, b = minilm
    spec = _spec(table_entries=64)
    pl = place_rows(expand_products(a, b), spec)
    assert pl.spilled.any()
    c = functional_spgemm(a, b, spec=spec, dataflow=dataflow)
    g = golden_spgemm(a, b)
    assert c.dtype == np.int64 and (c != g).nnz == 0


def test_overflow_error_mode_refuses(minilm):
    """With ``spgemm.overflow = "error"`` a row with more distinct columns than the table
    holds raises one clear error instead of producing anything."""
    a, b = minilm
    with pytest.raises(SpgemmError, match=r"row 0 of C has \d+ distinct columns, more than the 63 a table of "
                                          r"64 entries holds"):
        place_rows(expand_products(a, b), _spec(table_entries=64, overflow="error"))


# ------------------------------------------------------------------ hash placement
def _reference_placement(cols_seq: list[int], homes: dict[int, int], T: int):
    """Plain-Python linear probing of one row: probes per product, spilled flags."""
    table: dict[int, int] = {}         # slot -> key
    where: dict[int, int] = {}
    probes, spilled = [], []
    for c in cols_seq:
        if c in where:
            probes.append((where[c] - homes[c]) % T + 1)
            spilled.append(False)
            continue
        pos, n = homes[c], 1
        while pos in table:
            pos, n = (pos + 1) % T, n + 1
        if len(table) == T - 1:
            probes.append(n)
            spilled.append(True)
            continue
        table[pos] = c
        where[c] = pos
        probes.append(n)
        spilled.append(False)
    return probes, spilled


@pytest.mark.parametrize("hash_bits,T", [("high", 32), ("low", 16)])
def test_vectorised_placement_matches_plain_linear_probing(illc, hash_bits, T):
    """The row-parallel NumPy insertion gives, for every product of real illc1850 x
    illc1850^T rows, the same probe count and spill decision as inserting the row's
    products one by one into a Python dict table."""
    a, b = illc
    spec = _spec(table_entries=T, hash_bits=hash_bits)
    sub = canonical(a[:120])
    prod = expand_products(sub, b)
    pl = place_rows(prod, spec)
    homes = dict(zip(prod.col.tolist(), hash_slots(prod.col, spec).tolist()))
    for r in range(sub.shape[0]):
        lo, hi = prod.row_ptr[r], prod.row_ptr[r + 1]
        p, s = _reference_placement(prod.col[lo:hi].tolist(), homes, T)
        assert pl.probes[lo:hi].tolist() == p, r
        assert pl.spilled[lo:hi].tolist() == s, r
    assert pl.collisions > 0 and pl.spilled.any()


def test_hash_function_definition():
    """``high``: the top log2(T) bits of (j * P) mod 2^w; ``low``: (j * P) mod T."""
    j = np.array([0, 1, 2, 12345, 2**31 + 7])
    P, w = 2654435761, 32
    hi = hash_slots(j, _spec(table_entries=1024))
    lo = hash_slots(j, _spec(table_entries=1024, hash_bits="low"))
    assert hi.tolist() == [((int(x) * P) % 2**w) >> (w - 10) for x in j]
    assert lo.tolist() == [(int(x) * P) % 1024 for x in j]


def test_window_distribution():
    """Rows go to PEs in windows of ``window`` consecutive rows, round robin."""
    pe = pe_of_rows(40, _spec(pes=3, window=4))
    assert pe[:13].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [0]


# ------------------------------------------------------------------ timing model
def test_bank_recursion_with_one_bank_is_the_serial_sum(illc):
    """With a single bank every operation waits for the one before it, so the general
    bank recursion must reduce to reads x scratchpad_cycles + atomics x atomic_cycles (+1
    per spill store): the closed form used for SMASH V1/V2."""
    a, b = illc
    spec = _spec(table_entries=32)
    prod = expand_products(canonical(a[:200]), b)
    pl = place_rows(prod, spec)
    closed = smash_row_timing(prod, pl, spec, version="v2")
    # rebuild the op list as smash_row_timing does, and run the recursion with banks=1
    s = spec.spgemm
    p = pl.probes
    n_read = np.where(pl.spilled, p, p - 1)
    n_atom = np.where(pl.spilled, 0, 1)
    n_store = pl.spilled.astype(np.int64)
    n_ops = n_read + n_atom + n_store
    op_prod = np.repeat(np.arange(prod.count), n_ops)
    pos = np.arange(int(n_ops.sum())) - np.repeat(np.cumsum(n_ops) - n_ops, n_ops)
    kind = np.where(pos < n_read[op_prod], 0, np.where(n_store[op_prod] > 0, 2, 1))
    slot = np.where(kind == 0, (hash_slots(prod.col, spec)[op_prod] + pos) & 31, pl.slot[op_prod])
    op_row = prod.row[op_prod]
    row_ops = np.bincount(op_row, minlength=prod.shape[0])
    end, aconf, bconf = _bank_recursion(op_row, kind, slot, np.zeros_like(slot), row_ops, prod.shape[0],
                                        banks=1, sc=s.scratchpad_cycles, ac=s.atomic_cycles)
    drain = np.where(pl.inserted > 0, 2 * pl.inserted + s.scratchpad_cycles, 0)
    assert np.array_equal(np.where(row_ops > 0, end + drain, 0), closed.cycles)
    assert np.array_equal(aconf, closed.atomic_conflicts) and np.array_equal(bconf, closed.bank_conflicts)


def test_smash_versions_order_on_real_matrices(illc):
    """On illc1850 x illc1850^T: V2 (one atomic on a token) never needs more cycles than
    V1 (probe reads + CAS + fetch-add), V1 has atomic conflicts (its fetch-add waits for its
    own CAS), and fragmenting the table into banks (V3) removes bank conflicts."""
    a, b = illc
    res = {r.label: r for r in compare_dataflows(a, b, spec=HardwareSpec())}
    v1, v2, v3 = res["rowwise-hash-v1"], res["rowwise-hash-v2"], res["rowwise-hash-v3"]
    assert v2.compute_cycles < v1.compute_cycles
    assert v1.atomics == v1.macs + v1.nnz_c and v2.atomics == v2.macs
    assert v1.atomic_conflicts > v2.atomic_conflicts
    assert v3.bank_conflicts < v2.bank_conflicts and v3.compute_cycles < v2.compute_cycles
    assert v1.hash_probes == v2.hash_probes == v3.hash_probes == res["rowwise-hash-unit"].hash_probes


def test_traffic_rules(illc):
    """DRAM traffic follows the dataflows' memory behaviour on real operands: inner
    re-fetches all of B once per non-empty row of A; outer writes and reads back every
    partial product; the row-wise dataflows fetch B's row k once per nonzero A[i, k]; C is
    written once by all."""
    a, b = illc
    spec = HardwareSpec()
    res = {r.label: r for r in compare_dataflows(a, b, spec=spec, variants=ALL_VARIANTS)}
    live = int((np.diff(a.indptr) > 0).sum())
    b_csc = 8 * b.nnz + -(-4 * (b.shape[1] + 1) // 8) * 8
    assert res["inner"].dram_bytes_b == live * b_csc
    assert res["outer"].dram_bytes_partial == 2 * res["outer"].macs * 16
    fetch = 8 + 8 * np.diff(b.indptr)
    assert res["rowwise-hash-v3"].dram_bytes_b == int(fetch[a.indices].sum()) == res["rowwise-dense"].dram_bytes_b
    assert len({r.dram_bytes_c for r in res.values()}) == 1
    assert len({r.nnz_c for r in res.values()}) == 1


def test_unit_cycles_are_the_probe_count_plus_drain(illc):
    """The unit's predicted row cycles are 3 + slots examined + keys inserted, and the
    hash dataflow on the unit sums them per PE."""
    a, b = illc
    spec = HardwareSpec()
    prod = expand_products(a, b)
    pl = place_rows(prod, spec)
    cyc = unit_row_cycles(prod, pl)
    r = 17
    lo, hi = prod.row_ptr[r], prod.row_ptr[r + 1]
    assert cyc[r] == 3 + pl.probes[lo:hi].sum() + len(set(prod.col[lo:hi].tolist()))
    res = simulate_spgemm(a, b, spec=spec, dataflow="rowwise-hash", variant="unit")
    per_pe = np.bincount(pe_of_rows(a.shape[0], spec), weights=cyc, minlength=spec.spgemm.pes)
    assert res.compute_cycles == int(per_pe.max())


def test_spills_cost_traffic_not_correctness(minilm):
    """A table too small for the rows spills: spilled products appear as partial-product
    DRAM traffic (written and read back), the result stays exact."""
    a, b = minilm
    small = simulate_spgemm(a, b, spec=_spec(table_entries=64), dataflow="rowwise-hash", variant="v2")
    big = simulate_spgemm(a, b, spec=_spec(table_entries=256), dataflow="rowwise-hash", variant="v2")
    assert small.spilled_products > 0 and big.spilled_products == 0
    assert small.dram_bytes_partial == 2 * 8 * small.spilled_products and big.dram_bytes_partial == 0


# ------------------------------------------------------------------ spec
@pytest.mark.parametrize("field,value,message", [
    ("table_entries", 1, "spgemm.table_entries = 1 is not allowed: must be a power of two in 2..16777216 entries "
                         "(one entry always stays empty)"),
    ("table_entries", 48, "spgemm.table_entries = 48 is not allowed: must be a power of two in 2..16777216 entries "
                          "(one entry always stays empty)"),
    ("smash", "v4", "spgemm.smash = 'v4' is not allowed: choose one of v1, v2, v3, unit"),
    ("hash_bits", "mid", "spgemm.hash_bits = 'mid' is not allowed: choose one of high, low"),
    ("hash_multiplier", 2**32 + 1, "spgemm.hash_multiplier = 4294967297 is not allowed: must be below 2^key_width = 2^32"),
    ("window", 0, "spgemm.window = 0 is not allowed: must be 1..1048576 rows"),
])
def test_spec_validation(field, value, message):
    """Bad [spgemm] values raise SpecError naming the dotted field, value and rule."""
    with pytest.raises(SpecError) as exc:
        _spec(**{field: value})
    assert str(exc.value) == message


def test_smash_piuma_preset_loads():
    """The smash-piuma preset is a valid spec with its own [spgemm] section."""
    from sparseforge.spec import load_spec

    s = load_spec("smash-piuma")
    assert s.spgemm.smash == "v3" and s.spgemm.dram_access_bytes == 8


# ------------------------------------------------------------------ CLI
def _cli(argv: list[str]) -> int:
    from sparseforge.cli import spgemm as cli_spgemm
    from sparseforge.cli.kit import UserError

    ap = argparse.ArgumentParser(prog="sparseforge")
    sub = ap.add_subparsers(dest="command", required=True)
    cli_spgemm.register(sub)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except (UserError, SpecError) as exc:
        print(f"sparseforge: error: {exc}")
        return 2


def test_cli_all_dataflows_json(capsys):
    """``spgemm --a illc1850 --b illc1850.T --dataflow all --json`` reports every dataflow
    and SMASH variant, checks them against SciPy, and gives the speedup matrix."""
    assert _cli(["spgemm", "--a", "illc1850", "--b", "illc1850.T", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    labels = [r["label"] for r in out["results"]]
    assert labels == ["inner", "outer", "rowwise-dense", "rowwise-hash-v1", "rowwise-hash-v2",
                      "rowwise-hash-v3", "rowwise-hash-unit"]
    assert set(out["functional_vs_scipy"]) == set(DATAFLOWS)
    assert out["speedup"]["inner"]["inner"] == 1.0
    assert out["nnz_c"] == out["results"][0]["nnz_c"]


def test_cli_table_with_one_dataflow(capsys, tmp_path):
    """A single dataflow as a text table written atomically to --output."""
    f = tmp_path / "r.txt"
    assert _cli(["spgemm", "--a", str(DATA / "weighted.graph"), "--dataflow", "rowwise-hash",
                 "--set", "spgemm.smash=v1", "-o", str(f)]) == 0
    text = f.read_text()
    assert "rowwise-hash-v1" in text and "functional vs SciPy A @ B: rowwise-hash exact" in text


@pytest.mark.parametrize("argv,message", [
    (["--a", "illc1850"], "A = illc1850 is 1850x712, not square"),
    (["--a", "illc1850", "--b", "illc1850"], "shape mismatch"),
    (["--a", str(DATA / "bad_index.mtx")], "--a: "),
    (["--a", "illc1850", "--dataflow", "gustavson"], "--dataflow 'gustavson' is not allowed"),
    (["--a", str(DATA / "rect.mtx"), "--b", "rect.T", "--set", "spgemm.table_entries=3"], "spgemm.table_entries"),
])
def test_cli_errors_are_one_line_and_write_nothing(argv, message, capsys, tmp_path):
    """User mistakes exit 2 with one line naming the problem; --output is not created."""
    out = tmp_path / "r.txt"
    assert _cli(["spgemm", *argv, "-o", str(out)]) == 2
    text = capsys.readouterr().out
    assert message in text and text.count("\n") == 1
    assert not out.exists()
