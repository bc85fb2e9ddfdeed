"""Cycle model of the MoE expert scheduler of ``hwgen.moe.ExpertScheduler``.

The scheduler walks the non-empty expert queues in expert order: expert ``i`` loads into
buffer ``i mod B`` (``B = expert_buffers``, 2 = ping-pong) while expert ``i - 1`` computes.
:func:`reorder_timeline` is its handshake recurrence, checked cycle for cycle against the
generated Verilog in ``tests/test_moe_rtl.py``; :mod:`sim.moe` composes it into the reordered
schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RUN_FIRST_CYCLE", "Timeline", "reorder_timeline"]

#: The scheduler samples ``start`` in cycle 0 and evaluates its first decisions in cycle 1.
RUN_FIRST_CYCLE = 1


@dataclass(frozen=True)
class Timeline:
    """Cycles (``start`` = cycle 0) of the expert scheduler's handshakes for ``n`` non-empty
    experts in walk order: ``load_req[i]`` (the cycle the load request is high),
    ``load_done[i]``, ``comp_start[i]``, ``comp_done[i]``, and ``done`` (first cycle ``done``
    is high)."""

    load_req: np.ndarray
    load_done: np.ndarray
    comp_start: np.ndarray
    comp_done: np.ndarray
    done: int

    @property
    def load_wait(self) -> int:
        """Cycles the compute side waited for weights (between computes, and before the first)."""
        gaps = self.comp_start[1:] - self.comp_done[:-1] - 2
        first = int(self.comp_start[0]) if len(self.comp_start) else 0
        return int(gaps.clip(min=0).sum()) + first


def reorder_timeline(load_cycles: np.ndarray, compute_cycles: np.ndarray, *, buffers: int) -> Timeline:
    """The expert scheduler's cycles, from its RTL mechanism (``hwgen.moe.ExpertScheduler``).

    All decisions are registered: a condition seen in cycle ``c`` acts in cycle ``c + 1``.
    With ``L_i``/``C_i`` the cycles from a load request / compute start to its done (``L_i``
    is the DRAM latency plus the expert's bytes, at ``moe.expert_weight_width``, over the
    bandwidth: :func:`dataflow.moe.map_experts`; the scheduler itself only waits for the
    loader, so it does not depend on the width)::

        load_req_i   = max(1, load_done_{i-1} + 1, comp_done_{i-B} + 1) + 1
                       (loader idle, and buffer i mod B freed by expert i - B)
        load_done_i  = load_req_i + L_i
        comp_start_i = max(load_done_i + 1, comp_done_{i-1} + 1) + 1
        comp_done_i  = comp_start_i + C_i
        done         = comp_done_{n-1} + 1          (2 when no queue is non-empty)
    """
    L = np.asarray(load_cycles, dtype=np.int64)
    C = np.asarray(compute_cycles, dtype=np.int64)
    n = len(L)
    A, D, S, F = (np.zeros(n, dtype=np.int64) for _ in range(4))
    for i in range(n):
        a = max(RUN_FIRST_CYCLE, D[i - 1] + 1 if i else 0, F[i - buffers] + 1 if i >= buffers else 0)
        A[i] = a + 1
        D[i] = A[i] + L[i]
        S[i] = max(D[i] + 1, F[i - 1] + 1 if i else 0) + 1
        F[i] = S[i] + C[i]
    done = int(F[-1]) + 1 if n else RUN_FIRST_CYCLE + 1
    return Timeline(load_req=A, load_done=D, comp_start=S, comp_done=F, done=done)
