"""What a folded BatchNorm leaves behind in inference: the bias, the residual add and the ReLU after the conv.

common.models.bn_fold folds each BN into its conv for eval, predict and export. A folded BatchNormReLU /
BatchNormAddReLU still owes relu(x + bias [+ residual]); on the CPU backend `BiasReLU` applies it in one kernel
(csrc/batchnorm.cc) where MindSpore runs BiasAdd, [Add,] ReLU (`benchmark.py --mode eval --ab ZOO_FUSED_BN`,
ResNeXt-50 bs 8/112 px: 102.4 -> 95.1 ms). Decided by `cpu_ops.use_fused_bn`; tests/test_bn_fold.py checks it.
"""
from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops
from mindspore.common import dtype as mstype

from .library import library_path


class BiasReLU(nn.Cell):
    """relu(x + bias) per channel, what a BatchNormReLU folded into its conv leaves (common.models.bn_fold) on CPU: one
    kernel where MindSpore runs BiasAdd and ReLU. `residual=True`: relu(x + bias + residual), `cell(x, residual)`."""

    def __init__(self, bias, residual: bool = False) -> None:
        super().__init__()
        self.bias = ms.Parameter(ms.Tensor(bias, mstype.float32), name="bias")
        self.residual = residual
        name = "ZooBiasAddReLU" if residual else "ZooBiasReLU"
        self.kernel = ops.Custom(f"{library_path()}:{name}", lambda x, *rest: x, lambda x, *rest: x, "aot")
        self.bias_add = ops.BiasAdd()
        self.act = nn.ReLU()

    def construct(self, x, *residual):
        if x.dtype == mstype.float32:
            return self.kernel(x, self.bias, *residual)
        y = self.bias_add(x, self.bias.astype(x.dtype))
        return self.act(y + residual[0]) if self.residual else self.act(y)


class AddReLU(nn.Cell):
    """What a BatchNormAddReLU leaves once common.models.bn_fold has folded its BN into the conv: relu(x + residual)."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()

    def construct(self, x, residual):
        return self.act(x + residual)
