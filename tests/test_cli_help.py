"""--help of the model folders' entry points lists every option with this model's recipe value as the default."""
import numpy as np
import pytest
from conftest import run_cli


@pytest.mark.parametrize("model, entry, recipe", [
    ("resnext50_32x4d", "train.py", "--epoch_size (int, default 150)"),
    ("resnext152_64x4d", "eval.py", "--batch_size (int, default 128)"),
    ("resnest50", "export.py", "--drop_rate (float, default 0.2)"),
])
def test_help_shows_the_models_recipe(model, entry, recipe):
    result = run_cli([f"{model}/{entry}", "--help"])
    assert result.returncode == 0, result.stderr
    assert f"--arch (str, default '{model}')" in result.stdout
    assert recipe in result.stdout
    assert "--lr_scheduler" in result.stdout and "--label_smooth_factor" in result.stdout


# Help, a wrong option and a wrong path must answer before MindSpore is imported (4-5 s of CPU here, longer on a CANN
# image): the probe runs each entry point's command in a fresh interpreter and reports whether MindSpore got loaded.
_PROBE = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + '/' + sys.argv[2]]
from src import MODEL
try:
    code = MODEL.run(sys.argv[3], sys.argv[4:])
except SystemExit as stop:  # a user error exits from inside the command (common.errors.cli_main)
    code = stop.code
print('exit', code, 'mindspore loaded' if 'mindspore' in sys.modules else 'mindspore not loaded')
"""


@pytest.mark.parametrize("model, command, args, code", [
    ("resnext50_32x4d", "train", ["--help"], 0),
    ("resnext50_32x4d", "train", ["--epoch_size", "abc"], 2),
    ("resnest50", "eval", ["--batch_size", "0"], 2),
    ("resnext152_64x4d", "export", ["--height", "-1"], 2),
    ("resnest50", "predict", ["--output", "xml"], 2),
    ("resnext50_32x4d", "validate", ["--no_such_option", "1"], 2),
    ("resnext50_32x4d", "train", ["--data_dir", "/nonexistent/zoo-data", "--device_target", "CPU"], 2),
    ("resnest50", "eval", ["--data_dir", "/nonexistent/zoo-data", "--checkpoint_path", "/nonexistent/x.ckpt"], 2),
    ("resnext152_64x4d", "predict", ["--image", "/nonexistent/a.jpg", "--checkpoint_path", "/nonexistent/x.ckpt"], 2),
    ("resnext50_32x4d", "export", ["--file_format", "AIR", "--device_target", "CPU"], 2),
    ("resnest50", "export", ["--checkpoint_path", "/nonexistent/x.ckpt", "--device_target", "CPU"], 2),
])
def test_help_and_option_errors_do_not_import_mindspore(model, command, args, code):
    probe_without_mindspore(model, command, args, code)


def probe_without_mindspore(model, command, args, code, words=()):
    from conftest import ROOT

    result = _run_probe(_PROBE, [ROOT, model, command, *args], code)
    if code:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and all(word in errors[0] for word in words), result.stderr


def _run_probe(probe, args, code):
    """Run `probe` (one of the snippets here) with `args` in a fresh interpreter; it must exit `code` without having
    loaded MindSpore. Returns the CompletedProcess."""
    import subprocess
    import sys

    from conftest import ROOT

    result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=ROOT,
                            timeout=120)
    assert f"exit {code} mindspore not loaded" in result.stdout, (args, result.stdout + result.stderr)
    return result


def test_data_and_run_folder_mistakes_do_not_import_mindspore(tmp_path):
    """train.py's preflight (common.training.preflight): the data against --num_classes, and a run folder that
    already holds another run, are refused before MindSpore loads."""
    from image_data import write_images

    write_images(str(tmp_path / "data" / "train"), 2, seed=0)
    base = ["--data_dir", str(tmp_path / "data"), "--device_target", "CPU", "--output_dir", str(tmp_path / "run")]
    probe_without_mindspore("resnext50_32x4d", "train", base + ["--num_classes", "5"], 2, ("2 class folders",))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "resnext50_32x4d-1_4.ckpt").write_bytes(b"")
    probe_without_mindspore("resnext50_32x4d", "train", base + ["--num_classes", "2"], 2, ("already holds",))


def test_checkpoint_mistakes_do_not_import_mindspore(tmp_path):
    """Names and shapes read without MindSpore (common.weights.checkpoint_entries): a file that is no checkpoint, a
    class count against --num_classes or the data, and weights passed to --resume are refused before it loads."""
    import mindspore as ms
    from image_data import write_images

    write_images(str(tmp_path / "data" / "train"), 1, seed=0)  # 2 class folders
    write_images(str(tmp_path / "data" / "val"), 1, seed=1)
    write_images(str(tmp_path / "data3" / "val"), 1, seed=2, classes=3)
    weights = str(tmp_path / "weights.ckpt")  # a 2-class head, no training state
    ms.save_checkpoint([{"name": "fc.weight", "data": ms.Tensor(np.zeros((2, 8), np.float32))},
                        {"name": "fc.bias", "data": ms.Tensor(np.zeros(2, np.float32))}], weights)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(open(weights, "rb").read()[:-9])
    evaluate = ["--data_dir", str(tmp_path / "data"), "--device_target", "CPU", "--checkpoint_path"]
    probe_without_mindspore("resnest50", "eval", evaluate + [str(cut)], 2, ("cut.ckpt", "cannot be read"))
    probe_without_mindspore("resnest50", "eval", evaluate + [weights, "--num_classes", "5"], 2, ("has 2 classes",))
    probe_without_mindspore("resnest50", "eval", ["--data_dir", str(tmp_path / "data3"), "--device_target", "CPU",
                                                  "--checkpoint_path", weights], 2, ("3 class folders",))
    probe_without_mindspore("resnext152_64x4d", "export", ["--checkpoint_path", weights, "--num_classes", "5",
                                                           "--device_target", "CPU"], 2, ("has 2 classes",))
    train = ["--data_dir", str(tmp_path / "data"), "--device_target", "CPU", "--num_classes", "2", "--output_dir",
             str(tmp_path / "run")]
    probe_without_mindspore("resnext50_32x4d", "train", train + ["--resume", weights], 2, ("no training state",))
    probe_without_mindspore("resnext50_32x4d", "train", train + ["--pretrained", str(cut)], 2, ("cannot be read",))


_CONVERTER_PROBE = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
    code = 0
except SystemExit as stop:
    code = stop.code
print('exit', code, 'mindspore loaded' if 'mindspore' in sys.modules else 'mindspore not loaded')
"""


