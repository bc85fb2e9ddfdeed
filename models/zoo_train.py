"""Training workloads: built-in networks lowered to GEMMs, and the three GEMMs of a step.

:func:`get_training_network` builds a network's forward (FF) GEMMs for a minibatch of
``batch`` samples, in sparseforge's convention ``Y[T, n_out] = X[T, K] @ W[n_out, K]^T``
(``tokens = batch * positions``). Convolutions are im2col GEMMs (``tokens = batch * H_out *
W_out``, ``k = C_in/groups * kh * kw``, ``n_out = C_out/groups``). Networks:

* ``resnet18`` -- torchvision ResNet-18 (basic blocks ``[2, 2, 2, 2]``), ImageNet 224.
* ``resnet50`` -- torchvision ResNet-50 v1.5, from :func:`models.zoo.resnet50_network`.
* ``vgg16`` -- torchvision VGG-16 (13 3x3 convs, classifier 25088->4096->4096->1000).
* ``mobilenetv2`` -- torchvision MobileNetV2 (width 1.0). A depthwise 3x3 conv on ``C``
  channels is ``C`` independent GEMMs of one output channel each: one entry with
  ``count = C``, ``k = 9``, ``n_out = 1`` (each MAC counted once). The mapper packs the
  channels block-diagonally across the array's columns (:func:`dataflow.mapper.packing`,
  docs/training.md). Depthwise layers are not prunable: an N:M group along a 9-tap
  reduction is not what N:M hardware (or SR-STE practice) prunes; their weights are trained
  dense.
* ``vit_s16`` -- ViT-S/16 (timm ``vit_small_patch16_224``: embed 384, depth 12, 6 heads of
  64, MLP 1536, 197 tokens = 196 patches + cls). The patch embedding is a 16x16/16 conv;
  the classifier head reads the cls token only (``tokens = batch``).
* ``bert_base`` -- BERT-base encoder (12 layers, hidden 768, 12 heads, FFN 3072), sequence
  ``seq`` (default 128).
* ``minilm`` -- all-MiniLM-L6-v2's encoder (as :func:`models.zoo.minilm_network`, same
  layer names), sequence ``seq`` (default 128), for a batch.

Transformer layers per block: q, k, v, o projections and the two FFN linears (prunable);
the per-head attention products ``scores`` (``Q K^T``: ``k = head_dim``, ``n_out = seq``)
and ``context`` (``P V``: ``k = seq``, ``n_out = head_dim``) with ``count = heads * batch``
(each sequence has its own) and ``tokens = seq`` (not prunable). Embedding lookups,
normalisation, softmax, GELU, pooling, residual adds are not GEMMs and are left out, as
is BERT's pooler. Biases are not counted.

Training step of one layer: :func:`training_gemms` returns three :class:`GemmLayer`::

    FF  name.ff : tokens=T, k=K, n_out=N   Y[T, N]  = X[T, K]   @ W[N, K]^T
    BP  name.bp : tokens=T, k=N, n_out=K   dX[T, K] = dY[T, N]  @ (W^T)[K, N]^T   (= dY @ W)
    WG  name.wg : tokens=N, k=T, n_out=K   dW[N, K] = dY^T[N, T] @ (X^T)[K, T]^T  (= dY^T @ X)

so in WG the activation ``X`` (transposed) takes the "weight" (stationary) slot and the
output gradient streams. FF and BP are prunable when the layer is (BDWP prunes both, with
masks along ``K`` and along ``N`` respectively); WG is always dense (``prunable=False``).
For an attention product the same three shapes give the gradients of both operands
(``dQ = dS K``, ``dK = dS^T Q``). Each of the three has the MACs of FF.
:func:`training_step_network` lists a whole step (FF in order, then BP and WG in
reverse order) and drops BP of the layer that reads the network input (the image: there is
no dX to propagate) for the CNNs and ViT (``Network.input_layers``).
"""

from __future__ import annotations

from typing import Any, Callable

from .network import GemmLayer, Network
from .zoo import MAX_BATCH, MAX_IMAGE, resnet50_network

__all__ = [
    "resnet18_network", "vgg16_network", "mobilenetv2_network", "vit_s16_network", "vit_m3vit_network", "bert_base_network",
    "minilm_train_network", "get_training_network", "training_gemms", "training_step_network",
    "TRAINING_NETWORKS", "INPUT_LAYERS",
]


