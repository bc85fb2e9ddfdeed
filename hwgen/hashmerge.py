"""A hash-merge unit: merges one output row's partial products in an on-chip hash table.

The unit takes a stream of ``(column, value)`` partial products of one row of ``C = A @ B``
(``in_last`` on the row's last product), inserts or accumulates each in a table of
``table_entries`` slots keyed by column (multiplicative hash, linear probing), and then
drains the row's entries as a stream, clearing the table for the next row.

Mechanism (cycle by cycle; :func:`sim.units.hashmerge.unit_row_cycles` counts exactly this):

- **accept**: a product is accepted (``in_valid & in_ready``) and its home slot
  ``hash(col)`` is presented to the table's read port (synchronous, transparent to the
  write port, so a slot written in the same cycle is read back new).
- **probe**: one slot is compared per cycle. Its key matches -> the value is added
  (``value_width``-bit wrap-around) and written back; it is empty and the table holds fewer
  than ``table_entries - 1`` keys -> the product is written there and the slot appended to
  the *touched list*; it is empty but the table is full -> the product leaves on the
  ``spill`` stream unchanged (overflow: a defined spill, never a silent drop); another key
  -> the next slot (mod ``table_entries``) is read and the unit stays in probe, holding
  ``in_ready`` low. In the cycle a product resolves, the next one is accepted, so a row
  costs one cycle per slot examined plus one.
- **drain** after the last product: a two-stage pipeline reads the touched list in
  insertion order, then each listed slot; every entry with a non-zero value leaves on the
  ``out`` stream (zero sums are dropped, as SciPy drops them) and every entry is cleared.
  ``done`` is high in the cycle the last entry leaves the pipeline: ``inserted + 2`` cycles.

One slot stays empty (a table holds ``table_entries - 1`` keys), so every probe sequence
ends at its key or at an empty slot. Back-pressure on ``out`` or ``spill`` stalls the unit.
Reset clears the control state; the table is clean after every completed row (and at
power-up).
"""

from __future__ import annotations

from typing import Any

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from sparseforge.spec import HardwareSpec

__all__ = ["HashMerge", "build_hashmerge"]


def build_hashmerge(spec: HardwareSpec, **params: Any) -> "HashMerge":
    """The unit for ``spec.spgemm`` (table size, widths, hash); ``params`` override those
    keyword arguments of :class:`HashMerge`."""
    s = spec.spgemm
    kw = dict(table_entries=s.table_entries, key_width=s.key_width, value_width=s.value_width,
              hash_multiplier=s.hash_multiplier, hash_bits=s.hash_bits)
    kw.update(params)
    return HashMerge(**kw)


