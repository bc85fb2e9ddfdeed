"""FPGA resources of a generated design, without running Yosys: a model built from the RTL's
structure and calibrated against real ``synth_xilinx -family xcup`` runs.

:func:`estimate_resources` returns the LUT, FF, DSP48E2, RAMB36 and LUT-RAM counts that Yosys
``synth_xilinx -family xcup -noiopad -flatten`` reports (the same counting as
:class:`sparseforge.hwgen.synth.XilinxResources`) for ``design`` generated from a spec, in
microseconds. It is built from the generated structure (:mod:`sparseforge.hwgen.pe`,
``array``, ``engine``, ``os_array``, ``os_engine``), in three parts:

* **DSP48E2, exact.** Every PE multiplier is an ``act_width x weight_width`` signed
  multiply, mapped the way Yosys' ``mul2dsp`` techmap does it for UltraScale+
  (``DSP_A_MAXWIDTH=27 DSP_B_MAXWIDTH=18 DSP_A_MAXWIDTH_PARTIAL=18 DSP_A_MINWIDTH=2
  DSP_B_MINWIDTH=2 DSP_Y_MINWIDTH=9 DSP_SIGNEDONLY``): :func:`dsp_per_multiplier`
  replays that recursion. Products narrower than 9 bits stay in LUTs ("soft" multipliers).
* **Block RAM and LUT RAM, exact.** Each engine memory (depth x width from the engine's own
  ``*_depths`` and word widths, one write port, one or two synchronous read ports) is
  mapped the way Yosys' ``memory_libmap`` maps it with the UltraScale+ libraries
  (``brams_xc4v.txt -D HAS_SIZE_36 -D HAS_MIXWIDTH_SDP``, ``lutrams_xcu.txt``): every
  RAMB18/RAMB36 true- and simple-dual-port geometry (width splitting, depth splitting with
  packed address slices, port replication for the second read port) and every LUT-RAM
  shape is costed with memory_libmap's cost function, and the cheapest is taken, or flip-flops
  when those are cheaper (:func:`map_memory`).
* **LUT and FF, calibrated.** Structure-derived counts (*features*) per design: register bits
  of the PEs (activation, weights, index, operand, product, product-sum and partial-sum
  registers, with the widths Yosys keeps after merging sign-extension copies), of the array
  edges (input register, skew and deskew lines, flag chains), of the engines' sequencers and
  tag delay lines, and of the memories' address-slice selects; LUT-level counts of the index
  multiplexers (``n * act_width`` ``m``:1 multiplexers per PE), adder bits, soft-multiplier
  bits, memory read multiplexers and sequencer counter bits. LUT and FF are linear in these
  features; the coefficients (:data:`COEFFICIENTS`) are least-squares fits over the stored
  synthesis results in ``tests/data/synth_calib/xcup`` (the ``held_out`` points are left out
  of the fit and measure the model's error). :func:`fit_coefficients` refits them;
  ``python -m sparseforge.hwgen.calibrate`` regenerates the data.

docs/cost.md gives the formulas and the error per resource.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from sparseforge.errors import InputError
from sparseforge.spec import HardwareSpec

__all__ = [
    "Resources", "CostError", "MODEL_DESIGNS", "COEFFICIENTS", "FEATURES",
    "estimate_resources", "features", "dsp_per_multiplier", "map_memory", "MemoryMap",
    "memories", "out_banks", "check_multipliers", "fit_coefficients", "load_calibration", "predict",
]

#: designs the model covers (names as in :data:`sparseforge.hwgen.emit.DESIGNS`)
MODEL_DESIGNS: tuple[str, ...] = ("engine", "os_engine", "array", "pe")


class CostError(InputError):
    """A design the resource model does not cover, or a bad calibration record."""


@dataclass(frozen=True)
class Resources:
    """Resources of a design on UltraScale+, in Yosys ``synth_xilinx`` units: ``lut`` logic
    LUTs (LUT1..LUT6), ``ff`` flip-flops, ``dsp`` DSP48E2 slices, ``bram36`` RAMB36 tiles
    (RAMB18 = 0.5), ``lutram`` LUT-RAM primitives (RAM32M16, RAM64M8, ...; not in ``lut``).
    ``source`` says where the figures come from."""

    lut: int
    ff: int
    dsp: int
    bram36: float
    lutram: int = 0
    source: str = field(default="model", compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram36": self.bram36,
                "lutram": self.lutram, "source": self.source}


# ============================================================================ DSP mapping
# Yosys techlibs/common/mul2dsp.v with the macros synth_xilinx passes for -family xcup
_A_MAX, _B_MAX, _A_PART, _B_PART = 27, 18, 18, 18
_A_MIN, _B_MIN, _Y_MIN = 2, 2, 9


def dsp_per_multiplier(a_width: int, b_width: int, *, a_signed: bool = True, b_signed: bool = True,
                       y_width: int | None = None, _celltype: str = "$mul") -> int:
    """DSP48E2 slices Yosys uses for one ``a_width x b_width`` multiplier with a
    ``y_width``-bit product on UltraScale+ (0: it stays in LUTs). Replays ``mul2dsp.v``:
    operands wider than 27 (A) or 18 (B) bits are split into 17-bit partial products
    (one bit of sign headroom each); products under 9 bits and 1-bit operands are left to
    soft logic."""
    if y_width is None:
        y_width = a_width + b_width
    if _celltype == "$mul" and a_width < b_width:
        a_width, b_width, a_signed, b_signed = b_width, a_width, b_signed, a_signed
    if a_width < _A_MIN or b_width < _B_MIN or y_width < _Y_MIN:
        return 0
    if _celltype == "$mul" and not a_signed and not b_signed:
        return dsp_per_multiplier(a_width + 1, b_width + 1, a_signed=True, b_signed=True,
                                  y_width=y_width, _celltype="$mul")
    head = 1  # DSP_SIGNEDONLY: sign headroom of each partial product
    if a_width > _A_MAX:
        n = (a_width - _A_MAX + _A_PART - head - 1) // (_A_PART - head)
        part_y = min(y_width, b_width + _A_PART)
        last_a = a_width - n * (_A_PART - head)
        return (n * dsp_per_multiplier(_A_PART, b_width, a_signed=True, b_signed=b_signed,
                                       y_width=part_y, _celltype="$__mul")
                + dsp_per_multiplier(last_a, b_width, a_signed=a_signed, b_signed=b_signed,
                                     y_width=b_width + last_a, _celltype="$__mul"))
    if b_width > _B_MAX:
        n = (b_width - _B_MAX + _B_PART - head - 1) // (_B_PART - head)
        part_y = min(y_width, a_width + _B_PART)
        last_b = b_width - n * (_B_PART - head)
        return (n * dsp_per_multiplier(a_width, _B_PART, a_signed=a_signed, b_signed=True,
                                       y_width=part_y, _celltype="$__mul")
                + dsp_per_multiplier(a_width, last_b, a_signed=a_signed, b_signed=b_signed,
                                     y_width=a_width + last_b, _celltype="$__mul"))
    return 1


# ============================================================================ memory mapping
@dataclass(frozen=True)
class _Ram:
    """One RAM definition of the UltraScale+ libraries (one option combination)."""

    name: str
    kind: str                 # "distributed" or "block"
    abits: int                # address bits at the narrowest width
    dbits: tuple[int, ...]    # available widths
    byte: int                 # write-enable granularity (0: one enable per port)
    cost: float
    widthscale: float         # part of the cost that scales with the used width
    read_slots: int           # read ports left per copy once the write port is placed
    tiles: float              # RAMB36 tiles per cell (block RAM)


# lutrams_xcu.txt, then brams_xc4v.txt with HAS_SIZE_36 (library order = tie-break order).
# Left out: LUTRAM_SP and 64X8SW (a single read/write port: no room for a read port at
# another address), 32X16DR8 (no initial contents; Amaranth memories are zero-initialised).
_XCUP_RAMS: tuple[_Ram, ...] = (
    _Ram("LUTRAM_DP/5", "distributed", 5, (8,), 0, 16.0, 16.0, 1, 0.0),
    _Ram("LUTRAM_DP/6", "distributed", 6, (4,), 0, 16.0, 16.0, 1, 0.0),
    _Ram("LUTRAM_DP/7", "distributed", 7, (2,), 0, 16.0, 16.0, 1, 0.0),
    _Ram("LUTRAM_DP/8", "distributed", 8, (1,), 0, 16.0, 16.0, 1, 0.0),
    _Ram("LUTRAM_QP/5", "distributed", 5, (4,), 0, 16.0, 16.0, 3, 0.0),
    _Ram("LUTRAM_QP/6", "distributed", 6, (2,), 0, 16.0, 16.0, 3, 0.0),
    _Ram("LUTRAM_OP/5", "distributed", 5, (2,), 0, 16.0, 16.0, 7, 0.0),
    _Ram("LUTRAM_OP/6", "distributed", 6, (1,), 0, 16.0, 16.0, 7, 0.0),
    _Ram("LUTRAM_SDP/5", "distributed", 5, (14,), 0, 16.0, 16.0, 1, 0.0),
    _Ram("LUTRAM_SDP/6", "distributed", 6, (7,), 0, 16.0, 16.0, 1, 0.0),
    _Ram("BRAM_TDP/HALF", "block", 14, (1, 2, 4, 9, 18), 9, 129.0, 0.0, 1, 0.5),
    _Ram("BRAM_TDP/FULL", "block", 15, (1, 2, 4, 9, 18, 36), 9, 257.0, 0.0, 1, 1.0),
    _Ram("BRAM_SDP/HALF", "block", 14, (1, 2, 4, 9, 18, 36), 9, 129.0, 0.0, 1, 0.5),
    _Ram("BRAM_SDP/FULL", "block", 15, (1, 2, 4, 9, 18, 36, 72), 9, 257.0, 0.0, 1, 1.0),
)
_FACTOR_MUX = _FACTOR_DEMUX = 0.5
_FACTOR_EMU = 2.0
_LOGIC_COST_RAM = 1.0


@dataclass(frozen=True)
class MemoryMap:
    """How Yosys maps one memory: ``kind`` ("block", "distributed" or "logic"), the library
    cell, the chosen width ``unit``, address slices ``slices`` (depth split), data copies
    ``copies`` x port replicas ``replicas``; the resulting ``bram36`` tiles and ``lutram``
    primitives; ``mux_bits`` (read-data bits x slices to multiplex, per read port summed),
    ``select_ffs`` (registered slice selects) and ``data_ffs`` (flip-flops holding data:
    the whole memory for "logic", the emulated read register for LUT RAM)."""

    width: int
    depth: int
    read_ports: int
    kind: str
    cell: str
    unit: int
    slices: int
    copies: int
    replicas: int
    cost: float
    bram36: float
    lutram: int
    mux_luts: int
    select_ffs: int
    data_ffs: int


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def mux_luts(k: int) -> int:
    """LUT6s of one ``k``:1 multiplexer bit: a LUT6 selects 1 of 4 (4 data + 2 select
    inputs); wider multiplexers are trees of them (the default synth_xilinx flow does not use
    MUXF7/MUXF8 for these, as the calibration runs show: an 8:1 bit costs 3 LUTs)."""
    if k <= 1:
        return 0
    if k <= 4:
        return 1
    first = _cdiv(k, 4)
    return first + mux_luts(first)


def _geometry(ram: _Ram, width: int, depth: int, nread: int) -> tuple[float, int, int, int, int]:
    """memory_libmap ``handle_geom`` for one RAM definition and a memory with one
    write port (one enable for the whole word) and ``nread`` unshared synchronous read ports:
    returns (cost, base width, slices, copies, replicas) of the cheapest base width."""
    replicas = max(1, _cdiv(nread, ram.read_slots))
    score_emu = nread  # one point for every read port not shared with the write port
    best: tuple[float, int, int, int, int] | None = None
    best_int = 0  # memory_libmap keeps the best cost in an int
    for b, unit in enumerate(ram.dbits):
        eff_byte = ram.byte if (ram.byte and ram.byte <= unit) else unit
        swizzle = _cdiv(width, eff_byte) * eff_byte
        slices = _cdiv(depth, 1 << (ram.abits - b))
        copies = _cdiv(slices * swizzle, unit)
        demux = slices if slices != 1 else 0
        mux = nread * (slices - 1) * width
        cost = ((ram.cost - ram.widthscale) * copies * replicas
                + ram.widthscale * slices * width / unit * replicas
                + mux * _FACTOR_MUX + demux * _FACTOR_DEMUX + score_emu * _FACTOR_EMU)
        if best is None or cost < best_int:
            best = (cost, unit, slices, copies, replicas)
            best_int = int(cost)
    assert best is not None
    return best


@lru_cache(maxsize=4096)
def map_memory(width: int, depth: int, read_ports: int = 1) -> MemoryMap:
    """The mapping Yosys ``synth_xilinx -family xcup`` chooses for a ``depth x width`` memory
    with one write port and ``read_ports`` synchronous read ports at other addresses (the
    engines' memories), following ``memory_libmap``: the cheapest geometry of each RAM kind,
    then the cheapest kind, flip-flops ("logic") when nothing costs less than one unit per
    bit."""
    if width < 1 or depth < 1 or read_ports < 1:
        raise ValueError(f"memory {depth} x {width} with {read_ports} read ports is not a memory")
    cands = [(ram, *_geometry(ram, width, depth, read_ports)) for ram in _XCUP_RAMS]
    # prune_post_geom: the cheapest of each kind survives (the first on a tie)
    keep: dict[str, int] = {}
    for i, c in enumerate(cands):
        if c[0].kind not in keep or c[1] < cands[keep[c[0].kind]][1]:
            keep[c[0].kind] = i
    best = int(width * depth * _LOGIC_COST_RAM)
    chosen = None
    for i in sorted(keep.values()):
        if cands[i][1] < best:
            chosen, best = cands[i], int(cands[i][1])
    sel_bits = lambda slices: (slices - 1).bit_length()  # noqa: E731
    if chosen is None:
        # memory_map: one register per bit, a depth:1 read multiplexer per read port
        return MemoryMap(width, depth, read_ports, "logic", "FF", width, depth, 1, 1,
                         float(width * depth), 0.0, 0, read_ports * width * mux_luts(depth),
                         0, width * depth + read_ports * width)
    ram, cost, unit, slices, copies, replicas = chosen
    cells = copies * replicas
    return MemoryMap(
        width, depth, read_ports, ram.kind, ram.name, unit, slices, copies, replicas, cost,
        bram36=cells * ram.tiles if ram.kind == "block" else 0.0,
        lutram=cells if ram.kind == "distributed" else 0,
        mux_luts=read_ports * width * mux_luts(slices),
        select_ffs=read_ports * sel_bits(slices) if slices > 1 else 0,
        # LUT RAM reads asynchronously: the read port's data register stays in fabric
        data_ffs=read_ports * width if ram.kind == "distributed" else 0,
    )


# ============================================================================ structure
def _bits(stop: int) -> int:
    """Width of an Amaranth ``Signal(range(stop))``."""
    return max(0, (stop - 1).bit_length())


def _engine_module(design: str):
    if design == "engine":
        from sparseforge.hwgen import engine as mod
        return mod.engine_depths, mod.word_widths
    from sparseforge.hwgen import os_engine as mod
    return mod.os_engine_depths, mod.os_word_widths


def out_banks(depth: int) -> list[int]:
    """Depths of the banks an engine builds its output memory of (``hwgen.engine.OUT_BANK_WORDS``
    words each, the last one the rest)."""
    from sparseforge.hwgen.engine import OUT_BANK_WORDS
    return [min(OUT_BANK_WORDS, depth - b) for b in range(0, depth, OUT_BANK_WORDS)]


def memories(spec: HardwareSpec, design: str = "engine") -> dict[str, MemoryMap]:
    """The engine's memories with their Yosys mapping: ``act``, ``wgt`` and the output memory's
    banks (``out``, or ``out0``, ``out1``, ... when there are several; :func:`out_banks`),
    each with one read port (the output's is shared by the accumulator and the host); depths
    and word widths are the ones the engine module itself builds with."""
    if design not in ("engine", "os_engine"):
        return {}
    depths_of, widths_of = _engine_module(design)
    d, w = depths_of(spec), widths_of(spec)
    out = {k: map_memory(w[k], d[f"{k}_depth"], 1) for k in ("act", "wgt")}
    banks = out_banks(d["out_depth"])
    for b, depth in enumerate(banks):
        out["out" if len(banks) == 1 else f"out{b}"] = map_memory(w["out"], depth, 1)
    return out


@dataclass(frozen=True)
class _PE:
    """Per-PE quantities shared by both dataflows."""

    aw: int
    ww: int
    iw: int
    acc: int
    n: int
    m: int
    sparse: bool
    total: int          # product-sum register bits Yosys keeps (sign copies merged)
    dsp_per_mul: int
    sum_adder_bits: int  # adder bits of the n-product sum

    @classmethod
    def of(cls, s: HardwareSpec) -> "_PE":
        aw, ww, acc = s.act_width, s.weight_width, s.acc_width
        # Amaranth widens a sum by one bit per addition: prod0 + ... + prod(n-1) has
        # aw + ww + n - 1 bits; the accumulator-wide register keeps that many distinct bits
        total = min(acc, aw + ww + s.n - 1)
        sum_bits = sum(min(acc, aw + ww + k) for k in range(1, s.n))
        return cls(aw, ww, s.idx_width, acc, s.n, s.m, not s.dense, total,
                   dsp_per_multiplier(aw, ww), sum_bits)

    @property
    def operand_ffs(self) -> int:
        """Registers every PE of both dataflows has: the activation group, the selected
        operands, the products and the product sum."""
        return (self.m * self.aw + self.n * self.aw + self.n * self.ww
                + self.n * (self.aw + self.ww) + self.total)

    @property
    def mux_luts(self) -> int:
        """Index multiplexers: ``n`` multipliers each pick ``act_width`` bits out of ``m``
        lanes (dense PEs have none)."""
        return self.n * self.aw * mux_luts(self.m) if self.sparse else 0

    @property
    def soft_mul_bits(self) -> int:
        """Partial-product bits of multipliers left in LUTs (products under 9 bits)."""
        return self.n * self.aw * self.ww if self.dsp_per_mul == 0 else 0


#: names of the LUT and FF features (see :func:`features`)
FEATURES: dict[str, tuple[str, ...]] = {
    "lut": ("index_mux", "adder_bits", "gate_bits", "soft_mul_bits", "mem_mux", "ctrl_bits"),
    "ff": ("pe_regs", "edge_regs", "ctrl_regs", "mem_regs"),
}


def _ws_psum_bits(pe: _PE, rows: int, *, standalone: bool) -> list[int]:
    """Partial-sum register bits per array row, as Yosys keeps them. Row 0 adds nothing to
    the product sum (it keeps its distinct bits); row 1's adder is one bit wider (``wreduce``
    narrows an adder of sign-extended operands to one bit over the wider one). Later rows
    depend on whether Yosys still sees the row above as sign-extended, which differs between
    the bare array (no: accumulator-wide from row 2) and the engine (yes, one more bit per
    row, but the last row is accumulator-wide), as measured: 8-bit 2:4 PEs keep 17, 18, 28,
    28 bits in a 4x4 array and 17, 18, 19, 28 in the 4x4 engine; two rows keep 17 and 18."""
    if standalone:
        bits = [pe.total, pe.total + 1] + [pe.acc] * (rows - 2)
    else:
        bits = [pe.total + r for r in range(rows)]
        if rows >= 3:
            bits[-1] = pe.acc
    return [min(pe.acc, b) for b in bits[:rows]]


def _ws_pe_regs(pe: _PE) -> int:
    """Weight-stationary PE registers except the partial sum and the first flag."""
    w = 2 * pe.n * pe.ww + (2 * pe.n * pe.iw if pe.sparse else 0)  # shadow + active
    return pe.operand_ffs + w


def _os_pe_regs(pe: _PE) -> int:
    """Output-stationary PE registers except the flags: operands, the forwarded weights
    (and indices), the accumulator and the result register."""
    return pe.operand_ffs + pe.n * pe.ww + (pe.n * pe.iw if pe.sparse else 0) + 2 * pe.acc


def _dense_merged(pe: _PE, rows: int, cols: int) -> int:
    """Register bits Yosys merges in a dense array: a dense PE's operand register takes its
    activation lane from the activation register, exactly as the right neighbour's
    activation register does, so the two are one register (all but the last column)."""
    return 0 if pe.sparse else rows * (cols - 1) * pe.n * pe.aw


def _ws_array(s: HardwareSpec, pe: _PE, *, standalone: bool) -> dict[str, float]:
    R, C = s.rows, s.cols
    gw = s.m * s.act_width
    psum = _ws_psum_bits(pe, R, standalone=standalone)
    edge = (R * gw + 1                      # input register, first flag
            + gw * R * (R - 1) // 2         # input skew
            + (R + C - 2)                   # first-flag delays (equal delays merge)
            + psum[-1] * C * (C - 1) // 2)  # output deskew
    if standalone:
        edge += 1 + (s.rows + s.cols + s.pe_latency - 1)  # valid register and delay line
    return {
        "index_mux": R * C * pe.mux_luts,
        "adder_bits": R * C * pe.sum_adder_bits + C * sum(psum[1:]),
        "soft_mul_bits": R * C * pe.soft_mul_bits,
        "pe_regs": R * C * _ws_pe_regs(pe) + C * sum(psum) - _dense_merged(pe, R, C),
        "edge_regs": edge,
    }


def _os_array(s: HardwareSpec, pe: _PE) -> dict[str, float]:
    R, C = s.rows, s.cols
    gw = s.m * s.act_width
    wgw = s.n * (s.weight_width + (s.idx_width if pe.sparse else 0))
    edge = (gw * R * (R - 1) // 2           # row skew
            + wgw * C * (C - 1) // 2        # column skew
            + pe.acc * R * (R - 1) // 2     # output deskew
            + 2 * (R - 1)                   # row flags (equal delays merge)
            + 2 * (R + C + 2))              # PE flag chains (first/last through 4 stages)
    return {
        "index_mux": R * C * pe.mux_luts,
        # product sum, accumulate adder and the result chain's 2:1 multiplexer per PE
        "adder_bits": R * C * (pe.sum_adder_bits + 2 * pe.acc),
        "soft_mul_bits": R * C * pe.soft_mul_bits,
        # the weight operand register copies the weight register, as the PE below does
        "pe_regs": R * C * _os_pe_regs(pe) - _dense_merged(pe, R, C) - (R - 1) * C * pe.n * pe.ww,
        "edge_regs": edge,
    }


def _check_regs(pairs: list[tuple[int, int | None]], captured: int) -> int:
    """Register bits of the engines' run checks (``MemoryEngine._run_checks``): the three
    stage flags, the configuration words captured at start (``captured`` bits: one register
    per distinct port), per check its product (or copy) and its comparison flag."""
    return 3 + captured + sum(a + (b or 0) + 1 for a, b in pairs)


def check_multipliers(spec: HardwareSpec, design: str, d: Mapping[str, int]) -> list[tuple[int, int]]:
    """Operand widths of the run checks' multipliers (unsigned configuration ports)."""
    if design == "engine":
        tile, tok = _bits(d["wgt_depth"] // spec.rows + 1), _bits(d["act_depth"] + 1)
        return [(tile, tile), (tile, tok), (tile, tok)]
    gmax = max(d["act_depth"], d["wgt_depth"])
    g, tt, nt = _bits(gmax + 1), _bits(d["act_depth"] + 1), _bits(d["wgt_depth"] + 1)
    return [(nt, g), (tt, g), (tt, nt)]


def _bank_regs(d: Mapping[str, int], width: int) -> int:
    """Registers of a banked output memory's read: each bank's data, the bank index twice."""
    n = len(out_banks(d["out_depth"]))
    return 0 if n == 1 else n * width + 2 * _bits(n)


def _bank_muxes(d: Mapping[str, int], width: int) -> int:
    """LUTs of a banked output memory's bank selects: the accumulator's and the host's."""
    n = len(out_banks(d["out_depth"]))
    return 0 if n == 1 else 2 * width * mux_luts(n)


def _ws_ctrl(s: HardwareSpec, d: Mapping[str, int], out_addr: int) -> tuple[int, int]:
    """(register bits, counter bits) of the weight-stationary sequencer, run checks, tag
    line and accumulator pipeline (engine.py)."""
    R, C = s.rows, s.cols
    act, wgt, out = d["act_depth"], d["wgt_depth"], d["out_depth"]
    max_tiles = wgt // R
    tile = _bits(max_tiles + 1)
    tok = _bits(act + 1)
    row = _bits(max(2, R))
    counters = (row + _bits(wgt + 1) + 2 * tile                   # loader
                + tok + 2 * tile + _bits(act + 1) + _bits(out + act + 1) + _bits(C + 1))  # streamer
    lat = 1 if len(out_banks(out)) == 1 else 2
    L = s.rows + s.cols + s.pe_latency
    acc = C * s.acc_width
    # the tag line: valid, acc, last and the address up to stage 1 (L taps), valid, last and
    # the address to the write (2 more), valid and the address for forwarding (lat more)
    tags = L * (3 + out_addr) + 2 * (2 + out_addr) + lat * (1 + out_addr)
    pipeline = (3 + lat) * acc + lat + 2                        # old_q, sum_q, write-backs; flags
    cfg = 2 * tile + 2 * tok + 1                                # last k-/n-tile, tokens, last token, accumulate
    checks = _check_regs([(tile, None), (tile, tile), (tile, tok), (tile, tok)], 2 * tile)
    flags = 2 + 3 + 3 + 1 + 2 + 2 * row                         # running/done, error, active/all/ahead, x_first, w_we, w_row
    return counters + tags + pipeline + cfg + checks + flags, counters


def _os_ctrl(s: HardwareSpec, d: Mapping[str, int], out_addr: int) -> tuple[int, int]:
    """(register bits, counter bits) of the output-stationary sequencer, run checks and
    writer (os_engine.py)."""
    R, C = s.rows, s.cols
    act, wgt, out = d["act_depth"], d["wgt_depth"], d["out_depth"]
    gmax = max(act, wgt)
    g, tt, nt = _bits(gmax + 1), _bits(act + 1), _bits(wgt + 1)
    cnt = _bits(max(gmax, 2 * C) + 1)
    # the tile bases and addresses only address their memory: bits above its address width
    # are dead
    counters = (cnt + tt + nt + 2 * min(_bits(act + gmax + 1), _bits(act)) + 2 * min(_bits(wgt + gmax + 1), _bits(wgt))
                + _bits(out + C + 1)                              # sequencer
                + _bits(2 * C) + out_addr)                        # writer's column generator
    lat = 1 if len(out_banks(out)) == 1 else 2
    D = 1 + 4 + R
    tags = (D - 1 - lat) * (2 + out_addr) + (lat + 2) * (2 + out_addr)
    pipeline = 2 * R * s.acc_width                               # old_q, sum_q
    cfg = 2 * g + cnt + tt + nt + 1                              # groups, last group, period, last tiles, accumulate
    checks = _check_regs([(g, None), (nt, g), (tt, g), (tt, nt)], tt + nt)
    flags = 2 + 3 + 1 + 2 + 2                                    # running/done, error, all, x_first/last, gen
    return counters + tags + pipeline + cfg + checks + flags, counters


def features(spec: HardwareSpec, design: str = "engine") -> dict[str, float]:
    """The structure-derived LUT and FF features of ``design`` for ``spec`` (names in
    :data:`FEATURES`), plus the exact ``dsp``, ``bram36`` and ``lutram`` counts."""
    if not isinstance(spec, HardwareSpec):
        raise TypeError(f"spec must be a HardwareSpec, not {spec!r}")
    if design not in MODEL_DESIGNS:
        raise CostError(f"design = {design!r} is not covered by the resource model: choose one of "
                        f"{', '.join(MODEL_DESIGNS)}")
    pe = _PE.of(spec)
    f = {k: 0.0 for k in (*FEATURES["lut"], *FEATURES["ff"])}
    if design == "pe":
        f.update(index_mux=pe.mux_luts, adder_bits=pe.sum_adder_bits + pe.acc,
                 soft_mul_bits=pe.soft_mul_bits, pe_regs=_ws_pe_regs(pe) + pe.acc + 1)
        pes = 1
    elif design == "array":
        f.update(_ws_array(spec, pe, standalone=True))
        pes = spec.rows * spec.cols
    else:
        pes = spec.rows * spec.cols
        mems = memories(spec, design)
        depths = _engine_module(design)[0](spec)
        out_addr = _bits(depths["out_depth"])
        widths = _engine_module(design)[1](spec)
        lat = 1 if len(out_banks(depths["out_depth"])) == 1 else 2
        if design == "engine":
            f.update(_ws_array(spec, pe, standalone=False))
            regs, counters = _ws_ctrl(spec, depths, out_addr)
            acc_bits = spec.cols * pe.acc      # output accumulators
            # the add's old word: an AND-OR of the read word and lat + 1 forwarded words
            gates = acc_bits * mux_luts(lat + 2)
        else:
            f.update(_os_array(spec, pe))
            regs, counters = _os_ctrl(spec, depths, out_addr)
            acc_bits = spec.rows * pe.acc
            gates = acc_bits                   # the read word or 0 (cfg_accumulate)
        f["adder_bits"] += acc_bits
        f["gate_bits"] = gates
        f["ctrl_regs"] = regs
        f["ctrl_bits"] = counters
        f["mem_mux"] = sum(mm.mux_luts for mm in mems.values()) + _bank_muxes(depths, widths["out"])
        # memory glue: slice selects, LUT-RAM read registers, the banks' read registers and
        # (weight-stationary) the weight word's register
        f["mem_regs"] = (sum(mm.select_ffs + mm.data_ffs for mm in mems.values()) + _bank_regs(depths, widths["out"])
                         + (widths["wgt"] if design == "engine" else 0))
        f["bram36"] = sum(mm.bram36 for mm in mems.values())
        f["lutram"] = sum(mm.lutram for mm in mems.values())
    f["dsp"] = pes * spec.n * pe.dsp_per_mul
    if design in ("engine", "os_engine"):
        f["dsp"] += sum(dsp_per_multiplier(a, b, a_signed=False, b_signed=False)
                        for a, b in check_multipliers(spec, design, _engine_module(design)[0](spec)))
    f.setdefault("bram36", 0.0)
    f.setdefault("lutram", 0)
    return f


# ============================================================================ calibration
#: features counted exactly rather than fitted: the memories' slice-select and read-data
#: registers and flip-flop memories are plain register bits, and the calibration designs have
#: too few of them (at most 4) to fit a coefficient
FIXED: dict[str, dict[str, float]] = {"ff": {"mem_regs": 1.0}}

#: LUT and FF coefficients per feature: least squares (non-negative) over the calibration
#: points of tests/data/synth_calib/xcup that are not held out; regenerate with
#: ``python -m sparseforge.hwgen.calibrate --fit`` (tests/test_cost.py checks they match)
COEFFICIENTS: dict[str, dict[str, float]] = {
    "lut": {"index_mux": 0.9651, "adder_bits": 0.9799, "gate_bits": 1.1542, "soft_mul_bits": 1.6669,
            "mem_mux": 0.8125, "ctrl_bits": 2.8346},
    "ff": {"pe_regs": 0.9997, "edge_regs": 1.0051, "ctrl_regs": 0.9827, "mem_regs": 1.0},
}


def predict(feats: Mapping[str, float], coeffs: Mapping[str, Mapping[str, float]] | None = None) -> tuple[float, float]:
    """(LUT, FF) of a feature dict under ``coeffs`` (default :data:`COEFFICIENTS`)."""
    c = COEFFICIENTS if coeffs is None else coeffs
    lut = sum(c["lut"][k] * feats[k] for k in FEATURES["lut"])
    ff = sum(c["ff"][k] * feats[k] for k in FEATURES["ff"])
    return lut, ff


def estimate_resources(spec: HardwareSpec, design: str = "engine", *,
                       coeffs: Mapping[str, Mapping[str, float]] | None = None) -> Resources:
    """Estimated UltraScale+ resources of ``design`` generated for ``spec`` (see the module
    docstring). ``design`` is one of :data:`MODEL_DESIGNS`; another name raises
    :class:`CostError` (an :class:`~sparseforge.errors.InputError`)."""
    f = features(spec, design)
    lut, ff = predict(f, coeffs)
    return Resources(lut=int(round(lut)), ff=int(round(ff)), dsp=int(f["dsp"]),
                     bram36=float(f["bram36"]), lutram=int(f["lutram"]),
                     source="sparseforge.hwgen.cost model (Yosys synth_xilinx -family xcup units)")


def load_calibration(folder: Path | str) -> list[dict[str, Any]]:
    """The stored calibration records (``*.json``) of ``folder``, sorted by point name."""
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        rec = json.loads(path.read_text())
        for key in ("design", "spec", "resources"):
            if key not in rec:
                raise CostError(f"calibration record {path} has no {key!r}")
        out.append(rec)
    return out


def _record_features(rec: Mapping[str, Any]) -> dict[str, float]:
    return features(HardwareSpec.from_mapping(rec["spec"], source=str(rec.get("point"))), rec["design"])


def _nnls(rows: list[list[float]], target: list[float], scale: list[float]) -> list[float]:
    """Non-negative least squares, minimising the sum of squared *relative* errors (row i
    is weighted by 1/scale[i], the real count, so small designs count as much as large
    ones)."""
    import numpy as np
    from scipy.optimize import nnls
    A = np.asarray(rows, dtype=float)
    y = np.asarray(target, dtype=float)
    w = 1.0 / np.maximum(np.asarray(scale, dtype=float), 1.0)
    used = np.any(A != 0, axis=0)
    x = np.zeros(A.shape[1])
    if used.any():
        x[used], _ = nnls(A[:, used] * w[:, None], y * w)
    return [float(v) for v in x]


def fit_coefficients(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Fit :data:`COEFFICIENTS` to calibration records (held-out ones are skipped):
    non-negative least squares on relative error, LUT and FF separately, rounded to 4
    decimals. The features in :data:`FIXED` keep their coefficient and are subtracted
    from the target first."""
    fit = [r for r in records if not r.get("held_out")]
    feats = [_record_features(r) for r in fit]
    out: dict[str, dict[str, float]] = {}
    for res in ("lut", "ff"):
        fixed = FIXED.get(res, {})
        names = [k for k in FEATURES[res] if k not in fixed]
        target = [float(r["resources"][res]) - sum(c * f[k] for k, c in fixed.items())
                  for r, f in zip(fit, feats)]
        x = _nnls([[f[k] for k in names] for f in feats], target,
                  [float(r["resources"][res]) for r in fit])
        out[res] = {k: round(fixed[k] if k in fixed else x[names.index(k)], 4) for k in FEATURES[res]}
    return out
