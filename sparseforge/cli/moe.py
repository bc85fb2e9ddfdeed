"""``sparseforge simulate --net m3vit-small``: multi-task MoE inference under three schedules.

    sparseforge simulate --net m3vit-small --hw m3vit-zcu104 --tasks seg,depth,seg,normals --frames 20

simulates a sequence of single-task frames (the tasks repeat to fill ``--frames``) through the
MoE ViT and prints, side by side for the naive, cache-based and reordering schedules, the
latency, on-chip memory, DRAM traffic, expert loads, queue occupancy and task-switch cost per
frame and per layer (see :mod:`sim.moe`). Routing is real by default (MoEfied MiniLM on real
text, :func:`models.moe.minilm_routing`); ``--routing synthetic`` is labelled as such;
``--routing-file`` replays a saved routing and ``--save-routing`` stores the one used.

``add_arguments`` adds these options to the ``simulate`` parser; ``run`` is called for the
``m3vit-*`` networks (:data:`NETWORKS`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..spec import HardwareSpec
from .kit import UserError, emit_report, progress

__all__ = ["NETWORKS", "add_arguments", "run", "report_text"]

#: ``--net`` names handled here.
NETWORKS = ("m3vit-small", "m3vit-tiny")
DEFAULT_TASKS = "seg,depth,seg,normals"


class _DefaultTokens(int):
    """The ``--tokens`` default, marked so that ``run`` can tell it was not given (the MoE
    networks then use their own token count, 1025 for a 512 x 512 frame)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the MoE options to the ``simulate`` parser (which already has --hw, --set, --json,
    --net, --tokens and --output)."""
    for action in parser._actions:                      # mark --tokens' default (see _DefaultTokens)
        if "--tokens" in action.option_strings and isinstance(action.default, int):
            action.default = _DefaultTokens(action.default)
            action.help = (action.help or "") + "; m3vit-*: tokens per frame (default 1025)"
    g = parser.add_argument_group("MoE multi-task inference (--net m3vit-small | m3vit-tiny)")
    g.add_argument("--tasks", metavar="T1,T2,...",
                   help=f"task of each frame, repeated to fill --frames (default: {DEFAULT_TASKS}); "
                        "tasks: seg, parts, sal, normals, edges, depth")
    g.add_argument("--frames", type=int, metavar="N", help="frames to simulate (default: one per --tasks entry)")
    g.add_argument("--schedule", default="all", choices=("all", "naive", "cache", "reorder"),
                   help="schedule(s) to simulate (default: %(default)s)")
    g.add_argument("--routing", default="real", choices=("real", "synthetic"),
                   help="real: MoEfied all-MiniLM-L6-v2 on real text, one fitted router per task; "
                        "synthetic: Zipf-skewed random routing, labelled as such (default: %(default)s)")
    g.add_argument("--routing-file", metavar="FILE.npz", help="replay a saved routing (defines tasks and frames)")
    g.add_argument("--save-routing", metavar="FILE.npz", help="save the routing used")
    g.add_argument("--experts", type=int, help="experts per MoE layer (default: 16)")
    g.add_argument("--top-k", type=int, help="experts per token (default: 4)")
    g.add_argument("--zipf", type=float, default=1.0, help="synthetic routing: Zipf exponent (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="synthetic routing: seed (default: %(default)s)")


def _task_sequence(args: argparse.Namespace) -> tuple[str, ...]:
    text = args.tasks if args.tasks is not None else DEFAULT_TASKS
    tasks = tuple(t.strip() for t in text.split(","))
    if not all(tasks):
        raise UserError(f"--tasks {text!r} is not allowed: give comma-separated task names, e.g. {DEFAULT_TASKS}")
    frames = len(tasks) if args.frames is None else args.frames
    if frames < 1:
        raise UserError(f"--frames = {frames} is not allowed: must be >= 1")
    return tuple(tasks[i % len(tasks)] for i in range(frames))


def run(args: argparse.Namespace, spec: HardwareSpec) -> int:
    """Simulate the MoE network of ``args.net`` on ``spec`` and print (or write) the report."""
    from sparseforge.dataflow.mapper import MappingError
    from sparseforge.models import moe
    from sparseforge.sim.moe import SCHEDULES, simulate_moe

    for name in ("functional", "weights", "text", "sparsity"):
        if getattr(args, name, None):
            raise UserError(f"--{name} is not allowed with --net {args.net}: it applies to the MiniLM and "
                            "ResNet-50 simulations")
    changes = {}
    if not isinstance(args.tokens, _DefaultTokens) and args.tokens is not None:
        changes["tokens"] = args.tokens
    if args.experts is not None:
        changes["experts"] = args.experts
    if args.top_k is not None:
        changes["top_k"] = args.top_k
    try:
        cfg = moe.get_config(args.net, **changes)
    except moe.MoeError as exc:
        raise UserError(str(exc).replace("MoeVitConfig", "--net")) from None
    schedules = SCHEDULES if args.schedule == "all" else (args.schedule,)
    try:
        if args.routing_file:
            if args.tasks is not None or args.frames is not None:
                raise UserError("--tasks and --frames are not allowed with --routing-file: the file defines the frames")
            routing = moe.load_routing(args.routing_file)
            routing.check(moe_layers=cfg.moe_layers, tokens=cfg.tokens, top_k=cfg.top_k, num_experts=cfg.experts,
                          what=f"routing file {args.routing_file!r}")
            for t in set(routing.tasks):
                if t not in cfg.tasks:
                    raise UserError(f"routing file {args.routing_file!r}: task {t!r} has no router in "
                                    f"{cfg.name} (tasks: {', '.join(cfg.tasks)})")
        else:
            tasks = _task_sequence(args)
            for t in tasks:
                if t not in cfg.tasks:
                    raise UserError(f"--tasks: task {t!r} has no router: {cfg.name} has routers for "
                                    f"{', '.join(cfg.tasks)}")
            if args.routing == "synthetic":
                routing = moe.synthetic_routing(tasks, moe_layers=cfg.moe_layers, tokens=cfg.tokens,
                                                num_experts=cfg.experts, top_k=cfg.top_k, zipf=args.zipf,
                                                seed=args.seed)
            else:
                progress(f"real routing: MoEfying all-MiniLM-L6-v2 ({cfg.experts} experts, top-{cfg.top_k}) and "
                         f"running {len(set(tasks))} tasks' text through it")
                try:
                    routing = moe.minilm_routing(tasks, tokens=cfg.tokens, num_experts=cfg.experts,
                                                 top_k=cfg.top_k, moe_layers=cfg.moe_layers, progress=progress)
                except FileNotFoundError as exc:
                    raise UserError(f"real routing needs the MiniLM weights ({exc}); install them or use "
                                    "--routing synthetic") from None
        result = simulate_moe(spec, cfg, routing, schedules=schedules)
    except (moe.MoeError, MappingError) as exc:
        raise UserError(str(exc)) from None
    if args.save_routing:
        moe.save_routing(routing, Path(args.save_routing))
        progress(f"wrote routing to {args.save_routing}")
    if args.json:
        out = result.to_dict()
        out["routing_stats"] = _routing_summary(routing)
        text = json.dumps(out, indent=2, default=_json_default)
    else:
        text = report_text(result, routing)
    return emit_report(text, args.output)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__}")


def _routing_summary(routing) -> dict:
    from sparseforge.models.moe import routing_stats

    st = routing_stats(routing)
    out = {"source": routing.source, "frames": routing.frames, "tokens": routing.tokens, "top_k": routing.top_k,
           "experts": routing.num_experts, "mean_max_over_mean_load": st["mean_max_over_mean"],
           "mean_experts_used": st["mean_used"], "min_experts_used": st["min_used"]}
    agree = routing.meta.get("router_topk_agreement")
    if agree:
        out["router_topk_agreement"] = float(np.mean([np.mean(v) for v in agree.values()]))
    return out


def report_text(result, routing) -> str:
    """The side-by-side text report of a :class:`sim.moe.MoeSimResult`."""
    cfg, spec = result.cfg, result.spec
    sch = list(result.schedules)
    rs = _routing_summary(routing)
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

    def row(label, fn):
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
        kinds = "+".join(sorted({d.name.split(".", 1)[1].split(".")[0] for d in layers})) if "." in layers[0].name \
            else layers[0].name
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