def test_converter_mistakes_do_not_import_mindspore(tmp_path):
    """scripts/convert_weights.py checks its arguments and reads a PyTorch source (or a .ckpt's names) before
    MindSpore loads: a wrong arch, path or folder, a pickle that is no state dict and a cut .ckpt answer at once."""
    import pickle
    import zipfile

    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"not": "tensors"}, protocol=2))
    (tmp_path / "cut.ckpt").write_bytes(b"\x0a\x20\x0a\x07conv1.w")
    out = str(tmp_path / "x.ckpt")
    cases = [(["--arch", "resnet9", "--src", "a.pth", "--out", out], "invalid choice: 'resnet9'"),
             (["--arch", "resnest50", "--src", str(tmp_path / "none.pth"), "--out", out], "does not exist"),
             (["--arch", "resnest50", "--src", str(tmp_path / "evil.pth"), "--out", str(tmp_path / "no" / "x.ckpt")],
              "--out folder"),
             (["--arch", "resnest50", "--src", str(tmp_path / "evil.pth"), "--out", out], "holds no state dict"),
             (["--arch", "resnest50", "--src", str(tmp_path / "cut.ckpt"), "--out", out], "cannot be read")]
    for args, words in cases:
        result = _run_probe(_CONVERTER_PROBE, ["scripts/convert_weights.py", *args], 2)
        assert words in result.stderr.strip().splitlines()[-1], (args, result.stderr)
    assert not (tmp_path / "x.ckpt").exists()
