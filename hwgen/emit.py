"""Emit a design's Verilog and manifest into ``<out_root>/<design>/``.

Everything is written into a temporary folder beside the target and moved into place at
the end, so a failure never leaves a half-written design behind.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from amaranth import Shape
from amaranth.back import verilog
from amaranth.lib import wiring

from sparseforge.errors import InputError
from sparseforge.spec import HardwareSpec

__all__ = ["DESIGNS", "build_component", "emit_design", "design_dir", "EmitError"]

#: design name -> "module:function" building its Amaranth component from (spec, **params);
#: imported only when that design is generated
DESIGNS: dict[str, str] = {
    "engine": "sparseforge.hwgen.engine:build_engine",
    "os_engine": "sparseforge.hwgen.os_engine:build_os_engine",
    "array": "sparseforge.hwgen.array:build_array",
    "pe": "sparseforge.hwgen.pe:build_pe",
    "sore": "sparseforge.hwgen.sore:build_sore",
    "hashmerge": "sparseforge.hwgen.hashmerge:build_hashmerge",
    "moe_reorder": "sparseforge.hwgen.moe:build_reorder",
    "moe_router": "sparseforge.hwgen.moe:build_router",
    "moe_scheduler": "sparseforge.hwgen.moe:build_scheduler",
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")


class EmitError(InputError):
    """Bad design name or output location (a user error: one clear line)."""


def build_component(spec: HardwareSpec, design: str, **params: Any) -> wiring.Component:
    """The Amaranth component of ``design`` for ``spec`` (see :data:`DESIGNS`)."""
    if design not in DESIGNS:
        raise EmitError(f"design = {design!r} is not allowed: choose one of {', '.join(DESIGNS)}")
    module, func = DESIGNS[design].split(":")
    return getattr(importlib.import_module(module), func)(spec, **params)


def design_dir(out_root: Path, name: str) -> Path:
    """The folder for design ``name`` under ``out_root``; refuses names that would escape it."""
    if not _NAME.match(name):
        raise EmitError(f"design name {name!r} is not allowed: use letters, digits, '_' and '-', "
                        "starting with a letter (at most 64 characters)")
    root = Path(out_root).resolve()
    target = (root / name).resolve()
    if target.parent != root:
        raise EmitError(f"output path {target} is outside the output folder {root}")
    return target


def _ports(component: wiring.Component) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "direction": "input" if member.flow == wiring.In else "output",
            "width": Shape.cast(member.shape).width,
        }
        for name, member in component.signature.members.items()
    ]


def _instantiation(top: str, ports: list[dict[str, Any]]) -> str:
    lines = [f"{top} u_{top} ("]
    conns = ["  .clk(clk)", "  .rst(rst)"] + [f"  .{p['name']}({p['name']})" for p in ports]
    lines.append(",\n".join(conns))
    lines.append(");")
    return "\n".join(lines)


def emit_design(spec: HardwareSpec, *, design: str = "engine", out_root: Path | str = "rtl_out",
                name: str | None = None, **params: Any) -> Path:
    """Generate ``design`` for ``spec`` and write ``<out_root>/<name>/{<top>.v, manifest.json}``.
    Returns the design folder."""
    name = f"{spec.name}-{design}" if name is None else name
    target = design_dir(Path(out_root), name)
    component = build_component(spec, design, **params)
    top = f"sf_{design}"
    text = verilog.convert(component, name=top, emit_src=False)
    ports = _ports(component)
    manifest = {
        "design": name,
        "kind": design,
        "top": top,
        "files": [f"{top}.v"],
        "clock": "clk (rising edge)",
        "reset": "rst (synchronous, active high)",
        "ports": ports,
        "instantiate": _instantiation(top, ports),
        "notes": "All ports are unsigned in Verilog; data fields are two's complement and "
                 "packed little-endian (field 0 in the least significant bits).",
        **spec.record(),
    }
    manifest["params"] = getattr(component, "params", {})
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    os.chmod(tmp, 0o755)
    try:
        (tmp / f"{top}.v").write_text(text)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            old = target.with_name(f".{name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
