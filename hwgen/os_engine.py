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
the rest of the period (with ``spec.fold_overlap = "none"``, SCALE-Sim's array, the period is
``max(G + rows + cols - 2, 2 * cols - 1)``: each tile also waits out SCALE-Sim's fill and
drain). The array's result chain then brings the tile's ``cols`` output
columns out every other cycle, and the **writer** stores each into the output memory, in a
pipeline of four stages per column, one memory access or one add each: read the old word
(``lat`` + 1 cycles before the column arrives, ``lat`` the output memory's read latency;
with ``cfg_accumulate``: a reduction split over runs), register it, add the column into the
sum register, write it. Every output word is
written once per run, so no access needs the write of another (no forwarding). ``done``
rises the cycle after the last write. See ``docs/os_timing.md`` and :mod:`sim.units.engine`.

The configuration is checked at ``start`` (``error``, codes in
:data:`sparseforge.hwgen.engine.ERRORS`): ``groups * n`` products per output above
:func:`~sparseforge.sim.units.engine.acc_capacity`, ``ntiles * groups`` weight words,
``token_tiles * groups`` activation words or ``token_tiles * ntiles * cols`` output words
above their memories; such a run ends three cycles later with ``done``, writing nothing.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data
from amaranth.lib.wiring import In

from sparseforge.spec import HardwareSpec

from sparseforge.sim.units.engine import NO_OVERLAP, acc_capacity, os_word_widths

