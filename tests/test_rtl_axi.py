"""The AXI wrappers of the GEMM engines (``engine_axi``, ``os_engine_axi``), run in Icarus
Verilog on real pruned MiniLM operands and driven only through their AXI ports by cocotbext-axi
(bench: :mod:`sparseforge.verify.cocotb_engine_axi`).

Each case slices a real MiniLM Linear layer (weights pruned N:M by magnitude, int8 activations
from real text), lays it out with :mod:`dataflow.layout` as the engine tests do, streams the
words in over AXI4-Stream, runs the engine from AXI4-Lite, streams the output memory back and
checks

- every output word bit-exactly against the NumPy golden model, and
- the wrapper's ``CYCLES`` register against the simulator's run model, exactly, on two runs;

and the wrapper's refusals and error flags (see the bench). Stream widths cover several beats
per memory word (32 bits) and one beat per word (256 bits); one case pauses both streams at
random (back-pressure on ``m_axis``, gaps on ``s_axis``).
"""

from __future__ import annotations

import numpy as np
import pytest

from sparseforge.dataflow.layout import grouped_sparse, memory_image, os_memory_image
from sparseforge.hwgen.emit import build_component
from sparseforge.models.golden import gemm_nm_int
from sparseforge.models.prune import compress
from sparseforge.sim.units.engine import os_run_cycles, run_cycles
from sparseforge.spec import HardwareSpec

pytestmark = [pytest.mark.rtl, pytest.mark.minilm]

BENCH = "sparseforge.verify.cocotb_engine_axi"


def _real_operands(n: int, m: int, layer: str, *, tokens: int, k: int, n_out: int):
    """``[tokens, k]`` activations and ``[n_out, k]`` N:M weights of a real pruned MiniLM layer."""
    pipeline = pytest.importorskip("sparseforge.models.pipeline")
    try:
        model = pipeline.pruned_minilm(n, m)
    except FileNotFoundError as exc:  # the weights package is missing on this machine
        pytest.skip(str(exc))
    lay = model.layer(layer)
    return lay.x_q[:tokens, :k].astype(np.int64), lay.w_q[:n_out, :k].astype(np.int64)


def _case(design: str, spec: HardwareSpec, act, wgt, expected_words, cfg: dict[str, int], expected_cycles: int,
          *, stream_width: int, fields: int, backpressure: bool, out_depth: int):
    depths = {"act_depth": len(act), "wgt_depth": max(len(wgt), spec.rows), "out_depth": out_depth}
    comp = build_component(spec, design, stream_width=stream_width, **depths)
    comp._MustUse__silence = comp.engine._MustUse__silence = True   # built to read its map, never elaborated
    p = comp.params
    members = comp.engine.signature.members
    bits = dict(p["word_widths"])
    case = {
        "act": [f"{a:x}" for a in act], "wgt": [f"{b:x}" for b in wgt],
        "cfg": cfg, "cfg_max": {n: members[n].shape.stop - 1 for n in cfg if isinstance(members[n].shape, range)},
        "registers": p["registers"], "stream_width": stream_width, "bits": bits,
        "info": {"ACT_DEPTH": depths["act_depth"], "WGT_DEPTH": depths["wgt_depth"], "OUT_DEPTH": out_depth,
                 "ACT_BITS": bits["act"], "WGT_BITS": bits["wgt"], "OUT_BITS": bits["out"],
                 "STREAM_BITS": stream_width},
        "expected": expected_words, "fields": fields, "field_width": spec.acc_width,
        "expected_cycles": expected_cycles, "timeout_polls": expected_cycles + 100, "runs": 2,
        "backpressure": backpressure,
    }
    # the bench's in-flight checks need a run and a read-back longer than a few AXI4-Lite accesses
    assert expected_cycles >= 40 and len(expected_words) * p["beats_per_word"]["out"] >= 16
    return case, {**depths, "stream_width": stream_width}


def _run(tmp_path, design, spec, case, params):
    from sparseforge.verify.harness import run_bench

    result = run_bench(spec, design=design, bench=BENCH, case=case, workdir=tmp_path, **params)
    assert result["outputs"][0]["mismatched_words"] == 0
    assert result["cycles"] == [case["expected_cycles"]] * 2
    assert set(result["checks"]) >= {"word-past-end", "refused-while-running", "start-refused-while-reading",
                                     "read-refused", "start-refused-cfg-range"}
    return result


