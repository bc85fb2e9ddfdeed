"""The package's layering, read from its imports: no import cycle, and every import points
down the rank table :data:`LAYERS` (spec and presets at the bottom, the hardware units' cycle
models below the mapper, the simulator and the RTL package beside each other, the CLI on top).

The imports are parsed with :mod:`ast` from every module of the installed package (the
design card's folders ``hwgen``/``sim``/``dataflow``/``models`` install as
``sparseforge.*``), function-level (lazy) imports and ``TYPE_CHECKING`` imports included,
relative imports resolved. Nothing is imported but packages, to find their modules.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import networkx as nx
import pytest

import sparseforge

#: The rank table, bottom to top: (layer, module prefixes, the layers it may import). A module
#: belongs to the layer with its longest matching prefix; it may import its own layer and the
#: layers listed, all of which sit lower in this table.
LAYERS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("errors", ("sparseforge.errors", "sparseforge.progress"), ()),
    ("spec", ("sparseforge.spec",), ("errors",)),
    ("fileio", ("sparseforge.fileio", "sparseforge.cache"), ("errors",)),
    # workloads and golden math: they know nothing of hardware
    ("models", ("sparseforge.models",), ("errors",)),
    # cycle models of the hardware units: the mapper consults them, the simulator composes them
    ("units", ("sparseforge.sim.units",), ("errors", "spec")),
    ("layout", ("sparseforge.dataflow.layout",), ("errors", "spec", "units")),
    ("dataflow", ("sparseforge.dataflow",), ("errors", "spec", "models", "units", "layout")),
    # the RTL reads the spec, the memory layout and the units' constants, never the simulator
    ("hwgen", ("sparseforge.hwgen",), ("errors", "spec", "fileio", "units", "layout")),
    # the simulator never imports the RTL package
    ("sim", ("sparseforge.sim",), ("errors", "spec", "models", "units", "layout", "dataflow")),
    # flows; sparseforge.verify runs the emitted RTL (hwgen) against the golden models and the
    # simulator's cycle models (sim)
    ("flows", ("sparseforge.sweep", "sparseforge.report", "sparseforge.results", "sparseforge.verify"),
     ("errors", "spec", "fileio", "models", "units", "layout", "dataflow", "hwgen", "sim")),
    ("api", ("sparseforge.api",),
     ("errors", "spec", "fileio", "models", "units", "layout", "dataflow", "hwgen", "sim", "flows")),
    ("cli", ("sparseforge.cli",),
     ("errors", "spec", "fileio", "models", "units", "layout", "dataflow", "hwgen", "sim", "flows", "api")),
)
RANK = {name: i for i, (name, _, _) in enumerate(LAYERS)}
ALLOWED = {name: set(allowed) | {name} for name, _, allowed in LAYERS}

#: the design card's folders: importable only as ``sparseforge.<name>``
BARE = frozenset({"models", "sim", "dataflow", "hwgen"})


@dataclass(frozen=True)
class Import:
    source: str        # importing module
    target: str        # imported module (or package)
    line: int
    lazy: bool         # inside a function, or under ``if TYPE_CHECKING``
    text: str          # the statement, for messages

    def __str__(self) -> str:
        where = "lazy import" if self.lazy else "import"
        return f"{self.source} line {self.line}: {where} {self.text!r}"


def _walk(name: str, paths: list[str]) -> dict[str, Path]:
    """The modules of package ``name`` found in ``paths``, read from the file system (no
    package's ``__init__`` runs)."""
    found = {}
    for info in pkgutil.iter_modules(paths):
        full = f"{name}.{info.name}"
        found[full] = Path(info.module_finder.find_spec(full).origin)
        if info.ispkg:
            found.update(_walk(full, [str(found[full].parent)]))
    return found


@lru_cache(maxsize=None)
def project_modules() -> dict[str, Path]:
    """Every module of the installed package: what is found under ``sparseforge`` and, in an
    editable install where they stay in their own folders, under the design card's packages
    (located by the import system, which runs only ``sparseforge/__init__.py``)."""
    mods = {"sparseforge": Path(sparseforge.__file__)}
    mods.update(_walk("sparseforge", list(sparseforge.__path__)))
    for name in sorted(BARE):
        full = f"sparseforge.{name}"
        if full not in mods:
            spec = importlib.util.find_spec(full)
            mods[full] = Path(spec.origin)
            mods.update(_walk(full, list(spec.submodule_search_locations)))
    return mods


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def parse_imports(name: str, path: Path, known: set[str]) -> list[Import]:
    """Every import statement of module ``name``; ``from X import Y`` points at ``X.Y`` when
    that is a module, else at ``X``."""
    source = path.read_text(encoding="utf-8")
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or (
                isinstance(child, ast.If) and _is_type_checking(child))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    out.append(Import(name, alias.name, child.lineno, lazy, ast.get_source_segment(source, child)))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - child.level + 1])
                    mod = f"{base}.{child.module}" if child.module else base
                else:
                    mod = child.module or ""
                text = ast.get_source_segment(source, child)
                for alias in child.names:
                    full = f"{mod}.{alias.name}"
                    out.append(Import(name, full if full in known else mod, child.lineno, lazy, text))
            visit(child, inner)

    visit(ast.parse(source, filename=str(path)), False)
    return out


@lru_cache(maxsize=None)
def project_imports() -> tuple[Import, ...]:
    mods = project_modules()
    known = set(mods)
    return tuple(imp for name, path in sorted(mods.items()) for imp in parse_imports(name, path, known))


def layer_of(module: str) -> str | None:
    best, length = None, -1
    for name, prefixes, _ in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > length:
                best, length = name, len(p)
    return best


def layering_violations(imports) -> list[str]:
    """One line per import that points up the rank table (or at an unranked module)."""
    bad = []
    for imp in imports:
        if "sparseforge" in (imp.source, imp.target) or not imp.target.startswith("sparseforge."):
            continue          # the root package (test_root_package_imports_nothing) or a third party
        src, dst = layer_of(imp.source), layer_of(imp.target)
        if src is None:
            bad.append(f"{imp}: module {imp.source} has no layer in LAYERS")
        elif dst is None:
            bad.append(f"{imp}: {imp.target} has no layer in LAYERS")
        elif dst not in ALLOWED[src]:
            bad.append(f"{imp}: layer {src!r} (rank {RANK[src]}) may not import layer {dst!r} (rank {RANK[dst]}); "
                       f"{src!r} may import {', '.join(sorted(ALLOWED[src] - {src})) or 'nothing of the project'}")
    return bad


def import_graph(imports, modules) -> nx.DiGraph:
    """Module-level imports as they run when a module is first imported: each statement's
    target, and the packages above it whose ``__init__`` runs first (but not the importing
    module's own packages: they are already in ``sys.modules`` when it runs)."""
    g = nx.DiGraph()
    g.add_nodes_from(modules)
    for imp in imports:
        if imp.lazy or not imp.target.startswith("sparseforge"):
            continue
        parts = imp.target.split(".")
        for i in range(1, len(parts) + 1):
            target = ".".join(parts[:i])
            if target in modules and target != imp.source and not imp.source.startswith(target + "."):
                g.add_edge(imp.source, target, line=imp.line, text=imp.text)
    return g


# ---------------------------------------------------------------- the tests
def test_the_walk_finds_every_layer():
    """The walk reaches the modules of every folder (so the checks below see them all)."""
    mods = project_modules()
    for m in ("sparseforge.errors", "sparseforge.spec.hardware", "sparseforge.models.network",
              "sparseforge.sim.units.engine", "sparseforge.dataflow.mapper", "sparseforge.sim.simulate",
              "sparseforge.hwgen.engine", "sparseforge.cli.main"):
        assert m in mods, m
    assert all(layer_of(m) for m in mods if m != "sparseforge"), [m for m in mods if not layer_of(m)]


def test_rank_table_points_down():
    """Every layer may import only layers below it, so the layers themselves have no cycle."""
    for name, _, allowed in LAYERS:
        for a in allowed:
            assert RANK[a] < RANK[name], f"layer {name!r} lists {a!r}, which does not sit below it"


def test_no_import_cycle():
    """No cycle among the module-level imports (a package's ``__init__`` counted as imported
    by every module imported through it)."""
    mods = set(project_modules())
    g = import_graph(project_imports(), mods)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    steps = "; ".join(f"{a} -> {b} (line {g.edges[a, b]['line']}: {g.edges[a, b]['text']!r})" for a, b in cycle)
    pytest.fail(f"import cycle: {steps}")


def test_imports_follow_the_rank_table():
    """Every import, lazy ones included, points down :data:`LAYERS`: nothing imports the CLI
    but the CLI, the API sits below the CLI, the simulator never imports the RTL package, the
    mapper never the simulator, and the units' cycle models only the spec."""
    bad = layering_violations(project_imports())
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_bare_design_card_imports():
    """No module imports ``models``, ``sim``, ``dataflow`` or ``hwgen`` as a top-level name:
    they exist only as ``sparseforge.<name>``."""
    bad = [str(imp) for imp in project_imports() if imp.target.split(".")[0] in BARE]
    assert not bad, "bare imports (use sparseforge.<name>):\n" + "\n".join(bad)


def test_root_package_imports_nothing():
    """``import sparseforge.spec`` (or any low layer) runs ``sparseforge/__init__.py`` first,
    so the root package imports nothing of the project at module level (the API is loaded on
    first use)."""
    bad = [str(imp) for imp in project_imports()
           if imp.source == "sparseforge" and not imp.lazy and imp.target.startswith("sparseforge")]
    assert not bad, "\n".join(bad)


def test_the_checks_catch_a_forbidden_import():
    """The checks fail on the imports they forbid: a lazy import of the simulator in the
    mapper, of the CLI in the API, of the RTL package in the simulator and of anything above
    the spec in a unit model, and a module-level cycle."""
    mods = set(project_modules())
    up = [Import("sparseforge.dataflow.mapper", "sparseforge.sim.simulate", 1, True, "from x import y"),
          Import("sparseforge.api", "sparseforge.cli.kit", 1, True, "from x import y"),
          Import("sparseforge.sim.train", "sparseforge.hwgen.sore", 1, False, "from x import y"),
          Import("sparseforge.sim.units.engine", "sparseforge.models.network", 1, False, "from x import y")]
    bad = layering_violations(up)
    assert len(bad) == 4
    assert bad[0] == ("sparseforge.dataflow.mapper line 1: lazy import 'from x import y': layer 'dataflow' (rank 6) "
                      "may not import layer 'sim' (rank 8); 'dataflow' may import errors, layout, models, spec, "
                      "units")
    g = import_graph(list(project_imports()) + [
        Import("sparseforge.sim.units.engine", "sparseforge.sim.simulate", 1, False, "from x import y")], mods)
    assert not nx.is_directed_acyclic_graph(g)
