"""AXI wrappers of the GEMM engines: AXI4-Lite control and status, AXI4-Stream data.

:class:`AxiEngine` puts one engine (the weight-stationary :class:`~.engine.GemmEngine` or the
output-stationary :class:`~.os_engine.OSEngine`, through the host interface they share,
:class:`~.engine.MemoryEngine`) behind the three standard interfaces a Vivado block design or
a Zynq system connects, the way FINN and hls4ml IP come:

- ``s_axi_control``: an AXI4-Lite slave (32-bit data, 8-bit byte addresses) with the
  registers of :data:`REGISTERS` and one register per configuration port of the engine
  (``cfg_*``, from ``CFG_BASE``);
- ``s_axis``: an AXI4-Stream slave whose words go into the activation or the weight memory
  (``IN_SEL``) from word ``IN_ADDR`` on, one memory word every ``ceil(word bits / TDATA
  bits)`` beats, least significant beat first;
- ``m_axis``: an AXI4-Stream master that sends ``OUT_COUNT`` words of the output memory from
  ``OUT_ADDR`` on, laid out the same way, with ``TLAST`` on the last beat;
- ``ap_clk`` and ``ap_rst_n`` (synchronous, active low), the names Vitis HLS gives its IP.

Every port carries Vivado's ``X_INTERFACE_INFO`` / ``X_INTERFACE_PARAMETER`` attributes, so
a module reference in a block design shows the three interfaces, the clock and the reset.
docs/handoff.md has the register map and the stream formats.

Behaviour a host relies on (each checked by ``tests/test_rtl_axi.py``):

- ``START`` runs the engine with the ``CFG_*`` registers; it is refused while a run or a
  read-back is in progress, or when a ``CFG_*`` value is above what the engine's port
  holds (no silent truncation). ``CYCLES`` then counts the run as the simulator does: from
  the cycle the engine samples ``start`` up to the first cycle ``done`` is high.
- ``CFG_*`` writes while a run is in progress are refused (the engine needs them stable).
- The input stream stalls (``s_axis_tready`` low) while the engine runs, so no word is
  lost to the engine's write lock. A word addressed past the end of the selected memory,
  or cut short by ``TLAST``, is dropped and sets ``IN_ERROR``.
- ``READ`` is refused while a run or another read-back is in progress, for ``OUT_COUNT``
  0, and for words past the end of the output memory.
- A refused command sets the sticky ``REFUSED`` status bit; the next accepted ``START`` or
  ``READ`` clears it. Every AXI4-Lite access answers OKAY (a SLVERR on a Zynq's PS is a
  bus fault), so hosts read ``STATUS`` to see a refusal.
"""

from __future__ import annotations

import re

from amaranth import C, Cat, ClockDomain, Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sparseforge.spec import HardwareSpec

from .engine import MemoryEngine, build_engine
from .os_engine import build_os_engine

__all__ = ["AxiEngine", "REGISTERS", "STATUS_BITS", "CONTROL_BITS", "CFG_BASE", "INFO_REGISTERS",
           "CTRL_ADDR_WIDTH", "DEFAULT_STREAM_WIDTH", "MAX_STREAM_WIDTH", "build_engine_axi",
           "build_os_engine_axi", "check_stream_width", "register_map", "add_port_attributes"]

#: AXI4-Lite byte-address bits (registers 0x00 .. 0xFC)
CTRL_ADDR_WIDTH = 8
#: TDATA bits of both streams unless the design parameter ``stream_width`` says otherwise
DEFAULT_STREAM_WIDTH = 64
#: the widest TDATA allowed: AMD's AXI DMA (PG021) streams 8 to 1024 bits
MAX_STREAM_WIDTH = 1024

