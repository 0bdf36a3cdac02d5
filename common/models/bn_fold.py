"""Fold inference-mode BatchNorm into the convolution before it, for eval, predict and export.

In eval mode BN is a per-channel affine map y = (x - mean) * gamma / sqrt(var + eps) + beta, so conv followed by BN
equals one conv with weight w * s and bias (b - mean) * s + beta, s = gamma / sqrt(var + eps). The folded network
gives the same logits (to float32 rounding, ~1e-7 relative; tests/test_bn_fold.py) and skips 53 BN kernels per
ResNeXt-50 forward: 495 -> 451 ms at bs 8/224 on the 2-core CPU (benchmarks/RESULTS.md, round 3). Deployment
graphs (MINDIR/ONNX/AIR) get the same folding. Training networks are never folded.

Which conv feeds which BN is declared by each backbone cell in `conv_bn_pairs`; inside a SequentialCell every
(Conv2d, BatchNorm2d) neighbour pair is folded.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
from mindspore import Tensor, nn

from ..cpu_ops import use_fused_bn
from ..cpu_ops.batchnorm import BatchNormAddReLU, BatchNormReLU
from ..cpu_ops.conv import OneDNNConv2d
from ..cpu_ops.epilogue import AddReLU, BiasReLU


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tuple[nn.Conv2d, nn.Cell]:
    """The conv with `bn` folded into it, and the cell that takes the BN's place (see `_after_fold`).

    On the CPU backend (common.cpu_ops.epilogue available) a folded BN + ReLU (+ residual) leaves the bias out of a
    native conv and applies bias, [residual,] ReLU in one BiasReLU kernel instead of BiasAdd, [Add,] ReLU.
    """
    weight = conv.weight.asnumpy().astype(np.float64)
    bias = conv.bias.asnumpy().astype(np.float64) if conv.has_bias else 0.0
    gamma, beta, mean, var = (p.asnumpy().astype(np.float64)
                              for p in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance))
    scale = gamma / np.sqrt(var + bn.eps)
    folded_bias = ((bias - mean) * scale + beta).astype(np.float32)
    epilogue = (isinstance(bn, (BatchNormReLU, BatchNormAddReLU)) and not isinstance(conv, OneDNNConv2d)
                and use_fused_bn())
    if isinstance(conv, OneDNNConv2d):  # keeps the faster CPU operator (it takes a bias in the forward)
        folded = OneDNNConv2d(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0],
                              groups=conv.group, has_bias=True)
    else:
        folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                           pad_mode=conv.pad_mode, padding=conv.padding, dilation=conv.dilation, group=conv.group,
                           has_bias=not epilogue)
    folded.weight.set_data(Tensor((weight * scale.reshape(-1, 1, 1, 1)).astype(np.float32)))
    if epilogue:
        return folded, BiasReLU(folded_bias, residual=isinstance(bn, BatchNormAddReLU))
    folded.bias.set_data(Tensor(folded_bias))
    return folded, _after_fold(bn)


def _after_fold(bn: nn.BatchNorm2d) -> nn.Cell:
    """What stays of a folded BN: the ReLU it applied (common.fused_bn.BatchNormReLU), the residual add and ReLU
    (BatchNormAddReLU), else nothing."""
    if isinstance(bn, BatchNormAddReLU):
        return AddReLU()
    return nn.ReLU() if isinstance(bn, BatchNormReLU) else nn.Identity()


def _fold_sequence(seq: nn.SequentialCell) -> None:
    cells = list(seq.cells())
    for i in range(len(cells) - 1):
        if isinstance(cells[i], nn.Conv2d) and isinstance(cells[i + 1], nn.BatchNorm2d):
            seq[i], seq[i + 1] = _fold(cells[i], cells[i + 1])


def _fold_attribute_pair(cell: nn.Cell, conv_name: str, bn_name: str) -> None:
    conv, bn = getattr(cell, conv_name), getattr(cell, bn_name)
    if not isinstance(bn, nn.BatchNorm2d):
        return  # e.g. a ResNeSt block's conv2 is a split-attention cell with its own BN
    if isinstance(conv, nn.SequentialCell):  # deep stem: the stem's last conv feeds the network's bn1
        last = len(conv) - 1
        conv[last], after = _fold(conv[last], bn)
    elif isinstance(conv, nn.Conv2d):
        folded, after = _fold(conv, bn)
        setattr(cell, conv_name, folded)
    else:
        return
    setattr(cell, bn_name, after)


def fold_batchnorm(net: nn.Cell) -> nn.Cell:
    """Fold every BN of `net` into its conv, in place, and return `net` (in eval mode; not for training)."""
    for _, cell in list(net.cells_and_names()):
        if isinstance(cell, nn.SequentialCell):
            _fold_sequence(cell)
        for conv_name, bn_name in getattr(cell, "conv_bn_pairs", ()):
            _fold_attribute_pair(cell, conv_name, bn_name)
    # a cell assigned into its parent takes only the attribute name as prefix; give the new parameters their paths
    for path, param in net.parameters_and_names():
        param.name = path
    net.set_train(False)
    return net
