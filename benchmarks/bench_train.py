"""Wall time of simulating one full ResNet-50 training iteration (batch 32) on sat-vcu1525,
dense and 2:8 BDWP (target: under 2 s each on a 2-core machine), with the simulated cycles
and speedups for 2:4, 2:8 and 1:4 BDWP. The baseline measured in the same run is the same
iteration with pre-generation and interleave switched off, which shows what those
dataflow options buy in simulated cycles.

    python benchmarks/bench_train.py [--net resnet50] [--batch 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparseforge.models.zoo_train import get_training_network  # noqa: E402
from sparseforge.sim.train import ideal_speedup, simulate_training  # noqa: E402
from sparseforge.spec import load_spec  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", default="resnet50")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hw", default="sat-vcu1525")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    spec = load_spec(args.hw)
    net = get_training_network(args.net, batch=args.batch)
    print(f"{net.name} batch {args.batch} on {spec.name} [{spec.digest}]")
    print(f"{'method':<6} {'N:M':<6} {'wall s':>7} {'cycles':>12} {'ms/iter':>9} {'speedup':>8} {'ideal':>6} "
          f"{'no-pregen/no-interleave cycles':>31}")
    dense_cycles = None
    for method, sp in (("dense", None), ("bdwp", (2, 4)), ("bdwp", (2, 8)), ("bdwp", (1, 4))):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = simulate_training(spec, net, method=method, sparsity=sp)
            times.append(time.perf_counter() - t0)
        base = simulate_training(spec, net, method=method, sparsity=sp, interleave=False, pregenerate=False)
        dense_cycles = dense_cycles or res.cycles
        name = f"{sp[0]}:{sp[1]}" if sp else "-"
        print(f"{method:<6} {name:<6} {statistics.median(times):>7.2f} {res.cycles:>12} "
              f"{res.time_s * 1e3:>9.1f} {dense_cycles / res.cycles:>7.3f}x {ideal_speedup(method, sp):>5.2f}x "
              f"{base.cycles:>20} ({base.cycles / res.cycles:.3f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
