"""Every LR schedule against its closed form at chosen steps, warm-up and the linear scaling rule."""
import math

import pytest
from easydict import EasyDict

from common.errors import UserError
from common.training.lr_schedule import build_lr, scaled_lr

SPE = 10  # steps per epoch


def make_cfg(**kw):
    cfg = dict(epoch_size=12, lr=0.4, lr_base_batch_size=0, batch_size=32, lr_scheduler="cosine_annealing",
               warmup_epochs=0.0, warmup_init_lr=0.0, lr_min=0.0, lr_gamma=0.1, lr_step_size=4, lr_epochs=[3, 7])
    cfg.update(kw)
    return EasyDict(cfg)


def test_cosine_without_warmup_matches_closed_form():
    lr = build_lr(make_cfg(lr_min=0.01), SPE)
    total = 12 * SPE
    assert len(lr) == total
    for s in (0, 1, 37, 60, 119):
        want = 0.01 + (0.4 - 0.01) * 0.5 * (1 + math.cos(math.pi * s / total))
        assert lr[s] == pytest.approx(want, rel=1e-6), s
    assert lr[60] == pytest.approx((0.4 + 0.01) / 2, rel=1e-6)  # half way = mean of peak and floor


def test_linear_warmup_then_cosine_over_the_remaining_steps():
    lr = build_lr(make_cfg(warmup_epochs=2, warmup_init_lr=0.04), SPE)
    warm = 2 * SPE
    for s in (0, 9, 19):
        assert lr[s] == pytest.approx(0.04 + (0.4 - 0.04) * (s + 1) / warm, rel=1e-6), s
    assert lr[19] == pytest.approx(0.4)
    for s in (20, 55, 119):
        want = 0.4 * 0.5 * (1 + math.cos(math.pi * (s - warm) / (12 * SPE - warm)))
        assert lr[s] == pytest.approx(want, rel=1e-5, abs=1e-9), s


def test_fractional_warmup_epochs_round_to_steps():
    lr = build_lr(make_cfg(warmup_epochs=0.5), SPE)
    assert lr[0] == pytest.approx(0.4 / 5)
    assert lr[4] == pytest.approx(0.4)


def test_step_schedule_decays_every_step_size_epochs():
    lr = build_lr(make_cfg(lr_scheduler="step", lr_step_size=4, lr_gamma=0.5), SPE)
    for s in (0, 39, 40, 79, 80, 119):
        assert lr[s] == pytest.approx(0.4 * 0.5 ** ((s // SPE) // 4), rel=1e-6), s


def test_multistep_decays_at_each_milestone():
    lr = build_lr(make_cfg(lr_scheduler="multistep", lr_epochs=[3, 7]), SPE)
    assert lr[29] == pytest.approx(0.4)
    assert lr[30] == pytest.approx(0.04)
    assert lr[69] == pytest.approx(0.04)
    assert lr[70] == pytest.approx(0.004)


def test_exponential_decays_per_epoch_and_warmup_keeps_absolute_epochs():
    lr = build_lr(make_cfg(lr_scheduler="exponential", lr_gamma=0.9, warmup_epochs=1), SPE)
    assert lr[5] == pytest.approx(0.4 * 6 / 10)  # warm-up
    for s in (10, 25, 119):
        assert lr[s] == pytest.approx(0.4 * 0.9 ** (s // SPE), rel=1e-6), s


def test_constant():
    lr = build_lr(make_cfg(lr_scheduler="constant"), SPE)
    assert lr.min() == pytest.approx(0.4) and lr.max() == pytest.approx(0.4)


def test_base_lr_scaled_by_global_batch():
    assert scaled_lr(0.4, 1024, 8 * 16) == pytest.approx(0.05)  # ModelZoo 8 GPU x 16 from the Ascend recipe
    assert scaled_lr(0.1, 0, 999) == 0.1
    lr = build_lr(make_cfg(lr_scheduler="constant", lr_base_batch_size=256, batch_size=64), SPE, group_size=8)
    assert lr[0] == pytest.approx(0.4 * 512 / 256)


def test_zero_steps_per_epoch_is_a_user_error():
    with pytest.raises(UserError, match="0 steps per epoch"):
        build_lr(make_cfg(), 0)
