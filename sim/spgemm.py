"""Timing, memory traffic and energy of SpGEMM ``C = A @ B`` on the ``[spgemm]`` machine.

Four dataflows (see docs/spgemm.md for the rules and what is assumed):

- ``inner``: each PE keeps a row of A in its scratchpad and merges it with every non-empty
  column of B, streamed from DRAM in CSC: B is re-fetched once per non-empty row of A.
- ``outer``: PEs take windows of ``k``; each outer product ``A[:,k] B[k,:]`` is written to
  DRAM as partial products in per-row buckets, then each output row's lists are read back
  and merged through a heap in the scratchpad.
- ``rowwise-dense``: Gustavson with a dense accumulator of B's width per PE (and a list of
  touched columns); if it does not fit the scratchpad it lives in DRAM.
- ``rowwise-hash``: Gustavson merging into a scratchpad hash table (SMASH), the variant set
  by ``spgemm.smash``: ``v1`` key and value words (probe reads, CAS on the key of a new
  entry, fetch-add on the value), ``v2`` one tokenised key+value word (one atomic per
  product), ``v3`` v2 with the table fragmented into ``banks`` banks, ``unit`` the RTL
  hash-merge unit of :mod:`hwgen.hashmerge` (one slot examined per cycle, timed by
  :func:`sim.units.hashmerge.unit_row_cycles`).

Each PE issues one operation per cycle, in order. A scratchpad read's result is needed
before the next operation (``scratchpad_cycles`` later); a read occupies its bank for one
cycle; an atomic read-modify-write is issued and the PE moves on, but it locks its bank for
``atomic_cycles``. An operation on a locked bank waits: an *atomic conflict* when the locked
entry is its own entry, a *bank conflict* otherwise. Collisions, probes and conflicts are
counted per product from the actual column indices (:func:`dataflow.spgemm.place_rows`).

The machine's time is ``max(compute, DRAM) + DRAM latency`` per phase (DRAM transfers
overlap compute), compute being the busiest PE under the window distribution, and DRAM
bytes / ``dram_bandwidth``. DRAM bytes are counted in ``dram_access_bytes`` units.
Energy is scratchpad bytes x ``e_sram_pj_per_byte`` + DRAM bytes x ``e_dram_pj_per_byte`` +
multiplies x ``e_mac_pj``.

**B cache** (``spgemm.cache_bytes > 0``): each PE reads B through a private set-associative
LRU cache (:mod:`sim.units.cache`). B sits in DRAM as in CSR (CSC for ``inner``): the
pointer array (``key_width`` bytes per entry) from address 0, then the (column, value)
entries from the next line boundary. A *fetch* of B's row ``k`` reads its two pointers and
then its entries, word by word; each line a word touches is one cache *access* (so the
entries after the first in a line are spatial hits), in the order the PE issues them
(:func:`b_fetch_lines`): row-wise dataflows fetch row ``k`` for each nonzero
``A[i,k]`` (rows in order on their PE), ``outer`` fetches every row of B once on the PE of
its ``k``, ``inner`` scans all of B's CSC arrays once per non-empty row of A (closed form
:func:`sim.units.cache.scan_hits`). Every access costs the PE ``cache_cycles`` (a
dependent load, like a scratchpad read; for ``unit`` the loads of a row overlap the unit's
merge, so a row costs the larger of the two); a miss moves one ``cache_line_bytes`` line
from DRAM, which replaces the streamed B traffic, its latency hidden as DRAM's is. Cache
energy: one line read per access and one line written per miss, at ``e_sram_pj_per_byte``.
Without a cache B's rows are streamed from DRAM at every use, costing DRAM bytes only.
"""

from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from sparseforge.dataflow.spgemm import (
    DATAFLOWS, Placement, Products, SpgemmError, _ranges, expand_products, hash_slots, pe_of_rows, place_rows,
)
from sparseforge.spec import HardwareSpec
from sparseforge.spec import SMASH_VERSIONS

from .units.cache import lru_hits, scan_hits
from .units.hashmerge import unit_row_cycles

