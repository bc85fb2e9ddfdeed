"""SpGEMM simulator wall time per built-in matrix and dataflow, and functional SpGEMM
throughput against SciPy's, side by side.

For each built-in pair that loads here (pyamg and libmetis-doc matrices are skipped with a
note when missing) it reports, on the default preset:

- the simulation wall time of each dataflow from the operands alone (product expansion and,
  for the hash dataflow, the hash placement included; median of ``--repeats``), and the
  time of ``--dataflow all`` sharing them;
- functional SpGEMM throughput (multiplies per second) of the row-wise hash dataflow's
  functional mode and of SciPy's ``A @ B``.

The issue's target: A x A for METIS mdual (1 M nonzeros) simulates in under 10 s.

With ``--variants`` it instead reports, for each A x A (default ``4elt,copter2,mdual``) on
``--hw`` (default ``smash-piuma`` then), every dataflow's cycles with the preset's B cache
and with ``spgemm.cache_bytes = 0``, the cache's hits, misses and hit rate, and the SMASH
speedups V1/V2, V1/V3 and V1/unit (docs/spgemm.md quotes this table).

    python benchmarks/bench_spgemm.py [--repeats 3] [--only mdual,illc1850]
    python benchmarks/bench_spgemm.py --variants [--hw smash-piuma] [--only 4elt]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparseforge.dataflow.spgemm import DATAFLOWS, functional_spgemm  # noqa: E402
from sparseforge.models.matrices import MatrixError, builtin_available, load_matrix  # noqa: E402
from sparseforge.sim.spgemm import compare_dataflows, simulate_spgemm  # noqa: E402
from sparseforge.spec import load_spec  # noqa: E402

PAIRS = [
    ("illc1850", "illc1850.T"), ("airfoil", None), ("bar", None), ("knot", None), ("recirc_flow", None),
    ("unit_square", None), ("unit_cube", None), ("4elt", None), ("copter2", None), ("mdual", None),
    ("minilm-ffn-up", "minilm-ln-acts"), ("minilm-ffn-down", "minilm-gelu-acts"),
]


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def variants(spec, names: list[str]) -> int:
    """The --variants report (see the module docstring)."""
    import dataclasses

    nocache = spec.replace(spgemm=dataclasses.replace(spec.spgemm, cache_bytes=0))
    s = spec.spgemm
    cache = (f"B cache {s.cache_bytes} B/PE, {s.cache_ways}-way, {s.cache_line_bytes} B lines, {s.cache_cycles} "
             f"cycles, {s.cache_replacement.upper()}" if s.cache_bytes else "no B cache (both columns are the same)")
    print(f"SpGEMM dataflows on {spec.name} [{spec.digest}]: {cache}; cycles with / without it")
    for name in names:
        if not builtin_available(name):
            print(f"{name}: skipped: not installed here")
            continue
        a = load_matrix(name).matrix
        t = time.perf_counter()
        with_c = compare_dataflows(a, a, spec=spec)
        t_with = time.perf_counter() - t
        without = compare_dataflows(a, a, spec=nocache)
        print(f"\n{name} x {name}: {a.shape[0]} rows, {a.nnz} nnz, {with_c[0].macs} multiplies "
              f"(simulated with the cache in {t_with:.1f} s)")
        print(f"  {'dataflow':18s} {'cycles':>12s} {'no cache':>12s} {'gain':>6s} {'compute':>11s} {'DRAM cyc':>11s} "
              f"{'B bytes':>13s} {'hits':>11s} {'misses':>11s} {'hit %':>6s}")
        for r, r0 in zip(with_c, without):
            rate = "-" if r.cache_hit_rate is None else f"{100 * r.cache_hit_rate:.1f}"
            print(f"  {r.label:18s} {r.cycles:12d} {r0.cycles:12d} {r0.cycles / r.cycles:6.2f} {r.compute_cycles:11d} "
                  f"{r.dram_cycles:11d} {r.dram_bytes_b:13d} {r.cache_hits:11d} {r.cache_misses:11d} {rate:>6s}")
        for label, rs in (("with the cache", with_c), ("without", without)):
            c = {r.label: r.cycles for r in rs}
            v1 = c["rowwise-hash-v1"]
            print(f"  SMASH {label:15s} V1/V2 {v1 / c['rowwise-hash-v2']:.2f}x  V1/V3 {v1 / c['rowwise-hash-v3']:.2f}x  "
                  f"V1/unit {v1 / c['rowwise-hash-unit']:.2f}x  V3 over inner {c['inner'] / c['rowwise-hash-v3']:.3g}x, "
                  f"outer {c['outer'] / c['rowwise-hash-v3']:.2f}x, dense {c['rowwise-dense'] / c['rowwise-hash-v3']:.2f}x")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", help="comma-separated A names")
    ap.add_argument("--hw", default=None, help="preset or spec file (default: default; smash-piuma with --variants)")
    ap.add_argument("--variants", action="store_true", help="cycles and cache statistics per dataflow (A x A)")
    args = ap.parse_args()
    if args.variants:
        return variants(load_spec(args.hw or "smash-piuma"),
                        args.only.split(",") if args.only else ["4elt", "copter2", "mdual"])
    spec = load_spec(args.hw or "default")
    only = set(args.only.split(",")) if args.only else None
    print(f"SpGEMM simulator wall time (median of {args.repeats}), preset {spec.name}; seconds")
    head = (f"{'A x B':34s} {'nnz(A)':>8s} {'mults':>9s} " + " ".join(f"{d:>13s}" for d in DATAFLOWS)
            + f" {'all (7)':>8s} | {'func hash':>9s} {'SciPy':>8s} {'Mmul/s hash':>11s} {'Mmul/s SciPy':>12s}")
    print(head)
    print("-" * len(head))
    for an, bn in PAIRS:
        if only and an not in only:
            continue
        if not builtin_available(an):
            print(f"{an:34s} skipped: not installed here")
            continue
        try:
            a = load_matrix(an).matrix
            b = load_matrix(bn).matrix if bn else a
        except MatrixError as exc:
            print(f"{an:34s} skipped: {exc}")
            continue
        per = [_median(lambda d=d: simulate_spgemm(a, b, spec=spec, dataflow=d), args.repeats) for d in DATAFLOWS]
        t_all = _median(lambda: compare_dataflows(a, b, spec=spec), args.repeats)
        t_fun = _median(lambda: functional_spgemm(a, b, spec=spec, dataflow="rowwise-hash"), args.repeats)
        t_sci = _median(lambda: a @ b, args.repeats)
        mults = simulate_spgemm(a, b, spec=spec, dataflow="rowwise-dense").macs
        name = f"{an} x {bn or an}"
        print(f"{name:34s} {a.nnz:8d} {mults:9d} " + " ".join(f"{t:13.3f}" for t in per)
              + f" {t_all:8.3f} | {t_fun:9.3f} {t_sci:8.3f} {mults / t_fun / 1e6:11.1f} {mults / t_sci / 1e6:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
