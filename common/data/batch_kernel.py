"""The arithmetic of the training batch map: normalise + HWC->CHW, random erasing and the mix with the reversed
batch, in one native pass (`csrc/batch_map.cc`, through ctypes, which releases the GIL) or in NumPy.

The map workers hand over uint8 HWC images; `normalize_mix` returns the float32 NCHW batch the network trains on.
Normalisation is a 3 x 256 lookup table of (v - mean) / std in float32, the same numbers as MindSpore's Normalize
(bit for bit, tests/test_data_pipeline.py). The native pass is built with g++ at first use into the zoo's cache
folder (ZOO_CACHE_DIR, else ~/.cache/mindspore-zoo); without g++ (or with ZOO_NATIVE_BATCH_MAP=0) NumPy computes
the same bits, more slowly (benchmarks/RESULTS.md round 9).
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from .transforms import IMAGENET_MEAN, IMAGENET_STD

SWITCH = "ZOO_NATIVE_BATCH_MAP"
SOURCE = Path(__file__).resolve().parent / "csrc" / "batch_map.cc"
LIBRARY_NAME = "libzoo_batch_map.so"
NO_MIX, MIXUP, CUTMIX = 0, 1, 2

_log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def normalize_table(mean: Tuple[float, ...] = IMAGENET_MEAN, std: Tuple[float, ...] = IMAGENET_STD) -> np.ndarray:
    """(3, 256) float32: entry [c, v] = (v - mean[c]) / std[c], each step rounded to float32 as in a float32 op."""
    values = np.arange(256, dtype=np.float32)
    table = np.stack([(values - np.float32(m)) / np.float32(s) for m, s in zip(mean, std)])
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=None)
def _native_function():
    """The compiled `zoo_batch_map`, or None (one warning saying why) when it cannot be built or loaded here."""
    from ..cpu_ops.library import build_standalone, cache_root

    path, why = build_standalone(SOURCE, LIBRARY_NAME, cache_root(), flags=("-ffp-contract=off",))
    if path is not None:
        try:
            function = ctypes.CDLL(str(path)).zoo_batch_map
        except (OSError, AttributeError) as exc:
            path, why = None, f"cannot load {path}: {exc}"
    if path is None:
        _log.warning("the batch map's native pass is off (%s); NumPy computes it, more slowly", why)
        return None
    pointer = ctypes.c_void_p
    function.argtypes = [pointer, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, pointer, pointer, ctypes.c_int32,
                         ctypes.c_float, pointer, pointer]
    function.restype = ctypes.c_int
    return function


def native_available() -> bool:
    """Whether `normalize_mix` runs the native pass (switch not off, library built); read at every call."""
    from ..cpu_ops import switch_on

    return switch_on(os.environ.get(SWITCH, "1")) and _native_function() is not None


def _as_batch(images: Sequence[np.ndarray]) -> Tuple[list, int, int]:
    rows = [np.ascontiguousarray(image, dtype=np.uint8) for image in images]
    if not rows:
        raise ValueError("the batch map got an empty batch")
    shape = rows[0].shape
    if len(shape) != 3 or shape[2] != 3 or any(row.shape != shape for row in rows):
        raise ValueError(f"the batch map needs uint8 HWC images of one size with 3 channels; got shapes "
                         f"{sorted({row.shape for row in rows})} (does the train transform end before Normalize?)")
    return rows, shape[0], shape[1]


def normalize_mix(images: Sequence[np.ndarray], erase: np.ndarray, mode: int = NO_MIX, lam: float = 1.0,
                  cut: Tuple[int, int, int, int] = (0, 0, 0, 0), native: Optional[bool] = None) -> np.ndarray:
    """uint8 HWC images -> float32 NCHW: normalised, image i zeroed in its box erase[i] = (y0, y1, x0, x1) (empty
    boxes erase nothing), then mixed with image n-1-i: MIXUP gives lam * a + (1 - lam) * b (as a - d, b + d with
    d = (1 - lam)(a - b)), CUTMIX puts the partner's pixels in the box `cut`. `native` None: as available."""
    rows, height, width = _as_batch(images)
    n = len(rows)
    # boxes clipped to the image: the native pass writes where they say
    limits = np.array([height, height, width, width])
    erase = np.ascontiguousarray(np.clip(np.reshape(erase, (n, 4)), 0, limits), dtype=np.int32)
    cut = tuple(int(v) for v in np.clip(cut, 0, limits))
    keep_other = np.float32(1.0 - lam)  # numpy's float32 arithmetic with a Python float rounds it the same way
    table = normalize_table()
    if native is None:
        native = native_available()
    if native:
        out = np.empty((n, 3, height, width), np.float32)
        pointers = (ctypes.c_void_p * n)(*[row.ctypes.data for row in rows])
        cut_box = np.array(cut, dtype=np.int32)
        status = _native_function()(pointers, n, height, width, table.ctypes.data, erase.ctypes.data, mode,
                                    keep_other, cut_box.ctypes.data, out.ctypes.data)
        if status:
            raise ValueError(f"the batch map's native pass refused its arguments (mode {mode})")
        return out
    return _numpy_normalize_mix(rows, table, erase, mode, keep_other, cut)


def _numpy_normalize_mix(rows, table, erase, mode, keep_other, cut) -> np.ndarray:
    out = np.empty((len(rows), 3) + rows[0].shape[:2], np.float32)
    for row, image in zip(rows, out):  # a contiguous output plane per take (0.32 ms per 224 px image here)
        for channel in range(3):
            np.take(table[channel], row[:, :, channel], out=image[channel])
    for image, (y0, y1, x0, x1) in zip(out, erase):
        image[:, y0:y1, x0:x1] = 0.0
    n = len(out)
    if mode == MIXUP:
        diff = np.empty_like(out[0])
        for i in range(n // 2):  # pair by pair, in place: one image-sized temporary
            a, b = out[i], out[n - 1 - i]
            np.subtract(a, b, out=diff)
            diff *= keep_other
            a -= diff
            b += diff
    elif mode == CUTMIX:
        y0, y1, x0, x1 = cut
        out[:, :, y0:y1, x0:x1] = out[::-1, :, y0:y1, x0:x1].copy()
    return out
