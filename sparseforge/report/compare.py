"""Two or more hardware specs on one workload, side by side: ``sparseforge compare``.

:func:`compare_specs` simulates the same network on every spec (each at its own N:M
sparsity, or at one given sparsity) and returns a :class:`Comparison`: per layer and in
total, cycles, time, utilisation, energy and DRAM traffic of each spec, with the deltas
against the first spec. Times are compared, not only cycles, since specs may differ in
clock. :func:`write_comparison` writes it as a text table, CSV, JSON, an HTML page (with
its pictures as PNG/SVG beside it) or a PNG/SVG picture, chosen by the file's suffix.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from sparseforge.models.network import Network
from sparseforge.sim.simulate import NetworkResult, simulate_network
from sparseforge.spec import HardwareSpec

from .base import ReportError, write_files_atomic
from .page import Section, page_files
from .plots import Picture, energy_picture, layer_compare_picture

__all__ = ["Comparison", "compare_specs", "write_comparison", "OUTPUT_SUFFIXES", "NATIVE"]

#: ``sparsity`` value of :func:`compare_specs` that runs every spec at its own n:m.
NATIVE = "native"
#: What :func:`write_comparison` can write, by file suffix.
OUTPUT_SUFFIXES = (".html", ".csv", ".json", ".png", ".svg", ".txt")


def _labels(specs: Sequence[HardwareSpec]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    out = []
    for s in specs:
        seen[s.name] = seen.get(s.name, 0) + 1
        out.append(s.name if seen[s.name] == 1 else f"{s.name}#{seen[s.name]}")
    return tuple(out)


def _sp(res: NetworkResult) -> str:
    return f"{res.sparsity[0]}:{res.sparsity[1]}" if res.sparsity else "dense"


@dataclass(frozen=True)
class Comparison:
    """The same network simulated on several specs; ``results[0]`` is the reference."""

    network: str
    labels: tuple[str, ...]
    results: tuple[NetworkResult, ...]

    def layers(self) -> pd.DataFrame:
        """One row per spec and layer, with the deltas against the first spec's layer."""
        rows = []
        ref = self.results[0]
        for lab, res in zip(self.labels, self.results):
            mhz = res.spec.clock_mhz
            for x, r in zip(res.layers, ref.layers):
                t, t0 = x.cycles / mhz, r.cycles / ref.spec.clock_mhz
                rows.append({
                    "spec": lab, "digest": res.spec.digest, "layer": x.name, "mode": x.mode, "cycles": x.cycles,
                    "time_us": t, "utilisation": x.utilisation, "stall_cycles": x.stall_cycles,
                    "dram_bytes": x.dram_bytes, "energy_uj": x.energy_total_pj / 1e6,
                    "cycles_delta": x.cycles - r.cycles, "time_delta_us": t - t0, "time_ratio": t / t0,
                    "energy_ratio": x.energy_total_pj / r.energy_total_pj if r.energy_total_pj else float("nan"),
                })
        return pd.DataFrame(rows)

    def totals(self) -> pd.DataFrame:
        """One row per spec: the network in total, with the deltas against the first spec."""
        rows = []
        ref = self.results[0]
        for lab, res in zip(self.labels, self.results):
            t, s = res.totals(), res.spec
            rows.append({
                "spec": lab, "digest": s.digest, "array": f"{s.rows}x{s.cols}", "nm": f"{s.n}:{s.m}",
                "sparsity": _sp(res), "multipliers": s.multipliers, "clock_mhz": s.clock_mhz,
                "dram_gbps": s.dram_bandwidth_gbps, "cycles": t["cycles"], "time_ms": t["time_ms"],
                "utilisation": t["utilisation"], "stall_cycles": t["stall_cycles"], "dram_bytes": t["dram_bytes"],
                "energy_uj": t["energy_total_pj"] / 1e6,
                "cycles_delta": t["cycles"] - ref.cycles, "time_delta_ms": (res.time_s - ref.time_s) * 1e3,
                "time_ratio": res.time_s / ref.time_s,
                "energy_ratio": t["energy_total_pj"] / ref.totals()["energy_total_pj"],
            })
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "reference": self.labels[0],
            "specs": [{"label": lab, **res.spec.record(), "sparsity": _sp(res)}
                      for lab, res in zip(self.labels, self.results)],
            "totals": self.totals().to_dict("records"),
            "layers": self.layers().to_dict("records"),
        }

    def to_text(self) -> str:
        tot = self.totals()
        ref = self.labels[0]
        lines = [f"sparseforge compare: {self.network} on {len(self.labels)} specs, deltas against {ref}", ""]
        head = (f"{'spec':<16} {'digest':<16} {'array':>7} {'n:m':>5} {'weights':>7} {'MHz':>6} {'mults':>6} "
                f"{'cycles':>11} {'time ms':>9} {'util':>6} {'energy uJ':>10} {'time vs ref':>11} {'energy vs ref':>13}")
        lines += [head, "-" * len(head)]
        for r in tot.to_dict("records"):
            lines.append(f"{r['spec']:<16} {r['digest']:<16} {r['array']:>7} {r['nm']:>5} {r['sparsity']:>7} "
                         f"{r['clock_mhz']:>6g} {r['multipliers']:>6} {r['cycles']:>11,} {r['time_ms']:>9.4g} "
                         f"{r['utilisation']:>6.1%} {r['energy_uj']:>10.4g} {_pct(r['time_ratio']):>11} "
                         f"{_pct(r['energy_ratio']):>13}")
        lay = self.layers()
        lines += ["", "per layer: time in us (change against " + ref + ")"]
        width = max(12, max(len(x.name) for x in self.results[0].layers))
        head = f"{'layer':<{width}} " + " ".join(f"{lab[:20]:>22}" for lab in self.labels)
        lines += [head, "-" * len(head)]
        for name, g in lay.groupby("layer", sort=False):
            cells = []
            for i, r in enumerate(g.to_dict("records")):
                cells.append(f"{r['time_us']:>22.4g}" if i == 0 else f"{r['time_us']:>12.4g} ({_pct(r['time_ratio']):>7})")
            lines.append(f"{name:<{width}} " + " ".join(cells))
        return "\n".join(lines)

    def pictures(self) -> list[Picture]:
        names = [x.name for x in self.results[0].layers]
        times = {lab: np.array([x.cycles / res.spec.clock_mhz for x in res.layers], float)
                 for lab, res in zip(self.labels, self.results)}
        ref = self.labels[0]
        ratios = {f"{lab} / {ref}": times[lab] / times[ref] for lab in self.labels[1:]}
        pics = [layer_compare_picture(
            "compare-layers", names, times, unit="time (us)", ratios=ratios, ratio_label=f"time against {ref}",
            title=f"Time per layer: {self.network} on {', '.join(self.labels)}",
            caption=f"Bars: each layer's time on each spec (cycles over the spec's clock); lines: the time against "
                    f"{ref} (below 1 is faster).")]
        pics.append(energy_picture(
            "compare-energy", {lab: {k: v / 1e6 for k, v in res.energy_pj.items()}
                               for lab, res in zip(self.labels, self.results)},
            title=f"Energy per inference: {self.network}", unit="uJ",
            caption="MAC, on-chip SRAM and DRAM energy of the whole network on each spec."))
        return pics


