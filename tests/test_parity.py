"""Logit parity with the PyTorch references through the real converter command, for every arch.

The converter's main() runs in this process (tests/test_convert.py runs it as a command): the parity is the same,
without a fresh interpreter loading MindSpore for each arch.
"""
import os

import numpy as np
import pytest
import torch
from torch_refs import build_reference, convert_weights

from common import create_model, list_models


@pytest.mark.parametrize("arch", list_models())
def test_logits_match_reference(arch, tmp_path):
    import mindspore as ms

    ref = build_reference(arch)
    src = tmp_path / "ref.pth"
    torch.save(ref.state_dict(), src)
    out = tmp_path / "converted.ckpt"
    assert convert_weights().main(["--arch", arch, "--src", str(src), "--out", str(out)]) == 0
    x = np.random.RandomState(0).randn(2, 3, 64, 64).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    del ref
    net = create_model(arch, num_classes=10, checkpoint=str(out))
    net.set_train(False)
    got = net(ms.Tensor(x)).asnumpy()
    tol = 1e-4 * max(1.0, float(np.abs(expected).max()))
    assert np.abs(got - expected).max() < tol
    os.remove(out)


def test_odd_resolution_resnest_matches_timm(tmp_path):
    """100 px gives odd feature maps where ResNeSt's ceil-mode avg-down shortcut averages partial windows."""
    import mindspore as ms

    from common.weights.torch_import import convert_state_dict

    ref = build_reference("resnest50", seed=3)
    params, num_classes = convert_state_dict("resnest50", {k: v.numpy() for k, v in ref.state_dict().items()})
    net = create_model("resnest50", num_classes=num_classes)
    ms.load_param_into_net(net, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in params.items()})
    net.set_train(False)
    x = np.random.RandomState(1).randn(1, 3, 100, 100).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = net(ms.Tensor(x)).asnumpy()
    assert np.abs(got - expected).max() < 1e-4 * max(1.0, float(np.abs(expected).max()))
