"""Pipeline mode of scripts/benchmark.py: the zoo's real train/eval data pipelines vs torchvision transforms.

Both read the same folder of real JPEGs of ImageNet size, made from the photographs scikit-learn ships
(docs/DESIGN.md §6), and deliver batches of normalised CHW float32 images. "per worker" is one transform worker
each (MindSpore num_parallel_workers=1; PyTorch DataLoader num_workers=0, the main process with one intra-op
thread as a DataLoader worker has: its fastest single-worker set-up);
"at N workers" uses the zoo's configured worker count for both, timing one side after the other. CPU ms per image
(process CPU time / images) is reported beside img/s for the one-worker runs: it is what a core buys, whatever the
machine's load.

Beside the plain recipe's transforms (the --arch recipe, and torchvision's), the ResNeSt recipe's full train
transform (RandAugment per image; per batch, normalisation, random erasing and mixup/cutmix in one native pass; no
Python op per image) is timed at 1 and N workers, with its batch map in processes ("resnest_procs") and in its
NumPy fallback ("resnest_numpy") beside it; the reader alone (rows/s of encoded bytes, no decode) is timed through
the same source the pipeline reads, beside its GeneratorDataset floor and MindSpore's own C++ folder reader.
Each of our pipelines is also timed with one worker pinned to one core (`on_cores`): its img/s is what a core
buys, reader and batching included, the base of the 1 core -> N cores scaling and of the projection to 24 workers
(`project`, assumptions in its docstring). `stage_costs` adds each recipe's per-image ops one at a time.
"""
from __future__ import annotations

import contextlib
import functools
import os
import resource
import time
from typing import Callable, Dict, Iterator, List, Tuple


def make_jpeg_folder(root: str, count: int, seed: int = 0) -> str:
    """`count` JPEGs (crops, flips and rescales of sklearn's china.jpg and flower.jpg, long side 400-640 px, the
    size of typical ImageNet photos) in two class folders under root/train and root/val; returns root."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_image

    rng = np.random.default_rng(seed)
    photos = [load_sample_image(name) for name in ("china.jpg", "flower.jpg")]
    for split in ("train", "val"):
        for i in range(count):
            photo = photos[i % 2]
            h, w = photo.shape[:2]
            ch, cw = int(h * rng.uniform(0.7, 1.0)), int(w * rng.uniform(0.7, 1.0))
            top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            image = Image.fromarray(photo[top:top + ch, left:left + cw])
            if rng.random() < 0.5:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
            scale = rng.uniform(400, 640) / max(ch, cw)
            image = image.resize((max(1, int(cw * scale)), max(1, int(ch * scale))), Image.BILINEAR)
            folder = os.path.join(root, split, f"class{i % 2}")
            os.makedirs(folder, exist_ok=True)
            image.save(os.path.join(folder, f"img{i:04d}.jpg"), quality=90)
    return root


@contextlib.contextmanager
def on_cores(count: int) -> Iterator[bool]:
    """Run the body with every thread of this process on the first `count` cores of its affinity (threads started
    inside inherit it), then give every thread all of them back. Yields False where affinity cannot be set.

    A "1 worker" pipeline is more than its map worker: the reader thread, the batch op and the consumer run beside
    it, on the other core when there is one. Pinned to one core, a pipeline's img/s is what one core buys, the rate
    to scale from (`project`).
    """
    if not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"):
        yield False
        return
    allowed = sorted(os.sched_getaffinity(0))
    if count >= len(allowed):
        yield True
        return

    def set_all(cores) -> None:
        for tid in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(tid), cores)
            except OSError:  # the thread ended meanwhile
                pass
    set_all(set(allowed[:count]))
    try:
        yield True
    finally:
        set_all(set(allowed))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# The ResNeSt recipe's augmentation settings (resnest50/default_config.yaml), laid over the --arch recipe.
RESNEST_KEYS = ("auto_augment", "re_prob", "mixup", "cutmix", "mixup_prob", "mixup_switch_prob", "interpolation",
                "label_smooth_factor")


def resnest_recipe(cfg):
    """cfg with the ResNeSt recipe's augmentations."""
    from common.config import read_yaml

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    resnest = read_yaml(os.path.join(here, "resnest50", "default_config.yaml"))
    local = dict(cfg)
    local.update({k: resnest[k] for k in RESNEST_KEYS if k in resnest})
    return type(cfg)(local)


def _native_batch_map(on: bool):
    """The batch map's native pass on or off inside the block (its switch is read at every batch)."""
    from common.cpu_ops import switched
    from common.data.batch_kernel import SWITCH

    return switched(SWITCH, "1" if on else "0")