from .engine import ERR_ACT, ERR_K, ERR_NONE, ERR_OUT, ERR_WGT, MemoryEngine
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
      (sampled at ``start``), ``cfg_accumulate`` (add onto the output memory instead of
      overwriting it: a reduction split over several runs), ``busy``, ``done`` (high from
      the end of a run until the next ``start``), ``error`` (why the run was refused);
    - ``act_we``/``act_addr``/``act_wdata``, ``wgt_we``/``wgt_addr``/``wgt_wdata``: host
      writes (while idle); ``out_addr``/``out_rdata``: host read (one cycle latency; while
      idle).
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
        running, done, error, start_now = mem.running, mem.done, mem.error, mem.start_now
        act_rd, wgt_rd, acc_rd, out_wr = mem.act_rd, mem.wgt_rd, mem.acc_rd, mem.out_wr

        # run configuration, registered at start (the cfg ports need not be held while busy)
        gmax = max(d["act"], d["wgt"])
        groups = Signal.like(self.cfg_groups)
        g_last = Signal.like(self.cfg_groups)
        # the tile period: max(G, 2C - 1), or with fold_overlap = "none" (SCALE-Sim's array)
        # max(G + R + C - 2, 2C - 1) (sim.units.engine.os_tile_period)
        extra = R + C - 2 if s.fold_overlap == NO_OVERLAP else 0
        pmax = max(gmax + extra, 2 * C)
        period_last = Signal(range(pmax + 1))
        busy_cycles = self.cfg_groups + extra if extra else self.cfg_groups
        tt_last = Signal.like(self.cfg_ttiles)
        nt_last = Signal.like(self.cfg_ntiles)
        accumulate = Signal()
        with m.If(start_now):
            m.d.sync += [groups.eq(self.cfg_groups), g_last.eq(self.cfg_groups - 1),
                         period_last.eq(Mux(busy_cycles > 2 * C - 1, busy_cycles, 2 * C - 1) - 1),
                         tt_last.eq(self.cfg_ttiles - 1), nt_last.eq(self.cfg_ntiles - 1),
                         accumulate.eq(self.cfg_accumulate)]
        refuse, cause = self._run_checks(m, start_now, [
            (ERR_K, self.cfg_groups, None, acc_capacity(s) // s.n),
            (ERR_WGT, self.cfg_ntiles, self.cfg_groups, d["wgt"]),
            (ERR_ACT, self.cfg_ttiles, self.cfg_groups, d["act"]),
            (ERR_OUT, self.cfg_ttiles, self.cfg_ntiles, d["out"] // C),
        ])

        # ------------------------------------------------------------ sequencer
        # st_cnt: cycle of the tile period; act_addr/wgt_addr: the words read this cycle
        # (act_base + st_cnt, wgt_base + st_cnt, kept in registers so that the memories'
        # addresses come straight from flip-flops)
        st_cnt = Signal(range(pmax + 1))
        st_tt = Signal(len(self.cfg_ttiles))
        st_nt = Signal(len(self.cfg_ntiles))
        act_base = Signal(range(d["act"] + gmax + 1))
        wgt_base = Signal(range(d["wgt"] + gmax + 1))
        act_addr = Signal.like(act_base)
        wgt_addr = Signal.like(wgt_base)
        st_out_base = Signal(range(d["out"] + C + 1))
        st_all = Signal()
        issue = Signal()
        last_tile = Signal()
        m.d.comb += [
            issue.eq(running & ~st_all & (st_cnt < groups)),
            last_tile.eq((st_tt == tt_last) & (st_nt == nt_last)),
            act_rd.addr.eq(act_addr), act_rd.en.eq(1),
            wgt_rd.addr.eq(wgt_addr), wgt_rd.en.eq(1),
        ]
        with m.If(running & ~st_all):
            with m.If(st_cnt == period_last):
                m.d.sync += [st_cnt.eq(0), st_out_base.eq(st_out_base + C)]
                with m.If(st_nt == nt_last):
                    m.d.sync += [st_nt.eq(0), wgt_base.eq(0), wgt_addr.eq(0),
                                 act_base.eq(act_base + groups), act_addr.eq(act_base + groups)]
                    with m.If(st_tt == tt_last):
                        m.d.sync += st_all.eq(1)
                    with m.Else():
                        m.d.sync += st_tt.eq(st_tt + 1)
                with m.Else():
                    m.d.sync += [st_nt.eq(st_nt + 1), wgt_base.eq(wgt_base + groups),
                                 wgt_addr.eq(wgt_base + groups), act_addr.eq(act_base)]
            with m.Else():
                m.d.sync += [st_cnt.eq(st_cnt + 1), act_addr.eq(act_addr + 1), wgt_addr.eq(wgt_addr + 1)]

        # the group's flags go with the memory's read data (one cycle later)
        x_first, x_last = Signal(), Signal()
        m.d.sync += [x_first.eq(issue & (st_cnt == 0)), x_last.eq(issue & (st_cnt == g_last))]
        n_wbits = C * s.n * s.weight_width
        m.d.comb += [
            arr.x_first.eq(x_first), arr.x_last.eq(x_last),
            arr.x_data.eq(act_rd.data),
            arr.w_data.eq(wgt_rd.data[:n_wbits]),
        ]
        if not s.dense:
            m.d.comb += arr.w_idx.eq(wgt_rd.data[n_wbits:])

        # ------------------------------------------------------------ writer
        # a tile's last issue (cycle a) -> output column c at the array port at
        # a + D + 2c, D = 1 + OS_PE_LATENCY + rows; taps[k] is the tag issued k cycles ago
        out_bits = range(d["out"] + C + 1)
        tag_layout = data.StructLayout({"valid": 1, "last": 1, "base": out_bits})
        tag = Signal(tag_layout)
        m.d.comb += [tag.valid.eq(issue & (st_cnt == g_last)), tag.last.eq(last_tile),
                     tag.base.eq(st_out_base)]
        D = 1 + OS_PE_LATENCY + R
        lat = acc_rd.latency        # cycles from the old word's read to its data
        taps = [tag]
        for k in range(D - 1 - lat):
            nxt = Signal(tag_layout, name=f"otag_d{k + 1}")
            m.d.sync += nxt.eq(taps[-1])
            taps.append(nxt)
        head = taps[D - 1 - lat]    # column 0 is read now: it reaches the port in lat + 1 cycles

        # stage 0: read column c of a tile at cycle head + 2c (columns every other cycle)
        col_layout = data.StructLayout({"valid": 1, "final": 1, "addr": out_bits})
        rd = Signal(col_layout)
        gen_active = Signal()
        gen_cyc = Signal(range(2 * C))
        gen_addr = Signal(out_bits)
        gen_last = Signal()
        with m.If(head.valid):
            if C > 1:
                m.d.sync += [gen_active.eq(1), gen_cyc.eq(1), gen_addr.eq(head.base + 1), gen_last.eq(head.last)]
        with m.Elif(gen_active):
            m.d.sync += gen_cyc.eq(gen_cyc + 1)
            with m.If(~gen_cyc[0]):
                m.d.sync += gen_addr.eq(gen_addr + 1)
            with m.If(gen_cyc == 2 * C - 2):
                m.d.sync += gen_active.eq(0)
        with m.If(head.valid):
            m.d.comb += [rd.valid.eq(1), rd.addr.eq(head.base), rd.final.eq(head.last & (C == 1))]
        with m.Else():
            m.d.comb += [rd.valid.eq(gen_active & ~gen_cyc[0]), rd.addr.eq(gen_addr),
                         rd.final.eq(gen_last & (gen_cyc == 2 * C - 2))]
        m.d.comb += acc_rd.addr.eq(rd.addr)
        # stage lat: the read word into a register (zero unless accumulating); stage lat + 1:
        # the column is at the port, added into the sum register; stage lat + 2: written
        stages = [rd]
        for k in range(lat + 2):
            nxt = Signal(col_layout, name=f"wcol_s{k + 1}")
            m.d.sync += nxt.eq(stages[-1])
            stages.append(nxt)
        wr = stages[-1]                 # the column written this cycle
        ow = len(out_wr.data)
        old_q = Signal(ow)
        sum_q = Signal(ow)
        m.d.sync += old_q.eq(Mux(accumulate, acc_rd.data, 0))
        for r in range(R):
            new = arr.y_data.word_select(r, s.acc_width).as_signed()
            old = old_q.word_select(r, s.acc_width).as_signed()
            m.d.sync += sum_q.word_select(r, s.acc_width).eq(new + old)
        m.d.comb += [out_wr.en.eq(running & wr.valid), out_wr.addr.eq(wr.addr), out_wr.data.eq(sum_q)]

        # ------------------------------------------------------------ run control
        with m.If(start_now):
            empty = (self.cfg_groups == 0) | (self.cfg_ttiles == 0) | (self.cfg_ntiles == 0)
            m.d.sync += [
                running.eq(~empty), done.eq(empty), error.eq(ERR_NONE),
                st_cnt.eq(0), st_tt.eq(0), st_nt.eq(0), act_base.eq(0), wgt_base.eq(0), act_addr.eq(0),
                wgt_addr.eq(0), st_out_base.eq(0), st_all.eq(0), gen_active.eq(0),
                *(st.valid.eq(0) for st in stages[1:]),
            ]
            for t in taps[1:]:
                m.d.sync += t.valid.eq(0)
        with m.Elif(running & refuse):
            m.d.sync += [running.eq(0), done.eq(1), error.eq(cause)]
        with m.Elif(running & wr.valid & wr.final):
            m.d.sync += [running.eq(0), done.eq(1)]
        return m
