"""Tests of the public Python API (sparseforge.api, re-exported by ``import sparseforge``):
the examples of docs/api.md run as doctests; each function's result has to_dict (the CLI's
JSON, JSON-safe), to_pandas (one row per layer / dataflow / schedule / port), to_text and
_repr_html_; user mistakes raise InputError subclasses; ``import sparseforge`` stays light."""

from __future__ import annotations

import doctest
import json
import math
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import sparseforge as sf
from sparseforge.api import UserError
from sparseforge.cli import main
from sparseforge.errors import InputError
from sparseforge.models.network import GemmLayer, Network
from sparseforge.results import Totals, plain
from sparseforge.spec import HardwareSpec, SpecError, load_spec

ROOT = Path(__file__).resolve().parent.parent
SPEC_DATA = Path(__file__).parent / "data" / "spec"
TOY = Network(name="toy", layers=[GemmLayer(name="fc1", tokens=32, k=64, n_out=32),
                                  GemmLayer(name="fc2", tokens=32, k=32, n_out=16)])


def _cli_json(argv: list[str], capsys) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


# ------------------------------------------------------------------ the package
def test_docs_api_examples(tmp_path, monkeypatch):
    """Every ``>>>`` example of docs/api.md runs and prints what the page says."""
    monkeypatch.chdir(tmp_path)
    res = doctest.testfile(str(ROOT / "docs" / "api.md"), module_relative=False,
                           optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 40
    assert res.failed == 0


def test_import_is_light_and_exports_the_api():
    """`import sparseforge` loads no NumPy, pandas, SciPy or Amaranth; the public names
    resolve on first use (load_spec still needs none of them)."""
    code = ("import sys, sparseforge as sf\n"
            "heavy = lambda: sorted({m.split('.')[0] for m in sys.modules}\n"
            "                       & {'numpy', 'pandas', 'scipy', 'amaranth'})\n"
            "print(heavy())\n"
            "sf.load_spec('tiny', rows=2)\n"
            "print(heavy())\n"
            "print(all(callable(getattr(sf, n)) for n in ('load_spec', 'simulate', 'simulate_training', 'spgemm', "
            "'simulate_moe', 'generate', 'synth')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "[]", "True"]


def test_version_and_unknown_attribute():
    """__version__ is the installed distribution's version; unknown names raise AttributeError."""
    assert sf.__version__ == version("sparseforge")
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        sf.nosuch  # noqa: B018
    assert {"simulate", "generate", "__version__"} <= set(dir(sf))


# ------------------------------------------------------------------ load_spec
def test_load_spec_typed_overrides_equal_set_strings():
    """Keyword overrides (plain, dotted and as a section table) give the same spec, name and
    digest as the CLI's --set strings; ints given for float fields become floats."""
    typed = sf.load_spec("default", rows=8, clock_mhz=250, **{"spgemm.pes": 4})
    table = sf.load_spec("default", rows=8, clock_mhz=250, spgemm={"pes": 4})
    text = load_spec("default", ["rows=8", "clock_mhz=250", "spgemm.pes=4"])
    assert typed == table == text
    assert typed.digest == text.digest
    assert isinstance(typed.clock_mhz, float)
    assert typed.name == "default-rows8-clock_mhz250-spgemm_pes4"


def test_load_spec_sources():
    """A TOML path (str or Path), a HardwareSpec and None all work; assignments apply first."""
    assert sf.load_spec(SPEC_DATA / "small.toml") == load_spec(str(SPEC_DATA / "small.toml"))
    base = HardwareSpec(rows=8)
    assert sf.load_spec(base) is base
    assert sf.load_spec(None) == load_spec("default")
    s = sf.load_spec("tiny", ["rows=8"], cols=8)
    assert (s.rows, s.cols) == (8, 8)


@pytest.mark.parametrize("kwargs, message", [
    ({"rows": 0}, "rows = 0 is not allowed: must be 1..512 PEs"),
    ({"rows": 32.5}, "rows = 32.5 is not allowed: must be of type int"),
    ({"clock_mhz": math.inf}, "clock_mhz = inf is not allowed: must be a finite number"),
    ({"lanes": 4}, "unknown field 'lanes' in the load_spec overrides: allowed fields are act_width, "),
    ({"spgemm.bogus": 1}, "unknown field spgemm.bogus in the load_spec overrides: allowed fields are "),
    ({"spgemm": 3}, "spgemm in the load_spec overrides must be a table of fields, not 3"),
])
def test_load_spec_bad_overrides(kwargs, message):
    """Typed overrides are validated like --set: a SpecError (an InputError) naming the field."""
    with pytest.raises(SpecError) as info:
        sf.load_spec("tiny", **kwargs)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, InputError)


def test_load_spec_bad_source():
    """Something that is neither a preset, a path nor a spec is a UserError."""
    with pytest.raises(UserError, match=r"^hw = 3 is not allowed"):
        sf.load_spec(3)


# ------------------------------------------------------------------ --set marking (spec.hardware)
def test_overrides_mark_name_and_description():
    """A spec changed by overrides is renamed after the changed fields and its description says
    which; the digest is the digest of the same hardware built directly."""
    s = load_spec("tiny", ["rows=2", "clock_mhz=250.5", "spgemm.pes=8"])
    assert s.name == "tiny-rows2-clock_mhz250p5-spgemm_pes8"
    assert s.description == (load_spec("tiny").description
                             + " [overridden: rows=2, clock_mhz=250.5, spgemm.pes=8]")
    direct = load_spec("tiny").replace(rows=2, clock_mhz=250.5, spgemm=load_spec("tiny").spgemm.__class__(pes=8))
    assert s.digest == direct.digest


def test_overrides_marking_rule_edges():
    """Unchanged values keep the preset's name; a name or description set by the overrides
    is kept; a long list becomes <preset>-set-<digest prefix>; every name is design-folder safe."""
    assert load_spec("tiny", ["rows=4"]).name == "tiny"
    mine = load_spec("tiny", ["name=mine", "rows=8"])
    assert mine.name == "mine" and mine.description.endswith("[overridden: rows=8]")
    kept = load_spec("tiny", ["description=my chip", "rows=8"])
    assert kept.description == "my chip" and kept.name == "tiny-rows8"
    long = load_spec("default", ["rows=2", "cols=3", "n=1", "m=2", "clock_mhz=100", "max_k=1024"])
    assert long.name == f"default-set-{long.digest[:8]}"
    import re
    for s in (long, load_spec("tiny", ["dram_bandwidth_gbps=1e-3", "dataflow=output-stationary"])):
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]{0,40}", s.name), s.name