def _check(func: str, field: str, value: object, *, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (high is not None and value > high):
        allowed = "a positive integer" if high is None else f"an integer in 1..{high}"
        raise ValueError(f"{func}: {field} = {value!r} is not allowed: must be {allowed}")
    return value


def _out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class _Builder:
    """Collects conv / linear GEMMs while tracking the feature-map side."""

    def __init__(self, batch: int) -> None:
        self.b = batch
        self.layers: list[GemmLayer] = []

    def conv(self, name: str, group: str, c_in: int, c_out: int, kernel: int, stride: int, h: int, *,
             padding: int | None = None, groups: int = 1) -> int:
        pad = kernel // 2 if padding is None else padding
        h_out = _out(h, kernel, stride, pad)
        depthwise = groups > 1
        self.layers.append(GemmLayer(
            name=name, tokens=self.b * h_out * h_out, k=(c_in // groups) * kernel * kernel,
            n_out=c_out // groups, kind="conv", prunable=not depthwise, group=group, count=groups))
        return h_out

    def linear(self, name: str, group: str, tokens: int, k: int, n_out: int) -> None:
        self.layers.append(GemmLayer(name=name, tokens=tokens, k=k, n_out=n_out, kind="linear", group=group))


def resnet18_network(*, batch: int = 1, image: int = 224) -> Network:
    """torchvision ResNet-18 on ``batch`` RGB images of side ``image`` (1,814,073,344 MACs
    at batch 1, 224: the "1.82 GMACs" usually quoted). Names follow torchvision."""
    b = _check("resnet18_network", "batch", batch, high=MAX_BATCH)
    size = _check("resnet18_network", "image", image, high=MAX_IMAGE)
    nb = _Builder(b)
    h = nb.conv("conv1", "stem", 3, 64, 7, 2, size)
    h = _out(h, 3, 2, 1)  # maxpool
    c_in = 64
    for li, (width, first_stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), 1):
        g = f"layer{li}"
        for bi in range(2):
            stride = first_stride if bi == 0 else 1
            p = f"{g}.{bi}"
            h1 = nb.conv(f"{p}.conv1", g, c_in, width, 3, stride, h)
            nb.conv(f"{p}.conv2", g, width, width, 3, 1, h1)
            if stride != 1 or c_in != width:
                nb.conv(f"{p}.downsample.0", g, c_in, width, 1, stride, h)
            h, c_in = h1, width
    nb.linear("fc", "head", b, 512, 1000)
    return Network(name="resnet18", layers=tuple(nb.layers), input_layers=("conv1",))


def vgg16_network(*, batch: int = 1, image: int = 224) -> Network:
    """torchvision VGG-16 (configuration D, no batch norm) on ``batch`` images of side
    ``image`` (15,470,264,320 MACs at batch 1, 224). The adaptive 7x7 average pool makes
    the classifier input 512*7*7 = 25088 whatever ``image`` is."""
    b = _check("vgg16_network", "batch", batch, high=MAX_BATCH)
    size = _check("vgg16_network", "image", image, high=MAX_IMAGE)
    if size < 32:
        raise ValueError(f"vgg16_network: image = {image} is not allowed: must be >= 32 (five 2x2 pools)")
    nb = _Builder(b)
    cfg = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
    h, c_in, idx, block = size, 3, 0, 1
    for v in cfg:
        if v == "M":
            h //= 2
            block += 1
            continue
        h = nb.conv(f"features.{idx}", f"block{block}", c_in, v, 3, 1, h)
        idx += 2  # torchvision numbering: conv, relu, (pool)
        c_in = v
    nb.linear("classifier.0", "head", b, 512 * 7 * 7, 4096)
    nb.linear("classifier.3", "head", b, 4096, 4096)
    nb.linear("classifier.6", "head", b, 4096, 1000)
    return Network(name="vgg16", layers=tuple(nb.layers), input_layers=("features.0",))


def mobilenetv2_network(*, batch: int = 1, image: int = 224) -> Network:
    """torchvision MobileNetV2 (width 1.0) on ``batch`` images of side ``image``
    (300,774,272 MACs at batch 1, 224, 6.9% of them in depthwise convs). Depthwise convs
    are entries with ``count = channels``, ``k = 9``, ``n_out = 1``, not prunable (the
    mapper packs their channels; see the module docstring)."""
    b = _check("mobilenetv2_network", "batch", batch, high=MAX_BATCH)
    size = _check("mobilenetv2_network", "image", image, high=MAX_IMAGE)
    nb = _Builder(b)
    h = nb.conv("features.0", "stem", 3, 32, 3, 2, size)
    c_in, idx = 32, 1
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = c_in * t
            p, g = f"features.{idx}", f"features.{idx}"
            j = 0
            if t != 1:
                nb.conv(f"{p}.expand", g, c_in, hidden, 1, 1, h)
                j += 1
            h = nb.conv(f"{p}.depthwise", g, hidden, hidden, 3, stride, h, groups=hidden)
            nb.conv(f"{p}.project", g, hidden, c, 1, 1, h)
            c_in, idx = c, idx + 1
    nb.conv(f"features.{idx}", "head", c_in, 1280, 1, 1, h)
    nb.linear("classifier.1", "head", b, 1280, 1000)
    return Network(name="mobilenetv2", layers=tuple(nb.layers), input_layers=("features.0",))


def _encoder(nb: _Builder, *, prefix: str, layers: int, seq: int, hidden: int, heads: int, ffn: int,
             fused_qkv: bool = False) -> None:
    t = nb.b * seq
    hd = hidden // heads
    for i in range(layers):
        g = f"{prefix}{i}"
        if fused_qkv:
            nb.linear(f"{g}.attn.qkv", g, t, hidden, 3 * hidden)
        else:
            for proj in ("q", "k", "v"):
                nb.linear(f"{g}.attn.{proj}", g, t, hidden, hidden)
        nb.layers.append(GemmLayer(name=f"{g}.attn.scores", tokens=seq, k=hd, n_out=seq, kind="attention",
                                   prunable=False, group=g, count=heads * nb.b))
        nb.layers.append(GemmLayer(name=f"{g}.attn.context", tokens=seq, k=seq, n_out=hd, kind="attention",
                                   prunable=False, group=g, count=heads * nb.b))
        nb.linear(f"{g}.attn.o", g, t, hidden, hidden)
        nb.linear(f"{g}.ffn.up", g, t, hidden, ffn)
        nb.linear(f"{g}.ffn.down", g, t, ffn, hidden)


def vit_s16_network(*, batch: int = 1) -> Network:
    """ViT-S/16 at 224 (197 tokens) on ``batch`` images: patch embedding (16x16/16 conv,
    3*16*16 = 768 -> 384 over 196 patches), 12 blocks (``blocks.{i}.attn.qkv`` fused
    384 -> 1152, scores/context with 6 heads of 64, ``attn.o``, ``ffn.up`` 384 -> 1536,
    ``ffn.down``) and the head on the cls token (384 -> 1000): 4,598,882,304 MACs at batch 1."""
    b = _check("vit_s16_network", "batch", batch, high=MAX_BATCH)
    nb = _Builder(b)
    nb.conv("patch_embed", "embed", 3, 384, 16, 16, 224, padding=0)
    _encoder(nb, prefix="blocks.", layers=12, seq=197, hidden=384, heads=6, ffn=1536, fused_qkv=True)
    nb.linear("head", "head", b, 384, 1000)
    return Network(name="vit_s16", layers=tuple(nb.layers), input_layers=("patch_embed",))


def vit_m3vit_network(*, batch: int = 1) -> Network:
    """The dense ViT-small at M3ViT's shape (Liang et al., NeurIPS 2022: ViT-small backbone,
    embed 384, 12 blocks of 12 heads of 32, MLP 1536, patch 16 on 512 x 512 frames = 1024
    patches + cls = 1025 tokens) on ``batch`` frames, without a classification head (M3ViT's
    task decoders are not part of the backbone): the GEMMs of
    :func:`models.moe.dense_vit_network` for ``m3vit-small`` (the dense baseline of the MoE
    schedules; same MACs, a test checks it), as a network that simulates for inference and
    training like the others."""
    b = _check("vit_m3vit_network", "batch", batch, high=MAX_BATCH)
    nb = _Builder(b)
    nb.conv("patch_embed", "embed", 3, 384, 16, 16, 512, padding=0)
    _encoder(nb, prefix="blocks.", layers=12, seq=1025, hidden=384, heads=12, ffn=1536, fused_qkv=True)
    return Network(name="vit_m3vit", layers=tuple(nb.layers), input_layers=("patch_embed",))


def bert_base_network(*, batch: int = 1, seq: int = 128) -> Network:
    """BERT-base encoder (12 layers, hidden 768, 12 heads of 64, FFN 3072) on ``batch``
    sequences of ``seq`` tokens: 11,173,625,856 MACs at batch 1, seq 128 (10.87 G in the
    linear layers, 0.30 G in attention products)."""
    b = _check("bert_base_network", "batch", batch, high=MAX_BATCH)
    s = _check("bert_base_network", "seq", seq, high=512)
    nb = _Builder(b)
    _encoder(nb, prefix="layer", layers=12, seq=s, hidden=768, heads=12, ffn=3072)
    return Network(name="bert_base", layers=tuple(nb.layers), input_layers=())


def minilm_train_network(*, batch: int = 1, seq: int = 128) -> Network:
    """all-MiniLM-L6-v2's encoder (6 layers, hidden 384, 12 heads of 32, FFN 1536) on
    ``batch`` sequences of ``seq`` tokens; at ``batch = 1`` it has the layers (names,
    shapes, MACs) of :func:`models.zoo.minilm_network` ``(tokens=seq)``."""
    b = _check("minilm_train_network", "batch", batch, high=MAX_BATCH)
    s = _check("minilm_train_network", "seq", seq, high=512)
    nb = _Builder(b)
    _encoder(nb, prefix="layer", layers=6, seq=s, hidden=384, heads=12, ffn=1536)
    return Network(name="minilm", layers=tuple(nb.layers), input_layers=())


def _resnet50(*, batch: int = 1, image: int = 224) -> Network:
    return resnet50_network(batch=batch, image=image)


#: Known training networks mapped to their builders.
TRAINING_NETWORKS: dict[str, Callable[..., Network]] = {
    "resnet18": resnet18_network,
    "resnet50": _resnet50,
    "vgg16": vgg16_network,
    "mobilenetv2": mobilenetv2_network,
    "vit_s16": vit_s16_network,
    "vit_m3vit": vit_m3vit_network,
    "bert_base": bert_base_network,
    "minilm": minilm_train_network,
}

#: Per network, the layers that read the network input (no BP GEMM in a training step; kept
#: dense by the default sparsity rule, :func:`models.network.sparsity_plan`): each builder's
#: ``Network.input_layers``, the one place they are declared.
INPUT_LAYERS: dict[str, tuple[str, ...]] = {
    name: build(batch=1).input_layers or () for name, build in TRAINING_NETWORKS.items()}


def get_training_network(name: str, *, batch: int = 1, **kw: Any) -> Network:
    """The FF GEMMs of network ``name`` for a minibatch of ``batch`` samples; ``kw`` goes
    to the builder (``image=`` for the CNNs, ``seq=`` for BERT-base and MiniLM).

    Raises:
        ValueError: unknown ``name`` (the message lists the known ones) or a bad size.
        TypeError: a keyword the builder does not take.
    """
    try:
        builder = TRAINING_NETWORKS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"training network {name!r} is not known: choose one of {', '.join(sorted(TRAINING_NETWORKS))}"
        ) from None
    return builder(batch=batch, **kw)


def training_gemms(layer: GemmLayer) -> tuple[GemmLayer, GemmLayer, GemmLayer]:
    """``(ff, bp, wg)`` of one FF layer (see the module docstring for the shapes), named
    ``"{name}.ff"``, ``"{name}.bp"``, ``"{name}.wg"``, with the layer's kind, group and
    count. FF and BP keep the layer's ``prunable``; WG is dense."""
    if not isinstance(layer, GemmLayer):
        raise ValueError(f"layer of type {type(layer).__name__} is not allowed: must be a GemmLayer")
    common = dict(kind=layer.kind, group=layer.group, count=layer.count)
    t, k, n = layer.tokens, layer.k, layer.n_out
    return (GemmLayer(name=f"{layer.name}.ff", tokens=t, k=k, n_out=n, prunable=layer.prunable, **common),
            GemmLayer(name=f"{layer.name}.bp", tokens=t, k=n, n_out=k, prunable=layer.prunable, **common),
            GemmLayer(name=f"{layer.name}.wg", tokens=n, k=t, n_out=k, prunable=False, **common))


def training_step_network(network: Network, *, skip_bp: tuple[str, ...] | None = None) -> Network:
    """All GEMMs of one training step of ``network``: every FF in forward order, then per
    layer in reverse order its BP and WG. BP is left out for the layers named in
    ``skip_bp`` (default: ``network.input_layers``; for a network that does not declare them,
    :data:`INPUT_LAYERS` of ``network.name``, nothing for an unknown name). The result is named ``"{network.name}.train"``.

    Raises:
        ValueError: a name in ``skip_bp`` is not a layer of ``network``.
    """
    if skip_bp is None:
        skip_bp = network.input_layers if network.input_layers is not None else INPUT_LAYERS.get(network.name, ())
    names = {layer.name for layer in network}
    for name in skip_bp:
        if name not in names:
            raise ValueError(f"skip_bp: {name!r} is not allowed: network {network.name!r} has no such layer")
    triples = [training_gemms(layer) for layer in network]
    backward: list[GemmLayer] = []
    for layer, (_, bp, wg) in zip(reversed(network.layers), reversed(triples)):
        if layer.name not in skip_bp:
            backward.append(bp)
        backward.append(wg)
    return Network(name=f"{network.name}.train", layers=tuple(ff for ff, _, _ in triples) + tuple(backward))
