"""export.py then eval.py --model_file, for the two block types: the exported MINDIR (dynamic batch, loaded back with
GraphCell) and ONNX (fixed batch, run with onnxruntime) compute the network's logits, and each scores the val split
with the counts of its checkpoint; the preset recorded beside the exported file is used by itself.

The expected counts are computed here, independently of the zoo's pipeline: torchvision's Resize/CenterCrop/
ToTensor/Normalize (the torchvision_v1 preset at a 32 px crop: resize round(256 * 32 / 224) = 37) and the network
the checkpoint was saved from.
"""
import json
import os
import re

import numpy as np
import pytest
from conftest import run_cli
from inference_helpers import assert_close, make_checkpoint, write_image_folder

# The two block types (ResNeXt's grouped bottleneck, ResNeSt's split attention). ResNeXt-152's folder runs the same
# eval.py/export.py code on the first one, deeper; its MINDIR export is checked in tests/test_export.py.
MODEL_DIRS = ("resnext50_32x4d", "resnest50")
NUM_CLASSES, SIZE, COUNTS = 8, 32, (4, 4, 3)  # 11 images: batch 4 leaves a partial batch of 3
# seeds whose random networks give top-1 below top-5
SEEDS = {"resnext50_32x4d": 3, "resnest50": 1}
TOP1 = r"^after allreduce eval: top1_correct=(\d+), tot=(\d+),acc=\d+\.\d\d%\(TOP1\)$"
TOP5 = r"^after allreduce eval: top5_correct=(\d+), tot=(\d+),acc=\d+\.\d\d%\(TOP5\)$"


def torchvision_counts(net, samples) -> tuple:
    """(top-1, top-5) of `net` on the images through torchvision's eval transform (resize 37, crop 32, PIL)."""
    from mindspore import Tensor
    from PIL import Image
    from torchvision import transforms as T

    tf = T.Compose([T.Resize(37), T.CenterCrop(SIZE), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    top1 = top5 = 0
    for path, label in samples:
        with Image.open(path) as image:
            batch = tf(image.convert("RGB")).numpy()[None]
        ranking = np.argsort(-net(Tensor(batch)).asnumpy()[0])
        top1 += int(ranking[0] == label)
        top5 += int(label in ranking[:5])
    return top1, top5


def counts(result) -> tuple:
    assert result.returncode == 0, result.stderr[-3000:]
    top1, top5 = re.findall(TOP1, result.stdout, re.M), re.findall(TOP5, result.stdout, re.M)
    assert len(top1) == 1 and len(top5) == 1, result.stdout
    return int(top1[0][0]), int(top5[0][0]), int(top1[0][1])


@pytest.mark.parametrize("model_dir", MODEL_DIRS)
def test_exported_files_compute_the_logits_and_score_like_the_checkpoint(model_dir, tmp_path):
    import mindspore as ms
    import onnxruntime as ort
    import yaml

    with open(os.path.join(model_dir, "default_config.yaml"), encoding="utf-8") as fh:
        arch = yaml.safe_load(fh)["arch"]
    samples = write_image_folder(str(tmp_path / "data" / "val"), COUNTS, size=(40, 56))
    ckpt = str(tmp_path / "net.ckpt")
    net = make_checkpoint(ckpt, arch, NUM_CLASSES, seed=SEEDS[model_dir], fc_scale=3.0)
    want1, want5 = torchvision_counts(net, samples)
    assert want1 < want5, "top-1 and top-5 counts must differ for the check to mean something"
    image = np.random.default_rng(0).normal(size=(4, 3, SIZE, SIZE)).astype(np.float32)
    logits = net(ms.Tensor(image)).asnumpy()
    assert float(np.abs(logits - logits.mean(axis=0)).max()) > 1e-3, "outputs must depend on the input"
    del net
    common = ["--data_dir", str(tmp_path / "data"), "--device_target", "CPU", "--batch_size", "4"]
    from_ckpt = counts(run_cli([f"{model_dir}/eval.py", "--checkpoint_path", ckpt, "--image_size", str(SIZE),
                                "--eval_preset", "torchvision_v1", *common]))
    assert from_ckpt == (want1, want5, len(samples))

    export = [f"{model_dir}/export.py", "--checkpoint_path", ckpt, "--device_target", "CPU", "--height", str(SIZE),
              "--width", str(SIZE), "--eval_preset", "torchvision_v1"]
    for fmt, batch in (("MINDIR", ["--dynamic_batch", "true"]), ("ONNX", ["--batch_size", "4"])):
        result = run_cli([*export, "--file_format", fmt, "--file_name", str(tmp_path / "out" / "model"), *batch])
        assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "model.preprocess.json").read_text())
    assert (record["eval_preset"], record["resize"], record["crop"], record["input_size"]) == (
        "torchvision_v1", 37, SIZE, [SIZE, SIZE])
    graph = ms.nn.GraphCell(ms.load(str(tmp_path / "out" / "model.mindir")))
    assert_close(graph(ms.Tensor(image[:3])).asnumpy(), logits[:3])  # a batch other than the traced one
    del graph
    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"] and session.get_inputs()[0].shape == [4, 3, SIZE, SIZE]
    assert_close(session.run(None, {"image": image})[0], logits)
    del session
    for name in ("model.mindir", "model.onnx"):
        result = run_cli([f"{model_dir}/eval.py", "--model_file", str(tmp_path / "out" / name), *common])
        assert counts(result) == from_ckpt, name
        assert "preset torchvision_v1 (recorded in" in result.stdout, result.stdout
        saved = json.loads((tmp_path / "out" / "eval_model.json").read_text())
        assert (saved["top1_correct"], saved["top5_correct"], saved["total"]) == from_ckpt
        assert saved["model_file"] == str(tmp_path / "out" / name)
        os.remove(tmp_path / "out" / name)  # ResNeXt-152 files are large: do not keep them in /tmp


def test_model_file_mistakes_are_one_line(tmp_path):
    write_image_folder(str(tmp_path / "data" / "val"), (1, 1))
    common = ["--data_dir", str(tmp_path / "data"), "--device_target", "CPU"]
    for path, words in ((tmp_path / "missing.onnx", "does not exist"), (tmp_path / "model.pb", "neither .mindir"),
                        (tmp_path / "bad.mindir", "not a readable MINDIR")):
        if path.name == "bad.mindir":
            path.write_bytes(b"\x00not a model")
        result = run_cli(["resnext50_32x4d/eval.py", "--model_file", str(path), *common])
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert words in lines[0]


def test_onnx_without_onnxruntime_is_one_line(tmp_path):
    """A python where `import onnxruntime` fails (a stand-in package that raises ImportError) gets the install hint."""
    write_image_folder(str(tmp_path / "data" / "val"), (1, 1))
    stub = tmp_path / "stub" / "onnxruntime"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('no onnxruntime here')\n")
    (tmp_path / "model.onnx").write_bytes(b"unused")
    result = run_cli(["resnext50_32x4d/eval.py", "--model_file", str(tmp_path / "model.onnx"), "--data_dir",
                      str(tmp_path / "data"), "--device_target", "CPU"],
                     env={"PYTHONPATH": os.pathsep.join([str(tmp_path / "stub"), os.environ.get("PYTHONPATH", "")])})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "needs onnxruntime" in lines[0] and "pip install onnxruntime" in lines[0]
