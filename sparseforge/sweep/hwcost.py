"""What a point costs on the FPGA: the sweep's one door to the resource model, the part
table and the achievable-clock lookup of ``sparseforge.hwgen.cost`` / ``sparseforge.hwgen.parts``.

INTEGRATION POINT (issue 9): the functions used here are

- ``fpga_part(name) -> Part`` (LUT, FF, DSP, BRAM36 capacities; unknown name -> InputError),
- ``estimate_resources(spec, design) -> {"lut", "ff", "dsp", "bram36", ...}``,
- ``fits(resources, part) -> (bool, reason)``,
- ``achievable_clock_mhz(spec, design, part) -> (mhz, source)``,

looked up in ``sparseforge.hwgen.cost``, ``sparseforge.hwgen.parts`` and
``sparseforge.hwgen.clocks`` (the first that has it). Nothing here models cost itself: without
those modules a sweep refuses to start (its [target] part cannot be checked). Designs the
resource model does not cover (its ``MODEL_DESIGNS``) are listed as ``uncosted``; a design
without a clock figure (the lookup answers ``None`` with a reason) leaves ``fmax_mhz`` empty.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ..errors import InputError
from ..spec import HardwareSpec
from .file import _Bad

__all__ = ["RESOURCE_KEYS", "check_part", "point_cost"]

#: the resource columns of the results table
RESOURCE_KEYS = ("lut", "ff", "dsp", "bram36")
_MODULES = ("sparseforge.hwgen.cost", "sparseforge.hwgen.parts", "sparseforge.hwgen.clocks")


@functools.cache
def _function(name: str) -> Callable[..., Any]:
    missing = []
    for mod in _MODULES:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            missing.append(mod)
            continue
        if hasattr(m, name):
            return getattr(m, name)
    raise ModuleNotFoundError(f"the FPGA cost model has no {name}() (looked in {', '.join(_MODULES)})")


@functools.cache
def _part(name: str):
    return _function("fpga_part")(name)


def check_part(name: Any) -> str:
    """The part name if the part table knows it; ``_Bad`` otherwise."""
    if not isinstance(name, str) or not name:
        raise _Bad("part", name, "give an FPGA part name, e.g. \"xczu7ev\"")
    try:
        part = _part(name)
    except ModuleNotFoundError as exc:
        raise _Bad("part", name, f"the FPGA part table is not available ({exc})") from None
    except (InputError, KeyError, ValueError) as exc:
        msg = str(exc).strip("'\"").splitlines()[0]
        raise _Bad("part", name, msg) from None
    return str(getattr(part, "name", name))


def _covered() -> tuple[str, ...] | None:
    """The designs the resource model covers (its ``MODEL_DESIGNS``), or None if it does not say."""
    try:
        mod = importlib.import_module(_MODULES[0])
    except ModuleNotFoundError:
        return None
    designs = getattr(mod, "MODEL_DESIGNS", None)
    return tuple(designs) if designs is not None else None


def _as_dict(res: Any) -> dict[str, Any]:
    if isinstance(res, dict):
        return res
    if hasattr(res, "to_dict"):
        return res.to_dict()
    return {k: getattr(res, k) for k in (*RESOURCE_KEYS, "lutram") if hasattr(res, k)}


def point_cost(spec: HardwareSpec, designs: tuple[str, ...], part_name: str) -> dict[str, Any]:
    """Resources of ``designs`` (summed over those the resource model covers; the others are
    listed in ``uncosted``), their achievable clock on the part (the slowest design's), and
    whether they fit the part (None when no design is covered)."""
    estimate = _function("estimate_resources")
    clock = _function("achievable_clock_mhz")
    fits = _function("fits")
    part = _part(part_name)
    covered = _covered()
    costed = tuple(d for d in designs if covered is None or d in covered)
    uncosted = tuple(d for d in designs if d not in costed)
    total: dict[str, float] = {}
    fmax, source, nofig = None, "", False
    for d in costed:
        for k, v in _as_dict(estimate(spec, design=d)).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                total[k] = total.get(k, 0) + v
        mhz, src = clock(spec, d, part)
        if mhz is None:                                  # no figure for this design: that decides
            nofig = True
            fmax, source = None, f"{d}: {src}"
        elif not nofig and (fmax is None or mhz < fmax):
            fmax, source = float(mhz), f"{d}: {src}"
    if costed:
        ok, reason = fits(SimpleNamespace(**{k: total.get(k, 0) for k in RESOURCE_KEYS}), part)
        ok, reason = bool(ok), str(reason)
    else:
        ok, reason = None, f"no resource model for {', '.join(uncosted)}"
        source = f"no clock figure for {', '.join(uncosted)}"
    return {"resources": total if costed else {}, "fmax_mhz": fmax, "fmax_source": source, "fits": ok,
            "fit_reason": reason, "uncosted": ", ".join(uncosted)}


def synth_clock_refusal(spec: HardwareSpec, designs: tuple[str, ...], part_name: str) -> str | None:
    """Why ``clock_mhz = "synth"`` cannot run on this part (the clock lookup has no figure
    for one of the designs), or None."""
    covered = _covered()
    clock = _function("achievable_clock_mhz")
    for d in designs:
        if covered is not None and d not in covered:
            return f"no clock figure for the {d} design"
        mhz, src = clock(spec, d, _part(part_name))
        if mhz is None:
            return src
    return None
