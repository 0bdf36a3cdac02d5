"""Checkpoints and images for the eval / export / predict tests (tiny class counts, known weights)."""
import os

import numpy as np


def randomise_eval_state(net, seed: int = 0, fc_scale: float = 1.0) -> None:
    """Give every BN non-trivial moving statistics and affine terms, and the head weights of scale `fc_scale`.

    A graph exported (or a batch evaluated) with BN in training mode then gives other outputs than eval mode.
    """
    from mindspore import Tensor

    rng = np.random.default_rng(seed)
    for param in net.get_parameters():
        shape, name = param.shape, param.name
        if name.endswith("moving_mean"):
            value = rng.normal(0.0, 0.1, shape)
        elif name.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("gamma"):
            value = rng.uniform(0.5, 1.0, shape)
        elif name.endswith("beta"):
            value = rng.normal(0.0, 0.1, shape)
        elif name.startswith("fc."):
            value = rng.normal(0.0, fc_scale, shape)
        else:
            continue
        param.set_data(Tensor(value.astype(np.float32)))


def make_checkpoint(path: str, arch: str, num_classes: int, seed: int = 0, fc_scale: float = 1.0):
    """Save a randomised `arch` checkpoint at `path`; returns the network (eval mode). The same for a seed whatever
    ran before in the process (the convolutions' initial weights come from MindSpore's global seed)."""
    import mindspore as ms

    from common import create_model

    ms.set_seed(seed)
    net = create_model(arch, num_classes=num_classes)
    randomise_eval_state(net, seed, fc_scale)
    ms.save_checkpoint(net, path)
    net.set_train(False)
    return net


def write_image_folder(root: str, counts, size=(40, 48), seed: int = 0) -> list:
    """root/c<i>/<j>.jpg random JPEGs, counts[i] per class; returns the (path, label) list in folder order."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    samples = []
    for label, count in enumerate(counts):
        folder = os.path.join(root, f"c{label}")
        os.makedirs(folder, exist_ok=True)
        for j in range(count):
            path = os.path.join(folder, f"{j}.jpg")
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, quality=95)
            samples.append((path, label))
    return samples


def write_sample_jpeg(path: str, name: str = "china.jpg") -> str:
    """A real photograph shipped with scikit-learn (china.jpg 427x640, flower.jpg), saved as a JPEG file."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    Image.fromarray(load_sample_image(name)).save(path, quality=90)
    return path


def torchvision_eval_input(path: str, size: int, crop_pct: float = 0.875, interpolation: str = "bilinear",
                           antialias: bool = False):
    """The independent reference of eval/predict preprocessing: torchvision's ToTensor, Resize(round(size /
    crop_pct)), CenterCrop(size), Normalize(ImageNet) of the image file; CHW float32. antialias=False is the resize
    MindSpore's vision.Resize does; True is torchvision's usual path on PIL images."""
    from PIL import Image
    from torchvision import transforms as T

    mode = T.InterpolationMode.BICUBIC if interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    with Image.open(path) as image:
        tensor = T.ToTensor()(image.convert("RGB"))
    resized = T.Resize(int(round(size / crop_pct)), interpolation=mode, antialias=antialias)(tensor)
    return T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(T.CenterCrop(size)(resized)).numpy()


def require_mindcv() -> None:
    """Fail (not skip) without mindcv: the MindCV comparisons are the point of their tests."""
    import importlib.util

    import pytest

    if importlib.util.find_spec("mindcv") is None:
        pytest.fail("mindcv is not installed: pip install --no-deps -r requirements-test-nodeps.txt "
                    "(scripts/run_tests.sh does)")


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    """Within 1e-4 relative to the largest output, or absolute where the outputs stay below 1."""
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    assert float(np.abs(got - want).max()) <= 1e-4 * scale, (got, want)


def normalised_by_hand(images) -> np.ndarray:
    """uint8 NHWC -> float64 NCHW as torchvision's ToTensor + Normalize(ImageNet mean, std) computes it."""
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((np.asarray(images, np.float64) / 255 - mean) / std).transpose(0, 3, 1, 2)
