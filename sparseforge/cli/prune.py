"""``sparseforge prune``: prune a real network N:M with calibrated methods and report what it
keeps on held-out real text (:func:`sparseforge.api.prune`, docs/pruning.md).

    sparseforge prune --net minilm --sparsity 2:4 --method sparsegpt --calib 8192 --json
    sparseforge prune --sparsity 2:4,1:4,2:8 --method magnitude,wanda,sparsegpt
    sparseforge prune --sparsity 2:4 --method sparsegpt --output minilm-2of4.safetensors
"""

from __future__ import annotations

import argparse

from .. import api
from .kit import UserError, command, progress, read_prose

__all__ = ["register", "cmd_prune"]


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sparseforge prune`` to the CLI's subcommands."""
    p = sub.add_parser(
        "prune", help="prune MiniLM N:M (magnitude, Wanda, SparseGPT + refit) and measure what it keeps",
        description="Prune every Linear layer of the real all-MiniLM-L6-v2 N:M, layer after layer on "
                    "calibration text, with magnitude, Wanda or SparseGPT, then refit the kept weights "
                    "(least squares, mask fixed); report the sentence-embedding cosine to the dense model and "
                    "nearest-centroid topic accuracy on held-out text, float and int8. Results and weights "
                    "are cached (<cache>/prune); see docs/pruning.md.")
    p.add_argument("--net", default="minilm", help="network with real weights to prune (default: %(default)s)")
    p.add_argument("--sparsity", default="2:4", metavar="N:M[,N:M...]",
                   help="comma-separated N:M patterns (default: %(default)s)")
    p.add_argument("--method", default=api.DEFAULT_PRUNE, metavar="METHOD[,METHOD...]",
                   help="comma-separated methods: magnitude, wanda, sparsegpt (default: %(default)s)")
    p.add_argument("--calib", type=int, default=api.DEFAULT_CALIB, metavar="TOKENS",
                   help="calibration tokens (default: %(default)s; SparseGPT needs thousands)")
    p.add_argument("--calib-text", metavar="FILE",
                   help="calibrate on this UTF-8 text instead of the bundled calibration documents")
    p.add_argument("--recover", default="refit", choices=("refit", "none"),
                   help="recovery after each layer's pruning: refit (least squares, mask fixed; the default) "
                        "or none")
    p.add_argument("--output", "-o", metavar="FILE.npz|FILE.safetensors",
                   help="write the pruned weights (one pattern and one method) to FILE; without it they stay "
                        "in the cache, whose path the report gives")
    p.add_argument("--no-cache", action="store_true", help="compute everything again and cache nothing")
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of text (no progress)")
    p.set_defaults(func=cmd_prune)
    return p


def _quiet(msg: str) -> None:
    pass


@command
def cmd_prune(args: argparse.Namespace) -> int:
    text = read_prose(args.calib_text, "--calib-text") if args.calib_text else None
    try:
        result = api.prune(args.net, args.sparsity, args.method, calib=args.calib, recover=args.recover == "refit",
                           text=text, cache=not args.no_cache, output=args.output,
                           progress=_quiet if args.json else progress)
    except UserError as exc:
        if getattr(exc, "param", None) == "text":
            raise UserError(f"--calib-text {args.calib_text!r}: {exc}") from None
        raise
    print(result.to_json() if args.json else result.to_text())
    return 0
