"""SpGEMM ``C = A @ B`` mapped onto the scratchpad machine of ``[spgemm]``: the product
stream, the hash placement of each output row, the row-to-PE distribution, and the
functional result of each dataflow.

Everything is computed from the actual indices of the operands, vectorised with NumPy:

- :func:`expand_products` lists every partial product ``A[i,k] * B[k,j]`` in the order a
  row-wise (Gustavson) PE produces them: row ``i``, then ``k`` ascending, then ``j`` in
  B's row order. The same order is SciPy's, so sums match it.
- :func:`hash_slots` is the table's hash: ``((j * P) mod 2^w) >> (w - log2 T)`` (``"high"``
  bits, Fibonacci hashing) or ``(j * P) mod T`` (``"low"``), ``w = key_width``.
- :func:`place_rows` inserts each row's distinct columns, in first-appearance order, into an
  empty linear-probing table of ``table_entries`` slots, as the hardware does, and returns
  every product's probe count (slots examined) and slot. A table holds ``T - 1`` keys (one
  slot stays empty, so every probe sequence ends); later new keys of that row *overflow*:
  they are spilled (their probe walk ends at the empty slot) or, with
  ``overflow = "error"``, raise :class:`SpgemmError`.
- :func:`pe_of_rows` is SMASH's window distribution: windows of ``window`` consecutive rows,
  window ``w`` on PE ``w mod pes``.
- :func:`functional_spgemm` computes C through each dataflow's own merge (hash slots,
  dense accumulator, sorted partial products, index intersection).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from sparseforge.errors import InputError
from sparseforge.spec import HardwareSpec

__all__ = [
    "DATAFLOWS", "SpgemmError", "Products", "Placement", "expand_products", "hash_slots", "place_rows",
    "pe_of_rows", "functional_spgemm",
]

DATAFLOWS = ("inner", "outer", "rowwise-dense", "rowwise-hash")


class SpgemmError(InputError):
    """A SpGEMM that the spec cannot run as asked (e.g. a table overflow with
    ``overflow = "error"``); the message is one line."""


@dataclass(frozen=True, eq=False)
class Products:
    """The partial products of ``A @ B`` in row-wise production order.

    ``row``, ``col``, ``val``: one entry per product; ``row_ptr[i]:row_ptr[i+1]`` are row
    ``i``'s products (``len(row_ptr) == A.shape[0] + 1``)."""

    row: np.ndarray
    col: np.ndarray
    val: np.ndarray
    row_ptr: np.ndarray
    shape: tuple[int, int]

    @property
    def count(self) -> int:
        return int(self.row.size)

    @property
    def per_row(self) -> np.ndarray:
        return np.diff(self.row_ptr)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each (s, n), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total, dtype=np.int64) - offs)


def expand_products(a: sp.csr_matrix, b: sp.csr_matrix) -> Products:
    """Every partial product of canonical CSR ``a @ b`` in Gustavson order."""
    if a.shape[1] != b.shape[0]:
        raise SpgemmError(f"shape mismatch: {a.shape[0]}x{a.shape[1]} times {b.shape[0]}x{b.shape[1]}")
    a_rows = np.repeat(np.arange(a.shape[0], dtype=np.int64), np.diff(a.indptr))
    k = a.indices.astype(np.int64)
    blen = np.diff(b.indptr)[k]
    bidx = _ranges(b.indptr[:-1][k].astype(np.int64), blen)
    row = np.repeat(a_rows, blen)
    val = np.repeat(a.data, blen) * b.data[bidx]
    per_row = np.bincount(row, minlength=a.shape[0]) if row.size else np.zeros(a.shape[0], dtype=np.int64)
    row_ptr = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int64)
    return Products(row=row, col=b.indices[bidx].astype(np.int64), val=val, row_ptr=row_ptr,
                    shape=(a.shape[0], b.shape[1]))


def hash_slots(cols: np.ndarray, spec: HardwareSpec) -> np.ndarray:
    """The home slot of each column index (see the module docstring)."""
    s = spec.spgemm
    w, k = s.key_width, s.table_bits
    prod = cols.astype(np.uint64) * np.uint64(s.hash_multiplier)   # wraps mod 2^64
    if w < 64:
        prod &= np.uint64((1 << w) - 1)
    if s.hash_bits == "high":
        slot = prod >> np.uint64(w - k)
    else:
        slot = prod & np.uint64((1 << k) - 1)
    return slot.astype(np.int64)


