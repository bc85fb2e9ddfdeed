"""SORE: the sparse online reduction engine that generates N:M masks on the fly.

``lanes`` lanes each rank one group of ``m`` weights at a time. A lane takes one weight per
cycle (in index order) and keeps the ``n`` largest magnitudes seen so far in a sorted
register list (an insertion network: the new weight goes in front of the first smaller
entry, the rest shift down). On the group's ``m``-th weight the lane emits the group's
``m``-bit mask (bit j set = weight j kept) and starts the next group in the same cycle, so a
lane finishes one group every ``m`` cycles and the mask appears one cycle after the group's
last weight.

Ties keep the lower index (a later weight must be strictly larger to displace an entry),
exactly as :func:`models.prune.nm_mask`.

Ports: ``in_valid``, ``in_data`` (``lanes * weight_width``, lane l at bits
``[l*ww, (l+1)*ww)``, two's complement); ``out_valid``, ``out_mask`` (``lanes * m``, lane l
at ``[l*m, (l+1)*m)``). All lanes advance together.

Its cycle model is :func:`sim.units.sore.sore_cycles` (checked against this RTL in
``tests/test_rtl_sore.py``).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sparseforge.spec import HardwareSpec

__all__ = ["SoreUnit", "build_sore"]


class SoreUnit(wiring.Component):
    def __init__(self, *, n: int, m: int, weight_width: int, lanes: int):
        for name, v in (("n", n), ("m", m), ("weight_width", weight_width), ("lanes", lanes)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if n > m:
            raise ValueError(f"n = {n} must be at most m = {m}")
        self._n, self._m, self._ww, self._lanes = n, m, weight_width, lanes
        super().__init__({
            "in_valid": In(1),
            "in_data": In(lanes * weight_width),
            "out_valid": Out(1),
            "out_mask": Out(lanes * m),
        })

    @property
    def params(self) -> dict[str, int]:
        return {"n": self._n, "m": self._m, "weight_width": self._ww, "lanes": self._lanes}

    def elaborate(self, platform):
        mod = Module()
        n, m, ww = self._n, self._m, self._ww
        iw = max(1, (m - 1).bit_length())
        count = Signal(range(max(2, m)))
        last = Signal()
        mod.d.comb += last.eq(count == m - 1)
        with mod.If(self.in_valid):
            mod.d.sync += count.eq(Mux(last, 0, count + 1))
        out_valid = Signal()
        mod.d.sync += out_valid.eq(self.in_valid & last)
        mod.d.comb += self.out_valid.eq(out_valid)

        for lane in range(self._lanes):
            w = self.in_data.word_select(lane, ww).as_signed()
            mag = Signal(unsigned(ww), name=f"mag{lane}")
            mod.d.comb += mag.eq(Mux(w < 0, -w, w))
            # the sorted list: entry 0 holds the largest magnitude
            s_mag = [Signal(unsigned(ww), name=f"l{lane}_mag{i}") for i in range(n)]
            s_idx = [Signal(iw, name=f"l{lane}_idx{i}") for i in range(n)]
            s_val = [Signal(name=f"l{lane}_val{i}") for i in range(n)]
            # at a group's first weight the list starts empty
            fresh = count == 0
            cur_val = [Mux(fresh, 0, v) for v in s_val]
            # gt[i]: the new weight belongs at or above entry i
            gt = [Signal(name=f"l{lane}_gt{i}") for i in range(n)]
            for i in range(n):
                mod.d.comb += gt[i].eq(~cur_val[i] | (mag > s_mag[i]))
            new_mag, new_idx, new_val = [], [], []
            for i in range(n):
                take_new = gt[i] & (~gt[i - 1] if i > 0 else 1)
                shift = gt[i] & (gt[i - 1] if i > 0 else 0)
                nm_, ni_, nv_ = (Signal(unsigned(ww), name=f"l{lane}_nm{i}"), Signal(iw, name=f"l{lane}_ni{i}"),
                                 Signal(name=f"l{lane}_nv{i}"))
                prev_mag = s_mag[i - 1] if i > 0 else 0
                prev_idx = s_idx[i - 1] if i > 0 else 0
                prev_val = cur_val[i - 1] if i > 0 else 0
                mod.d.comb += [
                    nm_.eq(Mux(take_new, mag, Mux(shift, prev_mag, s_mag[i]))),
                    ni_.eq(Mux(take_new, count, Mux(shift, prev_idx, s_idx[i]))),
                    nv_.eq(Mux(take_new, 1, Mux(shift, prev_val, cur_val[i]))),
                ]
                new_mag.append(nm_)
                new_idx.append(ni_)
                new_val.append(nv_)
            with mod.If(self.in_valid):
                mod.d.sync += [s_mag[i].eq(new_mag[i]) for i in range(n)]
                mod.d.sync += [s_idx[i].eq(new_idx[i]) for i in range(n)]
                mod.d.sync += [s_val[i].eq(new_val[i]) for i in range(n)]
            # the mask of the completed group, registered
            mask = Signal(m, name=f"mask{lane}")
            bits = []
            for j in range(m):
                bits.append(sum((new_val[i] & (new_idx[i] == j) for i in range(1, n)), new_val[0] & (new_idx[0] == j)) != 0)
            with mod.If(self.in_valid & last):
                mod.d.sync += mask.eq(sum((b << j) for j, b in enumerate(bits)))
            mod.d.comb += self.out_mask.word_select(lane, m).eq(mask)
        return mod


def build_sore(spec: HardwareSpec, *, lanes: int | None = None) -> SoreUnit:
    """A SORE for the spec's N:M pattern and weight width (``lanes`` defaults to
    ``spec.train.sore_lanes``)."""
    return SoreUnit(n=spec.n, m=spec.m, weight_width=spec.weight_width,
                    lanes=spec.train.sore_lanes if lanes is None else lanes)
