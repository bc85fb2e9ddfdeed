"""The hash-merge unit (``hwgen.hashmerge``) in Icarus Verilog on rows of real matrices.

Each case takes rows of a real SpGEMM (MiniLM pruned weights x real sparse activations,
SciPy's illc1850 quantised to integers, a METIS graph), streams their partial products
through the emitted Verilog and checks

- the merged row (drained entries + spilled products) against SciPy's ``A @ B``, bit-exactly;
- the exact output and spill streams against the simulator's placement (insertion order);
- the measured cycles and input stalls per row against :func:`sim.units.hashmerge.unit_row_cycles`
  and :func:`sim.units.hashmerge.unit_row_stalls`, exactly (the simulator models the unit's
  probe-per-cycle mechanism).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

import sparseforge.hwgen.emit as emit
from sparseforge.dataflow.spgemm import expand_products, place_rows
from sparseforge.models.matrices import builtin_available, canonical, golden_spgemm, load_matrix
from sparseforge.sim.units.hashmerge import unit_row_cycles, unit_row_stalls
from sparseforge.spec import HardwareSpec
from sparseforge.verify.harness import run_bench

pytestmark = [pytest.mark.rtl]


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """The design registry entry the lead adds to hwgen.emit.DESIGNS."""
    monkeypatch.setitem(emit.DESIGNS, "hashmerge", "sparseforge.hwgen.hashmerge:build_hashmerge")


def _quantised(name: str, *, scale: int = 64) -> sp.csr_matrix:
    """A float matrix as integers: ``round(x / max|x| * scale)``, zeros dropped (same pattern
    of the large entries, integer values so the RTL can be compared bit for bit)."""
    m = load_matrix(name).matrix
    q = m.copy()
    q.data = np.rint(m.data / np.abs(m.data).max() * scale)
    return canonical(q.astype(np.int64))


def _case(a: sp.csr_matrix, b: sp.csr_matrix, rows: list[int], spec: HardwareSpec):
    """The bench case for the chosen rows, the expected streams, and the simulator's
    per-row cycle and stall predictions."""
    sub = canonical(a[rows])
    prod = expand_products(sub, b)
    pl = place_rows(prod, spec)
    golden = golden_spgemm(sub, b)
    vw = spec.spgemm.value_width
    assert np.abs(golden.data).max(initial=0) < 1 << (vw - 1), "golden values fit the unit's value width"
    case_rows, expected = [], []
    for r in range(len(rows)):
        lo, hi = prod.row_ptr[r], prod.row_ptr[r + 1]
        assert hi > lo, "every chosen row has products"
        case_rows.append([[int(c), int(v)] for c, v in zip(prod.col[lo:hi], prod.val[lo:hi])])
        # the table after the row: insertion order of the kept keys, their sums
        tab = ~pl.spilled[lo:hi]
        ids = pl.key_id[lo:hi][tab]
        sums: dict[int, int] = {}
        for kid, v in zip(ids, prod.val[lo:hi][tab]):
            sums[int(kid)] = sums.get(int(kid), 0) + int(v)
        out = [[int(prod.col[pl.key_first[kid]]), s] for kid, s in sorted(sums.items()) if s != 0]
        spill = [[int(c), int(v)] for c, v in zip(prod.col[lo:hi][~tab], prod.val[lo:hi][~tab])]
        expected.append({"out": out, "spill": spill})
    cycles = unit_row_cycles(prod, pl)
    stalls = unit_row_stalls(prod, pl)
    case = {"rows": case_rows, "expected": expected, "value_width": vw,
            "timeout_cycles": int(10 * cycles.sum() + 1000)}
    return case, golden, cycles.tolist(), stalls.tolist(), pl


def _merged(result_row: dict, n_cols: int) -> np.ndarray:
    """A row as the unit leaves it: drained entries plus the spilled products, added."""
    row = np.zeros(n_cols, dtype=np.int64)
    for c, v in result_row["out"] + result_row["spill"]:
        row[c] += v
    return row


def _run(tmp_path, a, b, rows, spec, **ready):
    case, golden, cycles, stalls, pl = _case(a, b, rows, spec)
    case.update(ready)
    result = run_bench(spec, design="hashmerge", bench="cocotb_hashmerge", case=case, workdir=tmp_path)
    got = result["rows"]
    assert len(got) == len(rows)
    for r in range(len(rows)):
        assert np.array_equal(_merged(got[r], b.shape[1]), golden[r].toarray().ravel()), f"row {rows[r]}"
    return got, cycles, stalls, pl


def _spec(**spgemm) -> HardwareSpec:
    base = HardwareSpec()
    return base.replace(spgemm=dataclasses.replace(base.spgemm, **spgemm))


def test_minilm_rows_with_spills_match_scipy_and_cycles(tmp_path):
    """Rows of pruned MiniLM ffn.down (int8) x ReLU'd real GELU activations through a
    64-entry table: the rows have up to 128 distinct columns, so the table overflows and
    spills; merged output equals SciPy bit-exactly, streams and cycles equal the simulator's."""
    a = load_matrix("minilm-ffn-down").matrix
    b = load_matrix("minilm-gelu-acts").matrix
    spec = _spec(table_entries=64, key_width=16, value_width=32, hash_multiplier=40503)
    rows = [99, 108]              # the two rows with the fewest products (1190, 1810)
    got, cycles, stalls, pl = _run(tmp_path, a, b, rows, spec)
    assert pl.spilled.any() and pl.collisions > 0, "the case exercises overflow and collisions"
    assert [g["cycles"] for g in got] == cycles
    assert [g["stalls"] for g in got] == stalls


