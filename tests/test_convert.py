"""Weight import: formats, wrappers, and refusals that name the offending keys (the converter as a command; where
only the converted values matter its main() runs in this process)."""
import pickle
import zipfile

import numpy as np
import pytest
import torch
from conftest import run_cli
from torch_refs import build_reference, convert_weights

from common import UserError, create_model
from common.weights.torch_reader import load_state_dict

ARCH = "resnext50_32x4d"


@pytest.fixture(scope="module")
def reference_state():
    return build_reference(ARCH, num_classes=10).state_dict()


def convert(src, out, arch=ARCH):
    return run_cli(["scripts/convert_weights.py", "--arch", arch, "--src", str(src), "--out", str(out)])


def assert_one_line_error(res, *words):
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_reader_matches_torch_for_every_key(reference_state, tmp_path):
    path = tmp_path / "sd.pth"
    torch.save(reference_state, path)
    state = load_state_dict(str(path))
    assert set(state) == set(reference_state)
    for key, value in reference_state.items():
        np.testing.assert_array_equal(state[key], value.numpy())


def test_safetensors_and_wrapped_checkpoints_convert_identically(reference_state, tmp_path):
    import mindspore as ms
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in reference_state.items()}, str(tmp_path / "sd.safetensors"))
    torch.save({"epoch": 3, "state_dict": reference_state, "args": {"lr": 0.1}}, tmp_path / "wrapped.pth")
    torch.save({"model": {f"module.{k}": v for k, v in reference_state.items()}}, tmp_path / "ddp.pt")
    outputs = []
    for name in ("sd.safetensors", "wrapped.pth", "ddp.pt"):
        out = tmp_path / (name + ".ckpt")
        if name == "sd.safetensors":  # the command once
            res = convert(tmp_path / name, out)
            assert res.returncode == 0, res.stderr
        else:
            assert convert_weights().main(["--arch", ARCH, "--src", str(tmp_path / name), "--out", str(out)]) == 0
        outputs.append(ms.load_checkpoint(str(out)))
    for other in outputs[1:]:
        assert set(other) == set(outputs[0])
        for key in other:
            np.testing.assert_array_equal(other[key].asnumpy(), outputs[0][key].asnumpy())
    assert len(outputs[0]) == len(list(create_model(ARCH, num_classes=10).get_parameters()))


def test_wrong_arch_is_refused_naming_keys(reference_state, tmp_path):
    torch.save(reference_state, tmp_path / "sd.pth")
    res = convert(tmp_path / "sd.pth", tmp_path / "x.ckpt", arch="resnest50")
    assert_one_line_error(res, "--arch resnest50", "conv1.weight")
    assert not (tmp_path / "x.ckpt").exists()


def test_extra_and_missing_keys_are_named(reference_state, tmp_path):
    state = dict(reference_state)
    state["head.extra.weight"] = torch.zeros(3)
    del state["layer2.1.bn2.running_var"]
    torch.save(state, tmp_path / "sd.pth")
    res = convert(tmp_path / "sd.pth", tmp_path / "x.ckpt")
    assert_one_line_error(res, "head.extra.weight", "layer2.1.bn2.moving_variance")


def test_truncated_file_is_refused(reference_state, tmp_path):
    torch.save(reference_state, tmp_path / "sd.pth")
    blob = (tmp_path / "sd.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(blob[: len(blob) // 2])
    assert_one_line_error(convert(tmp_path / "cut.pth", tmp_path / "x.ckpt"), "cut.pth")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": ")
    assert_one_line_error(convert(tmp_path / "cut.safetensors", tmp_path / "x.ckpt"), "safetensors")


class Boom:
    """A pickle payload that would run code if the reader executed arbitrary globals."""

    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_malicious_pickle_runs_nothing(tmp_path, monkeypatch):
    payload = pickle.dumps({"fc.weight": Boom()}, protocol=2)
    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as zf:
        zf.writestr("archive/data.pkl", payload)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="no state dict"):
        load_state_dict(str(tmp_path / "evil.pth"))
    assert not (tmp_path / "PWNED").exists()
