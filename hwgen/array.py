"""A ``rows x cols`` weight-stationary systolic array of N:M sparse PEs.

Row ``r`` of the array covers one group of reduction indices (``m`` activations in sparse
mode); column ``c`` is one output feature. An activation vector (one token: ``rows`` groups
of ``m`` activations) enters at the input port, is skewed by one cycle per row, moves one
PE to the right per cycle, and partial sums move one PE down per cycle. The bottom row's
sums are deskewed so that one output vector (``cols`` accumulator-width sums) leaves the
array per input vector, exactly ``spec.array_latency`` cycles after it came in.

Weights load one array row per cycle (``w_we``/``w_row``) into the PEs' shadow registers;
the active weights switch as the first vector of a tile (``x_first``) sweeps through the
array, so loading tile j+1 overlaps streaming tile j.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sparseforge.spec import HardwareSpec

from .pe import SparsePE

__all__ = ["SparseArray", "build_array"]


class SparseArray(wiring.Component):
    """Ports:

    - ``x_valid``, ``x_first``, ``x_data`` (``rows * m * act_width``; row r's group at
      bits ``[r*m*aw, (r+1)*m*aw)``): one activation vector per cycle.
    - ``w_we``, ``w_row``, ``w_data`` (``cols * n * weight_width``; column c's weights at
      ``[c*n*ww, (c+1)*n*ww)``), ``w_idx`` (``cols * n * idx_width``): shadow weight load.
    - ``y_valid``, ``y_data`` (``cols * acc_width``; column c at ``[c*acc, (c+1)*acc)``).

    ``valid=False`` builds the array without ``x_valid``/``y_valid`` and their delay line
    (``array_latency`` registers): for a user that tracks its vectors itself, as the GEMM
    engine does with its output tags (``hwgen.engine``), the line would be dead logic.
    """

    def __init__(self, *, spec: HardwareSpec, valid: bool = True):
        if not isinstance(spec, HardwareSpec):
            raise TypeError(f"spec must be a HardwareSpec, not {spec!r}")
        self._spec = spec
        self._valid = bool(valid)
        s = spec
        ports = {
            "x_valid": In(1),
            "x_first": In(1),
            "x_data": In(s.rows * s.m * s.act_width),
            "w_we": In(1),
            "w_row": In(range(max(2, s.rows))),
            "w_data": In(s.cols * s.n * s.weight_width),
            "w_idx": In(s.cols * s.n * s.idx_width),
            "y_valid": Out(1),
            "y_data": Out(s.cols * s.acc_width),
        }
        if not valid:
            del ports["x_valid"], ports["y_valid"]
        super().__init__(ports)

    @property
    def spec(self) -> HardwareSpec:
        return self._spec

    def elaborate(self, platform):
        s = self._spec
        m = Module()
        R, C = s.rows, s.cols
        gw = s.m * s.act_width  # bits of one group of activations

        # input register
        in_data = Signal(R * gw)
        in_first = Signal()
        m.d.sync += [
            in_data.eq(self.x_data),
            in_first.eq(self.x_first & self.x_valid if self._valid else self.x_first),
        ]
        if self._valid:
            in_valid = Signal()
            m.d.sync += in_valid.eq(self.x_valid)

        pes = [[SparsePE(spec=s, first_out=c < C - 1) for c in range(C)] for _ in range(R)]
        for r in range(R):
            # input skew: row r waits r cycles
            data = in_data.word_select(r, gw)
            first = in_first
            for k in range(r):
                d_next = Signal(gw, name=f"skew_r{r}_{k}")
                f_next = Signal(name=f"skewf_r{r}_{k}")
                m.d.sync += [d_next.eq(data), f_next.eq(first)]
                data, first = d_next, f_next
            row_we = Signal(name=f"we_r{r}")
            m.d.comb += row_we.eq(self.w_we & (self.w_row == r))
            for c in range(C):
                pe = pes[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.x_in.eq(data),
                    pe.first_in.eq(first),
                    pe.w_we.eq(row_we),
                    pe.w_data.eq(self.w_data.word_select(c, s.n * s.weight_width)),
                    pe.w_idx.eq(self.w_idx.word_select(c, s.n * s.idx_width)),
                    pe.psum_in.eq(pes[r - 1][c].psum_out if r > 0 else 0),
                ]
                data, first = pe.x_out, (pe.first_out if c < C - 1 else None)

        # output deskew: column c waits cols-1-c cycles to line up with the last column
        outs = []
        for c in range(C):
            v = pes[R - 1][c].psum_out
            for k in range(C - 1 - c):
                v_next = Signal(s.acc_width, name=f"deskew_c{c}_{k}")
                m.d.sync += v_next.eq(v)
                v = v_next
            outs.append(v)
        for c, v in enumerate(outs):
            m.d.comb += self.y_data.word_select(c, s.acc_width).eq(v)

        # valid: a plain delay line of the array's latency (the input register is its
        # first stage)
        if self._valid:
            v = in_valid
            for k in range(s.array_latency - 1):
                v_next = Signal(name=f"valid_d{k}")
                m.d.sync += v_next.eq(v)
                v = v_next
            m.d.comb += self.y_valid.eq(v)
        return m


def build_array(spec: HardwareSpec) -> SparseArray:
    return SparseArray(spec=spec)
