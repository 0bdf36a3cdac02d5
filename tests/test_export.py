"""export.py: the exported graph computes what the network computes (MINDIR loaded back with GraphCell, ONNX run with
onnxruntime: ResNeXt-152's folder here, the other two in tests/test_deploy.py with their eval.py round trip); the
softmax head, features-only graphs; AIR off Ascend and unknown formats are refused with one line."""
import os

import numpy as np
import pytest
from conftest import run_cli
from inference_helpers import assert_close, make_checkpoint

# ResNeXt-50 and ResNeSt-50 export both formats in tests/test_deploy.py. ResNeXt-152 exports MINDIR only: its ONNX
# is the same export code as ResNeXt-50's, deeper (and 460 MB to trace and write for a 20 s case).
MODEL_DIRS = ("resnext152_64x4d",)
FORMATS = {"resnext152_64x4d": ("MINDIR",)}
NUM_CLASSES, BATCH, SIZE = 5, 2, 32


def export_cli(model_dir, ckpt, fmt, name, *extra):
    return run_cli([f"{model_dir}/export.py", "--checkpoint_path", ckpt, "--file_format", fmt, "--file_name", name,
                    "--device_target", "CPU", "--batch_size", str(BATCH), "--height", str(SIZE), "--width",
                    str(SIZE), *extra])


@pytest.mark.parametrize("model_dir", MODEL_DIRS)
def test_export_mindir_and_onnx_match_network(model_dir, tmp_path):
    import mindspore as ms
    import onnxruntime as ort
    import yaml

    with open(os.path.join(model_dir, "default_config.yaml"), encoding="utf-8") as fh:
        arch = yaml.safe_load(fh)["arch"]
    ckpt = str(tmp_path / "net.ckpt")
    net = make_checkpoint(ckpt, arch, NUM_CLASSES, seed=3)
    image = np.random.default_rng(0).normal(size=(BATCH, 3, SIZE, SIZE)).astype(np.float32)
    want = net(ms.Tensor(image)).asnumpy()
    assert float(np.abs(want - want.mean(axis=0)).max()) > 1e-3, "outputs must depend on the input"
    del net

    formats = FORMATS.get(model_dir, ("MINDIR", "ONNX"))
    for fmt in formats:
        result = export_cli(model_dir, ckpt, fmt, str(tmp_path / "out" / "model"))
        assert result.returncode == 0, result.stderr[-3000:]
    os.remove(ckpt)

    graph = ms.nn.GraphCell(ms.load(str(tmp_path / "out" / "model.mindir")))
    assert_close(graph(ms.Tensor(image)).asnumpy(), want)
    del graph
    os.remove(tmp_path / "out" / "model.mindir")  # hundreds of MB for ResNeXt-152: do not keep it in /tmp
    if "ONNX" not in formats:
        return
    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert session.get_inputs()[0].shape == [BATCH, 3, SIZE, SIZE]
    assert_close(session.run(None, {"image": image})[0], want)
    del session
    os.remove(tmp_path / "out" / "model.onnx")


def test_export_softmax_outputs_probabilities(tmp_path):
    import mindspore as ms
    import onnxruntime as ort

    ckpt = str(tmp_path / "net.ckpt")
    net = make_checkpoint(ckpt, "resnext50_32x4d", NUM_CLASSES, seed=4)
    image = np.random.default_rng(1).normal(size=(BATCH, 3, SIZE, SIZE)).astype(np.float32)
    logits = net(ms.Tensor(image)).asnumpy().astype(np.float64)
    want = np.exp(logits - logits.max(axis=1, keepdims=True))
    want /= want.sum(axis=1, keepdims=True)
    result = export_cli("resnext50_32x4d", ckpt, "onnx", str(tmp_path / "probs.onnx"), "--softmax", "true")
    assert result.returncode == 0, result.stderr[-3000:]
    got = ort.InferenceSession(str(tmp_path / "probs.onnx")).run(None, {"image": image})[0]
    assert_close(got, want)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("fmt,flag", [("ONNX", ["--batch_size", "-1"]), ("MINDIR", ["--dynamic_batch", "true"])])
def test_dynamic_batch_file_serves_batches_1_3_8(fmt, flag, tmp_path):
    """One file, three batch sizes, each equal to the network's output; ONNX declares a symbolic batch axis."""
    import json

    import mindspore as ms

    ckpt = str(tmp_path / "net.ckpt")
    net = make_checkpoint(ckpt, "resnext50_32x4d", NUM_CLASSES, seed=6)
    result = run_cli(["resnext50_32x4d/export.py", "--checkpoint_path", ckpt, "--file_format", fmt, "--file_name",
                      str(tmp_path / "dyn"), "--device_target", "CPU", "--height", str(SIZE), "--width", str(SIZE),
                      *flag])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dynamic batch" in result.stdout
    record = json.loads((tmp_path / "dyn.preprocess.json").read_text())
    assert (record["eval_preset"], record["crop"], record["input_name"]) == ("zoo", SIZE, "image")
    if fmt == "ONNX":
        import onnxruntime as ort

        session = ort.InferenceSession(str(tmp_path / "dyn.onnx"), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].shape == ["batch", 3, SIZE, SIZE]
        assert session.get_outputs()[0].shape == ["batch", NUM_CLASSES]

        def run(x):
            return session.run(None, {"image": x})[0]
    else:
        graph = ms.nn.GraphCell(ms.load(str(tmp_path / "dyn.mindir")))

        def run(x):
            return graph(ms.Tensor(x)).asnumpy()
    rng = np.random.default_rng(2)
    for batch in (1, 3, 8):
        image = rng.normal(size=(batch, 3, SIZE, SIZE)).astype(np.float32)
        assert_close(run(image), net(ms.Tensor(image)).asnumpy())


def test_batch_size_zero_is_refused_with_one_line(small_ckpt, tmp_path):
    result = run_cli(["resnext50_32x4d/export.py", "--checkpoint_path", small_ckpt, "--file_name",
                      str(tmp_path / "m"), "--device_target", "CPU", "--batch_size", "0"])
    assert result.returncode == 2
    assert "> 0 or -1" in _one_error_line(result)
    assert not os.listdir(tmp_path)


def _one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export") / "net.ckpt")
    make_checkpoint(path, "resnext50_32x4d", NUM_CLASSES)
    return path


def test_air_off_ascend_is_refused_with_one_line(small_ckpt, tmp_path):
    line = _one_error_line(export_cli("resnext50_32x4d", small_ckpt, "AIR", str(tmp_path / "model")))
    assert "AIR needs Ascend" in line and "MINDIR" in line
    assert not os.listdir(tmp_path)


def test_unknown_format_is_refused_with_one_line(small_ckpt, tmp_path):
    line = _one_error_line(export_cli("resnext50_32x4d", small_ckpt, "TFLITE", str(tmp_path / "model")))
    assert "TFLITE" in line and "MINDIR" in line and "ONNX" in line
    assert not os.listdir(tmp_path)


def test_wrong_num_classes_is_refused_with_one_line(small_ckpt, tmp_path):
    result = export_cli("resnext50_32x4d", small_ckpt, "MINDIR", str(tmp_path / "model"), "--num_classes", "7")
    assert "num_classes" in _one_error_line(result)
    assert not os.listdir(tmp_path)
