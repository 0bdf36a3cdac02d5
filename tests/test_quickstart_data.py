"""scripts/make_digits.py builds a valid ImageFolder split of real JPEGs from scikit-learn's digits."""
import os

import numpy as np
from conftest import run_cli


def build(tmp_path, name="digits", **kw):
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
    import make_digits

    out = str(tmp_path / name)
    return out, make_digits.build(out, **kw)


def test_split_is_stratified_disjoint_complete_and_decodable(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    from common.data.folder import image_problem, scan_image_folder

    out, counts = build(tmp_path, size=32, val_fraction=0.2, seed=0)
    train, train_classes = scan_image_folder(os.path.join(out, "train"))
    val, val_classes = scan_image_folder(os.path.join(out, "val"))
    assert train_classes == val_classes == [str(d) for d in range(10)]
    assert counts == {"train": len(train), "val": len(val)} and len(train) + len(val) == 1797
    names = lambda samples: {os.path.basename(p) for p, _ in samples}  # noqa: E731 - file name = source index
    assert not names(train) & names(val)
    for label in range(10):
        n_train = sum(1 for _, y in train if y == label)
        n_val = sum(1 for _, y in val if y == label)
        assert abs(n_val - 0.2 * (n_train + n_val)) <= 0.5  # each class split 80/20
    digits = load_digits()
    for path, label in train[::150] + val[::60]:
        with open(path, "rb") as fh:
            assert image_problem(fh.read()) is None
        image = Image.open(path)
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (32, 32)
        index = int(os.path.splitext(os.path.basename(path))[0])
        assert digits.target[index] == label
        # the picture is the digit: its 8x8 block means follow the source image (JPEG and resize blur it a little)
        small = np.asarray(image.convert("L"), dtype=np.float64).reshape(8, 4, 8, 4).mean(axis=(1, 3))
        assert np.corrcoef(small.ravel(), digits.images[index].ravel())[0, 1] > 0.9


def test_same_seed_same_split_other_seed_other_split(tmp_path):
    from common.data.folder import scan_image_folder

    a, _ = build(tmp_path, "a", seed=3)
    b, _ = build(tmp_path, "b", seed=3)
    c, _ = build(tmp_path, "c", seed=4)
    val = lambda root: [os.path.relpath(p, root) for p, _ in scan_image_folder(os.path.join(root, "val"))[0]]  # noqa
    assert val(a) == val(b) and val(a) != val(c)


def test_command_line(tmp_path):
    result = run_cli([os.path.join("scripts", "make_digits.py"), str(tmp_path / "d"), "--size", "16"])
    assert result.returncode == 0 and "train / " in result.stdout
    assert len(os.listdir(tmp_path / "d" / "train")) == 10
    bad = run_cli([os.path.join("scripts", "make_digits.py"), str(tmp_path / "e"), "--val_fraction", "1.5"])
    assert bad.returncode == 2 and "--val_fraction" in bad.stderr and "Traceback" not in bad.stderr