#: the fixed registers: name -> byte offset
REGISTERS: dict[str, int] = {
    "CONTROL": 0x00,     # W: bit 0 START, bit 1 READ (write 1; reads as 0)
    "STATUS": 0x04,      # R: see STATUS_BITS
    "CYCLES": 0x08,      # R: cycles of the last run, start sampled -> done (saturates at 2^32 - 1)
    "IN_SEL": 0x0C,      # RW: input stream target, 0 = activation memory, 1 = weight memory
    "IN_ADDR": 0x10,     # RW: word address of the next input word (advances per word)
    "OUT_ADDR": 0x14,    # RW: first output word to send
    "OUT_COUNT": 0x18,   # RW: output words to send
    "ERROR_CODE": 0x1C,  # R: the engine's ``error`` output (its run-check code; 0: none or no such port)
}
#: the engine's configuration ports (``cfg_*``, in its signature's order) from here, 4 bytes each
CFG_BASE = 0x20
#: read-only constants a host driver sizes its buffers with: name -> byte offset
INFO_REGISTERS: dict[str, int] = {
    "ACT_DEPTH": 0x40, "WGT_DEPTH": 0x44, "OUT_DEPTH": 0x48,
    "ACT_BITS": 0x4C, "WGT_BITS": 0x50, "OUT_BITS": 0x54, "STREAM_BITS": 0x58,
}
CONTROL_BITS: dict[str, int] = {"START": 0, "READ": 1}
STATUS_BITS: dict[str, int] = {"BUSY": 0, "DONE": 1, "ERROR": 2, "IN_ERROR": 3, "READING": 4, "REFUSED": 5}
_MAX_CFG = (0x40 - CFG_BASE) // 4
_COUNTER_MAX = (1 << 32) - 1


