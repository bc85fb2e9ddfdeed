"""``sparseforge generate``: Verilog and a manifest of a design into ``OUT/NAME/``."""

from __future__ import annotations

import argparse

from .. import api
from . import options
from .kit import command, reporter

__all__ = ["register", "cmd_generate"]


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``generate`` command to the CLI's subparsers."""
    p = sub.add_parser("generate", help="generate Verilog, a manifest and an FPGA hand-off into rtl_out/",
                       description="Generate synthesizable Verilog (Amaranth) for the spec into OUT/NAME/ with a "
                                   "manifest.json recording the spec, its digest, the ports and how to instantiate, "
                                   "and an FPGA hand-off: a FuseSoC core, XDC and LPF clock constraints, a Vivado "
                                   "build script and an ECP5 (Yosys/nextpnr) build script (docs/handoff.md).")
    options.add_hw_options(p)
    p.add_argument("--design", default="engine",
                   help="engine (weight-stationary array + buffers + tile sequencer), os_engine "
                        "(output-stationary), array, pe, sore (N:M mask generator), hashmerge (SpGEMM), "
                        "moe_reorder / moe_router / moe_scheduler, engine_axi / os_engine_axi (an engine "
                        "behind AXI4-Lite control and AXI4-Stream data ports, docs/handoff.md) "
                        "(default: %(default)s)")
    p.add_argument("--out", default="rtl_out", help="output folder (default: %(default)s)")
    p.add_argument("--name", help="design folder name inside --out (default: <spec name>-<design>)")
    p.add_argument("--part", help="FPGA part the hand-off's build scripts target: XCZU7EV (ZCU104), XCVU9P "
                                  "(VCU1525), LFE5U-25F, LFE5U-45F or LFE5U-85F, or a board name (default: the "
                                  "spec's part)")
    p.add_argument("--replace", action="store_true",
                   help="replace the folder even when it holds another design (another spec digest or kind)")
    p.add_argument("--no-cache", action="store_true",
                   help="convert again instead of reading the Verilog from the disk cache (~/.cache/sparseforge, "
                        "keyed by spec digest, design, generator source and Amaranth version), and store nothing")
    p.set_defaults(func=cmd_generate)
    return p


@command
def cmd_generate(args: argparse.Namespace) -> int:
    spec = options.spec(args)
    options.check_output_dir(args.out, "--out")
    result = api.generate(spec, args.design, out=args.out, name=args.name,
                          replace=args.replace, progress=reporter(args), part=args.part, cache=not args.no_cache)
    print(result.to_json() if args.json else result.to_text())
    return 0
