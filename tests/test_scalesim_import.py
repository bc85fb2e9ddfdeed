"""SCALE-Sim interoperability: its topology CSVs (conv and GEMM form) as networks, its .cfg
files as specs (with notes on what does not map), and its COMPUTE_REPORT.csv columns out.

The topology and config files in tests/data/scalesim are SCALE-Sim v3's own (MIT; README.md
there). Layer shapes and MAC counts are checked against hand computation with SCALE-Sim's
output sizing, ``ceil((H - F + S) / S)``."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from sparseforge import api
from sparseforge.cli import main
from sparseforge.models.scalesim_topology import TopologyError, conv_output_size, read_topology
from sparseforge.spec import SpecError, load_spec
from sparseforge.spec.scalesim_cfg import read_scalesim_cfg

DATA = Path(__file__).parent / "data" / "scalesim"
ERR = "sparseforge: error: "
CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"

#: SCALE-Sim's AlexNet by hand: (name, output pixels, K = Fh*Fw*C, N); Conv1: ceil((224-11+4)/4)
#: = 55 per side (PyTorch's floor((224-11)/4)+1 would give 54)
ALEXNET = [("Conv1", 55 * 55, 11 * 11 * 3, 96), ("Conv2", 23 * 23, 5 * 5 * 96, 256),
           ("Conv3", 11 * 11, 3 * 3 * 256, 384), ("Conv4", 11 * 11, 3 * 3 * 384, 384),
           ("Conv5", 11 * 11, 3 * 3 * 384, 256)]


def _write(tmp_path: Path, text: str, name: str = "topo.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ topology: real files
def test_alexnet_conv_topology_matches_hand_computation():
    """SCALE-Sim's AlexNet: five conv layers, SCALE-Sim's ceil output sizing, 805,118,496 MACs."""
    topo = read_topology(DATA / "alexnet.csv")
    assert topo.form == "conv" and topo.notes == ()
    net = topo.network
    assert net.name == "alexnet"
    assert [(lay.name, lay.tokens, lay.k, lay.n_out, lay.kind) for lay in net] == \
        [(n, t, k, o, "conv") for n, t, k, o in ALEXNET]
    assert net.macs() == sum(t * k * o for _, t, k, o in ALEXNET) == 805_118_496


def test_output_sizing_is_scalesims_ceil_not_pytorchs_floor():
    """ceil((H - F + S) / S): one more than PyTorch's floor((H - F) / S) + 1 when S does not divide H - F."""
    assert conv_output_size(224, 11, 4) == 55 and (224 - 11) // 4 + 1 == 54
    assert conv_output_size(227, 11, 4) == 55 == (227 - 11) // 4 + 1
    assert conv_output_size(7, 3, 2) == 3 and conv_output_size(8, 3, 2) == 4 == math.ceil((8 - 3 + 2) / 2)


def test_gpt2_gemm_topology_with_crlf_and_missing_trailing_comma():
    """SCALE-Sim's GEMM form (Layer, M, N, K): M rows, reduction K, N outputs. The file has CRLF
    line ends and its last row lacks the trailing comma; its value is kept."""
    topo = read_topology(DATA / "gpt2.csv")
    assert topo.form == "gemm"
    rows = [("QKT", 1024, 1024, 64), ("QKTV", 1024, 64, 1024), ("Linear1", 1024, 4800, 1600),
            ("Linear2", 1024, 1600, 1600), ("PW-FF-L1", 1024, 3072, 1600), ("PW-FF-L2", 1024, 1600, 3072)]
    assert [(lay.name, lay.tokens, lay.n_out, lay.k, lay.kind) for lay in topo.network] == \
        [(n, m, nn, k, "linear") for n, m, nn, k in rows]
    assert topo.network.macs() == sum(m * n * k for _, m, n, k in rows)


def test_sparsity_column_marks_prunable_layers_and_is_reported(tmp_path):
    """v3's Sparsity column: 1:1 keeps a layer dense, any other N:M makes it prunable, and a note
    says the pattern simulated is --sparsity's."""
    topo = read_topology(DATA / "sparse_conv.csv")        # CONV_1 ... 2:4
    assert [lay.prunable for lay in topo.network] == [True]
    assert topo.network.layers[0].tokens == 3 * 3 and topo.network.layers[0].k == 3 * 3 * 2
    assert len(topo.notes) == 1 and "2:4: CONV_1" in topo.notes[0]
    path = _write(tmp_path, "Layer, M, N, K, Sparsity,\nA, 8, 16, 32, 1:1,\nB, 8, 16, 32, 2:4,\n")
    assert [lay.prunable for lay in read_topology(path).network] == [False, True]


