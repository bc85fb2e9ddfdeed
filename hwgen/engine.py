"""A GEMM engine: the sparse array with its on-chip memories and a tile sequencer.

The engine computes ``Y[T, NT*cols] = X[T, K] @ W^T`` for a GEMM already laid out in its
memories by :mod:`dataflow.layout`:

- activation memory: one word per (k-tile, token), ``rows * m`` activations;
- weight memory: one word per (n-tile, k-tile, array row), ``cols * n`` weights and indices;
- output memory: one word per (n-tile, token), ``cols`` accumulators.

Tiles run n-tile outer, k-tile inner, so the output of one n-tile accumulates in place over
its k-tiles. Two processes overlap:

- the **loader** reads a tile's ``rows`` weight words, one per cycle, into the PEs' shadow
  registers. It may start tile j once it finished tile j-1 and ``cols`` cycles have passed
  since the streamer started tile j-1 (by then every PE has swapped to tile j-1's
  weights, so the shadows are free);
- the **streamer** reads a tile's ``T`` activation words, one per cycle, into the array. It
  may start tile j once it finished tile j-1 and the loader has started tile j (a row's
  weights always arrive before that row's first activation).

With L_j / S_j the cycles in which tile j's loading / streaming starts (cycle 0 is the first
cycle after ``start``)::

    L_0 = 0,  S_0 = 1
    L_j = max(L_{j-1} + rows, S_{j-1} + cols)
    S_j = max(L_j + 1, S_{j-1} + T)

The cycle model (:mod:`sim.units.engine`) evaluates exactly this recurrence; tests check it against
the cycles measured on the generated Verilog.

With ``spec.fold_overlap = "none"`` (SCALE-Sim's array) the sequencer overlaps no tiles: the
loader also waits until ``rows + cols - 2`` cycles have passed since the streamer's last token
(and the streamer has finished), and the streamer also until the loader has finished::

    L_0 = 0,  S_j = L_j + rows,  L_j = S_{j-1} + T + rows + cols - 2

Both only delay what the pipelined rules allow, so the rest of the engine is unchanged.

The **output accumulator** is a pipeline of four stages per output word (one token of one
tile), so that no cycle holds more than one memory access or one add (docs/timing.md):

0. read the old partial sum (``lat`` + 1 cycles before the array's result for it arrives:
   ``lat`` = 1, or 2 for an output memory of several banks, see ``_memories``);
1. the read data in a register (a bank's data goes into a register before any select);
2. add the array's result to it (or to 0 on the first k-tile) into the sum register;
3. write the sum back.

A later k-tile's access to the same word comes at least one tile period (>= 2 cycles) after
this one; when it comes at most ``lat`` + 2 cycles after, its read misses this write (or
meets it in the same cycle), so its stage 2 takes the sum from the write-back history
(*forwarding*) instead of the memory. ``done`` rises the cycle after the last write.

**Run checks** (``error``): the configuration is checked at ``start`` against what the
hardware holds (:data:`ERRORS`); a run that does not fit ends three cycles later with ``done``
and the cause in ``error`` (sticky until the next ``start``), before it writes any output.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from sparseforge.spec import HardwareSpec

from sparseforge.sim.units.engine import NO_OVERLAP, acc_capacity, word_widths

from .array import SparseArray

__all__ = ["MemoryEngine", "GemmEngine", "engine_depths", "build_engine", "ERRORS", "ERROR_BITS",
           "ERR_NONE", "ERR_K", "ERR_WGT", "ERR_ACT", "ERR_OUT", "OUT_BANK_WORDS"]

#: ``error`` codes of both engines (0: none). A run whose configuration does not fit the
#: hardware is refused (ends with ``done`` and the code, before writing any output); where
#: several causes hold, the lowest code is reported
ERR_NONE, ERR_K, ERR_WGT, ERR_ACT, ERR_OUT = 0, 1, 2, 3, 4
ERRORS: dict[int, str] = {
    ERR_K: "a run's products per output exceed what the accumulator holds without overflow "
           "(sim.units.engine.acc_capacity)",
    ERR_WGT: "the run's weight words exceed the weight memory",
    ERR_ACT: "the run's activation words exceed the activation memory",
    ERR_OUT: "the run's output words exceed the output memory",
}
#: bits of the ``error`` port
ERROR_BITS = 3
#: words of one bank of an engine's output memory: a power of two no deeper than one depth
#: slice of a block RAM in any of its widths (ECP5 DP16KD/PDPW16KD: 512 x 36 at the widest;
#: UltraScale+ RAMB36: 512 x 72)
OUT_BANK_WORDS = 512


def engine_depths(spec: HardwareSpec) -> dict[str, int]:
    """Memory depths (words) that fill the spec's on-chip buffers."""
    w = word_widths(spec)
    return {
        "act_depth": max(1, spec.input_buffer_kib * 8192 // w["act"]),
        "wgt_depth": max(spec.rows, spec.weight_buffer_kib * 8192 // w["wgt"]),
        "out_depth": max(1, spec.output_buffer_kib * 8192 // w["out"]),
    }


class MemoryEngine(wiring.Component):
    """The host interface the GEMM engines share: ``start``, the engine's own configuration
    ports, ``cfg_accumulate``, ``busy``/``done``/``error``, host writes into the activation and
    weight memories and a host read of the output memory. Subclasses give their configuration
    ports, memory word widths and ``dataflow``.

    ``error`` (:data:`ERROR_BITS` bits, codes in :data:`ERRORS`) holds why the last run was
    refused, from its end until the next ``start`` (0 after a run that was not refused)."""

    dataflow = ""
    #: cycles from ``out_addr`` to its word on ``out_rdata`` (a synchronous read)
    OUT_READ_LATENCY = 1
    #: cycles of a refused run, counted as the cycle models count a run: from the cycle that
    #: samples ``start`` to the first with ``done`` (and ``error``) high (see ``_run_checks``)
    REFUSE_CYCLES = 4

    @staticmethod
    def check_args(spec: object, **depths: object) -> None:
        """Refuse a non-spec or a non-positive depth (subclasses call this first)."""
        if not isinstance(spec, HardwareSpec):
            raise TypeError(f"spec must be a HardwareSpec, not {spec!r}")
        for name, v in depths.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")

    def __init__(self, *, spec: HardwareSpec, act_depth: int, wgt_depth: int, out_depth: int,
                 widths: dict[str, int], config: dict[str, object]):
        self.check_args(spec, act_depth=act_depth, wgt_depth=wgt_depth, out_depth=out_depth)
        self._spec = spec
        self._depths = {"act": act_depth, "wgt": wgt_depth, "out": out_depth}
        self._widths = dict(widths)
        super().__init__({
            "start": In(1),
            **config,
            "cfg_accumulate": In(1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(ERROR_BITS),
            "act_we": In(1),
            "act_addr": In(range(act_depth)),
            "act_wdata": In(widths["act"]),
            "wgt_we": In(1),
            "wgt_addr": In(range(wgt_depth)),
            "wgt_wdata": In(widths["wgt"]),
            "out_addr": In(range(out_depth)),
            "out_rdata": Out(widths["out"]),
        })

    @property
    def spec(self) -> HardwareSpec:
        return self._spec

    @property
    def depths(self) -> dict[str, int]:
        return dict(self._depths)

    @property
    def params(self) -> dict[str, object]:
        """Generation parameters recorded in the manifest."""
        return ({f"{k}_depth": v for k, v in self._depths.items()}
                | {"word_widths": dict(self._widths), "dataflow": self.dataflow})

    def _memories(self, m: Module) -> SimpleNamespace:
        """Build the three memories and the host side of the interface in ``m``: ``running``,
        ``done`` and ``error`` registers driving ``busy``/``done``/``error``, host writes into
        the activation and weight memories (ignored while running) and the host read of the
        output memory. Returns the registers, ``start_now`` (``start`` sampled while idle)
        and the engine-side ports: ``act_rd``, ``wgt_rd`` (synchronous reads), ``acc_rd``
        (the accumulator's read of the output memory: ``addr`` in, ``data`` out
        ``acc_rd.latency`` cycles later) and ``out_wr`` (``en``, ``addr``, ``data``).

        The output memory is built as banks of :data:`OUT_BANK_WORDS` words (one block-RAM
        depth slice each), with one read port: the accumulator's while running, the host's
        while idle (``out_addr`` -> ``out_rdata``, one cycle). The accumulator takes every
        bank's read data into a register and selects the bank the cycle after (latency 2),
        so that no multiplexer sits between a block RAM and its first register; with one
        bank there is nothing to select (latency 1). A second read port for the host would
        double the block RAMs (one of a block RAM's two ports is the write) and, on ECP5,
        halve their depth (512 x 36 instead of 2048 x 9).

        The memories carry Yosys' ``no_rw_check``: no read ever needs the data written to
        the same word in the same cycle (host writes are ignored while running; the
        accumulators forward such words, ``GemmEngine``), so synthesis need not emulate
        read-before-write behaviour with a bypass multiplexer after the RAM."""
        d, wd = self._depths, self._widths
        attrs = {"no_rw_check": 1}
        m.submodules.act_mem = act_mem = memory.Memory(shape=unsigned(wd["act"]), depth=d["act"], init=[], attrs=attrs)
        m.submodules.wgt_mem = wgt_mem = memory.Memory(shape=unsigned(wd["wgt"]), depth=d["wgt"], init=[], attrs=attrs)
        running = Signal()
        done = Signal()
        error = Signal(ERROR_BITS)
        start_now = Signal()
        m.d.comb += [self.busy.eq(running), self.done.eq(done), self.error.eq(error),
                     start_now.eq(~running & self.start)]
        act_wr = act_mem.write_port()
        wgt_wr = wgt_mem.write_port()
        m.d.comb += [
            act_wr.en.eq(self.act_we & ~running), act_wr.addr.eq(self.act_addr), act_wr.data.eq(self.act_wdata),
            wgt_wr.en.eq(self.wgt_we & ~running), wgt_wr.addr.eq(self.wgt_addr), wgt_wr.data.eq(self.wgt_wdata),
        ]

        # output memory: banks of OUT_BANK_WORDS words
        depth, width = d["out"], wd["out"]
        nbanks = -(-depth // OUT_BANK_WORDS)
        low = (min(depth, OUT_BANK_WORDS) - 1).bit_length()         # address bits inside a bank
        rd_addr = Signal(range(depth))
        acc_addr = Signal(range(depth))
        out_wr = SimpleNamespace(en=Signal(name="out_wr_en"), addr=Signal(range(depth), name="out_wr_addr"),
                                 data=Signal(width, name="out_wr_data"))
        m.d.comb += rd_addr.eq(Mux(running, acc_addr, self.out_addr))
        rdata = []
        for b in range(nbanks):
            bank = memory.Memory(shape=unsigned(width), depth=min(OUT_BANK_WORDS, depth - b * OUT_BANK_WORDS),
                                 init=[], attrs=attrs)
            m.submodules[f"out_mem{b}" if nbanks > 1 else "out_mem"] = bank
            rp, wp = bank.read_port(), bank.write_port()
            m.d.comb += [rp.addr.eq(rd_addr[:low]), wp.addr.eq(out_wr.addr[:low]), wp.data.eq(out_wr.data),
                         wp.en.eq(out_wr.en & ((out_wr.addr >> low) == b if nbanks > 1 else 1))]
            rdata.append(rp.data)
        if nbanks == 1:
            m.d.comb += self.out_rdata.eq(rdata[0])
            acc_rd = SimpleNamespace(addr=acc_addr, data=rdata[0], latency=1)
        else:
            sel = Signal(range(nbanks))           # the bank read, with its data
            sel2 = Signal(range(nbanks))          # ... one cycle later, with the data's register
            m.d.sync += [sel.eq(rd_addr >> low), sel2.eq(sel)]
            held = [Signal(width, name=f"out_bank{b}_q") for b in range(nbanks)]
            m.d.sync += [h.eq(r) for h, r in zip(held, rdata)]
            # the selects are shifts by a variable word offset (continuous assignments in
            # Verilog, which Icarus evaluates from time 0; a case mux would show X until an
            # input changes)
            acc_data = Signal(width)
            m.d.comb += [acc_data.eq(Cat(*held).word_select(sel2, width)),
                         self.out_rdata.eq(Cat(*rdata).word_select(sel, width))]
            acc_rd = SimpleNamespace(addr=acc_addr, data=acc_data, latency=2)
        return SimpleNamespace(running=running, done=done, error=error, start_now=start_now,
                               act_rd=act_mem.read_port(), wgt_rd=wgt_mem.read_port(), acc_rd=acc_rd, out_wr=out_wr)

    @staticmethod
    def _run_checks(m: Module, start_now, checks: list[tuple[int, Value, Value | None, int]]) -> tuple[Signal, Signal]:
        """The run checks: each ``(code, a, b, limit)`` refuses a run with ``a * b > limit``
        (``a > limit`` when ``b`` is None), ``a`` and ``b`` configuration ports. They are
        registered at ``start`` (cycle -1), multiplied in cycle 0 and compared in cycle 1,
        each step in a register of its own, so the check adds no long path. Returns
        ``(refuse, cause)``: ``refuse`` is high in cycle 2 of a run that does not fit, and
        ``cause`` then holds the lowest code that failed; ``done`` is high from cycle 3
        (:attr:`REFUSE_CYCLES` counting the start cycle), long before the first output
        write of a run (cycle ``rows + cols + 7`` or later on the weight-stationary engine,
        ``rows + 6`` on the output-stationary one)."""
        stage = [Signal(name=f"chk_s{k}") for k in range(3)]
        m.d.sync += [stage[0].eq(start_now), stage[1].eq(stage[0]), stage[2].eq(stage[1])]
        bad = []
        for code, a, b, limit in checks:
            if ((1 << len(a)) - 1) * ((1 << len(b)) - 1 if b is not None else 1) <= limit:
                continue        # no value the ports can carry fails it

            a_q = Signal.like(a, name=f"chk{code}_a")
            with m.If(start_now):
                m.d.sync += a_q.eq(a)
            if b is None:
                prod = Signal.like(a, name=f"chk{code}_p")
                m.d.sync += prod.eq(a_q)
            else:
                b_q = Signal.like(b, name=f"chk{code}_b")
                with m.If(start_now):
                    m.d.sync += b_q.eq(b)
                prod = Signal(len(a) + len(b), name=f"chk{code}_p")
                m.d.sync += prod.eq(a_q * b_q)
            over = Signal(name=f"chk{code}_over")
            m.d.sync += over.eq(prod > limit)
            bad.append((code, over))
        refuse = Signal()
        cause = Signal(ERROR_BITS)
        if bad:
            m.d.comb += refuse.eq(stage[2] & Cat(*(o for _, o in bad)).any())
        for code, over in reversed(sorted(bad, key=lambda t: t[0])):
            with m.If(over):
                m.d.comb += cause.eq(code)
        return refuse, cause


def _or(values: list) -> Value:
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out


def build_engine(spec: HardwareSpec, **depths: int) -> "GemmEngine":
    """The engine for ``spec``; memory depths default to :func:`engine_depths`."""
    return GemmEngine(spec=spec, **{**engine_depths(spec), **depths})


class GemmEngine(MemoryEngine):
    """Ports:

    - ``start`` (pulse while idle), ``cfg_tokens`` (T >= 1), ``cfg_ktiles``,
      ``cfg_ntiles`` (>= 1; sampled at ``start``); ``cfg_accumulate``: add the run's
      results onto the output memory instead of overwriting it on the first k-tile (a
      reduction split over several runs, each with its own block of K); ``busy``; ``done``
      (high from the end of a run until the next ``start``); ``error`` (why the run was
      refused, :data:`ERRORS`: ``ktiles * rows * n`` products per output above
      :func:`~sparseforge.sim.units.engine.acc_capacity`, ``ktiles * ntiles`` tiles above
      the weight memory's, ``ktiles * T`` activation words or ``ntiles * T`` output words
      above their memories).
    - ``act_we``/``act_addr``/``act_wdata``, ``wgt_we``/``wgt_addr``/``wgt_wdata``: host
      writes into the activation and weight memories (while idle).
    - ``out_addr``/``out_rdata``: host read of the output memory (one cycle latency; while
      idle).
    """
    dataflow = "weight-stationary"

    def __init__(self, *, spec: HardwareSpec, act_depth: int, wgt_depth: int, out_depth: int):
        self.check_args(spec, act_depth=act_depth, wgt_depth=wgt_depth, out_depth=out_depth)
        if wgt_depth < spec.rows:
            raise ValueError(f"wgt_depth = {wgt_depth} must hold at least one tile ({spec.rows} words)")
        max_tiles = wgt_depth // spec.rows
        super().__init__(spec=spec, act_depth=act_depth, wgt_depth=wgt_depth, out_depth=out_depth,
                         widths=word_widths(spec), config={
                             "cfg_tokens": In(range(act_depth + 1)),
                             "cfg_ktiles": In(range(max_tiles + 1)),
                             "cfg_ntiles": In(range(max_tiles + 1)),
                         })

    def elaborate(self, platform):
        s = self._spec
        m = Module()
        R, C = s.rows, s.cols
        d = self._depths
        max_tiles = d["wgt"] // R

        m.submodules.array = arr = SparseArray(spec=s, valid=False)
        mem = self._memories(m)
        running, done, error, start_now = mem.running, mem.done, mem.error, mem.start_now
        act_rd, wgt_rd, acc_rd, out_wr = mem.act_rd, mem.wgt_rd, mem.acc_rd, mem.out_wr

        # run configuration, registered at start (the cfg ports need not be held while busy)
        kt_last = Signal.like(self.cfg_ktiles)
        nt_last = Signal.like(self.cfg_ntiles)
        tok_last = Signal.like(self.cfg_tokens)
        tokens = Signal.like(self.cfg_tokens)
        accumulate = Signal()
        with m.If(start_now):
            m.d.sync += [kt_last.eq(self.cfg_ktiles - 1), nt_last.eq(self.cfg_ntiles - 1),
                         tok_last.eq(self.cfg_tokens - 1), tokens.eq(self.cfg_tokens),
                         accumulate.eq(self.cfg_accumulate)]
        refuse, cause = self._run_checks(m, start_now, [
            (ERR_K, self.cfg_ktiles, None, acc_capacity(s) // (R * s.n)),
            (ERR_WGT, self.cfg_ktiles, self.cfg_ntiles, max_tiles),
            (ERR_ACT, self.cfg_ktiles, self.cfg_tokens, d["act"]),
            (ERR_OUT, self.cfg_ntiles, self.cfg_tokens, d["out"]),
        ])

        tile_bits = len(self.cfg_ktiles)

        # ---------------------------------------------------------------- loader
        ld_active = Signal()
        ld_row = Signal(range(max(2, R)))
        ld_addr = Signal(range(d["wgt"] + 1))
        ld_kt = Signal(tile_bits)
        ld_nt = Signal(tile_bits)
        ld_all = Signal()
        # the loader is one tile ahead of the streamer (it started a tile the streamer has
        # not): the two tile counts differ by 0 or 1, so one bit holds what they count
        ahead = Signal()

        # ---------------------------------------------------------------- streamer
        st_active = Signal()
        st_t = Signal(range(d["act"] + 1))
        st_kt = Signal(tile_bits)
        st_nt = Signal(tile_bits)
        st_act_addr = Signal(range(d["act"] + 1))
        st_out_base = Signal(range(d["out"] + d["act"] + 1))
        st_all = Signal()
        # cycles since the streamer started its last tile, saturating at cols (cols at run
        # start: no tile is in the array yet)
        st_age = Signal(range(C + 1))

        ld_start = Signal()
        st_start = Signal()
        ld_when = running & ~ld_active & ~ld_all & ~ahead & (st_age == C)
        st_when = running & ~st_active & ~st_all & ahead
        if s.fold_overlap == NO_OVERLAP:
            # SCALE-Sim's array (sim.units.engine, "No fold overlap"): the loader also waits
            # until rows + cols - 2 cycles have passed since the streamer's last token, the
            # streamer until its tile's weights are all loaded. st_gap: 1 in the cycle after
            # an issue, counting up to rows + cols - 1 (its value at run start)
            gap_full = R + C - 1
            st_gap = Signal(range(gap_full + 1))
            ld_when = ld_when & ~st_active & (st_gap == gap_full)
            st_when = st_when & ~ld_active
        m.d.comb += [ld_start.eq(ld_when), st_start.eq(st_when)]
        with m.If(ld_start):
            m.d.sync += ahead.eq(1)
        with m.Elif(st_start):
            m.d.sync += ahead.eq(0)

        # loader: one weight word per cycle while issuing
        ld_issue = Signal()
        m.d.comb += [ld_issue.eq(running & (ld_start | ld_active)), wgt_rd.addr.eq(ld_addr), wgt_rd.en.eq(1)]
        with m.If(ld_issue):
            m.d.sync += ld_addr.eq(ld_addr + 1)
            with m.If(ld_row == R - 1):
                m.d.sync += [ld_row.eq(0), ld_active.eq(0)]
            with m.Else():
                m.d.sync += [ld_row.eq(ld_row + 1), ld_active.eq(1)]
        with m.If(ld_start):
            with m.If(ld_kt == kt_last):
                m.d.sync += ld_kt.eq(0)
                with m.If(ld_nt == nt_last):
                    m.d.sync += ld_all.eq(1)
                with m.Else():
                    m.d.sync += ld_nt.eq(ld_nt + 1)
            with m.Else():
                m.d.sync += ld_kt.eq(ld_kt + 1)
        # the weight word comes out of the memory one cycle after its read and into a
        # register the next (so the memory drives one register, not a row of PEs); it is
        # written into the shadow registers of its row then. Row r of tile j is written at
        # the end of cycle L_j + r + 2, before tile j's first vector reaches row r (it
        # swaps at the end of S_j + 2 + r, and S_j >= L_j + 1), and after tile j-1's first
        # vector has swapped in every PE of the row (at the end of S_{j-1} + r + cols + 1,
        # and L_j >= S_{j-1} + cols): the register costs no cycle.
        w_we = [Signal(name=f"w_we_d{k}") for k in (1, 2)]
        w_row = [Signal(range(max(2, R)), name=f"w_row_d{k}") for k in (1, 2)]
        w_q = Signal.like(wgt_rd.data)
        m.d.sync += [w_we[0].eq(ld_issue), w_row[0].eq(ld_row), w_we[1].eq(w_we[0]), w_row[1].eq(w_row[0]),
                     w_q.eq(wgt_rd.data)]
        n_wbits = C * s.n * s.weight_width
        m.d.comb += [
            arr.w_we.eq(w_we[1]),
            arr.w_row.eq(w_row[1]),
            arr.w_data.eq(w_q[:n_wbits]),
        ]
        if not s.dense:
            m.d.comb += arr.w_idx.eq(w_q[n_wbits:])

        # streamer: one activation word per cycle while issuing
        st_issue = Signal()
        m.d.comb += [st_issue.eq(running & (st_start | st_active)), act_rd.addr.eq(st_act_addr), act_rd.en.eq(1)]
        with m.If(st_start):
            m.d.sync += st_age.eq(1)
        with m.Elif(st_age != C):
            m.d.sync += st_age.eq(st_age + 1)
        if s.fold_overlap == NO_OVERLAP:
            with m.If(st_issue):
                m.d.sync += st_gap.eq(1)
            with m.Elif(st_gap != gap_full):
                m.d.sync += st_gap.eq(st_gap + 1)
        with m.If(st_issue):
            m.d.sync += st_act_addr.eq(st_act_addr + 1)
            with m.If(st_t == tok_last):
                m.d.sync += [st_t.eq(0), st_active.eq(0)]
                with m.If(st_kt == kt_last):
                    m.d.sync += [st_kt.eq(0), st_act_addr.eq(0), st_out_base.eq(st_out_base + tokens)]
                    with m.If(st_nt == nt_last):
                        m.d.sync += st_all.eq(1)
                    with m.Else():
                        m.d.sync += st_nt.eq(st_nt + 1)
                with m.Else():
                    m.d.sync += st_kt.eq(st_kt + 1)
            with m.Else():
                m.d.sync += [st_t.eq(st_t + 1), st_active.eq(1)]

        # the activation word arrives one cycle after its read, with its tile's first flag
        x_first = Signal()
        m.d.sync += x_first.eq(st_issue & (st_t == 0))
        m.d.comb += [arr.x_first.eq(x_first), arr.x_data.eq(act_rd.data)]

        # output tags: one per activation word, delayed along with it; taps[k] is the tag of
        # the word read k cycles ago. Its result is at the array's output at taps[L + 1].
        # Each field goes as far as it is used: acc to stage 1 (taps[L]), last to the write
        # (taps[L + 2]), valid and the address lat stages further (forwarding).
        out_addr = range(d["out"])
        full = data.StructLayout({"valid": 1, "acc": 1, "last": 1, "addr": out_addr})
        late = data.StructLayout({"valid": 1, "last": 1, "addr": out_addr})
        written = data.StructLayout({"valid": 1, "addr": out_addr})
        tag = Signal(full)
        last_tile = Signal()
        m.d.comb += [
            last_tile.eq((st_kt == kt_last) & (st_nt == nt_last)),
            tag.valid.eq(st_issue),
            tag.acc.eq((st_kt != 0) | accumulate),
            tag.last.eq(last_tile & (st_t == tok_last)),
            tag.addr.eq(st_out_base + st_t),
        ]
        L = s.array_latency
        lat = acc_rd.latency                # cycles from the old word's read to its data
        taps = [tag]
        for k in range(1, L + lat + 3):
            layout = full if k <= L else late if k <= L + 2 else written
            nxt = Signal(layout, name=f"tag_d{k}")
            m.d.sync += [getattr(nxt, f).eq(getattr(taps[-1], f)) for f in layout.members]
            taps.append(nxt)

        # ---------------------------------------------------------------- accumulator
        # per word: read the old word at taps[L - lat] (stage 0), its data into old_q at
        # taps[L] (stage 1), the array's result added into sum_q at taps[L + 1] (stage 2),
        # sum_q written at taps[L + 2] (stage 3)
        t_rd, t_s1, t_wr = taps[L - lat], taps[L], taps[L + 2]
        ow = len(out_wr.data)
        old_q = Signal(ow)      # stage 1 -> 2: the word as the memory held it
        sum_q = Signal(ow)      # stage 2 -> 3: the new word, written in stage 3
        m.d.comb += acc_rd.addr.eq(t_rd.addr)
        m.d.sync += old_q.eq(acc_rd.data)
        # forwarding: the read misses the writes of the same word issued in its own cycle or
        # up to lat + 2 cycles before its stage 2 (written in stage 3 of an earlier tag, at
        # distance d = 1 .. lat + 2). Accesses to one word come a tile period apart, >= 2
        # cycles (the model's period max(tokens, rows, cols + 1)), so d = 2 .. lat + 2:
        # in stage 1 the earlier tag is at taps[L + d]; in stage 2 its word is wb[d - 1],
        # the word written d - 1 cycles ago. The latest write wins.
        dists = range(2, lat + 3)
        wb = {1: Signal(ow, name="wb1")}
        m.d.sync += wb[1].eq(sum_q)
        for k in range(2, lat + 2):
            wb[k] = Signal(ow, name=f"wb{k}")
            m.d.sync += wb[k].eq(wb[k - 1])
        hits = {dd: taps[L + dd].valid & (taps[L + dd].addr == t_s1.addr) for dd in dists}
        fwd = {dd: Signal(name=f"fwd{dd}") for dd in dists}
        use_mem = Signal()
        newer = 0
        for dd in dists:
            m.d.sync += fwd[dd].eq(t_s1.acc & hits[dd] & ~newer)
            newer = newer | hits[dd]
        m.d.sync += use_mem.eq(t_s1.acc & ~newer)
        old = Signal(ow)
        terms = [old_q & use_mem.replicate(ow)] + [wb[dd - 1] & fwd[dd].replicate(ow) for dd in dists]
        m.d.comb += old.eq(terms[0] if len(terms) == 1 else _or(terms))
        for c in range(C):
            new = arr.y_data.word_select(c, s.acc_width).as_signed()
            m.d.sync += sum_q.word_select(c, s.acc_width).eq(new + old.word_select(c, s.acc_width).as_signed())
        m.d.comb += [out_wr.addr.eq(t_wr.addr), out_wr.en.eq(t_wr.valid & running), out_wr.data.eq(sum_q)]

        # ---------------------------------------------------------------- run control
        with m.If(start_now):
            empty = (self.cfg_tokens == 0) | (self.cfg_ktiles == 0) | (self.cfg_ntiles == 0)
            m.d.sync += [
                running.eq(~empty), done.eq(empty), error.eq(ERR_NONE),
                ld_active.eq(0), ld_row.eq(0), ld_addr.eq(0), ld_kt.eq(0), ld_nt.eq(0), ld_all.eq(0), ahead.eq(0),
                st_active.eq(0), st_t.eq(0), st_kt.eq(0), st_nt.eq(0), st_act_addr.eq(0), st_out_base.eq(0),
                st_all.eq(0), st_age.eq(C),
            ]
            if s.fold_overlap == NO_OVERLAP:
                m.d.sync += st_gap.eq(gap_full)
            for t in taps[1:]:
                m.d.sync += t.valid.eq(0)
        with m.Elif(running & refuse):
            m.d.sync += [running.eq(0), done.eq(1), error.eq(cause)]
        with m.Elif(running & t_wr.valid & t_wr.last):
            m.d.sync += [running.eq(0), done.eq(1)]
        return m
