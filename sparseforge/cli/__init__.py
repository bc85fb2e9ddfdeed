"""The ``sparseforge`` command line: the roof of the package, a thin layer over the API."""

from .main import build_parser, main

__all__ = ["main", "build_parser"]
