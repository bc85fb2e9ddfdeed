"""``[moe]``: the MoE layer's expert buffers, token queues and gate (M3ViT-style, see docs/moe.md).

Values the M3ViT paper does not publish are documented defaults, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Section

__all__ = ["MoeSpec"]


@dataclass(frozen=True, kw_only=True)
class MoeSpec(Section):
    """The MoE unit (docs/moe.md).

    - ``expert_buffers``: on-chip expert weight buffers of the reordering schedule; 2 is
      M3ViT's ping-pong (expert e computes from one while e+1 loads into the other), 1 loads
      and computes strictly in turn; up to 4.
    - ``expert_buffer_kib``: one expert buffer; an expert (``W1`` and ``W2``) must fit in it
      (a 384 x 384 x 2 int8 expert needs 288 KiB). Also the size of one slot of the cache and
      of the naive schedule's expert memory.
    - ``cached_experts``: expert slots per MoE layer of the cache-based baseline (kept across
      frames, least recently used replaced on a miss).
    - ``queue_depth``: token entries one per-expert queue holds (a frame's tokens at most).
    - ``gate_width``: bits of the gate value stored with each token id in a queue (unsigned
      fixed point, ``gate_width`` fraction bits).
    - ``onchip_kib``: on-chip memory of the device, to say whether a schedule fits
      (ZCU104: 11 Mbit BRAM + 27 Mbit URAM = 4864 KiB).
    """

    prefix: ClassVar[str] = "moe"

    expert_buffers: int = 2             # on-chip expert weight buffers (2 = ping-pong)
    expert_buffer_kib: int = 320        # one expert buffer (a 384x384x2 int8 expert needs 288 KiB)
    cached_experts: int = 4             # expert slots per MoE layer of the cache-based baseline
    queue_depth: int = 1025             # token entries one per-expert queue can hold
    gate_width: int = 16                # bits of a queued gate value (fraction bits)
    onchip_kib: int = 4864              # device on-chip memory (ZCU104 BRAM + URAM)

    def validate(self) -> None:
        self.positive("expert_buffers", "expert_buffer_kib", "cached_experts", "queue_depth", "gate_width",
                      "onchip_kib")
        if self.expert_buffers > 4:
            self.fail("expert_buffers", "must be 1..4 (2 is ping-pong)")
        if self.gate_width > 32:
            self.fail("gate_width", "must be 1..32 bits")
