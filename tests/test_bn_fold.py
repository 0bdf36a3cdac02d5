"""BatchNorm folding for inference (common.models.bn_fold): the zoo's three models give the same logits with no BN
cell left (the four other archs are these blocks at other depths and widths; tests/test_parity.py covers each)."""
import numpy as np
import pytest

from common import create_model


def randomise_bn_statistics(net, rng):
    """Non-trivial running statistics and affine parameters, so that folding has something to get wrong."""
    import mindspore as ms

    for param in net.get_parameters():
        shape = param.shape
        if param.name.endswith("moving_mean"):
            value = rng.normal(0.0, 0.2, shape)
        elif param.name.endswith("moving_variance"):
            value = rng.uniform(0.3, 3.0, shape)
        elif param.name.endswith(("gamma", "beta")):
            value = rng.uniform(-1.5, 1.5, shape)
        else:
            continue
        param.set_data(ms.Tensor(value.astype(np.float32)))


@pytest.mark.parametrize("arch", ["resnext50_32x4d", "resnext152_64x4d", "resnest50"])
def test_folded_network_matches_and_has_no_batchnorm(arch):
    import mindspore as ms
    from mindspore import nn

    from common.models.bn_fold import fold_batchnorm

    rng = np.random.default_rng(0)
    net = create_model(arch, num_classes=11)
    randomise_bn_statistics(net, rng)
    net.set_train(False)
    x = ms.Tensor(rng.standard_normal((2, 3, 40, 40)).astype(np.float32))
    expected = net(x).asnumpy()
    bn_count = sum(isinstance(c, nn.BatchNorm2d) for _, c in net.cells_and_names())
    assert bn_count > 0

    folded = fold_batchnorm(net)
    assert not any(isinstance(c, nn.BatchNorm2d) for _, c in folded.cells_and_names())
    names = [p.name for p in folded.get_parameters()]
    assert len(names) == len(set(names)), "folded parameters must keep unique names"
    np.testing.assert_allclose(folded(x).asnumpy(), expected, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(expected).max()))


def test_cpu_fold_applies_bias_and_relu_in_one_kernel_and_export_folds_natively():
    """On CPU with the operators built, each folded BN + ReLU (+ residual) leaves a BiasReLU after a bias-free conv
    (logits checked above); inside native_ops(), as export folds, only native cells are left."""
    from mindspore import nn

    from common.cpu_ops import native_ops
    from common.cpu_ops.epilogue import BiasReLU
    from common.models.bn_fold import fold_batchnorm

    folded = fold_batchnorm(create_model("resnext50_32x4d", num_classes=11))
    epilogues = [cell for _, cell in folded.cells_and_names() if isinstance(cell, BiasReLU)]
    assert len(epilogues) == 1 + 16 + 16 and sum(cell.residual for cell in epilogues) == 16
    assert not folded.layer1[0].conv1.has_bias and folded.layer1[0].conv2.has_bias  # grouped conv keeps its bias
    with native_ops():
        native = fold_batchnorm(create_model("resnext50_32x4d", num_classes=11))
    assert not any(isinstance(cell, BiasReLU) for _, cell in native.cells_and_names())
    assert all(cell.has_bias for _, cell in native.cells_and_names() if isinstance(cell, nn.Conv2d))
