"""Eval presets against torchvision's Resize/CenterCrop/ToTensor/Normalize on real photographs, and the preset's
journey: recorded by the converter, picked up by eval.py and predict.py.

Tolerances (normalised units; one grey level is 1 / (255 * 0.229) = 0.017):
  pil backend, every preset: 1e-5 (PIL decodes and resizes exactly as torchvision does; float rounding only)
  mindspore backend: mean below 0.30 and max below 3.6 on every photo (measured: mean 0.014-0.270, max 3.07-3.52,
  benchmarks/RESULTS.md "Eval presets"), and a mean above 0.01 on the landscape photos: MindSpore's resize does not
  antialias, so this path is documented as not matching.
"""
import os

import numpy as np
import pytest
from conftest import run_cli
from easydict import EasyDict

PHOTOS = ("astronaut", "coffee", "chelsea", "china", "flower")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_image

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in PHOTOS:
        pixels = getattr(data, name)() if name in ("astronaut", "coffee", "chelsea") else load_sample_image(
            f"{name}.jpg")
        path = str(folder / f"{name}.jpg")
        Image.fromarray(pixels).save(path, quality=92)
        paths.append(path)
    return paths


def torchvision_eval(path: str, resize: int, crop: int, bicubic: bool) -> np.ndarray:
    from PIL import Image
    from torchvision import transforms as T

    inter = T.InterpolationMode.BICUBIC if bicubic else T.InterpolationMode.BILINEAR
    tf = T.Compose([T.Resize(resize, interpolation=inter), T.CenterCrop(crop), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    with Image.open(path) as image:
        return tf(image.convert("RGB")).numpy()


# the published eval transforms, written out here rather than taken from the code under test
PUBLISHED = {"torchvision_v1": (256, 224, False), "torchvision_v2": (232, 224, False), "timm": (256, 224, True),
             "zoo": (256, 224, False)}


def dataset_output(path: str, preset) -> np.ndarray:
    """What the eval dataset computes: the preset's ops run through a MindSpore dataset map over the file bytes."""
    import mindspore.dataset as ds

    from common.data.presets import eval_ops

    source = [(np.fromfile(path, dtype=np.uint8), np.int32(0))]
    dataset = ds.GeneratorDataset(source, ["image", "label"], shuffle=False).map(eval_ops(preset), "image")
    return next(dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))[0]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_pil_path_matches_torchvision(name, photos):
    from common.data.presets import resolve_preset

    preset = resolve_preset(name, backend="pil")
    resize, crop, bicubic = PUBLISHED[name]
    assert (preset.resize, preset.crop, preset.interpolation == "bicubic") == (resize, crop, bicubic)
    for path in photos:
        want = torchvision_eval(path, resize, crop, bicubic)
        got = dataset_output(path, preset)
        assert got.shape == want.shape == (3, crop, crop)
        assert float(np.abs(got - want).max()) <= 1e-5, (name, os.path.basename(path))


@pytest.mark.parametrize("name", ["zoo", "torchvision_v2", "timm"])
def test_mindspore_path_differs_within_the_measured_bound(name, photos):
    from common.data.presets import resolve_preset

    preset = resolve_preset(name, backend="mindspore")
    resize, crop, bicubic = PUBLISHED[name]
    for path in photos:
        diff = np.abs(dataset_output(path, preset) - torchvision_eval(path, resize, crop, bicubic))
        assert float(diff.mean()) < 0.30 and float(diff.max()) < 3.6, (name, path, diff.mean(), diff.max())
        if os.path.basename(path) in ("china.jpg", "flower.jpg"):
            assert float(diff.mean()) > 0.01


def test_presets_default_backends_and_scaling():
    from common.data.presets import resolve_preset

    assert resolve_preset("torchvision_v1").backend == "pil"
    assert resolve_preset("timm").backend == "pil"
    assert resolve_preset("zoo").backend == "mindspore"
    # at a 32 px crop the resize scales with it: 256 * 32 / 224 = 36.6 -> 37; timm: floor(32 / 0.875) = 36
    assert (resolve_preset("torchvision_v1", 32).resize, resolve_preset("torchvision_v2", 32).resize) == (37, 33)
    assert resolve_preset("timm", 32).resize == 36


def test_predict_preprocess_follows_the_preset(photos):
    from common.inference.predict import preprocess

    cfg = EasyDict(image_size=224, crop_pct=0.875, interpolation="bilinear", eval_preset="torchvision_v2")
    want = torchvision_eval(photos[3], 232, 224, False)
    assert float(np.abs(preprocess(photos[3], cfg) - want).max()) <= 1e-5
    from PIL import Image

    with Image.open(photos[3]) as image:  # a PIL image from a notebook takes the same path
        assert float(np.abs(preprocess(image, cfg) - want).max()) <= 1e-5


def test_converter_records_preset_and_eval_and_predict_use_it(photos, tmp_path):
    import json

    import torch
    from inference_helpers import write_image_folder
    from torch_refs import build_reference

    src = tmp_path / "resnext50_32x4d-1a0047aa.pth"  # torchvision's IMAGENET1K_V2 file name
    torch.save(build_reference("resnext50_32x4d", num_classes=10).state_dict(), src)
    out = tmp_path / "r50.ckpt"
    result = run_cli(["scripts/convert_weights.py", "--arch", "resnext50_32x4d", "--src", str(src), "--out",
                      str(out)])
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "r50.preprocess.json").read_text())
    assert (record["eval_preset"], record["resize"], record["crop"], record["interpolation"]) == (
        "torchvision_v2", 232, 224, "bilinear")
    assert record["mean"] == [0.485, 0.456, 0.406] and record["std"] == [0.229, 0.224, 0.225]

    write_image_folder(str(tmp_path / "data" / "val"), (2, 1))
    result = run_cli(["resnext50_32x4d/eval.py", "--checkpoint_path", str(out), "--data_dir", str(tmp_path / "data"),
                      "--device_target", "CPU", "--image_size", "32", "--batch_size", "2"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "preset torchvision_v2 (recorded in" in result.stdout and "resize 33, crop 32" in result.stdout
    result = run_cli(["resnext50_32x4d/predict.py", "--checkpoint_path", str(out), "--image", photos[0],
                      "--device_target", "CPU", "--image_size", "32", "--output", "json"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "preset torchvision_v2 (recorded in" in result.stderr
    assert len(json.loads(result.stdout)[0]["predictions"]) == 5


def test_bad_record_is_one_line(tmp_path):
    from inference_helpers import make_checkpoint

    ckpt = str(tmp_path / "net.ckpt")
    make_checkpoint(ckpt, "resnext50_32x4d", 4)
    (tmp_path / "net.preprocess.json").write_text('{"eval_preset": "opencv"}')
    result = run_cli(["resnext50_32x4d/predict.py", "--checkpoint_path", ckpt, "--image", ckpt,
                      "--device_target", "CPU"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "no known eval_preset" in lines[0], result.stderr
