"""``[train]``: the units a SAT-style N:M training accelerator adds to the GEMM array.

The SAT paper (Fang et al., TCAD 2023) names a sparse online reduction engine (SORE) that
generates N:M weights on the fly (32 lanes, M cycles per group) and a weight-update vector
engine (FP16 compute, FP32 master weights); sizes and energies it does not publish are
documented defaults here, marked as assumptions in the presets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Bound, Section

__all__ = ["TrainSpec"]


@dataclass(frozen=True, kw_only=True)
class TrainSpec(Section):
    prefix: ClassVar[str] = "train"

    sore_lanes: int = 32              # SORE lanes: groups ranked in parallel (paper: 32)
    update_lanes: int = 32            # weight-update vector engine lanes (elements per cycle)
    master_bytes: int = 4             # FP32 master weights
    optimizer_bytes: int = 4          # FP32 momentum per weight (SGD with momentum)
    grad_bytes: int = 2               # FP16 weight gradients written by the WG GEMM
    sparse_weight_bytes: int = 2      # FP16/int weights the SORE writes for the array
    e_update_pj: float = 9.2          # per weight update: 2 FP32 FMAs (Horowitz 45 nm: 4.6 pJ each)
    e_sore_pj: float = 0.05           # per weight ranked: one magnitude compare (assumption)

    BOUNDS = {
        "sore_lanes": Bound(1, 4096, "lanes", why="128 times SAT's 32 lanes"),
        "update_lanes": Bound(1, 4096, "lanes", why="64 times the sat-vcu1525 preset's 64 lanes"),
        "master_bytes": Bound(1, 8, "bytes", why="FP64 at most"),
        "optimizer_bytes": Bound(1, 16, "bytes", why="Adam's two FP64 moments at most"),
        "grad_bytes": Bound(1, 8, "bytes", why="FP64 at most"),
        "sparse_weight_bytes": Bound(1, 8, "bytes", why="FP64 at most"),
        "e_update_pj": Bound(0, 1_000_000, "pJ", why="1 uJ per event: far above any published figure"),
        "e_sore_pj": Bound(0, 1_000_000, "pJ", why="1 uJ per event: far above any published figure"),
    }
