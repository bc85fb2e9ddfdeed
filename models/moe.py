"""M3ViT-style mixture-of-experts ViT: configuration, golden forward, and real routing.

Three things live here, none of which knows about hardware:

* :class:`MoeVitConfig` and :func:`moe_vit_forward` -- a NumPy MoE ViT (pre-LayerNorm blocks:
  multi-head attention, then a dense MLP on even blocks and an MoE layer on odd blocks, as in
  M3ViT). An MoE layer has ``experts`` experts ``W2 GELU(W1 x + b1) + b2`` of hidden size
  ``expert_hidden`` and one router ``G`` per task; a token goes to the ``top_k`` experts of
  ``softmax(G x)`` and is combined with those probabilities as gates, *without*
  renormalisation (M3ViT's ``TopK(softmax(G x), K)``). :func:`moe_layer` and
  :func:`moe_layer_by_expert` compute the same layer token by token and expert by expert
  (through per-expert token queues), the reordering the hardware relies on.
* :class:`Routing` -- the routing decisions of a sequence of single-task frames
  (``experts[F, L, T, K]``, ``gates[F, L, T, K]``), with :func:`save_routing` /
  :func:`load_routing` (``.npz``; shapes and values validated on load).
* :func:`minilm_routing` -- **real routing** from MoEfication (Zhang et al., 2022) of the real
  all-MiniLM-L6-v2: the 1536 FFN neurons of MiniLM layer ``l`` are split into ``experts``
  equal clusters by balanced k-means over the rows of ``W_in``; MoE layer ``l`` of the ViT
  (block ``2l + 1``) takes its routing from MiniLM layer ``l``. Each *task* is a text domain:
  one router per task and layer is fitted by ridge regression, on that domain's tokens, to the
  experts' activation mass (the MoEfication "ground truth"), and frames of that task are real
  token windows of the same domain routed by that task's router. The routing statistics (load
  skew, experts used per frame, how routing changes between tasks) are therefore those of a
  real network on real text; only the mapping "text domain = vision task" is a stand-in,
  because no multi-task MoE ViT checkpoint ships in any package. :func:`synthetic_routing`
  is the labelled alternative (Zipf-skewed random routing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sparseforge.errors import InputError
from sparseforge.progress import progress_task

from .network import GemmLayer, Network

__all__ = [
    "MoeError", "MoeVitConfig", "CONFIGS", "get_config", "TASKS", "init_moe_vit", "moe_vit_forward",
    "moe_layer", "moe_layer_by_expert", "expert_queues", "route", "Routing", "save_routing", "load_routing",
    "synthetic_routing", "minilm_routing", "moefy_ffn", "fit_router", "task_corpus", "m3vit_network", "dense_vit_network",
    "routing_stats", "check_routing_size", "MAX_TOKENS", "MAX_EXPERTS", "MAX_ROUTING_DECISIONS", "MAX_ZIPF",
]


class MoeError(InputError):
    """Bad MoE configuration, routing or routing file: one line naming the value and what is
    allowed."""


#: Task names and the text domain (groups of CPython's ``pydoc_data`` reference topics) that
#: stands in for each task when routing comes from MiniLM. PASCAL-Context tasks first, then
#: NYUD's depth.
TASKS: dict[str, tuple[str, ...]] = {
    "seg": ("assert", "assignment", "augassign", "break", "continue", "del", "for", "global", "if", "import",
            "nonlocal", "pass", "raise", "return", "try", "while", "with", "compound"),
    "parts": ("atom-identifiers", "atom-literals", "attribute-references", "binary", "bitwise", "booleans",
              "calls", "comparisons", "exprlists", "lambda", "operator-summary", "power", "shifting",
              "slicings", "subscriptions", "unary", "conversions", "in"),
    "sal": ("formatstrings", "strings", "string-methods", "integers", "floating", "imaginary", "numbers",
            "identifiers"),
    "normals": ("dict", "lists", "typesfunctions", "typesmapping", "typesmethods", "typesmodules", "typesseq",
                "typesseq-mutable", "truth", "bltin-code-objects", "bltin-ellipsis-object",
                "bltin-null-object", "bltin-type-objects"),
    "edges": ("execmodel", "naming", "exceptions", "dynamic-features", "debugger", "function", "class",
              "async", "await", "yield", "id-classes", "else"),
    "depth": ("customization", "attribute-access", "callable-types", "context-managers", "numeric-types",
              "sequence-types", "specialattrs", "specialnames", "objects", "types"),
}


# ============================================================================ request limits
#: tokens of one frame: a 4096 x 4096 image in 16 x 16 patches (M3ViT's 512 x 512 frames have 1025)
MAX_TOKENS = 1 << 16
#: experts of one MoE layer (expert ids are int16; M3ViT has 16)
MAX_EXPERTS = 4096
#: routing decisions (frames x MoE layers x tokens x top_k) of one sequence: 16.8M decisions are
#: 100 MB of routing and minutes of the token-by-token schedules. The default sequence (4 frames
#: of m3vit-small) has 98,400; the limit allows 682 such frames (docs/moe.md runs 20).
MAX_ROUTING_DECISIONS = 1 << 24
#: largest Zipf exponent of synthetic routing (4096 ** 50 is still a finite float)
MAX_ZIPF = 50.0


def check_routing_size(*, frames: int, moe_layers: int, tokens: int, top_k: int, what: str = "") -> None:
    """Refuse, before any work, a routing of more than :data:`MAX_ROUTING_DECISIONS`
    decisions: one line (starting with ``what: `` when given) naming the frames, the shape
    and the limit."""
    decisions = frames * moe_layers * tokens * top_k
    if decisions > MAX_ROUTING_DECISIONS:
        most = MAX_ROUTING_DECISIONS // max(1, moe_layers * tokens * top_k)
        raise MoeError(f"{what + ': ' if what else ''}frames = {frames} is not allowed with {moe_layers} MoE layers "
                       f"x {tokens} tokens x "
                       f"top-{top_k}: {decisions} routing decisions are more than the {MAX_ROUTING_DECISIONS} "
                       f"one run allows (at most {most} frames of this shape)")


# ============================================================================ configuration
def _int_at_least(owner: str, name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
            or (high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise MoeError(f"{owner}: {name} = {shown} is not allowed: must be {allowed}")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class MoeVitConfig:
    """Shape of an M3ViT-style MoE ViT. Defaults are M3ViT's ViT-small on 512 x 512 inputs:
    embed 384, 12 blocks of 12 heads, MLP ratio 4, patch 16 (1024 patches + cls = 1025
    tokens); odd blocks (1, 3, ..., 11) are MoE layers of 16 experts, top-4, expert hidden
    384; one router per task."""

    name: str = "m3vit-small"
    embed: int = 384
    depth: int = 12
    heads: int = 12
    mlp_ratio: int = 4
    experts: int = 16
    top_k: int = 4
    expert_hidden: int = 384
    tokens: int = 1025
    patch: int = 16
    in_chans: int = 3
    tasks: tuple[str, ...] = tuple(TASKS)

    def __post_init__(self) -> None:
        owner = f"MoeVitConfig {self.name!r}"
        # upper bounds keep every GEMM and routing array allocatable (see MAX_TOKENS, MAX_EXPERTS)
        for name, low, high in (("embed", 1, 1 << 16), ("depth", 2, 1024), ("heads", 1, 1024),
                                ("mlp_ratio", 1, 64), ("experts", 1, MAX_EXPERTS), ("top_k", 1, MAX_EXPERTS),
                                ("expert_hidden", 1, 1 << 16), ("tokens", 1, MAX_TOKENS), ("patch", 1, 1024),
                                ("in_chans", 1, 1024)):
            object.__setattr__(self, name, _int_at_least(owner, name, getattr(self, name), low, high))
        if self.top_k > self.experts:
            raise MoeError(f"{owner}: top_k = {self.top_k} is not allowed with experts = {self.experts}: "
                           "a token cannot choose more experts than there are (need top_k <= experts)")
        if self.embed % self.heads:
            raise MoeError(f"{owner}: heads = {self.heads} is not allowed with embed = {self.embed}: "
                           "embed must be a multiple of heads")
        tasks = tuple(self.tasks)
        if not tasks or len(set(tasks)) != len(tasks) or not all(isinstance(t, str) and t for t in tasks):
            raise MoeError(f"{owner}: tasks = {self.tasks!r} is not allowed: need distinct non-empty names")
        object.__setattr__(self, "tasks", tasks)

    @property
    def moe_blocks(self) -> tuple[int, ...]:
        """Indices of the MoE blocks: every odd block, as in M3ViT."""
        return tuple(range(1, self.depth, 2))

    @property
    def moe_layers(self) -> int:
        return len(self.moe_blocks)

    @property
    def head_dim(self) -> int:
        return self.embed // self.heads

    @property
    def mlp_hidden(self) -> int:
        return self.embed * self.mlp_ratio

    def replace(self, **changes) -> "MoeVitConfig":
        import dataclasses

        return dataclasses.replace(self, **changes)


#: Named configurations (``--net``). ``m3vit-tiny`` has ViT-tiny's widths (embed 192, 3 heads).
CONFIGS: dict[str, MoeVitConfig] = {
    "m3vit-small": MoeVitConfig(),
    "m3vit-tiny": MoeVitConfig(name="m3vit-tiny", embed=192, heads=3, expert_hidden=192),
}


def get_config(name: str, **changes) -> MoeVitConfig:
    """The named configuration with ``changes`` applied (e.g. ``tokens=257``)."""
    if name not in CONFIGS:
        raise MoeError(f"network {name!r} is not allowed: choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name].replace(**changes) if changes else CONFIGS[name]


def m3vit_network(cfg: MoeVitConfig, *, dense: bool = False) -> Network:
    """The GEMMs of one frame that do not depend on routing, in execution order: the patch
    embedding (``tokens - 1`` patches of ``in_chans * patch^2`` values), and per block
    ``attn.qkv``, ``attn.scores`` and ``attn.context`` (per head), ``attn.proj``, then
    ``mlp.fc1``/``mlp.fc2`` (dense blocks) or ``moe.router`` (MoE blocks: ``embed -> experts``).
    Expert GEMMs depend on the routing and are issued by the MoE schedules
    (:mod:`sim.moe`). LayerNorm, softmax, GELU and the task decoders are not GEMMs of the
    backbone and are left out (as in :mod:`models.zoo`).

    ``dense=True`` gives :func:`dense_vit_network` instead (every block a dense MLP)."""
    t, d = cfg.tokens, cfg.embed
    layers = []
    if t > 1:
        layers.append(GemmLayer(name="patch_embed", tokens=t - 1, k=cfg.in_chans * cfg.patch ** 2, n_out=d,
                                kind="conv", prunable=False, group="embed"))
    for b in range(cfg.depth):
        g = f"block{b}"

        def lin(s: str, k: int, n: int) -> GemmLayer:
            return GemmLayer(name=f"{g}.{s}", tokens=t, k=k, n_out=n, prunable=False, group=g)

        layers += [
            lin("attn.qkv", d, 3 * d),
            GemmLayer(name=f"{g}.attn.scores", tokens=t, k=cfg.head_dim, n_out=t, kind="attention",
                      prunable=False, group=g, count=cfg.heads),
            GemmLayer(name=f"{g}.attn.context", tokens=t, k=t, n_out=cfg.head_dim, kind="attention",
                      prunable=False, group=g, count=cfg.heads),
            lin("attn.proj", d, d),
        ]
        if b in cfg.moe_blocks and not dense:
            layers.append(lin("moe.router", d, cfg.experts))
        else:
            layers += [lin("mlp.fc1", d, cfg.mlp_hidden), lin("mlp.fc2", cfg.mlp_hidden, d)]
    return Network(name=f"{cfg.name}-dense" if dense else cfg.name, layers=tuple(layers))


def dense_vit_network(cfg: MoeVitConfig) -> Network:
    """The dense ViT of ``cfg``'s shape: M3ViT's backbone with the dense MLP (``embed ->
    mlp_hidden -> embed``) in *every* block and no routers -- at the defaults the dense
    ViT-small M3ViT starts from (embed 384, 12 blocks of 12 heads, MLP 1536, patch 16, 512 x
    512 frames = 1025 tokens). It is the baseline the MoE schedules are compared with
    (:func:`sim.moe.simulate_moe`, ``dense``): per frame ``(T - 1) 3 p^2 D`` patch-embedding
    MACs, and per block ``T (3 D^2 + D^2 + 2 D F) + 2 T^2 D`` (``F = mlp_hidden``), named
    ``{cfg.name}-dense``."""
    return m3vit_network(cfg, dense=True)


# ============================================================================ golden forward
def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def route(logits: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """M3ViT's gate: ``TopK(softmax(logits), K)`` without renormalisation.

    Returns ``(experts[T, K], gates[T, K])``: per token the ``K`` most probable experts in
    descending probability (ties go to the lower expert index) and their softmax
    probabilities, which sum to at most 1."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or not 1 <= top_k <= logits.shape[1]:
        raise MoeError(f"top_k = {top_k} is not allowed with {logits.shape[-1]} experts: need 1 <= top_k <= experts")
    p = _softmax(logits)
    order = np.argsort(-p, axis=1, kind="stable")[:, :top_k]
    return order.astype(np.int16), np.take_along_axis(p, order, axis=1).astype(np.float32)


