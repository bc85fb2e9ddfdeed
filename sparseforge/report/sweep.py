"""The sweep report: one self-contained ``report.html`` plus tables and a figure for papers,
built from a sweep's results table only (docs/sweep.md, docs/report.md).

:func:`write_sweep_report` takes the results as a DataFrame (one row per point), the names
of the sweep's axes and its objectives, and writes into ``out_dir``:

- ``report.html`` -- the Pareto front(s) of the objectives (one scatter for two
  objectives, one per pair for more, a ranking for one; dominated points grey, each
  point's spec on hover), a sensitivity plot per axis, a table of the Pareto points, the
  best point per objective, per-layer bars (compute, load, stalls, utilisation) for the
  best few Pareto points, and the failed points with their errors;
- ``pareto.csv`` -- the Pareto points, best first by the first objective;
- ``results.csv`` and ``results.parquet`` -- every point, with a ``pareto`` column;
- ``pareto.png`` and ``pareto.svg`` -- the Pareto plot(s) drawn with matplotlib;
- with ``confirm`` rows (what a sweep's ``--confirm K`` measured, table ``confirm`` of the
  store): a "Model against real" section in the page (the error of the resource model per
  resource, a table of the confirmed designs, and one scatter per resource of model against
  real with the y = x line) and ``confirm.csv``.

Everything is built in memory first and then written atomically (see :mod:`.base`).
"""

from __future__ import annotations

import html
import io
import itertools
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .base import Objective, ReportError, fmt_value, metric_label, objectives_of, slug, write_files_atomic
from .page import Section, facts_html, render_page
from .pareto import eligible_mask, is_false, pareto_mask
from .plots import (COLORS, ParetoPanel, Picture, _layout, _new_mpl, layer_bars_picture, layer_segments,
                    pareto_grid_png_svg, pareto_picture, sensitivity_picture)

__all__ = ["write_sweep_report", "SWEEP_FILES", "CONFIRM_FILE", "point_layers", "model_real_picture"]

#: The files :func:`write_sweep_report` writes, in order.
SWEEP_FILES = ("report.html", "pareto.csv", "results.csv", "results.parquet", "pareto.png", "pareto.svg")
#: written beside them when the run has confirmations (``--confirm``)
CONFIRM_FILE = "confirm.csv"

# columns shown in the tables beside the axes and objectives, when the results have them
_INFO_COLUMNS = ("latency_s", "energy_j", "throughput", "dsp", "lut", "bram36", "clock_mhz_used", "clock_mhz",
                 "fmax_mhz", "rtl_reaches_clock", "fits", "accuracy", "cosine")
_LAYER_COLUMNS = ("layers_json", "layers")        # the store's name, and the plain one