# (rows, cols, n, m, layer, tokens, k, n_out, stream bits, back-pressure)
WS_GRID = [
    (4, 4, 2, 4, "layer0.attn.q", 12, 50, 10, 32, True),     # 3-4 beats per word, paused streams
    (3, 5, 1, 4, "layer1.ffn.up", 9, 30, 9, 256, False),     # one beat per word (out: 5 x 28 = 140 bits)
]


@pytest.mark.parametrize("rows,cols,n,m,layer,tokens,k,n_out,width,backpressure", WS_GRID)
def test_engine_axi_real_layer(tmp_path, rows, cols, n, m, layer, tokens, k, n_out, width, backpressure):
    """The weight-stationary engine behind AXI: a multi-tile N:M GEMM of a real MiniLM layer,
    bit-exact against the golden N:M product, CYCLES equal to ``run_cycles``."""
    spec = HardwareSpec(rows=rows, cols=cols, n=n, m=m, max_k=4096)
    x, w = _real_operands(n, m, layer, tokens=tokens, k=k, n_out=n_out)
    comp = compress(w, n, m)
    assert np.array_equal(comp.to_dense(), w), "the real slice is N:M sparse"
    gw = grouped_sparse(comp.values, comp.indices, n=n, m=m, k=k, spec=spec)
    img = memory_image(spec, x, gw)
    til = img.tiling
    golden = gemm_nm_int(x, comp)
    assert np.array_equal(img.expected.transpose(1, 0, 2).reshape(tokens, -1)[:, :n_out], golden)
    assert til.ktiles > 1 and til.ntiles > 1
    words = [list(map(int, row)) for tile in img.expected for row in tile]    # word nt * T + t
    cfg = {"cfg_tokens": til.tokens, "cfg_ktiles": til.ktiles, "cfg_ntiles": til.ntiles, "cfg_accumulate": 0}
    case, params = _case("engine_axi", spec, img.act, img.wgt, words, cfg,
                         run_cycles(spec, tokens=til.tokens, tiles=til.tiles), stream_width=width, fields=cols,
                         backpressure=backpressure, out_depth=til.ntiles * til.tokens)
    beats = {k: -(-b // width) for k, b in case["bits"].items()}
    assert beats == ({"act": 4, "wgt": 3, "out": 4} if width == 32 else {"act": 1, "wgt": 1, "out": 1})
    result = _run(tmp_path, "engine_axi", spec, case, params)
    assert ("tlast-inside-word" in result["checks"]) == (width < 8 * ((spec.rows * spec.m * spec.act_width + 7) // 8))


def test_os_engine_axi_real_layer(tmp_path):
    """The output-stationary engine behind AXI: a 2:4 GEMM of a real MiniLM layer over several
    token tiles and n-tiles, bit-exact, CYCLES equal to ``os_run_cycles``."""
    spec = HardwareSpec(rows=4, cols=4, n=2, m=4, max_k=4096, dataflow="output-stationary")
    x, w = _real_operands(2, 4, "layer2.attn.k", tokens=10, k=50, n_out=10)
    comp = compress(w, 2, 4)
    gw = grouped_sparse(comp.values, comp.indices, n=2, m=4, k=50, spec=spec)
    img = os_memory_image(spec, x, gw)
    til = img.tiling
    got = img.expected.transpose(0, 3, 1, 2).reshape(til.token_tiles * spec.rows, -1)
    assert np.array_equal(got[:10, :10], gemm_nm_int(x, comp))
    words = [list(map(int, v)) for v in img.expected.reshape(-1, spec.rows)]   # word (tt*NT+nt)*C + c
    cfg = {"cfg_groups": til.groups, "cfg_ttiles": til.token_tiles, "cfg_ntiles": til.ntiles, "cfg_accumulate": 0}
    cycles = os_run_cycles(spec, token_tiles=til.token_tiles, ntiles=til.ntiles, groups=til.groups)
    case, params = _case("os_engine_axi", spec, img.act, img.wgt, words, cfg, cycles, stream_width=64,
                         fields=spec.rows, backpressure=False, out_depth=til.tiles * spec.cols)
    _run(tmp_path, "os_engine_axi", spec, case, params)
