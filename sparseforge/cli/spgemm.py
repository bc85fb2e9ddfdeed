"""``sparseforge spgemm``: simulate ``C = A x B`` with the SpGEMM dataflows.

    sparseforge spgemm --a mdual --dataflow all
    sparseforge spgemm --a illc1850 --b illc1850.T --dataflow rowwise-hash --set spgemm.smash=v1
    sparseforge spgemm --a minilm-ffn-down --b minilm-gelu-acts --dataflow all --json

``--a``/``--b``: a MatrixMarket file, a ``scipy.sparse.save_npz`` file, a METIS graph file or
a built-in name (``NAME.T`` transposes). B defaults to A. The functional result of every
simulated dataflow is checked against SciPy's ``A @ B`` before anything is reported.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from .kit import UserError, emit_report, progress

__all__ = ["register", "cmd_spgemm"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``spgemm`` command to the CLI's subparsers."""
    from .main import _add_hw

    p = sub.add_parser("spgemm", help="simulate sparse x sparse C = A x B: inner, outer, row-wise, SMASH hashing",
                       description="Simulate C = A x B on the [spgemm] scratchpad machine with one dataflow or "
                                   "all of them: cycles, scratchpad accesses, hash probes and collisions, atomic "
                                   "and bank conflicts, DRAM traffic (A, B, C, partial products), energy and "
                                   "speedups. Every dataflow's functional result is checked against SciPy.")
    _add_hw(p)
    p.add_argument("--a", required=True, metavar="MATRIX",
                   help="left operand: .mtx, .npz (save_npz), .graph (METIS) or a built-in name")
    p.add_argument("--b", metavar="MATRIX", help="right operand (default: A, so A x A)")
    p.add_argument("--dataflow", default="all",
                   help="inner, outer, rowwise-dense, rowwise-hash or all (default: %(default)s)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    p.set_defaults(func=cmd_spgemm)


def _load(name: str, what: str):
    from sparseforge.models.matrices import MatrixError, load_matrix

    try:
        return load_matrix(name)
    except MatrixError as exc:
        raise UserError(f"--{what}: {exc}") from None


def cmd_spgemm(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status (user errors raise UserError/SpecError)."""
    from sparseforge.dataflow.spgemm import (
        DATAFLOWS,
        SpgemmError,
        expand_products,
        functional_spgemm,
        place_rows,
    )
    from sparseforge.models.matrices import (
        MatrixError,
        check_product_shapes,
        golden_spgemm,
    )
    from sparseforge.sim.spgemm import ALL_VARIANTS, simulate_spgemm

    from ..spec import load_spec

    spec = load_spec(args.hw, args.set or ())
    if args.dataflow != "all" and args.dataflow not in DATAFLOWS:
        raise UserError(f"--dataflow {args.dataflow!r} is not allowed: choose one of {', '.join(DATAFLOWS)} or all")
    a = _load(args.a, "a")
    b = _load(args.b, "b") if args.b else a
    try:
        check_product_shapes(a, b, b_given=args.b is not None)
    except MatrixError as exc:
        raise UserError(str(exc)) from None
    s = spec.spgemm
    for nm in (a, b):
        limit = 1 << s.key_width
        if max(nm.shape) > limit:
            raise UserError(f"{nm.name} is {nm.shape[0]}x{nm.shape[1]}: indices need more than "
                            f"spgemm.key_width = {s.key_width} bits")
    variants = ALL_VARIANTS if args.dataflow == "all" else ((args.dataflow, s.smash if args.dataflow == "rowwise-hash" else ""),)
    progress(f"spgemm {a.name} ({a.shape[0]}x{a.shape[1]}, {a.nnz} nnz) x {b.name} ({b.shape[0]}x{b.shape[1]}, "
             f"{b.nnz} nnz) on {spec.name} [{spec.digest}]")
    t0 = time.perf_counter()
    golden = golden_spgemm(a.matrix, b.matrix)
    t_scipy = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        prod = expand_products(a.matrix, b.matrix)
        pl = place_rows(prod, spec) if any(d == "rowwise-hash" for d, _ in variants) else None
        results = [simulate_spgemm(a.matrix, b.matrix, spec=spec, dataflow=d, variant=v or None, products=prod,
                                   placement=pl) for d, v in variants]
    except SpgemmError as exc:
        raise UserError(str(exc)) from None
    t_sim = time.perf_counter() - t0
    # functional check of each distinct dataflow against SciPy
    checks = {}
    for d in dict.fromkeys(d for d, _ in variants):
        c = functional_spgemm(a.matrix, b.matrix, spec=spec, dataflow=d, products=prod, placement=pl)
        same = c.shape == golden.shape and np.array_equal(c.indptr, golden.indptr) \
            and np.array_equal(c.indices, golden.indices)
        if golden.dtype.kind == "f":
            ok = same and np.allclose(c.data, golden.data, rtol=1e-12, atol=0)
        else:
            ok = same and np.array_equal(c.data, golden.data)
        if not ok:
            raise RuntimeError(f"functional {d} SpGEMM differs from SciPy's A @ B")
        checks[d] = "exact" if same and np.array_equal(c.data, golden.data) else "rtol 1e-12"
    if args.json:
        text = json.dumps({
            "a": {"name": a.name, "source": a.source, "shape": a.shape, "nnz": a.nnz},
            "b": {"name": b.name, "source": b.source, "shape": b.shape, "nnz": b.nnz},
            "nnz_c": int(golden.nnz), "functional_vs_scipy": checks,
            "sim_seconds": t_sim, "scipy_seconds": t_scipy,
            "results": [r.to_dict() for r in results],
            "speedup": {r.label: {o.label: o.cycles / r.cycles for o in results} for r in results},
            **spec.record(),
        }, indent=2)
    else:
        text = format_table(results, title=f"sparseforge spgemm: {a.name} x {b.name} on {spec.name} "
                                           f"[{spec.digest}], {s.pes} PEs, table {s.table_entries}, "
                                           f"{s.banks} banks",
                            checks=checks)
    return emit_report(text, args.output)


def _si(v: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.2f}{unit}"
    return f"{v:.0f}"


def format_table(results, *, title: str, checks: dict[str, str]) -> str:
    """The comparison table: one row per dataflow, then speedups (row over column)."""
    cols = ["dataflow", "cycles", "time_us", "compute", "dram_cyc", "spad_acc", "probes", "collis",
            "atom_cf", "bank_cf", "spills", "DRAM_A", "DRAM_B", "DRAM_C", "DRAM_part", "energy_uJ"]
    rows = []
    for r in results:
        rows.append([r.label, _si(r.cycles), f"{r.time_us:.1f}", _si(r.compute_cycles), _si(r.dram_cycles),
                     _si(r.scratchpad_accesses), _si(r.hash_probes), _si(r.collisions), _si(r.atomic_conflicts),
                     _si(r.bank_conflicts), _si(r.spilled_products), _si(r.dram_bytes_a), _si(r.dram_bytes_b),
                     _si(r.dram_bytes_c), _si(r.dram_bytes_partial), f"{r.energy_pj / 1e6:.1f}"])
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))  # noqa: E731
    r0 = results[0]
    out = [title, f"A {r0.shape[0]}x{r0.shape[1]} ({r0.nnz_a} nnz), B {r0.shape[1]}x{r0.shape[2]} ({r0.nnz_b} nnz), "
                  f"C {r0.nnz_c} nnz, {r0.macs} multiplies; DRAM bytes, energy in uJ",
           line(cols), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    if len(results) > 1:
        out.append("")
        out.append("speedup (row over column, by cycles):")
        labs = [r.label.replace("rowwise-", "") for r in results]
        w = max(len(r.label) for r in results)
        out.append(" " * w + "  " + "  ".join(x.rjust(9) for x in labs))
        for r in results:
            out.append(r.label.ljust(w) + "  " + "  ".join(f"{o.cycles / r.cycles:9.3g}" for o in results))
    out.append("functional vs SciPy A @ B: " + ", ".join(f"{d} {c}" for d, c in checks.items()))
    return "\n".join(out)
