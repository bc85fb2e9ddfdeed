"""``[moe]``: the MoE layer's expert buffers, token queues and gate (M3ViT-style, see docs/moe.md).

Values the M3ViT paper does not publish are documented defaults, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Bound, Section

__all__ = ["MoeSpec"]


@dataclass(frozen=True, kw_only=True)
class MoeSpec(Section):
    """The MoE unit (docs/moe.md).

    - ``expert_buffers``: on-chip expert weight buffers of the reordering schedule; 2 is
      M3ViT's ping-pong (expert e computes from one while e+1 loads into the other), 1 loads
      and computes strictly in turn; up to 4.
    - ``expert_buffer_kib``: one expert buffer; an expert (``W1`` and ``W2``) must fit in it
      (a 384 x 384 x 2 expert needs 288 KiB at 8 bits, 576 KiB at 16). Also the size of one
      slot of the cache and of the naive schedule's expert memory.
    - ``expert_weight_width``: bits of one expert weight as stored in DRAM and in the expert
      buffers (packed); it sizes an expert, its loads (DRAM traffic, cycles, energy) and its
      buffer reads. The array multiplies ``weight_width``-bit weights, so it may not exceed
      ``weight_width`` (checked when experts are mapped); narrower experts are sign-extended
      on their way into the array.
    - ``cached_experts``: expert slots of the cache-based baseline, shared by the MoE layers
      (the layer-wise design runs one layer at a time), least recently used replaced on a
      miss, kept across frames.
    - ``queue_depth``: token entries one per-expert queue holds (a frame's tokens at most).
    - ``gate_width``: bits of the gate value stored with each token id in a queue (unsigned
      fixed point, ``gate_width`` fraction bits).
    - ``onchip_kib``: on-chip memory of the device, to say whether a schedule fits
      (ZCU104: 11 Mbit BRAM + 27 Mbit URAM = 4864 KiB).
    """

    prefix: ClassVar[str] = "moe"

    expert_buffers: int = 2             # on-chip expert weight buffers (2 = ping-pong)
    expert_buffer_kib: int = 320        # one expert buffer (a 384x384x2 int8 expert needs 288 KiB)
    expert_weight_width: int = 8        # bits of a stored expert weight (<= weight_width)
    cached_experts: int = 4             # expert slots of the cache-based baseline (shared by the layers)
    queue_depth: int = 1025             # token entries one per-expert queue can hold
    gate_width: int = 16                # bits of a queued gate value (fraction bits)
    onchip_kib: int = 4864              # device on-chip memory (ZCU104 BRAM + URAM)

    BOUNDS = {
        "expert_buffers": Bound(1, 4, note="2 is ping-pong", why="the scheduler RTL walks at most 4 buffers"),
        "expert_buffer_kib": Bound(1, 1 << 20, "KiB", why="1 GiB: more than any FPGA's on-chip memory"),
        "expert_weight_width": Bound(2, 32, "bits", why="as weight_width: a signed weight the array multiplies"),
        "cached_experts": Bound(1, 4096, why="the cache baseline keeps an LRU list of this many slots"),
        "queue_depth": Bound(1, 1 << 16, "tokens",
                             why="a queue holds one frame's tokens, and a frame has at most 65536 (models.moe)"),
        "gate_width": Bound(1, 32, "bits", why="a queued gate is an unsigned fixed-point fraction of at most 32 bits"),
        "onchip_kib": Bound(1, 1 << 24, "KiB", why="16 GiB: beyond any device's on-chip memory"),
    }
