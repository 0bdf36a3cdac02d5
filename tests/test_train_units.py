"""Units of the training step: weight-decay groups, label smoothing, one SGD step by hand, loss-scale overflow,
mixup/cutmix targets, image checks, config overrides/aliases/errors, checkpoints (keep max, auto resume, disk
full), fine-tuning with a new head, ModelArts without moxing."""
import os

import numpy as np
import pytest
from easydict import EasyDict

from common.config import load_config
from common.errors import UserError


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_smooth_ce(logits, labels, classes, eps):
    target = np.full((len(labels), classes), eps / classes)
    target[np.arange(len(labels)), labels] += 1 - eps
    return -(target * np.log(softmax(logits))).sum(axis=1).mean(), target


def test_weight_decay_skips_bn_gamma_beta_and_biases():
    from common.models import create_model
    from common.training.optim import param_groups

    net = create_model("resnest50", num_classes=10)  # has conv biases (fc1/fc2) as well as BN and the fc bias
    decay, no_decay, order = param_groups(net, 1e-4)
    decay_names = {p.name for p in decay["params"]}
    no_decay_names = {p.name for p in no_decay["params"]}
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert len(order["order_params"]) == len(decay_names) + len(no_decay_names)
    assert all(n.endswith(("gamma", "beta", "bias")) for n in no_decay_names)
    assert all(n.endswith("weight") for n in decay_names)
    assert "fc.bias" in no_decay_names and "layer1.0.conv2.fc1.bias" in no_decay_names
    assert "fc.weight" in decay_names and "layer1.0.conv2.conv.weight" in decay_names
    assert len(param_groups(net, 1e-4, decay_bn_and_bias=True)[0]["params"]) == len(order["order_params"])


def test_label_smoothing_loss_matches_numpy():
    import mindspore as ms

    from common.training.loss import CrossEntropySmooth

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 7)).astype(np.float32) * 3
    labels = rng.integers(0, 7, 6).astype(np.int32)
    want, target = numpy_smooth_ce(logits.astype(np.float64), labels, 7, 0.1)
    loss = CrossEntropySmooth(7, 0.1)
    assert float(loss(ms.Tensor(logits), ms.Tensor(labels)).asnumpy()) == pytest.approx(want, rel=1e-5)
    # soft targets (mixup) are used as given
    soft = float(loss(ms.Tensor(logits), ms.Tensor(target.astype(np.float32))).asnumpy())
    assert soft == pytest.approx(want, rel=1e-5)
    assert float(CrossEntropySmooth(7, 0.0)(ms.Tensor(logits), ms.Tensor(labels)).asnumpy()) == pytest.approx(
        -np.log(softmax(logits.astype(np.float64))[np.arange(6), labels]).mean(), rel=1e-5)


def step_cfg(**kw):
    cfg = dict(num_classes=3, label_smooth_factor=0.1, lr=0.5, lr_base_batch_size=0, batch_size=4, epoch_size=1,
               lr_scheduler="constant", warmup_epochs=0.0, warmup_init_lr=0.0, lr_min=0.0, lr_gamma=0.1,
               lr_step_size=1, lr_epochs=[], momentum=0.9, nesterov=False, weight_decay=0.01,
               decay_bn_and_bias=False, amp_level="O0", loss_scale=1024.0, loss_scale_type="fixed")
    cfg.update(kw)
    return EasyDict(cfg)


