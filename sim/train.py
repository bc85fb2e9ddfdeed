"""One N:M sparse training iteration on a SAT-style accelerator.

Three units work together, each with its own timing mechanism:

- the **GEMM array** (the engine of :mod:`hwgen.engine`, timed by :mod:`sim.simulate`) runs,
  for every layer, the forward GEMM FF (``Y = X W^T``), the backward-data GEMM BP
  (``dX = dY W``) and the weight-gradient GEMM WG (``dW = dY^T X``), with the shapes of
  :func:`models.zoo_train.training_gemms`. Order: FF of every layer, then from the last layer
  back BP and WG. The first layer's BP is skipped (nothing needs the gradient of the input).
- the **SORE** (:mod:`hwgen.sore`) ranks every group of ``m`` master weights to make an N:M
  mask: :func:`sim.units.sore.sore_cycles` cycles, or the time to read the FP32 master weights
  and write the pruned weights, whichever is longer.
- the **weight-update vector engine** updates every weight once its WG is done:
  ``ceil(weights / update_lanes)`` cycles, or the time to read master weights, momentum and
  gradients and write master weights and momentum back, whichever is longer.

Methods: ``dense`` (no masks; every GEMM dense), ``srste`` (N:M mask on FF only: the SORE
makes the FF mask; BP uses ``(W * mask)^T``, which is not N:M along its reduction, so runs
dense), ``bdwp`` (two masks of the same weights: FF groups along the input dimension, BP
groups along the output dimension; both GEMMs N:M; WG dense).

Options, both mechanisms rather than factors:

- **pre-generation**: the SORE makes every mask ahead, back to back from the start of the
  iteration (the weights do not change until the update), so a GEMM waits for its mask only
  if the SORE has fallen behind; without it, a mask is made just before the GEMM that needs
  it, while the array waits.
- **interleave**: the GEMMs share one DRAM/buffer timeline (:class:`sim.units.memory.DramTimeline`),
  so the first fetch of a GEMM overlaps the last runs of the one before; without it, each
  GEMM starts with empty buffers after the previous one has written back.

Simplification: the three units' DRAM transfers are not arbitrated against each other (each
sees the full bandwidth); the array's traffic dominates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sparseforge.dataflow.mapper import check_layers, check_sparsity, map_layer
from sparseforge.models.network import GemmLayer, Network
from sparseforge.models.zoo_train import training_gemms
from sparseforge.progress import progress_task
from sparseforge.spec import HardwareSpec

from .simulate import LayerResult, simulate_layer
from .units.memory import DramTimeline
from .units.sore import sore_cycles

__all__ = ["METHODS", "TrainLayerResult", "TrainResult", "simulate_training", "ideal_speedup"]

METHODS = ("dense", "srste", "bdwp")


def ideal_speedup(method: str, sparsity: tuple[int, int] | None) -> float:
    """Speedup over dense training if FF, BP and WG cost the same and scale with density."""
    if method == "dense" or sparsity is None:
        return 1.0
    d = sparsity[0] / sparsity[1]
    if method == "srste":
        return 1.0 / (1 / 3 + 1 / 3 * d + 1 / 3)
    return 1.0 / (1 / 3 + 2 / 3 * d)


@dataclass(frozen=True)
class TrainLayerResult:
    name: str
    kind: str
    ff: LayerResult
    bp: LayerResult | None
    wg: LayerResult
    mask_cycles: int        # SORE busy for this layer's masks
    mask_wait_cycles: int   # array idle waiting for this layer's masks
    update_cycles: int      # vector engine busy for this layer
    sore_dram_bytes: int
    update_dram_bytes: int
    energy_pj: dict[str, float]

    @property
    def gemm_cycles(self) -> int:
        return self.ff.cycles + (self.bp.cycles if self.bp else 0) + self.wg.cycles

    @property
    def dram_bytes(self) -> int:
        gemm = self.ff.dram_bytes + (self.bp.dram_bytes if self.bp else 0) + self.wg.dram_bytes
        return gemm + self.sore_dram_bytes + self.update_dram_bytes

    def to_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind,
            "ff_cycles": self.ff.cycles, "bp_cycles": self.bp.cycles if self.bp else 0,
            "wg_cycles": self.wg.cycles, "ff_mode": self.ff.mode, "bp_mode": self.bp.mode if self.bp else None,
            "mask_cycles": self.mask_cycles, "mask_wait_cycles": self.mask_wait_cycles,
            "update_cycles": self.update_cycles,
            "stall_cycles": self.ff.stall_cycles + (self.bp.stall_cycles if self.bp else 0) + self.wg.stall_cycles,
            "dram_bytes": self.dram_bytes, "energy_pj": self.energy_pj,
        }


@dataclass(frozen=True)
class TrainResult:
    network: str
    spec: HardwareSpec
    method: str
    sparsity: tuple[int, int] | None
    interleave: bool
    pregenerate: bool
    layers: tuple[TrainLayerResult, ...]
    cycles: int             # the iteration, start to the last unit finishing
    array_end: int
    sore_busy: int
    update_busy: int

    @property
    def time_s(self) -> float:
        return self.cycles / (self.spec.clock_mhz * 1e6)

    def totals(self) -> dict:
        ls = self.layers
        ff = sum(lay.ff.cycles for lay in ls)
        bp = sum(lay.bp.cycles for lay in ls if lay.bp)
        wg = sum(lay.wg.cycles for lay in ls)
        compute = sum(lay.ff.compute_cycles + (lay.bp.compute_cycles if lay.bp else 0) + lay.wg.compute_cycles
                      for lay in ls)
        energy: dict[str, float] = {}
        for lay in ls:
            for k, v in lay.energy_pj.items():
                energy[k] = energy.get(k, 0.0) + v
        return {
            "cycles": self.cycles, "time_ms": self.time_s * 1e3,
            "ff_cycles": ff, "bp_cycles": bp, "wg_cycles": wg,
            "gemm_compute_cycles": compute, "gemm_stall_cycles": ff + bp + wg - compute,
            "mask_wait_cycles": sum(lay.mask_wait_cycles for lay in ls),
            "update_tail_cycles": self.cycles - self.array_end,
            "sore_busy_cycles": self.sore_busy, "update_busy_cycles": self.update_busy,
            "dram_bytes": sum(lay.dram_bytes for lay in ls),
            "energy_pj": energy, "energy_total_pj": float(sum(energy.values())),
        }


def _sore_task(spec: HardwareSpec, *, groups: int, weights: int, sparsity: tuple[int, int]) -> tuple[int, int]:
    """(cycles, DRAM bytes) of one mask pass over ``weights`` master weights."""
    n, m = sparsity
    t = spec.train
    compute = sore_cycles(groups=groups, lanes=t.sore_lanes, m=m)
    kept = math.ceil(weights * n / m)
    nbytes = weights * t.master_bytes + kept * t.sparse_weight_bytes + math.ceil(kept * max(1, (m - 1).bit_length()) / 8)
    dram = spec.dram_latency_cycles + math.ceil(nbytes / spec.dram_bytes_per_cycle)
    return max(compute, dram), nbytes


def _update_task(spec: HardwareSpec, weights: int) -> tuple[int, int]:
    t = spec.train
    compute = math.ceil(weights / t.update_lanes)
    nbytes = weights * (2 * t.master_bytes + 2 * t.optimizer_bytes + t.grad_bytes)
    dram = spec.dram_latency_cycles + math.ceil(nbytes / spec.dram_bytes_per_cycle)
    return max(compute, dram), nbytes


def _best_wg_orientation(spec: HardwareSpec, mp):
    """WG is dense, so either operand can be the stationary one: ``dW[N, K] = dY^T X``
    streams the N rows of ``dY^T`` past ``X`` (tokens = N), ``dW^T[K, N] = X^T dY`` streams
    the K rows of ``X^T`` past ``dY`` (tokens = K). Keep the orientation that runs faster
    alone (both reduce over batch x positions)."""
    flipped = map_layer(spec, _flipped(mp.layer), None)
    return flipped if simulate_layer(spec, flipped).cycles < simulate_layer(spec, mp).cycles else mp


def _flipped(lay: GemmLayer) -> GemmLayer:
    """WG's other orientation: ``dW^T[K, N] = X^T dY`` (see :func:`_best_wg_orientation`)."""
    return GemmLayer(name=lay.name, tokens=lay.n_out, k=lay.k, n_out=lay.tokens, kind=lay.kind,
                     prunable=False, group=lay.group, count=lay.count)


