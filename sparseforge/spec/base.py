"""Shared pieces of the hardware spec: the error type, field type checks, value parsing,
and :class:`Section`, the base of the spec's nested sections (``[spgemm]``, ``[moe]``)."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, ClassVar, Mapping

from ..errors import InputError

__all__ = ["SpecError", "Section", "check_type", "parse_value", "field_types"]


class SpecError(InputError):
    """A hardware spec (or one of its sources) is invalid. The message is one line that
    names the field, the offending value and what is allowed."""


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type of a spec dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def check_type(name: str, value: Any, expected: Any) -> None:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if expected is int and isinstance(value, bool):
        raise SpecError(f"{name} = {value!r} is not allowed: must be an integer")
    if not isinstance(value, expected):
        raise SpecError(f"{name} = {value!r} is not allowed: must be of type {expected.__name__}")
    if expected is float and not math.isfinite(value):
        raise SpecError(f"{name} = {value} is not allowed: must be a finite number")


def parse_value(key: str, raw: str, expected: Any) -> Any:
    """Parse the text of a ``--set key=value`` for a field of type ``expected``."""
    kind = expected.__name__
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
        raise SpecError(f"--set {key}={raw!r} is not allowed: {key} must be of type {kind}") from None
    return raw


class Section:
    """Base of a nested spec section: a frozen, keyword-only dataclass whose fields are
    type-checked on construction and whose ``validate`` raises :class:`SpecError` with the
    dotted field name (``spgemm.table_entries = 0 is not allowed: ...``)."""

    prefix: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name, typ in field_types(type(self)).items():
            check_type(f"{self.prefix}.{name}", getattr(self, name), typ)
        self.validate()

    def validate(self) -> None:  # overridden by sections
        pass

    def fail(self, name: str, allowed: str) -> typing.NoReturn:
        raise SpecError(f"{self.prefix}.{name} = {getattr(self, name)!r} is not allowed: {allowed}")

    def positive(self, *names: str) -> None:
        for name in names:
            if getattr(self, name) < 1:
                self.fail(name, "must be a positive integer")

    def power_of_two(self, *names: str) -> None:
        for name in names:
            v = getattr(self, name)
            if v < 1 or v & (v - 1):
                self.fail(name, "must be a power of two")

    def one_of(self, name: str, choices: tuple[str, ...]) -> None:
        if getattr(self, name) not in choices:
            self.fail(name, f"choose one of {', '.join(choices)}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str) -> "Section":
        if not isinstance(data, Mapping):
            raise SpecError(f"{cls.prefix} in {source} must be a table of fields, not {data!r}")
        allowed = set(field_types(cls))
        for key in data:
            if key not in allowed:
                raise SpecError(f"unknown field {cls.prefix}.{key} in {source}: allowed fields are "
                                + ", ".join(f"{cls.prefix}.{k}" for k in sorted(allowed)))
        return cls(**dict(data))
