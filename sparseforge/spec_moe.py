"""``[moe]``: the MoE layer's expert buffers, queues and gate (M3ViT-style, see docs).

Values the M3ViT paper does not publish are documented defaults, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .specbase import Section

__all__ = ["MoeSpec"]


@dataclass(frozen=True, kw_only=True)
class MoeSpec(Section):
    prefix: ClassVar[str] = "moe"

    expert_buffers: int = 2             # on-chip expert weight buffers (2 = ping-pong)
    expert_buffer_kib: int = 320        # one expert buffer (a 384x384x2 int8 expert needs 288 KiB)
    cached_experts: int = 4             # expert slots of the cache-based baseline
    queue_depth: int = 1025             # token ids one per-expert queue can hold
    gate_tokens_per_cycle: int = 1      # tokens the router output stage pushes per cycle

    def validate(self) -> None:
        self.positive("expert_buffers", "expert_buffer_kib", "cached_experts", "queue_depth",
                      "gate_tokens_per_cycle")
