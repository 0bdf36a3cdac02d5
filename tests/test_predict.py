"""predict.py and common.predict on real JPEGs: known-weight checkpoints give the expected class and probability,
class names come from the shipped ImageNet list or class_names.json, text/csv/json outputs agree with the API."""
import csv
import io
import json
import math
import os
import re

import numpy as np
import pytest
from conftest import run_cli
from inference_helpers import make_checkpoint, torchvision_eval_input, write_sample_jpeg

ARCH, SIZE = "resnext50_32x4d", 64
FRUITS = ["apple", "banana", "cherry", "date"]
LINE = re.compile(r"^(.+) \((\d+\.\d\d)%\)$")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    os.makedirs(folder / "sub")
    return [write_sample_jpeg(str(folder / "china.jpg"), "china.jpg"),
            write_sample_jpeg(str(folder / "sub" / "flower.jpg"), "flower.jpg")]


@pytest.fixture(scope="module")
def fruit_run(tmp_path_factory):
    """A 4-class random checkpoint with its class_names.json beside it, as training writes it."""
    run = tmp_path_factory.mktemp("run")
    ckpt = str(run / "net-1_10.ckpt")
    net = make_checkpoint(ckpt, ARCH, len(FRUITS), seed=2, fc_scale=2.0)
    with open(run / "class_names.json", "w", encoding="utf-8") as fh:
        json.dump(FRUITS, fh)
    return ckpt, net


def predict_cli(ckpt, image, *extra):
    return run_cli([f"{ARCH}/predict.py", "--checkpoint_path", ckpt, "--image", image, "--device_target", "CPU",
                    "--image_size", str(SIZE), *extra])


def test_imagenet_names_ship_in_torchvision_order():
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    from common.inference.class_names import IMAGENET_CLASSES, read_names_file

    names = read_names_file(IMAGENET_CLASSES)
    assert len(names) == 1000 and names[0] == "tench, Tinca tinca"
    # torchvision keeps the first lemma (two made unique by a suffix): it must open our name, in the same order
    same = sum(tv.split(" ")[0].lower() in ours.lower() for ours, tv in zip(names, _IMAGENET_CATEGORIES))
    assert same == 1000


