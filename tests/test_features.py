"""features_only networks: the maps of the chosen stages with timm's feature_info, equal to the full classifier's
intermediate activations, for every arch, and their exported graphs (MINDIR, ONNX) compute the same maps."""
import numpy as np
import pytest
from conftest import run_cli

from common import list_models
from common.errors import UserError

SIZE = 64
# channels of stem, layer1..layer4 and their strides, from the papers' tables (ResNeSt's deep stem ends at 64 too)
CHANNELS = (64, 256, 512, 1024, 2048)
STRIDES = (2, 4, 8, 16, 32)


def _image(seed=0, batch=2):
    return np.random.default_rng(seed).normal(size=(batch, 3, SIZE, SIZE)).astype(np.float32)


def _stage_activations(net, image):
    """Outputs of stem BN+ReLU and layer1..4 of the full classifier, caught by forward hooks during net(image)."""
    import mindspore as ms

    caught, handles = {}, []
    for name in ("bn1", "layer1", "layer2", "layer3", "layer4"):
        def hook(cell, inputs, output, name=name):  # noqa: ARG001 - hook signature
            caught[name] = output.asnumpy()
        handles.append(getattr(net, name).register_forward_hook(hook))
    net(ms.Tensor(image))
    for handle in handles:
        handle.remove()
    return [caught[n] for n in ("bn1", "layer1", "layer2", "layer3", "layer4")]


def test_feature_info_and_shapes_for_every_arch():
    import mindspore as ms

    from common.models import create_model

    assert len(list_models()) == 7
    image = ms.Tensor(_image(batch=1))
    for arch in list_models():
        # shapes only: the convs may stay at zero (no weight draws)
        net = create_model(arch, features_only=True, out_indices=(0, 1, 2, 3, 4), init_weights=False)
        info = net.feature_info
        # the stem's map (index 0): 64 channels at stride 2 for the 7x7 stem and ResNeSt's deep stem alike
        assert info.channels() == list(CHANNELS), arch
        assert info.reduction() == list(STRIDES), arch
        assert info.module_name() == ["act1", "layer1", "layer2", "layer3", "layer4"], arch
        assert net.fc is None
        net.set_train(False)
        maps = net(image)
        assert [tuple(m.shape) for m in maps] == [(1, c, SIZE // s, SIZE // s) for c, s in zip(CHANNELS, STRIDES)], arch
        del net, maps


@pytest.mark.parametrize("arch", ["resnext50_32x4d", "resnest50"])
def test_maps_equal_the_classifiers_intermediate_activations(arch, tmp_path):
    import mindspore as ms

    from common.models import create_model

    ms.set_seed(4)
    full = create_model(arch, num_classes=5)
    full.set_train(False)
    ckpt = str(tmp_path / "full.ckpt")
    ms.save_checkpoint(full, ckpt)
    image = _image(1)
    want = _stage_activations(full, image)
    for indices in ((1, 2, 3, 4), (0, 2), (3,)):
        feats = create_model(arch, checkpoint=ckpt, features_only=True, out_indices=indices)
        feats.set_train(False)
        got = [m.asnumpy() for m in feats(ms.Tensor(image))]
        assert len(got) == len(indices)
        for i, g in zip(indices, got):
            np.testing.assert_allclose(g, want[i], rtol=1e-5, atol=1e-5, err_msg=f"{arch} index {i}")
        assert feats.feature_info.module_name() == [("act1", "layer1", "layer2", "layer3", "layer4")[i]
                                                    for i in indices]
        assert feats.feature_info.reduction() == [STRIDES[i] for i in indices]
    # stages after the last map are not built: a (0, 2) network has no layer3/layer4
    short = create_model(arch, features_only=True, out_indices=(0, 2))
    assert short.layer3 is None and short.layer4 is None and short.layer2 is not None


def test_bad_out_indices_are_refused():
    from common.models import create_model

    for bad in ((), (5,), (1, 1), (-1, 2)):
        with pytest.raises(UserError, match="out_indices"):
            create_model("resnext50_32x4d", features_only=True, out_indices=bad)


def test_exported_feature_graphs_compute_the_maps(tmp_path):
    """export.py --features_only: MINDIR (GraphCell) and ONNX (onnxruntime) give the network's four maps."""
    import mindspore as ms
    import onnxruntime as ort

    from common.models import create_model

    ms.set_seed(5)
    arch, batch = "resnest50", 2
    full = create_model(arch, num_classes=3)
    ckpt = str(tmp_path / "net.ckpt")
    ms.save_checkpoint(full, ckpt)
    del full
    feats = create_model(arch, checkpoint=ckpt, features_only=True)
    feats.set_train(False)
    image = _image(2, batch)
    want = [m.asnumpy() for m in feats(ms.Tensor(image))]
    del feats
    for fmt in ("MINDIR", "ONNX"):
        result = run_cli(["resnest50/export.py", "--checkpoint_path", ckpt, "--file_format", fmt, "--file_name",
                          str(tmp_path / "feats"), "--device_target", "CPU", "--batch_size", str(batch),
                          "--height", str(SIZE), "--width", str(SIZE), "--features_only", "true",
                          "--out_indices", "1,2,3,4"])
        assert result.returncode == 0, result.stderr[-3000:]
        assert "feature maps of ['layer1', 'layer2', 'layer3', 'layer4']" in result.stdout
    graph = ms.nn.GraphCell(ms.load(str(tmp_path / "feats.mindir")))
    got = [m.asnumpy() for m in graph(ms.Tensor(image))]
    session = ort.InferenceSession(str(tmp_path / "feats.onnx"), providers=["CPUExecutionProvider"])
    got_onnx = session.run(None, {"image": image})
    for outputs in (got, got_onnx):
        assert len(outputs) == 4
        for g, w in zip(outputs, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(w).max())))
