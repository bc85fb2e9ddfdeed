"""The one error type every layer raises for a user's mistake.

:class:`InputError` is the base of every error that a bad input (a spec field, an option, a
file) can cause, in every layer: the spec's :class:`~sparseforge.spec.SpecError`, the
mapper's ``MappingError``, the readers' ``MatrixError`` and ``MoeError``, the RTL emitter's
``EmitError``, the synthesis runner's ``SynthError`` and the CLI's ``UserError``. Its message
is one line that names the field, option or file, the offending value and what is allowed.
The CLI prints it as ``sparseforge: error: ...`` and exits with status 2; API users can catch
the one class.

This module is the ground floor: it imports nothing of the project.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """A user's mistake: a one-line message naming what is wrong, the value and what is allowed."""
