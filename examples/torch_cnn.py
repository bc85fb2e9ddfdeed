"""A small CNN as a TensorFlow port writes it, for the ONNX and PyTorch importers (docs/import.md).

    sparseforge simulate --torch examples/torch_cnn.py:build --input-shape x=1,3,32,32
    sparseforge simulate --torch examples/torch_cnn.py:build_pruned --input-shape x=1,3,32,32
    python examples/torch_cnn.py OUT_DIR      # writes same_cnn.onnx, same_cnn_qdq.onnx, same_cnn_int8.onnx

"Same" padding three ways: timm's ``Conv2dSame`` (TensorFlow SAME, computed from the input
size: exported as Shape/Gather/Div/Sub/Concat chains), ``nn.ZeroPad2d`` and ``F.pad``
(exported as ConstantOfShape/Concat/Slice/Reshape chains). Needs ``sparseforge[torch]``; the
quantized files also need onnxruntime. The weights are random (seeded): only the shapes and,
for ``build_pruned``, the zeros matter to the simulator.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


class Conv2dSame(nn.Conv2d):
    """timm's ``Conv2dSame``: TensorFlow SAME padding from the input size at run time."""

    def forward(self, x):
        ih, iw = x.size()[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((-(-ih // sh) - 1) * sh + kh - ih, 0)
        pw = max((-(-iw // sw) - 1) * sw + kw - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class SameCNN(nn.Module):
    """SAME stem (stride 2), ZeroPad2d + depthwise 3x3, pointwise, F.pad + 3x3, SAME
    downsampling (stride 2), global average pool, classifier."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = Conv2dSame(3, 16, 3, stride=2)
        self.pad = nn.ZeroPad2d(1)
        self.dw = nn.Conv2d(16, 16, 3, groups=16)
        self.pw = nn.Conv2d(16, 32, 1)
        self.mid = nn.Conv2d(32, 32, 3)
        self.down = Conv2dSame(32, 32, 3, stride=2)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.relu(self.pw(F.relu(self.dw(self.pad(x)))))
        x = F.relu(self.mid(F.pad(x, (1, 1, 1, 1))))
        x = F.relu(self.down(x))
        return self.fc(x.mean((2, 3)))


def build() -> SameCNN:
    torch.manual_seed(0)
    return SameCNN().eval()


def prune_2_4(weight: torch.Tensor) -> torch.Tensor:
    """The magnitude 2:4 mask of ``weight`` along its reduction (a conv weight read as
    [out, in * kh * kw], channel-major: the order im2col reads it)."""
    w = weight.detach().reshape(weight.shape[0], -1, 4).abs()
    keep = w.argsort(dim=-1, descending=True)[..., :2]
    return torch.zeros_like(w).scatter_(-1, keep, 1.0).reshape(weight.shape)


def build_pruned() -> SameCNN:
    """SameCNN with ``pw``, ``mid``, ``down`` and ``fc`` pruned 2:4 by torch.nn.utils.prune
    (stem and depthwise dense, as pruning recipes leave them)."""
    from torch.nn.utils import prune

    model = build()
    for mod in (model.pw, model.mid, model.down, model.fc):
        prune.custom_from_mask(mod, "weight", prune_2_4(mod.weight))
    return model


def export(out: Path) -> None:
    """same_cnn.onnx (float, free batch), same_cnn_qdq.onnx (quantize_static, QDQ) and
    same_cnn_int8.onnx (quantize_dynamic: ConvInteger / MatMulInteger) into ``out``."""
    import warnings

    import numpy as np
    from onnxruntime import quantization as q

    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(build(), (torch.zeros(1, 3, 32, 32),), str(out / "same_cnn.onnx"), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    rng = np.random.default_rng(0)

    class Calibration(q.CalibrationDataReader):
        def __init__(self):
            self.batches = iter({"x": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)} for _ in range(8))

        def get_next(self):
            return next(self.batches, None)

    q.quantize_static(str(out / "same_cnn.onnx"), str(out / "same_cnn_qdq.onnx"), Calibration(),
                      quant_format=q.QuantFormat.QDQ)
    q.quantize_dynamic(str(out / "same_cnn.onnx"), str(out / "same_cnn_int8.onnx"), op_types_to_quantize=["Conv"])
    print(f"wrote {out}/same_cnn.onnx, same_cnn_qdq.onnx, same_cnn_int8.onnx")


if __name__ == "__main__":
    export(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
