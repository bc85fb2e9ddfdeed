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

The output accumulator reads the old partial sum one cycle before the array's result for the
same (n-tile, token) arrives, adds (or, on the first k-tile, overwrites) and writes back.
``done`` rises the cycle after the last write.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from sparseforge.spec import HardwareSpec

from sparseforge.sim.units.engine import word_widths

from .array import SparseArray

__all__ = ["MemoryEngine", "GemmEngine", "engine_depths", "build_engine"]


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
    ports, ``cfg_accumulate``, ``busy``/``done``, host writes into the activation and weight
    memories and a host read of the output memory. Subclasses give their configuration
    ports, memory word widths and ``dataflow``."""

    dataflow = ""

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
        """Build the three memories and the host side of the interface in ``m``: ``running``
        and ``done`` registers driving ``busy``/``done``, host writes into the activation and
        weight memories (ignored while running) and the host read port of the output memory.
        Returns the registers and the engine-side ports: ``act_rd``, ``wgt_rd`` (synchronous
        reads), ``acc_rd`` and ``out_wr`` (the accumulator's read and write of the output)."""
        d, wd = self._depths, self._widths
        m.submodules.act_mem = act_mem = memory.Memory(shape=unsigned(wd["act"]), depth=d["act"], init=[])
        m.submodules.wgt_mem = wgt_mem = memory.Memory(shape=unsigned(wd["wgt"]), depth=d["wgt"], init=[])
        m.submodules.out_mem = out_mem = memory.Memory(shape=unsigned(wd["out"]), depth=d["out"], init=[])
        running = Signal()
        done = Signal()
        m.d.comb += [self.busy.eq(running), self.done.eq(done)]
        act_wr = act_mem.write_port()
        wgt_wr = wgt_mem.write_port()
        m.d.comb += [
            act_wr.en.eq(self.act_we & ~running), act_wr.addr.eq(self.act_addr), act_wr.data.eq(self.act_wdata),
            wgt_wr.en.eq(self.wgt_we & ~running), wgt_wr.addr.eq(self.wgt_addr), wgt_wr.data.eq(self.wgt_wdata),
        ]
        host_rd = out_mem.read_port()
        m.d.comb += [host_rd.addr.eq(self.out_addr), self.out_rdata.eq(host_rd.data)]
        return SimpleNamespace(running=running, done=done, act_rd=act_mem.read_port(), wgt_rd=wgt_mem.read_port(),
                               acc_rd=out_mem.read_port(), out_wr=out_mem.write_port())


def build_engine(spec: HardwareSpec, **depths: int) -> "GemmEngine":
    """The engine for ``spec``; memory depths default to :func:`engine_depths`."""
    return GemmEngine(spec=spec, **{**engine_depths(spec), **depths})


class GemmEngine(MemoryEngine):
    """Ports:

    - ``start`` (pulse while idle), ``cfg_tokens`` (T >= 1), ``cfg_ktiles``,
      ``cfg_ntiles`` (>= 1; held stable while busy); ``cfg_accumulate``: add the run's
      results onto the output memory instead of overwriting it on the first k-tile (a
      reduction split over several runs, each with its own block of K); ``busy``; ``done``
      (high from the end of a run until the next ``start``).
    - ``act_we``/``act_addr``/``act_wdata``, ``wgt_we``/``wgt_addr``/``wgt_wdata``: host
      writes into the activation and weight memories (while idle).
    - ``out_addr``/``out_rdata``: host read of the output memory (one cycle latency).
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

        m.submodules.array = arr = SparseArray(spec=s)
        mem = self._memories(m)
        running, done = mem.running, mem.done
        act_rd, wgt_rd, acc_rd, out_wr = mem.act_rd, mem.wgt_rd, mem.acc_rd, mem.out_wr

        tile_bits = len(self.cfg_ktiles)
        count_bits = max(1, (d["wgt"] // R) * (d["wgt"] // R)).bit_length() + 1

        # ---------------------------------------------------------------- loader
        ld_active = Signal()
        ld_row = Signal(range(max(2, R)))
        ld_addr = Signal(range(d["wgt"] + 1))
        ld_count = Signal(count_bits)
        ld_kt = Signal(tile_bits)
        ld_nt = Signal(tile_bits)
        ld_all = Signal()

        # ---------------------------------------------------------------- streamer
        st_active = Signal()
        st_t = Signal(range(d["act"] + 1))
        st_kt = Signal(tile_bits)
        st_nt = Signal(tile_bits)
        st_act_addr = Signal(range(d["act"] + 1))
        st_out_base = Signal(range(d["out"] + d["act"] + 1))
        st_count = Signal(count_bits)
        st_all = Signal()
        st_age = Signal(range(C + 1))

        ld_start = Signal()
        st_start = Signal()
        m.d.comb += [
            ld_start.eq(running & ~ld_active & ~ld_all
                        & ((ld_count == 0) | ((st_count == ld_count) & (st_age >= C)))),
            st_start.eq(running & ~st_active & ~st_all & (st_count < ld_count)),
        ]

        # loader: one weight word per cycle while issuing
        ld_issue = Signal()
        m.d.comb += [ld_issue.eq(ld_start | ld_active), wgt_rd.addr.eq(ld_addr), wgt_rd.en.eq(1)]
        with m.If(ld_issue):
            m.d.sync += ld_addr.eq(ld_addr + 1)
            with m.If(ld_row == R - 1):
                m.d.sync += [ld_row.eq(0), ld_active.eq(0)]
            with m.Else():
                m.d.sync += [ld_row.eq(ld_row + 1), ld_active.eq(1)]
        with m.If(ld_start):
            m.d.sync += ld_count.eq(ld_count + 1)
            with m.If(ld_kt == self.cfg_ktiles - 1):
                m.d.sync += ld_kt.eq(0)
                with m.If(ld_nt == self.cfg_ntiles - 1):
                    m.d.sync += ld_all.eq(1)
                with m.Else():
                    m.d.sync += ld_nt.eq(ld_nt + 1)
            with m.Else():
                m.d.sync += ld_kt.eq(ld_kt + 1)
        # weight word arrives one cycle after its read
        w_we = Signal()
        w_row = Signal(range(max(2, R)))
        m.d.sync += [w_we.eq(ld_issue & running), w_row.eq(ld_row)]
        n_wbits = C * s.n * s.weight_width
        m.d.comb += [
            arr.w_we.eq(w_we),
            arr.w_row.eq(w_row),
            arr.w_data.eq(wgt_rd.data[:n_wbits]),
        ]
        if not s.dense:
            m.d.comb += arr.w_idx.eq(wgt_rd.data[n_wbits:])

        # streamer: one activation word per cycle while issuing
        tag_layout = data.StructLayout({
            "valid": 1, "first": 1, "acc": 1, "last": 1,
            "addr": range(d["out"] + d["act"] + 1),
        })
        st_issue = Signal()
        tag = Signal(tag_layout)
        last_tile = Signal()
        m.d.comb += [
            st_issue.eq(st_start | st_active),
            act_rd.addr.eq(st_act_addr),
            act_rd.en.eq(1),
            last_tile.eq((st_kt == self.cfg_ktiles - 1) & (st_nt == self.cfg_ntiles - 1)),
            tag.valid.eq(st_issue),
            tag.first.eq(st_t == 0),
            tag.acc.eq((st_kt != 0) | self.cfg_accumulate),
            tag.last.eq(last_tile & (st_t == self.cfg_tokens - 1)),
            tag.addr.eq(st_out_base + st_t),
        ]
        with m.If(st_start):
            m.d.sync += [st_count.eq(st_count + 1), st_age.eq(1)]
        with m.Elif(st_age < C):
            m.d.sync += st_age.eq(st_age + 1)
        with m.If(st_issue):
            m.d.sync += st_act_addr.eq(st_act_addr + 1)
            with m.If(st_t == self.cfg_tokens - 1):
                m.d.sync += [st_t.eq(0), st_active.eq(0)]
                with m.If(st_kt == self.cfg_ktiles - 1):
                    m.d.sync += [st_kt.eq(0), st_act_addr.eq(0), st_out_base.eq(st_out_base + self.cfg_tokens)]
                    with m.If(st_nt == self.cfg_ntiles - 1):
                        m.d.sync += st_all.eq(1)
                    with m.Else():
                        m.d.sync += st_nt.eq(st_nt + 1)
                with m.Else():
                    m.d.sync += st_kt.eq(st_kt + 1)
            with m.Else():
                m.d.sync += [st_t.eq(st_t + 1), st_active.eq(1)]

        # tag delay line: [1] goes with the activation word into the array, [L] addresses
        # the accumulator read, [L + 1] goes with the array's result
        L = s.array_latency
        taps = [tag]
        for k in range(L + 1):
            nxt = Signal(tag_layout, name=f"tag_d{k + 1}")
            m.d.sync += nxt.eq(taps[-1])
            taps.append(nxt)
        m.d.comb += [
            arr.x_valid.eq(taps[1].valid),
            arr.x_first.eq(taps[1].first),
            arr.x_data.eq(act_rd.data),
            acc_rd.addr.eq(taps[L].addr),
            acc_rd.en.eq(1),
        ]

        # accumulate
        y = taps[L + 1]
        m.d.comb += [out_wr.addr.eq(y.addr), out_wr.en.eq(y.valid & running)]
        for c in range(C):
            new = arr.y_data.word_select(c, s.acc_width).as_signed()
            old = acc_rd.data.word_select(c, s.acc_width).as_signed()
            m.d.comb += out_wr.data.word_select(c, s.acc_width).eq(new + Mux(y.acc, old, 0))

        # run control
        with m.If(~running & self.start):
            empty = (self.cfg_tokens == 0) | (self.cfg_ktiles == 0) | (self.cfg_ntiles == 0)
            m.d.sync += [
                running.eq(~empty), done.eq(empty),
                ld_active.eq(0), ld_row.eq(0), ld_addr.eq(0), ld_count.eq(0), ld_kt.eq(0), ld_nt.eq(0), ld_all.eq(0),
                st_active.eq(0), st_t.eq(0), st_kt.eq(0), st_nt.eq(0), st_act_addr.eq(0), st_out_base.eq(0),
                st_count.eq(0), st_all.eq(0), st_age.eq(0),
            ]
            for t in taps[1:]:
                m.d.sync += t.valid.eq(0)
        with m.Elif(running & y.valid & y.last):
            m.d.sync += [running.eq(0), done.eq(1)]
        return m