def test_illc1850_rows_collisions_match_scipy_and_cycles(tmp_path):
    """Rows of illc1850 x illc1850^T (integer-quantised) through a 32-entry table with
    low-bit hashing: many collisions, long probe runs; bit-exact and cycle-exact."""
    a = _quantised("illc1850")
    b = canonical(a.T)
    spec = _spec(table_entries=32, key_width=16, value_width=32, hash_multiplier=40503, hash_bits="low")
    # the four rows with the most partial products
    counts = expand_products(a, b).per_row
    rows = sorted(int(i) for i in np.argsort(-counts, kind="stable")[:4])
    got, cycles, stalls, pl = _run(tmp_path, a, b, rows, spec)
    assert pl.collisions > 0
    assert [g["cycles"] for g in got] == cycles
    assert [g["stalls"] for g in got] == stalls


def test_backpressure_keeps_results_exact(tmp_path):
    """With ``out_ready`` high one cycle in three and ``spill_ready`` one in two, the unit
    stalls but loses or duplicates nothing: streams and merged rows are still exact (cycles
    are longer, so only correctness is checked)."""
    a = load_matrix("minilm-ffn-down").matrix
    b = load_matrix("minilm-gelu-acts").matrix
    spec = _spec(table_entries=64, key_width=16, value_width=32, hash_multiplier=40503)
    got, cycles, _, _ = _run(tmp_path, a, b, [99], spec, out_ready_period=3, spill_ready_period=2)
    assert all(g["cycles"] > c for g, c in zip(got, cycles))


@pytest.mark.skipif(not builtin_available("4elt"), reason="METIS graph 4elt needs Debian libmetis-doc")
def test_metis_rows_default_table(tmp_path):
    """Rows of 4elt x 4elt (METIS graph, unit edge weights) through the default spec's
    1024-entry, 32-bit-key table with Fibonacci hashing: bit-exact and cycle-exact."""
    a = load_matrix("4elt").matrix
    spec = HardwareSpec()
    got, cycles, stalls, _ = _run(tmp_path, a, a, [0, 1, 2, 100, 5000], spec)
    assert [g["cycles"] for g in got] == cycles
    assert [g["stalls"] for g in got] == stalls
