"""cpu_ops.split_attention: the radix-2 pooling and weighted sum kernels give the values and gradients of the same
sums in MindSpore operators, in both execution modes, and stay out of exported (native-only) graphs."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from common.cpu_ops import native_ops, use_fused_attention
from common.cpu_ops.split_attention import RadixPair
from common.models import create_model


class NativeHalves(nn.Cell):
    """The same two functions in MindSpore operators, as SplitAttention._radix2 writes them."""

    def gap(self, x):
        c = x.shape[1] // 2
        return (x[:, :c] + x[:, c:]).mean(axis=(2, 3), keep_dims=True)

    def combine(self, x, w):
        c = x.shape[1] // 2
        return x[:, c:] + (x[:, :c] - x[:, c:]) * w


def _values_and_grads(pair, x, w, d_gap, d_out, graph):
    def objective(x, w):
        return (pair.gap(x) * d_gap).sum() + (pair.combine(x, w) * d_out).sum()

    grad_fn = ms.grad(objective, grad_position=(0, 1))
    if graph:
        grad_fn = ms.jit(grad_fn)
    dx, dw = grad_fn(x, w)
    return {"gap": pair.gap(x).asnumpy(), "combine": pair.combine(x, w).asnumpy(), "dx": dx.asnumpy(),
            "dw": dw.asnumpy()}


@pytest.mark.parametrize("graph", [False, True], ids=["pynative", "graph"])
@pytest.mark.parametrize("n,c,h,w", [(2, 8, 14, 14), (3, 5, 7, 9), (1, 32, 1, 1), (4, 16, 3, 5)])
def test_values_and_gradients_equal_native(n, c, h, w, graph):
    rng = np.random.default_rng(n * 1000 + c * 10 + h)
    x = ms.Tensor((rng.standard_normal((n, 2 * c, h, w)) + 0.5).astype(np.float32))
    weight = ms.Tensor(rng.uniform(0, 1, (n, c, 1, 1)).astype(np.float32))
    d_gap = ms.Tensor(rng.standard_normal((n, c, 1, 1)).astype(np.float32))
    d_out = ms.Tensor(rng.standard_normal((n, c, h, w)).astype(np.float32))
    got = _values_and_grads(RadixPair(), x, weight, d_gap, d_out, graph)
    want = _values_and_grads(NativeHalves(), x, weight, d_gap, d_out, graph)
    for name, value in want.items():
        assert got[name].shape == value.shape, name
        error = float(np.abs(got[name] - value).max())
        assert error <= 1e-4 * max(1.0, float(np.abs(value).max())), f"{name}: {error:.2e}"


def test_resnest_uses_the_kernels_here_and_exports_without_them():
    assert use_fused_attention()
    net = create_model("resnest50", num_classes=10)
    blocks = [cell for _, cell in net.cells_and_names() if hasattr(cell, "radix_pair")]
    assert len(blocks) == 16 and all(block.radix_pair is not None for block in blocks)
    with native_ops():
        assert not use_fused_attention()
        native = create_model("resnest50", num_classes=10)
    assert all(cell.radix_pair is None for _, cell in native.cells_and_names() if hasattr(cell, "radix_pair"))


def test_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv("ZOO_FUSED_ATTENTION", "0")
    assert not use_fused_attention()
