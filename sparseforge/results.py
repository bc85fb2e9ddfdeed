"""The results of the public API (:mod:`sparseforge.api`), each viewable four ways.

Every result has

- ``to_dict()``: plain JSON-safe data (what ``sparseforge ... --json`` prints);
- ``to_pandas()``: a :class:`pandas.DataFrame`, one row per layer (simulation, training),
  per dataflow (SpGEMM), per schedule (MoE), per port (generate), per tool (synth) or per
  run (training accuracy); what ``-o FILE.csv`` writes;
- ``to_text()``: the text report the CLI prints (also ``str(result)``);
- ``_repr_html_()``: an HTML table, so a result shows as a table in Jupyter.

The results wrap the simulator's own result objects (kept as attributes) and compute
nothing of their own beyond sums and ratios for the reports. pandas is imported only when
``to_pandas``/``_repr_html_`` is called.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:                                        # imported for type hints only
    import pandas

    from sparseforge.models.matrices import NamedMatrix
    from sparseforge.models.moe import Routing
    from sparseforge.sim.moe import MoeSimResult
    from sparseforge.sim.simulate import NetworkResult
    from sparseforge.sim.spgemm import SpgemmResult as DataflowResult
    from sparseforge.sim.train import TrainResult
    from sparseforge.spec import HardwareSpec

__all__ = ["Totals", "SimulationResult", "TrainingResult", "SpgemmResult", "MoeResult", "GenerateResult",
           "SynthResult", "AccuracyResult", "PruneResult"]


# ============================================================================ helpers
def plain(obj: Any) -> Any:
    """``obj`` with NumPy scalars and arrays, tuples and paths turned into JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    item = getattr(obj, "item", None)                   # numpy scalar
    if callable(item) and getattr(obj, "shape", None) == ():
        return item()
    tolist = getattr(obj, "tolist", None)               # numpy array
    if callable(tolist):
        return tolist()
    raise TypeError(f"cannot turn {type(obj).__name__} into JSON")


def _flat_row(d: Mapping[str, Any]) -> dict[str, Any]:
    """One table row: nested dicts become ``key_subkey`` columns, lists become text."""
    row: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            for sk, sv in _flat_row(v).items():
                row[f"{k}_{sk}"] = sv
        elif isinstance(v, (list, tuple)):
            row[k] = " ".join(str(x) for x in v)
        else:
            row[k] = v
    return row


def _frame(rows: list[dict[str, Any]]) -> "pandas.DataFrame":
    import pandas

    return pandas.DataFrame([_flat_row(r) for r in rows])


def _sparsity_text(sparsity: tuple[int, int] | None) -> str:
    return f"{sparsity[0]}:{sparsity[1]}" if sparsity else "dense"


def _si(v: float, unit: str) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.2f} {prefix}{unit}"
    return f"{v:.0f} {unit}"


def _bytes(v: float) -> str:
    for scale, prefix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if v >= scale:
            return f"{v / scale:.2f} {prefix}"
    return f"{v:.0f} B"


def _hw_line(spec: "HardwareSpec") -> str:
    return (f"{spec.name} [{spec.digest}] {spec.rows}x{spec.cols} PEs, {spec.n}:{spec.m}, "
            f"{spec.multipliers} multipliers, {spec.clock_mhz:g} MHz")


class Totals(Mapping):
    """A result's totals: a read-only mapping whose keys are also attributes
    (``res.total.cycles == res.total["cycles"]``)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", dict(data))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"no total {name!r}: the totals are {', '.join(self._data)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("totals are read-only")

    def __repr__(self) -> str:
        return f"Totals({self._data!r})"


class _Result:
    """The four views every result offers; subclasses give the data and the text."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_pandas(self) -> "pandas.DataFrame":
        raise NotImplementedError

    def to_text(self) -> str:
        raise NotImplementedError

    def to_json(self) -> str:
        """``to_dict()`` as indented JSON (what the CLI prints with ``--json``)."""
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        """``to_pandas()`` as CSV text (what the CLI writes to ``-o FILE.csv``)."""
        return self.to_pandas().to_csv(index=False)

    def _summary(self) -> list[tuple[str, str]]:
        """(label, value) lines shown above the HTML table."""
        return []

    def _title(self) -> str:
        return self.to_text().splitlines()[0]

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                       f"{html.escape(v)}</td></tr>" for k, v in self._summary())
        table = self.to_pandas().to_html(index=False, max_rows=80, border=0, float_format=lambda v: f"{v:.4g}")
        return (f"<div class='sparseforge-result'><p><b>{html.escape(self._title())}</b></p>"
                + (f"<table>{rows}</table>" if rows else "") + table + "</div>")

    def __str__(self) -> str:
        return self.to_text()