def _pct(ratio: float) -> str:
    if not np.isfinite(ratio):
        return "-"
    return f"{(ratio - 1) * 100:+.1f}%"


def compare_specs(specs: Sequence[HardwareSpec], network: Network,
                  sparsity: tuple[int, int] | None | str = NATIVE) -> Comparison:
    """Simulate ``network`` on every spec. ``sparsity``: :data:`NATIVE` (each spec at its
    own n:m, dense for a dense array), an ``(n, m)`` pair or None (dense) for all."""
    specs = list(specs)
    if len(specs) < 2:
        raise ReportError(f"--hw given {len(specs)} time(s): compare needs two or more specs (--hw A --hw B)")
    for s in specs:
        if not isinstance(s, HardwareSpec):
            raise ReportError(f"spec = {type(s).__name__} is not allowed: give HardwareSpec objects")
    if isinstance(sparsity, str) and sparsity != NATIVE:
        raise ReportError(f"sparsity = {sparsity!r} is not allowed: give (n, m), None (dense) or {NATIVE!r}")
    results = []
    for s in specs:
        sp = (None if s.dense else (s.n, s.m)) if sparsity == NATIVE else sparsity
        results.append(simulate_network(s, network, sp))
    return Comparison(network=network.name, labels=_labels(specs), results=tuple(results))


