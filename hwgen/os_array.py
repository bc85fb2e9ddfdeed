"""An output-stationary (OS) ``rows x cols`` systolic array of N:M sparse PEs.

PE ``(r, c)`` owns one output: token ``t0 + r`` of the current token tile and output feature
``n0 + c`` of the current n-tile, held in an accumulator register of ``acc_width`` bits. Each
cycle one reduction *group* (``g`` consecutive reduction indices) moves through the array:

- token ``r``'s ``m`` activations of the group enter row ``r`` at the left, ``r`` cycles
  late (input skew), and move one PE to the right per cycle;
- output ``c``'s ``n`` kept weights of the group and their in-group indices enter column
  ``c`` at the top, ``c`` cycles late, and move one PE down per cycle;

so both reach PE ``(r, c)`` in the same cycle, ``r + c`` cycles after the array port.

PE pipeline (from the activation/weight registers)::

    x_reg, w_reg --mux--> sel_reg --mul--> prod_reg --sum--> total_reg --(+ acc)--> acc / res

The ``first``/``last`` flags of a tile travel with the activations. On ``first`` the
accumulator takes ``total`` (no clear cycle); on ``last`` the finished sum ``acc + total``
goes into the PE's *result register* (so the accumulator is free for the next tile at once).

Result registers form a chain along each row that shifts **to the left** every cycle
(``res <= last ? sum : res_of_right_neighbour``). The capture wavefront moves right one PE
per cycle and the chain left one PE per cycle, so row ``r``'s results leave its left edge
two cycles apart: ``Y[r, c]`` sits in PE ``(r, 0)``'s result register exactly
``1 + r + 2c`` cycles after PE ``(r, 0)`` captured ``Y[r, 0]``'s group-sum, i.e. the output
of row ``r`` is ``Y[r, 0], -, Y[r, 1], -, ..., Y[r, cols-1]``. A later tile's capture must
not overwrite a result still in flight, which holds when consecutive tiles start at least
``2 * cols - 1`` cycles apart (the engine's sequencer enforces that; see ``docs/os_timing.md``).

Row ``r``'s output is deskewed by ``rows - 1 - r`` registers so that one *output column*
(``rows`` accumulators, one per token) leaves the array every other cycle.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

# OS_PE_LATENCY: cycles from a PE's activation/weight registers to its accumulator/result
# registers (index mux, multiply, product sum, accumulate), one constant for this RTL and its
# cycle model
from sparseforge.sim.units.engine import OS_PE_LATENCY
from sparseforge.spec import HardwareSpec

__all__ = ["OSPE", "OSArray", "OS_PE_LATENCY"]


class OSPE(wiring.Component):
    """One output-stationary N:M PE.

    - ``x_in``/``x_out`` (``m * act_width``), ``first_in/out``, ``last_in/out``: the
      group's activations and tile flags, from the left / to the right (one register);
    - ``w_in``/``w_out`` (``n * weight_width``), ``i_in``/``i_out`` (``n * idx_width``):
      the group's weights and in-group indices, from above / to below (one register);
    - ``res_in`` (from the right neighbour) / ``res_out`` (to the left): the result chain.
    """

    def __init__(self, *, spec: HardwareSpec):
        s = spec
        self._spec = spec
        super().__init__({
            "x_in": In(s.m * s.act_width), "first_in": In(1), "last_in": In(1),
            "x_out": Out(s.m * s.act_width), "first_out": Out(1), "last_out": Out(1),
            "w_in": In(s.n * s.weight_width), "i_in": In(s.n * s.idx_width),
            "w_out": Out(s.n * s.weight_width), "i_out": Out(s.n * s.idx_width),
            "res_in": In(s.acc_width), "res_out": Out(s.acc_width),
        })

    def elaborate(self, platform):
        s = self._spec
        m = Module()
        aw, ww, iw, acc = s.act_width, s.weight_width, s.idx_width, s.acc_width

        x_reg = Signal(s.m * aw)
        first_reg, last_reg = Signal(), Signal()
        w_reg = Signal(s.n * ww)
        m.d.sync += [x_reg.eq(self.x_in), first_reg.eq(self.first_in), last_reg.eq(self.last_in),
                     w_reg.eq(self.w_in)]
        m.d.comb += [self.x_out.eq(x_reg), self.first_out.eq(first_reg), self.last_out.eq(last_reg),
                     self.w_out.eq(w_reg)]
        if not s.dense:     # a dense PE takes lane i for multiplier i: no indices to hold or pass on
            i_reg = Signal(s.n * iw)
            m.d.sync += i_reg.eq(self.i_in)
            m.d.comb += self.i_out.eq(i_reg)

        sel = [Signal(signed(aw), name=f"sel{i}") for i in range(s.n)]
        wd = [Signal(signed(ww), name=f"wd{i}") for i in range(s.n)]
        prod = [Signal(signed(aw + ww), name=f"prod{i}") for i in range(s.n)]
        for i in range(s.n):
            w_i = w_reg.word_select(i, ww).as_signed()
            if s.dense:
                a_i = x_reg.word_select(i, aw).as_signed()
            else:
                # variable word offset: a continuous `>>` in Verilog (an Array mux would be an
                # `always @*` block that Icarus leaves at X until an input changes)
                a_i = x_reg.word_select(i_reg.word_select(i, iw), aw).as_signed()
            m.d.sync += [sel[i].eq(a_i), wd[i].eq(w_i)]      # stage 1: index mux
            m.d.sync += prod[i].eq(sel[i] * wd[i])          # stage 2: multiply
        total = Signal(signed(acc))
        m.d.sync += total.eq(sum(prod[1:], prod[0]))        # stage 3: product sum
        # flags follow the data through stages 1..3
        f, l = first_reg, last_reg
        for k in range(3):
            f2, l2 = Signal(name=f"first_d{k + 1}"), Signal(name=f"last_d{k + 1}")
            m.d.sync += [f2.eq(f), l2.eq(l)]
            f, l = f2, l2
        # stage 4: accumulate; capture the finished sum into the result chain
        accum = Signal(signed(acc))
        res = Signal(acc)
        s_new = Signal(signed(acc))
        m.d.comb += s_new.eq(Mux(f, 0, accum) + total)
        m.d.sync += accum.eq(s_new)
        m.d.sync += res.eq(Mux(l, s_new, self.res_in))
        m.d.comb += self.res_out.eq(res)
        return m


class OSArray(wiring.Component):
    """Ports:

    - ``x_first``, ``x_last``, ``x_data`` (``rows * m * act_width``; row r's group at bits
      ``[r*m*aw, (r+1)*m*aw)``): one group step per cycle (flags must be 0 on idle cycles);
    - ``w_data`` (``cols * n * weight_width``), ``w_idx`` (``cols * n * idx_width``): the
      same group step's weights, column c's at word c;
    - ``y_data`` (``rows * acc_width``): the deskewed left-edge result chain: output column
      ``c`` of a tile (row r's accumulator at word r) is here ``OS_PE_LATENCY + rows + 2c``
      cycles after the tile's last group step was at the ports (``docs/os_timing.md``).
    """

    def __init__(self, *, spec: HardwareSpec):
        if not isinstance(spec, HardwareSpec):
            raise TypeError(f"spec must be a HardwareSpec, not {spec!r}")
        s = spec
        self._spec = spec
        super().__init__({
            "x_first": In(1), "x_last": In(1),
            "x_data": In(s.rows * s.m * s.act_width),
            "w_data": In(s.cols * s.n * s.weight_width),
            "w_idx": In(s.cols * s.n * s.idx_width),
            "y_data": Out(s.rows * s.acc_width),
        })

    def elaborate(self, platform):
        s = self._spec
        m = Module()
        R, C = s.rows, s.cols
        gw = s.m * s.act_width
        pes = [[OSPE(spec=s) for _ in range(C)] for _ in range(R)]
        for r in range(R):
            for c in range(C):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]

        # row inputs: row r skewed by r registers
        for r in range(R):
            data, first, last = self.x_data.word_select(r, gw), self.x_first, self.x_last
            for k in range(r):
                d2, f2, l2 = Signal(gw, name=f"skew_r{r}_{k}"), Signal(name=f"skewf_r{r}_{k}"), Signal(name=f"skewl_r{r}_{k}")
                m.d.sync += [d2.eq(data), f2.eq(first), l2.eq(last)]
                data, first, last = d2, f2, l2
            for c in range(C):
                pe = pes[r][c]
                m.d.comb += [pe.x_in.eq(data), pe.first_in.eq(first), pe.last_in.eq(last)]
                data, first, last = pe.x_out, pe.first_out, pe.last_out
        # column inputs: column c skewed by c registers
        for c in range(C):
            wdat = self.w_data.word_select(c, s.n * s.weight_width)
            widx = self.w_idx.word_select(c, s.n * s.idx_width)
            for k in range(c):
                w2 = Signal(s.n * s.weight_width, name=f"skeww_c{c}_{k}")
                m.d.sync += w2.eq(wdat)
                wdat = w2
                if not s.dense:
                    i2 = Signal(s.n * s.idx_width, name=f"skewi_c{c}_{k}")
                    m.d.sync += i2.eq(widx)
                    widx = i2
            for r in range(R):
                pe = pes[r][c]
                m.d.comb += pe.w_in.eq(wdat)
                if not s.dense:
                    m.d.comb += pe.i_in.eq(widx)
                wdat, widx = pe.w_out, pe.i_out
        # result chain: right to left along each row
        for r in range(R):
            for c in range(C):
                m.d.comb += pes[r][c].res_in.eq(pes[r][c + 1].res_out if c + 1 < C else 0)
        # output deskew: row r waits rows-1-r registers
        for r in range(R):
            v = pes[r][0].res_out
            for k in range(R - 1 - r):
                v2 = Signal(s.acc_width, name=f"deskew_r{r}_{k}")
                m.d.sync += v2.eq(v)
                v = v2
            m.d.comb += self.y_data.word_select(r, s.acc_width).eq(v)
        return m
