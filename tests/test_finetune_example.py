"""scripts/finetune_example.sh at a short length: pretrain on digits 0-4, fine-tune on the held-out digits 5-9 with
--freeze_layers, report top-1 before and after; argument errors are one line with exit status 2."""
import os
import re
import subprocess

import pytest
from conftest import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "finetune_example.sh")


def run_script(*args, timeout=900):
    env = dict(os.environ, GLOG_v="3", PYTHONUNBUFFERED="1")
    return subprocess.run(["bash", SCRIPT, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_short_finetune_reports_before_and_after(tmp_path):
    out = tmp_path / "fe"
    result = run_script("--per_class", "8", "--pretrain_epochs", "1", "--finetune_epochs", "1", "--freeze_layers",
                        "3", "--mode", "pynative", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"finetune_example: digits 5-9 \(held out from pretraining\), freeze_layers=3, 1 epoch\(s\): "
                         r"top-1 before (\d+\.\d\d)% -> after (\d+\.\d\d)% \(\d+ s\)", last)
    assert match, last
    assert 0.0 <= float(match.group(1)) <= 100.0 and 0.0 <= float(match.group(2)) <= 100.0
    # the fine-tuning run froze the stem and layer1-3 and said what trains
    assert "frozen (weights and BN statistics): conv1, bn1, layer1, layer2, layer3" in result.stdout
    # digits 5-9 were held out of pretraining: its classes are 0-4 only
    assert sorted(os.listdir(out / "task_0-4" / "train")) == list("01234")
    assert sorted(os.listdir(out / "task_5-9" / "val")) == list("56789")
    assert all(len(os.listdir(out / "task_0-4" / "train" / d)) == 8 for d in "01234")


@pytest.mark.parametrize("args, message", [
    (("--freeze_layers", "7"), "error: --freeze_layers must be an integer in -1..4, not '7'"),
    (("--per_class", "x"), "error: --per_class must be an integer in 0..100000, not 'x'"),
    (("--mode", "eager"), "error: --mode must be graph or pynative, not 'eager'"),
    (("--checkpoint", "/nonexistent.ckpt"), "error: --checkpoint '/nonexistent.ckpt' does not exist"),
    (("--bogus",), "error: unknown option '--bogus'"),
    (("--finetune_epochs",), "error: option --finetune_epochs needs a value"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, message, tmp_path):
    result = run_script(str(tmp_path / "never"), *args, timeout=60)  # OUT_DIR first: a value-less option is last
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert not (tmp_path / "never").exists()


def test_help():
    result = run_script("--help", timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("usage: bash scripts/finetune_example.sh")
