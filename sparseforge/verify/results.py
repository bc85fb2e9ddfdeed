"""The results of ``sparseforge verify`` and ``sparseforge lint``, viewable the four ways of
:mod:`sparseforge.results` (``to_dict``, ``to_pandas``, ``to_text``, ``_repr_html_``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparseforge.results import _frame, _Result, plain

if TYPE_CHECKING:
    import pandas

    from .lint import LintReport

__all__ = ["VerifyResult", "LintResult"]


@dataclass(frozen=True, eq=False)
class VerifyResult(_Result):
    """A design folder run through the project's testbench (:func:`sparseforge.verify`):
    real data in, every output word compared with the NumPy golden model, the cycles from
    ``start`` to ``done`` against the simulator's run model. ``passed``: bit-exact and the
    cycles as predicted."""

    path: Path
    kind: str
    top: str
    simulator: str
    spec_name: str
    digest: str
    rtl_as_generated: bool         # the Verilog's hash is the manifest's (not edited since generate)
    data: dict[str, Any]           # what ran: network, layer, sparsity, tokens, k, outputs, tiles, words
    values: int                    # output values compared
    words: int | None              # output words read back (None: the bench did not get there)
    mismatched_words: int | None
    first_mismatch: list | None    # [address, got, expected]
    bitexact: bool
    measured_cycles: int | None
    predicted_cycles: int
    bench_passed: bool
    failure: str | None            # the bench's first failure line
    waves: Path | None = None

    @property
    def cycles_match(self) -> bool:
        return self.measured_cycles is not None and self.measured_cycles == self.predicted_cycles

    @property
    def passed(self) -> bool:
        return self.bitexact and self.cycles_match and self.bench_passed

    def to_dict(self) -> dict[str, Any]:
        return plain({
            "path": str(self.path), "kind": self.kind, "top": self.top, "simulator": self.simulator,
            "spec": self.spec_name, "digest": self.digest, "rtl_as_generated": self.rtl_as_generated,
            "passed": self.passed, "bitexact": self.bitexact, "values": self.values, "words": self.words,
            "mismatched_words": self.mismatched_words, "first_mismatch": self.first_mismatch,
            "measured_cycles": self.measured_cycles, "predicted_cycles": self.predicted_cycles,
            "cycles_match": self.cycles_match, "data": self.data, "failure": self.failure,
            "waves": str(self.waves) if self.waves else None,
        })

    def to_pandas(self) -> "pandas.DataFrame":
        """One row: the run and its two checks."""
        d = self.to_dict()
        return _frame([{k: d[k] for k in ("kind", "simulator", "passed", "bitexact", "values", "mismatched_words",
                                            "measured_cycles", "predicted_cycles")} | {"layer": self.data["layer"]}])

    def to_text(self) -> str:
        d = self.data
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"verify {self.path.name} ({self.kind}, top {self.top}) with {self.simulator}: {verdict}",
                 f"  spec {self.spec_name} [{self.digest}]"
                 + ("" if self.rtl_as_generated else "; the Verilog differs from what generate wrote"),
                 f"  data: {d['network']}, {d['layer']} pruned {d['sparsity']}, int8: {d['tokens']} tokens x "
                 f"K {d['k']}" + ("" if d["k"] == d["k_layer"] else f" of {d['k_layer']}")
                 + f" -> {d['outputs']} outputs; " + ", ".join(f"{k} {v}" for k, v in d["tiles"].items())]
        if self.words is None:
            lines.append("  outputs: not read (the bench stopped before): " + (self.failure or "no result"))
        elif self.bitexact:
            lines.append(f"  outputs: all {self.values} values bit-exact against the NumPy golden model "
                         f"({self.words} output words)")
        else:
            addr, got, exp = (self.first_mismatch or [None, None, None])[:3]
            lines.append(f"  outputs: {self.mismatched_words} of {self.words} output words differ from the NumPy "
                         f"golden model; first at address {addr}: got {got}, expected {exp}")
        if self.measured_cycles is None:
            lines.append(f"  cycles: not measured; predicted {self.predicted_cycles}")
        else:
            how = "exact" if self.cycles_match else f"off by {self.measured_cycles - self.predicted_cycles:+d}"
            lines.append(f"  cycles start -> done: measured {self.measured_cycles}, predicted "
                         f"{self.predicted_cycles} (simulator's run model): {how}")
        if self.failure and self.words is not None and not self.passed:
            lines.append(f"  bench: {self.failure}")
        if self.waves:
            lines.append(f"  waves: {self.waves} (open with GTKWave or Surfer)")
        return "\n".join(lines)

    def _summary(self) -> list[tuple[str, str]]:
        return [("folder", str(self.path)), ("spec", f"{self.spec_name} [{self.digest}]"),
                ("simulator", self.simulator)]

    def _title(self) -> str:
        return self.to_text().splitlines()[0]

    def __repr__(self) -> str:
        return f"<VerifyResult {self.path.name} {self.kind} {'PASS' if self.passed else 'FAIL'}>"


@dataclass(frozen=True, eq=False)
class LintResult(_Result):
    """Verilator ``-Wall`` lint of a design folder (:func:`sparseforge.lint`): the warnings
    nobody waived (``clean`` when none) and how many the waiver file and the alias analysis
    waived."""

    path: Path
    report: "LintReport"
    waivers: Path
    rules: list[dict[str, str]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.report.clean

    @property
    def unwaived(self) -> tuple:
        return self.report.unwaived

    def to_dict(self) -> dict[str, Any]:
        return plain({"path": str(self.path), "waivers": str(self.waivers), **self.report.to_dict()})

    def to_pandas(self) -> "pandas.DataFrame":
        """One row per unwaived warning (none for a clean design)."""
        import pandas

        rows = [{"rule": w.rule, "file": w.file, "line": w.line, "col": w.col, "message": w.message}
                for w in self.unwaived]
        return pandas.DataFrame(rows, columns=["rule", "file", "line", "col", "message"])

    def to_text(self) -> str:
        r = self.report
        waived = ", ".join(f"{k} {v}" for k, v in sorted(r.waived.items())) or "none"
        head = (f"lint {self.path.name} (top {r.top}, Verilator -Wall): "
                + ("clean" if r.clean else f"{len(r.unwaived)} unwaived warning(s)"))
        lines = [head, f"  waived by {self.waivers.name}: {waived}; unused Amaranth aliases: {r.aliases}"]
        lines += [f"  {w}" for w in r.unwaived]
        return "\n".join(lines)

    def _title(self) -> str:
        return self.to_text().splitlines()[0]

    def __repr__(self) -> str:
        return f"<LintResult {self.path.name}: {len(self.unwaived)} unwaived>"
