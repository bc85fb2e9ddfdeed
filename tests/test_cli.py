"""Tests of the ``sparseforge`` command line (sparseforge.cli): the commands run in-process
through ``main([...])``, which returns the exit status; user mistakes print one line
``sparseforge: error: ...`` on stderr and exit 2. One test runs the installed console
script in a subprocess."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparseforge.cli import main
from sparseforge.hwgen.emit import DESIGNS
from sparseforge.hwgen.handoff import handoff_names
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
    assert data["spec"]["name"] == "small-clock_mhz100"              # --set marks the name ...
    assert data["spec"]["description"].endswith("[overridden: clock_mhz=100.0]")   # ... and the description
    assert (data["spec"]["rows"], data["spec"]["cols"], data["spec"]["clock_mhz"]) == (8, 4, 100.0)
    assert data["digest"] == load_spec(str(DATA / "small.toml"), ["clock_mhz=100"]).digest


def test_simulate_output_file(tmp_path, capsys):
    """`simulate -o FILE` writes the report to FILE (creating folders), not to stdout."""
    target = tmp_path / "sub" / "report.json"
    assert main(["simulate", "--json", "--no-dense", "--tokens", "16", "-o", str(target)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    # the default preset's clock is an assumption on its UltraScale+ part: one warning line
    check = json.loads(target.read_text())["clock"]
    assert err == f"[sparseforge] wrote {target}\nsparseforge: warning: {check['warning']}\n"
    assert json.loads(target.read_text())["network"] == "minilm"
    assert _tree(tmp_path) == ["sub", "sub/report.json"]          # no temporary file left behind


def test_simulate_output_file_not_created_on_error(tmp_path, capsys):
    """A failing `simulate -o FILE` creates neither FILE nor anything else."""
    target = tmp_path / "report.txt"
    assert main(["simulate", "--set", "rows=0", "-o", str(target)]) == 2
    assert _one_error_line(capsys) == "rows = 0 is not allowed: must be 1..512 PEs"
    assert not target.exists()
    assert _tree(tmp_path) == []


@pytest.mark.parametrize("argv, message", [
    (["--hw", "nosuch"],
     f"--hw 'nosuch' is not a known preset: choose one of {', '.join(list_presets())} or give a .toml file"),
    (["--set", "bogus=1"],
     "unknown field 'bogus' in --set: allowed fields are act_width, clock_mhz, clock_source, cols, dataflow, "
     "description, double_buffer, dram_bandwidth_gbps, dram_latency_ns, e_dram_pj_per_byte, e_mac_pj, "
     "e_sram_pj_per_byte, fold_overlap, input_buffer_kib, m, max_k, n, name, output_buffer_kib, part, rows, "
     "weight_buffer_kib, weight_width; sections moe.*, spgemm.*, train.*"),
    (["--set", "rows=0"], "rows = 0 is not allowed: must be 1..512 PEs"),
    (["--set", "n=5"], "n = 5 is not allowed with m = 4: N:M sparsity needs 1 <= n <= m"),
    (["--set", "rows"], "--set 'rows' is not allowed: write key=value"),
    (["--set", "clock_mhz=fast"], "--set clock_mhz='fast' is not allowed: clock_mhz must be of type float"),
    (["--sparsity", "3:2"], "sparsity 3:2 is not allowed: need integers 1 <= n <= m <= 64"),
    (["--sparsity", "abc"], "--sparsity 'abc' is not allowed: write N:M (e.g. 2:4) or 'dense'"),
    (["--sparsity", "2:4:8"], "--sparsity '2:4:8' is not allowed: write N:M (e.g. 2:4) or 'dense'"),
    (["--net", "nosuch"], "network 'nosuch' is not known: choose one of bert_base, minilm, mobilenetv2, resnet18, resnet50, vgg16, vit_m3vit, vit_s16"),
    (["--tokens", "0"], "--tokens = 0 is not allowed: must be >= 1"),
    (["--tokens", "-3"], "--tokens = -3 is not allowed: must be >= 1"),
    (["--tokens", "513"], "minilm_network: tokens = 513 is not allowed: must be an integer in 1..512"),
    (["--net", "resnet50", "--batch", "0"], "--batch = 0 is not allowed: must be >= 1"),
    (["--net", "resnet50", "--functional"],
     "--functional needs real weights: only minilm has them, not 'resnet50'"),
    (["--net", "resnet50", "--set", "weight_buffer_kib=1"],
     "layer conv1: one weight tile needs 640 bytes but weight_buffer_kib = 1 gives 512 per buffer: "
     "raise weight_buffer_kib"),
    (["--net", "resnet50", "--set", "max_k=100"],
     "layer conv1: K = 147 exceeds max_k = 100 (the accumulator is sized for max_k products): raise it, "
     "e.g. --set max_k=256 or max_k in the spec file"),
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
    assert _tree(out) == sorted(["x", "x/manifest.json", "x/sf_array.v", *(f"x/{f}" for f in handoff_names("sf_array"))])
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
    assert main(argv[:-1] + ["--set", "weight_width=4"]) == 2            # another spec: refused ...
    assert capsys.readouterr().err.splitlines()[-1].endswith(": choose another --name, or --replace to replace it")
    assert main(argv[:-1] + ["--set", "weight_width=4", "--replace"]) == 0   # ... unless --replace
    capsys.readouterr()
    assert _tree(out) == sorted(["p", "p/manifest.json", "p/sf_pe.v", *(f"p/{f}" for f in handoff_names("sf_pe"))])
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
    assert _one_error_line(capsys) == "cols = -2 is not allowed: must be 1..512 PEs"
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
    assert proc.stderr.splitlines() == [f"{ERR}rows = -1 is not allowed: must be 1..512 PEs"]
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ the parser
def test_version(capsys):
    """`sparseforge --version` prints the installed version and exits 0."""
    from importlib.metadata import version

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"sparseforge {version('sparseforge')}\n"


@pytest.mark.parametrize("command", [["simulate"], ["spgemm", "--a", "illc1850"], ["generate"], ["train"]])
def test_repeated_hw_is_an_error(command, capsys):
    """A second --hw is refused with one line naming both values, before any work."""
    with pytest.raises(SystemExit) as info:
        main([*command, "--hw", "tiny", "--hw", "sf-32x32"])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"{ERR}argument --hw: given twice ('tiny' and 'sf-32x32')")


def test_argparse_errors_are_one_line(capsys):
    """The parser's own errors are one stderr line too (no usage block)."""
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"{ERR}unrecognized arguments: --bogus (see `sparseforge --help`)"]