def check_stream_width(width: object) -> int:
    """``width`` if it is an allowed TDATA width (a multiple of 8 from 8 to
    :data:`MAX_STREAM_WIDTH`), else ValueError naming it."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 8 or width > MAX_STREAM_WIDTH \
            or width % 8:
        raise ValueError(f"stream_width = {width!r} is not allowed: TDATA bits must be a multiple of 8 "
                         f"from 8 to {MAX_STREAM_WIDTH}")
    return width


def _beats(bits: int, width: int) -> int:
    return -(-bits // width)


def register_map(engine: MemoryEngine) -> dict[str, int]:
    """Every register of the wrapper of ``engine``: name -> byte offset."""
    cfgs = [n for n in engine.signature.members if n.startswith("cfg_")]
    return {**REGISTERS, **{n.upper(): CFG_BASE + 4 * i for i, n in enumerate(cfgs)}, **INFO_REGISTERS}


def add_port_attributes(text: str, top: str, attrs: dict[str, dict[str, str]]) -> str:
    """Write Verilog attributes ``(* NAME = "value" *)`` before the declarations of the
    ports of module ``top`` in ``text`` (Yosys' ``write_verilog`` form, one ``input``/``output``
    line per port); ValueError when a named port has no such line."""
    start = re.search(rf"^module {re.escape(top)}\(", text, re.M)
    if not start:
        raise ValueError(f"no module {top} in the Verilog")
    end = text.index("\nendmodule", start.end())
    body = text[start.end():end]
    for port, pairs in attrs.items():
        decl = re.compile(rf"^(\s*)((?:input|output)(?: \[\d+:0\])? {re.escape(port)};)$", re.M)
        found = decl.search(body)
        if not found:
            raise ValueError(f"module {top} declares no port {port}")
        lines = "".join(f'{found.group(1)}(* {k} = "{v}" *)\n' for k, v in pairs.items())
        body = body[:found.start()] + lines + body[found.start():]
    return text[:start.end()] + body + text[end:]


def _attrs(info: str, parameter: str | None = None) -> dict[str, str]:
    a = {"X_INTERFACE_INFO": info}
    if parameter:
        a["X_INTERFACE_PARAMETER"] = parameter
    return a


class AxiEngine(wiring.Component):
    """``engine`` behind AXI4-Lite control and AXI4-Stream data ports (see the module docstring).

    Ports: ``ap_clk``, ``ap_rst_n``; ``s_axi_control_*`` (AXI4-Lite slave, without the
    optional ``*prot``); ``s_axis_tdata``/``tvalid``/``tready``/``tlast``;
    ``m_axis_tdata``/``tkeep``/``tvalid``/``tready``/``tlast``."""

    clock_port = "ap_clk"
    reset_port = "ap_rst_n"
    reset_active_low = True

    def __init__(self, engine: MemoryEngine, *, stream_width: int = DEFAULT_STREAM_WIDTH):
        if not isinstance(engine, MemoryEngine):
            raise TypeError(f"engine must be a MemoryEngine, not {engine!r}")
        W = check_stream_width(stream_width)
        members = engine.signature.members
        self._cfgs = [n for n in members if n.startswith("cfg_")]
        known_in = {"start", "act_we", "act_addr", "act_wdata", "wgt_we", "wgt_addr", "wgt_wdata", "out_addr",
                    *self._cfgs}
        for name, member in members.items():
            if member.flow == In and name not in known_in:
                raise ValueError(f"the engine has an input {name!r} the AXI wrapper does not drive")
        if len(self._cfgs) > _MAX_CFG:
            raise ValueError(f"the engine has {len(self._cfgs)} configuration ports; the register map holds {_MAX_CFG}")
        self._engine = engine
        self._width = W
        self._latency = int(getattr(type(engine), "OUT_READ_LATENCY", 1))
        self._bits = {k: Shape.cast(members[f"{k}_wdata"].shape).width for k in ("act", "wgt")}
        self._bits["out"] = Shape.cast(members["out_rdata"].shape).width
        self._beats = {k: _beats(b, W) for k, b in self._bits.items()}
        nb = W // 8
        ports = {
            "ap_clk": In(1), "ap_rst_n": In(1),
            "s_axi_control_awaddr": In(CTRL_ADDR_WIDTH), "s_axi_control_awvalid": In(1),
            "s_axi_control_awready": Out(1),
            "s_axi_control_wdata": In(32), "s_axi_control_wstrb": In(4), "s_axi_control_wvalid": In(1),
            "s_axi_control_wready": Out(1),
            "s_axi_control_bresp": Out(2), "s_axi_control_bvalid": Out(1), "s_axi_control_bready": In(1),
            "s_axi_control_araddr": In(CTRL_ADDR_WIDTH), "s_axi_control_arvalid": In(1),
            "s_axi_control_arready": Out(1),
            "s_axi_control_rdata": Out(32), "s_axi_control_rresp": Out(2), "s_axi_control_rvalid": Out(1),
            "s_axi_control_rready": In(1),
            "s_axis_tdata": In(W), "s_axis_tvalid": In(1), "s_axis_tready": Out(1), "s_axis_tlast": In(1),
            "m_axis_tdata": Out(W), "m_axis_tkeep": Out(nb), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
        }
        super().__init__(ports)

    def port_attributes(self) -> dict[str, dict[str, str]]:
        """Vivado's interface attributes of each top-level port (``X_INTERFACE_INFO`` and, on
        the first port of an interface, ``X_INTERFACE_PARAMETER``), as AMD's own IP
        declares them: a block design's module reference then shows the interfaces."""
        nb = self._width // 8
        attrs = {
            "ap_clk": _attrs("xilinx.com:signal:clock:1.0 ap_clk CLK",
                             "XIL_INTERFACENAME ap_clk, ASSOCIATED_BUSIF s_axi_control:s_axis:m_axis, "
                             "ASSOCIATED_RESET ap_rst_n"),
            "ap_rst_n": _attrs("xilinx.com:signal:reset:1.0 ap_rst_n RST",
                               "XIL_INTERFACENAME ap_rst_n, POLARITY ACTIVE_LOW"),
        }
        for name in self.signature.members:
            if name.startswith("s_axi_control_"):
                field = name[len("s_axi_control_"):].upper()
                param = (f"XIL_INTERFACENAME s_axi_control, PROTOCOL AXI4LITE, DATA_WIDTH 32, "
                         f"ADDR_WIDTH {CTRL_ADDR_WIDTH}") if field == "AWADDR" else None
                attrs[name] = _attrs(f"xilinx.com:interface:aximm:1.0 s_axi_control {field}", param)
            elif name.startswith(("s_axis_", "m_axis_")):
                bus, field = name[:6], name[7:].upper()
                param = (f"XIL_INTERFACENAME {bus}, TDATA_NUM_BYTES {nb}, HAS_TREADY 1, HAS_TLAST 1, "
                         f"HAS_TKEEP {int(bus == 'm_axis')}, HAS_TSTRB 0, TUSER_WIDTH 0, TID_WIDTH 0, "
                         "TDEST_WIDTH 0") if field == "TDATA" else None
                attrs[name] = _attrs(f"xilinx.com:interface:axis:1.0 {bus} {field}", param)
        return attrs

    def finish_verilog(self, text: str, top: str) -> str:
        """``text`` (this component converted to Verilog as module ``top``) with
        :meth:`port_attributes` written before each port declaration of ``top``. Only the
        top module's ports get them (Amaranth's own signal attributes would also land on the
        internal wires a port is merged with)."""
        return add_port_attributes(text, top, self.port_attributes())

    @property
    def engine(self) -> MemoryEngine:
        return self._engine

    @property
    def params(self) -> dict[str, object]:
        """Generation parameters recorded in the manifest: the engine's, the stream width,
        beats per memory word, the output read latency and the register map."""
        return {**self._engine.params, "stream_width": self._width, "beats_per_word": dict(self._beats),
                "out_read_latency": self._latency, "registers": register_map(self._engine)}

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.ap_clk), cd.rst.eq(~self.ap_rst_n)]
        m.submodules.engine = eng = self._engine
        W, LAT = self._width, self._latency
        depths, bits, beats = self._engine.depths, self._bits, self._beats
        members = eng.signature.members

        # ------------------------------------------------------------ state
        start_pulse = Signal()
        refused = Signal()
        in_error = Signal()
        in_sel = Signal()
        in_ptr = Signal(32)
        out_addr = Signal(32)
        out_count = Signal(32)
        cfg = {n: Signal(32, name=f"reg_{n}") for n in self._cfgs}
        cycles = Signal(32)
        counting = Signal()
        rd_active = Signal()
        m_valid = Signal()
        eng_error = eng.error if "error" in members else C(0, 1)
        busy = Signal()
        reading = Signal()
        m.d.comb += [busy.eq(eng.busy | start_pulse), reading.eq(rd_active | m_valid)]

        # ------------------------------------------------------------ engine control
        m.d.sync += start_pulse.eq(0)
        m.d.comb += eng.start.eq(start_pulse)
        for n in self._cfgs:
            m.d.comb += getattr(eng, n).eq(cfg[n])
        # CYCLES: set to 1 on the edge that samples start, +1 per edge while done is low
        with m.If(start_pulse & ~eng.busy):
            m.d.sync += [cycles.eq(1), counting.eq(1)]
        with m.Elif(counting):
            with m.If(eng.done):
                m.d.sync += counting.eq(0)
            with m.Elif(cycles != _COUNTER_MAX):
                m.d.sync += cycles.eq(cycles + 1)

        # ------------------------------------------------------------ input stream
        maxb = max(beats["act"], beats["wgt"])
        buf = Signal(maxb * W)
        beat = Signal(range(max(2, maxb)))
        nxt = Signal(maxb * W)
        m.d.comb += nxt.eq(Cat(buf[W:], self.s_axis_tdata) if maxb > 1 else self.s_axis_tdata)
        hs = Signal()
        m.d.comb += [self.s_axis_tready.eq(~busy), hs.eq(self.s_axis_tvalid & ~busy)]
        sel_beats = Mux(in_sel, beats["wgt"], beats["act"])
        sel_depth = Mux(in_sel, depths["wgt"], depths["act"])
        word = {k: nxt[(maxb - beats[k]) * W:][:bits[k]] for k in ("act", "wgt")}
        wr_we, wr_sel = Signal(), Signal()
        wr_addr = Signal(range(max(depths["act"], depths["wgt"])))
        wr_data = Signal(max(bits["act"], bits["wgt"]))
        m.d.sync += wr_we.eq(0)
        with m.If(hs):
            with m.If(beat == sel_beats - 1):
                m.d.sync += beat.eq(0)
                with m.If(in_ptr < sel_depth):
                    m.d.sync += [wr_we.eq(1), wr_sel.eq(in_sel), wr_addr.eq(in_ptr), in_ptr.eq(in_ptr + 1),
                                 wr_data.eq(Mux(in_sel, word["wgt"], word["act"]))]
                with m.Else():
                    m.d.sync += in_error.eq(1)           # past the end of the memory: dropped
            with m.Elif(self.s_axis_tlast):
                m.d.sync += [beat.eq(0), in_error.eq(1)]  # TLAST inside a word: dropped
            with m.Else():
                m.d.sync += [beat.eq(beat + 1), buf.eq(nxt)]
        m.d.comb += [
            eng.act_we.eq(wr_we & ~wr_sel), eng.act_addr.eq(wr_addr), eng.act_wdata.eq(wr_data),
            eng.wgt_we.eq(wr_we & wr_sel), eng.wgt_addr.eq(wr_addr), eng.wgt_wdata.eq(wr_data),
        ]

        # ------------------------------------------------------------ output stream
        ob = beats["out"]
        rd_ptr = Signal(range(depths["out"] + 1))
        rd_left = Signal(range(depths["out"] + 1))
        rd_beat = Signal(range(max(2, ob)))
        rd_wait = Signal(range(LAT + 1))
        padded = Signal(ob * W)
        m.d.comb += [eng.out_addr.eq(rd_ptr), padded.eq(eng.out_rdata)]
        src_valid = Signal()
        m.d.comb += src_valid.eq(rd_active & (rd_wait == 0))
        m_data, m_last = Signal(W), Signal()
        m.d.comb += [self.m_axis_tdata.eq(m_data), self.m_axis_tvalid.eq(m_valid), self.m_axis_tlast.eq(m_last),
                     self.m_axis_tkeep.eq((1 << (W // 8)) - 1)]
        with m.If(~m_valid | self.m_axis_tready):
            m.d.sync += [m_valid.eq(src_valid), m_data.eq(padded.word_select(rd_beat, W)),
                         m_last.eq((rd_beat == ob - 1) & (rd_left == 1))]
            with m.If(src_valid):
                with m.If(rd_beat == ob - 1):
                    m.d.sync += [rd_beat.eq(0), rd_ptr.eq(rd_ptr + 1), rd_left.eq(rd_left - 1), rd_wait.eq(LAT)]
                    with m.If(rd_left == 1):
                        m.d.sync += rd_active.eq(0)
                with m.Else():
                    m.d.sync += rd_beat.eq(rd_beat + 1)
        with m.If(rd_active & (rd_wait != 0)):
            m.d.sync += rd_wait.eq(rd_wait - 1)

        # ------------------------------------------------------------ AXI4-Lite write
        awready, bvalid = Signal(), Signal()
        m.d.comb += [self.s_axi_control_awready.eq(awready), self.s_axi_control_wready.eq(awready),
                     self.s_axi_control_bvalid.eq(bvalid), self.s_axi_control_bresp.eq(0)]
        with m.If(bvalid & self.s_axi_control_bready):
            m.d.sync += bvalid.eq(0)
        strb, wdata = self.s_axi_control_wstrb, self.s_axi_control_wdata

        def merged(old):
            """The register's new value: the written bytes where WSTRB is set, else the old ones."""
            return Cat(*(Mux(strb[i], wdata[8 * i:8 * i + 8], old[8 * i:8 * i + 8]) for i in range(4)))

        cfg_fits = Signal()
        m.d.comb += cfg_fits.eq(1)
        for n in self._cfgs:
            shape = members[n].shape
            top = shape.stop - 1 if isinstance(shape, range) else (1 << Shape.cast(shape).width) - 1
            if top < _COUNTER_MAX:
                with m.If(cfg[n] > top):
                    m.d.comb += cfg_fits.eq(0)
        read_ok = Signal()
        m.d.comb += read_ok.eq((out_count != 0) & (out_addr + out_count <= depths["out"]))

        with m.If(~awready & self.s_axi_control_awvalid & self.s_axi_control_wvalid & ~bvalid):
            m.d.sync += awready.eq(1)
        with m.Elif(awready):              # AWVALID and WVALID are still high: the handshake
            m.d.sync += [awready.eq(0), bvalid.eq(1)]
            with m.Switch(self.s_axi_control_awaddr[2:]):
                with m.Case(REGISTERS["CONTROL"] // 4):
                    start, read = strb[0] & wdata[0], strb[0] & wdata[1]
                    with m.If(start & ~read & ~busy & ~reading & cfg_fits):
                        m.d.sync += [start_pulse.eq(1), refused.eq(0)]
                    with m.Elif(read & ~start & ~busy & ~reading & read_ok):
                        m.d.sync += [rd_active.eq(1), rd_ptr.eq(out_addr), rd_left.eq(out_count),
                                     rd_beat.eq(0), rd_wait.eq(LAT), refused.eq(0)]
                    with m.Elif(start | read):
                        m.d.sync += refused.eq(1)
                with m.Case(REGISTERS["IN_SEL"] // 4):
                    with m.If(strb[0]):
                        m.d.sync += [in_sel.eq(wdata[0]), beat.eq(0), in_error.eq(0)]
                with m.Case(REGISTERS["IN_ADDR"] // 4):
                    m.d.sync += [in_ptr.eq(merged(in_ptr)), beat.eq(0), in_error.eq(0)]
                with m.Case(REGISTERS["OUT_ADDR"] // 4):
                    m.d.sync += out_addr.eq(merged(out_addr))
                with m.Case(REGISTERS["OUT_COUNT"] // 4):
                    m.d.sync += out_count.eq(merged(out_count))
                for i, n in enumerate(self._cfgs):
                    with m.Case(CFG_BASE // 4 + i):
                        with m.If(busy):
                            m.d.sync += refused.eq(1)
                        with m.Else():
                            m.d.sync += cfg[n].eq(merged(cfg[n]))

        # ------------------------------------------------------------ AXI4-Lite read
        arready, rvalid, rdata = Signal(), Signal(), Signal(32)
        m.d.comb += [self.s_axi_control_arready.eq(arready), self.s_axi_control_rvalid.eq(rvalid),
                     self.s_axi_control_rdata.eq(rdata), self.s_axi_control_rresp.eq(0)]
        with m.If(rvalid & self.s_axi_control_rready):
            m.d.sync += rvalid.eq(0)
        status = Cat(busy, eng.done & ~start_pulse, eng_error.any(), in_error, reading, refused)
        values = {
            REGISTERS["STATUS"]: status, REGISTERS["CYCLES"]: cycles, REGISTERS["IN_SEL"]: in_sel,
            REGISTERS["IN_ADDR"]: in_ptr, REGISTERS["OUT_ADDR"]: out_addr, REGISTERS["OUT_COUNT"]: out_count,
            REGISTERS["ERROR_CODE"]: eng_error,
            **{CFG_BASE + 4 * i: cfg[n] for i, n in enumerate(self._cfgs)},
            INFO_REGISTERS["ACT_DEPTH"]: C(depths["act"], 32), INFO_REGISTERS["WGT_DEPTH"]: C(depths["wgt"], 32),
            INFO_REGISTERS["OUT_DEPTH"]: C(depths["out"], 32), INFO_REGISTERS["ACT_BITS"]: C(bits["act"], 32),
            INFO_REGISTERS["WGT_BITS"]: C(bits["wgt"], 32), INFO_REGISTERS["OUT_BITS"]: C(bits["out"], 32),
            INFO_REGISTERS["STREAM_BITS"]: C(W, 32),
        }
        with m.If(~arready & self.s_axi_control_arvalid & ~rvalid):
            m.d.sync += arready.eq(1)
        with m.Elif(arready):
            m.d.sync += [arready.eq(0), rvalid.eq(1), rdata.eq(0)]
            with m.Switch(self.s_axi_control_araddr[2:]):
                for offset, value in values.items():
                    with m.Case(offset // 4):
                        m.d.sync += rdata.eq(value)
        return m


def build_engine_axi(spec: HardwareSpec, *, stream_width: int = DEFAULT_STREAM_WIDTH, **depths: int) -> AxiEngine:
    """The weight-stationary engine for ``spec`` (depths as :func:`~.engine.build_engine`)
    behind AXI4-Lite and AXI4-Stream ports ``stream_width`` bits wide."""
    check_stream_width(stream_width)
    return AxiEngine(build_engine(spec, **depths), stream_width=stream_width)


def build_os_engine_axi(spec: HardwareSpec, *, stream_width: int = DEFAULT_STREAM_WIDTH,
                        **depths: int) -> AxiEngine:
    """The output-stationary engine for ``spec`` behind AXI4-Lite and AXI4-Stream ports."""
    check_stream_width(stream_width)
    return AxiEngine(build_os_engine(spec, **depths), stream_width=stream_width)
