"""Cycle model of the SORE, the N:M mask generator of ``hwgen.sore.SoreUnit``.

``lanes`` lanes each rank one group of ``m`` weights at a time, one weight per cycle, and
emit the group's mask one cycle after its last weight while starting the next group in the
same cycle (see the RTL's docstring). ``tests/test_rtl_sore.py`` checks :func:`sore_cycles`
against the cycle in which the generated Verilog shows the last mask.
"""

from __future__ import annotations

__all__ = ["sore_cycles"]


def sore_cycles(*, groups: int, lanes: int, m: int) -> int:
    """For ``groups`` groups streamed back to back from cycle 0, the cycle in which the last
    mask is valid at the output: the weights take ``ceil(groups / lanes) * m`` cycles
    (0 .. that - 1), and the mask register shows the last mask one cycle after its last
    weight. This is also the unit's occupancy: the next batch can start in that cycle."""
    if groups < 1:
        return 0
    return -(-groups // lanes) * m
