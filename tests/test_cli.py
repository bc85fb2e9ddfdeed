"""Tests of the ``sparseforge`` command line (sparseforge.cli): the commands run in-process
through ``main([...])``, which returns the exit status; user mistakes print one line
``sparseforge: error: ...`` on stderr and exit 2. One test runs the installed console
script in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparseforge.hwgen.emit import DESIGNS
from sparseforge.cli import main
from sparseforge.spec import list_presets, load_spec

DATA = Path(__file__).parent / "data" / "spec"
ERR = "sparseforge: error: "


def _tree(root: Path) -> list[str]:
    """Every path under ``root`` (relative), sorted: a snapshot to compare before and after."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _one_error_line(capsys) -> str:
    """The single stderr line of a failed command, without the prefix; stdout must be empty."""
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(ERR), err
    return lines[0][len(ERR):]


# ------------------------------------------------------------------ presets
def test_presets_lists_every_preset(capsys):
    """`presets` prints one line per preset: name, shape, N:M, [digest], description."""
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    presets = list_presets()
    assert len(lines) == len(presets)
    for line, (name, desc) in zip(lines, presets.items()):
        s = load_spec(name)
        assert line.split()[0] == name
        assert f"{s.rows}x{s.cols} {s.n}:{s.m}" in line
        assert f"[{s.digest}]" in line
        assert line.endswith(desc)


