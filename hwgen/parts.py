"""FPGA parts: the capacities a design is checked against, from the vendors' data sheets.

Each :class:`Part` holds the device's logic, flip-flop, multiplier and block-RAM counts and
names the public document they come from. :func:`fits` checks a resource estimate
(:class:`sparseforge.hwgen.cost.Resources`, or anything with ``lut``, ``ff``, ``dsp`` and
``bram36`` attributes) against a part and names every overused resource.

Units, so that one estimate can be checked against every family:

* ``lut``: logic LUTs of the family (LUT6 on UltraScale+, LUT4 on ECP5).
* ``ff``: flip-flops.
* ``dsp``: hard multiplier blocks: DSP48E2 slices on UltraScale+; on ECP5 the 18x18
  multipliers (MULT18X18D; the data sheet's "18 X 18 Multipliers" row, two per sysDSP
  slice).
* ``bram36``: block RAM in 36 Kb tiles. UltraScale+ has RAMB36E2 tiles (each also usable as
  two RAMB18E2 halves, counted 0.5). ECP5 has 18 Kb sysMEM EBR blocks (DP16KD); they are
  converted as **2 EBR = 1 bram36** (``bram36 = ebr / 2``, the same number of bits), which is
  the bit capacity only: an 18 Kb EBR holds at most 36 bits per word, so a design's EBR count
  is its own mapping, not its UltraScale+ tile count times two. ``ebr`` keeps the native count.
* ``uram``: UltraRAM blocks (288 Kb), 0 where the family has none. sparseforge's designs do
  not use them (Yosys maps to UltraRAM only when asked), so the fit check ignores them.

The LUT counts of the ECP5 parts are the exact numbers of LUT4 sites that nextpnr-ecp5
reports for the device (``TRELLIS_COMB``); the data sheet rounds them to 24K/44K/84K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sparseforge.errors import InputError
from sparseforge.spec import FPGA_PARTS

__all__ = ["Part", "PartError", "PARTS", "fpga_part", "list_parts", "fits"]


class PartError(InputError):
    """An unknown FPGA part name."""


@dataclass(frozen=True)
class Part:
    """One FPGA device and where its figures come from."""

    name: str
    family: str          # "xcup" (Xilinx UltraScale+) or "ecp5" (Lattice ECP5)
    lut: int
    ff: int
    dsp: int
    bram36: float        # 36 Kb block-RAM tiles (ECP5: EBR / 2)
    board: str           # a board that carries it ("-" for none)
    source: str          # the data sheet (and table) the figures come from
    ebr: int = 0         # ECP5 only: 18 Kb EBR blocks (native count)
    uram: int = 0        # UltraRAM blocks (not used by the fit check)
    aliases: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "lut": self.lut, "ff": self.ff,
                "dsp": self.dsp, "bram36": self.bram36, "ebr": self.ebr, "uram": self.uram,
                "board": self.board, "source": self.source}


_DS890 = ("AMD/Xilinx DS890, UltraScale Architecture and Product Data Sheet: Overview "
          "(Virtex UltraScale+ FPGA feature summary, VU9P column)")
_DS891 = ("AMD/Xilinx DS891, Zynq UltraScale+ MPSoC Data Sheet: Overview "
          "(EV devices feature summary, ZU7EV column)")
_ECP5 = ("Lattice FPGA-DS-02012, ECP5 and ECP5-5G Family Data Sheet, Table 1.1 "
         "(LUTs, sysMEM 18 Kb blocks, 18 X 18 multipliers); exact LUT4 count from nextpnr-ecp5")

#: the data-sheet rows, one per part of :data:`sparseforge.spec.FPGA_PARTS`
_ROWS: dict[str, Part] = {p.name: p for p in (
    # Virtex UltraScale+ VU9P: 1,182,240 CLB LUTs, 2,364,480 CLB flip-flops, 6,840 DSP48E2,
    # 75.9 Mb block RAM = 2,160 RAMB36, 270 Mb UltraRAM = 960 URAM288.
    Part("XCVU9P", "xcup", lut=1_182_240, ff=2_364_480, dsp=6_840, bram36=2_160,
         uram=960, board="VCU1525", source=_DS890, aliases=("VU9P", "VCU1525")),
    # Zynq UltraScale+ ZU7EV: 230,400 CLB LUTs (504K system logic cells), 460,800 CLB
    # flip-flops, 1,728 DSP48E2, 11.0 Mb block RAM = 312 RAMB36, 27 Mb UltraRAM = 96 URAM288.
    Part("XCZU7EV", "xcup", lut=230_400, ff=460_800, dsp=1_728, bram36=312,
         uram=96, board="ZCU104", source=_DS891, aliases=("ZU7EV", "ZCU104")),
    # ECP5 LFE5U-25F / 45F / 85F: 24K / 44K / 84K LUTs (nextpnr: 24,288 / 43,848 / 83,640
    # LUT4 sites, one flip-flop each), 56 / 108 / 208 EBR of 18 Kb, 28 / 72 / 156 18x18
    # multipliers.
    Part("LFE5U-25F", "ecp5", lut=24_288, ff=24_288, dsp=28, bram36=28.0, ebr=56,
         board="-", source=_ECP5, aliases=("ECP5-25K", "25K")),
    Part("LFE5U-45F", "ecp5", lut=43_848, ff=43_848, dsp=72, bram36=54.0, ebr=108,
         board="-", source=_ECP5, aliases=("ECP5-45K", "45K")),
    Part("LFE5U-85F", "ecp5", lut=83_640, ff=83_640, dsp=156, bram36=104.0, ebr=208,
         board="-", source=_ECP5, aliases=("ECP5-85K", "85K")),
)}

#: name -> Part, in the order and with the names of the spec's list of parts
#: (:data:`sparseforge.spec.FPGA_PARTS`, what a spec's ``part`` may name). Names are matched
#: case-insensitively, with the aliases.
PARTS: dict[str, Part] = {name: _ROWS[name] for name in FPGA_PARTS}

_LOOKUP: dict[str, Part] = {}
for _p in PARTS.values():
    for _key in (_p.name, *_p.aliases):
        _LOOKUP[_key.upper()] = _p


def list_parts() -> list[str]:
    """The part names, in table order."""
    return list(PARTS)


def fpga_part(name: str | Part) -> Part:
    """The part called ``name`` (case-insensitive; board names such as ``ZCU104`` and short
    names such as ``VU9P`` or ``85k`` work too). Raises :class:`PartError` naming the
    allowed parts."""
    if isinstance(name, Part):
        return name
    if isinstance(name, str) and name.strip().upper() in _LOOKUP:
        return _LOOKUP[name.strip().upper()]
    raise PartError(f"FPGA part {name!r} is not known: choose one of {', '.join(PARTS)} "
                    f"(or a board: {', '.join(p.board for p in PARTS.values() if p.board != '-')})")


class _HasResources(Protocol):
    lut: int
    ff: int
    dsp: int
    bram36: float


#: resource name -> (attribute of the estimate, attribute of the part, unit in messages)
_CHECKED = (("lut", "lut", "LUT"), ("ff", "ff", "FF"), ("dsp", "dsp", "DSP"),
            ("bram36", "bram36", "BRAM36"))


def _num(x: float) -> str:
    """A count as people write it: 2048, 18.5."""
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def fits(resources: _HasResources, part: str | Part) -> tuple[bool, str]:
    """Whether ``resources`` fit ``part``: ``(True, "fits ...")`` with the tightest
    resource's use, or ``(False, reason)`` naming every overused resource with its use and
    the part's capacity, e.g. ``"DSP 2048 > 1728 on XCZU7EV"``.

    On ECP5 the estimate's ``lut``/``dsp``/``bram36`` are compared as they are; they are
    UltraScale+ figures (LUT6, DSP48E2, RAMB36) when they come from
    :func:`sparseforge.hwgen.cost.estimate_resources`, so an ECP5 verdict is only as good as
    that translation (LUT4s outnumber LUT6s; see docs/cost.md)."""
    p = fpga_part(part)
    over, use = [], []
    for attr, cap_attr, unit in _CHECKED:
        used = float(getattr(resources, attr))
        cap = float(getattr(p, cap_attr))
        use.append((used / cap if cap else float("inf"), unit, used, cap))
        if used > cap:
            over.append(f"{unit} {_num(used)} > {_num(cap)}")
    if over:
        return False, f"does not fit {p.name}: " + ", ".join(over)
    frac, unit, used, cap = max(use)
    return True, f"fits {p.name}: tightest is {unit} {_num(used)}/{_num(cap)} ({100 * frac:.1f}%)"
