"""Simulator wall time on MiniLM (128 tokens) and ResNet-50 inference (batch 1, 224x224).

Prints simulated cycles and wall time (median of several repeats) for each network on a
32x32 2:4 array (preset sf-32x32) and on the default 16x16 array, sparse 2:4 and dense.
As a baseline measured in the same run, the same simulation is repeated with the engine's
cycle recurrence stepped tile by tile instead of evaluated in closed form; both must give
identical cycles, and the ratio shows what the closed form buys.

    python benchmarks/bench_sim.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sparseforge.sim.units.engine as engine  # noqa: E402
from sparseforge.models.zoo import minilm_network, resnet50_network  # noqa: E402
from sparseforge.sim.simulate import simulate_network  # noqa: E402
from sparseforge.spec import load_spec  # noqa: E402


def _stepped(rows: int, cols: int, tokens: int, tiles: int) -> int:
    """Baseline: evaluate the loader/streamer recurrence one tile at a time."""
    return engine._recurrence(rows, cols, tokens, tiles)[-1][1]


def _time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    nets = {"minilm": minilm_network(tokens=128), "resnet50": resnet50_network(batch=1, image=224)}
    print(f"{'network':<9} {'hardware':<9} {'weights':<7} {'layers':>6} {'runs':>5} {'sim cycles':>12} "
          f"{'wall ms':>8} {'stepped ms':>10} {'ratio':>6}")
    worst = 0.0
    for hw in ("sf-32x32", "default"):
        spec = load_spec(hw)
        for name, net in nets.items():
            for sparsity in ((2, 4), None):
                wall, res = _time(lambda: simulate_network(spec, net, sparsity), args.repeats)
                with mock.patch.object(engine, "stream_starts", _stepped):
                    base, res_b = _time(lambda: simulate_network(spec, net, sparsity), max(1, args.repeats // 2))
                assert res_b.cycles == res.cycles, "stepped and closed-form models disagree"
                runs = sum(lay.runs for lay in res.layers)
                worst = max(worst, wall)
                print(f"{name:<9} {hw:<9} {('2:4' if sparsity else 'dense'):<7} {len(res.layers):>6} {runs:>5} "
                      f"{res.cycles:>12} {wall * 1e3:>8.1f} {base * 1e3:>10.1f} {base / wall:>5.1f}x")
    print(f"slowest simulation: {worst * 1e3:.1f} ms (target for ResNet-50 on 32x32: < 1000 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
