"""Time to prune the real all-MiniLM-L6-v2 2:4 with each method (magnitude, Wanda, SparseGPT,
each one-shot and with the refit), on --calib calibration tokens, and the quality of each on
held-out text (sentence-embedding cosine to the dense float model and nearest-centroid topic
accuracy, float and int8); then the table of methods x patterns (2:4, 1:4, 2:8).

The timed runs are computed (their cache entries are removed first, then written again); the
table reuses what they and earlier runs cached (``sparseforge prune`` shows the same table). NumPy's BLAS threads follow
OPENBLAS_NUM_THREADS (set it to 2 for the 2-core figure of docs/pruning.md).

    OPENBLAS_NUM_THREADS=2 python benchmarks/bench_prune.py [--calib 8192] [--patterns 2:4,1:4,2:8]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sparseforge as sf  # noqa: E402
from sparseforge.models.nm_methods import METHODS  # noqa: E402
from sparseforge.sweep import accuracy  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calib", type=int, default=8192)
    ap.add_argument("--patterns", default="2:4,1:4,2:8")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", metavar="FILE", help="also write every record as JSON")
    args = ap.parse_args()
    methods = args.methods.split(",")
    print(f"all-MiniLM-L6-v2 2:4, {args.calib} calibration tokens; BLAS threads "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}; load average {os.getloadavg()[0]:.1f}")
    head = f"{'method':<10} {'step':<9} {'wall s':>7} {'cosine':>13} {'accuracy':>13}"
    print(head + "\n" + f"{'':<28}{'float':>7}{'int8':>7}{'float':>7}{'int8':>7}\n" + "-" * len(head))
    dense = accuracy.dense_quality()
    print(f"{'dense':<10} {'-':<9} {'':>7} {dense['float']['cosine']:>6.3f} {dense['int8']['cosine']:>6.3f} "
          f"{dense['float']['accuracy']:>6.3f} {dense['int8']['accuracy']:>6.3f}", flush=True)
    timed = []
    for method in methods:
        for recover in (False, True):
            key = accuracy.cache_key("minilm", 2, 4, method, recover=recover, calib=args.calib)
            for old in accuracy.cache_folder().glob(f"{key}.*"):        # computed now, and cached for the table
                old.unlink()
            t0 = time.perf_counter()
            rec = accuracy.measure("minilm", 2, 4, method, calib=args.calib, recover=recover)
            wall = time.perf_counter() - t0
            timed.append({**{k: v for k, v in rec.items() if k != "tensors"}, "wall_seconds": wall})
            print(f"{method:<10} {'+refit' if recover else 'one-shot':<9} {rec['prune_seconds']:>7.1f} "
                  f"{rec['float']['cosine']:>6.3f} {rec['int8']['cosine']:>6.3f} {rec['float']['accuracy']:>6.3f} "
                  f"{rec['int8']['accuracy']:>6.3f}", flush=True)
    print("(wall s: pruning alone, the sequential calibration included; measuring quality took "
          f"{sum(r['eval_seconds'] for r in timed) / len(timed):.0f} s more per run)\n")
    table = sf.prune("minilm", args.patterns, methods, calib=args.calib)
    print(table.to_text())
    if args.json:
        Path(args.json).write_text(json.dumps({"timed": timed, "table": table.to_dict()}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
