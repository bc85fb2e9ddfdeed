"""The two GEMM engines as the mapper and the simulator see them, behind one interface.

An :class:`EngineModel` says what the mapper and the simulator need of an engine: the bits of
one word of each of its memories, how its memories are cut into words (:class:`Granules`),
the exact cycles of one *run* (what the engine does between ``start`` and ``done``) and what
a run reads, writes and issues. ``spec.dataflow`` picks the model (:func:`engine_model`).

**Weight-stationary** (:class:`WeightStationary`, the RTL is ``hwgen.engine.GemmEngine``,
checked by ``tests/test_rtl_engine.py`` and ``tests/test_rtl_train.py``). A run streams
``tokens`` activation vectors through the array for each of ``tiles`` weight tiles, loading
each tile's weights (``rows`` words, one per cycle) while the previous tile streams. The
loader and the streamer obey (cycle 0 = the first cycle after ``start`` is sampled)::

    L_0 = 0,  S_0 = 1
    L_j = max(L_{j-1} + rows, S_{j-1} + cols)   # shadow weights free once tile j-1 swapped in
    S_j = max(L_j + 1, S_{j-1} + tokens)        # weights of tile j started, streamer free

and the run ends when the last token of the last tile has passed the activation memory
read (1 cycle), the array (``spec.array_latency``) and the output accumulator's sum register
(1 cycle: the result is added in the cycle it arrives, and the sum is written back from a
register the cycle after), plus the cycle that samples ``start`` and the one that raises
``done``. The recurrence is
max-plus linear with constant coefficients, so after at most a couple of tiles it settles
into a constant period; :func:`stream_starts` uses that to evaluate any number of tiles in
O(1) while staying exact.

**Output-stationary** (:class:`OutputStationary`, the RTL is ``hwgen.os_engine.OSEngine``,
checked by ``tests/test_rtl_os.py``; docs/os_timing.md). A run computes
``token_tiles x ntiles`` output tiles, token tile outer, and streams all ``groups`` reduction
groups of each tile through the array, one group per cycle. The sequencer starts tile ``j``
at cycle ``j * P`` with the *tile period* ``P = max(groups, 2 * cols - 1)``: ``groups``
cycles of issue, and at least ``2 * cols - 1`` so that a tile's results, which leave each
row through a left-shifting result chain two cycles apart, are out of the way before the
next tile's results are captured (``hwgen/os_array.py``). After the last group of the last
tile is issued at ``a = (tiles - 1) * P + groups - 1`` it takes

- 1 cycle: synchronous memory read (the group is at the array port at ``a + 1``);
- ``OS_PE_LATENCY + rows`` cycles: PE registers and pipeline, row skew and deskew, until
  output column 0 of the tile is at the array's output port, where it is added to the old
  word (or to 0) into the writer's sum register;
- ``2 * (cols - 1)`` cycles: the remaining output columns, one every other cycle;
- 1 cycle: the sum register, written to the output memory the cycle after the column came;
- 1 cycle: ``done`` is a register set by the last write.

Counting the cycle that samples ``start`` as well::

    os_run_cycles = (tiles - 1) * P + groups + rows + 2 * cols + 5

**No fold overlap** (``spec.fold_overlap = "none"``, the array SCALE-Sim v3 models;
docs/timing.md). The sequencers give up the overlap between tiles (SCALE-Sim's *folds*):

- weight-stationary: the loader starts tile ``j`` only when ``rows + cols - 2`` cycles (the
  fill and drain of SCALE-Sim's array) have passed since the streamer's last token of tile
  ``j - 1``, and the streamer starts a tile only once its ``rows`` weight words are all
  loaded: ``L_0 = 0``, ``S_j = L_j + rows``, ``L_j = S_{j-1} + T + rows + cols - 2``, so
  tiles start ``T + 2 * rows + cols - 2`` cycles apart (:func:`fold_period`), SCALE-Sim's
  cost of one fold;
- output-stationary: the tile period becomes ``max(groups + rows + cols - 2, 2 * cols - 1)``
  (SCALE-Sim's ``K + R + C - 2`` per fold; the result chain's bound only binds when
  ``cols > rows + groups - 1``).

Both only delay events the pipelined schedule already allows, so the RTL needs no other
change. A run then takes ``tiles * period`` plus a fixed tail: the cycles the RTL's pipeline
(start, memory read, 4-stage PEs, accumulator, ``done``; on the OS engine also the result
chain's two cycles per column) adds over SCALE-Sim's one-cycle MACs: ``9`` cycles on the
weight-stationary engine, ``cols + 7`` on the output-stationary one.

**Run checks.** Both engines refuse, at ``start``, a run that does not fit the hardware
(``hwgen.engine.ERRORS``): among them one with more products per output than the
accumulator holds without overflow, :func:`acc_capacity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sparseforge.spec import HardwareSpec

__all__ = ["WS", "OS", "EngineModel", "Granules", "RunEvents", "WeightStationary", "OutputStationary", "ENGINES",
           "engine_model", "word_widths", "os_word_widths", "stream_starts", "run_cycles", "fold_period",
           "fold_tail_cycles", "os_tile_period", "os_run_cycles", "acc_capacity", "START_CYCLES", "ACT_READ_CYCLES",
           "ACC_CYCLES", "DONE_CYCLES", "OS_PE_LATENCY", "OS_WRITE_CYCLES", "NO_OVERLAP"]

WS, OS = "weight-stationary", "output-stationary"
#: ``spec.fold_overlap`` of SCALE-Sim's array: no overlap of one fold's weight load, fill and
#: drain with another fold (module docstring, "No fold overlap")
NO_OVERLAP = "none"

# ---------------------------------------------------------------- weight-stationary run
START_CYCLES = 1      # the cycle in which ``start`` is sampled
ACT_READ_CYCLES = 1   # synchronous activation-memory read
ACC_CYCLES = 1        # the sum register: a result is added in the cycle it arrives, written the next
DONE_CYCLES = 1       # ``done`` is a register set by the last write


def _recurrence(rows: int, cols: int, tokens: int, count: int) -> list[tuple[int, int]]:
    L, S = 0, 1
    out = [(L, S)]
    for _ in range(count - 1):
        L = max(L + rows, S + cols)
        S = max(L + 1, S + tokens)
        out.append((L, S))
    return out


def stream_starts(rows: int, cols: int, tokens: int, tiles: int) -> int:
    """Cycle in which the streamer starts the last of ``tiles`` tiles (exact)."""
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, not {tiles}")
    # Once both L and S advance by the same period P = max(rows, cols + 1, tokens), they
    # keep doing so (the max-plus system has a single critical cycle). Iterate until the
    # increments are stable, then extrapolate.
    head = _recurrence(rows, cols, tokens, min(tiles, 6))
    if tiles <= 6:
        return head[-1][1]
    (l4, s4), (l5, s5) = head[-2], head[-1]
    pl, ps = l5 - l4, s5 - s4
    if pl != ps:  # not settled (cannot happen for this system, but stay exact if it did)
        return _recurrence(rows, cols, tokens, tiles)[-1][1]
    return s5 + ps * (tiles - 6)


def fold_period(spec: HardwareSpec, tokens: int) -> int:
    """Cycles between the starts of consecutive tiles (folds) of a weight-stationary run with
    ``fold_overlap = "none"``: the weight load (``rows``), the ``tokens`` streamed, and the
    fill and drain of SCALE-Sim's array (``rows + cols - 2``), i.e. ``T + 2R + C - 2``."""
    return tokens + 2 * spec.rows + spec.cols - 2


