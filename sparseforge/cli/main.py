"""The ``sparseforge`` command line: the parser is built from the command modules.

    sparseforge presets                       list the built-in hardware presets
    sparseforge simulate [--net minilm] ...   simulate a network, per layer and in total
                                              (--train: one training iteration; --net m3vit-*:
                                              MoE task switching; --onnx FILE: your own network)
    sparseforge train                         real N:M training on MNIST: accuracy vs speedup
    sparseforge prune                         prune MiniLM N:M (magnitude, Wanda, SparseGPT + refit),
                                              quality on held-out text
    sparseforge spgemm --a MATRIX             SpGEMM dataflows incl. SMASH scratchpad hashing
    sparseforge generate [--design engine]    write Verilog + manifest into rtl_out/<name>/
    sparseforge synth NAME_OR_DIR             Yosys (UltraScale+) resources and nextpnr (ECP5) Fmax
    sparseforge verify NAME_OR_DIR            cocotb testbench on real data: bit-exact, cycles
    sparseforge lint NAME_OR_DIR              Verilator -Wall with the waiver file
    sparseforge sweep FILE.toml               co-design sweep over specs and workloads
    sparseforge report RUN_DIR                the HTML report of a sweep
    sparseforge compare --hw A --hw B         specs side by side on one network

Each command is a module of this package with ``register(subparsers)``; :data:`COMMANDS`
lists them in the order ``--help`` shows them. Commands parse their options, call
:mod:`sparseforge.api` and format its result. Every user mistake, in any layer, prints one
line ``sparseforge: error: ...`` (naming the option or field, the value and what is allowed)
and exits with status 2; so does a file-system error, naming the path and the reason.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from ..errors import InputError
from .kit import cli_message, os_message
from .options import Parser

__all__ = ["main", "build_parser", "COMMANDS"]

#: the command modules (``sparseforge.cli.<name>``), each with ``register(subparsers)``
COMMANDS = ("presets", "simulate", "train", "prune", "spgemm", "generate", "synth", "verify", "lint", "sweep",
            "report_cmd", "compare")


def _version() -> str:
    import sparseforge

    return sparseforge.__version__


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="sparseforge",
                description="Co-design simulator and FPGA accelerator generator for sparse neural\n"
                            "networks: simulate N:M inference and training, SpGEMM and MoE\n"
                            "accelerators; generate and synthesise their Verilog.",
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="Run `sparseforge COMMAND --help` for a command's options.")
    ap.add_argument("--version", action="version", version=f"sparseforge {_version()}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("tokens", "batch"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            print(f"sparseforge: error: --{name} = {value} is not allowed: must be >= 1", file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except InputError as exc:
        print(f"sparseforge: error: {cli_message(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:                      # the last resort: a file-system error nobody named
        print(f"sparseforge: error: {os_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sparseforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
