"""``sparseforge compare``: two or more hardware specs on one workload, side by side.

    sparseforge compare --hw default --hw sf-32x32 --net resnet50
    sparseforge compare --hw default --hw dense-16x16 --hw my.toml --net minilm --sparsity 2:4 -o cmp.html

Per layer and in total: cycles, time, utilisation and energy of every spec, with the deltas
against the first (:mod:`sparseforge.report.compare`). ``--output`` picks the format by its
extension: .html (with its pictures as PNG/SVG beside it), .csv, .json, .png, .svg or .txt;
without it the table is printed. Unlike the other commands, ``--hw`` is repeatable here.
"""

from __future__ import annotations

import argparse
import json

from .. import api
from ..fileio import check_output_path
from .kit import UserError, command, progress

__all__ = ["register", "cmd_compare"]


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``compare`` command to the CLI's subparsers."""
    p = sub.add_parser("compare", help="two or more specs on one network: per layer and total, with deltas",
                       description="Simulate one network on two or more hardware specs and show them side by side: "
                                   "per layer and in total, cycles, time, utilisation and energy, with the deltas "
                                   "against the first spec. Each spec runs at its own N:M sparsity unless "
                                   "--sparsity sets one for all.")
    p.add_argument("--hw", action="append", required=True, metavar="PRESET|FILE.toml",
                   help="a spec: preset name or TOML file; give it two or more times, the first is the reference")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one spec field in every spec, e.g. --set clock_mhz=250 (repeatable)")
    p.add_argument("--net", default="minilm", help="network: minilm, bert_base, resnet50, resnet18, vgg16, mobilenetv2, vit_s16 or vit_m3vit "
                        "(default: %(default)s)")
    p.add_argument("--sparsity", metavar="N:M|dense",
                   help="weight sparsity of the prunable layers for every spec (default: each spec's own n:m)")
    p.add_argument("--tokens", type=int, help="MiniLM sequence length (default: 128)")
    p.add_argument("--batch", type=int, help="ResNet-50 batch size (default: 1)")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write FILE instead of printing: .html (+ PNG/SVG pictures), .csv, .json, .png, .svg, .txt")
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of the table")
    p.set_defaults(func=cmd_compare)
    return p


@command
def cmd_compare(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status (user errors raise UserError)."""
    from ..report.compare import NATIVE, check_output, compare_specs, write_comparison

    if len(args.hw) < 2:
        raise UserError(f"--hw given {len(args.hw)} time: compare needs two or more specs (--hw A --hw B)")
    if args.output:
        if args.json:
            raise UserError(f"--json is not allowed with --output {args.output!r}: the extension picks the format")
        check_output(args.output)
        check_output_path(args.output, what="--output")
    sparsity = NATIVE if args.sparsity is None else api.parse_sparsity(args.sparsity, what="--sparsity")
    specs = [api.load_spec(hw, args.set or ()) for hw in args.hw]
    net = api.load_network(args.net, tokens=args.tokens, batch=args.batch)
    progress(f"simulating {net.name} on {', '.join(s.name for s in specs)}")
    cmp = compare_specs(specs, net, sparsity)
    if args.output:
        paths = write_comparison(cmp, args.output)
        progress("wrote " + ", ".join(str(p) for p in paths))
    elif args.json:
        print(json.dumps(cmp.to_dict(), indent=2))
    else:
        print(cmp.to_text())
    return 0