def test_presets_json(capsys):
    """`presets --json` maps every preset to its record (spec, digest, derived values)."""
    assert main(["presets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == list(list_presets())
    for name, rec in data.items():
        assert rec == json.loads(json.dumps(load_spec(name).record()))


# ------------------------------------------------------------------ simulate
def test_simulate_resnet50_json(capsys):
    """`simulate --net resnet50 --json` prints per-layer results, totals, the dense
    comparison with its speedup, and the spec with its digest."""
    assert main(["simulate", "--net", "resnet50", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    spec = load_spec("default")
    assert data["network"] == "resnet50"
    assert data["sparsity"] == "2:4"
    assert data["digest"] == spec.digest
    assert data["spec"] == json.loads(json.dumps(spec.to_dict()))
    assert data["derived"]["acc_width"] == spec.acc_width
    assert len(data["layers"]) == 54                        # 53 convolutions + fc
    assert data["layers"][0]["name"] == "conv1" and data["layers"][-1]["name"] == "fc"
    assert data["totals"]["cycles"] == sum(lay["cycles"] for lay in data["layers"])
    assert data["dense"]["totals"]["cycles"] == sum(lay["cycles"] for lay in data["dense"]["layers"])
    assert data["speedup_over_dense"] == data["dense"]["totals"]["cycles"] / data["totals"]["cycles"]
    assert data["speedup_over_dense"] > 1.0
    assert all(lay["mode"] == "dense" for lay in data["dense"]["layers"])


def test_simulate_minilm_text_without_dense(capsys):
    """`simulate --net minilm --no-dense` prints a table with a total and no dense line."""
    assert main(["simulate", "--net", "minilm", "--no-dense", "--tokens", "32"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sparseforge simulate: minilm (32 tokens), weights 2:4\n")
    assert "total:" in out
    assert "layer5.ffn.down" in out
    assert "dense on the same array" not in out


def test_simulate_minilm_text_with_dense(capsys):
    """Without --no-dense the text report ends with the dense comparison and a speedup."""
    assert main(["simulate", "--tokens", "16"]) == 0
    last = capsys.readouterr().out.rstrip("\n").splitlines()[-1]
    assert last.startswith("dense on the same array: ")
    assert "speedup" in last


def test_simulate_dense_sparsity_on_dense_preset(capsys):
    """On the dense preset the default sparsity is dense; every layer runs dense."""
    assert main(["simulate", "--hw", "dense-16x16", "--json", "--no-dense", "--tokens", "16"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sparsity"] == "dense"
    assert {lay["mode"] for lay in data["layers"]} == {"dense"}
    assert "dense" not in data and "speedup_over_dense" not in data


def test_simulate_with_toml_file_and_set(capsys):
    """--hw takes a TOML file; --set overrides apply on top; JSON records the result."""
    assert main(["simulate", "--hw", str(DATA / "small.toml"), "--set", "clock_mhz=100",
                 "--json", "--no-dense", "--tokens", "16"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["spec"]["name"] == "small"
    assert (data["spec"]["rows"], data["spec"]["cols"], data["spec"]["clock_mhz"]) == (8, 4, 100.0)
    assert data["digest"] == load_spec(str(DATA / "small.toml"), ["clock_mhz=100"]).digest


def test_simulate_output_file(tmp_path, capsys):
    """`simulate -o FILE` writes the report to FILE (creating folders), not to stdout."""
    target = tmp_path / "sub" / "report.json"
    assert main(["simulate", "--json", "--no-dense", "--tokens", "16", "-o", str(target)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"[sparseforge] wrote {target}\n"
    assert json.loads(target.read_text())["network"] == "minilm"
    assert _tree(tmp_path) == ["sub", "sub/report.json"]          # no temporary file left behind


def test_simulate_output_file_not_created_on_error(tmp_path, capsys):
    """A failing `simulate -o FILE` creates neither FILE nor anything else."""
    target = tmp_path / "report.txt"
    assert main(["simulate", "--set", "rows=0", "-o", str(target)]) == 2
    assert _one_error_line(capsys) == "rows = 0 is not allowed: must be a positive integer"
    assert not target.exists()
    assert _tree(tmp_path) == []


@pytest.mark.parametrize("argv, message", [
    (["--hw", "nosuch"],
     f"--hw 'nosuch' is not a known preset: choose one of {', '.join(list_presets())} or give a .toml file"),
    (["--set", "bogus=1"],
     "unknown field 'bogus' in --set: allowed fields are act_width, clock_mhz, cols, dataflow, description, "
     "double_buffer, dram_bandwidth_gbps, dram_latency_ns, e_dram_pj_per_byte, e_mac_pj, e_sram_pj_per_byte, "
     "input_buffer_kib, m, max_k, n, name, output_buffer_kib, rows, weight_buffer_kib, weight_width; sections moe.*, spgemm.*, train.*"),
    (["--set", "rows=0"], "rows = 0 is not allowed: must be a positive integer"),
    (["--set", "n=5"], "n = 5 is not allowed with m = 4: N:M sparsity needs 1 <= n <= m"),
    (["--set", "rows"], "--set 'rows' is not allowed: write key=value"),
    (["--set", "clock_mhz=fast"], "--set clock_mhz='fast' is not allowed: clock_mhz must be of type float"),
    (["--sparsity", "3:2"], "sparsity 3:2 is not allowed: need integers 1 <= n <= m <= 64"),
    (["--sparsity", "abc"], "--sparsity 'abc' is not allowed: write N:M (e.g. 2:4) or 'dense'"),
    (["--sparsity", "2:4:8"], "--sparsity '2:4:8' is not allowed: write N:M (e.g. 2:4) or 'dense'"),
    (["--net", "nosuch"], "network 'nosuch' is not known: choose one of minilm, resnet50"),
    (["--tokens", "0"], "--tokens = 0 is not allowed: must be >= 1"),
    (["--tokens", "-3"], "--tokens = -3 is not allowed: must be >= 1"),
    (["--tokens", "513"], "minilm_network: tokens = 513 is not allowed: must be an integer in 1..512"),
    (["--net", "resnet50", "--batch", "0"], "--batch = 0 is not allowed: must be >= 1"),
    (["--net", "resnet50", "--functional"],
     "--functional needs real weights: only --net minilm has them, not 'resnet50'"),
    (["--net", "resnet50", "--set", "weight_buffer_kib=1"],
     "layer conv1: one weight tile needs 640 bytes but weight_buffer_kib = 1 gives 512 per buffer: "
     "raise weight_buffer_kib"),
    (["--net", "resnet50", "--set", "max_k=100"],
     "layer conv1: K = 147 exceeds max_k = 100 (the accumulator is sized for max_k products): raise max_k"),
])
def test_simulate_user_errors(argv, message, capsys):
    """Each bad input exits 2 with exactly one stderr line naming the field and value."""
    assert main(["simulate", *argv]) == 2
    assert _one_error_line(capsys) == message


def test_simulate_missing_hw_file(tmp_path, capsys):
    """--hw naming a TOML file that does not exist exits 2 naming the path."""
    missing = tmp_path / "file.toml"
    assert main(["simulate", "--hw", str(missing)]) == 2
    assert _one_error_line(capsys) == f"--hw '{missing}': no such file"


def test_simulate_malformed_toml(capsys):
    """A malformed TOML file exits 2 with one line naming the file."""
    path = DATA / "malformed.toml"
    assert main(["simulate", "--hw", str(path)]) == 2
    assert _one_error_line(capsys).startswith(f"{path} is not valid TOML: ")


def test_simulate_unknown_key_in_toml(capsys):
    """A TOML file with an unknown key exits 2 naming the key and the file."""
    path = DATA / "unknown_key.toml"
    assert main(["simulate", "--hw", str(path)]) == 2
    assert _one_error_line(capsys).startswith(f"unknown field 'lanes' in {path}: allowed fields are ")


def test_argparse_errors_exit_2(capsys):
    """Malformed command lines (argparse) also exit with status 2."""
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--tokens", "many"])
    assert info.value.code == 2
    assert "--tokens: invalid int value: 'many'" in capsys.readouterr().err


def test_simulate_infinite_clock_is_a_user_error(capsys):
    """A non-finite clock is a user mistake: exit 2, one line."""
    assert main(["simulate", "--set", "clock_mhz=inf"]) == 2
    assert _one_error_line(capsys).startswith("clock_mhz = inf is not allowed")


# ------------------------------------------------------------------ generate
def test_generate_array(tmp_path, capsys):
    """`generate --design array --name x` writes OUT/x/{sf_array.v, manifest.json}, the
    manifest carrying the spec and its digest."""
    out = tmp_path / "out"
    assert main(["generate", "--hw", "tiny", "--design", "array", "--out", str(out), "--name", "x"]) == 0
    stdout = capsys.readouterr().out
    spec = load_spec("tiny")
    assert _tree(out) == ["x", "x/manifest.json", "x/sf_array.v"]
    manifest = json.loads((out / "x" / "manifest.json").read_text())
    assert manifest["digest"] == spec.digest
    assert manifest["spec"] == json.loads(json.dumps(spec.to_dict()))
    assert (manifest["design"], manifest["kind"], manifest["top"], manifest["files"]) == \
        ("x", "array", "sf_array", ["sf_array.v"])
    assert "module sf_array" in (out / "x" / "sf_array.v").read_text()
    assert f"wrote {out / 'x'}/ : sf_array.v" in stdout
    assert f"[{spec.digest}]" in stdout


def test_generate_pe_json_overwrites(tmp_path, capsys):
    """`generate --json` prints the path and manifest; generating again replaces the folder."""
    out = tmp_path / "out"
    argv = ["generate", "--hw", "tiny", "--design", "pe", "--out", str(out), "--name", "p", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["path"] == str((out / "p").resolve())
    assert first["top"] == "sf_pe"
    assert main(argv[:-1] + ["--set", "weight_width=4"]) == 0
    capsys.readouterr()
    assert _tree(out) == ["p", "p/manifest.json", "p/sf_pe.v"]
    assert json.loads((out / "p" / "manifest.json").read_text())["spec"]["weight_width"] == 4


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", ".hidden", "x/../../y"])
def test_generate_refuses_escaping_names(name, tmp_path, capsys):
    """A --name that is not a plain folder name exits 2 and writes nothing anywhere."""
    out = tmp_path / "out"
    out.mkdir()
    before = _tree(tmp_path)
    assert main(["generate", "--hw", "tiny", "--design", "pe", "--out", str(out), "--name", name]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (f"{ERR}design name {name!r} is not allowed: use letters, digits, '_' and '-', "
                       "starting with a letter (at most 64 characters)")
    assert sum(line.startswith(ERR) for line in err) == 1
    assert _tree(tmp_path) == before


def test_generate_unknown_design(tmp_path, capsys):
    """--design outside engine/array/pe exits 2 with one line and writes nothing."""
    assert main(["generate", "--design", "nosuch", "--out", str(tmp_path / "out")]) == 2
    assert _one_error_line(capsys) == f"--design 'nosuch' is not allowed: choose one of {', '.join(DESIGNS)}"
    assert _tree(tmp_path) == []


def test_generate_bad_spec(tmp_path, capsys):
    """Spec errors stop `generate` before anything is written."""
    assert main(["generate", "--set", "cols=-2", "--out", str(tmp_path / "out")]) == 2
    assert _one_error_line(capsys) == "cols = -2 is not allowed: must be a positive integer"
    assert _tree(tmp_path) == []


# ------------------------------------------------------------------ synth
def test_synth_without_manifest(tmp_path, capsys):
    """`synth` on a folder without manifest.json exits 2 with one line."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["synth", str(empty), "--no-ecp5"]) == 2
    assert _one_error_line(capsys) == (f"design {str(empty)!r}: no manifest.json in {empty} "
                                       "(run `sparseforge generate` first, or give the design folder)")
    assert _tree(tmp_path) == ["empty"]


def test_synth_unknown_design_name(tmp_path, capsys):
    """`synth NAME` looks for OUT/NAME; a missing design exits 2 naming that path."""
    assert main(["synth", "nodesign", "--out", str(tmp_path), "--no-ecp5"]) == 2
    assert _one_error_line(capsys) == (f"design 'nodesign': no manifest.json in {tmp_path / 'nodesign'} "
                                       "(run `sparseforge generate` first, or give the design folder)")


# ------------------------------------------------------------------ console script
def test_console_script_user_error(tmp_path):
    """The installed `sparseforge` script exits 2 on a bad --set with one stderr line and
    no traceback."""
    script = Path(sys.executable).parent / "sparseforge"
    assert script.is_file()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([str(script), "simulate", "--set", "rows=-1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"{ERR}rows = -1 is not allowed: must be a positive integer"]
    assert "Traceback" not in proc.stderr
