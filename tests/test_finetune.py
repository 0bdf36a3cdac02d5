"""Fine-tuning controls: --freeze_layers keeps the stem and first N stages bit-identical, BN moving statistics
included, while the rest trains; --head_lr_mult gives the classifier a faster LR; the log states what trains."""
import os

import numpy as np
import pytest
from conftest import step_config

from common.errors import UserError


def step_cfg(**kw):
    return step_config(**{"num_classes": 3, "lr": 0.2, "batch_size": 2, **kw})


def _state(net):
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}


@pytest.mark.parametrize("arch", ["resnext50_32x4d", "resnest50"])
def test_frozen_weights_and_bn_statistics_stay_bit_identical(arch):
    import mindspore as ms

    from common.models import create_model
    from common.training.finetune import freeze_layers, trainable_summary
    from common.training.step import build_train_step

    ms.set_seed(0)
    net = create_model(arch, num_classes=3)
    frozen = freeze_layers(net, 2)
    assert frozen == ["conv1", "bn1", "layer1", "layer2"]
    before = _state(net)
    step = build_train_step(net, step_cfg(), steps_per_epoch=3)
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.normal(size=(2, 3, 32, 32)).astype(np.float32)
        step(ms.Tensor(x), ms.Tensor(np.array([0, 2], np.int32)))
    after = _state(net)
    is_frozen = [n for n in before if n.startswith(("conv1.", "bn1.", "layer1.", "layer2."))]
    assert any("moving_mean" in n for n in is_frozen) and len(is_frozen) > 100
    for name in is_frozen:
        assert np.array_equal(before[name], after[name]), f"{name} changed although frozen"
    # the rest trains: layer3's BN statistics move and the head learns
    for name in ("layer3.0.bn1.moving_mean", "fc.weight", "layer4.2.conv3.weight"):
        assert not np.array_equal(before[name], after[name]), f"{name} did not train"
    trainable = sum(int(p.size) for p in net.trainable_params())
    summary = trainable_summary(net, 2)
    assert f"trainable parameters: {trainable:,} of " in summary and "conv1, bn1, layer1, layer2" in summary


def test_linear_probe_trains_only_the_head():
    from common.models import create_model
    from common.training.finetune import freeze_layers

    net = create_model("resnext50_32x4d", num_classes=10)
    freeze_layers(net, 4)
    # 2048 x 10 weights + 10 biases, nothing else
    assert sorted(p.name for p in net.trainable_params()) == ["fc.bias", "fc.weight"]
    assert sum(int(p.size) for p in net.trainable_params()) == 2048 * 10 + 10


def test_freeze_layers_out_of_range_is_refused():
    from common.training.finetune import frozen_prefixes

    assert frozen_prefixes(-1) == ()
    assert frozen_prefixes(0) == ("conv1.", "bn1.")
    with pytest.raises(UserError, match="freeze_layers 5"):
        frozen_prefixes(5)


def test_head_lr_mult_scales_only_the_classifier_update():
    """One plain SGD step (momentum buffer starts at the gradient): the head moves head_lr_mult times further."""
    import mindspore as ms
    from mindspore import nn

    from common.training.step import build_train_step

    class Tiny(nn.Cell):
        def __init__(self):
            super().__init__()
            self.body = nn.Dense(4, 4)
            self.fc = nn.Dense(4, 3)

        def construct(self, x):
            return self.fc(self.body(x))

    results = {}
    for mult in (1.0, 5.0):
        ms.set_seed(1)
        net = Tiny()
        before = _state(net)
        step = build_train_step(net, step_cfg(head_lr_mult=mult, weight_decay=0.0), steps_per_epoch=1)
        x = np.random.default_rng(2).normal(size=(2, 4)).astype(np.float32)
        step(ms.Tensor(x), ms.Tensor(np.array([0, 1], np.int32)))
        results[mult] = {k: _state(net)[k] - before[k] for k in before}
    np.testing.assert_allclose(results[5.0]["fc.weight"], 5.0 * results[1.0]["fc.weight"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(results[5.0]["body.weight"], results[1.0]["body.weight"], rtol=1e-5, atol=1e-8)
    assert np.abs(results[1.0]["fc.weight"]).max() > 1e-4


def test_sync_bn_choice_per_backend():
    from common.training.sync_bn import sync_bn_group

    assert sync_bn_group(False, "CPU", 8) is None
    assert sync_bn_group(True, "Ascend", 8) == "hccl_world_group"
    assert sync_bn_group(True, "GPU", 8) == "nccl_world_group"
    assert sync_bn_group(True, "Ascend", 1) is None  # one device: nothing to sync
    with pytest.raises(UserError, match="--sync_bn is not available on CPU"):
        sync_bn_group(True, "CPU", 1)


def test_convert_sync_bn_swaps_every_training_kernel_and_keeps_the_parameters():
    """Structure only (the primitive runs on Ascend/GPU collectives, not here): every BN, ResNeSt's split-attention
    ones included, trains through SyncBatchNorm over the group; names and values of the parameters are unchanged."""
    from mindspore import nn
    from mindspore.ops.operations import _inner_ops as inner

    from common.models import create_model
    from common.training.sync_bn import convert_sync_bn

    net = create_model("resnest50", num_classes=3)
    before = _state(net)
    bns = [c for _, c in net.cells_and_names() if isinstance(c, nn.BatchNorm2d)]
    assert convert_sync_bn(net, "hccl_world_group", 8) == len(bns) > 60
    for cell in bns:
        assert isinstance(cell.bn_train, inner.SyncBatchNorm) and not getattr(cell, "fused", False)
        assert cell.bn_train.group == "hccl_world_group" and cell.bn_train.device_num == 8
    after = _state(net)
    assert sorted(after) == sorted(before)


def test_sync_bn_on_cpu_is_one_error_line(tmp_path):
    from conftest import run_cli
    from image_data import write_images

    write_images(str(tmp_path / "data" / "train"), 2, seed=0)
    result = run_cli(["resnext50_32x4d/train.py", "--data_dir", str(tmp_path / "data"), "--output_dir",
                      str(tmp_path / "run"), "--device_target", "CPU", "--num_classes", "2", "--batch_size", "2",
                      "--image_size", "32", "--sync_bn", "true"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --sync_bn is not available on CPU")
    assert not any(name.endswith(".ckpt") for name in os.listdir(tmp_path / "run"))
