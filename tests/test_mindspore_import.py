"""MindCV and ModelZoo MindSpore checkpoints imported here give their source network's logits.

MindCV: its own networks (mindcv==0.3.0, requirements-test-nodeps.txt) with random weights and random BN statistics,
saved with mindspore.save_checkpoint, imported, and compared with MindCV's own forward. ModelZoo: checkpoints written
in its documented key names (per-group convs, prefixes, bias-free attention convs, training state, float16), compared
with this zoo's network whose pools are replaced by plain MindSpore cells stating the ModelZoo's pooling (pad_mode
"same" for its ResNeXt, nn.Pad + "valid" pools for its ResNeSt50), independent of common.models.layers.
"""
import os

import numpy as np
import pytest
from conftest import ROOT, run_cli
from inference_helpers import randomise_eval_state, require_mindcv

CLASSES = 10
RTOL = 1e-4  # max |ours - theirs| / max |theirs|


def _rel(ours, theirs) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def _batch(size: int, seed: int = 1):
    import mindspore as ms

    return ms.Tensor(np.random.default_rng(seed).normal(size=(2, 3, size, size)).astype(np.float32))


def _zoo_net(path: str, arch: str, padding=None):
    """This zoo's network as eval/predict/export build it from `path` (conversion and padding from the file)."""
    from common.models import create_model
    from common.models.registry import padding_of, with_padding
    from common.weights.checkpoint import load_checkpoint_strict, read_checkpoint
    from common.weights.mindspore_import import import_if_foreign

    params, note = import_if_foreign(read_checkpoint(path), arch, path)
    padding = padding or padding_of(params)
    net = create_model(arch, num_classes=CLASSES, pool_padding=padding, init_weights=False)
    load_checkpoint_strict(net, path, with_padding(params, padding))
    net.set_train(False)
    return net, note


@pytest.fixture(scope="module")
def mindcv_nets(tmp_path_factory):
    """arch -> (MindCV network in eval mode, its checkpoint path), built on first use."""
    require_mindcv()
    import mindspore as ms
    from mindcv.models import create_model as mindcv_model

    folder = tmp_path_factory.mktemp("mindcv")
    cache = {}

    def get(arch):
        if arch not in cache:
            net = mindcv_model(arch, num_classes=CLASSES)
            randomise_eval_state(net, seed=3)  # BN statistics and affine terms; conv/dense keep MindCV's init
            for param in net.get_parameters():  # MindCV's head is `classifier` (ResNeXt): give it random weights too
                if param.name.startswith("classifier."):
                    param.set_data(ms.Tensor(np.random.default_rng(4).normal(0, 0.05, param.shape).astype(np.float32)))
            net.set_train(False)
            path = str(folder / f"{arch}.ckpt")
            ms.save_checkpoint(net, path)
            cache[arch] = (net, path)
        return cache[arch]

    return get


# 224 and an odd size for ResNeXt-50 and ResNeSt-50; ResNeXt-152 at 64 (224 takes minutes on CPU; the odd-size
# pooling is ResNeXt-50's, same code). MindCV's own ResNeSt fails at odd sizes whose stage inputs are odd (its avd
# pool gives ceil(h/2), its avg-down floor(h/2)): 223 and 61 are odd sizes it runs at (only the stem sees them).
CASES = [("resnext50_32x4d", 224), ("resnext50_32x4d", 65), ("resnext152_64x4d", 64),
         ("resnest50", 224), ("resnest50", 223), ("resnest50", 61)]


@pytest.mark.parametrize("arch,size", CASES)
def test_mindcv_checkpoint_gives_mindcv_logits(mindcv_nets, arch, size, tmp_path):
    import mindspore as ms

    from common.weights.checkpoint import read_checkpoint
    from common.weights.mindspore_import import convert_mindspore

    theirs_net, path = mindcv_nets(arch)
    x = _batch(size)
    theirs = theirs_net(x).asnumpy()
    if arch == "resnest50":  # this zoo's names already: only --from mindcv says where it comes from
        params, _, _ = convert_mindspore(arch, read_checkpoint(path), "mindcv")
        path = str(tmp_path / "converted.ckpt")
        ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in params.items()], path)
    net, note = _zoo_net(path, arch)
    assert (note is None) == (arch == "resnest50")
    ours = net(x).asnumpy()
    assert _rel(ours, theirs) < RTOL
    if size % 2 == 0 and arch != "resnext152_64x4d":
        # the switch is worth something: symmetric padding gives other logits at even sizes (ResNeXt-152's pools are
        # ResNeXt-50's, checked at 224)
        sym, _ = _zoo_net(path, arch, padding="symmetric")
        assert _rel(sym(x).asnumpy(), theirs) > 1e-3