# ============================================================================ inference
@dataclass(frozen=True, eq=False)
class SimulationResult(_Result):
    """A network simulated on a spec (:func:`sparseforge.simulate`): ``sparse`` at the
    requested sparsity and, unless switched off, ``dense``, the same layers run dense on
    the same array. ``functional`` holds the check of the real MiniLM datapath when asked;
    ``clock`` the check of the spec's clock against its design's synthesised Fmax
    (:func:`sparseforge.api.clock_check`)."""

    sparse: "NetworkResult"
    dense: "NetworkResult | None"
    workload: str
    functional: dict[str, Any] | None = None
    clock: dict[str, Any] | None = None

    def write_html(self, path: "str | Path") -> list:
        """Write the HTML report (per-layer bars, utilisation, roofline, energy, sparse
        against dense) to ``path`` and each picture as PNG and SVG beside it; returns the
        paths written (:func:`sparseforge.report.sim.write_simulation_report`)."""
        from .report.sim import write_simulation_report

        return write_simulation_report(self.sparse, self.dense, self.spec, path, workload=self.workload)

    @property
    def spec(self) -> "HardwareSpec":
        return self.sparse.spec

    @property
    def network(self) -> str:
        return self.sparse.network

    @property
    def sparsity(self) -> str:
        return _sparsity_text(self.sparse.sparsity)

    @property
    def layers(self) -> tuple:
        return self.sparse.layers

    @property
    def total(self) -> Totals:
        """Totals over the layers: cycles, time_ms, utilisation, stall_cycles, DRAM and
        on-chip bytes, energy."""
        return Totals(self.sparse.totals())

    @property
    def speedup(self) -> float | None:
        """Dense cycles over sparse cycles (None without the dense comparison)."""
        return None if self.dense is None else self.dense.cycles / self.sparse.cycles

    def to_dict(self) -> dict[str, Any]:
        sparse, dense = self.sparse, self.dense
        out: dict[str, Any] = {
            "network": sparse.network,
            "sparsity": self.sparsity,
            **sparse.spec.record(),
            "layers": [lay.to_dict() for lay in sparse.layers],
            "totals": sparse.totals(),
        }
        if dense is not None:
            out["dense"] = {"layers": [lay.to_dict() for lay in dense.layers], "totals": dense.totals()}
            out["speedup_over_dense"] = dense.cycles / sparse.cycles
        if self.functional is not None:
            out["functional"] = self.functional
        if self.clock is not None:
            out["clock"] = self.clock
        return plain(out)

    def to_pandas(self) -> "pandas.DataFrame":
        """One row per layer; with the dense comparison also ``dense_cycles`` and ``speedup``."""
        rows = []
        dense_by = {lay.name: lay for lay in self.dense.layers} if self.dense is not None else {}
        for lay in self.sparse.layers:
            row = lay.to_dict()
            if self.dense is not None:
                row["dense_cycles"] = dense_by[lay.name].cycles
                row["speedup"] = dense_by[lay.name].cycles / lay.cycles
            rows.append(row)
        return _frame(rows)

    #: the header of SCALE-Sim v3's COMPUTE_REPORT.csv (scale-sim-v3 scalesim/simulator.py,
    #: generate_reports; v2 has the same columns without the first cycles column)
    SCALESIM_COMPUTE_HEADER = ("LayerID", "Total Cycles (incl. prefetch)", "Total Cycles", "Stall Cycles",
                               "Overall Util %", "Mapping Efficiency %", "Compute Util %")

    def to_scalesim_csv(self) -> str:
        """The per-layer report as SCALE-Sim's ``COMPUTE_REPORT.csv``, written the way SCALE-Sim
        writes it (``", "`` between fields, a trailing comma), so that scripts reading SCALE-Sim's
        reports read it unchanged. One row per layer of the simulated (sparse) run, in order:

        - ``LayerID``: the layer's 0-based index;
        - ``Total Cycles (incl. prefetch)`` and ``Total Cycles``: the layer's cycles from its
          first DRAM read to its last write-back (sparseforge has no separate prefetch phase,
          so both are the same);
        - ``Stall Cycles``: cycles the array waits for DRAM;
        - ``Overall Util %``: useful MACs / (cycles x multipliers), as SCALE-Sim's
          ``num_compute / (total_cycles * num_mac_unit)``;
        - ``Mapping Efficiency %``: useful MACs / issued multiplier slots: the share of the
          array's multipliers holding a (kept) weight while operands stream, which on a dense
          array is SCALE-Sim's mapped PEs / PEs averaged over folds;
        - ``Compute Util %``: useful MACs / (compute cycles x multipliers): utilisation with
          the stalls left out, fill and drain included, as SCALE-Sim's per-fold compute util.
        """
        mults = self.spec.multipliers
        lines = [", ".join(self.SCALESIM_COMPUTE_HEADER) + ",\n"]
        for i, lay in enumerate(self.sparse.layers):
            items = (lay.cycles, lay.cycles, lay.stall_cycles, 100.0 * lay.utilisation,
                     100.0 * lay.useful_macs / lay.issued_macs if lay.issued_macs else 0.0,
                     100.0 * lay.useful_macs / (lay.compute_cycles * mults) if lay.compute_cycles else 0.0)
            lines.append(f"{i}, " + ", ".join(str(x) for x in items) + ",\n")
        return "".join(lines)

    #: the header of SCALE-Sim v3's BANDWIDTH_REPORT.csv (scale-sim-v3 scalesim/simulator.py,
    #: generate_reports, without its sparsity-support metadata column)
    SCALESIM_BANDWIDTH_HEADER = ("LayerID", "Avg IFMAP SRAM BW", "Avg FILTER SRAM BW", "Avg OFMAP SRAM BW",
                                 "Avg IFMAP DRAM BW", "Avg FILTER DRAM BW", "Avg OFMAP DRAM BW")

    def to_scalesim_bandwidth_csv(self) -> str:
        """The per-layer bandwidths as SCALE-Sim's ``BANDWIDTH_REPORT.csv``, in its layout
        (``", "`` between fields, a trailing comma). Each column is one operand's traffic over
        the layer's cycles, in bytes per cycle:

        - ``Avg IFMAP SRAM BW``, ``Avg FILTER SRAM BW``: the on-chip reads of activations and
          weights (the engine's buffer words the PEs read);
        - ``Avg OFMAP SRAM BW``: the output buffer's reads and writes (partial sums included);
        - ``Avg IFMAP DRAM BW``, ``Avg FILTER DRAM BW``, ``Avg OFMAP DRAM BW``: the DRAM bytes
          fetched of activations and weights and written back of outputs.

        SCALE-Sim counts words of its word size (1 byte by default) over each operand's active
        window; sparseforge divides bytes by the layer's whole cycles, so for 8-bit operands the
        units agree and the figures are averages over the same layer, not over the windows."""
        lines = [", ".join(self.SCALESIM_BANDWIDTH_HEADER) + ",\n"]
        for i, lay in enumerate(self.sparse.layers):
            c = max(lay.cycles, 1)
            items = (lay.sram_act_bytes / c, lay.sram_wgt_bytes / c, lay.sram_out_bytes / c,
                     lay.dram_act_bytes / c, lay.dram_wgt_bytes / c, lay.dram_write_bytes / c)
            lines.append(f"{i}, " + ", ".join(str(x) for x in items) + ",\n")
        return "".join(lines)

    def to_text(self) -> str:
        sparse, dense = self.sparse, self.dense
        spec = sparse.spec
        mhz = spec.clock_mhz
        lines = [f"sparseforge simulate: {self.workload}, weights {self.sparsity}",
                 f"hardware: {spec.name} [{spec.digest}] {spec.rows}x{spec.cols} PEs, {spec.n}:{spec.m}, "
                 f"{spec.act_width}-bit x {spec.weight_width}-bit, {spec.multipliers} multipliers, {mhz:g} MHz, "
                 f"DRAM {spec.dram_bandwidth_gbps:g} GB/s",
                 ""]
        head = (f"{'layer':<20} {'mode':<6} {'T':>5} {'K':>5} {'N':>5} {'x':>3} {'tiles':>6} {'cycles':>10} "
                f"{'time us':>9} {'util':>6} {'stall':>8} {'DRAM':>10} {'energy uJ':>10}")
        if dense is not None:
            head += f" {'dense cyc':>10} {'speedup':>7}"
        head += f"  {'N:M':<5} why"
        lines += [head, "-" * len(head)]
        dense_by = {lay.name: lay for lay in dense.layers} if dense is not None else {}
        for lay in sparse.layers:
            row = (f"{lay.name:<20} {lay.mode:<6} {lay.tokens:>5} {lay.k:>5} {lay.n_out:>5} {lay.count:>3} "
                   f"{lay.tiles:>6} {lay.cycles:>10} {lay.cycles / mhz:>9.1f} {lay.utilisation:>6.1%} "
                   f"{lay.stall_cycles:>8} {_bytes(lay.dram_bytes):>10} {lay.energy_total_pj / 1e6:>10.2f}")
            if dense is not None:
                d = dense_by[lay.name]
                row += f" {d.cycles:>10} {d.cycles / lay.cycles:>6.2f}x"
            row += f"  {lay.pattern:<5} {lay.reason}"
            lines.append(row)
        lines.append("-" * len(head))
        t = sparse.totals()
        lines += [
            f"total: {t['cycles']} cycles = {t['time_ms']:.3f} ms at {mhz:g} MHz; utilisation {t['utilisation']:.1%} "
            f"({_si(t['useful_macs'], 'MAC')} useful of {_si(t['issued_macs'], 'MAC')} issued)",
            f"       stall {t['stall_cycles']} cycles ({t['stall_cycles'] / t['cycles']:.1%}); DRAM read "
            f"{_bytes(t['dram_read_bytes'])}, write {_bytes(t['dram_write_bytes'])}; on-chip {_bytes(t['sram_bytes'])}",
            "       energy " + ", ".join(f"{k} {v / 1e6:.1f} uJ" for k, v in t["energy_pj"].items())
            + f" = {t['energy_total_pj'] / 1e6:.1f} uJ",
        ]
        if dense is not None:
            d = dense.totals()
            lines.append(
                f"dense on the same array: {d['cycles']} cycles = {d['time_ms']:.3f} ms, "
                f"{d['energy_total_pj'] / 1e6:.1f} uJ -> speedup {d['cycles'] / t['cycles']:.2f}x, energy "
                f"{d['energy_total_pj'] / t['energy_total_pj']:.2f}x lower")
        if self.functional is not None:
            f = self.functional
            lines.append(f"functional check: {f['layers_bit_exact']}/{f['layers']} layers of the real pruned int8 "
                         f"MiniLM bit-exact through the tiled datapath; on the {f['tokens']} tokens run, "
                         f"sentence-embedding cosine to the dense float model {f['cosine_to_dense']:.3f} ({self.sparsity}: "
                         f"{f.get('pruning', 'one-shot magnitude pruning')}, no fine-tuning)")
            if f.get("quality"):
                q = f["quality"]
                lines.append(f"pruned model's quality on held-out text (int8): sentence-embedding cosine to the dense "
                             f"float model {q['cosine']:.3f}, topic accuracy {100 * q['accuracy']:.1f}% against "
                             f"{100 * q['dense_accuracy']:.1f}% dense ({q['test_sentences']} sentences; "
                             "sparseforge prune for more)")
        return "\n".join(lines)

    def _summary(self) -> list[tuple[str, str]]:
        t = self.total
        out = [("hardware", _hw_line(self.spec)),
               ("total", f"{t.cycles} cycles = {t.time_ms:.3f} ms, utilisation {t.utilisation:.1%}, "
                         f"energy {t.energy_total_pj / 1e6:.1f} uJ")]
        if self.speedup is not None:
            out.append(("dense on the same array", f"{self.dense.cycles} cycles: speedup {self.speedup:.2f}x"))
        return out

    def __repr__(self) -> str:
        sp = "" if self.speedup is None else f", {self.speedup:.2f}x over dense"
        return (f"<SimulationResult {self.network} {self.sparsity} on {self.spec.name} [{self.spec.digest}]: "
                f"{self.sparse.cycles} cycles{sp}>")