def test_depthwise_dp_rows_split_per_channel_and_v2_stride_width(tmp_path):
    """A row whose name contains DP is one 1-channel layer per channel, named as SCALE-Sim names
    them; an integer ninth column is v2's stride width."""
    path = _write(tmp_path, CONV_HEADER + "DP1, 8, 8, 3, 3, 4, 1, 1,\nC2, 9, 17, 3, 3, 2, 5, 2, 4,\n")
    layers = read_topology(path).network.layers
    assert [lay.name for lay in layers[:4]] == [f"DP1Channel_{c}" for c in range(4)]
    assert all((lay.tokens, lay.k, lay.n_out) == (36, 9, 1) for lay in layers[:4])
    assert (layers[4].tokens, layers[4].k) == (conv_output_size(9, 3, 2) * conv_output_size(17, 3, 4), 18) == (4 * 5, 18)


def test_repeated_names_blank_rows_and_extra_columns_are_handled_and_noted(tmp_path):
    path = _write(tmp_path, CONV_HEADER.rstrip(",\n") + ", Sparsity, Eh,\n,,,,,,,,\n\nA, 4, 4, 1, 1, 2, 3, 1, , 7,\n"
                  "A, 4, 4, 1, 1, 2, 3, 1,,,\n")
    topo = read_topology(path)
    assert [lay.name for lay in topo.network] == ["A", "A_2"]
    assert any("'A' (line 5) -> 'A_2'" in n for n in topo.notes)
    assert any("column(s) 10 (Eh)" in n for n in topo.notes)


# ------------------------------------------------------------------ topology: bad files
@pytest.mark.parametrize("body, where", [
    ("A, 4, 4, x, 1, 2, 3, 1,\n", ":2: column 4 (Filter Height) = 'x' is not allowed"),
    ("A, 4, 4, 1, 1, 2, 3, 1,\nB, 4, 4, 0, 1, 2, 3, 1,\n", ":3: column 4 (Filter Height) = 0 is not allowed"),
    ("A, 4, 4, 1, 1, , 3, 1,\n", ":2: column 6 (Channels) is empty"),
    ("A, 4, 4, 1, 1, 2,\n", ":2: 6 columns is not allowed: a conv row has 8"),
    ("A, 4, 4, 5, 1, 2, 3, 1,\n", ":2: filter height 5 is larger than the IFMAP height 4"),
    ("A, 4, 4, 1, 1, 2, 3, 1, 5:4,\n", ":2: column 9 (Sparsity) = '5:4' is not allowed"),
])
def test_malformed_rows_name_file_line_and_column(tmp_path, body, where):
    path = _write(tmp_path, CONV_HEADER + body)
    with pytest.raises(TopologyError) as exc:
        read_topology(path)
    msg = str(exc.value)
    assert msg.startswith(str(path)) and where in msg and "\n" not in msg


@pytest.mark.parametrize("text, where", [
    ("", ":1: empty topology"),
    ("name, a, b, c,\nx, 1, 2, 3,\n", ":1: header 'name, a, b, c' is not a SCALE-Sim topology header"),
    ("Layer, M, N, K,\n", ": no layers"),
])
def test_bad_headers_and_empty_files(tmp_path, text, where):
    path = _write(tmp_path, text)
    with pytest.raises(TopologyError, match=rf"^{path}{where}"):
        read_topology(path)


def test_missing_and_binary_topologies(tmp_path):
    with pytest.raises(TopologyError, match="no such file"):
        read_topology(tmp_path / "nope.csv")
    bad = tmp_path / "bin.csv"
    bad.write_bytes(CONV_HEADER.encode() + b"A\xff, 1\n")
    with pytest.raises(TopologyError, match=r"bin.csv:2: not UTF-8"):
        read_topology(bad)


# ------------------------------------------------------------------ topology: API and CLI
def test_api_load_network_and_simulate_take_a_topology_path(tmp_path):
    net = api.load_network(str(DATA / "alexnet.csv"))
    assert [lay.name for lay in net] == [n for n, *_ in ALEXNET]
    res = api.simulate("scalesim-32x32", DATA / "alexnet.csv", dense=False)
    assert [lay.useful_macs for lay in res.layers] == [t * k * o for _, t, k, o in ALEXNET]
    assert res.workload == "alexnet (SCALE-Sim topology)"
    with pytest.raises(api.UserError, match="batch is not allowed with the SCALE-Sim topology"):
        api.simulate("scalesim-32x32", str(DATA / "alexnet.csv"), batch=2)
    bad = _write(tmp_path, CONV_HEADER + "A, 4, 4, 1, 1, 2, 3,\n")
    with pytest.raises(api.UserError, match=r"topo.csv:2: 7 columns"):
        api.load_network(str(bad))


