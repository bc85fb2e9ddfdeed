"""sparseforge against SCALE-Sim v3, layer by layer, on SCALE-Sim's own array (run on demand, not in CI).

Runs PyPI ``scalesim`` 3.0.0 (CALC bandwidth, 32 x 32, weight- and output-stationary) on a conv
topology (SCALE-Sim's AlexNet, ``topologies/conv_nets/alexnet.csv`` of scale-sim-v2) and a GEMM
topology (the four GEMMs of one MiniLM-L6 encoder layer at 128 tokens), and simulates the same
layers with the ``scalesim-32x32`` preset, in its own mode (``fold_overlap = "none"``) and in
sparseforge's pipelined mode. It prints per layer

- ``scalesim``: SCALE-Sim's ``Total Cycles`` (COMPUTE_REPORT.csv); it is the 0-based index of the
  last cycle, so the array's folds take ``scalesim + 1`` cycles;
- ``folds``: SCALE-Sim's folds (``ceil(K/R) * ceil(N/C)`` weight-stationary,
  ``ceil(T/R) * ceil(N/C)`` output-stationary) and sparseforge's tiles, which must agree;
- ``none``: sparseforge's compute cycles with ``fold_overlap = "none"``, its runs, and
  ``none - runs * tail`` (``sim.units.engine.fold_tail_cycles``: what the RTL's pipeline adds
  per run over SCALE-Sim's one-cycle MACs), which must equal ``scalesim + 1``;
- ``pipelined``: sparseforge's compute cycles in its own mode, and its ratio to SCALE-Sim's.

SCALE-Sim needs numpy < 2.4, so it lives in a virtual environment of its own (``--venv``, made
and filled with pip on first use). SCALE-Sim sizes a conv layer's output as
``ceil((H - F + S) / S)`` (no padding); the topology rows become layers with sparseforge's own
SCALE-Sim importer (:func:`sparseforge.models.scalesim_topology.conv_layer` / ``gemm_layer``,
the functions behind ``sparseforge simulate --net FILE.csv``).

    .venv/bin/python benchmarks/bench_scalesim.py [--venv DIR] [--topology minilm alexnet] [--dataflow ws os]

Exit status 1 when a layer's cycles or folds do not agree. SCALE-Sim simulates every cycle of
every fold in Python: MiniLM takes a few minutes here, AlexNet about half an hour.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sparseforge.models.network import GemmLayer, Network
from sparseforge.models.scalesim_topology import conv_layer, gemm_layer
from sparseforge.sim.simulate import simulate_network
from sparseforge.sim.units.engine import OS, WS, fold_tail_cycles
from sparseforge.spec import load_spec

SCALESIM = "scalesim==3.0.0"
NUMPY = "numpy<2.4"
DEFAULT_VENV = Path.home() / ".cache" / "sparseforge" / "scalesim-venv"

#: SCALE-Sim's AlexNet (scale-sim-v2 topologies/conv_nets/alexnet.csv): name, IFMAP H, W,
#: filter H, W, channels, filters, stride
ALEXNET = [
    ("Conv1", 224, 224, 11, 11, 3, 96, 4),
    ("Conv2", 27, 27, 5, 5, 96, 256, 1),
    ("Conv3", 13, 13, 3, 3, 256, 384, 1),
    ("Conv4", 13, 13, 3, 3, 384, 384, 1),
    ("Conv5", 13, 13, 3, 3, 384, 256, 1),
]
#: the four GEMMs of one MiniLM-L6 encoder layer (all-MiniLM-L6-v2, sparseforge's ``minilm``
#: network: hidden 384, 12 heads, FFN 1536) at 128 tokens, as SCALE-Sim GEMM rows: name,
#: M (tokens), N (outputs), K (reduction)
MINILM = [
    ("QKV", 128, 1152, 384),
    ("AttnOut", 128, 384, 384),
    ("FFN1", 128, 1536, 384),
    ("FFN2", 128, 384, 1536),
]
TOPOLOGIES = {"alexnet": ("conv", ALEXNET), "minilm": ("gemm", MINILM)}

#: SCALE-Sim's configs/scale.cfg (scale-sim-v3): 32 x 32, 64 KiB SRAMs, CALC bandwidth; the
#: sparsity and layout sections scale_config.read_conf_file requires, off
CONFIG = """[general]
run_name = {name}

[architecture_presets]
ArrayHeight:    32
ArrayWidth:     32
IfmapSramSzkB:   64
FilterSramSzkB:  64
OfmapSramSzkB:   64
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : {df}
MemoryBanks:   1
ReadRequestBuffer: 512
WriteRequestBuffer: 512

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

# runs inside SCALE-Sim's venv: argv = config, topology, layout, gemm (0/1), out dir
DRIVER = r"""
import contextlib, io, sys
from scalesim.scale_sim import scalesim
cfg, topo, layout, gemm, out = sys.argv[1:6]
s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout,
             input_type_gemm=gemm == "1")
with contextlib.redirect_stdout(io.StringIO()):
    s.run_scale(top_path=out)
"""


def ensure_venv(venv: Path) -> Path:
    """The venv's python, after creating it and installing SCALE-Sim when it lacks it."""
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import scalesim"], capture_output=True).returncode == 0:
        return py
    print(f"creating {venv} and installing {SCALESIM} with {NUMPY} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", SCALESIM, NUMPY], check=True)
    return py