@dataclass(frozen=True, eq=False)
class ExpertWeights:
    """The experts of one MoE layer: ``w1[E, H, D]``, ``b1[E, H]``, ``w2[E, D, H]``, ``b2[E, D]``."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray


def moe_layer(x: np.ndarray, ex: ExpertWeights, experts: np.ndarray, gates: np.ndarray) -> np.ndarray:
    """The MoE layer token by token: ``y[t] = sum_j gates[t, j] * expert_{experts[t, j]}(x[t])``
    (vectorised over all (token, choice) pairs)."""
    e = experts.astype(np.int64)
    h = _gelu(np.einsum("tkhd,td->tkh", ex.w1[e], x) + ex.b1[e])
    out = np.einsum("tkdh,tkh->tkd", ex.w2[e], h) + ex.b2[e]
    return np.einsum("tk,tkd->td", gates.astype(np.float64), out)


def expert_queues(experts: np.ndarray, num_experts: int) -> list[np.ndarray]:
    """Per-expert token queues: ``queues[e]`` = the token ids routed to expert ``e`` in the
    order the router output stage pushes them (token order). Vectorised: one stable sort."""
    experts = np.asarray(experts)
    t, k = experts.shape
    flat = experts.ravel().astype(np.int64)
    order = np.argsort(flat, kind="stable")
    tokens = (order // k).astype(np.int64)
    bounds = np.searchsorted(flat[order], np.arange(num_experts + 1))
    return [tokens[bounds[e]:bounds[e + 1]] for e in range(num_experts)]


def moe_layer_by_expert(x: np.ndarray, ex: ExpertWeights, experts: np.ndarray, gates: np.ndarray) -> np.ndarray:
    """The same layer expert by expert, as the reordered hardware computes it: the router
    pushes every token into the queues of its experts; each non-empty expert then runs its
    whole queue and scatter-adds the gated results into ``y``."""
    num = ex.w1.shape[0]
    y = np.zeros(x.shape, dtype=np.float64)
    gate_of = {}
    for e, q in enumerate(expert_queues(experts, num)):
        if not len(q):
            continue
        slot = np.argmax(experts[q] == e, axis=1)             # which of the token's K choices is e
        gate_of[e] = gates[q, slot].astype(np.float64)
        h = _gelu(x[q] @ ex.w1[e].T + ex.b1[e])
        out = h @ ex.w2[e].T + ex.b2[e]
        np.add.at(y, q, gate_of[e][:, None] * out)
    return y


@dataclass(frozen=True, eq=False)
class MoeVitWeights:
    """Weights of :class:`MoeVitConfig`: ``blocks[b]`` holds the block's arrays (``ln1_g``,
    ``qkv_w`` ... and either ``fc1_w``/``fc2_w`` or ``experts``); ``routers[task][i]`` is the
    router ``G[E, D]`` of MoE layer ``i`` for ``task``."""

    cfg: MoeVitConfig
    blocks: tuple[dict, ...]
    routers: dict[str, np.ndarray]


def init_moe_vit(cfg: MoeVitConfig, *, seed: int = 0) -> MoeVitWeights:
    """Random weights (truncated-normal-like, std 0.02 as in ViT; routers std 1/sqrt(D)), for
    the golden model's own checks. Real routing comes from :func:`minilm_routing`."""
    rng = np.random.default_rng(seed)
    d, hm, he, e = cfg.embed, cfg.mlp_hidden, cfg.expert_hidden, cfg.experts

    def nrm(*shape: int, std: float = 0.02) -> np.ndarray:
        return rng.normal(0.0, std, size=shape)

    blocks = []
    for b in range(cfg.depth):
        blk = {"ln1_g": 1 + nrm(d), "ln1_b": nrm(d), "qkv_w": nrm(3 * d, d), "qkv_b": nrm(3 * d),
               "proj_w": nrm(d, d), "proj_b": nrm(d), "ln2_g": 1 + nrm(d), "ln2_b": nrm(d)}
        if b in cfg.moe_blocks:
            blk["experts"] = ExpertWeights(w1=nrm(e, he, d), b1=nrm(e, he), w2=nrm(e, d, he), b2=nrm(e, d))
        else:
            blk.update(fc1_w=nrm(hm, d), fc1_b=nrm(hm), fc2_w=nrm(d, hm), fc2_b=nrm(d))
        blocks.append(blk)
    routers = {t: nrm(cfg.moe_layers, e, d, std=1.0 / math.sqrt(d)) for t in cfg.tasks}
    return MoeVitWeights(cfg=cfg, blocks=tuple(blocks), routers=routers)


