"""eval.py: every image counted once (size not a multiple of the batch, 1 and 2 ranks), docs/DESIGN.md §3 log lines."""
import json
import os
import re
import sys

import numpy as np
import pytest
from conftest import ROOT, run_cli
from easydict import EasyDict
from inference_helpers import make_checkpoint, write_image_folder
from launcher_helpers import free_port

ARCH, NUM_CLASSES, IMAGE_SIZE = "resnext50_32x4d", 8, 32
COUNTS = (4, 4, 3)  # 11 images: batch 4 leaves a partial batch of 3; 2 ranks get 6 and 5
EVAL_ARGS = ["--device_target", "CPU", "--image_size", str(IMAGE_SIZE), "--batch_size", "4"]

# The shapes users grep (docs/DESIGN.md §3), character for character.
LINE_TOP = r"^after allreduce eval: top{k}_correct=(\d+), tot=(\d+),acc=(\d+\.\d\d)%\(TOP{n}\)$"
LINE_ACC = r"^acc=(\d+\.\d\d)%\(TOP{n}\)$"
LINE_PERF = r"^Inference Performance: (\d+\.\d\d) img/sec$"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Data set, checkpoint, and the counts expected from scoring each image on its own."""
    from mindspore import Tensor

    from common.inference.predict import preprocess

    tmp = tmp_path_factory.mktemp("eval")
    samples = write_image_folder(str(tmp / "data" / "val"), COUNTS)
    ckpt = str(tmp / "run" / "net.ckpt")
    os.makedirs(os.path.dirname(ckpt))
    net = make_checkpoint(ckpt, ARCH, NUM_CLASSES, fc_scale=3.0)
    cfg = EasyDict(image_size=IMAGE_SIZE, crop_pct=0.875, interpolation="bilinear")
    top1 = top5 = 0
    for path, label in samples:
        logits = net(Tensor(preprocess(path, cfg)[None])).asnumpy()[0]
        ranking = sorted(range(NUM_CLASSES), key=lambda c: -logits[c])
        top1 += ranking[0] == label
        top5 += label in ranking[:5]
    assert top1 < top5, "top-5 must count more than top-1 here for the check to mean something"
    return dict(data=str(tmp / "data"), ckpt=ckpt, tmp=tmp, total=len(samples), top1=top1, top5=top5)


def parse_lines(text: str) -> dict:
    """The figures of the docs/DESIGN.md §3 lines in `text`; each line must appear exactly once."""
    found = {}
    for k, n in ((1, 1), (5, 5)):
        tops = re.findall(LINE_TOP.format(k=k, n=n), text, re.M)
        accs = re.findall(LINE_ACC.format(n=n), text, re.M)
        assert len(tops) == 1 and len(accs) == 1, text
        correct, tot, acc = tops[0]
        found[f"top{k}"] = (int(correct), int(tot), float(acc), float(accs[0]))
    perf = re.findall(LINE_PERF, text, re.M)
    assert len(perf) == 1, text
    found["img_per_sec"] = float(perf[0])
    return found


def check_figures(found: dict, setup: dict) -> None:
    for k in ("top1", "top5"):
        correct, tot, acc, short_acc = found[k]
        assert (correct, tot) == (setup[k], setup["total"])
        assert acc == short_acc == round(100 * correct / tot, 2)
    assert found["img_per_sec"] > 0


def test_rank_indices_partition_every_image_once():
    from common.data.pipeline import rank_indices

    for num in (0, 1, 5, 11, 50):
        for size in (1, 2, 3, 8):
            shares = [rank_indices(num, rank, size) for rank in range(size)]
            assert sorted(i for share in shares for i in share) == list(range(num))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_count_correct_matches_sorting():
    from common.inference.evaluate import count_correct

    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(64, 10)), rng.integers(0, 10, 64)
    ranks = (-logits).argsort(axis=1)
    expected = (int((ranks[:, 0] == labels).sum()), int((ranks[:, :5] == labels[:, None]).any(axis=1).sum()))
    assert count_correct(logits, labels) == expected
    assert count_correct(logits[:, :3], np.minimum(labels, 2))[1] == 64  # top-5 of 3 classes holds every label


def test_eval_single_device_counts_and_lines(setup):
    result = run_cli([f"{ARCH}/eval.py", "--data_dir", setup["data"], "--checkpoint_path", setup["ckpt"],
                      *EVAL_ARGS])
    assert result.returncode == 0, result.stderr
    check_figures(parse_lines(result.stdout), setup)
    with open(os.path.join(os.path.dirname(setup["ckpt"]), "eval_net.json"), encoding="utf-8") as fh:
        saved = json.load(fh)
    assert (saved["top1_correct"], saved["top5_correct"], saved["total"]) == (setup["top1"], setup["top5"],
                                                                              setup["total"])
    assert saved["top1"] == pytest.approx(setup["top1"] / setup["total"])


def test_eval_two_ranks_msrun_counts_each_image_once(setup):
    log_dir, out_dir = str(setup["tmp"] / "msrun_logs"), str(setup["tmp"] / "out2")
    bin_dir = os.path.dirname(sys.executable)
    result = run_cli([os.path.join(bin_dir, "msrun"), "--worker_num", "2", "--local_worker_num", "2",
                      "--master_port", str(free_port()), "--log_dir", log_dir, "--join", "True",
                      f"{ARCH}/eval.py", "--data_dir", setup["data"], "--checkpoint_path", setup["ckpt"],
                      "--output_dir", out_dir, *EVAL_ARGS],
                     env={"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}, timeout=300)
    logs = {r: open(os.path.join(log_dir, f"worker_{r}.log"), encoding="utf-8", errors="replace").read()
            for r in (0, 1)}
    assert result.returncode == 0, result.stdout[-3000:] + logs[0][-3000:] + logs[1][-3000:]
    check_figures(parse_lines(logs[0]), setup)
    assert "after allreduce eval" not in logs[1]  # rank 0 alone prints
    with open(os.path.join(out_dir, "eval_net.json"), encoding="utf-8") as fh:
        saved = json.load(fh)
    assert (saved["total"], saved["group_size"]) == (setup["total"], 2)


def test_eval_refuses_more_class_folders_than_outputs(setup, tmp_path):
    write_image_folder(str(tmp_path / "val"), [1] * (NUM_CLASSES + 1))
    result = run_cli([f"{ARCH}/eval.py", "--data_dir", str(tmp_path), "--checkpoint_path", setup["ckpt"],
                      *EVAL_ARGS])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "num_classes=8" in lines[0], result.stderr


def test_eval_missing_checkpoint_is_one_line(setup, tmp_path):
    result = run_cli([f"{ARCH}/eval.py", "--data_dir", setup["data"], "--checkpoint_path",
                      str(tmp_path / "nope.ckpt"), *EVAL_ARGS])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.ckpt" in lines[0] and lines[0].startswith("error: "), result.stderr
    assert not os.listdir(tmp_path)


def test_evaluate_network_in_process_restores_train_flag(setup):
    from common import create_model
    from common.config import load_config
    from common.context import DistInfo
    from common.inference.evaluate import evaluate_network

    cfg = load_config(os.path.join(ROOT, ARCH, "default_config.yaml"),
                      ["--data_dir", setup["data"], "--image_size", str(IMAGE_SIZE), "--eval_batch_size", "3"])
    net = create_model(ARCH, NUM_CLASSES, checkpoint=setup["ckpt"])
    net.set_train(True)
    result = evaluate_network(net, cfg, DistInfo(), log=False)
    assert (result["top1_correct"], result["top5_correct"], result["total"]) == (setup["top1"], setup["top5"],
                                                                                 setup["total"])
    assert net.training


def test_eval_names_an_undecodable_image(setup, tmp_path):
    write_image_folder(str(tmp_path / "val"), (2, 2))
    (tmp_path / "val" / "c1" / "broken.jpg").write_text("an HTML error page saved under an image name")
    result = run_cli([f"{ARCH}/eval.py", "--data_dir", str(tmp_path), "--checkpoint_path", setup["ckpt"],
                      *EVAL_ARGS])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "broken.jpg" in lines[0], result.stderr[-3000:]
