"""What the report tests of training, SpGEMM and MoE share: run the CLI to write a report,
read a figure's traces back out of the page, and check the files written beside it."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

import pytest

from sparseforge.cli import main

from .test_report_sim import _traces


def write_with_cli(argv: Sequence[str], out: Path) -> str:
    """Run ``sparseforge ARGV -o OUT`` (exit 0 expected) and return the page's text."""
    assert main([*argv, "-o", str(out)]) == 0
    return out.read_text()


def cli_page(argv: Sequence[str], stem: str):
    """A module fixture: the report written by ``sparseforge ARGV -o <tmp>/STEM.html``, as
    ``(path, page text)``."""
    @pytest.fixture(scope="module")
    def page(tmp_path_factory):
        out = tmp_path_factory.mktemp(stem) / f"{stem}.html"
        return out, write_with_cli(argv, out)

    return page


def traces(page: str, div_id: str) -> dict[str, dict]:
    """The traces of figure ``div_id`` in the page, by trace name."""
    return {t.get("name"): t for t in _traces(page, div_id)}


def text_of(page: str) -> str:
    """The page's HTML text with entities decoded (for numbers in the summary and captions)."""
    return html.unescape(page)


def check_files(out: Path, pictures: Sequence[str]) -> None:
    """The folder holds exactly the page and a PNG and an SVG per picture, each a whole image."""
    expect = {out.name} | {f"{out.stem}-{n}.{e}" for n in pictures for e in ("png", "svg")}
    assert {p.name for p in out.parent.iterdir()} == expect
    for name in expect - {out.name}:
        data = (out.parent / name).read_bytes()
        if name.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[-8:] == b"IEND\xaeB`\x82", name
        else:
            assert data.startswith(b"<?xml") and data.rstrip().endswith(b"</svg>"), name
    for pic in pictures:
        assert f'id="{pic}"' in out.read_text(), pic