def run_cycles(spec: HardwareSpec, *, tokens: int, tiles: int) -> int:
    """Cycles of a weight-stationary run from the cycle in which ``start`` is high to the
    first cycle ``done`` is high, for ``tiles`` tiles of ``tokens`` tokens each."""
    if tokens < 1:
        raise ValueError(f"tokens must be >= 1, not {tokens}")
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, not {tiles}")
    if spec.fold_overlap == NO_OVERLAP:
        # L_0 = 0, S_j = L_j + rows, L_j = S_{j-1} + tokens + rows + cols - 2
        s_last = spec.rows + (tiles - 1) * fold_period(spec, tokens)
    else:
        s_last = stream_starts(spec.rows, spec.cols, tokens, tiles)
    last_issue = s_last + tokens - 1
    return START_CYCLES + last_issue + ACT_READ_CYCLES + spec.array_latency + ACC_CYCLES + DONE_CYCLES


# ---------------------------------------------------------------- output-stationary run
#: cycles from an OS PE's activation/weight registers to its accumulator/result registers:
#: index mux, multiply, product sum, accumulate (``hwgen.os_array`` builds its PE with this)
OS_PE_LATENCY = 4
#: cycles from an output column at the OS array's port to its write: the writer's sum register
OS_WRITE_CYCLES = 1