class HashMerge(wiring.Component):
    """Ports (all valid/ready streams transfer when both are high at a rising edge):

    - ``in_valid``/``in_ready``/``in_col``/``in_val``/``in_last``: partial products of a row;
    - ``out_valid``/``out_ready``/``out_col``/``out_val``: the row's non-zero entries;
    - ``spill_valid``/``spill_ready``/``spill_col``/``spill_val``: products that found the
      table full (to be merged by whoever reads the row);
    - ``done``: high for one cycle when a row's drain has finished.
    """

    def __init__(self, *, table_entries: int, key_width: int, value_width: int, hash_multiplier: int,
                 hash_bits: str = "high"):
        if not isinstance(table_entries, int) or table_entries < 2 or table_entries & (table_entries - 1):
            raise ValueError(f"table_entries must be a power of two >= 2, not {table_entries!r}")
        for name, v in (("key_width", key_width), ("value_width", value_width)):
            if not isinstance(v, int) or not 1 <= v <= 64:
                raise ValueError(f"{name} must be an integer in 1..64, not {v!r}")
        bits = table_entries.bit_length() - 1
        if bits > key_width:
            raise ValueError(f"table_entries {table_entries} needs {bits} hash bits, more than key_width {key_width}")
        if not isinstance(hash_multiplier, int) or hash_multiplier < 1 or hash_multiplier % 2 == 0 \
                or hash_multiplier >= 1 << key_width:
            raise ValueError(f"hash_multiplier must be an odd integer in 1..2^key_width-1, not {hash_multiplier!r}")
        if hash_bits not in ("high", "low"):
            raise ValueError(f"hash_bits must be 'high' or 'low', not {hash_bits!r}")
        self._table_entries = table_entries
        self._key_width = key_width
        self._value_width = value_width
        self._hash_multiplier = hash_multiplier
        self._hash_bits = hash_bits
        super().__init__({
            "in_valid": In(1), "in_ready": Out(1), "in_col": In(key_width), "in_val": In(value_width),
            "in_last": In(1),
            "out_valid": Out(1), "out_ready": In(1), "out_col": Out(key_width), "out_val": Out(value_width),
            "spill_valid": Out(1), "spill_ready": In(1), "spill_col": Out(key_width), "spill_val": Out(value_width),
            "done": Out(1),
        })

    # read-only parameters
    @property
    def table_entries(self) -> int:
        return self._table_entries

    @property
    def key_width(self) -> int:
        return self._key_width

    @property
    def value_width(self) -> int:
        return self._value_width

    @property
    def params(self) -> dict[str, Any]:
        return {"table_entries": self._table_entries, "key_width": self._key_width,
                "value_width": self._value_width, "hash_multiplier": self._hash_multiplier,
                "hash_bits": self._hash_bits, "capacity": self._table_entries - 1}

    def _hash(self, col):
        w, k = self._key_width, self._table_entries.bit_length() - 1
        prod = (col * Const(self._hash_multiplier, w))[:w]
        return prod[w - k:w] if self._hash_bits == "high" else prod[:k]

    def elaborate(self, platform) -> Module:
        m = Module()
        T, kw, vw = self._table_entries, self._key_width, self._value_width
        k = T.bit_length() - 1
        cap = T - 1

        # table entry: value (low bits), key, valid (top bit)
        m.submodules.table = table = memory.Memory(shape=unsigned(vw + kw + 1), depth=T, init=[])
        wp = table.write_port()
        rp = table.read_port(transparent_for=(wp,))
        m.submodules.touched = touched = memory.Memory(shape=unsigned(k), depth=cap, init=[])
        lwp = touched.write_port()
        lrp = touched.read_port()

        e_val, e_key, e_valid = rp.data[:vw], rp.data[vw:vw + kw], rp.data[vw + kw]

        cur_col = Signal(kw)
        cur_val = Signal(vw)
        cur_last = Signal()
        addr = Signal(k)
        count = Signal(range(T))
        d = Signal(range(T))               # next touched-list index to read in the drain
        s1_v = Signal()                    # touched-list data valid
        s2_v = Signal()                    # table data of a drained slot valid
        s2_slot = Signal(k)

        # Every combinational output is one expression (Mux, &, |) rather than an assignment
        # inside If/FSM blocks: those become `always @*` processes that Icarus does not
        # evaluate until an input changes, so outputs would read X after reset.
        IDLE, PROBE, DRAIN = 0, 1, 2
        state = Signal(2, init=IDLE)
        is_idle, is_probe, is_drain = state == IDLE, state == PROBE, state == DRAIN

        home = self._hash(self.in_col)
        hit = e_valid & (e_key == cur_col)
        empty = ~e_valid
        full = count == cap
        insert = is_probe & empty & ~full
        spill = is_probe & empty & full
        resolved = is_probe & (hit | (empty & ~full) | (empty & full & self.spill_ready))
        step = is_probe & e_valid & ~hit                    # the slot holds another key
        accept = self.in_valid & self.in_ready
        emit = is_drain & s2_v & (e_val != 0)
        stall = emit & ~self.out_ready
        issue = d != count
        advance = is_drain & ~stall
        done = advance & s2_v & ~s1_v & ~issue
        nxt = (addr + 1)[:k]

        m.d.comb += [
            self.in_ready.eq(is_idle | (resolved & ~cur_last)),
            self.spill_valid.eq(spill), self.spill_col.eq(cur_col), self.spill_val.eq(cur_val),
            self.out_valid.eq(emit), self.out_col.eq(e_key), self.out_val.eq(e_val),
            self.done.eq(done),
            rp.addr.eq(Mux(is_drain, lrp.data, Mux(step, nxt, Mux(spill & ~resolved, addr, home)))),
            rp.en.eq(~stall),
            wp.en.eq((is_probe & (hit | insert)) | (advance & s2_v)),
            wp.addr.eq(Mux(is_drain, s2_slot, addr)),
            wp.data.eq(Mux(is_drain, 0, Cat(Mux(hit, (e_val + cur_val)[:vw], cur_val), cur_col, Const(1, 1)))),
            lwp.en.eq(insert), lwp.addr.eq(count), lwp.data.eq(addr),
            lrp.addr.eq(d), lrp.en.eq(~stall),
        ]
        with m.If(accept):
            m.d.sync += [cur_col.eq(self.in_col), cur_val.eq(self.in_val), cur_last.eq(self.in_last), addr.eq(home)]
        with m.If(is_idle & accept):
            m.d.sync += state.eq(PROBE)
        with m.If(step):
            m.d.sync += addr.eq(nxt)
        with m.If(insert):
            m.d.sync += count.eq(count + 1)
        with m.If(resolved & cur_last):
            m.d.sync += [state.eq(DRAIN), d.eq(0)]
        with m.If(resolved & ~cur_last & ~self.in_valid):
            m.d.sync += state.eq(IDLE)
        with m.If(advance):
            m.d.sync += [s1_v.eq(issue), s2_v.eq(s1_v), s2_slot.eq(lrp.data)]
            with m.If(issue):
                m.d.sync += d.eq(d + 1)
        with m.If(done):
            m.d.sync += [count.eq(0), s2_v.eq(0), state.eq(IDLE)]
        return m