__all__ = [
    "SpgemmResult", "simulate_spgemm", "compare_dataflows", "ALL_VARIANTS", "smash_row_timing", "RowTiming",
    "b_fetch_lines", "CacheStats",
]

#: (dataflow, variant) of ``--dataflow all``
ALL_VARIANTS: tuple[tuple[str, str], ...] = (
    ("inner", ""), ("outer", ""), ("rowwise-dense", ""),
    ("rowwise-hash", "v1"), ("rowwise-hash", "v2"), ("rowwise-hash", "v3"), ("rowwise-hash", "unit"),
)


@dataclass(frozen=True)
class SpgemmResult:
    """One simulated SpGEMM: counts, cycles, traffic (bytes) and energy (pJ)."""

    dataflow: str
    variant: str
    shape: tuple[int, int, int]          # (M, K, N)
    nnz_a: int
    nnz_b: int
    nnz_c: int
    macs: int                            # partial products = multiplies
    cycles: int
    compute_cycles: int
    dram_cycles: int
    pe_cycles_mean: float
    scratchpad_accesses: int
    hash_probes: int
    collisions: int
    atomics: int
    atomic_conflicts: int
    bank_conflicts: int
    spilled_products: int
    dram_bytes_a: int
    dram_bytes_b: int
    dram_bytes_c: int
    dram_bytes_partial: int
    energy_pj: float
    time_us: float
    cache_accesses: int = 0              # B cache line accesses (0 without a cache)
    cache_hits: int = 0
    cache_misses: int = 0

    @property
    def label(self) -> str:
        return f"{self.dataflow}-{self.variant}" if self.variant else self.dataflow

    @property
    def cache_hit_rate(self) -> float | None:
        """Hits over accesses of the B cache; None without a cache (or without accesses)."""
        return self.cache_hits / self.cache_accesses if self.cache_accesses else None

    @property
    def dram_bytes(self) -> int:
        return self.dram_bytes_a + self.dram_bytes_b + self.dram_bytes_c + self.dram_bytes_partial

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, **asdict(self), "dram_bytes": self.dram_bytes,
                "cache_hit_rate": self.cache_hit_rate}