def run_scalesim(py: Path, work: Path, topo: str, df: str) -> list[int]:
    """SCALE-Sim's Total Cycles of every layer of ``topo`` on dataflow ``df`` (ws / os)."""
    kind, rows = TOPOLOGIES[topo]
    name = f"{topo}_{df}"
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "scale.cfg").write_text(CONFIG.format(name=name, df=df))
    header = ("Layer, M, N, K,\n" if kind == "gemm" else
              "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n")
    (d / "topo.csv").write_text(header + "".join(",".join(map(str, r)) + ",\n" for r in rows))
    (d / "layout.csv").write_text("Layer name,\n")      # no custom layout (IfmapCustomLayout False)
    subprocess.run([str(py), "-c", DRIVER, str(d / "scale.cfg"), str(d / "topo.csv"), str(d / "layout.csv"),
                    "1" if kind == "gemm" else "0", str(d / "out")], check=True)
    with open(d / "out" / name / "COMPUTE_REPORT.csv") as f:
        report = list(csv.DictReader(f, skipinitialspace=True))
    return [int(r["Total Cycles"]) for r in report]


def scalesim_folds(layer: GemmLayer, df: str, R: int = 32, C: int = 32) -> int:
    if df == "ws":
        return math.ceil(layer.k / R) * math.ceil(layer.n_out / C)
    return math.ceil(layer.tokens / R) * math.ceil(layer.n_out / C)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"SCALE-Sim's venv (default {DEFAULT_VENV})")
    ap.add_argument("--topology", nargs="+", choices=sorted(TOPOLOGIES), default=["minilm", "alexnet"])
    ap.add_argument("--dataflow", nargs="+", choices=["ws", "os"], default=["ws", "os"])
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--reuse", type=Path, help="take SCALE-Sim's cycles from an earlier --json instead of running it")
    args = ap.parse_args(argv)

    reused = {}
    if args.reuse:
        reused = {(r["topology"], r["dataflow"], r["layer"]): r["scalesim_cycles"]
                  for r in json.loads(args.reuse.read_text())}
    py = None if args.reuse else ensure_venv(args.venv)
    base = load_spec("scalesim-32x32")
    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix="sf-scalesim-") as tmp:
        for topo in args.topology:
            kind, table = TOPOLOGIES[topo]
            layers = [conv_layer(*r) if kind == "conv" else gemm_layer(*r) for r in table]
            net = Network(name=topo, layers=layers)
            for df in args.dataflow:
                t0 = time.time()
                if args.reuse:
                    ss = [reused[(topo, df, lay.name)] for lay in layers]
                else:
                    ss = run_scalesim(py, Path(tmp), topo, df)
                t_ss = time.time() - t0
                dataflow = WS if df == "ws" else OS
                spec = base.replace(dataflow=dataflow)
                none = simulate_network(spec, net, None)
                piped = simulate_network(spec.replace(fold_overlap="pipelined"), net, None)
                tail = fold_tail_cycles(spec, dataflow)
                how = f"reused from {args.reuse}" if args.reuse else f"{t_ss:.0f} s"
                print(f"\n{topo} {df} (32x32; SCALE-Sim {how}; sparseforge tail {tail} cycles per run)")
                print(f"{'layer':8} {'T':>6} {'K':>5} {'N':>5} {'folds':>6} {'tiles':>6} {'scalesim':>10} "
                      f"{'none':>10} {'runs':>4} {'none-tail':>10} {'equal':>5} {'none/ss':>8} "
                      f"{'pipelined':>10} {'pipe/ss':>8}")
                for lay, c_ss, a, b in zip(layers, ss, none.layers, piped.layers):
                    folds = scalesim_folds(lay, df)
                    fold_cycles = a.compute_cycles - a.runs * tail
                    equal = fold_cycles == c_ss + 1 and folds == a.tiles
                    ok &= equal
                    row = {"topology": topo, "dataflow": df, "layer": lay.name, "tokens": lay.tokens, "k": lay.k,
                           "n": lay.n_out, "scalesim_folds": folds, "sf_tiles": a.tiles, "scalesim_cycles": c_ss,
                           "sf_none_cycles": a.compute_cycles, "sf_none_runs": a.runs,
                           "sf_none_minus_tail": fold_cycles, "equal": equal,
                           "sf_pipelined_cycles": b.compute_cycles}
                    rows.append(row)
                    print(f"{lay.name:8} {lay.tokens:6d} {lay.k:5d} {lay.n_out:5d} {folds:6d} {a.tiles:6d} "
                          f"{c_ss:10d} {a.compute_cycles:10d} {a.runs:4d} {fold_cycles:10d} "
                          f"{'yes' if equal else 'NO':>5} {a.compute_cycles / c_ss:8.4f} "
                          f"{b.compute_cycles:10d} {b.compute_cycles / c_ss:8.3f}")
                tot_ss = sum(ss)
                tot_n = sum(x.compute_cycles for x in none.layers)
                tot_p = sum(x.compute_cycles for x in piped.layers)
                print(f"{'total':8} {'':>6} {'':>5} {'':>5} {'':>6} {'':>6} {tot_ss:10d} {tot_n:10d} {'':>4} "
                      f"{'':>10} {'':>5} {tot_n / tot_ss:8.4f} {tot_p:10d} {tot_p / tot_ss:8.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print("\nall layers equal (none - runs * tail == SCALE-Sim + 1, same folds)" if ok else
          "\nMISMATCH: see the rows marked NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