# ------------------------------------------------------------------ simulate
def test_simulate_result_views(capsys):
    """total, speedup, to_dict (= the CLI's --json), to_pandas (one row per layer with the
    dense comparison), to_text (= the CLI's text) and _repr_html_ agree with each other."""
    res = sf.simulate("tiny", tokens=16)
    assert res.total.cycles == res.sparse.cycles == sum(lay.cycles for lay in res.layers)
    assert res.speedup == res.dense.cycles / res.sparse.cycles
    data = res.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data == _cli_json(["simulate", "--hw", "tiny", "--tokens", "16", "--json"], capsys)
    df = res.to_pandas()
    assert list(df["name"]) == [lay.name for lay in res.layers]
    assert list(df["cycles"]) == [lay.cycles for lay in res.layers]
    assert list(df["dense_cycles"]) == [lay.cycles for lay in res.dense.layers]
    assert df["speedup"].tolist() == pytest.approx([d.cycles / s.cycles for s, d in zip(res.layers, res.dense.layers)])
    assert {"energy_pj_mac", "energy_pj_sram", "energy_pj_dram"} <= set(df.columns)
    assert main(["simulate", "--hw", "tiny", "--tokens", "16"]) == 0
    assert capsys.readouterr().out == res.to_text() + "\n"
    html = res._repr_html_()
    assert html.count("<tr>") >= len(res.layers) and "layer5.ffn.down" in html
    assert f"{res.total.cycles} cycles" in html and f"speedup {res.speedup:.2f}x" in html