def dense_net(seed=0):
    import mindspore as ms
    from mindspore import nn

    rng = np.random.default_rng(seed)
    w = rng.normal(size=(3, 5)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    return nn.Dense(5, 3, weight_init=ms.Tensor(w), bias_init=ms.Tensor(b)), w, b


@pytest.mark.parametrize("scale_type", ["fixed", "dynamic"])
def test_one_training_step_equals_sgd_by_hand(scale_type):
    import mindspore as ms

    from common.training.step import build_train_step

    net, w, b = dense_net()
    step = build_train_step(net, step_cfg(loss_scale_type=scale_type), steps_per_epoch=2)
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    y = np.array([0, 2, 1, 2], np.int32)
    logits = x.astype(np.float64) @ w.T + b
    want_loss, target = numpy_smooth_ce(logits, y, 3, 0.1)
    grad_logits = (softmax(logits) - target) / 4
    grad_w, grad_b = grad_logits.T @ x + 0.01 * w, grad_logits.sum(axis=0)  # weight decay on w only
    loss = float(step(ms.Tensor(x), ms.Tensor(y)).asnumpy())
    assert loss == pytest.approx(want_loss, rel=1e-5)
    # first momentum step: v = g, p -= lr * v
    np.testing.assert_allclose(net.weight.asnumpy(), w - 0.5 * grad_w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.bias.asnumpy(), b - 0.5 * grad_b, rtol=1e-4, atol=1e-6)
    assert int(step.skipped_steps.asnumpy()) == 0


def test_overflow_skips_the_update_and_dynamic_scale_halves():
    import mindspore as ms

    from common.training.step import build_train_step

    net, w, _ = dense_net()
    step = build_train_step(net, step_cfg(loss_scale_type="dynamic", loss_scale=256.0), steps_per_epoch=2)
    bad = np.full((4, 5), np.inf, np.float32)
    step(ms.Tensor(bad), ms.Tensor(np.zeros(4, np.int32)))
    assert bool(step.last_overflow.asnumpy()) and int(step.skipped_steps.asnumpy()) == 1
    assert step.loss_scale == 128.0
    np.testing.assert_array_equal(net.weight.asnumpy(), w)


@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf, "inf-inf"])
def test_overflow_probe_flags_any_nan_or_inf_entry(bad):
    import mindspore as ms
    from mindspore import ops

    from common.training.step import _finite_probe

    grads = [np.random.default_rng(i).normal(size=shape).astype(np.float32)
             for i, shape in enumerate([(64, 32, 3, 3), (64,), (10, 64), ()])]
    if bad == "inf-inf":  # opposite infinities in one tensor: the sum is NaN, still caught
        grads[0][5, 3, 1, 2], grads[0][60, 0, 0, 0] = np.inf, -np.inf
    elif bad is not None:
        grads[2][7, 33] = bad
    probe = ops.HyperMap()(_finite_probe, tuple(ms.Tensor(g) for g in grads))
    finite = bool(np.isfinite(ops.stack(probe).sum().asnumpy()))
    assert finite == (bad is None)


def smooth_by_hand(labels, classes: int, eps: float) -> np.ndarray:
    """Label smoothing written out: 1 - eps + eps / K on the label, eps / K elsewhere."""
    target = np.full((len(labels), classes), eps / classes)
    target[np.arange(len(labels)), labels] += 1.0 - eps
    return target


def test_mixup_and_cutmix_targets():
    """lam is read from the mixed images (not from the targets under test); the targets must then equal
    lam * smooth(y) + (1 - lam) * smooth(y of the partner, the reversed batch), and cutmix's box area 1 - lam."""
    from inference_helpers import normalised_by_hand

    from common.data.augment import MixupCutmix, cutmix_box, parse_auto_augment

    classes, eps = 5, 0.1
    pixels = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), np.uint8)  # what the map workers hand over
    images = normalised_by_hand(pixels)  # the batch map also normalises
    labels = np.array([0, 1, 4, 2])
    partner = labels[::-1]
    for seed in (3, 4, 5):
        mixed, target = MixupCutmix(classes, mixup=0.8, prob=1.0, smoothing=eps, seed=seed)(list(pixels), labels)
        # mixed - partner = lam * (x - partner): least squares over every pixel of the batch
        delta = (images - images[::-1]).ravel().astype(np.float64)
        lam = float(np.dot((mixed - images[::-1]).ravel(), delta) / np.dot(delta, delta))
        assert 0.0 < lam < 1.0
        np.testing.assert_allclose(mixed, lam * images + (1 - lam) * images[::-1], rtol=1e-5, atol=1e-5)
        want = lam * smooth_by_hand(labels, classes, eps) + (1 - lam) * smooth_by_hand(partner, classes, eps)
        np.testing.assert_allclose(target, want, rtol=1e-5, atol=1e-6)
    for seed in (5, 6, 7):
        mixed, target = MixupCutmix(classes, cutmix=1.0, prob=1.0, smoothing=eps, seed=seed)(list(pixels), labels)
        pasted = ~np.isclose(mixed, images, rtol=0, atol=1e-5).all(axis=1)  # (batch, H, W): taken from the partner
        rows, cols = np.nonzero(pasted[0])
        box = np.zeros_like(pasted[0])
        if rows.size:
            box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
        assert (pasted == box).all()  # one rectangle, the same in every image of the batch
        np.testing.assert_allclose(mixed[:, :, box], images[::-1][:, :, box], rtol=0, atol=1e-5)
        lam = 1.0 - box.mean()  # the box covers 1 - lam of the image
        want = lam * smooth_by_hand(labels, classes, eps) + (1 - lam) * smooth_by_hand(partner, classes, eps)
        np.testing.assert_allclose(target, want, rtol=1e-6, atol=1e-7)
    unmixed = MixupCutmix(classes, mixup=0.8, prob=0.0, smoothing=eps, seed=1)(list(pixels), labels)
    np.testing.assert_allclose(unmixed[0], images, rtol=0, atol=1e-5)
    np.testing.assert_allclose(unmixed[1], smooth_by_hand(labels, classes, eps), rtol=1e-6)
    y0, y1, x0, x1 = cutmix_box(10, 10, 0.75, np.random.default_rng(0))
    assert 0 <= y0 <= y1 <= 10 and 0 <= x0 <= x1 <= 10
    assert parse_auto_augment("randaug-m9-mstd0.5") == (2, 9, 0.5)
    assert parse_auto_augment("randaug-m7-n3") == (3, 7, 0.0)
    with pytest.raises(UserError, match="not supported"):
        parse_auto_augment("autoaug-v0")
    with pytest.raises(UserError, match=r"\[0, 10\]"):  # timm's scale: m10 is full strength
        parse_auto_augment("randaug-m15")