# ---------------------------------------------------------------- helpers
def _units(nbytes: np.ndarray | int, g: int) -> np.ndarray | int:
    """Bytes moved when ``nbytes`` contiguous bytes are accessed in ``g``-byte units."""
    return -(-np.asarray(nbytes) // g) * g


def _csr_bytes(nnz: int, n_ptr: int, kb: int, vb: int, g: int) -> int:
    return int(_units(nnz * (kb + vb), g) + _units((n_ptr + 1) * kb, g))


@dataclass(frozen=True, eq=False)
class RowTiming:
    """Per-row SMASH timing: cycles, and counts of operations and conflicts."""

    cycles: np.ndarray
    reads: np.ndarray
    atomics: np.ndarray
    atomic_conflicts: np.ndarray
    bank_conflicts: np.ndarray


def smash_row_timing(prod: Products, pl: Placement, spec: HardwareSpec, *, version: str) -> RowTiming:
    """Per-row cycles of SMASH ``v1``/``v2``/``v3`` on one PE (see the module docstring).

    Operations of a product, in order: the probe reads (``v1``: every slot examined;
    ``v2``/``v3``: the slots holding other keys), then on the final slot ``v1``: a CAS of the
    key if it is new and a fetch-add of the value, ``v2``/``v3``: one atomic on the token; a
    spilled product instead ends with a store to its DRAM spill list (no bank). After the
    products, the drain reads each inserted entry (``v1``: key and value) and clears it, one
    operation per cycle once every bank is free, plus one read latency."""
    s = spec.spgemm
    sc, ac = s.scratchpad_cycles, s.atomic_cycles
    banks = s.banks if version == "v3" else 1
    n_rows = prod.shape[0]
    home = hash_slots(prod.col, spec)
    p = pl.probes
    # per product: number of read ops and atomics
    n_read = p if version == "v1" else p - 1
    n_read = np.where(pl.spilled, p, n_read)
    n_atom = np.where(pl.spilled, 0, 1 + (pl.new if version == "v1" else 0))
    n_store = pl.spilled.astype(np.int64)
    n_ops = n_read + n_atom + n_store
    reads = np.bincount(prod.row, weights=n_read, minlength=n_rows).astype(np.int64)
    atomics = np.bincount(prod.row, weights=n_atom, minlength=n_rows).astype(np.int64)
    row_ops = np.bincount(prod.row, weights=n_ops, minlength=n_rows).astype(np.int64)
    mask = s.table_entries - 1
    if banks == 1:
        # one bank: every op waits for the one before it (a read for its result, anything
        # for an atomic's lock), so a row costs the sum; closed form per product
        busy = np.bincount(prod.row, weights=n_read * sc + n_atom * ac + n_store, minlength=n_rows).astype(np.int64)
        # ops issued right after an atomic wait for the bank: v1's fetch-add after its CAS
        # (same entry), and a product's first op after the previous product's atomic
        inner_same = (n_atom == 2) & (ac > 1)
        nxt = np.zeros(prod.count, dtype=bool)
        nxt[1:] = (prod.row[1:] == prod.row[:-1]) & (n_atom[:-1] > 0) & (ac > 1)
        first_slot = np.where(n_read > 0, home, pl.slot)
        same = np.zeros(prod.count, dtype=bool)
        same[1:] = first_slot[1:] == pl.slot[:-1]
        aconf = np.bincount(prod.row, weights=inner_same + (nxt & same), minlength=n_rows)
        bconf = np.bincount(prod.row, weights=nxt & ~same, minlength=n_rows)
        end = busy
    else:
        # flat op list: kind 0 read, 1 atomic, 2 spill store; slot and bank of each op
        total = int(n_ops.sum())
        op_prod = np.repeat(np.arange(prod.count), n_ops)
        first = np.cumsum(n_ops) - n_ops
        pos = np.arange(total) - np.repeat(first, n_ops)
        kind = np.where(pos < n_read[op_prod], 0, np.where(n_store[op_prod] > 0, 2, 1))
        slot = np.where(kind == 0, (home[op_prod] + pos) & mask, pl.slot[op_prod])
        bank = slot >> (s.table_bits - (banks.bit_length() - 1))       # contiguous fragments
        end, aconf, bconf = _bank_recursion(prod.row[op_prod], kind, slot, bank, row_ops, n_rows,
                                            banks=banks, sc=sc, ac=ac)
    per_key = 3 if version == "v1" else 2
    drain = np.where(pl.inserted > 0, pl.inserted * per_key + sc, 0)
    return RowTiming(cycles=np.where(row_ops > 0, end + drain, 0), reads=reads, atomics=atomics,
                     atomic_conflicts=aconf.astype(np.int64), bank_conflicts=bconf.astype(np.int64))


def _bank_recursion(op_row, kind, slot, bank, row_ops, n_rows, *, banks, sc, ac):
    """Issue every row's ops in order against ``banks`` banks, rows in parallel.

    ``t = max(ready, free[bank])``; a read sets ``ready = t + sc`` and ``free[bank] >= t + 1``;
    an atomic sets ``ready = t + 1`` and ``free[bank] = t + ac``; a spill store sets
    ``ready = t + 1``. Returns the cycle all of a row's ops are done (ready and banks free)
    and its atomic and bank conflicts."""
    start = np.concatenate([[0], np.cumsum(row_ops)])[:-1]
    order = np.argsort(-row_ops, kind="stable")
    order = order[row_ops[order] > 0]
    lens = row_ops[order]
    neg = -lens
    nr = order.size
    ready = np.zeros(nr, dtype=np.int64)
    free = np.zeros((nr, banks), dtype=np.int64)
    held = np.full((nr, banks), -1, dtype=np.int64)      # entry whose atomic locks the bank
    aconf = np.zeros(nr, dtype=np.int64)
    bconf = np.zeros(nr, dtype=np.int64)
    base = start[order]
    for t in range(int(lens[0]) if nr else 0):
        n = int(np.searchsorted(neg, -t, side="left"))
        idx = base[:n] + t
        k, s, b = kind[idx], slot[idx], bank[idx]
        loc = np.arange(n)
        rdy = ready[:n]
        fb = free[loc, b]
        banked = k != 2
        wait = banked & (fb > rdy)
        same = held[loc, b] == s
        aconf[:n] += wait & same
        bconf[:n] += wait & ~same
        tt = np.where(banked, np.maximum(rdy, fb), rdy)
        is_read, is_atom = k == 0, k == 1
        ready[:n] = np.where(is_read, tt + sc, tt + 1)
        newfree = np.where(is_atom, tt + ac, np.where(is_read, np.maximum(fb, tt + 1), fb))
        free[loc, b] = newfree
        held[loc, b] = np.where(is_atom, s, held[loc, b])   # only atomics lock a bank past one cycle
    end = np.zeros(n_rows, dtype=np.int64)
    a = np.zeros(n_rows, dtype=np.int64)
    bc = np.zeros(n_rows, dtype=np.int64)
    end[order] = np.maximum(ready, free.max(axis=1)) if nr else 0
    a[order], bc[order] = aconf, bconf
    return end, a, bc


# ---------------------------------------------------------------- the B cache
def _word_lines(addr: np.ndarray, size: np.ndarray | int, line_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Lines touched by words at ``addr`` of ``size`` bytes, in order: ``(line, word)``."""
    L = np.int64(line_bytes)
    first = addr // L
    n = (addr + size - 1) // L - first + 1
    return _ranges(first, n), np.repeat(np.arange(addr.size, dtype=np.int64), n)


def b_fetch_lines(indptr: np.ndarray, rows: np.ndarray, *, kb: int, vb: int, line_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """The cache accesses of fetches of rows ``rows`` (in order) of a CSR/CSC matrix with
    row pointers ``indptr``, laid out as the module docstring says. A fetch of row ``k``
    reads the words ``indptr[k]``, ``indptr[k+1]`` (``kb`` bytes each) and then its
    entries (``kb + vb`` bytes each) in order; each line a word touches is one access.
    Returns ``(line, fetch)``: every access's line address and the index (into ``rows``)
    of its fetch."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z
    eb = kb + vb
    L = np.int64(line_bytes)
    ent_base = -(-(np.int64(indptr.size) * kb) // L) * L      # entries start on a line boundary
    s, e = indptr[rows].astype(np.int64), indptr[rows + 1].astype(np.int64)
    # per fetch two segments of words: pointers rows[f], rows[f]+1; entries s..e-1
    starts = np.column_stack([rows, s]).ravel()
    lens = np.column_stack([np.full(rows.size, 2, dtype=np.int64), e - s]).ravel()
    ids = _ranges(starts, lens)
    is_ptr = np.repeat(np.tile(np.array([True, False]), rows.size), lens)
    addr = np.where(is_ptr, ids * kb, ent_base + ids * eb)
    size = np.where(is_ptr, kb, eb)
    line, word = _word_lines(addr, size, int(L))
    fetch = np.repeat(np.arange(rows.size, dtype=np.int64), 2 + (e - s))[word]
    return line, fetch


@dataclass(frozen=True, eq=False)
class CacheStats:
    """The B cache over one dataflow's access stream: totals, and accesses per row of A
    (per ``k`` for ``outer``; per row of A for ``inner``)."""

    accesses: int
    hits: int
    misses: int
    per_row: np.ndarray


#: cache results of the row-wise stream, shared by the row-wise variants of one product list
_ROWWISE_CACHE: "weakref.WeakKeyDictionary[Products, dict]" = weakref.WeakKeyDictionary()


def _cache_key(spec: HardwareSpec) -> tuple:
    s = spec.spgemm
    return (s.pes, s.window, s.key_width, s.value_width, s.cache_bytes, s.cache_ways, s.cache_line_bytes)


def _rowwise_cache(a: sp.csr_matrix, b: sp.csr_matrix, spec: HardwareSpec) -> CacheStats:
    """Row-wise dataflows: row ``k`` of B fetched for each nonzero ``A[i,k]``, rows of A in
    order on their PE (window distribution), through that PE's cache."""
    s = spec.spgemm
    kb, vb = -(-s.key_width // 8), -(-s.value_width // 8)
    a_row = np.repeat(np.arange(a.shape[0], dtype=np.int64), np.diff(a.indptr))
    pe = pe_of_rows(a.shape[0], spec)[a_row]
    line, fetch = b_fetch_lines(b.indptr, a.indices, kb=kb, vb=vb, line_bytes=s.cache_line_bytes)
    hit = lru_hits(pe[fetch], line, sets=s.cache_sets, ways=s.cache_ways)
    per_row = np.bincount(a_row[fetch], minlength=a.shape[0]).astype(np.int64)
    nh = int(hit.sum())
    return CacheStats(accesses=int(line.size), hits=nh, misses=int(line.size) - nh, per_row=per_row)


def _outer_cache(b: sp.csr_matrix, spec: HardwareSpec) -> CacheStats:
    """Outer product: every row ``k`` of B fetched once, on the PE of ``k``."""
    s = spec.spgemm
    kb, vb = -(-s.key_width // 8), -(-s.value_width // 8)
    K = b.shape[0]
    ks = np.arange(K, dtype=np.int64)
    line, fetch = b_fetch_lines(b.indptr, ks, kb=kb, vb=vb, line_bytes=s.cache_line_bytes)
    hit = lru_hits(pe_of_rows(K, spec)[fetch], line, sets=s.cache_sets, ways=s.cache_ways)
    nh = int(hit.sum())
    return CacheStats(accesses=int(line.size), hits=nh, misses=int(line.size) - nh,
                      per_row=np.bincount(fetch, minlength=K).astype(np.int64))


def _inner_cache(live: np.ndarray, pe_row: np.ndarray, n_ptr: int, nnz: int, spec: HardwareSpec) -> CacheStats:
    """Inner product: all of B's CSC arrays (``n_ptr`` pointers, then ``nnz`` entries from
    the next line boundary) read word by word in address order, once per live row of A, on
    its PE. The first access of each line in a pass follows :func:`scan_hits` per PE; the
    accesses after it in the same line are hits (their line was just used)."""
    s = spec.spgemm
    kb, vb = -(-s.key_width // 8), -(-s.value_width // 8)
    L = s.cache_line_bytes
    ent_base = -(-(n_ptr * kb) // L) * L
    addr = np.concatenate([np.arange(n_ptr, dtype=np.int64) * kb, ent_base + np.arange(nnz, dtype=np.int64) * (kb + vb)])
    size = np.concatenate([np.full(n_ptr, kb, dtype=np.int64), np.full(nnz, kb + vb, dtype=np.int64)])
    line, _ = _word_lines(addr, size, L)
    per_pass = int(line.size)
    distinct = np.unique(line)
    sets = s.cache_sets
    per_set = np.bincount(distinct & (sets - 1), minlength=sets)
    passes = np.bincount(pe_row[live], minlength=s.pes)
    h, m = scan_hits(per_set, passes, ways=s.cache_ways)
    h += int(passes.sum()) * (per_pass - distinct.size)
    return CacheStats(accesses=h + m, hits=h, misses=m, per_row=np.where(live, per_pass, 0).astype(np.int64))


# ---------------------------------------------------------------- the simulator
#: most (row of A x bank) states the SMASH V3 bank recursion keeps (two int64 each: 1 GiB)
MAX_BANK_STATES = 1 << 26


def _check_request(a: sp.csr_matrix, b: sp.csr_matrix, spec: HardwareSpec, *, variant: str, counted: bool) -> None:
    """Refuse, before any array is built, a product with more partial products than
    :data:`~sparseforge.models.matrices.MAX_PRODUCTS` (unless the caller has expanded them
    already) or a V3 run whose bank state would not fit :data:`MAX_BANK_STATES`."""
    from sparseforge.models.matrices import MAX_PRODUCTS, product_count

    if not counted:
        count = product_count(a, b)
        if count > MAX_PRODUCTS:
            raise SpgemmError(f"A x B has {count} partial products, which is not allowed: at most {MAX_PRODUCTS}")
    if variant == "v3" and a.shape[0] * spec.spgemm.banks > MAX_BANK_STATES:
        raise SpgemmError(f"spgemm.banks = {spec.spgemm.banks} is not allowed with the {a.shape[0]} rows of A in "
                          f"SMASH v3: {a.shape[0] * spec.spgemm.banks} bank states are more than {MAX_BANK_STATES}; "
                          "lower spgemm.banks")


def simulate_spgemm(a: sp.csr_matrix, b: sp.csr_matrix, *, spec: HardwareSpec, dataflow: str,
                    variant: str | None = None, products: Products | None = None,
                    placement: Placement | None = None) -> SpgemmResult:
    """Simulate canonical-CSR ``a @ b`` with ``dataflow``; ``variant`` picks the SMASH
    version for ``rowwise-hash`` (default ``spec.spgemm.smash``). ``products``/``placement``
    may be passed in to share them between dataflows."""
    if dataflow not in DATAFLOWS:
        raise SpgemmError(f"dataflow = {dataflow!r} is not allowed: choose one of {', '.join(DATAFLOWS)}")
    if dataflow == "rowwise-hash":
        variant = variant or spec.spgemm.smash
        if variant not in SMASH_VERSIONS:
            raise SpgemmError(f"SMASH variant {variant!r} is not allowed: choose one of {', '.join(SMASH_VERSIONS)}")
    else:
        variant = ""
    if a.shape[1] != b.shape[0]:
        raise SpgemmError(f"shape mismatch: {a.shape[0]}x{a.shape[1]} times {b.shape[0]}x{b.shape[1]}")
    _check_request(a, b, spec, variant=variant, counted=products is not None)
    s = spec.spgemm
    g = s.dram_access_bytes
    kb, vb = -(-s.key_width // 8), -(-s.value_width // 8)
    M, K = a.shape
    N = b.shape[1]
    prod = products if products is not None else expand_products(a, b)
    macs = prod.count
    nnz_a_row = np.diff(a.indptr)
    nnz_b_row = np.diff(b.indptr)
    pe_row = pe_of_rows(M, spec)
    # C: distinct (row, col) keys. The software dataflows and SMASH V1-V3 write every key,
    # explicit zeros included; the hash-merge unit (variant "unit", hwgen.hashmerge) drops a
    # key whose sum is zero as it drains, so its C has only the nonzero sums
    if dataflow == "rowwise-hash" and variant == "unit" and prod.count:
        key = prod.row * np.int64(N) + prod.col
        uk, inv = np.unique(key, return_inverse=True)
        sums = np.zeros(uk.size, dtype=prod.val.dtype)
        np.add.at(sums, inv, prod.val)     # in production order, as the unit adds
        c_row = np.bincount(uk[sums != 0] // N, minlength=M)
        placement = placement if placement is not None else place_rows(prod, spec)
    elif placement is not None or dataflow == "rowwise-hash":
        placement = placement if placement is not None else place_rows(prod, spec)
        c_row = np.bincount(prod.row[placement.key_first], minlength=M) if prod.count else np.zeros(M, np.int64)
    else:
        key = prod.row * np.int64(N) + prod.col
        uk = np.unique(key)
        c_row = np.bincount(uk // N, minlength=M) if uk.size else np.zeros(M, np.int64)
    nnz_c = int(c_row.sum())
    bytes_a = _csr_bytes(a.nnz, M, kb, vb, g)
    bytes_c = _csr_bytes(nnz_c, M, kb, vb, g)
    bytes_b = bytes_partial = 0
    sp_acc = sp_bytes = 0
    probes = collisions = atomics = aconf = bconf = spilled = 0
    phases: list[tuple[np.ndarray, int]] = []     # (per-PE cycles, DRAM bytes) per phase
    # B rows fetched per use by the row-wise dataflows: a pointer pair (one unit) + the row
    b_row_fetch = _units(2 * kb, g) + _units(nnz_b_row * (kb + vb), g)
    rowwise_b = int(b_row_fetch[a.indices].sum()) if a.nnz else 0
    cached = s.cache_bytes > 0
    cst: CacheStats | None = None
    L, cc = s.cache_line_bytes, s.cache_cycles
    if cached and dataflow in ("rowwise-dense", "rowwise-hash"):
        memo = _ROWWISE_CACHE.setdefault(prod, {}) if products is not None else {}
        key = (_cache_key(spec), id(a), id(b))
        if key not in memo:
            memo[key] = _rowwise_cache(a, b, spec)
        cst = memo[key]
        rowwise_b = cst.misses * L

    if dataflow == "inner":
        bc = sp.csc_matrix(b)
        nnz_b_col = np.diff(bc.indptr)
        nb_cols = int((nnz_b_col > 0).sum())
        live = nnz_a_row > 0
        b_csc = _csr_bytes(b.nnz, N, kb, vb, g)
        bytes_b = int(live.sum()) * b_csc
        row_cyc = np.where(live, nnz_a_row * nb_cols + b.nnz, 0)
        if cached:
            cst = _inner_cache(live, pe_row, N + 1, b.nnz, spec)
            bytes_b = cst.misses * L
            row_cyc = row_cyc + cst.per_row * cc
        sp_acc = int((nnz_a_row * nb_cols).sum() + a.nnz)     # A row written once, read per column
        sp_bytes = sp_acc * (kb + vb)
        phases.append((np.bincount(pe_row, weights=row_cyc, minlength=s.pes), bytes_a + bytes_b + bytes_c))
    elif dataflow == "outer":
        ac_ = sp.csc_matrix(a)
        nnz_a_col = np.diff(ac_.indptr)
        per_k = nnz_a_col * nnz_b_row                       # partial products of outer product k
        rec = _units(2 * kb + vb, g)                          # (row, col, value) record, padded
        bytes_b = _csr_bytes(b.nnz, K, kb, vb, g)
        bytes_a_csc = _csr_bytes(a.nnz, K, kb, vb, g)
        bytes_a = bytes_a_csc
        bytes_partial = int(2 * macs * rec)
        pe_k = pe_of_rows(K, spec)
        if cached:
            cst = _outer_cache(b, spec)
            bytes_b = cst.misses * L
            per_k = per_k + cst.per_row * cc
        phases.append((np.bincount(pe_k, weights=per_k, minlength=s.pes), bytes_a + bytes_b + macs * int(rec)))
        depth = np.ceil(np.log2(np.maximum(nnz_a_row, 1))).astype(np.int64)
        per_row = prod.per_row
        merge = per_row * (1 + depth * (s.scratchpad_cycles + 1))
        sp_acc = int((per_row * (1 + 2 * depth)).sum())
        sp_bytes = sp_acc * (2 * kb + vb)
        phases.append((np.bincount(pe_row, weights=merge, minlength=s.pes), macs * int(rec) + bytes_c))
    elif dataflow == "rowwise-dense":
        bytes_b = rowwise_b
        key = prod.row * np.int64(N) + prod.col
        fits = N * vb + -(-N // 8) <= s.scratchpad_kib * 1024   # values + touched flags
        per_row = prod.per_row
        if fits:
            row_cyc = per_row * (s.scratchpad_cycles + 1) + c_row + np.where(c_row > 0, 2 * c_row + s.scratchpad_cycles, 0)
            sp_acc = int(2 * macs + 3 * nnz_c)
            sp_bytes = sp_acc * vb
        else:  # the accumulator lives in DRAM: a read and a write per product, read + clear per entry
            row_cyc = 2 * per_row + 2 * c_row
            bytes_partial = int((2 * macs + 2 * nnz_c) * g)
            sp_acc = int(nnz_c)                                # the touched list stays on chip
            sp_bytes = sp_acc * kb
        if cst is not None:
            row_cyc = row_cyc + cst.per_row * cc
        phases.append((np.bincount(pe_row, weights=row_cyc, minlength=s.pes),
                       bytes_a + bytes_b + bytes_c + bytes_partial))
    else:  # rowwise-hash
        pl = placement
        bytes_b = rowwise_b
        probes, collisions = int(pl.probes.sum()), pl.collisions
        spilled = int(pl.spilled.sum())
        n_ins = int(pl.inserted.sum())
        # spilled products go to DRAM as (col, value) pairs, are read back and merged into C
        bytes_partial = int(2 * spilled * _units(kb + vb, g))
        token = kb + vb
        if variant == "unit":
            row_cyc = unit_row_cycles(prod, pl)
            if cst is not None:        # the PE's B loads overlap the unit's merge of the row
                row_cyc = np.maximum(row_cyc, cst.per_row * cc)
            sp_acc = probes + (macs - spilled) + 2 * n_ins + n_ins   # slot reads, writes, list, drain
            sp_bytes = sp_acc * token
        else:
            rt = smash_row_timing(prod, pl, spec, version=variant)
            row_cyc = rt.cycles
            atomics, aconf, bconf = int(rt.atomics.sum()), int(rt.atomic_conflicts.sum()), int(rt.bank_conflicts.sum())
            per_key = 3 if variant == "v1" else 2
            sp_acc = int(rt.reads.sum()) + atomics + per_key * n_ins
            sp_bytes = sp_acc * (max(kb, vb) if variant == "v1" else token)
            if cst is not None:        # the PE issues its B loads between its hash operations
                row_cyc = row_cyc + cst.per_row * cc
        # the spilled entries of a row are merged with its drained entries by a second pass
        row_cyc = row_cyc + np.bincount(prod.row, weights=pl.spilled, minlength=M).astype(np.int64)
        phases.append((np.bincount(pe_row, weights=row_cyc, minlength=s.pes),
                       bytes_a + bytes_b + bytes_c + bytes_partial))

    bpc = spec.dram_bytes_per_cycle
    compute = dram = total = 0
    pe_sum = np.zeros(s.pes)
    for pe_cyc, nbytes in phases:
        c = int(np.max(pe_cyc)) if pe_cyc.size else 0
        d = int(np.ceil(nbytes / bpc))
        compute += c
        dram += d
        total += max(c, d) + spec.dram_latency_cycles
        pe_sum += pe_cyc
    dram_total = bytes_a + bytes_b + bytes_c + bytes_partial
    cache_bytes = (cst.accesses + cst.misses) * L if cst is not None else 0   # line reads + fills
    energy = ((sp_bytes + cache_bytes) * spec.e_sram_pj_per_byte + dram_total * spec.e_dram_pj_per_byte
              + macs * spec.e_mac_pj)
    return SpgemmResult(
        dataflow=dataflow, variant=variant, shape=(M, K, N), nnz_a=int(a.nnz), nnz_b=int(b.nnz), nnz_c=nnz_c,
        macs=macs, cycles=int(total), compute_cycles=int(compute), dram_cycles=int(dram),
        pe_cycles_mean=float(pe_sum.mean()), scratchpad_accesses=int(sp_acc), hash_probes=probes,
        collisions=collisions, atomics=atomics, atomic_conflicts=aconf, bank_conflicts=bconf,
        spilled_products=spilled, dram_bytes_a=int(bytes_a), dram_bytes_b=int(bytes_b), dram_bytes_c=int(bytes_c),
        dram_bytes_partial=int(bytes_partial), energy_pj=float(energy), time_us=float(total * spec.cycle_ns / 1000.0),
        cache_accesses=cst.accesses if cst is not None else 0, cache_hits=cst.hits if cst is not None else 0,
        cache_misses=cst.misses if cst is not None else 0,
    )


def compare_dataflows(a: sp.csr_matrix, b: sp.csr_matrix, *, spec: HardwareSpec,
                      variants: tuple[tuple[str, str], ...] = ALL_VARIANTS) -> list[SpgemmResult]:
    """Simulate every (dataflow, variant) on the same operands, sharing the product list
    and the hash placement."""
    prod = expand_products(a, b)
    pl = place_rows(prod, spec) if any(d == "rowwise-hash" for d, _ in variants) else None
    return [simulate_spgemm(a, b, spec=spec, dataflow=d, variant=v or None, products=prod, placement=pl)
            for d, v in variants]
