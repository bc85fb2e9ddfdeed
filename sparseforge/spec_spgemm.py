"""``[spgemm]``: the SpGEMM unit with scratchpad hashing (SMASH-style, see docs).

Values the SMASH thesis does not publish (hash function, table size, probing, banks,
latencies) are documented defaults, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .specbase import Section

__all__ = ["SpgemmSpec"]


@dataclass(frozen=True, kw_only=True)
class SpgemmSpec(Section):
    prefix: ClassVar[str] = "spgemm"

    pes: int = 16                       # processing elements (threads), one hash table each
    table_entries: int = 1024           # hash-table entries per PE (power of two)
    banks: int = 4                      # banks (fragments) per table, SMASH V3
    hash_multiplier: int = 2654435761   # multiplicative hash (j * P) mod 2^k; Knuth's 2^32/phi
    probe: str = "linear"               # collision policy
    key_width: int = 32                 # bits of a column index
    value_width: int = 32               # bits of a value
    scratchpad_cycles: int = 2          # scratchpad access latency
    atomic_cycles: int = 2              # cycles a bank is busy for one atomic read-modify-write
    dram_access_bytes: int = 8          # DRAM access granularity (PIUMA: 8 bytes)
    overflow: str = "spill"             # a row with more distinct columns than the table

    def validate(self) -> None:
        self.positive("pes", "scratchpad_cycles", "atomic_cycles", "dram_access_bytes")
        self.power_of_two("table_entries", "banks")
        if self.banks > self.table_entries:
            self.fail("banks", f"must be at most table_entries = {self.table_entries}")
        if self.hash_multiplier < 1 or self.hash_multiplier % 2 == 0:
            self.fail("hash_multiplier", "must be a positive odd integer")
        self.one_of("probe", ("linear",))
        for name in ("key_width", "value_width"):
            if not 8 <= getattr(self, name) <= 64:
                self.fail(name, "must be 8..64 bits")
        self.one_of("overflow", ("spill", "error"))
