"""``sparseforge presets``: the built-in hardware presets, one line each (or JSON records)."""

from __future__ import annotations

import argparse
import json

from ..spec import list_presets, load_spec
from .kit import command

__all__ = ["register", "cmd_presets"]


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``presets`` command to the CLI's subparsers."""
    p = sub.add_parser("presets", help="list built-in hardware presets")
    p.add_argument("--json", action="store_true", help="print every preset's full spec as JSON")
    p.set_defaults(func=cmd_presets)
    return p


@command
def cmd_presets(args: argparse.Namespace) -> int:
    presets = list_presets()
    if args.json:
        print(json.dumps({name: load_spec(name).record() for name in presets}, indent=2))
        return 0
    width = max(len(n) for n in presets)
    for name, desc in presets.items():
        s = load_spec(name)
        print(f"{name:<{width}}  {s.rows}x{s.cols} {s.n}:{s.m}  [{s.digest}]  {desc}")
    return 0
