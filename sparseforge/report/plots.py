"""Figure builders shared by every report (the sweep report, the single-simulation report
and ``sparseforge compare``).

Each builder takes plain data (arrays, DataFrames, dicts) and returns a :class:`Picture`:
one figure, built twice from the same data -- an interactive plotly figure for the HTML page
and a matplotlib figure for PNG/SVG files (papers). Nothing here reads a store or runs a
simulation; what a picture shows is exactly what it was given.

Conventions: cycles and energy are stacked bars in a fixed colour per component, utilisation
is a line on a second axis in percent, points on a Pareto front are coloured and dominated
points grey, and an axis turns logarithmic when its positive values span more than two
decades.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from .base import Objective, ReportError

__all__ = ["Picture", "ParetoPanel", "pareto_picture", "pareto_grid_png_svg", "sensitivity_picture",
           "layer_segments", "layer_bars_picture", "roofline_points", "roofline_left_out", "roofline_picture", "energy_picture",
           "stacked_bars_picture", "metric_panels_picture", "layer_compare_picture", "speedup_picture", "ENERGY_EXTRA", "COLORS",
           "PLOTLY_CONFIG"]

COLORS = {
    "front": "#1f5fa8",        # Pareto points
    "dominated": "#b4b4b4",    # dominated points, greyed
    "unfit": "#9a9a9a",        # points that do not fit the device (crosses)
    "compute": "#4c72b0",
    "load": "#dd8452",
    "stall": "#c44e52",
    "util": "#2a9d55",
    "mac": "#4c72b0",
    "sram": "#55a868",
    "dram": "#c44e52",
    "roof": "#333333",
    "sore": "#8172b3",
    "update": "#937860",
    "experts": "#da8bc3",
}
#: Colours of the series of grouped bars and rooflines (first = the reference).
SERIES = ["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974"]

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True,
                 "toImageButtonOptions": {"format": "svg"}}
# A small template (white background, light grid) instead of a built-in one: plotly copies
# the whole template into every figure, and the built-in ones are large.
_AXIS = dict(gridcolor="#ebebeb", linecolor="#bbbbbb", zerolinecolor="#dddddd", ticks="", automargin=True)
_TEMPLATE = go.layout.Template(layout=dict(
    paper_bgcolor="white", plot_bgcolor="white", colorway=SERIES,
    font=dict(family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size=12, color="#2a3f5f"),
    xaxis=_AXIS, yaxis=_AXIS, hoverlabel=dict(align="left")))
_SEGMENTS = (("compute", "compute"), ("load", "weight load"), ("stall", "memory stall"))


@dataclass(frozen=True)
class Picture:
    """One figure of a report: ``name`` is its HTML id and file stem, ``figure`` the
    interactive plotly figure, ``draw()`` builds the same figure in matplotlib."""

    name: str
    title: str
    caption: str
    figure: go.Figure
    draw: Callable[[], Figure] = field(repr=False)

    def html(self) -> str:
        """The figure as an HTML fragment; the page embeds plotly.js once for all figures."""
        return pio.to_html(self.figure, full_html=False, include_plotlyjs=False, div_id=self.name,
                           config=PLOTLY_CONFIG, default_height=f"{self.figure.layout.height or 450}px")

    def png(self) -> bytes:
        return mpl_bytes(self.draw(), "png")

    def svg(self) -> bytes:
        return mpl_bytes(self.draw(), "svg")

    def images(self) -> tuple[bytes, bytes]:
        """PNG and SVG, from one matplotlib figure."""
        fig = self.draw()
        return mpl_bytes(fig, "png"), mpl_bytes(fig, "svg")


def mpl_bytes(fig: Figure, fmt: str) -> bytes:
    """A matplotlib figure as PNG (150 dpi) or SVG bytes; SVG output is reproducible (no
    date, fixed id salt)."""
    buf = io.BytesIO()
    meta = {"Date": None} if fmt == "svg" else {}
    with matplotlib.rc_context({"svg.hashsalt": "sparseforge", "svg.fonttype": "none"}):
        fig.savefig(buf, format=fmt, dpi=150, metadata=meta)
    return buf.getvalue()


def _new_mpl(width: float, height: float, *, ncols: int = 1, nrows: int = 1):
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _legend_above(fig: Figure, handles: list, labels: list) -> None:
    """The legend in one row above the axes, where it hides no data."""
    fig.legend(handles, labels, loc="outside upper right", ncols=max(1, len(labels)), fontsize=7, frameon=False)


def _plain_log_ticks(axis, values: np.ndarray) -> None:
    """Tick labels of a log axis as plain numbers (``30``, ``100``), with the minor ticks
    labelled too when the data span less than a decade."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    axis.set_minor_formatter(fmt if v.size and v.max() / v.min() < 10 else NullFormatter())