def test_every_command_module_is_registered():
    """The parser has exactly the commands of COMMANDS' modules (sweep, report, compare included)."""
    from sparseforge.cli import COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"presets", "simulate", "train", "prune", "spgemm", "generate", "synth", "verify",
                                "lint", "sweep", "report", "compare"}
    assert len(COMMANDS) == len(sub.choices)


def test_cli_modules_import_no_cycle():
    """No command module imports cli.main (which imports them all); each imports of the
    project only the API, the spec, errors, progress, file helpers and sibling CLI modules."""
    import ast

    folder = Path(__file__).resolve().parent.parent / "sparseforge" / "cli"
    allowed = {"api", "spec", "errors", "fileio", "results", "progress"}
    for name in ("presets", "simulate", "moe", "train", "spgemm", "generate", "synth", "options", "kit"):
        tree = ast.parse((folder / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                target = (node.module or "").split(".")[0]
                if node.level == 1:
                    assert target != "main", f"cli/{name}.py imports cli.main"
                    assert target or all(a.name != "main" for a in node.names), f"cli/{name}.py imports cli.main"
                else:
                    assert target in allowed or (not target and {a.name for a in node.names} <= allowed), \
                        f"cli/{name}.py imports sparseforge.{target or [a.name for a in node.names]}"
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert not any(m.startswith("sparseforge") for m in mods), f"cli/{name}.py imports {mods}"


@pytest.mark.parametrize("argv, message", [
    (["--hw", ""], "--hw '' is not allowed: give a preset name (see `sparseforge presets`) or a .toml file"),
    (["--sparsity", ""], "--sparsity '' is not allowed: write N:M (e.g. 2:4) or 'dense'"),
    (["--net", "resnet50", "--tokens", "16"], "--tokens = 16 is not allowed with net 'resnet50': it takes batch"),
    (["--input-shape", "x=1,3"], "--input-shape is for --onnx: add --onnx FILE or drop it"),
    (["--train", "--tokens", "16"], "--tokens is not allowed with --train: the training networks take --batch"),
    (["--net", "m3vit-small", "--routing", "synthetic", "--zipf", "inf"],
     "--zipf = inf is not allowed: must be a finite number >= 0"),
    (["--net", "m3vit-small", "--routing", "synthetic", "--seed", "-1"],
     "--seed = -1 is not allowed: must be an integer >= 0"),
    (["--net", "m3vit-small", "--sparsity", "2:4"],
     "--sparsity is not allowed with --net m3vit-small: it applies to the MiniLM and ResNet-50 simulations"),
])
def test_simulate_option_mistakes(argv, message, capsys):
    """Options that used to be accepted in error are refused with one line."""
    assert main(["simulate", *argv]) == 2
    assert _one_error_line(capsys) == message


def test_train_methods_empty(capsys):
    """`train --methods ''` is refused before any training."""
    assert main(["train", "--methods", ""]) == 2
    assert _one_error_line(capsys).startswith("--methods '' is not allowed: give comma-separated recipes")


# ------------------------------------------------------------------ output files
SIM = ["simulate", "--hw", "tiny", "--tokens", "16"]


def test_output_format_follows_the_extension(tmp_path, capsys):
    """-o FILE.json writes the JSON, .csv one row per layer (pandas), .txt the text table:
    each the same as the API result's view; stdout stays empty."""
    import pandas

    res = __import__("sparseforge").simulate("tiny", tokens=16)
    for ext in ("json", "csv", "txt", "JSON"):
        assert main([*SIM, "-o", str(tmp_path / f"r.{ext}")]) == 0
        assert capsys.readouterr().out == ""
    assert json.loads((tmp_path / "r.json").read_text()) == res.to_dict()
    assert json.loads((tmp_path / "r.JSON").read_text()) == res.to_dict()
    df = pandas.read_csv(tmp_path / "r.csv")
    assert list(df["name"]) == [lay.name for lay in res.layers]
    assert list(df["cycles"]) == [lay.cycles for lay in res.layers]
    assert list(df["dense_cycles"]) == [lay.cycles for lay in res.dense.layers]
    assert (tmp_path / "r.txt").read_text() == res.to_text() + "\n"


@pytest.mark.parametrize("command", [SIM, ["spgemm", "--a", "illc1850", "--b", "illc1850.T", "--dataflow", "inner"],
                                     ["simulate", "--net", "m3vit-small", "--hw", "m3vit-zcu104", "--routing",
                                      "synthetic", "--tokens", "33", "--frames", "1"],
                                     ["simulate", "--train", "--net", "resnet18", "--hw", "sat-vcu1525",
                                      "--batch", "1"]])
def test_csv_rows_per_layer_dataflow_schedule(command, tmp_path, capsys):
    """.csv has one row per layer (simulate, --train), dataflow (spgemm) or schedule (MoE)."""
    import pandas

    assert main([*command, "-o", str(tmp_path / "r.csv")]) == 0
    df = pandas.read_csv(tmp_path / "r.csv")
    assert main([*command, "-o", str(tmp_path / "r.json")]) == 0
    data = json.loads((tmp_path / "r.json").read_text())
    if "layers" in data:
        assert list(df["name"]) == [lay["name"] for lay in data["layers"]]
    elif "results" in data:
        assert list(df["label"]) == [r["label"] for r in data["results"]]
    else:
        assert list(df["schedule"]) == list(data["schedules"])
        assert list(df["cycles"]) == [s["totals"]["cycles"] for s in data["schedules"].values()]


@pytest.mark.parametrize("name, extra, message", [
    ("r.xlsx", [], "--output '{p}' is not allowed: its extension picks the format; use .json, .csv, .txt, .html, .htm"),
    ("report", [], "--output '{p}' is not allowed: its extension picks the format; use .json, .csv, .txt, .html, .htm"),
    ("r.xlsx", ["--train"], "--output '{p}' is not allowed: its extension picks the format; use .json, .csv, .txt, "
                            ".html, .htm"),
    ("r.csv", ["--json"], "--json is not allowed with --output '{p}': the extension picks the format (.json for JSON)"),
])
def test_output_extension_errors(name, extra, message, tmp_path, capsys):
    """An unknown extension (or --json with a non-JSON one) is one line, exit 2, nothing written."""
    target = tmp_path / name
    assert main([*SIM, *extra, "-o", str(target)]) == 2
    assert _one_error_line(capsys) == message.format(p=target)
    assert _tree(tmp_path) == []


def test_simulate_writes_an_html_report_with_pictures(tmp_path, capsys):
    """`simulate -o r.html` writes one self-contained page (plotly embedded, no CDN) and each
    picture as PNG and SVG beside it; the page names the network and the spec's digest."""
    from sparseforge import load_spec

    assert main([*SIM, "-o", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "Plotly.newPlot" in page and not re.search(r"<script[^>]+src=", page)
    assert load_spec("tiny").digest in page
    names = {p.name for p in tmp_path.iterdir()}
    for pic in ("layers", "roofline", "energy", "sparse-vs-dense"):
        assert {f"r-{pic}.png", f"r-{pic}.svg"} <= names, pic


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_respects_the_umask(mask, mode, tmp_path, capsys):
    """A report file gets mode 0o666 & ~umask (mkstemp alone would give 0600)."""
    old = os.umask(mask)
    try:
        assert main([*SIM, "--no-dense", "-o", str(tmp_path / "r.json")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == mode


def _dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_stale_temporaries_are_removed(tmp_path, capsys):
    """Writing a report removes hidden temporaries (files and folders) that dead sparseforge
    processes left in that folder, and leaves those of live processes and other hidden files."""
    dead = _dead_pid()
    stale = [tmp_path / f".r.json.sftmp-{dead}-abc123", tmp_path / f".other.csv.sftmp-{dead}-x_y",
             tmp_path / f"..r.npz.sftmp-{dead}-k2j.q81.npz"]
    for p in stale:
        p.write_text("half")
    stale_dir = tmp_path / f".design.sftmp-{dead}-d1"
    (stale_dir / "sub").mkdir(parents=True)
    live = [tmp_path / f".r.json.sftmp-{os.getpid()}-live1", tmp_path / ".r.json.sftmp-1-init",
            tmp_path / ".hidden", tmp_path / f".r.json.{dead}.tmp"]
    for p in live:
        p.write_text("keep")
    assert main([*SIM, "--no-dense", "-o", str(tmp_path / "r.json")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in live] + ["r.json"])


def test_temporary_names_are_recognisable(tmp_path, monkeypatch, capsys):
    """write_atomic's temporary is .NAME.sftmp-<pid>-XXXX beside the target, gone afterwards."""
    import tempfile

    from sparseforge import fileio

    seen = []
    real = tempfile.mkstemp

    def spy(*a, **kw):
        fd, name = real(*a, **kw)
        seen.append(Path(name))
        return fd, name

    monkeypatch.setattr(fileio.tempfile, "mkstemp", spy)
    assert main([*SIM, "--no-dense", "-o", str(tmp_path / "r.json")]) == 0
    assert seen and all(p.parent == tmp_path and p.name.startswith(f".r.json.sftmp-{os.getpid()}-") for p in seen)
    assert _tree(tmp_path) == ["r.json"]


def test_save_routing_is_atomic_with_umask_and_cleans_up(tmp_path, capsys):
    """--save-routing writes through a recognisable temporary (removing dead ones first) and
    gets the umask's mode; the saved routing replays to the same report."""
    stale = tmp_path / f"..r.npz.sftmp-{_dead_pid()}-abcd.x1y2.npz"
    stale.write_text("half")
    base = ["simulate", "--net", "m3vit-small", "--hw", "m3vit-zcu104", "--tokens", "33", "--json"]
    old = os.umask(0o022)
    try:
        assert main([*base, "--routing", "synthetic", "--frames", "2", "--save-routing",
                     str(tmp_path / "r.npz")]) == 0
    finally:
        os.umask(old)
    first = json.loads(capsys.readouterr().out)
    assert _tree(tmp_path) == ["r.npz"]
    assert (tmp_path / "r.npz").stat().st_mode & 0o777 == 0o644
    assert main([*base, "--routing-file", str(tmp_path / "r.npz")]) == 0
    assert json.loads(capsys.readouterr().out)["schedules"] == first["schedules"]


def _long(n: int = 300) -> str:
    return "x" * n


@pytest.mark.parametrize("where, reason", [
    ("afile/r.json", "'{t}/afile' is a file, not a folder"),
    ("afile/deeper/r.json", "'{t}/afile' is a file, not a folder"),
    ("folder.json", "it is an existing folder; give a file name"),
    (_long() + ".json", "cannot be written: File name too long"),
    ("new/" + _long() + "/r.json", f"the name '{'x' * 24}...' is longer than 255 bytes"),
    ("/proc/sparseforge-test.json", "cannot be written: "),
])
def test_output_file_system_errors(where, reason, tmp_path, capsys):
    """-o into a path under a regular file, an existing folder, too long a name or procfs:
    one line naming the path and the reason, exit 2, nothing created, before any simulation."""
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "folder.json").mkdir()
    before = _tree(tmp_path)
    target = where if where.startswith("/") else str(tmp_path / where)
    assert main([*SIM, "-o", target]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"--output '{target}'")
    assert reason.format(t=tmp_path) in line
    assert _tree(tmp_path) == before and (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("where, reason", [
    ("afile", "it exists and is not a folder"),
    ("afile/out", "'{t}/afile' is a file, not a folder"),
    (_long(), "is longer than 255 bytes"),
    ("/proc/sparseforge-test-out", "cannot be written: "),
])
def test_generate_out_file_system_errors(where, reason, tmp_path, capsys):
    """generate --out that cannot be a folder: one line naming it, exit 2, nothing written."""
    (tmp_path / "afile").write_text("mine")
    target = where if where.startswith("/") else str(tmp_path / where)
    assert main(["generate", "--hw", "tiny", "--design", "pe", "--out", target]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"--out '{target}'") and reason.format(t=tmp_path) in line
    assert _tree(tmp_path) == ["afile"] and (tmp_path / "afile").read_text() == "mine"


def test_save_routing_file_system_error(tmp_path, capsys):
    """--save-routing under a regular file is refused before the simulation, in one line."""
    (tmp_path / "afile").write_text("mine")
    target = str(tmp_path / "afile" / "r.npz")
    assert main(["simulate", "--net", "m3vit-small", "--hw", "m3vit-zcu104", "--routing", "synthetic",
                 "--save-routing", target]) == 2
    assert _one_error_line(capsys) == (f"--save-routing '{target}' is not allowed: '{tmp_path / 'afile'}' is a file, "
                                       "not a folder")
    assert _tree(tmp_path) == ["afile"]


def test_write_failure_after_the_check_is_one_line(tmp_path, monkeypatch, capsys):
    """A file-system error while writing (after the checks passed) is one line naming the path,
    and leaves no temporary behind."""
    from sparseforge import fileio

    def refuse(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(fileio.os, "replace", refuse)
    target = tmp_path / "r.json"
    assert main([*SIM, "--no-dense", "-o", str(target)]) == 2
    assert _one_error_line(capsys) == f"--output '{target}' cannot be written: No space left on device"
    assert _tree(tmp_path) == []


def test_main_turns_any_os_error_into_one_line(monkeypatch, capsys):
    """An OSError nobody caught ends as one line naming the path and the reason (exit 2);
    Ctrl-C exits 130."""
    from sparseforge import api

    def fail(*a, **kw):
        raise PermissionError(13, "Permission denied", "/some/where")

    monkeypatch.setattr(api, "simulate", fail)
    assert main(SIM) == 2
    assert _one_error_line(capsys) == "'/some/where': Permission denied"

    def interrupt(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "simulate", interrupt)
    assert main(SIM) == 130
    assert capsys.readouterr().err == "sparseforge: interrupted\n"


def test_generate_marks_overridden_spec_in_the_folder_name(tmp_path, capsys):
    """`generate --set rows=2` names its folder after the overridden spec, so it does not
    replace the preset's design folder."""
    out = tmp_path / "out"
    assert main(["generate", "--hw", "tiny", "--design", "pe", "--out", str(out), "--json"]) == 0
    assert main(["generate", "--hw", "tiny", "--design", "pe", "--out", str(out), "--set", "rows=2", "--json"]) == 0
    capsys.readouterr()
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 2 and names[0].startswith("tiny-pe") is not names[1].startswith("tiny-pe")
    assert any(n.startswith("tiny-rows2-pe") for n in names)
