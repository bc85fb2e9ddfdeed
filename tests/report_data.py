"""Results tables for the report tests, made by running the real simulator.

:func:`simulated_sweep` simulates all-MiniLM-L6-v2 (16 tokens) on a small grid of array
shapes and N:M settings and lays the results out as the sweep store does (docs/sweep.md:
``point_id, digest, workload, version, status, error``, the axis columns, the metrics,
``layers_json``). Two columns are test assumptions, not models: ``dsp`` is one DSP per
multiplier, and ``fits`` says whether that stays within a 160-DSP budget, so that the grid
has points that do not fit. One point has a spec the validator refuses (``rows = 0``) and
is stored as failed with the validator's own message.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd

from sparseforge.errors import InputError
from sparseforge.models.network import GemmLayer, Network
from sparseforge.models.zoo import get_network
from sparseforge.sim.simulate import simulate_network
from sparseforge.spec import load_spec

AXES = ["rows", "cols", "nm"]
DSP_BUDGET = 160          # test assumption: a device with 160 DSPs


def simulated_sweep(rows=(4, 8, 16), cols=(4, 8), nms=("2:4", "1:4", "dense"), *, tokens: int = 16,
                    failed: bool = True) -> pd.DataFrame:
    base = load_spec("tiny")
    net = get_network("minilm", tokens=tokens)
    points = list(itertools.product(rows, cols, nms))
    if failed:
        points.append((0, 4, "2:4"))
    out = []
    for pid, (r, c, nm) in enumerate(points):
        n, m = (4, 4) if nm == "dense" else map(int, nm.split(":"))
        row = {"point_id": pid, "digest": None, "workload": "w" * 16, "version": "test", "status": "ok",
               "error": None, "rows": r, "cols": c, "nm": nm}
        try:
            spec = base.replace(rows=r, cols=c, n=n, m=m)
        except InputError as exc:
            row.update(status="failed", error=str(exc), digest=f"bad{pid:013d}")
            out.append(row)
            continue
        res = simulate_network(spec, net, None if nm == "dense" else (n, m))
        lat = res.time_s
        energy = sum(res.energy_pj.values()) * 1e-12
        dsp = float(spec.multipliers)
        row.update(digest=spec.digest, latency_s=lat, cycles=res.cycles, energy_j=energy, edp=energy * lat,
                   throughput=1.0 / lat, dsp=dsp, lut=np.nan, ff=np.nan, bram36=np.nan,
                   clock_mhz_used=spec.clock_mhz, clock_source="spec", fits=bool(dsp <= DSP_BUDGET),
                   perf_per_dsp=1.0 / lat / dsp,
                   layers_json=json.dumps([{"workload": "minilm", "name": x.name, "cycles": x.cycles,
                                            "utilisation": x.utilisation, "stall_cycles": x.stall_cycles}
                                           for x in res.layers]))
        out.append(row)
    return pd.DataFrame(out)


def small_network() -> Network:
    """Five GEMMs of the three kinds (a projection, two attention heads, a conv, an FFN
    pair): enough for every picture, small enough to draw in a blink."""
    return Network(name="mini", layers=(
        GemmLayer(name="proj", tokens=32, k=128, n_out=64),
        GemmLayer(name="scores", tokens=32, k=16, n_out=32, kind="attention", prunable=False, count=2),
        GemmLayer(name="conv", tokens=64, k=144, n_out=32, kind="conv"),
        GemmLayer(name="ffn.up", tokens=32, k=64, n_out=256),
        GemmLayer(name="ffn.down", tokens=32, k=256, n_out=64),
    ))
