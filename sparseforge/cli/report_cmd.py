"""``sparseforge report RUN_DIR``: the sweep report of a run folder.

    sparseforge report runs/minilm_zcu104/
    sparseforge report runs/minilm_zcu104/ --objective latency --objective dsp --out paper/

Writes report.html (one self-contained page that works offline), pareto.csv, results.csv,
results.parquet, pareto.png and pareto.svg, built from the run's store only
(:func:`sparseforge.report.run.write_run_report`, docs/report.md).
"""

from __future__ import annotations

import argparse

from ..fileio import check_output_folder
from .kit import UserError, command, progress

__all__ = ["register", "cmd_report"]


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``report`` command to the CLI's subparsers."""
    p = sub.add_parser("report", help="the HTML report of a sweep run folder: Pareto fronts, sensitivity, per layer",
                       description="Build the sweep report from a run folder's store (sweep.sqlite, or a "
                                   "results.parquet): report.html with the Pareto front(s) of the sweep's objectives, "
                                   "a sensitivity plot per axis, the Pareto points, and per-layer bars of the best "
                                   "points; pareto.csv, results.csv, results.parquet, pareto.png and pareto.svg. "
                                   "Files are replaced whole, never half-written.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder a sweep wrote (e.g. runs/minilm_zcu104)")
    p.add_argument("--out", metavar="DIR", help="write the report files here instead of RUN_DIR")
    p.add_argument("--objective", action="append", metavar="NAME[:min|max]",
                   help="objective instead of the sweep's own (repeatable): latency, energy, dsp, lut, bram, edp, "
                        "throughput, perf_per_dsp, or any results column with its direction")
    p.add_argument("--best", type=int, default=3, metavar="K",
                   help="per-layer bars for the K best Pareto points (default: %(default)s)")
    p.add_argument("--title", help="page title (default: sparseforge sweep: <sweep name>)")
    p.set_defaults(func=cmd_report)
    return p


@command
def cmd_report(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status (user errors raise UserError)."""
    from ..report.run import check_run_dir, write_run_report

    if args.best < 0:
        raise UserError(f"--best {args.best} is not allowed: must be >= 0")
    check_run_dir(args.run_dir)              # a wrong folder is refused before the progress line
    if args.out:
        check_output_folder(args.out, what="--out")
    progress(f"building the report of {args.run_dir}")
    files = write_run_report(args.run_dir, out_dir=args.out, objectives=args.objective, best=args.best,
                             title=args.title)
    folder = next(iter(files.values())).parent
    print(f"wrote {folder}/: {', '.join(files)}")
    return 0
