"""common.cpu_ops.batchnorm: the fused training kernels give nn.BatchNorm2d + nn.ReLU's outputs, gradients and running
statistics, eval mode is the native pair, and the backbone puts it where a ReLU followed a BN."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from common.cpu_ops import backend_allows, native_ops, use_fused_bn
from common.cpu_ops.batchnorm import BatchNorm2d, BatchNormAddReLU, BatchNormReLU
from common.models import create_model
from common.models.layers import BN_EPS, BN_MOMENTUM

# (n, c, h, w, offset): stage-like maps, odd sizes, and a mean far from zero against the spread (the shifted
# variance must stay exact).
SHAPES = [(4, 16, 14, 14, 0.0), (3, 8, 7, 5, 0.0), (2, 4, 9, 9, 50.0), (1, 32, 3, 3, -2.0)]


class NativePair(nn.Cell):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.ReLU()

    def construct(self, x):
        return self.act(self.bn(x))


class NativeResidual(NativePair):
    def construct(self, x, residual):
        return self.act(self.bn(x) + residual)


class NativeAlone(NativePair):
    def construct(self, x):
        return self.bn(x)


KINDS = {"bn": (BatchNorm2d, NativeAlone), "bn_relu": (BatchNormReLU, NativePair),
         "bn_add_relu": (BatchNormAddReLU, NativeResidual)}


def _bn_params(bn):
    return [bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance]


def _pair(channels, rng, kind):
    fused_cls, native_cls = KINDS[kind]
    fused = fused_cls(channels, eps=BN_EPS, momentum=BN_MOMENTUM, fused=True)
    native = native_cls(channels)
    for ours, theirs in zip(_bn_params(fused), _bn_params(native.bn)):
        value = rng.uniform(0.5, 1.5, ours.shape).astype(np.float32)
        ours.set_data(ms.Tensor(value))
        theirs.set_data(ms.Tensor(value))
    return fused, native


def _train_call(cell, params, inputs, dy, graph):
    """Gradients (every input, gamma, beta) of one training-mode call, then the running statistics it left."""
    cell.set_train(True)

    def weighted_sum(*args):
        return (cell(*args) * dy).sum()

    positions = tuple(range(len(inputs))) if len(inputs) > 1 else 0
    grad_fn = ms.grad(weighted_sum, grad_position=positions, weights=params[:2])
    if graph:
        grad_fn = ms.jit(grad_fn)
    input_grads, (grad_gamma, grad_beta) = grad_fn(*inputs)
    input_grads = input_grads if len(inputs) > 1 else (input_grads,)
    return [g.asnumpy() for g in input_grads] + [grad_gamma.asnumpy(), grad_beta.asnumpy()] + \
        [p.asnumpy() for p in params[2:]]


@pytest.mark.parametrize("graph", [False, True], ids=["pynative", "graph"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("n,c,h,w,offset", SHAPES)
def test_training_matches_native(n, c, h, w, offset, kind, graph):
    rng = np.random.default_rng(n * 100 + c + h)
    fused, native = _pair(c, rng, kind)
    residual = kind == "bn_add_relu"
    x = ms.Tensor((rng.standard_normal((n, c, h, w)) * 2 + offset).astype(np.float32))
    inputs = (x, ms.Tensor(rng.standard_normal((n, c, h, w)).astype(np.float32))) if residual else (x,)
    dy = ms.Tensor(rng.standard_normal((n, c, h, w)).astype(np.float32))
    fused.set_train(True)
    native.set_train(True)
    want_out = native(*inputs).asnumpy()
    got_out = fused(*inputs).asnumpy()
    assert np.abs(got_out - want_out).max() <= 1e-4 * max(1.0, np.abs(want_out).max())
    names = ("input grad",) + (("residual grad",) if residual else ()) + \
        ("gamma grad", "beta grad", "running mean", "running var")
    # the calls above updated both cells' running statistics once; these update them a second time
    got_all = _train_call(fused, _bn_params(fused), inputs, dy, graph)
    want_all = _train_call(native, _bn_params(native.bn), inputs, dy, False)
    assert len(got_all) == len(want_all) == len(names)
    for name, got, want in zip(names, got_all, want_all):
        scale = max(np.abs(want).max(), 1e-3)
        assert np.abs(got - want).max() / scale < 1e-4, f"{name}: {np.abs(got - want).max() / scale:.2e}"


@pytest.mark.parametrize("graph", [False, True], ids=["pynative", "graph"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_eval_mode_is_the_native_pair(kind, graph):
    fused, native = _pair(6, np.random.default_rng(1), kind)
    residual = kind == "bn_add_relu"
    fused.set_train(False)
    native.set_train(False)
    rng = np.random.default_rng(2)
    inputs = [ms.Tensor(rng.standard_normal((2, 6, 5, 5)).astype(np.float32)) for _ in range(2 if residual else 1)]
    run = ms.jit(fused.construct) if graph else fused
    np.testing.assert_array_equal(run(*inputs).asnumpy(), native(*inputs).asnumpy())


def test_applies_only_on_cpu_with_the_switch_on(monkeypatch):
    assert backend_allows("CPU") and use_fused_bn()
    assert not backend_allows("Ascend")
    assert not backend_allows("GPU")
    for off in ("0", "off", "false", "no"):
        assert not backend_allows("CPU", off)
        monkeypatch.setenv("ZOO_FUSED_BN", off)
        assert not use_fused_bn()


@pytest.mark.parametrize("arch", ["resnext50_32x4d", "resnest50"])
def test_backbone_fuses_the_relu_that_followed_each_bn(arch):
    """The stem's BNs and two BNs a block (ResNeXt: bn1, bn2; ResNeSt: bn1 and the split-attention conv's bn0) carry
    the ReLU, every block's bn3 the residual add and ReLU, every other BN (shortcut, attention) is fused alone; the
    training-mode forward gives the all-native network's logits and running statistics."""
    ms.set_seed(0)  # fixed weights: float32 rounding differences through 50 layers stay the same run to run
    net = create_model(arch, num_classes=10)
    fused = [name for name, cell in net.cells_and_names() if isinstance(cell, BatchNormReLU)]
    residual = [name for name, cell in net.cells_and_names() if isinstance(cell, BatchNormAddReLU)]
    stem = 3 if arch == "resnest50" else 1  # ResNeSt's deep stem has three BN + ReLU
    assert len(fused) == stem + 2 * 16 and len(residual) == 16
    assert all(cell.fused for _, cell in net.cells_and_names() if isinstance(cell, nn.BatchNorm2d))
    with native_ops():
        native = create_model(arch, num_classes=10)
    assert not any(getattr(cell, "fused", False) for _, cell in native.cells_and_names())
    assert [p.name for p in net.get_parameters()] == [p.name for p in native.get_parameters()]
    ms.load_param_into_net(native, {p.name: p for p in net.get_parameters()})
    net.set_train(True)
    native.set_train(True)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32))
    got, want = net(x).asnumpy(), native(x).asnumpy()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    for ours, theirs in zip(net.get_parameters(), native.get_parameters()):
        if "moving_" in ours.name:
            np.testing.assert_allclose(ours.asnumpy(), theirs.asnumpy(), rtol=1e-4, atol=1e-5, err_msg=ours.name)
