"""scripts/plot_run.py: a four-panel PNG from the metrics.jsonl of a real (tiny) train.py run; one clear error line
and exit 2 on bad input or without matplotlib; importing it has no side effects."""
import json
import os
import struct
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli
from test_ema import ema_run  # noqa: F401 - a fixture

SCRIPT = os.path.join("scripts", "plot_run.py")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_plot_run():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import plot_run
    finally:
        sys.path.pop(0)
    return plot_run


@pytest.fixture(scope="module")
def run_dir(ema_run):  # noqa: F811
    """A real train.py run with evaluation after each epoch: tests/test_ema.py's shared one (resnext50_32x4d, 32 px,
    2 epochs, then resumed to a 3rd), made once per session."""
    return str(ema_run[2])


def png_size(path):
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == PNG_MAGIC, head
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_plot_of_a_real_run_has_four_panels(run_dir, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is in requirements-test.txt")
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all({"loss", "lr", "img_per_sec", "top1", "top5"} <= set(r) for r in records), records

    out = tmp_path / "run.png"
    result = run_cli([SCRIPT, run_dir, "--out", str(out)], timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out}"
    width, height = png_size(str(out))
    assert (width, height) == (1100, 750)
    assert out.stat().st_size > 10_000  # drawn, not blank

    plot_run = load_plot_run()
    figure = plot_run.make_figure(plot_run.read_metrics(run_dir))
    axes = figure.axes
    assert len(axes) == 4
    assert [a.get_title() for a in axes] == ["training loss", "learning rate (end of epoch)",
                                             "validation accuracy (%)", "training throughput (img/s)"]
    assert [len(a.get_lines()) for a in axes] == [1, 1, 2, 1]
    loss_line = axes[0].get_lines()[0]
    assert list(loss_line.get_xdata()) == [1, 2, 3]
    assert list(loss_line.get_ydata()) == pytest.approx([r["loss"] for r in records])
    top1 = axes[2].get_lines()[0].get_ydata()
    assert list(top1) == pytest.approx([100 * r["top1"] for r in records])


def test_default_output_goes_into_the_run_folder(run_dir, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is in requirements-test.txt")
    copy = tmp_path / "copy"
    copy.mkdir()
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as fh:
        (copy / "metrics.jsonl").write_text(fh.read(), encoding="utf-8")
    result = run_cli([SCRIPT, str(copy)], timeout=120)
    assert result.returncode == 0, result.stderr
    png_size(str(copy / "metrics.png"))


def test_a_panel_without_data_says_so(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is in requirements-test.txt")
    plot_run = load_plot_run()
    # no evaluation in this run: the accuracy panel is empty and labelled, the others are drawn
    records = [{"epoch": 1, "loss": 2.0, "lr": 0.1, "img_per_sec": 5.0},
               {"epoch": 2, "loss": float("nan"), "lr": 0.05, "img_per_sec": 6.0}]
    figure = plot_run.make_figure(records)
    assert [len(a.get_lines()) for a in figure.axes] == [1, 1, 0, 1]
    assert list(figure.axes[0].get_lines()[0].get_xdata()) == [1]  # the NaN loss is left out
    assert "no 'top1'" in figure.axes[2].texts[0].get_text()


BAD_INPUTS = {
    "missing_folder": (None, "does not exist"),
    "no_metrics_file": ("", "not found"),
    "empty_file": ("\n\n", "no epoch records"),
    "corrupt_line": ('{"epoch": 1, "loss": 2.0}\n{"epoch": 2, "lo', "line 2 is not valid JSON"),
    "not_an_object": ("[1, 2]\n", "line 1 is not a per-epoch record"),
    "no_epoch": ('{"loss": 2.0}\n', "line 1 is not a per-epoch record"),
    "text_value": ('{"epoch": 1, "loss": "high"}\n', "'loss' is 'high'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_error_line_and_exit_2(case, tmp_path):
    content, words = BAD_INPUTS[case]
    run = tmp_path / "run"
    if content is not None:
        run.mkdir()
        if content:
            (run / "metrics.jsonl").write_text(content, encoding="utf-8")
    before = sorted(os.listdir(tmp_path))
    result = run_cli([SCRIPT, str(run)], timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert words in lines[0], lines[0]
    assert sorted(os.listdir(tmp_path)) == before
    assert not (run / "metrics.png").exists()


def test_bad_arguments_exit_2(tmp_path):
    assert run_cli([SCRIPT], timeout=120).returncode == 2
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "loss": 1.0}\n', encoding="utf-8")
    result = run_cli([SCRIPT, str(tmp_path), "--out", str(tmp_path / "nowhere" / "x.png")], timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: cannot write"), result.stderr


def test_without_matplotlib_one_error_line_and_exit_2(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "loss": 1.0}\n', encoding="utf-8")
    # an interpreter in which `import matplotlib` fails, as in a venv without it
    code = ("import runpy, sys; sys.modules['matplotlib'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code, SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()] and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: matplotlib is not installed"), result.stderr
    assert not (tmp_path / "metrics.png").exists()


def test_import_parses_no_argv_and_touches_no_disk(tmp_path):
    # cwd is an empty folder and argv is nonsense: importing must neither fail nor write, nor load matplotlib
    code = ("import os, sys; sys.argv = ['x', '--no-such-option']; sys.path.insert(0, sys.argv_dir); "
            "import plot_run; assert callable(plot_run.main) and callable(plot_run.make_figure); "
            "assert 'matplotlib' not in sys.modules; assert os.listdir('.') == [], os.listdir('.'); print('ok')")
    code = code.replace("sys.argv_dir", repr(os.path.join(ROOT, "scripts")))
    result = subprocess.run([sys.executable, "-B", "-c", code], cwd=str(tmp_path), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr
