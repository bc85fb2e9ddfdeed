"""RTL of M3ViT's computation reordering: the router output stage and the expert scheduler.

``RouterStage``
    Takes one routed token per cycle (``in_valid``, its id, its ``top_k`` expert ids and
    gates, as the top-k of the active task's router chose them) and pushes ``(token, gate)``
    into the queue of each chosen expert: one queue memory per expert, so the ``top_k``
    pushes of a token (to distinct experts) happen in the same cycle. ``counts`` holds every
    queue's length; a push into a full queue is dropped and raises ``overflow``. A synchronous
    read port (``rd_expert``, ``rd_addr`` -> ``rd_data`` one cycle later) serves the gather.
``ExpertScheduler``
    After ``start`` it walks the non-empty queues in expert order. Expert ``i`` is loaded into
    buffer ``i mod buffers`` (``load_req`` pulse with ``load_expert``/``load_buf``; the DRAM
    side answers ``load_done``) as soon as the loader is idle and that buffer's previous expert
    has finished computing; expert ``i`` computes (``comp_start`` pulse with ``comp_expert``,
    ``comp_buf`` -- the ping-pong swap -- and ``comp_count``; the array answers ``comp_done``)
    once its weights are in and expert ``i - 1`` is done. While an expert computes, the
    scheduler streams its queue's token ids and gates (``tok_valid``), one per cycle: the
    gather addresses of the activations and the gates of the combine. ``done`` rises after the
    last expert's ``comp_done``.
``MoeReorder``
    The two together: pushes are accepted while the scheduler is idle; ``clear`` empties the
    queues for the next layer.

All decisions are registered: a condition visible in cycle ``c`` acts in cycle ``c + 1``. This
gives the timing recurrence of :func:`sim.units.moe.reorder_timeline`; ``tests/test_moe_rtl.py``
checks it cycle for cycle. Comb logic is plain expressions (``word_select``, ``bit_select``,
the lowest-set-bit trick), not ``Array`` muxes, which Icarus evaluates late (see docs).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from sparseforge.spec import HardwareSpec

__all__ = ["RouterStage", "ExpertScheduler", "MoeReorder", "build_router", "build_scheduler", "build_reorder"]


def _bits(n: int) -> int:
    """Bits of an index into ``n`` things (at least 1)."""
    return max(1, (n - 1).bit_length())


def _check(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be an integer {allowed}, not {value!r}")
    return value


class RouterStage(wiring.Component):
    """Top-k router output stage with per-expert token queues (see module doc)."""

    def __init__(self, *, experts: int, top_k: int, depth: int, token_width: int, gate_width: int):
        self._e = _check("experts", experts, 1)
        self._k = _check("top_k", top_k, 1)
        if top_k > experts:
            raise ValueError(f"top_k = {top_k} must not exceed experts = {experts}")
        self._depth = _check("depth", depth, 1)
        self._tw = _check("token_width", token_width, 1)
        self._gw = _check("gate_width", gate_width, 1, 32)
        if (1 << token_width) < depth:
            raise ValueError(f"token_width = {token_width} cannot number {depth} tokens")
        self._ew = _bits(experts)
        self._cw = depth.bit_length()
        super().__init__({
            "clear": In(1),
            "in_valid": In(1),
            "in_token": In(token_width),
            "in_experts": In(top_k * self._ew),
            "in_gates": In(top_k * gate_width),
            "counts": Out(experts * self._cw),
            "overflow": Out(1),
            "rd_expert": In(self._ew),
            "rd_addr": In(range(depth)),
            "rd_data": Out(token_width + gate_width),
        })

    @property
    def params(self) -> dict[str, int]:
        return {"experts": self._e, "top_k": self._k, "depth": self._depth, "token_width": self._tw,
                "gate_width": self._gw, "count_width": self._cw}

    def elaborate(self, platform):
        m = Module()
        E, K, ew, cw, tw, gw = self._e, self._k, self._ew, self._cw, self._tw, self._gw
        counts = [Signal(cw, name=f"count{e}") for e in range(E)]
        rd = []
        for e in range(E):
            mem = memory.Memory(shape=unsigned(tw + gw), depth=self._depth, init=[])
            m.submodules[f"queue{e}"] = mem
            wr = mem.write_port()
            rp = mem.read_port(domain="sync")
            match = [self.in_experts.word_select(k, ew) == e for k in range(K)]
            hit = Signal(name=f"hit{e}")
            gate = Signal(gw, name=f"gate{e}")
            m.d.comb += hit.eq(Cat(*match).any())
            g = Const(0, gw)
            for k in range(K):
                g = g | Mux(match[k], self.in_gates.word_select(k, gw), 0)
            full = counts[e] == self._depth
            m.d.comb += [
                gate.eq(g),
                wr.en.eq(self.in_valid & hit & ~full),
                wr.addr.eq(counts[e]),
                wr.data.eq(Cat(self.in_token, gate)),
                rp.addr.eq(self.rd_addr),
            ]
            rd.append(rp.data)
            with m.If(self.clear):
                m.d.sync += counts[e].eq(0)
            with m.Elif(self.in_valid & hit & ~full):
                m.d.sync += counts[e].eq(counts[e] + 1)
        overflow = Signal()
        any_full_hit = Cat(*[(counts[e] == self._depth) & Cat(*[self.in_experts.word_select(k, ew) == e
                                                                 for k in range(K)]).any() for e in range(E)]).any()
        with m.If(self.clear):
            m.d.sync += overflow.eq(0)
        with m.Elif(self.in_valid & any_full_hit):
            m.d.sync += overflow.eq(1)
        rd_sel = Signal(ew)
        m.d.sync += rd_sel.eq(self.rd_expert)          # read data arrives one cycle after the address
        m.d.comb += [
            self.counts.eq(Cat(*counts)),
            self.overflow.eq(overflow),
            self.rd_data.eq(Cat(*rd).word_select(rd_sel, tw + gw)),
        ]
        return m


class ExpertScheduler(wiring.Component):
    """Expert-by-expert scheduler with ``buffers`` expert weight buffers (see module doc)."""

    def __init__(self, *, experts: int, depth: int, buffers: int = 2):
        self._e = _check("experts", experts, 1)
        self._depth = _check("depth", depth, 1)
        self._b = _check("buffers", buffers, 1, 4)
        self._ew = _bits(experts)
        self._bw = _bits(buffers)
        self._cw = depth.bit_length()
        super().__init__({
            "clear": In(1),
            "start": In(1),
            "counts": In(experts * self._cw),
            "busy": Out(1),
            "done": Out(1),
            "load_req": Out(1),
            "load_expert": Out(self._ew),
            "load_buf": Out(self._bw),
            "load_done": In(1),
            "comp_start": Out(1),
            "comp_expert": Out(self._ew),
            "comp_buf": Out(self._bw),
            "comp_count": Out(self._cw),
            "comp_done": In(1),
            "rd_expert": Out(self._ew),
            "rd_addr": Out(range(depth)),
            "tok_valid": Out(1),
        })

    @property
    def params(self) -> dict[str, int]:
        return {"experts": self._e, "depth": self._depth, "buffers": self._b}

    def elaborate(self, platform):
        m = Module()
        E, B, ew, bw, cw = self._e, self._b, self._ew, self._bw, self._cw
        cnt = [self.counts.word_select(e, cw) for e in range(E)]
        mask = Signal(E)
        m.d.comb += mask.eq(Cat(*[c != 0 for c in cnt]))

        run = Signal()
        done = Signal()
        todo = Signal(E)                    # non-empty experts not yet loaded
        loaded = Signal(B)                  # buffer holds an expert not yet computed
        buf_exp = [Signal(ew, name=f"buf{b}_expert") for b in range(B)]
        ld_busy, cp_busy = Signal(), Signal()
        ld_buf, cp_buf = Signal(bw), Signal(bw)
        issued = Signal(E.bit_length() + 1)
        computed = Signal(E.bit_length() + 1)
        load_req, comp_start = Signal(), Signal()
        load_expert, comp_expert = Signal(ew), Signal(ew)
        load_buf, comp_buf = Signal(bw), Signal(bw)
        comp_count = Signal(cw)
        st_active, st_idx, tok_valid = Signal(), Signal(cw), Signal()

        # lowest non-empty expert still to load: isolate the lowest set bit, then encode it
        low = Signal(E)
        nxt = Signal(ew)
        m.d.comb += low.eq(todo & (~todo + 1))
        enc = [Cat(*[low[e] for e in range(E) if (e >> j) & 1]).any() if any((e >> j) & 1 for e in range(E))
               else Const(0, 1) for j in range(ew)]
        m.d.comb += nxt.eq(Cat(*enc))

        def nextbuf(b):
            return Mux(b == B - 1, 0, b + 1)

        buf_exp_cat = Cat(*buf_exp)
        issue = run & ~ld_busy & (todo != 0) & ~loaded.bit_select(ld_buf, 1)
        begin = run & ~cp_busy & loaded.bit_select(cp_buf, 1)
        finish = run & cp_busy & self.comp_done
        arrive = run & ld_busy & self.load_done
        cur_exp = buf_exp_cat.word_select(cp_buf, ew)

        m.d.sync += [load_req.eq(0), comp_start.eq(0), tok_valid.eq(st_active)]
        with m.If(self.clear):
            m.d.sync += [run.eq(0), done.eq(0), todo.eq(0), loaded.eq(0), ld_busy.eq(0), cp_busy.eq(0),
                         st_active.eq(0)]
        with m.Elif(self.start & ~run & ~done):
            m.d.sync += [run.eq(1), todo.eq(mask), loaded.eq(0), ld_busy.eq(0), cp_busy.eq(0), ld_buf.eq(0),
                         cp_buf.eq(0), issued.eq(0), computed.eq(0)]
        with m.Elif(run):
            with m.If((issued == 0) & (todo == 0)):          # nothing was routed
                m.d.sync += [run.eq(0), done.eq(1)]
            # loader
            with m.If(issue):
                m.d.sync += [load_req.eq(1), load_expert.eq(nxt), load_buf.eq(ld_buf), ld_busy.eq(1),
                             todo.eq(todo & (todo - 1)), issued.eq(issued + 1)]
                for b in range(B):
                    with m.If(ld_buf == b):
                        m.d.sync += buf_exp[b].eq(nxt)
            with m.If(arrive):
                m.d.sync += [ld_busy.eq(0), ld_buf.eq(nextbuf(ld_buf))]
            # compute
            with m.If(begin):
                m.d.sync += [comp_start.eq(1), comp_expert.eq(cur_exp), comp_buf.eq(cp_buf),
                             comp_count.eq(self.counts.word_select(cur_exp, cw)), cp_busy.eq(1),
                             st_active.eq(1), st_idx.eq(0)]
            with m.If(finish):
                m.d.sync += [cp_busy.eq(0), cp_buf.eq(nextbuf(cp_buf)), computed.eq(computed + 1)]
                with m.If((computed + 1 == issued) & (todo == 0)):
                    m.d.sync += [run.eq(0), done.eq(1)]
            for b in range(B):
                with m.If(arrive & (ld_buf == b)):
                    m.d.sync += loaded[b].eq(1)
                with m.Elif(finish & (cp_buf == b)):
                    m.d.sync += loaded[b].eq(0)
            # gather stream of the computing expert's queue
            with m.If(st_active & ~begin):
                m.d.sync += st_idx.eq(st_idx + 1)
                with m.If(st_idx + 1 == comp_count):
                    m.d.sync += st_active.eq(0)
        m.d.comb += [
            self.busy.eq(run), self.done.eq(done),
            self.load_req.eq(load_req), self.load_expert.eq(load_expert), self.load_buf.eq(load_buf),
            self.comp_start.eq(comp_start), self.comp_expert.eq(comp_expert), self.comp_buf.eq(comp_buf),
            self.comp_count.eq(comp_count),
            self.rd_expert.eq(comp_expert), self.rd_addr.eq(st_idx), self.tok_valid.eq(tok_valid),
        ]
        return m


class MoeReorder(wiring.Component):
    """Router output stage + queues + expert scheduler (see module doc)."""

    def __init__(self, *, experts: int, top_k: int, depth: int, gate_width: int, buffers: int = 2):
        self._router = RouterStage(experts=experts, top_k=top_k, depth=depth, token_width=_bits(depth),
                                   gate_width=gate_width)
        self._sched = ExpertScheduler(experts=experts, depth=depth, buffers=buffers)
        ew, tw, cw = _bits(experts), _bits(depth), depth.bit_length()
        bw = _bits(buffers)
        super().__init__({
            "clear": In(1),
            "in_valid": In(1),
            "in_token": In(tw),
            "in_experts": In(top_k * ew),
            "in_gates": In(top_k * gate_width),
            "counts": Out(experts * cw),
            "overflow": Out(1),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "load_req": Out(1),
            "load_expert": Out(ew),
            "load_buf": Out(bw),
            "load_done": In(1),
            "comp_start": Out(1),
            "comp_expert": Out(ew),
            "comp_buf": Out(bw),
            "comp_count": Out(cw),
            "comp_done": In(1),
            "tok_valid": Out(1),
            "tok_id": Out(tw),
            "tok_gate": Out(gate_width),
        })

    @property
    def params(self) -> dict[str, int]:
        return {**self._router.params, "buffers": self._sched.params["buffers"]}

    def elaborate(self, platform):
        m = Module()
        m.submodules.router = r = self._router
        m.submodules.scheduler = s = self._sched
        tw = r.params["token_width"]
        m.d.comb += [
            r.clear.eq(self.clear), s.clear.eq(self.clear),
            r.in_valid.eq(self.in_valid & ~s.busy & ~s.done), r.in_token.eq(self.in_token),
            r.in_experts.eq(self.in_experts), r.in_gates.eq(self.in_gates),
            self.counts.eq(r.counts), self.overflow.eq(r.overflow),
            s.counts.eq(r.counts), s.start.eq(self.start),
            self.busy.eq(s.busy), self.done.eq(s.done),
            self.load_req.eq(s.load_req), self.load_expert.eq(s.load_expert), self.load_buf.eq(s.load_buf),
            s.load_done.eq(self.load_done),
            self.comp_start.eq(s.comp_start), self.comp_expert.eq(s.comp_expert), self.comp_buf.eq(s.comp_buf),
            self.comp_count.eq(s.comp_count), s.comp_done.eq(self.comp_done),
            r.rd_expert.eq(s.rd_expert), r.rd_addr.eq(s.rd_addr),
            self.tok_valid.eq(s.tok_valid),
            self.tok_id.eq(r.rd_data[:tw]), self.tok_gate.eq(r.rd_data[tw:]),
        ]
        return m


# ---------------------------------------------------------------- builders (hwgen.emit.DESIGNS)
def build_router(spec: HardwareSpec, *, experts: int = 16, top_k: int = 4) -> RouterStage:
    """The router output stage for ``spec.moe`` (queue depth, gate width)."""
    d = spec.moe.queue_depth
    return RouterStage(experts=experts, top_k=top_k, depth=d, token_width=_bits(d), gate_width=spec.moe.gate_width)


def build_scheduler(spec: HardwareSpec, *, experts: int = 16) -> ExpertScheduler:
    """The expert scheduler for ``spec.moe`` (queue depth, expert buffers)."""
    return ExpertScheduler(experts=experts, depth=spec.moe.queue_depth, buffers=spec.moe.expert_buffers)


def build_reorder(spec: HardwareSpec, *, experts: int = 16, top_k: int = 4) -> MoeReorder:
    """Router stage + scheduler for ``spec.moe``."""
    return MoeReorder(experts=experts, top_k=top_k, depth=spec.moe.queue_depth, gate_width=spec.moe.gate_width,
                      buffers=spec.moe.expert_buffers)
