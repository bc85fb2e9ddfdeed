"""``sparseforge lint``: Verilator ``-Wall`` on a design folder written by ``generate``, with
the package's waiver file and the Amaranth alias analysis (:mod:`sparseforge.verify.lint`)."""

from __future__ import annotations

import argparse

from .. import api
from .kit import command

__all__ = ["register", "cmd_lint"]


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``lint`` command to the CLI's subparsers."""
    q = sub.add_parser("lint", help="Verilator -Wall lint of a generated design, with the waiver file",
                       description="Run `verilator --lint-only -Wall` on a design folder written by `sparseforge "
                                   "generate`, with the package's waiver file (sparseforge/verify/waivers.vlt) and "
                                   "its Amaranth alias analysis; print every unwaived warning. Exit status 0: "
                                   "clean, 1: unwaived warnings, 2: bad input.")
    q.add_argument("design", help="design folder, or a design name inside --out")
    q.add_argument("--out", default="rtl_out", help="folder holding generated designs (default: %(default)s)")
    q.add_argument("--json", action="store_true", help="print JSON for machines instead of text")
    q.set_defaults(func=cmd_lint)
    return q


@command
def cmd_lint(args: argparse.Namespace) -> int:
    result = api.lint(args.design, out=args.out)
    print(result.to_json() if args.json else result.to_text())
    return 0 if result.clean else 1
