"""EMA of the weights (--ema_decay): updated inside the step after the optimizer, saved in train.py's checkpoints,
restored on --resume, and loaded by eval/export/predict with --use_ema. The saved averages are checked against a
NumPy recomputation over the weights of every step of the run."""
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, shared_run
from easydict import EasyDict

ARCH = "resnext50_32x4d"
DECAY = 0.8


def step_cfg(**kw):
    cfg = dict(num_classes=3, label_smooth_factor=0.0, lr=0.3, lr_base_batch_size=0, batch_size=4, epoch_size=1,
               lr_scheduler="constant", warmup_epochs=0.0, warmup_init_lr=0.0, lr_min=0.0, lr_gamma=0.1,
               lr_step_size=1, lr_epochs=[], momentum=0.9, nesterov=False, weight_decay=0.0,
               decay_bn_and_bias=False, amp_level="O0", loss_scale=1.0, loss_scale_type="fixed", ema_decay=DECAY)
    cfg.update(kw)
    return EasyDict(cfg)


def recompute(initial, per_step, decay):
    """ema_0 = initial weights; ema_t = decay * ema_{t-1} + (1 - decay) * w_t, in float64."""
    ema = {k: v.astype(np.float64) for k, v in initial.items()}
    for weights in per_step:
        ema = {k: decay * ema[k] + (1.0 - decay) * weights[k].astype(np.float64) for k in ema}
    return ema


def test_ema_in_the_step_equals_numpy_recursion():
    import mindspore as ms
    from mindspore import nn

    from common.training.step import build_train_step

    ms.set_seed(3)
    net = nn.Dense(5, 3)
    initial = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    step = build_train_step(net, step_cfg(), steps_per_epoch=6)
    rng = np.random.default_rng(0)
    per_step = []
    for _ in range(6):
        step(ms.Tensor(rng.normal(size=(4, 5)).astype(np.float32)), ms.Tensor(rng.integers(0, 3, 4).astype(np.int32)))
        per_step.append({p.name: p.asnumpy().copy() for p in net.get_parameters()})
    want = recompute(initial, per_step, DECAY)
    got = {p.name[len("ema."):]: p.asnumpy() for p in step.get_parameters() if p.name.startswith("ema.")}
    assert sorted(got) == sorted(want) == ["bias", "weight"]
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
        assert not np.allclose(got[name], per_step[-1][name], atol=1e-4)  # an average, not the last weights


@pytest.fixture(scope="session")
def ema_run(tmp_path_factory):
    """train.py in graph mode, 1 optimizer step per epoch (4 images, batch 2, --grad_accum_steps 2), evaluation after
    each epoch: 2 epochs, then --resume auto to a 3rd; every checkpoint kept. Made once per session: the plot
    (tests/test_plot_run.py) and gradient-accumulation (tests/test_grad_accum.py) tests read it too.
    Returns (root, init checkpoint, run folder, stdout of the first run, stdout of the resumed run)."""

    def build(root):
        import mindspore as ms
        from image_data import write_images

        from common.models import create_model

        write_images(str(root / "data" / "train"), 2, seed=0)  # 4 images: one step of 2 micro-batches of 2
        write_images(str(root / "data" / "val"), 1, seed=1)
        ms.set_seed(11)
        init = str(root / "init.ckpt")
        ms.save_checkpoint(create_model(ARCH, num_classes=2), init)
        out = root / "run"
        base = [f"{ARCH}/train.py", "--data_dir", str(root / "data"), "--output_dir", str(out), "--device_target",
                "CPU", "--mode", "graph", "--num_classes", "2", "--image_size", "32", "--batch_size", "2",
                "--grad_accum_steps", "2", "--lr", "0.05", "--lr_scheduler", "constant", "--log_interval", "1",
                "--loss_scale", "1", "--keep_checkpoint_max", "5", "--ema_decay", str(DECAY), "--pretrained", init,
                "--run_eval", "true", "--eval_interval", "1", "--seed", "3"]
        first = run_cli(base + ["--epoch_size", "2"])
        assert first.returncode == 0, first.stderr[-3000:]
        second = run_cli(base + ["--epoch_size", "3", "--resume", "auto"])
        assert second.returncode == 0, second.stderr[-3000:]
        assert "resumed from" in second.stdout
        return [str(root), init, str(out), first.stdout, second.stdout]

    root, init, out, first, second = shared_run(tmp_path_factory, "ema-accum-eval", build)
    return Path(root), init, Path(out), first, second


def test_saved_ema_equals_numpy_recomputation_across_resume(ema_run):
    import mindspore as ms

    from common.weights.checkpoint import list_checkpoints

    _, init, out, _, _ = ema_run
    ckpts = [p for _, _, p in list_checkpoints(str(out), ARCH)]
    assert [os.path.basename(p) for p in ckpts] == [f"{ARCH}-{e}_1.ckpt" for e in (1, 2, 3)]
    loaded = [ms.load_checkpoint(p) for p in ckpts]
    names = [k for k in loaded[-1] if k.startswith("ema.")]
    net_names = [k[len("ema."):] for k in names]
    assert "conv1.weight" in net_names and "fc.bias" in net_names and "bn1.moving_mean" in net_names
    initial = {k: v.asnumpy() for k, v in ms.load_checkpoint(init).items() if k in net_names}
    per_step = [{k: c[k].asnumpy() for k in net_names} for c in loaded]
    want = recompute(initial, per_step, DECAY)
    worst = 0.0
    for name in net_names:
        got = loaded[-1]["ema." + name].asnumpy().astype(np.float64)
        scale = max(1.0, float(np.abs(want[name]).max()))
        worst = max(worst, float(np.abs(got - want[name]).max()) / scale)
    assert worst < 1e-5, worst
    # the run really moved: the average differs from the last weights
    assert not np.allclose(loaded[-1]["ema.fc.weight"].asnumpy(), per_step[-1]["fc.weight"], atol=1e-5)


def test_use_ema_loads_the_averages_for_inference(ema_run):
    import mindspore as ms

    from common.compat import load_param_into_net
    from common.inference.network import load_inference_network
    from common.models import create_model
    from common.weights.checkpoint import list_checkpoints

    _, _, out, _, _ = ema_run
    ckpt = list_checkpoints(str(out), ARCH)[-1][2]
    image = ms.Tensor(np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32))
    cfg = EasyDict(arch=ARCH, checkpoint_path=ckpt, num_classes=2, use_ema=True)
    got = load_inference_network(cfg, [])(image).asnumpy()
    want_net = create_model(ARCH, num_classes=2)
    averages = {k[len("ema."):]: v for k, v in ms.load_checkpoint(ckpt).items() if k.startswith("ema.")}
    load_param_into_net(want_net, averages)
    want_net.set_train(False)
    np.testing.assert_allclose(got, want_net(image).asnumpy(), rtol=1e-4, atol=1e-4)
    plain = load_inference_network(EasyDict(cfg, use_ema=False), [])(image).asnumpy()
    assert not np.allclose(got, plain, atol=1e-5)


def test_use_ema_without_averages_is_one_error_line(ema_run, tmp_path):
    _, init, _, _, _ = ema_run
    result = run_cli([f"{ARCH}/export.py", "--checkpoint_path", init, "--device_target", "CPU", "--use_ema", "true",
                      "--file_name", str(tmp_path / "x")])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: checkpoint") and "holds no EMA weights" in lines[-1]
    assert not os.listdir(tmp_path)