def test_image_checks_name_truncated_and_non_image_files(tmp_path):
    from PIL import Image

    from common.data.folder import CheckedImageSource, image_problem

    good = tmp_path / "good.jpg"
    Image.new("RGB", (16, 16), (200, 10, 10)).save(good)
    data = good.read_bytes()
    assert image_problem(data) is None
    assert "truncated JPEG" in image_problem(data[: len(data) // 2])
    assert "not an image" in image_problem(b"hello world")
    assert image_problem(b"") == "empty file"
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(data[:100])
    source = CheckedImageSource([(str(bad), 0), (str(good), 1)], strict=True)
    image, label = source[0]  # replaced by the next good sample
    assert bytes(image) == data and int(label) == 1
    assert source.skipped == 1 and str(bad) in source.bad
    with pytest.raises(UserError, match="bad.jpg"):
        source.raise_if_bad()


def test_config_overrides_aliases_and_errors(tmp_path):
    yaml_path = "resnext152_64x4d/default_config.yaml"
    cfg = load_config(yaml_path, ["--per_batch_size", "16", "--max_epoch", "3", "--run_eval", "False",
                                  "--lr_epochs", "1,2", "--ckpt_path", "/x"])
    assert (cfg.batch_size, cfg.epoch_size, cfg.run_eval, cfg.lr_epochs, cfg.output_dir) == (16, 3, False, [1, 2], "/x")
    assert cfg.lr == 0.4 and cfg.lr_base_batch_size == 1024  # the recipe's values
    extra = tmp_path / "extra.yaml"
    extra.write_text("lr: 0.02\nwarmup_epochs: 1\n")
    cfg = load_config(yaml_path, ["--config_path", str(extra), "--lr", "0.03"])
    assert (cfg.lr, cfg.warmup_epochs) == (0.03, 1.0)  # command line wins over --config_path
    for argv, message in ((["--lrr", "1"], "did you mean 'lr'"), (["--lr", "-1"], "out of range"),
                          (["--batch_size", "0"], "out of range"), (["--run_eval", "maybe"], "not a valid bool"),
                          (["--lr_scheduler", "poly"], "not one of"), (["--nonfinite_patience", "0"], "out of range")):
        with pytest.raises(UserError, match=message):
            load_config(yaml_path, argv)


def test_checkpoints_keep_max_auto_resume_and_disk_full(tmp_path, monkeypatch, capsys):
    import mindspore as ms

    from common.training.hooks import CheckpointSaver
    from common.training.resume import find_resume_checkpoint
    from common.training.step import build_train_step
    from common.weights.checkpoint import list_checkpoints

    net, _, _ = dense_net()
    step = build_train_step(net, step_cfg(), steps_per_epoch=2)
    saver = CheckpointSaver(str(tmp_path), "dense", keep_max=2)
    for epoch in (1, 2, 3):
        saver.save(step, epoch, 2, 2)
    assert [(e, s) for e, s, _ in list_checkpoints(str(tmp_path), "dense")] == [(2, 2), (3, 2)]
    newest = str(tmp_path / "dense-3_2.ckpt")
    assert find_resume_checkpoint("auto", str(tmp_path), "dense")[0] == newest
    # a truncated newest file is passed over with a warning
    (tmp_path / "dense-4_1.ckpt").write_bytes(open(newest, "rb").read()[:200])
    assert find_resume_checkpoint("auto", str(tmp_path), "dense")[0] == newest
    assert "dense-4_1.ckpt" in capsys.readouterr().out
    assert find_resume_checkpoint("auto", str(tmp_path / "empty"), "dense") == (None, None)
    with pytest.raises(UserError, match="does not exist"):
        find_resume_checkpoint(str(tmp_path / "nope.ckpt"), str(tmp_path), "dense")
    # disk full half-way through the next write: the previous checkpoints stay, no partial file is left
    before = open(newest, "rb").read()

    def full_disk(obj, path, **kw):
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ms, "save_checkpoint", full_disk)
    with pytest.raises(UserError, match="No space left on device"):
        saver.save(step, 5, 2, 2)
    assert open(newest, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["dense-2_2.ckpt", "dense-3_2.ckpt", "dense-4_1.ckpt"]


def test_pretrained_with_another_class_count_reinitialises_only_the_head(tmp_path):
    import mindspore as ms

    from common.models import create_model
    from common.training.resume import load_pretrained

    source = create_model("resnext50_32x4d", num_classes=10)
    path = str(tmp_path / "src.ckpt")
    ms.save_checkpoint(source, path)
    net = create_model("resnext50_32x4d", num_classes=3)
    fresh_head = net.fc.weight.asnumpy().copy()
    note = load_pretrained(net, path, 3)
    assert "re-initialised for num_classes=3" in note and "10 classes" in note
    np.testing.assert_array_equal(net.fc.weight.asnumpy(), fresh_head)
    np.testing.assert_array_equal(net.conv1.weight.asnumpy(), source.conv1.weight.asnumpy())
    np.testing.assert_array_equal(net.layer4[2].bn3.gamma.asnumpy(), source.layer4[2].bn3.gamma.asnumpy())
    same = create_model("resnext50_32x4d", num_classes=10)
    assert "re-initialised" not in load_pretrained(same, path, 10)
    np.testing.assert_array_equal(same.fc.weight.asnumpy(), source.fc.weight.asnumpy())


def test_modelarts_without_moxing_is_a_clear_error():
    from common.modelarts import sync_in

    cfg = load_config(None, ["--enable_modelarts", "true", "--data_url", "obs://bucket/imagenet"])
    with pytest.raises(UserError, match="moxing"):
        sync_in(cfg)
    with pytest.raises(UserError, match="--data_url"):
        sync_in(load_config(None, ["--enable_modelarts", "true"]))


def test_rebuilding_the_train_pipeline_every_epoch_does_not_grow_memory(tmp_path):
    """train.py builds a fresh, epoch-seeded pipeline per epoch (exact resume); that must not leak per epoch."""
    import gc

    from PIL import Image

    from common.data import CheckedImageSource, create_dataset, scan_image_folder
    from common.training.hooks import rss_mb

    for c in range(2):
        os.makedirs(tmp_path / "train" / f"c{c}")
        for i in range(4):
            Image.new("RGB", (32, 32), (60 * i, 100 * c, 30)).save(tmp_path / "train" / f"c{c}" / f"{i}.jpg")
    cfg = load_config(None, ["--data_dir", str(tmp_path), "--image_size", "32", "--batch_size", "2",
                             "--num_parallel_workers", "1"])
    source = CheckedImageSource(scan_image_folder(str(tmp_path / "train"))[0])
    usage = []
    for epoch in range(24):
        dataset, _ = create_dataset(cfg, "train", True, seed=epoch, source=source)
        iterator = dataset.create_tuple_iterator(num_epochs=1)
        assert sum(1 for _ in iterator) == 4
        del iterator, dataset
        gc.collect()
        usage.append(rss_mb())
    assert usage[-1] - usage[8] < 4.0, f"RSS grew from {usage[8]:.1f} to {usage[-1]:.1f} MiB over 15 epochs"
