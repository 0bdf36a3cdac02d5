"""The accelerator path of the training step (issue 14): the overflow check of each backend, inf/NaN injected into
the gradients with fixed and dynamic loss scales (skip, count, runs in a row, scale halving), and AMP levels that
really change the precision of the convolutions (forced on CPU with amp_on_cpu)."""
import numpy as np
import pytest


def test_overflow_check_is_all_finite_on_ascend_and_gpu_and_the_probe_on_cpu():
    from common.training.step import CHECK_ALL_FINITE, CHECK_PROBE, overflow_check

    assert overflow_check("Ascend") == CHECK_ALL_FINITE == "all_finite"
    assert overflow_check("GPU") == CHECK_ALL_FINITE
    assert overflow_check("CPU") == CHECK_PROBE == "probe"


def _injection_step(check, scale_type):
    """loss = sum(w * g): the gradient of w is exactly the input g (times the scale), so inf/NaN go straight in."""
    import mindspore as ms
    from mindspore import nn

    from common.training.step import TrainStep

    class Injector(nn.Cell):
        def __init__(self):
            super().__init__()
            self.w = ms.Parameter(ms.Tensor(np.ones(4, np.float32)), name="w")

        def construct(self, g, labels):
            return (self.w * g).sum()

    net = Injector()
    update = (nn.DynamicLossScaleUpdateCell(loss_scale_value=256.0, scale_factor=2, scale_window=2000)
              if scale_type == "dynamic" else None)
    return TrainStep(net, nn.SGD(net.trainable_params(), learning_rate=0.5), 256.0, update, check), net


@pytest.mark.parametrize("check", ["probe", "all_finite"])
@pytest.mark.parametrize("scale_type", ["fixed", "dynamic"])
def test_injected_inf_and_nan_gradients_skip_count_and_halve_a_dynamic_scale(check, scale_type):
    import mindspore as ms

    step, net = _injection_step(check, scale_type)
    labels = ms.Tensor(np.zeros(1, np.int32))
    good = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    scales = []
    for n, bad in enumerate((np.inf, np.nan, -np.inf), start=1):
        g = good.copy()
        g[2] = bad
        step(ms.Tensor(g), labels)
        np.testing.assert_array_equal(net.w.asnumpy(), np.ones(4, np.float32))  # update skipped
        assert int(step.skipped_steps.asnumpy()) == n and bool(step.last_overflow.asnumpy())
        assert int(step.skipped_steps_in_a_row.asnumpy()) == n
        scales.append(step.loss_scale)
    want = [128.0, 64.0, 32.0] if scale_type == "dynamic" else [256.0] * 3
    assert scales == want
    step(ms.Tensor(good), labels)  # a clean step updates and ends the run of skipped steps
    np.testing.assert_allclose(net.w.asnumpy(), 1.0 - 0.5 * good, rtol=1e-6)
    assert int(step.skipped_steps_in_a_row.asnumpy()) == 0 and int(step.skipped_steps_longest_run.asnumpy()) == 3
    assert int(step.skipped_steps.asnumpy()) == 3 and not bool(step.last_overflow.asnumpy())


def _amp_cfg(level, forced):
    from common.config import load_config

    return load_config("resnext50_32x4d/default_config.yaml",
                       ["--image_size", "32", "--batch_size", "2", "--num_classes", "2", "--amp_level", level,
                        "--amp_on_cpu", str(forced).lower(), "--epoch_size", "1"])


def test_cpu_trains_float32_unless_amp_is_forced():
    from common.training.step import effective_amp_level

    assert _amp_cfg("O2", False).amp_level == "O2"  # the recipe asks for O2 ...
    assert effective_amp_level(_amp_cfg("O2", False), "CPU") == "O0"  # ... CPU runs float32
    assert effective_amp_level(_amp_cfg("O2", False), "Ascend") == "O2"
    assert effective_amp_level(_amp_cfg("O3", False), "GPU") == "O3"
    assert effective_amp_level(_amp_cfg("O1", True), "CPU") == "O1"


@pytest.mark.parametrize("level", ["O0", "O1", "O2", "O3"])
def test_amp_levels_change_the_dtype_of_the_conv_outputs(level):
    """With amp_on_cpu: O0 float32 convs, O1/O2/O3 float16 convs; the trained network's logits (the loss input)
    are float32 at every level."""
    import mindspore as ms
    from mindspore import dtype as mstype

    from common.cpu_ops import native_ops
    from common.models import create_model
    from common.training.step import build_train_step

    cfg = _amp_cfg(level, True)
    with native_ops():
        net = create_model("resnext50_32x4d", num_classes=2)
    step = build_train_step(net, cfg, steps_per_epoch=4, device_target="CPU")
    x = ms.Tensor(np.random.default_rng(0).random((2, 3, 32, 32), np.float32))
    conv = net.conv1.cell if level == "O1" else net.conv1  # O1 wraps each conv: float16 inside, float32 out
    assert conv(x).dtype == (mstype.float32 if level == "O0" else mstype.float16)
    net.set_train(False)
    assert step.amp_network(x).dtype == mstype.float32


def test_o2_keeps_bn_float32_but_not_the_relu_and_residual_add_after_it():
    """O2 black-lists BatchNorm by isinstance, which would run the zoo's BN + [add +] ReLU cells wholly in float32;
    only the normalisation stays float32: those cells take and give float16, plain BNs stay wrapped."""
    import mindspore as ms
    from mindspore import dtype as mstype

    from common.cpu_ops import native_ops
    from common.cpu_ops.batchnorm import BatchNormAddReLU, BatchNormReLU
    from common.models import create_model
    from common.training.step import build_train_step

    with native_ops():
        net = create_model("resnext50_32x4d", num_classes=2)
    build_train_step(net, _amp_cfg("O2", True), steps_per_epoch=4, device_target="CPU")
    block = net.layer1[0]
    assert isinstance(block.bn1, BatchNormReLU) and isinstance(block.bn3, BatchNormAddReLU)
    assert block.bn3.float32_statistics and block.bn1.float32_statistics
    assert type(block.downsample[1]).__name__ == "_OutputTo16"  # a BN alone keeps MindSpore's float32 wrapper
    net.set_train(False)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 256, 8, 8)).astype(np.float32)
    residual = rng.standard_normal((2, 256, 8, 8)).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, 256).astype(np.float32)
    block.bn3.gamma.set_data(ms.Tensor(gamma))
    out = block.bn3(ms.Tensor(x, mstype.float16), ms.Tensor(residual, mstype.float16))
    assert out.dtype == mstype.float16
    eps = block.bn3.eps  # moving mean 0, variance 1: y = x * gamma / sqrt(1 + eps), then + residual, ReLU
    want = np.maximum(x * gamma[None, :, None, None] / np.sqrt(1.0 + eps) + residual, 0.0)
    np.testing.assert_allclose(out.asnumpy().astype(np.float32), want, rtol=1e-2, atol=1e-2)
