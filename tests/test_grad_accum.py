"""Gradient accumulation (--grad_accum_steps K): K micro-batches of batch_size make one optimizer step.

On a BN-free stand-in, K=4 at batch 2 gives the weights of K=1 at batch 8 (float32 summation order aside: 1e-5);
BatchNorm sees each micro-batch (its moving statistics update once per micro-batch); train.py counts optimizer
steps in its logs and checkpoint names."""
import os

import numpy as np
from conftest import step_config
from easydict import EasyDict
from test_ema import ema_run  # noqa: F401 - a fixture


def step_cfg(**kw):
    return step_config(**{"num_classes": 3, "lr": 0.1, "batch_size": 8, "weight_decay": 1e-3, **kw})


def mlp(seed):
    import mindspore as ms
    from mindspore import nn

    ms.set_seed(seed)
    return nn.SequentialCell([nn.Dense(6, 16), nn.ReLU(), nn.Dense(16, 3)])


def train_mlp(k, batches):
    import mindspore as ms

    from common.training.step import build_train_step

    net = mlp(5)
    step = build_train_step(net, step_cfg(grad_accum_steps=k), steps_per_epoch=max(1, len(batches)))
    losses = [float(step(ms.Tensor(x), ms.Tensor(y)).asnumpy()) for x, y in batches]
    return {p.name: p.asnumpy() for p in net.get_parameters()}, losses


def test_four_micro_batches_of_two_equal_one_batch_of_eight():
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(8, 6)).astype(np.float32), rng.integers(0, 3, 8).astype(np.int32))
               for _ in range(4)]
    accumulated, loss_k = train_mlp(4, batches)
    single, loss_1 = train_mlp(1, batches)
    start, _ = train_mlp(1, [])
    for name in single:
        assert not np.allclose(single[name], start[name], atol=1e-4), f"{name} did not train"
        np.testing.assert_allclose(accumulated[name], single[name], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(loss_k, loss_1, rtol=1e-5)


def test_batchnorm_updates_its_statistics_once_per_micro_batch():
    import mindspore as ms
    from mindspore import nn

    from common.training.step import build_train_step

    class BNNet(nn.Cell):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(3, momentum=0.9)
            self.fc = nn.Dense(3, 2)

        def construct(self, x):
            return self.fc(self.bn(x).mean(axis=(2, 3)))

    x = np.random.default_rng(1).normal(loc=2.0, size=(4, 3, 2, 2)).astype(np.float32)
    y = np.array([0, 1, 1, 0], np.int32)
    means = {}
    for k in (1, 2):
        net = BNNet()
        step = build_train_step(net, step_cfg(num_classes=2, grad_accum_steps=k), steps_per_epoch=1)
        step(ms.Tensor(x), ms.Tensor(y))
        means[k] = net.bn.moving_mean.asnumpy()
    # moving = 0.9 * moving + 0.1 * batch mean, from 0: per micro-batch of 2 for K=2, once over all 4 for K=1
    first, second = x[:2].mean(axis=(0, 2, 3)), x[2:].mean(axis=(0, 2, 3))
    np.testing.assert_allclose(means[2], 0.9 * (0.1 * first) + 0.1 * second, rtol=1e-5)
    np.testing.assert_allclose(means[1], 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5)


def test_accumulation_config_batches_k_micro_batches():
    from common.training.accumulate import accumulation_config

    cfg = EasyDict(batch_size=16, eval_batch_size=0, grad_accum_steps=4)
    out = accumulation_config(cfg)
    assert (out.batch_size, out.eval_batch_size, cfg.batch_size) == (64, 16, 16)
    assert accumulation_config(EasyDict(batch_size=16, eval_batch_size=0, grad_accum_steps=1)).batch_size == 16


def test_train_counts_optimizer_steps(ema_run):  # noqa: F811
    """train.py with 4 images, batch 2, K=2 (tests/test_ema.py's shared run, resumed after epoch 2): 1 optimizer step
    per epoch, not 2 micro-batches, in the log, the checkpoint names and their metadata."""
    import re

    import mindspore as ms

    _, _, out, first, second = ema_run
    assert re.findall(r"epoch: (\d+) step: (\d+), loss is", first) == [("1", "1"), ("2", "1")], first[-3000:]
    assert re.findall(r"epoch: (\d+) step: (\d+), loss is", second) == [("3", "1")], second[-3000:]
    for epoch in (1, 2, 3):
        ckpt = out / f"resnext50_32x4d-{epoch}_1.ckpt"
        assert os.path.isfile(ckpt), os.listdir(out)
        params = ms.load_checkpoint(str(ckpt))
        assert int(params["steps_per_epoch"].asnumpy()) == 1
        assert int(params["global_step"].asnumpy().reshape(-1)[0]) == epoch
    with open(out / "config.yaml", encoding="utf-8") as fh:  # the resolved config keeps the user's values
        text = fh.read()
    assert "batch_size: 2\n" in text and "grad_accum_steps: 2\n" in text
