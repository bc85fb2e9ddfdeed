"""The ``sparseforge`` command line: the roof of the package, a thin layer over the API
(:mod:`sparseforge.api`). One module per command, options shared in :mod:`.options`."""

from .main import COMMANDS, build_parser, main

__all__ = ["main", "build_parser", "COMMANDS"]
