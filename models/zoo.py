"""GEMM descriptions of the workloads sparseforge studies.

* :func:`minilm_network` -- the encoder of all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384,
  12 heads of 32, FFN 1536): per layer the q/k/v/o projections, the FFN up and down
  projections (prunable ``"linear"`` layers, names matching :mod:`models.minilm`), and
  the per-head attention score and context products (``"attention"``, not prunable,
  ``count = 12``). Embedding lookups, LayerNorm, softmax and GELU are not GEMMs and are
  left out; so is the unused BERT pooler.
* :func:`resnet50_network` -- torchvision's ResNet-50 (v1.5: the stride of a bottleneck
  sits on its 3x3 conv), every convolution lowered to an im2col GEMM
  (``tokens = batch * H_out * W_out``, ``k = C_in * kh * kw``, ``n_out = C_out``), plus the
  final fully connected layer 2048 -> 1000. Layer names follow torchvision's module
  names (``"layer2.0.conv2"``, ``"layer2.0.downsample.0"``).

* ``vit_s16`` -- ViT-S/16 (timm ``vit_small_patch16_224``: embed 384, depth 12, 6 heads of
  64, MLP 1536, 224 x 224 = 196 patches + cls): the network of
  :func:`models.zoo_train.vit_s16_network` at batch 1 (one definition for training and
  inference).
* ``vit_m3vit`` -- the dense ViT-small at M3ViT's shape (12 heads, 512 x 512 frames = 1025
  tokens, no head): :func:`models.zoo_train.vit_m3vit_network`, the same GEMMs as
  :func:`models.moe.dense_vit_network`, the dense baseline of the MoE schedules.

:func:`get_network` picks one by name.
"""

from __future__ import annotations

from typing import Any, Callable

from .network import GemmLayer, Network

__all__ = ["minilm_network", "resnet50_network", "vit_s16_network", "vit_m3vit_network", "resnet18_network",
           "vgg16_network", "mobilenetv2_network", "bert_base_network", "get_network", "NETWORKS", "MAX_BATCH", "MAX_IMAGE"]

# all-MiniLM-L6-v2 hyper-parameters (its config.json)
MINILM_LAYERS = 6
MINILM_HIDDEN = 384
MINILM_HEADS = 12
MINILM_HEAD_DIM = MINILM_HIDDEN // MINILM_HEADS
MINILM_FFN = 1536
MINILM_MAX_POSITIONS = 512

#: largest batch of a built-in network: 64 times the usual training batches (up to 1024) and far
#: beyond inference batches; the mapper refuses a layer that needs more than MAX_RUNS array runs
MAX_BATCH = 1 << 16
#: largest image side of the CNNs (4096 x 4096 pixels; ImageNet models run at 224)
MAX_IMAGE = 4096


