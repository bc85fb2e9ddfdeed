"""An output-stationary GEMM engine: the OS array with its memories and a tile sequencer.

The engine computes ``Y = X[T, K] @ W^T`` for a GEMM laid out by :func:`dataflow.layout.os_memory_image`:

- activation memory: word ``tt * G + s`` = group ``s`` of token tile ``tt`` (``rows * m``
  activations);
- weight memory: word ``nt * G + s`` = group ``s`` of n-tile ``nt`` (``cols * n`` weights,
  then their indices);
- output memory: word ``(tt * NT + nt) * cols + c`` = output ``c`` of tile ``(tt, nt)`` for
  its ``rows`` tokens (``rows`` accumulators).

The **sequencer** runs tiles token-tile outer, n-tile inner. Tile ``j`` starts at cycle
``j * P`` (cycle 0 = the first cycle after ``start``) with ``P = max(G, 2 * cols - 1)``: it
issues one activation word and one weight word per cycle for ``G`` cycles, then idles for
the rest of the period. The array's result chain then brings the tile's ``cols`` output
columns out every other cycle, and the **writer** stores each into the output memory (with
``cfg_accumulate``: adds it onto the word already there, read the cycle before). ``done``
rises the cycle after the last write. See ``docs/os_timing.md`` and :mod:`sim.units.engine`.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data
from amaranth.lib.wiring import In

from sparseforge.spec import HardwareSpec

from sparseforge.sim.units.engine import os_word_widths

from .engine import MemoryEngine
from .os_array import OS_PE_LATENCY, OSArray

__all__ = ["OSEngine", "os_engine_depths", "build_os_engine"]


def os_engine_depths(spec: HardwareSpec) -> dict[str, int]:
    """Memory depths (words) that fill the spec's on-chip buffers."""
    w = os_word_widths(spec)
    return {
        "act_depth": max(1, spec.input_buffer_kib * 8192 // w["act"]),
        "wgt_depth": max(1, spec.weight_buffer_kib * 8192 // w["wgt"]),
        "out_depth": max(spec.cols, spec.output_buffer_kib * 8192 // w["out"]),
    }


def build_os_engine(spec: HardwareSpec, **depths: int) -> "OSEngine":
    """The OS engine for ``spec``; memory depths default to :func:`os_engine_depths`."""
    return OSEngine(spec=spec, **{**os_engine_depths(spec), **depths})


class OSEngine(MemoryEngine):
    """Ports:

    - ``start`` (pulse while idle), ``cfg_groups`` (G), ``cfg_ttiles``, ``cfg_ntiles``
      (held stable while busy), ``cfg_accumulate`` (add onto the output memory instead of
      overwriting it: a reduction split over several runs), ``busy``, ``done`` (high from
      the end of a run until the next ``start``);
    - ``act_we``/``act_addr``/``act_wdata``, ``wgt_we``/``wgt_addr``/``wgt_wdata``: host
      writes (while idle); ``out_addr``/``out_rdata``: host read (one cycle latency).
    """

    dataflow = "output-stationary"

    def __init__(self, *, spec: HardwareSpec, act_depth: int, wgt_depth: int, out_depth: int):
        self.check_args(spec, act_depth=act_depth, wgt_depth=wgt_depth, out_depth=out_depth)
        if out_depth < spec.cols:
            raise ValueError(f"out_depth = {out_depth} must hold at least one tile ({spec.cols} words)")
        gmax = max(act_depth, wgt_depth)
        super().__init__(spec=spec, act_depth=act_depth, wgt_depth=wgt_depth, out_depth=out_depth,
                         widths=os_word_widths(spec), config={
                             "cfg_groups": In(range(gmax + 1)),
                             "cfg_ttiles": In(range(act_depth + 1)),
                             "cfg_ntiles": In(range(wgt_depth + 1)),
                         })

    def elaborate(self, platform):
        s = self._spec
        m = Module()
        R, C = s.rows, s.cols
        d = self._depths

        m.submodules.array = arr = OSArray(spec=s)
        mem = self._memories(m)
        running, done = mem.running, mem.done
        act_rd, wgt_rd, acc_rd, out_wr = mem.act_rd, mem.wgt_rd, mem.acc_rd, mem.out_wr

        # ------------------------------------------------------------ sequencer
        gmax = max(d["act"], d["wgt"])
        st_cnt = Signal(range(max(gmax, 2 * C) + 1))
        st_tt = Signal(len(self.cfg_ttiles))
        st_nt = Signal(len(self.cfg_ntiles))
        st_act_base = Signal(range(d["act"] + gmax + 1))
        st_wgt_base = Signal(range(d["wgt"] + gmax + 1))
        st_out_base = Signal(range(d["out"] + C + 1))
        st_all = Signal()
        period_last = Signal(range(max(gmax, 2 * C) + 1))
        issue = Signal()
        last_tile = Signal()
        m.d.comb += [
            period_last.eq(Mux(self.cfg_groups > 2 * C - 1, self.cfg_groups, 2 * C - 1) - 1),
            issue.eq(running & ~st_all & (st_cnt < self.cfg_groups)),
            last_tile.eq((st_tt == self.cfg_ttiles - 1) & (st_nt == self.cfg_ntiles - 1)),
            act_rd.addr.eq(st_act_base + st_cnt), act_rd.en.eq(1),
            wgt_rd.addr.eq(st_wgt_base + st_cnt), wgt_rd.en.eq(1),
        ]
        with m.If(running & ~st_all):
            with m.If(st_cnt == period_last):
                m.d.sync += [st_cnt.eq(0), st_out_base.eq(st_out_base + C)]
                with m.If(st_nt == self.cfg_ntiles - 1):
                    m.d.sync += [st_nt.eq(0), st_wgt_base.eq(0), st_act_base.eq(st_act_base + self.cfg_groups)]
                    with m.If(st_tt == self.cfg_ttiles - 1):
                        m.d.sync += st_all.eq(1)
                    with m.Else():
                        m.d.sync += st_tt.eq(st_tt + 1)
                with m.Else():
                    m.d.sync += [st_nt.eq(st_nt + 1), st_wgt_base.eq(st_wgt_base + self.cfg_groups)]
            with m.Else():
                m.d.sync += st_cnt.eq(st_cnt + 1)

        # the group's flags go with the memory's read data (one cycle later)
        x_first, x_last = Signal(), Signal()
        m.d.sync += [x_first.eq(issue & (st_cnt == 0)), x_last.eq(issue & (st_cnt == self.cfg_groups - 1))]
        n_wbits = C * s.n * s.weight_width
        m.d.comb += [
            arr.x_first.eq(x_first), arr.x_last.eq(x_last),
            arr.x_data.eq(act_rd.data),
            arr.w_data.eq(wgt_rd.data[:n_wbits]),
        ]
        if not s.dense:
            m.d.comb += arr.w_idx.eq(wgt_rd.data[n_wbits:])

        # ------------------------------------------------------------ writer
        # a tile's last issue (cycle a) -> output column 0 at the array port at
        # a + 1 + OS_PE_LATENCY + rows; columns follow every other cycle
        tag_layout = data.StructLayout({"valid": 1, "last": 1, "base": range(d["out"] + C + 1)})
        tag = Signal(tag_layout)
        m.d.comb += [tag.valid.eq(issue & (st_cnt == self.cfg_groups - 1)), tag.last.eq(last_tile),
                     tag.base.eq(st_out_base)]
        D = 1 + OS_PE_LATENCY + R
        taps = [tag]
        for k in range(D):
            nxt = Signal(tag_layout, name=f"otag_d{k + 1}")
            m.d.sync += nxt.eq(taps[-1])
            taps.append(nxt)
        head, pre = taps[D], taps[D - 1]

        wr_active = Signal()
        wr_cyc = Signal(range(2 * C + 1))
        wr_base = Signal(range(d["out"] + C + 1))
        wr_last = Signal()
        with m.If(head.valid):
            if C > 1:
                m.d.sync += [wr_active.eq(1), wr_cyc.eq(1), wr_base.eq(head.base), wr_last.eq(head.last)]
        with m.Elif(wr_active):
            m.d.sync += wr_cyc.eq(wr_cyc + 1)
            with m.If(wr_cyc == 2 * C - 2):
                m.d.sync += wr_active.eq(0)
        m.d.comb += [
            out_wr.en.eq(running & (head.valid | (wr_active & ~wr_cyc[0]))),
            out_wr.addr.eq(Mux(head.valid, head.base, wr_base + (wr_cyc >> 1))),
            acc_rd.addr.eq(Mux(pre.valid, pre.base, wr_base + ((wr_cyc + 1) >> 1))),
            acc_rd.en.eq(1),
        ]
        for r in range(R):
            new = arr.y_data.word_select(r, s.acc_width).as_signed()
            old = acc_rd.data.word_select(r, s.acc_width).as_signed()
            m.d.comb += out_wr.data.word_select(r, s.acc_width).eq(new + Mux(self.cfg_accumulate, old, 0))
        final = Signal()
        if C > 1:
            m.d.comb += final.eq(wr_active & (wr_cyc == 2 * C - 2) & wr_last)
        else:
            m.d.comb += final.eq(head.valid & head.last)

        # ------------------------------------------------------------ run control
        with m.If(~running & self.start):
            empty = (self.cfg_groups == 0) | (self.cfg_ttiles == 0) | (self.cfg_ntiles == 0)
            m.d.sync += [
                running.eq(~empty), done.eq(empty),
                st_cnt.eq(0), st_tt.eq(0), st_nt.eq(0), st_act_base.eq(0), st_wgt_base.eq(0),
                st_out_base.eq(0), st_all.eq(0), wr_active.eq(0), wr_cyc.eq(0),
            ]
            for t in taps[1:]:
                m.d.sync += t.valid.eq(0)
        with m.Elif(running & final):
            m.d.sync += [running.eq(0), done.eq(1)]
        return m
