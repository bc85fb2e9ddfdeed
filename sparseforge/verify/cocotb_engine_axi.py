"""cocotb bench for the AXI wrappers of the GEMM engines (``sf_engine_axi``, ``sf_os_engine_axi``),
driven only through their AXI ports with cocotbext-axi: an AXI4-Lite master on
``s_axi_control``, an AXI4-Stream source on ``s_axis`` and a sink on ``m_axis``.

The case gives the memory words (hex), the engine's ``cfg_*`` values, the expected output
words (signed fields) and the cycles the simulator predicts for a run. The bench

1. reads the constant registers and checks them against the case (depths, word bits, TDATA);
2. checks the input stream's error handling: ``TLAST`` inside a word, and a word past the end
   of the memory, are dropped and set ``IN_ERROR``;
3. streams the activation and the weight words in (TLAST-delimited packets, each memory word
   ``ceil(bits / TDATA)`` beats, least significant first), writes the ``CFG_*`` registers and
   starts the run; while it runs, a ``CFG_*`` write and a second ``START`` must be refused
   and the input stream must stall; ``CYCLES`` must equal the predicted cycles;
4. reads the output memory back over ``m_axis`` (one packet, ``TLAST`` on its last beat),
   with the sink pausing at random when the case asks for back-pressure; a ``START`` during
   the read-back must be refused; the words must equal the expected ones bit for bit;
5. checks the refused read-backs (no words, past the end) and ``START`` with a ``CFG_*``
   value above what the engine's port holds, then runs again (``runs``) to check restarts.

Everything measured is written to the result file; every check is also asserted here.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame, AxiStreamSink,
                           AxiStreamSource)

from sparseforge.hwgen.axi import CONTROL_BITS, STATUS_BITS
from sparseforge.verify.engine_driver import compare, read_case, signed, summary, write_result

START, READ = 1 << CONTROL_BITS["START"], 1 << CONTROL_BITS["READ"]


def _bit(status: int, name: str) -> int:
    return (status >> STATUS_BITS[name]) & 1


class Host:
    """The host side: register access by name, streams in and out."""

    def __init__(self, dut, regs: dict[str, int], width: int):
        self.dut = dut
        self.regs = regs
        self.nbytes = width // 8
        kw = {"reset_active_level": False}
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n, **kw)
        self.src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.ap_clk, dut.ap_rst_n, **kw)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.ap_clk, dut.ap_rst_n, **kw)

    async def write(self, name: str, value: int) -> None:
        resp = await self.axil.write(self.regs[name], value.to_bytes(4, "little"))
        assert int(resp.resp) == 0, f"write {name}: response {resp.resp}"

    async def read(self, name: str) -> int:
        resp = await self.axil.read(self.regs[name], 4)
        assert int(resp.resp) == 0, f"read {name}: response {resp.resp}"
        return int.from_bytes(resp.data, "little")

    def packet(self, words: list[int], bits: int) -> bytes:
        """Memory words as stream bytes: each word little-endian in whole beats."""
        per_word = -(-bits // (8 * self.nbytes)) * self.nbytes
        return b"".join(w.to_bytes(per_word, "little") for w in words)

    async def send(self, sel: int, addr: int, data: bytes) -> None:
        """One packet into memory ``sel`` (0 activation, 1 weight) from word ``addr`` on."""
        await self.write("IN_SEL", sel)
        await self.write("IN_ADDR", addr)
        await self.src.send(AxiStreamFrame(data))
        await self.src.wait()
        await ClockCycles(self.dut.ap_clk, 2)         # the last word's write is registered

    async def wait_done(self, timeout: int) -> int:
        """Poll STATUS until DONE; return the polls it took."""
        for polls in range(1, timeout + 1):
            status = await self.read("STATUS")
            if _bit(status, "DONE") and not _bit(status, "BUSY"):
                return polls
        raise AssertionError(f"no DONE after {timeout} polls of STATUS")


@cocotb.test()
async def axi_gemm(dut):
    case = read_case()
    regs, width, bits = case["registers"], case["stream_width"], case["bits"]
    rng = random.Random(case.get("seed", 1))
    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    dut.ap_rst_n.value = 0
    host = Host(dut, regs, width)
    if case.get("backpressure"):
        host.src.set_pause_generator(iter(lambda: rng.random() < 0.3, None))
        host.sink.set_pause_generator(iter(lambda: rng.random() < 0.4, None))
    await ClockCycles(dut.ap_clk, 4)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)
    result: dict = {"checks": []}

    # 1. constants
    info = {k: await host.read(k) for k in ("ACT_DEPTH", "WGT_DEPTH", "OUT_DEPTH", "ACT_BITS", "WGT_BITS",
                                            "OUT_BITS", "STREAM_BITS")}
    assert info == case["info"], f"constant registers {info}, expected {case['info']}"
    depth = {"act": info["ACT_DEPTH"], "wgt": info["WGT_DEPTH"], "out": info["OUT_DEPTH"]}

    # 2. input errors: TLAST inside a word, a word past the end of the memory
    beats_act = -(-bits["act"] // width)
    if beats_act > 1:
        await host.send(0, 0, bytes(host.nbytes))            # one beat of a multi-beat word
        assert _bit(await host.read("STATUS"), "IN_ERROR"), "TLAST inside a word did not set IN_ERROR"
        assert await host.read("IN_ADDR") == 0, "a word cut short by TLAST was written"
        result["checks"].append("tlast-inside-word")
    await host.send(0, depth["act"] - 1, host.packet([0, 0], bits["act"]))
    assert await host.read("IN_ADDR") == depth["act"], "the word at the last address was not written"
    assert _bit(await host.read("STATUS"), "IN_ERROR"), "a word past the end did not set IN_ERROR"
    await host.write("IN_ADDR", 0)
    assert not _bit(await host.read("STATUS"), "IN_ERROR"), "writing IN_ADDR did not clear IN_ERROR"
    result["checks"].append("word-past-end")

    # 3. load, configure, run
    words = {k: [int(w, 16) for w in case[k]] for k in ("act", "wgt")}
    await host.send(0, 0, host.packet(words["act"], bits["act"]))
    assert await host.read("IN_ADDR") == len(words["act"])
    await host.send(1, 0, host.packet(words["wgt"], bits["wgt"]))
    assert await host.read("IN_ADDR") == len(words["wgt"])
    assert not _bit(await host.read("STATUS"), "IN_ERROR")
    for name, value in case["cfg"].items():
        await host.write(name.upper(), value)
    expected = case["expected"]
    n_out = len(expected)
    cycles, outputs = [], []
    for run in range(case.get("runs", 1)):
        await host.write("CONTROL", START)
        if run == 0:                                     # while the run is in progress
            first = next(iter(case["cfg"])).upper()
            await host.write(first, case["cfg"][first.lower()] + 1)
            await host.write("CONTROL", START)
            status = await host.read("STATUS")
            stalled = int(dut.s_axis_tready.value) == 0
            assert _bit(status, "BUSY") and _bit(status, "REFUSED"), f"STATUS {status:#x} while running"
            assert stalled, "s_axis_tready is high while the engine runs"
            assert await host.read(first) == case["cfg"][first.lower()], "a CFG write while running took effect"
            result["checks"].append("refused-while-running")
        await host.wait_done(case["timeout_polls"])
        cycles.append(await host.read("CYCLES"))
        assert await host.read("ERROR_CODE") == 0, "the engine reported an error"
        if run == 0:
            assert _bit(await host.read("STATUS"), "REFUSED"), "REFUSED was cleared without an accepted command"

        # 4. read back, with a START during the read-back
        await host.write("OUT_ADDR", 0)
        await host.write("OUT_COUNT", n_out)
        await host.write("CONTROL", READ)
        await host.write("CONTROL", START)
        status = await host.read("STATUS")
        frame = await with_timeout(host.sink.recv(), 1000 * n_out + 10000, "ns")
        data = bytes(frame.tdata)
        assert len(data) == len(host.packet([0] * n_out, bits["out"])), \
            f"read-back packet of {len(data)} bytes (TLAST misplaced?)"
        per_word = len(data) // n_out
        got = []
        for i in range(n_out):
            word = int.from_bytes(data[i * per_word:(i + 1) * per_word], "little")
            assert word >> bits["out"] == 0, f"output word {i} has bits above OUT_BITS"
            got.append([signed(word >> (f * case["field_width"]), case["field_width"])
                        for f in range(case["fields"])])
        outputs.append(summary(got, expected))
        write_result({**result, "cycles": cycles, "outputs": outputs})
        compare(got, expected)
        if run == 0:
            assert _bit(status, "READING") and _bit(status, "REFUSED") and not _bit(status, "BUSY"), \
                f"START during the read-back: STATUS {status:#x}"
            assert await host.read("CYCLES") == cycles[0], "a START during the read-back ran the engine"
            result["checks"].append("start-refused-while-reading")
        await RisingEdge(dut.ap_clk)

    # 5. refused commands after the runs
    for addr, count in ((0, 0), (depth["out"] - n_out + 1, n_out)):
        await host.write("OUT_ADDR", addr)
        await host.write("OUT_COUNT", count)
        await host.write("CONTROL", READ)
        status = await host.read("STATUS")
        assert _bit(status, "REFUSED") and not _bit(status, "READING"), \
            f"READ of {count} words from {addr} (depth {depth['out']}) not refused: STATUS {status:#x}"
    result["checks"].append("read-refused")
    assert host.sink.empty(), "a refused READ sent words"
    tokens_reg = next(iter(case["cfg"])).upper()
    await host.write(tokens_reg, case["cfg_max"][tokens_reg.lower()] + 1)
    await host.write("CONTROL", START)
    status = await host.read("STATUS")
    assert _bit(status, "REFUSED") and not _bit(status, "BUSY"), f"START with {tokens_reg} too large: {status:#x}"
    result["checks"].append("start-refused-cfg-range")
    write_result({**result, "cycles": cycles, "outputs": outputs})
    assert cycles == [case["expected_cycles"]] * len(cycles), \
        f"CYCLES {cycles}, the simulator predicts {case['expected_cycles']}"