def test_imagenet_checkpoint_with_dominant_bias_predicts_tench(photos, tmp_path):
    """fc weight 0 and bias 6 on class 0: p(tench) = e^6 / (e^6 + 999) whatever the image."""
    import mindspore as ms

    from common import create_model

    net = create_model(ARCH, num_classes=1000)
    net.fc.weight.set_data(ms.Tensor(np.zeros(net.fc.weight.shape, np.float32)))
    bias = np.zeros(1000, np.float32)
    bias[0] = 6.0
    net.fc.bias.set_data(ms.Tensor(bias))
    ckpt = str(tmp_path / "imagenet.ckpt")
    ms.save_checkpoint(net, ckpt)
    result = predict_cli(ckpt, photos[0], "--top", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    p_top, p_rest = math.exp(6) / (math.exp(6) + 999), 1 / (math.exp(6) + 999)
    assert result.stdout.splitlines() == [f"tench, Tinca tinca ({100 * p_top:.2f}%)",
                                          f"goldfish, Carassius auratus ({100 * p_rest:.2f}%)",
                                          "great white shark, white shark, man-eater, man-eating shark, "
                                          f"Carcharodon carcharias ({100 * p_rest:.2f}%)"]


def test_text_output_uses_class_names_json_and_sums_to_one(fruit_run, photos):
    ckpt, _ = fruit_run
    result = predict_cli(ckpt, photos[0], "--top", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    matches = [LINE.match(line) for line in result.stdout.splitlines()]
    assert len(matches) == 4 and all(matches), result.stdout
    assert sorted(m.group(1) for m in matches) == FRUITS
    percents = [float(m.group(2)) for m in matches]
    assert percents == sorted(percents, reverse=True)
    assert sum(percents) == pytest.approx(100.0, abs=0.03)


def test_folder_json_and_csv_agree_with_notebook_api(fruit_run, photos):
    from common import predict

    ckpt, net = fruit_run
    folder = os.path.dirname(photos[0])
    result = predict_cli(ckpt, folder, "--top", "2", "--output", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    entries = json.loads(result.stdout)
    assert [e["image"] for e in entries] == sorted(photos)
    for entry in entries:
        api = predict(net, entry["image"], top=2, labels=FRUITS, image_size=SIZE)
        preds = entry["predictions"]
        assert [p["class"] for p in preds] == api["classes"] and [p["label"] for p in preds] == api["labels"]
        np.testing.assert_allclose([p["probability"] for p in preds], api["scores"], atol=1e-4)
        assert [FRUITS[i] for i in api["labels"]] == api["classes"]

    result = predict_cli(ckpt, folder, "--top", "2", "--output", "csv")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["image", "rank", "class", "label", "probability"] and len(rows) == 1 + 2 * len(photos)
    assert [(r[0], r[2]) for r in rows[1:]] == [(e["image"], p["class"]) for e in entries for p in e["predictions"]]


def test_notebook_api_accepts_path_pil_and_array(fruit_run, photos):
    from PIL import Image

    from common import predict

    _, net = fruit_run
    by_path = predict(net, photos[1], top=4, image_size=SIZE)
    assert by_path["classes"] == [f"class_{i}" for i in by_path["labels"]]
    assert sum(by_path["scores"]) == pytest.approx(1.0, abs=1e-6)
    with Image.open(photos[1]) as img:
        by_pil = predict(net, img, top=4, image_size=SIZE)
        by_array = predict(net, np.asarray(img.convert("RGB")), top=4, image_size=SIZE)
    want = dict(zip(by_path["labels"], by_path["scores"]))
    for other in (by_pil, by_array):  # PIL's and MindSpore's JPEG decoders may differ by a grey level
        assert other["labels"][0] == by_path["labels"][0]
        got = dict(zip(other["labels"], other["scores"]))
        assert sorted(got) == sorted(want) == [0, 1, 2, 3]
        for label in want:  # label by label, not as sorted lists
            assert got[label] == pytest.approx(want[label], abs=2e-2), label


# |log(score) - log(reference)| allowed: the inputs differ by ~0.004 on average (tests/test_preprocess_reference.py),
# which moved the log-probabilities by up to 0.012 (measured on both photographs)
LOG_SCORE_TOLERANCE = 0.05


def test_scores_are_the_networks_probabilities_label_by_label(fruit_run, photos):
    """Every class's score against an independent reference: the network on torchvision's preprocessing of the
    photograph and a softmax written out here."""
    import mindspore as ms

    from common import predict

    _, net = fruit_run
    for photo in photos:
        got = predict(net, photo, top=len(FRUITS), labels=FRUITS, image_size=SIZE)
        net.set_train(False)
        logits = net(ms.Tensor(torchvision_eval_input(photo, SIZE)[None])).asnumpy()[0].astype(np.float64)
        want = np.exp(logits) / np.exp(logits).sum()
        # compared as log-probabilities: this network's scores span 40 orders of magnitude
        log_want = np.log(want)
        assert np.diff(np.sort(log_want)).min() > 4 * LOG_SCORE_TOLERANCE  # a label given another's score shows
        assert sorted(got["labels"]) == list(range(len(FRUITS)))
        for label, name, score in zip(got["labels"], got["classes"], got["scores"]):
            assert name == FRUITS[label]
            assert math.log(score) == pytest.approx(log_want[label], abs=LOG_SCORE_TOLERANCE), (photo, label)


def test_non_image_and_wrong_labels_are_one_line_errors(fruit_run, photos, tmp_path):
    ckpt, _ = fruit_run
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a picture")
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    for result, needle in ((predict_cli(ckpt, str(not_image)), "notes.jpg"),
                           (predict_cli(ckpt, photos[0], "--labels", str(labels)), "labels.txt")):
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
