"""The ModelZoo's and MindCV's commands as their READMEs write them (paths aside), on CPU, in a model folder.

ModelZoo: `eval.py --platform --pretrained`, `export.py --device_target --ckpt_file --file_format`, `train.py
--platform --is_distributed 0` (its --ckpt_path is the output folder). MindCV: `validate.py -c <yaml> --ckpt_path`,
`train.py --distribute`, and raw `msrun ... python <model>/train.py` training data-parallel without a launcher. The
checkpoint is MindCV's own file layout, so eval/export/train also convert it on the fly and apply its padding.
"""
import os
import sys

import numpy as np
import pytest
import yaml
from conftest import run_cli
from image_data import write_images
from inference_helpers import randomise_eval_state, require_mindcv
from launcher_helpers import free_port

ARCH = "resnext50_32x4d"
TINY = ["--image_size", "32", "--num_classes", "2"]
TRAIN_TINY = [*TINY, "--batch_size", "4", "--epoch_size", "1", "--lr", "0.01", "--amp_level", "O0", "--mode",
              "pynative", "--log_interval", "1", "--loss_scale_type", "dynamic"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny train/val image folders and a 2-class MindCV ResNeXt-50 checkpoint (MindCV's key names)."""
    require_mindcv()
    import mindspore as ms
    from mindcv.models import create_model as mindcv_model

    root = tmp_path_factory.mktemp("dropin")
    write_images(str(root / "data" / "train"), 8, seed=0)
    write_images(str(root / "data" / "val"), 2, seed=1)
    net = mindcv_model(ARCH, num_classes=2)
    randomise_eval_state(net, seed=2)
    ckpt = str(root / "mindcv" / "resnext50_32x4d-af8aba16.ckpt")
    os.makedirs(os.path.dirname(ckpt))
    ms.save_checkpoint(net, ckpt)
    return dict(root=root, data=str(root / "data"), ckpt=ckpt)


def _one_error(proc, *words):
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_modelzoo_eval_and_export_as_written(setup, tmp_path):
    proc = run_cli([f"{ARCH}/eval.py", "--data_dir", os.path.join(setup["data"], "val"), "--platform", "CPU",
                    "--pretrained", setup["ckpt"], "--output_dir", str(tmp_path), *TINY])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"note: '{setup['ckpt']}' is a mindcv checkpoint: converted" in proc.stdout
    assert "acc=" in proc.stdout and "(TOP1)" in proc.stdout
    out = str(tmp_path / "net")
    proc = run_cli([f"{ARCH}/export.py", "--device_target", "CPU", "--ckpt_file", setup["ckpt"], "--file_format",
                    "MINDIR", "--file_name", out, *TINY])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.getsize(out + ".mindir") > 1_000_000


def test_mindcv_validate_reads_its_yaml_and_names_what_it_ignores(setup, tmp_path):
    config = tmp_path / "resnext50_32x4d_ascend.yaml"
    config.write_text(yaml.safe_dump({"mode": 0, "distribute": False, "model": ARCH, "num_classes": 2,
                                      "batch_size": 2, "image_resize": 32, "crop_pct": 0.875, "interpolation":
                                      "bilinear", "dataset": "imagenet", "ema": True, "re_value": "random",
                                      "ckpt_path": "", "amp_level": "O0"}))
    proc = run_cli([f"{ARCH}/validate.py", "-c", str(config), "--data_dir", os.path.join(setup["data"], "val"),
                    "--ckpt_path", setup["ckpt"], "--device_target", "CPU", "--output_dir", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"note: MindCV config '{config}': 2 key(s) with no equivalent here, ignored: ema=True, re_value" \
        in proc.stdout
    assert "is a mindcv checkpoint: converted" in proc.stdout and "acc=" in proc.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"batch_size": "many"}))
    _one_error(run_cli([f"{ARCH}/validate.py", "-c", str(bad), "--ckpt_path", setup["ckpt"]]),
               str(bad), "batch_size='many' is not a valid int")


def test_modelzoo_train_as_written_fine_tunes_with_the_checkpoint_padding(setup, tmp_path):
    import mindspore as ms

    out = tmp_path / "ckpt"
    proc = run_cli([f"{ARCH}/train.py", "--data_dir", setup["data"], "--platform", "CPU", "--is_distributed", "0",
                    "--ckpt_path", str(out), "--pretrained", setup["ckpt"], *TRAIN_TINY])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is a mindcv checkpoint: converted" in proc.stdout
    saved = ms.load_checkpoint(str(out / f"{ARCH}-1_4.ckpt"))  # ModelZoo: --ckpt_path is the output folder
    assert int(saved["pool_padding_same"].asnumpy()[0]) == 1  # fine-tuned with MindCV's pooling, and says so
    # resuming rebuilds the network with the padding its checkpoint records (a symmetric one would refuse the file)
    proc = run_cli([f"{ARCH}/train.py", "--data_dir", setup["data"], "--platform", "CPU", "--ckpt_path", str(out),
                    "--resume", "auto", *TRAIN_TINY, "--epoch_size", "2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stdout
    assert int(ms.load_checkpoint(str(out / f"{ARCH}-2_4.ckpt"))["pool_padding_same"].asnumpy()[0]) == 1
    _one_error(run_cli([f"{ARCH}/train.py", "--data_dir", setup["data"], "--platform", "CPU", "--distribute",
                        "True", "--ckpt_path", str(tmp_path / "b"), *TRAIN_TINY]), "started alone", "msrun")


def test_raw_msrun_trains_data_parallel_without_a_launcher(setup, tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    out, logs = tmp_path / "out", tmp_path / "logs"
    config = tmp_path / "mindcv.yaml"  # MindCV's command: msrun ... python train.py --config <yaml> --data_dir
    config.write_text(yaml.safe_dump({"distribute": True, "model": ARCH, "ckpt_save_dir": str(out)}))
    proc = run_cli([os.path.join(bin_dir, "msrun"), "--worker_num", "2", "--local_worker_num", "2", "--master_port",
                    str(free_port()), "--log_dir", str(logs), "--join", "True", "python", f"{ARCH}/train.py",
                    "--config", str(config), "--data_dir", setup["data"], "--device_target", "CPU", *TRAIN_TINY],
                   env={"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}, timeout=600)
    worker = [(logs / f"worker_{r}.log").read_text(errors="replace")[-2000:] for r in (0, 1)]
    assert proc.returncode == 0, proc.stdout[-2000:] + worker[0] + worker[1]
    # 16 images, 4 per device: 2 steps per epoch with 2 ranks (a lone process would take 4)
    names = sorted(p.name for p in out.glob("*.ckpt"))
    assert names == [f"{ARCH}-1_2.ckpt"], names
    import mindspore as ms

    weights = ms.load_checkpoint(str(out / names[0]))
    assert np.isfinite(weights["fc.weight"].asnumpy()).all()


def test_ascend_commands_get_past_their_options_to_the_device_check(setup, tmp_path):
    """Without an Ascend device, each README command must fail at MindSpore's device check, not at an option."""
    config = tmp_path / "mindcv.yaml"
    config.write_text(yaml.safe_dump({"mode": 0, "distribute": False, "model": "resnest50", "batch_size": 2}))
    data, ckpt = setup["data"], setup["ckpt"]
    commands = [
        ["resnext152_64x4d/train.py", "--data_dir", os.path.join(data, "train"), "--platform", "Ascend",
         "--is_distributed", "0", "--ckpt_path", str(tmp_path / "out"), "--num_classes", "2"],
        ["resnext152_64x4d/eval.py", "--data_dir", os.path.join(data, "val"), "--platform", "Ascend",
         "--pretrained", ckpt],
        ["resnext152_64x4d/export.py", "--device_target", "Ascend", "--ckpt_file", ckpt, "--file_format", "MINDIR"],
        ["resnest50/train.py", "--config", str(config), "--data_dir", data, "--distribute", "False",
         "--num_classes", "2", "--output_dir", str(tmp_path / "out2")],
        ["resnest50/validate.py", "-c", str(config), "--data_dir", data, "--ckpt_path", ckpt],
    ]
    for args in commands:
        proc = run_cli(args, timeout=300)
        assert proc.returncode != 0 and "Unsupported device target Ascend" in proc.stderr, (args, proc.stderr[-2000:])
