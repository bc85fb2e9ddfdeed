"""Co-design sweeps: many accelerator designs on one set of workloads and one FPGA part,
on a local process pool or a Dask cluster, into a transactional store (docs/sweep.md).

    from sparseforge.sweep import load_sweep, run_sweep, load_results
    summary = run_sweep("examples/minilm_zcu104.toml", out="runs")
    df = load_results(summary.run_dir)

This is a flow: it sits above the spec, the models, the simulator and the hardware cost
model, and below the API and the CLI.
"""

from .file import OBJECTIVES, Sweep, SweepError, load_sweep, parse_sweep
from .run import Summary, run_sweep
from .store import load_results

__all__ = ["OBJECTIVES", "Summary", "Sweep", "SweepError", "load_results", "load_sweep", "parse_sweep", "run_sweep"]
