"""``sparseforge verify``: the project's cocotb testbench on a design folder written by
``generate`` (:mod:`sparseforge.verify.flow`)."""

from __future__ import annotations

import argparse
import sys

from .. import api
from .kit import command, progress

__all__ = ["register", "cmd_verify"]


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``verify`` command to the CLI's subparsers."""
    p = sub.add_parser("verify", help="run the cocotb testbench on a generated engine: real data, golden model, cycles",
                       description="Run the project's cocotb testbench on a design folder written by `sparseforge "
                                   "generate` (the GEMM engines: engine, os_engine): a real layer of the pruned int8 "
                                   "MiniLM, sliced to fit the design's memories, through its Verilog in Icarus "
                                   "Verilog or Verilator. Reports whether every output is bit-exact against the "
                                   "NumPy golden model and the measured against the predicted cycles. Exit status "
                                   "0: pass, 1: a mismatch, 2: bad input.")
    p.add_argument("design", help="design folder, or a design name inside --out")
    p.add_argument("--out", default="rtl_out", help="folder holding generated designs (default: %(default)s)")
    p.add_argument("--simulator", default="icarus", help="icarus or verilator (default: %(default)s)")
    p.add_argument("--waves", nargs="?", const=True, default=None, metavar="FILE",
                   help="write the waveform into the design folder (waves.fst from icarus, waves.vcd from "
                        "verilator; GTKWave and Surfer open both), or to FILE (same suffix); give it after DESIGN "
                        "or as --waves=FILE")
    p.add_argument("--layer", default=None, help="MiniLM Linear layer to run (default: layer0.attn.q)")
    p.add_argument("--tokens", type=int, default=None, help="tokens of real text (default: 16)")
    p.add_argument("--outputs", type=int, default=None, help="output channels (default: 2 x cols)")
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of text (no progress lines)")
    p.set_defaults(func=cmd_verify)
    return p


@command
def cmd_verify(args: argparse.Namespace) -> int:
    result = api.verify(args.design, out=args.out, simulator=args.simulator, waves=args.waves, layer=args.layer,
                        tokens=args.tokens, outputs=args.outputs, progress=None if args.json else progress)
    print(result.to_json() if args.json else result.to_text())
    sys.stdout.flush()
    return 0 if result.passed else 1