@dataclass(frozen=True, eq=False)
class Placement:
    """Where every product of every row went in its row's hash table.

    Per product: ``probes`` (slots examined, >= 1), ``slot`` (the entry it updated, or for a
    spilled product the empty slot its walk ended at), ``spilled``, ``new`` (it inserted
    its key). Per row: ``inserted`` (keys in the table), ``spilled_keys`` (distinct keys
    that overflowed). ``key_order`` lists each row's distinct keys (as indices into the
    product arrays of their first occurrence) in insertion order."""

    probes: np.ndarray
    slot: np.ndarray
    spilled: np.ndarray
    new: np.ndarray
    inserted: np.ndarray
    spilled_keys: np.ndarray
    key_id: np.ndarray          # per product: index of its distinct (row, col) key
    key_first: np.ndarray       # per key, in insertion order: its first product

    @property
    def collisions(self) -> int:
        """Slots examined that held another key (probes beyond the first)."""
        return int((self.probes - 1).sum())


def place_rows(prod: Products, spec: HardwareSpec) -> Placement:
    """Insert every row's distinct columns into its own empty linear-probing table, in
    first-appearance order, vectorised across rows; see the module docstring."""
    s = spec.spgemm
    T, cap, mask = s.table_entries, s.capacity, s.table_entries - 1
    n_rows, n_cols = prod.shape
    if prod.count == 0:
        z = np.zeros(0, dtype=np.int64)
        return Placement(probes=z, slot=z, spilled=z.astype(bool), new=z.astype(bool),
                         inserted=np.zeros(n_rows, np.int64), spilled_keys=np.zeros(n_rows, np.int64),
                         key_id=z, key_first=z)
    key = prod.row * np.int64(n_cols) + prod.col
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")       # distinct keys in production order
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(order.size)
    key_id = rank_of[inv]                          # per product: its key in insertion order
    key_first = first[order]
    key_row = prod.row[key_first]
    key_home = hash_slots(prod.col[key_first], spec)
    n_keys = np.bincount(key_row, minlength=n_rows)
    key_ptr = np.concatenate([[0], np.cumsum(n_keys)])
    if s.overflow == "error" and n_keys.max() > cap:
        r = int(np.argmax(n_keys > cap))
        raise SpgemmError(f"row {r} of C has {int(n_keys[r])} distinct columns, more than the {cap} a table of "
                          f"{T} entries holds (spgemm.overflow = 'error'): raise spgemm.table_entries or set "
                          "spgemm.overflow=spill")
    key_slot = np.empty(key_first.size, dtype=np.int64)
    key_dist = np.empty(key_first.size, dtype=np.int64)
    inserted = np.minimum(n_keys, cap)
    # rows with the most keys first, so the rows still inserting at step t are a prefix
    by_len = np.argsort(-inserted, kind="stable")
    by_len = by_len[inserted[by_len] > 0]
    chunk = max(1, (1 << 22) // T)
    for c0 in range(0, by_len.size, chunk):
        rows = by_len[c0:c0 + chunk]
        lens = inserted[rows]
        table = np.zeros((rows.size, T), dtype=bool)
        neg = -lens                                # ascending, for searchsorted
        for t in range(int(lens[0])):
            n_act = int(np.searchsorted(neg, -t, side="left"))   # rows with lens > t
            ids = key_ptr[rows[:n_act]] + t
            local = np.arange(n_act)
            pos = key_home[ids].copy()
            dist = np.zeros(n_act, dtype=np.int64)
            busy = table[local, pos]
            while busy.any():
                w = np.flatnonzero(busy)
                pos[w] = (pos[w] + 1) & mask
                dist[w] += 1
                busy[w] = table[local[w], pos[w]]
            table[local, pos] = True
            key_slot[ids] = pos
            key_dist[ids] = dist
        # keys past capacity: the table is frozen with exactly one empty slot
        over_rows = rows[n_keys[rows] > cap]
        if over_rows.size:
            local_of = np.searchsorted(rows, over_rows) if np.all(np.diff(rows) > 0) else \
                np.array([int(np.flatnonzero(rows == r)[0]) for r in over_rows])
            empty = np.argmin(table[local_of], axis=1)
            cnt = n_keys[over_rows] - cap
            ids = _ranges(key_ptr[over_rows] + cap, cnt)
            e = np.repeat(empty, cnt)
            key_slot[ids] = e
            key_dist[ids] = (e - key_home[ids]) & mask
    key_rank = np.arange(key_first.size) - key_ptr[key_row]
    key_spilled = key_rank >= cap
    probes = key_dist[key_id] + 1
    new = np.zeros(prod.count, dtype=bool)
    new[key_first[~key_spilled]] = True
    return Placement(probes=probes, slot=key_slot[key_id], spilled=key_spilled[key_id], new=new,
                     inserted=inserted, spilled_keys=n_keys - inserted, key_id=key_id, key_first=key_first)


def pe_of_rows(n_rows: int, spec: HardwareSpec) -> np.ndarray:
    """SMASH window distribution: row ``i`` runs on PE ``(i // window) mod pes``."""
    s = spec.spgemm
    return (np.arange(n_rows, dtype=np.int64) // s.window) % s.pes


# ---------------------------------------------------------------- functional mode
def _csr_from_keys(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    from sparseforge.models.matrices import canonical

    return canonical(sp.csr_matrix((vals, (rows, cols)), shape=shape), what="C")


def functional_spgemm(a: sp.csr_matrix, b: sp.csr_matrix, *, spec: HardwareSpec, dataflow: str,
                      products: Products | None = None, placement: Placement | None = None) -> sp.csr_matrix:
    """C computed through ``dataflow``'s own merge, in canonical CSR:

    - ``rowwise-hash``: products summed into their row's hash slots (in production order),
      keys read back from the slots; spilled products summed separately and merged;
    - ``rowwise-dense``: products summed into a dense accumulator indexed by column;
    - ``outer``: per-``k`` outer products listed, sorted stably by (row, column), merged;
    - ``inner``: for each output (i, j), the dot product over the intersection of A's row
      ``i`` and B's column ``j`` (k ascending).

    Sums run in ascending ``k`` for each output, as SciPy's do."""
    if dataflow not in DATAFLOWS:
        raise SpgemmError(f"dataflow = {dataflow!r} is not allowed: choose one of {', '.join(DATAFLOWS)}")
    prod = products if products is not None else expand_products(a, b)
    m, n = prod.shape
    dtype = np.result_type(a.dtype, b.dtype)
    if dataflow == "rowwise-hash":
        pl = placement if placement is not None else place_rows(prod, spec)
        T = spec.spgemm.table_entries
        tab = ~pl.spilled
        # the table: (row, slot) -> accumulated value (added in production order) and its key
        cell = prod.row[tab] * T + pl.slot[tab]
        u, inv = np.unique(cell, return_inverse=True)
        v = np.zeros(u.size, dtype=dtype)
        np.add.at(v, inv, prod.val[tab])
        c = np.empty(u.size, dtype=np.int64)
        c[inv] = prod.col[tab]
        if not np.array_equal(c[inv], prod.col[tab]):
            raise RuntimeError("hash placement put two keys in one slot")
        r = u // T
        if pl.spilled.any():
            r = np.concatenate([r, prod.row[~tab]])
            c = np.concatenate([c, prod.col[~tab]])
            v = np.concatenate([v, prod.val[~tab]])
        return _csr_from_keys(r, c, v, (m, n))
    if dataflow == "rowwise-dense":
        # one dense accumulator per row, reused: accumulate by (row, column) key
        key = prod.row * np.int64(n) + prod.col
        u, inv = np.unique(key, return_inverse=True)
        acc = np.zeros(u.size, dtype=dtype)
        np.add.at(acc, inv, prod.val)
        return _csr_from_keys(u // n, u % n, acc, (m, n))
    if dataflow == "outer":
        # outer products k = 0, 1, ...: list them k-major, then sort by (row, col) stably
        ac = sp.csc_matrix(a)
        ac.sort_indices()
        kk = np.repeat(np.arange(a.shape[1]), np.diff(ac.indptr))
        blen = np.diff(b.indptr)[kk]
        bidx = _ranges(b.indptr[:-1][kk].astype(np.int64), blen)
        rows = np.repeat(ac.indices.astype(np.int64), blen)
        cols = b.indices[bidx].astype(np.int64)
        vals = np.repeat(ac.data, blen) * b.data[bidx]
        order = np.lexsort((cols, rows))               # stable: k order kept within (i, j)
        rows, cols, vals = rows[order], cols[order], vals[order]
        if rows.size == 0:
            return _csr_from_keys(rows, cols, vals, (m, n))
        start = np.flatnonzero(np.concatenate([[True], (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])]))
        sums = np.add.reduceat(vals, start) if dtype.kind != "f" else _ordered_sums(vals, start)
        return _csr_from_keys(rows[start], cols[start], sums, (m, n))
    # inner: dot products over index intersections; only (i, j) pairs whose intersection is
    # non-empty contribute, which are exactly the (row, col) keys of the products
    key = prod.row * np.int64(n) + prod.col
    order = np.argsort(key, kind="stable")
    ks, vs = key[order], prod.val[order]
    if ks.size == 0:
        return _csr_from_keys(ks, ks, vs, (m, n))
    start = np.flatnonzero(np.concatenate([[True], ks[1:] != ks[:-1]]))
    sums = np.add.reduceat(vs, start) if dtype.kind != "f" else _ordered_sums(vs, start)
    return _csr_from_keys(ks[start] // n, ks[start] % n, sums, (m, n))


def _ordered_sums(vals: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Left-to-right float sums of each segment (``reduceat`` may pair terms differently)."""
    seg = np.repeat(np.arange(start.size), np.diff(np.append(start, vals.size)))
    out = np.zeros(start.size, dtype=vals.dtype)
    np.add.at(out, seg, vals)                      # unbuffered, in index order
    return out