def test_simulate_network_object_and_no_dense():
    """A Network object runs as given; dense=False drops the comparison and its columns."""
    res = sf.simulate("default", TOY, sparsity=(2, 4), dense=False)
    assert res.network == "toy" and res.sparsity == "2:4" and res.dense is None and res.speedup is None
    assert "dense" not in res.to_dict() and "dense_cycles" not in res.to_pandas().columns
    assert len(res.to_pandas()) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"sparsity": "abc"}, "sparsity 'abc' is not allowed: write N:M (e.g. 2:4) or 'dense'"),
    ({"sparsity": 3}, "sparsity = 3 is not allowed"),
    ({"sparsity": "3:2"}, "sparsity 3:2 is not allowed: need integers 1 <= n <= m <= 64"),
    ({"net": "nosuch"}, "network 'nosuch' is not known: choose one of bert_base, minilm, mobilenetv2, resnet18, resnet50, vgg16, vit_m3vit, vit_s16"),
    ({"net": "m3vit-small"}, "net 'm3vit-small' is an MoE network: simulate it with simulate_moe"),
    ({"net": "resnet50", "tokens": 16}, "tokens = 16 is not allowed with net 'resnet50': it takes batch"),
    ({"net": "minilm", "batch": 2}, "batch = 2 is not allowed with net 'minilm': it takes tokens"),
    ({"tokens": 513}, "minilm_network: tokens = 513 is not allowed"),
    ({"net": "resnet50", "functional": True}, "functional needs real weights: only minilm has them"),
    ({"text": "some prose"}, "text and weights are used by functional=True"),
    ({"net": "minilm", "onnx": "x.onnx"}, "net 'minilm' is not allowed with onnx"),
    ({"onnx": "/nonexistent/x.onnx"}, "onnx /nonexistent/x.onnx: "),
    ({"input_shapes": {"x": [1]}}, "input_shapes is only for onnx networks"),
])
def test_simulate_errors_are_input_errors(kwargs, message):
    """Each mistake raises an InputError subclass whose message starts by naming it."""
    with pytest.raises(InputError) as info:
        sf.simulate("tiny", **kwargs)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_simulate_spec_argument_checked():
    """The spec must be a HardwareSpec, a preset name or a path."""
    with pytest.raises(UserError, match=r"^spec = 42 is not allowed"):
        sf.simulate(42)


# ------------------------------------------------------------------ training
def test_simulate_training_views():
    """The training result's dict is the CLI's JSON layout; to_pandas has one row per layer;
    the ablations rerun each enabled option off; speedup is dense over sparse cycles."""
    res = sf.simulate_training("sat-vcu1525", TOY, method="bdwp", sparsity="2:8")
    data = res.to_dict()
    assert list(data)[:6] == ["network", "batch", "method", "sparsity", "interleave", "pregenerate"]
    assert data["totals"]["cycles"] == res.total.cycles == res.result.cycles
    assert data["speedup_over_dense"] == res.speedup == res.dense.cycles / res.result.cycles
    assert set(res.cycles_without) == {"pregenerate", "interleave"}
    df = res.to_pandas()
    assert list(df["name"]) == ["fc1", "fc2"] and list(df["ff_cycles"]) == [lay.ff.cycles for lay in res.layers]
    only = sf.simulate_training("sat-vcu1525", TOY, method="bdwp", sparsity="2:8", dense=False, ablations=False,
                                interleave=False)
    assert only.dense is None and only.cycles_without == {} and not only.result.interleave
    assert "fc2" in res._repr_html_() and res.to_text().startswith("sparseforge simulate --train: toy")