def moe_vit_forward(x: np.ndarray, weights: MoeVitWeights, *, task: str,
                    routing: tuple[np.ndarray, np.ndarray] | None = None,
                    by_expert: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One single-task frame through the backbone.

    Args:
        x: embedded tokens ``[T, embed]`` (patch embeddings + cls, positions added).
        task: the active task; only its routers run.
        routing: optional ``(experts[L, T, K], gates[L, T, K])`` that replaces the routers'
            decisions (e.g. real routing from :func:`minilm_routing`).
        by_expert: compute MoE layers expert by expert (:func:`moe_layer_by_expert`).

    Returns:
        ``(y[T, embed], experts[L, T, K], gates[L, T, K])`` -- the output and the routing used.
    """
    cfg = weights.cfg
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != cfg.embed:
        raise MoeError(f"x of shape {x.shape} is not allowed: must be [tokens, {cfg.embed}]")
    if task not in weights.routers:
        raise MoeError(f"task {task!r} has no router: the model has routers for {', '.join(weights.routers)}")
    t = x.shape[0]
    if routing is not None:
        re, rg = (np.asarray(a) for a in routing)
        want = (cfg.moe_layers, t, cfg.top_k)
        if re.shape != want or rg.shape != want:
            raise MoeError(f"routing of shapes {re.shape}/{rg.shape} is not allowed: need {want} "
                           "(MoE layers, tokens, top_k)")
    used_e, used_g = [], []
    layer = 0
    hd = cfg.head_dim
    for b, blk in enumerate(weights.blocks):
        h = _layer_norm(x, blk["ln1_g"], blk["ln1_b"])
        qkv = (h @ blk["qkv_w"].T + blk["qkv_b"]).reshape(t, 3, cfg.heads, hd).transpose(1, 2, 0, 3)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = _softmax(q @ k.transpose(0, 2, 1) / math.sqrt(hd)) @ v          # [heads, T, hd]
        x = x + att.transpose(1, 0, 2).reshape(t, cfg.embed) @ blk["proj_w"].T + blk["proj_b"]
        h = _layer_norm(x, blk["ln2_g"], blk["ln2_b"])
        if "experts" in blk:
            if routing is None:
                e, g = route(h @ weights.routers[task][layer].T, cfg.top_k)
            else:
                e, g = re[layer], rg[layer]
            fn = moe_layer_by_expert if by_expert else moe_layer
            x = x + fn(h, blk["experts"], e, g)
            used_e.append(e)
            used_g.append(g)
            layer += 1
        else:
            x = x + _gelu(h @ blk["fc1_w"].T + blk["fc1_b"]) @ blk["fc2_w"].T + blk["fc2_b"]
    return x, np.stack(used_e), np.stack(used_g)


# ============================================================================ routing records
@dataclass(frozen=True, eq=False)
class Routing:
    """Routing decisions of a frame sequence.

    Attributes:
        tasks: the task of each frame (``F`` names).
        experts: ``[F, L, T, K]`` int16 -- frame, MoE layer, token, choice: expert ids, distinct
            per token, in descending gate order.
        gates: ``[F, L, T, K]`` float32 -- the softmax probabilities of those experts.
        num_experts: ``E``.
        source: where the decisions come from (``"minilm-moefication"``, ``"synthetic"``, ...).
        meta: free-form description (corpus, router fit quality, ...).
    """

    tasks: tuple[str, ...]
    experts: np.ndarray
    gates: np.ndarray
    num_experts: int
    source: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        e, g = np.asarray(self.experts), np.asarray(self.gates)
        if e.ndim != 4 or g.shape != e.shape:
            raise MoeError(f"routing experts {e.shape} / gates {g.shape} is not allowed: both must be "
                           "[frames, moe_layers, tokens, top_k]")
        if e.shape[0] != len(self.tasks):
            raise MoeError(f"routing has {e.shape[0]} frames but {len(self.tasks)} task names: need one per frame")
        check_routing_size(frames=e.shape[0], moe_layers=e.shape[1], tokens=e.shape[2], top_k=e.shape[3])
        if isinstance(self.num_experts, bool) or not isinstance(self.num_experts, (int, np.integer)) \
                or not 1 <= self.num_experts <= MAX_EXPERTS:
            raise MoeError(f"routing num_experts = {self.num_experts!r} is not allowed: must be an integer in "
                           f"1..{MAX_EXPERTS}")
        if not np.issubdtype(e.dtype, np.integer) or e.size and (e.min() < 0 or e.max() >= self.num_experts):
            raise MoeError(f"routing expert ids are not allowed outside 0..{self.num_experts - 1}")
        if e.shape[3] > self.num_experts:
            raise MoeError(f"top_k = {e.shape[3]} is not allowed with {self.num_experts} experts: need top_k <= experts")
        s = np.sort(e, axis=-1)
        if e.shape[3] > 1 and np.any(s[..., 1:] == s[..., :-1]):
            raise MoeError("routing is not allowed to send a token to the same expert twice")
        if not np.all(np.isfinite(g)) or g.min(initial=0) < 0 or np.any(g.sum(axis=-1) > 1 + 1e-4):
            raise MoeError("routing gates must be finite, >= 0, and sum to at most 1 per token "
                           "(softmax probabilities without renormalisation)")
        object.__setattr__(self, "experts", e.astype(np.int16))
        object.__setattr__(self, "gates", g.astype(np.float32))

    @property
    def frames(self) -> int:
        return self.experts.shape[0]

    @property
    def moe_layers(self) -> int:
        return self.experts.shape[1]

    @property
    def tokens(self) -> int:
        return self.experts.shape[2]

    @property
    def top_k(self) -> int:
        return self.experts.shape[3]

    def loads(self) -> np.ndarray:
        """Tokens per expert, ``[F, L, E]`` (vectorised bincount)."""
        f, l, t, k = self.experts.shape
        flat = (np.arange(f * l)[:, None] * self.num_experts + self.experts.reshape(f * l, t * k)).ravel()
        return np.bincount(flat, minlength=f * l * self.num_experts).reshape(f, l, self.num_experts)

    def check(self, *, moe_layers: int, tokens: int, top_k: int, num_experts: int, what: str = "routing") -> None:
        """Raise :class:`MoeError` unless the routing fits a model of these sizes."""
        want = (moe_layers, tokens, top_k)
        if self.experts.shape[1:] != want or self.num_experts != num_experts:
            raise MoeError(f"{what} has shape (frames, layers, tokens, top_k) = {self.experts.shape} with "
                           f"{self.num_experts} experts, which is not allowed here: need (F, {want[0]}, {want[1]}, "
                           f"{want[2]}) with {num_experts} experts")


def save_routing(routing: Routing, path: Path | str) -> None:
    """Write ``routing`` as ``.npz`` atomically (a temporary file beside ``path``, then rename)."""
    import json
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, experts=routing.experts, gates=routing.gates, tasks=np.array(routing.tasks),
                            num_experts=np.int64(routing.num_experts), source=np.array(routing.source),
                            meta=np.array(json.dumps(routing.meta)))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


#: the arrays of a routing file, and the dtype kinds each may have (:func:`save_routing`)
_ROUTING_ARRAYS = {"experts": "iu", "gates": "f", "tasks": "U", "num_experts": "iu", "source": "U", "meta": "U"}
#: longest text (task name, source, meta JSON) a routing file may hold, in characters
_ROUTING_TEXT_MAX = 1 << 20


def _npz_headers(path: Path, what: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every ``.npy`` member of the ``.npz`` at ``path``, read from the
    member headers without loading (or decompressing) any array."""
    import zipfile

    out = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise MoeError(f"{what}: array {info.filename!r} has .npy format {version}, not 1.0 or 2.0")
            out[info.filename[:-4]] = (tuple(shape), np.dtype(dtype))
    return out


def load_routing(path: Path | str) -> Routing:
    """Read a routing file written by :func:`save_routing`; :class:`MoeError` naming the file
    if it is missing, a folder, not a ``.npz`` (empty, truncated, corrupt), lacks an array, or
    has arrays of the wrong kind, shape or values. Shapes and dtypes are checked from the
    array headers before anything is loaded, so a file declaring a huge routing is refused
    up front (:data:`MAX_ROUTING_DECISIONS`)."""
    import json
    import zipfile

    path = Path(path)
    what = f"routing file {str(path)!r}"
    if path.is_dir():
        raise MoeError(f"{what} is a folder, not a .npz file")
    if not path.is_file():
        raise MoeError(f"{what} does not exist")
    try:
        if not zipfile.is_zipfile(path):
            raise MoeError(f"{what} is not a readable .npz file: not a zip archive (empty, truncated or "
                           "another format)")
        heads = _npz_headers(path, what)
        for key, kinds in _ROUTING_ARRAYS.items():
            if key not in heads:
                if key == "meta":
                    continue
                raise MoeError(f"{what} lacks array {key!r}")
            shape, dtype = heads[key]
            if dtype.kind not in kinds:
                raise MoeError(f"{what}: array {key!r} has dtype {dtype}, which is not allowed here")
        shape = heads["experts"][0]
        if len(shape) != 4 or heads["gates"][0] != shape:
            raise MoeError(f"{what}: experts {shape} / gates {heads['gates'][0]} is not allowed: both must be "
                           "[frames, moe_layers, tokens, top_k]")
        check_routing_size(frames=shape[0], moe_layers=shape[1], tokens=shape[2], top_k=shape[3], what=what)
        if heads["tasks"][0] not in ((shape[0],), ()) or heads["num_experts"][0] != () \
                or heads["source"][0] != () or heads.get("meta", ((), None))[0] != ():
            raise MoeError(f"{what}: tasks must hold one name per frame and num_experts, source and meta one "
                           "value each")
        for key in ("tasks", "source", "meta"):
            if key in heads and heads[key][1].itemsize > 4 * _ROUTING_TEXT_MAX:
                raise MoeError(f"{what}: array {key!r} holds texts of more than {_ROUTING_TEXT_MAX} characters")
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in _ROUTING_ARRAYS if k in z.files}
        meta = json.loads(str(data["meta"])) if "meta" in data else {}
        if not isinstance(meta, dict):
            raise MoeError(f"{what}: meta must be a JSON object")
        return Routing(tasks=tuple(str(t) for t in np.atleast_1d(data["tasks"])), experts=data["experts"],
                       gates=data["gates"], num_experts=int(data["num_experts"]), source=str(data["source"]),
                       meta=meta)
    except MoeError as exc:
        msg = str(exc)
        raise MoeError(msg if msg.startswith(what) else f"{what}: {msg}") from None
    except Exception as exc:      # a truncated or corrupt member (zlib.error, EOFError), bad JSON, bad header ...
        why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise MoeError(f"{what} is not a readable .npz file: {why}") from None


