"""The options every command shares, and what they mean.

- ``--hw PRESET|FILE.toml|FILE.cfg`` (once: a second ``--hw`` is an error naming both), ``--set
  KEY=VALUE`` (repeatable) and ``--json``: :func:`add_hw_options`, read by :func:`spec`.
- ``-o/--output FILE``: :func:`add_output_option`. The file's extension picks the format:
  ``.json`` (``result.to_dict()`` as JSON), ``.csv`` (``result.to_pandas()``: one row per
  layer, dataflow, schedule or run; a file named ``COMPUTE_REPORT.csv`` or ``BANDWIDTH_REPORT.csv``
  gets SCALE-Sim's report columns where the result has them, :func:`is_scalesim_report`) or ``.txt``
  (the text report). Any other extension, or
  ``--json`` with a ``.csv``/``.txt`` file, is an error, found before any work is done
  (:func:`output_format`), as is a path that cannot be written.
- ``--sparsity N:M|dense``: :func:`sparsity`.
- :func:`emit` prints a result or writes it atomically to ``--output``.
- :func:`report_clock` prints, after a run, the one-line clock warning on stderr (the spec's
  clock is above its design's synthesised Fmax on its part, or cannot be checked there), or
  where a ``--set clock_mhz=synth`` (or ``=PATH/synth.json``) clock came from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import api
from ..fileio import check_output_folder, check_output_path, write_atomic
from ..spec import HardwareSpec
from .kit import UserError, progress

__all__ = ["Parser", "add_hw_options", "add_output_option", "spec", "print_notes", "sparsity", "output_format",
           "emit", "report_clock", "check_output_file", "is_scalesim_report", "check_output_dir", "OUTPUT_FORMATS"]

#: extension of ``--output`` -> format
OUTPUT_FORMATS = {".json": "json", ".csv": "csv", ".txt": "text"}
#: extensions of reports with pictures, for the commands whose results draw them
HTML_FORMATS = {".html": "html", ".htm": "html"}


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``sparseforge: error: ...`` (exit 2),
    like every other user error of the CLI."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"sparseforge: error: {message} (see `{self.prog} --help`)\n")


class _Once(argparse.Action):
    """Store an option's value; giving the option twice is an error naming both values."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen = f"_{self.dest}_given"
        if getattr(namespace, seen, False):
            raise argparse.ArgumentError(self, f"given twice ({getattr(namespace, self.dest)!r} and {values!r}): "
                                               "give it once")
        setattr(namespace, seen, True)
        setattr(namespace, self.dest, values)


def add_hw_options(p: argparse.ArgumentParser, *, default: str = "default") -> None:
    """``--hw``, ``--set`` and ``--json``."""
    p.add_argument("--hw", default=default, action=_Once, metavar="PRESET|FILE.toml|FILE.cfg",
                   help="hardware preset name (see `sparseforge presets`), TOML file or SCALE-Sim .cfg file "
                        "(default: %(default)s)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one spec field, e.g. --set rows=32 --set clock_mhz=250 (repeatable); "
                        "--set clock_mhz=synth runs at the synthesised Fmax of the spec's engine on its part, "
                        "--set clock_mhz=DESIGN/synth.json at the Fmax `sparseforge synth` measured")
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of text")


def add_output_option(p: argparse.ArgumentParser) -> None:
    """``-o/--output FILE``."""
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write the report to FILE instead of stdout; its extension picks the format: "
                        ".json, .csv (one row per layer) or .txt; simulate writes a file named COMPUTE_REPORT.csv "
                        "with SCALE-Sim's compute-report columns; simulate (also --train and MoE), spgemm and "
                        "compare write .html: a page with pictures, each also as PNG and SVG beside it")


def spec(args: argparse.Namespace) -> HardwareSpec:
    """The spec of ``--hw`` and ``--set`` (an empty ``--hw`` is refused by the spec loader). A
    SCALE-Sim ``--hw FILE.cfg`` prints what of it does not map, one ``sparseforge: note:`` line
    each on stderr (:func:`sparseforge.api.load_scalesim_cfg`)."""
    hw = args.hw
    if isinstance(hw, str) and hw.lower().endswith(".cfg"):
        cfg = api.load_scalesim_cfg(hw)
        print_notes(cfg.notes, f"--hw {hw}")
        hw = cfg.spec
    return api.load_spec(hw, args.set or ())