def ours_pass(cfg, root: str, training: bool, workers: int, repeats: int,
              variant: str = "") -> Tuple[Callable[[], int], Callable[[], None]]:
    """(one timed pass -> images delivered, cleanup) over common.data.pipeline.create_dataset's real pipeline.

    variant: "" (cfg's recipe), "resnest" (the ResNeSt recipe), "resnest_procs" (the same with its batch map in
    worker processes), "resnest_numpy" (the same with its batch map's NumPy fallback instead of the native pass,
    ZOO_NATIVE_BATCH_MAP=0 during each pass), "reader" (the reader alone: encoded bytes, no decode; one pass counts
    rows), "reader_floor" (the same GeneratorDataset over rows already in memory: no file read, no check; the most
    rows/s any reader built on it can deliver here), "reader_cpp" (MindSpore's own C++ reader, ImageFolderDataset
    without decoding, over the same files with `workers` threads: what MindSpore's pipeline costs per row with no
    Python in it; it cannot skip or name a bad file, so the zoo cannot use it)."""
    from common.data import pipeline

    local = dict(resnest_recipe(cfg) if variant.startswith("resnest") else cfg)
    local.update(num_parallel_workers=workers, data_dir=root, python_multiprocessing=variant == "resnest_procs")
    local = type(cfg)(local)
    if variant == "reader_cpp":
        import mindspore.dataset as ds

        dataset = ds.ImageFolderDataset(pipeline.split_dir(root, "train"), decode=False, shuffle=False,
                                        num_parallel_workers=workers).project(["label"]).batch(256)
    elif variant.startswith("reader"):
        samples, _ = pipeline.scan_image_folder(pipeline.split_dir(root, "train"))
        source = pipeline.train_source(samples, local)
        source.order = pipeline.epoch_order(len(source), cfg.seed)
        if variant == "reader_floor":
            row = source[0]
            source.close()
            source = [row] * len(source)
        dataset = pipeline.reader_dataset(source).project(["label"]).batch(256)
    else:
        dataset, _ = pipeline.create_dataset(local, "train" if training else "val", training=training,
                                             seed=cfg.seed)
    dataset = dataset.repeat(repeats)

    def one_pass() -> int:
        # A fresh one-epoch iterator per pass: a long-lived one would keep decoding into its prefetch queue while
        # the other side is being timed. Its start-up cost stays in the figure (small beside 256+ images).
        with _native_batch_map(variant != "resnest_numpy"):
            iterator = dataset.create_tuple_iterator(output_numpy=True, num_epochs=1)
            return sum(row[0].shape[0] for row in iterator)
    return one_pass, lambda: None


def torch_transforms(cfg, training: bool):
    from torchvision import transforms as T

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    inter = T.InterpolationMode.BICUBIC if cfg.interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    if training:
        ops = [T.RandomResizedCrop(cfg.image_size, scale=(cfg.scale_min, 1.0), interpolation=inter)]
        if cfg.hflip > 0:
            ops.append(T.RandomHorizontalFlip(cfg.hflip))
        if cfg.color_jitter > 0:
            ops.append(T.ColorJitter(cfg.color_jitter, cfg.color_jitter, cfg.color_jitter))
    else:
        ops = [T.Resize(int(round(cfg.image_size / cfg.crop_pct)), interpolation=inter), T.CenterCrop(cfg.image_size)]
    return T.Compose(ops + [T.ToTensor(), T.Normalize(mean, std)])


def theirs_pass(cfg, root: str, training: bool, workers: int, repeats: int):
    """Same folder through torchvision.datasets.ImageFolder (PIL decode) + DataLoader."""
    import torch
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(os.path.join(root, "train" if training else "val"), torch_transforms(cfg, training))
    data = torch.utils.data.ConcatDataset([folder] * repeats)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=training, drop_last=training,
                                         num_workers=workers, persistent_workers=workers > 0)

    def one_pass() -> int:
        if workers:
            return sum(images.shape[0] for images, _ in loader)
        # In-process: one intra-op thread, as DataLoader gives each worker process (two threads on small tensor ops
        # are several times slower on a busy 2-core machine).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return sum(images.shape[0] for images, _ in loader)
        finally:
            torch.set_num_threads(threads)

    def close() -> None:
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
    return one_pass, close


def measure(passes: Dict[str, Callable[[], int]], rounds: int) -> Dict[str, Dict[str, float]]:
    """Alternate one pass of each side per round; median img/s and CPU ms per image of the process."""
    rates: Dict[str, List[float]] = {k: [] for k in passes}
    cpu: Dict[str, List[float]] = {k: [] for k in passes}
    for one_pass in passes.values():  # warm-up: thread/process start, first decode
        one_pass()
    for _ in range(rounds):
        for name, one_pass in passes.items():
            c0, t0 = cpu_seconds(), time.perf_counter()
            seen = one_pass()
            wall, used = time.perf_counter() - t0, cpu_seconds() - c0
            rates[name].append(seen / wall)
            cpu[name].append(1000 * used / seen)
    return {k: {"img_s": sorted(v)[len(v) // 2], "cpu_ms_per_img": sorted(cpu[k])[len(cpu[k]) // 2]}
            for k, v in rates.items()}


def _measure_sides(sides, cfg, root: str, training: bool, repeats: int, rounds: int) -> Dict[str, Dict[str, float]]:
    """Build each (name, pass factory, workers) side, time them alternately, then shut them down."""
    passes, closers = {}, []
    for name, factory, workers in sides:
        passes[name], close = factory(cfg, root, training, workers, repeats)
        closers.append(close)
    try:
        return measure(passes, rounds)
    finally:
        for close in closers:
            close()


def stage_costs(cfg, root: str, rounds: int, per_pass: int) -> Dict[str, float]:
    """CPU ms per image of each recipe's per-image ops, cumulatively (one op added per row), on one core with one
    worker, over the folder's encoded bytes held in memory (no file reads: the reader has its own row); the ResNeSt
    rows end with its batch map (normalise + CHW, random erasing, mixup/cutmix in one native pass), then the same
    with the batch map's NumPy fallback. Says where the ResNeSt recipe's extra cost goes."""
    import mindspore.dataset as ds
    import numpy as np

    from common.data.augment import batch_augment
    from common.data.folder import scan_image_folder
    from common.data.transforms import train_transforms

    files = [np.fromfile(path, dtype=np.uint8) for path, _ in scan_image_folder(os.path.join(root, "train"))[0]]
    rows = [files[i % len(files)] for i in range(max(per_pass, len(files)))]
    label = np.array(0, dtype=np.int32)

    def source():
        return ((row, label) for row in rows)

    def one_pass(ops, mixer=None) -> int:
        data = ds.GeneratorDataset(source, ["image", "label"], shuffle=False)
        data = data.map(ops, input_columns="image", num_parallel_workers=1)
        if mixer is None:
            data = data.batch(cfg.batch_size, drop_remainder=True)
        else:
            data = data.batch(cfg.batch_size, drop_remainder=True, per_batch_map=mixer,
                              input_columns=["image", "label"], num_parallel_workers=1)
        return sum(row[0].shape[0] for row in data.create_tuple_iterator(output_numpy=True, num_epochs=1))

    costs: Dict[str, float] = {}
    for prefix, recipe in (("plain", cfg), ("resnest", resnest_recipe(cfg))):
        # the recipe's own train ops (train_transforms), one stage per op; HWC2CHW joins Normalize's stage
        names = {"RandomCropDecodeResize": f"decode_crop_{recipe.interpolation}", "RandomHorizontalFlip": "flip",
                 "RandomColorAdjust": "color_jitter", "RandomChoice": "rand_augment", "Normalize": "normalize_chw"}
        ops = train_transforms(recipe)
        cases = [(names[type(op).__name__], ops[:i + 1] + ([ops[i + 1]] if type(op).__name__ == "Normalize" else []))
                 for i, op in enumerate(ops) if type(op).__name__ in names]
        mixer = batch_augment(recipe, cfg.seed)
        batch_cases = [("batch_map", ops), ("batch_map_numpy", ops)] if mixer is not None else []
        for name, case_ops in cases + batch_cases:
            with on_cores(1), _native_batch_map(name != "batch_map_numpy"):
                run = functools.partial(one_pass, case_ops, mixer if name == "batch_map" else None)
                costs[f"{prefix}_+{name}"] = measure({"s": run}, rounds)["s"]["cpu_ms_per_img"]
    return costs


def project(per_core_img_s: float, scaling_1_to_2: float, reader_rows_s: float, workers: int = 24) -> float:
    """img/s of one rank with `workers` cores and map workers, from the img/s of one core (the pipeline pinned to
    one core, reader and batching included), assuming: (1) each added core brings what the second one
    brought here (efficiency = scaling_1_to_2 / 2, held constant: no memory-bandwidth or NUMA wall measured);
    (2) the rank's reader (one Python thread plus its read-ahead threads) delivers at most the reader-alone rate
    measured here, and files arrive as fast as from page cache (NFS latency hidden by read-ahead, not measured)."""
    return min(workers * per_core_img_s * min(1.0, scaling_1_to_2 / 2), reader_rows_s)


def run_pipeline(args, cfg, tmp: str) -> dict:
    """Train (plain and ResNeSt recipes) and eval pipelines at one worker (on both cores, and pinned to one core) and
    at the configured worker count, the reader alone, scaling 1 -> N (workers, and cores), the 24-worker projection
    from the one-core rate, the per-op costs (`stage_costs`); ratios ours/theirs for the plain transforms."""
    from common.data.pipeline import default_workers

    root = make_jpeg_folder(tmp, args.images, cfg.seed)
    workers = cfg.num_parallel_workers or default_workers(1)
    rounds = max(1, min(args.steps, 5))
    per_pass = max(args.pass_images, 8 * cfg.batch_size)  # images per timed pass: the folder, repeated
    repeats = max(1, (per_pass + args.images - 1) // args.images)
    ours: Dict[str, float] = {"workers": workers}
    theirs: Dict[str, float] = {"workers": workers}
    ratios: Dict[str, float] = {}
    for variant, reader_workers in (("reader", 1), ("reader_floor", 1), ("reader_cpp", workers)):
        reader = functools.partial(ours_pass, variant=variant)
        got = _measure_sides([("ours", reader, reader_workers)], cfg, root, True, max(8, repeats), rounds)["ours"]
        ours[f"{variant}_rows_s"], ours[f"{variant}_cpu_us_per_row"] = got["img_s"], 1000 * got["cpu_ms_per_img"]
    kinds = (("train", True, ""), ("eval", False, ""), ("resnest_train", True, "resnest"),
             ("resnest_procs_train", True, "resnest_procs"), ("resnest_numpy_train", True, "resnest_numpy"))
    for split, training, variant in kinds:
        compare = args.compare and not variant
        mine = functools.partial(ours_pass, variant=variant)
        for label, w_ours, w_theirs in (("1worker", 1, 0), (f"{workers}workers", workers, workers)):
            if label != "1worker" and workers == 1:
                continue
            sides = [("ours", mine, w_ours)] + ([("theirs", theirs_pass, w_theirs)] if compare else [])
            if label == "1worker":
                got = _measure_sides(sides, cfg, root, training, repeats, rounds)
            else:
                # Several workers: one side at a time. Alternating, the torch DataLoader's worker processes and our
                # pipeline's threads share the 2 cores and cut ours from ~1080 to ~540 img/s (RESULTS.md round 3).
                got = {}
                for side in sides:
                    got.update(_measure_sides([side], cfg, root, training, repeats, rounds))
            key = f"{split}_{label}"
            ours[f"{key}_img_s"] = got["ours"]["img_s"]
            if label == "1worker":
                ours[f"{key}_cpu_ms_per_img"] = got["ours"]["cpu_ms_per_img"]
            if compare:
                theirs[f"{key}_img_s"] = got["theirs"]["img_s"]
                if label == "1worker":
                    theirs[f"{key}_cpu_ms_per_img"] = got["theirs"]["cpu_ms_per_img"]
                ratios[key] = got["ours"]["img_s"] / got["theirs"]["img_s"]
        if variant != "resnest_procs":  # its batch map's processes cannot share one core with the pipeline
            with on_cores(1):
                got = _measure_sides([("ours", mine, 1)], cfg, root, training, repeats, rounds)["ours"]
            ours[f"{split}_1core_img_s"], ours[f"{split}_1core_cpu_ms_per_img"] = got["img_s"], got["cpu_ms_per_img"]
        if workers > 1:
            many = ours[f"{split}_{workers}workers_img_s"]
            base = ours[f"{split}_1worker_img_s"]
            scaling = ours[f"{split}_scaling_1_to_{workers}"] = many / base
            if f"{split}_1core_img_s" in ours:  # project from one core where it was measured
                base = ours[f"{split}_1core_img_s"]
                scaling = ours[f"{split}_scaling_1core_to_{workers}cores"] = many / base
            ours[f"{split}_projected_24workers_img_s"] = project(base, scaling * 2 / workers, ours["reader_rows_s"])
    ours["resnest_vs_plain_per_core"] = ours["resnest_train_1core_img_s"] / ours["train_1core_img_s"]
    ours["resnest_vs_plain_1worker"] = ours["resnest_train_1worker_img_s"] / ours["train_1worker_img_s"]
    ours.update({f"stage_cpu_ms_{name}": ms for name, ms in stage_costs(cfg, root, rounds, per_pass).items()})
    result = {"ours": ours}
    if args.compare:
        result.update(theirs=theirs, ratios=ratios, ratio=ratios["train_1worker"])
    return result
