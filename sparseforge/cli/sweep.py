"""``sparseforge sweep FILE``: a co-design sweep on a local process pool or a Dask cluster.

    sparseforge sweep examples/minilm_zcu104.toml
    sparseforge sweep examples/minilm_zcu104.toml --scheduler tcp://HOST:8786
    sparseforge sweep examples/minilm_zcu104.toml --resume

``register(subparsers)`` adds the command to the CLI; ``python -m sparseforge.cli.sweep``
runs it alone. See docs/sweep.md for the sweep file and the results table.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from .kit import progress

__all__ = ["cmd_sweep", "main", "register"]

_DESCRIPTION = """\
Evaluate many accelerator designs on the workloads of a sweep file, on one FPGA part:
every point's spec is simulated on every workload, its FPGA resources and achievable clock
come from the resource model, and one row per point goes to OUT/<name>/sweep.sqlite.
By default the points run on a local process pool with one process per core; with
--scheduler they run on an existing Dask cluster (same code: workers compute, this
process writes). A killed sweep continues with --resume; a point that fails keeps its
error and the sweep goes on. With --confirm K, real Yosys (and nextpnr on ECP5 parts) then
runs on the K best points, in parallel on the same workers, and the report shows the
resource model against the real figures. At the end the report is written beside the store.
The sweep file format and the results table are in docs/sweep.md."""

_EPILOG = """\
examples:
  sparseforge sweep examples/quick_sweep.toml
  sparseforge sweep examples/minilm_zcu104.toml --workers 8
  sparseforge sweep examples/minilm_zcu104.toml --scheduler tcp://10.0.0.5:8786
  sparseforge sweep examples/minilm_zcu104.toml --resume
  sparseforge sweep examples/minilm_zcu104.toml --resume --confirm 3"""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``sweep`` command to the CLI's subparsers."""
    p = sub.add_parser("sweep", help="co-design sweep: many designs x workloads on an FPGA part, resumable",
                       description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE.toml", help="the sweep file (docs/sweep.md)")
    p.add_argument("--out", default="runs", metavar="DIR",
                   help="folder of run folders; the run goes to DIR/<sweep name>/ (default: %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="start, or continue the run folder of this same sweep file: compute only the points "
                        "not yet stored (safe to repeat)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run on the Dask distributed cluster of this scheduler instead of a local pool")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local worker processes (default: one per core; 1 runs in this process)")
    p.add_argument("--confirm", type=int, metavar="K",
                   help="after the sweep, synthesise the K best points for real (Yosys synth_xilinx; nextpnr Fmax "
                        "on ECP5 parts) on the same workers and store them beside the model's figures; with "
                        "--resume, points already confirmed are not run again")
    p.add_argument("--no-report", action="store_true", help="do not write the report after the run")
    p.add_argument("--json", action="store_true",
                   help="print the summary as JSON (no progress bar)")
    p.set_defaults(func=cmd_sweep)
    return p


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..sweep import run_sweep

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers} is not allowed: must be >= 1")
    if args.scheduler and args.workers is not None:
        raise InputError("--workers is not allowed with --scheduler: the Dask cluster has its own workers")
    if args.confirm is not None and args.confirm < 1:
        raise InputError(f"--confirm {args.confirm} is not allowed: give how many of the best points to "
                         "synthesise, an integer >= 1")
    summary = run_sweep(args.file, out=args.out, resume=args.resume, scheduler=args.scheduler,
                        workers=args.workers, progress=not args.json, confirm=args.confirm)
    report = _report(summary.run_dir, args) if not args.no_report else None
    if args.json:
        print(json.dumps({**summary.to_dict(), "report": report}, indent=2, default=str))
    else:
        print(summary.text())
        if report:
            print(f"report: {report}")
    return 0


def _report(run_dir: str, args: argparse.Namespace) -> str | None:
    """Write the report with sparseforge.report when it is there; the path of report.html."""
    try:
        from ..report.run import write_run_report
    except ImportError:
        if not args.json:
            progress("no report writer (sparseforge.report) in this installation: the results are in the store; "
                     "read them with sparseforge.sweep.load_results")
        return None
    files = write_run_report(Path(run_dir))
    html = files.get("report.html") if isinstance(files, dict) else None
    return str(html or Path(run_dir) / "report.html")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sparseforge.cli.sweep``: the command alone (same options and exit codes)."""
    ap = argparse.ArgumentParser(prog="sparseforge")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    args = ap.parse_args(["sweep", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except InputError as exc:
        print(f"sparseforge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sparseforge: interrupted: the store keeps every finished point; continue with --resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
