"""One ResNet-family backbone for every arch in the zoo.

ResNeXt (Xie et al., 2017, arXiv:1611.05431) is torchvision's "v1.5" bottleneck with a grouped 3x3 conv: the
stride sits on the 3x3 conv and width = int(planes * base_width / 64) * groups. ResNeSt (Zhang et al., 2020,
arXiv:2004.08955) reuses the same network with three switches, as timm builds `resnest50d` from its ResNet:
a split-attention 3x3 conv (`radix` > 0), a deep 3x3 stem, and average-pool downsampling (avd + avg-down shortcut).

Cell and attribute names follow the PyTorch state-dict keys (torchvision for ResNeXt, timm for ResNeSt), so weight
conversion is a rename of BatchNorm fields and nothing else.

Padding is always explicit (pad_mode="pad" or a zero pad in front of a "valid" pool): MindSpore's "same" pooling
pads bottom/right only and would not match PyTorch's symmetric padding.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
from mindspore import Parameter, Tensor, nn

from .layers import AvgDown, batch_norm, batch_norm_add_relu, batch_norm_relu, conv2d, pool_3x3
from .split_attention import SplitAttention

# Checkpoint entry of a network built with pool_padding='same' (absent for 'symmetric', the key names of which are
# unchanged): the checkpoint records the padding it was trained or imported with.
PADDING_KEY = "pool_padding_same"


class Bottleneck(nn.Cell):
    """1x1 -> 3x3 (grouped, or split-attention when radix > 0) -> 1x1, expansion 4, stride on the 3x3 stage."""

    expansion = 4
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: Optional[nn.Cell] = None,
                 groups: int = 1, base_width: int = 64, radix: int = 0, avd: bool = False,
                 zero_init_last: bool = False, pool_padding: str = "symmetric") -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        # avd (ResNeSt): where the block strides, the 3x3 conv runs at stride 1 and a 3x3/s2 average pool follows it.
        avd_stride = stride if (avd and stride > 1) else 0
        conv_stride = 1 if avd_stride else stride
        self.conv1 = conv2d(in_ch, width, 1)
        self.bn1 = batch_norm_relu(width)
        if radix > 0:
            self.conv2 = SplitAttention(width, width, conv_stride, groups=groups, radix=radix)
            self.bn2 = None
        else:
            self.conv2 = conv2d(width, width, 3, conv_stride, groups=groups)
            self.bn2 = batch_norm_relu(width)
        self.avd_last = pool_3x3("avg", avd_stride, pool_padding) if avd_stride else None
        self.conv3 = conv2d(width, planes * self.expansion, 1)
        self.bn3 = batch_norm_add_relu(planes * self.expansion, zero_gamma=zero_init_last)
        self.downsample = downsample

    def construct(self, x):
        identity = x
        out = self.bn1(self.conv1(x))  # bn1, bn2 and the stem's bn1 apply the ReLU (batch_norm_relu)
        out = self.conv2(out)
        if self.bn2 is not None:
            out = self.bn2(out)
        if self.avd_last is not None:
            out = self.avd_last(out)
        out = self.conv3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.bn3(out, identity)  # relu(bn3(out) + identity)


class ResNet(nn.Cell):
    """ResNet/ResNeXt/ResNeSt backbone plus a linear head.

    Args:
        layers: blocks per stage, e.g. (3, 4, 6, 3).
        groups, base_width: ResNeXt cardinality and bottleneck width per group.
        radix: 0 for ResNeXt blocks, >= 1 for ResNeSt split-attention blocks.
        deep_stem: three 3x3 convs (stem_width, stem_width, 2 * stem_width) instead of one 7x7.
        avg_down: average-pool then 1x1 conv in the shortcut, instead of a strided 1x1 conv.
        avd: average-pool downsampling inside the block (ResNeSt).
        drop_rate: dropout before the classifier.
        zero_init_last: start each residual branch at zero (gamma of its last BN = 0).
        features_only: no head; `construct` returns the maps of the stages in `out_indices` (0 = stem at stride 2,
            1-4 = layer1-layer4 at strides 4/8/16/32), described by `feature_info` (timm's convention). Stages after
            the last index are not built.
        pool_padding: 'symmetric' (torchvision/timm) or 'same' (MindCV/ModelZoo: MindSpore's pad_mode="same" for the
            stem max pool and the avd pools). A 'same' network holds the marker PADDING_KEY, so its checkpoints say
            how they were trained and every loader rebuilds the same network (common.models.registry).
    """

    conv_bn_pairs = (("conv1", "bn1"),)

    def __init__(self, layers: Sequence[int], num_classes: int = 1000, groups: int = 1, base_width: int = 64,
                 radix: int = 0, deep_stem: bool = False, stem_width: int = 32, avg_down: bool = False,
                 avd: bool = False, drop_rate: float = 0.0, zero_init_last: bool = False, in_chans: int = 3,
                 features_only: bool = False, out_indices: Sequence[int] = (1, 2, 3, 4),
                 pool_padding: str = "symmetric") -> None:
        super().__init__()
        self.features_only = features_only
        self.out_indices = tuple(out_indices)
        if pool_padding not in ("symmetric", "same"):
            raise ValueError(f"pool_padding must be 'symmetric' or 'same', not {pool_padding!r}")
        if pool_padding == "same":
            self.pool_padding_same = Parameter(Tensor(np.ones(1, np.int32)), name=PADDING_KEY, requires_grad=False)
        self.num_classes = num_classes
        self.num_features = 512 * Bottleneck.expansion
        if deep_stem:
            # Identity where timm has its ReLU: the BN applies it, and the indices (PyTorch's key names) stay
            self.conv1 = nn.SequentialCell([
                conv2d(in_chans, stem_width, 3, 2), batch_norm_relu(stem_width), nn.Identity(),
                conv2d(stem_width, stem_width, 3), batch_norm_relu(stem_width), nn.Identity(),
                conv2d(stem_width, stem_width * 2, 3)])
            in_ch = stem_width * 2
        else:
            self.conv1 = conv2d(in_chans, 64, 7, 2)
            in_ch = 64
        self.bn1 = batch_norm_relu(in_ch)
        self.maxpool = pool_3x3("max", 2, pool_padding)
        block_args = dict(groups=groups, base_width=base_width, radix=radix, avd=avd, zero_init_last=zero_init_last,
                          pool_padding=pool_padding)
        stages, stem_ch = [], in_ch
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            stages.append(self._make_stage(in_ch, planes, blocks, stride, avg_down, block_args))
            in_ch = planes * Bottleneck.expansion
        self.feature_info = FeatureInfo([stem_ch] + [p * Bottleneck.expansion for p in (64, 128, 256, 512)],
                                        self.out_indices)
        if features_only:
            # a detector's backbone needs no head, and no stage past the last map it takes
            last = max(self.out_indices)
            stages = [stage if i < last else None for i, stage in enumerate(stages)]
            self.keep = tuple(i in self.out_indices for i in range(5))  # Python constants for graph mode
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.dropout = nn.Dropout(p=drop_rate) if drop_rate > 0 and not features_only else None
        self.fc = None if features_only else nn.Dense(self.num_features, num_classes)

    @staticmethod
    def _make_stage(in_ch: int, planes: int, blocks: int, stride: int, avg_down: bool, block_args: dict):
        out_ch = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or in_ch != out_ch:
            if avg_down:
                pool = AvgDown() if stride > 1 else nn.Identity()
                downsample = nn.SequentialCell([pool, conv2d(in_ch, out_ch, 1), batch_norm(out_ch)])
            else:
                downsample = nn.SequentialCell([conv2d(in_ch, out_ch, 1, stride), batch_norm(out_ch)])
        cells = [Bottleneck(in_ch, planes, stride, downsample, **block_args)]
        cells += [Bottleneck(out_ch, planes, 1, None, **block_args) for _ in range(1, blocks)]
        return nn.SequentialCell(cells)

    def forward_features(self, x):
        """Stem and the four stages: (B, 3, H, W) -> (B, 2048, H/32, W/32)."""
        x = self.maxpool(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x, pre_logits: bool = False):
        """Global average pool, dropout and classifier; `pre_logits` returns the pooled 2048-d features."""
        x = x.mean(axis=(2, 3))
        if pre_logits:
            return x
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)

    def forward_feature_maps(self, x):
        """The maps of the stages in `out_indices`, a tuple in index order (features_only networks)."""
        x = self.bn1(self.conv1(x))
        maps = (x,) if self.keep[0] else ()
        if self.layer1 is not None:
            x = self.layer1(self.maxpool(x))
            if self.keep[1]:
                maps += (x,)
        if self.layer2 is not None:
            x = self.layer2(x)
            if self.keep[2]:
                maps += (x,)
        if self.layer3 is not None:
            x = self.layer3(x)
            if self.keep[3]:
                maps += (x,)
        if self.layer4 is not None:
            x = self.layer4(x)
            if self.keep[4]:
                maps += (x,)
        return maps

    def construct(self, x):
        if self.features_only:
            return self.forward_feature_maps(x)
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head (fine-tuning to another class count); the new head keeps the name `fc`."""
        self.num_classes = num_classes
        self.fc = nn.Dense(self.num_features, num_classes)
        self.fc.weight.name = "fc.weight"
        self.fc.bias.name = "fc.bias"


class FeatureInfo:
    """What a features_only network returns, as timm's `feature_info`: per map its channels (`num_chs`), stride
    (`reduction`) and the module it is taken after (`module`, timm's name: `act1` for the stem, then layer1-4)."""

    MODULES = ("act1", "layer1", "layer2", "layer3", "layer4")
    REDUCTIONS = (2, 4, 8, 16, 32)

    def __init__(self, channels: Sequence[int], out_indices: Sequence[int]) -> None:
        self.info: List[Dict[str, object]] = [
            {"num_chs": channels[i], "reduction": self.REDUCTIONS[i], "module": self.MODULES[i], "index": i}
            for i in out_indices]

    def channels(self) -> List[int]:
        return [int(f["num_chs"]) for f in self.info]

    def reduction(self) -> List[int]:
        return [int(f["reduction"]) for f in self.info]

    def module_name(self) -> List[str]:
        return [str(f["module"]) for f in self.info]

    def __len__(self) -> int:
        return len(self.info)

    def __getitem__(self, i: int) -> Dict[str, object]:
        return self.info[i]


def count_params(net: nn.Cell) -> int:
    """Trainable parameters (BN running statistics excluded), as the published parameter counts are given."""
    return sum(int(p.size) for p in net.trainable_params())
