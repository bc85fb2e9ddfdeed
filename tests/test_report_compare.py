"""``sparseforge compare`` (sparseforge.report.compare and sparseforge.cli.compare): the
same network on several specs, per layer and in total, with deltas against the first."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sparseforge.cli import main
from sparseforge.models.zoo import get_network
from sparseforge.report import ReportError, compare_specs, write_comparison
from sparseforge.sim.simulate import simulate_network
from sparseforge.spec import load_spec

from .report_data import small_network

ERR = "sparseforge: error: "


def cli(argv: list[str]) -> int:
    return main(argv)


@pytest.fixture(scope="module")
def cmp():
    specs = [load_spec("default"), load_spec("sf-32x32"), load_spec("dense-16x16")]
    return compare_specs(specs, get_network("minilm", tokens=16))


def test_each_spec_runs_its_own_sparsity_and_matches_the_simulator(cmp):
    net = get_network("minilm", tokens=16)
    assert cmp.labels == ("default", "sf-32x32", "dense-16x16")
    assert [r.sparsity for r in cmp.results] == [(2, 4), (2, 4), None]
    for res in cmp.results:
        alone = simulate_network(res.spec, net, res.sparsity)
        assert res.cycles == alone.cycles
    tot = cmp.totals()
    assert tot["cycles"].tolist() == [r.cycles for r in cmp.results]
    assert tot["time_ratio"].tolist() == pytest.approx([1.0] + [r.time_s / cmp.results[0].time_s
                                                                for r in cmp.results[1:]])
    assert tot["cycles_delta"].tolist() == [r.cycles - cmp.results[0].cycles for r in cmp.results]


def test_per_layer_deltas_against_the_first_spec(cmp):
    lay = cmp.layers()
    n = len(cmp.results[0].layers)
    assert len(lay) == 3 * n
    ref = lay[lay["spec"] == "default"].reset_index(drop=True)
    assert (ref["time_ratio"] == 1.0).all() and (ref["cycles_delta"] == 0).all()
    big = lay[lay["spec"] == "sf-32x32"].reset_index(drop=True)
    assert big["cycles_delta"].tolist() == (big["cycles"] - ref["cycles"]).tolist()
    assert big["time_ratio"].tolist() == pytest.approx((big["time_us"] / ref["time_us"]).tolist())
    assert sum(big["cycles"]) == cmp.results[1].cycles


def test_one_sparsity_for_all(cmp):
    specs = [r.spec for r in cmp.results]
    dense = compare_specs(specs, get_network("minilm", tokens=16), None)
    assert [r.sparsity for r in dense.results] == [None, None, None]
    assert {lay.mode for r in dense.results for lay in r.layers} == {"dense"}


def test_text_table_names_every_spec_and_delta(cmp):
    text = cmp.to_text()
    for lab, res in zip(cmp.labels, cmp.results):
        assert res.spec.digest in text
    r1 = cmp.totals().iloc[1]
    assert f"{(r1['time_ratio'] - 1) * 100:+.1f}%" in text
    assert "layer0.ffn.up" in text


def test_writes_csv_json_html_png(tmp_path):
    cmp = compare_specs([load_spec("default"), load_spec("sf-32x32")], small_network())
    [csv] = write_comparison(cmp, tmp_path / "c.csv")
    df = pd.read_csv(csv)
    assert df[df["layer"] == "TOTAL"]["cycles"].tolist() == [r.cycles for r in cmp.results]
    [js] = write_comparison(cmp, tmp_path / "c.json")
    data = json.loads(js.read_text())
    assert data["reference"] == "default" and [s["digest"] for s in data["specs"]] == [r.spec.digest for r in cmp.results]
    html_files = write_comparison(cmp, tmp_path / "c.html")
    assert [p.name for p in html_files] == ["c.html", "c-compare-layers.png", "c-compare-layers.svg",
                                            "c-compare-energy.png", "c-compare-energy.svg"]
    page = html_files[0].read_text()
    assert 'id="compare-layers"' in page and "sf-32x32 / default" in page and "ffn.down" in page
    [png] = write_comparison(cmp, tmp_path / "c.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ReportError, match=r"^--output '.*c\.xlsx' is not allowed: give a file ending in .html, .csv"):
        write_comparison(cmp, tmp_path / "c.xlsx")


def test_cli_compare_prints_the_table(capsys):
    assert cli(["compare", "--hw", "default", "--hw", "sf-32x32", "--net", "minilm", "--tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sparseforge compare: minilm on 2 specs, deltas against default")
    assert load_spec("sf-32x32").digest in out


def test_cli_compare_json_and_output(tmp_path, capsys):
    assert cli(["compare", "--hw", "default", "--hw", "tiny", "--net", "minilm", "--tokens", "8", "--sparsity", "1:4",
                "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["sparsity"] for s in data["specs"]] == ["1:4", "1:4"]
    out = tmp_path / "cmp.csv"
    assert cli(["compare", "--hw", "default", "--hw", "tiny", "--net", "minilm", "--tokens", "8", "-o", str(out)]) == 0
    assert set(pd.read_csv(out)["spec"]) == {"default", "tiny"}


@pytest.mark.parametrize("argv, message", [
    (["--hw", "default"], "--hw given 1 time: compare needs two or more specs (--hw A --hw B)"),
    (["--hw", "default", "--hw", "nope"], "--hw 'nope' is not a known preset: choose one of "),
    (["--hw", "default", "--hw", "tiny", "--sparsity", "4:2"],
     "sparsity 4:2 is not allowed: need integers 1 <= n <= m <= 64"),
    (["--hw", "default", "--hw", "tiny", "--sparsity", "2-4"],
     "--sparsity '2-4' is not allowed: write N:M (e.g. 2:4) or 'dense'"),
    (["--hw", "default", "--hw", "tiny", "--net", "alexnet"], "network 'alexnet' is not known: choose one of "),
    (["--hw", "default", "--hw", "tiny", "-o", "OUT/c.doc"], "--output 'OUT/c.doc' is not allowed: give a file ending in "),
    (["--hw", "default", "--hw", "tiny", "-o", "OUT/c.csv", "--json"],
     "--json is not allowed with --output 'OUT/c.csv': the extension picks the format"),
    (["--hw", "default", "--hw", "tiny", "--net", "resnet50", "--tokens", "8"],
     "--tokens = 8 is not allowed with net 'resnet50': it takes batch"),
])
def test_cli_compare_errors_are_one_line_and_write_nothing(argv, message, tmp_path, capsys):
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    message = message.replace("OUT", str(tmp_path))
    assert cli(["compare", *argv]) == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if not line.startswith("[sparseforge] ")]   # progress lines
    assert out == "" and len(errors) == 1
    assert errors[0].startswith(ERR + message)
    assert list(tmp_path.iterdir()) == []


def test_cli_report_errors(tmp_path, capsys):
    assert cli(["report", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"{ERR}run folder {str(tmp_path / 'none')!r} does not exist: give the folder a sweep wrote (runs/NAME)"
    assert cli(["report", str(tmp_path), "--best", "-1"]) == 2
    assert capsys.readouterr().err.strip() == f"{ERR}--best -1 is not allowed: must be >= 0"
