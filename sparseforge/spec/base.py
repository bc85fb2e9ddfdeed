"""Shared pieces of the hardware spec: the error type, field type checks, value parsing,
field bounds (:class:`Bound`, :class:`Text`), and :class:`Section`, the base of the spec's
nested sections (``[spgemm]``, ``[moe]``, ``[train]``)."""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any, ClassVar, Mapping

from ..errors import InputError

__all__ = ["SpecError", "Section", "Bound", "Text", "check_type", "check_bounds", "parse_value", "field_types",
           "show"]


class SpecError(InputError):
    """A hardware spec (or one of its sources) is invalid. The message is one line that
    names the field, the offending value and what is allowed."""


@functools.lru_cache(maxsize=None)
def field_types(cls: type) -> Mapping[str, Any]:
    """Field name -> resolved type of a spec dataclass (read-only; resolved once per class,
    since resolving annotations costs milliseconds and every spec construction asks)."""
    hints = typing.get_type_hints(cls)
    return types.MappingProxyType({f.name: hints[f.name] for f in dataclasses.fields(cls)})


def show(value: Any, limit: int = 60) -> str:
    """``value`` for a one-line message: its repr, with a huge integer as its bit length and
    a long repr cut to ``limit`` characters (a message never runs to pages, and never fails
    to print a number Python refuses to turn into 4300+ digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 30:
        return f"<a {value.bit_length()}-bit integer>"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_type(name: str, value: Any, expected: Any) -> None:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return                          # an integer is a finite number; its bounds are checked after
    if expected is int and isinstance(value, bool):
        raise SpecError(f"{name} = {value!r} is not allowed: must be an integer")
    if not isinstance(value, expected):
        raise SpecError(f"{name} = {show(value)} is not allowed: must be of type {expected.__name__}")
    if expected is float and not math.isfinite(value):
        raise SpecError(f"{name} = {value} is not allowed: must be a finite number")


def _num(v: float) -> str:
    """A bound as written in messages and docs/spec.md: integers in full, floats by repr."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


@dataclasses.dataclass(frozen=True)
class Bound:
    """The allowed values of a numeric field: ``low <= value <= high`` (inclusive; for an
    integer field ``power_of_two`` also asks for a power of two), with the ``unit`` and a
    ``note`` that messages and docs/spec.md show. Every bound keeps every derived value and
    result finite and every structure the simulators build allocatable; ``why`` says where
    the limits come from (docs/spec.md lists them)."""

    low: int | float
    high: int | float
    unit: str = ""
    note: str = ""
    power_of_two: bool = False
    why: str = ""

    def allowed(self) -> str:
        rng = f"{_num(self.low)}..{_num(self.high)}" + (f" {self.unit}" if self.unit else "")
        text = f"a power of two in {rng}" if self.power_of_two else rng
        return text + (f" ({self.note})" if self.note else "")

    def ok(self, value: int | float) -> bool:
        if not self.low <= value <= self.high:      # also False for nan
            return False
        return not self.power_of_two or value & (value - 1) == 0


@dataclasses.dataclass(frozen=True)
class Text:
    """The allowed values of a text field: ``min_len``..``max_len`` characters without
    control characters (a name or description is printed on one line), or one of
    ``choices``."""

    min_len: int = 0
    max_len: int = 0
    choices: tuple[str, ...] = ()
    why: str = ""

    def allowed(self) -> str:
        if self.choices:
            return f"choose one of {', '.join(self.choices)}"
        return f"must be {self.min_len}..{self.max_len} characters without control characters"

    def ok(self, value: str) -> bool:
        if self.choices:
            return value in self.choices
        return self.min_len <= len(value) <= self.max_len and value.isprintable()


def check_bounds(obj: Any, bounds: Mapping[str, Bound | Text], prefix: str = "") -> None:
    """Raise :class:`SpecError` for the first field of ``obj`` outside its bound:
    ``clock_mhz = 1e+308 is not allowed: must be 1..5000 MHz``."""
    for name, bound in bounds.items():
        value = getattr(obj, name)
        if not bound.ok(value):
            allowed = bound.allowed() if isinstance(bound, Text) else f"must be {bound.allowed()}"
            raise SpecError(f"{prefix}{name} = {show(value)} is not allowed: {allowed}")


def parse_value(key: str, raw: str, expected: Any) -> Any:
    """Parse the text of a ``--set key=value`` for a field of type ``expected``."""
    kind = expected.__name__
    if expected in (int, float) and len(raw) > 4000:    # Python refuses int() of 4300+ digits
        raise SpecError(f"--set {key}={show(raw)} is not allowed: {key} must be a number of at most 4000 characters")
    try:
        if expected is int:
            return int(raw, 0)
        if expected is float:
            return float(raw)
        if expected is bool:
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError:
        raise SpecError(f"--set {key}={show(raw)} is not allowed: {key} must be of type {kind}") from None
    return raw


class Section:
    """Base of a nested spec section: a frozen, keyword-only dataclass whose fields are
    type-checked on construction and whose ``validate`` raises :class:`SpecError` with the
    dotted field name (``spgemm.table_entries = 0 is not allowed: ...``)."""

    prefix: ClassVar[str] = ""
    #: field -> its :class:`Bound` or :class:`Text`; every field but a bool has one
    BOUNDS: ClassVar[Mapping[str, Bound | Text]] = {}

    def __post_init__(self) -> None:
        for name, typ in field_types(type(self)).items():
            check_type(f"{self.prefix}.{name}", getattr(self, name), typ)
        check_bounds(self, self.BOUNDS, prefix=f"{self.prefix}.")
        self.validate()

    def validate(self) -> None:  # cross-field checks, overridden by sections
        pass

    def fail(self, name: str, allowed: str) -> typing.NoReturn:
        raise SpecError(f"{self.prefix}.{name} = {show(getattr(self, name))} is not allowed: {allowed}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str) -> "Section":
        if not isinstance(data, Mapping):
            raise SpecError(f"{cls.prefix} in {source} must be a table of fields, not {show(data)}")
        allowed = set(field_types(cls))
        for key in data:
            if key not in allowed:
                key = key if isinstance(key, str) and key.isprintable() and len(key) <= 60 else show(key)
                raise SpecError(f"unknown field {cls.prefix}.{key} in {source}: allowed fields are "
                                + ", ".join(f"{cls.prefix}.{k}" for k in sorted(allowed)))
        return cls(**dict(data))