def _modelzoo_layout(params: dict, arch: str) -> dict:
    """This zoo's entries renamed to the ModelZoo's documented keys, with the training state and float16 of a real
    Ascend training checkpoint. ResNeXt-152: `network.backbone.`/`network.head.` and 64 per-group convs; ResNeSt-50:
    per-group split-attention convs and bias-free fc1/fc2."""
    out = {}
    for name, value in params.items():
        if arch == "resnext152_64x4d":
            key = {"conv1.weight": "backbone.conv.weight"}.get(name, name)
            key = key.replace("bn1.", "backbone.bn.", 1) if key.startswith("bn1.") else key
            key = key.replace(".downsample.0.", ".down_sample.conv.").replace(".downsample.1.", ".down_sample.bn.")
            key = "head." + key if key.startswith("fc.") else key
            key = "network." + ("backbone." + key if key.startswith("layer") else key)
            if key.endswith(".conv2.weight"):
                for g, part in enumerate(np.split(value, 64, axis=0)):
                    out[key.replace(".conv2.weight", f".conv2.convs.{g}.weight")] = part
                continue
        else:
            key = name
            if key.endswith(".conv2.conv.weight"):
                for g, part in enumerate(np.split(value, 2, axis=0)):
                    out[key.replace(".conv.weight", f".conv.convs.{g}.weight")] = part
                continue
            if key.endswith((".fc1.bias", ".fc2.bias")):
                assert not value.any()  # the test zeroed them: the ModelZoo's attention convs have no bias
                continue
            if key.endswith((".fc1.weight", ".fc2.weight")):
                key = key.replace(".weight", ".convs.0.weight")
        out[key] = value
    out["network.head.fc.bias" if arch == "resnext152_64x4d" else "fc.bias"] = params["fc.bias"].astype(np.float16)
    first = next(iter(out))
    out.update({f"moments.{first}": np.zeros_like(out[first]), "learning_rate": np.float32([0.1]),
                "global_step": np.int32([10]), "scale_sense": np.float32([1024.0])})
    return out


@pytest.mark.parametrize("arch,sizes", [("resnext152_64x4d", (64,)), ("resnest50", (64, 223))])
def test_modelzoo_checkpoint_gives_the_logits_of_their_pooling(tmp_path, arch, sizes):
    import mindspore as ms
    from mindspore import nn

    from common.models import create_model

    ref = create_model(arch, num_classes=CLASSES)
    randomise_eval_state(ref, seed=5, fc_scale=0.05)
    params = {}
    for p in ref.get_parameters():
        value = p.asnumpy()
        if p.name == "fc.bias" or p.name.endswith((".fc1.bias", ".fc2.bias")):
            value = np.zeros_like(value) if ".fc" in p.name else value.astype(np.float16).astype(np.float32)
            p.set_data(ms.Tensor(value))
        params[p.name] = value
    path = str(tmp_path / "modelzoo.ckpt")
    ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in _modelzoo_layout(params, arch).items()], path)
    if arch.startswith("resnext"):
        # their ResNeXt's pooling, stated with MindSpore's own pad_mode="same" cells
        ref.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
    else:
        # their ResNeSt50 pads symmetrically and pools "valid", as timm: stated with nn.Pad in front of valid pools
        pad = ((0, 0), (0, 0), (1, 1), (1, 1))
        ref.maxpool = nn.SequentialCell([nn.Pad(pad), nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="valid")])
        for _, cell in ref.cells_and_names():
            if getattr(cell, "avd_last", None) is not None:
                cell.avd_last = nn.SequentialCell([nn.Pad(pad), nn.AvgPool2d(kernel_size=3, stride=2,
                                                                             pad_mode="valid")])
    ref.set_train(False)
    net, note = _zoo_net(path, arch)
    assert "modelzoo checkpoint" in note
    for size in sizes:
        x = _batch(size, seed=size)
        theirs = ref(x).asnumpy()
        assert _rel(net(x).asnumpy(), theirs) < RTOL, size


def test_import_drops_training_state_casts_float16_and_names_every_misfit(tmp_path, mindcv_nets):
    from common.errors import UserError
    from common.weights.checkpoint import read_checkpoint
    from common.weights.mindspore_import import convert_mindspore, rename

    params = {"network.backbone.conv.weight": np.ones((2, 3), np.float16), "moments.network.backbone.conv.weight":
              np.ones((2, 3), np.float32), "learning_rate": np.float32([0.1]), "ema.backbone.conv.weight":
              np.full((2, 3), 2, np.float32), "global_step": np.int32([1]), "updates": np.int32([1])}
    weights, dropped = rename(params)
    assert list(weights) == ["conv1.weight"] and weights["conv1.weight"].dtype == np.float32
    assert sorted(dropped) == sorted(k for k in params if k != "network.backbone.conv.weight")
    assert rename(params, ema=True)[0]["conv1.weight"][0, 0] == 2
    _, path = mindcv_nets("resnext50_32x4d")
    with pytest.raises(UserError) as err:  # a ResNeXt-50 file is not a ResNeXt-152 one: names and shapes listed
        convert_mindspore("resnext152_64x4d", read_checkpoint(path))
    text = str(err.value)
    # 34 more blocks (layer2 8 vs 4, layer3 36 vs 6) of 15 entries each (3 convs, 3 BNs of 4)
    assert "510 resnext152_64x4d parameter(s) not in the source (layer" in text and "of another shape" in text
    proc = run_cli([os.path.join(ROOT, "scripts", "convert_weights.py"), "--arch", "resnest50", "--src", path,
                    "--out", str(tmp_path / "x.ckpt")], timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the mindcv checkpoint does not fit --arch resnest50")
    assert "not in the source (conv1.0.weight" in lines[0]  # ResNeSt's deep stem, which a ResNeXt file lacks
    assert not (tmp_path / "x.ckpt").exists()
    proc = run_cli([os.path.join(ROOT, "scripts", "convert_weights.py"), "--arch", "resnext50_32x4d", "--src", path,
                    "--out", str(tmp_path / "r50.ckpt")], timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "from a mindcv checkpoint, pool_padding 'same', 10 classes" in proc.stdout
    written = read_checkpoint(str(tmp_path / "r50.ckpt"))
    assert "fc.weight" in written and "layer1.0.downsample.0.weight" in written and "pool_padding_same" in written