def routing_stats(routing: Routing) -> dict:
    """Load skew and expert use per frame and layer: ``max_over_mean[F, L]`` (the busiest
    expert's tokens over the mean), ``used[F, L]`` (non-empty experts) -- and their averages."""
    loads = routing.loads()
    mean = loads.mean(axis=-1)
    skew = loads.max(axis=-1) / mean
    used = (loads > 0).sum(axis=-1)
    return {"max_over_mean": skew, "used": used, "mean_max_over_mean": float(skew.mean()),
            "mean_used": float(used.mean()), "min_used": int(used.min())}


# ============================================================================ synthetic routing
def synthetic_routing(tasks: tuple[str, ...] | list[str], *, moe_layers: int, tokens: int, num_experts: int,
                      top_k: int, zipf: float = 1.0, seed: int = 0) -> Routing:
    """Labelled synthetic routing (``source = "synthetic"``): per task and layer a Zipf
    popularity over a task-specific permutation of the experts; each token draws ``top_k``
    distinct experts by Gumbel-top-k on log popularity; gates are the softmax of the perturbed
    log popularities. Use it to explore routing regimes, not as data."""
    if isinstance(zipf, bool) or not isinstance(zipf, (int, float, np.floating)) or not 0 <= zipf <= MAX_ZIPF:
        raise MoeError(f"zipf = {zipf!r} is not allowed: must be a finite number in 0..{MAX_ZIPF:g}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MoeError(f"seed = {seed!r} is not allowed: must be an integer >= 0")
    owner = "synthetic routing"
    moe_layers = _int_at_least(owner, "moe_layers", moe_layers, 1, 1024)
    tokens = _int_at_least(owner, "tokens", tokens, 1, MAX_TOKENS)
    num_experts = _int_at_least(owner, "num_experts", num_experts, 1, MAX_EXPERTS)
    top_k = _int_at_least(owner, "top_k", top_k, 1, MAX_EXPERTS)
    if top_k > num_experts:
        raise MoeError(f"top_k = {top_k} is not allowed with experts = {num_experts}: need top_k <= experts")
    tasks = tuple(tasks)
    check_routing_size(frames=len(tasks), moe_layers=moe_layers, tokens=tokens, top_k=top_k, what=owner)
    names = sorted(set(tasks))
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, num_experts + 1, dtype=np.float64)
    logpop = {}
    for name in names:
        perm = np.stack([rng.permutation(num_experts) for _ in range(moe_layers)])    # [L, E]
        logpop[name] = np.log(1.0 / ranks ** zipf)[np.argsort(perm, axis=1)]
    f = len(tasks)
    shape = (f, moe_layers, tokens, top_k)
    experts = np.empty(shape, dtype=np.int16)
    gates = np.empty(shape, dtype=np.float32)
    # the Gumbel noise of [F, L, T, E] drawn in C order, a block of tokens at a time (the same
    # numbers as one draw of the whole array, in at most 2^20 values of memory at once)
    block = max(1, (1 << 20) // num_experts)
    for fi, task in enumerate(tasks):
        for li in range(moe_layers):
            for t0 in range(0, tokens, block):
                t1 = min(tokens, t0 + block)
                logits = logpop[task][li][None, :] + rng.gumbel(size=(t1 - t0, num_experts))
                experts[fi, li, t0:t1], gates[fi, li, t0:t1] = route(logits, top_k)
    return Routing(tasks=tasks, experts=experts, gates=gates, num_experts=num_experts,
                   source="synthetic", meta={"zipf": zipf, "seed": seed})


# ============================================================================ real routing (MiniLM)
def moefy_ffn(w_in: np.ndarray, *, experts: int, iters: int = 8, seed: int = 0) -> np.ndarray:
    """MoEfication's expert construction: split the FFN neurons (rows of ``w_in[H, D]``) into
    ``experts`` clusters of exactly ``H / experts`` neurons by balanced k-means on the
    L2-normalised rows (assignment: greedily take the globally closest (neuron, centroid)
    pairs while the centroid has room). Returns the expert of each neuron, ``[H]``."""
    h = w_in.shape[0]
    if h % experts:
        raise MoeError(f"experts = {experts} is not allowed: it must divide the {h} FFN neurons")
    size = h // experts
    x = w_in / np.linalg.norm(w_in, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    cent = x[rng.choice(h, experts, replace=False)]
    labels = np.zeros(h, dtype=np.int64)
    for _ in range(iters):
        dist = ((x[:, None, :] - cent[None]) ** 2).sum(-1)                     # [H, E]
        order = np.argsort(dist, axis=None, kind="stable")
        neuron, clus = np.unravel_index(order, dist.shape)
        room = np.full(experts, size)
        labels = np.full(h, -1)
        left = h
        for n_, c_ in zip(neuron.tolist(), clus.tolist()):
            if labels[n_] < 0 and room[c_]:
                labels[n_] = c_
                room[c_] -= 1
                left -= 1
                if not left:
                    break
        cent = np.stack([x[labels == c].mean(0) for c in range(experts)])
    return labels


def _expert_mass(x: np.ndarray, w_in: np.ndarray, b_in: np.ndarray, labels: np.ndarray, experts: int) -> np.ndarray:
    """MoEfication's ground truth: per token, the positive GELU activation mass of each
    expert's neurons, ``[T, E]``."""
    a = np.maximum(_gelu(x @ w_in.T + b_in), 0.0)
    onehot = np.zeros((w_in.shape[0], experts))
    onehot[np.arange(w_in.shape[0]), labels] = 1.0
    return a @ onehot


def fit_router(x: np.ndarray, mass: np.ndarray, *, ridge: float = 1e-2) -> np.ndarray:
    """A linear router ``G[E, D]`` (no bias, as M3ViT's gate) fitted by ridge regression of
    ``G x`` onto the per-token standardised expert mass, so that ``TopK(softmax(G x))`` picks
    the experts with the most activation mass."""
    z = (mass - mass.mean(1, keepdims=True)) / (mass.std(1, keepdims=True) + 1e-9)
    a = x.T @ x + ridge * len(x) * np.eye(x.shape[1])
    return np.linalg.solve(a, x.T @ z).T


def task_corpus(task: str) -> str:
    """The text domain of ``task`` (:data:`TASKS`): its CPython reference topics, joined."""
    import pydoc_data.topics as topics

    if task not in TASKS:
        raise MoeError(f"task {task!r} has no router: tasks with a text domain are {', '.join(TASKS)}")
    return "\n\n".join(topics.topics[name] for name in TASKS[task])


def _ffn_inputs(task: str, n_tokens: int, weights: dict, bar: Any) -> list[np.ndarray]:
    """The real FFN inputs of every MiniLM layer for the first ``n_tokens`` tokens of the
    task's corpus, run through MiniLM in sequences of at most 512 tokens: ``[L][n, 384]``.
    ``bar`` (a :func:`sparseforge.progress.progress_task`) advances by the tokens run."""
    from . import minilm

    tok = minilm._tokenizer()
    body = tok.encode(task_corpus(task), add_special_tokens=False).ids
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    per = minilm.MAX_POSITIONS - 2
    chunks = math.ceil(n_tokens / minilm.MAX_POSITIONS)
    if chunks * per > len(body):
        raise MoeError(f"task {task!r}: its corpus has {len(body)} tokens, fewer than the {n_tokens} needed")
    caps: list[list[np.ndarray]] = [[] for _ in range(minilm.NUM_LAYERS)]
    have = 0
    for c in range(chunks):
        size = min(minilm.MAX_POSITIONS, n_tokens - have)
        ids = np.array([cls, *body[c * per: c * per + max(size - 2, 1)], sep][:max(size, 3)], dtype=np.int64)
        _, cap = minilm.forward(ids, weights)
        for l in range(minilm.NUM_LAYERS):
            caps[l].append(cap[f"layer{l}.ffn.up"][:size].astype(np.float64))
        have += size
        bar.advance(size, f"MiniLM on {task!r} text")
    return [np.concatenate(c)[:n_tokens] for c in caps]


def minilm_routing(tasks: tuple[str, ...] | list[str], *, tokens: int, num_experts: int = 16, top_k: int = 4,
                   moe_layers: int = 6, stride: int | None = None, train_tokens: int = 512,
                   weights: dict | None = None, progress: Callable[[str], None] | None = None) -> Routing:
    """Real routing of a frame sequence from the MoEfied all-MiniLM-L6-v2 (see module doc).

    Per task (its text domain, :data:`TASKS`) the first ``train_tokens`` tokens fit the task's
    routers, and frame ``j`` of that task is the window of ``tokens`` tokens starting
    ``train_tokens + j * stride`` (default ``stride = tokens // 8``: consecutive frames of one
    task overlap, like consecutive video frames). MoE layer ``i`` uses MiniLM layer ``i``.

    ``meta`` records, per task and layer, how often the fitted router's top-k agrees with the
    activation-mass top-k on the frames (``router_topk_agreement``; chance is ``top_k / E``).
    """
    from . import minilm

    tasks = tuple(tasks)
    if top_k > num_experts:
        raise MoeError(f"top_k = {top_k} is not allowed with experts = {num_experts}: need top_k <= experts")
    check_routing_size(frames=len(tasks), moe_layers=moe_layers, tokens=tokens, top_k=top_k, what="real routing")
    if moe_layers > minilm.NUM_LAYERS:
        raise MoeError(f"moe_layers = {moe_layers} is not allowed with MiniLM routing: MiniLM has "
                       f"{minilm.NUM_LAYERS} FFN layers to MoEfy")
    for t in tasks:
        if t not in TASKS:
            raise MoeError(f"task {t!r} has no router: tasks with a router are {', '.join(TASKS)}")
    stride = max(1, tokens // 8) if stride is None else stride
    weights = minilm.load_weights() if weights is None else weights
    labels, w_in, b_in = [], [], []
    for l in range(moe_layers):
        p = f"encoder.layer.{l}.intermediate.dense."
        w_in.append(weights[p + "weight"].astype(np.float64))
        b_in.append(weights[p + "bias"].astype(np.float64))
        labels.append(moefy_ffn(w_in[l], experts=num_experts, seed=l))
    occ = {t: tasks.count(t) for t in set(tasks)}
    per_task: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    agree: dict[str, list[float]] = {}
    need = {t: train_tokens + tokens + (occ[t] - 1) * stride for t in occ}
    bar = progress_task(progress, "real routing", total=sum(need.values()), unit="tokens")
    for t in sorted(occ):
        n = need[t]
        xs = _ffn_inputs(t, n, weights, bar)
        frames_e, frames_g = [], []
        agree[t] = []
        for l in range(moe_layers):
            mass = _expert_mass(xs[l], w_in[l], b_in[l], labels[l], num_experts)
            g_router = fit_router(xs[l][:train_tokens], mass[:train_tokens])
            e, g = route(xs[l][train_tokens:] @ g_router.T, top_k)
            oracle = np.argsort(-mass[train_tokens:], axis=1, kind="stable")[:, :top_k]
            hit = (e[:, :, None] == oracle[:, None, :]).any(-1).mean()
            agree[t].append(float(hit))
            frames_e.append(e)
            frames_g.append(g)
        per_task[t] = [(np.stack(frames_e), np.stack(frames_g))]
    bar.close()
    seen = {t: 0 for t in occ}
    ex, gs = [], []
    for t in tasks:
        j = seen[t]
        seen[t] += 1
        e_all, g_all = per_task[t][0]
        ex.append(e_all[:, j * stride: j * stride + tokens])
        gs.append(g_all[:, j * stride: j * stride + tokens])
    return Routing(tasks=tasks, experts=np.stack(ex), gates=np.stack(gs), num_experts=num_experts,
                   source="minilm-moefication",
                   meta={"model": "all-MiniLM-L6-v2", "corpus": "CPython pydoc_data reference topics per task",
                         "train_tokens": train_tokens, "stride": stride, "router_topk_agreement": agree})
