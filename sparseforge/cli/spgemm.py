"""``sparseforge spgemm``: simulate ``C = A x B`` with the SpGEMM dataflows.

    sparseforge spgemm --a mdual --dataflow all
    sparseforge spgemm --a illc1850 --b illc1850.T --dataflow rowwise-hash --set spgemm.smash=v1
    sparseforge spgemm --a minilm-ffn-down --b minilm-gelu-acts --dataflow all --json
    sparseforge spgemm --a 4elt --hw smash-piuma --set spgemm.cache_bytes=65536

``--a``/``--b``: a MatrixMarket file (``.mtx`` or ``.mtx.gz``), a SuiteSparse ``.tar.gz``
bundle, a ``scipy.sparse.save_npz`` file, a METIS graph file or a built-in name (``NAME.T``
transposes). B defaults to A. The functional result of every
simulated dataflow is checked against SciPy's ``A @ B`` before anything is reported
(:func:`sparseforge.api.spgemm`).
"""

from __future__ import annotations

import argparse

from .. import api
from . import options
from .kit import command, reporter

__all__ = ["register", "cmd_spgemm"]


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``spgemm`` command to the CLI's subparsers."""
    p = sub.add_parser("spgemm", help="simulate sparse x sparse C = A x B: inner, outer, row-wise, SMASH hashing",
                       description="Simulate C = A x B on the [spgemm] scratchpad machine with one dataflow or "
                                   "all of them: cycles, scratchpad accesses, hash probes and collisions, atomic "
                                   "and bank conflicts, DRAM traffic (A, B, C, partial products), B cache hits, misses and "
                                   "hit rate (with spgemm.cache_bytes > 0), energy and speedups. Every "
                                   "dataflow's functional result is checked against SciPy.")
    options.add_hw_options(p)
    p.add_argument("--a", required=True, metavar="MATRIX",
                   help="left operand: .mtx or .mtx.gz, a SuiteSparse .tar.gz bundle, .npz (save_npz), .graph "
                        "(METIS) or a built-in name")
    p.add_argument("--b", metavar="MATRIX", help="right operand (default: A, so A x A)")
    p.add_argument("--dataflow", default="all",
                   help="inner, outer, rowwise-dense, rowwise-hash or all (default: %(default)s)")
    options.add_output_option(p)
    p.set_defaults(func=cmd_spgemm)
    return p


@command
def cmd_spgemm(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status (user errors raise UserError)."""
    options.output_format(args, html=True)
    spec = options.spec(args)
    result = api.spgemm(spec, args.a, args.b, dataflow=args.dataflow, progress=reporter(args))
    return options.emit(result, args)