def _log_tickvals(values: np.ndarray) -> list[float]:
    """Tick positions for a log axis over ``values``: 1-2-5 steps per decade (1..9 when the
    data span less than a decade), so that every label is a plain, whole number."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return []
    lo, hi = v.min(), v.max()
    steps = (1, 2, 5) if hi / lo >= 10 else tuple(range(1, 10))
    out = [m * 10.0 ** e for e in range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 1)
           for m in steps]
    return [t for t in out if lo / 1.5 <= t <= hi * 1.5]


def _plotly_log(values: np.ndarray) -> dict:
    """Axis settings of a plotly log axis with plain-number labels (plotly's own minor
    labels are single digits: "5" for 50)."""
    ticks = _log_tickvals(values)
    return dict(type="log", tickmode="array", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])


def _wants_log(values: np.ndarray) -> bool:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size) and bool((v > 0).all()) and v.max() / v.min() > 100.0


def _layout(fig: go.Figure, title: str, height: int = 450) -> None:
    fig.update_layout(template=_TEMPLATE, title=dict(text=title, x=0.01, xanchor="left"), height=height,
                      margin=dict(l=70, r=30, t=60, b=60),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))


# ------------------------------------------------------------------------ Pareto
@dataclass(frozen=True)
class ParetoPanel:
    """The points of one Pareto plot: ``xv`` and ``yv`` the values of objectives ``x`` and
    ``y`` (a single objective is plotted against the points' rank, ``x`` named "rank").
    ``front``, ``fits`` and ``hover`` have one entry per point; every point given is drawn
    as exactly one marker."""

    title: str
    x: Objective
    y: Objective
    xv: np.ndarray
    yv: np.ndarray
    front: np.ndarray
    fits: np.ndarray
    hover: Sequence[str]
    staircase: bool = True    # join the front points as the 2-D front (only when it is one)

    def __post_init__(self) -> None:
        n = len(self.xv)
        for name in ("yv", "front", "fits", "hover"):
            if len(getattr(self, name)) != n:
                raise ReportError(f"ParetoPanel {self.title!r}: {name} has {len(getattr(self, name))} entries, "
                                  f"not {n}: give one per point")

    @property
    def x_label(self) -> str:
        if self.x.name == "rank":
            return "rank (best first)"
        return f"{self.x.label}, {'lower' if self.x.direction == 'min' else 'higher'} is better"

    @property
    def y_label(self) -> str:
        return f"{self.y.label}, {'lower' if self.y.direction == 'min' else 'higher'} is better"

    def groups(self) -> list[tuple[str, np.ndarray, dict]]:
        """(legend name, point indices, style) of the three kinds of points."""
        front = np.asarray(self.front, bool)
        fits = np.asarray(self.fits, bool)
        return [
            ("dominated", np.flatnonzero(~front & fits), {"color": COLORS["dominated"], "symbol": "circle"}),
            ("does not fit the device", np.flatnonzero(~fits), {"color": COLORS["unfit"], "symbol": "x"}),
            ("Pareto front", np.flatnonzero(front), {"color": COLORS["front"], "symbol": "circle"}),
        ]

    def staircase_xy(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The 2-D front as a staircase through the front points, ordered so that plotly's
        and matplotlib's horizontal-then-vertical steps trace its boundary."""
        if not self.staircase:
            return None
        f = np.flatnonzero(np.asarray(self.front, bool))
        if f.size < 2:
            return None
        xs, ys = np.asarray(self.xv, float)[f], np.asarray(self.yv, float)[f]
        order = np.lexsort((self.y.sign * ys, self.x.sign * xs))
        return xs[order], ys[order]


def pareto_picture(name: str, panel: ParetoPanel, *, caption: str = "") -> Picture:
    """A Pareto scatter: one marker per point, front points coloured, dominated grey,
    points that do not fit the device light grey crosses; each marker's hover text is
    ``panel.hover``."""
    fig = go.Figure()
    stair = panel.staircase_xy()
    if stair is not None:
        fig.add_trace(go.Scatter(x=stair[0], y=stair[1], mode="lines", line=dict(shape="hv", color=COLORS["front"],
                                 width=1.5, dash="dot"), name="front", hoverinfo="skip"))
    hover = np.asarray(list(panel.hover), dtype=object)
    for label, idx, style in panel.groups():
        if idx.size == 0:
            continue
        fig.add_trace(go.Scatter(
            x=np.asarray(panel.xv)[idx], y=np.asarray(panel.yv)[idx], mode="markers", name=label,
            marker=dict(color=style["color"], symbol=style["symbol"], size=9 if label == "Pareto front" else 7,
                        line=dict(width=0.5, color="#555555")),
            text=hover[idx], hovertemplate="%{text}<extra></extra>"))
    _layout(fig, panel.title)
    fig.update_xaxes(title_text=panel.x_label, **(_plotly_log(panel.xv) if _wants_log(panel.xv) else {}))
    fig.update_yaxes(title_text=panel.y_label, **(_plotly_log(panel.yv) if _wants_log(panel.yv) else {}))

    def draw() -> Figure:
        mfig, axes = _new_mpl(6.4, 4.6)
        _draw_pareto(axes[0][0], panel)
        return mfig

    return Picture(name, panel.title, caption, fig, draw)


def _draw_pareto(ax, panel: ParetoPanel) -> None:
    stair = panel.staircase_xy()
    if stair is not None:
        ax.step(stair[0], stair[1], where="post", color=COLORS["front"], lw=1.0, ls=":")
    for label, idx, style in panel.groups():
        if idx.size == 0:
            continue
        marker = "x" if style["symbol"] == "x" else "o"
        ax.scatter(np.asarray(panel.xv)[idx], np.asarray(panel.yv)[idx], s=28 if label == "Pareto front" else 18,
                   c=style["color"], marker=marker, label=label, zorder=3 if label == "Pareto front" else 2,
                   edgecolors="#555555" if marker == "o" else None, linewidths=0.4)
    if _wants_log(panel.xv):
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis, panel.xv)
    if _wants_log(panel.yv):
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis, panel.yv)
    ax.set_xlabel(panel.x_label)
    ax.set_ylabel(panel.y_label)
    ax.set_title(panel.title, fontsize=10)
    ax.grid(True, lw=0.3, alpha=0.6)
    ax.legend(fontsize=7, loc="best")