def test_simulate_training_errors():
    """A sparse method without N:M, an unknown network or method: InputError subclasses."""
    with pytest.raises(InputError, match=r"needs an N:M sparsity"):
        sf.simulate_training("sat-vcu1525", TOY, method="srste", sparsity="dense")
    with pytest.raises(InputError, match=r"^training network 'nosuch' is not known"):
        sf.simulate_training("sat-vcu1525", "nosuch")
    with pytest.raises(InputError, match=r"^method 'fast' is not allowed"):
        sf.simulate_training("sat-vcu1525", TOY, method="fast", sparsity="2:8")


# ------------------------------------------------------------------ spgemm
def test_spgemm_views():
    """One row per dataflow with m, k, n columns; checks against SciPy; to_dict JSON-safe."""
    import scipy.sparse as sp

    a = sp.random(30, 30, density=0.1, random_state=1, format="csr")
    res = sf.spgemm("default", a, dataflow="all")
    df = res.to_pandas()
    assert list(df["label"]) == [r.label for r in res.results]
    assert list(df["cycles"]) == [r.cycles for r in res.results]
    assert set(df[["m", "k", "n"]].itertuples(index=False)) == {(30, 30, 30)}
    assert set(res.checks.values()) <= {"exact", "rtol 1e-12"}
    assert res.nnz_c == (a @ a).nnz
    json.dumps(res.to_dict(), allow_nan=False)
    assert res.result("inner").dataflow == "inner"
    assert res.speedup["inner"]["outer"] == res.result("outer").cycles / res.result("inner").cycles
    with pytest.raises(KeyError):
        res.result("gustavson")


def test_spgemm_errors():
    """A bad dataflow or matrix names the argument (the CLI turns it into --dataflow / --a)."""
    with pytest.raises(UserError) as info:
        sf.spgemm("default", "illc1850", dataflow="gustavson")
    assert str(info.value).startswith("dataflow 'gustavson' is not allowed") and info.value.param == "dataflow"
    with pytest.raises(UserError) as info:
        sf.spgemm("default", "no_such_matrix")
    assert str(info.value).startswith("a: ") and info.value.param == "a"
    with pytest.raises(InputError, match="not square"):
        sf.spgemm("default", "illc1850")


# ------------------------------------------------------------------ MoE
def test_simulate_moe_views_and_routing_replay(tmp_path):
    """One row per schedule; a saved routing replays to the same totals; JSON-safe dict."""
    res = sf.simulate_moe("m3vit-zcu104", tasks="seg,depth", frames=2, tokens=33, routing="synthetic",
                          schedule=("naive", "reorder"))
    df = res.to_pandas()
    assert list(df["schedule"]) == ["naive", "reorder"]
    assert list(df["cycles"]) == [res.totals(s).cycles for s in ("naive", "reorder")]
    data = res.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["routing_stats"]["source"] == "synthetic"
    path = tmp_path / "r.npz"
    res.save_routing(path)
    again = sf.simulate_moe("m3vit-zcu104", tokens=33, routing=path, schedule=("naive", "reorder"))
    assert again.to_pandas().equals(df)
    assert "reorder" in res._repr_html_()


@pytest.mark.parametrize("kwargs, message", [
    ({"routing": "synthetic", "zipf": math.inf}, "zipf = inf is not allowed: must be a finite number >= 0"),
    ({"routing": "synthetic", "seed": -1}, "seed = -1 is not allowed: must be an integer >= 0"),
    ({"routing": "synthetic", "tasks": ""}, "tasks '' is not allowed"),
    ({"routing": "synthetic", "tasks": "seg,video"}, "tasks: task 'video' has no router"),
    ({"routing": "synthetic", "frames": 0}, "frames = 0 is not allowed"),
    ({"routing": "synthetic", "schedule": "lifo"}, "schedule 'lifo' is not allowed"),
    ({"routing": "some/file.npz"}, "routing = 'some/file.npz' is not allowed"),
    ({"routing": "synthetic", "top_k": 20}, "net 'm3vit-small': top_k = 20 is not allowed with experts = 16"),
])
def test_simulate_moe_errors(kwargs, message):
    """MoE arguments are checked before any simulation: InputError subclasses."""
    with pytest.raises(InputError) as info:
        sf.simulate_moe("m3vit-zcu104", tokens=33, **kwargs)
    assert str(info.value).startswith(message), str(info.value)