def print_notes(notes: Any, source: str) -> None:
    """Notes of an importer (what of a user's file does not map), one line each on stderr."""
    for note in notes:
        print(f"sparseforge: note: {source}: {note}", file=sys.stderr, flush=True)


def sparsity(text: str | None) -> Any:
    """``--sparsity``: None when not given (the array's own ``n:m``), else the checked text."""
    if text is None:
        return None
    api.parse_sparsity(text, what="--sparsity")
    return text


def output_format(args: argparse.Namespace, *, html: bool = False) -> str:
    """The format of the command's report: ``json``, ``csv``, ``text`` or (where the command
    draws pictures, ``html=True``) ``html``. Checks ``--output`` (extension, agreement with
    ``--json``, writability) before any work is done."""
    out = getattr(args, "output", None)
    if out is None:
        return "json" if getattr(args, "json", False) else "text"
    formats = {**OUTPUT_FORMATS, **(HTML_FORMATS if html else {})}
    fmt = formats.get(Path(out).suffix.lower())
    if fmt is None:
        raise UserError(f"--output {out!r} is not allowed: its extension picks the format; use "
                        f"{', '.join(formats)}")
    if getattr(args, "json", False) and fmt != "json":
        raise UserError(f"--json is not allowed with --output {out!r}: the extension picks the format "
                        "(.json for JSON)")
    check_output_path(out, what="--output")
    return fmt


#: the file names that make ``simulate -o`` write SCALE-Sim's reports, with the result's
#: method that writes each
SCALESIM_REPORTS = {"compute_report.csv": "to_scalesim_csv", "bandwidth_report.csv": "to_scalesim_bandwidth_csv"}


def is_scalesim_report(path: str | None) -> bool:
    """Whether ``--output`` names one of SCALE-Sim's reports (``COMPUTE_REPORT.csv`` or
    ``BANDWIDTH_REPORT.csv``, any case): ``simulate`` then writes SCALE-Sim's columns
    (:meth:`sparseforge.results.SimulationResult.to_scalesim_csv`,
    :meth:`~sparseforge.results.SimulationResult.to_scalesim_bandwidth_csv`) instead of its own."""
    return path is not None and Path(path).name.lower() in SCALESIM_REPORTS


def check_output_file(path: str | None, option: str) -> None:
    """Refuse, before any work, a file option (e.g. ``--save-routing``) that cannot be written."""
    if path is not None:
        check_output_path(path, what=option)


def check_output_dir(path: str, option: str) -> None:
    """Refuse, before any work, a folder option (e.g. ``generate --out``) that cannot be written."""
    check_output_folder(path, what=option)


def emit(result: Any, args: argparse.Namespace) -> int:
    """Print ``result`` (JSON with ``--json``, else text) or write it to ``--output`` in the
    format of its extension; returns the exit status (0)."""
    fmt = output_format(args, html=hasattr(result, "write_html"))
    if fmt == "html":
        for path in result.write_html(args.output):
            progress(f"wrote {path}")
        return 0
    out = getattr(args, "output", None)
    writer = SCALESIM_REPORTS[Path(out).name.lower()] if fmt == "csv" and is_scalesim_report(out) else None
    if writer is not None and hasattr(result, writer):
        text = getattr(result, writer)()
    else:
        text = result.to_json() if fmt == "json" else result.to_csv() if fmt == "csv" else result.to_text()
    if out:
        write_atomic(Path(out), text if text.endswith("\n") else text + "\n", what="--output")
        progress(f"wrote {out}")
    else:
        print(text)
    return 0


def report_clock(result: Any, args: argparse.Namespace) -> None:
    """After a successful run (so that an error stays the only stderr line): the clock
    check's warning as one line, ``sparseforge: warning: ...``, on stderr; or, when the
    clock came from ``--set clock_mhz=synth`` or a synth.json, one progress line saying
    where. Printed with ``--json`` and ``--output`` too (the JSON carries the check as
    ``clock``)."""
    check = getattr(result, "clock", None)
    if not check:
        return
    if check.get("warning"):
        print(f"sparseforge: warning: {check['warning']}", file=sys.stderr, flush=True)
    elif any(item.partition("=")[0].strip() == "clock_mhz" and api._is_clock_request(item.partition("=")[2].strip())
             for item in (getattr(args, "set", None) or ())):
        progress(f"ran at {check['assumed_mhz']:g} MHz ({check['clock_source']})")
