"""The N:M sparse processing element.

A PE sits at one (row, column) of a weight-stationary systolic array. It holds, for one
output column and one group of ``m`` consecutive reduction indices, ``n`` weights and their
in-group indices. Each of its ``n`` multipliers picks its activation out of the group's
``m`` activations by index (the index mux), so a 2:4 PE does the work of a dense 4-wide PE
with half the multipliers.

Pipeline (``spec.pe_latency`` = 4 stages from the activation register to the partial-sum
register), so the index mux, the multiply and the adds each get a cycle of their own::

    x_reg --mux--> sel_reg --mul--> prod_reg --sum--> sum_reg --(+ psum_in)--> psum_out

Weights are double-buffered: ``w_we`` writes the shadow registers; the active registers
take the shadow's value when the first activation vector of a new tile enters the PE
(``first_in``), so the next tile's weights load while the current tile streams.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sparseforge.spec import HardwareSpec

__all__ = ["SparsePE", "build_pe"]


class SparsePE(wiring.Component):
    """One N:M sparse PE. Ports (all unsigned in Verilog; values are two's complement):

    - ``x_in`` (``m * act_width``): the group's activations from the left neighbour;
      ``first_in``: the vector is the first of a new tile (swap weights).
    - ``x_out``/``first_out``: the same, one cycle later, to the right neighbour.
    - ``psum_in``/``psum_out`` (``acc_width``): partial sums from above / to below.
    - ``w_we``, ``w_data`` (``n * weight_width``), ``w_idx`` (``n * idx_width``): shadow
      weight write. A dense spec (n == m) has no index mux and ignores ``w_idx``.

    ``first_out=False`` builds a PE without ``first_out`` and its register, for the last
    column of an array, which has no right neighbour to tell.
    """

    def __init__(self, *, spec: HardwareSpec, first_out: bool = True):
        if not isinstance(spec, HardwareSpec):
            raise TypeError(f"spec must be a HardwareSpec, not {spec!r}")
        self._spec = spec
        self._first_out = bool(first_out)
        s = spec
        ports = {
            "x_in": In(s.m * s.act_width),
            "first_in": In(1),
            "x_out": Out(s.m * s.act_width),
            "first_out": Out(1),
            "psum_in": In(s.acc_width),
            "psum_out": Out(s.acc_width),
            "w_we": In(1),
            "w_data": In(s.n * s.weight_width),
            "w_idx": In(s.n * s.idx_width),
        }
        if not first_out:
            del ports["first_out"]
        super().__init__(ports)

    @property
    def spec(self) -> HardwareSpec:
        return self._spec

    def elaborate(self, platform):
        s = self._spec
        m = Module()
        aw, ww, iw, acc = s.act_width, s.weight_width, s.idx_width, s.acc_width

        # activation register, forwarded to the right neighbour
        x_reg = Signal(s.m * aw)
        m.d.sync += x_reg.eq(self.x_in)
        m.d.comb += self.x_out.eq(x_reg)
        if self._first_out:
            first_reg = Signal()
            m.d.sync += first_reg.eq(self.first_in)
            m.d.comb += self.first_out.eq(first_reg)

        # double-buffered weights
        shadow_w = Signal(s.n * ww)
        shadow_i = Signal(s.n * iw)
        act_w = Signal(s.n * ww)
        act_i = Signal(s.n * iw)
        with m.If(self.w_we):
            m.d.sync += [shadow_w.eq(self.w_data), shadow_i.eq(self.w_idx)]
        with m.If(self.first_in):
            m.d.sync += [act_w.eq(shadow_w), act_i.eq(shadow_i)]

        sel = [Signal(signed(aw), name=f"sel{i}") for i in range(s.n)]
        wd = [Signal(signed(ww), name=f"wd{i}") for i in range(s.n)]
        prod = [Signal(signed(aw + ww), name=f"prod{i}") for i in range(s.n)]
        for i in range(s.n):
            w_i = act_w.word_select(i, ww).as_signed()
            if s.dense:
                a_i = x_reg.word_select(i, aw).as_signed()  # dense PE: multiplier i takes lane i
            else:
                # a shift by a variable word offset: Verilog `>>`, a continuous assignment
                # (an Array/case mux becomes an `always @*` block that Icarus does not run
                # until an input changes, so a PE whose inputs sit at 0 from reset would
                # show X)
                a_i = x_reg.word_select(act_i.word_select(i, iw), aw).as_signed()
            # stage 1: index mux
            m.d.sync += [sel[i].eq(a_i), wd[i].eq(w_i)]
            # stage 2: multiply
            m.d.sync += prod[i].eq(sel[i] * wd[i])
        # stage 3: sum of the n products
        psum = Signal(signed(acc))
        total = Signal(signed(acc))
        m.d.sync += total.eq(sum(prod[1:], prod[0]))
        # stage 4: add the partial sum from above
        m.d.sync += psum.eq(total + self.psum_in.as_signed())
        m.d.comb += self.psum_out.eq(psum)
        return m


def build_pe(spec: HardwareSpec) -> SparsePE:
    return SparsePE(spec=spec)