# ------------------------------------------------------------------ RTL
def test_generate_result(tmp_path):
    """generate returns the design folder and its manifest; one row per port; errors before
    any work for a bad design or name."""
    res = sf.generate("tiny", design="pe", out=tmp_path, name="p")
    assert res.path == (tmp_path / "p").resolve() and Path(res) == res.path
    manifest = json.loads((res.path / "manifest.json").read_text())
    assert res.to_dict() == {"path": str(res.path), **manifest}
    assert res.to_pandas().to_dict("records") == manifest["ports"]
    assert res.files == [res.path / "sf_pe.v"] and res.digest == load_spec("tiny").digest
    assert "sf_pe" in res._repr_html_()
    with pytest.raises(UserError, match=r"^design 'nosuch' is not allowed"):
        sf.generate("tiny", design="nosuch", out=tmp_path)
    with pytest.raises(InputError, match=r"^design name '\.\./x' is not allowed"):
        sf.generate("tiny", design="pe", out=tmp_path, name="../x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_synth_refuses_a_folder_without_manifest(tmp_path):
    """synth checks the design folder before any tool runs."""
    with pytest.raises(UserError, match=r"no manifest.json in"):
        sf.synth(tmp_path)


def test_synth_result_views(tmp_path):
    """SynthResult's views come from synth.json's data (no tool run: the data is given)."""
    data = {"top": "sf_pe", "files": ["sf_pe.v"],
            "xilinx_xcup": {"lut": 10, "ff": 20, "dsp": 1, "bram36": 0.0, "lutram": 0},
            "ecp5": {"device": "25k", "fits": True, "nodsp": False, "fmax_mhz": {"clk": 123.4},
                     "utilization": {"TRELLIS_COMB": [5, 24288]}}}
    res = sf.SynthResult(path=tmp_path / "d", data=data)
    assert res.to_dict() == data
    assert list(res.to_pandas()["target"]) == ["xilinx_xcup", "ecp5"]
    text = res.to_text()
    assert "10 LUT, 20 FF, 1 DSP48E2" in text and "Fmax clk 123.4 MHz; TRELLIS_COMB 5/24288" in text


# ------------------------------------------------------------------ helpers
def test_totals_mapping_and_attributes():
    """Totals: keys are attributes; read-only; a missing name lists the known ones."""
    t = Totals({"cycles": 3, "time_ms": 0.5})
    assert t.cycles == t["cycles"] == 3 and dict(t) == {"cycles": 3, "time_ms": 0.5}
    with pytest.raises(AttributeError, match="the totals are cycles, time_ms"):
        t.energy  # noqa: B018
    with pytest.raises(AttributeError):
        t.cycles = 4


def test_plain_makes_numpy_json_safe():
    """plain() turns NumPy scalars and arrays, tuples and paths into JSON types."""
    import numpy as np

    data = plain({"a": np.int64(3), "b": np.float32(0.5), "c": np.arange(3), "d": (1, Path("x")),
                  "e": {"f": np.bool_(True)}})
    assert data == {"a": 3, "b": 0.5, "c": [0, 1, 2], "d": [1, "x"], "e": {"f": True}}
    assert json.loads(json.dumps(data)) == data
    with pytest.raises(TypeError):
        plain({"x": object()})


def test_load_network_sizes():
    """load_network applies each network's own size keyword and its default."""
    api = sf.api
    assert api.load_network("minilm").layers[0].tokens == 128
    assert api.load_network("minilm", tokens=16).layers[0].tokens == 16
    r1, r2 = api.load_network("resnet50"), api.load_network("resnet50", batch=2)
    assert r2.layers[0].tokens == 2 * r1.layers[0].tokens
    assert api.load_network("resnet18", training=True, batch=4).name == "resnet18"