def test_cli_topology_error_is_one_line(tmp_path, capsys):
    bad = _write(tmp_path, CONV_HEADER + "A, 4, 4, 1, 1, q, 3, 1,\n")
    assert main(["simulate", "--net", str(bad), "--hw", "scalesim-32x32"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(ERR) and f"{bad}:2: column 6 (Channels) = 'q' is not allowed" in err


# ------------------------------------------------------------------ config
def test_scale_cfg_maps_to_the_scalesim_preset_with_its_srams():
    """configs/scale.cfg: SCALE-Sim's 32x32 ws array, 64 KiB SRAMs, CALC bandwidth. With the
    preset's buffers put back it is the scalesim-32x32 preset's hardware (same digest), whose
    cycles docs/validation.md checks against SCALE-Sim."""
    cfg = read_scalesim_cfg(DATA / "scale.cfg")
    s = cfg.spec
    assert (s.name, s.rows, s.cols, s.n, s.m) == ("scale_example_run_32x32_ws", 32, 32, 1, 1)
    assert (s.dataflow, s.fold_overlap, s.double_buffer) == ("weight-stationary", "none", True)
    assert (s.input_buffer_kib, s.weight_buffer_kib, s.output_buffer_kib) == (64, 64, 64)
    preset = load_spec("scalesim-32x32")
    assert s.dram_bandwidth_gbps == preset.dram_bandwidth_gbps and s.dram_latency_ns == 0
    same = s.replace(input_buffer_kib=preset.input_buffer_kib, weight_buffer_kib=preset.weight_buffer_kib,
                     output_buffer_kib=preset.output_buffer_kib, double_buffer=preset.double_buffer)
    assert same.digest == preset.digest
    text = "\n".join(cfg.notes)
    assert "IfmapOffset, FilterOffset, OfmapOffset: not used" in text
    assert "ReadRequestBuffer, WriteRequestBuffer: not used" in text
    assert "MemoryBanks: not used" in text and "SRAM sizes 64/64/64 KiB" in text


def test_google_cfg_user_bandwidth_and_output_stationary():
    """configs/google.cfg: TPU v1's 256x256 os array, USER bandwidth 10 words/cycle of one byte
    = 10 B/cycle = 2 GB/s at the preset's 200 MHz; the shared-interface difference is noted."""
    cfg = read_scalesim_cfg(DATA / "google.cfg")
    s = cfg.spec
    assert (s.rows, s.cols, s.dataflow) == (256, 256, "output-stationary")
    assert (s.input_buffer_kib, s.weight_buffer_kib, s.output_buffer_kib) == (6144, 6144, 2048)
    assert s.dram_bandwidth_gbps == pytest.approx(10 * s.clock_mhz / 1000) == 2.0
    assert s.dram_bytes_per_cycle == pytest.approx(10.0)
    assert any("sparseforge shares one among all operands" in n for n in cfg.notes)


def _cfg(tmp_path: Path, **edits: str) -> Path:
    text = (DATA / "scale.cfg").read_text()
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "my.cfg"
    path.write_text(text)
    return path


def test_each_sram_goes_to_its_own_buffer(tmp_path):
    path = _cfg(tmp_path, **{"IfmapSramSzkB:   64": "IfmapSramSzkB: 32", "FilterSramSzkB:  64": "FilterSramSzkB: 16",
                             "Dataflow : ws": "Dataflow : OS"})
    s = read_scalesim_cfg(path).spec
    assert (s.input_buffer_kib, s.weight_buffer_kib, s.output_buffer_kib) == (32, 16, 64)
    assert s.dataflow == "output-stationary"


def test_unknown_keys_and_sections_are_reported_not_dropped(tmp_path):
    path = _cfg(tmp_path, **{"[run_presets]": "[energy]\nAccelergy: True\n\n[run_presets]\nFancyKnob: 3"})
    notes = read_scalesim_cfg(path).notes
    assert "[energy] accelergy = True: unknown section, ignored" in notes
    assert "[run_presets] fancyknob = 3: unknown key, ignored" in notes


@pytest.mark.parametrize("old, new, match", [
    ("Dataflow : ws", "Dataflow : is", r"\[architecture_presets\] Dataflow = is is not allowed: sparseforge's engines"),
    ("Dataflow : ws", "Dataflow : xy", r"Dataflow = 'xy' is not allowed: choose ws or os"),
    ("ArrayHeight:    32", "", r"\[architecture_presets\] ArrayHeight is missing"),
    ("ArrayHeight:    32", "ArrayHeight: 1024",
     r"rows = 1024 is not allowed: .* \(from \[architecture_presets\] ArrayHeight = 1024\)"),
    ("ArrayWidth:     32", "ArrayWidth: 3.5", r"\[architecture_presets\] ArrayWidth = '3.5' is not allowed"),
    ("InterfaceBandwidth: CALC", "InterfaceBandwidth: FAST", r"InterfaceBandwidth = 'FAST' is not allowed"),
    ("Bandwidth : 10", "Bandwidth : 0\nBandwidth : 1", r"not a valid SCALE-Sim config \(INI\)"),
])
def test_bad_configs_are_one_line_errors(tmp_path, old, new, match):
    path = _cfg(tmp_path, **{old: new})
    with pytest.raises(SpecError, match=match) as exc:
        read_scalesim_cfg(path)
    assert str(exc.value).startswith(str(path)) and "\n" not in str(exc.value)


def test_cli_hw_cfg_prints_notes_and_writes_scalesim_compute_report(tmp_path, capsys):
    """`simulate --net alexnet.csv --hw scale.cfg -o COMPUTE_REPORT.csv`: the cfg's notes on
    stderr, and a report that pandas reads the way SCALE-Sim users read SCALE-Sim's."""
    out = tmp_path / "COMPUTE_REPORT.csv"
    assert main(["simulate", "--net", str(DATA / "alexnet.csv"), "--hw", str(DATA / "scale.cfg"),
                 "--set", "input_buffer_kib=128", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"sparseforge: note: --hw {DATA / 'scale.cfg'}: [architecture_presets] IfmapOffset" in err
    lines = out.read_text().splitlines()
    # the header exactly as scale-sim-v3 scalesim/simulator.py writes it
    assert lines[0] == ("LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, Overall Util %, "
                        "Mapping Efficiency %, Compute Util %,")
    res = api.simulate(api.load_spec(read_scalesim_cfg(DATA / "scale.cfg").spec, ["input_buffer_kib=128"]),
                       str(DATA / "alexnet.csv"), dense=False)
    df = pd.read_csv(out, skipinitialspace=True)
    assert df["LayerID"].tolist() == [0, 1, 2, 3, 4]
    assert df["Total Cycles"].tolist() == [lay.cycles for lay in res.layers]
    assert df["Stall Cycles"].tolist() == [lay.stall_cycles for lay in res.layers]
    assert df["Overall Util %"].tolist() == pytest.approx([100 * lay.utilisation for lay in res.layers])
    # Conv1's K = 363 fills ceil(363/32) = 12 row folds of 32: 363/384 of the array; N = 96 fills 3 column folds
    assert df["Mapping Efficiency %"].tolist() == pytest.approx([100 * 363 / 384, 100, 100, 100, 100])
    assert df["Compute Util %"].tolist() == pytest.approx(
        [100 * lay.useful_macs / (lay.compute_cycles * 1024) for lay in res.layers])
    raw = pd.read_csv(out)                 # without skipinitialspace, as SCALE-Sim's own file reads
    assert raw[" Total Cycles"].tolist() == df["Total Cycles"].tolist()


def test_cli_writes_scalesim_bandwidth_report(tmp_path):
    """`-o BANDWIDTH_REPORT.csv`: SCALE-Sim's header and layout; each column is the operand's
    bytes over the layer's cycles, and the per-operand bytes add up to the layer's totals. On
    AlexNet (8-bit activations, one pass over the im2col rows) the IFMAP DRAM bytes are T x K
    and the FILTER DRAM bytes hold every weight once (rows padded to the 32-row array)."""
    out = tmp_path / "BANDWIDTH_REPORT.csv"
    assert main(["simulate", "--net", str(DATA / "alexnet.csv"), "--hw", "scalesim-32x32", "--no-dense",
                 "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == ("LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg OFMAP SRAM BW, "
                        "Avg IFMAP DRAM BW, Avg FILTER DRAM BW, Avg OFMAP DRAM BW,")
    assert all(line.endswith(",") for line in lines)
    res = api.simulate("scalesim-32x32", str(DATA / "alexnet.csv"), dense=False)
    df = pd.read_csv(out, skipinitialspace=True)
    layers = res.sparse.layers
    assert df["LayerID"].tolist() == list(range(len(layers)))
    for col, field in (("Avg IFMAP SRAM BW", "sram_act_bytes"), ("Avg FILTER SRAM BW", "sram_wgt_bytes"),
                       ("Avg OFMAP SRAM BW", "sram_out_bytes"), ("Avg IFMAP DRAM BW", "dram_act_bytes"),
                       ("Avg FILTER DRAM BW", "dram_wgt_bytes"), ("Avg OFMAP DRAM BW", "dram_write_bytes")):
        assert (df[col] * [lay.cycles for lay in layers]).tolist() == pytest.approx(
            [getattr(lay, field) for lay in layers]), col
    for lay in layers:
        assert lay.dram_act_bytes + lay.dram_wgt_bytes == lay.dram_read_bytes
        assert lay.sram_act_bytes + lay.sram_wgt_bytes + lay.sram_out_bytes < lay.sram_bytes   # + fill/drain
        assert lay.dram_act_bytes == lay.tokens * lay.k
        assert lay.k * lay.n_out <= lay.dram_wgt_bytes <= -(-lay.k // 32) * 32 * lay.n_out