def _html(cmp: Comparison, path: Path) -> dict[Path, bytes | str]:
    pics = cmp.pictures()
    ref = cmp.labels[0]
    tot = cmp.totals()
    show = tot[["spec", "digest", "array", "nm", "sparsity", "multipliers", "clock_mhz", "cycles", "time_ms",
                "utilisation", "energy_uj", "time_ratio", "energy_ratio"]].copy()
    show["utilisation"] = 100 * show["utilisation"]
    show = show.rename(columns={"utilisation": "utilisation %", "time_ratio": f"time / {ref}",
                                "energy_ratio": f"energy / {ref}"})
    lay = cmp.layers()
    wide = lay.pivot_table(index="layer", columns="spec", values="time_us", sort=False)[list(cmp.labels)]
    wide = wide.reindex([x.name for x in cmp.results[0].layers])
    for lab in cmp.labels[1:]:
        wide[f"{lab} / {ref}"] = wide[lab] / wide[ref]
    wide = wide.reset_index()
    wide.columns = ["layer"] + [f"{c} (us)" if c in cmp.labels else c for c in wide.columns[1:]]
    sections = [Section("Totals", intro=f"Ratios against {ref}, the first spec: below 1 is faster or cheaper.")
                .table(show, text_columns=["spec", "digest", "array", "nm", "sparsity"])]
    for pic in pics:
        sections.append(Section(pic.title).picture(pic))
    sections.append(Section("Per-layer time", intro="Time of each layer on each spec, and its ratio to the first spec.")
                    .table(wide, text_columns=["layer"]))
    return page_files(path, f"sparseforge compare: {cmp.network}", ", ".join(
        f"{lab} [{res.spec.digest}] weights {_sp(res)}" for lab, res in zip(cmp.labels, cmp.results)), sections, pics)


def _csv(cmp: Comparison) -> str:
    lay = cmp.layers()
    tot = cmp.totals()
    total_rows = pd.DataFrame({"spec": tot["spec"], "digest": tot["digest"], "layer": "TOTAL", "mode": "",
                               "cycles": tot["cycles"], "time_us": tot["time_ms"] * 1e3,
                               "utilisation": tot["utilisation"], "stall_cycles": tot["stall_cycles"],
                               "dram_bytes": tot["dram_bytes"], "energy_uj": tot["energy_uj"],
                               "cycles_delta": tot["cycles_delta"], "time_delta_us": tot["time_delta_ms"] * 1e3,
                               "time_ratio": tot["time_ratio"], "energy_ratio": tot["energy_ratio"]})
    buf = io.StringIO()
    pd.concat([lay, total_rows], ignore_index=True).to_csv(buf, index=False)
    return buf.getvalue()


def check_output(path: Path | str) -> Path:
    """``path`` if its suffix is one :func:`write_comparison` writes; ReportError otherwise."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ReportError(f"--output {str(path)!r} is not allowed: give a file ending in "
                          + ", ".join(OUTPUT_SUFFIXES))
    return path


def write_comparison(cmp: Comparison, path: Path | str) -> list[Path]:
    """Write ``cmp`` to ``path`` in the format its suffix names (:data:`OUTPUT_SUFFIXES`):
    ``.html`` also writes its pictures as ``<stem>-<picture>.png``/``.svg`` beside it;
    ``.png``/``.svg`` write the per-layer time picture. Returns the paths written."""
    path = check_output(path)
    suffix = path.suffix.lower()
    if suffix == ".html":
        files = _html(cmp, path)
    elif suffix == ".csv":
        files = {path: _csv(cmp)}
    elif suffix == ".json":
        files = {path: json.dumps(cmp.to_dict(), indent=2) + "\n"}
    elif suffix == ".txt":
        files = {path: cmp.to_text() + "\n"}
    else:
        pic = cmp.pictures()[0]
        files = {path: pic.png() if suffix == ".png" else pic.svg()}
    return write_files_atomic(files)
