"""``sparseforge simulate --net m3vit-small``: multi-task MoE inference under three schedules.

    sparseforge simulate --net m3vit-small --hw m3vit-zcu104 --tasks seg,depth,seg,normals --frames 20

simulates a sequence of single-task frames (the tasks repeat to fill ``--frames``) through the
MoE ViT and prints, side by side for the naive, cache-based and reordering schedules, the
latency, on-chip memory, DRAM traffic, expert loads, queue occupancy and task-switch cost per
frame and per layer (:func:`sparseforge.api.simulate_moe`). Routing is real by default
(MoEfied MiniLM on real text); ``--routing synthetic`` is labelled as such;
``--routing-file`` replays a saved routing and ``--save-routing`` stores the one used.

``add_arguments`` adds these options to the ``simulate`` parser; ``run`` is called for the
``m3vit-*`` networks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import api
from ..spec import HardwareSpec
from . import options
from .kit import UserError, command, progress, reporter, write_atomic

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the MoE options to the ``simulate`` parser (which already has --hw, --set, --json,
    --net, --tokens and --output)."""
    g = parser.add_argument_group("MoE multi-task inference (--net m3vit-small | m3vit-tiny)")
    g.add_argument("--tasks", metavar="T1,T2,...",
                   help=f"task of each frame, repeated to fill --frames (default: {','.join(api.DEFAULT_TASKS)}); "
                        "tasks: seg, parts, sal, normals, edges, depth")
    g.add_argument("--frames", type=int, metavar="N", help="frames to simulate (default: one per --tasks entry)")
    g.add_argument("--schedule", default="all", choices=("all", "naive", "cache", "reorder"),
                   help="schedule(s) to simulate (default: %(default)s)")
    g.add_argument("--routing", default="real", choices=("real", "synthetic"),
                   help="real: MoEfied all-MiniLM-L6-v2 on real text, one fitted router per task; "
                        "synthetic: Zipf-skewed random routing, labelled as such (default: %(default)s)")
    g.add_argument("--routing-file", metavar="FILE.npz", help="replay a saved routing (defines tasks and frames)")
    g.add_argument("--save-routing", metavar="FILE.npz", help="save the routing used")
    g.add_argument("--no-cache", action="store_true",
                   help="recompute the real routing and store nothing (it is cached on disk, ~/.cache/sparseforge, "
                        "by tasks, network shape, weights and code)")
    g.add_argument("--experts", type=int, help="experts per MoE layer (default: 16)")
    g.add_argument("--top-k", type=int, help="experts per token (default: 4)")
    g.add_argument("--zipf", type=float, default=1.0, help="synthetic routing: Zipf exponent (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="synthetic routing: seed (default: %(default)s)")


@command
def run(args: argparse.Namespace, spec: HardwareSpec) -> int:
    """Simulate the MoE network of ``args.net`` on ``spec`` and print (or write) the report."""
    for name in ("functional", "weights", "text", "sparsity", "train", "onnx", "input_shape", "batch"):
        if getattr(args, name, None):
            raise UserError(f"--{name.replace('_', '-')} is not allowed with --net {args.net}: it applies to the "
                            "MiniLM and ResNet-50 simulations")
    options.output_format(args, html=True)
    if args.routing_file and (args.tasks is not None or args.frames is not None):
        raise UserError("--tasks and --frames are not allowed with --routing-file: the file defines the frames")
    options.check_output_file(args.save_routing, "--save-routing")
    result = api.simulate_moe(spec, args.net, tasks=args.tasks, frames=args.frames, schedule=args.schedule,
                              routing=Path(args.routing_file) if args.routing_file else args.routing,
                              tokens=args.tokens, experts=args.experts, top_k=args.top_k, zipf=args.zipf,
                              seed=args.seed, cache=not args.no_cache, progress=reporter(args))
    if args.save_routing:
        write_atomic(Path(args.save_routing), result.save_routing, what="--save-routing")
        progress(f"wrote routing to {args.save_routing}")
    rc = options.emit(result, args)
    options.report_clock(result, args)
    return rc