def os_tile_period(spec: HardwareSpec, groups: int) -> int:
    """Cycles between the starts of consecutive tiles of an output-stationary run: ``groups``
    of issue, at least ``2 * cols - 1`` for the result chain; with ``fold_overlap = "none"``
    also the fill and drain of SCALE-Sim's array, ``groups + rows + cols - 2``."""
    if spec.fold_overlap == NO_OVERLAP:
        return max(groups + spec.rows + spec.cols - 2, 2 * spec.cols - 1)
    return max(groups, 2 * spec.cols - 1)


def os_run_cycles(spec: HardwareSpec, *, token_tiles: int, ntiles: int, groups: int) -> int:
    """Cycles of an output-stationary run from the cycle in which ``start`` is high to the
    first cycle ``done`` is high, for ``token_tiles x ntiles`` tiles of ``groups`` groups
    each (exact)."""
    for name, v in (("token_tiles", token_tiles), ("ntiles", ntiles), ("groups", groups)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    tiles = token_tiles * ntiles
    last_issue = (tiles - 1) * os_tile_period(spec, groups) + groups - 1
    return 1 + last_issue + 1 + OS_PE_LATENCY + spec.rows + 2 * (spec.cols - 1) + OS_WRITE_CYCLES + 1


def fold_tail_cycles(spec: HardwareSpec, dataflow: str) -> int:
    """Cycles a run with ``fold_overlap = "none"`` takes beyond ``tiles * period``: what the
    RTL's pipeline adds over SCALE-Sim's array of one-cycle MACs, whose folds cost exactly
    the period. Weight-stationary: the start cycle, the activation read, the input and PE
    activation registers and the PE pipeline beyond SCALE-Sim's one cycle
    (``array_latency - (rows + cols - 1)``), the sum register and ``done``: 9 cycles.
    Output-stationary (period ``groups + rows + cols - 2``): the start cycle, the memory
    read, the PE pipeline, the result chain's second cycle per column and the writer's
    register and ``done``: ``cols + 7`` cycles. Exact: ``run_cycles`` and ``os_run_cycles``
    equal ``tiles * period + tail`` (tests/test_scalesim_mode.py)."""
    if dataflow == WS:
        return START_CYCLES + ACT_READ_CYCLES + spec.array_latency - (spec.rows + spec.cols - 1) + ACC_CYCLES \
            + DONE_CYCLES
    if dataflow == OS:
        # os_run_cycles - tiles * (G + R + C - 2)
        #   = 1 + (G - 1) + 1 + OS_PE_LATENCY + R + 2 * (C - 1) + OS_WRITE_CYCLES + 1 - (G + R + C - 2)
        return OS_PE_LATENCY + spec.cols + OS_WRITE_CYCLES + 2
    raise ValueError(f"dataflow = {dataflow!r} has no engine: choose one of {WS}, {OS}")


def acc_capacity(spec: HardwareSpec) -> int:
    """Products (``act_width x weight_width`` bits, signed) whose sum an ``acc_width``-bit
    signed accumulator holds without overflow, whatever their values: a product lies in
    ``[-2^(a+w-2) + 2^(min(a,w)-1), 2^(a+w-2)]``, so ``N`` of them fit ``a + w + c`` bits
    (``c = ceil(log2 max_k)``) iff ``N * 2^(a+w-2) <= 2^(a+w+c-1) - 1``, i.e.
    ``N <= 2^(c+1) - 1``. The engines refuse a run with more products per output than this
    (``hwgen.engine.ERR_K``). A run of a layer the mapper accepts (``K <= max_k <= 2^c``)
    has at most ``K + rows * n`` products per output (its last k-tile padded with zeros), so
    it is refused only on a spec whose ``2^c`` is not above one k-tile's ``rows * n``."""
    return (1 << (spec.acc_width - spec.act_width - spec.weight_width + 1)) - 1


# ---------------------------------------------------------------- memory words
def word_widths(spec: HardwareSpec) -> dict[str, int]:
    """Bits of one word of each weight-stationary engine memory: an activation word holds
    ``rows`` groups of ``m`` activations; a weight word holds one array row of ``cols * n``
    weights followed by their in-group indices (none on a dense array); an output word
    ``cols`` accumulators."""
    w = spec.cols * spec.n * spec.weight_width
    if not spec.dense:
        w += spec.cols * spec.n * spec.idx_width
    return {"act": spec.rows * spec.m * spec.act_width, "wgt": w, "out": spec.cols * spec.acc_width}


def os_word_widths(spec: HardwareSpec) -> dict[str, int]:
    """Bits of one word of each output-stationary engine memory: activation and weight words
    as the weight-stationary engine's, an output word ``rows`` accumulators (one output
    column of a tile)."""
    return {**word_widths(spec), "out": spec.rows * spec.acc_width}


# ---------------------------------------------------------------- the interface
@dataclass(frozen=True)
class Granules:
    """How an engine's memories are cut: a GEMM's tokens come in *token units* of
    ``tokens`` tokens and its reduction in *k units* of ``groups`` groups; one token unit
    takes ``act_words`` activation words per k unit, one n-tile (``cols`` outputs)
    ``wgt_words`` weight words per k unit, and one token unit of one n-tile ``out_words``
    output words. A run of fewer than ``k_block_floor`` k units per tile is no faster per k
    unit than one of that many."""

    tokens: int
    groups: int
    act_words: int
    wgt_words: int
    out_words: int
    k_block_floor: int


@dataclass(frozen=True)
class RunEvents:
    """What runs do, summed over them: activation-, weight- and output-memory words read or
    written by the engine, and multiplier *steps* (each issues ``rows * cols * n``
    multiplier operations)."""

    act_words: int
    wgt_words: int
    out_words: int
    steps: int


class EngineModel(Protocol):
    """One GEMM engine (see the module docstring). Runs are given as arrays, one entry per
    run: ``tokens`` streamed, ``ntiles`` n-tiles and ``kunits`` k units per tile (a
    weight-stationary run's k-tiles, an output-stationary run's groups)."""

    dataflow: str

    def word_widths(self, spec: HardwareSpec) -> dict[str, int]:
        """Bits of one activation, weight and output memory word."""

    def granules(self, spec: HardwareSpec) -> Granules:
        """How the memories are cut into words (:class:`Granules`)."""

    def run_cycles(self, spec: HardwareSpec, tokens: np.ndarray, ntiles: np.ndarray,
                   kunits: np.ndarray) -> np.ndarray:
        """Exact cycles of each run, ``start`` to ``done``."""

    def run_events(self, spec: HardwareSpec, tokens: np.ndarray, ntiles: np.ndarray, kunits: np.ndarray,
                   accumulate: np.ndarray) -> RunEvents:
        """Memory words and multiplier steps of the runs; ``accumulate``: the run adds onto
        partial sums already in the output memory."""

    def gemm_tiles(self, spec: HardwareSpec, *, tokens: int, ktiles: int, ntiles: int) -> int:
        """Tiles of one GEMM of ``tokens`` tokens with ``ktiles`` pieces of reduction (k-tiles,
        or k-blocks on the output-stationary engine) and ``ntiles`` n-tiles."""


def _per_shape(f, tokens: np.ndarray, ntiles: np.ndarray, kunits: np.ndarray) -> np.ndarray:
    """``f(tokens, ntiles, kunits)`` (ints) for every run, evaluated once per distinct run."""
    cache: dict[tuple[int, int, int], int] = {}
    shapes = zip(np.asarray(tokens).tolist(), np.asarray(ntiles).tolist(), np.asarray(kunits).tolist())
    return np.array([cache[s] if s in cache else cache.setdefault(s, f(*s)) for s in shapes], dtype=np.int64)


class WeightStationary:
    """The weight-stationary engine: a token unit is one token, a k unit one k-tile
    (``rows`` groups, held in ``rows`` weight words per n-tile); an output word holds one
    token's ``cols`` accumulators."""

    dataflow = WS

    def word_widths(self, spec: HardwareSpec) -> dict[str, int]:
        return word_widths(spec)

    def granules(self, spec: HardwareSpec) -> Granules:
        return Granules(tokens=1, groups=spec.rows, act_words=1, wgt_words=spec.rows, out_words=1, k_block_floor=1)

    def run_cycles(self, spec, tokens, ntiles, kunits):
        return _per_shape(lambda t, n, k: run_cycles(spec, tokens=t, tiles=n * k), tokens, ntiles, kunits)

    def run_events(self, spec, tokens, ntiles, kunits, accumulate):
        tiles = ntiles * kunits
        vectors = int((tokens * tiles).sum())                 # activation words streamed
        # out-word writes + reads: every k-tile writes, all but a fresh run's first k-tile read
        out = int((tokens * ntiles * (2 * kunits - 1 + accumulate)).sum())
        return RunEvents(act_words=vectors, wgt_words=int(tiles.sum()) * spec.rows, out_words=out, steps=vectors)

    def gemm_tiles(self, spec, *, tokens, ktiles, ntiles):
        return ktiles * ntiles


class OutputStationary:
    """The output-stationary engine: a token unit is one token tile (``rows`` tokens), a k
    unit one group (one activation and one weight word per tile); a token tile of an n-tile
    has ``cols`` output words of ``rows`` accumulators. A tile period never drops below
    ``2 * cols - 1`` cycles (:func:`os_tile_period`)."""

    dataflow = OS

    def word_widths(self, spec: HardwareSpec) -> dict[str, int]:
        return os_word_widths(spec)

    def granules(self, spec: HardwareSpec) -> Granules:
        return Granules(tokens=spec.rows, groups=1, act_words=1, wgt_words=1, out_words=spec.cols,
                        k_block_floor=2 * spec.cols - 1)

    def run_cycles(self, spec, tokens, ntiles, kunits):
        tt = -(-np.asarray(tokens) // spec.rows)
        return _per_shape(lambda a, n, g: os_run_cycles(spec, token_tiles=a, ntiles=n, groups=g), tt, ntiles, kunits)

    def run_events(self, spec, tokens, ntiles, kunits, accumulate):
        # per tile and group one activation and one weight word are read; every tile writes
        # ``cols`` output words and reads them too when its run accumulates
        tiles = -(-tokens // spec.rows) * ntiles
        steps = int((tiles * kunits).sum())
        out = int((tiles * spec.cols * (1 + accumulate)).sum())
        return RunEvents(act_words=steps, wgt_words=steps, out_words=out, steps=steps)

    def gemm_tiles(self, spec, *, tokens, ktiles, ntiles):
        return -(-tokens // spec.rows) * ntiles * ktiles


#: the engine model of each dataflow
ENGINES: dict[str, EngineModel] = {WS: WeightStationary(), OS: OutputStationary()}


def engine_model(dataflow: str) -> EngineModel:
    """The :class:`EngineModel` of ``dataflow`` (``weight-stationary`` or
    ``output-stationary``; a ``switchable`` spec's mapper picks one per layer)."""
    try:
        return ENGINES[dataflow]
    except KeyError:
        raise ValueError(f"dataflow = {dataflow!r} has no engine: choose one of {', '.join(ENGINES)}") from None
