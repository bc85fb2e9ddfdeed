"""``sparseforge synth``: synthesis estimates of a generated design (Yosys resources for
UltraScale+, nextpnr-ecp5 Fmax), recorded in ``synth.json`` beside its manifest."""

from __future__ import annotations

import argparse

from .. import api
from .kit import command, reporter

__all__ = ["register", "cmd_synth"]


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``synth`` command to the CLI's subparsers."""
    p = sub.add_parser("synth", help="synthesis estimates (Yosys LUT/FF/DSP/BRAM, nextpnr Fmax) of a design",
                       description="Run Yosys synth_xilinx (UltraScale+) and nextpnr-ecp5 on a design generated "
                                   "into rtl_out/; write synth.json beside its manifest.")
    p.add_argument("design", help="design name inside --out, or a design folder")
    p.add_argument("--out", default="rtl_out", help="folder holding generated designs (default: %(default)s)")
    p.add_argument("--no-ecp5", action="store_true", help="skip nextpnr place and route")
    p.add_argument("--ecp5-device", default="auto", help="ECP5 device: 25k, 45k, 85k or auto (default: %(default)s)")
    p.add_argument("--ecp5-nodsp", action="store_true",
                   help="build ECP5 multipliers from LUTs (for arrays with more multipliers than DSP blocks)")
    p.add_argument("--freq", type=float, default=100.0, help="nextpnr target clock in MHz (default: %(default)s)")
    p.add_argument("--no-cache", action="store_true",
                   help="run the tools again instead of restoring their results from the disk cache "
                        "(~/.cache/sparseforge, keyed by the Verilog, top, settings and tool versions), and store nothing")
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of text")
    p.set_defaults(func=cmd_synth)
    return p


@command
def cmd_synth(args: argparse.Namespace) -> int:
    result = api.synth(args.design, out=args.out, ecp5=not args.no_ecp5, ecp5_device=args.ecp5_device,
                       freq_mhz=args.freq, ecp5_nodsp=args.ecp5_nodsp, progress=reporter(args),
                       cache=not args.no_cache)
    print(result.to_json() if args.json else result.to_text())
    return 0
