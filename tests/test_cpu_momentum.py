"""common.cpu_ops.momentum: FusedMomentum leaves the parameters and moments nn.Momentum leaves (weight decay per group,
per-step LR), in both execution modes, with the same state names; Nesterov follows the documented update; the train
step uses it on CPU."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from common.config import load_config
from common.cpu_ops import native_ops, use_fused_momentum
from common.cpu_ops.momentum import FusedMomentum
from common.training.optim import create_optimizer, param_groups


class Small(nn.Cell):
    """Conv weight (decayed), BN gamma/beta and a dense bias (not decayed): both groups of param_groups."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, has_bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Dense(8, 5)

    def construct(self, x):
        return self.fc(self.bn(self.conv(x)).mean(axis=(2, 3)))


def _train(optimizer_kind, nesterov, steps=4):
    ms.set_seed(3)
    net = Small()
    groups = param_groups(net, 0.01)
    lr = Tensor(np.linspace(0.1, 0.02, steps).astype(np.float32))
    if optimizer_kind == "fused":
        decay_of = {id(p): g["weight_decay"] for g in groups[:-1] for p in g["params"]}
        opt = FusedMomentum(groups, lr, 0.9, [decay_of[id(p)] for p in groups[-1]["order_params"]], nesterov)
    else:
        opt = nn.Momentum(groups, learning_rate=lr, momentum=0.9, use_nesterov=nesterov)
    loss_net = nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"))
    step = nn.TrainOneStepCell(loss_net, opt)
    step.set_train(True)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = Tensor(rng.standard_normal((4, 3, 9, 9)).astype(np.float32))
        y = Tensor(rng.integers(0, 5, 4).astype(np.int32))
        step(x, y)
    return {p.name: p.asnumpy() for p in opt.parameters + opt.moments} | {"global_step": opt.global_step.asnumpy()}


@pytest.mark.parametrize("graph", [False, True], ids=["pynative", "graph"])
def test_same_parameters_and_moments_as_nn_momentum(graph):
    mode = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE if graph else ms.PYNATIVE_MODE)
    try:
        got, want = _train("fused", False), _train("native", False)
    finally:
        ms.set_context(mode=mode)
    assert got.keys() == want.keys() and any(name.startswith("moments.") for name in got)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_nesterov_follows_the_documented_update():
    """nn.Momentum's formula with Nesterov: v = u * v + g, p -= lr * (g + u * v). (MindSpore 2.8's CPU ApplyMomentum
    ignores use_nesterov and applies p -= lr * v, so the reference here is the formula, in float64.)"""
    rng = np.random.default_rng(1)
    p0, g = rng.standard_normal(6), rng.standard_normal(6)
    param = ms.Parameter(Tensor(p0.astype(np.float32)), name="w")
    opt = FusedMomentum([param], Tensor(np.array([0.1, 0.05], np.float32)), 0.9, [0.01], use_nesterov=True)
    moment = np.zeros(6)
    for lr in (0.1, 0.05):
        opt((Tensor(g.astype(np.float32)),))
        decayed = g + 0.01 * p0
        moment = 0.9 * moment + decayed
        p0 = p0 - lr * (decayed + 0.9 * moment)
    np.testing.assert_allclose(param.asnumpy(), p0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt.moments[0].asnumpy(), moment, rtol=1e-5, atol=1e-6)


def test_train_step_uses_it_on_cpu_and_exports_keep_native():
    cfg = load_config(None, ["--arch", "resnext50_32x4d", "--device_target", "CPU", "--num_classes", "10"])
    net = Small()
    assert use_fused_momentum(net.trainable_params())
    assert isinstance(create_optimizer(net, cfg, np.ones(3, np.float32)), FusedMomentum)
    with native_ops():
        assert type(create_optimizer(net, cfg, np.ones(3, np.float32))) is nn.Momentum


def test_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv("ZOO_FUSED_MOMENTUM", "0")
    assert not use_fused_momentum(Small().trainable_params())
