"""Simulation wall time of a 20-frame task-switching MoE sequence at 1025 tokens per frame.

M3ViT's ViT-small (6 MoE layers, 16 experts, top-4) on the ``m3vit-zcu104`` preset, tasks
``seg,depth,seg,normals`` repeated over 20 frames (19 frames follow another task's frame),
all three schedules. Prints the wall time of :func:`sim.moe.simulate_moe` per schedule
(median of ``--repeats``), the time to obtain the routing (MiniLM MoEfication on real text,
measured once; or loading ``--routing-file``), and the simulated results side by side.

    python benchmarks/bench_moe.py [--repeats 3] [--routing real|synthetic] [--routing-file F] [--save-routing F]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparseforge.models import moe  # noqa: E402
from sparseforge.sim.moe import SCHEDULES, simulate_moe  # noqa: E402
from sparseforge.spec import load_spec  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--routing", choices=("real", "synthetic"), default="real")
    ap.add_argument("--routing-file")
    ap.add_argument("--save-routing")
    args = ap.parse_args()
    spec = load_spec("m3vit-zcu104")
    cfg = moe.get_config("m3vit-small")
    seq = ("seg", "depth", "seg", "normals")
    tasks = tuple(seq[i % len(seq)] for i in range(args.frames))
    t0 = time.perf_counter()
    if args.routing_file:
        routing = moe.load_routing(args.routing_file)
        how = f"loaded {args.routing_file}"
    elif args.routing == "synthetic":
        routing = moe.synthetic_routing(tasks, moe_layers=cfg.moe_layers, tokens=cfg.tokens,
                                        num_experts=cfg.experts, top_k=cfg.top_k)
        how = "synthetic (labelled)"
    else:
        routing = moe.minilm_routing(tasks, tokens=cfg.tokens, num_experts=cfg.experts, top_k=cfg.top_k)
        how = "MoEfied all-MiniLM-L6-v2 on real text"
    t_routing = time.perf_counter() - t0
    if args.save_routing:
        moe.save_routing(routing, args.save_routing)
    st = moe.routing_stats(routing)
    print(f"bench_moe: {cfg.name}, {routing.frames} frames x {routing.tokens} tokens, tasks "
          f"{','.join(seq)} repeated, {sum(a != b for a, b in zip(routing.tasks, routing.tasks[1:]))} task switches; "
          f"spec {spec.name} [{spec.digest}]")
    print(f"routing: {routing.source} ({how}) in {t_routing:.2f} s; load skew max/mean "
          f"{st['mean_max_over_mean']:.2f}, experts used per layer {st['mean_used']:.1f}/{cfg.experts}")
    print(f"{'schedule':<10}{'sim wall (s)':>14}{'frame ms':>11}{'total ms':>11}{'on-chip KiB':>13}"
          f"{'DRAM MB':>10}{'exp loads':>11}{'switch cyc':>12}")
    for s in SCHEDULES:
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            res = simulate_moe(spec, cfg, routing, schedules=(s,))
            times.append(time.perf_counter() - t)
        tot = res.schedules[s].totals()
        print(f"{s:<10}{statistics.median(times):>14.3f}{tot['mean_frame_ms']:>11.2f}{tot['time_ms']:>11.1f}"
              f"{tot['onchip_bytes'] / 1024:>13.0f}{tot['dram_bytes'] / 1e6:>10.1f}{tot['expert_loads']:>11}"
              f"{tot['mean_switch_cycles']:>12.1f}")
    t = time.perf_counter()
    simulate_moe(spec, cfg, routing)
    print(f"all three schedules in one call: {time.perf_counter() - t:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
