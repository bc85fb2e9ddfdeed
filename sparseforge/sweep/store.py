"""The sweep's store: SQLite in the run folder, one row per point (docs/sweep.md).

Only the driver writes. Rows go in with ``INSERT OR IGNORE`` under the primary key
(digest, workload, version) in one transaction per batch, with the journal in WAL mode, so a
driver killed at any moment leaves every committed row whole and no row twice; a resume
computes what is missing.

A second table, ``confirm``, holds what ``--confirm K`` measured: one row per confirmed
point and design (the model's figures beside real Yosys / nextpnr ones), keyed by
(digest, workload, version, design) and written the same way (:mod:`.confirm`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .evaluate import METRIC_COLUMNS

__all__ = ["CONFIRM_COLUMNS", "FIXED_HEAD", "FIXED_TAIL", "STORE_NAME", "Store", "load_confirm", "load_results",
           "read_meta"]

STORE_NAME = "sweep.sqlite"
FIXED_HEAD = ("point_id", "digest", "workload", "version", "status", "error")
FIXED_TAIL = METRIC_COLUMNS + ("spec_json", "layers_json", "workloads_json", "seconds")
_BOOL_COLUMNS = ("rtl_reaches_clock", "fits")
_INT_COLUMNS = ("point_id", "cycles")

#: the columns of table ``confirm`` (docs/sweep.md, "Model against real"), in order
CONFIRM_COLUMNS = ("point_id", "digest", "workload", "version", "design", "status", "error", "part", "tool",
                   "clock_mhz", "model_lut", "model_ff", "model_dsp", "model_bram36", "model_lutram",
                   "real_lut", "real_ff", "real_dsp", "real_bram36", "real_lutram", "real_fits", "real_fit_reason",
                   "model_fmax_mhz", "real_fmax_mhz", "fmax_source", "rtl_reaches_clock", "cached", "tools_json",
                   "seconds")
_CONFIRM_TEXT = ("digest", "workload", "version", "design", "status", "error", "part", "tool", "real_fit_reason",
                 "fmax_source", "tools_json")
_CONFIRM_BOOL = ("real_fits", "rtl_reaches_clock", "cached")
_CONFIRM_KEY = ("digest", "workload", "version", "design")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Store:
    """The SQLite store of one run folder."""

    def __init__(self, path: Path | str, axes: Iterable[str] | None = None):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        if axes is not None:
            self.axes = tuple(axes)
            reserved = set(FIXED_HEAD) | set(FIXED_TAIL)
            clash = [a for a in self.axes if a in reserved]
            if clash:
                raise ValueError(f"axis {clash[0]!r} collides with a results column")
            cols = ([f"{_q(c)} INTEGER" if c == "point_id" else f"{_q(c)} TEXT" for c in FIXED_HEAD]
                    + [_q(a) for a in self.axes] + [_q(c) for c in FIXED_TAIL])
            self.db.execute("BEGIN")
            self.db.execute(f"CREATE TABLE IF NOT EXISTS results ({', '.join(cols)}, "
                            "PRIMARY KEY (digest, workload, version))")
            # a store of an earlier version lacks the metric columns added since (accuracy, cosine)
            have = {r[1] for r in self.db.execute("PRAGMA table_info(results)")}
            for c in FIXED_TAIL:
                if c not in have:
                    self.db.execute(f"ALTER TABLE results ADD COLUMN {_q(c)}")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            ccols = [f"{_q(c)} {'TEXT' if c in _CONFIRM_TEXT else 'INTEGER' if c == 'point_id' else ''}".rstrip()
                     for c in CONFIRM_COLUMNS]
            self.db.execute(f"CREATE TABLE IF NOT EXISTS confirm ({', '.join(ccols)}, "
                            f"PRIMARY KEY ({', '.join(_CONFIRM_KEY)}))")
            self.db.execute("COMMIT")
        else:
            self.axes = tuple(json.loads(self.meta().get("axes", "[]")))
        self.columns = FIXED_HEAD + self.axes + FIXED_TAIL

    # ---------------------------------------------------------------- meta
    def meta(self) -> dict[str, str]:
        try:
            return dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError:
            return {}

    def set_meta(self, items: dict[str, Any]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                            [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in items.items()])
        self.db.execute("COMMIT")

    # ---------------------------------------------------------------- rows
    def present(self, workload: str, version: str) -> set[str]:
        """Digests of the points already stored for this workload list and version."""
        cur = self.db.execute("SELECT digest FROM results WHERE workload = ? AND version = ?", (workload, version))
        return {r[0] for r in cur}

    def _values(self, row: dict[str, Any]) -> tuple:
        m = row["metrics"]
        vals = [row["point_id"], row["digest"], row["workload"], row["version"], row["status"], row["error"]]
        vals += [row["values"].get(a) for a in self.axes]
        vals += [m.get(c) for c in METRIC_COLUMNS]
        vals += [row["spec_json"], row["layers_json"], row["workloads_json"], row["seconds"]]
        return tuple(vals)

    def write(self, rows: list[dict[str, Any]]) -> int:
        """Insert rows in one transaction; returns how many were new."""
        if not rows:
            return 0
        sql = (f"INSERT OR IGNORE INTO results ({', '.join(_q(c) for c in self.columns)}) "
               f"VALUES ({', '.join('?' * len(self.columns))})")
        self.db.execute("BEGIN")
        before = self.db.total_changes
        self.db.executemany(sql, [self._values(r) for r in rows])
        self.db.execute("COMMIT")
        return self.db.total_changes - before

    def rows(self, workload: str, version: str) -> dict[str, dict[str, Any]]:
        """Stored rows of this workload list and version by digest: status and metrics (what
        a search needs to tell the sampler about points already done)."""
        cols = ("digest", "status") + METRIC_COLUMNS
        cur = self.db.execute(f"SELECT {', '.join(_q(c) for c in cols)} FROM results WHERE workload = ? AND "
                              "version = ?", (workload, version))
        return {r[0]: {"status": r[1], "metrics": dict(zip(METRIC_COLUMNS, r[2:]))} for r in cur}

    def best(self, column: str, order: str, workload: str, version: str) -> tuple[Any, int, dict] | None:
        """(value, point_id, axis values) of the first point in ``column`` order (``ASC`` or
        ``DESC``) among points that ran and fit the part; None if there is none."""
        if column not in METRIC_COLUMNS or order not in ("ASC", "DESC"):
            raise ValueError(f"best({column!r}, {order!r})")
        cols = ", ".join(_q(c) for c in (column, "point_id", *self.axes))
        row = self.db.execute(f"SELECT {cols} FROM results WHERE status = 'ok' AND fits = 1 AND workload = ? AND "
                              f"version = ? AND {_q(column)} IS NOT NULL ORDER BY {_q(column)} {order}, point_id "
                              "LIMIT 1", (workload, version)).fetchone()
        return None if row is None else (row[0], row[1], dict(zip(self.axes, row[2:])))

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def select(self, columns: Iterable[str], workload: str, version: str) -> list[dict[str, Any]]:
        """``columns`` of the points that ran (``status = 'ok'``) for this workload list and
        version, in ``point_id`` order, as dicts."""
        cols = list(columns)
        bad = [c for c in cols if c not in self.columns]
        if bad:
            raise ValueError(f"select({bad[0]!r}): not a results column")
        cur = self.db.execute(f"SELECT {', '.join(_q(c) for c in cols)} FROM results WHERE status = 'ok' AND "
                              "workload = ? AND version = ? ORDER BY point_id", (workload, version))
        return [dict(zip(cols, r)) for r in cur]

    # ---------------------------------------------------------------- confirmations
    def confirmed(self, workload: str, version: str) -> set[tuple[str, str]]:
        """(digest, design) of the confirmations already stored for this workload list and
        version (ok or failed: a stored confirmation is not run again)."""
        cur = self.db.execute("SELECT digest, design FROM confirm WHERE workload = ? AND version = ?",
                              (workload, version))
        return {(r[0], r[1]) for r in cur}

    def confirm_rows(self, workload: str, version: str) -> list[dict[str, Any]]:
        """The stored confirmations of this workload list and version, as dicts."""
        cur = self.db.execute(f"SELECT {', '.join(_q(c) for c in CONFIRM_COLUMNS)} FROM confirm WHERE workload = ? "
                              "AND version = ? ORDER BY point_id, design", (workload, version))
        return [dict(zip(CONFIRM_COLUMNS, r)) for r in cur]

    def write_confirm(self, rows: list[dict[str, Any]]) -> int:
        """Insert confirmation rows (dicts with the :data:`CONFIRM_COLUMNS`) in one
        transaction; returns how many were new."""
        if not rows:
            return 0
        sql = (f"INSERT OR IGNORE INTO confirm ({', '.join(_q(c) for c in CONFIRM_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(CONFIRM_COLUMNS))})")
        self.db.execute("BEGIN")
        before = self.db.total_changes
        self.db.executemany(sql, [tuple(r.get(c) for c in CONFIRM_COLUMNS) for r in rows])
        self.db.execute("COMMIT")
        return self.db.total_changes - before

    def close(self) -> None:
        """Close; leave one self-contained file (the WAL folded back) when no one else reads."""
        try:
            self.db.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.OperationalError:
            pass
        self.db.close()


def read_meta(path: Path | str) -> dict[str, str]:
    """The meta table of a store, opened read-only (nothing is written)."""
    db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def load_results(run_dir: Path | str, *, all_versions: bool = False):
    """The results table of a run folder as a pandas DataFrame (docs/sweep.md), one row per
    point sorted by ``point_id``. Rows of the sparseforge version that last ran the sweep,
    unless ``all_versions``."""
    import pandas as pd

    path = Path(run_dir) / STORE_NAME
    if not path.is_file():
        from .file import SweepError

        raise SweepError(f"{run_dir}: no {STORE_NAME} here (not a sweep run folder)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        axes = json.loads(meta.get("axes", "[]"))
        cols = list(FIXED_HEAD) + axes + list(FIXED_TAIL)
        have = {r[1] for r in db.execute("PRAGMA table_info(results)")}
        sql = f"SELECT {', '.join(_q(c) if c in have else 'NULL AS ' + _q(c) for c in cols)} FROM results"
        args: tuple = ()
        if not all_versions and "version" in meta:
            sql += " WHERE version = ?"
            args = (meta["version"],)
        df = pd.DataFrame(db.execute(sql + " ORDER BY point_id", args).fetchall(), columns=cols)
    finally:
        db.close()
    for c in (*_BOOL_COLUMNS, *json.loads(meta.get("bool_axes", "[]"))):
        df[c] = df[c].map(lambda v: None if v is None else bool(v)).astype("boolean")
    for c in _INT_COLUMNS:
        df[c] = df[c].astype("Int64")
    for c in ("latency_s", "energy_j", "edp", "throughput", "dsp", "lut", "ff", "bram36", "lutram", "clock_mhz_used",
              "fmax_mhz", "perf_per_dsp", "accuracy", "cosine", "seconds"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df.reset_index(drop=True)


def load_confirm(run_dir: Path | str, *, all_versions: bool = False):
    """Table ``confirm`` of a run folder (what ``--confirm`` measured, docs/sweep.md) as a
    pandas DataFrame with the :data:`CONFIRM_COLUMNS`, sorted by ``point_id`` and design;
    empty when nothing was confirmed. Rows of the sparseforge version that last ran the
    sweep, unless ``all_versions``."""
    import pandas as pd

    path = Path(run_dir) / STORE_NAME
    if not path.is_file():
        from .file import SweepError

        raise SweepError(f"{run_dir}: no {STORE_NAME} here (not a sweep run folder)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        sql = f"SELECT {', '.join(_q(c) for c in CONFIRM_COLUMNS)} FROM confirm"
        args: tuple = ()
        if not all_versions and "version" in meta:
            sql += " WHERE version = ?"
            args = (meta["version"],)
        try:
            rows = db.execute(sql + " ORDER BY point_id, design", args).fetchall()
        except sqlite3.OperationalError:        # a store written before --confirm existed
            rows = []
    finally:
        db.close()
    df = pd.DataFrame(rows, columns=list(CONFIRM_COLUMNS))
    for c in _CONFIRM_BOOL:
        df[c] = df[c].map(lambda v: None if v is None else bool(v)).astype("boolean")
    df["point_id"] = df["point_id"].astype("Int64")
    for c in CONFIRM_COLUMNS:
        if c not in _CONFIRM_TEXT and c not in _CONFIRM_BOOL and c != "point_id":
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df.reset_index(drop=True)