# ============================================================================ training
def _train_row(lay: Any) -> dict[str, Any]:
    """A training layer's row: its ``to_dict()`` plus the pattern its FF GEMM ran and why
    (``ff_pattern``, ``ff_reason``: docs/sparsity.md)."""
    return {**lay.to_dict(), "ff_pattern": lay.ff.pattern, "ff_reason": lay.ff.reason}


@dataclass(frozen=True, eq=False)
class TrainingResult(_Result):
    """One training iteration (:func:`sparseforge.simulate_training`): ``result`` with the
    requested method, ``dense`` the same iteration trained dense (or None), and
    ``cycles_without``: the iteration's cycles with each enabled dataflow option
    (``pregenerate``, ``interleave``) switched off."""

    result: "TrainResult"
    dense: "TrainResult | None"
    batch: int | str
    cycles_without: dict[str, int] = field(default_factory=dict)
    clock: dict[str, Any] | None = None        # the clock check (sparseforge.api.clock_check)

    def write_html(self, path: "str | Path") -> list:
        """Write the HTML report (per-GEMM bars, utilisation, roofline of the FF/BP/WG GEMMs,
        energy, the iteration's breakdown, method against dense) to ``path`` and each
        picture as PNG and SVG beside it; returns the paths written
        (:func:`sparseforge.report.train.write_training_report`)."""
        from .report.train import write_training_report

        return write_training_report(self.result, self.dense, path, batch=self.batch,
                                     cycles_without=self.cycles_without)

    @property
    def spec(self) -> "HardwareSpec":
        return self.result.spec

    @property
    def network(self) -> str:
        return self.result.network

    @property
    def method(self) -> str:
        return self.result.method

    @property
    def sparsity(self) -> str:
        return _sparsity_text(self.result.sparsity)

    @property
    def layers(self) -> tuple:
        return self.result.layers

    @property
    def total(self) -> Totals:
        return Totals(self.result.totals())

    @property
    def speedup(self) -> float | None:
        """Dense-training cycles over this method's cycles (None without the comparison)."""
        return None if self.dense is None else self.dense.cycles / self.result.cycles

    def to_dict(self) -> dict[str, Any]:
        res = self.result
        out: dict[str, Any] = {"network": res.network, "batch": self.batch, "method": res.method,
                               "sparsity": self.sparsity, "interleave": res.interleave,
                               "pregenerate": res.pregenerate, **res.spec.record(),
                               "layers": [_train_row(lay) for lay in res.layers], "totals": res.totals()}
        if self.dense is not None:
            out["dense_totals"] = self.dense.totals()
            out["speedup_over_dense"] = self.dense.cycles / res.cycles
        out["cycles_without"] = dict(self.cycles_without)
        if self.clock is not None:
            out["clock"] = self.clock
        return plain(out)

    def to_pandas(self) -> "pandas.DataFrame":
        """One row per layer: FF/BP/WG cycles, mask and update cycles, stalls, DRAM, energy."""
        return _frame([_train_row(lay) for lay in self.result.layers])

    def to_text(self) -> str:
        from sparseforge.sim.train import ideal_speedup

        res, dense = self.result, self.dense
        spec = res.spec
        mhz = spec.clock_mhz
        head = (f"{'layer':<22} {'FF cyc':>10} {'BP cyc':>10} {'WG cyc':>10} {'mask':>8} {'upd':>8} "
                f"{'stall':>8} {'DRAM MiB':>9} {'energy uJ':>10}  {'FF N:M':<6} why")
        lines = [f"sparseforge simulate --train: {res.network} (batch {self.batch}), {res.method} {self.sparsity}",
                 f"hardware: {spec.name} [{spec.digest}] {spec.rows}x{spec.cols} PEs, {spec.n}:{spec.m}, "
                 f"{spec.multipliers} multipliers, {mhz:g} MHz, DRAM {spec.dram_bandwidth_gbps:g} GB/s; "
                 f"interleave {'on' if res.interleave else 'off'}, pre-generation {'on' if res.pregenerate else 'off'}",
                 "", head, "-" * len(head)]
        for lay in res.layers:
            d = lay.to_dict()
            lines.append(f"{lay.name:<22} {d['ff_cycles']:>10} {d['bp_cycles']:>10} {d['wg_cycles']:>10} "
                         f"{d['mask_cycles']:>8} {d['update_cycles']:>8} {d['stall_cycles']:>8} "
                         f"{d['dram_bytes'] / 2**20:>9.2f} {sum(d['energy_pj'].values()) / 1e6:>10.2f}  "
                         f"{lay.ff.pattern:<6} {lay.ff.reason}")
        t = res.totals()
        lines += ["-" * len(head),
                  f"total: {t['cycles']} cycles = {t['time_ms']:.3f} ms per iteration at {mhz:g} MHz",
                  f"       GEMMs FF {t['ff_cycles']}, BP {t['bp_cycles']}, WG {t['wg_cycles']} cycles "
                  f"(of which memory stalls {t['gemm_stall_cycles']}); waiting for masks {t['mask_wait_cycles']}; "
                  f"weight-update tail {t['update_tail_cycles']}",
                  f"       SORE busy {t['sore_busy_cycles']}, update engine busy {t['update_busy_cycles']} cycles; "
                  f"DRAM {t['dram_bytes'] / 2**20:.1f} MiB; energy "
                  + ", ".join(f"{k} {v / 1e6:.0f} uJ" for k, v in t["energy_pj"].items())
                  + f" = {t['energy_total_pj'] / 1e6:.0f} uJ"]
        if dense is not None:
            dt = dense.totals()
            lines.append(f"dense training on the same hardware: {dt['cycles']} cycles = {dt['time_ms']:.3f} ms -> "
                         f"speedup {dt['cycles'] / t['cycles']:.3f}x (ideal for {res.method} "
                         f"{ideal_speedup(res.method, res.sparsity):.3f}x), energy "
                         f"{dt['energy_total_pj'] / t['energy_total_pj']:.2f}x lower")
        names = {"pregenerate": "pre-generation", "interleave": "interleave"}
        for opt, cycles in self.cycles_without.items():
            lines.append(f"without {names[opt]}: {cycles} cycles ({cycles / res.cycles - 1:+.2%}); "
                         f"{names[opt]} saves {cycles - res.cycles} cycles")
        return "\n".join(lines)

    def _summary(self) -> list[tuple[str, str]]:
        t = self.total
        out = [("hardware", _hw_line(self.spec)),
               ("total", f"{t.cycles} cycles = {t.time_ms:.3f} ms per iteration, energy "
                         f"{t.energy_total_pj / 1e6:.0f} uJ")]
        if self.speedup is not None:
            out.append(("dense training", f"{self.dense.cycles} cycles: speedup {self.speedup:.3f}x"))
        return out

    def __repr__(self) -> str:
        sp = "" if self.speedup is None else f", {self.speedup:.3f}x over dense"
        return (f"<TrainingResult {self.network} {self.method} {self.sparsity} on {self.spec.name} "
                f"[{self.spec.digest}]: {self.result.cycles} cycles{sp}>")


