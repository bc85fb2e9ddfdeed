"""Simulation wall time of a 20-frame task-switching MoE sequence at 1025 tokens per frame.

M3ViT's ViT-small (6 MoE layers, 16 experts, top-4) on the ``m3vit-zcu104`` preset, tasks
``seg,depth,seg,normals`` repeated over 20 frames (19 frames follow another task's frame),
all three schedules. Prints the wall time of :func:`sim.moe.simulate_moe` per schedule
(median of ``--repeats``), the time to obtain the routing (MiniLM MoEfication on real text,
measured once; or loading ``--routing-file``), and the simulated results side by side, with
the dense ViT of the same shape (:func:`models.moe.dense_vit_network`) as the last row and
each schedule's latency, energy and DRAM traffic against it; then the on-chip memory ratios
that M3ViT's 2.4x memory claim compares (naive / reorder).

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
          f"{'DRAM MB':>10}{'mJ/frame':>10}{'exp loads':>11}{'switch cyc':>12}{'vs dense: speed':>17}{'energy':>8}")
    for s in SCHEDULES:
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            res = simulate_moe(spec, cfg, routing, schedules=(s,))
            times.append(time.perf_counter() - t)
        tot = res.schedules[s].totals()
        vs = res.versus_dense(s)
        print(f"{s:<10}{statistics.median(times):>14.3f}{tot['mean_frame_ms']:>11.2f}{tot['time_ms']:>11.1f}"
              f"{tot['onchip_bytes'] / 1024:>13.0f}{tot['dram_bytes'] / 1e6:>10.1f}{tot['mean_frame_energy_mj']:>10.1f}"
              f"{tot['expert_loads']:>11}{tot['mean_switch_cycles']:>12.1f}{vs['speedup']:>16.3f}x"
              f"{vs['energy_ratio']:>7.3f}x")
    d = res.dense
    frames = routing.frames
    print(f"{'dense ViT':<10}{'':>14}{d['time_ms']:>11.2f}{d['time_ms'] * frames:>11.1f}"
          f"{(spec.weight_buffer_kib + spec.input_buffer_kib + spec.output_buffer_kib):>13}"
          f"{d['dram_bytes'] * frames / 1e6:>10.1f}{d['energy_mj']:>10.1f}{'-':>11}{'-':>12}{1.0:>16.3f}x{1.0:>7.3f}x")
    t = time.perf_counter()
    full = simulate_moe(spec, cfg, routing)
    print(f"all three schedules in one call: {time.perf_counter() - t:.3f} s")
    tot = {s: full.schedules[s].totals() for s in SCHEDULES}
    print(f"on-chip memory naive / reorder: MoE unit {tot['naive']['moe_onchip_bytes'] / tot['reorder']['moe_onchip_bytes']:.2f}x, "
          f"with the array buffers {tot['naive']['onchip_bytes'] / tot['reorder']['onchip_bytes']:.2f}x, expert weights "
          f"{full.schedules['naive'].onchip['experts'] / full.schedules['reorder'].onchip['experts']:.2f}x "
          f"(M3ViT: 2.4x); expert {full.expert.bytes / 1024:.0f} KiB at {spec.moe.expert_weight_width} bits")
    print(f"energy per frame cache / reorder: {tot['cache']['mean_frame_energy_mj'] / tot['reorder']['mean_frame_energy_mj']:.2f}x, "
          f"naive / reorder: {tot['naive']['mean_frame_energy_mj'] / tot['reorder']['mean_frame_energy_mj']:.2f}x; "
          f"latency cache / reorder {tot['cache']['mean_frame_ms'] / tot['reorder']['mean_frame_ms']:.2f}x, "
          f"naive / reorder {tot['naive']['mean_frame_ms'] / tot['reorder']['mean_frame_ms']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