def pareto_grid_png_svg(panels: Sequence[ParetoPanel], *, columns: int = 3) -> tuple[bytes, bytes]:
    """Every Pareto panel in one matplotlib figure (rows of up to ``columns``), as PNG and
    SVG: the ``pareto.png``/``pareto.svg`` of a sweep."""
    if not panels:
        raise ReportError("the Pareto figure has no panel: no workload has a successful point")
    ncols = min(columns, len(panels))
    nrows = -(-len(panels) // ncols)

    def draw() -> Figure:
        fig, axes = _new_mpl(5.2 * ncols, 4.2 * nrows, ncols=ncols, nrows=nrows)
        flat = [ax for row in axes for ax in row]
        for ax, panel in zip(flat, panels):
            _draw_pareto(ax, panel)
        for ax in flat[len(panels):]:
            ax.set_visible(False)
        return fig

    fig = draw()
    return mpl_bytes(fig, "png"), mpl_bytes(fig, "svg")


# ------------------------------------------------------------------------ sensitivity
def _category_order(values: pd.Series) -> list:
    """Distinct values of an axis in a readable order: numeric values sorted, anything else
    in order of first appearance (the order of the sweep file)."""
    uniq = list(dict.fromkeys(v for v in values.tolist() if not (isinstance(v, float) and np.isnan(v))))
    try:
        nums = [float(v) for v in uniq]
    except (TypeError, ValueError):
        return uniq
    if any(isinstance(v, (bool, np.bool_)) for v in uniq):
        return uniq
    return [v for _, v in sorted(zip(nums, uniq), key=lambda t: t[0])]


def _cat_label(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def sensitivity_picture(name: str, axis: str, values: pd.Series, metrics: Mapping[Objective, np.ndarray],
                        front: np.ndarray, hover: Sequence[str], *, title: str, caption: str = "") -> Picture:
    """How each objective varies with one sweep axis: a box per axis value over all the
    points with that value, every point drawn over it, and the Pareto points marked."""
    cats = _category_order(values)
    labels = [_cat_label(c) for c in cats]
    pos = {c: i for i, c in enumerate(cats)}
    code = np.array([pos.get(v, -1) for v in values.tolist()])
    front = np.asarray(front, bool)
    hover = np.asarray(list(hover), dtype=object)
    objs = list(metrics)
    fig = make_subplots(rows=1, cols=len(objs), subplot_titles=[o.label for o in objs], horizontal_spacing=0.08)
    for j, obj in enumerate(objs, start=1):
        y = np.asarray(metrics[obj], float)
        ok = np.isfinite(y) & (code >= 0)
        xl = np.array(labels, dtype=object)[code[ok]] if ok.any() else np.array([], dtype=object)
        fig.add_trace(go.Box(x=xl, y=y[ok], name="all points", boxpoints="all", jitter=0.35, pointpos=0,
                             marker=dict(color=COLORS["dominated"], size=5), line=dict(color="#777777"),
                             fillcolor="rgba(180,180,180,0.25)", text=hover[ok],
                             hovertemplate="%{text}<extra></extra>", showlegend=j == 1, legendgroup="all"),
                      row=1, col=j)
        fr = ok & front
        if fr.any():
            fig.add_trace(go.Scatter(x=np.array(labels, dtype=object)[code[fr]], y=y[fr], mode="markers",
                                     name="Pareto front", legendgroup="front", showlegend=j == 1,
                                     marker=dict(color=COLORS["front"], size=9, symbol="diamond",
                                                 line=dict(width=0.5, color="#222222")),
                                     text=hover[fr], hovertemplate="%{text}<extra></extra>"), row=1, col=j)
        fig.update_xaxes(title_text=axis, type="category", categoryorder="array", categoryarray=labels, row=1, col=j)
        if _wants_log(y[ok]):
            fig.update_yaxes(row=1, col=j, **_plotly_log(y[ok]))
    _layout(fig, title, height=440)
    fig.update_layout(margin=dict(t=95), legend=dict(y=1.13))

    def draw() -> Figure:
        mfig, axes = _new_mpl(max(4.0, 3.6 * len(objs)), 3.6, ncols=len(objs))
        rng = np.random.default_rng(0)          # fixed jitter: identical files from identical data
        for ax, obj in zip(axes[0], objs):
            y = np.asarray(metrics[obj], float)
            ok = np.isfinite(y) & (code >= 0)
            data = [y[ok & (code == i)] for i in range(len(cats))]
            ax.boxplot(data, positions=range(len(cats)), widths=0.5, showfliers=False,
                       medianprops=dict(color="#333333"))
            jit = rng.uniform(-0.15, 0.15, size=len(y))
            ax.scatter(code[ok] + jit[ok], y[ok], s=10, c=COLORS["dominated"], zorder=2)
            fr = ok & front
            ax.scatter(code[fr], y[fr], s=30, c=COLORS["front"], marker="D", zorder=3, label="Pareto front")
            ax.set_xticks(range(len(cats)), labels)
            ax.set_xlabel(axis)
            ax.set_title(obj.label, fontsize=10)
            if _wants_log(y[ok]):
                ax.set_yscale("log")
                _plain_log_ticks(ax.yaxis, y[ok])
            ax.grid(True, axis="y", lw=0.3, alpha=0.6)
        return mfig

    return Picture(name, title, caption, fig, draw)


# ------------------------------------------------------------------------ per-layer bars
def layer_segments(layers: pd.DataFrame) -> pd.DataFrame:
    """Per-layer ``name, compute, load, stall, cycles, utilisation`` from per-layer results
    (``name``, ``cycles``, ``stall_cycles``, optional ``compute_cycles`` and
    ``load_cycles``, and ``utilisation`` or ``utilization``) such that
    ``compute + load + stall == cycles``.

    The simulator counts every cycle of a layer as either computing (the engine busy,
    weight loading and pipeline fill included) or stalled on memory, so without
    ``compute_cycles`` the compute part is ``cycles - stall_cycles`` (as the sweep store
    keeps it). ``load_cycles`` may be counted inside ``compute_cycles`` (then compute + stall
    == cycles and the load is taken out of compute) or beside it (compute + load + stall ==
    cycles); any other sum is an error, so a bar never shows cycles that did not happen."""
    need = ("name", "cycles", "stall_cycles")
    missing = [c for c in need if c not in layers.columns]
    if missing:
        raise ReportError(f"per-layer results lack {', '.join(missing)}: each layer needs {', '.join(need)}")
    util_col = "utilisation" if "utilisation" in layers.columns else "utilization"
    if util_col not in layers.columns:
        raise ReportError("per-layer results lack utilisation: each layer needs utilisation (or utilization)")

    def num(col: str) -> np.ndarray:
        return pd.to_numeric(layers[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)

    cyc, stall = num("cycles"), num("stall_cycles")
    load = np.nan_to_num(num("load_cycles")) if "load_cycles" in layers.columns else np.zeros(len(layers))
    comp = num("compute_cycles") if "compute_cycles" in layers.columns else cyc - stall
    inside = np.isclose(comp + stall, cyc) & (load <= comp)
    beside = np.isclose(comp + load + stall, cyc)
    if not (inside | beside).all():
        bad = int(np.flatnonzero(~(inside | beside))[0])
        raise ReportError(f"layer {layers['name'].iloc[bad]!r}: cycles = {cyc[bad]:g} is not compute + stall "
                          f"({comp[bad]:g} + {stall[bad]:g}) nor compute + load + stall: the breakdown must add up")
    compute = np.where(inside & (load > 0), comp - load, comp)
    return pd.DataFrame({"name": layers["name"].astype(str).to_numpy(), "compute": compute, "load": load,
                         "stall": stall, "cycles": cyc, "utilisation": num(util_col)})


def _unique_labels(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return out


def _wide(n: int, per: float = 0.2, low: float = 7.0, high: float = 22.0) -> float:
    return float(min(high, max(low, per * n + 2.0)))


def layer_bars_picture(name: str, segments: pd.DataFrame, *, title: str, caption: str = "") -> Picture:
    """Per-layer stacked cycles (compute, weight load, memory stall; see
    :func:`layer_segments`) with each layer's utilisation on a second axis."""
    seg = segments
    x = _unique_labels(seg["name"].tolist())
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for key, label in _SEGMENTS:
        if key == "load" and not seg[key].any():
            continue
        fig.add_trace(go.Bar(x=x, y=seg[key], name=label, marker_color=COLORS[key],
                             hovertemplate="%{x}<br>" + label + " %{y:,.0f} cycles<extra></extra>"), secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=100 * seg["utilisation"], name="utilisation", mode="lines",
                             line=dict(color=COLORS["util"], width=2),
                             hovertemplate="%{x}<br>utilisation %{y:.1f} %<extra></extra>"), secondary_y=True)
    _layout(fig, title)
    fig.update_layout(barmode="stack", bargap=0.15)
    fig.update_xaxes(type="category", tickangle=-60, tickfont=dict(size=9))
    fig.update_yaxes(title_text="cycles", secondary_y=False)
    fig.update_yaxes(title_text="utilisation (%)", range=[0, 105], secondary_y=True, showgrid=False,
                     tickmode="linear", tick0=0, dtick=20)

    def draw() -> Figure:
        mfig, axes = _new_mpl(_wide(len(x)), 4.2)
        ax = axes[0][0]
        pos = np.arange(len(x))
        bottom = np.zeros(len(x))
        for key, label in _SEGMENTS:
            if key == "load" and not seg[key].any():
                continue
            ax.bar(pos, seg[key], bottom=bottom, color=COLORS[key], label=label, width=0.8)
            bottom = bottom + seg[key].to_numpy(float)
        ax2 = ax.twinx()
        ax2.plot(pos, 100 * seg["utilisation"], color=COLORS["util"], lw=1.5, label="utilisation")
        ax2.set_ylim(0, 105)
        ax2.set_ylabel("utilisation (%)")
        ax.set_xticks(pos, x, rotation=90, fontsize=6 if len(x) > 30 else 8)
        ax.set_xlim(-0.6, len(x) - 0.4)
        ax.set_ylabel("cycles")
        ax.set_title(title, fontsize=10, loc="left")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        _legend_above(mfig, h1 + h2, l1 + l2)
        return mfig

    return Picture(name, title, caption, fig, draw)


# ------------------------------------------------------------------------ roofline
def roofline_points(names: Sequence[str], useful_macs: Sequence[float], dram_bytes: Sequence[float],
                    cycles: Sequence[float], clock_hz: float) -> pd.DataFrame:
    """The roofline coordinates of runs (layers, GEMMs, dataflows): ``intensity`` = useful
    MACs per DRAM byte (infinite without DRAM traffic) and ``rate`` = useful MACs per
    second at ``clock_hz``; one row per run, ``name`` its hover text."""
    dram = np.asarray(dram_bytes, float)
    macs = np.asarray(useful_macs, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        intensity = np.where(dram > 0, macs / dram, np.inf)
    rate = macs / (np.asarray(cycles, float) / clock_hz)
    return pd.DataFrame({"name": list(names), "intensity": intensity, "rate": rate})


def roofline_left_out(series: Mapping[str, pd.DataFrame]) -> int:
    """How many runs of ``series`` cannot be placed on a roofline (no DRAM traffic)."""
    return sum(int((~np.isfinite(s["intensity"])).sum()) for s in series.values())


def roofline_picture(name: str, series: Mapping[str, pd.DataFrame], *, peak_macs_per_s: float,
                     dram_bytes_per_s: float, title: str, caption: str = "", annotate: bool = False) -> Picture:
    """Layers on a roofline: x = arithmetic intensity (useful MACs per DRAM byte), y =
    achieved useful MACs per second; the roof is min(peak, intensity x DRAM bandwidth).
    ``series`` maps a label to a DataFrame with ``name``, ``intensity``, ``rate``; each row
    is one marker (:func:`roofline_points`). Layers with no DRAM traffic (infinite
    intensity) cannot be placed and are left out, which the caption should say. With
    ``annotate`` every marker is labelled with its name (for a handful of points, such as
    the dataflows of one SpGEMM)."""
    if not peak_macs_per_s > 0 or not dram_bytes_per_s > 0:
        raise ReportError(f"roofline: peak = {peak_macs_per_s!r} MAC/s and bandwidth = {dram_bytes_per_s!r} B/s "
                          "are not allowed: both must be > 0")
    pts = {k: v[np.isfinite(v["intensity"]) & (v["intensity"] > 0) & (v["rate"] > 0)] for k, v in series.items()}
    allx = np.concatenate([v["intensity"].to_numpy(float) for v in pts.values()] + [np.array([])])
    ridge = peak_macs_per_s / dram_bytes_per_s
    lo = min(allx.min() if allx.size else ridge, ridge) / 4
    hi = max(allx.max() if allx.size else ridge, ridge) * 4
    rx = np.array([lo, ridge, hi])
    ry = np.minimum(peak_macs_per_s, rx * dram_bytes_per_s) / 1e9
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=rx, y=ry, mode="lines", name="roof", line=dict(color=COLORS["roof"], width=2),
                             hovertemplate="intensity %{x:.3g} MAC/B<br>roof %{y:.3g} GMAC/s<extra></extra>"))
    for i, (label, df) in enumerate(pts.items()):
        fig.add_trace(go.Scatter(
            x=df["intensity"], y=df["rate"] / 1e9, mode="markers", name=label,
            marker=dict(color=SERIES[i % len(SERIES)], size=8, symbol="circle" if i == 0 else "circle-open",
                        line=dict(width=1 if i == 0 else 1.5, color=SERIES[i % len(SERIES)])),
            text=df["name"], hovertemplate="%{text}<br>%{x:.3g} MAC/B, %{y:.3g} GMAC/s<extra>" + label + "</extra>"))
        if annotate:
            fig.data[-1].update(mode="markers+text", textposition="top center", textfont=dict(size=9))
    _layout(fig, title, height=480)
    ally = np.concatenate([ry] + [v["rate"].to_numpy(float) / 1e9 for v in pts.values()])
    fig.update_xaxes(title_text="arithmetic intensity (useful MACs per DRAM byte)", **_plotly_log(rx))
    fig.update_yaxes(title_text="achieved GMAC/s (useful)", **_plotly_log(ally))
    fig.add_annotation(x=np.log10(hi), y=np.log10(peak_macs_per_s / 1e9), text=f"peak {peak_macs_per_s / 1e9:.4g} GMAC/s",
                       showarrow=False, xanchor="right", yanchor="bottom")
    fig.add_annotation(x=np.log10(lo), y=np.log10(lo * dram_bytes_per_s / 1e9), text=f"DRAM {dram_bytes_per_s / 1e9:.4g} GB/s",
                       showarrow=False, xanchor="left", yanchor="bottom", textangle=0)

    def draw() -> Figure:
        mfig, axes = _new_mpl(6.8, 4.8)
        ax = axes[0][0]
        ax.plot(rx, ry, color=COLORS["roof"], lw=2, label="roof")
        for i, (label, df) in enumerate(pts.items()):
            c = SERIES[i % len(SERIES)]
            ax.scatter(df["intensity"], df["rate"] / 1e9, s=22, label=label,
                       facecolors=c if i == 0 else "none", edgecolors=c, zorder=3)
            if annotate:
                for nm, xv, yv in zip(df["name"], df["intensity"], df["rate"] / 1e9):
                    ax.annotate(str(nm), (xv, yv), textcoords="offset points", xytext=(0, 4), ha="center",
                                fontsize=6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax.xaxis, rx)
        _plain_log_ticks(ax.yaxis, np.concatenate([ry] + [v["rate"].to_numpy(float) / 1e9 for v in pts.values()]))
        ax.text(hi, peak_macs_per_s / 1e9, f"peak {peak_macs_per_s / 1e9:.4g} GMAC/s ", ha="right", va="bottom", fontsize=8)
        ax.text(lo, lo * dram_bytes_per_s / 1e9, f" DRAM {dram_bytes_per_s / 1e9:.4g} GB/s", ha="left", va="bottom",
                fontsize=8)
        ax.set_xlabel("arithmetic intensity (useful MACs per DRAM byte)")
        ax.set_ylabel("achieved GMAC/s (useful)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
        ax.legend(fontsize=7, loc="lower right")
        return mfig

    return Picture(name, title, caption, fig, draw)


# ------------------------------------------------------------------------ stacked bars
def stacked_bars_picture(name: str, bars: Mapping[str, Mapping[str, float]],
                         components: Sequence[tuple[str, str, str]], *, title: str, axis: str, unit: str,
                         what: str = "bar", caption: str = "", height: int = 420) -> Picture:
    """One stacked bar per label of ``bars`` (a run, a spec, a dataflow, a schedule), its
    parts the ``components`` -- ``(key, legend label, colour)`` in stacking order -- taken
    from ``bars[label][key]`` in ``unit`` (a missing part is 0). ``axis`` names the y axis
    (``"energy"`` gives ``"energy (uJ)"``). A part that is not a component is an error
    naming ``what`` and the label."""
    labels = list(bars)
    keys = [k for k, _, _ in components]
    for lab in labels:
        unknown = set(bars[lab]) - set(keys)
        if unknown:
            raise ReportError(f"{what} of {lab!r}: component {sorted(unknown)[0]!r} is not allowed: "
                              f"components are {', '.join(keys)}")
    ylabel = unit if axis == unit else f"{axis} ({unit})"
    fig = go.Figure()
    for key, comp, colour in components:
        vals = [float(bars[lab].get(key, 0.0)) for lab in labels]
        fig.add_trace(go.Bar(x=labels, y=vals, name=comp, marker_color=colour,
                             hovertemplate="%{x}<br>" + comp + " %{y:.4g} " + unit + "<extra></extra>"))
    _layout(fig, title, height=height)
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text=ylabel)
    fig.update_xaxes(type="category")

    def draw() -> Figure:
        mfig, axes = _new_mpl(max(4.5, 1.4 * len(labels) + 2.5), 4.0)
        ax = axes[0][0]
        bottom = np.zeros(len(labels))
        for key, comp, colour in components:
            vals = np.array([float(bars[lab].get(key, 0.0)) for lab in labels])
            ax.bar(labels, vals, bottom=bottom, color=colour, label=comp, width=0.6)
            bottom += vals
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(True, axis="y", lw=0.3, alpha=0.6)
        if len(labels) > 4:
            ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        return mfig

    return Picture(name, title, caption, fig, draw)


# ------------------------------------------------------------------------ energy
_ENERGY = (("mac", "MAC"), ("sram", "on-chip SRAM"), ("dram", "DRAM"))
#: Energy components beyond the three every run has, drawn only where a bar has them: the
#: training units and the MoE expert layers (whose MAC and on-chip parts the simulator
#: reports as one sum).
ENERGY_EXTRA = (("sore", "SORE (mask generation)"), ("update", "weight-update engine"),
                ("experts", "MoE experts: MAC + on-chip"))


def energy_picture(name: str, bars: Mapping[str, Mapping[str, float]], *, title: str, unit: str = "uJ",
                   caption: str = "") -> Picture:
    """Stacked energy per bar: ``bars`` maps a label (a run, a spec) to its energy per
    component (``mac``, ``sram``, ``dram``, and where a run has them ``sore``, ``update``
    or ``experts``: :data:`ENERGY_EXTRA`) in ``unit``."""
    present = {k for parts in bars.values() for k in parts}
    comps = [(k, label, COLORS[k]) for k, label in _ENERGY]
    comps += [(k, label, COLORS[k]) for k, label in ENERGY_EXTRA if k in present]
    known = [k for k, _ in _ENERGY + ENERGY_EXTRA]
    for lab, parts in bars.items():
        unknown = set(parts) - set(known)
        if unknown:
            raise ReportError(f"energy of {lab!r}: component {sorted(unknown)[0]!r} is not allowed: "
                              f"components are {', '.join(known)}")
    return stacked_bars_picture(name, bars, comps, title=title, axis="energy", unit=unit, what="energy",
                                caption=caption)


# ------------------------------------------------------------------------ metric panels
def metric_panels_picture(name: str, categories: Sequence[str], panels: Sequence[tuple[str, Sequence[float]]], *,
                          title: str, caption: str = "", columns: int = 3) -> Picture:
    """Small multiples: one bar chart per metric (``panels``: ``(label with unit, one value
    per category)``), the same colour for a category (a schedule, a dataflow, a run) in
    every panel, each bar labelled with its value. A value that is None or NaN (the
    metric does not apply to that category) leaves its bar out."""
    cats = list(categories)
    for label, vals in panels:
        if len(vals) != len(cats):
            raise ReportError(f"panel {label!r} has {len(vals)} values, not {len(cats)}: give one per category")
    if not panels:
        raise ReportError(f"picture {name!r} has no panel: give at least one metric")
    ncols = min(columns, len(panels))
    nrows = -(-len(panels) // ncols)

    def clean(vals: Sequence[float]) -> np.ndarray:
        return np.array([np.nan if v is None else float(v) for v in vals], float)

    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[lab for lab, _ in panels],
                        horizontal_spacing=0.09, vertical_spacing=0.22 if nrows > 1 else 0.1)
    colours = [SERIES[i % len(SERIES)] for i in range(len(cats))]
    for j, (label, vals) in enumerate(panels):
        v = clean(vals)
        ok = np.isfinite(v)
        fig.add_trace(go.Bar(x=[c for c, k in zip(cats, ok) if k], y=v[ok],
                             marker_color=[c for c, k in zip(colours, ok) if k], showlegend=False, name=label,
                             text=[f"{x:.4g}" for x in v[ok]], textposition="outside", cliponaxis=False,
                             hovertemplate="%{x}<br>" + label + " %{y:.4g}<extra></extra>"),
                      row=j // ncols + 1, col=j % ncols + 1)
    _layout(fig, title, height=340 * nrows + 60)
    fig.update_xaxes(type="category", tickangle=-30, tickfont=dict(size=9))
    fig.update_yaxes(rangemode="tozero")
    fig.update_annotations(font_size=11)

    def draw() -> Figure:
        mfig, axes = _new_mpl(4.0 * ncols, 3.2 * nrows, ncols=ncols, nrows=nrows)
        flat = [ax for row in axes for ax in row]
        for ax, (label, vals) in zip(flat, panels):
            v = clean(vals)
            ok = np.isfinite(v)
            pos = np.flatnonzero(ok)
            bars_ = ax.bar(pos, v[ok], color=[colours[i] for i in pos], width=0.7)
            ax.bar_label(bars_, labels=[f"{x:.4g}" for x in v[ok]], fontsize=6, padding=1)
            ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right", fontsize=7)
            ax.set_title(label, fontsize=9)
            ax.grid(True, axis="y", lw=0.3, alpha=0.6)
            ax.margins(y=0.15)
        for ax in flat[len(panels):]:
            ax.set_visible(False)
        mfig.suptitle(title, fontsize=10)
        return mfig

    return Picture(name, title, caption, fig, draw)


# ------------------------------------------------------------------------ layer comparison
def layer_compare_picture(name: str, layer_names: Sequence[str], series: Mapping[str, Sequence[float]], *,
                          unit: str, ratios: Mapping[str, Sequence[float]] | None = None, ratio_label: str = "",
                          title: str, caption: str = "") -> Picture:
    """Grouped per-layer bars, one colour per series (a run, a spec), in ``unit``; ``ratios``
    (e.g. the speedup of each layer) are lines on a second axis."""
    x = _unique_labels(list(layer_names))
    for lab, vals in series.items():
        if len(vals) != len(x):
            raise ReportError(f"series {lab!r} has {len(vals)} values, not {len(x)}: give one per layer")
    ratios = dict(ratios or {})
    fig = make_subplots(specs=[[{"secondary_y": bool(ratios)}]])
    for i, (lab, vals) in enumerate(series.items()):
        fig.add_trace(go.Bar(x=x, y=list(vals), name=lab, marker_color=SERIES[i % len(SERIES)],
                             hovertemplate="%{x}<br>" + lab + " %{y:,.4g} " + unit + "<extra></extra>"),
                      secondary_y=False)
    for j, (lab, vals) in enumerate(ratios.items()):
        fig.add_trace(go.Scatter(x=x, y=list(vals), name=lab, mode="lines",
                                 line=dict(color=["#222222", "#c44e52", "#2a9d55"][j % 3], width=1.8),
                                 hovertemplate="%{x}<br>" + lab + " %{y:.3f}<extra></extra>"), secondary_y=True)
    _layout(fig, title)
    fig.update_layout(barmode="group", bargap=0.2, bargroupgap=0.05)
    fig.update_xaxes(type="category", tickangle=-60, tickfont=dict(size=9))
    fig.update_yaxes(title_text=unit, secondary_y=False)
    if ratios:
        fig.update_yaxes(title_text=ratio_label, secondary_y=True, showgrid=False, rangemode="tozero", tickmode="auto")

    def draw() -> Figure:
        mfig, axes = _new_mpl(_wide(len(x) * max(1, len(series)) / 1.6), 4.2)
        ax = axes[0][0]
        pos = np.arange(len(x))
        w = 0.8 / max(1, len(series))
        for i, (lab, vals) in enumerate(series.items()):
            ax.bar(pos - 0.4 + w * (i + 0.5), np.asarray(vals, float), width=w, color=SERIES[i % len(SERIES)], label=lab)
        handles, labels = ax.get_legend_handles_labels()
        if ratios:
            ax2 = ax.twinx()
            for j, (lab, vals) in enumerate(ratios.items()):
                ax2.plot(pos, np.asarray(vals, float), color=["#222222", "#c44e52", "#2a9d55"][j % 3], lw=1.2, label=lab)
            ax2.set_ylabel(ratio_label)
            ax2.set_ylim(bottom=0)
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.set_xticks(pos, x, rotation=90, fontsize=6 if len(x) > 30 else 8)
        ax.set_xlim(-0.6, len(x) - 0.4)
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10, loc="left")
        _legend_above(mfig, handles, labels)
        return mfig

    return Picture(name, title, caption, fig, draw)


def speedup_picture(name: str, layer_names: Sequence[str], run: tuple[str, Sequence[float]],
                    reference: tuple[str, Sequence[float]], *, ratio_name: str, unit: str, title: str,
                    caption: str = "") -> Picture:
    """A run against its reference layer by layer (:func:`layer_compare_picture`): grouped
    bars of ``run = (label, values)`` and ``reference``, and the speedup ``reference / run``
    per layer as a line named ``ratio_name``."""
    r = np.asarray(run[1], float)
    ref = np.asarray(reference[1], float)
    return layer_compare_picture(name, layer_names, {run[0]: r, reference[0]: ref}, unit=unit,
                                 ratios={ratio_name: ref / r}, ratio_label="speedup", title=title, caption=caption)
