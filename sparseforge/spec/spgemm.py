"""``[spgemm]``: the SpGEMM machine with scratchpad hashing (SMASH-style, see docs/spgemm.md).

A PIUMA-like machine: ``pes`` single-issue cores, each with a scratchpad holding one hash
table of ``table_entries`` entries (split into ``banks`` fragments in SMASH V3), shared
DRAM with the top-level ``dram_bandwidth_gbps``/``dram_latency_ns`` and accessed in
``dram_access_bytes`` units. Values the SMASH thesis does not publish (hash function,
table size, probing, banks, latencies, window) are documented defaults, not measurements.

Each PE may also have a private set-associative LRU cache of B (``cache_bytes`` of
``cache_line_bytes`` lines, ``cache_ways`` ways, ``cache_cycles`` per access; see
:mod:`sim.units.cache` and docs/spgemm.md). ``cache_bytes = 0`` is no cache: B's rows are
streamed from DRAM at every use, which is what the FPGA presets build (the RTL hash-merge
unit of ``hwgen.hashmerge`` is fed by a stream and has no cache, and the spec describes
only what the RTL builds). ``smash-piuma`` sets one (PIUMA's cores have data caches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Bound, Section, Text

__all__ = ["SpgemmSpec", "SMASH_VERSIONS"]

#: v1: key and value words, CAS + fetch-add; v2: tokenised key+value word, one atomic;
#: v3: v2 with the table fragmented into ``banks`` banks; unit: the RTL hash-merge unit
SMASH_VERSIONS = ("v1", "v2", "v3", "unit")

#: most cache lines over all PEs the cache model keeps state for (two int64 each: 1 GiB)
MAX_CACHE_LINES = 1 << 26


@dataclass(frozen=True, kw_only=True)
class SpgemmSpec(Section):
    prefix: ClassVar[str] = "spgemm"

    pes: int = 16                       # processing elements (cores), one hash table each
    window: int = 8                     # rows of A per window; window w runs on PE w mod pes
    table_entries: int = 1024           # hash-table entries per PE (power of two, >= 2)
    banks: int = 4                      # banks (fragments) per table, SMASH V3
    hash_multiplier: int = 2654435761   # multiplicative hash: ((j * P) mod 2^key_width) >> shift
    hash_bits: str = "high"             # "high": top log2(T) bits of j*P (Fibonacci); "low": (j*P) mod T
    probe: str = "linear"               # collision policy
    smash: str = "v3"                   # the rowwise-hash variant: v1, v2, v3 or unit
    key_width: int = 32                 # bits of a column index
    value_width: int = 32               # bits of a value
    scratchpad_kib: int = 64            # scratchpad per PE (holds the table or a dense accumulator)
    scratchpad_cycles: int = 2          # scratchpad read latency (a dependent read waits this long)
    atomic_cycles: int = 4              # cycles a bank is locked by one atomic read-modify-write
    dram_access_bytes: int = 8          # DRAM access granularity (PIUMA: 8 bytes)
    overflow: str = "spill"             # a row with more distinct columns than the table holds
    cache_bytes: int = 0                # B cache per PE; 0: no cache (B streamed from DRAM at every use)
    cache_ways: int = 4                 # associativity (lines per set)
    cache_line_bytes: int = 64          # line size; a miss moves one line from DRAM
    cache_cycles: int = 2               # cycles a PE waits for one cache access (hit latency)
    cache_replacement: str = "lru"      # replacement policy within a set

    @property
    def table_bits(self) -> int:
        """log2(table_entries): bits of a slot index."""
        return self.table_entries.bit_length() - 1

    @property
    def capacity(self) -> int:
        """Distinct keys a table holds: one entry stays empty so every linear probe
        sequence ends at its key or at an empty entry."""
        return self.table_entries - 1

    BOUNDS = {
        "pes": Bound(1, 1 << 16, "PEs", why="the simulator keeps per-PE arrays; 65536 cores is a large PIUMA"),
        "window": Bound(1, 1 << 20, "rows", why="a window of up to 1M rows of A"),
        "table_entries": Bound(2, 1 << 24, "entries", note="one entry always stays empty", power_of_two=True,
                               why="16M entries: 128 MiB of 8-byte tokens, more than a scratchpad holds"),
        "banks": Bound(1, 64, power_of_two=True,
                       why="the V3 simulation keeps a (rows x banks) state; scratchpads have a few banks"),
        "hash_multiplier": Bound(1, (1 << 64) - 1, note="odd, below 2^key_width",
                                 why="a multiplicative hash modulo 2^key_width"),
        "hash_bits": Text(choices=("high", "low"), why="the modelled hash functions"),
        "probe": Text(choices=("linear",), why="the modelled collision policy"),
        "smash": Text(choices=SMASH_VERSIONS, why="the modelled SMASH versions"),
        "key_width": Bound(8, 64, "bits", why="one to eight bytes"),
        "value_width": Bound(8, 64, "bits", why="one to eight bytes"),
        "scratchpad_kib": Bound(1, 1 << 16, "KiB", why="64 MiB per PE: beyond any core's scratchpad"),
        "scratchpad_cycles": Bound(1, 1024, "cycles", why="a scratchpad answers in far fewer cycles"),
        "atomic_cycles": Bound(1, 1024, "cycles", why="an atomic holds its bank for far fewer cycles"),
        "dram_access_bytes": Bound(1, 4096, "bytes", why="a DRAM page"),
        "overflow": Text(choices=("spill", "error"), why="the modelled overflow policies"),
        "cache_bytes": Bound(0, 1 << 30, "bytes", note="0: no cache; else cache_ways x cache_line_bytes x "
                                                       "a power of two of sets",
                             why="1 GiB per PE: beyond any core's cache"),
        "cache_ways": Bound(1, 256, why="the cache model keeps a (PEs x sets x ways) state; caches have a few ways"),
        "cache_line_bytes": Bound(1, 4096, "bytes", note="a multiple of dram_access_bytes", power_of_two=True,
                                  why="a DRAM page"),
        "cache_cycles": Bound(1, 1024, "cycles", why="a cache answers in far fewer cycles"),
        "cache_replacement": Text(choices=("lru",), why="the modelled replacement policy"),
    }

    @property
    def entry_bytes(self) -> int:
        """Bytes of one table entry: a key word and a value word (V1), or the token holding
        both (V2, V3, the RTL unit); either way whole bytes of each."""
        return -(-self.key_width // 8) + -(-self.value_width // 8)

    @property
    def cache_sets(self) -> int:
        """Sets per PE cache (0 without a cache)."""
        return self.cache_bytes // (self.cache_ways * self.cache_line_bytes) if self.cache_bytes else 0

    def validate(self) -> None:
        if self.cache_bytes:
            way_bytes = self.cache_ways * self.cache_line_bytes
            sets = self.cache_bytes // way_bytes
            if self.cache_bytes % way_bytes or sets & (sets - 1):
                self.fail("cache_bytes", f"must be 0 (no cache) or cache_ways x cache_line_bytes = {self.cache_ways} x "
                                         f"{self.cache_line_bytes} = {way_bytes} bytes times a power of two (the "
                                         "number of sets)")
            if self.cache_line_bytes % self.dram_access_bytes:
                self.fail("cache_line_bytes", f"must be a multiple of spgemm.dram_access_bytes = "
                                              f"{self.dram_access_bytes} (a miss moves whole DRAM accesses)")
            lines = self.pes * (self.cache_bytes // self.cache_line_bytes)
            if lines > MAX_CACHE_LINES:
                self.fail("cache_bytes", f"must hold at most {MAX_CACHE_LINES} lines over all {self.pes} PEs: "
                                         f"{self.pes} x {self.cache_bytes // self.cache_line_bytes} = {lines} lines; "
                                         "lower cache_bytes or raise cache_line_bytes")
        if self.banks > self.table_entries:
            self.fail("banks", f"must be at most table_entries = {self.table_entries}")
        if self.hash_multiplier % 2 == 0:
            self.fail("hash_multiplier", "must be a positive odd integer")
        if self.table_bits > self.key_width:
            self.fail("table_entries", f"must be at most 2^key_width = 2^{self.key_width}")
        if self.hash_multiplier >= 1 << self.key_width:
            self.fail("hash_multiplier", f"must be below 2^key_width = 2^{self.key_width}")
        table = self.table_entries * self.entry_bytes
        if table > self.scratchpad_kib * 1024:
            self.fail("table_entries", f"a table of {self.table_entries} entries of {self.entry_bytes} bytes needs "
                                       f"{table} bytes, more than spgemm.scratchpad_kib = {self.scratchpad_kib} KiB "
                                       f"({self.scratchpad_kib * 1024} bytes) that holds it: lower table_entries "
                                       "or raise scratchpad_kib")