# ============================================================================ SpGEMM
@dataclass(frozen=True, eq=False)
class SpgemmResult(_Result):
    """``C = A x B`` under one or more SpGEMM dataflows (:func:`sparseforge.spgemm`):
    ``results`` holds one :class:`sparseforge.sim.spgemm.SpgemmResult` per dataflow, each
    checked against SciPy (``checks``: dataflow -> ``"exact"`` or ``"rtol 1e-12"``)."""

    a: "NamedMatrix"
    b: "NamedMatrix"
    spec: "HardwareSpec"
    results: tuple["DataflowResult", ...]
    checks: dict[str, str]
    nnz_c: int
    sim_seconds: float
    scipy_seconds: float

    def write_html(self, path: "str | Path") -> list:
        """Write the HTML report (per-dataflow bars, PE utilisation, roofline, energy, DRAM
        traffic, the dataflows against each other) to ``path`` and each picture as PNG and
        SVG beside it; returns the paths written
        (:func:`sparseforge.report.spgemm.write_spgemm_report`)."""
        from .report.spgemm import write_spgemm_report

        def side(m: "NamedMatrix") -> dict[str, Any]:
            return {"name": m.name, "shape": m.shape, "nnz": m.nnz, "source": m.source}

        return write_spgemm_report(self.results, self.spec, path, a=side(self.a), b=side(self.b), checks=self.checks)

    def result(self, label: str) -> "DataflowResult":
        """The result of one dataflow by its label (``inner``, ``rowwise-hash-v3``, ...)."""
        for r in self.results:
            if r.label == label:
                return r
        raise KeyError(f"no dataflow {label!r}: simulated {', '.join(r.label for r in self.results)}")

    @property
    def speedup(self) -> dict[str, dict[str, float]]:
        """``speedup[row][col]``: cycles of ``col`` over cycles of ``row``."""
        return {r.label: {o.label: o.cycles / r.cycles for o in self.results} for r in self.results}

    def to_dict(self) -> dict[str, Any]:
        a, b = self.a, self.b
        return plain({
            "a": {"name": a.name, "source": a.source, "shape": a.shape, "nnz": a.nnz},
            "b": {"name": b.name, "source": b.source, "shape": b.shape, "nnz": b.nnz},
            "nnz_c": self.nnz_c, "functional_vs_scipy": self.checks,
            "sim_seconds": self.sim_seconds, "scipy_seconds": self.scipy_seconds,
            "results": [r.to_dict() for r in self.results],
            "speedup": self.speedup,
            **self.spec.record(),
        })

    def to_pandas(self) -> "pandas.DataFrame":
        """One row per dataflow: counts, cycles, traffic and energy (``shape`` as m, k, n)."""
        rows = []
        for r in self.results:
            d = r.to_dict()
            m, k, n = d.pop("shape")
            rows.append({"label": d.pop("label"), "m": m, "k": k, "n": n, **d})
        return _frame(rows)

    def to_text(self) -> str:
        s = self.spec.spgemm
        cache = (f"B cache {s.cache_bytes} B/PE, {s.cache_ways}-way, {s.cache_line_bytes} B lines, "
                 f"{s.cache_replacement.upper()}, {s.cache_cycles} cycles" if s.cache_bytes else "no B cache")
        title = (f"sparseforge spgemm: {self.a.name} x {self.b.name} on {self.spec.name} [{self.spec.digest}], "
                 f"{s.pes} PEs, table {s.table_entries}, {s.banks} banks, {cache}")
        return _spgemm_table(list(self.results), title=title, checks=self.checks)

    def _summary(self) -> list[tuple[str, str]]:
        a, b = self.a, self.b
        return [("A", f"{a.name}: {a.shape[0]}x{a.shape[1]}, {a.nnz} nnz ({a.source})"),
                ("B", f"{b.name}: {b.shape[0]}x{b.shape[1]}, {b.nnz} nnz ({b.source})"),
                ("C", f"{self.nnz_c} nnz; functional vs SciPy: "
                      + ", ".join(f"{d} {c}" for d, c in self.checks.items()))]

    def __repr__(self) -> str:
        best = min(self.results, key=lambda r: r.cycles)
        return (f"<SpgemmResult {self.a.name} x {self.b.name} on {self.spec.name}: {len(self.results)} dataflows, "
                f"fastest {best.label} {best.cycles} cycles>")