def _check_size(func: str, field: str, value: object, *, low: int = 1, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
        raise ValueError(f"{func}: {field} = {value!r} is not allowed: must be {allowed}")
    return value


def minilm_network(*, tokens: int = 128) -> Network:
    """The all-MiniLM-L6-v2 encoder as GEMMs for a sequence of ``tokens`` positions.

    Per encoder layer ``i`` (group ``"layer{i}"``), in execution order:
    ``attn.q``, ``attn.k``, ``attn.v`` (384 -> 384), ``attn.scores`` (12 heads of
    ``[T, 32] @ [32, T]``: ``k = 32``, ``n_out = T``), ``attn.context`` (12 heads of
    ``[T, T] @ [T, 32]``: ``k = T``, ``n_out = 32``), ``attn.o`` (384 -> 384),
    ``ffn.up`` (384 -> 1536), ``ffn.down`` (1536 -> 384). Names are prefixed
    ``"layer{i}."``.

    Raises:
        ValueError: ``tokens`` is not an integer in 1..512 (BERT's position table).
    """
    t = _check_size("minilm_network", "tokens", tokens, high=MINILM_MAX_POSITIONS)
    h, f, hd = MINILM_HIDDEN, MINILM_FFN, MINILM_HEAD_DIM
    layers: list[GemmLayer] = []
    for i in range(MINILM_LAYERS):
        g = f"layer{i}"

        def lin(suffix: str, k: int, n_out: int) -> GemmLayer:
            return GemmLayer(name=f"{g}.{suffix}", tokens=t, k=k, n_out=n_out, kind="linear", group=g)

        def att(suffix: str, k: int, n_out: int) -> GemmLayer:
            return GemmLayer(name=f"{g}.{suffix}", tokens=t, k=k, n_out=n_out, kind="attention",
                             prunable=False, group=g, count=MINILM_HEADS)

        layers += [
            lin("attn.q", h, h),
            lin("attn.k", h, h),
            lin("attn.v", h, h),
            att("attn.scores", hd, t),
            att("attn.context", t, hd),
            lin("attn.o", h, h),
            lin("ffn.up", h, f),
            lin("ffn.down", f, h),
        ]
    # the encoder reads the embedding lookup (no GEMM): no layer reads the raw input
    return Network(name="minilm", layers=tuple(layers), input_layers=())


def _conv_out(size: int, *, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def resnet50_network(*, batch: int = 1, image: int = 224) -> Network:
    """torchvision ResNet-50 (v1.5) on ``batch`` square RGB images of side ``image``.

    53 convolutions (stem 7x7/2, then bottlenecks ``[3, 4, 6, 3]`` of widths 64, 128,
    256, 512 with expansion 4, stride 2 on the 3x3 conv of the first block of layers
    2-4, a strided 1x1 ``downsample.0`` conv on the first block of every layer) and the
    fully connected layer (``tokens = batch``, 2048 -> 1000). Max-pooling (3x3/2, pad 1)
    and global average pooling change shapes but are not GEMMs. Groups: ``"stem"``,
    ``"layer1"`` .. ``"layer4"``, ``"head"``.

    At ``batch = 1, image = 224`` this is 4,089,184,256 MACs (the commonly quoted
    "4.1 GMACs" of ResNet-50).

    Raises:
        ValueError: ``batch`` is not an integer in 1..MAX_BATCH or ``image`` not in
            1..MAX_IMAGE. (Any positive ``image`` gives valid shapes: with padding every
            feature map keeps at least one pixel.)
    """
    b = _check_size("resnet50_network", "batch", batch, high=MAX_BATCH)
    size = _check_size("resnet50_network", "image", image, high=MAX_IMAGE)
    layers: list[GemmLayer] = []

    def conv(name: str, group: str, c_in: int, c_out: int, kernel: int, stride: int, h_in: int) -> int:
        h_out = _conv_out(h_in, kernel=kernel, stride=stride, padding=kernel // 2)
        layers.append(GemmLayer(name=name, tokens=b * h_out * h_out, k=c_in * kernel * kernel,
                                n_out=c_out, kind="conv", group=group))
        return h_out

    h = conv("conv1", "stem", 3, 64, 7, 2, size)
    h = _conv_out(h, kernel=3, stride=2, padding=1)  # maxpool
    in_ch = 64
    for li, (blocks, width, first_stride) in enumerate(((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)), 1):
        group = f"layer{li}"
        out_ch = width * 4
        for bi in range(blocks):
            stride = first_stride if bi == 0 else 1
            p = f"{group}.{bi}"
            h1 = conv(f"{p}.conv1", group, in_ch, width, 1, 1, h)
            h2 = conv(f"{p}.conv2", group, width, width, 3, stride, h1)
            h3 = conv(f"{p}.conv3", group, width, out_ch, 1, 1, h2)
            if bi == 0:  # channel (and, from layer2 on, resolution) change on the shortcut
                conv(f"{p}.downsample.0", group, in_ch, out_ch, 1, stride, h)
            h, in_ch = h3, out_ch
    layers.append(GemmLayer(name="fc", tokens=b, k=in_ch, n_out=1000, kind="linear", group="head"))
    return Network(name="resnet50", layers=tuple(layers), input_layers=("conv1",))


def vit_s16_network(*, batch: int = 1) -> Network:
    """ViT-S/16 at 224 on ``batch`` images for inference: the forward GEMMs of
    :func:`models.zoo_train.vit_s16_network` (4,598,882,304 MACs at batch 1)."""
    from .zoo_train import vit_s16_network as build

    return build(batch=batch)


def vit_m3vit_network(*, batch: int = 1) -> Network:
    """The dense ViT-small at M3ViT's shape (12 heads, 512 x 512 frames, 1025 tokens) on
    ``batch`` frames (:func:`models.zoo_train.vit_m3vit_network`)."""
    from .zoo_train import vit_m3vit_network as build

    return build(batch=batch)


def resnet18_network(*, batch: int = 1) -> Network:
    """torchvision's ResNet-18 at 224 on ``batch`` images: the forward GEMMs of
    :func:`models.zoo_train.resnet18_network` (one definition for training and inference)."""
    from .zoo_train import resnet18_network as build

    return build(batch=batch)


def vgg16_network(*, batch: int = 1) -> Network:
    """torchvision's VGG-16 at 224 on ``batch`` images (:func:`models.zoo_train.vgg16_network`)."""
    from .zoo_train import vgg16_network as build

    return build(batch=batch)


def mobilenetv2_network(*, batch: int = 1) -> Network:
    """torchvision's MobileNetV2 at 224 on ``batch`` images
    (:func:`models.zoo_train.mobilenetv2_network`; its depthwise convolutions are grouped
    GEMMs, packed by the mapper, docs/training.md)."""
    from .zoo_train import mobilenetv2_network as build

    return build(batch=batch)


def bert_base_network(*, tokens: int = 128) -> Network:
    """BERT-base's encoder on one sequence of ``tokens`` tokens
    (:func:`models.zoo_train.bert_base_network` with ``seq = tokens``)."""
    from .zoo_train import bert_base_network as build

    return build(batch=1, seq=tokens)


#: Known network names mapped to their builders: one zoo for inference and training (the
#: training networks of :data:`models.zoo_train.TRAINING_NETWORKS` are the same GEMMs).
NETWORKS: dict[str, Callable[..., Network]] = {
    "minilm": minilm_network,
    "resnet50": resnet50_network,
    "resnet18": resnet18_network,
    "vgg16": vgg16_network,
    "mobilenetv2": mobilenetv2_network,
    "vit_s16": vit_s16_network,
    "vit_m3vit": vit_m3vit_network,
    "bert_base": bert_base_network,
}


def get_network(name: str, **kw: Any) -> Network:
    """Build the network called ``name`` (a key of :data:`NETWORKS`), passing ``kw`` to its
    builder (``tokens=`` for MiniLM and BERT-base, ``batch=`` for the image networks,
    ``image=`` too for ResNet-50).

    Raises:
        ValueError: unknown ``name`` (the message lists the known names), or a bad size.
        TypeError: a keyword the builder does not take.
    """
    try:
        builder = NETWORKS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"network {name!r} is not known: choose one of {', '.join(sorted(NETWORKS))}") from None
    return builder(**kw)
