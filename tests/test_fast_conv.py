"""common.fast_conv: same gradients as the native grouped conv, and used only where the decision says so."""
import json
import os

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from common.fast_conv import ENV_SWITCH, FastGroupedConv2d, fast_conv_applies
from common.models import create_model
from common.onednn_conv import ENV_SWITCH as ONEDNN_SWITCH
from conftest import run_cli

# (batch, in, out, size, stride, groups): ResNeXt 32x4d / 64x4d blocks (stride 1 and 2) and ResNeSt's radix conv.
# Outputs of 28 x 28 and more take the im2col branch, smaller ones the native weight gradient: both are covered.
SHAPES = [(2, 64, 64, 28, 1, 32), (1, 64, 64, 56, 2, 32), (1, 128, 128, 28, 1, 64), (2, 32, 64, 30, 1, 2),
          (2, 64, 64, 9, 2, 32), (2, 128, 128, 7, 1, 64)]


def _outputs_and_grads(conv, x, dy):
    def weighted_sum(inp):
        return (conv(inp) * dy).sum()

    grad_x, (grad_w,) = ms.grad(weighted_sum, grad_position=0, weights=conv.trainable_params())(x)
    return conv(x).asnumpy(), grad_x.asnumpy(), grad_w.asnumpy()


@pytest.mark.parametrize("batch,c_in,c_out,size,stride,groups", SHAPES)
def test_gradients_equal_native(batch, c_in, c_out, size, stride, groups):
    rng = np.random.default_rng(stride * 100 + groups)
    fast = FastGroupedConv2d(c_in, c_out, 3, stride=stride, padding=1, groups=groups)
    native = nn.Conv2d(c_in, c_out, 3, stride=stride, pad_mode="pad", padding=1, group=groups, has_bias=False)
    native.weight.set_data(ms.Tensor(rng.standard_normal(native.weight.shape).astype(np.float32)))
    fast.weight.set_data(native.weight.data.copy())
    x = ms.Tensor(rng.standard_normal((batch, c_in, size, size)).astype(np.float32))
    dy = ms.Tensor(rng.standard_normal(native(x).shape).astype(np.float32))
    for name, got, want in zip(("output", "input grad", "weight grad"), _outputs_and_grads(fast, x, dy),
                               _outputs_and_grads(native, x, dy)):
        assert got.shape == want.shape
        rel = np.abs(got - want).max() / np.abs(want).max()
        assert rel < 1e-4, f"{name}: relative difference {rel:.2e}"


def test_applies_only_to_grouped_3x3_on_cpu_pynative():
    assert fast_conv_applies("CPU", "pynative", 3, 32)
    assert fast_conv_applies("CPU", "pynative", 3, 2)
    assert not fast_conv_applies("Ascend", "pynative", 3, 32)
    assert not fast_conv_applies("GPU", "pynative", 3, 32)
    assert not fast_conv_applies("CPU", "graph", 3, 32)  # native is faster in graph mode
    assert not fast_conv_applies("CPU", "pynative", 3, 1)  # dense
    assert not fast_conv_applies("CPU", "pynative", 1, 32)  # grouped 1x1 (ResNeSt attention fc)
    assert not fast_conv_applies("CPU", "pynative", 3, 32, bias=True)
    for off in ("0", "off", "false", "no"):
        assert not fast_conv_applies("CPU", "pynative", 3, 32, switch=off)


def _fast_convs(net):
    return sorted(name for name, cell in net.cells_and_names() if isinstance(cell, FastGroupedConv2d))


def test_backbone_uses_fast_path_here_with_unchanged_names(monkeypatch):
    """This session runs CPU/PyNative (conftest): with common.onednn_conv switched off (it comes first where it can
    be built), every grouped 3x3 conv takes the fast path, names unchanged."""
    monkeypatch.setenv(ONEDNN_SWITCH, "0")
    switch_on = os.environ.get(ENV_SWITCH, "1").lower() not in ("0", "off", "false", "no")
    net = create_model("resnext50_32x4d", num_classes=10)
    fast = _fast_convs(net)
    assert len(fast) == (16 if switch_on else 0)  # one conv2 per block, 3+4+6+3 blocks
    assert not isinstance(net.conv1, FastGroupedConv2d) and not isinstance(net.layer1[0].conv1, FastGroupedConv2d)
    names = {p.name for p in net.get_parameters()}
    assert "layer1.0.conv2.weight" in names and not any(".fn." in n for n in names)
    # Decided once per process: changing the switch now does not change the next network.
    monkeypatch.setenv(ENV_SWITCH, "1" if not switch_on else "0")
    assert len(_fast_convs(create_model("resnest50", num_classes=10))) == (16 if switch_on else 0)


CHILD = """
import json, sys
import mindspore as ms
from common.compat import set_context
set_context(sys.argv[1], "CPU")
from common.models import create_model
from common.fast_conv import FastGroupedConv2d
net = create_model("resnext50_32x4d", num_classes=10)
print(json.dumps(sum(isinstance(c, FastGroupedConv2d) for _, c in net.cells_and_names())))
"""


@pytest.mark.parametrize("mode,switch,expected", [("pynative", "0", 0), ("graph", "1", 0)])
def test_switch_and_graph_mode_keep_native(mode, switch, expected):
    result = run_cli(["-c", CHILD, mode], env={ENV_SWITCH: switch, ONEDNN_SWITCH: "0"}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected
