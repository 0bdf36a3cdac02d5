"""The data pipeline at server scale (issue 15): scan cache, shards, epoch order, read-ahead, worker counts, the
--strict_data check per shard before the collective, and the per-batch random erasing + mixup/cutmix.

Tiny sizes throughout (32-48 px images, batch 2); the throughput figures live in benchmarks/RESULTS.md.
"""
import os

import numpy as np
import pytest
from conftest import ROOT, run_cli
from inference_helpers import normalised_by_hand, write_image_folder

from common.errors import UserError

RESNEST = os.path.join(ROOT, "resnest50", "default_config.yaml")


def recipe(data_dir, *overrides):
    from common.config import load_config

    return load_config(RESNEST, ["--data_dir", str(data_dir), "--num_classes", "2", "--image_size", "32",
                                 "--batch_size", "2", *overrides])


def test_scan_is_cached_until_a_class_folder_changes(tmp_path, monkeypatch):
    from common.data.folder import scan_image_folder

    root = tmp_path / "data"
    write_image_folder(str(root), [2, 3], size=(8, 8))
    write_image_folder(str(tmp_path / "extra"), [1], size=(8, 8))
    first, classes = scan_image_folder(str(root))
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: listed.append(p) or real_listdir(p))
    again, _ = scan_image_folder(str(root))
    assert again == first and classes == ["c0", "c1"] and listed == []  # no listing: the cached list
    os.replace(tmp_path / "extra" / "c0" / "0.jpg", root / "c1" / "zz.jpg")  # the class folder changes
    stale, _ = scan_image_folder(str(root))
    assert listed and len(stale) == 6 and stale[-1] == (str(root / "c1" / "zz.jpg"), 1)
    os.remove(root / "c0" / "1.jpg")
    assert str(root / "c0" / "1.jpg") not in [p for p, _ in scan_image_folder(str(root))[0]]


def test_scan_is_shared_with_other_processes_until_a_class_folder_changes(tmp_path, monkeypatch):
    """Another rank (a new process: the in-process scans cleared) takes the scan from the cache file without
    listing a class folder; once a class folder changes it lists again and writes the new list."""
    from common.data import folder

    monkeypatch.setenv("ZOO_SCAN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    write_image_folder(str(root), [2, 3], size=(8, 8))
    first, classes = folder.scan_image_folder(str(root))
    assert len(os.listdir(tmp_path / "cache")) == 2  # the scan and its lock
    monkeypatch.setattr(folder, "_SCANS", {})
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: listed.append(str(p)) or real_listdir(p))
    shared, shared_classes = folder.scan_image_folder(str(root))
    assert (shared, shared_classes) == (first, classes) == (first, ["c0", "c1"])
    assert listed == [str(root)]  # the class names only; no class folder listed
    (root / "c0" / "0.jpg").rename(root / "c0" / "9.jpg")  # c0's mtime changes
    monkeypatch.setattr(folder, "_SCANS", {})
    renamed, _ = folder.scan_image_folder(str(root))
    assert str(root / "c0") in listed and (str(root / "c0" / "9.jpg"), 0) in renamed
    monkeypatch.setattr(folder, "_SCANS", {})
    listed.clear()
    assert folder.scan_image_folder(str(root))[0] == renamed and listed == [str(root)]  # the new list, shared
    monkeypatch.setenv("ZOO_SCAN_CACHE", "off")
    monkeypatch.setattr(folder, "_SCANS", {})
    listed.clear()
    assert folder.scan_image_folder(str(root))[0] == renamed and str(root / "c1") in listed


@pytest.mark.parametrize("num,size", [(10, 1), (10, 3), (101, 8), (7, 8)])
def test_train_shards_are_disjoint_equal_and_cover_the_epoch(num, size):
    from common.data.pipeline import train_shard

    samples = [(f"f{i}", i % 3) for i in range(num)]
    shards = [train_shard(samples, rank, size, seed=7) for rank in range(size)]
    names = [p for shard in shards for p, _ in shard]
    assert len(names) == len(set(names)) == (num // size) * size  # disjoint; all but num % size images
    assert {len(s) for s in shards} == {num // size}
    assert shards == [train_shard(samples, rank, size, seed=7) for rank in range(size)]  # same every call
    if size == 1 and num > 3:
        assert shards[0] != samples and shards[0] != train_shard(samples, 0, 1, seed=8)


def test_readahead_reads_the_same_items_in_order_and_names_bad_files(tmp_path, capsys):
    from common.data.folder import CheckedImageSource
    from common.data.pipeline import epoch_order

    samples = write_image_folder(str(tmp_path), [5, 5], size=(8, 8))
    with open(samples[3][0], "wb") as fh:
        fh.write(b"not an image")
    plain = CheckedImageSource(samples)
    ahead = CheckedImageSource(samples, readahead=3)
    for source in (plain, ahead):
        source.order = epoch_order(len(samples), 11)
    want = [(bytes(plain[i][0]), int(plain[i][1])) for i in range(len(samples))]
    got = [(bytes(ahead[i][0]), int(ahead[i][1])) for i in range(len(samples))]
    ahead.close()
    assert got == want
    order = epoch_order(len(samples), 11)
    expect = [open(samples[j][0], "rb").read() for j in order]
    bad_at = order.index(3)
    expect[bad_at] = expect[(bad_at + 1) % len(samples)]  # a bad file gives way to the next one in the epoch
    assert [data for data, _ in want] == expect
    assert list(ahead.bad) == [samples[3][0]] and "not an image" in capsys.readouterr().err
    assert epoch_order(10, 11) == epoch_order(10, 11) != epoch_order(10, 12)


def test_readahead_across_runs_epochs_and_a_resumed_start(tmp_path):
    """40 images: three runs of 16 read ahead; each epoch's new order (after close(), as create_dataset does) and
    a start in the middle (a resumed epoch) give the items a plain read gives."""
    from common.data.folder import CheckedImageSource
    from common.data.pipeline import epoch_order

    samples = write_image_folder(str(tmp_path), [20, 20], size=(8, 8))
    plain, ahead = CheckedImageSource(samples), CheckedImageSource(samples, readahead=2)
    for seed in (1, 2):
        ahead.close()
        plain.order = ahead.order = epoch_order(len(samples), seed)
        want = [(bytes(plain[i][0]), int(plain[i][1])) for i in range(len(samples))]
        assert [(bytes(ahead[i][0]), int(ahead[i][1])) for i in range(len(samples))] == want
    assert len({data for data, _ in want}) == len(samples)
    ahead.close()  # the next epoch resumed at item 35, in the run the last epoch ended in
    plain.order = ahead.order = epoch_order(len(samples), 3)
    assert [bytes(ahead[i][0]) for i in range(35, 40)] == [bytes(plain[i][0]) for i in range(35, 40)]
    ahead.close()


def test_worker_count_follows_cpu_affinity_without_a_cap(monkeypatch):
    from common.data import pipeline

    monkeypatch.setattr(os, "cpu_count", lambda: 192)
    monkeypatch.delenv("OMPI_COMM_WORLD_LOCAL_SIZE", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(24, 48)), raising=False)
    assert pipeline.default_workers(8) == 24  # pinned to 24 cores: all of them
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(192)), raising=False)
    assert pipeline.default_workers(8) == 24 and pipeline.default_workers(1) == 192  # unpinned: the host's share
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4")
    assert pipeline.default_workers(16) == 48


@pytest.mark.parametrize("env,want", [
    ({}, (0, 1)),
    ({"RANK_ID": "3", "RANK_SIZE": "8"}, (3, 8)),
    ({"MS_NODE_ID": "5", "MS_WORKER_NUM": "16"}, (5, 16)),
    ({"MS_WORKER_NUM": "16"}, None),  # msrun across hosts without --node_rank: only init() knows
    ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}, (1, 2)),
])
def test_launcher_rank_from_each_launcher(monkeypatch, env, want):
    from common.context import _RANK_VARS, launcher_rank

    for pair in _RANK_VARS:
        for var in pair:
            monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert launcher_rank() == want


def test_strict_check_reads_only_this_ranks_shard(tmp_path):
    from common.data.folder import check_data_files
    from common.data.pipeline import train_shard

    samples = write_image_folder(str(tmp_path), [4, 4], size=(8, 8))
    in_rank1 = train_shard(samples, 1, 2, seed=7)[0][0]
    with open(in_rank1, "wb") as fh:
        fh.write(b"")
    check_data_files(train_shard(samples, 0, 2, seed=7), threads=2)
    with pytest.raises(UserError, match=os.path.basename(in_rank1)):
        check_data_files(train_shard(samples, 1, 2, seed=7), threads=2)


def test_strict_data_fails_before_the_collective_starts(tmp_path):
    from common.data.folder import scan_image_folder
    from common.data.pipeline import train_shard

    for split, count in (("train", 4), ("val", 1)):
        write_image_folder(str(tmp_path / "data" / split), [count, count], size=(32, 32))
    samples, _ = scan_image_folder(str(tmp_path / "data" / "train"))
    bad = train_shard(samples, 1, 2, seed=7)[0][0]
    with open(bad, "wb") as fh:
        fh.write(b"\xff\xd8\xff" + b"\0" * 64)  # a JPEG header without its end
    # rank 1 of 2 from a rank table: init() would wait for rank 0 (timeout); the check must come first
    result = run_cli([os.path.join("resnext50_32x4d", "train.py"), "--data_dir", str(tmp_path / "data"),
                      "--output_dir", str(tmp_path / "out"), "--device_target", "CPU", "--num_classes", "2",
                      "--image_size", "32", "--batch_size", "2", "--seed", "7", "--strict_data", "true"],
                     timeout=120, env={"RANK_ID": "1", "RANK_SIZE": "2"})
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert os.path.basename(bad) in errors[0] and "--strict_data" in errors[0]


def test_train_transforms_have_no_python_op_per_image(tmp_path):
    from mindspore.dataset.transforms.transforms import Implementation, TensorOperation

    from common.data.transforms import train_transforms

    ops = train_transforms(recipe(tmp_path))
    # ResNeSt's recipe ends at uint8 HWC: its batch map normalises while it erases and mixes
    assert [type(op).__name__ for op in ops] == ["RandomCropDecodeResize", "RandomHorizontalFlip", "RandomChoice"]
    plain = train_transforms(recipe(tmp_path, "--re_prob", "0", "--mixup", "0", "--cutmix", "0"))
    assert [type(op).__name__ for op in plain][-2:] == ["Normalize", "HWC2CHW"]  # no batch map: normalised here
    # RandAugment: one choice among its outcomes (no op, 1 op, 2 ops at each magnitude level), each a C++ op
    outcomes = {type(op).__name__ for op in ops[2].transforms}
    assert outcomes == {"TypeCast", "RandAugment"}
    ops += ops[2].transforms + plain
    # an op with both kernels (flip) runs in C++ after a C++ op; RandomErasing only has a Python one (PY)
    python_ops = [op for op in ops if not isinstance(op, TensorOperation)
                  or getattr(op, "implementation", None) == Implementation.PY]
    assert not python_ops, python_ops


def test_random_erasing_matches_timms_statistically():
    """Share of images erased, erased area and box shape: ours (the recipe's batch map: erasing after
    normalisation, in the native pass) vs timm's RandomErasing (mode const, the recipe's reference). MindSpore's
    vision.RandomErasing draws the aspect ratio uniformly, not log-uniformly as timm does, so it is not the
    reference."""
    import torch
    from timm.data.random_erasing import RandomErasing

    from common.data.augment import MixupCutmix

    n, h, w = 3000, 24, 32
    grey = np.full((n, h, w, 3), 200, np.uint8)  # normalised: about 1.3 in every channel, erased: exactly 0
    erased, _ = MixupCutmix(10, re_prob=0.5, seed=0)(list(grey), np.zeros(n, np.int32))
    np.testing.assert_allclose(erased.max(axis=(0, 2, 3)), normalised_by_hand(grey[:1])[0, :, 0, 0], rtol=1e-6)
    ours = (erased != 0).astype(np.float32)
    torch.manual_seed(0)
    timm_op = RandomErasing(probability=0.5, mode="const", device="cpu")
    theirs = np.stack([timm_op(torch.ones(3, h, w)).numpy() for _ in range(n)])
    for images in (ours, theirs):
        assert (images[:, 0] == images[:, 2]).all()  # the same box in every channel
    erased_ours, erased_theirs = 1 - ours[:, 0].mean(axis=(1, 2)), 1 - theirs[:, 0].mean(axis=(1, 2))
    assert abs((erased_ours > 0).mean() - 0.5) < 0.04 and abs((erased_theirs > 0).mean() - 0.5) < 0.04
    hit_ours, hit_theirs = erased_ours[erased_ours > 0], erased_theirs[erased_theirs > 0]
    assert abs(hit_ours.mean() - hit_theirs.mean()) < 0.012, (hit_ours.mean(), hit_theirs.mean())
    assert hit_ours.max() < 1 / 3 + 0.05

    def aspect(images):  # log(box width / box height) of each erased image
        zero = images[:, 0] == 0
        return np.log(zero.any(axis=1).sum(axis=1) / zero.any(axis=2).sum(axis=1))

    a_ours, a_theirs = aspect(ours[erased_ours > 0]), aspect(theirs[erased_theirs > 0])
    assert abs(np.median(a_ours) - np.median(a_theirs)) < 0.1 and abs(a_ours.std() - a_theirs.std()) < 0.1


def test_mixed_targets_carry_label_smoothing_and_each_batch_is_its_own_draw():
    from common.data.augment import MixupCutmix

    class Info:
        def __init__(self, num):
            self.num = num

        def get_batch_num(self):
            return self.num

    images = list(np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), np.uint8))
    labels = np.array([0, 1, 2, 0], np.int32)
    mixer = MixupCutmix(3, mixup=0.8, cutmix=1.0, prob=1.0, smoothing=0.1, seed=4, re_prob=0.5)
    first = mixer(images, labels, Info(0))
    later = mixer(images, labels, Info(5))
    again = MixupCutmix(3, mixup=0.8, cutmix=1.0, prob=1.0, smoothing=0.1, seed=4, re_prob=0.5)(images, labels,
                                                                                                 Info(5))
    np.testing.assert_array_equal(later[0], again[0])  # batch 5 is the same whatever ran before it
    np.testing.assert_array_equal(later[1], again[1])
    assert not np.array_equal(first[1], later[1]) or not np.array_equal(first[0], later[0])
    for _, target in (first, later):
        smooth = np.full((4, 3), 0.1 / 3) + 0.9 * np.eye(3)[labels]
        lam = (target[1, 1] - 0.1 / 3) / 0.9  # row 1 (class 1) is mixed with row 2 (class 2)
        np.testing.assert_allclose(target, lam * smooth + (1 - lam) * smooth[::-1], atol=1e-6)
        assert 0 <= lam <= 1


