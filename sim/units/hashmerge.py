"""Cycle model of the hash-merge unit of ``hwgen.hashmerge.HashMerge`` (SMASH ``unit``).

The unit merges one output row's partial products in a hash table, one slot examined per
cycle, then drains the row's entries (see the RTL's docstring and docs/spgemm.md).
``tests/test_spgemm_rtl.py`` checks :func:`unit_row_cycles` and
:func:`unit_row_stalls` row by row against the generated Verilog, exactly.

Both take the row's products and their hash placement as the mapper computes them
(``dataflow.spgemm.Products``: ``row``, ``row_ptr``, ``per_row``, ``shape``;
``dataflow.spgemm.Placement``: ``probes``, ``inserted``), read as plain arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["unit_row_cycles", "unit_row_stalls"]


def unit_row_cycles(prod, pl) -> np.ndarray:
    """Cycles of the unit per row (0 for a row without products), with its input and outputs
    never stalled by the outside: 1 cycle to accept the first product and read its home
    slot, one cycle per slot examined (the next product is accepted in the cycle its
    predecessor resolves), and ``inserted + 2`` cycles to drain the touched-slot list
    through the two-stage read pipeline."""
    per_row_probes = np.bincount(prod.row, weights=pl.probes, minlength=prod.shape[0]).astype(np.int64)
    busy = prod.per_row > 0
    return np.where(busy, 3 + per_row_probes + pl.inserted, 0)


def unit_row_stalls(prod, pl) -> np.ndarray:
    """Cycles per row in which the unit holds ``in_ready`` low while the row still has
    products to send: every extra probe of every product but the row's last."""
    extra = pl.probes - 1
    last = prod.row_ptr[1:][prod.per_row > 0] - 1
    stalls = np.bincount(prod.row, weights=extra, minlength=prod.shape[0]).astype(np.int64)
    stalls[prod.row[last]] -= extra[last]
    return stalls
