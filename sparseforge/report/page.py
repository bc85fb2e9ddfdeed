"""One self-contained HTML page: plotly.js embedded once in the page (no CDN, nothing
fetched), the figures as plotly fragments, tables as plain HTML. It opens offline in any
browser and can be mailed as one file."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd
from plotly.offline import get_plotlyjs

from .base import ReportError, fmt_value, write_files_atomic
from .plots import Picture

__all__ = ["Section", "render_page", "table_html", "facts_html", "html_path", "page_files", "write_report"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 12px 24px 48px; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin: 0.6em 0 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ccc; padding-bottom: 3px; }
h3 { font-size: 1.0em; margin-top: 1.2em; }
p.sub { color: #555; margin-top: 0; }
p.note, figcaption { color: #444; font-size: 0.92em; }
figure { margin: 0.8em 0 1.4em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0 1.2em; }
th, td { border: 1px solid #d0d0d0; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f1f3f6; }
td.t, th.t { text-align: left; }
div.scroll { overflow-x: auto; max-height: 560px; overflow-y: auto; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; font-size: 0.92em; }
dl.facts dt { color: #555; } dl.facts dd { margin: 0; }
"""


@dataclass
class Section:
    """A heading with its text, and pictures, tables and raw HTML fragments in order."""

    heading: str
    intro: str = ""
    parts: list = field(default_factory=list)       # Picture | ("table", html) | ("html", html)
    level: int = 2

    def picture(self, pic: Picture) -> "Section":
        self.parts.append(pic)
        return self

    def table(self, df: pd.DataFrame, *, text_columns: Sequence[str] = ()) -> "Section":
        self.parts.append(("html", table_html(df, text_columns=text_columns)))
        return self

    def raw(self, fragment: str) -> "Section":
        self.parts.append(("html", fragment))
        return self


def table_html(df: pd.DataFrame, *, text_columns: Sequence[str] = ()) -> str:
    """A DataFrame as an escaped HTML table; numbers formatted by :func:`fmt_value`, the
    ``text_columns`` (and any non-numeric column) left-aligned."""
    text = set(text_columns) | {c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])}
    head = "".join(f'<th class="{"t" if c in text else ""}">{html.escape(str(c))}</th>' for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False):
        cells = "".join(f'<td class="{"t" if c in text else ""}">{html.escape(fmt_value(v))}</td>'
                        for c, v in zip(df.columns, rec))
        rows.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def facts_html(facts: Sequence[tuple[str, str]]) -> str:
    """A two-column list of ``(label, value)`` lines."""
    return '<dl class="facts">' + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts) + "</dl>"


def render_page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole page as one string, plotly.js inline."""
    body = []
    for sec in sections:
        tag = f"h{sec.level}"
        body.append(f"<{tag} id=\"sec-{len(body)}\">{html.escape(sec.heading)}</{tag}>")
        if sec.intro:
            body.append(f'<p class="note">{html.escape(sec.intro)}</p>')
        for part in sec.parts:
            if isinstance(part, Picture):
                cap = f"<figcaption>{html.escape(part.caption)}</figcaption>" if part.caption else ""
                body.append(f"<figure>{part.html()}{cap}</figure>")
            else:
                body.append(part[1])
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n<p class=\"sub\">{html.escape(subtitle)}</p>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def html_path(path: Path | str) -> Path:
    """``path`` as a :class:`Path` when it names an ``.html`` file (any case, or ``.htm``),
    else :class:`ReportError`: the report's ``--output`` picks the format by extension."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"--output {str(path)!r} is not allowed for the HTML report: give a file ending in .html")
    return path


def page_files(path: Path, title: str, subtitle: str, sections: Sequence[Section],
               pictures: Sequence[Picture]) -> dict[Path, bytes | str]:
    """The files of a report, in memory: the page ``path`` (:func:`render_page`), then each
    picture as ``<stem>-<picture>.png`` and ``.svg`` beside it, in page order."""
    files: dict[Path, bytes | str] = {path: render_page(title, subtitle, sections)}
    for pic in pictures:
        png, svg = pic.images()
        files[path.with_name(f"{path.stem}-{pic.name}.png")] = png
        files[path.with_name(f"{path.stem}-{pic.name}.svg")] = svg
    return files


def write_report(path: Path, title: str, subtitle: str, sections: Sequence[Section],
                 pictures: Sequence[Picture]) -> list[Path]:
    """Write :func:`page_files` all at once (:func:`~sparseforge.report.base.write_files_atomic`:
    every file is staged first, so a failure leaves the old files whole). Returns the
    paths, the page first, then PNG and SVG per picture in page order."""
    return write_files_atomic(page_files(path, title, subtitle, sections, pictures))