def _si_short(v: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.2f}{unit}"
    return f"{v:.0f}"


def _spgemm_table(results: list, *, title: str, checks: dict[str, str]) -> str:
    """The comparison table: one row per dataflow, then speedups (row over column)."""
    cols = ["dataflow", "cycles", "time_us", "compute", "dram_cyc", "spad_acc", "probes", "collis",
            "atom_cf", "bank_cf", "spills", "DRAM_A", "DRAM_B", "DRAM_C", "DRAM_part", "B$_hits", "B$_miss",
            "B$_hit%", "energy_uJ"]
    si = _si_short
    rows = []
    for r in results:
        rate = r.cache_hit_rate
        rows.append([r.label, si(r.cycles), f"{r.time_us:.1f}", si(r.compute_cycles), si(r.dram_cycles),
                     si(r.scratchpad_accesses), si(r.hash_probes), si(r.collisions), si(r.atomic_conflicts),
                     si(r.bank_conflicts), si(r.spilled_products), si(r.dram_bytes_a), si(r.dram_bytes_b),
                     si(r.dram_bytes_c), si(r.dram_bytes_partial),
                     si(r.cache_hits) if rate is not None else "-", si(r.cache_misses) if rate is not None else "-",
                     f"{100 * rate:.1f}" if rate is not None else "-", f"{r.energy_pj / 1e6:.1f}"])
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]

    def line(vals: list[str]) -> str:
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))

    r0 = results[0]
    out = [title, f"A {r0.shape[0]}x{r0.shape[1]} ({r0.nnz_a} nnz), B {r0.shape[1]}x{r0.shape[2]} ({r0.nnz_b} nnz), "
                  f"C {r0.nnz_c} nnz, {r0.macs} multiplies; DRAM bytes, B cache (B$) accesses, energy in uJ",
           line(cols), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    if len(results) > 1:
        out.append("")
        out.append("speedup (row over column, by cycles):")
        labs = [r.label.replace("rowwise-", "") for r in results]
        w = max(len(r.label) for r in results)
        out.append(" " * w + "  " + "  ".join(x.rjust(9) for x in labs))
        for r in results:
            out.append(r.label.ljust(w) + "  " + "  ".join(f"{o.cycles / r.cycles:9.3g}" for o in results))
    out.append("functional vs SciPy A @ B: " + ", ".join(f"{d} {c}" for d, c in checks.items()))
    return "\n".join(out)


# ============================================================================ MoE
@dataclass(frozen=True, eq=False)
class MoeResult(_Result):
    """A multi-task MoE frame sequence under one or more schedules
    (:func:`sparseforge.simulate_moe`): ``result`` is the simulator's
    :class:`sparseforge.sim.moe.MoeSimResult`, ``routing`` the routing it ran."""

    result: "MoeSimResult"
    routing: "Routing"
    clock: dict[str, Any] | None = None        # the clock check (sparseforge.api.clock_check)

    def write_html(self, path: "str | Path") -> list:
        """Write the HTML report (per-layer bars of a frame, utilisation, roofline, energy per
        schedule, the schedules against each other and the dense ViT, per MoE layer and per
        frame) to ``path`` and each picture as PNG and SVG beside it; returns the paths
        written (:func:`sparseforge.report.moe.write_moe_report`)."""
        from .report.moe import write_moe_report

        return write_moe_report(self.result, path, routing=self.routing_summary())

    @property
    def spec(self) -> "HardwareSpec":
        return self.result.spec

    @property
    def schedules(self) -> dict:
        return self.result.schedules

    def totals(self, schedule: str) -> Totals:
        """Totals of one schedule (``naive``, ``cache`` or ``reorder``)."""
        return Totals(self.result.schedules[schedule].totals())

    def routing_summary(self) -> dict[str, Any]:
        """Where the routing came from, its size, load skew and expert use."""
        import numpy as np

        from sparseforge.models.moe import routing_stats

        routing = self.routing
        st = routing_stats(routing)
        out = {"source": routing.source, "frames": routing.frames, "tokens": routing.tokens,
               "top_k": routing.top_k, "experts": routing.num_experts,
               "mean_max_over_mean_load": st["mean_max_over_mean"], "mean_experts_used": st["mean_used"],
               "min_experts_used": st["min_used"]}
        agree = routing.meta.get("router_topk_agreement")
        if agree:
            out["router_topk_agreement"] = float(np.mean([np.mean(v) for v in agree.values()]))
        return plain(out)

    def save_routing(self, path: Path | str) -> None:
        """Write the routing as ``.npz`` (:func:`sparseforge.models.moe.save_routing`); replay
        it with ``simulate_moe(..., routing=Path(path))``."""
        from sparseforge.models.moe import save_routing

        save_routing(self.routing, path)

    def to_dict(self) -> dict[str, Any]:
        out = self.result.to_dict()
        out["routing_stats"] = self.routing_summary()
        if self.clock is not None:
            out["clock"] = self.clock
        return plain(out)

    def to_pandas(self) -> "pandas.DataFrame":
        """One row per schedule: its totals over the frame sequence."""
        return _frame([{"schedule": name, **s.totals()} for name, s in self.result.schedules.items()])

    def to_text(self) -> str:
        result, routing = self.result, self.routing
        cfg, spec = result.cfg, result.spec
        sch = list(result.schedules)
        rs = self.routing_summary()
        mb = 1e6
        lines = [f"sparseforge simulate: {cfg.name} ({cfg.tokens} tokens/frame, MoE blocks {list(cfg.moe_blocks)}: "
                 f"{cfg.experts} experts, top-{cfg.top_k}) on {spec.name} [{spec.digest}] at {spec.clock_mhz:g} MHz",
                 f"routing: {rs['source']}" + (" (SYNTHETIC, not measured)" if rs["source"] == "synthetic" else "")
                 + f"; load skew max/mean {rs['mean_max_over_mean_load']:.2f}, experts used per layer "
                   f"{rs['mean_experts_used']:.1f} (min {rs['min_experts_used']}) of {cfg.experts}"
                 + (f"; routers' top-k agree with activation mass on {100 * rs['router_topk_agreement']:.0f}% of "
                    f"choices" if "router_topk_agreement" in rs else ""),
                 f"expert: {result.expert.bytes / 1024:.0f} KiB weights, load {result.expert.load_cycles} cycles, "
                 f"one token {result.expert.token_cycles} cycles; backbone without MoE "
                 f"{sum(d.cycles for d in result.dense_layers) / spec.clock_mhz / 1e3:.2f} ms per frame", ""]
        w = 14
        head = f"{'':<28}" + "".join(f"{s:>{w}}" for s in sch)
        lines += ["summary over the sequence", head]
        tot = {s: result.schedules[s].totals() for s in sch}

        def row(label: str, fn) -> None:
            lines.append(f"{label:<28}" + "".join(f"{fn(s):>{w}}" for s in sch))

        row("mean frame latency (ms)", lambda s: f"{tot[s]['mean_frame_ms']:.2f}")
        row("total latency (ms)", lambda s: f"{tot[s]['time_ms']:.1f}")
        row("MoE on-chip memory (KiB)", lambda s: f"{tot[s]['moe_onchip_bytes'] / 1024:.0f}")
        row("  + array buffers (KiB)", lambda s: f"{tot[s]['onchip_bytes'] / 1024:.0f}")
        row(f"  fits {spec.moe.onchip_kib} KiB", lambda s: "yes" if tot[s]["fits"] else "NO")
        row("DRAM traffic (MB)", lambda s: f"{tot[s]['dram_bytes'] / mb:.1f}")
        row("expert loads", lambda s: f"{tot[s]['expert_loads']}")
        row("max queue occupancy", lambda s: f"{100 * tot[s]['max_queue_occupancy']:.0f}%" if s == "reorder" else "-")
        row(f"task switches ({tot[sch[0]]['switches']}): cycles", lambda s: f"{tot[s]['mean_switch_cycles']:.0f}")
        row("  DRAM bytes per switch", lambda s: f"{tot[s]['mean_switch_dram_bytes']:.0f}")
        lines += ["", "per frame: latency ms / DRAM MB / expert loads (switch cost in cycles when the task changed)"]
        lines.append(f"{'frame':>5} {'task':<8}" + "".join(f"{s:>26}" for s in sch))
        for i in range(routing.frames):
            cells = []
            for s in sch:
                f = result.schedules[s].frames[i]
                sw = f" {f.switch_cycles:+d}" if f.switch else ""
                cells.append(f"{f.time_ms:.2f}/{f.dram_bytes / mb:.0f}/{f.expert_loads}{sw}")
            lines.append(f"{i:>5} {routing.tasks[i]:<8}" + "".join(f"{c:>26}" for c in cells))
        lines += ["", "per layer (frame 0; MoE blocks under each schedule): cycles, DRAM MB, expert loads, "
                      "queue occupancy"]
        dense_by_block: dict[str, list] = {}
        for d in result.dense_layers:
            dense_by_block.setdefault(d.name.split(".")[0], []).append(d)
        lines.append(f"{'layer':<22}" + "".join(f"{s:>22}" for s in sch))
        moe_idx = {b: i for i, b in enumerate(cfg.moe_blocks)}
        for block, layers in dense_by_block.items():
            cyc = sum(d.cycles for d in layers)
            dram = sum(d.dram_bytes for d in layers)
            kinds = "+".join(sorted({d.name.split(".", 1)[1].split(".")[0] for d in layers})) \
                if "." in layers[0].name else layers[0].name
            cell = f"{cyc}/{dram / mb:.1f}"
            lines.append(f"{block + ' ' + kinds:<22}" + "".join(f"{cell:>22}" for _ in sch))
            b = int(block[5:]) if block.startswith("block") else -1
            if b in moe_idx:
                cells = []
                for s in sch:
                    lay = result.schedules[s].frames[0].layers[moe_idx[b]]
                    occ = f"/{100 * lay.queue_occupancy:.0f}%" if s == "reorder" else ""
                    cells.append(f"{lay.cycles}/{(lay.dram_read_bytes + lay.dram_write_bytes) / mb:.1f}/"
                                 f"{lay.expert_loads}{occ}")
                lines.append(f"{block + ' experts':<22}" + "".join(f"{c:>22}" for c in cells))
        return "\n".join(lines)

    def _summary(self) -> list[tuple[str, str]]:
        cfg = self.result.cfg
        return [("hardware", _hw_line(self.spec)),
                ("network", f"{cfg.name}: {cfg.tokens} tokens/frame, {cfg.experts} experts, top-{cfg.top_k}"),
                ("routing", f"{self.routing.source}, {self.routing.frames} frames: {', '.join(self.routing.tasks)}")]

    def __repr__(self) -> str:
        parts = ", ".join(f"{k} {v.totals()['mean_frame_ms']:.2f} ms/frame" for k, v in self.schedules.items())
        return f"<MoeResult {self.result.cfg.name} on {self.spec.name}: {parts}>"


# ============================================================================ RTL
@dataclass(frozen=True, eq=False)
class GenerateResult(_Result):
    """A generated design (:func:`sparseforge.generate`): its folder ``path`` and its
    ``manifest`` (files, top module, ports, the spec and its digest)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def top(self) -> str:
        return self.manifest["top"]

    @property
    def files(self) -> list[Path]:
        """The Verilog files, as paths inside :attr:`path`."""
        return [self.path / f for f in self.manifest["files"]]

    @property
    def digest(self) -> str:
        return self.manifest["digest"]

    def __fspath__(self) -> str:
        return str(self.path)

    def to_dict(self) -> dict[str, Any]:
        return plain({"path": str(self.path), **self.manifest})

    def to_pandas(self) -> "pandas.DataFrame":
        """One row per port of the top module: name, direction, width."""
        return _frame(list(self.manifest["ports"]))

    def to_text(self) -> str:
        m = self.manifest
        size = sum(f.stat().st_size for f in self.files)
        clocking = f"{m.get('clock', 'clk').split()[0]}/{m.get('reset', 'rst').split()[0]}"
        ports = [p for p in m["ports"] if p["name"] not in clocking.split("/")]
        text = (f"wrote {self.path}/ : {', '.join(m['files'])} ({size / 1024:.0f} KiB), manifest.json\n"
                f"top module {m['top']}, {len(ports)} ports + {clocking}; "
                f"spec {m['spec']['name']} [{m['digest']}]")
        h = m.get("handoff")
        if isinstance(h, dict):
            text += (f"\nFPGA hand-off for {h['part']}: {', '.join(h['files'])} (Vivado: {h['vivado']['part']}, "
                     f"ECP5: {h['ecp5']['device']}; docs/handoff.md)")
        return text

    def _summary(self) -> list[tuple[str, str]]:
        m = self.manifest
        return [("folder", str(self.path)), ("files", ", ".join(m["files"])),
                ("spec", f"{m['spec']['name']} [{m['digest']}]")]

    def _title(self) -> str:
        return f"design {self.manifest['design']} ({self.manifest['kind']}): top module {self.top}"

    def __repr__(self) -> str:
        return f"<GenerateResult {self.path} top {self.top} [{self.digest}]>"


@dataclass(frozen=True, eq=False)
class SynthResult(_Result):
    """Synthesis of a design folder (:func:`sparseforge.synth`): ``data`` is what
    ``synth.json`` holds (Yosys UltraScale+ resources, nextpnr ECP5 Fmax or why it failed)."""

    path: Path
    data: dict[str, Any]

    @property
    def xilinx(self) -> dict[str, Any]:
        return self.data["xilinx_xcup"]

    @property
    def ecp5(self) -> dict[str, Any] | None:
        return self.data.get("ecp5")

    def to_dict(self) -> dict[str, Any]:
        return plain(self.data)

    def to_pandas(self) -> "pandas.DataFrame":
        """One row per tool run: ``xilinx_xcup`` (resources) and ``ecp5`` (Fmax, use)."""
        rows = [{"target": "xilinx_xcup", **self.xilinx}]
        if self.ecp5:
            rows.append({"target": "ecp5", **self.ecp5})
        return _frame(rows)

    def to_text(self) -> str:
        name = self.path.name
        x = self.xilinx
        lines = [f"{name}: UltraScale+ (Yosys synth_xilinx estimate): {x['lut']} LUT, {x['ff']} FF, "
                 f"{x['dsp']} DSP48E2, {x['bram36']:g} BRAM36, {x['lutram']} LUTRAM"]
        e = self.ecp5
        if e and not e["fits"]:
            lines.append(f"{name}: ECP5: {e['error']}")
            if not e["nodsp"]:
                lines.append("  (retry with --ecp5-nodsp to build the multipliers from LUTs)")
        elif e:
            fmax = ", ".join(f"{k} {v:.1f} MHz" for k, v in e["fmax_mhz"].items()) or "no register-to-register path"
            util = ", ".join(f"{k} {u[0]}/{u[1]}" for k, u in e["utilization"].items()
                             if k in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD") and u[0])
            how = ", multipliers in LUTs" if e["nodsp"] else ""
            lines.append(f"{name}: ECP5 {e['device']} (nextpnr place and route{how}): Fmax {fmax}; {util}")
        lines.append(f"reports in {self.path / 'synth'}, summary {self.path / 'synth.json'}")
        return "\n".join(lines)

    def _title(self) -> str:
        return f"synthesis of {self.path.name}"

    def __repr__(self) -> str:
        x = self.xilinx
        return f"<SynthResult {self.path.name}: {x['lut']} LUT, {x['ff']} FF, {x['dsp']} DSP>"


# ============================================================================ training accuracy
@dataclass(frozen=True, eq=False)
class AccuracyResult(_Result):
    """Real N:M training on MNIST next to the simulated training speedup
    (:func:`sparseforge.train_accuracy`): one entry of ``runs`` per (method, sparsity)."""

    spec: "HardwareSpec"
    model: str
    epochs: int
    network: str
    batch: int
    runs: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return plain({"net": self.network, "batch": self.batch, **self.spec.record(), "runs": list(self.runs)})

    def to_pandas(self) -> "pandas.DataFrame":
        """One row per training run: accuracy, seconds, simulated and ideal speedup."""
        return _frame(list(self.runs))

    def to_text(self) -> str:
        head = (f"{'model':<5} {'method':<6} {'N:M':<6} {'train acc':>9} {'test acc':>9} {'secs':>6}   "
                f"{'sim speedup':>11} {'ideal':>6}")
        lines = [f"sparseforge train: {self.model} on the MNIST subset (4000 train / 1000 test), {self.epochs} epochs; "
                 f"speedup = simulated {self.network} training (batch {self.batch}) on {self.spec.name} "
                 f"[{self.spec.digest}]",
                 "", head, "-" * len(head)]
        for r in self.runs:
            lines.append(f"{r['model']:<5} {r['method']:<6} {r['sparsity']:<6} {r['train_accuracy']:>9.4f} "
                         f"{r['test_accuracy']:>9.4f} {r['train_seconds']:>6.1f}   {r['sim_speedup']:>10.3f}x "
                         f"{r['ideal_speedup']:>5.2f}x")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<AccuracyResult {self.model}, {len(self.runs)} runs, speedup on {self.network}>"


# ============================================================================ pruning
@dataclass(frozen=True, eq=False)
class PruneResult(_Result):
    """N:M pruning of a real network with calibrated methods and what it keeps
    (:func:`sparseforge.prune`, docs/pruning.md): ``dense`` is the dense network's record, and
    each entry of ``runs`` one (pattern, method) with its ``steps`` -- the one-shot method and,
    with recovery, the refit -- each a record of :mod:`sparseforge.sweep.accuracy` (quality
    ``float`` and ``int8``, per-layer calibration errors, seconds, the weights file)."""

    net: str
    calib: int
    calib_text: str
    dense: dict[str, Any]
    runs: tuple[dict[str, Any], ...]
    output: str | None = None

    def _rows(self) -> list[dict[str, Any]]:
        rows = []
        for run in self.runs:
            for step in run["steps"]:
                errs = [lay["error"] for lay in step.get("layers", ())]
                rows.append({"sparsity": run["sparsity"], "method": run["method"], "step": step["step"],
                             **{f"{k}_{q}": step[q][k] for q in ("float", "int8")
                                for k in ("cosine", "accuracy", "cosine_sample", "cosine_min")},
                             "layer_error_mean": sum(errs) / len(errs) if errs else None,
                             "prune_seconds": step.get("prune_seconds"), "weights_file": step.get("weights_file")})
        return rows

    @property
    def best(self) -> dict[str, Any] | None:
        """The run's last step with the highest int8 cosine (the accelerator runs int8)."""
        steps = [(run, run["steps"][-1]) for run in self.runs]
        if not steps:
            return None
        run, step = max(steps, key=lambda rs: rs[1]["int8"]["cosine"])
        return {"sparsity": run["sparsity"], "method": run["method"], "step": step["step"],
                "int8": step["int8"], "float": step["float"]}

    def to_dict(self) -> dict[str, Any]:
        strip = ("tensors",)
        runs = [{**run, "steps": [{k: v for k, v in st.items() if k not in strip} for st in run["steps"]]}
                for run in self.runs]
        return plain({"net": self.net, "calib": self.calib, "calib_text": self.calib_text, "dense": self.dense,
                      "runs": runs, "output": self.output})

    def to_pandas(self) -> "pandas.DataFrame":
        """One row per (pattern, method, step): cosine, accuracy, Darwin cosine, worst cosine
        (float and int8), mean layer calibration error, seconds, weights file."""
        d = self.dense
        dense = {"sparsity": "dense", "method": "dense", "step": "-",
                 **{f"{k}_{q}": d[q][k] for q in ("float", "int8") for k in ("cosine", "accuracy", "cosine_sample",
                                                                             "cosine_min")}}
        return _frame([dense] + self._rows())

    def to_text(self) -> str:
        d = self.dense
        head = (f"{'N:M':<6} {'method':<10} {'step':<9} {'cosine':>13} {'accuracy':>13} {'Darwin cos':>13} "
                f"{'layer err':>9} {'prune s':>8}")
        fi = f"{'float':>6} {'int8':>6}"
        sub = f"{'':<27} {fi} {fi} {fi}"
        src = "the bundled calibration documents" if self.calib_text == "bundled" else "your --calib-text"
        lines = [f"sparseforge prune: {self.net}, calibrated on {self.calib} tokens of {src}",
                 f"quality on held-out text: sentence-embedding cosine to the dense float model over "
                 f"{d['float']['centroid_sentences'] + d['float']['test_sentences']} sentences of CPython reference "
                 f"topics never used for calibration, nearest-centroid topic accuracy on "
                 f"{d['float']['test_sentences']} of them, and the cosine on the Darwin sample (out of domain)",
                 "", head, sub, "-" * len(head)]

        def q(rec: dict, k: str) -> str:
            return f"{rec['float'][k]:>6.3f} {rec['int8'][k]:>6.3f}"

        lines.append(f"{'dense':<6} {'-':<10} {'-':<9} {q(d, 'cosine')} {q(d, 'accuracy')} {q(d, 'cosine_sample')}")
        for run in self.runs:
            for st in run["steps"]:
                errs = [lay["error"] for lay in st.get("layers", ())]
                err = f"{sum(errs) / len(errs):>9.4f}" if errs else f"{'':>9}"
                secs = f"{st['prune_seconds']:>8.1f}" if st.get("prune_seconds") is not None else f"{'':>8}"
                lines.append(f"{run['sparsity']:<6} {run['method']:<10} {st['step']:<9} {q(st, 'cosine')} "
                             f"{q(st, 'accuracy')} {q(st, 'cosine_sample')} {err} {secs}")
        weights = [(run, run["steps"][-1]) for run in self.runs if run["steps"][-1].get("weights_file")]
        if self.output:
            lines += ["", f"pruned weights written to {self.output}"]
        elif len(weights) == 1:
            lines += ["", f"pruned weights (cached): {weights[0][1]['weights_file']}"]
        return "\n".join(lines)

    def _summary(self) -> list[tuple[str, str]]:
        return [("network", self.net), ("calibration tokens", str(self.calib)), ("runs", str(len(self.runs)))]

    def __repr__(self) -> str:
        return f"<PruneResult {self.net}, {len(self.runs)} runs, calib {self.calib}>"

