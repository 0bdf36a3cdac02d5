"""Every registered arch, from one table: exact parameter count, output shape, gradients reach every parameter."""
import numpy as np
import pytest

from common import ARCHS, count_params, create_model, list_models

# docs/DESIGN.md §1, written out here so a wrong row in ARCHS cannot make its own test pass.
EXPECTED_PARAMS = {
    "resnext50_32x4d": 25_028_904, "resnext101_32x4d": 44_177_704, "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272, "resnext152_32x4d": 59_951_400, "resnext152_64x4d": 114_971_944,
    "resnest50": 27_483_240,
}


def test_registry_lists_the_seven_archs():
    assert sorted(list_models()) == sorted(EXPECTED_PARAMS)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_exact_param_count_and_every_param_gets_a_gradient(arch):
    import mindspore as ms
    from mindspore import ops

    net = create_model(arch)  # 1000 classes: the count the papers and torchvision/timm publish
    assert count_params(net) == EXPECTED_PARAMS[arch]
    net.set_train(True)
    x = ms.Tensor(np.random.RandomState(0).randn(2, 3, 32, 32).astype(np.float32))
    params = net.trainable_params()

    def loss_fn(inp):
        return ops.square(net(inp)).sum()

    out = net(x)
    assert out.shape == (2, 1000)
    assert net.forward_features(x).shape == (2, 2048, 1, 1)
    grads = ms.grad(loss_fn, grad_position=None, weights=params)(x)
    dead = [p.name for p, g in zip(params, grads) if not np.isfinite(g.asnumpy()).all() or
            not np.any(g.asnumpy())]
    assert not dead, f"parameters without a gradient: {dead[:10]}"


def test_a_network_built_for_a_checkpoint_skips_only_the_weight_draws(tmp_path):
    """create_model(checkpoint=...) builds its convs at zero (the load overwrites them) and gets the file's values;
    the next plain build draws again."""
    import mindspore as ms

    drawn = create_model("resnext50_32x4d", num_classes=3)
    path = str(tmp_path / "w.ckpt")
    ms.save_checkpoint(drawn, path)
    convs = [p.name for p in drawn.trainable_params() if len(p.shape) == 4]
    assert len(convs) == 53
    blank = {p.name: p.asnumpy() for p in create_model("resnext50_32x4d", num_classes=3,
                                                       init_weights=False).trainable_params()}
    assert not any(blank[name].any() for name in convs)
    loaded = {p.name: p.asnumpy() for p in create_model("resnext50_32x4d", num_classes=3,
                                                        checkpoint=path).get_parameters()}
    for param in drawn.get_parameters():
        assert np.array_equal(loaded[param.name], param.asnumpy()), param.name
    again = {p.name: p.asnumpy() for p in create_model("resnext50_32x4d", num_classes=3).trainable_params()}
    assert all(again[name].std() > 0 for name in convs)


def test_zero_init_last_zeroes_the_last_bn_of_each_block():
    net = create_model("resnest50", zero_init_last=True)
    gammas = {p.name: p.asnumpy() for p in net.trainable_params() if p.name.endswith("bn3.gamma")}
    assert len(gammas) == 16 and all(not g.any() for g in gammas.values())
    other = [p for p in net.trainable_params() if p.name.endswith("bn1.gamma")]
    assert all(p.asnumpy().all() for p in other)


def test_conv_init_is_kaiming_normal_fan_out():
    net = create_model("resnext50_32x4d")
    w = {p.name: p.asnumpy() for p in net.trainable_params()}["layer3.0.conv1.weight"]  # 1x1, 1024 -> 512
    expected_std = np.sqrt(2.0 / (w.shape[0] * w.shape[2] * w.shape[3]))
    assert abs(w.std() / expected_std - 1) < 0.02
    assert abs(w.mean()) < 0.05 * expected_std


def test_head_is_separable_for_fine_tuning():
    import mindspore as ms

    net = create_model("resnext50_32x4d", num_classes=5)
    net.set_train(False)
    x = ms.Tensor(np.random.RandomState(1).randn(1, 3, 32, 32).astype(np.float32))
    feats = net.forward_features(x)
    pooled = net.forward_head(feats, pre_logits=True)
    assert pooled.shape == (1, 2048)
    np.testing.assert_allclose(net.forward_head(feats).asnumpy(), net(x).asnumpy(), rtol=1e-5, atol=1e-6)
    net.reset_classifier(3)
    assert net(x).shape == (1, 3)
    assert {p.name for p in net.fc.get_parameters()} == {"fc.weight", "fc.bias"}