@pytest.mark.parametrize("processes", [False, True])
def test_train_pipeline_is_reproducible_and_batches_match_with_processes(tmp_path, processes):
    """Same seed, same batches (images and soft targets), whether the batch map runs in a thread or in processes."""
    from common.data.pipeline import create_dataset

    write_image_folder(str(tmp_path / "train"), [4, 4], size=(40, 48))

    def epoch(seed, *extra):
        dataset, _ = create_dataset(recipe(tmp_path, "--num_parallel_workers", "2", *extra), "train", True, seed=seed)
        return [(i.copy(), t.copy()) for i, t in dataset.create_tuple_iterator(output_numpy=True, num_epochs=1)]

    base = epoch(3)
    other = epoch(3, "--python_multiprocessing", "true" if processes else "false")
    assert len(base) == len(other) == 4 and base[0][1].shape == (2, 2)
    for (a, ta), (b, tb) in zip(base, other):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ta, tb)
    assert not np.array_equal(epoch(4)[0][0], base[0][0])


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("n", [1, 4, 5])
def test_batch_map_normalises_erases_and_mixes_as_the_formulas_say(n, native):
    """The batch map's pixels against the formulas written out (float64): normalised as torchvision's ToTensor +
    Normalize, zero in the erased box, lam * a + (1 - lam) * b for mixup with the reversed batch, the partner's
    pixels inside the cutmix box; in the native pass and in its NumPy fallback."""
    from common.data.batch_kernel import CUTMIX, MIXUP, NO_MIX, normalize_mix

    images = np.random.default_rng(n).integers(0, 256, (n, 8, 10, 3), np.uint8)
    erase = np.zeros((n, 4), np.int64)
    erase[0] = (1, 4, 2, 9)
    ref = normalised_by_hand(images)
    ref[0, :, 1:4, 2:9] = 0.0
    plain = normalize_mix(list(images), erase, NO_MIX, native=native)
    assert plain.dtype == np.float32 and plain.shape == (n, 3, 8, 10) and plain.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(plain, ref, rtol=0, atol=2e-6)
    mixed = normalize_mix(list(images), erase, MIXUP, 0.3, native=native)
    np.testing.assert_allclose(mixed, 0.3 * ref + 0.7 * ref[::-1], rtol=0, atol=3e-6)
    cut = normalize_mix(list(images), erase, CUTMIX, 0.5, (2, 6, 0, 5), native=native)
    want = ref.copy()
    want[:, :, 2:6, 0:5] = ref[::-1, :, 2:6, 0:5]
    np.testing.assert_allclose(cut, want, rtol=0, atol=2e-6)


def test_native_batch_map_gives_the_bits_of_numpy_and_of_mindspore_normalize(tmp_path, monkeypatch):
    """The native pass is built here (g++ is a test requirement) and equals its NumPy fallback bit for bit in every
    mode; its normalisation equals MindSpore's Normalize + HWC2CHW, which it replaces in the per-image path."""
    from mindspore.dataset import vision

    from common.cpu_ops.library import build_standalone
    from common.data.batch_kernel import CUTMIX, MIXUP, NO_MIX, SOURCE, SWITCH, native_available, normalize_mix
    from common.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    assert native_available()
    monkeypatch.setenv(SWITCH, "0")  # the switch is read at every call
    assert not native_available()
    monkeypatch.delenv(SWITCH)
    path, why = build_standalone(SOURCE, "lib.so", tmp_path, compiler="no-such-compiler-here")
    assert path is None and "no C++ compiler" in why
    rng = np.random.default_rng(0)
    images = list(rng.integers(0, 256, (7, 40, 56, 3), np.uint8))
    erase = np.array([[3, 30, 5, 50], [0, 0, 0, 0], [0, 40, 0, 9], [0, 0, 0, 0], [10, 12, 0, 56], [0, 0, 0, 0],
                      [39, 40, 55, 56]])
    for mode, lam, cut in ((NO_MIX, 1.0, (0, 0, 0, 0)), (MIXUP, 0.137, (0, 0, 0, 0)), (CUTMIX, 0.4, (5, 33, 7, 41))):
        np.testing.assert_array_equal(normalize_mix(images, erase, mode, lam, cut, native=True),
                                      normalize_mix(images, erase, mode, lam, cut, native=False))
    theirs = np.stack([vision.HWC2CHW()(vision.Normalize(IMAGENET_MEAN, IMAGENET_STD)(image)) for image in images])
    np.testing.assert_array_equal(normalize_mix(images, np.zeros((7, 4)), native=True), theirs)
    with pytest.raises(ValueError, match="uint8 HWC images of one size"):
        normalize_mix([images[0], images[1][:20]], np.zeros((2, 4)))
