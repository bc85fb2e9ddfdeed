"""Readable text reports of simulation results."""

from __future__ import annotations

from typing import Any

from sparseforge.sim.simulate import NetworkResult

__all__ = ["simulation_table", "simulation_json"]


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


def simulation_table(sparse: NetworkResult, dense: NetworkResult | None, *, title: str) -> str:
    spec = sparse.spec
    mhz = spec.clock_mhz
    lines = [title,
             f"hardware: {spec.name} [{spec.digest}] {spec.rows}x{spec.cols} PEs, {spec.n}:{spec.m}, "
             f"{spec.act_width}-bit x {spec.weight_width}-bit, {spec.multipliers} multipliers, {mhz:g} MHz, "
             f"DRAM {spec.dram_bandwidth_gbps:g} GB/s",
             ""]
    head = (f"{'layer':<20} {'mode':<6} {'T':>5} {'K':>5} {'N':>5} {'x':>3} {'tiles':>6} {'cycles':>10} "
            f"{'time us':>9} {'util':>6} {'stall':>8} {'DRAM':>10} {'energy uJ':>10}")
    if dense is not None:
        head += f" {'dense cyc':>10} {'speedup':>7}"
    lines += [head, "-" * len(head)]
    dense_by = {lay.name: lay for lay in dense.layers} if dense is not None else {}
    for lay in sparse.layers:
        row = (f"{lay.name:<20} {lay.mode:<6} {lay.tokens:>5} {lay.k:>5} {lay.n_out:>5} {lay.count:>3} "
               f"{lay.tiles:>6} {lay.cycles:>10} {lay.cycles / mhz:>9.1f} {lay.utilisation:>6.1%} "
               f"{lay.stall_cycles:>8} {_bytes(lay.dram_bytes):>10} {lay.energy_total_pj / 1e6:>10.2f}")
        if dense is not None:
            d = dense_by[lay.name]
            row += f" {d.cycles:>10} {d.cycles / lay.cycles:>6.2f}x"
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
            f"dense on the same array: {d['cycles']} cycles = {d['time_ms']:.3f} ms, {d['energy_total_pj'] / 1e6:.1f} uJ"
            f" -> speedup {d['cycles'] / t['cycles']:.2f}x, energy {d['energy_total_pj'] / t['energy_total_pj']:.2f}x lower")
    return "\n".join(lines)


def simulation_json(sparse: NetworkResult, dense: NetworkResult | None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "network": sparse.network,
        "sparsity": f"{sparse.sparsity[0]}:{sparse.sparsity[1]}" if sparse.sparsity else "dense",
        **sparse.spec.record(),
        "layers": [lay.to_dict() for lay in sparse.layers],
        "totals": sparse.totals(),
    }
    if dense is not None:
        out["dense"] = {"layers": [lay.to_dict() for lay in dense.layers], "totals": dense.totals()}
        out["speedup_over_dense"] = dense.cycles / sparse.cycles
    out.update(extra)
    return out
