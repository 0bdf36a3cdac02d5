"""`--sync_bn`: BatchNorm statistics over all devices of a data-parallel run, where MindSpore provides it.

MindSpore's nn.SyncBatchNorm is a BatchNorm whose training kernel is the `SyncBatchNorm` primitive over the world
group (`hccl_world_group` on Ascend, `nccl_world_group` on GPU; its documentation lists Ascend only). The zoo's BN
cells are nn.BatchNorm2d subclasses that also apply a ReLU or a residual add (common.models.layers), so they are
converted in place the way nn.SyncBatchNorm builds itself: the same parameters and names, `bn_train` replaced by
that primitive, the fused CPU kernel off. The CPU backend has no such kernel: `--sync_bn` there is an error.
"""
from __future__ import annotations

from typing import Optional

from mindspore import nn

from ..errors import UserError

WORLD_GROUPS = {"Ascend": "hccl_world_group", "GPU": "nccl_world_group"}


def sync_bn_group(sync_bn: bool, device_target: str, group_size: int) -> Optional[str]:
    """The communication group to sync BN over, or None when BN stays per device (off, or a single device)."""
    if not sync_bn:
        return None
    if device_target not in WORLD_GROUPS:
        raise UserError(f"--sync_bn is not available on {device_target}: MindSpore has SyncBatchNorm for Ascend "
                        f"(and GPU) data-parallel runs only; leave out --sync_bn, or use --grad_accum_steps to "
                        f"reach a larger batch")
    if group_size <= 1:
        return None
    return WORLD_GROUPS[device_target]


def convert_sync_bn(net: nn.Cell, group: str, device_num: int) -> int:
    """Make every BatchNorm of `net` compute its training statistics over `group`; returns how many."""
    from mindspore.ops.operations import _inner_ops as inner

    count = 0
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d) and not isinstance(cell, nn.SyncBatchNorm):
            cell.bn_train = inner.SyncBatchNorm(epsilon=cell.eps, momentum=cell.momentum, group=group,
                                                device_num=device_num)
            if getattr(cell, "fused", False):
                cell.fused = False
            count += 1
    return count


def apply_sync_bn(net: nn.Cell, cfg, dist) -> Optional[str]:
    """train.py's use of `--sync_bn`: converts `net` when it applies; returns the log line, if any."""
    group = sync_bn_group(cfg.get("sync_bn", False), cfg.device_target, dist.group_size)
    if group is None:
        return "note: --sync_bn has no effect on a single device" if cfg.get("sync_bn") else None
    count = convert_sync_bn(net, group, dist.group_size)
    return f"sync_bn: {count} BatchNorm layers compute their statistics over {dist.group_size} devices ({group})"