def simulate_training(spec: HardwareSpec, network: Network, *, method: str, sparsity: tuple[int, int] | None,
                      interleave: bool = True, pregenerate: bool = True, progress: Any = None) -> TrainResult:
    """Simulate one training iteration of ``network`` (its FF GEMMs at the training batch).
    ``progress`` (:mod:`sparseforge.progress`) follows the GEMMs."""
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not allowed: choose one of {', '.join(METHODS)}")
    sparsity = check_sparsity(spec, sparsity)
    if method != "dense" and sparsity is None:
        raise ValueError(f"method {method!r} needs an N:M sparsity (e.g. 2:8), not dense")
    if method == "dense":
        sparsity = None
    layers = network.layers
    ff_sp = sparsity
    bp_sp = sparsity if method == "bdwp" else None
    shapes = [training_gemms(lay) for lay in layers]
    for lay in layers:
        if lay.prunable and sparsity and lay.k < sparsity[1]:
            raise ValueError(f"layer {lay.name}: reduction K = {lay.k} is shorter than the group size "
                             f"M = {sparsity[1]}: N:M needs K >= M")

    # every GEMM of the iteration is checked before the first one is simulated, so a workload
    # the mapper cannot take is refused at once, not after the layers before it
    gemms_to_map = []
    for i, (ff, bp, wg) in enumerate(shapes):
        gemms_to_map.append((ff, ff_sp if ff.prunable else None))
        if i > 0:
            gemms_to_map.append((bp, bp_sp if bp.prunable else None))
        gemms_to_map += [(wg, None), (_flipped(wg), None)]
    check_layers(spec, gemms_to_map)

    # ---- SORE schedule: which masks, in the order the array needs them. Every layer with a
    # weight (not an attention product) is updated; only the prunable ones get masks (a
    # depthwise conv's weights are trained dense: see docs/training.md)
    has_w = [lay.kind != "attention" for lay in layers]
    masks: dict[tuple[str, int], tuple[int, int]] = {}
    if sparsity:
        for i, lay in enumerate(layers):
            if has_w[i] and lay.prunable:
                w = lay.n_out * lay.k * lay.count
                masks[("ff", i)] = _sore_task(spec, groups=math.ceil(lay.k / sparsity[1]) * lay.n_out * lay.count,
                                              weights=w, sparsity=sparsity)
                if method == "bdwp" and i > 0:
                    masks[("bp", i)] = _sore_task(spec, groups=math.ceil(lay.n_out / sparsity[1]) * lay.k * lay.count,
                                                  weights=w, sparsity=sparsity)
    order = [("ff", i) for i in range(len(layers))] + [(p, i) for i in reversed(range(len(layers)))
                                                        for p in ("bp", "wg")]
    pregen_end: dict[tuple[str, int], int] = {}
    if pregenerate:
        t = 0
        for key in order:
            if key in masks:
                t += masks[key][0]
                pregen_end[key] = t

    # ---- the array, in order
    timeline = DramTimeline(spec) if interleave else None
    array_free = 0
    results: dict[tuple[str, int], LayerResult] = {}
    waits: dict[int, int] = {}
    wg_end: dict[int, int] = {}
    bar = progress_task(progress, f"training iteration of {network.name}", total=len(order) - 1, unit="GEMMs")
    for key in order:
        phase, i = key
        if phase == "bp" and i == 0:
            continue
        bar.advance(1, f"{phase.upper()} {layers[i].name}")
        gemm: GemmLayer = shapes[i][{"ff": 0, "bp": 1, "wg": 2}[phase]]
        sp = {"ff": ff_sp, "bp": bp_sp, "wg": None}[phase]
        mp = map_layer(spec, gemm, sp if gemm.prunable else None)
        if phase == "wg":
            mp = _best_wg_orientation(spec, mp)
        ready = array_free
        if key in masks:
            ready = pregen_end[key] if pregenerate else array_free + masks[key][0]
        waits[i] = waits.get(i, 0) + max(0, ready - array_free)
        if timeline is not None:
            res = simulate_layer(spec, mp, timeline=timeline, ready=ready)
            array_free = timeline.c_end[-1]
        else:
            tl = DramTimeline(spec, start=max(array_free, ready))
            res = simulate_layer(spec, mp, timeline=tl)
            array_free = tl.finish()
        results[key] = res
        if phase == "wg":
            wg_end[i] = array_free
    bar.close()
    array_end = timeline.finish() if timeline is not None else array_free

    # ---- weight updates on the vector engine, as each WG completes (last layer first)
    engine_free = 0
    update: dict[int, tuple[int, int]] = {}
    for i in reversed(range(len(layers))):
        if not has_w[i]:
            continue
        lay = layers[i]
        dur, nbytes = _update_task(spec, lay.n_out * lay.k * lay.count)
        start = max(engine_free, wg_end[i])
        engine_free = start + dur
        update[i] = (dur, nbytes)
    cycles = max(array_end, engine_free, max(pregen_end.values(), default=0))

    out = []
    t = spec.train
    for i, lay in enumerate(layers):
        w = lay.n_out * lay.k * lay.count
        mk = [masks[k] for k in (("ff", i), ("bp", i)) if k in masks]
        upd = update.get(i, (0, 0))
        gemms = [results[("ff", i)], results.get(("bp", i)), results[("wg", i)]]
        energy = {"mac": 0.0, "sram": 0.0, "dram": 0.0}
        for r in gemms:
            if r is not None:
                for k, v in r.energy_pj.items():
                    energy[k] += v
        sore_bytes = sum(b for _, b in mk)
        energy["sore"] = len(mk) * w * t.e_sore_pj + sore_bytes * spec.e_dram_pj_per_byte
        energy["update"] = (w * t.e_update_pj if upd[0] else 0.0) + upd[1] * spec.e_dram_pj_per_byte
        out.append(TrainLayerResult(
            name=lay.name, kind=lay.kind, ff=gemms[0], bp=gemms[1], wg=gemms[2],
            mask_cycles=sum(c for c, _ in mk), mask_wait_cycles=waits.get(i, 0), update_cycles=upd[0],
            sore_dram_bytes=sore_bytes, update_dram_bytes=upd[1], energy_pj=energy,
        ))
    return TrainResult(network=network.name, spec=spec, method=method, sparsity=sparsity, interleave=interleave,
                       pregenerate=pregenerate, layers=tuple(out), cycles=int(cycles), array_end=int(array_end),
                       sore_busy=sum(c for c, _ in masks.values()), update_busy=sum(c for c, _ in update.values()))
