"""Each model's default recipe trains on CPU at tiny size (issue 14, "Done when"): through train.py, the standalone
CPU launcher and the msrun launcher with 2 workers (that one in tests/test_msrun.py, whose observed run of
ResNeXt-50's recipe also checks the shards and that only rank 0 writes), overriding only sizes (image_size 32,
batch_size 2, epoch_size 1, num_classes 2 for the tiny folder). The recipes ask for AMP O2 with a fixed or dynamic
scale; on CPU the run says it trains float32 and must not diverge at step 1 (it did before: float16 on CPU
overflowed)."""
import os
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli
from image_data import write_images

MODELS = ["resnext50_32x4d", "resnext152_64x4d", "resnest50"]
SIZES = ["--image_size", "32", "--batch_size", "2", "--epoch_size", "1", "--num_classes", "2"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_images(str(root / "train"), 4, seed=0)  # 8 images: 4 steps at batch 2, 2 per worker-step with 2 workers
    return str(root)


def _check_trained(log, out, arch):
    assert "training runs float32" in log, log[-3000:]
    assert "diverged" not in log and "skipped for non-finite" not in log, log[-3000:]
    assert any(n.startswith(arch) and n.endswith(".ckpt") for n in os.listdir(out)), os.listdir(out)


# ResNeXt-50's recipe goes through its standalone launcher below and its msrun launcher (tests/test_msrun.py),
# which run its train.py the same way.
@pytest.mark.parametrize("arch", [m for m in MODELS if m != "resnext50_32x4d"])
def test_default_recipe_trains_on_cpu_through_train_py(arch, tiny, tmp_path):
    out = tmp_path / "out"
    result = run_cli([os.path.join(arch, "train.py"), "--data_dir", tiny, "--output_dir", str(out),
                      "--device_target", "CPU", *SIZES], timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    _check_trained(result.stdout, out, arch)
    assert result.stdout.count("training runs float32") == 1


def _clean_env():
    env = dict(os.environ, GLOG_v="3", PYTHONUNBUFFERED="1",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    for var in ("RANK_TABLE_FILE", "RANK_SIZE", "RANK_ID", "MS_WORKER_NUM", "ZOO_ENTRY_PY"):
        env.pop(var, None)
    return env


def test_default_recipe_trains_through_the_standalone_cpu_launcher(tiny, tmp_path):
    arch = "resnext50_32x4d"
    out = tmp_path / "run"
    proc = subprocess.run(["bash", os.path.join(ROOT, arch, "scripts", "run_standalone_train_cpu.sh"),
                           "--output_dir", str(out), tiny, "--", *SIZES], cwd=str(tmp_path), capture_output=True,
                          text=True, env=_clean_env(), timeout=900)
    log = (out / "train.log").read_text() if (out / "train.log").exists() else ""
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + log[-2000:]
    _check_trained(log, out, arch)
    assert log.count("training runs float32") == 1


def test_resnext50_recipe_lr_follows_the_global_batch():
    from common.config import load_config
    from common.training.lr_schedule import build_lr, lr_notes

    cfg = load_config(os.path.join(ROOT, "resnext50_32x4d", "default_config.yaml"))
    assert (cfg.lr, cfg.lr_base_batch_size, cfg.batch_size, cfg.warmup_epochs) == (0.1, 256, 32, 0)
    assert build_lr(cfg, 10, group_size=8)[0] == pytest.approx(0.1)  # the published 8 x 32
    assert build_lr(cfg, 10, group_size=1)[0] == pytest.approx(0.0125)  # one device at 32: 1/8 of it
    assert "peak 0.0125 = lr 0.1 x global batch 32" in lr_notes(cfg, 1)[0]


def test_a_warmup_longer_than_the_run_is_shortened_with_a_note():
    from common.config import load_config
    from common.training.lr_schedule import build_lr, lr_notes

    cfg = load_config(os.path.join(ROOT, "resnest50", "default_config.yaml"), ["--epoch_size", "1"])
    assert cfg.warmup_epochs == 5  # accepted, not refused
    peak = 0.06 * 128 / 1024
    lr = build_lr(cfg, 4, group_size=1)
    assert lr.tolist() == pytest.approx([peak / 4, peak / 2, 3 * peak / 4, peak])  # warm-up over the one epoch
    assert any("warm-up is shortened to the whole run (1 epoch(s))" in n for n in lr_notes(cfg, 1))
