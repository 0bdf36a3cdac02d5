"""BatchNorm folding for inference (common.bn_fold): every arch gives the same logits with no BN cell left."""
import numpy as np
import pytest

from common import ARCHS, create_model


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


@pytest.mark.parametrize("arch", list(ARCHS))
def test_folded_network_matches_and_has_no_batchnorm(arch):
    import mindspore as ms
    from mindspore import nn

    from common.bn_fold import fold_batchnorm

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
