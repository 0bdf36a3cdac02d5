"""common.models's faster formulations compute what the plain ones do: the Concat zero pad equals ops.Pad, and
ResNeSt's radix-2 split attention on channel halves (MindSpore operators or the cpu_ops.split_attention kernels)
equals the general reshape + softmax path (values and gradients, in graph mode where training runs)."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops

from common.models.layers import AvgDown, zero_pad_hw
from common.models.split_attention import SplitAttention


class _PadCell(nn.Cell):
    def __init__(self, pads, use_concat):
        super().__init__()
        self.pads = pads
        self.use_concat = use_concat
        top, bottom, left, right = pads
        self.reference = ops.Pad(((0, 0), (0, 0), (top, bottom), (left, right)))

    def construct(self, x):
        top, bottom, left, right = self.pads
        return zero_pad_hw(x, top, bottom, left, right) if self.use_concat else self.reference(x)


def _value_and_input_grad(cell, x, dy):
    def weighted_sum(inp):
        return (cell(inp) * dy).sum()

    return cell(x).asnumpy(), ms.jit(ms.grad(weighted_sum))(x).asnumpy()


@pytest.mark.parametrize("shape,pads", [((4, 3, 7, 6), (1, 1, 1, 1)), ((2, 5, 9, 9), (0, 1, 0, 1)),
                                        ((1, 2, 4, 5), (2, 0, 0, 3))])
def test_zero_pad_equals_ops_pad(shape, pads):
    rng = np.random.default_rng(sum(shape))
    x = ms.Tensor(rng.standard_normal(shape).astype(np.float32))
    fast, reference = _PadCell(pads, True), _PadCell(pads, False)
    want_y, _ = _value_and_input_grad(reference, x, ms.Tensor(np.zeros(reference(x).shape, np.float32)))
    dy = ms.Tensor(rng.standard_normal(want_y.shape).astype(np.float32))
    got, want = _value_and_input_grad(fast, x, dy), _value_and_input_grad(reference, x, dy)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_avg_down_odd_size_averages_real_pixels_only():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    got = AvgDown()(ms.Tensor(x)).asnumpy()
    padded = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=np.nan)
    want = np.nanmean(padded.reshape(2, 3, 3, 2, 4, 2), axis=(3, 5))  # ceil mode, count_include_pad=False
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernels", [False, True], ids=["halves", "cpu_kernels"])
@pytest.mark.parametrize("stride", [1, 2])
def test_radix2_halves_equal_general_split_attention(stride, kernels):
    """Both faster paths: the halves in MindSpore operators, and the halves in the cpu_ops.split_attention kernels."""
    ms.set_seed(stride)
    fast = SplitAttention(16, 16, stride=stride, radix=2)
    general = SplitAttention(16, 16, stride=stride, radix=2)
    assert fast.two_halves and fast.radix_pair is not None  # the kernels are built here (CPU, library available)
    if not kernels:
        fast.radix_pair = None
    general.two_halves = False
    general.radix_pair = None
    ms.load_param_into_net(general, {p.name: p.copy() for p in fast.get_parameters()})
    for cell in (fast, general):
        cell.set_train(True)
    rng = np.random.default_rng(stride)
    x = ms.Tensor(rng.standard_normal((2, 16, 10, 10)).astype(np.float32))
    dy = ms.Tensor(rng.standard_normal(fast(x).shape).astype(np.float32))

    def grads(cell):
        def weighted_sum(inp):
            return (cell(inp) * dy).sum()

        grad_x, grad_w = ms.jit(ms.grad(weighted_sum, grad_position=0, weights=cell.trainable_params()))(x)
        names = [p.name for p in cell.trainable_params()]
        return dict(output=cell(x).asnumpy(), input_grad=grad_x.asnumpy(),
                    **{name: g.asnumpy() for name, g in zip(names, grad_w)})

    got, want = grads(fast), grads(general)
    largest = max(float(np.abs(v).max()) for v in want.values())
    for name, value in want.items():
        # fc1's bias feeds a batch-statistics BN, so its true gradient is 0: what both paths give is rounding noise,
        # compared against the largest gradient instead of its own (zero) scale.
        scale = largest if name.endswith("fc1.bias") else float(np.abs(value).max())
        assert float(np.abs(got[name] - value).max()) <= 1e-4 * scale, name
