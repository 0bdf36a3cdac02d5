"""The names and shapes of a .ckpt read without MindSpore (common.weights.checkpoint_entries) against MindSpore's own
reader: the same entries for every file MindSpore reads, a refusal for every file it refuses."""
import numpy as np
import pytest

from common.errors import UserError
from common.weights.checkpoint import read_checkpoint_shapes


def _mindspore_shapes(path):
    """MindSpore's reading of `path` as name -> shape, or None when it refuses the file."""
    import mindspore as ms

    try:
        return {k: tuple(v.shape) for k, v in ms.load_checkpoint(path).items()}
    except Exception:  # noqa: BLE001 - whatever MindSpore raises for a file it cannot read
        return None


def _ours(path):
    try:
        return read_checkpoint_shapes(path)
    except UserError as exc:
        assert f"checkpoint '{path}' cannot be read (" in str(exc)
        return None


@pytest.fixture(scope="module")
def small_checkpoints(tmp_path_factory):
    """A checkpoint of mixed types and ranks (float32/float16/int32, scalar to 4-D), with and without the CRC
    trailer."""
    import mindspore as ms

    rng = np.random.default_rng(0)
    entries = [("conv.weight", rng.normal(size=(8, 4, 3, 3)).astype(np.float32)),
               ("fc.bias", rng.normal(size=(10,)).astype(np.float16)),
               ("global_step", np.array([7], np.int32)), ("scale", np.float32(2.0)),
               ("layer1.0.bn1.moving_mean", rng.normal(size=(300,)).astype(np.float32))]
    folder = tmp_path_factory.mktemp("ckpts")
    paths = []
    for crc in (False, True):
        path = str(folder / f"small_crc{int(crc)}.ckpt")
        ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in entries], path, crc_check=crc)
        paths.append(path)
    return paths, {k: tuple(np.shape(v)) for k, v in entries}


def test_a_network_checkpoint_gives_mindspores_names_and_shapes(tmp_path):
    import mindspore as ms

    from common.models import create_model

    path = str(tmp_path / "net.ckpt")
    ms.save_checkpoint(create_model("resnest50", num_classes=3, init_weights=False), path)
    ours = read_checkpoint_shapes(path)
    assert len(ours) == 405 and ours["fc.weight"] == (3, 2048)
    assert ours == _mindspore_shapes(path)


def test_mixed_types_scalars_and_the_crc_trailer(small_checkpoints):
    paths, want = small_checkpoints
    for path in paths:
        assert read_checkpoint_shapes(path) == want == _mindspore_shapes(path)


def test_every_truncation_is_read_or_refused_as_mindspore_does(small_checkpoints, tmp_path):
    """Cut at 40 points: where MindSpore refuses the rest of a file, so does the reader; where it reads a prefix
    that ends between entries, the reader gives the same entries."""
    blob = open(small_checkpoints[0][0], "rb").read()
    refused = 0
    for cut in sorted(set(np.linspace(1, len(blob) - 1, 40).astype(int))):
        path = str(tmp_path / f"cut{cut}.ckpt")
        with open(path, "wb") as fh:
            fh.write(blob[:cut])
        theirs = _mindspore_shapes(path)
        assert _ours(path) == theirs, cut
        refused += theirs is None
    assert refused >= 30  # most cuts land inside an entry


@pytest.mark.parametrize("content", [b"", b"these are my notes, not weights\n", bytes(range(256)) * 4],
                         ids=["empty", "text", "binary"])
def test_files_that_are_not_checkpoints_are_one_clear_error(content, tmp_path):
    path = tmp_path / "x.ckpt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=r"checkpoint '.*x\.ckpt' cannot be read \(.+\); it is truncated or not a"):
        read_checkpoint_shapes(str(path))
    assert not _mindspore_shapes(str(path))  # MindSpore refuses them too, or finds nothing to load


def test_a_missing_file_is_named():
    with pytest.raises(UserError, match="checkpoint 'nowhere.ckpt' does not exist"):
        read_checkpoint_shapes("nowhere.ckpt")