def _check(df: Any, axes: Sequence[str], objs: list[Objective]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ReportError(f"results = {type(df).__name__} is not allowed: give a pandas DataFrame")
    if len(df) == 0:
        raise ReportError("results have no rows: there is nothing to report (run the sweep first)")
    for a in axes:
        if a not in df.columns:
            raise ReportError(f"axis {a!r} is not a column of the results: columns are {', '.join(map(str, df.columns))}")
    for o in objs:
        if o.name not in df.columns:
            raise ReportError(f"objective {o.name!r} is not a column of the results: columns are "
                              + ", ".join(map(str, df.columns)))


def _ok(df: pd.DataFrame) -> np.ndarray:
    return (df["status"].astype(str) == "ok").to_numpy() if "status" in df.columns else np.ones(len(df), bool)


def _fits(df: pd.DataFrame) -> np.ndarray:
    return ~df["fits"].map(is_false).to_numpy(bool) if "fits" in df.columns else np.ones(len(df), bool)


def _num(df: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _hover(df: pd.DataFrame, axes: Sequence[str], objs: list[Objective]) -> list[str]:
    """Per point: its id and digest, its axis values, its objective values, fit and clock."""
    out = []
    extra = [c for c in ("clock_mhz_used", "fmax_mhz", "dsp", "lut", "bram36") if c in df.columns
             and c not in {o.name for o in objs}]
    for rec in df.to_dict("records"):
        lines = [f"<b>point {html.escape(fmt_value(rec.get('point_id', '')))}</b>"
                 f" [{html.escape(str(rec.get('digest', '')))}]"]
        lines += [f"{html.escape(a)} = {html.escape(fmt_value(rec[a]))}" for a in axes]
        lines += [f"{html.escape(o.label)}: {html.escape(fmt_value(rec[o.name]))}" for o in objs]
        lines += [f"{html.escape(metric_label(c))}: {html.escape(fmt_value(rec[c]))}" for c in extra]
        if "fits" in rec and is_false(rec["fits"]):
            lines.append("does not fit the device" + (f": {html.escape(str(rec['fit_reason']))}"
                                                      if rec.get("fit_reason") else ""))
        out.append("<br>".join(lines))
    return out


def _panels(g: pd.DataFrame, objs: list[Objective], front: np.ndarray, hover: list[str], prefix: str
            ) -> list[ParetoPanel]:
    """The Pareto plots of one group: a ranking for one objective, one scatter for two,
    one per pair for more. Each holds one marker per successful point with finite values."""
    ok = _ok(g)
    fits = _fits(g)
    hover_a = np.asarray(hover, dtype=object)
    panels = []
    if len(objs) == 1:
        o = objs[0]
        v = _num(g, o.name)
        sel = np.flatnonzero(ok & np.isfinite(v))
        order = sel[np.argsort(o.sign * v[sel], kind="stable")]
        panels.append(ParetoPanel(title=f"{prefix}{o.label}: every point, best first", x=Objective("rank", "min"),
                                  y=o, xv=np.arange(1, order.size + 1, dtype=float), yv=v[order],
                                  front=front[order], fits=fits[order], hover=list(hover_a[order]), staircase=False))
        return panels
    for a, b in itertools.combinations(objs, 2):
        xv, yv = _num(g, a.name), _num(g, b.name)
        sel = np.flatnonzero(ok & np.isfinite(xv) & np.isfinite(yv))
        title = f"{prefix}{b.label} against {a.label}"
        panels.append(ParetoPanel(title=title, x=a, y=b, xv=xv[sel], yv=yv[sel], front=front[sel], fits=fits[sel],
                                  hover=list(hover_a[sel]), staircase=len(objs) == 2))
    return panels


def point_layers(rec: dict[str, Any]) -> pd.DataFrame | None:
    """The per-layer rows stored with a point (``layers_json`` or ``layers``: a JSON list,
    or a list of dicts), with names prefixed by their workload when there are several;
    None when the point has none."""
    raw = None
    for c in _LAYER_COLUMNS:
        v = rec.get(c)
        if isinstance(v, str) and v.strip():
            try:
                raw = json.loads(v)
            except json.JSONDecodeError as exc:
                raise ReportError(f"point {rec.get('point_id')}: {c} is not valid JSON ({exc.msg})") from None
            break
        if isinstance(v, (list, tuple)) and v:
            raw = list(v)
            break
    if not raw:
        return None
    lay = pd.DataFrame(raw)
    if "workload" in lay.columns and lay["workload"].nunique() > 1:
        lay["name"] = lay["workload"].astype(str) + ": " + lay["name"].astype(str)
    return lay


def _table(df: pd.DataFrame, axes: Sequence[str], objs: list[Objective]) -> pd.DataFrame:
    cols = [c for c in ("point_id", "digest") if c in df.columns] + list(axes) + [o.name for o in objs]
    cols += [c for c in _INFO_COLUMNS if c in df.columns and c not in cols and df[c].notna().any()]
    return df[cols]


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    """Parquet of the results; an object column mixing types (an axis holding 200.0 and
    "synth") is stored as text, since Parquet columns have one type."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            kinds = {type(v) for v in out[c] if v is not None and not (isinstance(v, float) and math.isnan(v))}
            if len(kinds) > 1:
                out[c] = out[c].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    buf = io.BytesIO()
    out.to_parquet(buf, index=False)
    return buf.getvalue()


def _sort_best(df: pd.DataFrame, obj: Objective) -> pd.DataFrame:
    key = obj.sign * _num(df, obj.name)
    return df.iloc[np.argsort(key, kind="stable")]


# ---------------------------------------------------------------- model against real (--confirm)
#: (figure, label) compared by --confirm: columns model_<figure> and real_<figure>
_CONFIRM_FIGURES = (("lut", "LUT"), ("ff", "FF"), ("dsp", "DSP48E2"), ("bram36", "BRAM36 (RAMB36 tiles)"),
                    ("fmax_mhz", "Fmax (MHz)"))
_CONFIRM_NEEDED = ("point_id", "design", "status") + tuple(f"{p}_{f}" for f, _ in _CONFIRM_FIGURES[:4]
                                                           for p in ("model", "real"))


def model_real_picture(name: str, label: str, real: np.ndarray, model: np.ndarray, hover: Sequence[str], *,
                       title: str, caption: str = "") -> Picture:
    """Model against real for one figure: one marker per confirmed design (x the real
    figure, y the model's), and the line y = x on which an exact model's markers lie."""
    real = np.asarray(real, float)
    model = np.asarray(model, float)
    if not (len(real) == len(model) == len(hover)):
        raise ReportError(f"model_real_picture {name!r}: real, model and hover need one entry per point")
    hi = float(max(np.max(real, initial=0.0), np.max(model, initial=0.0)))
    hi = hi * 1.08 if hi > 0 else 1.0
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0.0, hi], y=[0.0, hi], mode="lines", name="y = x (model exact)",
                             line=dict(color="#777777", width=1, dash="dash"), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=real, y=model, mode="markers", name="confirmed design",
                             marker=dict(color=COLORS["front"], size=9, line=dict(width=0.5, color="#555555")),
                             text=np.asarray(list(hover), dtype=object), hovertemplate="%{text}<extra></extra>"))
    _layout(fig, title, height=380)
    fig.update_xaxes(title_text=f"real {label}", range=[0.0, hi])
    fig.update_yaxes(title_text=f"model {label}", range=[0.0, hi])

    def draw():
        mfig, axes = _new_mpl(4.4, 4.0)
        ax = axes[0][0]
        ax.plot([0.0, hi], [0.0, hi], ls="--", lw=0.8, color="#777777", label="y = x (model exact)")
        ax.scatter(real, model, s=24, c=COLORS["front"], edgecolors="#555555", linewidths=0.4, zorder=3,
                   label="confirmed design")
        ax.set_xlim(0.0, hi)
        ax.set_ylim(0.0, hi)
        ax.set_xlabel(f"real {label}")
        ax.set_ylabel(f"model {label}")
        ax.set_title(title, fontsize=10)
        ax.grid(True, lw=0.3, alpha=0.6)
        ax.legend(fontsize=7, loc="upper left")
        return mfig

    return Picture(name, title, caption, fig, draw)


def _confirm_section(conf: pd.DataFrame) -> Section:
    """The "Model against real" section of the confirmations ``conf`` (table ``confirm``)."""
    from sparseforge.sweep.confirm import model_errors, relative_error

    missing = [c for c in _CONFIRM_NEEDED if c not in conf.columns]
    if missing:
        raise ReportError(f"confirm rows lack column {missing[0]!r}: give the store's table confirm "
                          "(sparseforge.sweep.store.load_confirm)")
    ok = conf[conf["status"].astype(str) == "ok"]
    recs = ok.to_dict("records")
    errs = model_errors(recs)
    tools = sorted({str(t) for t in ok.get("tool", pd.Series(dtype=object)).dropna()})
    sec = Section("Model against real (--confirm)",
                  intro=(f"{len(conf)} design runs of {conf['point_id'].nunique()} of the best Pareto points were "
                         f"synthesised for real ({len(ok)} ok, {len(conf) - len(ok)} failed) and compared with the "
                         "resource model the sweep used. Error = (model - real) / real. LUT, FF, DSP and BRAM36 "
                         "are Yosys synth_xilinx -family xcup figures; Fmax is a real nextpnr-ecp5 place and route "
                         "on the target's device (ECP5 targets only), its model the clock lookup without this "
                         "spec's own measurement." + (f" Tools: {' | '.join(tools)}." if tools else "")))
    if errs:
        names = dict(_CONFIRM_FIGURES)
        sec.table(pd.DataFrame([{"figure": names[f], "runs": e["n"], "exact": e["exact"],
                                 "mean |error| (%)": e["mean_abs_pct"], "largest error (%)": e["max_pct"]}
                                for f, e in errs.items()]), text_columns=["figure"])
    table = pd.DataFrame({c: conf[c] for c in ("point_id", "digest", "design", "status") if c in conf.columns})
    for f, _ in _CONFIRM_FIGURES:
        m, r = f"model_{f}", f"real_{f}"
        if m in conf.columns and r in conf.columns and (f != "fmax_mhz" or conf[r].notna().any()):
            table[m] = conf[m]
            table[r] = conf[r]
            table[f"{f} error (%)"] = [100.0 * relative_error(a, b) for a, b in zip(conf[m], conf[r])]
    for c in ("clock_mhz", "rtl_reaches_clock", "real_fits", "cached", "fmax_source", "error"):
        if c in conf.columns and conf[c].notna().any():
            table[c] = conf[c]
    sec.table(table, text_columns=["digest", "design", "status", "fmax_source", "error"])
    for f, label in _CONFIRM_FIGURES:
        m, r = f"model_{f}", f"real_{f}"
        if m not in ok.columns or r not in ok.columns:
            continue
        mv, rv = _num(ok, m), _num(ok, r)
        sel = np.isfinite(mv) & np.isfinite(rv)
        if not sel.any():
            continue
        hover = [f"point {fmt_value(p)} [{html.escape(str(d))}] {html.escape(str(g))}<br>model {fmt_value(a)}, "
                 f"real {fmt_value(b)} ({100.0 * relative_error(a, b):+.1f} %)"
                 for p, d, g, a, b in zip(ok["point_id"], ok.get("digest", [""] * len(ok)), ok["design"], mv, rv)]
        sec.picture(model_real_picture(f"confirm-{slug(f)}", label, rv[sel], mv[sel],
                                       list(np.asarray(hover, dtype=object)[sel]),
                                       title=f"{label.split(' (')[0]}: model against real"))
    return sec


def write_sweep_report(df: pd.DataFrame, *, axes: Sequence[str], objectives: Iterable[Any], out_dir: Path | str,
                       title: str = "sparseforge sweep report", best: int = 3,
                       confirm: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write the sweep report files (:data:`SWEEP_FILES`) into ``out_dir`` (created if
    needed) and return them by name. ``objectives`` takes any form
    :func:`~sparseforge.report.base.objectives_of` does (``"latency_s:min"``, ...).
    Points are grouped by their ``workload`` column when it holds several workloads; each
    group gets its own Pareto front. Raises :class:`ReportError` for results that lack a
    named column, and writes nothing then. ``confirm``: the run's confirmations (table
    ``confirm`` of the store, :func:`sparseforge.sweep.store.load_confirm`), shown model
    against real and written to ``confirm.csv``; None or empty for none."""
    axes = list(axes)
    objs = objectives_of(objectives)
    _check(df, axes, objs)
    if not isinstance(best, int) or best < 0:
        raise ReportError(f"best = {best!r} is not allowed: give how many Pareto points get per-layer bars (>= 0)")
    out_dir = Path(out_dir)
    df = df.reset_index(drop=True)
    groups = (list(df.groupby("workload", sort=False, dropna=False))
              if "workload" in df.columns and df["workload"].nunique(dropna=False) > 1 else [(None, df)])

    front_all = np.zeros(len(df), dtype=bool)
    sections: list[Section] = []
    panels_all: list[ParetoPanel] = []
    n_ok = int(_ok(df).sum())
    n_fit = int((_ok(df) & _fits(df)).sum())
    for gi, (wl, g) in enumerate(groups):
        front = pareto_mask(g, objs)
        front_all[g.index.to_numpy()] = front
        hover = _hover(g, axes, objs)
        prefix = f"workload {wl}: " if wl is not None else ""
        gtag = f" (workload {wl})" if wl is not None else ""

        # -- Pareto front(s)
        panels = _panels(g, objs, front, hover, prefix)
        panels_all += panels
        sec = Section(f"Pareto front{'s' if len(panels) > 1 else ''}{gtag}",
                      intro=("Each marker is one design point that ran; blue points are on the Pareto front of "
                             f"{', '.join(str(o) for o in objs)} (no other point that fits the device is at least as "
                             "good in every objective and better in one), grey points are dominated, light crosses do "
                             "not fit the device. Hover over a point for its spec."
                             + (" With more than two objectives each plot shows one pair; the front is the one of all "
                                "objectives, so a blue point may look dominated in a single pair." if len(objs) > 2 else "")))
        for pi, panel in enumerate(panels):
            sec.picture(pareto_picture(f"pareto-{gi}-{pi}", panel))
        sections.append(sec)

        # -- the Pareto points and the best point per objective
        fr = _sort_best(g[front], objs[0])
        sec = Section(f"Pareto points{gtag}",
                      intro=f"{len(fr)} of {len(g)} points are on the front, best {objs[0]} first.")
        sec.table(_table(fr, axes, objs), text_columns=["digest"])
        eligible = g[eligible_mask(g, objs)]
        if len(eligible):
            rows = []
            for o in objs:
                top = _sort_best(eligible, o).iloc[[0]]
                rows.append(pd.concat([pd.DataFrame({"best in": [str(o)]}), _table(top, axes, objs).reset_index(drop=True)],
                                      axis=1))
            sec.raw(f"<h3>Best point per objective{html.escape(gtag)}</h3>")
            sec.table(pd.concat(rows, ignore_index=True), text_columns=["best in", "digest"])
        sections.append(sec)

        # -- sensitivity per axis
        if axes:
            sec = Section(f"Sensitivity to each axis{gtag}",
                          intro="Each objective over all successful points, one box per value of the axis "
                                "(median, quartiles, whiskers to 1.5 IQR), every point drawn over it; Pareto points "
                                "are blue diamonds.")
            ok = _ok(g)
            for a in axes:
                metrics = {o: np.where(ok, _num(g, o.name), np.nan) for o in objs}
                sec.picture(sensitivity_picture(f"sensitivity-{gi}-{slug(a)}", a, g[a], metrics, front, hover,
                                                title=f"{prefix}objectives against {a}"))
            sections.append(sec)

        # -- per-layer bars of the best few
        if best and len(fr):
            sec = Section(f"Per-layer cycles of the best {min(best, len(fr))} Pareto points{gtag}",
                          intro="Cycles per layer split into compute (the engine busy, weight loading and pipeline "
                                "fill included unless the results give load cycles apart) and memory stalls (the array "
                                "waiting for DRAM), with each layer's utilisation (useful MACs over multiplier-cycles).")
            shown = 0
            for rec in fr.head(best).to_dict("records"):
                lay = point_layers(rec)
                label = f"point {fmt_value(rec.get('point_id'))} [{rec.get('digest', '')}]: " + ", ".join(
                    f"{a} = {fmt_value(rec[a])}" for a in axes)
                if lay is None:
                    sec.raw(f'<p class="note">{html.escape(label)}: no per-layer results stored.</p>')
                    continue
                sec.picture(layer_bars_picture(f"layers-{gi}-{slug(str(rec.get('point_id', shown)))}",
                                               layer_segments(lay), title=label))
                shown += 1
            sections.append(sec)

        # -- failures
        failed = g[~_ok(g)]
        if len(failed):
            cols = [c for c in ("point_id", "digest") if c in g.columns] + axes + (["error"] if "error" in g.columns else [])
            sections.append(Section(f"Failed points{gtag}", intro=f"{len(failed)} points did not run; their errors:")
                            .table(failed[cols], text_columns=["digest", "error"]))

    has_confirm = confirm is not None and len(confirm) > 0
    if confirm is not None and not isinstance(confirm, pd.DataFrame):
        raise ReportError(f"confirm = {type(confirm).__name__} is not allowed: give a pandas DataFrame "
                          "(sparseforge.sweep.store.load_confirm) or None")
    if has_confirm:
        sections.append(_confirm_section(confirm.reset_index(drop=True)))

    subtitle = (f"{len(df)} points: {n_ok} ran, {len(df) - n_ok} failed, {n_ok - n_fit} do not fit the device; "
                f"{int(front_all.sum())} on the Pareto front of {', '.join(str(o) for o in objs)}. "
                + (f"Axes: {', '.join(axes)}." if axes else ""))
    facts = [("objectives", ", ".join(str(o) for o in objs)), ("axes", ", ".join(axes) or "none"),
             ("points", f"{len(df)} ({n_ok} ran, {n_fit} fit the device)"),
             ("files", ", ".join(SWEEP_FILES + ((CONFIRM_FILE,) if has_confirm else ())))]
    if has_confirm:
        n_conf_ok = int((confirm["status"].astype(str) == "ok").sum())
        facts.insert(3, ("confirmed", f"{len(confirm)} design runs synthesised for real ({n_conf_ok} ok): see "
                                      "Model against real"))
    sections.insert(0, Section("Summary").raw(facts_html(facts)))
    page = render_page(title, subtitle, sections)

    results = df.copy()
    results["pareto"] = front_all
    pareto_rows = pd.concat([_sort_best(results[front_all & (results.index.isin(g.index))], objs[0])
                             for _, g in groups]) if front_all.any() else results.iloc[0:0]
    png, svg = pareto_grid_png_svg(panels_all)
    files = {
        out_dir / "report.html": page,
        out_dir / "pareto.csv": pareto_rows.to_csv(index=False),
        out_dir / "results.csv": results.to_csv(index=False),
        out_dir / "results.parquet": _parquet_bytes(results),
        out_dir / "pareto.png": png,
        out_dir / "pareto.svg": svg,
    }
    if has_confirm:
        files[out_dir / CONFIRM_FILE] = confirm.to_csv(index=False)
    write_files_atomic(files)
    return {p.name: p for p in files}
